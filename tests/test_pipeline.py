"""The runner: versions, manifest, failure handling (no partial output promoted)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers import pipeline
from helpers.errors import ScvError, StageError
from tests.conftest import make_project


def write_notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": pipeline.KERNEL, "display_name": "scv", "language": "python"}
    params = nbformat.v4.new_code_cell("period = None\nrun_id = None\noverrides = {}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    (root / "data" / "raw").mkdir(parents=True)
    write_notebook(
        root / "notebooks" / "ok.ipynb",
        """
from helpers import pipeline
from helpers.config import load_settings
s = load_settings()
pipeline.record_stage(s, period, "first", {"rows_in": 3, "rows_out": 2, "run": run_id})
""",
    )
    write_notebook(root / "notebooks" / "boom.ipynb", "x = 1\nraise ValueError('the amount column is empty')")
    monkeypatch.setattr(
        pipeline,
        "STAGES",
        [pipeline.Stage("first", "ok.ipynb", "ok"), pipeline.Stage("second", "boom.ipynb", "fails")],
    )
    return root


def test_successful_runs_are_versioned_with_a_manifest(tiny_project):
    first = pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    second = pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    assert (first["run_id"], second["run_id"]) == ("2026-10-v1", "2026-10-v2")
    run1 = tiny_project / "reports" / "2026-10" / "v1"
    manifest = json.loads((run1 / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["period"] == "2026-10"
    assert len(manifest["parameters_sha256"]) == 64 and manifest["code_version"]
    stage = manifest["stages"][0]
    stats = stage["stats"]
    assert {k: stats[k] for k in ("rows_in", "rows_out", "run")} == {
        "rows_in": 3,
        "rows_out": 2,
        "run": "2026-10-v1",
    }
    assert stage["seconds"] > 0 and stats["kernel_cpu_seconds"] > 0
    assert 20 * 2**20 < stats["kernel_peak_rss_bytes"] < 8 * 2**30  # the kernel's own peak, in bytes
    assert (run1 / "notebooks" / "ok.ipynb").exists()
    assert not (tiny_project / "reports" / "latest").exists(), "stage-only runs have no reports to point at"


def test_a_failing_stage_names_notebook_cell_and_error_and_promotes_nothing(tiny_project):
    pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    with pytest.raises(StageError) as err:
        pipeline.run("2026-10", root=tiny_project, quiet=True)
    msg = str(err.value)
    assert "stage 'second'" in msg and "boom.ipynb" in msg and "cell" in msg
    assert "ValueError: the amount column is empty" in msg
    period = tiny_project / "reports" / "2026-10"
    assert sorted(p.name for p in period.iterdir()) == ["v1", "v2.failed"]
    failed = json.loads((period / "v2.failed" / "manifest.json").read_text())
    assert failed["status"] == "failed" and [s["status"] for s in failed["stages"]] == ["ok", "failed"]
    assert not (tiny_project / "reports" / "latest").exists()
    assert pipeline.next_version(period) == 3  # a failed run's number is never reused


def test_unknown_stage_is_refused(tiny_project):
    with pytest.raises(Exception, match="unknown stage"):
        pipeline.run("2026-10", stages=["nope"], root=tiny_project, quiet=True)


def _stages(*specs: tuple[str, tuple[str, ...]]) -> list[pipeline.Stage]:
    return [pipeline.Stage(name, f"{name}.ipynb", name, needs) for name, needs in specs]


def test_stages_start_only_after_what_they_need():
    import threading
    import time

    stages = _stages(("a", ()), ("b", ("a",)), ("c", ("a", "b")), ("d", ("a", "b")), ("e", ("a", "b", "d")))
    finished: list[str] = []
    running: set[str] = set()
    overlaps: list[set[str]] = []
    lock = threading.Lock()

    def run_one(stage: pipeline.Stage) -> None:
        with lock:
            assert all(n in finished for n in stage.needs), (stage.name, finished)
            running.add(stage.name)
            overlaps.append(set(running))
        time.sleep(0.3 if stage.name == "c" else 0.1)
        with lock:
            running.discard(stage.name)
            finished.append(stage.name)

    started = pipeline.run_in_order(stages, run_one, workers=2)
    assert started == ["a", "b", "c", "d", "e"] and sorted(finished) == ["a", "b", "c", "d", "e"]
    assert {"c", "d"} in overlaps  # c and d need the same stages: they ran side by side
    assert max(len(o) for o in overlaps) <= 2  # never more than the workers
    assert pipeline.run_in_order(stages, lambda s: None, workers=1) == ["a", "b", "c", "d", "e"]


def test_a_stage_outside_the_selection_does_not_block():
    ran: list[str] = []
    stages = _stages(("metrics", ("ingest", "unify")), ("segmentation", ("metrics",)))
    pipeline.run_in_order(stages, lambda s: ran.append(s.name), workers=2)
    assert ran == ["metrics", "segmentation"]


def test_after_a_failure_no_new_stage_starts_and_the_first_error_is_raised():
    import time

    ran: list[str] = []

    def run_one(stage: pipeline.Stage) -> None:
        ran.append(stage.name)
        if stage.name == "b":
            raise StageError("stage 'b' failed")
        time.sleep(0.2)

    stages = _stages(("a", ()), ("b", ("a",)), ("c", ("a",)), ("d", ("b", "c")), ("e", ("c",)))
    with pytest.raises(StageError, match="'b' failed"):
        pipeline.run_in_order(stages, run_one, workers=2)
    assert sorted(ran) == ["a", "b", "c"]  # c was already running and finished; d and e never started


def test_the_real_stage_graph_runs_quality_beside_metrics():
    by_name = {s.name: s for s in pipeline.STAGES}
    names = list(by_name)
    for i, stage in enumerate(pipeline.STAGES):
        assert set(stage.needs) <= set(names[:i]), f"{stage.name} needs a later stage"
    assert "metrics" not in by_name["quality"].needs and "quality" not in by_name["metrics"].needs
    started: list[str] = []
    pipeline.run_in_order(pipeline.STAGES, lambda s: started.append(s.name), workers=2)
    assert started == names


def test_parallel_stages_write_one_manifest_in_stage_order(tiny_project, monkeypatch):
    monkeypatch.setattr(
        pipeline,
        "STAGES",
        [
            pipeline.Stage("first", "ok.ipynb", "ok"),
            pipeline.Stage("again", "ok.ipynb", "ok, side by side with first"),
        ],
    )
    manifest = pipeline.run("2026-10", root=tiny_project, quiet=True, overrides={"run.workers": 2})
    assert manifest["status"] == "ok"
    assert [s["stage"] for s in manifest["stages"]] == ["first", "again"]
    assert all(s["status"] == "ok" for s in manifest["stages"])


def test_one_run_at_a_time_per_project(tiny_project):
    import subprocess
    import sys

    reports = tiny_project / "reports"
    reports.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from helpers import pipeline\n"
         f"with pipeline.run_lock(Path({str(reports)!r})):\n    print('held', flush=True); time.sleep(5)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ScvError, match=r"another run is in progress in this project \(pid \d+"):
            pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
        assert not list((reports / "2026-10").glob("*v1*")) if (reports / "2026-10").exists() else True
    finally:
        holder.kill()
        holder.wait()
    # a killed holder leaves no lock behind
    assert pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)["status"] == "ok"


def test_stale_temporaries_of_a_killed_run_are_swept(tiny_project):
    import os
    import time

    processed = tiny_project / "data" / "processed" / "2026-10" / "staged"
    processed.mkdir(parents=True)
    stale = processed / ".crm_contacts.parquet.abc123.tmp"
    fresh = processed / ".erp_customers.parquet.def456.tmp"
    keep = processed / "crm_contacts.parquet"
    for f in (stale, fresh, keep):
        f.write_bytes(b"x")
    old = time.time() - 2 * pipeline.STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    os.utime(keep, (old, old))
    manifest = pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    assert not stale.exists() and fresh.exists() and keep.exists()  # a write in progress is left alone
    assert manifest["suppression_sha256"] is None  # nobody erased yet


def test_charts_reach_the_notebook_even_with_a_headless_backend_set(tmp_path, monkeypatch):
    """A server's MPLBACKEND=Agg (cron, CI) must not silently drop every chart from the reports."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = tmp_path / "chart.ipynb"
    write_notebook(
        source,
        "from helpers import plots\nimport matplotlib.pyplot as plt\nplots.use_theme()\n"
        "plt.plot([1, 2, 3], [3, 1, 2]);",
    )
    executed = tmp_path / "out" / "chart.ipynb"
    pipeline.execute_notebook(source, executed, {"period": "2026-10"}, cwd=tmp_path)
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs


def test_kernels_use_unix_sockets_and_are_not_interrupted_when_shut_down():
    import asyncio

    manager = pipeline._kernel_manager()["kernel_manager_class"](kernel_name=pipeline.KERNEL)
    assert manager.transport == "ipc" and manager.ip.startswith("/")  # no TCP port, an absolute socket path
    with pytest.raises(RuntimeError, match="No kernel is running"):  # an interrupt otherwise goes through
        asyncio.run(manager._async_interrupt_kernel())
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())  # shutting down: no SIGINT (nor the kernel's alarm)
