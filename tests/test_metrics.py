"""Customer metrics and CLV on hand-made customers with answers worked out by hand, and the CDNOW
reproduction of the published BG/NBD and Gamma-Gamma estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers import clv, metrics, sentiment
from helpers.config import load_settings

PERIOD = "2026-03"
AS_OF = metrics.period_end(PERIOD)  # 2026-03-31 23:59:59
START = pd.Timestamp("2026-03-01")
SETTINGS = metrics.MetricsSettings()
D = pd.Timestamp


def _tx(rows: list[tuple]) -> pd.DataFrame:
    cols = [
        "source",
        "party_source",
        "party_id",
        "order_id",
        "source_id",
        "date",
        "product",
        "category",
        "quantity",
        "amount",
        "currency",
        "channel",
        "payment_method",
        "due_date",
        "paid_date",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("date", "due_date", "paid_date"):
        frame[c] = pd.to_datetime(frame[c], format="ISO8601")
    return frame


E, W = "erp_invoices", "web_orders"
TRANSACTIONS = _tx(
    [
        # C1 (known in the ERP as E1 and in the web shop as W1)
        (
            E,
            "erp_customers",
            "E1",
            "F1",
            "F1-1",
            "2025-01-10",
            "PA",
            "A",
            2,
            100.0,
            "EUR",
            "tienda",
            "tarjeta",
            "2025-02-09",
            "2025-02-01",
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F1",
            "F1-2",
            "2025-01-10",
            "PB",
            "B",
            1,
            50.0,
            "EUR",
            "tienda",
            "tarjeta",
            "2025-02-09",
            "2025-02-01",
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F2",
            "F2-1",
            "2025-06-15",
            "PA",
            "A",
            1,
            50.0,
            "EUR",
            "tienda",
            "transferencia",
            "2025-07-15",
            "2025-09-20",
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F4",
            "F4-1",
            "2025-10-01",
            "PA",
            "A",
            1,
            50.0,
            "EUR",
            "tienda",
            "transferencia",
            "2025-10-31",
            None,
        ),
        (
            W,
            "web_customers",
            "W1",
            "O1",
            "O1-1",
            "2025-11-20 18:30",
            "X9",
            "B",
            1,
            108.0,
            "USD",
            "web",
            "card",
            None,
            None,
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F5",
            "F5-1",
            "2025-12-01",
            "PB",
            "B",
            1,
            -50.0,
            "EUR",
            "tienda",
            "transferencia",
            "2025-12-31",
            "2025-12-01",
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F3",
            "F3-1",
            "2026-03-05",
            "PB",
            "B",
            1,
            50.0,
            "EUR",
            "tienda",
            "transferencia",
            "2026-04-04",
            None,
        ),
        (
            E,
            "erp_customers",
            "E1",
            "F9",
            "F9-1",
            "2026-04-10",
            "PA",
            "A",
            1,
            999.0,
            "EUR",
            "tienda",
            "tarjeta",
            "2026-05-10",
            None,
        ),  # after the period
        # C2: one purchase
        (
            E,
            "erp_customers",
            "E2",
            "F7",
            "F7-1",
            "2026-01-15",
            "PB",
            "B",
            1,
            40.0,
            "EUR",
            "telefono",
            "domiciliacion",
            "2026-02-14",
            "2026-02-10",
        ),
        # C4: an invoice paid after the period end (unpaid as of the period)
        (
            E,
            "erp_customers",
            "E4",
            "F6",
            "F6-1",
            "2026-02-01",
            "PA",
            "A",
            1,
            50.0,
            "EUR",
            "comercial",
            "transferencia",
            "2026-03-03",
            "2026-04-15",
        ),
        # a party record that no customer owns: dropped by the link
        (
            E,
            "erp_customers",
            "E99",
            "F8",
            "F8-1",
            "2026-02-01",
            "PA",
            "A",
            1,
            50.0,
            "EUR",
            "tienda",
            "tarjeta",
            None,
            None,
        ),
    ]
)
CROSSWALK = pd.DataFrame(
    {
        "source": ["erp_customers", "web_customers", "erp_customers", "erp_customers", "erp_customers"],
        "source_id": ["E1", "W1", "E2", "E3", "E4"],
        "customer_id": ["C1", "C1", "C2", "C3", "C4"],
    }
)
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["C1", "C2", "C3", "C4"],
        "created_at": pd.to_datetime(["2024-06-01", None, "2026-03-20", None]),
    }
)
PRODUCTS = pd.DataFrame(
    {
        "source_id": ["PA", "PB"],
        "product": ["Producto A", "Producto B"],
        "category": ["A", "B"],
        "price": [50.0, 50.0],
        "unit_cost": [30.0, 20.0],
    }
)


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return metrics.transaction_lines(TRANSACTIONS, CROSSWALK, PRODUCTS, SETTINGS, AS_OF)


@pytest.fixture(scope="module")
def orders(lines) -> pd.DataFrame:
    return metrics.order_table(lines)


def _row(frame: pd.DataFrame, customer: str) -> pd.Series:
    return frame.set_index("customer_id").loc[customer]


def test_period_end_is_the_last_second_of_the_month():
    assert AS_OF == D("2026-03-31 23:59:59")
    assert metrics.period_end("2024-02") == D("2024-02-29 23:59:59")


def test_lines_are_linked_converted_and_cut_at_the_period_end(lines):
    assert set(lines["customer_id"]) == {"C1", "C2", "C4"}  # E99 has no customer; C3 bought nothing
    assert lines["date"].max() <= AS_OF  # the April invoice is left out
    web = lines[lines["order_key"] == "web_orders:O1"].iloc[0]
    assert web["amount"] == pytest.approx(100.0)  # 108 USD at 1.08 USD per EUR
    assert np.isnan(web["cost"])  # X9 is not in the catalogue
    refund = lines[lines["order_key"] == "erp_invoices:F5"].iloc[0]
    assert refund["cost"] == pytest.approx(-20.0) and refund["margin"] == pytest.approx(-30.0)


def test_unknown_currency_is_left_out_with_a_warning():
    tx = TRANSACTIONS.assign(
        currency=np.where(TRANSACTIONS["order_id"] == "F7", "JPY", TRANSACTIONS["currency"])
    )
    with pytest.warns(UserWarning, match="JPY"):
        out = metrics.transaction_lines(tx, CROSSWALK, PRODUCTS, SETTINGS, AS_OF)
    assert "C2" not in set(out["customer_id"])


def test_value_metrics_of_a_customer_with_refunds(orders):
    v = _row(metrics.value_metrics(orders, CUSTOMERS, SETTINGS, AS_OF, START), "C1")
    # purchases F1 150, F2 50, F4 50, O1 100, F3 50; refund F5 -50
    assert v["revenue_lifetime"] == pytest.approx(350)
    assert (
        v["orders_lifetime"] == 5 and v["refund_orders"] == 1 and v["refunds_lifetime"] == pytest.approx(50)
    )
    assert v["revenue_12m"] == pytest.approx(200)  # F2 + F4 + O1 + F3 - F5 (F1 is older than 12 months)
    assert v["orders_12m"] == 4
    assert v["revenue_period"] == pytest.approx(50) and v["orders_period"] == 1
    assert v["aov"] == pytest.approx(80)  # 350 gross purchases... (150+50+50+100+50) / 5
    assert v["recency_days"] == pytest.approx(27, abs=1e-3)  # 5 March 00:00 -> 31 March 23:59:59
    assert v["tenure_days"] == pytest.approx((AS_OF - D("2024-06-01")).total_seconds() / 86400)
    # margin on catalogue lines: F1 (100-60)+(50-20), F2 20, F4 20, F3 30, F5 -30 -> 110; O1 has no cost
    assert v["margin_lifetime"] == pytest.approx(110)
    assert v["margin_coverage"] == pytest.approx(350 / 450)
    assert v["orders_per_month"] == pytest.approx(4 / 12)


def test_value_metrics_edge_cases(orders):
    v = metrics.value_metrics(orders, CUSTOMERS, SETTINGS, AS_OF, START).set_index("customer_id")
    one = v.loc["C2"]  # one purchase
    assert (
        one["orders_lifetime"] == 1
        and one["aov"] == pytest.approx(40)
        and one["revenue_12m"] == pytest.approx(40)
    )
    assert one["tenure_days"] == pytest.approx(
        one["recency_days"]
    )  # no created_at: tenure starts at the purchase
    none = v.loc["C3"]  # no transactions
    assert none["revenue_lifetime"] == 0 and none["orders_lifetime"] == 0
    assert np.isnan(none["recency_days"]) and np.isnan(none["aov"])
    assert none["tenure_days"] == pytest.approx((AS_OF - D("2026-03-20")).total_seconds() / 86400)


def test_preferences(lines, orders):
    prefs, shares = metrics.preferences(lines, orders, CUSTOMERS, SETTINGS, AS_OF)
    p = _row(prefs, "C1")
    # A: 100 + 50 + 50 = 200; B: 50 + 100 - 50 + 50 = 150
    assert p["top_categories"] == "A, B" and p["top_category"] == "A"
    assert p["top_category_share"] == pytest.approx(200 / 350)
    assert p["preferred_channel"] == "tienda"  # 4 store invoices vs 1 web order
    assert p["categories_bought"] == 2
    assert shares.loc[shares["customer_id"] == "C1", "share"].sum() == pytest.approx(1)
    assert pd.isna(_row(prefs, "C3")["top_category"])


def test_payment_behaviour_with_unpaid_invoices(orders):
    pay = metrics.payment_metrics(orders, CUSTOMERS, SETTINGS, AS_OF).set_index("customer_id")
    c1 = pay.loc["C1"]
    # invoices in the last 12 months: F2 (paid 67 days late, 97 days after the invoice), F4 and F3 unpaid
    assert c1["invoices"] == 3 and c1["invoices_paid"] == 1
    assert c1["mean_days_late"] == pytest.approx(67) and c1["mean_days_to_pay"] == pytest.approx(97)
    assert c1["share_paid_61_90d"] == pytest.approx(1) and c1["share_paid_within_30d"] == pytest.approx(0)
    assert c1["outstanding_invoices"] == 2 and c1["outstanding_balance"] == pytest.approx(100)
    assert c1["overdue_balance"] == pytest.approx(50)  # F4 was due on 31 October; F3 is not due yet
    assert c1["max_days_overdue"] == 151
    assert c1["preferred_payment_method"] == "transferencia"
    c4 = pay.loc["C4"]  # paid on 15 April: still unpaid at the end of March
    assert c4["outstanding_balance"] == pytest.approx(50) and c4["max_days_overdue"] == 28
    assert c4["invoices_paid"] == 0 and np.isnan(c4["mean_days_late"])
    c2 = pay.loc["C2"]  # paid 4 days early: within 30 days
    assert c2["share_paid_within_30d"] == pytest.approx(1) and c2["mean_days_late"] == pytest.approx(-4)
    assert pay.loc["C3", "invoices"] == 0 and pay.loc["C3", "outstanding_balance"] == 0


def _interactions() -> pd.DataFrame:
    rows = [  # customer, type, opened, closed, minutes, score, score_type, text
        ("C1", "ticket", "2026-03-01 10:00", "2026-03-02 10:00", 10.0, 4.0, "csat", "Producto defectuoso"),
        ("C1", "ticket", "2026-02-01 10:00", "2026-02-01 12:00", 30.0, 2.0, "csat", "Consulta"),
        (
            "C1",
            "ticket",
            "2025-12-01 10:00",
            "2026-04-02 10:00",
            20.0,
            None,
            "csat",
            "Reclamación",
        ),  # open at period end
        (
            "C1",
            "ticket",
            "2024-01-01 10:00",
            "2024-01-02 10:00",
            99.0,
            1.0,
            "csat",
            "old",
        ),  # outside the window
        ("C1", "survey", "2025-06-01 10:00", None, None, 10.0, "nps", None),
        ("C1", "survey", "2026-02-01 10:00", None, None, 6.0, "nps", None),
        ("C1", "mention", "2026-01-05 10:00", None, None, None, None, "¡Me encanta, todo perfecto!"),
        ("C1", "mention", "2026-02-05 10:00", None, None, None, None, "Pésima atención, nadie responde"),
        ("C2", "survey", "2026-03-10 10:00", None, None, 9.0, "nps", None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "type",
            "opened_at",
            "closed_at",
            "handling_minutes",
            "score",
            "score_type",
            "text",
        ],
    )
    frame["opened_at"], frame["closed_at"] = (
        pd.to_datetime(frame["opened_at"]),
        pd.to_datetime(frame["closed_at"]),
    )
    return frame.assign(source="support", source_id=[f"I{i}" for i in range(len(frame))], channel="phone")


def test_service_metrics():
    s = metrics.service_metrics(_interactions(), CUSTOMERS, SETTINGS, AS_OF).set_index("customer_id")
    c1 = s.loc["C1"]
    assert c1["tickets"] == 3 and c1["tickets_recent"] == 2 and c1["open_tickets"] == 1
    assert c1["handling_minutes_mean"] == pytest.approx(20)
    assert c1["handling_minutes_p90"] == pytest.approx(28)  # 10, 20, 30 -> linear 90th percentile
    assert c1["resolution_hours_mean"] == pytest.approx(13)  # 24 h and 2 h; the open one does not count
    assert c1["csat_mean"] == pytest.approx(3) and c1["csat_responses"] == 2
    assert c1["nps_last"] == 6 and c1["nps_mean"] == pytest.approx(8) and c1["nps_category"] == "detractor"
    assert s.loc["C2", "nps_category"] == "promoter" and s.loc["C3", "tickets"] == 0
    assert metrics.nps_score(s.reset_index()) == pytest.approx(0)  # one promoter, one detractor


def test_sentiment_of_mentions():
    scored = metrics.score_mentions(_interactions(), SETTINGS, AS_OF)
    assert list(scored["sentiment"]) == ["positive", "negative"]
    s = _row(metrics.sentiment_metrics(scored, CUSTOMERS, SETTINGS, AS_OF), "C1")
    assert s["mentions"] == 2 and s["positive_mentions"] == 1 and s["negative_mentions"] == 1


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Todo perfecto, lo recomiendo 👍", "positive"),
        ("No me gusta nada", "negative"),
        ("El pedido llegó roto y tarde", "negative"),
        ("No está mal", "positive"),
        ("¿A qué hora abre la tienda?", "neutral"),
        (None, None),
    ],
)
def test_lexicon_sentiment(text, label):
    out = sentiment.score(pd.Series([text], dtype=object), sentiment.SentimentSettings(method="lexicon"))
    assert pd.isna(out["sentiment"].iloc[0]) if label is None else out["sentiment"].iloc[0] == label


def _contacts() -> pd.DataFrame:
    rows = [  # customer, channel, control, contacted, opened, responded, response_at, revenue
        ("C1", "email", False, "2026-01-10", True, True, "2026-01-12", 30.0),
        ("C1", "email", False, "2026-02-10", False, False, None, 0.0),
        ("C1", "sms", False, "2026-02-20", None, False, None, 0.0),
        ("C1", "email", True, "2026-02-25", None, True, "2026-02-27", 99.0),  # control arm: not contacted
        ("C2", "mailing", False, "2026-04-05", None, True, "2026-04-09", 10.0),  # after the period
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "channel",
            "control",
            "contacted_at",
            "opened",
            "responded",
            "response_at",
            "revenue",
        ],
    )
    frame["contacted_at"], frame["response_at"] = (
        pd.to_datetime(frame["contacted_at"]),
        pd.to_datetime(frame["response_at"]),
    )
    return frame.astype({"opened": "boolean"})


def test_engagement_from_campaigns():
    e = metrics.engagement_metrics(_contacts(), CUSTOMERS, AS_OF).set_index("customer_id")
    c1 = e.loc["C1"]
    assert c1["contacts"] == 3 and c1["emails_sent"] == 2 and c1["emails_opened"] == 1
    assert c1["responses"] == 1 and c1["offers_redeemed"] == 1 and c1["campaign_revenue"] == pytest.approx(30)
    assert c1["response_rate"] == pytest.approx(1 / 3) and c1["days_since_last_response"] == 78
    assert c1["response_history"] == "email 1/2 · sms 0/1"
    assert e.loc["C2", "contacts"] == 0 and pd.isna(e.loc["C2", "response_history"])


def test_sales_cycle(orders):
    opp = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1", "C1"],
            "created_at": pd.to_datetime(["2025-05-01", "2025-08-01", "2026-01-01", "2026-02-01"]),
            "closed_at": pd.to_datetime(["2025-05-31", "2025-08-11", None, "2026-05-01"]),
            "stage": ["Won", "Lost", "Open", "Won"],
            "amount": [100.0, 50.0, 500.0, 70.0],
        }
    )
    c = _row(metrics.sales_cycle(opp, orders, CUSTOMERS, AS_OF), "C1")
    assert (c["opportunities_won"], c["opportunities_lost"], c["opportunities_open"]) == (
        1,
        1,
        2,
    )  # won in May: open then
    assert c["win_rate"] == pytest.approx(0.5) and c["open_pipeline"] == pytest.approx(570)
    assert c["sales_cycle_days"] == pytest.approx(30)
    assert c["days_to_first_order"] == pytest.approx(45)  # created 1 May -> invoice F2 on 15 June


def test_relationship_trend():
    rows = [
        ("UP", "2026-01-15", 100.0),
        ("DOWN", "2025-06-15", 100.0),
        ("FLAT", "2025-06-15", 100.0),
        ("FLAT", "2025-09-15", 100.0),
        ("FLAT", "2026-01-15", 100.0),
    ]
    orders = pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).assign(kind="purchase")
    orders["date"] = pd.to_datetime(orders["date"])
    people = pd.DataFrame({"customer_id": ["UP", "DOWN", "FLAT", "NONE"]})
    t = metrics.relationship_trend(orders, None, None, people, SETTINGS, AS_OF).set_index("customer_id")
    assert t.loc["UP", "trend"] == "advancing" and t.loc["UP", "trend_score"] == pytest.approx(1)
    assert t.loc["DOWN", "trend"] == "regressing" and t.loc["DOWN", "value_change"] == pytest.approx(-1)
    # FLAT: 100 in 6 recent months = 16.7/month vs 200 in the 12 before = 16.7/month
    assert t.loc["FLAT", "trend"] == "stagnating" and t.loc["FLAT", "trend_score"] == pytest.approx(0)
    assert t.loc["NONE", "trend"] == "inactive"


def test_rfm_scores():
    people = pd.DataFrame({"customer_id": [f"K{i}" for i in range(6)]})
    rows = []
    for i in range(1, 6):  # K5: most recent, most frequent, biggest spender
        rows += [(f"K{i}", AS_OF - pd.Timedelta(days=10 * (6 - i) + j), 10.0 * i) for j in range(i)]
    orders = pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).assign(kind="purchase")
    r = metrics.rfm_scores(orders, people, SETTINGS, AS_OF).set_index("customer_id")
    assert r.loc["K5", "rfm_code"] == "555" and r.loc["K1", "rfm_code"] == "111"
    assert r.loc["K0", "rfm_code"] == "000" and r.loc["K0", "rfm_total"] == 0
    assert list(r.loc[[f"K{i}" for i in range(1, 6)], "f_score"]) == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------ CLV
def test_clv_summary_by_hand(orders):
    s = clv.summary(orders, AS_OF)
    c1 = s.loc[
        "C1"
    ]  # purchase days 10 Jan, 15 Jun, 1 Oct, 20 Nov 2025, 5 Mar 2026 (the refund day is not one)
    assert c1["frequency"] == 4
    assert c1["recency"] == pytest.approx(419 / 7) and c1["T"] == pytest.approx(445 / 7)
    assert c1["monetary_value"] == pytest.approx((50 + 50 + 100 + 50) / 4)  # repeat purchases only
    c2 = s.loc["C2"]  # one purchase
    assert c2["frequency"] == 0 and c2["recency"] == 0 and c2["monetary_value"] == 0
    assert c2["T"] == pytest.approx(75 / 7)
    assert "C3" not in s.index


def test_clv_summary_matches_lifetimes_conventions():
    from lifetimes.utils import summary_data_from_transaction_data

    rng = np.random.default_rng(3)
    n = 400
    tx = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 60, n).astype(str),
            "date": D("2025-01-01") + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h"),
            "amount": rng.gamma(2, 30, n).round(2),
        }
    )
    end = D("2026-02-10")
    expected = summary_data_from_transaction_data(
        tx, "customer_id", "date", "amount", observation_period_end=end, freq="D"
    )
    ours = clv.summary(tx.assign(kind="purchase"), end, clv.ClvSettings(time_unit="D")).loc[expected.index]
    for col in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(
            ours[col].to_numpy(float), expected[col].to_numpy(float), rtol=1e-9, err_msg=col
        )


def test_cdnow_reproduces_the_published_estimates():
    from lifetimes.datasets import load_cdnow_summary, load_cdnow_summary_data_with_monetary_value

    settings = clv.ClvSettings(min_customers=30)
    purchases = load_cdnow_summary(index_col=[0]).assign(monetary_value=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gamma-Gamma cannot fit a constant spend: only BG/NBD is used here
        bgf = clv.fit(purchases, settings).bgf
    paper = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)
    for k, v in paper.items():
        assert bgf.params_[k] == pytest.approx(v, rel=0.01), k
    spend = load_cdnow_summary_data_with_monetary_value()
    ggf = clv.fit(spend, settings).ggf
    for k, v in {"p": 6.25, "q": 3.74, "v": 15.44}.items():  # Fader & Hardie (2013), gamma = v
        assert ggf.params_[k] == pytest.approx(v, rel=0.02), k


def test_clv_predictions_are_sane(orders):
    s = clv.summary(orders, AS_OF)
    rng = np.random.default_rng(0)  # a population big enough to fit, plus our hand-made customers
    pop = pd.DataFrame({"frequency": rng.poisson(3, 300).astype(float)})
    pop["T"] = rng.uniform(20, 60, 300)
    pop["recency"] = pop["T"] * rng.uniform(0, 1, 300) * (pop["frequency"] > 0)
    pop["monetary_value"] = np.where(pop["frequency"] > 0, rng.gamma(4, 20, 300), 0.0)
    both = pd.concat([s, pop.set_index("P" + pop.index.astype(str))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = clv.predict(clv.fit(both), both)
    assert pred["p_alive"].between(0, 1).all() and (pred["expected_purchases"] >= 0).all()
    assert (pred["clv"] > 0).all()


def test_clv_fit_falls_back_to_a_penaliser(monkeypatch):
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    real_fit = BetaGeoFitter.fit

    def flaky_fit(self, *args, **kwargs):
        if self.penalizer_coef == 0:
            raise ConvergenceError("The model did not converge. Try adding a larger penalizer")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(BetaGeoFitter, "fit", flaky_fit)
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    data = load_cdnow_summary_data_with_monetary_value()
    with pytest.warns(UserWarning, match="penalizer 0.001"):
        models = clv.fit(data, clv.ClvSettings())
    assert models.bgf is not None and models.bgf_penalizer == 0.001 and models.ggf_penalizer == 0.0
    assert any("penalizer" in n for n in models.notes)


def test_clv_without_enough_buyers_warns_and_leaves_clv_empty(orders):
    s = clv.summary(orders, AS_OF)
    with pytest.warns(UserWarning, match="repeat buyers"):
        models = clv.fit(s)
    assert clv.predict(models, s)["clv"].isna().all()


def test_holdout_check_compares_prediction_with_what_happened():
    from lifetimes.datasets import load_dataset

    raw = load_dataset(
        "CDNOW_sample.txt", header=None, sep=r"\s+", names=["id", "customer_id", "date", "cds", "amount"]
    )
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    orders = raw.assign(customer_id=raw["customer_id"].astype(str), kind="purchase")
    settings = clv.ClvSettings(holdout_months=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per, by_freq, stats = clv.holdout_check(orders, D("1998-06-30"), settings)
    assert stats["customers"] > 2300  # CDNOW's 2357 customers, less those whose purchases are all $0
    # the paper's aggregate forecast for CDNOW is within a few percent of what happened
    assert stats["predicted_purchases"] == pytest.approx(stats["actual_purchases"], rel=0.15)
    assert stats["correlation"] > 0.5 and list(by_freq.columns) == [
        "calibration_frequency",
        "customers",
        "predicted",
        "actual",
    ]


# ------------------------------------------------------------------------------------- settings
def test_yaml_section_equals_the_defaults():
    assert metrics.metrics_settings(load_settings()) == metrics.MetricsSettings()


def test_settings_errors_name_the_key():
    from helpers.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics.trend.recent_months"):
        metrics.metrics_settings({"trend": {"recent_months": 0}})
    with pytest.raises(ConfigError, match="reporting currency"):
        metrics.metrics_settings({"fx_per_unit": {"USD": 1.08}})


def test_wide_joins_every_concept(lines, orders):
    tables = {
        "value": metrics.value_metrics(orders, CUSTOMERS, SETTINGS, AS_OF, START),
        "payment": metrics.payment_metrics(orders, CUSTOMERS, SETTINGS, AS_OF),
        "rfm": metrics.rfm_scores(orders, CUSTOMERS, SETTINGS, AS_OF),
    }
    w = metrics.wide(tables)
    assert len(w) == len(CUSTOMERS) and w["customer_id"].is_unique
    assert {"revenue_12m", "outstanding_balance", "rfm_code"} <= set(w.columns)


def test_customers_without_any_activity_get_empty_metrics_not_errors():
    no_orders = metrics.order_table(
        metrics.transaction_lines(TRANSACTIONS.iloc[:0], CROSSWALK, PRODUCTS, SETTINGS, AS_OF)
    )
    no_inter = _interactions().iloc[:0]
    out = {
        "value": metrics.value_metrics(no_orders, CUSTOMERS, SETTINGS, AS_OF, START),
        "payment": metrics.payment_metrics(no_orders, CUSTOMERS, SETTINGS, AS_OF),
        "service": metrics.service_metrics(no_inter, CUSTOMERS, SETTINGS, AS_OF),
        "sentiment": metrics.sentiment_metrics(
            metrics.score_mentions(no_inter, SETTINGS, AS_OF), CUSTOMERS, SETTINGS, AS_OF
        ),
        "engagement": metrics.engagement_metrics(_contacts().iloc[:0], CUSTOMERS, AS_OF),
        "trend": metrics.relationship_trend(no_orders, None, None, CUSTOMERS, SETTINGS, AS_OF),
        "rfm": metrics.rfm_scores(no_orders, CUSTOMERS, SETTINGS, AS_OF),
    }
    for name, table in out.items():
        assert list(table["customer_id"]) == list(CUSTOMERS["customer_id"]), name
    assert (out["value"]["orders_lifetime"] == 0).all() and (out["trend"]["trend"] == "inactive").all()
    assert clv.summary(no_orders, AS_OF).empty


def test_an_order_at_the_first_midnight_of_the_period_counts_in_the_period():
    start = D("2026-03-01 00:00:00")
    orders = pd.DataFrame(
        {
            "customer_id": ["C9", "C9"],
            "date": [start, D("2026-02-28 23:59:59")],
            "amount": [30.0, 20.0],
            "kind": ["purchase", "purchase"],
            "cost_known": [False, False],
            "margin": [np.nan, np.nan],
        }
    )
    customers = pd.DataFrame({"customer_id": ["C9"]})
    v = _row(metrics.value_metrics(orders, customers, SETTINGS, AS_OF, start), "C9")
    assert v["revenue_period"] == pytest.approx(30) and v["orders_period"] == 1
    assert v["revenue_12m"] == pytest.approx(50)
