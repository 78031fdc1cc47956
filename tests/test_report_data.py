"""helpers.report_data on tiny hand-made stores: every figure checked against a hand-computed value."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import render, store
from helpers import report_data as rd

P0, P1 = "2026-09", "2026-10"


def make_store(path: Path, tables: dict[str, dict[str, pd.DataFrame]]) -> Path:
    """A DuckDB store holding {table: {period: frame}}, written as the stages write it."""
    for name, slices in tables.items():
        for period, frame in slices.items():
            store.save_table(path, name, frame, period=period)
    return path


def ids(n: int) -> list[str]:
    return [f"C{i}" for i in range(1, n + 1)]


# --------------------------------------------------------------------------------------------------
# periods
# --------------------------------------------------------------------------------------------------


def test_periods_resolve_and_previous(tmp_path):
    db = make_store(
        tmp_path / "s.duckdb",
        {
            "customers": {
                "2026-08": pd.DataFrame({"customer_id": ids(1)}),
                P1: pd.DataFrame({"customer_id": ids(2)}),
            }
        },
    )
    assert rd.periods(db) == ["2026-08", P1]
    assert rd.resolve_period(db) == P1
    assert rd.resolve_period(db, P0) == P0
    assert rd.previous_period(db, P1) == "2026-08"
    assert rd.previous_period(db, "2026-08") is None
    with pytest.raises(LookupError, match="no period"):
        rd.resolve_period(tmp_path / "empty.duckdb")


# --------------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def kpi_store(tmp_path):
    return make_store(
        tmp_path / "s.duckdb",
        {
            "customers": {
                P0: pd.DataFrame({"customer_id": ids(3)}),
                P1: pd.DataFrame({"customer_id": ids(4)}),
            },
            "customer_value": {
                P0: pd.DataFrame(
                    {"customer_id": ids(3), "orders_12m": [2, 0, 1], "revenue_12m": [100.0, 0.0, 50.0]}
                ),
                P1: pd.DataFrame(
                    {
                        "customer_id": ids(4),
                        "orders_12m": [2, 0, 1, 3],
                        "revenue_12m": [120.0, 0.0, 30.0, 250.0],
                    }
                ),
            },
            "customer_clv": {
                P0: pd.DataFrame({"customer_id": ids(2), "clv": [10.0, 20.0]}),
                P1: pd.DataFrame({"customer_id": ids(3), "clv": [30.0, 40.0, np.nan]}),
            },
            "customer_churn": {
                P0: pd.DataFrame(
                    {"customer_id": ids(2), "churn_probability": [0.2, 0.8], "churn_band": ["low", "high"]}
                ),
                P1: pd.DataFrame(
                    {
                        "customer_id": ids(3),
                        "churn_probability": [0.1, 0.7, 0.65],
                        "churn_band": ["low", "high", "high"],
                    }
                ),
            },
            "customer_service": {
                P1: pd.DataFrame(
                    {"customer_id": ids(4), "nps_category": ["promoter", "promoter", "detractor", None]}
                )
            },
            "customer_sentiment": {
                P1: pd.DataFrame(
                    {"customer_id": ids(3), "sentiment_mean": [0.5, -0.2, np.nan], "mentions": [3, 1, 0]}
                )
            },
        },
    )


def test_kpis_per_period(kpi_store):
    k = rd.kpis(kpi_store, P1)
    assert k.index.tolist() == [P0, P1]
    assert k.loc[P1, "customers"] == 4 and k.loc[P0, "customers"] == 3
    assert k.loc[P1, "active_customers"] == 3 and k.loc[P0, "active_customers"] == 2
    assert k.loc[P1, "revenue_12m"] == 400.0 and k.loc[P0, "revenue_12m"] == 150.0
    assert k.loc[P1, "clv_12m"] == 70.0  # the customer without CLV does not count
    assert k.loc[P1, "churn_risk"] == pytest.approx((0.1 + 0.7 + 0.65) / 3)
    assert k.loc[P1, "high_churn_customers"] == 2 and k.loc[P0, "high_churn_customers"] == 1
    assert k.loc[P1, "nps"] == pytest.approx(100 * (2 - 1) / 3)  # 3 respondents, one without an answer
    assert k.loc[P1, "sentiment"] == pytest.approx((0.5 * 3 - 0.2 * 1) / 4)  # weighted by mentions
    assert math.isnan(k.loc[P0, "nps"]) and math.isnan(k.loc[P0, "sentiment"])  # no slice that period
    assert "quality_score" not in k  # no quality scorecard in the store
    assert rd.kpis(kpi_store, P1, history=1).index.tolist() == [P1]
    assert rd.kpis(kpi_store, P0).index.tolist() == [P0]  # never a period after the report's


def test_kpi_changes_and_tiles(kpi_store):
    changes = rd.kpi_changes(rd.kpis(kpi_store, P1), P1).set_index("kpi")
    assert changes.loc["customers", "change"] == pytest.approx(1 / 3)  # relative for counts
    assert changes.loc["revenue_12m", "change"] == pytest.approx(400 / 150 - 1)
    assert changes.loc["churn_risk", "change"] == pytest.approx(1.45 / 3 - 0.5)  # points for rates
    assert math.isnan(changes.loc["nps", "change"])
    first = rd.kpi_changes(rd.kpis(kpi_store, P0), P0).set_index("kpi")
    assert math.isnan(first.loc["customers", "previous"]) and math.isnan(first.loc["customers", "change"])

    tiles = rd.kpi_tiles(changes.reset_index()).set_index("kpi")
    assert tiles.loc["customers", "good"] is True  # more customers: good news
    assert tiles.loc["high_churn_customers", "good"] is False  # more at high risk: bad news
    assert tiles.loc["nps", "good"] is None and tiles.loc["nps", "change_text"] == "no earlier period"
    assert tiles.loc["revenue_12m", "value_text"] == "€400"
    assert tiles.loc["customers", "change_text"] == "+33.3% vs previous"
    table = rd.kpi_table(changes.reset_index()).set_index("kpi")
    assert table.loc["Customers"].tolist() == ["4", "3", "+33.3%"]


def test_format_number_and_change():
    assert rd.format_number(4_427_096, "money") == "€4.4 M"
    assert rd.format_number(1234.4, "money", currency="USD") == "$1.2 k"
    assert rd.format_number(999, "money", currency="CHF") == "CHF 999"
    assert rd.format_number(0.4914, "percent") == "49%"
    assert rd.format_number(0.05, "percent") == "5.0%"
    assert rd.format_number(-16.49, "score") == "-16"
    assert rd.format_number(np.nan, "int") == "—"
    assert rd.format_change(0.0648, "percent") == "+6.5 pts vs previous"
    assert rd.format_change(-0.0034, "money") == "-0.3% vs previous"


# --------------------------------------------------------------------------------------------------
# monthly figures from the metrics stage's orders
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def processed(tmp_path):
    orders = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2", None, "C2", "C3"],
            "date": pd.to_datetime(
                [
                    "2026-10-01 00:00",
                    "2026-10-15 00:00",
                    "2026-09-30 23:00",
                    "2026-10-05 00:00",
                    "2026-07-31 00:00",
                    "2026-11-01 00:00",
                ]
            ),
            "amount": [100.0, -20.0, 50.0, 999.0, 30.0, 70.0],
            "kind": ["purchase", "refund", "purchase", "purchase", "purchase", "purchase"],
        }
    )
    root = tmp_path / "processed"
    store.write_parquet(orders, root / P1 / "metrics" / "orders.parquet")
    return root


def test_monthly_sales_counts_calendar_months_net_of_refunds(processed, tmp_path):
    sales = rd.monthly_sales(processed, P1, months=3)
    assert sales["month"].tolist() == ["2026-08", "2026-09", "2026-10"]
    # 1 October at midnight is in October; the order without a customer and November's are not counted
    assert sales["revenue"].tolist() == [0.0, 50.0, 80.0]
    assert sales["orders"].tolist() == [0, 1, 1] and sales["buyers"].tolist() == [0, 1, 1]
    missing = rd.monthly_sales(tmp_path / "nowhere", P1, months=2)
    assert missing["month"].tolist() == ["2026-09", "2026-10"] and missing["revenue"].isna().all()


def test_monthly_revenue_per_customer(processed):
    bars = rd.monthly_revenue(processed, P1, months=3).set_index("customer_id")["monthly_revenue"]
    assert bars["C1"] == [0.0, 0.0, 80.0]
    assert bars["C2"] == [0.0, 50.0, 0.0]
    assert "C3" not in bars.index


# --------------------------------------------------------------------------------------------------
# value tiers, trend, segments, offers
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def segment_store(tmp_path):
    c = ids(4)
    return make_store(
        tmp_path / "s.duckdb",
        {
            "customer_segments": {
                P1: pd.DataFrame(
                    {
                        "customer_id": c,
                        "value_tier": ["A", "B", "B", "C"],
                        "rfm_segment": ["Champions", "At risk", "At risk", "No purchases"],
                        "strategy": ["loyalty", "retention", "development", "acquisition"],
                    }
                )
            },
            "customer_value": {
                P1: pd.DataFrame({"customer_id": c, "revenue_12m": [600.0, 100.0, 300.0, 0.0]})
            },
            "customer_clv": {P1: pd.DataFrame({"customer_id": c[:3], "clv": [500.0, 200.0, 300.0]})},
            "customer_churn": {
                P1: pd.DataFrame({"customer_id": c[:3], "churn_probability": [0.1, 0.6, 0.4]})
            },
            "customer_trend": {
                P0: pd.DataFrame(
                    {"customer_id": c, "trend": ["advancing", "advancing", "stagnating", "inactive"]}
                ),
                P1: pd.DataFrame(
                    {"customer_id": c, "trend": ["advancing", "regressing", "stagnating", "inactive"]}
                ),
            },
        },
    )


def test_value_tiers(segment_store):
    tiers = rd.value_tiers(segment_store, P1).set_index("tier")
    assert tiers["customers"].to_dict() == {"A": 1, "B": 2, "C": 1}
    assert tiers.loc["A", "revenue_12m_share"] == pytest.approx(0.6)
    assert tiers.loc["B", "clv_12m_share"] == pytest.approx(0.5)
    assert tiers.loc["B", "churn_risk"] == pytest.approx(0.5)
    assert tiers.loc["B", "regressing_share"] == pytest.approx(0.5)
    assert math.isnan(tiers.loc["C", "churn_risk"])
    assert rd.tiers_reading(tiers.reset_index()).startswith("Tier A is 25% of the customers but holds 60%")


def test_relationship_trend(segment_store):
    table = rd.relationship_trend(segment_store, P1)
    assert table.columns.tolist() == list(rd.TREND_ORDER)
    assert table.loc["B"].tolist() == [0, 1, 1, 0]
    assert table.loc["all"].tolist() == [1, 1, 1, 1]
    assert (
        rd.trend_reading(table)
        == "Overall 25% of customers are advancing and 25% regressing; in tier A, 0% are regressing."
    )


def test_segment_overview_and_strategy(segment_store):
    seg = rd.segment_overview(segment_store, P1)
    assert seg["segment"].tolist() == ["Champions", "At risk", "No purchases"]  # by revenue
    assert seg.set_index("segment").loc["At risk", "revenue_12m"] == 400.0
    assert rd.strategy_by_tier(segment_store, P1).loc["retention"].to_dict() == {"A": 0, "B": 1, "C": 0}


def test_missing_tables_give_empty_frames(tmp_path):
    db = make_store(
        tmp_path / "s.duckdb",
        {"customers": {P1: pd.DataFrame({"customer_id": ids(1), "full_name": ["Ana"]})}},
    )
    card = rd.card_frame(db, P1).iloc[0]  # golden records only: identity shown, everything else empty
    assert card["display_name"] == "Ana" and pd.isna(card["clv_12m"]) and card["preferred_channel"] is None
    assert rd.value_tiers(db, P1).empty and rd.offer_summary(db, P1).empty
    assert rd.campaign_summary(db, P1).empty and rd.review_queue(db, P1).empty
    assert rd.relationship_trend(db, P1).empty and rd.id_events(db, P1).empty
    assert rd.id_changes(db, P1).loc[P1].tolist() == [0, 0, 0, 0]
    headline = rd.quality_headline(db, P1)
    assert headline.iloc[0].tolist() == [
        "Data quality score",
        "—",
        "the quality audit has not run for this period",
    ]
    assert rd.card_frame(tmp_path / "none.duckdb", P1).columns[0] == "customer_id"


# --------------------------------------------------------------------------------------------------
# campaigns
# --------------------------------------------------------------------------------------------------


def test_campaign_summary_totals_and_lists(tmp_path):
    results = pd.DataFrame(
        {
            "campaign": ["B", "B", "A", "A"],
            "selection_group": ["model", "random", "model", "random"],
            "channel": ["sms", "sms", "email", "email"],
            "started_at": pd.to_datetime(["2026-03-01", "2026-03-02", "2026-01-01", "2026-01-01"]),
            "n_contacted": [100, 100, 50, 50],
            "n_control": [20, 20, 10, 10],
            "incremental_responses": [5.0, 1.0, 2.0, 0.5],
            "incremental_revenue": [300.0, 100.0, 40.0, -10.0],
            "cost": [10.0, 10.0, 0.5, 0.5],
            "significant": [True, False, False, False],
        }
    )
    lists = pd.DataFrame(
        {
            "campaign": "NEXT",
            "channel": "email",
            "selection_group": ["model"] * 3 + ["random"] * 2,
            "customer_id": ids(5),
            "control": [False, False, True, False, True],
        }
    )
    db = make_store(tmp_path / "s.duckdb", {"campaign_results": {P1: results}, "next_campaign": {P1: lists}})
    summary = rd.campaign_summary(db, P1)
    assert summary["campaign"].tolist() == ["A", "A", "B", "B"]  # in start order
    totals = rd.campaign_totals(summary).set_index("campaign")
    assert totals.loc["B", "n_contacted"] == 200 and totals.loc["B", "incremental_revenue"] == 400.0
    assert totals.loc["B", "roi"] == pytest.approx((400 - 20) / 20)
    assert totals.loc["A", "roi"] == pytest.approx((30 - 1) / 1)
    assert totals.loc["B", "significant_groups"] == 1 and totals.loc["A", "significant_groups"] == 0
    table = rd.next_campaign_lists(db, P1).set_index("selection_group")
    assert table.loc["model", ["contacted", "control", "total"]].tolist() == [2, 1, 3]
    assert table.loc["random", ["contacted", "control", "total"]].tolist() == [1, 1, 2]
    assert rd.lists_reading(table.reset_index(), P1).startswith(
        "5 customers in 2 lists; only customers with consent for the channel are listed, and 40% are held out"
    )
    assert rd.lists_reading(rd.next_campaign_lists(tmp_path / "none.duckdb", P1), P1).startswith(
        "No target list"
    )


def test_interval_text():
    assert rd.interval_text(0.0725, 0.0226, 0.103) == "+7.2 pts [+2.3, +10.3]"
    assert rd.interval_text(3447.1, -1452.2, 5437.1, "money") == "€3,447 [−€1,452, €5,437]"
    assert rd.interval_text(0.01, np.nan, np.nan) == "+1.0 pts"
    assert rd.interval_text(np.nan, 0, 1) == "—"


# --------------------------------------------------------------------------------------------------
# quality, ingest, linkage
# --------------------------------------------------------------------------------------------------


def scorecard(passed_email: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": "crm",
            "field": ["email", "email", "email"],
            "dimension": ["completeness", "completeness", "validity"],
            "rule": ["not_null", "not_placeholder", "email_format"],
            "passed": [passed_email, 9, 18],
            "failed": [10 - passed_email, 1, 2],
            "score": [passed_email / 10, 0.9, 0.9],
            "status": ["red", "amber", "amber"],
            "detail": "",
        }
    )


def test_quality_trend_pools_rules_per_field(tmp_path):
    db = make_store(tmp_path / "s.duckdb", {"quality_scorecard": {P0: scorecard(10), P1: scorecard(8)}})
    trend = rd.quality_trend(db, P1).set_index(["period", "dimension"])
    # completeness: email checked 10 times by two rules, failures 2 + 1 = 3 -> 0.7 (red below 0.75)
    assert trend.loc[(P1, "completeness"), "score"] == pytest.approx(0.7)
    assert trend.loc[(P1, "completeness"), "status"] == "red"
    assert trend.loc[(P1, "validity"), ["score", "status"]].tolist() == [pytest.approx(0.9), "amber"]
    assert trend.loc[(P1, "overall"), "score"] == pytest.approx(1 - 5 / 30)
    assert trend.loc[(P0, "overall"), "score"] == pytest.approx(1 - 3 / 30)
    assert rd.kpis(make_store(db, {"customers": {P1: pd.DataFrame({"customer_id": ids(1)})}}), P1).loc[
        P1, "quality_score"
    ] == pytest.approx(1 - 5 / 30)
    head = rd.quality_headline(db, P1).set_index("measure")
    assert head.loc["Data quality score", "value"] == "83.3%"
    assert head.loc["Data quality score", "note"] == "weakest dimension: completeness 70.0% (red)"
    assert head.loc["Quality rules red / amber / green", "value"] == "1 / 2 / 0"
    issues = rd.quality_issues(db, P1)  # no quality_issues table: the red rules of the scorecard
    assert issues[["rule", "failed", "checked"]].values.tolist() == [["not_null", 2, 10]]


def test_ingest_headline_and_rejects(tmp_path):
    acct = pd.DataFrame(
        {
            "source": ["crm", "erp"],
            "kind": "party",
            "rows_read": [100, 300],
            "rows_staged": [90, 300],
            "rows_rejected": [10, 0],
            "records_staged": [90, 300],
            "field_rejects": [4, 1],
            "balanced": True,
        }
    )
    rejects = pd.DataFrame(
        {
            "source": ["crm", "crm", "erp", "crm"],
            "file": "f",
            "row_number": [1, 2, 3, 4],
            "column": ["email", "*", "iban", "email"],
            "value": "x",
            "reason": ["invalid_email", "duplicate_row", "invalid_iban", "invalid_email"],
            "action": ["field", "row", "field", "field"],
        }
    )
    db = make_store(tmp_path / "s.duckdb", {"ingest_accounting": {P1: acct}, "rejects": {P1: rejects}})
    head = rd.quality_headline(db, P1).set_index("measure")
    assert head.loc["Source rows read", "value"] == "400"
    assert head.loc["Rows rejected at ingest"].tolist() == ["10", "2.50% of rows read"]
    assert head.loc["Field values rejected", "value"] == "5"
    reasons = rd.reject_reasons(db, P1)
    assert reasons.iloc[0][["source", "reason", "action", "rejects"]].tolist() == [
        "crm",
        "invalid_email",
        "value set empty",
        2,
    ]
    matrix = rd.reject_matrix(reasons)
    assert matrix.index.tolist() == ["crm", "erp"] and matrix.loc["crm"].sum() == 3
    assert matrix.columns[0] == "invalid_email"


def test_linkage_funnel_accuracy_review_and_ids(tmp_path):
    stats = {
        "source_records": 100,
        "candidate_pairs": 1000,
        "pairs_kept": 150,
        "matched_pairs": 60,
        "review_pairs": 7,
        "customers": 40,
    }
    funnel = rd.linkage_funnel(stats)
    assert funnel["count"].tolist() == [100, 1000, 150, 60, 7, 40]
    assert funnel["step"].iloc[0] == "source records"

    (tmp_path / "processed" / P1 / "_stages").mkdir(parents=True)
    (tmp_path / "processed" / P1 / "_stages" / "unify.json").write_text(
        json.dumps({"rows_in": 1, "accuracy": {"pair_precision": 0.99, "pair_recall": 0.9}})
    )
    accuracy = rd.linkage_accuracy(tmp_path / "processed", P1)
    assert accuracy.to_dict() == {"pair_precision": 0.99, "pair_recall": 0.9}
    assert rd.accuracy_table(accuracy)["value"].tolist() == [0.99, 0.9]
    assert rd.linkage_accuracy(tmp_path / "processed", P0) is None

    review = pd.DataFrame(
        {
            "source_a": ["crm", "erp", "web"],
            "source_id_a": ["1", "2", "3"],
            "source_b": ["web", "crm", "erp"],
            "source_id_b": ["7", "8", "9"],
            "match_probability": [0.9, 0.52, 0.4],
            "linked": [True, True, False],
            "reasons": ["+9 email", "+3 name", "+1 city"],
            "full_name_a": ["Ana Ruiz", None, "Luis Gil"],
            "full_name_b": ["Ana Ruiz", "Eva Mora", "Luis Gil"],
        }
    )
    id_log = {
        P0: pd.DataFrame(
            {"event": ["new", "new"], "old_ids": "", "new_id": ["C1", "C2"], "n_records": 1, "detail": ""}
        ),
        P1: pd.DataFrame(
            {
                "event": ["new", "merge", "split"],
                "old_ids": ["", "C1|C2", "C3"],
                "new_id": ["C4", "C1", "C5"],
                "n_records": [1, 2, 1],
                "detail": "",
            }
        ),
    }
    db = make_store(
        tmp_path / "s.duckdb",
        {
            "review_queue": {P1: review},
            "id_log": id_log,
            "customers": {p: pd.DataFrame({"customer_id": ids(1)}) for p in ("2026-08", P0, P1)},
        },
    )
    queue = rd.review_queue(db, P1, n=2)
    assert queue["record_a"].tolist() == ["erp:2", "Luis Gil — web:3"]  # nearest 50 % first
    assert queue["record_b"].tolist() == ["Eva Mora — crm:8", "Luis Gil — erp:9"]
    pairs = rd.review_by_sources(db, P1).set_index("sources")
    assert pairs.loc["crm × erp", "pairs"] == 1 and pairs.loc["crm × web", "linked"] == 1
    changes = rd.id_changes(db, P1)
    assert changes.index.tolist() == ["2026-08", P0, P1]  # a period without events shows zeros
    assert changes.loc["2026-08"].tolist() == [0, 0, 0, 0]
    assert changes.loc[P0].tolist() == [2, 0, 0, 0] and changes.loc[P1].tolist() == [1, 1, 1, 0]
    assert rd.id_events(db, P1)["event"].tolist() == ["merge", "split"]


# --------------------------------------------------------------------------------------------------
# customer cards
# --------------------------------------------------------------------------------------------------


def test_short_reason_offer_text_and_channel_text():
    assert rd.short_reason(
        "Freidora: buyers of X also buy Y (52 %); via email (typical 5 %); margin 9", "Freidora"
    ) == ("buyers of X also buy Y (52 %)")
    assert rd.short_reason(None) == ""
    offers = pd.DataFrame(
        {
            "customer_id": ["C1"] * 4 + ["C2"],
            "rank": [2, 1, 4, 3, 1],
            "offer_name": ["Menaje", "Café", "LED", "Jardín", "Café"],
            "channel": ["email", "sms", "email", "email", "email"],
            "reason": ["a; via email", "b; via sms", "c", "d", None],
        }
    )
    text = rd.offer_text(offers, max_offers=3).set_index("customer_id")
    assert text.loc["C1", "next_best_offer"] == "1. Café · 2. Menaje · 3. Jardín"
    assert text.loc["C1", "offer_reason"] == "1. b, by sms\n2. a, by email\n3. d, by email"
    assert text.loc["C1", "offers"] == ["Café", "Menaje", "Jardín"]
    assert text.loc["C2", "offer_reason"] == "1. by email"
    assert rd.channel_text("sms", "sometimes", 2, 5) == "sms · responds sometimes (2 of 5 contacts)"
    assert rd.channel_text(None, "never", 0, 4) == "no channel yet · never responds (0 of 4 contacts)"
    assert rd.channel_text(None, None, None, None) is None


@pytest.fixture
def card_store(tmp_path):
    c = ["C1", "C2"]
    customers = pd.DataFrame(
        {
            "customer_id": c,
            "full_name": ["Ana Ruiz Gil", None],
            "given_name": ["Ana", "Bar"],
            "family_names": ["Ruiz Gil", "Pepe"],
            "party_type": ["person", "company"],
            "tax_id": ["12345678Z", None],
            "email": ["ana@example.com", None],
            "phone": ["+34612345678", None],
            "iban": ["ES9121000418450200051332", None],
            "address": ["Calle Mayor 5", "C/ Sol 1"],
            "billing_address": ["C/ Mayor, 5", "Avenida Luna 2"],
            "postcode": ["28013", None],
            "city": ["Madrid", None],
            "country": ["ES", "ES"],
            "currency": ["EUR", None],
            "payment_method": ["transferencia", None],
            "consent_email": [True, False],
            "consent_phone": [False, None],
            "created_at": pd.to_datetime(["2020-05-01", None]),
            "birth_date": pd.to_datetime(["1980-02-01", None]),
        }
    )
    one = {"customer_id": ["C1"]}
    tables = {
        "customers": pd.DataFrame(customers),
        "customer_value": pd.DataFrame(
            {
                **one,
                "revenue_12m": [1200.0],
                "orders_12m": [6.0],
                "revenue_lifetime": [5000.0],
                "aov": [200.0],
                "margin_12m": [400.0],
                "first_purchase_at": pd.to_datetime(["2019-03-02"]),
                "last_purchase_at": pd.to_datetime(["2026-10-20"]),
                "recency_days": [11.0],
                "orders_per_month": [0.5],
            }
        ),
        "customer_clv": pd.DataFrame({**one, "clv": [900.0], "p_alive": [0.95]}),
        "customer_rfm": pd.DataFrame({**one, "rfm_code": ["545"]}),
        "customer_service": pd.DataFrame(
            {
                **one,
                "tickets": [2],
                "open_tickets": [1],
                "nps_last": [9.0],
                "nps_category": ["promoter"],
                "csat_mean": [4.5],
            }
        ),
        "customer_sentiment": pd.DataFrame({**one, "sentiment_mean": [0.4], "mentions": [2]}),
        "customer_payment": pd.DataFrame(
            {
                **one,
                "preferred_payment_method": ["domiciliacion"],
                "mean_days_to_pay": [35.0],
                "mean_days_late": [5.0],
                "outstanding_balance": [120.0],
                "overdue_balance": [0.0],
            }
        ),
        "customer_preferences": pd.DataFrame(
            {
                **one,
                "top_categories": ["Café, Menaje"],
                "top_products": ["CAF-1"],
                "preferred_channel": ["web"],
            }
        ),
        "customer_trend": pd.DataFrame({**one, "trend": ["regressing"], "trend_score": [-0.5]}),
        "customer_segments": pd.DataFrame(
            {
                **one,
                "value_tier": ["A"],
                "rfm_segment": ["Champions"],
                "cluster_name": ["frequent buyers"],
                "strategy": ["retention"],
                "strategy_reason": ["churn risk 61 %"],
                "prescription_score": [55.0],
                "prescription_reasons": ["NPS promoter"],
                "prescriber": [True],
                "vulnerability_score": [20.0],
                "vulnerability_reasons": ["ticket spike"],
                "vulnerable": [False],
            }
        ),
        "customer_churn": pd.DataFrame({**one, "churn_probability": [0.61], "churn_band": ["high"]}),
        "next_best_offers": pd.DataFrame(
            {
                "customer_id": ["C1", "C1"],
                "rank": [1, 2],
                "offer_name": ["Café", "Menaje"],
                "channel": ["email", "sms"],
                "reason": ["buys Café again; via email", "x; via sms"],
            }
        ),
        "campaign_feedback": pd.DataFrame(
            {
                "customer_id": ["C1", "C1"],
                "channel": ["email", "sms"],
                "contacts": [3, 2],
                "responses": [2, 0],
                "responsiveness": ["sometimes", "sometimes"],
                "preferred_channel": [True, False],
                "contacts_total": [5, 5],
                "responses_total": [2, 2],
                "last_response_at": pd.to_datetime(["2026-09-01", None]),
            }
        ),
        "crosswalk": pd.DataFrame(
            {
                "source": ["crm_contacts", "erp_customers", "erp_customers", "web_customers"],
                "source_id": ["1", "2", "3", "4"],
                "customer_id": ["C1", "C1", "C1", "C2"],
            }
        ),
        "provenance": pd.DataFrame(
            {
                "customer_id": ["C1"] * 4,
                "field": ["tax_id", "iban", "address", "email"],
                "source": ["erp_customers", "erp_customers", "erp_customers", "crm_contacts"],
            }
        ),
    }
    db = make_store(tmp_path / "s.duckdb", {name: {P1: frame} for name, frame in tables.items()})
    orders = pd.DataFrame(
        {
            "customer_id": ["C1", "C1"],
            "date": pd.to_datetime(["2026-09-03", "2026-10-20"]),
            "amount": [80.0, 120.0],
            "kind": "purchase",
        }
    )
    store.write_parquet(orders, tmp_path / "processed" / P1 / "metrics" / "orders.parquet")
    return db, tmp_path / "processed"


def test_card_frame_follows_the_card_contract(card_store):
    db, processed = card_store
    cards = rd.card_frame(db, P1, processed=processed, months=3)
    contract = [f.name for f in render.CARD_FIELDS]
    assert cards["customer_id"].tolist() == ["C1", "C2"]
    assert cards.columns[: len(contract)].tolist() == contract  # contract columns first, in its order
    c1, c2 = cards.iloc[0], cards.iloc[1]
    assert c1["display_name"] == "Ana Ruiz Gil" and c2["display_name"] == "Bar Pepe"
    assert c1["address"] == "Calle Mayor 5"  # the billing address is the same place
    assert c2["address"] == "C/ Sol 1 · billing: Avenida Luna 2"
    assert c1["customer_since"] == pd.Timestamp("2019-03-02")  # first purchase before the record was created
    assert (
        c1["sources"] == ["erp_customers", "crm_contacts"] and c1["source_records"] == 3
    )  # by golden fields won
    assert c2["sources"] == ["web_customers"]
    assert c1["strategy"] == "retention: churn risk 61 %" and c1["relationship_trend"] == "regressing"
    assert (c1["clv_12m"], c1["revenue_total"], c1["days_to_pay"], c1["outstanding"]) == (
        900.0,
        5000.0,
        35.0,
        120.0,
    )
    assert (c1["tier"], c1["cluster"], c1["churn_risk"], c1["churn_band"]) == (
        "A",
        "frequent buyers",
        0.61,
        "high",
    )
    assert (c1["rfm_score"], c1["last_nps"], c1["open_tickets"]) == ("545", 9.0, 1)
    assert c1["next_best_offer"] == "1. Café · 2. Menaje"
    assert c1["offer_reason"] == "1. buys Café again, by email\n2. x, by sms"
    assert c1["preferred_channel"] == "email · responds sometimes (2 of 5 contacts)"
    assert c1["monthly_revenue"] == [0.0, 80.0, 120.0]
    # beyond the contract
    assert (c1["payment_method"], c1["currency"], c1["top_categories"]) == (
        "domiciliacion",
        "EUR",
        "Café, Menaje",
    )
    assert bool(c1["prescriber"]) and c1["vulnerability_reasons"] == "ticket spike"
    assert c1["responsiveness"] == "sometimes" and c1["offers"] == ["Café", "Menaje"]
    # a customer without metrics keeps its identity and shows nothing else
    assert pd.isna(c2["clv_12m"]) and pd.isna(c2["next_best_offer"]) and pd.isna(c2["preferred_channel"])
    assert not isinstance(c2["monthly_revenue"], list)


def test_card_frame_renders_and_masks(card_store):
    db, processed = card_store
    cards = rd.card_frame(db, P1, processed=processed, months=3)
    shown = render.card_records(cards, period=P1)[0]
    rows = dict(r for s in shown["left"] for r in s["rows"])
    assert rows["Tax id (NIF/NIE/CIF)"] == "12345678Z" and rows["Known in"] == "erp_customers, crm_contacts"
    assert shown["offer"]["title"] == "1. Café · 2. Menaje"
    masked = render.card_records(cards, masked=True, period=P1)[0]
    masked_rows = dict(r for s in masked["left"] for r in s["rows"])
    assert masked_rows["Tax id (NIF/NIE/CIF)"] == "1234****Z" and masked_rows["Email"] == "a***@e***.com"


def test_portfolio_helpers(card_store):
    db, processed = card_store
    cards = rd.card_frame(db, P1, processed=processed)
    signals = rd.portfolio_signals(cards).set_index("signal")["customers"]
    assert signals["high churn risk"] == 1 and signals["relationship regressing"] == 1
    assert signals["open support tickets"] == 1 and signals["overdue invoices"] == 0
    assert (
        signals["prescriber (recommends us)"] == 1
        and signals["vulnerable (payments, tickets, sentiment)"] == 0
    )
    assert rd.portfolio_actions(cards).loc["retention", "A"] == 1
    listed = rd.card_list(cards, n=1)
    assert listed.iloc[0][["customer_id", "strategy", "first_offer"]].tolist() == ["C1", "retention", "Café"]
    selection = render.CardSettings(select="top_n", top_n=1, by="clv_12m")
    chosen, missing = render.select_cards(cards, selection)
    assert rd.selection_text(selection, len(chosen), len(cards), missing) == (
        "1 of 2 customers get a card: the top 1 customers by clv_12m (params/default.yaml, reports.cards)."
    )


def test_styled_formats_and_hides_the_index():
    html = rd.styled(
        pd.DataFrame({"name": ["a", "b"], "revenue_12m": [1234.6, np.nan], "share": [0.1234, 0.5]}),
        {"revenue_12m": "money", "share": "percent"},
        labels={"revenue_12m": "revenue"},
    ).to_html()
    assert "€1,235" in html and "—" in html and "12.3%" in html and ">revenue<" in html
    assert "revenue_12m" not in html
