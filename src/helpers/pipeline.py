"""The runner: executes the stage notebooks in order through Papermill and writes the run manifest.

A run for a period gets the next version folder, ``reports/<period>/v<N>/``. It is built in a hidden
``.v<N>.partial`` folder and renamed into place only when every stage succeeded; a failed run is
renamed to ``v<N>.failed`` (kept for inspection, never shown as the latest) and the error names the
notebook, the cell and the exception. Each stage records its row counts with `record_stage`, and the
manifest collects them with timings, the code version, the parameter hash and input fingerprints.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import __version__, store
from helpers.config import Settings, SourceSpec, fingerprint, literal_passwords, load_settings, load_sources
from helpers.errors import ScvError, SourceError, StageError, bounded
from helpers.readers import input_files


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str  # relative to notebooks/
    description: str
    needs: tuple[str, ...] = ()  # the stages whose outputs it reads


#: The stages in run order (DESIGN.md "The flow"). Each reads only what earlier stages wrote; `needs`
#: names them, so a run with more than one worker starts quality beside metrics. Segmentation reads
#: the campaign feedback of earlier periods, so it needs no campaigns stage of this run.
STAGES: list[Stage] = [
    Stage("ingest", "01_ingest.ipynb", "read, standardise and validate every source"),
    Stage("unify", "02_unify.ipynb", "link identities into golden customers with stable ids", ("ingest",)),
    Stage(
        "quality",
        "03_quality_audit.ipynb",
        "score data quality per source, field and dimension",
        ("ingest", "unify"),
    ),
    Stage(
        "metrics",
        "04_metrics.ipynb",
        "revenue, behaviour, service, payments, RFM and CLV per customer",
        ("ingest", "unify"),
    ),
    Stage(
        "segmentation",
        "05_segmentation.ipynb",
        "tiers, clusters, churn risk and next best offers",
        ("ingest", "unify", "metrics"),
    ),
    Stage(
        "campaigns",
        "06_campaign_measurement.ipynb",
        "campaign uplift, feedback and the next campaign",
        ("ingest", "unify", "segmentation"),
    ),
]

KERNEL = "scv"


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def stats_path(settings: Settings, period: str, stage: str) -> Path:
    return settings.path("processed") / period / "_stages" / f"{stage}.json"


def record_stage(settings: Settings, period: str, stage: str, stats: dict[str, Any]) -> Path:
    """Called by a stage notebook at its end: rows in/out and anything the manifest should carry.

    Adds the kernel's own peak memory and CPU seconds (this process is the stage's kernel), so the
    manifest shows what each stage cost even when stages run side by side.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    kernel = {
        "kernel_peak_rss_bytes": int(usage.ru_maxrss) * 1024,  # Linux reports KiB
        "kernel_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }
    return store.write_json({**stats, **kernel}, stats_path(settings, period, stage))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def input_fingerprints(sources: dict[str, SourceSpec], raw_dir: Path) -> dict[str, str | None]:
    """sha256 of every raw input file (None for a declared file that is missing)."""
    out: dict[str, str | None] = {}
    for path in input_files(sources, raw_dir):
        key = os.path.relpath(path, raw_dir)
        out[key] = sha256_file(path) if path.is_file() else None
    return out


def code_version(root: Path) -> str:
    """The git commit (with '-dirty' when the work tree has changes), else the package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return f"v{__version__}"


def next_version(period_reports: Path) -> int:
    """The next run number for a period: one more than any earlier run, finished or failed."""
    numbers = [0]
    if period_reports.exists():
        for child in period_reports.iterdir():
            m = re.fullmatch(r"\.?v(\d+)(\.partial|\.failed)?", child.name)
            if m:
                numbers.append(int(m.group(1)))
    return max(numbers) + 1


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def _point_latest(reports: Path, target: Path) -> None:
    """Make reports/latest a relative symlink to the newest successful run (atomically)."""
    link = reports / "latest"
    tmp = reports / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, reports), tmp)
    os.replace(tmp, link)


def _stage_error(stage: Stage, exc: Exception, executed: Path) -> StageError:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    evalue = bounded(re.sub(r"\x1b\[[0-9;]*m", "", bounded(evalue, 100_000)), 2000)
    where = f", cell {cell}" if cell is not None else ""
    return StageError(
        f"stage '{stage.name}' failed in notebooks/{stage.notebook}{where}: {ename}: {evalue}\n"
        f"  the executed notebook with the traceback: {executed}"
    )


def execute_notebook(source: Path, executed: Path, parameters: dict[str, Any], *, cwd: Path) -> None:
    """Run one notebook through Papermill with the `scv` kernel started in `cwd`.

    The kernel's folder is given to nbclient (``resources.metadata.path``) instead of Papermill's
    ``cwd=``, which changes the folder of the whole process: several notebooks can then run side by
    side in threads of one runner.
    """
    import papermill as pm

    executed.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(source),
        str(executed),
        parameters=parameters,
        kernel_name=KERNEL,
        progress_bar=False,
        log_output=False,
        resources={"metadata": {"path": str(cwd)}},
        **_kernel_manager(),
    )


@functools.cache
def _kernel_manager() -> dict[str, Any]:
    """The kernel manager for the stage notebooks.

    - It talks to the kernel over Unix sockets in the temp folder instead of TCP on localhost: no
      open port, and no "Kernel is running over TCP without encryption" warning per notebook. The
      socket path must be absolute (the kernel starts in another folder) and short (a Unix socket
      path has at most 107 bytes); with a long TMPDIR the default TCP transport is kept.
    - It does not interrupt a kernel it is shutting down: jupyter_client sends SIGINT before every
      shutdown, and an idle kernel then logs "ERROR | KeyboardInterrupt caught in kernel", an alarm
      about nothing at the end of each notebook. Interrupting a running cell still works.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    base = Path(tempfile.gettempdir()).resolve()
    ipc = len(str(base)) <= 60

    class QuietKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc" if ipc else "tcp"

        @default("ip")
        def _default_ip(self) -> str:
            return str(base / f"scv-kernel-{uuid.uuid4().hex[:12]}") if ipc else "127.0.0.1"

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return {"kernel_manager_class": QuietKernelManager}


def run_in_order(stages: list[Stage], run_one: Callable[[Stage], None], *, workers: int = 1) -> list[str]:
    """Call `run_one` for every stage once the stages it needs (among `stages`) have finished.

    With one worker the stages run in list order in this thread. With more, up to `workers` run at
    once in threads, the earliest ready stage first. After a failure no new stage starts; the ones
    running finish, and the first error is raised. Returns the stage names in the order they started.
    """
    chosen = {s.name for s in stages}
    started: list[str] = []
    if workers <= 1:
        for stage in stages:
            started.append(stage.name)
            run_one(stage)
        return started
    pending = list(stages)
    done: set[str] = set()
    running: dict[Future[None], Stage] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scv-stage") as pool:
        while pending or running:
            if failure is None:
                for stage in list(pending):
                    if len(running) >= workers:
                        break
                    if all(n in done or n not in chosen for n in stage.needs):
                        pending.remove(stage)
                        started.append(stage.name)
                        running[pool.submit(run_one, stage)] = stage
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                error = future.exception()
                if error is None:
                    done.add(stage.name)
                elif failure is None:
                    failure = error
    if failure is not None:
        raise failure
    return started


def run(
    period: str | None = None,
    stages: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    root: Path | None = None,
    quiet: bool = False,
    render: bool = False,
    audiences: list[str] | None = None,
) -> dict[str, Any]:
    """Run the stages (all, the named ones, or none with ``stages=[]``) for a period, then render the
    audience reports when `render` is set (all, or the named `audiences`); returns the manifest."""

    settings = load_settings(overrides={"period": period, **(overrides or {})}, root=root)
    sources = load_sources(root=settings.root)
    selected = STAGES if stages is None else [s for s in STAGES if s.name in stages]
    unknown = set(stages or []) - set(stage_names())
    if unknown:
        raise ScvError(f"unknown stage(s) {sorted(unknown)}; the stages are {stage_names()}")
    check_inputs(sources, settings.path("raw"))
    for warning in literal_passwords(sources):
        print(warning, file=sys.stderr, flush=True)

    reports = settings.path("reports")
    reports.mkdir(parents=True, exist_ok=True)
    with run_lock(reports):  # before anything slow: a second run is refused at once, not after a minute
        if settings.period is None:
            from helpers.ingest import detect_period

            period = detect_period(sources, settings.path("raw"), settings.ingest)
            _say(f"period: {period} (the last complete month in the data)", quiet)
        else:
            period = settings.period
            _say(f"period: {period}", quiet)
        swept = sweep_temporaries([settings.path("processed"), reports, settings.path("store").parent])
        if swept:
            _say(f"removed {swept} temporary file(s) left by an interrupted earlier run", quiet)
        interrupted = mark_interrupted_runs(reports)
        if interrupted:
            _say(
                f"marked {len(interrupted)} interrupted earlier run(s) as failed: {', '.join(interrupted)}",
                quiet,
            )
        migrated = store.migrate(settings.path("store"))
        if migrated:
            _say(
                f"store: {sum(map(len, migrated.values()))} ENUM column(s) of an older version made text",
                quiet,
            )
        return _run_stages(settings, sources, period, selected, overrides, quiet, render, audiences)


def check_inputs(sources: dict[str, SourceSpec], raw_dir: Path) -> None:
    """Refuse a run whose declared input files are outside paths.raw or not files (before a version
    folder is taken); a missing file is left to the stage that reads it."""
    from helpers.readers import source_path

    for spec in sources.values():
        if spec.path:
            path = source_path(spec, raw_dir)
            if path.exists() and not path.is_file():
                raise SourceError(
                    f"{spec.name}: {path} is a folder, not a file (sources.{spec.name}.path in "
                    "params/sources.yaml); name the file inside it"
                )


def mark_interrupted_runs(reports: Path) -> list[str]:
    """Rename the hidden ``.v<N>.partial`` folders of runs that were killed (called under the run lock,
    so no run is writing them) to ``v<N>.failed`` with status "failed" and why, so that they are listed
    in the index, kept for inspection like any failed run and never mistaken for a run in progress."""
    marked = []
    if not reports.exists():
        return marked
    for period_dir in sorted(p for p in reports.iterdir() if p.is_dir() and not p.is_symlink()):
        for partial in sorted(period_dir.glob(".v*.partial")):
            m = re.fullmatch(r"\.v(\d+)\.partial", partial.name)
            if not m or not partial.is_dir():
                continue
            failed = period_dir / f"v{m.group(1)}.failed"
            if failed.exists():
                shutil.rmtree(partial)
                continue
            manifest_path = partial / "manifest.json"
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = {"period": period_dir.name, "version": int(m.group(1))}
            manifest.update(
                status="failed",
                error=manifest.get("error")
                or "interrupted: the run stopped before it finished (killed, or the machine went down); "
                f"found by the run of {datetime.now(UTC).isoformat(timespec='seconds')}",
            )
            manifest.setdefault("run_id", f"{period_dir.name}-v{m.group(1)}")
            store.write_json(manifest, manifest_path)
            os.replace(partial, failed)
            marked.append(f"{period_dir.name}/{failed.name}")
    return marked


#: A temporary file (store.atomic_path) older than this is a leftover of a killed run, not a write
#: in progress (an analyst's notebook may be writing while a run starts).
STALE_TEMPORARY_SECONDS = 3600


def sweep_temporaries(folders: list[Path], *, older_than_s: float = STALE_TEMPORARY_SECONDS) -> int:
    """Delete the hidden ``.<name>.*.tmp`` files and folders that `store.atomic_path` and
    `store.atomic_folder` leave when a process is killed mid-write (never under a final name);
    returns how many were removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    seen: set[Path] = set()
    for folder in folders:
        if not folder.exists():
            continue
        for path in folder.rglob(".*.tmp"):
            if path in seen or any(parent in seen for parent in path.parents) or path.is_symlink():
                continue
            seen.add(path)
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


@contextlib.contextmanager
def run_lock(reports: Path) -> Iterator[None]:
    """One run at a time per project: two runs would pick the same version folder and share the
    store. The lock is an OS lock on ``reports/.scv-run.lock``; it ends with the process, so a killed
    run never blocks the next one."""
    import fcntl

    path = reports / ".scv-run.lock"
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ScvError(
                f"another run is in progress in this project ({holder}); wait for it to finish "
                f"(the lock is {path})"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def suppression_fingerprint(settings: Settings) -> str | None:
    """sha256 of the suppression list (salted digests only), or None when nobody was ever erased:
    the manifest then shows which erasures a run honoured."""
    from helpers.privacy_ops import LIST_FILE, suppression_dir

    listed = suppression_dir(settings.path("raw")) / LIST_FILE
    return sha256_file(listed) if listed.exists() else None


def _run_stages(
    settings: Settings,
    sources: dict[str, SourceSpec],
    period: str,
    selected: list[Stage],
    overrides: dict[str, Any] | None,
    quiet: bool,
    render: bool,
    audiences: list[str] | None,
) -> dict[str, Any]:
    reports = settings.path("reports")
    period_reports = reports / period
    period_reports.mkdir(parents=True, exist_ok=True)
    version = next_version(period_reports)
    run_id = f"{period}-v{version}"
    partial = period_reports / f".v{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "notebooks").mkdir(parents=True)

    manifest: dict[str, Any] = {
        "run_id": run_id,
        "period": period,
        "version": version,
        "status": "running",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(settings.root),
        "python": sys.version.split()[0],
        "parameters_sha256": fingerprint(settings, sources),
        "parameter_overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
        "inputs_sha256": input_fingerprints(sources, settings.path("raw")),
        "suppression_sha256": suppression_fingerprint(settings),
        "workers": settings.run.workers,
        "stages": [],
    }
    store.write_json(manifest, partial / "manifest.json")
    notebooks_dir = settings.root / "notebooks"
    started = time.perf_counter()
    lock = threading.Lock()  # the manifest and the progress lines are shared by the worker threads
    order = {s.name: i for i, s in enumerate(STAGES)}
    begun: list[str] = []

    def run_stage(stage: Stage) -> None:
        with lock:
            begun.append(stage.name)
            _say(f"[{len(begun)}/{len(selected)}] {stage.name}: {stage.description} ...", quiet)
        t0 = time.perf_counter()
        executed = partial / "notebooks" / stage.notebook
        stats_file = stats_path(settings, period, stage.name)
        stats_file.unlink(missing_ok=True)
        entry: dict[str, Any] = {"stage": stage.name, "notebook": f"notebooks/{stage.notebook}"}
        try:
            execute_notebook(
                notebooks_dir / stage.notebook,
                executed,
                {"period": period, "run_id": run_id, "overrides": overrides or {}},
                cwd=notebooks_dir,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError, kernels may die otherwise
            entry.update(status="failed", seconds=round(time.perf_counter() - t0, 2))
            with lock:
                manifest["stages"].append(entry)
            raise _stage_error(
                stage, exc, period_reports / f"v{version}.failed" / "notebooks" / stage.notebook
            ) from None
        entry.update(status="ok", seconds=round(time.perf_counter() - t0, 2))
        if stats_file.exists():
            entry["stats"] = json.loads(stats_file.read_text(encoding="utf-8"))
        with lock:
            manifest["stages"].append(entry)
            manifest["stages"].sort(key=lambda e: order[e["stage"]])
            store.write_json(manifest, partial / "manifest.json")
            _say(
                f"      {stage.name} done in {entry['seconds']:.1f} s (total {time.perf_counter() - started:.1f} s)",
                quiet,
            )

    def failed(error: str) -> None:
        manifest["stages"].sort(key=lambda e: order[e["stage"]])
        manifest.update(
            status="failed", finished_at=datetime.now(UTC).isoformat(timespec="seconds"), error=bounded(error)
        )
        store.write_json(manifest, partial / "manifest.json")
        os.replace(partial, period_reports / f"v{version}.failed")
        _write_index(reports)

    try:
        run_in_order(selected, run_stage, workers=settings.run.workers)
    except StageError as error:
        failed(str(error))
        raise
    except BaseException as error:  # an interrupt, a full disk: still a failed run, never a hidden one
        failed(f"{type(error).__name__}: {error}")
        raise
    manifest["stages_seconds"] = round(time.perf_counter() - started, 2)

    if render:
        from helpers import render as rendering

        _say(f"[reports] rendering {', '.join(audiences) if audiences else 'every audience'} ...", quiet)
        t0 = time.perf_counter()
        try:
            rendering.render_run(partial, settings, manifest=manifest, audiences=audiences, quiet=quiet)
        except ScvError as exc:
            failed(f"rendering failed: {exc}")
            raise
        except BaseException as exc:
            failed(f"rendering failed: {type(exc).__name__}: {exc}")
            raise
        _say(f"      reports rendered in {time.perf_counter() - t0:.1f} s", quiet)

    manifest.update(
        status="ok",
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 2),
    )
    store.write_json(manifest, partial / "manifest.json")
    final = period_reports / f"v{version}"
    os.replace(partial, final)
    if is_complete_report(manifest, settings) and _newest_period(reports, period):
        _point_latest(reports, final)
    _write_index(reports)
    _say(f"run {run_id} finished in {manifest['seconds']:.1f} s -> {final}", quiet)
    return manifest


def is_complete_report(manifest: dict[str, Any], settings: Settings) -> bool:
    """A run `reports/latest` may point at: it finished and rendered every audience's report."""
    if manifest.get("status") != "ok" or not manifest.get("reports"):
        return False
    from helpers.render import report_settings

    rendered = {a.get("name") for a in manifest["reports"].get("audiences", [])}
    return set(report_settings(settings).audiences) <= rendered


def _newest_period(reports: Path, period: str) -> bool:
    """True unless `reports/latest` already points at a run of a later period (a re-run of an older
    month never takes `latest` from the newest one)."""
    link = reports / "latest"
    if not link.is_symlink():
        return True
    current = Path(os.readlink(link)).parts
    return not current or not re.fullmatch(r"\d{4}-\d{2}", current[0]) or current[0] <= period


def _write_index(reports: Path) -> None:
    """Rewrite reports/index.html after every run (a stage-only run, a failed one), so it never goes
    stale; only when reports were ever rendered here (a project that never rendered has no index)."""
    if not (reports / "index.html").exists() and not (reports / "latest").is_symlink():
        return
    from helpers import render as rendering

    rendering.write_index(reports)
