"""Loading and saving what the unify stage needs around `helpers.unify.link` (kept apart: no I/O there).

- `load_parties`: the staged party records of a period, text as Arrow strings;
- `previous_state`: the crosswalk and id log of the latest earlier run, so ids stay stable;
- `load_decisions`: analysts' must-link / cannot-link decisions from params/;
- `save_link_result`: every output to data/processed/<period>/unify/ and to the store;
- `accuracy`: linkage accuracy against the sample company's truth (the sample only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers import store, unify
from helpers.config import Settings, SourceSpec
from helpers.errors import ConfigError, SourceError

#: Store tables written by the unify stage (all keyed by period).
TABLES = {
    "customers": "customers",
    "crosswalk": "crosswalk",
    "pairs": "match_pairs",
    "provenance": "provenance",
    "id_log": "id_log",
    "review": "review_queue",
    "blocking": "blocking",
    "clusters_split": "clusters_split",
    "parameters": "match_parameters",
}
DECISION_COLUMNS = ["source_a", "source_id_a", "source_b", "source_id_b", "decision"]


def load_parties(processed: Path, period: str, specs: dict[str, SourceSpec]) -> pd.DataFrame:
    """The staged party records of every party source for `period`, concatenated, like
    `ingest.load_staged(..., "party")` but with text as Arrow strings: one buffer per column instead
    of a Python object per value (at 250k staged rows ~180 MB instead of ~420 MB).

    It switches this process's Arrow allocations to the system allocator: pyarrow's default pool
    (mimalloc/jemalloc) keeps the pages of freed buffers, and the unify stage, which is bounded by
    memory, peaked ~70 MB higher at 1M source records with it (the `link` steps return freed pages
    to the OS with malloc_trim). Each stage runs in its own kernel, so other stages keep the default.
    """
    pa.set_memory_pool(pa.system_memory_pool())
    base = Path(processed) / period / "staged"
    files = [
        base / f"{name}.parquet"
        for name, spec in specs.items()
        if spec.kind == "party" and (base / f"{name}.parquet").exists()
    ]
    if not files:
        raise SourceError(f"no staged party records in {base}; run the ingest stage for {period} first")
    arrow_text = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    frames = [pq.read_table(f).to_pandas(types_mapper=arrow_text.get) for f in files]
    parties = pd.concat(frames, ignore_index=True)
    del frames
    pa.default_memory_pool().release_unused()
    return parties


#: The high-water mark of issued customer ids, one row per period. It holds no id, so an erasure
#: (which deletes the erased customer's rows from every table) leaves it: the id is never reissued.
ID_COUNTER_TABLE = "id_counter"


@dataclass
class PreviousState:
    period: str | None
    crosswalk: pd.DataFrame | None
    id_log: pd.DataFrame | None
    next_id: int | None = None  # the number the next new id gets, at least
    #: ids other runs gave source records: an earlier run of this period, later periods (newest last)
    reserved: pd.DataFrame | None = None


def previous_state(store_path: Path, period: str) -> PreviousState:
    """What the unify stage of `period` builds on: the crosswalk of the latest earlier period (its ids
    are inherited, its links held by hysteresis, the id log's events are relative to it); the ids that
    an earlier run of this period or a later period gave (kept by records new since that earlier
    period, so a re-run gives the same ids and the same tables as the first run); the id log of every
    period and the high-water mark of issued ids (ids are never reused, not even an erased customer's).
    """
    counter = store.load_table(store_path, ID_COUNTER_TABLE)
    next_id = int(counter["next_id"].max()) if len(counter) else None
    crosswalks = store.load_table(store_path, TABLES["crosswalk"])
    if crosswalks.empty:
        return PreviousState(None, None, None, next_id)
    periods = sorted(crosswalks["period"].unique())
    earlier = [p for p in periods if p < period]
    chosen = earlier[-1] if earlier else None
    crosswalk = None
    if chosen is not None:
        crosswalk = crosswalks[crosswalks["period"] == chosen].drop(columns="period").reset_index(drop=True)
    others = [p for p in periods if p >= period]  # this period's earlier run first, then later ones
    reserved = None
    if others:
        rank = {p: i for i, p in enumerate(others)}
        reserved = (
            crosswalks[crosswalks["period"].isin(others)]
            .assign(_rank=lambda f: f["period"].map(rank))
            .sort_values("_rank", kind="stable")
            .drop_duplicates(["source", "source_id"])[["source", "source_id", "customer_id"]]
            .reset_index(drop=True)
        )
    id_log = store.load_table(store_path, TABLES["id_log"])
    id_log = id_log.drop(columns="period") if len(id_log) else None
    return PreviousState(chosen, crosswalk, id_log, next_id, reserved)


def load_decisions(path: Path) -> pd.DataFrame | None:
    """Analysts' decisions (CSV with DECISION_COLUMNS); None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    decisions = store.read_csv(path)  # rows copied from review_queue.csv keep "@handle", not "'@handle"
    missing = [c for c in DECISION_COLUMNS if c not in decisions]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {missing}; expected {DECISION_COLUMNS}")
    bad = decisions.loc[
        ~decisions["decision"].isin(["must-link", "cannot-link"]) & decisions["decision"].notna()
    ]
    if len(bad):
        row = int(bad.index[0]) + 2
        raise ConfigError(
            f"{path}: row {row}: decision {bad['decision'].iloc[0]!r}; expected must-link or cannot-link"
        )
    return decisions


def accuracy(result: unify.LinkResult, truth_file: Path) -> dict[str, float]:
    """Blocking recall, pairwise and B-cubed precision/recall/F1 against the sample's ground truth."""
    truth = pd.read_csv(truth_file, dtype=str)
    matched = result.candidates[result.candidates["match"]] if "match" in result.candidates else None
    clusters = result.records["customer_id"] if "customer_id" in result.records else None
    return unify.evaluate(
        result.records, truth, candidates=result.candidates, matches=matched, clusters=clusters
    )


def save_link_result(
    result: unify.LinkResult, settings: Settings, period: str, accuracy: dict[str, float] | None = None
) -> dict[str, Any]:
    """Write the unify outputs (Parquet per period + store tables) and return the stage stats."""
    base = settings.path("processed") / period / "unify"
    store_path = settings.path("store")
    tables = {table: getattr(result, attr) for attr, table in TABLES.items()}
    if "next_id" in result.stats:
        tables[ID_COUNTER_TABLE] = pd.DataFrame({"next_id": [int(result.stats["next_id"])]})
    stats = {k: v for k, v in result.stats.items() if isinstance(v, int | float | str | bool)}
    summary = {
        "rows_in": int(len(result.records)),
        "rows_out": int(len(result.customers)),
        "review": int(len(result.review)),
        **stats,
    }
    if accuracy:
        summary["accuracy"] = {k: round(float(v), 6) for k, v in accuracy.items()}
    tables["linkage_stats"] = pd.DataFrame([{k: v for k, v in summary.items() if not isinstance(v, dict)}])
    # the folder and the store tables each change in one step: a run killed here leaves the old ones
    with store.atomic_folder(base) as folder:
        for attr in TABLES:
            store.write_parquet(getattr(result, attr), folder / f"{attr}.parquet")
        store.write_csv(result.review, folder / "review_queue.csv")
        store.save_tables(store_path, tables, period=period)
    return summary


def pick_example(review: pd.DataFrame, pairs: pd.DataFrame) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """The most uncertain pair (closest to 50 %) to explain: from the review queue, else any pair."""
    frame = review if len(review) else pairs
    if not len(frame):
        return None
    row = frame.iloc[(frame["match_probability"] - 0.5).abs().argsort().iloc[0]]
    return (row["source_a"], row["source_id_a"]), (row["source_b"], row["source_id_b"])


def hard_cases(pairs: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The weakest accepted matches and the strongest rejected pairs."""
    cols = [
        c
        for c in [
            "source_a",
            "source_id_a",
            "source_b",
            "source_id_b",
            "match_weight",
            "match_probability",
            "match",
        ]
        if c in pairs
    ]
    accepted = pairs[pairs["match"]].nsmallest(n, "match_weight").assign(case="weakest match")
    rejected = pairs[~pairs["match"]].nlargest(n, "match_weight").assign(case="strongest non-match")
    return pd.concat([accepted, rejected], ignore_index=True)[["case", *cols]]
