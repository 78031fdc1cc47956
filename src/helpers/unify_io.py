"""Loading and saving what the unify stage needs around `helpers.unify.link` (kept apart: no I/O there).

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

from helpers import store, unify
from helpers.config import Settings
from helpers.errors import ConfigError

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


@dataclass
class PreviousState:
    period: str | None
    crosswalk: pd.DataFrame | None
    id_log: pd.DataFrame | None


def previous_state(store_path: Path, period: str) -> PreviousState:
    """The crosswalk of this period's last run if there is one (a re-run keeps its ids), else of the
    latest earlier period; and the id log of every period (ids are never reused)."""
    crosswalks = store.load_table(store_path, TABLES["crosswalk"])
    if crosswalks.empty:
        return PreviousState(None, None, None)
    periods = sorted(crosswalks["period"].unique())
    earlier = [p for p in periods if p <= period]
    chosen = earlier[-1] if earlier else periods[-1]
    crosswalk = crosswalks[crosswalks["period"] == chosen].drop(columns="period").reset_index(drop=True)
    id_log = store.load_table(store_path, TABLES["id_log"])
    id_log = id_log.drop(columns="period") if len(id_log) else None
    return PreviousState(chosen, crosswalk, id_log)


def load_decisions(path: Path) -> pd.DataFrame | None:
    """Analysts' decisions (CSV with DECISION_COLUMNS); None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    decisions = pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})
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
    for attr, table in TABLES.items():
        frame = getattr(result, attr)
        store.write_parquet(frame, base / f"{attr}.parquet")
        store.save_table(store_path, table, frame, period=period)
    store.write_csv(result.review, base / "review_queue.csv")
    stats = {k: v for k, v in result.stats.items() if isinstance(v, int | float | str | bool)}
    summary = {
        "rows_in": int(len(result.records)),
        "rows_out": int(len(result.customers)),
        "review": int(len(result.review)),
        **stats,
    }
    if accuracy:
        summary["accuracy"] = {k: round(float(v), 6) for k, v in accuracy.items()}
    store.save_table(
        store_path,
        "linkage_stats",
        pd.DataFrame([{k: v for k, v in summary.items() if not isinstance(v, dict)}]),
        period=period,
    )
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
