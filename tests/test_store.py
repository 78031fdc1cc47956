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


# ---------------------------------------------------------------------------------------------------
# Plain types: the second month (issue 14, item 0)
# ---------------------------------------------------------------------------------------------------


def _types(db, table: str) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0]: r[1] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}


def test_a_categorical_column_takes_a_new_value_next_period(tmp_path):
    """Unify hands over categoricals; the store used to make them ENUMs of the first period's values,
    and the next period's new customer id failed the save with a message listing every id."""
    db = tmp_path / "scv.duckdb"
    first = pd.DataFrame(
        {"customer_id": pd.Categorical(["C1", "C2"]), "field": pd.Categorical(["email"] * 2)}
    )
    store.save_table(db, "provenance", first, period="2026-09")
    second = pd.DataFrame(
        {"customer_id": pd.Categorical(["C1", "C3"]), "field": pd.Categorical(["phone"] * 2)}
    )
    store.save_table(db, "provenance", second, period="2026-10")  # raised ConversionException
    rerun = pd.DataFrame({"customer_id": pd.Categorical(["C4"]), "field": pd.Categorical(["iban"])})
    store.save_table(db, "provenance", rerun, period="2026-10")
    got = store.load_table(db, "provenance").sort_values(["period", "customer_id"])
    assert got.values.tolist() == [
        ["2026-09", "C1", "email"],
        ["2026-09", "C2", "email"],
        ["2026-10", "C4", "iban"],
    ]
    assert set(_types(db, "provenance").values()) == {"VARCHAR"}
    assert not isinstance(got["customer_id"].dtype, pd.CategoricalDtype)


def test_a_store_with_enum_columns_from_an_older_version_is_migrated(tmp_path):
    import duckdb

    db = tmp_path / "scv.duckdb"
    old = pd.DataFrame({"period": ["2026-09"], "source_a": pd.Categorical(["crm"]), "n": [1]})
    with duckdb.connect(str(db)) as con:  # as the old save_table made it
        con.register("old", old)
        con.execute("CREATE TABLE match_pairs AS SELECT * FROM old")
        con.execute("CREATE TABLE other AS SELECT * FROM old")
    assert _types(db, "match_pairs")["source_a"].startswith("ENUM(")
    new = pd.DataFrame({"source_a": ["erp"], "n": [2]})
    store.save_table(db, "match_pairs", new, period="2026-10")
    assert _types(db, "match_pairs")["source_a"] == "VARCHAR"
    assert sorted(store.load_table(db, "match_pairs")["source_a"]) == ["crm", "erp"]
    assert store.migrate(db) == {"other": ["source_a"]}
    assert _types(db, "other")["source_a"] == "VARCHAR"
    assert store.migrate(db) == {}


def test_decimals_are_not_truncated_into_an_integer_column(tmp_path):
    db = tmp_path / "scv.duckdb"
    store.save_table(db, "kpis", pd.DataFrame({"orders": [3]}), period="2026-09")
    store.save_table(db, "kpis", pd.DataFrame({"orders": [2.5]}), period="2026-10")
    got = store.load_table(db, "kpis").sort_values("period")
    assert got["orders"].tolist() == [3.0, 2.5]
    assert store.load_table(db, "kpis", period="2026-09")["orders"].tolist() == [3.0]


def test_plain_types_of_every_pandas_extension_type():
    frame = pd.DataFrame(
        {
            "text": pd.Categorical(["a", None]),
            "number": pd.Categorical([1, None]),
            "ratio": pd.Categorical([0.5, 1.5]),
            "month": pd.period_range("2026-09", periods=2, freq="M"),
            "bucket": pd.Categorical(pd.interval_range(0, 2)),
            "count": pd.array([1, None], dtype="Int64"),
            "flag": pd.array([True, None], dtype="boolean"),
            "empty": [None, None],
        }
    )
    out = store.plain_types(frame)
    assert out["text"].tolist()[0] == "a" and out["text"].isna().tolist() == [False, True]
    assert str(out["text"].dtype) == "string" and str(out["number"].dtype) == "Int64"
    assert out["ratio"].dtype == "float64" and out["month"].tolist() == ["2026-09", "2026-10"]
    assert out["bucket"].tolist() == ["(0, 1]", "(1, 2]"]
    assert str(out["empty"].dtype) == "string"
    assert not any(isinstance(t, pd.CategoricalDtype) for t in out.dtypes)
    assert isinstance(frame["text"].dtype, pd.CategoricalDtype), "the caller's frame is not changed"


def test_an_empty_month_neither_turns_numbers_into_text_nor_text_into_numbers(tmp_path):
    db = tmp_path / "scv.duckdb"
    nothing = pd.DataFrame({"cluster": pd.Series([None], dtype=object), "records": [None]})
    store.save_table(db, "clusters_split", nothing, period="2026-08")  # no split clusters: all null
    store.save_table(
        db, "clusters_split", pd.DataFrame({"cluster": ["C9"], "records": [12]}), period="2026-09"
    )
    assert _types(db, "clusters_split")["records"] == "BIGINT", "a null column took the numbers' type"
    store.save_table(db, "clusters_split", nothing, period="2026-10")  # an empty month again
    assert _types(db, "clusters_split") == {"period": "VARCHAR", "cluster": "VARCHAR", "records": "BIGINT"}
    got = store.load_table(db, "clusters_split", period="2026-09")
    assert got["records"].tolist() == [12] and got["cluster"].tolist() == ["C9"]
