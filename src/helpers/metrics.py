"""Customer metrics: one row per golden customer per period, from the staged records of every source.

Pure functions (frames and settings in, frames out, no I/O). The notebook 04_metrics loads the staged
records and the unify outputs, calls these and saves one store table per concept, keyed by period and
customer_id (see TABLES). Only records dated up to `as_of` (the period end, 23:59:59 of its last day)
count, whatever later records the raw data holds.

In run order: ``link`` (staged rows -> customer_id through the crosswalk) -> ``transaction_lines``
(reporting currency, catalogue cost and margin) -> ``order_table`` (one row per order or invoice)
-> per concept: ``value_metrics``, ``preferences`` (+ ``category_shares``), ``sales_cycle``,
``service_metrics``, ``score_mentions`` -> ``sentiment_metrics``, ``payment_metrics``,
``engagement_metrics``, ``relationship_trend``, ``rfm_scores``; CLV lives in ``helpers.clv``.

Definitions a reader needs (the notebook repeats them):
- revenue is net of refunds (negative lines), in the reporting currency; an order is a purchase
  when its net amount is > 0, a refund when < 0; AOV = mean net amount of purchase orders;
- `_period` = the report month, `_12m` = the last 12 months, `_lifetime` = all history up to `as_of`; service counts (`tickets`) cover `service_window_months`, `tickets_recent`
  the last `spike_months`;
- recency = days from the last purchase to `as_of`; tenure = days from the earliest of the golden
  record's `created_at` and the first purchase;
- margin = amount - quantity × catalogue unit cost, on lines whose product is in the catalogue
  (`margin_coverage` = share of revenue with a known cost).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from helpers.clv import ClvSettings
from helpers.sentiment import SentimentSettings
from helpers.sentiment import score as score_texts

DAYS_PER_MONTH = 30.4375
#: Store tables written by 04_metrics (one per concept), keyed by period and customer_id.
TABLES = {
    "value": "customer_value",
    "preferences": "customer_preferences",
    "category_shares": "customer_category_shares",
    "sales_cycle": "customer_sales_cycle",
    "service": "customer_service",
    "sentiment": "customer_sentiment",
    "payment": "customer_payment",
    "engagement": "customer_engagement",
    "trend": "customer_trend",
    "rfm": "customer_rfm",
    "clv": "customer_clv",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrendSettings(_Strict):
    """Relationship trend: recent window vs the window before it, on value and on engagement."""

    recent_months: int = Field(6, ge=1)
    earlier_months: int = Field(12, ge=1)
    value_weight: float = Field(0.6, ge=0)
    engagement_weight: float = Field(0.4, ge=0)
    advancing_at: float = Field(0.3, gt=0, le=1)  # score >= this -> advancing
    regressing_at: float = Field(-0.3, ge=-1, lt=0)  # score <= this -> regressing
    engagement_types: list[str] = Field(
        default_factory=lambda: ["survey", "visit"]
    )  # interactions that count

    @model_validator(mode="after")
    def _weights(self) -> TrendSettings:
        if self.value_weight + self.engagement_weight <= 0:
            raise ValueError("value_weight + engagement_weight must be > 0")
        return self


class RfmSettings(_Strict):
    window_months: int = Field(24, ge=1)  # F and M count orders and revenue in this window
    bins: int = Field(5, ge=2, le=10)  # scores 1..bins by quantile; 0 = no purchase in the window


class MetricsSettings(_Strict):
    """The `metrics:` section of params/default.yaml."""

    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    fx_per_unit: dict[str, float] = Field(default_factory=lambda: {"EUR": 1.0, "USD": 1.08, "GBP": 0.85})
    service_window_months: int = Field(12, ge=1)  # tickets, surveys and mentions counted in this window
    spike_months: int = Field(3, ge=1)  # tickets in the last N months, for the ticket-spike rule
    top_n: int = Field(3, ge=1)  # top categories / products listed
    nps_promoter_min: float = 9
    nps_detractor_max: float = 6
    payment_buckets: list[int] = Field(default_factory=lambda: [30, 60, 90])  # days late, upper edges
    payment_window_months: int = Field(12, ge=1)
    sentiment: SentimentSettings = SentimentSettings()
    trend: TrendSettings = TrendSettings()
    rfm: RfmSettings = RfmSettings()
    clv: ClvSettings = ClvSettings()

    @model_validator(mode="after")
    def _consistent(self) -> MetricsSettings:
        if self.fx_per_unit.get(self.currency) != 1.0:
            raise ValueError(f"fx_per_unit must give the reporting currency {self.currency} a rate of 1.0")
        if sorted(self.payment_buckets) != self.payment_buckets or len(set(self.payment_buckets)) < 1:
            raise ValueError("payment_buckets must be increasing day counts, e.g. [30, 60, 90]")
        return self


def metrics_settings(settings: Any) -> MetricsSettings:
    """Validate the `metrics:` section of a `helpers.config.Settings` (or a plain dict)."""
    from pathlib import Path

    from helpers.config import explain_validation_error

    section = settings if isinstance(settings, dict) else settings.metrics
    try:
        return MetricsSettings(**(section or {}))
    except ValidationError as exc:
        raise explain_validation_error(
            Path(getattr(settings, "root", ".")) / "params" / "default.yaml", exc, prefix="metrics"
        ) from None


# ----------------------------------------------------------------------------------------- inputs
def period_end(period: str) -> pd.Timestamp:
    """23:59:59 of the last day of the month 'YYYY-MM'."""
    return pd.Period(period, "M").end_time.floor("s")


def months_before(as_of: pd.Timestamp, months: int) -> pd.Timestamp:
    """The instant `months` calendar months before `as_of` (window starts are exclusive)."""
    return pd.Timestamp(as_of) - pd.DateOffset(months=months)


def link(records: pd.DataFrame, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Staged non-party rows with their `customer_id`: (party_source, party_id) = crosswalk (source, source_id).

    Rows whose party record is not in the crosswalk are dropped (the notebook counts them)."""
    key = crosswalk[["source", "source_id", "customer_id"]].astype(
        {"source": "string", "source_id": "string"}
    )
    key = key.drop_duplicates(["source", "source_id"]).rename(
        columns={"source": "party_source", "source_id": "party_id"}
    )
    left = records.drop(columns=["customer_id"], errors="ignore").astype(
        {"party_source": "string", "party_id": "string"}
    )
    return left.merge(key, on=["party_source", "party_id"], how="inner")


def _catalogue(products: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["code", "name", "cat_category", "unit_cost"]
    if products is None or products.empty:
        return pd.DataFrame(columns=cols)
    p = products.rename(columns={"source_id": "code", "product": "name", "category": "cat_category"})
    return p.drop_duplicates("code")[cols]


def transaction_lines(
    transactions: pd.DataFrame,
    crosswalk: pd.DataFrame,
    products: pd.DataFrame | None,
    settings: MetricsSettings,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Linked transaction lines dated up to `as_of`, in the reporting currency, with catalogue cost and margin.

    The product is looked up in the catalogue by code, then by name. A currency missing from
    `fx_per_unit` is excluded with a warning naming it (add its rate to params/default.yaml)."""
    t = link(transactions, crosswalk)
    t = t[t["date"].notna() & t["amount"].notna() & (t["date"] <= as_of)].copy()
    currency = t["currency"].astype("string").fillna(settings.currency)
    rate = currency.map(settings.fx_per_unit).astype(float)
    unknown = rate.isna()
    if unknown.any():
        warnings.warn(
            f"{int(unknown.sum())} transaction lines in currencies without a rate "
            f"{sorted(currency[unknown].unique())} are left out; add them to metrics.fx_per_unit",
            stacklevel=2,
        )
        t, rate = t[~unknown], rate[~unknown]
    t["amount"] = t["amount"].astype(float) / rate
    cat = _catalogue(products)
    code = t["product"].astype("string")
    by_code = code.map(cat.set_index("code")["unit_cost"]) if len(cat) else pd.Series(np.nan, index=t.index)
    by_name = (
        code.str.lower().map(
            cat.assign(k=cat["name"].str.lower()).drop_duplicates("k").set_index("k")["unit_cost"]
        )
        if len(cat)
        else pd.Series(np.nan, index=t.index)
    )
    unit_cost = by_code.astype(float).fillna(by_name.astype(float))
    if len(cat):
        t["category"] = t["category"].fillna(code.map(cat.set_index("code")["cat_category"]))
    t["cost"] = np.sign(t["amount"]) * t["quantity"].abs() * unit_cost
    t["margin"] = t["amount"] - t["cost"]
    order = t["order_id"].astype("string").fillna(t["source_id"].astype("string"))
    t["order_key"] = t["source"].astype("string") + ":" + order
    cols = [
        "customer_id",
        "source",
        "order_key",
        "date",
        "product",
        "category",
        "quantity",
        "amount",
        "cost",
        "margin",
        "channel",
        "payment_method",
        "due_date",
        "paid_date",
    ]
    return t[cols].reset_index(drop=True)


def order_table(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per order / invoice: date, net amount, margin, channel, payment method, due and paid dates.

    `kind` is purchase (net > 0), refund (net < 0) or zero; `paid_date` is set only when every line is paid."""
    flags = lines.assign(_unpaid=lines["paid_date"].isna(), _nocost=lines["cost"].isna())
    g = flags.groupby(["customer_id", "order_key"], sort=False)
    out = g.agg(
        date=("date", "min"),
        amount=("amount", "sum"),
        margin=("margin", "sum"),
        nocost=("_nocost", "sum"),
        channel=("channel", "first"),
        payment_method=("payment_method", "first"),
        due_date=("due_date", "max"),
        paid_date=("paid_date", "max"),
        unpaid_lines=("_unpaid", "sum"),
        lines=("amount", "size"),
    )
    out = out.reset_index()
    out.loc[out["unpaid_lines"] > 0, "paid_date"] = pd.NaT
    out["cost_known"] = out["nocost"] == 0
    out.loc[~out["cost_known"], "margin"] = np.nan
    out["kind"] = np.select([out["amount"] > 0, out["amount"] < 0], ["purchase", "refund"], "zero")
    return out.drop(columns=["unpaid_lines", "nocost"])


def _frame(customer_ids: pd.Index | pd.Series) -> pd.DataFrame:
    return pd.DataFrame(index=pd.Index(pd.unique(np.asarray(customer_ids)), name="customer_id"))


def _in(
    dates: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp, *, from_start: bool = False
) -> pd.Series:
    """start < date <= end (start <= date with `from_start`, for a calendar period; None = no bound)."""
    ok = dates <= end
    if start is None:
        return ok
    return ok & ((dates >= start) if from_start else (dates > start))


# ------------------------------------------------------------------------------------------ value
def value_metrics(
    orders: pd.DataFrame,
    customers: pd.DataFrame,
    settings: MetricsSettings,
    as_of: pd.Timestamp,
    period_start: pd.Timestamp,
) -> pd.DataFrame:
    """Revenue (period, last 12 months, lifetime), orders, refunds, recency, tenure, frequency, AOV and margin."""
    out = _frame(customers["customer_id"])
    o = orders[orders["date"] <= as_of]
    trailing = months_before(as_of, 12)
    buy = o[o["kind"] == "purchase"]
    for name, start in (("period", period_start), ("12m", trailing), ("lifetime", None)):
        calendar = name == "period"  # the period's first midnight belongs to the period
        win = _in(o["date"], start, as_of, from_start=calendar)
        out[f"revenue_{name}"] = o[win].groupby("customer_id")["amount"].sum()
        out[f"orders_{name}"] = (
            buy[_in(buy["date"], start, as_of, from_start=calendar)].groupby("customer_id").size()
        )
    ref = o[o["kind"] == "refund"]
    out["refunds_lifetime"] = -ref.groupby("customer_id")["amount"].sum()
    out["refund_orders"] = ref.groupby("customer_id").size()
    counts = [c for c in out.columns if c.startswith(("revenue_", "orders_", "refund"))]
    out[counts] = out[counts].fillna(0)
    gb = buy.groupby("customer_id")["date"]
    out["first_purchase_at"], out["last_purchase_at"] = gb.min(), gb.max()
    out["recency_days"] = (as_of - out["last_purchase_at"]).dt.total_seconds() / 86400
    created = customers.set_index("customer_id")["created_at"] if "created_at" in customers else None
    start = out["first_purchase_at"]
    if created is not None:
        created = pd.to_datetime(created).where(lambda s: s <= as_of)
        start = pd.concat([start, created.reindex(out.index)], axis=1).min(axis=1)
    out["tenure_days"] = (as_of - start).dt.total_seconds() / 86400
    span_months = (out["tenure_days"] / DAYS_PER_MONTH).clip(lower=1, upper=12)
    out["orders_per_month"] = out["orders_12m"] / span_months
    out["aov"] = buy.groupby("customer_id")["amount"].mean()
    known = o[o["cost_known"]]
    out["margin_lifetime"] = known.groupby("customer_id")["margin"].sum()
    out["margin_12m"] = known[_in(known["date"], trailing, as_of)].groupby("customer_id")["margin"].sum()
    known_rev = known.groupby("customer_id")["amount"].sum()
    out["margin_rate"] = out["margin_lifetime"] / known_rev.where(known_rev > 0)
    gross = o["amount"].abs().groupby(o["customer_id"]).sum()
    out["margin_coverage"] = known["amount"].abs().groupby(known["customer_id"]).sum().reindex(
        gross.index
    ).fillna(0) / gross.where(gross > 0)
    return out.reset_index()


# ------------------------------------------------------------------------------------ preferences
def category_shares(lines: pd.DataFrame, as_of: pd.Timestamp, *, column: str = "category") -> pd.DataFrame:
    """Long table: customer × category (or product) with net revenue, share of the customer's revenue, rank."""
    pos = lines[(lines["date"] <= as_of) & lines[column].notna()]
    rev = (
        pos.groupby(["customer_id", column], observed=True)["amount"]
        .sum()
        .clip(lower=0)
        .reset_index(name="revenue")
    )
    rev = rev[rev["revenue"] > 0]
    rev["share"] = rev["revenue"] / rev.groupby("customer_id")["revenue"].transform("sum")
    rev = rev.sort_values(["customer_id", "share", column], ascending=[True, False, True], kind="stable")
    rev["rank"] = rev.groupby("customer_id").cumcount() + 1
    return rev.reset_index(drop=True)


def _top(shares: pd.DataFrame, column: str, n: int, sep: str = ", ") -> pd.Series:
    """The first n names by rank, joined with `sep` (built rank by rank: no Python loop over customers)."""
    wide = shares[shares["rank"] <= n].pivot(index="customer_id", columns="rank", values=column)
    if wide.empty:
        return pd.Series(dtype=object)
    joined = wide[1].astype(str)
    for r in range(2, min(n, int(wide.columns.max())) + 1):
        nxt = wide[r]
        joined = joined.where(nxt.isna(), joined + sep + nxt.astype(str))
    return joined


def preferences(
    lines: pd.DataFrame,
    orders: pd.DataFrame,
    customers: pd.DataFrame,
    settings: MetricsSettings,
    as_of: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top categories and products by share of revenue, the top category's share, the preferred purchase
    channel (most purchase orders; ties by revenue, then name); plus the long category-share table."""
    out = _frame(customers["customer_id"])
    cats = category_shares(lines, as_of, column="category")
    prods = category_shares(lines, as_of, column="product")
    out["top_categories"] = _top(cats, "category", settings.top_n)
    out["top_category"] = cats[cats["rank"] == 1].set_index("customer_id")["category"]
    out["top_category_share"] = cats[cats["rank"] == 1].set_index("customer_id")["share"]
    out["categories_bought"] = cats.groupby("customer_id").size()
    out["top_products"] = _top(prods, "product", settings.top_n)
    buy = orders[(orders["kind"] == "purchase") & (orders["date"] <= as_of) & orders["channel"].notna()]
    ch = (
        buy.groupby(["customer_id", "channel"])
        .agg(n=("amount", "size"), revenue=("amount", "sum"))
        .reset_index()
    )
    ch = ch.sort_values(
        ["customer_id", "n", "revenue", "channel"], ascending=[True, False, False, True], kind="stable"
    )
    out["preferred_channel"] = ch.drop_duplicates("customer_id").set_index("customer_id")["channel"]
    out["categories_bought"] = out["categories_bought"].fillna(0).astype(int)
    return out.reset_index(), cats


# ------------------------------------------------------------------------------------- sales cycle
def sales_cycle(
    opportunities: pd.DataFrame, orders: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """CRM opportunities as of `as_of`: counts by outcome, win rate, days created -> won, days created -> first
    purchase on or after it (won opportunities), open pipeline amount. An opportunity closed after
    `as_of` was still open then."""
    out = _frame(customers["customer_id"])
    o = opportunities[opportunities["created_at"].notna() & (opportunities["created_at"] <= as_of)].copy()
    closed = o["closed_at"].notna() & (o["closed_at"] <= as_of)
    o["outcome"] = np.where(
        closed, o["stage"].astype("string").str.strip().str.lower().fillna("open"), "open"
    )
    for k in ("won", "lost", "open"):
        out[f"opportunities_{k}"] = o[o["outcome"] == k].groupby("customer_id").size()
    cnt = [f"opportunities_{k}" for k in ("won", "lost", "open")]
    out[cnt] = out[cnt].fillna(0).astype(int)
    out["opportunities"] = out[cnt].sum(axis=1)
    decided = out["opportunities_won"] + out["opportunities_lost"]
    out["win_rate"] = out["opportunities_won"] / decided.where(decided > 0)
    won = o[o["outcome"] == "won"].copy()
    won["cycle_days"] = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86400
    out["sales_cycle_days"] = won.groupby("customer_id")["cycle_days"].mean()
    buys = orders.loc[(orders["kind"] == "purchase") & (orders["date"] <= as_of), ["customer_id", "date"]]
    if len(won) and len(buys):
        left = won[["customer_id", "created_at"]].sort_values("created_at")
        right = buys.sort_values("date").rename(columns={"date": "first_order_at"})
        hit = pd.merge_asof(
            left,
            right,
            left_on="created_at",
            right_on="first_order_at",
            by="customer_id",
            direction="forward",
        )
        hit["days"] = (hit["first_order_at"] - hit["created_at"]).dt.total_seconds() / 86400
        out["days_to_first_order"] = hit.groupby("customer_id")["days"].mean()
    else:
        out["days_to_first_order"] = np.nan
    out["open_pipeline"] = o[o["outcome"] == "open"].groupby("customer_id")["amount"].sum()
    out["open_pipeline"] = out["open_pipeline"].fillna(0.0)
    return out.reset_index()


# ----------------------------------------------------------------------------------------- service
def _nps_category(score: pd.Series, settings: MetricsSettings) -> pd.Series:
    cat = np.select(
        [score >= settings.nps_promoter_min, score <= settings.nps_detractor_max],
        ["promoter", "detractor"],
        "passive",
    )
    return pd.Series(cat, index=score.index, dtype="string").where(score.notna())


def service_metrics(
    interactions: pd.DataFrame, customers: pd.DataFrame, settings: MetricsSettings, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Tickets (window and recent), mean / p90 handling minutes, hours to resolution, open tickets, CSAT,
    last and mean NPS with the promoter / passive / detractor class."""
    out = _frame(customers["customer_id"])
    start = months_before(as_of, settings.service_window_months)
    i = interactions[interactions["opened_at"].notna() & _in(interactions["opened_at"], start, as_of)]
    kind = i["type"].astype("string").str.lower()
    t = i[kind == "ticket"].copy()
    out["tickets"] = t.groupby("customer_id").size()
    out["tickets_recent"] = (
        t[t["opened_at"] > months_before(as_of, settings.spike_months)].groupby("customer_id").size()
    )
    g = t.groupby("customer_id")["handling_minutes"]
    out["handling_minutes_mean"], out["handling_minutes_p90"] = g.mean(), g.quantile(0.9)
    done = t["closed_at"].notna() & (t["closed_at"] <= as_of)
    t["resolution_hours"] = ((t["closed_at"] - t["opened_at"]).dt.total_seconds() / 3600).where(done)
    out["resolution_hours_mean"] = t.groupby("customer_id")["resolution_hours"].mean()
    out["open_tickets"] = t[~done].groupby("customer_id").size()
    stype = i["score_type"].astype("string").str.lower()
    csat = i[(stype == "csat") & i["score"].notna()]
    out["csat_mean"], out["csat_responses"] = (
        csat.groupby("customer_id")["score"].mean(),
        csat.groupby("customer_id").size(),
    )
    nps = i[(stype == "nps") & i["score"].notna()].sort_values("opened_at", kind="stable")
    out["nps_last"] = nps.groupby("customer_id")["score"].last()
    out["nps_mean"] = nps.groupby("customer_id")["score"].mean()
    out["nps_category"] = _nps_category(out["nps_last"], settings)
    counts = ["tickets", "tickets_recent", "open_tickets", "csat_responses"]
    out[counts] = out[counts].fillna(0).astype(int)
    return out.reset_index()


def nps_score(service: pd.DataFrame) -> float:
    """Net promoter score of the customers who answered: % promoters - % detractors."""
    cat = service["nps_category"].dropna()
    return (
        float(100 * ((cat == "promoter").mean() - (cat == "detractor").mean())) if len(cat) else float("nan")
    )


# --------------------------------------------------------------------------------------- sentiment
def score_mentions(
    interactions: pd.DataFrame, settings: MetricsSettings, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Social mentions (type mention) up to `as_of` with polarity and sentiment label."""
    m = interactions[
        (interactions["type"].astype("string").str.lower() == "mention")
        & interactions["opened_at"].notna()
        & (interactions["opened_at"] <= as_of)
    ]
    m = m[["customer_id", "source", "source_id", "channel", "opened_at", "text"]].reset_index(drop=True)
    return pd.concat([m, score_texts(m["text"], settings.sentiment)], axis=1)


def sentiment_metrics(
    mentions: pd.DataFrame, customers: pd.DataFrame, settings: MetricsSettings, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Per customer: mentions in the window, positive / negative counts, mean polarity, last mention date."""
    out = _frame(customers["customer_id"])
    m = mentions[mentions["opened_at"] > months_before(as_of, settings.service_window_months)]
    g = m.groupby("customer_id")
    out["mentions"] = g.size()
    out["positive_mentions"] = m[m["sentiment"] == "positive"].groupby("customer_id").size()
    out["negative_mentions"] = m[m["sentiment"] == "negative"].groupby("customer_id").size()
    out[["mentions", "positive_mentions", "negative_mentions"]] = (
        out[["mentions", "positive_mentions", "negative_mentions"]].fillna(0).astype(int)
    )
    out["sentiment_mean"] = g["polarity"].mean()
    out["last_mention_at"] = g["opened_at"].max()
    return out.reset_index()


# ----------------------------------------------------------------------------------------- payment
def payment_metrics(
    orders: pd.DataFrame, customers: pd.DataFrame, settings: MetricsSettings, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Preferred payment method; over invoices (orders with a due date) dated in the window: mean days
    to pay (invoice date -> paid), mean days late (due -> paid), shares paid within each bucket of days
    late (early counts as within the first); over all invoices up to `as_of`: outstanding balance and
    invoices, overdue balance and the oldest overdue days. An invoice paid after `as_of` is unpaid."""
    out = _frame(customers["customer_id"])
    o = orders[(orders["date"] <= as_of)]
    start = months_before(as_of, settings.payment_window_months)
    buy = o[(o["kind"] == "purchase") & (o["date"] > start) & o["payment_method"].notna()]
    pm = buy.groupby(["customer_id", "payment_method"]).size().reset_index(name="n")
    pm = pm.sort_values(["customer_id", "n", "payment_method"], ascending=[True, False, True], kind="stable")
    out["preferred_payment_method"] = pm.drop_duplicates("customer_id").set_index("customer_id")[
        "payment_method"
    ]
    inv = o[(o["kind"] == "purchase") & o["due_date"].notna()].copy()
    paid = inv["paid_date"].notna() & (inv["paid_date"] <= as_of)
    inv["days_to_pay"] = ((inv["paid_date"] - inv["date"].dt.normalize()).dt.days).where(paid)
    inv["days_late"] = ((inv["paid_date"] - inv["due_date"]).dt.days).where(paid)
    recent = inv[inv["date"] > start]
    out["invoices"] = recent.groupby("customer_id").size()
    settled = recent[recent["days_late"].notna()]
    g = settled.groupby("customer_id")
    out["invoices_paid"] = g.size()
    out["mean_days_to_pay"], out["mean_days_late"] = g["days_to_pay"].mean(), g["days_late"].mean()
    edges = [-np.inf, *settings.payment_buckets, np.inf]
    names = [
        f"share_paid_within_{b}d" if i == 0 else f"share_paid_{edges[i] + 1:.0f}_{b}d"
        for i, b in enumerate(settings.payment_buckets)
    ] + [f"share_paid_over_{settings.payment_buckets[-1]}d"]
    bucket = pd.cut(settled["days_late"], edges, labels=names, right=True)
    shares = pd.crosstab(settled["customer_id"], bucket, normalize="index").reindex(
        columns=names, fill_value=0.0
    )
    for name in names:
        out[name] = shares[name] if len(shares) else np.nan
    open_ = inv[~paid]
    out["outstanding_invoices"] = open_.groupby("customer_id").size()
    out["outstanding_balance"] = open_.groupby("customer_id")["amount"].sum()
    overdue = open_[open_["due_date"] < as_of.normalize()]
    out["overdue_balance"] = overdue.groupby("customer_id")["amount"].sum()
    out["max_days_overdue"] = (as_of.normalize() - overdue.groupby("customer_id")["due_date"].min()).dt.days
    fill = ["invoices", "invoices_paid", "outstanding_invoices", "outstanding_balance", "overdue_balance"]
    out[fill] = out[fill].fillna(0)
    out[["invoices", "invoices_paid", "outstanding_invoices"]] = out[
        ["invoices", "invoices_paid", "outstanding_invoices"]
    ].astype(int)
    return out.reset_index()


# -------------------------------------------------------------------------------------- engagement
def engagement_metrics(contacts: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Campaign contacts made (control arm excluded) up to `as_of`: e-mails sent and opened, responses
    (offers redeemed = responses with revenue), campaign revenue, last response, and the response
    history per channel in words ("email 2/5 · sms 0/1")."""
    out = _frame(customers["customer_id"])
    c = contacts[
        ~contacts["control"].astype("boolean").fillna(False).astype(bool)
        & contacts["contacted_at"].notna()
        & (contacts["contacted_at"] <= as_of)
    ].copy()
    responded = c["responded"].astype("boolean").fillna(False).astype(bool)
    responded &= c["response_at"].isna() | (c["response_at"] <= as_of)
    c["_resp"] = responded
    c["_open"] = c["opened"].astype("boolean").fillna(False).astype(bool)
    c["_redeemed"] = responded & (c["revenue"].fillna(0) > 0)
    c["_rev"] = c["revenue"].fillna(0).where(responded, 0.0)
    email = c["channel"].astype("string").str.lower() == "email"
    g = c.groupby("customer_id")
    out["contacts"], out["responses"], out["offers_redeemed"] = (
        g.size(),
        g["_resp"].sum(),
        g["_redeemed"].sum(),
    )
    out["emails_sent"] = c[email].groupby("customer_id").size()
    out["emails_opened"] = c[email].groupby("customer_id")["_open"].sum()
    out["campaign_revenue"] = g["_rev"].sum()
    counts = ["contacts", "responses", "offers_redeemed", "emails_sent", "emails_opened"]
    out[counts] = out[counts].fillna(0).astype(int)
    out["campaign_revenue"] = out["campaign_revenue"].fillna(0.0)
    out["email_open_rate"] = out["emails_opened"] / out["emails_sent"].where(out["emails_sent"] > 0)
    out["response_rate"] = out["responses"] / out["contacts"].where(out["contacts"] > 0)
    out["last_response_at"] = c[responded].groupby("customer_id")["response_at"].max()
    out["days_since_last_response"] = (as_of - out["last_response_at"]).dt.days
    per = c.groupby(["customer_id", "channel"]).agg(n=("_resp", "size"), r=("_resp", "sum")).reset_index()
    per["txt"] = (
        per["channel"].astype(str) + " " + per["r"].astype(int).astype(str) + "/" + per["n"].astype(str)
    )
    per["rank"] = per.groupby("customer_id").cumcount() + 1
    out["response_history"] = _top(per, "txt", int(per["rank"].max()) if len(per) else 1, sep=" · ")
    return out.reset_index()


# ------------------------------------------------------------------------------------------- trend
def _change(recent: pd.Series, earlier: pd.Series) -> pd.Series:
    """(recent - earlier) / max(recent, earlier), in [-1, 1]; 0 when both are 0."""
    top = np.maximum(recent, earlier)
    return ((recent - earlier) / top.where(top > 0)).fillna(0.0)


def relationship_trend(
    orders: pd.DataFrame,
    contacts: pd.DataFrame | None,
    interactions: pd.DataFrame | None,
    customers: pd.DataFrame,
    settings: MetricsSettings,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Advancing / stagnating / regressing from the recent window vs the window before it.

    value = net revenue per month; engagement = events per month (purchase orders, campaign opens and
    responses, interactions of `trend.engagement_types`). Each change is (recent - earlier) /
    max(recent, earlier) in [-1, 1]; score = weighted mean of the two. score >= advancing_at ->
    advancing, <= regressing_at -> regressing, else stagnating; nothing in either window -> inactive."""
    ts = settings.trend
    out = _frame(customers["customer_id"])
    mid = months_before(as_of, ts.recent_months)
    start = months_before(mid, ts.earlier_months)
    o = orders[orders["date"] <= as_of]
    events = [o.loc[o["kind"] == "purchase", ["customer_id", "date"]]]
    if contacts is not None and len(contacts):
        c = contacts[~contacts["control"].astype("boolean").fillna(False).astype(bool)]
        opened = c["opened"].astype("boolean").fillna(False).astype(bool)
        events.append(c.loc[opened, ["customer_id", "contacted_at"]].rename(columns={"contacted_at": "date"}))
        resp = c["responded"].astype("boolean").fillna(False).astype(bool) & c["response_at"].notna()
        events.append(c.loc[resp, ["customer_id", "response_at"]].rename(columns={"response_at": "date"}))
    if interactions is not None and len(interactions):
        i = interactions[interactions["type"].astype("string").str.lower().isin(ts.engagement_types)]
        events.append(i[["customer_id", "opened_at"]].rename(columns={"opened_at": "date"}))
    ev = pd.concat(events, ignore_index=True)
    for name, lo, hi, months in (
        ("recent", mid, as_of, ts.recent_months),
        ("earlier", start, mid, ts.earlier_months),
    ):
        out[f"value_{name}"] = o[_in(o["date"], lo, hi)].groupby("customer_id")["amount"].sum() / months
        out[f"engagement_{name}"] = ev[_in(ev["date"], lo, hi)].groupby("customer_id").size() / months
    cols = ["value_recent", "value_earlier", "engagement_recent", "engagement_earlier"]
    out[cols] = out[cols].fillna(0.0)
    out["value_change"] = _change(out["value_recent"].clip(lower=0), out["value_earlier"].clip(lower=0))
    out["engagement_change"] = _change(out["engagement_recent"], out["engagement_earlier"])
    w = ts.value_weight + ts.engagement_weight
    out["trend_score"] = (
        ts.value_weight * out["value_change"] + ts.engagement_weight * out["engagement_change"]
    ) / w
    inactive = out[cols].abs().sum(axis=1) == 0
    out["trend"] = np.select(
        [inactive, out["trend_score"] >= ts.advancing_at, out["trend_score"] <= ts.regressing_at],
        ["inactive", "advancing", "regressing"],
        "stagnating",
    )
    return out.reset_index()


# --------------------------------------------------------------------------------------------- RFM
def _quantile_score(values: pd.Series, bins: int) -> pd.Series:
    """1..bins by percentile rank (ties share a score); higher value -> higher score."""
    pct = values.rank(method="average", pct=True)
    return np.ceil(pct * bins).clip(1, bins)


def rfm_scores(
    orders: pd.DataFrame, customers: pd.DataFrame, settings: MetricsSettings, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Recency, frequency, monetary scores 1..bins (quantiles over customers who bought in the window;
    0 for those who did not), the code "R-F-M" (e.g. "545") and the sum."""
    rs = settings.rfm
    out = _frame(customers["customer_id"])
    start = months_before(as_of, rs.window_months)
    o = orders[_in(orders["date"], start, as_of)]
    buy = o[o["kind"] == "purchase"]
    g = buy.groupby("customer_id")
    out["rfm_recency_days"] = (as_of - g["date"].max()).dt.total_seconds() / 86400
    out["rfm_frequency"] = g.size()
    out["rfm_monetary"] = o.groupby("customer_id")["amount"].sum().reindex(g.size().index)
    has = out["rfm_frequency"].notna()
    out["r_score"] = _quantile_score(-out.loc[has, "rfm_recency_days"], rs.bins)
    out["f_score"] = _quantile_score(out.loc[has, "rfm_frequency"], rs.bins)
    out["m_score"] = _quantile_score(out.loc[has, "rfm_monetary"], rs.bins)
    scores = ["r_score", "f_score", "m_score"]
    out[scores] = out[scores].fillna(0).astype(int)
    out["rfm_frequency"] = out["rfm_frequency"].fillna(0).astype(int)
    out["rfm_code"] = out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)
    out["rfm_total"] = out[scores].sum(axis=1)
    return out.reset_index()


# ------------------------------------------------------------------------------------------- all
def wide(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per customer with every metric: the concept tables joined on customer_id (on a name
    clash the first table's column wins)."""
    frames = [t.set_index("customer_id") for name, t in tables.items() if name != "category_shares"]
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f[[c for c in f.columns if c not in out.columns]], how="left")
    return out.reset_index()


def truth_person(crosswalk: pd.DataFrame, truth_records: pd.DataFrame) -> pd.Series:
    """customer_id -> the true person behind most of its records (sample company accuracy sections only)."""
    m = (
        crosswalk[["source", "source_id", "customer_id"]]
        .astype({"source_id": str})
        .merge(truth_records.astype({"source_id": str}), on=["source", "source_id"])
    )
    votes = m.groupby(["customer_id", "person_id"]).size().reset_index(name="n")
    best = votes.sort_values(
        ["customer_id", "n", "person_id"], ascending=[True, False, True]
    ).drop_duplicates("customer_id")
    return best.set_index("customer_id")["person_id"]
