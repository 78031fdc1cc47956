"""`make bench`: time and measure every pipeline stage on the sample company at growing scale.

For each scale (``quick`` = 10k source records, ``100k``, ``1m``, a number, or a comma list) in a scratch
copy of the project under ``benchmarks/work/<scale>/`` (git-ignored):

1. ``scv sample --records N`` generates the sample company;
2. the I/O floor: every raw file read once with pyarrow/DuckDB (``benchmarks/io_floor.py``);
3. the whole pipeline in one process, ``scv run --render --period P``, as a user runs it: its wall
   time, CPU and peak RSS (the sum over the process tree polled with psutil); per stage from the run
   manifest: the runner's seconds, the seconds in the notebook's cells, the kernel's own CPU and peak
   RSS (recorded by each stage), rows in/out and the unify accuracy;
4. the same party records linked by Splink 5 + DuckDB (``benchmarks/splink_link.py``, in its own venv
   ``benchmarks/.venv-splink``, created on first use) and scored by the same ``unify.evaluate``.

Writes ``benchmarks/results/<date>-<scale>.json`` and ``.md``, refreshes ``benchmarks/results/README.md``
(latest result per scale) and the log-log chart ``benchmarks/results/scaling.png``.

    .venv/bin/python benchmarks/run.py --scale quick          # ~3 min
    .venv/bin/python benchmarks/run.py --scale quick,100k     # growth ratios measured in one run
    .venv/bin/python benchmarks/run.py --scale 1m             # ~15+ min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
WORK = BENCH / "work"
SPLINK_VENV = BENCH / ".venv-splink"
SPLINK_REQUIREMENTS = BENCH / "requirements-splink.txt"
MAIN_LOCK = ROOT / "requirements.lock"

#: Named scales -> raw source records aimed at (scv sample --records).
SCALES = {"quick": 10_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
#: Stages in run order (helpers.pipeline.STAGES) and the final rendering step.
STAGES = ["ingest", "unify", "quality", "metrics", "segmentation", "campaigns"]
RENDER = "reports"
PIPELINE_STEPS = [*STAGES, RENDER]
#: Packages whose versions go into every result.
PACKAGES = [
    "pandas", "numpy", "pyarrow", "duckdb", "scipy", "scikit-learn", "rapidfuzz", "recordlinkage",
    "papermill", "nbclient", "matplotlib", "weasyprint", "psutil",
]  # fmt: skip
GIB = 1024**3
MIB = 1024**2

#: The issue's targets (2 cores, 24 GiB).
TARGET_PIPELINE_SECONDS = {100_000: 90.0, 1_000_000: 600.0}
TARGET_PEAK_RSS = 8e9  # bytes ("8 GB")
TARGET_GROWTH_PER_10X = 12.0
TARGET_INGEST_VS_FLOOR = 3.0


# ================================================================================== measuring
@dataclass
class Measured:
    """One child process: wall seconds, peak memory, exit code and its log."""

    wall: float
    cpu: float  # user + system seconds of the process and its waited-for descendants (less noisy than wall)
    returncode: int
    max_process_rss: int  # bytes: the largest single process (wait4 rusage, waited-for descendants)
    tree_peak_rss: int  # bytes: largest sum of RSS over the process tree (psutil polling)
    log: Path

    @property
    def peak_rss(self) -> int:
        return max(self.max_process_rss, self.tree_peak_rss)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "peak_rss_bytes": self.peak_rss,
            "max_process_rss_bytes": self.max_process_rss,
            "tree_peak_rss_bytes": self.tree_peak_rss,
            "returncode": self.returncode,
            "log": _rel(self.log),
        }


def measure(
    cmd: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None, interval: float = 0.1
) -> Measured:
    """Run `cmd` to the end, output to `log`; measure wall time and peak RSS of it and its children."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = [0]
        stop = threading.Event()

        def poll() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    break
                total = 0
                for p in tree:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                stop.wait(interval)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child (and its waited-for descendants)
        wall = time.perf_counter() - started
        stop.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, cpu, proc.returncode, int(usage.ru_maxrss) * 1024, peak[0], log)


def result_line(log: Path) -> dict[str, Any] | None:
    """The JSON after the last ``RESULT `` line of a log (printed by io_floor.py / splink_link.py)."""
    found = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("RESULT "):
            found = line[len("RESULT ") :]
    return json.loads(found) if found else None


def log_tail(log: Path, lines: int = 6) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    useful = [t for t in text if t.strip() and "Kernel is running over TCP" not in t]
    return "\n".join(useful[-lines:])


# ================================================================================== environment
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_bytes": psutil.virtual_memory().total,
        "os": f"{platform.system()} {platform.release()}",
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:8],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit, read from .git without running git (None when not a repository)."""
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
    if not git.is_dir():
        return None
    common = git
    if (git / "commondir").exists():
        common = (git / (git / "commondir").read_text().strip()).resolve()
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref: "):
        return head[:12]
    ref = head[5:]
    for base in (git, common):
        if (base / ref).exists():
            return (base / ref).read_text().strip()[:12]
    packed = common / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    return None


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ================================================================================== scales
def parse_scales(text: str) -> list[tuple[str, int]]:
    """``"quick,100k"`` -> [("quick", 10000), ("100k", 100000)]; also plain numbers and "250k", "2m"."""
    out = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part in SCALES:
            out.append((part, SCALES[part]))
            continue
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", part.replace("_", ""))
        if not m:
            raise SystemExit(f"unknown scale {part!r}: use quick, 10k, 100k, 1m, a number, or a comma list")
        n = int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2)])
        out.append((part, n))
    if not out:
        raise SystemExit("no scale given")
    return out


def default_period(root: Path) -> str:
    """The period a run on the fresh sample uses: the last complete month before sample.end_date
    (what `scv period` finds from the newest transaction, without reading the files)."""
    sys.path.insert(0, str(ROOT / "src"))
    from helpers.config import load_settings

    end = date.fromisoformat(str(load_settings(root=root).sample.end_date)[:10])
    month_end = (end.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    if end == month_end:
        year, month = end.year, end.month
    else:
        year, month = (end.year - 1, 12) if end.month == 1 else (end.year, end.month - 1)
    return f"{year:04d}-{month:02d}"


def make_project(dest: Path) -> Path:
    """A scratch project: params/, notebooks/ and pyproject.toml copied from the repository."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "params", dest / "params")
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def child_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SCV_ROOT",)}
    env["SCV_ROOT"] = str(root)  # helpers.config.project_root(): the scratch project, never the repo
    env["PYTHONUNBUFFERED"] = "1"
    return env


def scv() -> str:
    exe = Path(sys.executable).parent / "scv"
    if exe.exists():
        return str(exe)
    found = shutil.which("scv")
    if not found:
        raise SystemExit("`scv` not found next to this Python; run `make setup` first")
    return found


# ================================================================================== splink venv
def splink_python(*, quiet: bool = False) -> Path:
    """benchmarks/.venv-splink/bin/python with Splink installed; created on first use.

    Splink is a benchmark-only dependency: it lives in its own venv, never in the product's lock.
    DuckDB, pyarrow and numpy there are constrained to the versions of requirements.lock, so both
    linkers run on the same DuckDB. Re-installed when either requirements file changes."""
    python = SPLINK_VENV / "bin" / "python"
    digest = hashlib.sha256(SPLINK_REQUIREMENTS.read_bytes() + MAIN_LOCK.read_bytes()).hexdigest()
    marker = SPLINK_VENV / ".installed"
    if python.exists() and marker.exists() and marker.read_text().strip() == digest:
        return python
    if not quiet:
        print(f"creating {_rel(SPLINK_VENV)} (Splink, benchmark only) ...", flush=True)
    uv = Path(sys.executable).parent / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd:
        subprocess.run(
            [uv_cmd, "venv", "-q", "--allow-existing", "--python", sys.executable, str(SPLINK_VENV)],
            check=True,
        )
        subprocess.run(
            [
                uv_cmd,
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                "-r",
                str(SPLINK_REQUIREMENTS),
                "-c",
                str(MAIN_LOCK),
            ],
            check=True,
        )
    else:
        subprocess.run([sys.executable, "-m", "venv", str(SPLINK_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(SPLINK_REQUIREMENTS), "-c", str(MAIN_LOCK)],
            check=True,
        )
    marker.write_text(digest + "\n")
    return python


# ================================================================================== one scale
def _manifest(reports: Path, version: int) -> tuple[dict[str, Any] | None, bool]:
    for name, ok in ((f"v{version}", True), (f"v{version}.failed", False)):
        path = reports / name / "manifest.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8")), ok
    return None, False


def _next_version(reports: Path) -> int:
    numbers = [0]
    if reports.exists():
        for child in reports.iterdir():
            m = re.fullmatch(r"\.?v(\d+)(\.partial|\.failed)?", child.name)
            if m:
                numbers.append(int(m.group(1)))
    return max(numbers) + 1


def _say(msg: str) -> None:
    print(msg, flush=True)


def notebook_seconds(path: Path) -> float | None:
    """Seconds spent in the cells of an executed notebook (Papermill's per-cell durations): the
    stage's own work, without the kernel's start-up."""
    if not path.exists():
        return None
    nb = json.loads(path.read_text(encoding="utf-8"))
    return round(
        sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0) for c in nb.get("cells", [])), 2
    )


def run_pipeline(cmd: list[str], root: Path, period: str, logs: Path) -> dict[str, Any]:
    """The whole pipeline in one `scv run --render` process, as a user runs it (stages side by side
    where the runner allows it). Per step from the run manifest: the runner's seconds (kernel start
    included), the seconds in the notebook's cells, and the kernel's own CPU and peak RSS, which each
    stage records (`pipeline.record_stage`); for the whole run, the process's wall, CPU and the peak
    summed RSS of its process tree."""
    reports = root / "reports" / period
    version = _next_version(reports)
    m = measure(cmd, cwd=root, log=logs / "pipeline.log", env=child_env(root))
    manifest, _ = _manifest(reports, version)
    run_dir = reports / (f"v{version}" if (reports / f"v{version}").exists() else f"v{version}.failed")
    out: dict[str, Any] = {
        "command": " ".join(["scv", *map(str, cmd[1:])]),
        "status": "ok" if m.ok else "failed",
    }
    out.update(m.as_dict())
    out["steps"] = steps = []
    if not manifest:
        out["error"] = log_tail(m.log, 3)[-400:]
        return out
    out["run_id"] = manifest.get("run_id")
    out["code_version"] = manifest.get("code_version")
    out["workers"] = manifest.get("workers")
    for entry in manifest.get("stages", []):
        stats = entry.get("stats") or {}
        steps.append({
            "step": entry["stage"], "status": entry.get("status", "ok"), "wall_s": entry.get("seconds"),
            "notebook_s": notebook_seconds(run_dir / entry["notebook"]), "cpu_s": stats.get("kernel_cpu_seconds"),
            "peak_rss_bytes": stats.get("kernel_peak_rss_bytes"), "max_process_rss_bytes": stats.get("kernel_peak_rss_bytes"),
            "rows_in": stats.get("rows_in"), "rows_out": stats.get("rows_out"), "stats": stats,
            "run_id": manifest.get("run_id"), "code_version": manifest.get("code_version"),
        })  # fmt: skip
    rep = manifest.get("reports")
    if rep:
        executed = [
            run_dir / "notebooks" / "reports" / Path(a["notebook"]).name for a in rep.get("audiences", [])
        ]
        nb_s = [x for x in (notebook_seconds(p) for p in executed) if x is not None]
        steps.append({
            "step": RENDER, "status": "ok", "wall_s": rep.get("seconds"), "notebook_s": round(sum(nb_s), 2),
            "cpu_s": None, "peak_rss_bytes": None, "audiences": rep.get("audiences"), "cards": rep.get("cards"),
            "run_id": manifest.get("run_id"), "code_version": manifest.get("code_version"),
        })  # fmt: skip
    elif RENDER in cmd or "render" in cmd:
        steps.append({"step": RENDER, "status": "failed", "wall_s": None, "peak_rss_bytes": None})
    if manifest.get("error"):
        out["error"] = manifest["error"].splitlines()[0][:400]
        for step in steps:
            if step["status"] != "ok":
                step["error"] = out["error"]
    return out


def run_ours_bare(root: Path, period: str, logs: Path) -> dict[str, Any]:
    """`unify.link` alone in a bare process (splink_link.py ours): the equal-footing twin of Splink's run."""
    m = measure(
        [sys.executable, BENCH / "splink_link.py", "ours", "--root", root, "--period", period],
        cwd=root,
        log=logs / "unify_bare.log",
        env=child_env(root),
    )
    res = result_line(m.log) if m.ok else None
    if not res:
        return {"status": "failed", **m.as_dict(), "error": log_tail(m.log, 3)}
    return {"status": "ok", **m.as_dict(), **res}


def run_splink(root: Path, period: str, logs: Path, threshold: float) -> dict[str, Any]:
    """Prepare (our .venv), link (Splink venv), evaluate (our .venv, unify.evaluate)."""
    out: dict[str, Any] = {"threshold": threshold}
    work = root / "splink"
    script = BENCH / "splink_link.py"
    prep = measure(
        [
            sys.executable,
            script,
            "prepare",
            "--root",
            root,
            "--period",
            period,
            "--out",
            work / "input.parquet",
        ],
        cwd=root,
        log=logs / "splink_prepare.log",
        env=child_env(root),
    )
    out["prepare"] = {**prep.as_dict(), **(result_line(prep.log) or {})}
    if not prep.ok:
        out.update(status="failed", error=log_tail(prep.log, 3))
        return out
    try:
        python = splink_python()
    except (subprocess.CalledProcessError, OSError) as exc:
        out.update(status="failed", error=f"cannot create {_rel(SPLINK_VENV)}: {exc}")
        return out
    link = measure(
        [
            python,
            script,
            "link",
            "--input",
            work / "input.parquet",
            "--out-dir",
            work,
            "--threshold",
            str(threshold),
        ],
        cwd=root,
        log=logs / "splink_link.log",
        env=child_env(root),
    )
    res = result_line(link.log) or {}
    out["link"] = {
        **link.as_dict(),
        **{k: v for k, v in res.items() if k not in ("pairs_file", "clusters_file")},
    }
    if not link.ok or not res:
        out.update(status="failed", error=log_tail(link.log, 3))
        return out
    out["accuracy"] = evaluate_splink(root, work, threshold)
    out["status"] = "ok"
    return out


def evaluate_splink(root: Path, work: Path, threshold: float) -> dict[str, float]:
    """Splink's pairs and clusters scored by `helpers.unify.evaluate` against the sample truth."""
    import numpy as np
    import pandas as pd

    from helpers import unify

    records = pd.read_parquet(work / "input.parquet", columns=["unique_id", "source", "source_id"])
    truth = pd.read_csv(root / "data" / "sample_truth" / "records.csv", dtype=str)
    pairs = pd.read_parquet(work / "pairs.parquet")
    lo = np.minimum(pairs["unique_id_l"].to_numpy(), pairs["unique_id_r"].to_numpy())
    hi = np.maximum(pairs["unique_id_l"].to_numpy(), pairs["unique_id_r"].to_numpy())
    candidates = pd.DataFrame(
        {"rid_a": lo, "rid_b": hi, "match": pairs["match_probability"].to_numpy() >= threshold}
    )
    clusters = pd.read_parquet(work / "clusters.parquet").set_index("unique_id")["cluster_id"]
    clusters = clusters.reindex(records["unique_id"].to_numpy()).astype(str).to_numpy()
    acc = unify.evaluate(records, truth, candidates=candidates, matches=candidates, clusters=clusters)
    return {k: round(float(v), 6) for k, v in acc.items()}


def run_scale(label: str, records: int, args: argparse.Namespace) -> dict[str, Any]:
    root = (args.work / label).resolve()
    logs = root / "logs"
    result: dict[str, Any] = {"scale": label, "records_target": records, "steps": []}
    sample_file = root / "data" / "raw" / ".sample"
    marker = root / ".bench-sample.json"
    if args.reuse_sample and sample_file.exists() and marker.exists():
        result["sample"] = json.loads(marker.read_text())
        result["sample"]["reused"] = True
        shutil.rmtree(root / "data" / "processed", ignore_errors=True)
        shutil.rmtree(root / "reports", ignore_errors=True)
        shutil.rmtree(root / "splink", ignore_errors=True)
        _say(f"[{label}] reusing the sample in {_rel(root)}")
    else:
        make_project(root)
        _say(f"[{label}] generating the sample company (~{records:,} source records) in {_rel(root)} ...")
        m = measure(
            [scv(), "sample", "--records", str(records)],
            cwd=root,
            log=logs / "sample.log",
            env=child_env(root),
        )
        text = m.log.read_text(encoding="utf-8", errors="replace")
        found = re.search(r"([\d,]+) source records in (\d+) files", text)
        customers = re.search(r"sample company: (\d+) customers", text)
        result["sample"] = {
            **m.as_dict(),
            "status": "ok" if m.ok else "failed",
            "source_records": int(found.group(1).replace(",", "")) if found else None,
            "customers": int(customers.group(1)) if customers else None,
        }
        if not m.ok:
            raise SystemExit(f"sample generation failed; see {_rel(m.log)}:\n{log_tail(m.log)}")
        marker.write_text(json.dumps(result["sample"]))
    result["source_records"] = result["sample"].get("source_records") or records
    period = args.period or default_period(root)
    result["period"] = period
    _say(f"[{label}] {result['source_records']:,} source records; period {period}")

    m = measure(
        [sys.executable, BENCH / "io_floor.py", "--root", root],
        cwd=root,
        log=logs / "io_floor.log",
        env=child_env(root),
    )
    floor = result_line(m.log) if m.ok else None
    result["io_floor"] = {**m.as_dict(), "status": "ok" if floor else "failed", **(floor or {})}
    _say(f"[{label}] I/O floor: {floor['seconds']:.2f} s" if floor else f"[{label}] I/O floor failed")

    steps = [s for s in PIPELINE_STEPS if s in args.stages]
    stages = [s for s in steps if s != RENDER]
    cmd = [scv(), "run", "--period", period]
    if stages != STAGES:
        cmd += [a for name in stages for a in ("--stage", name)]
    if RENDER in steps:
        cmd.append("--render")
    if not stages:
        cmd = [scv(), "render", "--period", period]
    _say(f"[{label}] the pipeline as a user runs it: {' '.join(cmd[1:])} ...")
    run_result = run_pipeline(cmd, root, period, logs)
    result["steps"] = run_result.pop("steps")
    result["run"] = run_result
    for step in result["steps"]:
        rows = ""
        if step.get("rows_in") is not None:
            rows = f", rows {step['rows_in']:,} -> {step.get('rows_out') or 0:,}"
        peak = step.get("peak_rss_bytes")
        _say(
            f"[{label}] {step['step']:<13} {step['status']:<6} {step['wall_s'] or 0:8.1f} s  "
            + (f"peak {peak / MIB:7.0f} MiB" if peak else "")
            + rows
        )
        if step["status"] != "ok":
            _say(f"           {step.get('error', '')[:300]}")
    _say(
        f"[{label}] whole pipeline {run_result['status']:<6} {run_result['wall_s']:8.1f} s  "
        f"peak {run_result['peak_rss_bytes'] / MIB:7.0f} MiB (process tree)"
    )
    result["unify"] = unify_summary(result)
    if args.bare and "unify" in steps and result["unify"]:
        _say(f"[{label}] unify.link alone in a bare process ...")
        bare = result["unify_bare"] = run_ours_bare(root, period, logs)
        if bare["status"] == "ok":
            _say(
                f"[{label}] ours (bare)   ok     {bare['seconds']:8.1f} s  peak "
                f"{bare['linkage_peak_rss_bytes'] / MIB:7.0f} MiB, pair F1 {bare['accuracy'].get('pair_f1', 0):.4f}"
            )
        else:
            _say(f"[{label}] ours (bare) failed: {bare.get('error', '')[:300]}")
    if args.splink and "unify" in steps:
        _say(f"[{label}] Splink 5 + DuckDB on the same party records ...")
        result["splink"] = run_splink(root, period, logs, args.splink_threshold)
        sp = result["splink"]
        if sp.get("status") == "ok":
            acc = sp["accuracy"]
            _say(
                f"[{label}] splink        ok     {sp['link']['seconds']:8.1f} s  peak "
                f"{linkage_memory({}, sp)[1] / MIB:7.0f} MiB, pair F1 {acc.get('pair_f1', float('nan')):.4f}"
            )
        else:
            _say(f"[{label}] splink failed: {sp.get('error', '')[:300]}")
    result["pipeline"] = pipeline_summary(result)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.keep_work:
        for sub in ("data/processed", "reports", "splink"):
            shutil.rmtree(root / sub, ignore_errors=True)
    return result


def unify_summary(result: dict[str, Any]) -> dict[str, Any]:
    step = next((s for s in result["steps"] if s["step"] == "unify"), None)
    if not step or step["status"] != "ok":
        return {}
    stats = step.get("stats") or {}
    return {
        "source_records": stats.get("source_records"),
        "parties_rows": stats.get("parties_rows"),
        "candidate_pairs": stats.get("candidate_pairs"),
        "link_seconds": stats.get("seconds_total"),
        "stage_wall_s": step["wall_s"],
        "peak_rss_bytes": step["peak_rss_bytes"],
        "kernel_peak_rss_bytes": step["max_process_rss_bytes"],  # the notebook's kernel: where link() runs
        "customers": stats.get("customers"),
        "accuracy": stats.get("accuracy") or {},
    }


def pipeline_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The whole run: one process's wall, CPU and process-tree peak (older results: the sum of one
    process per step)."""
    steps = result["steps"]
    run = result.get("run")
    if run:
        measured = {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "peak_rss_bytes": run["peak_rss_bytes"],
                    "one_process": True}  # fmt: skip
    else:
        measured = {
            "wall_s": round(sum(s["wall_s"] for s in steps), 2),
            "cpu_s": round(sum(s.get("cpu_s") or 0 for s in steps), 2),
            "peak_rss_bytes": max((s["peak_rss_bytes"] or 0 for s in steps), default=0),
        }
    return {
        **measured,
        "notebook_s": round(sum(s.get("notebook_s") or 0 for s in steps), 2),
        "steps": [s["step"] for s in steps],
        "failed": [s["step"] for s in steps if s["status"] != "ok"],
        "complete": len(steps) == len(PIPELINE_STEPS) and all(s["status"] == "ok" for s in steps),
    }


# ================================================================================== analysis
def step_seconds(scale: dict[str, Any]) -> dict[str, float]:
    """Seconds per measured step of one scale: pipeline steps (process wall), io_floor, splink, link core."""
    out = {s["step"]: s["wall_s"] for s in scale.get("steps", []) if s.get("status") == "ok"}
    floor = scale.get("io_floor") or {}
    if floor.get("status") == "ok":
        out["io_floor"] = floor["seconds"]
    uni = scale.get("unify") or {}
    if uni.get("link_seconds"):
        out["unify_link_core"] = uni["link_seconds"]
    bare = scale.get("unify_bare") or {}
    if bare.get("status") == "ok":
        out["unify_link_bare"] = bare["seconds"]
    sp = scale.get("splink") or {}
    if sp.get("status") == "ok":
        out["splink_link"] = sp["link"]["seconds"]
    return out


def growth_per_10x(n1: float, t1: float, n2: float, t2: float) -> float:
    """Time ratio scaled to a 10x increase in records: (t2/t1) ** (1 / log10(n2/n1)).

    1 = constant, 10 = linear, 12 = the target's limit, 100 = quadratic."""
    if n2 <= n1 or t1 <= 0 or t2 <= 0:
        raise ValueError("need n2 > n1 and positive times")
    return (t2 / t1) ** (1.0 / math.log10(n2 / n1))


def step_cpu(scale: dict[str, Any]) -> dict[str, float]:
    """CPU seconds (user + system, process and waited-for children) per pipeline step that has them."""
    return {
        s["step"]: s["cpu_s"] for s in scale.get("steps", []) if s.get("status") == "ok" and s.get("cpu_s")
    }


def growth(scales: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth between consecutive scales of one run, per step (wall time; CPU time alongside)."""
    ordered = sorted(scales, key=lambda s: s["source_records"])
    rows = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        na, nb = a["source_records"], b["source_records"]
        ta, tb = step_seconds(a), step_seconds(b)
        ca, cb = step_cpu(a), step_cpu(b)
        for step in [*PIPELINE_STEPS, "unify_link_core", "unify_link_bare", "io_floor", "splink_link"]:
            if step in ta and step in tb and nb > na:
                g = growth_per_10x(na, ta[step], nb, tb[step])
                cpu = growth_per_10x(na, ca[step], nb, cb[step]) if step in ca and step in cb else None
                rows.append({
                    "step": step, "from": a["scale"], "to": b["scale"], "records_ratio": round(nb / na, 2),
                    "seconds_from": ta[step], "seconds_to": tb[step], "per_10x": round(g, 2),
                    "cpu_per_10x": None if cpu is None else round(cpu, 2), "ok": g <= TARGET_GROWTH_PER_10X,
                })  # fmt: skip
    return rows


def linkage_memory(ours: dict[str, Any], sp: dict[str, Any]) -> tuple[int, int]:
    """Peak RSS of the linking process: ours (bare process if given, else the stage's kernel) vs Splink's.

    Bare runs report their own peak right after linking (getrusage in-process); else the wait4 peak."""
    mine = (
        ours.get("clusters_peak_rss_bytes")  # bare run, up to the clusters: the work Splink's run does
        or ours.get("linkage_peak_rss_bytes")
        or ours.get("kernel_peak_rss_bytes")
        or ours.get("peak_rss_bytes")
        or 0
    )
    link = sp.get("link") or {}
    theirs = (
        link.get("linkage_peak_rss_bytes")
        or link.get("max_process_rss_bytes")
        or link.get("peak_rss_bytes")
        or 0
    )
    return int(mine), int(theirs)


def targets(scales: list[dict[str, Any]], growth_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: met / missed / not measured, with the measured value."""
    out: list[dict[str, Any]] = []

    def add(target: str, scale: str, value: str, status: str, note: str = "") -> None:
        out.append({"target": target, "scale": scale, "value": value, "status": status, "note": note})

    for s in scales:
        n = s["records_target"]
        p = s["pipeline"]
        if n in TARGET_PIPELINE_SECONDS:
            limit = TARGET_PIPELINE_SECONDS[n]
            status = (
                ("met" if p["wall_s"] <= limit else "missed")
                if p["complete"]
                else ("missed" if p["wall_s"] > limit else "incomplete")
            )
            note = "" if p["complete"] else f"failed/skipped: {', '.join(p['failed']) or 'steps not run'}"
            add(f"whole pipeline <= {limit:.0f} s", s["scale"], f"{p['wall_s']:.1f} s", status, note)
        add(
            "peak RSS <= 8 GB",
            s["scale"],
            f"{p['peak_rss_bytes'] / 1e9:.2f} GB",
            "met" if p["peak_rss_bytes"] <= TARGET_PEAK_RSS else "missed",
        )
        floor = s.get("io_floor") or {}
        ingest = next((x for x in s["steps"] if x["step"] == "ingest" and x["status"] == "ok"), None)
        if floor.get("status") == "ok" and ingest:
            # the floor is timed inside its process: compare the ingest notebook's cells (imports
            # included, the kernel's start-up not) when the run recorded them
            spent = ingest.get("notebook_s") if s.get("run") else None
            spent = spent or ingest["wall_s"]
            ratio = spent / max(floor["seconds"], 1e-9)
            add(
                "ingest <= 3x I/O floor",
                s["scale"],
                f"{ratio:.1f}x ({spent:.1f} s vs {floor['seconds']:.2f} s)",
                "met" if ratio <= TARGET_INGEST_VS_FLOOR else "missed",
                "ingest notebook cells vs bare reads" if s.get("run") else "ingest process vs bare reads",
            )
        uni, sp, bare = s.get("unify") or {}, s.get("splink") or {}, s.get("unify_bare") or {}
        ours = bare if bare.get("status") == "ok" else uni
        ours_s = ours.get("seconds") or ours.get("link_seconds")
        if ours_s and sp.get("status") == "ok":
            ours_f1 = ours["accuracy"].get("pair_f1", 0.0)
            their_f1 = sp["accuracy"].get("pair_f1", 0.0)
            faster = ours_s <= sp["link"]["seconds"]
            better = ours_f1 >= their_f1
            ours_mem, their_mem = linkage_memory(ours, sp)
            leaner = ours_mem < their_mem
            value = (
                f"time {ours_s:.1f} vs {sp['link']['seconds']:.1f} s, pair F1 {ours_f1:.4f} vs "
                f"{their_f1:.4f}, peak {ours_mem / GIB:.2f} vs {their_mem / GIB:.2f} GiB"
            )
            if ours.get("clusters_peak_rss_bytes") and ours.get("linkage_peak_rss_bytes"):
                value += (
                    f" (ours up to the clusters, as Splink's run; {ours['linkage_peak_rss_bytes'] / GIB:.2f} GiB "
                    "with golden records, provenance and review queue)"
                )
            missed = [w for w, ok in (("time", faster), ("F1", better), ("memory", leaner)) if not ok]
            add(
                "linkage: no slower than Splink, F1 >= Splink, less memory"
                + (" (bare processes)" if ours is bare else " (our stage kernel)"),
                s["scale"],
                value,
                "met" if not missed else "missed",
                ("worse on: " + ", ".join(missed))
                if missed
                else ("" if n >= 1_000_000 else "the target is set at 1M"),
            )
    for g in growth_rows:
        if g["step"] in PIPELINE_STEPS:
            add(
                "10x records <= 12x time",
                f"{g['from']}->{g['to']}",
                f"{g['step']}: {g['per_10x']:.1f}x per 10x",
                "met" if g["ok"] else "missed",
            )
    return out


# ================================================================================== reporting
def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 100:
        return f"{s:.0f}"
    if s >= 10:
        return f"{s:.1f}"
    return f"{s:.2f}"


def fmt_int(n: Any) -> str:
    return "-" if n is None else f"{int(n):,}"


def fmt_ratio(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; numbers right-aligned."""

    def numeric(v: Any) -> bool:
        return bool(re.fullmatch(r"[-+]?[\d,.]+( ?(s|x|%|KiB|MiB|GiB|GB))?", str(v).strip().strip("*")))

    align = [
        "---:" if rows and all(numeric(r[i]) or str(r[i]) == "-" for r in rows) else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


def stage_table(scale: dict[str, Any]) -> str:
    rows = []
    s0 = scale.get("sample") or {}
    rows.append(
        [
            "(sample generation)",
            s0.get("status", "ok"),
            fmt_seconds(s0.get("wall_s")),
            fmt_seconds(s0.get("cpu_s")),
            "-",
            fmt_bytes(s0.get("peak_rss_bytes")),
            "-",
            fmt_int(scale.get("source_records")),
        ]
    )
    fl = scale.get("io_floor") or {}
    if fl:
        rows.append(
            [
                "(I/O floor: raw files once)",
                fl.get("status", "-"),
                fmt_seconds(fl.get("seconds")),
                "-",
                "-",
                fmt_bytes(fl.get("peak_rss_bytes")),
                fmt_int(fl.get("rows")),
                "-",
            ]
        )
    for s in scale["steps"]:
        rows.append(
            [
                s["step"],
                s["status"],
                fmt_seconds(s["wall_s"]),
                fmt_seconds(s.get("cpu_s")),
                fmt_seconds(s.get("notebook_s")),
                fmt_bytes(s["peak_rss_bytes"]),
                fmt_int(s.get("rows_in")),
                fmt_int(s.get("rows_out")),
            ]
        )
    p = scale["pipeline"]
    rows.append(
        [
            "**pipeline total**",
            "ok" if p["complete"] else "incomplete",
            f"**{fmt_seconds(p['wall_s'])}**",
            fmt_seconds(p.get("cpu_s")),
            fmt_seconds(p["notebook_s"]),
            fmt_bytes(p["peak_rss_bytes"]),
            "-",
            "-",
        ]
    )
    return md_table(
        ["step", "status", "wall s", "CPU s", "in notebook s", "peak RSS", "rows in", "rows out"], rows
    )


ACCURACY_COLUMNS = ["blocking_recall", "pair_precision", "pair_recall", "pair_f1", "cluster_f1", "bcubed_f1"]


def accuracy_cells(accuracy: dict[str, Any]) -> list[str]:
    """One linker's accuracy as table cells, in the order of ACCURACY_COLUMNS."""
    return [fmt_ratio(accuracy.get(k)) for k in ACCURACY_COLUMNS]


def linkage_table(scale: dict[str, Any]) -> str:
    uni, sp = scale.get("unify") or {}, scale.get("splink") or {}
    rows = []
    if uni:
        a = uni["accuracy"]
        rows.append(
            [
                "ours, in the unify stage",
                fmt_int(uni.get("source_records")),
                fmt_int(uni.get("candidate_pairs")),
                fmt_seconds(uni.get("link_seconds")),
                fmt_seconds(uni.get("stage_wall_s")),
                fmt_bytes(linkage_memory(uni, sp)[0]),
                *accuracy_cells(a),
            ]
        )
    bare = scale.get("unify_bare") or {}
    if bare.get("status") == "ok":
        a = bare["accuracy"]
        rows.append(
            [
                "ours, bare process",
                fmt_int(bare.get("records")),
                fmt_int(bare.get("candidate_pairs")),
                fmt_seconds(bare.get("seconds")),
                fmt_seconds(bare.get("wall_s")),
                fmt_bytes(linkage_memory(bare, sp)[0])
                + (
                    f" ({fmt_bytes(bare['linkage_peak_rss_bytes'])} with golden records)"
                    if bare.get("clusters_peak_rss_bytes") and bare.get("linkage_peak_rss_bytes")
                    else ""
                ),
                *accuracy_cells(a),
            ]
        )
    if sp.get("status") == "ok":
        a, lk = sp["accuracy"], sp["link"]
        rows.append(
            [
                f"Splink {lk.get('splink', '')} + DuckDB {lk.get('duckdb', '')}, p >= {sp['threshold']}",
                fmt_int(lk.get("records")),
                fmt_int(lk.get("candidate_pairs")),
                fmt_seconds(lk.get("seconds")),
                fmt_seconds(lk["wall_s"] + sp["prepare"]["wall_s"]),
                fmt_bytes(linkage_memory(uni, sp)[1]),
                *accuracy_cells(a),
            ]
        )
    elif sp:
        rows.append(
            [
                f"Splink ({sp.get('status')})",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                str(sp.get("error", ""))[:120],
            ]
        )
    if not rows:
        return "_unify was not run_"
    return md_table(
        [
            "linker",
            "records",
            "candidate pairs",
            "link s",
            "wall s (processes)",
            "peak RSS (process)",
            "blocking recall",
            "pair P",
            "pair R",
            "pair F1",
            "cluster F1",
            "B³ F1",
        ],
        rows,
    )


def render_markdown(run: dict[str, Any]) -> str:
    m, v = run["machine"], run["versions"]
    lines = [
        f"# Benchmark {run['date']} — scale {run['scale_arg']}",
        "",
        f"- command: `{run['command']}`",
        f"- commit: `{run.get('git_commit') or 'unknown'}` (code_version in the run manifests: "
        f"`{run.get('code_version') or '-'}`)",
        f"- machine: {m['cpu']}, {m['usable_cores']} of {m['cores']} cores, {m['ram_bytes'] / GIB:.1f} GiB RAM, "
        f"{m['os']}; load average at start {m['load_average_at_start']} (a shared machine: timings are noisy)",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- splink venv: {run.get('splink_versions') or '-'}",
        f"- total benchmark time: {fmt_seconds(run.get('seconds'))} s",
        "",
        *(
            [
                "The pipeline ran as a user runs it: one `scv run --render` process, with the runner's workers "
                "(stages side by side where they do not depend on each other, reports two at a time). "
                "Per step: wall = the runner's seconds for the stage (Jupyter kernel start-up included); "
                "CPU and peak RSS = the stage kernel's own (getrusage, recorded by the stage); 'in notebook' = "
                "the seconds in the executed notebook's cells. Reports: the rendering of every audience and the cards. "
                "Pipeline total: wall and CPU of the one process and its children, peak = the summed RSS of its "
                "process tree (polled every 0.1 s), i.e. two kernels when two run at once."
            ]
            if any(sc.get("run") for sc in run["scales"])
            else [
                "Wall = the process (`scv run --stage X`: interpreter + Jupyter kernel start-up ~4 s + the notebook); "
                "CPU = user + system seconds of that process and its kernel; 'in notebook' = the stage's time in the "
                "run manifest. Peak RSS = the larger of the biggest single process (rusage) and the summed RSS of "
                "the process tree. Pipeline total = the sum over the steps' processes."
            ]
        ),
        "",
    ]
    for s in run["scales"]:
        lines += [
            f"## {s['scale']}: {s['source_records']:,} source records (period {s['period']})",
            "",
            stage_table(s),
            "",
            "### Linkage",
            "",
            linkage_table(s),
            "",
        ]
        uni = s.get("unify") or {}
        if uni:
            lines.append(
                f"'link s' = `unify.link` alone ({fmt_int(uni.get('parties_rows'))} staged party rows -> source "
                "records -> pairs -> customers -> golden records), inside the unify notebook or in a bare process "
                "(`splink_link.py ours`), vs Splink's training + predict + clustering inside its process; neither "
                "counts interpreter start-up, and Splink gets our normalised keys ready-made (`linkage.prepare`, "
                f"{fmt_seconds(((s.get('splink') or {}).get('prepare') or {}).get('wall_s'))} s as its own process). "
                "Peak RSS (process): the stage's Jupyter kernel (it also holds the staged rows and writes the "
                "outputs); for the bare runs, each process's own peak (getrusage): ours up to the clusters, the work "
                "Splink's run does (it also loads the staged rows and builds the keys Splink gets ready-made), and "
                "in brackets after golden records, provenance and the review queue, which Splink does not build."
            )
            lines.append("")
        fl = s.get("io_floor") or {}
        if fl.get("files"):
            rows = [
                [
                    k,
                    f.get("engine"),
                    fmt_int(f.get("rows")),
                    fmt_bytes(f.get("bytes")),
                    fmt_seconds(f.get("seconds")),
                    ", ".join(f.get("sources", [])),
                ]
                for k, f in fl["files"].items()
            ]
            lines += [
                "<details><summary>I/O floor per file</summary>",
                "",
                md_table(["file", "reader", "rows", "size", "s", "sources"], rows),
                "",
                "</details>",
                "",
            ]
    if run["growth"]:
        rows = [
            [
                g["step"],
                f"{g['from']} -> {g['to']}",
                f"{g['records_ratio']}x",
                fmt_seconds(g["seconds_from"]),
                fmt_seconds(g["seconds_to"]),
                f"{g['per_10x']:.1f}x",
                "-" if g.get("cpu_per_10x") is None else f"{g['cpu_per_10x']:.1f}x",
                "yes" if g["ok"] else "**no**",
            ]
            for g in run["growth"]
        ]
        lines += [
            "## Growth (measured in this run)",
            "",
            "Time ratio scaled to 10x records: (t2/t1)^(1/log10(n2/n1)); 10 = linear, target <= 12. "
            "Process wall includes a fixed ~4 s start-up per stage, which flatters growth at small scales.",
            "",
            md_table(
                [
                    "step",
                    "scales",
                    "records",
                    "s before",
                    "s after",
                    "wall per 10x records",
                    "CPU per 10x",
                    "<= 12x",
                ],
                rows,
            ),
            "",
        ]
    rows = [
        [
            t["target"],
            t["scale"],
            t["value"],
            f"**{t['status']}**" if t["status"] != "met" else t["status"],
            t["note"],
        ]
        for t in run["targets"]
    ]
    lines += ["## Targets", "", md_table(["target", "scale", "measured", "status", "note"], rows), ""]
    return "\n".join(lines)


def load_results(results_dir: Path = RESULTS) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "scales" in data:
            data["_file"] = path.name
            runs.append(data)
    return runs


def latest_per_scale(runs: list[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """records_target -> (run, scale result) of the newest run that measured it."""
    latest: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: r.get("started_at", r.get("date", ""))):
        for s in run["scales"]:
            latest[s["records_target"]] = (run, s)
    return dict(sorted(latest.items()))


def plot_scaling(runs: list[dict[str, Any]], path: Path) -> Path | None:
    """Log-log chart: seconds vs source records per step (the newest result per scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest = latest_per_scale(runs)
    if not latest:
        return None
    series: dict[str, list[tuple[int, float]]] = {}
    for _, s in latest.values():
        for step, sec in step_seconds(s).items():
            series.setdefault(step, []).append((s["source_records"], sec))
        p = s.get("pipeline") or {}
        if p.get("wall_s"):
            series.setdefault("pipeline total", []).append((s["source_records"], p["wall_s"]))
    fig, ax = plt.subplots(figsize=(9.5, 5.5), dpi=110)
    styles = {
        "pipeline total": dict(color="black", linewidth=2.5),
        "io_floor": dict(linestyle=":", color="grey"),
        "splink_link": dict(linestyle="--", color="tab:cyan"),
        "unify_link_core": dict(linestyle="--", color="darkorange"),
        "unify_link_bare": dict(linestyle="--", color="goldenrod"),
    }
    for step, pts in series.items():
        pts.sort()
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", label=step, **styles.get(step, {}))
    xs_all = sorted({x for pts in series.values() for x, _ in pts})
    if len(xs_all) >= 2:  # a slope-1 guide through the total's first point
        x0 = xs_all[0]
        y0 = dict(series.get("pipeline total", [(x0, 1.0)])).get(x0, 1.0)
        ax.plot(
            [x0, xs_all[-1]],
            [y0, y0 * xs_all[-1] / x0],
            color="black",
            alpha=0.25,
            linewidth=1,
            label="linear growth (guide)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("raw source records")
    ax.set_ylabel("seconds (wall)")
    ax.set_title("Time vs records per stage (log-log; newest run per scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _ours(scale: dict[str, Any]) -> dict[str, Any]:
    """Our linkage numbers: the bare-process run when there is one, else the unify stage."""
    bare = scale.get("unify_bare") or {}
    return bare if bare.get("status") == "ok" else (scale.get("unify") or {})


def render_readme(runs: list[dict[str, Any]]) -> str:
    latest = latest_per_scale(runs)
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py` (`make bench`, `make bench SCALE=100k`, `make bench SCALE=1m`); "
        "one JSON + Markdown per run, this page shows the newest result per scale. The machine is shared: "
        "compare ratios measured within one run. Every stage pays a fixed start-up (~2 s of Jupyter kernel "
        "plus ~2-3 s of imports), so small scales say little about the I/O floor or growth. "
        "How it measures: [../README.md](../README.md).",
        "",
        "![time vs records](scaling.png)",
        "",
    ]
    if latest:
        scales = list(latest.values())
        header = ["step"] + [f"{s['scale']} ({s['source_records']:,}) s" for _, s in scales]
        steps = [*PIPELINE_STEPS, "io_floor", "unify_link_core", "unify_link_bare", "splink_link"]
        secs = [step_seconds(s) for _, s in scales]
        rows = [[st] + [fmt_seconds(x.get(st)) for x in secs] for st in steps if any(st in x for x in secs)]
        rows.append(
            ["**pipeline total**"]
            + [
                fmt_seconds(s["pipeline"]["wall_s"]) + ("" if s["pipeline"]["complete"] else " (incomplete)")
                for _, s in scales
            ]
        )
        rows.append(["peak RSS"] + [fmt_bytes(s["pipeline"]["peak_rss_bytes"]) for _, s in scales])
        for key, label in (
            ("pair_f1", "pair F1"),
            ("cluster_f1", "cluster F1"),
            ("blocking_recall", "blocking recall"),
        ):
            rows.append(
                [f"{label}: ours / Splink"]
                + [
                    f"{fmt_ratio((s.get('unify') or {}).get('accuracy', {}).get(key))} / "
                    f"{fmt_ratio(((s.get('splink') or {}).get('accuracy') or {}).get(key))}"
                    for _, s in scales
                ]
            )
        rows.append(
            ["linkage peak RSS: ours / Splink"]
            + [
                " / ".join(
                    fmt_bytes(x) if x else "-" for x in linkage_memory(_ours(s), s.get("splink") or {})
                )
                for _, s in scales
            ]
        )
        rows.append(
            ["run"]
            + [
                f"[{r['_file'].removesuffix('.json')}]({r['_file'].removesuffix('.json')}.md)"
                for r, _ in scales
            ]
        )
        lines += ["## Latest per scale", "", md_table(header, rows), ""]
        newest = max(runs, key=lambda r: r.get("started_at", r.get("date", "")))
        t_rows = [[t["target"], t["scale"], t["value"], t["status"], t["note"]] for t in newest["targets"]]
        lines += [
            f"## Targets in the newest run ({newest['_file'].removesuffix('.json')})",
            "",
            md_table(["target", "scale", "measured", "status", "note"], t_rows),
            "",
        ]
    lines += ["## Runs", ""] + [
        f"- [{r['_file'].removesuffix('.json')}]({r['_file'].removesuffix('.json')}.md): "
        f"{', '.join(s['scale'] for s in r['scales'])} (commit {r.get('git_commit') or '-'})"
        for r in sorted(runs, key=lambda r: r["_file"], reverse=True)
    ]
    return "\n".join(lines) + "\n"


def write_results(run: dict[str, Any], results_dir: Path = RESULTS) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    name = f"{run['date']}-{run['scale_arg'].replace(',', '+')}"
    json_path = results_dir / f"{name}.json"
    n = 1
    while json_path.exists():  # a second run of the same scales on the same day: keep the first
        n += 1
        json_path = results_dir / f"{name}-{n}.json"
    name = json_path.stem
    json_path.write_text(json.dumps(run, indent=1, default=str) + "\n", encoding="utf-8")
    (results_dir / f"{name}.md").write_text(render_markdown(run) + "\n", encoding="utf-8")
    runs = load_results(results_dir)
    plot_scaling(runs, results_dir / "scaling.png")
    (results_dir / "README.md").write_text(render_readme(runs), encoding="utf-8")
    return json_path


# ================================================================================== main
def timed_checks() -> dict[str, Any]:
    """The timings kept out of `make test` (benchmarks/timed_checks.py), in a process of their own."""
    _say("timed checks: FEBRL4 linkage, 1,000 cards, a 1M-line fuzz file ...")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timed.json"
        done = subprocess.run(
            [sys.executable, str(BENCH / "timed_checks.py"), "--json", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            return {"error": {"status": "failed", "target_s": 0, "error": done.stderr[-500:]}}
        return json.loads(out.read_text(encoding="utf-8"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Benchmark the pipeline stages at growing scale (make bench).")
    p.add_argument("--scale", default="quick", help="quick (10k), 10k, 100k, 1m, a number, or a comma list")
    p.add_argument("--period", help="YYYY-MM (default: the last complete month of the sample)")
    p.add_argument(
        "--stages",
        default=",".join(PIPELINE_STEPS),
        help=f"comma list of steps to run (default: all: {','.join(PIPELINE_STEPS)})",
    )
    p.add_argument("--no-splink", dest="splink", action="store_false", help="skip the Splink comparison")
    p.add_argument(
        "--no-bare",
        dest="bare",
        action="store_false",
        help="skip running unify.link alone in a bare process (the equal-footing twin of Splink's run)",
    )
    p.add_argument(
        "--splink-threshold", type=float, default=0.9, help="Splink match probability (default 0.9)"
    )
    p.add_argument(
        "--reuse-sample", action="store_true", help="reuse a sample already generated in the work folder"
    )
    p.add_argument(
        "--keep-work", action="store_true", help="keep processed data and reports in the work folder"
    )
    p.add_argument("--work", type=Path, default=WORK, help="scratch folder (default benchmarks/work)")
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)"
    )
    p.add_argument(
        "--no-timed-checks",
        dest="timed_checks",
        action="store_false",
        help="skip the timings kept out of the test suite (FEBRL4 linkage, 1,000 cards: timed_checks.py)",
    )
    p.add_argument("--setup-splink", action="store_true", help="only create benchmarks/.venv-splink and exit")
    p.add_argument(
        "--rebuild-summary",
        action="store_true",
        help="only re-write the Markdown, README and chart from the JSON results already there",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.setup_splink:
        print(splink_python())
        return 0
    if args.rebuild_summary:
        runs = load_results(args.results)
        for run in runs:
            md = args.results / run["_file"].replace(".json", ".md")
            md.write_text(render_markdown(run) + "\n", encoding="utf-8")
        plot_scaling(runs, args.results / "scaling.png")
        (args.results / "README.md").write_text(render_readme(runs), encoding="utf-8")
        print(f"re-wrote the summaries of {len(runs)} run(s) in {_rel(args.results)}")
        return 0
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(args.stages) - set(PIPELINE_STEPS)
    if unknown:
        raise SystemExit(f"unknown step(s) {sorted(unknown)}; the steps are {PIPELINE_STEPS}")
    sys.path.insert(0, str(ROOT / "src"))
    scales = parse_scales(args.scale)
    started = time.perf_counter()
    now = datetime.now(UTC)
    run: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%d"),
        "started_at": now.isoformat(timespec="seconds"),
        "scale_arg": ",".join(label for label, _ in scales),
        "command": " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        "scales": [],
    }
    if args.splink and "unify" in args.stages:
        try:
            python = splink_python()
            out = subprocess.run(
                [
                    str(python),
                    "-c",
                    "import splink, duckdb, sqlglot; "
                    "print(f'splink {splink.__version__}, duckdb {duckdb.__version__}, "
                    "sqlglot {sqlglot.__version__}')",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            run["splink_versions"] = out.stdout.strip()
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"warning: no Splink venv ({exc}); the comparison will be skipped", file=sys.stderr)
            args.splink = False
    for label, records in scales:
        run["scales"].append(run_scale(label, records, args))
    codes = {s.get("code_version") for sc in run["scales"] for s in sc["steps"] if s.get("code_version")}
    run["code_version"] = ", ".join(sorted(codes)) if codes else None
    run["growth"] = growth(run["scales"])
    run["targets"] = targets(run["scales"], run["growth"])
    if args.timed_checks:
        run["timed_checks"] = timed_checks()
        for name, r in run["timed_checks"].items():
            label = {
                "febrl4_link": "FEBRL4 linkage",
                "cards_1000": "1,000 customer cards",
                "fuzz_one_million_lines": "ingest of a 1M-line hostile CSV",
            }.get(name, name)
            ok = r.get("status") == "ok"
            run["targets"].append(
                {
                    "target": f"{label} <= {r['target_s']:.0f} s",
                    "scale": "fixed",
                    "value": f"{r['seconds']:.1f} s" if ok else "-",
                    "status": ("met" if r["seconds"] <= r["target_s"] else "missed") if ok else "failed",
                    "note": "" if ok else r.get("error", ""),
                }
            )
    run["seconds"] = round(time.perf_counter() - started, 1)
    path = write_results(run, args.results)
    print(
        f"\nresults: {_rel(path)} and {_rel(path.with_suffix('.md'))}; summary in {_rel(args.results / 'README.md')}"
    )
    for t in run["targets"]:
        print(f"  [{t['status']:>10}] {t['target']} @ {t['scale']}: {t['value']} {t['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
