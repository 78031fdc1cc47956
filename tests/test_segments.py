"""Segmentation on hand-made customers: tiers, RFM names, clusters, churn, rule scores, strategy and
the next-best-offer rules (ranking, exclusions, consent, responsiveness, reasons)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import segments
from helpers.config import load_settings
from helpers.errors import ConfigError

SETTINGS = segments.SegmentsSettings()
D = pd.Timestamp


def test_yaml_section_equals_the_defaults():
    assert segments.segments_settings(load_settings()) == SETTINGS


def test_offer_catalogue_in_params_is_valid():
    from helpers.config import project_root

    offers = segments.load_offers(project_root() / "params" / SETTINGS.nbo.offers_file)
    assert len(offers) >= 5
    assert {ch for o in offers for ch in o.channels} <= set(SETTINGS.nbo.channel_consent)


def test_bad_offer_catalogue_names_the_file_and_the_offer(tmp_path):
    path = tmp_path / "offers.yaml"
    path.write_text("offers:\n  - {id: X, name: x, product: P1, category: A, channels: [email]}\n")
    with pytest.raises(ConfigError, match=r"(?s)offers.yaml.*offers\.0.*exactly one"):
        segments.load_offers(path)
    path.write_text(
        "offers:\n  - {id: X, name: x, category: A, channels: [email]}\n"
        "  - {id: X, name: y, category: B, channels: [sms]}\n"
    )
    with pytest.raises(ConfigError, match="unique"):
        segments.load_offers(path)


def test_value_tiers_by_clv_rank():
    clv = pd.Series([100, 90, 80, 70, 60, 50, 40, 30, 20, 10, np.nan], index=[f"K{i}" for i in range(11)])
    tiers = segments.value_tiers(clv, SETTINGS)
    assert list(tiers) == [
        "A",
        "A",
        "B",
        "B",
        "B",
        "C",
        "C",
        "C",
        "C",
        "C",
        "C",
    ]  # top 20 %, next 30 %, rest; no CLV -> C


def test_rfm_segment_names():
    rfm = pd.DataFrame({"r_score": [5, 3, 1, 4, 0, 5], "f_score": [5, 4, 5, 1, 0, 1]})
    assert list(segments.rfm_segments(rfm, SETTINGS)) == [
        "Champions",
        "Loyal customers",
        "Cannot lose them",
        "Promising",
        "No purchases",
        "New customers",
    ]


def test_rule_scores_add_points_and_say_why():
    frame = pd.DataFrame(
        {
            "mean_days_late": [45, 5, np.nan],
            "max_days_overdue": [60, np.nan, np.nan],
            "tickets_recent": [0, 3, 0],
            "negative_mentions": [0, 1, 0],
            "nps_category": ["detractor", None, "promoter"],
            "value_change": [-0.8, 0.1, 0.0],
        }
    )
    score, why = segments.rule_score(frame, SETTINGS.vulnerability)
    assert list(score) == [25 + 20 + 10 + 20, 20 + 15, 0]
    assert (
        why[0]
        == "pays 30+ days late on average; an invoice overdue 30+ days; NPS detractor; value fell by half or more"
    )
    assert why[2] == ""
    with pytest.raises(KeyError, match="unknown column"):
        segments.rule_score(frame.drop(columns="tickets_recent"), SETTINGS.vulnerability)


def test_strategy_rules():
    frame = pd.DataFrame(
        {
            "orders_lifetime": [0, 5, 5, 5, 5],
            "churn_probability": [np.nan, 0.7, 0.1, 0.1, 0.1],
            "value_tier": ["C", "C", "A", "A", "B"],
            "trend": ["inactive", "stagnating", "regressing", "advancing", "advancing"],
        }
    )
    strat, why = segments.strategy(frame, SETTINGS.strategy)
    assert list(strat) == ["acquisition", "retention", "retention", "loyalty", "development"]
    assert why[1] == "churn risk 70 %" and "regressing" in why[2]


def _churn_orders(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """Customers buying most months; a third stop at a random month: recency tells who does not come back."""
    rng = np.random.default_rng(seed)
    months = 30
    stop = np.where(np.arange(n) % 3 == 0, rng.integers(6, months, n), months)
    grid = (np.arange(months)[None, :] < stop[:, None]) & (rng.random((n, months)) < 0.8)
    who, month = np.nonzero(grid)
    date = pd.to_datetime("2024-01-01") + pd.to_timedelta(
        month * 30.4 + rng.integers(0, 28, len(month)), unit="D"
    )
    return pd.DataFrame(
        {
            "customer_id": "K" + pd.Series(who).astype(str),
            "date": date,
            "amount": rng.gamma(3, 20, len(month)),
            "kind": "purchase",
        }
    )


def test_churn_label_is_no_purchase_in_the_next_months():
    orders = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B"],
            "date": pd.to_datetime(["2026-01-10", "2026-03-05", "2026-01-20"]),
            "amount": 10.0,
            "kind": "purchase",
        }
    )
    label = segments.churn_label(orders, pd.Index(["A", "B"]), D("2026-01-31 23:59:59"), 3)
    assert dict(label) == {"A": 0, "B": 1}


def test_churn_model_is_checked_out_of_time():
    orders = _churn_orders()
    as_of = D("2026-06-30 23:59:59")
    train = segments.churn_training_set(orders, as_of, SETTINGS.churn)
    assert train["cutoff"].max() == as_of - pd.DateOffset(months=3)
    assert train["cutoff"].nunique() == SETTINGS.churn.snapshots
    stats, calibration = segments.evaluate_churn(train, SETTINGS.churn)
    assert pd.Timestamp(stats["test_cutoff"]) == train["cutoff"].max().normalize()
    assert stats["auc"] > 0.8 and stats["brier"] < stats["brier_base"]
    assert calibration["predicted"].between(0, 1).all()
    scored = segments.score_churn(segments.fit_churn(train, SETTINGS.churn), orders, as_of, SETTINGS.churn)
    assert scored["churn_probability"].between(0, 1).all() and set(scored["churn_band"]) <= {
        "low",
        "medium",
        "high",
    }
    stopped = orders.groupby("customer_id")["date"].max() < D("2025-06-01")
    p = scored.set_index("customer_id")["churn_probability"]
    assert p[stopped[stopped].index].mean() > p[stopped[~stopped].index].mean() + 0.3


def test_clusters_find_separated_groups_and_describe_them():
    rng = np.random.default_rng(0)
    n = 120
    big = rng.random(n) < 0.5
    metrics = pd.DataFrame(
        {
            "customer_id": [f"K{i}" for i in range(n)] + ["NOBUY"],
            "orders_lifetime": [3] * n + [0],
            "revenue_12m": np.r_[np.where(big, 5000, 100) * rng.uniform(0.9, 1.1, n), 0],
            "orders_12m": np.r_[np.where(big, 20, 2) + rng.integers(0, 2, n), 0],
            "recency_days": np.r_[np.where(big, 10, 200) + rng.integers(0, 5, n), np.nan],
        }
    )
    settings = segments.ClusterSettings(
        features=["revenue_12m", "orders_12m", "recency_days"], log_features=["revenue_12m"], k_min=2, k_max=4
    )
    labels, profile, scores = segments.clusters(metrics, settings)
    assert scores.loc[scores["silhouette"].idxmax(), "k"] == 2 and len(profile) == 2
    assert labels["NOBUY"] == -1
    assert labels[[f"K{i}" for i in np.flatnonzero(big)]].nunique() == 1
    words = set(profile["description"])
    assert any("high spend" in w and "frequent buyers" in w for w in words)
    assert any("low spend" in w and "lapsed" in w for w in words)


# ------------------------------------------------------------------------------- next best offer
PRODUCTS = pd.DataFrame(
    {
        "source_id": ["PA1", "PA2", "PB1"],
        "category": ["A", "A", "B"],
        "price": [100.0, 40.0, 30.0],
        "unit_cost": [60.0, 30.0, 20.0],
    }
)


def _lines() -> pd.DataFrame:
    rows = [
        ("K1", "o1", "PA1", "A", 100.0),
        ("K1", "o2", "PB1", "B", 30.0),
        ("K2", "o3", "PA2", "A", 40.0),
        ("K3", "o4", "PA2", "A", 40.0),
        ("K3", "o5", "PB1", "B", 30.0),
        ("K3", "o6", "PA2", "A", 40.0),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "order_key", "product", "category", "amount"])


CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["K1", "K2", "K3", "K4"],
        "party_type": ["person"] * 4,
        "consent_email": pd.array([True, True, True, None], dtype="boolean"),
        "consent_sms": pd.array([True, False, True, True], dtype="boolean"),
        "consent_phone": pd.array([False] * 4, dtype="boolean"),
        "consent_mail": pd.array([False] * 4, dtype="boolean"),
    }
)
PROFILE = pd.DataFrame(
    {
        "customer_id": ["K1", "K2", "K3", "K4"],
        "orders_lifetime": [2, 1, 3, 0],
        "value_tier": ["A", "C", "B", "C"],
        "strategy": ["loyalty", "development", "development", "acquisition"],
    }
)
OFFERS = [
    segments.Offer(id="CROSS-B", name="Discover B", category="B", channels=["email", "sms"], margin=10.0),
    segments.Offer(
        id="PROD-PA1", name="Product PA1", product="PA1", channels=["email"]
    ),  # margin from the catalogue: 40
    segments.Offer(
        id="WELCOME", name="Welcome", category="A", channels=["email", "sms"], margin=5.0, max_orders=0
    ),
    segments.Offer(
        id="REFILL-A",
        name="Refill A",
        category="A",
        channels=["email"],
        margin=8.0,
        new_to_customer=False,
        min_orders=1,
    ),
]


def _nbo(feedback=None, **kw) -> pd.DataFrame:
    settings = SETTINGS.nbo.model_copy(update=kw)
    return segments.next_best_offers(
        CUSTOMERS, PROFILE, _lines(), OFFERS, settings, products=PRODUCTS, feedback=feedback
    )


def test_affinity_statistics():
    incidence, cond, base, repeat = segments.category_affinity(_lines())
    assert cond.loc["A", "B"] == pytest.approx(2 / 3)  # of 3 buyers of A, 2 bought B
    assert cond.loc["B", "A"] == pytest.approx(1)
    assert base["B"] == pytest.approx(2 / 3) and repeat["A"] == pytest.approx(1 / 3)  # only K3 bought A twice


def test_offers_are_ranked_by_expected_value_and_explained():
    nbo = _nbo()
    k2 = nbo[nbo["customer_id"] == "K2"].set_index("offer_id")
    # K2 bought A only: P(B | A) = 2/3, email at the default 5 % (no sms consent) -> 0.0333 x 10
    assert k2.loc["CROSS-B", "channel"] == "email"
    assert k2.loc["CROSS-B", "propensity"] == pytest.approx(2 / 3 * 0.05)
    assert k2.loc["CROSS-B", "expected_value"] == pytest.approx(2 / 3 * 0.05 * 10)
    # PA1: affinity to A is the repeat rate of A (1/3) x PA1's share of A buyers (1/3), margin 100 - 60
    assert k2.loc["PROD-PA1", "expected_value"] == pytest.approx(1 / 3 * 1 / 3 * 0.05 * 40)
    assert k2.loc["CROSS-B", "reason"].startswith(
        "buyers of A also buy B (67 %); via email (typical response 5.0 %)"
    )
    assert "margin 40 EUR" in k2.loc["PROD-PA1", "reason"] and k2.loc["PROD-PA1", "reason"].startswith(
        "Product PA1: "
    )
    ranked = nbo.sort_values(["customer_id", "rank"])
    for _, g in ranked.groupby("customer_id"):
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert g["expected_value"].is_monotonic_decreasing


def test_what_the_customer_has_is_not_offered():
    nbo = _nbo()
    offered = set(zip(nbo["customer_id"], nbo["offer_id"], strict=True))
    assert ("K1", "PROD-PA1") not in offered  # K1 bought PA1
    assert ("K1", "CROSS-B") not in offered and ("K3", "CROSS-B") not in offered  # they buy B already
    assert ("K3", "REFILL-A") in offered  # a replenishment offer goes to current buyers


def test_eligibility_rules():
    nbo = _nbo()
    assert set(nbo.loc[nbo["offer_id"] == "WELCOME", "customer_id"]) == {"K4"}  # never bought: max_orders 0
    # REFILL-A needs a purchase; PA1 goes by e-mail only, and K4's e-mail consent is unknown (= no consent)
    assert set(nbo.loc[nbo["customer_id"] == "K4", "offer_id"]) == {"WELCOME", "CROSS-B"}
    k4 = nbo[(nbo["customer_id"] == "K4") & (nbo["offer_id"] == "WELCOME")].iloc[0]
    assert k4["channel"] == "sms" and k4["propensity"] == pytest.approx(
        1.0 * 0.04
    )  # base rate of A among buyers
    assert k4["reason"].startswith("A is bought by 100 % of customers")


def test_no_channel_without_consent():
    nbo = _nbo()
    consent = CUSTOMERS.set_index("customer_id")
    assert len(nbo)
    for row in nbo.itertuples():
        assert bool(consent.loc[row.customer_id, SETTINGS.nbo.channel_consent[row.channel]]) is True


def test_channels_the_customer_never_answers_are_left_out():
    feedback = pd.DataFrame(
        {
            "customer_id": ["K2", "K4", "K4"],
            "channel": ["email", "sms", "email"],
            "contacts": [3, 1, 4],
            "responses": [0, 1, 0],
            "rate_shrunk": [0.01, 0.5, 0.02],
            "responsiveness": ["never", "sometimes", "sometimes"],
        }
    )
    nbo = _nbo(feedback)
    assert "K2" not in set(nbo["customer_id"])  # e-mail: 3 contacts, no response; no sms consent
    k4 = nbo[(nbo["customer_id"] == "K4") & (nbo["offer_id"] == "WELCOME")].iloc[0]
    assert k4["channel"] == "sms" and k4["propensity"] == pytest.approx(1.0 * 0.5)  # own shrunk rate
    assert "answered 1 of 1 contacts" in k4["reason"]
    relaxed = _nbo(feedback, never_min_contacts=5)
    assert "K2" in set(relaxed["customer_id"])


def test_at_most_max_offers_and_unknown_channels_are_refused():
    assert _nbo(max_offers=1).groupby("customer_id").size().max() == 1
    bad = [segments.Offer(id="X", name="x", category="A", channels=["whatsapp"], margin=1.0)]
    with pytest.raises(ConfigError, match="whatsapp"):
        segments.next_best_offers(CUSTOMERS, PROFILE, _lines(), bad, SETTINGS.nbo, products=PRODUCTS)


def test_no_purchase_history_gives_no_offers():
    nbo = segments.next_best_offers(
        CUSTOMERS, PROFILE, _lines().iloc[:0], OFFERS, SETTINGS.nbo, products=PRODUCTS
    )
    assert nbo.empty and "reason" in nbo.columns


def test_offers_that_require_a_category():
    needs_b = [
        segments.Offer(
            id="PB-UPSELL",
            name="Upsell for B buyers",
            product="PA1",
            channels=["sms"],
            margin=20.0,
            requires_categories=["B"],
        )
    ]
    nbo = segments.next_best_offers(CUSTOMERS, PROFILE, _lines(), needs_b, SETTINGS.nbo, products=PRODUCTS)
    assert set(nbo["customer_id"]) == {"K3"}  # K1 also buys B but has PA1 already; K2 and K4 never bought B
