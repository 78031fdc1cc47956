"""Unify stage: link the party records of every source into one golden record per real customer.

Pure functions (DataFrames and settings in, DataFrames out; no I/O), in run order:

``source_records`` collapse staged rows to one record per (source, source_id) ->
``prepare`` linkage keys -> ``candidate_pairs`` union of blocking passes -> ``compare`` comparison levels ->
``fit_model`` Fellegi-Sunter (u from random pairs, m from tax-id anchors + EM, no hand labels) ->
``score`` match weight/probability with per-field contributions -> ``cluster`` guarded against chaining ->
``assign_ids`` stable customer ids across runs -> ``golden_records`` survivorship with field provenance ->
``review_queue`` the uncertain band for analysts; ``explain`` any pair; ``evaluate`` against a truth.
``link`` runs them all and returns a `LinkResult`. The machinery lives in `helpers.linkage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from helpers import linkage
from helpers.linkage import FellegiSunter, PreparedRecords, prepare

__all__ = [
    "UnifySettings",
    "LinkResult",
    "source_records",
    "prepare",
    "candidate_pairs",
    "compare",
    "fit_model",
    "score",
    "cluster",
    "assign_ids",
    "golden_records",
    "explain",
    "explain_stored",
    "review_queue",
    "decisions_template",
    "evaluate",
    "link",
]

# --------------------------------------------------------------------------------------------------
# Settings (defaults = the `unify:` section of params/default.yaml)
# --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BlockingPass(_Strict):
    """One blocking pass: records agreeing on every key (exact) or sorted-neighbourhood on one key."""

    name: str
    keys: list[str]
    method: Literal["exact", "sorted_neighbourhood"] = "exact"
    window: int = Field(5, ge=2)  # sorted neighbourhood: see `unit`
    # sorted neighbourhood over "values" (as recordlinkage: records whose key values are within window // 2
    # distinct values pair up, equal values included) or over "records" (Hernandez-Stolfo: each record
    # pairs with the next window - 1 records in key order; linear in the number of records)
    unit: Literal["values", "records"] = "values"
    block_on: list[str] = Field(default_factory=list)  # sorted neighbourhood inside equal values of these
    max_block_size: int | None = Field(None, ge=2)  # override of UnifySettings.max_block_size

    @field_validator("keys", "block_on")
    @classmethod
    def _known_keys(cls, keys: list[str]) -> list[str]:
        known = set(linkage.KEY_GROUPS) | {"birth_date", "party"}
        bad = [k for k in keys if k not in known]
        if bad:
            raise ValueError(f"unknown blocking key(s) {bad}; known: {sorted(known)}")
        return keys


class ComparisonSettings(_Strict):
    """One comparison: on/off, similarity thresholds (highest first), tf adjustment, optional m prior."""

    enabled: bool = True
    thresholds: list[float] = Field(default_factory=list)
    tf_adjust: bool = False
    m_prior: dict[str, float] | None = None  # level label -> m; default: a generic prior
    skip_when: dict[str, list[str]] = Field(default_factory=dict)  # other comparison -> its levels that make
    # this one redundant (no weight): e.g. postcode when the address already agrees
    skip_levels: list[str] = Field(default_factory=list)  # only these levels are skipped (empty = all)

    @field_validator("thresholds")
    @classmethod
    def _descending(cls, t: list[float]) -> list[float]:
        if any(not 0 < x <= 1 for x in t) or t != sorted(t, reverse=True):
            raise ValueError(f"thresholds must be in (0, 1] and descending, got {t}")
        return t


class AnchorSettings(_Strict):
    """Pairs that agree on this comparison level start m (positives without hand labels)."""

    comparison: str = "tax_id"
    level: str = "exact"
    min_pairs: int = 50


class EMSettings(_Strict):
    max_iterations: int = 100
    tolerance: float = 1e-5
    initial_prior: float = Field(0.9, gt=0, lt=1)  # share of matches inside an anchor, to start
    prior_strength: float = Field(10.0, ge=0)  # pseudo-pairs pulling m towards its prior (smoothing)
    min_probability: float = 1e-5


class GuardSettings(_Strict):
    """Household/namesake guard: clear disagreement on a personal field needs a personal identifier."""

    enabled: bool = True
    penalty: float = 20.0  # bits subtracted from the match weight
    when_any: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "given_name": ["else", "gender_variant"],
            "birth_date": ["else"],
            "family_name_1": ["else"],
            "family_name_2": ["else"],
        }
    )
    unless_any: dict[str, list[str]] = Field(
        default_factory=lambda: {"tax_id": ["exact"], "email": ["exact"]}
    )


Rule = Literal["validity", "trust", "recency", "completeness", "frequency"]


class SurvivorshipSettings(_Strict):
    """How the golden record picks each field: rules in order, first difference decides."""

    default_rules: list[Rule] = Field(
        default_factory=lambda: ["validity", "trust", "recency", "completeness"]
    )
    field_rules: dict[str, list[Rule]] = Field(
        default_factory=lambda: {
            "email": ["validity", "recency", "trust"],
            "phone": ["validity", "recency", "trust"],
            "address": ["validity", "recency", "trust", "completeness"],
            "consent_email": ["recency", "trust"],
            "consent_sms": ["recency", "trust"],
            "consent_phone": ["recency", "trust"],
            "consent_mail": ["recency", "trust"],
            "name": ["validity", "trust", "frequency", "completeness"],
        }
    )
    groups: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "name": ["given_name", "family_names", "family_name_1", "family_name_2"],
            "address": ["address", "postcode", "city", "province", "country"],
        }
    )


def _default_blocking() -> list[BlockingPass]:
    rows: list[dict[str, Any]] = [
        {"name": "tax_id", "keys": ["tax_id"]},
        {"name": "email", "keys": ["email"]},
        {"name": "phone", "keys": ["phone"]},
        {"name": "iban", "keys": ["iban"]},
        {"name": "email_local_part", "keys": ["email_local"], "max_block_size": 20},
        {"name": "full_name", "keys": ["name_phonetic"], "max_block_size": 100},
        # two of the three name parts (a typo or a gap in the third still pairs), phonetic
        {"name": "given_surname_1", "keys": ["given_phonetic", "family_1_phonetic"], "max_block_size": 30},
        {"name": "given_surname_2", "keys": ["given_phonetic", "family_2_phonetic"], "max_block_size": 30},
        {"name": "surnames_initial", "keys": ["surnames_phonetic", "given_initial"], "max_block_size": 30},
        {"name": "name_postcode", "keys": ["given_phonetic", "family_1_phonetic", "postcode"]},
        {"name": "given_postcode", "keys": ["given_phonetic", "postcode"], "max_block_size": 20},
        {"name": "address_initial", "keys": ["address", "given_initial"]},
        {"name": "surname_birth_date", "keys": ["family_1_phonetic", "birth_date"]},
        {"name": "given_birth_date", "keys": ["given_phonetic", "birth_date"]},
        {"name": "company_name", "keys": ["org_name"]},
        {"name": "company_postcode", "keys": ["org_phonetic", "postcode"]},
        # typos anywhere in the name: neighbours in name order (each record with the next 2)
        {
            "name": "sorted_surnames_given",
            "keys": ["name_sort"],
            "method": "sorted_neighbourhood",
            "unit": "records",
            "window": 3,
        },
        {
            "name": "sorted_given_surnames",
            "keys": ["given_sort"],
            "method": "sorted_neighbourhood",
            "unit": "records",
            "window": 3,
        },
    ]
    return [BlockingPass(**r) for r in rows]


def _default_comparisons() -> dict[str, ComparisonSettings]:
    c = ComparisonSettings
    return {
        "given_name": c(thresholds=[0.92, 0.8], tf_adjust=True),
        "family_name_1": c(thresholds=[0.92, 0.8], tf_adjust=True),
        "family_name_2": c(thresholds=[0.92, 0.8], tf_adjust=True),
        "org_name": c(thresholds=[0.9, 0.75], tf_adjust=True),
        "tax_id": c(m_prior={"else": 0.02, "partial": 0.03, "exact": 0.95}),
        # no local-part similarity level, and the shared local part is ignored when the names agree: it
        # is made of the name, so namesakes share it on other domains
        "email": c(
            tf_adjust=True,
            skip_when={"given_name": ["exact", "nickname"], "family_name_1": ["exact"]},
            skip_levels=["same_local_part"],
        ),
        "phone": c(tf_adjust=True),
        "iban": c(),
        "birth_date": c(),
        "postcode": c(skip_when={"address": ["exact", "indel>=0.9"]}),
        "address": c(thresholds=[0.9, 0.75], tf_adjust=True),
        "city": c(enabled=False, thresholds=[0.9], skip_when={"postcode": ["exact"]}),
        "party_type": c(),
    }


class UnifySettings(_Strict):
    """Parameters of the unify stage (params/default.yaml, section `unify:`)."""

    blocking: list[BlockingPass] = Field(default_factory=_default_blocking)
    max_block_size: int = Field(200, ge=2)  # larger blocks are skipped and reported (shared/placeholder keys)
    link_within_source: bool = True  # also find duplicates inside one source
    comparisons: dict[str, ComparisonSettings] = Field(default_factory=_default_comparisons)
    tf_min_u: float = Field(1e-5, gt=0)  # floor of a value's frequency in tf-adjusted weights
    u_sample_pairs: int = Field(1_000_000, ge=1000)  # random pairs that estimate u
    anchors: list[AnchorSettings] = Field(
        default_factory=lambda: [
            AnchorSettings(comparison="tax_id", level="exact"),
            AnchorSettings(comparison="email", level="exact"),
        ]
    )
    em: EMSettings = EMSettings()
    guard: GuardSettings = GuardSettings()
    match_threshold: float = Field(0.7, gt=0, lt=1)  # match probability at or above which a pair links
    review_band: tuple[float, float] = (0.3, 0.95)  # probabilities sent to the review queue
    # hysteresis against the previous crosswalk: records that shared a customer stay linked down to the
    # low probability, records that had different customers merge only from the high one, and are
    # never chained into one customer through others while their own pair scores below the low one
    stability_band: tuple[float, float] = (0.3, 0.95)
    conflict_fields: list[str] = Field(default_factory=lambda: ["tax_id"])  # never two values in a cluster
    max_cluster_size: int = Field(50, ge=2)  # larger connected components are split and reported
    cannot_link_below: float | None = -10.0  # a candidate pair weighing less (bits) never ends in one cluster
    keep_pairs_min_probability: float = Field(0.001, ge=0, le=1)  # pairs below are only counted, not kept
    compare_chunk_size: int = Field(500_000, ge=1000)
    workers: int = Field(2, ge=1)  # threads for rapidfuzz
    seed: int = 42
    id_prefix: str = "C"
    id_digits: int = Field(7, ge=1)
    survivorship: SurvivorshipSettings = SurvivorshipSettings()

    @model_validator(mode="after")
    def _consistent(self) -> UnifySettings:
        for name in ("review_band", "stability_band"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{name} must be 0 <= low <= high <= 1, got {(lo, hi)}")
        known = set(linkage.COMPARISONS)
        unknown = set(self.comparisons) - known
        if unknown:
            raise ValueError(
                f"unknown comparison(s) {sorted(unknown)} in comparisons; known: {sorted(known)}"
            )
        referenced = (
            {a.comparison for a in self.anchors} | set(self.guard.when_any) | set(self.guard.unless_any)
        )
        referenced |= {other for conf in self.comparisons.values() for other in conf.skip_when}
        unknown = referenced - known
        if unknown:
            raise ValueError(f"anchors/guard/skip_when name unknown comparison(s) {sorted(unknown)}")
        lo, hi = self.stability_band
        if not lo <= self.match_threshold <= hi:
            raise ValueError(
                f"stability_band {self.stability_band} must contain match_threshold {self.match_threshold}"
            )
        return self


# --------------------------------------------------------------------------------------------------
# Source records
# --------------------------------------------------------------------------------------------------

KEY = ["source", "source_id"]


def source_records(parties: pd.DataFrame) -> pd.DataFrame:
    """Collapse staged party rows to one record per (source, source_id): the latest non-null value of
    each field by `updated_at` (rows of one account in one system, e.g. a web customer per order), the
    earliest `created_at`.

    Adds `n_rows` and `record_ids` ("|"-joined staged record ids, oldest first). Sorted by (source,
    source_id), which makes everything downstream deterministic. A row without source_id is its own
    record (source_id "row:<record_id>"). Text columns are stored as Arrow strings (compact at scale);
    values are moved by position, never through Python objects.
    """
    if "source_id" not in parties or "source" not in parties:
        raise ValueError("parties need the columns 'source' and 'source_id'")
    n = len(parties)
    source = parties["source"].astype("string[pyarrow]")
    source_id = parties["source_id"].astype("string[pyarrow]")
    if source_id.isna().any():
        fill = "row:" + (
            parties["record_id"].astype("string[pyarrow]")
            if "record_id" in parties
            else pd.Series(np.arange(n), index=parties.index).astype("string[pyarrow]")
        )
        source_id = source_id.fillna(fill)
    group = (
        pd.DataFrame({"s": source.to_numpy(), "i": source_id.to_numpy()})
        .groupby(["s", "i"], sort=True)
        .ngroup()
    )
    group = group.to_numpy(np.int64)
    n_groups = int(group.max()) + 1 if n else 0

    def ns(column: str) -> np.ndarray:  # timestamps as int64, NaT first
        if column not in parties:
            return np.zeros(n, dtype=np.int64)
        return pd.to_datetime(parties[column], errors="coerce").to_numpy("datetime64[ns]").astype(np.int64)

    tiebreak = parties["row_number"].to_numpy() if "row_number" in parties else np.arange(n)
    order = np.lexsort((tiebreak, ns("created_at"), ns("updated_at"), group))
    g_sorted = group[order]
    out: dict[str, Any] = {}
    for c in parties.columns:
        if c == "source":
            data = source
        elif c == "source_id":
            data = source_id
        else:
            data = parties[c]
        values = data.array if isinstance(data.dtype, pd.api.extensions.ExtensionDtype) else data.to_numpy()
        if c in ("source", "source_id"):
            take = order[np.r_[g_sorted[1:] != g_sorted[:-1], True]] if n else order
        else:
            valid = data.notna().to_numpy()[order]
            pos = np.flatnonzero(valid)
            g_valid = g_sorted[pos]
            take = np.full(n_groups, -1, dtype=np.int64)
            if c == "created_at":  # the earliest creation
                created = pd.to_datetime(parties[c], errors="coerce").to_numpy("datetime64[ns]")
                earliest = pd.Series(created[order][pos]).groupby(g_valid).min()
                out[c] = pd.Series(pd.NaT, index=range(n_groups), dtype="datetime64[ns]")
                out[c].iloc[earliest.index.to_numpy()] = earliest.to_numpy()
                continue
            lasts = np.r_[g_valid[1:] != g_valid[:-1], True] if len(pos) else np.zeros(0, bool)
            take[g_valid[lasts]] = order[pos[lasts]]
        out[c] = pd.api.extensions.take(values, take, allow_fill=True)
    records = pd.DataFrame(out)
    records["n_rows"] = np.bincount(group, minlength=n_groups)
    if "record_id" in parties:
        ids = parties["record_id"].astype("string[pyarrow]")
        single = records["n_rows"].to_numpy() == 1
        joined = pd.Series(pd.NA, index=records.index, dtype="string[pyarrow]")
        joined[single] = records.loc[single, "record_id"].astype("string[pyarrow]")
        multi_rows = order[~single[g_sorted]]
        if len(multi_rows):
            parts = pd.Series(ids.to_numpy()[multi_rows]).groupby(group[multi_rows], sort=True)
            joined[np.flatnonzero(~single)] = parts.agg(lambda x: "|".join(map(str, x))).to_numpy()
        records["record_ids"] = joined
    for c in records.columns:
        if records[c].dtype == object and pd.api.types.infer_dtype(records[c], skipna=True) in (
            "string",
            "empty",
        ):
            records[c] = records[c].astype("string[pyarrow]")
    records.index.name = "rid"
    return records


# --------------------------------------------------------------------------------------------------
# Blocking, comparison, scoring
# --------------------------------------------------------------------------------------------------


def _prepared(records: pd.DataFrame | PreparedRecords) -> PreparedRecords:
    return records if isinstance(records, PreparedRecords) else prepare(records)


def candidate_pairs(
    records: pd.DataFrame | PreparedRecords, settings: UnifySettings
) -> tuple[pd.MultiIndex, pd.DataFrame]:
    """Union of the blocking passes as a MultiIndex (rid_a < rid_b) and a count table per pass
    (pairs, pairs new to the union, cumulative, skipped oversized blocks)."""
    prep = _prepared(records)
    lo, hi, passes = linkage.block(prep, settings)
    return pd.MultiIndex.from_arrays([lo, hi], names=["rid_a", "rid_b"]), passes


def compare(
    records: pd.DataFrame | PreparedRecords, pairs: pd.MultiIndex, settings: UnifySettings
) -> pd.DataFrame:
    """Comparison level per pair and comparison (int8: -1 null, 0 disagree, higher = stronger level), plus
    `tf_<name>` (the frequency of the agreeing value) for tf-adjusted comparisons. Index = `pairs`."""
    prep = _prepared(records)
    comps = linkage.build_comparisons(prep, settings)
    lo = pairs.get_level_values(0).to_numpy()
    hi = pairs.get_level_values(1).to_numpy()
    out = linkage.compare_pairs(prep, lo, hi, comps, settings.compare_chunk_size, _skip_rules(settings))
    out.index = pairs
    return out


def _skip_rules(settings: UnifySettings) -> dict[str, tuple[dict[str, list[str]], list[str]]]:
    return {
        name: (conf.skip_when, conf.skip_levels)
        for name, conf in settings.comparisons.items()
        if conf.enabled and conf.skip_when
    }


def level_labels(records: PreparedRecords, settings: UnifySettings) -> dict[str, tuple[str, ...]]:
    """Level labels of each enabled comparison (index = level code)."""
    return {c.name: tuple(c.labels) for c in linkage.build_comparisons(records, settings)}


def fit_model(
    records: pd.DataFrame | PreparedRecords, features: pd.DataFrame, settings: UnifySettings
) -> FellegiSunter:
    """Fellegi-Sunter parameters without labels: u from random pairs, m from anchors then EM."""
    prep = _prepared(records)
    comps = linkage.build_comparisons(prep, settings)
    source = None if settings.link_within_source else prep.codes["source"].to_numpy()
    ra, rb = linkage.random_pairs(len(prep), settings.u_sample_pairs, settings.seed, source)
    random_features = linkage.compare_pairs(
        prep, ra, rb, comps, settings.compare_chunk_size, _skip_rules(settings)
    )
    del ra, rb
    labels = {c.name: tuple(c.labels) for c in comps}
    u = linkage.estimate_u(random_features, labels)
    del random_features  # freed before EM, which has its own working set
    tf_levels = {c.name: tuple(c.tf_levels) for c in comps if c.tf_adjust}
    return linkage.fit_fellegi_sunter(features, u, labels, settings, tf_levels, _n_pairs(prep, settings))


def _n_pairs(prep: PreparedRecords, settings: UnifySettings) -> float:
    """All record pairs the linkage considers (across sources only when within-source links are off)."""
    n = float(len(prep))
    total = n * (n - 1) / 2
    if not settings.link_within_source:
        sizes = prep.codes["source"].value_counts().to_numpy(np.float64)
        total -= float((sizes * (sizes - 1) / 2).sum())
    return total


def score(features: pd.DataFrame, model: FellegiSunter, settings: UnifySettings) -> pd.DataFrame:
    """Match weight (bits), probability, `match` (probability >= threshold) and `w_<comparison>` per pair."""
    scored = model.score(features)
    scored["match"] = scored["match_probability"].to_numpy() >= settings.match_threshold
    return scored


# --------------------------------------------------------------------------------------------------
# Decisions, clustering
# --------------------------------------------------------------------------------------------------

DECISIONS = ["source_a", "source_id_a", "source_b", "source_id_b", "decision"]


def _record_lookup(records: pd.DataFrame) -> pd.Series:
    return pd.Series(
        np.arange(len(records)),
        index=pd.MultiIndex.from_arrays([records["source"].astype(str), records["source_id"].astype(str)]),
    )


def decisions_as_pairs(records: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """Analysts' decisions as (rid_a, rid_b, decision) with rid_a < rid_b; unknown records are dropped."""
    if decisions is None or len(decisions) == 0:
        return pd.DataFrame(
            {
                "rid_a": pd.Series(dtype=np.int64),
                "rid_b": pd.Series(dtype=np.int64),
                "decision": pd.Series(dtype=object),
            }
        )
    missing = [c for c in DECISIONS if c not in decisions]
    if missing:
        raise ValueError(f"decisions need columns {DECISIONS}; missing {missing}")
    bad = set(decisions["decision"].dropna()) - {"must-link", "cannot-link"}
    if bad:
        raise ValueError(f"decision must be 'must-link' or 'cannot-link', got {sorted(bad)}")
    lookup = _record_lookup(records)
    d = decisions.dropna(subset=["decision"])
    ka = pd.MultiIndex.from_arrays([d["source_a"].astype(str), d["source_id_a"].astype(str)])
    kb = pd.MultiIndex.from_arrays([d["source_b"].astype(str), d["source_id_b"].astype(str)])
    a = lookup.reindex(ka).to_numpy()
    b = lookup.reindex(kb).to_numpy()
    ok = ~(np.isnan(a) | np.isnan(b)) & (a != b)
    a, b = a[ok].astype(np.int64), b[ok].astype(np.int64)
    out = pd.DataFrame(
        {"rid_a": np.minimum(a, b), "rid_b": np.maximum(a, b), "decision": d["decision"].to_numpy()[ok]}
    )
    return out.drop_duplicates(["rid_a", "rid_b"], keep="last").reset_index(drop=True)


def cluster(
    records: pd.DataFrame,
    scored: pd.DataFrame,
    settings: UnifySettings,
    decisions: pd.DataFrame | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Cluster matched pairs into customers, guarded against chaining.

    `scored` has rid_a, rid_b, match_weight, match for the candidate pairs. Must-link decisions join
    records, cannot-link decisions separate them, and so does any candidate pair weighing less than
    `cannot_link_below` (strong evidence of two people: a name-only record must not chain two namesakes).
    Connected components are kept when they hold at most one value of each `conflict_fields` (never two
    valid tax ids), no cannot-link pair and at most `max_cluster_size` records; other components are
    re-clustered greedily, strongest edges first, refusing any merge that would break those rules.
    Returns (cluster label per rid = smallest rid in it, report of re-clustered components and why).
    """
    n = len(records)
    dec = decisions_as_pairs(records, decisions)
    edges = scored.loc[scored["match"].to_numpy(), ["rid_a", "rid_b", "match_weight"]]
    cannot = dec[dec["decision"] == "cannot-link"]
    must = dec[dec["decision"] == "must-link"]
    if len(cannot):
        drop = pd.MultiIndex.from_frame(edges[["rid_a", "rid_b"]]).isin(
            pd.MultiIndex.from_frame(cannot[["rid_a", "rid_b"]])
        )
        edges = edges[~drop]
    if len(must):
        must_edges = pd.DataFrame(
            {"rid_a": must["rid_a"].to_numpy(), "rid_b": must["rid_b"].to_numpy(), "match_weight": np.inf}
        )
        edges = pd.concat([must_edges, edges], ignore_index=True)
    a = edges["rid_a"].to_numpy(np.int64)
    b = edges["rid_b"].to_numpy(np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)

    conflicts = {}
    for f in settings.conflict_fields:
        if f in records:
            codes, _ = pd.factorize(records[f].astype("string").to_numpy(dtype=object, na_value=None))
            conflicts[f] = codes
    comp_s = pd.Series(comp)
    size = comp_s.map(comp_s.value_counts()).to_numpy()
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, list[str]] = {}
    for f, codes in conflicts.items():
        has = codes >= 0
        nuniq = pd.Series(codes[has]).groupby(comp[has]).nunique()
        for c in nuniq[nuniq > 1].index:
            reasons.setdefault(int(c), []).append(f"{nuniq[c]} distinct {f}")
    for c in np.unique(comp[size > settings.max_cluster_size]):
        reasons.setdefault(int(c), []).append(f"larger than {settings.max_cluster_size}")
    if len(cannot):
        ca, cb = cannot["rid_a"].to_numpy(), cannot["rid_b"].to_numpy()
        for c in np.unique(comp[ca][comp[ca] == comp[cb]]):
            reasons.setdefault(int(c), []).append("cannot-link decision")
    if settings.cannot_link_below is not None and len(scored):
        sa, sb = scored["rid_a"].to_numpy(np.int64), scored["rid_b"].to_numpy(np.int64)
        strong = (scored["match_weight"].to_numpy() < settings.cannot_link_below) & (comp[sa] == comp[sb])
        if strong.any():
            implied = pd.DataFrame({"rid_a": sa[strong], "rid_b": sb[strong], "decision": "cannot-link"})
            for c in np.unique(comp[sa[strong]]):
                reasons.setdefault(int(c), []).append(
                    f"a member pair below {settings.cannot_link_below:g} bits"
                )
            cannot = pd.concat([cannot, implied], ignore_index=True)
    labels = comp.astype(np.int64)
    report_rows = []
    if reasons:
        bad = np.isin(comp, list(reasons))
        parent = np.arange(n)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        members = {int(r): {int(r)} for r in np.flatnonzero(bad)}
        values = {
            f: {int(r): ({int(codes[r])} if codes[r] >= 0 else set()) for r in np.flatnonzero(bad)}
            for f, codes in conflicts.items()
        }
        cannot_of: dict[int, set[int]] = {}
        for x, y in zip(cannot["rid_a"], cannot["rid_b"], strict=True):
            cannot_of.setdefault(int(x), set()).add(int(y))
            cannot_of.setdefault(int(y), set()).add(int(x))
        sel = bad[a]
        order = np.lexsort((b[sel], a[sel], -edges["match_weight"].to_numpy()[sel]))
        for x, y, w in zip(
            a[sel][order], b[sel][order], edges["match_weight"].to_numpy()[sel][order], strict=True
        ):
            rx, ry = find(int(x)), find(int(y))
            if rx == ry:
                continue
            forced = np.isinf(w)
            if not forced:
                clash = len(members[rx]) + len(members[ry]) > settings.max_cluster_size
                clash = clash or any(len(values[f][rx] | values[f][ry]) > 1 for f in conflicts)
                clash = clash or any(cannot_of.get(m, set()) & members[ry] for m in members[rx])
                if clash:
                    continue
            keep, gone = (rx, ry) if len(members[rx]) >= len(members[ry]) else (ry, rx)
            parent[gone] = keep
            members[keep] |= members.pop(gone)
            for f in conflicts:
                values[f][keep] |= values[f].pop(gone)
        for r in np.flatnonzero(bad):
            labels[r] = n + find(int(r))  # distinct from untouched component numbers
        for c, why in sorted(reasons.items()):
            in_c = np.flatnonzero(comp == c)
            report_rows.append(
                {
                    "component_rid": int(in_c.min()),
                    "records": len(in_c),
                    "clusters_after": len(np.unique(labels[in_c])),
                    "reason": "; ".join(why),
                }
            )
    out = pd.Series(np.arange(n), dtype=np.int64).groupby(labels).transform("min")
    out.index.name = "rid"
    out.name = "cluster"
    report = pd.DataFrame(report_rows, columns=["component_rid", "records", "clusters_after", "reason"])
    return out, report


# --------------------------------------------------------------------------------------------------
# Stable customer ids
# --------------------------------------------------------------------------------------------------

ID_LOG = ["event", "old_ids", "new_id", "n_records", "detail"]


def _id_number(ids: pd.Series, prefix: str) -> pd.Series:
    return pd.to_numeric(ids.astype(str).str.removeprefix(prefix), errors="coerce")


def first_free_number(
    crosswalk: pd.DataFrame | None,
    id_log: pd.DataFrame | None,
    *,
    next_id: int | None = None,
    prefix: str = "C",
) -> int:
    """The number the next new customer id gets: after every id in the crosswalk and the id log, and
    at least `next_id`, the stored high-water mark (an erasure deletes the erased person's rows from
    both tables, and their id must not be issued again)."""
    issued = [0]
    if crosswalk is not None and len(crosswalk):
        nums = _id_number(crosswalk["customer_id"], prefix).dropna()
        if len(nums):
            issued.append(int(nums.max()))
    if id_log is not None and len(id_log):
        for c in ("new_id", "old_ids"):
            if c in id_log:
                ids = id_log[c].dropna().astype(str).str.split("|").explode()
                nums = _id_number(ids, prefix).dropna()
                if len(nums):
                    issued.append(int(nums.max()))
    return max(max(issued) + 1, next_id or 0)


def assign_ids(
    records: pd.DataFrame,
    clusters: pd.Series,
    previous_crosswalk: pd.DataFrame | None = None,
    *,
    previous_id_log: pd.DataFrame | None = None,
    next_id: int | None = None,
    prefix: str = "C",
    digits: int = 7,
    reserved: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each cluster a customer id that is stable across runs, and log what changed.

    A cluster inherits the earlier id it shares most source records with (each earlier id goes to at
    most one cluster; ties go to the smaller id, then to the cluster with the smaller first record).
    Clusters without an inherited id get fresh ids, numbered after every id ever issued (the previous
    crosswalk and id log), in order of their first (source, source_id): the same input gives the same
    ids. Events: `new`, `merge` (a cluster held records of several earlier ids), `split` (an earlier id's
    records went to several clusters), `retire` (an earlier id no cluster kept).

    `reserved` (source, source_id, customer_id) holds ids that other runs gave these records (an earlier
    run of this period, a later period): a cluster new to the previous crosswalk takes the reserved id
    it shares most records with before a fresh number is issued, so that re-running a period gives the
    same ids (and id log) as its first run, and a re-run of an older month never renumbers people a
    later month already knows.
    """
    members = pd.DataFrame(
        {
            "source": records["source"].astype("string[pyarrow]").array,
            "source_id": records["source_id"].astype("string[pyarrow]").array,
            "cluster": clusters.to_numpy(),
        }
    )
    members["first"] = (
        pd.Series(np.arange(len(members))).groupby(members["cluster"].to_numpy()).transform("min")
    )
    first_of = members.groupby("cluster")["first"].first()
    counter = first_free_number(previous_crosswalk, previous_id_log, next_id=next_id, prefix=prefix)

    def overlap_with(earlier: pd.DataFrame, among: pd.DataFrame) -> pd.DataFrame:
        ids = earlier[["source", "source_id", "customer_id"]].astype("string[pyarrow]")
        joined = among.merge(ids, on=KEY, how="inner")
        out = joined.groupby(["cluster", "customer_id"]).size().rename("n").reset_index()
        out["num"] = _id_number(out["customer_id"], prefix).fillna(np.inf)
        out["first"] = out["cluster"].map(first_of)
        return out

    def mutual_best(overlap: pd.DataFrame) -> dict[int, str]:
        """Each cluster gets the id it shares most records with, each id goes to one cluster."""
        chosen: dict[int, str] = {}
        todo = overlap.copy()
        while len(todo):
            todo = todo.sort_values(["n", "num", "first"], ascending=[False, True, True], kind="stable")
            best_for_cluster = todo.drop_duplicates("cluster")
            best_for_id = todo.drop_duplicates("customer_id")
            mutual = best_for_cluster.merge(
                best_for_id[["cluster", "customer_id"]], on=["cluster", "customer_id"]
            )
            chosen.update(zip(mutual["cluster"].astype(int), mutual["customer_id"], strict=True))
            todo = todo[
                ~todo["cluster"].isin(mutual["cluster"]) & ~todo["customer_id"].isin(mutual["customer_id"])
            ]
        return chosen

    assigned: dict[int, str] = {}
    overlap = pd.DataFrame(columns=["cluster", "customer_id", "n"])
    if previous_crosswalk is not None and len(previous_crosswalk):
        overlap = overlap_with(previous_crosswalk, members)
        assigned = mutual_best(overlap)

    fresh = first_of[~first_of.index.isin(list(assigned))].sort_values(kind="stable")
    kept: dict[int, str] = {}
    if reserved is not None and len(reserved) and len(fresh):
        known = overlap_with(reserved, members[members["cluster"].isin(fresh.index)])
        known = known[~known["customer_id"].isin(set(assigned.values()))]
        kept = mutual_best(known)
        numbers = _id_number(reserved["customer_id"].astype(str), prefix).dropna()
        if len(numbers):
            counter = max(counter, int(numbers.max()) + 1)
    numbered = [c for c in fresh.index if int(c) not in kept]
    new_ids = {int(c): f"{prefix}{counter + i:0{digits}d}" for i, c in enumerate(numbered)}
    new_ids.update(kept)
    cluster_id = {**assigned, **new_ids}
    members["customer_id"] = pd.array(members["cluster"].map(cluster_id).to_numpy(), dtype="string[pyarrow]")
    crosswalk = members[["source", "source_id", "customer_id"]].copy()

    log = []
    sizes = members.groupby("cluster").size()
    if len(overlap):
        per_cluster = overlap.groupby("cluster")["customer_id"].agg(lambda s: sorted(s))
        per_id = overlap.groupby("customer_id")["cluster"].agg(list)
    else:
        per_cluster, per_id = pd.Series(dtype=object), pd.Series(dtype=object)
    for c in fresh.index:
        if c not in per_cluster.index:
            log.append(("new", "", new_ids[int(c)], int(sizes[c]), "no earlier records"))
    for c, olds in per_cluster.items():
        if len(olds) > 1:
            log.append(
                (
                    "merge",
                    "|".join(olds),
                    cluster_id[int(c)],
                    int(sizes[c]),
                    f"records of {len(olds)} earlier customers now one",
                )
            )
    for old, cls in per_id.items():
        if len(cls) > 1:
            for c in sorted(cls, key=lambda c: first_of[c]):
                if cluster_id[int(c)] != old:
                    log.append(("split", old, cluster_id[int(c)], int(sizes[c]), f"part of {old} split off"))
    if previous_crosswalk is not None and len(previous_crosswalk):
        kept = set(cluster_id.values())
        for old in sorted(set(previous_crosswalk["customer_id"].astype(str)) - kept):
            detail = "merged into another customer" if old in per_id.index else "no source records left"
            log.append(("retire", old, "", 0, detail))
    id_log = pd.DataFrame(log, columns=ID_LOG)
    return crosswalk, id_log


# --------------------------------------------------------------------------------------------------
# Golden records with provenance
# --------------------------------------------------------------------------------------------------

GOLDEN_FIELDS = [
    "party_type",
    "given_name",
    "family_names",
    "family_name_1",
    "family_name_2",
    "full_name",
    "tax_id",
    "email",
    "phone",
    "birth_date",
    "address",
    "billing_address",
    "postcode",
    "city",
    "province",
    "country",
    "iban",
    "currency",
    "payment_method",
    "handle",
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_mail",
]
_VALID = {
    "tax_id": r"^(\d{8}[A-Z]|[XYZ]\d{7}[A-Z]|[ABCDEFGHJNPQRSUVW]\d{7}[0-9A-J])$",
    "email": r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
    "phone": r"^\+\d{7,15}$",
    "postcode": r"^\d{5}$",
    "iban": r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$",
}


def _validity(values: pd.Series, field_name: str) -> np.ndarray:
    """0 = valid, 1 = present but failing the field's format check."""
    if field_name in _VALID:
        ok = values.astype("string[pyarrow]").str.match(_VALID[field_name]).fillna(False).to_numpy(bool)
        return np.where(ok, 0, 1)
    if field_name == "birth_date":
        d = pd.to_datetime(values, errors="coerce")
        ok = (d.dt.year >= 1900) & (d <= pd.Timestamp.now())
        return np.where(ok.fillna(False).to_numpy(bool), 0, 1)
    return np.zeros(len(values), dtype=int)


def golden_records(
    records: pd.DataFrame, crosswalk: pd.DataFrame, trust_ranks: dict[str, int], settings: UnifySettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One golden record per customer and the provenance of every field.

    Each field (or field group taken together from one record, e.g. the address) comes from the best
    record that has a value, ranked by the rules of `settings.survivorship` (validity, source trust rank,
    recency, completeness, frequency; ties by source, source_id). Provenance names the winning source
    record, the rule that decided against the best record holding a *different* value ("agreement"
    when all candidates agree, "only_value" when one record has it) and a short explanation.
    """
    surv = settings.survivorship
    rec = records.copy(deep=False)  # positions only: a new index, the columns shared (not copied)
    rec.index = pd.RangeIndex(len(rec))
    n = len(rec)
    cust, cust_ids = pd.factorize(crosswalk["customer_id"].to_numpy(), sort=True)
    cust = cust.astype(np.int64)
    source = rec["source"].astype(str).to_numpy()
    src_code, src_names = pd.factorize(source)
    worst = max(trust_ranks.values(), default=0) + 1
    trust = pd.Series(source).map(trust_ranks).fillna(worst).astype(np.int64).to_numpy()
    when = (
        pd.to_datetime(rec["updated_at"], errors="coerce")
        if "updated_at" in rec
        else pd.Series(pd.NaT, index=rec.index)
    )
    if "created_at" in rec:
        when = when.fillna(pd.to_datetime(rec["created_at"], errors="coerce"))
    when_ns = when.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    recency = np.where(when.isna().to_numpy(), np.iinfo(np.int64).max, -when_ns)
    present = [f for f in GOLDEN_FIELDS if f in rec]
    notna = {f: rec[f].notna().to_numpy() for f in present}
    filled = np.sum([notna[f] for f in present], axis=0) if present else np.zeros(n, dtype=int)

    units: list[tuple[str, list[str]]] = []
    grouped: set[str] = set()
    for gname, fields in surv.groups.items():
        fields = [f for f in fields if f in rec]
        if fields:
            units.append((gname, fields))
            grouped.update(fields)
    units += [(f, [f]) for f in present if f not in grouped]

    columns: dict[str, Any] = {"customer_id": cust_ids}
    field_names = [f for _, fields in units for f in fields]
    prov: dict[str, list] = {"cust": [], "field": [], "row": [], "rule": [], "why": []}
    for unit, fields in units:
        rules = surv.field_rules.get(unit, surv.default_rules)
        primary = fields[0]
        has = np.any([notna[f] for f in fields], axis=0)
        idx = np.flatnonzero(has)
        value = np.zeros(len(idx), dtype=np.int64)  # one code per distinct combination of the unit's values
        for f in fields:
            codes, uniq = pd.factorize(rec[f].to_numpy()[idx] if rec[f].dtype == object else rec[f].iloc[idx])
            value = value * (len(uniq) + 1) + (codes + 1)
            value = pd.factorize(value)[0].astype(np.int64)
        c = cust[idx]
        keys = {}
        if len(fields) > 1:  # a group's record without its main field (a postcode but no street) loses first
            rules = ["_main", *rules]
            keys["_main"] = np.where(notna[primary][idx], 0, 1)
        for r in rules:
            if r == "validity":
                keys[r] = np.where(notna[primary][idx], _validity(rec[primary].iloc[idx], primary), 0)
            elif r == "trust":
                keys[r] = trust[idx]
            elif r == "recency":
                keys[r] = recency[idx]
            elif r == "completeness":
                keys[r] = -(np.sum([notna[f][idx] for f in fields], axis=0) * 1000 + filled[idx])
            elif r == "frequency":
                pair = pd.factorize(c * (int(value.max(initial=0)) + 1) + value)[0]
                keys[r] = -np.bincount(pair)[pair]
        order = np.lexsort([idx] + [keys[r] for r in reversed(rules)] + [c])
        cs, vs = c[order], value[order]
        first = np.r_[True, cs[1:] != cs[:-1]] if len(cs) else np.zeros(0, dtype=bool)
        group = np.cumsum(first) - 1
        win_pos = np.flatnonzero(first)
        n_cand = np.bincount(group, minlength=len(win_pos))
        differs = vs != vs[win_pos][group]
        runner_pos = np.full(len(win_pos), -1, dtype=np.int64)
        g_diff, first_diff = np.unique(group[differs], return_index=True)
        runner_pos[g_diff] = np.flatnonzero(differs)[first_diff]
        has_runner = runner_pos >= 0
        rule = np.where(n_cand == 1, "only_value", "agreement").astype(object)
        rule[has_runner] = "tie_break"
        decided = np.zeros(len(win_pos), dtype=bool)
        for r in rules:
            kw = keys[r][order][win_pos]
            kr = np.where(has_runner, keys[r][order][np.maximum(runner_pos, 0)], kw)
            hit = has_runner & ~decided & (kw != kr)
            rule[hit] = "completeness" if r == "_main" else r
            decided |= hit
        win_rows = idx[order][win_pos]
        run_rows = np.where(has_runner, idx[order][np.maximum(runner_pos, 0)], -1)
        customers_of = cs[win_pos]
        why = _why(
            rule,
            src_code[win_rows],
            np.where(run_rows >= 0, src_code[np.maximum(run_rows, 0)], -1),
            trust[win_rows],
            np.where(run_rows >= 0, trust[np.maximum(run_rows, 0)], 0),
            n_cand,
            np.asarray(src_names),
            primary,
        )
        take = np.full(len(cust_ids), -1, dtype=np.int64)
        take[customers_of] = win_rows
        rule_code = pd.Categorical(rule, categories=RULES).codes
        for f in fields:
            col = rec[f]
            data = col.array if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()
            columns[f] = pd.api.extensions.take(data, take, allow_fill=True)
            ok = notna[f][win_rows]
            prov["cust"].append(customers_of[ok])
            prov["field"].append(np.full(int(ok.sum()), field_names.index(f), dtype=np.int16))
            prov["row"].append(win_rows[ok])
            prov["rule"].append(rule_code[ok])
            prov["why"].append(why[ok])
    customers = pd.DataFrame(columns)
    if "created_at" in rec:
        customers["created_at"] = (
            pd.Series(rec["created_at"].to_numpy())
            .groupby(cust)
            .min()
            .reindex(range(len(cust_ids)))
            .to_numpy()
        )
    if "updated_at" in rec:
        customers["updated_at"] = (
            pd.Series(rec["updated_at"].to_numpy())
            .groupby(cust)
            .max()
            .reindex(range(len(cust_ids)))
            .to_numpy()
        )
    customers["n_records"] = np.bincount(cust, minlength=len(cust_ids))
    customers["sources"] = pd.array(_source_lists(cust, src_code, src_names), dtype="string[pyarrow]")
    provenance = _provenance(
        rec,
        prov,
        field_names,
        cust_ids,
        source_ids=rec["source_id"],
        src_code=src_code,
        src_names=np.asarray(src_names, dtype=object),
    )
    return customers, provenance


def _source_lists(cust: np.ndarray, src_code: np.ndarray, src_names) -> np.ndarray:
    """Each customer's sources as a sorted comma list: customers coded by their combination of sources
    (one pass per source), and one string built per combination, not per customer."""
    n_customers = int(cust.max()) + 1 if len(cust) else 0
    order = np.argsort(np.asarray(src_names, dtype=str), kind="stable")
    combination = np.zeros(n_customers, dtype=np.int64)
    hits = []
    for code in order:
        hit = np.zeros(n_customers, dtype=bool)
        hit[cust[src_code == code]] = True
        hits.append(hit)
        combination = pd.factorize(combination * 2 + hit)[0].astype(np.int64)
    combos, example = np.unique(combination, return_index=True)
    names = [str(src_names[code]) for code in order]
    text = np.array(
        [",".join(name for name, hit in zip(names, hits, strict=True) if hit[c]) for c in example],
        dtype=object,
    )
    return text[np.searchsorted(combos, combination)]


RULES = ["validity", "trust", "recency", "completeness", "frequency", "only_value", "agreement", "tie_break"]


def _provenance(
    rec: pd.DataFrame,
    prov: dict[str, list],
    field_names: list[str],
    cust_ids: np.ndarray,
    *,
    source_ids: pd.Series,
    src_code: np.ndarray,
    src_names: np.ndarray,
) -> pd.DataFrame:
    """The provenance table from integer parts: sorted by customer and field, text as Arrow strings and
    categoricals (millions of rows at scale stay small)."""
    columns = ["customer_id", "field", "value", "source", "source_id", "rule", "why"]
    if not prov["cust"] or not sum(len(c) for c in prov["cust"]):
        return pd.DataFrame({c: pd.Series(dtype="string[pyarrow]") for c in columns})
    cust = np.concatenate(prov["cust"])
    fld = np.concatenate(prov["field"])
    row = np.concatenate(prov["row"])
    rule = np.concatenate(prov["rule"])
    why = pd.api.types.union_categoricals(prov["why"])
    order = np.lexsort((fld, cust))
    cust, fld, row, rule = cust[order], fld[order], row[order], rule[order]
    why = why.take(order)
    positions, texts = [], []
    for k, f in enumerate(field_names):  # one text conversion per field, taken where the field won
        sel = np.flatnonzero(fld == k)
        if len(sel):
            positions.append(sel)
            texts.append(_as_text(rec[f].iloc[row[sel]]))
    where = np.empty(len(row), dtype=np.int64)
    where[np.concatenate(positions)] = np.arange(len(row))
    value = pd.concat([pd.Series(t) for t in texts], ignore_index=True).array.take(where)
    return pd.DataFrame(
        {
            "customer_id": pd.Categorical.from_codes(cust, categories=pd.Index(cust_ids, dtype=object)),
            "field": pd.Categorical.from_codes(fld, categories=field_names),
            "value": value,
            "source": pd.Categorical.from_codes(src_code[row], categories=src_names),
            "source_id": source_ids.astype("string[pyarrow]").array.take(row),
            "rule": pd.Categorical.from_codes(rule, categories=RULES),
            "why": why,
        }
    )


def _as_text(values: pd.Series) -> pd.arrays.ArrowStringArray:
    """Values as text for the provenance table (dates as YYYY-MM-DD)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        d = pd.to_datetime(values)
        text = np.where(d.dt.normalize() == d, d.dt.strftime("%Y-%m-%d"), d.dt.strftime("%Y-%m-%d %H:%M:%S"))
        return pd.array(text, dtype="string[pyarrow]")
    return values.astype("string[pyarrow]").array


def _why(
    rule: np.ndarray,
    src_w: np.ndarray,
    src_r: np.ndarray,
    trust_w: np.ndarray,
    trust_r: np.ndarray,
    n_cand: np.ndarray,
    names: np.ndarray,
    primary: str,
) -> pd.Categorical:
    """A short explanation per winning value, formatted once per distinct (rule, sources, ranks, count)."""
    if len(rule) == 0:
        return pd.Categorical([])
    parts = [rule, src_w, src_r, trust_w, trust_r, np.where(rule == "agreement", n_cand, 0)]
    key = np.zeros(len(rule), dtype=np.int64)
    for part in parts:  # one integer per combination, from small codes (no tuples at scale)
        codes_p, uniq_p = pd.factorize(part)
        key = key * (len(uniq_p) + 1) + codes_p
    _, first_rows, codes = np.unique(key, return_index=True, return_inverse=True)
    uniq = list(zip(*(np.asarray(p)[first_rows] for p in parts), strict=True))
    texts = []
    for rl, w, r, tw, tr, k in uniq:
        win, lose = str(names[w]), (str(names[r]) if r >= 0 else "")
        texts.append(
            {
                "only_value": f"only {win} has a value",
                "agreement": f"all {k} records agree",
                "trust": f"{win} (trust rank {tw}) over {lose} (rank {tr})",
                "recency": f"more recent in {win} than in {lose}",
                "validity": f"valid {primary} from {win} over an invalid one from {lose}",
                "completeness": f"more complete record in {win} than in {lose}",
                "frequency": f"more records carry the value of {win} than that of {lose}",
                "tie_break": f"tie on every rule; first by source and id: {win}",
            }[rl]
        )
    return pd.Categorical(np.asarray(texts, dtype=object)[codes])


# --------------------------------------------------------------------------------------------------
# Explanations and review
# --------------------------------------------------------------------------------------------------

SHOWN = {  # comparison -> record fields to show side by side
    "given_name": ["given_name"],
    "family_name_1": ["family_name_1"],
    "family_name_2": ["family_name_2"],
    "org_name": ["full_name"],
    "tax_id": ["tax_id"],
    "email": ["email"],
    "phone": ["phone"],
    "iban": ["iban"],
    "birth_date": ["birth_date"],
    "postcode": ["postcode"],
    "address": ["address"],
    "city": ["city"],
    "province": ["province"],
    "party_type": ["party_type"],
}
REVIEW_FIELDS = [
    "party_type",
    "given_name",
    "family_names",
    "full_name",
    "tax_id",
    "email",
    "phone",
    "birth_date",
    "address",
    "postcode",
    "city",
    "iban",
]


def explain(result: LinkResult, a: tuple[str, str], b: tuple[str, str]) -> pd.DataFrame:
    """Per-field agreement and weight contribution for any two source records (a waterfall table).

    Rows: the prior, then each comparison (values of both records, level, m, u, weight in bits,
    cumulative weight), the household guard, and the total with its match probability.
    """
    lookup = _record_lookup(result.records)
    ra, rb = int(lookup[a]), int(lookup[b])
    lo, hi = min(ra, rb), max(ra, rb)
    comps = linkage.build_comparisons(result.prepared, result.settings)
    feats = linkage.compare_pairs(
        result.prepared, np.array([lo]), np.array([hi]), comps, 10, _skip_rules(result.settings)
    )
    contrib = result.model.contributions(feats)
    rec_a, rec_b = result.records.iloc[lo], result.records.iloc[hi]
    rows = [
        {
            "step": "prior",
            "value_a": "",
            "value_b": "",
            "level": "",
            "m": np.nan,
            "u": np.nan,
            "weight": result.model.prior_weight,
        }
    ]
    for comp in comps:
        lvl = int(feats[comp.name].iloc[0])
        cols = SHOWN.get(comp.name, [])
        rows.append(
            {
                "step": comp.name,
                "value_a": " ".join(_shown(rec_a.get(c)) for c in cols if c in rec_a.index).strip(),
                "value_b": " ".join(_shown(rec_b.get(c)) for c in cols if c in rec_b.index).strip(),
                "level": "null" if lvl < 0 else comp.labels[lvl],
                "m": result.model.m[comp.name][lvl] if lvl >= 0 else np.nan,
                "u": result.model.u[comp.name][lvl] if lvl >= 0 else np.nan,
                "weight": float(contrib[f"w_{comp.name}"].iloc[0]),
            }
        )
    rows.append(
        {
            "step": "guard",
            "value_a": "",
            "value_b": "",
            "level": "applied" if contrib["w_guard"].iloc[0] else "",
            "m": np.nan,
            "u": np.nan,
            "weight": float(contrib["w_guard"].iloc[0]),
        }
    )
    table = pd.DataFrame(rows)
    table["cumulative"] = table["weight"].cumsum()
    total = float(table["weight"].sum())
    table.loc[len(table)] = {
        "step": "total",
        "value_a": "",
        "value_b": "",
        "level": "",
        "m": np.nan,
        "u": np.nan,
        "weight": total,
        "cumulative": total,
    }
    table["match_probability"] = np.where(
        table["step"] == "total", 1 / (1 + 2 ** -np.clip(total, -60, 60)), np.nan
    )
    return table


def _shown(value: Any) -> str:
    """A field value as an analyst reads it: blank for null, a date without its midnight time."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    return str(value)


def explain_stored(pair: pd.Series, parameters: pd.DataFrame) -> pd.DataFrame:
    """The same waterfall from a stored row of `pairs` (levels and w_ columns) and the model parameters."""
    labels = parameters[parameters["level"] >= 0].set_index(["comparison", "level"])["label"]
    prior = float(parameters.loc[parameters["comparison"] == "prior", "weight"].iloc[0])
    rows = [{"step": "prior", "level": "", "weight": prior}]
    for comp in parameters.loc[parameters["level"] >= 0, "comparison"].unique():
        lvl = int(pair[comp])
        rows.append(
            {
                "step": comp,
                "level": "null" if lvl < 0 else labels[(comp, lvl)],
                "weight": float(pair[f"w_{comp}"]),
            }
        )
    rows.append({"step": "guard", "level": "", "weight": float(pair.get("w_guard", 0.0))})
    table = pd.DataFrame(rows)
    table["cumulative"] = table["weight"].cumsum()
    return table


def explanation_chart(table: pd.DataFrame, ax=None):
    """A horizontal waterfall of an `explain` table (bits per step; green adds, red subtracts)."""
    import matplotlib.pyplot as plt

    steps = table[table["step"] != "total"]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(steps) + 1))
    start = steps["cumulative"] - steps["weight"]
    colors = np.where(steps["weight"] >= 0, "#2a9d8f", "#e76f51")
    ax.barh(steps["step"], steps["weight"], left=start, color=colors)
    ax.axvline(0, color="grey", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("match weight (bits, log2 Bayes factor)")
    ax.set_title("Why these two records (do not) match")
    return ax


def _top_reasons(scored: pd.DataFrame, names: list[str], k: int = 3) -> np.ndarray:
    w = scored[[f"w_{n}" for n in names] + ["w_guard"]].to_numpy(np.float64)
    labels = np.array(names + ["guard"], dtype=object)
    order = np.argsort(-np.abs(w), axis=1)[:, :k]
    parts = []
    for j in range(order.shape[1]):
        idx = order[:, j]
        val = w[np.arange(len(w)), idx]
        parts.append(
            np.char.add(
                np.char.add(np.where(val >= 0, "+", "").astype(str), np.round(val, 1).astype(str)),
                " " + labels[idx].astype(str),
            )
        )
    if not parts:
        return np.array([], dtype=object)
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + "; " + p.astype(object)
    return out


def review_queue(
    pairs: pd.DataFrame, records: pd.DataFrame, settings: UnifySettings, decisions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Pairs whose match probability falls in the review band and that no analyst has decided yet,
    both records side by side, with the score, the strongest reasons and an empty `decision` column
    (`must-link` / `cannot-link`) to fill in and save under params/."""
    lo, hi = settings.review_band
    p = pairs["match_probability"].to_numpy()
    sel = pairs[(p >= lo) & (p <= hi)]
    if "decision" in sel:
        sel = sel[sel["decision"].isna() | (sel["decision"] == "")]
    names = [c[2:] for c in pairs.columns if c.startswith("w_") and c != "w_guard"]
    out = pd.DataFrame(
        {
            "source_a": sel["source_a"].to_numpy(),
            "source_id_a": sel["source_id_a"].to_numpy(),
            "source_b": sel["source_b"].to_numpy(),
            "source_id_b": sel["source_id_b"].to_numpy(),
            "match_probability": sel["match_probability"].to_numpy(),
            "match_weight": sel["match_weight"].to_numpy(),
            "linked": sel["same_customer"].to_numpy() if "same_customer" in sel else sel["match"].to_numpy(),
            "reasons": _top_reasons(sel, names) if len(sel) else np.array([], dtype=object),
        }
    )
    ra, rb = sel["rid_a"].to_numpy(), sel["rid_b"].to_numpy()
    for f in REVIEW_FIELDS:
        if f in records:
            out[f"{f}_a"] = _take(records[f], ra)
            out[f"{f}_b"] = _take(records[f], rb)
    out["decision"] = ""
    out["note"] = ""
    # most uncertain first (closest to even odds), stable for equal scores
    out = out.iloc[np.argsort(np.abs(out["match_weight"].to_numpy()), kind="stable")].reset_index(drop=True)
    return out


def _take(column: pd.Series, rows: np.ndarray):
    """Values at positions, staying Arrow-backed when the column is (no Python string per row)."""
    if isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        return column.array.take(rows)
    return column.to_numpy()[rows]


def decisions_template(review: pd.DataFrame) -> pd.DataFrame:
    """The decisions file analysts fill in from a review queue (decision: must-link / cannot-link)."""
    cols = DECISIONS + (["note"] if "note" in review else [])
    return review[cols].copy()


# --------------------------------------------------------------------------------------------------
# Evaluation against a truth
# --------------------------------------------------------------------------------------------------


def _pairs_within(groups: np.ndarray) -> float:
    counts = pd.Series(groups).value_counts().to_numpy(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def _prf(tp: float, pred: float, true: float) -> tuple[float, float, float]:
    p = tp / pred if pred else 1.0
    r = tp / true if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(
    records: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    entity: str = "person_id",
    candidates: pd.MultiIndex | pd.DataFrame | None = None,
    matches: pd.DataFrame | None = None,
    clusters: pd.Series | None = None,
) -> dict[str, float]:
    """Accuracy against a truth (source, source_id, entity): blocking recall (share of true pairs among
    candidates), pairwise precision/recall/F1 of matched pairs and of clusters, and B-cubed P/R/F1.
    Only records present in the truth count."""
    t = truth[["source", "source_id", entity]].astype(str).drop_duplicates(KEY)
    ent = pd.Series(records[KEY].astype(str).merge(t, on=KEY, how="left")[entity].to_numpy())
    known = ent.notna().to_numpy()
    ent_code = np.full(len(ent), -1, dtype=np.int64)
    ent_code[known] = pd.factorize(ent[known])[0]
    true_pairs = _pairs_within(ent_code[known])
    out: dict[str, float] = {
        "records": float(known.sum()),
        "entities": float(len(np.unique(ent_code[known]))),
        "true_pairs": true_pairs,
    }

    def pair_hits(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        ok = known[a] & known[b]
        return float(ok.sum()), float((ent_code[a[ok]] == ent_code[b[ok]]).sum())

    if candidates is not None:
        ca = np.asarray(
            candidates.get_level_values(0) if isinstance(candidates, pd.MultiIndex) else candidates["rid_a"]
        )
        cb = np.asarray(
            candidates.get_level_values(1) if isinstance(candidates, pd.MultiIndex) else candidates["rid_b"]
        )
        n_pred, tp = pair_hits(ca, cb)
        out.update(candidate_pairs=float(len(ca)), blocking_recall=tp / true_pairs if true_pairs else 1.0)
    if matches is not None:
        m = matches[matches["match"].to_numpy()] if "match" in matches else matches
        n_pred, tp = pair_hits(m["rid_a"].to_numpy(), m["rid_b"].to_numpy())
        p, r, f = _prf(tp, n_pred, true_pairs)
        out.update(pair_precision=p, pair_recall=r, pair_f1=f, matched_pairs=float(len(m)))
    if clusters is not None:
        cl = np.asarray(clusters)[known]
        en = ent_code[known]
        pred_pairs = _pairs_within(cl)
        both = pd.DataFrame({"c": cl, "e": en})
        inter = both.groupby(["c", "e"]).size().to_numpy(np.float64)
        tp = float((inter * (inter - 1) / 2).sum())
        p, r, f = _prf(tp, pred_pairs, true_pairs)
        out.update(cluster_precision=p, cluster_recall=r, cluster_f1=f, clusters=float(len(np.unique(cl))))
        both["ce"] = both.groupby(["c", "e"])["c"].transform("size")
        both["cs"] = both.groupby("c")["c"].transform("size")
        both["es"] = both.groupby("e")["e"].transform("size")
        bp = float((both["ce"] / both["cs"]).mean())
        br = float((both["ce"] / both["es"]).mean())
        out.update(
            bcubed_precision=bp, bcubed_recall=br, bcubed_f1=2 * bp * br / (bp + br) if bp + br else 0.0
        )
        out["exact_entities"] = float(
            (
                both.groupby("e")["c"].nunique().eq(1)
                & both.groupby("e")["cs"].first().eq(both.groupby("e")["es"].first())
            ).mean()
        )
    return out


# --------------------------------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------------------------------


@dataclass
class LinkResult:
    """Everything a unify run produces (frames to store) plus the model and timings."""

    records: pd.DataFrame  # source records (rid = row) with customer_id
    pairs: (
        pd.DataFrame
    )  # candidate pairs above keep_pairs_min_probability: ids, score, match, levels, weights
    candidates: pd.DataFrame  # every candidate pair: rid_a, rid_b, match_weight, match (compact)
    customers: pd.DataFrame
    crosswalk: pd.DataFrame
    provenance: pd.DataFrame
    id_log: pd.DataFrame
    review: pd.DataFrame
    blocking: pd.DataFrame  # per blocking pass counts
    clusters_split: pd.DataFrame  # components re-clustered by the chaining guard, with reason
    parameters: pd.DataFrame  # m, u, weight per comparison level
    stats: dict[str, Any]
    model: FellegiSunter
    prepared: PreparedRecords
    settings: UnifySettings
    timings: dict[str, float] = field(default_factory=dict)


def link(
    parties: pd.DataFrame,
    settings: UnifySettings | None = None,
    *,
    trust_ranks: dict[str, int],
    previous_crosswalk: pd.DataFrame | None = None,
    previous_id_log: pd.DataFrame | None = None,
    decisions: pd.DataFrame | None = None,
    next_id: int | None = None,
    reserved: pd.DataFrame | None = None,
    progress: bool = False,
) -> LinkResult:
    """Link all staged party records into customers: collapse, block, compare, score, cluster, assign
    stable ids, build golden records with provenance and the review queue.

    `next_id` is the stored high-water mark of issued ids (`unify_io.previous_state`): new ids are
    numbered after it even when the highest earlier id was erased. The result's ``stats["next_id"]``
    is the mark to store for the next run; ``stats["peak_rss_mib"]`` the process's peak memory after
    each step. `reserved` are ids other runs gave these records (see `assign_ids`).
    """
    settings = settings or UnifySettings()
    timings: dict[str, float] = {}
    peak_mib: dict[str, int] = {}
    steps = [
        "source records",
        "prepare",
        "blocking",
        "compare",
        "fit model",
        "score",
        "cluster",
        "ids",
        "golden records",
        "review",
    ]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(steps), desc="unify")
    clock = [time.perf_counter()]

    def done(step: str) -> None:
        _release_arrow_memory()
        now = time.perf_counter()
        timings[step] = round(now - clock[0], 3)
        peak_mib[step] = _peak_rss_mib()
        clock[0] = now
        if bar is not None:
            bar.set_postfix_str(step)
            bar.update(1)

    records = source_records(parties)
    n_party_rows = len(parties)
    del parties  # a caller that passes the frame without keeping it frees it here (~1 GB at 1M rows)
    done("source records")
    prep = prepare(records)
    records, corrected = _company_corrections(records, prep)
    prep.records = records
    done("prepare")
    # candidate_pairs and compare on plain arrays: a MultiIndex of the pairs would cost its levels, codes
    # and factorisation (~60 MB at 1M records) for an index that is dropped at once
    lo, hi, blocking = linkage.block(prep, settings)
    lo, hi = lo.astype(np.int32), hi.astype(np.int32)
    done("blocking")
    comps = linkage.build_comparisons(prep, settings)
    features = linkage.compare_pairs(prep, lo, hi, comps, settings.compare_chunk_size, _skip_rules(settings))
    done("compare")
    model = fit_model(prep, features, settings)
    done("fit model")
    weight = model.total_weight(features)
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60)))
    match = probability >= settings.match_threshold
    stickiness = {"kept_by_hysteresis": 0, "held_apart_by_hysteresis": 0, "kept_from_chaining": 0}
    never_together = None  # previously apart and scoring below the low band: never chained into one
    if previous_crosswalk is not None and len(previous_crosswalk):
        before = _previous_ids(records, previous_crosswalk)
        pa, pb = before[lo], before[hi]
        known = (pa >= 0) & (pb >= 0)
        low, high = settings.stability_band
        together, apart = known & (pa == pb), known & (pa != pb)
        stickiness["kept_by_hysteresis"] = int((together & ~match & (probability >= low)).sum())
        stickiness["held_apart_by_hysteresis"] = int((apart & match & (probability < high)).sum())
        match = np.where(together, probability >= low, np.where(apart, probability >= high, match))
        never_together = apart & (probability < low)
        stickiness["kept_from_chaining"] = int(never_together.sum())
    dec = decisions_as_pairs(records, decisions)
    # analysts' decisions sit on few pairs: their positions and values, not an object array per candidate
    decided_at = np.empty(0, dtype=np.int64)
    decided_as = np.empty(0, dtype=object)
    if len(dec):  # candidates are sorted by (rid_a, rid_b): find decided pairs by binary search
        n_rec = len(records)
        code = lo.astype(np.int64) * n_rec + hi
        wanted = dec["rid_a"].to_numpy(np.int64) * n_rec + dec["rid_b"].to_numpy(np.int64)
        where = np.minimum(np.searchsorted(code, wanted), max(len(code) - 1, 0))
        found = (code[where] == wanted) if len(code) else np.zeros(len(wanted), dtype=bool)
        del code
        decided_at = where[found]
        decided_as = np.asarray(dec["decision"].to_numpy()[found], dtype=object)
        match[decided_at] = decided_as == "must-link"
    candidates = pd.DataFrame(
        {"rid_a": lo, "rid_b": hi, "match_weight": weight.astype(np.float32), "match": match}
    )
    keep = (probability >= settings.keep_pairs_min_probability) | match
    keep[decided_at[np.array([d is not None for d in decided_as], dtype=bool)]] = True
    kept_at = np.flatnonzero(keep)
    decision = np.full(len(kept_at), None, dtype=object)
    shown = keep[decided_at]
    decision[np.searchsorted(kept_at, decided_at[shown])] = decided_as[shown]
    pairs = _pair_frame(
        records,
        features[keep],
        model,
        lo[keep],
        hi[keep],
        weight[keep],
        probability[keep],
        match[keep],
        decision,
    )
    histogram = np.histogram(np.clip(weight, -40, 40), bins=np.arange(-40, 41, 2))[0].tolist()
    del features
    done("score")
    scored = candidates
    if never_together is not None and never_together.any() and settings.cannot_link_below is not None:
        # two records of different earlier customers that score below the low band are kept apart
        # even through a third record (a namesake's borderline weight must not flip them together)
        held = np.minimum(weight, settings.cannot_link_below - 1.0).astype(np.float32)
        scored = candidates.assign(match_weight=np.where(never_together, held, candidates["match_weight"]))
    clusters, split_report = cluster(records, scored, settings, decisions)
    del scored
    done("cluster")
    crosswalk, id_log = assign_ids(
        records,
        clusters,
        previous_crosswalk,
        previous_id_log=previous_id_log,
        next_id=next_id,
        prefix=settings.id_prefix,
        digits=settings.id_digits,
        reserved=reserved,
    )
    next_free = max(
        first_free_number(previous_crosswalk, previous_id_log, next_id=next_id, prefix=settings.id_prefix),
        first_free_number(crosswalk, None, prefix=settings.id_prefix),
    )
    crosswalk["n_rows"] = records["n_rows"].to_numpy() if "n_rows" in records else 1
    if "record_ids" in records:
        crosswalk["record_ids"] = records["record_ids"].to_numpy()
    cid = pd.factorize(crosswalk["customer_id"])[0]  # codes: compare customers without strings
    pairs["same_customer"] = cid[pairs["rid_a"].to_numpy()] == cid[pairs["rid_b"].to_numpy()]
    done("ids")
    customers, provenance = golden_records(records, crosswalk, trust_ranks, settings)
    done("golden records")
    review = review_queue(pairs, records, settings)
    done("review")
    if bar is not None:
        bar.close()
    out_records = records.copy(deep=False)  # shares the columns with result.prepared.records
    out_records["customer_id"] = crosswalk["customer_id"].array
    true_edges = int(candidates["match"].sum())
    stats = {
        "parties_rows": n_party_rows,
        "source_records": len(records),
        "candidate_pairs": len(candidates),
        "pairs_kept": len(pairs),
        "match_weight_histogram": {"bins": list(range(-40, 41, 2)), "counts": histogram},
        "candidate_pairs_per_pass": dict(zip(blocking["pass"], blocking["pairs"].astype(int), strict=True)),
        "matched_pairs": true_edges,
        "customers": len(customers),
        "review_pairs": len(review),
        "clusters_split": len(split_report),
        "decisions_applied": len(dec),
        **stickiness,
        "party_type_set_to_company": corrected,
        "em_iterations": int(model.history[0]) if model.history else 0,
        "match_prior": model.prior,
        "m_source": model.m_source,
        "id_events": id_log["event"].value_counts().to_dict(),
        "next_id": int(next_free),
        "seconds_total": round(sum(timings.values()), 3),
        "peak_rss_mib": peak_mib,
    }
    return LinkResult(
        records=out_records,
        pairs=pairs,
        candidates=candidates,
        customers=customers,
        crosswalk=crosswalk,
        provenance=provenance,
        id_log=id_log,
        review=review,
        blocking=blocking,
        clusters_split=split_report,
        parameters=model.parameters(),
        stats=stats,
        model=model,
        prepared=prep,
        settings=settings,
        timings=timings,
    )


def _peak_rss_mib() -> int:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) // 1024


def _release_arrow_memory() -> None:
    """Hand freed memory back to the OS between steps: Arrow's mimalloc/jemalloc pool keeps freed buffers
    (a 1M-record run would hold ~1 GB it no longer uses), and glibc's heap keeps the pages of freed NumPy
    arrays and Python strings (~50 MB after each step at 1M), which would stack under the next step's peak."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):  # pragma: no cover - older pyarrow
        pass
    _malloc_trim()


def _malloc_trim() -> None:
    """glibc's malloc_trim(0): return the free pages of the C heap to the OS (a no-op elsewhere)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - musl and other C libraries
        pass


def _company_corrections(records: pd.DataFrame, prep: PreparedRecords) -> tuple[pd.DataFrame, int]:
    """Records that linkage recognised as companies (a CIF or a legal form in the name) but that came
    typed as persons: party_type becomes "company", and person-name parts that were only the company
    name split in pieces ("Gimnasio Crespo" / "Sociedad" / "Limitada") are dropped."""
    company = prep.codes["party"].to_numpy() == 1
    typed = (
        records["party_type"].astype("string").str.lower().eq("company").fillna(False).to_numpy()
        if "party_type" in records
        else np.zeros(len(records), dtype=bool)
    )
    fix = company & ~typed
    if not fix.any():
        return records, 0
    records = records.copy(deep=False)  # changed columns are replaced, never written into
    records["party_type"] = _with_values(records["party_type"], fix, "company")
    if {"given_name", "family_names", "full_name"} <= set(records.columns):
        built = (
            records["given_name"].astype("string").fillna("")
            + " "
            + records["family_names"].astype("string").fillna("")
        ).map(linkage.fold)
        whole = records["full_name"].astype("string").fillna("").map(linkage.fold)
        pieces = fix & (built == whole).to_numpy() & (whole != "").to_numpy()
        for c in ("given_name", "family_names", "family_name_1", "family_name_2"):
            if c in records and pieces.any():
                records[c] = _with_values(records[c], pieces, pd.NA)
    return records, int(fix.sum())


def _with_values(column: pd.Series, where: np.ndarray, value: Any) -> pd.Series:
    """A copy of `column` with `value` at the rows `where` (the original untouched)."""
    out = column.copy()
    out[where] = value
    return out


def _previous_ids(records: pd.DataFrame, previous_crosswalk: pd.DataFrame) -> np.ndarray:
    """Each record's customer in the previous crosswalk, as an integer code (-1 for records new this run)."""
    prev = previous_crosswalk[["source", "source_id", "customer_id"]].astype("string[pyarrow]")
    prev = prev.drop_duplicates(KEY)
    prev["code"] = pd.factorize(prev["customer_id"])[0]
    keys = records[KEY].astype("string[pyarrow]").reset_index(drop=True)
    found = keys.merge(prev[[*KEY, "code"]], on=KEY, how="left")["code"]
    return found.fillna(-1).to_numpy(np.int64)


def _pair_frame(
    records: pd.DataFrame,
    features: pd.DataFrame,
    model: FellegiSunter,
    lo: np.ndarray,
    hi: np.ndarray,
    weight: np.ndarray,
    probability: np.ndarray,
    match: np.ndarray,
    decision: np.ndarray,
) -> pd.DataFrame:
    """The stored pairs: both source records, score, match, analyst decision, levels and weights."""
    src = records["source"].astype("category")
    sid = records["source_id"].astype("string[pyarrow]")
    pairs = pd.DataFrame({"rid_a": lo, "rid_b": hi})
    pairs["source_a"] = pd.Categorical.from_codes(src.cat.codes.to_numpy()[lo], categories=src.cat.categories)
    pairs["source_id_a"] = sid.array.take(lo)  # Arrow to Arrow: no Python string per pair
    pairs["source_b"] = pd.Categorical.from_codes(src.cat.codes.to_numpy()[hi], categories=src.cat.categories)
    pairs["source_id_b"] = sid.array.take(hi)
    pairs["match_weight"] = weight
    pairs["match_probability"] = probability
    pairs["match"] = match
    pairs["decision"] = pd.array(decision, dtype="string")
    features = features.reset_index(drop=True)
    for name in model.labels:
        pairs[name] = features[name].to_numpy()
    contrib = model.contributions(features)
    for c in contrib.columns:
        pairs[c] = contrib[c].to_numpy()
    return pairs


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True
