"""Campaign measurement: statistics against statsmodels/scipy and published figures, SRM, feedback on
hand-made histories, consent and reproducibility of the next campaign, recovery of planted effects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from helpers import campaigns as cp
from helpers.config import load_settings
from helpers.errors import ConfigError, ScvError

ROOT = Path(__file__).resolve().parents[1]


def settings(**kw) -> cp.CampaignSettings:
    return cp.CampaignSettings(**kw)


def contacts_frame(cells, *, revenue=50.0) -> pd.DataFrame:
    """Contact rows from (campaign, group, channel, n_contacted, responders, n_control, responders)."""
    rows = []
    for campaign, group, channel, n_t, x_t, n_c, x_c in cells:
        for control, n, x in ((False, n_t, x_t), (True, n_c, x_c)):
            for i in range(n):
                rows.append(
                    {
                        "campaign": campaign,
                        "selection_group": group,
                        "control": control,
                        "channel": channel,
                        "responded": i < x,
                        "contacted_at": pd.Timestamp("2026-03-01 10:00"),
                        "response_at": pd.Timestamp("2026-03-05") if i < x else pd.NaT,
                        "revenue": revenue if i < x else 0.0,
                        "opened": False,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["customer_id"] = [f"C{i:05d}" for i in range(len(frame))]
    return frame


# ------------------------------------------------------------------------------------------------ settings


def test_yaml_section_equals_the_defaults():
    assert cp.campaign_settings(load_settings(root=ROOT)) == cp.CampaignSettings()


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match=r"campaigns\.costs\.fax"):
        cp.campaign_settings({"costs": {"fax": 1.0}})
    with pytest.raises(ConfigError, match=r"campaigns\.next\.marketing_rule\.where\.0.*needs a list"):
        cp.campaign_settings(
            {"next": {"marketing_rule": {"where": [{"column": "tier", "op": "in", "value": "gold"}]}}}
        )
    with pytest.raises(ConfigError, match=r"campaigns\.confidnce.*unknown key"):
        cp.campaign_settings({"confidnce": 0.9})


def test_planned_share_by_id_then_pattern():
    s = settings(planned_control_share=0.15, control_shares={"CMP-1": 0.3, "*-FIDELIZACION": 0.1})
    assert s.planned_share("CMP-1") == 0.3
    assert s.planned_share("CMP-202607-FIDELIZACION") == 0.1
    assert s.planned_share("CMP-9") == 0.15


# ------------------------------------------------------------------------------------------------ rates and uplift

# Newcombe (1998), Statist. Med. 17:857-872: Wilson score intervals (Table I, method 3) and the
# hybrid-score interval for a difference of independent proportions (Table II, method 10).
WILSON_PUBLISHED = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
]
NEWCOMBE_PUBLISHED = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
]


@pytest.mark.parametrize(("counts", "published"), WILSON_PUBLISHED)
def test_wilson_rates_match_published_and_statsmodels(counts, published):
    x, n = counts
    frame = contacts_frame([("A", "random", "email", n, x, 5, 1)])
    rates = cp.response_rates(frame, confidence=0.95)
    row = rates[rates["arm"] == "contacted"].iloc[0]
    assert (row["size"], row["responders"]) == (n, x)
    assert row["response_rate"] == pytest.approx(x / n)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(published, abs=5e-5)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        proportion_confint(x, n, alpha=0.05, method="wilson")
    )


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_PUBLISHED)
def test_uplift_interval_is_newcombe_contacted_minus_control(counts, published):
    x_t, n_t, x_c, n_c = counts
    results = cp.measure(
        contacts_frame([("A", "model", "email", n_t, x_t, n_c, x_c)]), settings(bootstrap=200)
    )
    row = results.iloc[0]
    assert row["uplift"] == pytest.approx(x_t / n_t - x_c / n_c)
    assert (row["uplift_ci_low"], row["uplift_ci_high"]) == pytest.approx(published, abs=5e-5)
    # the sign: contacted − control, also when the control does better
    flipped = cp.measure(
        contacts_frame([("A", "model", "email", n_c, x_c, n_t, x_t)]), settings(bootstrap=200)
    ).iloc[0]
    assert (flipped["uplift_ci_low"], flipped["uplift_ci_high"]) == pytest.approx(
        (-published[1], -published[0]), abs=5e-5
    )
    assert row["incremental_responses"] == pytest.approx(row["uplift"] * n_t)
    assert row["incremental_responses_ci_low"] == pytest.approx(row["uplift_ci_low"] * n_t)


def test_z_test_equals_statsmodels_and_pearson_chi_square():
    x_t, n_t, x_c, n_c = 120, 1000, 80, 1000
    test, p = cp.significance(x_t, n_t, x_c, n_c)
    assert test == "z"
    assert p == pytest.approx(proportions_ztest([x_t, x_c], [n_t, n_c])[1], rel=1e-12)
    chi2 = sps.chi2_contingency([[x_t, n_t - x_t], [x_c, n_c - x_c]], correction=False)
    assert p == pytest.approx(chi2.pvalue, rel=1e-9)


def test_fisher_when_counts_are_small():
    # Fisher's lady tasting tea: 3 of 4 cups right, two-sided p = 0.4857 (Fisher 1935)
    test, p = cp.significance(3, 4, 1, 4)
    assert test == "fisher" and p == pytest.approx(0.4857, abs=1e-4)
    test, p = cp.significance(4, 200, 0, 30)  # expected responders among controls: 0.52
    assert test == "fisher"
    assert p == pytest.approx(sps.fisher_exact([[4, 196], [0, 30]]).pvalue)
    row = cp.measure(contacts_frame([("A", "random", "sms", 200, 4, 30, 0)]), settings(bootstrap=200)).iloc[0]
    assert row["test"] == "fisher" and not row["significant"]


def test_measure_costs_roi_and_revenue():
    frame = contacts_frame([("A", "model", "telemarketing", 400, 80, 100, 10)], revenue=50.0)
    s = settings(bootstrap=500, costs={"telemarketing": 2.0, "email": 0.01})
    row = cp.measure(frame, s).iloc[0]
    assert row["contacts_made"] == 400 and row["cost"] == pytest.approx(800.0)
    # incremental revenue: (mean revenue contacted − mean revenue control) × contacted
    assert row["incremental_revenue"] == pytest.approx((80 * 50 / 400 - 10 * 50 / 100) * 400)
    assert row["incremental_revenue_ci_low"] < row["incremental_revenue"] < row["incremental_revenue_ci_high"]
    assert row["roi"] == pytest.approx((row["incremental_revenue"] - 800) / 800)
    assert row["roi_ci_low"] == pytest.approx((row["incremental_revenue_ci_low"] - 800) / 800)
    # reproducible: the bootstrap is seeded
    again = cp.measure(frame, s).iloc[0]
    assert again["incremental_revenue_ci_low"] == row["incremental_revenue_ci_low"]


def test_contacted_rows_without_timestamp_were_not_reached():
    frame = contacts_frame([("A", "model", "email", 10, 2, 5, 0)])
    frame.loc[frame.index[:3], "contacted_at"] = pd.NaT
    row = cp.measure(frame, settings(bootstrap=200)).iloc[0]
    assert row["contacts_made"] == 7 and row["contacted_share"] == pytest.approx(0.7)
    assert row["n_contacted"] == 10  # intention to treat: still in the contacted arm


def test_revenue_bootstrap_agrees_with_welch_interval():
    rng = np.random.default_rng(1)
    rev_t = np.where(rng.random(4000) < 0.10, rng.gamma(4.0, 20.0, 4000), 0.0)
    rev_c = np.where(rng.random(1000) < 0.05, rng.gamma(4.0, 20.0, 1000), 0.0)
    boot = cp._revenue_boot(rev_t, rev_c, 8000, np.random.default_rng(2))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    welch = CompareMeans(DescrStatsW(rev_t), DescrStatsW(rev_c)).tconfint_diff(alpha=0.05, usevar="unequal")
    width = welch[1] - welch[0]
    assert lo == pytest.approx(welch[0], abs=0.05 * width) and hi == pytest.approx(welch[1], abs=0.05 * width)
    # the shortcut (binomial count of responders, then draws among them) resamples like plain row resampling
    plain = np.array([rng.choice(rev_t, 4000).mean() - rng.choice(rev_c, 1000).mean() for _ in range(3000)])
    assert boot.std() == pytest.approx(plain.std(), rel=0.06)


# ------------------------------------------------------------------------------------------------ SRM and power


def test_srm_detects_a_skewed_split_and_passes_a_fair_one():
    s = settings(planned_control_share=0.2, control_shares={})
    skewed = contacts_frame(
        [("A", "random", "email", 750, 0, 250, 0), ("B", "random", "email", 795, 0, 205, 0)]
    )
    srm = cp.srm_check(skewed, s).set_index("campaign")
    assert srm.loc["A", "srm_p"] == pytest.approx(sps.chisquare([250, 750], f_exp=[200, 800]).pvalue)
    assert srm.loc["A", "srm"] and srm.loc["A", "srm_p"] < 1e-4
    assert not srm.loc["B", "srm"]
    # the same split is fine when that campaign planned 25 % controls
    s25 = settings(planned_control_share=0.2, control_shares={"A": 0.25})
    assert not cp.srm_check(skewed, s25).set_index("campaign").loc["A", "srm"]


def test_power_and_mde_follow_statsmodels():
    # Cohen (1988) Table 6.4.1: h = 0.2, two-sided alpha 0.05, power 0.80 -> 392 per group
    assert NormalIndPower().solve_power(0.2, alpha=0.05, power=0.8) == pytest.approx(392.4, abs=0.1)
    out = cp.power_mde(
        [392, 5000, 200], [392, 1000, 20], [0.5, 0.05, 0.05], alpha=0.05, power=0.8, min_uplift=0.02
    )
    h = proportion_effectsize(0.5 + out.loc[0, "mde"], 0.5)
    assert h == pytest.approx(
        NormalIndPower().solve_power(None, nobs1=392, alpha=0.05, power=0.8, ratio=1), rel=1e-6
    )
    assert h == pytest.approx(0.2, abs=0.001)
    expected_power = NormalIndPower().power(
        proportion_effectsize(0.07, 0.05), nobs1=5000, alpha=0.05, ratio=0.2
    )
    assert out.loc[1, "power"] == pytest.approx(expected_power)
    assert out.loc[2, "underpowered"] and out.loc[2, "mde"] > 0.1
    big = cp.power_mde([100_000], [100_000], [0.05], alpha=0.05, power=0.8, min_uplift=0.02)
    assert not big.loc[0, "underpowered"] and big.loc[0, "mde"] < 0.02


def test_underpowered_and_srm_reach_the_report_warnings():
    frame = contacts_frame([("A", "random", "email", 80, 3, 40, 1)])
    s = settings(planned_control_share=0.1, control_shares={}, bootstrap=200)
    results = cp.measure(frame, s)
    assert results.loc[0, "underpowered"] and results.loc[0, "srm"]
    text = " ".join(cp.report_warnings(results))
    assert "underpowered" in text and "sample-ratio mismatch" in text and "Fisher" in text


# ------------------------------------------------------------------------------------------------ pooled comparisons


def test_incremental_by_is_stratified_by_campaign():
    # A: 20/100 vs 10/100 (uplift 0.10); B: 30/300 vs 0/10 (uplift 0.10). Pooling raw counts would say
    # 50/400 − 10/110 = 0.034; each campaign against its own control says 0.10.
    frame = contacts_frame([("A", "model", "email", 100, 20, 100, 10), ("B", "model", "sms", 300, 30, 10, 0)])
    out = cp.incremental_by(frame, ["selection_group"], settings(bootstrap=500))
    row = out.iloc[0]
    assert row["uplift"] == pytest.approx(0.10)
    assert row["incremental_responses"] == pytest.approx(40.0)
    assert row["n_contacted"] == 400 and row["n_control"] == 110 and row["strata"] == 2
    assert row["uplift_ci_low"] < 0.10 < row["uplift_ci_high"]


def test_compare_selections_against_random():
    frame = contacts_frame(
        [
            ("A", "model", "email", 1000, 200, 250, 25),
            ("A", "random", "email", 1000, 60, 250, 10),
            ("A", "marketing", "email", 1000, 100, 250, 15),
        ]
    )
    out = cp.compare_selections(frame, settings(bootstrap=1000)).set_index("selection_group")
    assert out.loc["model", "uplift"] == pytest.approx(0.2 - 0.1)
    assert out.loc["model", "vs_baseline"] == pytest.approx(0.1 - 0.02)
    assert out.loc["model", "vs_baseline_ci_low"] > 0
    assert np.isnan(out.loc["random", "vs_baseline"])
    assert out.loc["model", "incremental_revenue_per_contact"] == pytest.approx(
        (200 * 50 / 1000) - (25 * 50 / 250)
    )


def test_channel_and_segment_comparisons():
    frame = contacts_frame(
        [("A", "random", "email", 400, 40, 100, 5), ("B", "random", "sms", 400, 60, 100, 5)]
    )
    ch = cp.channel_comparison(frame, settings(bootstrap=300)).set_index("channel")
    assert ch.loc["email", "uplift"] == pytest.approx(0.05) and ch.loc["sms", "uplift"] == pytest.approx(0.10)
    assert ch.loc["sms", "cost_per_incremental_response"] == pytest.approx(0.05 / 0.10)
    segments = pd.DataFrame(
        {"customer_id": frame["customer_id"], "segment": np.where(frame.index % 2 == 0, "gold", "silver")}
    )
    sc = cp.segment_channel(
        frame, segments.iloc[10:], settings(bootstrap=300)
    )  # 10 contacted in A lose theirs
    assert set(sc["segment"]) == {"gold", "silver", "unsegmented"}
    assert sc["n_contacted"].sum() + sc["contacted_without_control"].sum() == 800
    unseg = sc.set_index("segment").loc["unsegmented"]
    assert unseg["contacted_without_control"] == 10 and np.isnan(unseg["uplift"])


def test_control_rows_get_the_channel_of_their_cell():
    frame = contacts_frame([("A", "model", "mailing", 5, 1, 3, 0)])
    frame.loc[frame["control"], "channel"] = None
    prepared = cp.prepare_contacts(frame)
    assert (prepared["channel"] == "mailing").all()


# ------------------------------------------------------------------------------------------------ qini


def test_qini_and_deciles_on_a_hand_computed_example():
    score = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    treated = [1, 0, 1, 0, 1, 0]
    responded = [1, 0, 1, 1, 0, 0]
    curve = cp.qini_curve(responded, treated, score)
    # Y_t(k) − Y_c(k) · N_t(k) / N_c(k) for k = 0..6 (worked out by hand)
    assert curve["incremental"].tolist() == pytest.approx([0, 1, 1, 2, 1, 0.5, 1])
    # perfect curve (0,0) (2,2) (5,2) (6,1): area 9.5; random line area 3; actual area 6
    assert cp.qini_coefficient(responded, treated, score) == pytest.approx((6 - 3) / (9.5 - 3))
    deciles = cp.uplift_by_decile(responded, treated, score, bins=2)
    assert deciles["uplift"].tolist() == pytest.approx([1.0, -0.5])


# Reference values computed with scikit-uplift 0.5.1 (sklift.metrics: qini_auc_score, qini_curve,
# uplift_by_percentile with bins=5) on the same arrays, in a scratch environment.
SKLIFT = {
    "distinct": (0.128523671704, [9, 10, 8, 10, 8], [3, 2, 4, 2, 4], [1 / 3, -0.4, 0.25, -0.2, 0.0]),
    "ties": (0.099924056198, [10, 8, 10, 8, 9], [2, 4, 2, 4, 3], [0.2, 0.0, 0.2, 0.0, 0.0]),
}


@pytest.mark.parametrize("case", ["distinct", "ties"])
def test_qini_and_deciles_match_scikit_uplift(case):
    i = np.arange(60)
    responded = (((i * 7) % 5 == 0) | ((i % 11) == 3)).astype(int)
    treated = ((i * 3) % 4 != 0).astype(int)
    score = ((i * 37) % 101) / 101
    if case == "ties":
        score = np.round(score, 1)
    coef, n_t, n_c, uplift = SKLIFT[case]
    assert cp.qini_coefficient(responded, treated, score) == pytest.approx(coef, abs=1e-10)
    deciles = cp.uplift_by_decile(responded, treated, score, bins=5)
    assert deciles["n_contacted"].tolist() == n_t and deciles["n_control"].tolist() == n_c
    assert deciles["uplift"].tolist() == pytest.approx(uplift)


def test_score_contacts_leaves_each_campaign_out():
    rng = np.random.default_rng(3)
    rows = []
    people = [f"C{i:04d}" for i in range(300)]
    keen = set(people[:100])
    for k, start in enumerate(pd.date_range("2026-01-01", periods=4, freq="MS")):
        for p in people:
            control = rng.random() < 0.2
            rate = (0.5 if p in keen else 0.05) * (0.3 if control else 1.0)
            hit = bool(rng.random() < rate)
            rows.append(
                {
                    "campaign": f"K{k}",
                    "selection_group": "model",
                    "control": control,
                    "channel": "email",
                    "customer_id": p,
                    "contacted_at": start,
                    "responded": hit,
                    "response_at": start + pd.Timedelta(days=3) if hit else pd.NaT,
                    "revenue": 0.0,
                    "opened": False,
                }
            )
    scored = cp.score_contacts(pd.DataFrame(rows), settings())
    last = scored[scored["campaign"] == "K3"]
    assert last["score"].notna().all()
    assert (
        last.loc[last["customer_id"].isin(keen), "score"].mean()
        > last.loc[~last["customer_id"].isin(keen), "score"].mean()
    )
    assert cp.qini_coefficient(last["responded"], ~last["control"], last["score"]) > 0.2
    deciles = cp.decile_uplift(scored[scored["campaign"] != "K0"], settings(bootstrap=300))
    assert (
        deciles.sort_values("decile")["uplift"].iloc[:3].mean()
        > deciles.sort_values("decile")["uplift"].iloc[-3:].mean()
    )


# ------------------------------------------------------------------------------------------------ feedback


def history() -> pd.DataFrame:
    """A: 3/3 e-mails; B: 1/2 SMS, 0/2 e-mails (+ a control-arm 'response' that must not count);
    C: 0/3 mailings; D: 2/2 e-mails (too few contacts for a class); E: only ever in a control arm."""
    rows = []

    def add(customer, channel, responded, day, control=False):
        t = pd.Timestamp("2026-01-01") + pd.Timedelta(days=day)
        rows.append(
            {
                "campaign": f"K{day}",
                "selection_group": "random",
                "control": control,
                "channel": channel,
                "customer_id": customer,
                "contacted_at": t,
                "responded": responded,
                "response_at": t + pd.Timedelta(days=2) if responded else pd.NaT,
                "revenue": 0.0,
                "opened": False,
            }
        )

    for d in (1, 2, 3):
        add("A", "email", True, d)
    add("B", "sms", True, 4)
    add("B", "sms", False, 5)
    add("B", "email", False, 6)
    add("B", "email", False, 7)
    add("B", "email", True, 8, control=True)
    for d in (1, 2, 3):
        add("C", "mailing", False, d)
    add("D", "email", True, 1)
    add("D", "email", True, 9)
    for d in range(5):
        add("E", "sms", True, d, control=True)
    return pd.DataFrame(rows)


def test_feedback_classes_rates_and_preferred_channel():
    fb = cp.customer_feedback(history(), settings(min_contacts=3, shrinkage=2))
    one = fb.drop_duplicates("customer_id").set_index("customer_id")["responsiveness"]
    assert one.to_dict() == {"A": "always", "B": "sometimes", "C": "never", "D": "unknown"}
    assert "E" not in set(fb["customer_id"])  # a control arm is no contact
    r = fb.set_index(["customer_id", "channel"])
    # channel rates over contacts made: email 5/7, sms 1/2, mailing 0/3; k = 2
    assert r.loc[("A", "email"), "rate_shrunk"] == pytest.approx((3 + 2 * 5 / 7) / (3 + 2))
    assert r.loc[("B", "sms"), "rate_shrunk"] == pytest.approx((1 + 2 * 0.5) / (2 + 2))
    assert r.loc[("B", "email"), "rate_shrunk"] == pytest.approx((0 + 2 * 5 / 7) / (2 + 2))
    assert r.loc[("B", "email"), "contacts"] == 2 and r.loc[("B", "email"), "responses"] == 0
    assert r.loc[("B", "sms"), "preferred_channel"] and not r.loc[("B", "email"), "preferred_channel"]
    assert not r.loc[("C", "mailing"), "preferred_channel"]  # never responded: no preference shown
    assert r.loc[("D", "email"), "last_response_at"] == pd.Timestamp("2026-01-12")
    assert pd.isna(r.loc[("C", "mailing"), "last_response_at"])
    summary = cp.feedback_summary(fb, channel="email", as_of="2026-02-01").set_index("customer_id")
    assert summary.loc["B", "preferred_channel"] == "sms" and pd.isna(summary.loc["C", "preferred_channel"])
    assert summary.loc["D", "days_since_last_response"] == 20


# ------------------------------------------------------------------------------------------------ next campaign


def population(n=400, seed=0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]
    consent = rng.choice(np.array([True, False, None], dtype=object), n, p=[0.6, 0.3, 0.1])
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "consent_email": pd.array(consent, dtype="boolean"),
            "consent_sms": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "consent_phone": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "consent_mail": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "email": np.where(rng.random(n) < 0.9, [f"{i}@x.es" for i in ids], None),
            "phone": "+34600000000",
            "address": "Calle Mayor 1",
        }
    )
    scores = pd.DataFrame(
        {"customer_id": ids, "propensity": rng.random(n), "tier": rng.choice(["gold", "silver", "bronze"], n)}
    )
    return customers, scores


def next_settings(**kw) -> cp.CampaignSettings:
    nxt = {
        "name": "TEST",
        "channel": "email",
        "size": 60,
        "control_share": 0.25,
        "seed": 7,
        "marketing_rule": {"where": [{"column": "tier", "op": "in", "value": ["gold"]}], "order_by": None},
    }
    nxt.update(kw)
    return settings(next=nxt)


def test_next_campaign_lists():
    customers, scores = population(1000)
    lists, summary = cp.next_campaign(customers, next_settings(), scores=scores, as_of="2026-11-01")
    assert lists.groupby("selection_group").size().to_dict() == {"marketing": 60, "model": 60, "random": 60}
    assert lists.groupby("selection_group")["control"].sum().to_dict() == {
        "marketing": 15,
        "model": 15,
        "random": 15,
    }
    assert not lists["customer_id"].duplicated().any()  # the groups do not overlap
    ok = customers.set_index("customer_id")
    eligible = ok.index[(ok["consent_email"].fillna(False)) & ok["email"].notna()]
    model = lists[lists["selection_group"] == "model"]
    rest = scores[
        scores["customer_id"].isin(eligible)
        & ~scores["customer_id"].isin(lists.loc[lists["selection_group"] == "random", "customer_id"])
    ]
    assert set(model["customer_id"]) == set(rest.nlargest(60, "propensity")["customer_id"])
    tiers = scores.set_index("customer_id")["tier"]
    assert (tiers[lists.loc[lists["selection_group"] == "marketing", "customer_id"]] == "gold").all()
    assert summary["universe"] == len(eligible)


@hsettings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), channel=st.sampled_from(cp.CHANNELS), size=st.integers(1, 150))
def test_no_customer_without_consent_is_ever_listed(seed, channel, size):
    customers, scores = population(200, seed)
    s = next_settings(channel=channel, size=size, marketing_rule={"where": [], "order_by": "propensity"})
    lists, _ = cp.next_campaign(customers, s, scores=scores, as_of="2026-11-01")
    consent = customers.set_index("customer_id")[cp.CONSENT_COLUMN[channel]]
    assert (consent[lists["customer_id"]] == True).all()  # noqa: E712 - nullable booleans: NA is not consent


def test_control_draw_is_reproducible_and_depends_on_the_seed():
    customers, scores = population()
    a, _ = cp.next_campaign(customers, next_settings(), scores=scores, as_of="2026-11-01")
    shuffled = customers.sample(frac=1, random_state=1)
    b, _ = cp.next_campaign(
        shuffled, next_settings(), scores=scores.sample(frac=1, random_state=2), as_of="2026-11-01"
    )
    key = ["selection_group", "customer_id"]
    pd.testing.assert_frame_equal(
        a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    )
    c, _ = cp.next_campaign(customers, next_settings(seed=8), scores=scores, as_of="2026-11-01")
    assert set(a.loc[a["control"], "customer_id"]) != set(c.loc[c["control"], "customer_id"])
    # auditable: within a group, the controls are exactly the smallest draws
    for _, g in a.groupby("selection_group"):
        assert g.loc[g["control"], "draw"].max() < g.loc[~g["control"], "draw"].min()


def test_next_campaign_uses_feedback_and_fits_its_own_model():
    contacts = history()
    customers = pd.DataFrame({"customer_id": list("ABCDEFGH"), "consent_email": True, "email": "x@y.es"})
    fb = cp.customer_feedback(contacts, settings(min_contacts=3))
    s = settings(
        next={
            "name": "T",
            "channel": "email",
            "size": 2,
            "control_share": 0.5,
            "seed": 1,
            "exclude_responsiveness": ["never"],
        }
    )
    lists, summary = cp.next_campaign(customers, s, feedback=fb, contacts=contacts, as_of="2026-02-01")
    assert "C" not in set(lists["customer_id"])  # a "never" responder is left out
    assert summary["score_source"].startswith("campaigns.fit_propensity")
    marketing = set(lists.loc[lists["selection_group"] == "marketing", "customer_id"])
    assert marketing <= {"A", "B"}  # the default rule: responders (always / sometimes)
    with pytest.raises(ScvError, match="scores"):
        cp.next_campaign(customers, s, as_of="2026-02-01")


def test_marketing_rule_on_a_missing_column_says_which():
    customers, scores = population()
    s = next_settings(marketing_rule={"where": [{"column": "tierr", "op": "==", "value": "gold"}]})
    with pytest.raises(ConfigError, match="tierr"):
        cp.next_campaign(customers, s, scores=scores, as_of="2026-11-01")


def test_export_one_csv_per_group_with_formulas_escaped(tmp_path):
    customers, scores = population()
    customers.loc[customers.index[:400], "customer_id"] = [f"=HYPERLINK(C{i})" for i in range(400)]
    scores["customer_id"] = customers["customer_id"]
    lists, _ = cp.next_campaign(customers, next_settings(), scores=scores, as_of="2026-11-01")
    paths = cp.export_target_lists(lists, tmp_path)
    assert sorted(p.name for p in paths) == ["TEST_marketing.csv", "TEST_model.csv", "TEST_random.csv"]
    back = pd.read_csv(tmp_path / "TEST_random.csv")
    assert len(back) == 60 and back["customer_id"].str.startswith("'=").all()
    assert set(back.columns) >= {"customer_id", "control", "draw", "seed"}


def test_attach_customers_through_the_crosswalk():
    contacts = pd.DataFrame(
        {
            "party_source": ["crm_contacts", "crm_contacts", "crm_contacts"],
            "party_id": ["CT-1", "CT-2", "CT-9"],
            "campaign": "A",
        }
    )
    crosswalk = pd.DataFrame(
        {
            "source": ["crm_contacts", "crm_contacts", "erp_customers"],
            "source_id": ["CT-1", "CT-2", "CT-9"],
            "customer_id": ["C1", "C1", "C7"],
        }
    )
    out = cp.attach_customers(contacts, crosswalk)
    assert out["customer_id"].tolist()[:2] == ["C1", "C1"] and pd.isna(out["customer_id"].iloc[2])


# ------------------------------------------------------------------------------------------------ the sample company

#: With 95 % intervals about 1 cell in 20 misses its planted value by chance; 15 cells give P(3 or more
#: misses) ≈ 3.6 %, so more than 2 misses points at a bias, not at bad luck.
MAX_MISSES = 2


def _ingested_contacts(root: Path) -> pd.DataFrame:
    from helpers import ingest
    from helpers.config import load_sources

    sources = load_sources(root=root)
    wanted = {n: s for n, s in sources.items() if s.kind == "campaign_contact"}
    results = ingest.ingest_all(
        wanted, root / "data" / "raw", load_settings(root=root).ingest, progress=False
    )
    staged = pd.concat([r.staged for r in results.values()], ignore_index=True)
    staged["customer_id"] = staged["party_id"]  # one CRM record per person in the sample
    return staged


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_sample_project_measures_the_planted_effects(sample_project):
    truth = pd.read_csv(sample_project / "data" / "sample_truth" / "campaign_effects.csv")
    contacts = _ingested_contacts(sample_project)
    s = cp.campaign_settings(load_settings(root=sample_project))
    results = cp.measure(contacts, s)
    rec = cp.recovery(results, truth)
    assert len(rec) == len(truth), "every planted campaign × group is measured"
    sizes = results.set_index(["campaign", "selection_group"])
    planted = truth.set_index(["campaign", "group"])
    assert (sizes["n_control"].to_numpy() == planted.loc[sizes.index, "controls"].to_numpy()).all()
    assert (~rec["covered"]).sum() <= MAX_MISSES, rec[~rec["covered"]]
    assert not results["srm"].any(), "the planned control shares in params match the sample's plan"


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_default_size_sample_recovers_effects_and_ranks_the_selections(tmp_path):
    """At the default 5 000 customers the arms are large enough for the pooled comparisons to have teeth."""
    from helpers import sample_data

    root = tmp_path / "project"
    (root / "params").mkdir(parents=True)
    for name in ("default.yaml", "sources.yaml"):
        (root / "params" / name).write_text((ROOT / "params" / name).read_text())
    sample_data.generate(
        root / "data" / "raw",
        root / "data" / "sample_truth",
        customers=5000,
        months=24,
        end_date="2026-11-10",
        seed=42,
    )
    truth = pd.read_csv(root / "data" / "sample_truth" / "campaign_effects.csv")
    contacts = _ingested_contacts(root)
    s = cp.campaign_settings(load_settings(root=root))
    results = cp.measure(contacts, s)
    rec = cp.recovery(results, truth)
    assert len(rec) == len(truth) and (~rec["covered"]).sum() <= MAX_MISSES, rec[~rec["covered"]]
    # pooled over campaigns: each selection's interval covers its planted (contacted-weighted) uplift
    sel = cp.compare_selections(contacts, s).set_index("selection_group")
    merged = results.merge(
        truth.rename(columns={"group": "selection_group"}), on=["campaign", "selection_group"]
    )
    merged["w"] = merged["n_contacted"] * merged["uplift_y"]
    planted = (
        merged.groupby("selection_group")["w"].sum() / merged.groupby("selection_group")["n_contacted"].sum()
    )
    for g in ("model", "marketing", "random"):
        assert sel.loc[g, "uplift_ci_low"] <= planted[g] <= sel.loc[g, "uplift_ci_high"], (g, planted[g])
    assert sel.loc["model", "uplift"] > sel.loc["marketing", "uplift"] > sel.loc["random", "uplift"]
    assert sel.loc["model", "vs_baseline_ci_low"] > 0
