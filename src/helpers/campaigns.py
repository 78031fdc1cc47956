"""Campaign stage: what each campaign and each selection really added, fed back into the profile.

Pure functions (DataFrames and settings in, DataFrames out); the only I/O is `export_target_lists`.
Every comparison is a randomised one: within a campaign × selection group, members were split at random
into a contacted arm and a held-out control arm, so contacted − control is the campaign's effect
(intention to treat: a contacted-arm member the channel never reached still counts as contacted).

In run order:
``attach_customers`` contact rows -> golden customer ids (via the unify crosswalk) ->
``response_rates`` per campaign × group × arm with Wilson intervals ->
``measure`` uplift (Newcombe), z / Fisher test, incremental responses and revenue (bootstrap), cost and
ROI, sample-ratio mismatch, power and minimum detectable effect -> ``compare_selections``,
``channel_comparison``, ``segment_channel`` incremental response per contact, stratified by campaign
cell -> ``score_contacts``, ``qini_curve``, ``uplift_by_decile`` for the model-selected group ->
``customer_feedback`` responsiveness, preferred channel, last response per customer ->
``next_campaign`` three target lists with seeded control draws -> ``export_target_lists`` CSV per group.
``report_warnings`` collects what a reader must be told (SRM, underpowered comparisons, small counts).

Statistics come from statsmodels and scipy (Wilson, Newcombe, z-test, Fisher, chi-square, power);
the bootstrap uses a seeded numpy Generator, so every figure is reproducible.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from helpers import schema, store
from helpers.errors import ConfigError, ScvError

__all__ = [
    "CHANNELS",
    "CONSENT_COLUMN",
    "CONTACT_POINT",
    "CampaignSettings",
    "NextCampaignSettings",
    "MarketingRule",
    "Condition",
    "campaign_settings",
    "attach_customers",
    "prepare_contacts",
    "response_rates",
    "significance",
    "newcombe",
    "measure",
    "incremental_by",
    "compare_selections",
    "channel_comparison",
    "segment_channel",
    "srm_check",
    "power_mde",
    "history_features",
    "fit_propensity",
    "propensity_scores",
    "score_contacts",
    "qini_curve",
    "qini_coefficient",
    "uplift_by_decile",
    "decile_uplift",
    "customer_feedback",
    "feedback_summary",
    "eligible_customers",
    "apply_rule",
    "combine_scores",
    "next_campaign",
    "export_target_lists",
    "report_warnings",
    "recovery",
]

Channel = Literal["sms", "email", "mailing", "telemarketing"]
CHANNELS: tuple[str, ...] = ("sms", "email", "mailing", "telemarketing")

#: The golden-record consent flag that allows a channel (only an explicit True allows it).
CONSENT_COLUMN: dict[str, str] = schema.CHANNEL_CONSENT
#: The golden-record field a channel needs to reach someone.
CONTACT_POINT: dict[str, str] = {
    "sms": "phone",
    "email": "email",
    "mailing": "address",
    "telemarketing": "phone",
}

CELL = ["campaign", "selection_group"]
#: What the stage and the reports say when a company has no campaign data.
NO_CONTACTS = (
    "no campaign contacts: params/sources.yaml declares no campaign_contact source, or it staged no "
    "rows this period. To measure campaigns, add the campaign lists as a campaign_contact source "
    "(campaign, selection group, control flag, contact date, response); the next campaign's lists "
    "below are still drawn, each with a random control group"
)

# --------------------------------------------------------------------------------------------------
# Settings (defaults = the `campaigns:` section of params/default.yaml)
# --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"]


class Condition(_Strict):
    """One condition of the marketing rule: `column op value` on the candidate frame."""

    column: str
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value, e.g. [gold, silver]; got {self.value!r}")
        if self.op in ("is_null", "not_null") and self.value is not None:
            raise ValueError(f"op {self.op!r} takes no value")
        if self.op not in ("is_null", "not_null", "in", "not_in") and self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        return self


class MarketingRule(_Strict):
    """The marketing team's selection as data: every condition must hold (AND); then the first `size`
    by `order_by` (`descending` or not; ties by customer id), or a seeded random draw when it is null.

    Conditions can use the golden-record columns, the feedback columns (responsiveness,
    preferred_channel, contacts_total, responses_total, days_since_last_response, channel_rate_shrunk)
    and any column of the scores / segments frame (e.g. tier, segment, recency_days).
    """

    where: list[Condition] = Field(
        default_factory=lambda: [
            Condition(column="responsiveness", op="in", value=["always", "sometimes"]),
        ]
    )
    order_by: str | None = "days_since_last_response"
    descending: bool = False


class NextCampaignSettings(_Strict):
    """The next campaign: one channel, three groups of `size` customers, each with a control draw."""

    name: str = Field("NEXT", pattern=r"^[A-Za-z0-9_.-]+$")
    channel: Channel = "email"
    size: int = Field(500, ge=1)  # customers per selection group (control included)
    control_share: float = Field(0.2, gt=0, lt=1)
    seed: int = 20261110
    score: str = "propensity"  # column of the scores frame the model group is ranked by (propensity | uplift)
    exclude_responsiveness: list[Literal["always", "sometimes", "never", "unknown"]] = Field(
        default_factory=list
    )
    require_contact_point: bool = (
        True  # also drop customers without an email / phone / address for the channel
    )
    marketing_rule: MarketingRule = MarketingRule()


def _default_costs() -> dict[str, float]:
    return {"sms": 0.05, "email": 0.01, "mailing": 0.85, "telemarketing": 3.5}


class CampaignSettings(_Strict):
    """Parameters of the campaign stage (params/default.yaml, section `campaigns:`)."""

    confidence: float = Field(0.95, gt=0.5, lt=1)  # level of every interval
    alpha: float = Field(0.05, gt=0, lt=0.5)  # significance level of the tests and of the power analysis
    power: float = Field(0.8, gt=0.5, lt=1)  # power target
    min_uplift: float = Field(0.02, gt=0, lt=1)  # smallest uplift (response-rate points) worth detecting
    planned_control_share: float = Field(0.15, gt=0, lt=1)
    # campaign id or shell pattern -> planned share (the default is the sample company's plan)
    control_shares: dict[str, float] = Field(
        default_factory=lambda: {"*-FIDELIZACION": 0.10, "*-VENTA-CRUZADA": 0.20}
    )
    srm_alpha: float = Field(0.001, gt=0, lt=0.5)  # SRM p-value below which a split is flagged
    fisher_below: int = Field(5, ge=0)  # Fisher exact when an expected 2×2 count is below this
    bootstrap: int = Field(2000, ge=100)
    seed: int = 42
    min_contacts: int = Field(3, ge=1)  # contacts needed before a responsiveness class is given
    shrinkage: float = Field(10.0, ge=0)  # prior strength, in pseudo-contacts at the channel's overall rate
    costs: dict[Channel, float] = Field(default_factory=_default_costs)  # euros per contact made
    deciles: int = Field(10, ge=2, le=100)
    # store tables (period, customer_id, ...) of the segmentation stage: scores and columns for the rule
    score_tables: list[str] = Field(default_factory=lambda: ["customer_segments", "customer_churn"])
    segment_column: str = "value_tier"  # the segment of the segment × channel table
    next: NextCampaignSettings = NextCampaignSettings()

    @field_validator("control_shares")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: s for k, s in v.items() if not 0 < s < 1}
        if bad:
            raise ValueError(f"control shares must be between 0 and 1, got {bad}")
        return v

    @field_validator("costs")
    @classmethod
    def _costs(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: c for k, c in v.items() if c < 0}
        if bad:
            raise ValueError(f"costs per contact must be >= 0, got {bad}")
        return v

    def planned_share(self, campaign: str) -> float:
        """The planned control share of a campaign: its id in `control_shares`, else the first matching
        pattern there (shell-style, e.g. ``"*-FIDELIZACION"``), else `planned_control_share`."""
        campaign = str(campaign)
        if campaign in self.control_shares:
            return self.control_shares[campaign]
        for pattern, share in self.control_shares.items():
            if fnmatch.fnmatchcase(campaign, pattern):
                return share
        return self.planned_control_share


def campaign_settings(settings: Any) -> CampaignSettings:
    """Validate the `campaigns:` section of a `helpers.config.Settings` (or a plain dict)."""
    from helpers.config import explain_validation_error

    section = settings if isinstance(settings, dict) else settings.campaigns
    try:
        return CampaignSettings(**(section or {}))
    except ValidationError as exc:
        root = Path(getattr(settings, "root", "."))
        raise explain_validation_error(root / "params" / "default.yaml", exc, prefix="campaigns") from None


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def attach_customers(contacts: pd.DataFrame, crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Add `customer_id` to staged contact rows: (party_source, party_id) -> crosswalk (source, source_id).

    Rows whose party record is not in the crosswalk keep a null customer_id (count them; they still
    count in the campaign measurement, which randomised contact rows, not customers).
    """
    key = crosswalk[["source", "source_id", "customer_id"]].astype({"source": str, "source_id": str})
    key = key.drop_duplicates(["source", "source_id"])
    out = contacts.drop(columns=["customer_id"], errors="ignore").copy()
    left = pd.DataFrame(
        {
            "source": out["party_source"].astype("string").to_numpy(dtype=object),
            "source_id": out["party_id"].astype("string").to_numpy(dtype=object),
        }
    )
    merged = left.merge(key, on=["source", "source_id"], how="left")
    out["customer_id"] = merged["customer_id"].to_numpy()
    return out


def _flag(values: pd.Series) -> np.ndarray:
    """Nullable bool -> numpy bool, null as False."""
    return values.astype("boolean").fillna(False).to_numpy(bool)


def prepare_contacts(contacts: pd.DataFrame) -> pd.DataFrame:
    """Normalise contact rows for measurement: arm, 0/1 response, revenue (0 when absent), planned channel.

    Rows without a control flag cannot be put in an arm and are dropped (`report_warnings` counts them
    from the input). A control row carries no channel of its own in most systems: it gets the channel
    of its campaign × group (the most frequent one among its contacted rows).
    """
    out = contacts.copy()
    out = out[out["control"].notna()].copy()
    out["campaign"] = out["campaign"].astype(str)
    out["selection_group"] = out["selection_group"].astype("string").fillna("unknown").astype(str)
    out["control"] = _flag(out["control"])
    out["arm"] = np.where(out["control"], "control", "contacted")
    out["responded"] = _flag(out["responded"]) if "responded" in out else False
    out["opened"] = _flag(out["opened"]) if "opened" in out else False
    revenue = (
        pd.to_numeric(out["revenue"], errors="coerce")
        if "revenue" in out
        else pd.Series(0.0, index=out.index)
    )
    out["revenue"] = revenue.fillna(0.0).astype(float)
    if "contacted_at" not in out:
        out["contacted_at"] = pd.NaT
    if "response_at" not in out:
        out["response_at"] = pd.NaT
    channel = (
        out["channel"].astype("string")
        if "channel" in out
        else pd.Series(pd.NA, index=out.index, dtype="string")
    )
    treated = channel[~out["control"].to_numpy()]
    cell_channel = (
        pd.DataFrame(
            {
                "campaign": out.loc[treated.index, "campaign"],
                "selection_group": out.loc[treated.index, "selection_group"],
                "channel": treated,
            }
        )
        .dropna()
        .groupby(CELL)["channel"]
        .agg(lambda s: s.value_counts().index[0])
    )
    fill = pd.MultiIndex.from_frame(out[CELL]).map(cell_channel.to_dict().get)
    out["channel"] = (
        channel.fillna(pd.Series(fill, index=out.index, dtype="string")).fillna("unknown").astype(str)
    )
    # a contact was made when the contacted arm has a timestamp; systems without timestamps: every member
    has_times = out.loc[~out["control"], "contacted_at"].notna().any()
    out["reached"] = ~out["control"] & (out["contacted_at"].notna() if has_times else True)
    return out.reset_index(drop=True)


def _seed(*parts: Any) -> np.random.SeedSequence:
    """A seed that depends on the given names (stable across processes, unlike hash())."""
    ints = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return np.random.SeedSequence(ints)


# --------------------------------------------------------------------------------------------------
# Rates, uplift, tests
# --------------------------------------------------------------------------------------------------


def _wilson(count: np.ndarray, nobs: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    count, nobs = np.asarray(count, float), np.asarray(nobs, float)
    lo, hi = np.full(len(nobs), np.nan), np.full(len(nobs), np.nan)
    ok = nobs > 0
    if ok.any():
        lo[ok], hi[ok] = proportion_confint(count[ok], nobs[ok], alpha=1 - confidence, method="wilson")
    return lo, hi


def response_rates(
    contacts: pd.DataFrame, *, confidence: float, by: Sequence[str] = tuple(CELL)
) -> pd.DataFrame:
    """Response rate per campaign × group × arm (or any `by` × arm), with Wilson intervals."""
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    keys = [*by, "arm"]
    g = c.groupby(keys, observed=True, sort=True)
    out = g.agg(
        size=("responded", "size"),
        responders=("responded", "sum"),
        opened=("opened", "sum"),
        revenue=("revenue", "sum"),
    ).reset_index()
    if "channel" not in by:
        out.insert(len(by), "channel", g["channel"].agg(_one_or_mixed).to_numpy())
    out["response_rate"] = out["responders"] / out["size"]
    out["ci_low"], out["ci_high"] = _wilson(out["responders"].to_numpy(), out["size"].to_numpy(), confidence)
    out["open_rate"] = out["opened"] / out["size"]
    out["revenue_per_member"] = out["revenue"] / out["size"]
    return out


def _one_or_mixed(s: pd.Series) -> str:
    values = s.dropna().unique()
    return str(values[0]) if len(values) == 1 else ("mixed" if len(values) else "unknown")


def significance(x_t: int, n_t: int, x_c: int, n_c: int, *, fisher_below: float = 5) -> tuple[str, float]:
    """Two-sided test of equal response rates: Fisher exact when an expected 2×2 count is below
    `fisher_below`, else the two-proportion z-test (pooled; equal to Pearson's chi-square)."""
    if n_t == 0 or n_c == 0:
        return "none", float("nan")
    table = np.array([[x_t, n_t - x_t], [x_c, n_c - x_c]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    if (expected < fisher_below).any():
        return "fisher", float(sps.fisher_exact(table.astype(int), alternative="two-sided").pvalue)
    if x_t + x_c in (0, n_t + n_c):
        return "z", 1.0
    _, p = proportions_ztest([x_t, x_c], [n_t, n_c], alternative="two-sided")
    return "z", float(p)


def newcombe(x_t: int, n_t: int, x_c: int, n_c: int, confidence: float) -> tuple[float, float]:
    """Newcombe hybrid-score interval of p_contacted − p_control (statsmodels computes p1 − p2)."""
    if n_t == 0 or n_c == 0:
        return float("nan"), float("nan")
    lo, hi = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="newcomb", compare="diff", alpha=1 - confidence
    )
    return float(lo), float(hi)


def power_mde(
    n_t: np.ndarray, n_c: np.ndarray, p_c: np.ndarray, *, alpha: float, power: float, min_uplift: float
) -> pd.DataFrame:
    """Power to detect `min_uplift` and the minimum detectable uplift (absolute points) at `power`.

    Cohen's h (statsmodels `proportion_effectsize`) with `NormalIndPower`, two-sided, for the arm sizes
    used; the detectable h is turned back into response-rate points above the control rate.
    """
    n_t, n_c, p_c = (np.asarray(a, float) for a in (n_t, n_c, p_c))
    analysis = NormalIndPower()
    pw = np.full(len(n_t), np.nan)
    mde = np.full(len(n_t), np.nan)
    for i, (nt, nc, pc) in enumerate(zip(n_t, n_c, p_c, strict=True)):
        if nt < 2 or nc < 2 or not np.isfinite(pc):
            continue
        target = min(pc + min_uplift, 1.0)
        h = proportion_effectsize(target, pc)
        pw[i] = analysis.power(effect_size=h, nobs1=nt, alpha=alpha, ratio=nc / nt, alternative="two-sided")
        try:
            h_min = analysis.solve_power(
                effect_size=None, nobs1=nt, alpha=alpha, power=power, ratio=nc / nt, alternative="two-sided"
            )
        except (ValueError, RuntimeError):  # pragma: no cover - solver failure on degenerate sizes
            continue
        # inverse of h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)) for p1
        angle = min(np.arcsin(np.sqrt(pc)) + float(np.squeeze(h_min)) / 2, np.pi / 2)
        mde[i] = np.sin(angle) ** 2 - pc
    return pd.DataFrame({"power": pw, "mde": mde, "underpowered": ~(pw >= power)})


def srm_check(
    contacts: pd.DataFrame, settings: CampaignSettings, *, by: Sequence[str] = tuple(CELL)
) -> pd.DataFrame:
    """Sample-ratio mismatch: is the observed control share consistent with the planned one?

    Pearson chi-square goodness of fit (scipy `chisquare`) of (control, contacted) counts against the
    planned split; flagged when p < `srm_alpha` (a strict level: SRM means the split itself is broken).
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    g = c.groupby(list(by), sort=True)
    out = g.agg(members=("control", "size"), n_control=("control", "sum")).reset_index()
    out["n_contacted"] = out["members"] - out["n_control"]
    out["control_share"] = out["n_control"] / out["members"]
    out["planned_control_share"] = (
        [settings.planned_share(cmp) for cmp in out["campaign"]]
        if "campaign" in out
        else settings.planned_control_share
    )
    p = []
    for n, k, share in zip(out["members"], out["n_control"], out["planned_control_share"], strict=True):
        expected = [share * n, (1 - share) * n]
        p.append(float(sps.chisquare([k, n - k], f_exp=expected).pvalue) if n > 0 else np.nan)
    out["srm_p"] = p
    out["srm"] = out["srm_p"] < settings.srm_alpha
    return out


def _revenue_boot(rev_t: np.ndarray, rev_c: np.ndarray, B: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of mean revenue per member, contacted minus control.

    Resampling members with replacement; since non-responders bring 0, a resample is a binomial number
    of draws from the positive revenues — the same distribution, at a fraction of the cost.
    """

    def means(rev: np.ndarray) -> np.ndarray:
        n = len(rev)
        if n == 0:
            return np.full(B, np.nan)
        pos = rev[rev != 0]
        if len(pos) == 0:
            return np.zeros(B)
        k = rng.binomial(n, len(pos) / n, size=B)
        draws = rng.choice(pos, size=(B, max(int(k.max()), 1)), replace=True)
        draws[np.arange(draws.shape[1])[None, :] >= k[:, None]] = 0.0
        return draws.sum(1) / n

    return means(rev_t) - means(rev_c)


#: The columns of `campaign_results` (one row per campaign × selection group), in order.
RESULT_COLUMNS = [
    "campaign",
    "selection_group",
    "channel",
    "started_at",
    "n_contacted",
    "n_control",
    "control_share",
    "planned_control_share",
    "srm_p",
    "srm",
    "contacts_made",
    "contacted_share",
    "responders_contacted",
    "rate_contacted",
    "rate_contacted_ci_low",
    "rate_contacted_ci_high",
    "responders_control",
    "rate_control",
    "rate_control_ci_low",
    "rate_control_ci_high",
    "uplift",
    "uplift_ci_low",
    "uplift_ci_high",
    "test",
    "p_value",
    "significant",
    "incremental_responses",
    "incremental_responses_ci_low",
    "incremental_responses_ci_high",
    "revenue_contacted",
    "revenue_control",
    "incremental_revenue",
    "incremental_revenue_ci_low",
    "incremental_revenue_ci_high",
    "cost",
    "roi",
    "roi_ci_low",
    "roi_ci_high",
    "cost_per_incremental_response",
    "power",
    "mde",
    "underpowered",
]

_INT_COLUMNS = ("n_contacted", "n_control", "contacts_made", "responders_contacted", "responders_control", "strata",
                "contacted_without_control")  # fmt: skip
_BOOL_COLUMNS = ("significant", "srm", "underpowered", "underpowered_vs_baseline")
_TEXT_COLUMNS = ("campaign", "selection_group", "channel", "test", "segment")


def empty_table(columns: Sequence[str]) -> pd.DataFrame:
    """A table with no rows but its columns and types (what a stage writes when there is no campaign
    data: later periods append to the same schema)."""
    dtypes = {}
    for c in columns:
        if c in _TEXT_COLUMNS:
            dtypes[c] = "string"
        elif c in _INT_COLUMNS:
            dtypes[c] = "int64"
        elif c in _BOOL_COLUMNS:
            dtypes[c] = "bool"
        elif c.endswith("_at"):
            dtypes[c] = "datetime64[ns]"
        else:
            dtypes[c] = "float64"
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def measure(contacts: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """The campaign results table: one row per campaign × selection group (table `campaign_results`).

    Rates with Wilson intervals per arm; uplift = contacted − control with a Newcombe interval; a z or
    Fisher test; incremental responses (uplift × contacted members, Newcombe bounds scaled) and
    incremental revenue (percentile bootstrap); cost (contacts made × cost per contact of the channel)
    and ROI = (incremental revenue − cost) / cost (revenue, not margin; no cost for a cell of mixed
    channels); SRM against the planned control share; power to detect `min_uplift` and the minimum
    detectable uplift for the sizes used.
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    conf = settings.confidence
    tail = (1 - conf) / 2 * 100
    rows = []
    for (campaign, group), cell in c.groupby(CELL, sort=True):
        t = cell[~cell["control"]]
        k = cell[cell["control"]]
        n_t, n_c = len(t), len(k)
        x_t, x_c = int(t["responded"].sum()), int(k["responded"].sum())
        p_t = x_t / n_t if n_t else np.nan
        p_c = x_c / n_c if n_c else np.nan
        lo, hi = newcombe(x_t, n_t, x_c, n_c, conf)
        test, p_value = significance(x_t, n_t, x_c, n_c, fisher_below=settings.fisher_below)
        rng = np.random.default_rng(_seed(settings.seed, campaign, group))
        rev_t, rev_c = t["revenue"].to_numpy(float), k["revenue"].to_numpy(float)
        boot = _revenue_boot(rev_t, rev_c, settings.bootstrap, rng) * n_t
        inc_rev = (rev_t.mean() - rev_c.mean()) * n_t if n_t and n_c else np.nan
        channel = _one_or_mixed(t["channel"]) if n_t else _one_or_mixed(cell["channel"])
        reached = int(t["reached"].sum())
        unit_cost = settings.costs.get(channel, np.nan)
        cost = reached * unit_cost
        rows.append(
            {
                "campaign": campaign,
                "selection_group": group,
                "channel": channel,
                "started_at": cell["contacted_at"].min(),
                "n_contacted": n_t,
                "n_control": n_c,
                "contacts_made": reached,
                "contacted_share": reached / n_t if n_t else np.nan,
                "responders_contacted": x_t,
                "responders_control": x_c,
                "rate_contacted": p_t,
                "rate_control": p_c,
                "uplift": p_t - p_c,
                "uplift_ci_low": lo,
                "uplift_ci_high": hi,
                "test": test,
                "p_value": p_value,
                "significant": bool(p_value < settings.alpha),
                "incremental_responses": (p_t - p_c) * n_t,
                "incremental_responses_ci_low": lo * n_t,
                "incremental_responses_ci_high": hi * n_t,
                "revenue_contacted": rev_t.sum(),
                "revenue_control": rev_c.sum(),
                "incremental_revenue": inc_rev,
                "incremental_revenue_ci_low": np.nanpercentile(boot, tail) if n_c and n_t else np.nan,
                "incremental_revenue_ci_high": np.nanpercentile(boot, 100 - tail) if n_c and n_t else np.nan,
                "cost": cost,
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:  # no campaign data: the table with its columns, empty
        return empty_table(RESULT_COLUMNS)
    out["rate_contacted_ci_low"], out["rate_contacted_ci_high"] = _wilson(
        out["responders_contacted"], out["n_contacted"], conf
    )
    out["rate_control_ci_low"], out["rate_control_ci_high"] = _wilson(
        out["responders_control"], out["n_control"], conf
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = out["cost"].where(out["cost"] > 0)
        out["roi"] = (out["incremental_revenue"] - cost) / cost
        out["roi_ci_low"] = (out["incremental_revenue_ci_low"] - cost) / cost
        out["roi_ci_high"] = (out["incremental_revenue_ci_high"] - cost) / cost
        out["cost_per_incremental_response"] = cost / out["incremental_responses"].where(
            out["incremental_responses"] > 0
        )
    srm = srm_check(c, settings)
    out = out.merge(
        srm[[*CELL, "control_share", "planned_control_share", "srm_p", "srm"]], on=CELL, how="left"
    )
    pw = power_mde(
        out["n_contacted"],
        out["n_control"],
        out["rate_control"],
        alpha=settings.alpha,
        power=settings.power,
        min_uplift=settings.min_uplift,
    )
    out["power"], out["mde"], out["underpowered"] = (
        pw["power"].to_numpy(),
        pw["mde"].to_numpy(),
        pw["underpowered"].to_numpy(),
    )
    return out[RESULT_COLUMNS]


# --------------------------------------------------------------------------------------------------
# Comparisons pooled over campaigns (stratified by campaign cell)
# --------------------------------------------------------------------------------------------------


#: The columns `incremental_by` adds after the `by` columns.
INCREMENTAL_COLUMNS = [
    "strata",
    "n_contacted",
    "n_control",
    "responders_contacted",
    "responders_control",
    "rate_contacted",
    "rate_control_adjusted",
    "incremental_responses",
    "uplift",
    "uplift_ci_low",
    "uplift_ci_high",
    "power",
    "mde",
    "underpowered",
    "contacted_without_control",
]


def incremental_by(
    contacts: pd.DataFrame,
    by: Sequence[str],
    settings: CampaignSettings,
    *,
    strata: Sequence[str] = tuple(CELL),
    draws: bool = False,
):
    """Incremental responses per contacted member for each value of `by`, pooled over campaigns.

    Each stratum (campaign × group × `by`) is compared with its own control, and the per-stratum
    uplifts are averaged with the contacted sizes as weights — pooling raw counts instead would mix
    campaigns with different base rates and control shares. Strata without a control (or without a
    contacted arm) are left out and counted. Interval: percentile bootstrap (binomial resampling of each
    arm, seeded). Power: `NormalIndPower` on the pooled sizes and control rate.
    With `draws=True` also returns the bootstrap draws (groups × B) for differences between groups.
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    by = list(by)
    if c.empty:  # no campaign data: the table with its columns, empty
        out = empty_table([*by, *INCREMENTAL_COLUMNS])
        return (out, np.empty((0, settings.bootstrap))) if draws else out
    keys = list(dict.fromkeys([*strata, *by]))
    g = (
        c.groupby([*keys, "control"], sort=True)["responded"]
        .agg(["size", "sum"])
        .unstack("control", fill_value=0)
    )
    g.columns = [f"{a}_{'c' if b else 't'}" for a, b in g.columns]
    for col in ("size_t", "size_c", "sum_t", "sum_c"):
        if col not in g:
            g[col] = 0
    g = g.reset_index()
    usable = ((g["size_t"] > 0) & (g["size_c"] > 0)).to_numpy()
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(g[by]), sort=True)
    G = len(uniques)
    # strata without one of the arms carry no comparison: zero weight, counted in contacted_without_control
    n_t = np.where(usable, g["size_t"].to_numpy(float), 0.0)
    n_c = np.where(usable, g["size_c"].to_numpy(float), 1.0)
    x_t = np.where(usable, g["sum_t"].to_numpy(float), 0.0)
    x_c = np.where(usable, g["sum_c"].to_numpy(float), 0.0)
    incr = x_t - n_t * x_c / n_c
    rng = np.random.default_rng(_seed(settings.seed, "incremental", *by))
    B = settings.bootstrap
    bt = rng.binomial(
        n_t.astype(np.int64), np.divide(x_t, n_t, out=np.zeros_like(x_t), where=n_t > 0), size=(B, len(g))
    )
    bc = rng.binomial(n_c.astype(np.int64), x_c / n_c, size=(B, len(g)))
    boot_incr = bt - n_t * bc / n_c
    onehot = np.zeros((len(g), G))
    onehot[np.arange(len(g)), codes] = 1.0
    w = n_t @ onehot
    with np.errstate(divide="ignore", invalid="ignore"):
        est = (incr @ onehot) / w
        boot = (boot_incr @ onehot) / w  # B × G
        pooled_pc = ((x_c * usable) @ onehot) / ((n_c * usable) @ onehot)
    tail = (1 - settings.confidence) / 2 * 100
    out = pd.DataFrame(list(uniques), columns=by) if G else pd.DataFrame(columns=by)
    out["strata"] = usable.astype(int) @ onehot.astype(int) if G else []
    out["n_contacted"] = w.astype(int)
    out["n_control"] = ((n_c * usable) @ onehot).astype(int)
    out["responders_contacted"] = (x_t @ onehot).astype(int)
    out["responders_control"] = (x_c @ onehot).astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate_contacted"] = out["responders_contacted"] / out["n_contacted"].where(out["n_contacted"] > 0)
    out["rate_control_adjusted"] = out["rate_contacted"] - est  # control rate reweighted to the contacted mix
    out["incremental_responses"] = incr @ onehot
    out["uplift"] = est
    ok = w > 0
    lo, hi = np.full(G, np.nan), np.full(G, np.nan)
    if ok.any():
        lo[ok] = np.percentile(boot[:, ok], tail, axis=0)
        hi[ok] = np.percentile(boot[:, ok], 100 - tail, axis=0)
    out["uplift_ci_low"], out["uplift_ci_high"] = lo, hi
    pw = power_mde(
        out["n_contacted"],
        out["n_control"],
        pooled_pc,
        alpha=settings.alpha,
        power=settings.power,
        min_uplift=settings.min_uplift,
    )
    out["power"], out["mde"], out["underpowered"] = (
        pw["power"].to_numpy(),
        pw["mde"].to_numpy(),
        pw["underpowered"].to_numpy(),
    )
    out["contacted_without_control"] = (g["size_t"].to_numpy() * ~usable) @ onehot.astype(int) if G else []
    if draws:
        return out, boot.T
    return out


def compare_selections(
    contacts: pd.DataFrame, settings: CampaignSettings, *, baseline: str = "random"
) -> pd.DataFrame:
    """Model vs marketing vs random selection on incremental response per contacted member.

    Pooled over campaigns (stratified by campaign), with each group's difference to the `baseline`
    selection: bootstrap interval, and the minimum detectable difference (z_(1-α/2) + z_power) × bootstrap
    standard error, flagged `underpowered_vs_baseline` when it exceeds `min_uplift`.
    """
    out, boot = incremental_by(contacts, ["selection_group"], settings, strata=["campaign"], draws=True)
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    if out.empty:
        extra = ["incremental_revenue_per_contact", "vs_baseline", "vs_baseline_ci_low", "vs_baseline_ci_high",
                 "vs_baseline_mde", "underpowered_vs_baseline"]  # fmt: skip
        return pd.concat([out, empty_table(extra)], axis=1)
    rev = c.groupby(["campaign", "selection_group", "control"])["revenue"].mean().unstack("control")
    size_t = c[~c["control"]].groupby(["campaign", "selection_group"]).size()
    if True in rev and False in rev:
        inc_rev = ((rev[False] - rev[True]) * size_t.reindex(rev.index)).dropna()
        per = (
            inc_rev.groupby(level="selection_group").sum()
            / size_t.reindex(inc_rev.index).groupby(level="selection_group").sum()
        )
        out["incremental_revenue_per_contact"] = out["selection_group"].map(per)
    tail = (1 - settings.confidence) / 2 * 100
    z = sps.norm.ppf(1 - settings.alpha / 2) + sps.norm.ppf(settings.power)
    groups = out["selection_group"].tolist()
    if baseline in groups:
        b = groups.index(baseline)
        diff = boot - boot[b]
        out["vs_baseline"] = out["uplift"] - out["uplift"].iloc[b]
        out["vs_baseline_ci_low"] = np.percentile(diff, tail, axis=1)
        out["vs_baseline_ci_high"] = np.percentile(diff, 100 - tail, axis=1)
        se = diff.std(axis=1, ddof=1)
        out["vs_baseline_mde"] = np.where(np.arange(len(groups)) == b, np.nan, z * se)
        out["underpowered_vs_baseline"] = out["vs_baseline_mde"] > settings.min_uplift
        out.loc[b, ["vs_baseline", "vs_baseline_ci_low", "vs_baseline_ci_high"]] = np.nan
        out.loc[b, "underpowered_vs_baseline"] = False
    return out


def channel_comparison(contacts: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Per channel: response rates, incremental response per contacted member (stratified by campaign
    cell), and what one incremental response costs at the channel's cost per contact."""
    out = incremental_by(contacts, ["channel"], settings)
    out["cost_per_contact"] = out["channel"].map(settings.costs).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cost_per_incremental_response"] = out["cost_per_contact"] / out["uplift"].where(
            out["uplift"] > 0
        )
    return out


def segment_channel(
    contacts: pd.DataFrame, segments: pd.DataFrame, settings: CampaignSettings, *, segment: str = "segment"
) -> pd.DataFrame:
    """Response and incremental response per segment × channel (segments: customer_id, `segment`).

    Contacts whose customer has no segment go to segment "unsegmented".
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    seg = segments[["customer_id", segment]].drop_duplicates("customer_id")
    c = c.merge(seg, on="customer_id", how="left")
    c[segment] = c[segment].astype("string").fillna("unsegmented").astype(str)
    out = incremental_by(c, [segment, "channel"], settings)
    return out.rename(columns={segment: "segment"}) if segment != "segment" else out


# --------------------------------------------------------------------------------------------------
# The model-selected group: scores, qini, uplift by decile
# --------------------------------------------------------------------------------------------------

FEATURES = [
    "contacts",
    "responses",
    "opens",
    "rate_shrunk",
    "open_rate",
    "days_since_last_response",
    "days_since_last_contact",
    "ever_responded",
]
_NEVER_DAYS = 3650.0  # "no response yet" is encoded as ten years ago


def history_features(
    contacts: pd.DataFrame, as_of: pd.Timestamp | str, *, shrinkage: float, prior_rate: float | None = None
) -> pd.DataFrame:
    """Per customer, the contact history strictly before `as_of` (contacted rows only): counts,
    shrunk response rate, open rate, days since the last response and the last contact."""
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    as_of = pd.Timestamp(as_of)
    h = c[c["reached"] & c["customer_id"].notna() & (c["contacted_at"] < as_of)]
    if prior_rate is None:
        prior_rate = float(h["responded"].mean()) if len(h) else 0.0
    resp_at = h["response_at"].where(h["responded"] & (h["response_at"] < as_of))
    g = pd.DataFrame(
        {
            "customer_id": h["customer_id"].to_numpy(),
            "responded": h["responded"].to_numpy(),
            "opened": h["opened"].to_numpy(),
            "contacted_at": h["contacted_at"].to_numpy(),
            "response_at": resp_at.to_numpy(),
        }
    ).groupby("customer_id")
    out = g.agg(
        contacts=("responded", "size"),
        responses=("responded", "sum"),
        opens=("opened", "sum"),
        last_contact=("contacted_at", "max"),
        last_response=("response_at", "max"),
    )
    out["rate_shrunk"] = (out["responses"] + shrinkage * prior_rate) / (out["contacts"] + shrinkage)
    out["open_rate"] = out["opens"] / out["contacts"]
    out["days_since_last_response"] = ((as_of - out["last_response"]).dt.days.astype(float)).fillna(
        _NEVER_DAYS
    )
    out["days_since_last_contact"] = (as_of - out["last_contact"]).dt.days.astype(float)
    out["ever_responded"] = (out["responses"] > 0).astype(float)
    return out[FEATURES].reset_index()


def _feature_matrix(
    frame: pd.DataFrame, channel: pd.Series, prior_rate: float, shrinkage: float
) -> np.ndarray:
    """Model inputs; customers without history get the values of "no history"."""
    empty = {
        "contacts": 0.0,
        "responses": 0.0,
        "opens": 0.0,
        "rate_shrunk": prior_rate,
        "open_rate": 0.0,
        "days_since_last_response": _NEVER_DAYS,
        "days_since_last_contact": _NEVER_DAYS,
        "ever_responded": 0.0,
    }
    X = frame.reindex(columns=FEATURES).astype(float).fillna(empty)
    X["log_contacts"] = np.log1p(X.pop("contacts"))
    X["log_responses"] = np.log1p(X.pop("responses"))
    X["log_opens"] = np.log1p(X.pop("opens"))
    X["days_since_last_response"] = np.log1p(X["days_since_last_response"])
    X["days_since_last_contact"] = np.log1p(X["days_since_last_contact"])
    for ch in CHANNELS:
        X[f"channel_{ch}"] = (channel.to_numpy() == ch).astype(float)
    return X.to_numpy()


def _training_rows(c: pd.DataFrame, shrinkage: float, campaigns: Sequence[str] | None = None) -> pd.DataFrame:
    """Contacted rows of each campaign with the customer's history as of the campaign's start."""
    parts = []
    starts = c.groupby("campaign")["contacted_at"].min()
    prior = float(c.loc[c["reached"], "responded"].mean()) if c["reached"].any() else 0.0
    for campaign in campaigns if campaigns is not None else starts.index:
        rows = c[(c["campaign"] == campaign) & c["customer_id"].notna()]
        start = starts.get(campaign)
        if pd.isna(start) or rows.empty:
            continue
        feats = history_features(c, start, shrinkage=shrinkage, prior_rate=prior)
        parts.append(rows.merge(feats, on="customer_id", how="left"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _fit(rows: pd.DataFrame, prior: float, shrinkage: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = rows[rows["reached"]] if len(rows) else rows
    y = rows["responded"].to_numpy(int) if len(rows) else np.array([])
    if len(np.unique(y)) < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    model.fit(_feature_matrix(rows, rows["channel"], prior, shrinkage), y)
    model.prior_rate_ = prior
    return model


def _prior(c: pd.DataFrame) -> float:
    return float(c.loc[c["reached"], "responded"].mean()) if c["reached"].any() else 0.0


def fit_propensity(
    contacts: pd.DataFrame, settings: CampaignSettings, *, campaigns: Sequence[str] | None = None
):
    """Logistic regression of response to a contact on the customer's history before it and the channel.

    The fallback when the segmentation stage provides no score. Trained on contacted rows only: it
    estimates P(respond | contacted), a propensity (not an uplift). Returns a fitted sklearn pipeline
    with `prior_rate_` set, or None when the history has no responses or no non-responses.
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    return _fit(_training_rows(c, settings.shrinkage, campaigns), _prior(c), settings.shrinkage)


def propensity_scores(
    model,
    contacts: pd.DataFrame,
    customers: pd.DataFrame,
    *,
    channel: str,
    as_of: pd.Timestamp | str,
    settings: CampaignSettings,
) -> pd.DataFrame:
    """P(respond | contacted on `channel`) for every customer, from their full history up to `as_of`."""
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    feats = history_features(c, as_of, shrinkage=settings.shrinkage, prior_rate=model.prior_rate_)
    frame = customers[["customer_id"]].drop_duplicates().merge(feats, on="customer_id", how="left")
    X = _feature_matrix(frame, pd.Series(channel, index=frame.index), model.prior_rate_, settings.shrinkage)
    return pd.DataFrame(
        {"customer_id": frame["customer_id"].to_numpy(), "propensity": model.predict_proba(X)[:, 1]}
    )


def score_contacts(
    contacts: pd.DataFrame, settings: CampaignSettings, *, group: str | None = "model"
) -> pd.DataFrame:
    """Score the members (both arms) of past campaigns without looking at their own outcome.

    Leave one campaign out: for each campaign, the propensity model is fitted on the other campaigns'
    contacted rows and scores this campaign's members from their history before it started. The
    scores rank a selection group's members for the qini curve and the uplift by decile; a campaign
    whose members all get the same score (nobody had a history yet) gets no score. When the contacts
    carry a `score` column (the score the selection used), it is kept as is.
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    if "score" in c and c["score"].notna().any():  # the selection score, when the campaign system delivers it
        return c[c["selection_group"] == group] if group is not None else c
    rows = _training_rows(c, settings.shrinkage)
    if rows.empty:
        return c.iloc[:0].assign(score=np.nan)
    prior = _prior(c)
    rows["score"] = np.nan
    for campaign in sorted(rows["campaign"].unique()):
        mine = (rows["campaign"] == campaign).to_numpy()
        model = _fit(rows[~mine], prior, settings.shrinkage)
        if model is not None:
            part = rows[mine]
            rows.loc[mine, "score"] = model.predict_proba(
                _feature_matrix(part, part["channel"], prior, settings.shrinkage)
            )[:, 1]
    if group is not None:
        rows = rows[rows["selection_group"] == group]
    # a campaign whose members all score alike (no history before the first campaign) ranks nobody
    flat = rows.groupby("campaign")["score"].transform("nunique") <= 1
    rows.loc[flat, "score"] = np.nan
    return rows[[*c.columns, "score"]].reset_index(drop=True)


def _ordered(responded: np.ndarray, treated: np.ndarray, score: np.ndarray):
    order = np.argsort(np.asarray(score, float), kind="mergesort")[::-1]
    return (
        np.asarray(responded, float)[order],
        np.asarray(treated, bool)[order],
        np.asarray(score, float)[order],
    )


def qini_curve(responded, treated, score) -> pd.DataFrame:
    """The qini curve: targeting the top k by score, incremental responders
    Y_t(k) − Y_c(k) · N_t(k) / N_c(k), at every distinct score (Radcliffe 2007; as scikit-uplift)."""
    y, t, s = _ordered(responded, treated, score)
    if len(y) == 0:
        return pd.DataFrame({"targeted": [0], "share_targeted": [0.0], "incremental": [0.0], "random": [0.0]})
    idx = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    n_t = np.cumsum(t)[idx].astype(float)
    y_t = np.cumsum(y * t)[idx]
    n_all = (idx + 1).astype(float)
    n_c = n_all - n_t
    y_c = np.cumsum(y * ~t)[idx]
    q = y_t - y_c * np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    n_all, q = np.r_[0.0, n_all], np.r_[0.0, q]
    return pd.DataFrame(
        {
            "targeted": n_all.astype(int),
            "share_targeted": n_all / n_all[-1],
            "incremental": q,
            "random": n_all / n_all[-1] * q[-1],
        }
    )


def qini_coefficient(responded, treated, score) -> float:
    """Area between the qini curve and the random line, over the same area of the perfect ranking
    (responders among the contacted first, responders among the controls last); 1 = perfect, 0 = random."""
    y = np.asarray(responded, float)
    t = np.asarray(treated, bool)
    actual = qini_curve(y, t, score)
    perfect = qini_curve(y, t, y * t - y * ~t)
    x_end, y_end = perfect["targeted"].iloc[-1], perfect["incremental"].iloc[-1]
    base = np.trapezoid([0, y_end], [0, x_end])
    denom = np.trapezoid(perfect["incremental"], perfect["targeted"]) - base
    if denom == 0:
        return float("nan")
    return float((np.trapezoid(actual["incremental"], actual["targeted"]) - base) / denom)


def uplift_by_decile(responded, treated, score, *, bins: int = 10, confidence: float = 0.95) -> pd.DataFrame:
    """Uplift per score decile (highest scores first): members ranked by score over both arms and cut
    into `bins` equal parts (as scikit-uplift's `uplift_by_percentile`), each with a Newcombe interval."""
    y, t, _ = _ordered(responded, treated, score)
    rows = []
    for i, (yb, tb) in enumerate(zip(np.array_split(y, bins), np.array_split(t, bins), strict=True), start=1):
        n_t, n_c = int(tb.sum()), int((~tb).sum())
        x_t, x_c = int(yb[tb].sum()), int(yb[~tb].sum())
        lo, hi = newcombe(x_t, n_t, x_c, n_c, confidence)
        p_t = x_t / n_t if n_t else np.nan
        p_c = x_c / n_c if n_c else np.nan
        rows.append(
            {
                "decile": i,
                "n_contacted": n_t,
                "n_control": n_c,
                "rate_contacted": p_t,
                "rate_control": p_c,
                "uplift": p_t - p_c,
                "uplift_ci_low": lo,
                "uplift_ci_high": hi,
            }
        )
    return pd.DataFrame(rows)


def decile_uplift(scored: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Uplift per score decile over several campaigns: deciles are cut within each campaign (both arms,
    highest scores = decile 1), then compared stratified by campaign (`incremental_by`)."""
    d = scored[scored["score"].notna()].sort_values(["campaign", "customer_id"], kind="stable").copy()
    if d.empty:
        return pd.DataFrame(columns=["decile", "uplift", "uplift_ci_low", "uplift_ci_high"])
    rank = d.groupby("campaign")["score"].rank(method="first", ascending=False)
    size = d.groupby("campaign")["score"].transform("size")
    d["decile"] = np.ceil(rank / size * settings.deciles).astype(int).clip(1, settings.deciles)
    return incremental_by(d, ["decile"], settings, strata=["campaign"])


# --------------------------------------------------------------------------------------------------
# Feedback into the profile
# --------------------------------------------------------------------------------------------------


def customer_feedback(contacts: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Per customer × channel: contacts, responses, shrunk response rate, the customer's responsiveness
    class and whether this is their preferred channel, and the last response (table `campaign_feedback`).

    Only contacts actually made count (the control arm saw nothing). The shrunk rate is
    (responses + k · channel rate) / (contacts + k), k = `shrinkage`: one response in one e-mail does not
    beat three in ten SMS. Responsiveness over all channels: `never` (no response), `always` (responded to
    every contact), `sometimes` — given from `min_contacts` contacts on; below it `unknown`. The preferred
    channel is the contacted channel with the highest shrunk rate (ties: more contacts, then by name),
    only for customers who responded at least once: silence on every channel reveals no preference.
    """
    c = contacts if "arm" in contacts else prepare_contacts(contacts)
    h = c[c["reached"] & c["customer_id"].notna()].copy()
    cols = [
        "customer_id",
        "channel",
        "contacts",
        "responses",
        "response_rate",
        "rate_shrunk",
        "responsiveness",
        "preferred_channel",
        "contacts_total",
        "responses_total",
        "last_contact_at",
        "last_response_at",
    ]
    if h.empty:
        return pd.DataFrame(columns=cols)
    h["response_at"] = h["response_at"].where(h["responded"])
    channel_rate = h.groupby("channel")["responded"].mean()
    out = (
        h.groupby(["customer_id", "channel"])
        .agg(
            contacts=("responded", "size"),
            responses=("responded", "sum"),
            last_contact_at=("contacted_at", "max"),
            last_response_at=("response_at", "max"),
        )
        .reset_index()
    )
    out["responses"] = out["responses"].astype(int)
    out["response_rate"] = out["responses"] / out["contacts"]
    k = settings.shrinkage
    prior = out["channel"].map(channel_rate).to_numpy(float)
    out["rate_shrunk"] = (out["responses"] + k * prior) / (out["contacts"] + k)
    tot = out.groupby("customer_id")[["contacts", "responses"]].transform("sum")
    out["contacts_total"], out["responses_total"] = tot["contacts"], tot["responses"]
    cls = np.select(
        [
            out["contacts_total"] < settings.min_contacts,
            out["responses_total"] == 0,
            out["responses_total"] >= out["contacts_total"],
        ],
        ["unknown", "never", "always"],
        "sometimes",
    )
    out["responsiveness"] = cls
    best = (
        out[out["responses_total"] > 0]
        .sort_values(
            ["customer_id", "rate_shrunk", "contacts", "channel"],
            ascending=[True, False, False, True],
            kind="stable",
        )
        .drop_duplicates("customer_id")
    )
    out["preferred_channel"] = out.index.isin(best.index)
    return out[cols].sort_values(["customer_id", "channel"], kind="stable").reset_index(drop=True)


def feedback_summary(
    feedback: pd.DataFrame, *, channel: str | None = None, as_of: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """One row per customer: responsiveness, preferred channel, totals, last response (and days since
    it at `as_of`), plus the shrunk rate on `channel` when given — the columns a selection filters on."""
    if feedback.empty:
        return pd.DataFrame(
            columns=[
                "customer_id",
                "responsiveness",
                "preferred_channel",
                "contacts_total",
                "responses_total",
                "last_response_at",
                "days_since_last_response",
            ]
        )
    g = feedback.groupby("customer_id")
    out = g.agg(
        responsiveness=("responsiveness", "first"),
        contacts_total=("contacts_total", "first"),
        responses_total=("responses_total", "first"),
        last_response_at=("last_response_at", "max"),
    )
    out["preferred_channel"] = feedback[feedback["preferred_channel"]].set_index("customer_id")["channel"]
    if channel is not None:
        on = feedback[feedback["channel"] == channel].set_index("customer_id")
        out["channel_contacts"] = on["contacts"]
        out["channel_rate_shrunk"] = on["rate_shrunk"]
    if as_of is not None:
        out["days_since_last_response"] = (pd.Timestamp(as_of) - out["last_response_at"]).dt.days
    return out.reset_index()


def combine_scores(frames: Sequence[pd.DataFrame]) -> pd.DataFrame | None:
    """One row per customer from several per-customer tables (the first table wins a column both
    have; `period` is dropped); None when none has rows."""
    out = None
    for frame in frames:
        if frame is None or frame.empty or "customer_id" not in frame:
            continue
        f = frame.drop(columns=["period"], errors="ignore").drop_duplicates("customer_id")
        if out is None:
            out = f
        else:
            out = out.merge(
                f[["customer_id", *[c for c in f.columns if c not in out.columns]]],
                on="customer_id",
                how="outer",
            )
    return out


# --------------------------------------------------------------------------------------------------
# The next campaign
# --------------------------------------------------------------------------------------------------


def eligible_customers(
    customers: pd.DataFrame, channel: str, *, require_contact_point: bool = True
) -> pd.Series:
    """True where the golden record has explicit consent for `channel` (and a contact point for it)."""
    consent = CONSENT_COLUMN[channel]
    if consent not in customers:
        raise ScvError(f"customers have no `{consent}` column: cannot check consent for channel {channel!r}")
    ok = customers[consent].astype("boolean").fillna(False).to_numpy(bool)
    point = CONTACT_POINT[channel]
    if require_contact_point and point in customers:
        ok &= customers[point].astype("string").str.strip().fillna("").ne("").to_numpy(bool)
    return pd.Series(ok, index=customers.index)


_OPS = {
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
    "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v,
    ">": lambda s, v: s > v,
    ">=": lambda s, v: s >= v,
    "in": lambda s, v: s.isin(v),
    "not_in": lambda s, v: ~s.isin(v),
    "is_null": lambda s, v: s.isna(),
    "not_null": lambda s, v: s.notna(),
}


def apply_rule(candidates: pd.DataFrame, rule: MarketingRule) -> pd.Series:
    """Rows that meet every condition of the rule (a missing value fails a comparison)."""
    keep = pd.Series(True, index=candidates.index)
    for cond in rule.where:
        if cond.column not in candidates:
            raise ConfigError(
                f"params/default.yaml: campaigns.next.marketing_rule: column {cond.column!r} is not "
                f"available; the candidates have: {sorted(candidates.columns)}"
            )
        hit = _OPS[cond.op](candidates[cond.column], cond.value)
        keep &= pd.Series(hit, index=candidates.index).astype("boolean").fillna(False).astype(bool)
    return keep


def _draw_controls(members: pd.DataFrame, share: float, seed: np.random.SeedSequence) -> pd.DataFrame:
    """Exactly round(share · n) controls, drawn with a seeded generator over members sorted by id."""
    m = members.sort_values("customer_id", kind="stable").reset_index(drop=True)
    draw = np.random.default_rng(seed).random(len(m))
    n_control = int(round(share * len(m)))
    rank = np.argsort(np.argsort(draw, kind="stable"), kind="stable")
    m["draw"] = draw
    m["control"] = rank < n_control
    return m


def next_campaign(
    customers: pd.DataFrame,
    settings: CampaignSettings,
    *,
    feedback: pd.DataFrame | None = None,
    scores: pd.DataFrame | None = None,
    contacts: pd.DataFrame | None = None,
    as_of: pd.Timestamp | str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The three target lists of the next campaign (table `next_campaign`) and a summary for the record.

    Universe: golden customers with consent for the channel (and a contact point), minus the
    responsiveness classes in `exclude_responsiveness`. Then, without overlap and in this order:
    `random` — a seeded random sample (first, so it represents the whole universe); `model` — the top
    `size` by the score column of `scores` (customer_id, propensity/uplift, plus any columns the
    marketing rule filters on); without `scores`, a propensity model is fitted on `contacts`;
    `marketing` — customers meeting the marketing rule (top by `order_by`, else a seeded draw).
    Each list gets an exact control share drawn with a seeded generator (column `draw`: the uniform
    number that decided it), so the split can be re-made and audited from the seed.
    """
    nxt = settings.next
    channel = nxt.channel
    base = customers.drop_duplicates("customer_id").reset_index(drop=True)
    ok = eligible_customers(base, channel, require_contact_point=nxt.require_contact_point)
    summary: dict[str, Any] = {
        "campaign": nxt.name,
        "channel": channel,
        "customers": len(base),
        "without_consent_or_contact_point": int((~ok).sum()),
    }
    cand = base[ok.to_numpy()].copy()
    fb = feedback_summary(feedback if feedback is not None else pd.DataFrame(), channel=channel, as_of=as_of)
    cand = cand.merge(fb, on="customer_id", how="left")
    cand["responsiveness"] = cand["responsiveness"].fillna("unknown")
    if scores is None:
        if contacts is None:
            raise ScvError(
                "next_campaign needs `scores` (customer_id, propensity) or `contacts` to fit a propensity model"
            )
        model = fit_propensity(contacts, settings) if len(contacts) else None
        if model is None:  # no history to learn from: no model group this time (random and marketing only)
            scores = pd.DataFrame({"customer_id": base["customer_id"], nxt.score: np.nan})
            summary["score_source"] = (
                "none: no score from segmentation and no campaign history with responses to fit a "
                "propensity model, so the model group is empty"
            )
        else:
            scores = propensity_scores(model, contacts, base, channel=channel, as_of=as_of, settings=settings)
            summary["score_source"] = "campaigns.fit_propensity (history logistic regression)"
    else:
        summary["score_source"] = "scores frame"
    if nxt.score not in scores:
        raise ScvError(
            f"the scores frame has no {nxt.score!r} column (campaigns.next.score); it has {sorted(scores.columns)}"
        )
    extra = [col for col in scores.columns if col == "customer_id" or col not in cand.columns]
    cand = cand.merge(scores[extra].drop_duplicates("customer_id"), on="customer_id", how="left")
    excluded = cand["responsiveness"].isin(nxt.exclude_responsiveness)
    summary["excluded_by_responsiveness"] = int(excluded.sum())
    cand = cand[~excluded].sort_values("customer_id", kind="stable").reset_index(drop=True)
    summary["universe"] = len(cand)

    taken = np.zeros(len(cand), dtype=bool)
    lists = []
    # random first: a plain sample of the universe
    rng = np.random.default_rng(_seed(nxt.seed, nxt.name, "random"))
    pick = np.sort(rng.choice(len(cand), size=min(nxt.size, len(cand)), replace=False))
    lists.append(("random", pick, np.full(len(pick), np.nan)))
    taken[pick] = True
    # model: top by score among the rest
    score = pd.to_numeric(cand[nxt.score], errors="coerce").to_numpy(float)
    free = np.flatnonzero(~taken & np.isfinite(score))
    order = free[np.lexsort((cand["customer_id"].to_numpy()[free], -score[free]))]
    pick = order[: nxt.size]
    lists.append(("model", pick, score[pick]))
    taken[pick] = True
    # marketing: the rule among the rest
    rule = apply_rule(cand, nxt.marketing_rule).to_numpy(bool)
    summary["marketing_rule_matches"] = int(rule.sum())
    summary["marketing_rule_matches_taken_by_other_groups"] = int((rule & taken).sum())
    free = np.flatnonzero(rule & ~taken)
    if nxt.marketing_rule.order_by:
        key = nxt.marketing_rule.order_by
        if key not in cand:
            raise ConfigError(
                f"params/default.yaml: campaigns.next.marketing_rule.order_by: column {key!r} is not available"
            )
        val = pd.to_numeric(cand[key], errors="coerce").to_numpy(float)[free]
        val = -val if nxt.marketing_rule.descending else val
        free = free[np.lexsort((cand["customer_id"].to_numpy()[free], np.nan_to_num(val, nan=np.inf)))]
        pick = free[: nxt.size]
    else:
        rng = np.random.default_rng(_seed(nxt.seed, nxt.name, "marketing"))
        pick = np.sort(rng.choice(free, size=min(nxt.size, len(free)), replace=False)) if len(free) else free
    lists.append(("marketing", pick, score[pick]))

    frames = []
    for i, (group, idx, sc) in enumerate(lists):
        members = pd.DataFrame({"customer_id": cand["customer_id"].to_numpy()[idx], "score": sc})
        members = _draw_controls(members, nxt.control_share, _seed(nxt.seed, nxt.name, "control", i))
        members.insert(0, "selection_group", group)
        frames.append(members)
        summary[f"{group}_size"] = len(members)
        summary[f"{group}_control"] = int(members["control"].sum())
        if len(members) < nxt.size:
            summary.setdefault("short_lists", []).append(group)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "channel", channel)
    out.insert(0, "campaign", nxt.name)
    out["seed"] = nxt.seed
    # the privacy commitment, checked on the result rather than trusted
    consent = base.set_index("customer_id")[CONSENT_COLUMN[channel]].astype("boolean").fillna(False)
    if not consent.reindex(out["customer_id"]).fillna(False).all():  # pragma: no cover - guarded above
        raise ScvError("a customer without consent reached a target list; refusing to continue")
    return out[
        ["campaign", "channel", "selection_group", "customer_id", "control", "draw", "score", "seed"]
    ], summary


def export_target_lists(lists: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """One CSV per selection group, `<campaign>_<group>.csv`, written atomically with formula escaping."""
    out_dir = Path(out_dir)
    paths = []
    for (campaign, group), frame in lists.groupby(["campaign", "selection_group"], sort=True):
        frame = frame.sort_values("customer_id", kind="stable")
        paths.append(store.write_csv(frame, out_dir / f"{campaign}_{group}.csv"))
    return paths


# --------------------------------------------------------------------------------------------------
# What the reader must be told, and the check against a planted truth
# --------------------------------------------------------------------------------------------------


def report_warnings(
    results: pd.DataFrame, *, selections: pd.DataFrame | None = None, contacts: pd.DataFrame | None = None
) -> list[str]:
    """Sentences for the report: broken splits, underpowered comparisons, small counts, missing controls."""
    out: list[str] = []
    if contacts is not None and "control" in contacts:
        missing = int(contacts["control"].isna().sum())
        if missing:
            out.append(
                f"{missing:,} contact rows have no control flag and were left out of every comparison."
            )
        if "customer_id" in contacts:
            unlinked = int(contacts["customer_id"].isna().sum())
            if unlinked:
                out.append(
                    f"{unlinked:,} contact rows could not be linked to a customer (not in the crosswalk): "
                    "they count in the campaign results but not in the customer feedback."
                )
            both = (
                contacts.dropna(subset=["customer_id", "control"])
                .groupby(["campaign", "customer_id"])["control"]
                .nunique()
            )
            if (both > 1).any():
                out.append(
                    f"{int((both > 1).sum()):,} customers were in both arms of the same campaign (duplicate "
                    "records in the campaign system that unify merged): the control is slightly contaminated."
                )
    for r in results.itertuples():
        cell = f"{r.campaign} / {r.selection_group}"
        if r.n_control == 0 or r.n_contacted == 0:
            out.append(f"{cell}: no control group or no contacted members — the effect cannot be measured.")
            continue
        notes = []
        if r.srm:
            notes.append(
                f"sample-ratio mismatch: control share {r.control_share:.1%} vs planned "
                f"{r.planned_control_share:.1%} (p = {r.srm_p:.1e}), the split may be broken"
            )
        if r.underpowered:
            notes.append(
                f"underpowered: with {r.n_contacted:,} contacted and {r.n_control:,} controls only an uplift "
                f"of {r.mde:.1%} points or more is detected reliably"
            )
        if r.test == "fisher":
            notes.append("few responses, Fisher's exact test used")
        if notes:
            out.append(f"{cell}: " + "; ".join(notes) + ".")
    if selections is not None and "underpowered_vs_baseline" in selections:
        for r in selections[selections["underpowered_vs_baseline"].astype(bool)].itertuples():
            out.append(
                f"selection {r.selection_group} vs random (all campaigns): underpowered — only differences of "
                f"{r.vs_baseline_mde:.1%} points or more are detected reliably."
            )
    return out


def recovery(results: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Measured uplift against a planted one (sample company only): truth columns campaign, group,
    uplift; `covered` when the planted value lies inside the measured interval."""
    t = truth.rename(columns={"group": "selection_group", "uplift": "planted_uplift"})
    t = t.astype({"campaign": str, "selection_group": str})
    keep = [
        "campaign",
        "selection_group",
        "planted_uplift",
        *[c for c in ("control_rate", "contacted_rate") if c in t],
    ]
    out = results.merge(t[keep], on=CELL, how="inner", suffixes=("", "_planted"))
    out["covered"] = (out["uplift_ci_low"] <= out["planted_uplift"]) & (
        out["planted_uplift"] <= out["uplift_ci_high"]
    )
    return out[
        [
            "campaign",
            "selection_group",
            "channel",
            "n_contacted",
            "n_control",
            "planted_uplift",
            "uplift",
            "uplift_ci_low",
            "uplift_ci_high",
            "covered",
        ]
    ]
