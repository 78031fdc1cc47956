"""The store: atomic files, period slices, and tables that survive an empty first period."""

import pandas as pd
import pytest

from helpers import store


def test_period_slices_are_replaced_not_duplicated(tmp_path):
    db = tmp_path / "scv.duckdb"
    store.save_table(db, "kpis", pd.DataFrame({"customers": [10]}), period="2026-09")
    store.save_table(db, "kpis", pd.DataFrame({"customers": [12]}), period="2026-10")
    store.save_table(db, "kpis", pd.DataFrame({"customers": [13]}), period="2026-10")  # a re-run
    got = store.load_table(db, "kpis").sort_values("period")
    assert got.to_dict("records") == [
        {"period": "2026-09", "customers": 10},
        {"period": "2026-10", "customers": 13},
    ]
    assert store.load_table(db, "kpis", period="2026-09")["customers"].tolist() == [10]
    assert store.load_table(db, "missing").empty


def test_a_table_created_from_an_empty_frame_takes_rows_later(tmp_path):
    db = tmp_path / "scv.duckdb"
    empty = pd.DataFrame({"source": pd.Series(dtype=object), "count": pd.Series(dtype="int64")})
    store.save_table(db, "issues", empty, period="2026-09")
    store.save_table(db, "issues", pd.DataFrame({"source": ["crm"], "count": [3]}), period="2026-10")
    assert store.load_table(db, "issues").to_dict("records") == [
        {"period": "2026-10", "source": "crm", "count": 3}
    ]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.parquet"
    store.write_parquet(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError), store.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash in the middle")
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_csv_exports_escape_formulas(tmp_path):
    frame = pd.DataFrame(
        {"name": ["=cmd|' /C calc'!A0", "+SUM(A1)", "@x", "Ana"], "amount": ["-12.5", "3", "4", "5"]}
    )
    path = store.write_csv(frame, tmp_path / "list.csv")
    text = path.read_text()
    assert "'=cmd" in text and "'+SUM" in text and "'@x" in text
    assert ",-12.5" in text  # a negative number is data, not a formula


def _store_held_by_another_process(tmp_path, seconds: float):
    """A store with one table, and a child process that holds it open for `seconds`."""
    import subprocess
    import sys

    db = tmp_path / "scv.duckdb"
    store.save_table(db, "t", pd.DataFrame({"a": [1]}))
    code = f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep({seconds})"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return db, holder


def test_a_store_held_by_another_process_is_waited_for(tmp_path):
    import time

    db, holder = _store_held_by_another_process(tmp_path, 1.5)
    t0 = time.perf_counter()
    store.save_table(db, "t", pd.DataFrame({"a": [2]}))  # waits for the other process to let go
    waited = time.perf_counter() - t0
    holder.wait()
    assert waited > 0.3 and store.load_table(db, "t")["a"].tolist() == [2]


def test_a_store_that_stays_locked_fails_with_duckdbs_error(tmp_path, monkeypatch):
    import duckdb

    db, holder = _store_held_by_another_process(tmp_path, 5)
    try:
        monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.3)
        with pytest.raises(duckdb.IOException, match="lock"):
            store.load_table(db, "t")
    finally:
        holder.kill()
        holder.wait()
