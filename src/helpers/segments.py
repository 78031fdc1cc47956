"""Segmentation: value tiers, RFM segments, behavioural clusters, churn risk, prescription and
vulnerability scores, a strategy per customer, and the next best offers.

Pure functions (frames and settings in, frames out, no I/O except `load_offers`, which reads and
validates params/offers.yaml). 05_segmentation reads what 04_metrics stored (the wide metrics, the
CLV, the orders) and saves one store table per concept keyed by period and customer_id (TABLES).
Every threshold, weight and rule is in the `segments:` section of params/default.yaml; the rules
are data (column, operator, value, points, reason), so an analyst changes them without Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from helpers import schema

#: Store tables written by 05_segmentation.
TABLES = {
    "segments": "customer_segments",
    "churn": "customer_churn",
    "clusters": "cluster_profiles",
    "offers": "next_best_offers",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in"]
_OPS = {
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
    "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v,
    ">": lambda s, v: s > v,
    ">=": lambda s, v: s >= v,
    "in": lambda s, v: s.isin(v),
    "not_in": lambda s, v: ~s.isin(v),
}


class Rule(_Strict):
    """`column op value` earns `points`; `reason` says it in words. A missing value never matches."""

    column: str
    op: Op
    value: Any
    points: float = Field(ge=0)
    reason: str


class Tier(_Strict):
    name: str
    top_share: float = Field(gt=0, le=1)  # cumulative share of buyers, ranked by CLV


class RfmSegment(_Strict):
    name: str
    r: tuple[int, int]  # inclusive score ranges
    f: tuple[int, int]


def _rfm_default() -> list[RfmSegment]:
    """The classic R × F grid (scores 1-5); the first match wins."""
    grid = [
        ("Champions", (5, 5), (4, 5)),
        ("Loyal customers", (3, 4), (4, 5)),
        ("Potential loyalists", (4, 5), (2, 3)),
        ("New customers", (5, 5), (1, 1)),
        ("Promising", (4, 4), (1, 1)),
        ("Need attention", (3, 3), (3, 3)),
        ("About to sleep", (3, 3), (1, 2)),
        ("Cannot lose them", (1, 2), (5, 5)),
        ("At risk", (1, 2), (3, 4)),
        ("Hibernating", (1, 2), (1, 2)),
    ]
    return [RfmSegment(name=n, r=r, f=f) for n, r, f in grid]


class ClusterSettings(_Strict):
    features: list[str] = Field(
        default_factory=lambda: [
            "revenue_12m",
            "orders_12m",
            "recency_days",
            "aov",
            "top_category_share",
            "tickets",
            "response_rate",
            "mean_days_late",
        ]
    )
    log_features: list[str] = Field(
        default_factory=lambda: ["revenue_12m", "orders_12m", "recency_days", "aov", "tickets"]
    )
    k_min: int = Field(3, ge=2)
    k_max: int = Field(8, ge=2)
    silhouette_sample: int = Field(5000, ge=100)
    describe_at: float = Field(0.5, gt=0)  # |mean z-score| from which a feature describes a cluster
    seed: int = 42


class ChurnSettings(_Strict):
    enabled: bool = True  # false: no churn model (too little history, or not wanted); the rest still runs
    min_buyers: int = Field(
        50, ge=10
    )  # fewer buyers in the latest training snapshot: skipped, with the reason
    horizon_months: int = Field(3, ge=1)  # label: no purchase in the next N months
    snapshots: int = Field(6, ge=2)  # training cut-offs, `step_months` apart, all with a fully observed label
    step_months: int = Field(1, ge=1)
    model: Literal["logistic", "gradient_boosting"] = "logistic"
    regularisation: float = Field(1.0, gt=0)  # C of the logistic regression
    calibration_bins: int = Field(10, ge=3)
    high_at: float = Field(0.6, gt=0, lt=1)  # churn probability bands
    medium_at: float = Field(0.3, gt=0, lt=1)
    seed: int = 42


class StrategySettings(_Strict):
    acquisition_max_orders: int = Field(0, ge=0)  # customers with at most this many purchases: acquisition
    retention_churn_min: float = Field(0.5, gt=0, le=1)  # churn probability from which: retention
    retention_trends: list[str] = Field(default_factory=lambda: ["regressing"])  # ... or this trend
    retention_tiers: list[str] = Field(default_factory=lambda: ["A", "B"])  # ... in these tiers
    loyalty_tiers: list[str] = Field(
        default_factory=lambda: ["A"]
    )  # the rest: loyalty here, else development


def _prescription_rules() -> list[Rule]:
    return [
        Rule(column="nps_category", op="==", value="promoter", points=30, reason="NPS promoter"),
        Rule(
            column="positive_mentions",
            op=">=",
            value=1,
            points=25,
            reason="speaks well of us on social media",
        ),
        Rule(column="mentions", op=">=", value=3, points=10, reason="active on social media"),
        Rule(column="value_tier", op="==", value="A", points=15, reason="top value tier"),
        Rule(column="tenure_days", op=">=", value=730, points=10, reason="customer for 2+ years"),
        Rule(column="responses", op=">=", value=1, points=10, reason="answers our campaigns"),
    ]


def _vulnerability_rules() -> list[Rule]:
    return [
        Rule(column="mean_days_late", op=">=", value=30, points=25, reason="pays 30+ days late on average"),
        Rule(column="max_days_overdue", op=">=", value=30, points=20, reason="an invoice overdue 30+ days"),
        Rule(
            column="tickets_recent", op=">=", value=2, points=20, reason="ticket spike (2+ in recent months)"
        ),
        Rule(column="negative_mentions", op=">=", value=1, points=15, reason="negative social mentions"),
        Rule(column="nps_category", op="==", value="detractor", points=10, reason="NPS detractor"),
        Rule(column="value_change", op="<=", value=-0.5, points=20, reason="value fell by half or more"),
    ]


def _channel_consent() -> dict[str, str | None]:
    return dict(schema.CHANNEL_CONSENT)


def _response_rates() -> dict[str, float]:
    return {"email": 0.05, "sms": 0.04, "mailing": 0.03, "telemarketing": 0.08}


class NboSettings(_Strict):
    offers_file: str = "offers.yaml"  # in params/
    max_offers: int = Field(3, ge=1)
    channel_consent: dict[str, str | None] = Field(
        default_factory=_channel_consent
    )  # null = no consent needed
    response_rates: dict[str, float] = Field(
        default_factory=_response_rates
    )  # when the customer has no history
    never_min_contacts: int = Field(3, ge=1)  # contacts without a response before a channel counts as "never"
    min_expected_value: float = Field(0.0, ge=0)


class SegmentsSettings(_Strict):
    """The `segments:` section of params/default.yaml."""

    tiers: list[Tier] = Field(
        default_factory=lambda: [
            Tier(name="A", top_share=0.2),
            Tier(name="B", top_share=0.5),
            Tier(name="C", top_share=1.0),
        ]
    )
    no_purchase_tier: str = "C"
    rfm_segments: list[RfmSegment] = Field(default_factory=_rfm_default)
    rfm_other: str = "Others"
    rfm_none: str = "No purchases"
    clusters: ClusterSettings = ClusterSettings()
    churn: ChurnSettings = ChurnSettings()
    prescription: list[Rule] = Field(default_factory=_prescription_rules)
    prescriber_at: float = 50  # score from which a customer is flagged as a prescriber
    vulnerability: list[Rule] = Field(default_factory=_vulnerability_rules)
    vulnerable_at: float = 40
    strategy: StrategySettings = StrategySettings()
    nbo: NboSettings = NboSettings()

    @model_validator(mode="after")
    def _consistent(self) -> SegmentsSettings:
        shares = [t.top_share for t in self.tiers]
        if not self.tiers or shares != sorted(shares) or shares[-1] != 1.0:
            raise ValueError("tiers must have increasing top_share ending at 1.0, e.g. A 0.2, B 0.5, C 1.0")
        if self.clusters.k_min > self.clusters.k_max:
            raise ValueError("clusters.k_min must be <= clusters.k_max")
        return self


def segments_settings(settings: Any) -> SegmentsSettings:
    """Validate the `segments:` section of a `helpers.config.Settings` (or a plain dict)."""
    from helpers.config import explain_validation_error

    section = settings if isinstance(settings, dict) else settings.segments
    try:
        return SegmentsSettings(**(section or {}))
    except ValidationError as exc:
        raise explain_validation_error(
            Path(getattr(settings, "root", ".")) / "params" / "default.yaml", exc, prefix="segments"
        ) from None


# -------------------------------------------------------------------------------------- rule scores
def rule_score(frame: pd.DataFrame, rules: list[Rule]) -> tuple[pd.Series, pd.Series]:
    """Points (capped at 100) and the reasons of the rules each row meets, joined with '; '."""
    points = np.zeros(len(frame))
    reasons = np.full(len(frame), "", dtype=object)
    for rule in rules:
        if rule.column not in frame:
            raise KeyError(f"rule on unknown column {rule.column!r}; available: {sorted(frame.columns)}")
        hit = pd.Series(_OPS[rule.op](frame[rule.column], rule.value), index=frame.index)
        hit = hit.astype("boolean").fillna(False).to_numpy(bool)
        points += hit * rule.points
        reasons = np.where(hit, np.where(reasons == "", rule.reason, reasons + "; " + rule.reason), reasons)
    return pd.Series(np.minimum(points, 100), index=frame.index), pd.Series(reasons, index=frame.index)


# --------------------------------------------------------------------------------- tiers and RFM
def value_tiers(clv: pd.Series, settings: SegmentsSettings) -> pd.Series:
    """A/B/C by rank of CLV among customers who have one: top 20 % A, next 30 % B, rest C (by default).
    Customers without a CLV (no purchase) get `no_purchase_tier`."""
    rank = clv.rank(method="first", ascending=False, pct=True)
    tier = pd.Series(settings.no_purchase_tier, index=clv.index, dtype=object)
    for t in reversed(settings.tiers):
        tier[rank.notna() & (rank <= t.top_share)] = t.name
    return tier


def rfm_segments(rfm: pd.DataFrame, settings: SegmentsSettings) -> pd.Series:
    """Named segment from the R and F scores (first matching grid cell); F = 0 -> `rfm_none`."""
    r, f = rfm["r_score"].to_numpy(), rfm["f_score"].to_numpy()
    conds = [(r >= s.r[0]) & (r <= s.r[1]) & (f >= s.f[0]) & (f <= s.f[1]) for s in settings.rfm_segments]
    names = [s.name for s in settings.rfm_segments]
    seg = np.select([f == 0, *conds], [settings.rfm_none, *names], settings.rfm_other)
    return pd.Series(seg, index=rfm.index)


# --------------------------------------------------------------------------------------- clusters
#: Words for a cluster whose mean is high / low on a feature.
FEATURE_WORDS = {
    "revenue_12m": ("high spend", "low spend"),
    "orders_12m": ("frequent buyers", "rare buyers"),
    "recency_days": ("lapsed", "bought recently"),
    "aov": ("big baskets", "small baskets"),
    "top_category_share": ("loyal to one category", "buy across categories"),
    "tickets": ("many tickets", "few tickets"),
    "response_rate": ("answer campaigns", "ignore campaigns"),
    "mean_days_late": ("pay late", "pay early"),
}


def cluster_matrix(metrics: pd.DataFrame, settings: ClusterSettings) -> tuple[pd.DataFrame, np.ndarray]:
    """The buyers' feature frame (missing -> the feature's median, log1p on skewed features) and its
    standardised matrix."""
    from sklearn.preprocessing import StandardScaler

    buyers = metrics[metrics["orders_lifetime"] > 0]
    x = buyers.set_index("customer_id")[settings.features].astype(float)
    x = x.fillna(x.median()).fillna(0.0)
    logged = x.copy()
    for c in settings.log_features:
        logged[c] = np.log1p(logged[c].clip(lower=0))
    return x, StandardScaler().fit_transform(logged.to_numpy())


def _kmeans(k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed)


def choose_k(matrix: np.ndarray, settings: ClusterSettings) -> pd.DataFrame:
    """Silhouette score for each k in [k_min, k_max], on a seeded sample of `silhouette_sample`
    customers (k-means fitted on the sample too); the best k has the highest score."""
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(settings.seed)
    sample = (
        matrix[rng.choice(len(matrix), settings.silhouette_sample, replace=False)]
        if len(matrix) > settings.silhouette_sample
        else matrix
    )
    rows = []
    with threadpool_limits(limits=1, user_api="openmp"):  # small fits: threads only fight over the cores
        for k in range(settings.k_min, min(settings.k_max, len(sample) - 1) + 1):
            labels = _kmeans(k, settings.seed).fit_predict(sample)
            rows.append({"k": k, "silhouette": float(silhouette_score(sample, labels))})
    return pd.DataFrame(rows)


def clusters(
    metrics: pd.DataFrame, settings: ClusterSettings, k: int | None = None
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """K-means on the standardised buyer features, k by the best silhouette unless given.

    Returns the cluster per customer (-1 = no purchase), a profile per cluster (size, feature means,
    description in words) and the silhouette table."""
    from threadpoolctl import threadpool_limits

    x, matrix = cluster_matrix(metrics, settings)
    scores = choose_k(matrix, settings)
    if scores.empty or len(matrix) <= settings.k_min:  # too few buyers to tell groups apart
        out = pd.Series(-1, index=metrics["customer_id"], name="cluster")
        profile = pd.DataFrame(
            {
                "cluster": pd.Series(dtype="int64"),
                "customers": pd.Series(dtype="int64"),
                **{f"mean_{f}": pd.Series(dtype="float64") for f in settings.features},
                "description": pd.Series(dtype="string"),
            }
        )
        return (
            out,
            profile,
            pd.DataFrame({"k": pd.Series(dtype="int64"), "silhouette": pd.Series(dtype="float64")}),
        )
    k = int(k or scores.loc[scores["silhouette"].idxmax(), "k"])
    with threadpool_limits(limits=1, user_api="openmp"):
        labels = _kmeans(k, settings.seed).fit_predict(matrix)
    z = pd.DataFrame(matrix, columns=settings.features).groupby(labels).mean()
    # number clusters by size, largest first, so labels are stable across runs of the same data
    order = pd.Series(labels).value_counts().sort_index().sort_values(ascending=False, kind="stable").index
    relabel = {old: new for new, old in enumerate(order)}
    labels = np.vectorize(relabel.get)(labels)
    z.index = z.index.map(relabel)
    profile = x.groupby(labels).mean().add_prefix("mean_")
    profile.insert(0, "customers", pd.Series(labels).value_counts())
    profile["description"] = [describe_cluster(z.loc[c], settings.describe_at) for c in profile.index]
    profile.index.name = "cluster"
    out = pd.Series(-1, index=metrics["customer_id"], name="cluster")
    out[x.index] = labels
    return out, profile.sort_index().reset_index(), scores


def describe_cluster(zrow: pd.Series, at: float) -> str:
    """The three features furthest from the average (|z| >= at), in words: 'high spend, frequent buyers'."""
    top = zrow[zrow.abs() >= at].abs().sort_values(ascending=False).index[:3]
    words = [FEATURE_WORDS.get(f, (f"high {f}", f"low {f}"))[0 if zrow[f] > 0 else 1] for f in top]
    return ", ".join(words) if words else "close to the average on every feature"


# ------------------------------------------------------------------------------------------ churn
CHURN_FEATURES = [
    "recency_days",
    "tenure_days",
    "orders_3m",
    "orders_6m",
    "orders_12m",
    "log_revenue_12m",
    "log_aov",
    "days_between_orders",
    "recent_share",
]


def churn_features(orders: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Features of every customer with a purchase up to `cutoff`, from purchase orders only."""
    buy = orders[(orders["kind"] == "purchase") & (orders["date"] <= cutoff)]
    g = buy.groupby("customer_id")
    out = pd.DataFrame(
        {"first": g["date"].min(), "last": g["date"].max(), "orders": g.size(), "aov": g["amount"].mean()}
    )
    out["recency_days"] = (cutoff - out["last"]).dt.total_seconds() / 86400
    out["tenure_days"] = (cutoff - out["first"]).dt.total_seconds() / 86400
    for m in (3, 6, 12):
        recent = buy[buy["date"] > cutoff - pd.DateOffset(months=m)]
        out[f"orders_{m}m"] = recent.groupby("customer_id").size().reindex(out.index).fillna(0)
    rev = buy[buy["date"] > cutoff - pd.DateOffset(months=12)].groupby("customer_id")["amount"].sum()
    out["log_revenue_12m"] = np.log1p(rev.reindex(out.index).fillna(0).clip(lower=0))
    out["log_aov"] = np.log1p(out["aov"].clip(lower=0))
    out["days_between_orders"] = out["tenure_days"] / out["orders"]
    out["recent_share"] = out["orders_3m"] / out["orders_12m"].where(out["orders_12m"] > 0)
    out["recent_share"] = out["recent_share"].fillna(0.0)
    return out[CHURN_FEATURES]


def churn_label(orders: pd.DataFrame, customers: pd.Index, cutoff: pd.Timestamp, months: int) -> pd.Series:
    """1 when the customer made no purchase in (cutoff, cutoff + months]."""
    end = cutoff + pd.DateOffset(months=months)
    buy = orders[(orders["kind"] == "purchase") & (orders["date"] > cutoff) & (orders["date"] <= end)]
    return pd.Series(
        (~customers.isin(buy["customer_id"].unique())).astype(int), index=customers, name="churned"
    )


def churn_training_set(orders: pd.DataFrame, as_of: pd.Timestamp, settings: ChurnSettings) -> pd.DataFrame:
    """Stacked snapshots: features at each cut-off as_of - horizon - k·step (k = 0..snapshots-1) and the
    label observed in the following `horizon_months`, all before `as_of`."""
    frames = []
    for k in range(settings.snapshots):
        cutoff = as_of - pd.DateOffset(months=settings.horizon_months + k * settings.step_months)
        x = churn_features(orders, cutoff)
        if x.empty:
            continue
        x["churned"] = churn_label(orders, x.index, cutoff, settings.horizon_months)
        x["cutoff"] = cutoff
        frames.append(x.reset_index())
    if not frames:
        raise ValueError("no purchases before the first churn cut-off: not enough history for a churn model")
    return pd.concat(frames, ignore_index=True)


def _churn_model(settings: ChurnSettings):
    if settings.model == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=settings.seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=settings.regularisation, max_iter=1000))


def fit_churn(training: pd.DataFrame, settings: ChurnSettings):
    """The churn classifier fitted on the stacked snapshots."""
    if training["churned"].nunique() < 2:
        raise ValueError("the churn label has one class only in the training snapshots; lengthen the history")
    return _churn_model(settings).fit(training[CHURN_FEATURES].to_numpy(), training["churned"].to_numpy())


def evaluate_churn(training: pd.DataFrame, settings: ChurnSettings) -> tuple[dict[str, float], pd.DataFrame]:
    """Out-of-time check: train on cut-offs whose label window closes by the latest cut-off, test on it.

    Returns AUC, Brier score, base rate and sizes, and the calibration table (mean predicted vs
    observed churn per probability bin)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_auc_score

    test_cut = training["cutoff"].max()
    train = training[training["cutoff"] <= test_cut - pd.DateOffset(months=settings.horizon_months)]
    test = training[training["cutoff"] == test_cut]
    if train.empty or test["churned"].nunique() < 2:
        raise ValueError("not enough snapshots for an out-of-time check: raise segments.churn.snapshots")
    model = fit_churn(train, settings)
    p = model.predict_proba(test[CHURN_FEATURES].to_numpy())[:, 1]
    y = test["churned"].to_numpy()
    observed, predicted = calibration_curve(y, p, n_bins=settings.calibration_bins, strategy="quantile")
    stats = {
        "test_cutoff": str(pd.Timestamp(test_cut).date()),
        "train_rows": int(len(train)),
        "test_rows": int(len(test)),
        "base_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "brier_base": float(brier_score_loss(y, np.full(len(y), y.mean()))),
    }
    return stats, pd.DataFrame({"predicted": predicted, "observed": observed})


def score_churn(model, orders: pd.DataFrame, as_of: pd.Timestamp, settings: ChurnSettings) -> pd.DataFrame:
    """Churn probability over the next `horizon_months` for every buyer at `as_of`, with its band."""
    x = churn_features(orders, as_of)
    p = model.predict_proba(x[CHURN_FEATURES].to_numpy())[:, 1] if len(x) else np.array([])
    band = np.select([p >= settings.high_at, p >= settings.medium_at], ["high", "medium"], "low")
    return pd.DataFrame({"customer_id": x.index, "churn_probability": p, "churn_band": band})


CHURN_COLUMNS = ["customer_id", "churn_probability", "churn_band"]


@dataclass
class Churn:
    """The churn model's scores with its out-of-time check, or why there is no model this period."""

    scores: pd.DataFrame  # customer_id, churn_probability, churn_band (empty when skipped)
    check: dict[str, Any]  # AUC, Brier, sizes; or {"skipped": reason}
    calibration: pd.DataFrame  # predicted vs observed per bin (empty when skipped)
    skipped: str | None = None


def churn(orders: pd.DataFrame, as_of: pd.Timestamp, settings: ChurnSettings) -> Churn:
    """Train the churn model on earlier cut-offs, check it out of time, and score every buyer - or skip
    it with the reason (switched off, too little history, too few buyers, one class only): a model that
    cannot be checked is not used. The other segments do not depend on it."""
    empty = Churn(
        pd.DataFrame(
            {
                "customer_id": pd.Series(dtype="string"),
                "churn_probability": pd.Series(dtype="float64"),
                "churn_band": pd.Series(dtype="string"),
            }
        ),
        {},
        pd.DataFrame({"predicted": pd.Series(dtype="float64"), "observed": pd.Series(dtype="float64")}),
    )

    def skip(reason: str) -> Churn:
        empty.skipped, empty.check = reason, {"skipped": reason}
        return empty

    if not settings.enabled:
        return skip("the churn model is switched off (segments.churn.enabled: false)")
    need = settings.horizon_months + (settings.snapshots - 1) * settings.step_months
    try:
        training = churn_training_set(orders, as_of, settings)
    except ValueError:
        return skip(
            f"too little purchase history: the model learns from {settings.snapshots} cut-offs "
            f"{settings.horizon_months} to {need} months before {as_of.date()}, and there are no purchases "
            "before them (lower segments.churn.snapshots or horizon_months, or wait for more history)"
        )
    latest = training[training["cutoff"] == training["cutoff"].max()]
    if len(latest) < settings.min_buyers:
        return skip(
            f"too few buyers to learn churn from: {len(latest)} at the latest cut-off, fewer than "
            f"segments.churn.min_buyers ({settings.min_buyers})"
        )
    if training["churned"].nunique() < 2:
        return skip(
            "every buyer in the training cut-offs behaved alike (all churned or none): nothing to learn"
        )
    try:
        check, calibration = evaluate_churn(training, settings)
    except ValueError as exc:
        return skip(f"the model cannot be checked out of time: {exc}")
    model = fit_churn(training, settings)
    return Churn(score_churn(model, orders, as_of, settings), check, calibration)


# --------------------------------------------------------------------------------------- strategy
def strategy(frame: pd.DataFrame, settings: StrategySettings) -> tuple[pd.Series, pd.Series]:
    """acquisition / retention / loyalty / development, first rule that applies, with the reason.

    acquisition: at most `acquisition_max_orders` purchases; retention: churn probability >=
    `retention_churn_min`, or a trend in `retention_trends` while in `retention_tiers`; loyalty: a tier
    in `loyalty_tiers`; development: everyone else (grow the relationship)."""
    orders = frame["orders_lifetime"].fillna(0)
    churn = frame["churn_probability"].fillna(0)
    tier, trend = frame["value_tier"], frame["trend"]
    acq = orders <= settings.acquisition_max_orders
    risky = churn >= settings.retention_churn_min
    falling = trend.isin(settings.retention_trends) & tier.isin(settings.retention_tiers)
    loyal = tier.isin(settings.loyalty_tiers)
    strat = np.select([acq, risky | falling, loyal], ["acquisition", "retention", "loyalty"], "development")
    why = np.select(
        [acq, risky, falling, loyal],
        [
            "no purchase yet"
            if settings.acquisition_max_orders == 0
            else f"{settings.acquisition_max_orders} purchases or fewer",
            "churn risk " + (100 * churn).round().astype(int).astype(str) + " %",
            "tier " + tier.astype(str) + " customer whose relationship is " + trend.astype(str),
            "tier " + tier.astype(str) + " customer, stable or growing",
        ],
        "room to grow: tier " + tier.astype(str),
    )
    return pd.Series(strat, index=frame.index), pd.Series(why, index=frame.index)


# ------------------------------------------------------------------------------- next best offer
class Offer(_Strict):
    """One offer of params/offers.yaml: a product or a category, the channels it can go through, its
    margin per conversion and who is eligible (every given condition must hold)."""

    id: str
    name: str
    product: str | None = None  # catalogue product code
    category: str | None = None
    channels: list[str] = Field(min_length=1)
    margin: float | None = Field(
        None, ge=0
    )  # per conversion; null = catalogue price - unit cost (mean over a category)
    new_to_customer: bool = True  # category offers: only to customers who have not bought in the category yet
    strategies: list[str] | None = None
    tiers: list[str] | None = None
    party_types: list[str] | None = None
    min_orders: int = Field(0, ge=0)
    max_orders: int | None = Field(None, ge=0)
    requires_categories: list[str] | None = None  # has bought in at least one of these
    description: str = ""

    @model_validator(mode="after")
    def _one_target(self) -> Offer:
        if (self.product is None) == (self.category is None):
            raise ValueError("an offer names exactly one of `product` (a catalogue code) or `category`")
        return self


def load_offers(path: Path | str) -> list[Offer]:
    """Read and validate the offer catalogue (params/offers.yaml: a list under `offers:`)."""
    import yaml

    from helpers.config import explain_validation_error
    from helpers.errors import ConfigError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found (the offer catalogue of the next best offers)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw = data.get("offers") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: expected `offers:` with a list of offers")
    offers = []
    for i, body in enumerate(raw):
        try:
            offers.append(Offer(**body))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, TypeError):
                raise ConfigError(f"{path}: offers[{i}]: expected a mapping of offer settings") from None
            raise explain_validation_error(path, exc, prefix=f"offers.{i}") from None
    ids = [o.id for o in offers]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            f"{path}: offer ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    return offers


#: The columns of `next_best_offers` (table next_best_offers).
OFFER_COLUMNS = [
    "customer_id",
    "rank",
    "offer_id",
    "offer_name",
    "target",
    "channel",
    "propensity",
    "margin",
    "expected_value",
    "reason",
]


def empty_offers() -> pd.DataFrame:
    """The next best offers table with no offer (no catalogue offer matches the data)."""
    types = {"rank": "int64", "propensity": "float64", "margin": "float64", "expected_value": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "string")) for c in OFFER_COLUMNS})


def offers_against_data(
    offers: list[Offer], products: pd.DataFrame | None, lines: pd.DataFrame
) -> pd.DataFrame:
    """Each catalogue offer against the data: is its product (in the catalogue or the sales) or its
    category (in the sales) there, and can its margin be known (given, or catalogue price - unit cost).
    Columns: offer_id, target, found, margin_known, usable, reason (why an offer cannot be made)."""
    cat = products if products is not None and len(products) else None
    sold_products = set(lines["product"].dropna().astype(str)) if "product" in lines else set()
    sold_categories = set(lines["category"].dropna().astype(str)) if "category" in lines else set()
    rows = []
    for o in offers:
        if o.product is not None:
            in_catalogue = cat is not None and (cat["source_id"].astype(str) == o.product).any()
            found = in_catalogue or o.product in sold_products
            priced = o.margin is not None or (
                in_catalogue
                and cat.loc[cat["source_id"].astype(str) == o.product, ["price", "unit_cost"]]
                .notna()
                .all(axis=1)
                .any()
            )
            target = f"product {o.product}"
        else:
            found = o.category in sold_categories
            in_catalogue = cat is not None and (cat["category"].astype(str) == o.category).any()
            priced = o.margin is not None or (
                in_catalogue
                and cat.loc[cat["category"].astype(str) == o.category, ["price", "unit_cost"]]
                .notna()
                .all(axis=1)
                .any()
            )
            target = f"category {o.category}"
        reason = None
        if not found:
            reason = (
                f"{target} is not in the data (no sale{' and not in the catalogue' if o.product else ''})"
            )
        elif not priced:
            reason = f"no `margin` given and no catalogue price and unit cost for {target}"
        rows.append(
            {
                "offer_id": o.id,
                "target": target,
                "found": bool(found),
                "margin_known": bool(priced),
                "usable": reason is None,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["offer_id", "target", "found", "margin_known", "usable", "reason"])


def category_affinity(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Cross-sell statistics from purchase lines: incidence (customer × category, bought = True),
    P(buys j | bought i) (category × category), base rate P(j) among buyers, and the repeat rate
    (share of a category's buyers who bought it in two or more orders)."""
    buy = lines[(lines["amount"] > 0) & lines["category"].notna()]
    per = buy.groupby(["customer_id", "category"])["order_key"].nunique()
    incidence = per.unstack(fill_value=0) > 0
    b = incidence.to_numpy(float)
    co = b.T @ b
    counts = np.diag(co)
    cond = pd.DataFrame(
        co / np.where(counts > 0, counts, 1)[:, None], index=incidence.columns, columns=incidence.columns
    )
    base = incidence.mean()
    repeat = (per >= 2).groupby(level="category").mean().reindex(incidence.columns).fillna(0.0)
    return incidence, cond, base, repeat


def _affinity_table(
    customer_ids: pd.Index, incidence: pd.DataFrame, cond: pd.DataFrame, base: pd.Series, repeat: pd.Series
) -> pd.DataFrame:
    """Long table customer × category: affinity (probability-like, noisy-OR over owned categories),
    owned flag, and the owned category that drives it most (for the reason)."""
    cats = incidence.columns
    inc = incidence.reindex(customer_ids, fill_value=False).to_numpy(bool)
    p = cond.to_numpy().copy()
    np.fill_diagonal(p, 0.0)
    log_miss = np.log1p(-np.clip(p, 0, 1 - 1e-9))
    new = 1 - np.exp(inc.astype(float) @ log_miss)
    aff = np.where(inc, repeat.to_numpy()[None, :], new)
    buyer = inc.any(axis=1)
    aff[~buyer] = base.to_numpy()[None, :]
    best = np.zeros_like(aff)
    driver = np.full(aff.shape, -1)
    for i in range(len(cats)):
        better = inc[:, [i]] & (p[i][None, :] > best)
        best = np.where(better, p[i][None, :], best)
        driver = np.where(better, i, driver)
    names = np.asarray(cats, dtype=object)
    n, c = aff.shape
    return pd.DataFrame(
        {
            "customer_id": np.repeat(customer_ids.to_numpy(), c),
            "category": np.tile(names, n),
            "affinity": aff.ravel(),
            "owned": inc.ravel(),
            "buyer": np.repeat(buyer, c),
            "driver": np.where(driver.ravel() >= 0, names[np.maximum(driver.ravel(), 0)], None),
            "driver_p": best.ravel(),
            "base": np.tile(base.to_numpy(), n),
            "repeat": np.tile(repeat.to_numpy(), n),
        }
    )


def _offer_frame(offers: list[Offer], products: pd.DataFrame | None, lines: pd.DataFrame) -> pd.DataFrame:
    """Offers with their category, margin (catalogue when not given) and, for products, the share of
    the category's buyers who bought the product."""
    from helpers.errors import ConfigError

    cat = (
        products
        if products is not None
        else pd.DataFrame(columns=["source_id", "category", "price", "unit_cost"])
    )
    cat = cat.assign(unit_margin=cat["price"] - cat["unit_cost"])
    rows = []
    for o in offers:
        if o.product is not None:
            hit = cat[cat["source_id"] == o.product]
            category = hit["category"].iloc[0] if len(hit) else None
            margin = (
                o.margin if o.margin is not None else (hit["unit_margin"].iloc[0] if len(hit) else np.nan)
            )
        else:
            category = o.category
            margin = (
                o.margin
                if o.margin is not None
                else cat.loc[cat["category"] == o.category, "unit_margin"].mean()
            )
        if margin is None or not np.isfinite(margin):
            raise ConfigError(f"offer {o.id!r}: no `margin` given and the product catalogue cannot give one")
        rows.append(
            {
                "offer_id": o.id,
                "offer_name": o.name,
                "product": o.product,
                "category": category,
                "margin": float(margin),
                "offer": o,
            }
        )
    frame = pd.DataFrame(rows)
    buy = lines[lines["amount"] > 0]
    cat_buyers = buy.groupby("category")["customer_id"].nunique()
    prod_buyers = buy.groupby("product")["customer_id"].nunique()
    share = frame["product"].map(prod_buyers) / frame["category"].map(cat_buyers)
    frame["product_share"] = np.where(frame["product"].isna(), 1.0, share.fillna(0.0))
    return frame


def _eligible(cand: pd.DataFrame, offer: Offer) -> np.ndarray:
    ok = np.ones(len(cand), dtype=bool)
    for col, allowed in (
        ("strategy", offer.strategies),
        ("value_tier", offer.tiers),
        ("party_type", offer.party_types),
    ):
        if allowed is not None:
            ok &= cand[col].isin(allowed).to_numpy()
    orders = cand["orders_lifetime"].fillna(0).to_numpy()
    ok &= orders >= offer.min_orders
    if offer.max_orders is not None:
        ok &= orders <= offer.max_orders
    return ok


def next_best_offers(
    customers: pd.DataFrame,
    profile: pd.DataFrame,
    lines: pd.DataFrame,
    offers: list[Offer],
    settings: NboSettings,
    *,
    products: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    currency: str = "EUR",
) -> pd.DataFrame:
    """Up to `max_offers` offers per customer, ranked by expected value = propensity × margin.

    propensity = affinity of the customer to the offer's category (noisy-OR of P(category | each
    category bought), the repeat rate for a category already bought, the base rate for a customer
    without purchases; × the product's share of the category's buyers for a product offer) × the
    response rate of the best allowed channel (the customer's shrunk rate from `campaign_feedback`,
    else `response_rates`). Excluded: products already bought (and bought categories for
    `new_to_customer` offers), channels without explicit consent and channels the customer never
    answered (`never_min_contacts` contacts on it, no response). Each offer comes with its reason in words.

    `customers`: golden records (customer_id, party_type, consent flags); `profile`: customer_id,
    orders_lifetime, value_tier, strategy; `lines`: transaction lines (customer_id, order_key,
    product, category, amount)."""
    from helpers.errors import ConfigError

    unknown = sorted({ch for o in offers for ch in o.channels} - set(settings.channel_consent))
    if unknown:
        raise ConfigError(
            f"offers use channel(s) {unknown} missing from segments.nbo.channel_consent "
            f"(declare the consent flag each channel needs, or null)"
        )
    base_cols = ["customer_id", "party_type", *[c for c in set(settings.channel_consent.values()) if c]]
    cand = customers[[c for c in base_cols if c in customers]].merge(
        profile[["customer_id", "orders_lifetime", "value_tier", "strategy"]], on="customer_id", how="left"
    )
    if "party_type" not in cand:
        cand["party_type"] = None
    ids = pd.Index(cand["customer_id"])
    cols = [
        "customer_id",
        "rank",
        "offer_id",
        "offer_name",
        "target",
        "channel",
        "propensity",
        "margin",
        "expected_value",
        "reason",
    ]
    if not (lines["amount"] > 0).any():  # no purchase history: no affinities to rank offers by
        return pd.DataFrame(columns=cols)
    incidence, cond, base, repeat = category_affinity(lines)
    aff = _affinity_table(ids, incidence, cond, base, repeat)
    offer_frame = _offer_frame(offers, products, lines)
    bought = lines[lines["amount"] > 0]
    owners = bought.groupby("product")["customer_id"].unique()
    required = incidence.reindex(ids, fill_value=False)

    parts = []
    for row in offer_frame.itertuples(
        index=False
    ):  # a loop over offers (a handful), vectorised over customers
        o: Offer = row.offer
        ok = _eligible(cand, o)
        if o.requires_categories:
            needed = [c for c in o.requires_categories if c in required.columns]
            ok &= required[needed].any(axis=1).to_numpy() if needed else False
        a = aff[aff["category"] == row.category].set_index("customer_id").reindex(ids)
        if o.product is not None:
            ok &= ~ids.isin(owners.get(o.product, []))
        elif o.new_to_customer:
            ok &= ~a["owned"].fillna(False).to_numpy(bool)
        if not ok.any():
            continue
        part = cand.loc[ok, ["customer_id"]].copy()
        sel = a.loc[part["customer_id"]]
        part["affinity"] = sel["affinity"].fillna(base.get(row.category, 0.0)).to_numpy() * row.product_share
        for col in ("owned", "buyer", "driver", "driver_p", "base", "repeat"):
            part[col] = sel[col].to_numpy()
        part["offer_id"], part["offer_name"], part["target"] = o.id, o.name, o.product or o.category
        part["category"], part["margin"], part["kind"] = (
            row.category,
            row.margin,
            "product" if o.product else "category",
        )
        part["channels"] = [o.channels] * len(part)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=cols)
    cands = pd.concat(parts, ignore_index=True).explode("channels").rename(columns={"channels": "channel"})

    allowed = np.ones(len(cands), dtype=bool)
    flags = cand.set_index("customer_id")
    for ch, col in settings.channel_consent.items():
        on = (cands["channel"] == ch).to_numpy()
        if (
            col is not None and on.any()
        ):  # only an explicit True allows a channel; no flag at all = no consent
            given = (
                flags[col].reindex(cands.loc[on, "customer_id"])
                if col in flags
                else pd.Series(pd.NA, index=range(on.sum()))
            )
            allowed[on] = given.astype("boolean").fillna(False).to_numpy(bool)
    cands["rate"] = cands["channel"].map(settings.response_rates).astype(float)
    cands["history"] = ""
    if feedback is not None and len(feedback):
        fb = feedback.set_index(["customer_id", "channel"])
        key = pd.MultiIndex.from_frame(cands[["customer_id", "channel"]])
        hist = fb.reindex(key)
        rate = hist["rate_shrunk"].to_numpy(float) if "rate_shrunk" in hist else np.full(len(cands), np.nan)
        cands["rate"] = np.where(np.isnan(rate), cands["rate"], rate)
        contacts, responses = hist["contacts"].to_numpy(float), hist["responses"].to_numpy(float)
        allowed &= ~((contacts >= settings.never_min_contacts) & (responses == 0))
        has = ~np.isnan(contacts)
        cands.loc[has, "history"] = (
            "answered "
            + pd.Series(responses[has]).astype(int).astype(str).to_numpy()
            + " of "
            + pd.Series(contacts[has]).astype(int).astype(str).to_numpy()
            + " contacts"
        )
    cands = cands[allowed & cands["rate"].notna().to_numpy()]
    cands["propensity"] = cands["affinity"] * cands["rate"]
    cands["expected_value"] = cands["propensity"] * cands["margin"]
    cands = cands[cands["expected_value"] > settings.min_expected_value]
    # best channel per customer × offer, then the best offers per customer
    cands = cands.sort_values(
        ["customer_id", "offer_id", "expected_value", "channel"],
        ascending=[True, True, False, True],
        kind="stable",
    ).drop_duplicates(["customer_id", "offer_id"])
    cands = cands.sort_values(
        ["customer_id", "expected_value", "offer_id"], ascending=[True, False, True], kind="stable"
    )
    cands["rank"] = cands.groupby("customer_id").cumcount() + 1
    top = cands[cands["rank"] <= settings.max_offers].reset_index(drop=True)
    top["reason"] = _reasons(top, currency)
    return top[cols]


def _pct(x: pd.Series) -> pd.Series:
    return (100 * x).round().astype(int).astype(str) + " %"


def _reasons(top: pd.DataFrame, currency: str) -> pd.Series:
    """Why this offer, in words: the category signal, the channel, the value."""
    cat = top["category"].astype(str)
    why = np.select(
        [
            top["owned"].fillna(False).astype(bool),
            top["buyer"].fillna(False).astype(bool) & top["driver"].notna(),
        ],
        [
            "buys " + cat + " again (" + _pct(top["repeat"].fillna(0)) + " of its buyers do)",
            "buyers of "
            + top["driver"].astype(str)
            + " also buy "
            + cat
            + " ("
            + _pct(top["driver_p"].fillna(0))
            + ")",
        ],
        cat + " is bought by " + _pct(top["base"].fillna(0)) + " of customers",
    )
    product = np.where(top["target"] != top["category"], top["offer_name"].astype(str) + ": ", "")
    channel = np.where(
        top["history"] != "",
        "via " + top["channel"] + " (" + top["history"] + ")",
        "via " + top["channel"] + " (typical response " + (100 * top["rate"]).round(1).astype(str) + " %)",
    )
    value = (
        "margin "
        + top["margin"].round(0).astype(int).astype(str)
        + " "
        + currency
        + ", expected "
        + top["expected_value"].round(2).astype(str)
        + " "
        + currency
    )
    return pd.Series(product + why + "; " + channel + "; " + value, index=top.index)
