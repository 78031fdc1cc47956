"""Crash safety: `scv run` killed with SIGKILL in the middle of each stage leaves nothing half-written.

Each stage of the sample is started with `scv run --stage <stage>` and the whole process tree (the
runner and its notebook kernel) is killed with SIGKILL the moment the stage starts writing (a
temporary file appears, or the store's write-ahead log). Then: every Parquet file under its final
name opens, every stage-stats JSON parses, every store table is queryable, no report version is
visible that did not finish, and `reports/latest` still points at a finished run. The stage is then
re-run to completion, and at the end the outputs equal those of an uninterrupted run
(test_determinism.reference_run), so a crash costs time, never correctness.

The fast tests kill a process in the middle of one atomic write (Parquet, JSON, a store transaction)
at a known point.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

from helpers import pipeline, store
from tests.test_determinism import content_digests, project_copy, reference_run

# ---------------------------------------------------------------------------------------------------
# Fast: a kill inside one write, at a chosen point
# ---------------------------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
import pandas as pd
sys.path.insert(0, {src!r})
from helpers import store
target = {target!r}
"""


def run_child(code: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    return done.returncode


SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_a_parquet_write_killed_half_way_leaves_the_old_file(tmp_path):
    target = tmp_path / "staged" / "crm.parquet"
    old = pd.DataFrame({"customer": [f"C{i}" for i in range(100)], "value": range(100)})
    store.write_parquet(old, target)
    code = (
        CHILD.format(src=SRC, target=str(target))
        + """
import pyarrow.parquet as pq
real = pq.ParquetWriter.write_table
def write_then_die(self, table, *a, **k):
    real(self, table, *a, **k)          # some bytes reach the temporary file ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before the rename
pq.ParquetWriter.write_table = write_then_die
store.write_parquet(pd.DataFrame({"customer": ["X"] * 200_000, "value": range(200_000)}), target)
"""
    )
    assert run_child(code) == -signal.SIGKILL
    assert pd.read_parquet(target).equals(old), "the final name still holds the complete old file"
    leftovers = [p.name for p in target.parent.iterdir() if p != target]
    assert leftovers and all(re.fullmatch(r"\.crm\.parquet\..+\.tmp", n) for n in leftovers), leftovers
    assert [p.name for p in target.parent.glob("*.parquet")] == ["crm.parquet"], (
        "a reader never sees the temporary"
    )


def test_a_json_write_killed_half_way_leaves_the_old_file(tmp_path):
    target = tmp_path / "_stages" / "ingest.json"
    store.write_json({"rows_in": 1}, target)
    code = (
        CHILD.format(src=SRC, target=str(target))
        + """
from pathlib import Path
real = Path.write_text
def half_then_die(self, text, *a, **k):
    real(self, text[: len(text) // 2], *a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
Path.write_text = half_then_die
store.write_json({"rows_in": 2, "rows_out": 2}, target)
"""
    )
    assert run_child(code) == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"rows_in": 1}


def test_a_store_transaction_killed_half_way_keeps_the_old_slice(tmp_path):
    db = tmp_path / "scv.duckdb"
    store.save_table(
        db, "customer_value", pd.DataFrame({"customer_id": ["C1", "C2"], "clv": [1.0, 2.0]}), period="2026-10"
    )
    code = (
        CHILD.format(src=SRC, target=str(db))
        + """
import duckdb
real = duckdb.DuckDBPyConnection.execute
def die_before_commit(self, sql, *a, **k):
    if sql.strip().upper() == "COMMIT":
        os.kill(os.getpid(), signal.SIGKILL)   # the delete and the insert are done, not committed
    return real(self, sql, *a, **k)
duckdb.DuckDBPyConnection.execute = die_before_commit
store.save_table(target, "customer_value", pd.DataFrame({"customer_id": ["C9"] * 1000, "clv": range(1000)}),
                 period="2026-10")
"""
    )
    assert run_child(code) == -signal.SIGKILL
    got = store.load_table(db, "customer_value", period="2026-10")
    assert got["customer_id"].tolist() == ["C1", "C2"], "readers see the old slice, never a half-written one"
    store.save_table(
        db, "customer_value", pd.DataFrame({"customer_id": ["C3"], "clv": [3.0]}), period="2026-10"
    )
    assert store.load_table(db, "customer_value")["customer_id"].tolist() == ["C3"], (
        "the store is writable again"
    )


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """A power cut, unlike a killed process, loses what is only in the page cache: fsync first."""
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    store.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "a.parquet")
    assert calls == ["fsync", "replace", "fsync"], "file flushed, renamed, then the folder entry flushed"


# ---------------------------------------------------------------------------------------------------
# Slow: SIGKILL in the middle of every stage of the sample
# ---------------------------------------------------------------------------------------------------


def _write_marks(processed: Path, store_path: Path) -> set[str]:
    """What shows a write in progress: atomic temporaries, and the store's write-ahead log."""
    marks = {str(store_path) + ".wal"} if Path(str(store_path) + ".wal").exists() else set()
    for folder, _, files in os.walk(processed):
        marks.update(os.path.join(folder, f) for f in files if f.startswith(".") and f.endswith(".tmp"))
    return marks


def kill_during_first_write(root: Path, stage: str, timeout: float = 240) -> dict:
    """Start `scv run --stage` and SIGKILL the runner and its kernel as soon as the stage writes."""
    env = {k: v for k, v in os.environ.items() if k != "SCV_ROOT"}
    log = root / f"killed_{stage}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "helpers.cli", "run", "--stage", stage],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    processed, store_path = root / "data" / "processed", root / "data" / "processed" / "scv.duckdb"
    before = _write_marks(processed, store_path)  # leftovers of earlier kills do not count
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < timeout:
            if _write_marks(processed, store_path) - before:
                break
            time.sleep(0.002)
        alive = proc.poll() is None
        tree = [psutil.Process(proc.pid)]
        try:
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        for p in tree:  # the runner first: it must not see its kernel die and tidy up
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    return {
        "stage": stage,
        "killed_while_running": alive,
        "after_seconds": round(time.monotonic() - start, 2),
        "log": log.read_text(errors="replace")[-2000:],
    }


def assert_nothing_half_written(root: Path) -> dict:
    """Every output under its final name is whole; no unfinished report version is visible."""
    processed = root / "data" / "processed"
    parquet = [p for p in processed.rglob("*.parquet") if not p.name.startswith(".")]
    for path in parquet:
        pq.read_table(path)  # raises on a truncated or half-written file
    for path in processed.rglob("*.json"):
        if not path.name.startswith("."):
            json.loads(path.read_text(encoding="utf-8"))
    for path in processed.rglob("*.csv"):
        if not path.name.startswith("."):
            pd.read_csv(path, dtype=str)
    tables = 0
    store_path = processed / "scv.duckdb"
    if store_path.exists():
        with duckdb.connect(str(store_path), read_only=True) as con:
            for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
                con.execute(f'SELECT * FROM "{table}"').fetchall()
                tables += 1
    reports = root / "reports"
    for period in (
        (p for p in reports.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}-\d{2}", p.name))
        if reports.exists()
        else []
    ):
        for run in period.iterdir():
            if re.fullmatch(r"v\d+", run.name):  # a visible, finished run
                assert json.loads((run / "manifest.json").read_text())["status"] == "ok", run
            else:
                assert re.fullmatch(r"\.v\d+\.partial|v\d+\.failed", run.name), (
                    f"unexpected report folder {run}"
                )
    latest = reports / "latest"
    if latest.is_symlink():
        assert json.loads((latest.resolve() / "manifest.json").read_text())["status"] == "ok"
    temporaries = [p for p in processed.rglob(".*.tmp")]
    return {"parquet": len(parquet), "tables": tables, "temporaries": len(temporaries)}


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_sigkill_in_the_middle_of_every_stage_then_rerun(sample_project, tmp_path_factory):
    root = project_copy(sample_project, tmp_path_factory.mktemp("crash_project"))
    kills = []
    for stage in pipeline.stage_names():
        kill = kill_during_first_write(root, stage)
        assert kill["killed_while_running"], f"{stage} finished before it could be killed:\n{kill['log']}"
        kill.update(assert_nothing_half_written(root))
        kills.append(kill)
        manifest = pipeline.run(stages=[stage], root=root, quiet=True)  # the re-run completes
        assert manifest["status"] == "ok"
        assert_nothing_half_written(root)
    periods = root / "reports" / "2026-10"
    assert not [p.name for p in periods.iterdir() if p.name.endswith(".partial")], "none is left hidden"
    interrupted = [
        p.name
        for p in periods.iterdir()
        if p.name.endswith(".failed")
        and json.loads((p / "manifest.json").read_text())["error"].startswith("interrupted")
    ]
    assert len(interrupted) == len(pipeline.STAGES), "the run after each kill marks the killed one failed"
    # the re-runs end exactly where an uninterrupted run ends
    expected = content_digests(reference_run(sample_project, tmp_path_factory))
    got = content_digests(root)
    assert set(got) == set(expected), set(got) ^ set(expected)
    differ = sorted(k for k in got if got[k] != expected[k])
    assert not differ, f"after the crashes and re-runs these differ from an uninterrupted run: {differ}"
    print("\ncrash points:", json.dumps([{k: v for k, v in k_.items() if k != "log"} for k_ in kills]))
