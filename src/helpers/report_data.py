"""What the audience reports show, assembled from the store (and the period's processed files).

The report notebooks in notebooks/reports/ stay thin: each resolves the period, calls these loaders
with the store path and draws the frames they return. This module is the reports' loader, so it does
I/O at its edge (read-only); the shaping is done by small pure functions (`kpi_changes`,
`offer_text`, `channel_text`, `campaign_totals`, `linkage_funnel`, ...) that test with tiny frames.

A table a stage has not written (yet) gives an empty frame or NaN, never an error: a report says
"not available" rather than failing the run. Every figure is for one `period`; the trend functions
read every period up to it, since each store table keeps one slice per period.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from helpers import store as store_io

# --------------------------------------------------------------------------------------------------
# Store access
# --------------------------------------------------------------------------------------------------


def _tables(store: Path) -> set[str]:
    if not Path(store).exists():
        return set()
    with store_io.connect(store, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _load(store: Path, table: str, period: str) -> pd.DataFrame:
    """One period's slice of a store table without its `period` column (empty if absent)."""
    frame = store_io.load_table(store, table, period=period)
    return frame.drop(columns="period", errors="ignore")


def _query(
    store: Path, sql: str, params: list[Any] | None = None, *, needs: Sequence[str] = ()
) -> pd.DataFrame:
    """A read-only query; an empty frame when a table it `needs` is not in the store."""
    if not set(needs) <= _tables(store):
        return pd.DataFrame()
    return store_io.query(store, sql, params)


def periods(store: Path, table: str = "customers") -> list[str]:
    """Every period with a slice of `table` in the store, oldest first."""
    if table not in _tables(store):
        return []
    return store_io.query(store, f'SELECT DISTINCT period FROM "{table}" ORDER BY period')["period"].tolist()


def resolve_period(store: Path, period: str | None = None) -> str:
    """`period` when given, else the latest period of golden customers in the store."""
    if period:
        return str(period)
    known = periods(store)
    if not known:
        raise LookupError(f"no period in the store {store}: run the stages first (scv run)")
    return known[-1]


def previous_period(store: Path, period: str, table: str = "customers") -> str | None:
    """The latest period before `period` with a slice of `table`, or None."""
    earlier = [p for p in periods(store, table) if p < period]
    return earlier[-1] if earlier else None


# --------------------------------------------------------------------------------------------------
# Headline KPIs and their trend
# --------------------------------------------------------------------------------------------------

#: KPI -> (label, store table, SQL aggregate over that table's rows of one period, format).
KPIS: dict[str, tuple[str, str, str, str]] = {
    "customers": ("Customers", "customers", "count(*)", "int"),
    "active_customers": (
        "Active customers (bought in 12 months)",
        "customer_value",
        "count(*) FILTER (WHERE orders_12m > 0)",
        "int",
    ),
    "revenue_12m": ("Revenue, last 12 months", "customer_value", "sum(revenue_12m)", "money"),
    "clv_12m": ("Expected value, next 12 months (CLV)", "customer_clv", "sum(clv)", "money"),
    "churn_risk": ("Mean churn risk of buyers", "customer_churn", "avg(churn_probability)", "percent"),
    "high_churn_customers": (
        "Customers at high churn risk",
        "customer_churn",
        "count(*) FILTER (WHERE churn_band = 'high')",
        "int",
    ),
    "nps": (
        "NPS (promoters − detractors)",
        "customer_service",
        "100.0 * (count(*) FILTER (WHERE nps_category = 'promoter') - count(*) FILTER (WHERE nps_category = "
        "'detractor')) / nullif(count(nps_category), 0)",
        "score",
    ),
    "sentiment": (
        "Sentiment of social mentions (−1 to 1)",
        "customer_sentiment",
        "sum(sentiment_mean * mentions) / nullif(sum(mentions) FILTER (WHERE sentiment_mean IS NOT NULL), 0)",
        "signed",
    ),
}
#: Short labels of the KPIs, for the headline tiles.
KPI_TILE_LABELS = {
    "customers": "Customers",
    "active_customers": "Active customers, 12 months",
    "revenue_12m": "Revenue, last 12 months",
    "clv_12m": "CLV, next 12 months",
    "churn_risk": "Mean churn risk",
    "high_churn_customers": "At high churn risk",
    "nps": "NPS",
    "sentiment": "Social sentiment (−1 to 1)",
    "quality_score": "Data quality score",
}
#: Whether a rise of the KPI is good news (for the arrows of the tiles); None: neither.
KPI_GOOD_WHEN_UP: dict[str, bool | None] = {
    "customers": True,
    "active_customers": True,
    "revenue_12m": True,
    "clv_12m": True,
    "churn_risk": False,
    "high_churn_customers": False,
    "nps": True,
    "sentiment": True,
    "quality_score": True,
}


def kpis(store: Path, period: str, *, history: int = 13) -> pd.DataFrame:
    """Headline KPIs per period (index), for `period` and up to `history` - 1 periods before it.

    Columns are the keys of KPIS (NaN where a stage has not written its table for a period), plus
    `quality_score` when the quality scorecard is in the store.
    """
    present = _tables(store)
    known = [p for p in periods(store) if p <= period][-history:]
    out = pd.DataFrame(index=pd.Index(known, name="period"), columns=list(KPIS), dtype=float)
    by_table: dict[str, list[str]] = {}
    for key, (_, table, _, _) in KPIS.items():
        by_table.setdefault(table, []).append(key)
    for table, keys in by_table.items():
        if table not in present or not known:
            continue
        select = ", ".join(f"{KPIS[k][2]} AS {k}" for k in keys)
        marks = ", ".join("?" * len(known))
        frame = store_io.query(
            store,
            f'SELECT period, {select} FROM "{table}" WHERE period IN ({marks}) GROUP BY period',
            list(known),
        ).set_index("period")
        out.loc[frame.index, keys] = frame[keys].astype(float).to_numpy()
    quality = quality_trend(store, period)
    if len(quality):
        overall = quality[quality["dimension"] == "overall"].set_index("period")["score"]
        out["quality_score"] = overall.reindex(out.index).astype(float)
    return out


def kpi_changes(kpi_frame: pd.DataFrame, period: str) -> pd.DataFrame:
    """The KPIs of `period` beside the period before it: kpi, label, value, previous, change, format.

    `change` is relative (0.05 = +5 %) for counts and money, in points for rates and scores; NaN
    without an earlier period.
    """
    rows = []
    at = kpi_frame.index.get_loc(period) if period in kpi_frame.index else None
    for key in kpi_frame.columns:
        label, fmt = (KPIS[key][0], KPIS[key][3]) if key in KPIS else ("Data quality score", "percent")
        value = float(kpi_frame[key].iloc[at]) if at is not None else np.nan
        previous = float(kpi_frame[key].iloc[at - 1]) if at else np.nan
        if fmt in ("int", "money"):
            change = (value - previous) / abs(previous) if previous else np.nan
        else:
            change = value - previous
        rows.append(
            {
                "kpi": key,
                "label": label,
                "value": value,
                "previous": previous,
                "change": change,
                "format": fmt,
                "good_when_up": KPI_GOOD_WHEN_UP.get(key),
            }
        )
    return pd.DataFrame(rows)


#: The KPIs of the executive headline tiles, in order.
TILES = (
    "customers",
    "active_customers",
    "revenue_12m",
    "clv_12m",
    "high_churn_customers",
    "nps",
    "sentiment",
    "quality_score",
)


def kpi_tiles(changes: pd.DataFrame, keys: Sequence[str] = TILES, *, currency: str = "EUR") -> pd.DataFrame:
    """The headline tiles: short label, value and change as text, and whether the change is good news
    (True / False; None when unchanged or unknown). KPIs without a value are left out."""
    rows = changes.set_index("kpi").reindex([k for k in keys if k in set(changes["kpi"])])
    rows = rows[rows["value"].notna()]
    good = [
        None if pd.isna(c) or c == 0 or up is None else bool((c > 0) == up)
        for c, up in zip(rows["change"], rows["good_when_up"], strict=True)
    ]
    return pd.DataFrame(
        {
            "kpi": rows.index,
            "label": [KPI_TILE_LABELS.get(k, k) for k in rows.index],
            "value_text": [
                format_number(v, f, currency=currency)
                for v, f in zip(rows["value"], rows["format"], strict=True)
            ],
            "change_text": [format_change(c, f) for c, f in zip(rows["change"], rows["format"], strict=True)],
            "good": good,
        }
    )


def kpi_table(changes: pd.DataFrame, *, currency: str = "EUR") -> pd.DataFrame:
    """Every KPI as text: label, this period, the previous one and the change."""
    return pd.DataFrame(
        {
            "kpi": changes["label"],
            "value": [
                format_number(v, f, currency=currency)
                for v, f in zip(changes["value"], changes["format"], strict=True)
            ],
            "previous": [
                format_number(v, f, currency=currency)
                for v, f in zip(changes["previous"], changes["format"], strict=True)
            ],
            "change": [
                format_change(c, f).replace(" vs previous", "").replace("no earlier period", "—")
                for c, f in zip(changes["change"], changes["format"], strict=True)
            ],
        }
    )


def format_number(value: Any, fmt: str, *, currency: str = "EUR") -> str:
    """A KPI value as text: int 5,072 · money €1.2 M · percent 37 % · score +12 · signed +0.21."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    v = float(value)
    if fmt == "money":
        symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency + " ")
        for size, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
            if abs(v) >= size:
                return f"{symbol}{v / size:,.1f}{suffix}"
        return f"{symbol}{v:,.0f}"
    if fmt == "int":
        return f"{v:,.0f}"
    if fmt == "percent":
        return f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}"
    if fmt == "score":
        return f"{v:+.0f}"
    if fmt == "signed":
        return f"{v:+.2f}"
    return f"{v:,.2f}"


def format_change(change: Any, fmt: str) -> str:
    """A KPI change as text: +5.2 % for counts and money, +1.3 pts for rates and scores."""
    if change is None or (isinstance(change, float) and np.isnan(change)):
        return "no earlier period"
    c = float(change)
    if fmt in ("int", "money"):
        return f"{c:+.1%} vs previous"
    if fmt == "percent":
        return f"{c * 100:+.1f} pts vs previous"
    if fmt == "score":
        return f"{c:+.1f} pts vs previous"
    return f"{c:+.2f} vs previous"


def _month_bounds(period: str, months: int) -> tuple[Any, Any]:
    """[start, stop) of the `months` calendar months ending with `period`, as datetimes."""
    end = pd.Period(period, "M")
    return (end - (months - 1)).start_time.to_pydatetime(), (end + 1).start_time.to_pydatetime()


def monthly_sales(processed: Path, period: str, *, months: int = 24) -> pd.DataFrame:
    """Revenue (net of refunds), orders and buying customers per calendar month, the last `months`
    months ending at `period`, from the metrics stage's order table (one row per month, zeros kept)."""
    path = Path(processed) / period / "metrics" / "orders.parquet"
    end = pd.Period(period, "M")
    frame = pd.DataFrame({"month": [str(end - i) for i in range(months - 1, -1, -1)]})
    if not path.exists():
        return frame.assign(revenue=np.nan, orders=np.nan, buyers=np.nan)
    with duckdb.connect() as con:
        sales = con.execute(
            "SELECT strftime(date, '%Y-%m') AS month, sum(amount) AS revenue, "
            "count(*) FILTER (WHERE kind = 'purchase') AS orders, "
            "count(DISTINCT customer_id) FILTER (WHERE kind = 'purchase') AS buyers "
            "FROM read_parquet(?) WHERE customer_id IS NOT NULL AND date >= ? AND date < ? GROUP BY 1",
            [str(path), *_month_bounds(period, months)],
        ).df()
    out = frame.merge(sales, on="month", how="left")
    return out.fillna({"revenue": 0.0, "orders": 0, "buyers": 0}).astype({"orders": int, "buyers": int})


# --------------------------------------------------------------------------------------------------
# Value tiers, relationship trend, segments, offers
# --------------------------------------------------------------------------------------------------

TREND_ORDER = ("advancing", "stagnating", "regressing", "inactive")


def value_tiers(store: Path, period: str) -> pd.DataFrame:
    """Per value tier: customers, revenue of 12 months, CLV, their shares, mean churn risk and the
    share of customers whose relationship is regressing."""
    frame = _query(
        store,
        """
        SELECT s.value_tier AS tier, count(*) AS customers,
               coalesce(sum(v.revenue_12m), 0) AS revenue_12m, coalesce(sum(c.clv), 0) AS clv_12m,
               avg(ch.churn_probability) AS churn_risk,
               avg(CASE WHEN t.trend = 'regressing' THEN 1.0 ELSE 0.0 END) AS regressing_share
        FROM customer_segments s
        LEFT JOIN customer_value v ON v.period = s.period AND v.customer_id = s.customer_id
        LEFT JOIN customer_clv c ON c.period = s.period AND c.customer_id = s.customer_id
        LEFT JOIN customer_churn ch ON ch.period = s.period AND ch.customer_id = s.customer_id
        LEFT JOIN customer_trend t ON t.period = s.period AND t.customer_id = s.customer_id
        WHERE s.period = ? GROUP BY 1 ORDER BY 1
        """,
        [period],
        needs=("customer_segments", "customer_value", "customer_clv", "customer_churn", "customer_trend"),
    )
    if frame.empty:
        return frame
    for col in ("customers", "revenue_12m", "clv_12m"):
        total = frame[col].sum()
        frame[f"{col}_share"] = frame[col] / total if total else np.nan
    return frame


def relationship_trend(store: Path, period: str) -> pd.DataFrame:
    """Customers per value tier (rows, plus "all") and relationship trend (columns, TREND_ORDER)."""
    frame = _query(
        store,
        """
        SELECT coalesce(s.value_tier, '?') AS tier, t.trend, count(*) AS customers
        FROM customer_trend t
        LEFT JOIN customer_segments s ON s.period = t.period AND s.customer_id = t.customer_id
        WHERE t.period = ? GROUP BY 1, 2
        """,
        [period],
        needs=("customer_trend", "customer_segments"),
    )
    if frame.empty:
        return pd.DataFrame(columns=list(TREND_ORDER))
    table = frame.pivot_table(index="tier", columns="trend", values="customers", aggfunc="sum", fill_value=0)
    extra = [c for c in table.columns if c not in TREND_ORDER]
    table = table.reindex(columns=[*TREND_ORDER, *extra], fill_value=0)
    table.loc["all"] = table.sum()
    table.columns.name = None
    return table.astype(int)


def segment_overview(store: Path, period: str) -> pd.DataFrame:
    """Per RFM segment: customers, revenue of 12 months, mean churn risk, sorted by revenue."""
    return _query(
        store,
        """
        SELECT s.rfm_segment AS segment, count(*) AS customers, coalesce(sum(v.revenue_12m), 0) AS revenue_12m,
               avg(ch.churn_probability) AS churn_risk
        FROM customer_segments s
        LEFT JOIN customer_value v ON v.period = s.period AND v.customer_id = s.customer_id
        LEFT JOIN customer_churn ch ON ch.period = s.period AND ch.customer_id = s.customer_id
        WHERE s.period = ? GROUP BY 1 ORDER BY revenue_12m DESC, segment
        """,
        [period],
        needs=("customer_segments", "customer_value", "customer_churn"),
    )


def strategy_by_tier(store: Path, period: str) -> pd.DataFrame:
    """Customers per strategy (rows) and value tier (columns)."""
    frame = _load(store, "customer_segments", period)
    if frame.empty:
        return frame
    return pd.crosstab(frame["strategy"], frame["value_tier"]).rename_axis(index="strategy", columns=None)


def cluster_profiles(store: Path, period: str) -> pd.DataFrame:
    """The behavioural clusters: size, description and mean revenue / orders / recency."""
    frame = _load(store, "cluster_profiles", period)
    if frame.empty:
        return frame
    keep = ["cluster", "description", "customers", "mean_revenue_12m", "mean_orders_12m", "mean_recency_days"]
    return frame[[c for c in keep if c in frame.columns]].sort_values("customers", ascending=False)


def offer_summary(store: Path, period: str) -> pd.DataFrame:
    """Per offer: customers offered it, as first choice, main channel and total expected value."""
    return _query(
        store,
        """
        SELECT offer_name AS offer, count(DISTINCT customer_id) AS customers,
               count(*) FILTER (WHERE rank = 1) AS first_choice, mode(channel) AS main_channel,
               sum(expected_value) AS expected_value, avg(propensity) AS mean_propensity
        FROM next_best_offers WHERE period = ? GROUP BY 1 ORDER BY expected_value DESC, offer
        """,
        [period],
        needs=("next_best_offers",),
    )


# --------------------------------------------------------------------------------------------------
# Campaigns
# --------------------------------------------------------------------------------------------------

CAMPAIGN_COLUMNS = [
    "campaign",
    "selection_group",
    "channel",
    "started_at",
    "n_contacted",
    "n_control",
    "rate_contacted",
    "rate_control",
    "uplift",
    "uplift_ci_low",
    "uplift_ci_high",
    "p_value",
    "significant",
    "incremental_responses",
    "incremental_revenue",
    "incremental_revenue_ci_low",
    "incremental_revenue_ci_high",
    "cost",
    "roi",
    "underpowered",
    "srm",
    "mde",
]


def campaign_summary(store: Path, period: str) -> pd.DataFrame:
    """Each campaign × selection group measured in `period`: rates, uplift and incremental revenue with
    their intervals, cost, ROI and the warnings flags; campaigns in start order."""
    frame = _load(store, "campaign_results", period)
    if frame.empty:
        return pd.DataFrame(columns=CAMPAIGN_COLUMNS)
    frame = frame[[c for c in CAMPAIGN_COLUMNS if c in frame.columns]]
    start = frame.groupby("campaign")["started_at"].transform("min")
    return (
        frame.assign(_start=start)
        .sort_values(["_start", "campaign", "selection_group"])
        .drop(columns="_start")
        .reset_index(drop=True)
    )


def campaign_totals(results: pd.DataFrame) -> pd.DataFrame:
    """Per campaign, its selection groups added up: contacted, controls, incremental responses and
    revenue (point estimates: intervals do not add), cost, ROI and how many groups showed a
    significant uplift."""
    if results.empty:
        return pd.DataFrame(
            columns=[
                "campaign",
                "channel",
                "n_contacted",
                "n_control",
                "incremental_responses",
                "incremental_revenue",
                "cost",
                "roi",
                "significant_groups",
                "groups",
            ]
        )
    g = results.groupby("campaign", sort=False)
    out = g.agg(
        channel=("channel", "first"),
        n_contacted=("n_contacted", "sum"),
        n_control=("n_control", "sum"),
        incremental_responses=("incremental_responses", "sum"),
        incremental_revenue=("incremental_revenue", "sum"),
        cost=("cost", "sum"),
        significant_groups=("significant", lambda s: int(s.fillna(False).astype(bool).sum())),
        groups=("selection_group", "size"),
    )
    out["roi"] = np.where(
        out["cost"] > 0,
        (out["incremental_revenue"] - out["cost"]) / out["cost"].where(out["cost"] > 0),
        np.nan,
    )
    cols = [
        "channel",
        "n_contacted",
        "n_control",
        "incremental_responses",
        "incremental_revenue",
        "cost",
        "roi",
        "significant_groups",
        "groups",
    ]
    return out[cols].reset_index()


def selection_comparison(store: Path, period: str) -> pd.DataFrame:
    """Each selection method over every campaign: uplift with interval and the difference to random."""
    return _load(store, "campaign_selections", period)


def channel_performance(store: Path, period: str) -> pd.DataFrame:
    """Each channel over every campaign: uplift with interval, cost per contact and per incremental response."""
    return _load(store, "campaign_channels", period)


def next_campaign_lists(store: Path, period: str) -> pd.DataFrame:
    """The next campaign's lists: customers per campaign, channel and selection group, contacted vs control."""
    frame = _load(store, "next_campaign", period)
    if frame.empty:
        return pd.DataFrame(
            columns=["campaign", "channel", "selection_group", "contacted", "control", "total"]
        )
    table = (
        frame.assign(arm=np.where(frame["control"].astype(bool), "control", "contacted"))
        .pivot_table(
            index=["campaign", "channel", "selection_group"],
            columns="arm",
            values="customer_id",
            aggfunc="count",
            fill_value=0,
        )
        .reindex(columns=["contacted", "control"], fill_value=0)
    )
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table.reset_index()


# --------------------------------------------------------------------------------------------------
# Data quality, ingest, linkage
# --------------------------------------------------------------------------------------------------


def _quality_settings(settings: Any | None):
    from helpers.quality import QualitySettings

    if settings is None:
        return QualitySettings()
    if isinstance(settings, QualitySettings):
        return settings
    return QualitySettings.from_settings(settings)


def quality_scorecard(store: Path, period: str) -> pd.DataFrame:
    """The quality stage's scorecard of `period` (source × field × dimension × rule), empty if absent."""
    from helpers.quality import SCORECARD_TABLE

    return _load(store, SCORECARD_TABLE, period)


def quality_trend(store: Path, period: str, settings: Any | None = None) -> pd.DataFrame:
    """Score and status per period and dimension (and "overall"), every period up to `period`.

    Pooled like the quality stage's summary (quality.summary): rules per field, then fields."""
    from helpers import quality

    if quality.SCORECARD_TABLE not in _tables(store):
        return pd.DataFrame(columns=["period", "dimension", "score", "status", "failed", "checked"])
    card = store_io.query(store, f'SELECT * FROM "{quality.SCORECARD_TABLE}" WHERE period <= ?', [period])
    if card.empty:
        return pd.DataFrame(columns=["period", "dimension", "score", "status", "failed", "checked"])
    qs = _quality_settings(settings)
    by_dim = quality.summary(card, qs, by=("period", "dimension"))
    overall = quality.summary(
        card.assign(field=card["dimension"] + ":" + card["field"].astype(str)), qs, by=("period",)
    ).assign(dimension="overall")
    out = pd.concat([by_dim, overall], ignore_index=True)
    out["checked"] = out["passed"] + out["failed"]
    return (
        out[["period", "dimension", "score", "status", "failed", "checked"]]
        .sort_values(["period", "dimension"])
        .reset_index(drop=True)
    )


def quality_headline(store: Path, period: str, settings: Any | None = None) -> pd.DataFrame:
    """The data-quality headline of `period`, one row per measure: source rows read and rejected,
    field values rejected, customers and records linked, pairs to review, and (when the quality stage
    ran) the overall score and the rules in red / amber / green."""
    rows: list[dict[str, Any]] = []
    acct = _load(store, "ingest_accounting", period)
    if len(acct):
        read, rejected = int(acct["rows_read"].sum()), int(acct["rows_rejected"].sum())
        rows.append(
            {
                "measure": "Source rows read",
                "value": f"{read:,}",
                "note": f"{len(acct)} source tables; every row accounted for: "
                f"{'yes' if acct['balanced'].all() else 'NO'}",
            }
        )
        rows.append(
            {
                "measure": "Rows rejected at ingest",
                "value": f"{rejected:,}",
                "note": f"{rejected / read:.2%} of rows read" if read else "",
            }
        )
        rows.append(
            {
                "measure": "Field values rejected",
                "value": f"{int(acct['field_rejects'].sum()):,}",
                "note": "invalid values set to empty (tax ids, IBANs, emails, dates, numbers)",
            }
        )
    link = _load(store, "linkage_stats", period)
    if len(link):
        r = link.iloc[0]
        rows.append(
            {
                "measure": "Golden customers",
                "value": f"{int(r['customers']):,}",
                "note": f"from {int(r['source_records']):,} source records "
                f"({r['source_records'] / max(r['customers'], 1):.1f} per customer)",
            }
        )
        rows.append(
            {
                "measure": "Record pairs to review",
                "value": f"{int(r['review_pairs']):,}",
                "note": "uncertain matches waiting for a data steward",
            }
        )
    trend = quality_trend(store, period, settings)
    now = trend[trend["period"] == period]
    if len(now):
        overall = now[now["dimension"] == "overall"].iloc[0]
        worst = now[now["dimension"] != "overall"].sort_values("score").iloc[0]
        rows.insert(
            0,
            {
                "measure": "Data quality score",
                "value": f"{overall['score']:.1%}",
                "note": f"weakest dimension: {worst['dimension']} {worst['score']:.1%} ({worst['status']})",
            },
        )
        card = quality_scorecard(store, period)
        counts = card["status"].value_counts()
        rows.insert(
            1,
            {
                "measure": "Quality rules red / amber / green",
                "value": " / ".join(f"{int(counts.get(s, 0)):,}" for s in ("red", "amber", "green")),
                "note": "rules per source and field, scored against params/default.yaml thresholds",
            },
        )
    else:
        rows.insert(
            0,
            {
                "measure": "Data quality score",
                "value": "—",
                "note": "the quality audit has not run for this period",
            },
        )
    return pd.DataFrame(rows, columns=["measure", "value", "note"])


def quality_heatmap(
    store: Path, period: str, settings: Any | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score and status per source (rows) and dimension (columns) for `period`, as the quality stage
    pools them (quality.heatmap_table / quality.summary); two empty frames when it has not run."""
    from helpers import quality

    card = quality_scorecard(store, period)
    if card.empty:
        return pd.DataFrame(), pd.DataFrame()
    qs = _quality_settings(settings)
    scores = quality.heatmap_table(card, qs)
    status = quality.summary(card, qs).pivot(index="source", columns="dimension", values="status")
    return scores, status.reindex(index=scores.index, columns=scores.columns)


def quality_issues(store: Path, period: str) -> pd.DataFrame:
    """The red items of the quality audit, worst first: from its `quality_issues` table when it saved
    one, else the red rules of the scorecard."""
    issues = _load(store, "quality_issues", period)
    if len(issues):
        return issues
    card = quality_scorecard(store, period)
    if card.empty:
        return card
    red = card[card["status"] == "red"].assign(checked=lambda f: f["passed"] + f["failed"])
    cols = ["source", "dimension", "field", "rule", "failed", "checked", "score", "detail"]
    return red.sort_values(["failed", "score"], ascending=[False, True])[cols].reset_index(drop=True)


def ingest_accounting(store: Path, period: str) -> pd.DataFrame:
    """Rows read, staged and rejected per source table, and whether they balance."""
    frame = _load(store, "ingest_accounting", period)
    cols = ["source", "kind", "rows_read", "rows_staged", "rows_rejected", "field_rejects", "balanced"]
    return frame[[c for c in cols if c in frame.columns]] if len(frame) else frame


def reject_reasons(store: Path, period: str) -> pd.DataFrame:
    """Rejected rows and values per source and reason, most frequent first (whole rows and fields)."""
    return _query(
        store,
        """
        SELECT source, reason, CASE WHEN action = 'field' THEN 'value set empty' ELSE 'row rejected' END AS action,
               count(*) AS rejects, any_value("column") AS example_column
        FROM rejects WHERE period = ? GROUP BY 1, 2, 3 ORDER BY rejects DESC, source, reason
        """,
        [period],
        needs=("rejects",),
    )


def reject_matrix(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects per source (rows, most first) and reason (columns, most frequent first)."""
    if rejects.empty:
        return pd.DataFrame()
    table = rejects.pivot_table(
        index="source", columns="reason", values="rejects", aggfunc="sum", fill_value=0
    )
    table = table.loc[
        table.sum(axis=1).sort_values(ascending=False).index,
        table.sum(axis=0).sort_values(ascending=False).index,
    ]
    table.columns.name = None
    return table.astype(int)


#: How the sample company's linkage accuracy is shown: measure -> label.
ACCURACY = {
    "pair_precision": "pairs: precision (linked pairs that are the same person)",
    "pair_recall": "pairs: recall (same-person pairs that were linked)",
    "pair_f1": "pairs: F1",
    "cluster_precision": "customers: precision",
    "cluster_recall": "customers: recall",
    "bcubed_f1": "B-cubed F1 (per record)",
    "blocking_recall": "blocking recall (true pairs among the candidates)",
    "exact_entities": "people whose records form exactly one customer",
}


def accuracy_table(accuracy: pd.Series | None) -> pd.DataFrame:
    """The linkage accuracy measures a data steward reads (ACCURACY), as measure / value rows."""
    if accuracy is None or accuracy.empty:
        return pd.DataFrame(columns=["measure", "value"])
    return pd.DataFrame(
        [
            {"measure": label, "value": float(accuracy[key])}
            for key, label in ACCURACY.items()
            if key in accuracy
        ]
    )


#: The steps of the linkage funnel: label -> linkage_stats column.
FUNNEL = {
    "source records": "source_records",
    "candidate pairs (blocking)": "candidate_pairs",
    "pairs scored and kept": "pairs_kept",
    "pairs matched": "matched_pairs",
    "pairs to review": "review_pairs",
    "golden customers": "customers",
}


def linkage_funnel(stats: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    """The linkage funnel from one row of `linkage_stats`: step, count (FUNNEL order)."""
    row = stats.iloc[0] if isinstance(stats, pd.DataFrame) else stats
    return pd.DataFrame(
        [
            {"step": label, "count": int(row[col])}
            for label, col in FUNNEL.items()
            if col in row and pd.notna(row[col])
        ]
    )


def linkage_stats(store: Path, period: str) -> pd.DataFrame:
    """The unify stage's one-row summary of `period` (records, pairs, customers, review, splits)."""
    return _load(store, "linkage_stats", period)


def linkage_accuracy(processed: Path, period: str) -> pd.Series | None:
    """Linkage precision / recall / F1 against the sample company's ground truth, as the unify stage
    recorded it (data/processed/<period>/_stages/unify.json); None for a real company."""
    path = Path(processed) / period / "_stages" / "unify.json"
    if not path.exists():
        return None
    accuracy = json.loads(path.read_text(encoding="utf-8")).get("accuracy")
    return pd.Series(accuracy, dtype=float) if accuracy else None


def review_queue(store: Path, period: str, *, n: int = 10) -> pd.DataFrame:
    """The `n` most uncertain pairs of the review queue (probability nearest 50 %): each record as
    "name — source:id", the match probability, whether it is linked for now and the evidence for and
    against (`reasons`: each field's weight in bits)."""
    frame = _load(store, "review_queue", period)
    if frame.empty:
        return frame
    frame = frame.iloc[(frame["match_probability"] - 0.5).abs().argsort(kind="stable")].head(n)

    def record(side: str) -> list[str]:
        names = frame.get(f"full_name_{side}", pd.Series(index=frame.index, dtype=object))
        return [
            f"{name} — {src}:{sid}" if isinstance(name, str) and name else f"{src}:{sid}"
            for name, src, sid in zip(names, frame[f"source_{side}"], frame[f"source_id_{side}"], strict=True)
        ]

    out = pd.DataFrame(
        {
            "record_a": record("a"),
            "record_b": record("b"),
            "match_probability": frame["match_probability"].to_numpy(),
            "linked": frame["linked"].to_numpy(),
            "reasons": frame["reasons"].to_numpy(),
        }
    )
    return out


def review_by_sources(store: Path, period: str) -> pd.DataFrame:
    """Pairs waiting for review per pair of source systems, with their mean match probability."""
    return _query(
        store,
        """
        SELECT least(source_a, source_b) || ' × ' || greatest(source_a, source_b) AS sources,
               count(*) AS pairs, avg(match_probability) AS mean_probability,
               count(*) FILTER (WHERE linked) AS linked
        FROM review_queue WHERE period = ? GROUP BY 1 ORDER BY pairs DESC
        """,
        [period],
        needs=("review_queue",),
    )


ID_EVENTS = ("new", "merge", "split", "retire")


def id_changes(store: Path, period: str) -> pd.DataFrame:
    """Customer-id events (new, merge, split, retire) per period, every period of golden customers
    up to `period` (zeros where unification changed nothing): what changed since the run before."""
    frame = _query(
        store,
        "SELECT period, event, count(*) AS events FROM id_log WHERE period <= ? GROUP BY 1, 2",
        [period],
        needs=("id_log",),
    )
    known = [p for p in periods(store) if p <= period]
    if frame.empty:
        frame = pd.DataFrame(
            {"period": pd.Series(dtype=str), "event": pd.Series(dtype=str), "events": pd.Series(dtype=int)}
        )
    table = frame.pivot_table(index="period", columns="event", values="events", aggfunc="sum", fill_value=0)
    table = table.reindex(index=sorted(set(known) | set(table.index)), fill_value=0)
    table = table.reindex(
        columns=[*ID_EVENTS, *[c for c in table.columns if c not in ID_EVENTS]], fill_value=0
    )
    table.columns.name = None
    table.index.name = "period"
    return table.astype(int)


def id_events(
    store: Path, period: str, *, events: Sequence[str] = ("merge", "split", "retire")
) -> pd.DataFrame:
    """The merges, splits and retired ids of `period` (the id log without the new customers)."""
    frame = _load(store, "id_log", period)
    if frame.empty:
        return frame
    return frame[frame["event"].isin(events)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Customer cards
# --------------------------------------------------------------------------------------------------

RESPONSIVENESS_TEXT = {
    "always": "always responds",
    "sometimes": "responds sometimes",
    "never": "never responds",
    "unknown": "too few contacts to tell",
}


def channel_text(preferred: Any, responsiveness: Any, responses: Any, contacts: Any) -> str | None:
    """The card's "preferred channel" line: "sms · responds sometimes (2 of 5 contacts)"."""
    if all(
        v is None or (isinstance(v, float) and np.isnan(v)) for v in (preferred, responsiveness, contacts)
    ):
        return None
    channel = preferred if isinstance(preferred, str) and preferred else "no channel yet"
    text = RESPONSIVENESS_TEXT.get(str(responsiveness), str(responsiveness or "not contacted"))
    if contacts is not None and not pd.isna(contacts):
        text += f" ({int(responses or 0)} of {int(contacts)} contacts)"
    return f"{channel} · {text}"


_VIA = re.compile(r";\s*via\s.*$")


def short_reason(reason: Any, offer_name: Any = None) -> str:
    """An offer's reason without the channel / margin arithmetic and without repeating its name."""
    if not isinstance(reason, str):
        return ""
    text = _VIA.sub("", reason).strip()
    if isinstance(offer_name, str) and text.startswith(offer_name + ":"):
        text = text[len(offer_name) + 1 :].strip()
    return text


def offer_text(offers: pd.DataFrame, *, max_offers: int = 3) -> pd.DataFrame:
    """Per customer, the best `max_offers` offers as the card shows them.

    `next_best_offer` lists the names by rank ("1. Café · 2. Menaje"); `offer_reason` says why each,
    with its channel, a line per offer ("1. buys Cafetería again, by email\n2. ..."); `offers` keeps
    the names as a list.
    """
    cols = ["customer_id", "next_best_offer", "offer_reason", "offers"]
    if offers.empty:
        return pd.DataFrame(columns=cols)
    top = offers.sort_values(["customer_id", "rank"], kind="stable").groupby("customer_id").head(max_offers)
    top = top.assign(
        _n=top.groupby("customer_id").cumcount() + 1,
        _why=[
            f"{short_reason(r, n)}, by {c}" if short_reason(r, n) else f"by {c}"
            for r, n, c in zip(top["reason"], top["offer_name"], top["channel"], strict=True)
        ],
    )
    g = top.groupby("customer_id", sort=True)
    out = pd.DataFrame(
        {
            "next_best_offer": g.apply(
                lambda f: " · ".join(f"{i}. {n}" for i, n in zip(f["_n"], f["offer_name"], strict=True)),
                include_groups=False,
            ),
            "offer_reason": g.apply(
                lambda f: "\n".join(f"{i}. {w}" for i, w in zip(f["_n"], f["_why"], strict=True)),
                include_groups=False,
            ),
            "offers": g["offer_name"].agg(list),
        }
    )
    return out.reset_index()[cols]


def monthly_revenue(processed: Path, period: str, *, months: int = 12) -> pd.DataFrame:
    """Per customer, net revenue of each of the last `months` calendar months ending at `period`
    (a list, oldest first, zeros included): the bars of the customer card."""
    path = Path(processed) / period / "metrics" / "orders.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["customer_id", "monthly_revenue"])
    end = pd.Period(period, "M")
    labels = [str(end - i) for i in range(months - 1, -1, -1)]
    with duckdb.connect() as con:
        sales = con.execute(
            "SELECT customer_id, strftime(date, '%Y-%m') AS month, sum(amount) AS revenue FROM read_parquet(?) "
            "WHERE customer_id IS NOT NULL AND date >= ? AND date < ? GROUP BY 1, 2",
            [str(path), *_month_bounds(period, months)],
        ).df()
    wide = sales.pivot_table(
        index="customer_id", columns="month", values="revenue", aggfunc="sum", fill_value=0.0
    )
    wide = wide.reindex(columns=labels, fill_value=0.0).round(2)
    return pd.DataFrame({"customer_id": wide.index, "monthly_revenue": wide.to_numpy().tolist()})


def _addresses(shipping: pd.Series, billing: pd.Series) -> pd.Series:
    """The address line of a card: the shipping address, and the billing one when it is another place."""
    from helpers.linkage import address_key

    def one(ship: Any, bill: Any) -> Any:
        ship = ship if isinstance(ship, str) and ship.strip() else None
        bill = bill if isinstance(bill, str) and bill.strip() else None
        if bill is None or (ship is not None and address_key(ship) == address_key(bill)):
            return ship
        if ship is None:
            return f"billing: {bill}"
        return f"{ship} · billing: {bill}"

    return pd.Series(
        [one(s, b) for s, b in zip(shipping, billing, strict=True)], index=shipping.index, dtype=object
    )


def _sources_by_weight(crosswalk: pd.DataFrame, provenance: pd.DataFrame) -> pd.DataFrame:
    """Per customer, the source systems holding its records, ordered by the golden fields each gave."""
    if crosswalk.empty:
        return pd.DataFrame(columns=["customer_id", "sources", "source_records"])
    held = crosswalk.groupby(["customer_id", "source"], observed=True).size().rename("records").reset_index()
    if len(provenance):
        won = provenance.groupby(["customer_id", "source"], observed=True).size().rename("fields")
        held = held.merge(won.reset_index(), on=["customer_id", "source"], how="left")
    else:
        held["fields"] = 0
    held["source"] = held["source"].astype(str)
    held = held.fillna({"fields": 0}).sort_values(
        ["customer_id", "fields", "records", "source"], ascending=[True, False, False, True]
    )
    g = held.groupby("customer_id", sort=True)
    return pd.DataFrame(
        {"sources": g["source"].agg(list), "source_records": g["records"].sum()}
    ).reset_index()


#: What a card takes from each metrics / segments table: store table -> {its column: card column}.
#: Card columns named in helpers.render.CARD_FIELDS are shown on the card; the others are kept in the
#: frame for the cards to come (the contract does not show them yet).
CARD_METRICS: dict[str, dict[str, str]] = {
    "customer_value": {
        "revenue_12m": "revenue_12m",
        "orders_12m": "orders_12m",
        "revenue_lifetime": "revenue_total",
        "aov": "avg_order_value",
        "margin_12m": "margin_12m",
        "last_purchase_at": "last_purchase_date",
        "recency_days": "recency_days",
        "first_purchase_at": "first_purchase_at",
        "orders_per_month": "orders_per_month",
    },
    "customer_clv": {"clv": "clv_12m", "p_alive": "p_alive"},
    "customer_rfm": {"rfm_code": "rfm_score"},
    "customer_service": {
        "open_tickets": "open_tickets",
        "nps_last": "last_nps",
        "csat_mean": "csat_avg",
        "tickets": "tickets_12m",
        "nps_category": "nps_category",
    },
    "customer_sentiment": {"sentiment_mean": "sentiment", "mentions": "mentions"},
    "customer_payment": {
        "mean_days_to_pay": "days_to_pay",
        "outstanding_balance": "outstanding",
        "preferred_payment_method": "payment_method",
        "mean_days_late": "mean_days_late",
        "overdue_balance": "overdue",
    },
    "customer_preferences": {
        "top_categories": "top_categories",
        "top_products": "top_products",
        "preferred_channel": "purchase_channel",
    },
    "customer_trend": {"trend": "relationship_trend"},
    "customer_segments": {
        "value_tier": "tier",
        "rfm_segment": "rfm_segment",
        "cluster_name": "cluster",
        "strategy": "strategy",
        "strategy_reason": "strategy_reason",
        "prescriber": "prescriber",
        "prescription_score": "prescription_score",
        "prescription_reasons": "prescription_reasons",
        "vulnerable": "vulnerable",
        "vulnerability_score": "vulnerability_score",
        "vulnerability_reasons": "vulnerability_reasons",
    },
    "customer_churn": {"churn_probability": "churn_risk", "churn_band": "churn_band"},
}
#: Golden-record columns a card shows as they are.
CARD_IDENTITY = (
    "tax_id",
    "birth_date",
    "email",
    "phone",
    "iban",
    "postcode",
    "city",
    "country",
    "consent_email",
    "consent_phone",
    "consent_sms",
    "consent_mail",
    "currency",
    "billing_address",
)


def card_frame(
    store: Path, period: str, *, processed: Path | None = None, months: int = 12, max_offers: int = 3
) -> pd.DataFrame:
    """One row per golden customer of `period`, columns named as in helpers.render.CARD_FIELDS (the
    card contract) first, then the columns the contract does not show yet (payment method,
    preferences, prescription, vulnerability, responsiveness, ...).

    Joins the golden records with the metrics and segments tables (CARD_METRICS), churn risk, the
    `max_offers` next best offers, the campaign feedback and the crosswalk / provenance; `processed`
    (data/processed) adds the monthly revenue bars from the metrics stage's orders. A table or column
    a stage has not written leaves its card fields empty.
    """
    from helpers.campaigns import feedback_summary
    from helpers.render import CARD_FIELDS

    contract = [f.name for f in CARD_FIELDS]
    golden = _load(store, "customers", period)
    if golden.empty:
        return pd.DataFrame(columns=contract)
    g = golden.reindex(
        columns=[
            "customer_id",
            "full_name",
            "given_name",
            "family_names",
            "party_type",
            "address",
            "created_at",
            "payment_method",
            "account_manager",
            *CARD_IDENTITY,
        ]
    )
    names = (g["given_name"].fillna("") + " " + g["family_names"].fillna("")).str.strip().replace("", None)
    out = pd.DataFrame(
        {
            "customer_id": g["customer_id"].astype(str),
            "display_name": g["full_name"].where(g["full_name"].notna(), names),
            "customer_type": g["party_type"],
            "address": _addresses(g["address"], g["billing_address"]),
            "shipping_address": g["address"],
            "account_manager": g["account_manager"],  # not in the canonical schema yet: empty
            **{col: g[col] for col in CARD_IDENTITY},
        }
    )
    for table, columns in CARD_METRICS.items():
        part = _load(store, table, period).reindex(columns=["customer_id", *columns])
        out = out.merge(
            part.drop_duplicates("customer_id").rename(columns=columns), on="customer_id", how="left"
        )

    since = pd.concat([pd.to_datetime(g["created_at"]), pd.to_datetime(out["first_purchase_at"])], axis=1)
    out["customer_since"] = since.min(axis=1).to_numpy()
    out["strategy_reason"] = out["strategy_reason"].astype(object)
    out["strategy"] = [
        f"{s}: {r}" if isinstance(s, str) and isinstance(r, str) and r else s
        for s, r in zip(out["strategy"], out["strategy_reason"], strict=True)
    ]
    out["payment_method"] = out["payment_method"].fillna(g["payment_method"])

    feedback = _load(store, "campaign_feedback", period)
    fb = (
        feedback_summary(feedback).set_index("customer_id").reindex(out["customer_id"])
        if len(feedback)
        else pd.DataFrame(
            index=out["customer_id"],
            columns=["responsiveness", "preferred_channel", "responses_total", "contacts_total"],
        )
    )
    out["responsiveness"] = fb["responsiveness"].to_numpy()
    out["campaign_channel"] = fb["preferred_channel"].to_numpy()
    out["preferred_channel"] = [
        channel_text(*row)
        for row in zip(
            fb["preferred_channel"],
            fb["responsiveness"],
            fb["responses_total"],
            fb["contacts_total"],
            strict=True,
        )
    ]
    out = out.merge(
        offer_text(_load(store, "next_best_offers", period), max_offers=max_offers),
        on="customer_id",
        how="left",
    )
    sources = _sources_by_weight(_load(store, "crosswalk", period), _load(store, "provenance", period))
    out = out.merge(sources, on="customer_id", how="left")
    if processed is not None:
        out = out.merge(monthly_revenue(processed, period, months=months), on="customer_id", how="left")
    ordered = [col for col in contract if col in out.columns]
    return out[ordered + [col for col in out.columns if col not in ordered]]


#: Signals an account manager acts on: label -> test on the card frame (True: the customer shows it).
SIGNALS = {
    "high churn risk": lambda f: f["churn_band"].eq("high"),
    "relationship regressing": lambda f: f["relationship_trend"].eq("regressing"),
    "vulnerable (payments, tickets, sentiment)": lambda f: f["vulnerable"].eq(True),
    "open support tickets": lambda f: f["open_tickets"].fillna(0).gt(0),
    "overdue invoices": lambda f: f["overdue"].fillna(0).gt(0),
    "never answers campaigns": lambda f: f["responsiveness"].eq("never"),
    "prescriber (recommends us)": lambda f: f["prescriber"].eq(True),
}


def portfolio_signals(cards: pd.DataFrame) -> pd.DataFrame:
    """How many of the customers with a card show each signal (SIGNALS), most frequent first."""
    rows = []
    for label, test in SIGNALS.items():
        try:
            n = int(test(cards).fillna(False).astype(bool).sum())
        except KeyError:  # a column a stage did not write
            continue
        rows.append({"signal": label, "customers": n, "share": n / len(cards) if len(cards) else np.nan})
    return (
        pd.DataFrame(rows, columns=["signal", "customers", "share"])
        .sort_values("customers", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def portfolio_actions(cards: pd.DataFrame) -> pd.DataFrame:
    """Customers with a card per strategy (rows: retention, loyalty, ...) and value tier (columns)."""
    if cards.empty:
        return pd.DataFrame()
    strategy = cards["strategy"].fillna("none").astype(str).str.split(":").str[0]
    return pd.crosstab(strategy, cards["tier"].fillna("?")).rename_axis(index="strategy", columns=None)


CARD_LIST_COLUMNS = [
    "customer_id",
    "display_name",
    "tier",
    "clv_12m",
    "churn_risk",
    "relationship_trend",
    "strategy",
    "first_offer",
]


def card_list(cards: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """The customers with a card, in card order: who, value, risk, trend, strategy and the best offer."""
    if cards.empty:
        return pd.DataFrame(columns=CARD_LIST_COLUMNS)
    out = cards.assign(
        strategy=cards["strategy"].fillna("").astype(str).str.split(":").str[0],
        first_offer=[
            o[0] if isinstance(o, list | tuple | np.ndarray) and len(o) else None for o in cards["offers"]
        ]
        if "offers" in cards
        else None,
    )
    out = out[[c for c in CARD_LIST_COLUMNS if c in out.columns]]
    return out if n is None else out.head(n)


def selection_text(selection: Any, chosen: int, total: int, not_found: Sequence[str] = ()) -> str:
    """One sentence on which customers get a card and why (reports.cards in params/default.yaml)."""
    how = {
        "top_n": f"the top {getattr(selection, 'top_n', '?')} customers by {getattr(selection, 'by', '?')}",
        "ids": f"the {len(getattr(selection, 'ids', []) or [])} customer ids listed in the parameters",
        "account_manager": f"the portfolio of account manager {getattr(selection, 'account_manager', '?')}, "
        f"ordered by {getattr(selection, 'by', '?')}",
        "all": "every customer",
    }.get(getattr(selection, "select", ""), str(getattr(selection, "select", "?")))
    text = f"{chosen:,} of {total:,} customers get a card: {how} (params/default.yaml, reports.cards)."
    if not_found:
        text += f" {len(not_found)} requested id(s) were not found: {', '.join(map(str, not_found[:5]))}."
    return text


# --------------------------------------------------------------------------------------------------
# Presentation: formatted tables and one-sentence readings
# --------------------------------------------------------------------------------------------------

#: How `styled` shows a column: kind -> formatter of one value.
_CELL = {
    "int": lambda v, cur: f"{v:,.0f}",
    "money": lambda v, cur: f"{_symbol(cur)}{v:,.0f}",
    "percent": lambda v, cur: f"{v:.1%}",
    "points": lambda v, cur: f"{v * 100:+.1f} pts",
    "number": lambda v, cur: f"{v:,.1f}",
    "ratio": lambda v, cur: f"{v:,.2f}",
    "pvalue": lambda v, cur: "< 0.001" if v < 0.001 else f"{v:.3f}",
    "yesno": lambda v, cur: "yes" if bool(v) else "no",
}


def _symbol(currency: str) -> str:
    return {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency + " ")


def styled(
    frame: pd.DataFrame,
    formats: Mapping[str, str] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    currency: str = "EUR",
    index: bool = False,
):
    """A table for a report: values formatted per column kind (int, money, percent, points, number,
    ratio, pvalue, yesno), missing values as "—", column names made readable, no index."""
    formats = dict(formats or {})
    shown = frame.copy()
    for col, kind in formats.items():
        if col in shown.columns:
            fn = _CELL[kind]
            shown[col] = [
                ("—" if v is None or (not isinstance(v, str) and pd.isna(v)) else fn(v, currency))
                for v in shown[col]
            ]
    shown = shown.rename(columns={c: (labels or {}).get(c, str(c).replace("_", " ")) for c in shown.columns})
    style = shown.style.format(na_rep="—")
    text = [
        c
        for c in shown.columns
        if shown[c].dtype == object
        and c not in {(labels or {}).get(k, str(k).replace("_", " ")) for k in formats}
    ]
    if text:
        style = style.set_properties(subset=text, **{"text-align": "left"})
    style = style.set_table_styles([{"selector": "th", "props": [("text-align", "left")]}], overwrite=False)
    return style if index else style.hide(axis="index")


def headline_reading(
    changes: pd.DataFrame, period: str, previous: str | None, *, currency: str = "EUR"
) -> str:
    """One sentence on the headline KPIs: revenue, active customers, churn risk and NPS, with changes."""
    kpi = changes.set_index("kpi")

    def show(key: str) -> str:
        if key not in kpi.index:
            return "—"
        r = kpi.loc[key]
        text = format_number(r["value"], r["format"], currency=currency)
        if previous and not pd.isna(r["change"]):
            text += f" ({format_change(r['change'], r['format']).replace(' vs previous', '')})"
        return text

    since = (
        f" Changes are against {previous}."
        if previous
        else " This is the first period in the store, so there is no change to show yet."
    )
    return (
        f"In {period}, {show('active_customers')} customers bought in the last 12 months, for a revenue of "
        f"{show('revenue_12m')}; {show('high_churn_customers')} are at high risk of leaving and the NPS stands at "
        f"{show('nps')}.{since}"
    )


def tiers_reading(tiers: pd.DataFrame) -> str:
    """One sentence on the value tiers: the top tier's share of customers against its share of value."""
    if tiers.empty:
        return "No value tiers for this period (the segmentation stage has not run)."
    top = tiers.sort_values("clv_12m_share", ascending=False).iloc[0]
    worst = tiers.sort_values("churn_risk", ascending=False).iloc[0]
    return (
        f"Tier {top['tier']} is {top['customers_share']:.0%} of the customers but holds "
        f"{top['revenue_12m_share']:.0%} of the last 12 months' revenue and {top['clv_12m_share']:.0%} of the "
        f"expected value; tier {worst['tier']} has the highest mean churn risk ({worst['churn_risk']:.0%})."
    )


def trend_reading(table: pd.DataFrame) -> str:
    """One sentence on the relationship trend: advancing vs regressing overall and in the top tier."""
    if table.empty or "all" not in table.index:
        return "No relationship trend for this period (the metrics stage has not run)."
    share = table.div(table.sum(axis=1), axis=0)
    text = (
        f"Overall {share.loc['all', 'advancing']:.0%} of customers are advancing and "
        f"{share.loc['all', 'regressing']:.0%} regressing"
    )
    tiers = [t for t in share.index if t != "all"]
    if tiers:
        first = sorted(tiers)[0]
        text += f"; in tier {first}, {share.loc[first, 'regressing']:.0%} are regressing"
    return text + "."


def campaign_reading(totals: pd.DataFrame, results: pd.DataFrame, *, currency: str = "EUR") -> str:
    """One sentence on the campaigns: which added most, and how many groups showed a real uplift."""
    if totals.empty:
        return "No campaign was measured for this period."
    best = totals.sort_values("incremental_revenue", ascending=False).iloc[0]
    significant = int(results["significant"].fillna(False).astype(bool).sum())
    underpowered = (
        int(results["underpowered"].fillna(False).astype(bool).sum()) if "underpowered" in results else 0
    )
    text = (
        f"{best['campaign']} ({best['channel']}) added the most: about {format_number(best['incremental_revenue'], 'money', currency=currency)} "
        f"of revenue over its control groups. {significant} of {len(results)} campaign × selection groups show an "
        f"uplift that is statistically significant"
    )
    if underpowered:
        which = "all of them" if underpowered == len(results) else f"{underpowered} of them"
        text += (
            f"; {which} were too small to detect reliably the smallest uplift worth having, so a "
            "non-significant result is not proof of no effect"
        )
    return text + "."


def interval_text(estimate: Any, low: Any, high: Any, kind: str = "points", *, currency: str = "EUR") -> str:
    """An estimate with its interval in one cell: "+7.2 pts [+2.3, +10.3]", "€3,447 [€1,132, €5,437]"."""
    if estimate is None or pd.isna(estimate):
        return "—"
    if kind == "points":
        fmt = lambda v: f"{v * 100:+.1f}"  # noqa: E731
        unit = " pts"
    elif kind == "money":
        fmt = lambda v: f"{_symbol(currency)}{v:,.0f}" if v >= 0 else f"−{_symbol(currency)}{-v:,.0f}"  # noqa: E731
        unit = ""
    else:
        fmt = lambda v: f"{v:,.2f}"  # noqa: E731
        unit = ""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{fmt(estimate)}{unit}"
    return f"{fmt(estimate)}{unit} [{fmt(low)}, {fmt(high)}]"


def campaign_table(results: pd.DataFrame, *, currency: str = "EUR") -> pd.DataFrame:
    """The campaign results for a reader: one row per campaign × selection group, rates, uplift and
    incremental revenue with their 95 % intervals, ROI and a note when the comparison is weak."""
    if results.empty:
        return pd.DataFrame()

    def note(r: Any) -> str:
        notes = []
        if bool(r.get("srm")):
            notes.append("control share off plan")
        if bool(r.get("underpowered")):
            notes.append(
                f"underpowered (detects ≥ {r['mde'] * 100:.1f} pts)"
                if pd.notna(r.get("mde"))
                else "underpowered"
            )
        return "; ".join(notes)

    return pd.DataFrame(
        {
            "campaign": results["campaign"],
            "selection": results["selection_group"],
            "contacted / control": [
                f"{a:,} / {b:,}" for a, b in zip(results["n_contacted"], results["n_control"], strict=True)
            ],
            "response contacted / control": [
                f"{a:.1%} / {b:.1%}"
                for a, b in zip(results["rate_contacted"], results["rate_control"], strict=True)
            ],
            "uplift [95 % CI]": [
                interval_text(e, lo, hi)
                for e, lo, hi in zip(
                    results["uplift"], results["uplift_ci_low"], results["uplift_ci_high"], strict=True
                )
            ],
            "incremental revenue [95 % CI]": [
                interval_text(e, lo, hi, "money", currency=currency)
                for e, lo, hi in zip(
                    results["incremental_revenue"],
                    results["incremental_revenue_ci_low"],
                    results["incremental_revenue_ci_high"],
                    strict=True,
                )
            ],
            "note": [note(r) for r in results.to_dict("records")],
        }
    )


def _money2(value: Any, currency: str) -> str:
    return "—" if value is None or pd.isna(value) else f"{_symbol(currency)}{value:,.2f}"


def channel_table(channels: pd.DataFrame, *, currency: str = "EUR") -> pd.DataFrame:
    """Channel performance for a reader: contacts, uplift with interval, cost per contact and per
    incremental response."""
    if channels.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "channel": channels["channel"],
            "contacted / control": [
                f"{a:,} / {b:,}" for a, b in zip(channels["n_contacted"], channels["n_control"], strict=True)
            ],
            "uplift [95 % CI]": [
                interval_text(e, lo, hi)
                for e, lo, hi in zip(
                    channels["uplift"], channels["uplift_ci_low"], channels["uplift_ci_high"], strict=True
                )
            ],
            "incremental responses": channels["incremental_responses"].round(0).astype("Int64"),
            "cost per contact": [_money2(v, currency) for v in channels["cost_per_contact"]],
            "cost per incremental response": [
                _money2(v, currency) for v in channels["cost_per_incremental_response"]
            ],
        }
    )


def lists_reading(lists: pd.DataFrame, period: str) -> str:
    """One sentence on the next campaign's lists: how many customers, the control share, where they are."""
    total = int(lists["total"].sum()) if len(lists) else 0
    if not total:
        return "No target list for the next campaign in this period (the campaigns stage has not run)."
    return (
        f"{total:,} customers in {len(lists)} lists; only customers with consent for the channel are listed, and "
        f"{lists['control'].sum() / total:.0%} are held out as control to measure the campaign. The lists are "
        f"exported as CSV files to data/processed/{period}/campaigns/next/."
    )
