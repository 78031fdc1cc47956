"""Determinism: two runs on the same inputs and parameters write identical tables and customer ids.

The second run is made over the first one's store and processed data, as a scheduler or an analyst
re-running a month does: it must not learn from what the first run of the same period wrote (its
feedback, its ids' events). Two runs from nothing are compared by test_crash_safety.py (its re-runs
after the kills end where an uninterrupted run ends).

Every Parquet file and CSV export under data/processed/ and every store table is reduced to a content
digest (column names, dtypes and every value, in stored order); the two runs must agree on all of
them. Wall-clock timings (columns and stats keys named `seconds...`) and absolute paths are run
metadata, not results, and are left out.

The helpers here (`project_copy`, `reference_run`, `content_digests`) are shared with
test_crash_safety.py and test_privacy.py: the uninterrupted reference run is made once per process.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from helpers import pipeline

#: timings and memory measurements differ from run to run by nature
VOLATILE = re.compile(r"(^|_)seconds($|_)|(^|_)rss(_|$)")
_REFERENCE: dict[str, Path] = {}


def project_copy(sample_project: Path, dest: Path) -> Path:
    """A fresh project with the sample's inputs and parameters, and nothing processed yet."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("params", "notebooks"):
        shutil.copytree(sample_project / name, dest / name)
    shutil.copy2(sample_project / "pyproject.toml", dest / "pyproject.toml")
    for name in ("raw", "sample_truth"):
        shutil.copytree(sample_project / "data" / name, dest / "data" / name)
    return dest


def reference_run(sample_project: Path, tmp_path_factory) -> Path:
    """Every stage run once, uninterrupted, on a copy of the sample (made once per test process)."""
    key = str(sample_project)
    if key not in _REFERENCE:
        root = project_copy(sample_project, tmp_path_factory.mktemp("reference_run"))
        manifest = pipeline.run(root=root, quiet=True)
        assert manifest["status"] == "ok"
        _REFERENCE[key] = root
    return _REFERENCE[key]


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a table's column names, dtypes and values (row order included)."""
    frame = frame[[c for c in frame.columns if not VOLATILE.search(str(c))]].copy()
    for col in frame.columns:  # list/struct cells (Parquet lists, DuckDB lists) hash by their JSON text
        if (
            frame[col].dtype == object
            and frame[col].map(lambda v: isinstance(v, list | dict | np.ndarray)).any()
        ):
            frame[col] = frame[col].map(_json_cell)
    digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _json_cell(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, list | dict) else value


def _stable_json(data, root: str):
    if isinstance(data, dict):
        return {k: _stable_json(v, root) for k, v in data.items() if not VOLATILE.search(k)}
    if isinstance(data, list):
        return [_stable_json(v, root) for v in data]
    return data.replace(root, "<project>") if isinstance(data, str) else data


def content_digests(root: Path) -> dict[str, str]:
    """One digest per processed file (Parquet, CSV, stage stats) and per store table."""
    processed = Path(root) / "data" / "processed"
    out: dict[str, str] = {}
    for path in sorted(processed.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(processed).parts)
        if hidden or not path.is_file():  # a killed write's leftovers are not outputs
            continue
        key = str(path.relative_to(processed))
        if path.suffix == ".parquet":
            out[key] = frame_digest(pd.read_parquet(path))
        elif path.suffix == ".csv":
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix == ".json":
            stats = _stable_json(json.loads(path.read_text(encoding="utf-8")), str(root))
            out[key] = hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest()
    with duckdb.connect(str(processed / "scv.duckdb"), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
        ]
        for table in tables:
            out[f"store:{table}"] = frame_digest(con.execute(f'SELECT * FROM "{table}"').df())
    return out


def test_the_digest_sees_any_change_but_timings():
    frame = pd.DataFrame({"customer_id": ["C1", "C2"], "clv": [10.5, 3.25], "seconds": [0.1, 0.2]})
    same = frame.assign(seconds=[9.0, 9.0])
    assert frame_digest(frame) == frame_digest(same)
    assert frame_digest(frame) != frame_digest(frame.assign(clv=[10.5, 3.2500000001]))
    assert frame_digest(frame) != frame_digest(frame.iloc[::-1])  # row order is part of the result
    assert frame_digest(frame) != frame_digest(frame.astype({"clv": "float32"}))
    assert frame_digest(frame) != frame_digest(frame.rename(columns={"clv": "value"}))


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_two_consecutive_runs_give_identical_tables_and_customer_ids(sample_project, tmp_path_factory):
    first_root = reference_run(sample_project, tmp_path_factory)
    second_root = tmp_path_factory.mktemp("second_run") / "project"
    shutil.copytree(first_root, second_root, symlinks=True)  # the same store, files and reports
    assert pipeline.run(root=second_root, quiet=True)["run_id"] == "2026-10-v2"

    first, second = content_digests(first_root), content_digests(second_root)
    assert set(first) == set(second), set(first) ^ set(second)
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, f"{len(differ)} of {len(first)} tables differ between two identical runs: {differ}"
    # not vacuous: every stage's outputs are among the compared tables
    for expected in ("store:crosswalk", "store:customers", "store:customer_value", "store:customer_segments",
                     "store:campaign_results", "store:quality_scorecard", "store:ingest_accounting"):  # fmt: skip
        assert expected in first, expected
    assert sum(k.endswith(".parquet") for k in first) >= 30

    def crosswalk(root: Path) -> pd.DataFrame:
        with duckdb.connect(str(root / "data" / "processed" / "scv.duckdb"), read_only=True) as con:
            return con.execute("SELECT source, source_id, customer_id FROM crosswalk").df()

    ids_1, ids_2 = crosswalk(first_root), crosswalk(second_root)
    assert len(ids_1) > 100 and ids_1["customer_id"].nunique() > 100
    both = ids_1.merge(ids_2, on=["source", "source_id"], how="outer", suffixes=("_1", "_2"), indicator=True)
    assert (both["_merge"] == "both").all(), "the same source records are linked in both runs"
    moved = both[both["customer_id_1"] != both["customer_id_2"]]
    assert moved.empty, f"{len(moved)} source records got a different customer id:\n{moved.head()}"
