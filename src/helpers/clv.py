"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend, with `lifetimes`.

The field library reproduces the published CDNOW estimates (tests/test_metrics.py). In run order:
``summary`` (frequency, recency, T, monetary value per customer from purchase orders, the
lifetimes conventions) -> ``fit`` (both models; on a ConvergenceError or non-finite estimates the
fit is retried with the next penaliser of `clv.fallback_penalizers` and a warning) -> ``predict``
(probability alive, expected purchases and discounted CLV over `clv.horizon_months`) and
``holdout_check`` (fit on a calibration window, compare with what the customers bought afterwards).

Conventions (as in lifetimes' ``summary_data_from_transaction_data``): purchases on one day are one
purchase; frequency = purchase days - 1 (repeat purchases); recency = first -> last purchase day;
T = first purchase day -> `as_of` day; monetary value = mean net amount of the repeat purchase days
(0 when there are none), in the reporting currency. Times are in `clv.time_unit` (W = weeks).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

DAYS_PER_MONTH = 30.4375
UNIT_DAYS = {"D": 1.0, "W": 7.0}


class ClvSettings(BaseModel):
    """`metrics.clv` in params/default.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_unit: Literal["D", "W"] = "W"
    horizon_months: int = Field(12, ge=1)  # CLV horizon
    annual_discount_rate: float = Field(0.10, ge=0, lt=1)
    penalizer: float = Field(0.0, ge=0)  # first try (0 = plain maximum likelihood)
    fallback_penalizers: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.1])
    min_customers: int = Field(30, ge=5)  # fewer repeat buyers than this: no model, CLV left empty
    holdout_months: int = Field(6, ge=1)  # calibration / holdout split for the accuracy check

    @property
    def monthly_discount_rate(self) -> float:
        return (1 + self.annual_discount_rate) ** (1 / 12) - 1

    @property
    def horizon_units(self) -> float:
        return self.horizon_months * DAYS_PER_MONTH / UNIT_DAYS[self.time_unit]


@dataclass
class ClvModels:
    """The fitted models, the penalisers that worked, and what the reader must be told."""

    bgf: object | None
    ggf: object | None
    bgf_penalizer: float | None = None
    ggf_penalizer: float | None = None
    notes: list[str] = field(default_factory=list)

    def parameters(self) -> pd.DataFrame:
        rows = []
        for model, fitted, pen in (
            ("BG/NBD", self.bgf, self.bgf_penalizer),
            ("Gamma-Gamma", self.ggf, self.ggf_penalizer),
        ):
            if fitted is not None:
                for k, v in fitted.params_.items():
                    rows.append({"model": model, "parameter": k, "value": float(v), "penalizer": pen})
        return pd.DataFrame(rows, columns=["model", "parameter", "value", "penalizer"])


def summary(orders: pd.DataFrame, as_of: pd.Timestamp, settings: ClvSettings | None = None) -> pd.DataFrame:
    """frequency, recency, T, monetary_value per customer with a purchase up to `as_of` (index customer_id)."""
    settings = settings or ClvSettings()
    unit = UNIT_DAYS[settings.time_unit]
    o = orders[(orders["date"] <= as_of)]
    day = o.assign(day=o["date"].dt.normalize()).groupby(["customer_id", "day"])["amount"].sum()
    day = day[day > 0].reset_index()
    if day.empty:
        return pd.DataFrame(
            columns=["frequency", "recency", "T", "monetary_value"], index=pd.Index([], name="customer_id")
        )
    g = day.groupby("customer_id")
    first, last, n, total = g["day"].min(), g["day"].max(), g.size(), g["amount"].sum()
    first_value = day.sort_values("day", kind="stable").groupby("customer_id")["amount"].first()
    out = pd.DataFrame(
        {
            "frequency": (n - 1).astype(float),
            "recency": (last - first).dt.days / unit,
            "T": (pd.Timestamp(as_of).normalize() - first).dt.days / unit,
        }
    )
    repeat_value = (total - first_value) / (n - 1).where(n > 1)
    out["monetary_value"] = repeat_value.fillna(0.0)
    out.index.name = "customer_id"
    return out


def _fit_with_fallback(make, fit_args: tuple, penalizers: list[float], label: str, notes: list[str]):
    from lifetimes.utils import ConvergenceError

    last_error = None
    for i, pen in enumerate(penalizers):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                model = make(pen).fit(*fit_args)
            if not np.all(np.isfinite(model.params_.to_numpy(float))):
                raise ConvergenceError(f"non-finite estimates {model.params_.to_dict()}")
            if i > 0:
                msg = f"{label}: plain fit failed ({last_error}); fitted with penalizer {pen}"
                warnings.warn(msg, stacklevel=3)
                notes.append(msg)
            return model, pen
        except (ConvergenceError, ValueError, np.linalg.LinAlgError) as exc:
            last_error = " ".join(str(exc).split())[:160] or type(exc).__name__
    msg = f"{label}: no fit converged with penalizers {penalizers} ({last_error}); CLV left empty"
    warnings.warn(msg, stacklevel=3)
    notes.append(msg)
    return None, None


def fit(summary_frame: pd.DataFrame, settings: ClvSettings | None = None) -> ClvModels:
    """Fit BG/NBD on every buyer and Gamma-Gamma on repeat buyers with a positive monetary value."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    settings = settings or ClvSettings()
    notes: list[str] = []
    penalizers = [settings.penalizer, *[p for p in settings.fallback_penalizers if p != settings.penalizer]]
    s = summary_frame
    repeat = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    if len(repeat) < settings.min_customers:
        msg = (
            f"only {len(repeat)} repeat buyers (< clv.min_customers = {settings.min_customers}): no CLV model"
        )
        warnings.warn(msg, stacklevel=2)
        return ClvModels(None, None, notes=[msg])
    bgf, bpen = _fit_with_fallback(
        lambda p: BetaGeoFitter(penalizer_coef=p),
        (s["frequency"], s["recency"], s["T"]),
        penalizers,
        "BG/NBD",
        notes,
    )
    ggf, gpen = _fit_with_fallback(
        lambda p: GammaGammaFitter(penalizer_coef=p),
        (repeat["frequency"], repeat["monetary_value"]),
        penalizers,
        "Gamma-Gamma",
        notes,
    )
    corr = (
        float(np.corrcoef(repeat["frequency"], repeat["monetary_value"])[0, 1])
        if len(repeat) > 2
        else float("nan")
    )
    if abs(corr) > 0.3:
        notes.append(f"frequency and spend correlate ({corr:.2f}): Gamma-Gamma assumes they do not")
    return ClvModels(bgf, ggf, bpen, gpen, notes)


def predict(
    models: ClvModels, summary_frame: pd.DataFrame, settings: ClvSettings | None = None
) -> pd.DataFrame:
    """p_alive, expected purchases and expected spend per purchase over the horizon, and discounted CLV."""
    settings = settings or ClvSettings()
    s = summary_frame
    out = s.copy()
    cols = ["p_alive", "expected_purchases", "expected_avg_value", "clv"]
    if models.bgf is None or s.empty:
        for c in cols:
            out[c] = np.nan
        return out
    f, r, t = s["frequency"], s["recency"], s["T"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["p_alive"] = models.bgf.conditional_probability_alive(f, r, t)
        out["expected_purchases"] = models.bgf.conditional_expected_number_of_purchases_up_to_time(
            settings.horizon_units, f, r, t
        )
        if models.ggf is not None:
            out["expected_avg_value"] = models.ggf.conditional_expected_average_profit(f, s["monetary_value"])
            out["clv"] = models.ggf.customer_lifetime_value(
                models.bgf,
                f,
                r,
                t,
                s["monetary_value"],
                time=settings.horizon_months,
                discount_rate=settings.monthly_discount_rate,
                freq=settings.time_unit,
            )
        else:
            out["expected_avg_value"] = np.nan
            out["clv"] = np.nan
    return out


def holdout_check(
    orders: pd.DataFrame, as_of: pd.Timestamp, settings: ClvSettings | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Fit on purchases up to `as_of - holdout_months`, predict the holdout and compare with what happened.

    Returns per customer (calibration summary, predicted and actual repeat purchases and spend in the
    holdout), the classic table by calibration frequency (mean predicted vs actual), and totals."""
    settings = settings or ClvSettings()
    cal_end = pd.Timestamp(as_of) - pd.DateOffset(months=settings.holdout_months)
    cal = summary(orders, cal_end, settings)
    models = fit(cal, settings)
    hold = orders[(orders["date"] > cal_end) & (orders["date"] <= as_of)]
    day = hold.assign(day=hold["date"].dt.normalize()).groupby(["customer_id", "day"])["amount"].sum()
    day = day[day > 0].groupby("customer_id")
    cal["actual_purchases"] = day.size().reindex(cal.index).fillna(0)
    cal["actual_spend"] = day.sum().reindex(cal.index).fillna(0.0)
    length = (pd.Timestamp(as_of).normalize() - cal_end.normalize()).days / UNIT_DAYS[settings.time_unit]
    if models.bgf is None:
        cal["predicted_purchases"] = np.nan
        cal["predicted_spend"] = np.nan
    else:
        cal["predicted_purchases"] = models.bgf.conditional_expected_number_of_purchases_up_to_time(
            length, cal["frequency"], cal["recency"], cal["T"]
        )
        avg = (
            models.ggf.conditional_expected_average_profit(cal["frequency"], cal["monetary_value"])
            if models.ggf is not None
            else np.nan
        )
        cal["predicted_spend"] = cal["predicted_purchases"] * avg
    top = 7
    band = cal["frequency"].clip(upper=top).astype(int).astype(str).replace(str(top), f"{top}+")
    by_freq = (
        cal.groupby(band)
        .agg(
            customers=("actual_purchases", "size"),
            predicted=("predicted_purchases", "mean"),
            actual=("actual_purchases", "mean"),
        )
        .reset_index(names="calibration_frequency")
    )
    err = cal["predicted_purchases"] - cal["actual_purchases"]
    stats = {
        "calibration_end": str(cal_end.date()),
        "customers": int(len(cal)),
        "predicted_purchases": float(cal["predicted_purchases"].sum()),
        "actual_purchases": float(cal["actual_purchases"].sum()),
        "mae_purchases": float(err.abs().mean()),
        "correlation": float(cal["predicted_purchases"].corr(cal["actual_purchases"])),
        "predicted_spend": float(cal["predicted_spend"].sum()),
        "actual_spend": float(cal["actual_spend"].sum()),
    }
    return cal.reset_index(), by_freq, stats
