"""Data-quality audit: a scorecard per source, field and dimension, the issues to act on, and the
records each source-system owner should fix.

The rules are data (``params/quality_rules.yaml``, loaded by `load_rules`); the thresholds are
parameters (``quality:`` in ``params/default.yaml``, validated by `QualitySettings`). The stage
logic is pure: frames and settings in, frames out, no I/O (the notebook loads and saves).

Dimensions
- completeness: a value is present (`not_null`: blank fails) and is not a placeholder
  (`not_placeholder`: "N/A", "000000000", "test@test.com", which ingest nulls and counts).
- validity: format and checksum (NIF/NIE/CIF, IBAN, e-mail, phone, through the very standardisers
  ingest uses), postcode <-> province, dates in range, amounts >= 0, vocabularies, date order. The
  staged values are checked with pandera (lazy validation: every failure is collected in one pass);
  the values ingest already removed are counted from its rejects.
- uniqueness: duplicate rows (ingest rejects), duplicate persons within a source before unification
  (shared identity keys) and after it (several source ids of one source in one customer).
- consistency: a source record's birth date, tax id or name against its customer's golden record.
- timeliness: the age of a source's newest record at the end of the period; stale sources fail.
- accuracy: the city against a postcode reference table (postcodes it does not cover are not scored).

Counting: for a rule on a field, `failed` = staged values that fail the check + the ingest rejects of
that field the rule claims (`rejects:` in the table); `passed` = the staged values checked that pass.
`score` = passed / (passed + failed), in [0, 1]; `status` is green / amber / red by thresholds.
Every ingest reject is counted somewhere: a reject no rule claims gets a rule named
"ingest:<reason>".

Use (notebooks/03_quality_audit.ipynb)
    settings = QualitySettings.from_settings(load_settings())
    rules = load_rules(settings.resolve(root, "rules"))
    result = audit(staged, rejects, placeholders, specs, rules, settings, period_end=period,
                   crosswalk=crosswalk, customers=customers,
                   postcode_reference=load_postcode_reference(settings.resolve(root, "postcode_reference")))
    store.save_table(path, SCORECARD_TABLE, result.scorecard, period=period)   # trends: one query
    summary(result.scorecard, settings), heatmap_table(...)   # source x dimension
    issues(result.scorecard, result.findings, specs, settings, rules)   # red items, masked examples
    records_to_fix(result.findings, specs, rules=rules)   # {owner: frame} -> fix_file_name(owner)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helpers import privacy, schema
from helpers import standardise as std
from helpers.config import Settings, SourceSpec
from helpers.errors import ConfigError

Dimension = Literal["completeness", "validity", "uniqueness", "consistency", "timeliness", "accuracy"]
DIMENSIONS: tuple[str, ...] = (
    "completeness",
    "validity",
    "uniqueness",
    "consistency",
    "timeliness",
    "accuracy",
)
Status = Literal["green", "amber", "red"]

#: The field name of checks on a record as a whole (duplicate rows, malformed rows).
RECORD = "(record)"
#: Store tables written by the quality stage (one slice per period).
SCORECARD_TABLE = "quality_scorecard"
FRESHNESS_TABLE = "quality_freshness"

SCORECARD_COLUMNS = ["source", "field", "dimension", "rule", "passed", "failed", "score", "status", "detail"]
FINDING_COLUMNS = [
    "source",
    "field",
    "dimension",
    "rule",
    "record_id",
    "row_number",
    "source_id",
    "value",
    "expected",
    "problem",
]
FRESHNESS_COLUMNS = ["source", "rule", "column", "newest", "age_days", "stale_days", "stale"]

#: Reasons ingest gives besides the standardisers' own (helpers.standardise.REASONS).
INGEST_REASONS: tuple[str, ...] = (
    "missing_required",
    "duplicate_row",
    "malformed_row",
    "negative_quantity",
    "negative_amount",  # a source whose refunds policy makes negative amounts defects
    "out_of_range",  # outside a source's declared `ranges`
    "future_date",  # later than the run date plus ingest.future_tolerance_days
    "encoding",  # a line that does not decode in the file's encoding
    "field_too_long",
    "repeated_header",
)
#: Where a reject that no rule claims is counted.
_DEFAULT_DIMENSION = {"missing_required": "completeness", "duplicate_row": "uniqueness"}
#: Row-level reasons: the reject names no column ("*").
_ROW_REASONS = frozenset({"duplicate_row", "malformed_row"})


# ==================================================================================================
# Settings
# ==================================================================================================


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """Status bands of a score: >= green is green, >= amber is amber, else red."""

    green: float = Field(0.98, ge=0, le=1)
    amber: float = Field(0.90, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.amber > self.green:
            raise ValueError(f"amber ({self.amber}) must not be above green ({self.green})")
        return self


def _default_dimension_thresholds() -> dict[str, Thresholds]:
    return {
        "completeness": Thresholds(green=0.95, amber=0.75),
        "consistency": Thresholds(green=0.95, amber=0.85),
    }


class QualitySettings(_Strict):
    """The `quality:` section of params/default.yaml (defaults equal the shipped YAML)."""

    rules: Path = Path("params/quality_rules.yaml")
    postcode_reference: Path | None = Path("params/reference/postcodes.csv")
    thresholds: Thresholds = Thresholds()
    dimension_thresholds: dict[Dimension, Thresholds] = Field(default_factory=_default_dimension_thresholds)
    stale_days: int = Field(45, ge=0)
    stale_days_by_source: dict[str, int] = Field(default_factory=dict)
    examples: int = Field(3, ge=0, le=100)

    @field_validator("stale_days_by_source")
    @classmethod
    def _non_negative(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: d for k, d in v.items() if d < 0}
        if bad:
            raise ValueError(f"stale days must be >= 0, got {bad}")
        return v

    @classmethod
    def from_settings(cls, settings: Settings | Mapping[str, Any]) -> QualitySettings:
        """Validate `settings.quality` (or a plain mapping); ConfigError names the key and the value."""
        data = settings.quality if isinstance(settings, Settings) else settings
        try:
            return cls(**(data or {}))
        except ValidationError as exc:
            raise _config_error("params/default.yaml", exc, prefix="quality") from None

    def thresholds_for(self, dimension: str) -> Thresholds:
        return self.dimension_thresholds.get(dimension, self.thresholds)  # type: ignore[call-overload]

    def stale_days_for(self, source: str, rule_default: int | None = None) -> int:
        """quality.stale_days_by_source, else the rule's args.stale_days, else quality.stale_days."""
        if source in self.stale_days_by_source:
            return self.stale_days_by_source[source]
        return self.stale_days if rule_default is None else int(rule_default)

    def resolve(self, root: Path, name: Literal["rules", "postcode_reference"]) -> Path | None:
        """An absolute path for `rules` or `postcode_reference` (relative paths are from the project root)."""
        p = getattr(self, name)
        if p is None:
            return None
        return p if p.is_absolute() else Path(root) / p


def _config_error(origin: str, exc: ValidationError, prefix: str = "") -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (value: {value!r})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against the documented keys"
        lines.append(f"  {key}: {msg}{shown}")
    return ConfigError(f"{origin}: invalid parameters\n" + "\n".join(lines))


# ==================================================================================================
# The rule table
# ==================================================================================================

#: Checks run on the staged values with pandera: name -> required args.
PANDERA_CHECKS: dict[str, tuple[str, ...]] = {
    "tax_id": (),
    "iban": (),
    "email": (),
    "phone": (),
    "country": (),
    "postcode_province": (),
    "in_range": ("min_value", "max_value"),
    "ge": ("min_value",),
    "le": ("max_value",),
    "gt": ("min_value",),
    "lt": ("max_value",),
    "isin": ("allowed_values",),
    "str_matches": ("pattern",),
    "one_of": ("values",),
    "not_before": ("other",),
}
#: Checks computed directly (counts, groups, joins): name -> required args.
OTHER_CHECKS: dict[str, tuple[str, ...]] = {
    "not_null": (),
    "not_placeholder": (),
    "parsed": (),
    "unique_record": (),
    "unique_person": ("keys",),
    "unique_customer": (),
    "agrees_with_golden": ("compare",),
    "fresh": (),
    "postcode_city": (),
}
CHECKS: tuple[str, ...] = (*PANDERA_CHECKS, *OTHER_CHECKS)
_SELECTORS = frozenset({"@mapped", "@record", "@date", "@datetime", "@float", "@int", "@bool", "@str"})
_ALL_COLUMNS = frozenset(c for kind in schema.KINDS.values() for c in kind)
_KIND_NAMES = tuple(schema.KINDS)


class Rule(_Strict):
    """One row of the rule table (see the header of params/quality_rules.yaml)."""

    name: str = Field(min_length=1)
    dimension: Dimension
    check: str
    fields: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    kinds: list[str] | None = None
    sources: list[str] | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    rejects: list[str] = Field(default_factory=list)
    thresholds: Thresholds | None = None
    when: dict[str, Any] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _known(self) -> Rule:
        if self.when is not None:
            if self.check != "not_null":
                raise ValueError("`when` is supported by the not_null check only")
            bad = [c for c in self.when if c not in _ALL_COLUMNS]
            if bad:
                raise ValueError(f"when: unknown columns {bad}")
        if self.check not in CHECKS:
            raise ValueError(f"unknown check {self.check!r}; expected one of {list(CHECKS)}")
        required = {**PANDERA_CHECKS, **OTHER_CHECKS}[self.check]
        missing = [a for a in required if a not in self.args]
        if missing:
            raise ValueError(f"check {self.check!r} needs args {missing}")
        for f in [*self.fields, *self.exclude]:
            if f not in _SELECTORS and f not in _ALL_COLUMNS:
                raise ValueError(
                    f"unknown field {f!r}: expected a canonical column (src/helpers/schema.py) "
                    f"or one of {sorted(_SELECTORS)}"
                )
        for k in self.kinds or []:
            if k not in _KIND_NAMES:
                raise ValueError(f"unknown kind {k!r}; expected one of {list(_KIND_NAMES)}")
        known = (*std.REASONS, *INGEST_REASONS)
        for r in self.rejects:
            if r not in known:
                raise ValueError(f"unknown reject reason {r!r}; expected one of {list(known)}")
        if self.check == "agrees_with_golden" and self.args["compare"] not in ("exact", "date", "name"):
            raise ValueError(f"args.compare must be exact, date or name, got {self.args['compare']!r}")
        if self.check == "unique_person":
            keys = self.args["keys"]
            if not (isinstance(keys, list) and keys and all(isinstance(k, list) and k for k in keys)):
                raise ValueError("args.keys must be a list of keys, each a list of canonical columns")
            bad = [c for k in keys for c in k if c not in _ALL_COLUMNS]
            if bad:
                raise ValueError(f"args.keys: unknown columns {bad}")
        return self


def parse_rules(
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]], origin: str = "params/quality_rules.yaml"
) -> list[Rule]:
    """Validate a rule table ({"rules": [...]} or the list itself); ConfigError names the rule and key."""
    if isinstance(data, Mapping):
        unknown = set(data) - {"rules"}
        if unknown:
            raise ConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}; expected only `rules`")
        data = data.get("rules") or []
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{origin}: `rules` must be a non-empty list of rules")
    rules: list[Rule] = []
    for i, body in enumerate(data):
        label = f"rules[{i}]" + (
            f" ({body.get('name')})" if isinstance(body, Mapping) and body.get("name") else ""
        )
        if not isinstance(body, Mapping):
            raise ConfigError(f"{origin}: {label}: expected a mapping of rule settings")
        try:
            rules.append(Rule(**body))
        except ValidationError as exc:
            raise _config_error(origin, exc, prefix=label) from None
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{origin}: rule names must be unique; repeated: {dupes}")
    return rules


def load_rules(path: Path | str) -> list[Rule]:
    """Read and validate the rule table (params/quality_rules.yaml)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: rule table not found (quality.rules in params/default.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_rules(data, origin=str(path))


def load_postcode_reference(path: Path | str) -> pd.DataFrame:
    """Read the postcode -> city reference (columns postcode_from, postcode_to, city, aliases)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"{path}: postcode reference not found (quality.postcode_reference in params/default.yaml)"
        )
    ref = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False, encoding="utf-8")
    return postcode_reference(ref, origin=str(path))


def postcode_reference(ref: pd.DataFrame, origin: str = "postcode reference") -> pd.DataFrame:
    """Validate a reference table: 5-digit ranges that do not overlap, a city per range."""
    need = {"postcode_from", "postcode_to", "city"}
    if missing := need - set(ref.columns):
        raise ConfigError(
            f"{origin}: missing column(s) {sorted(missing)}; expected postcode_from, postcode_to, city, aliases"
        )
    out = ref.copy()
    if "aliases" not in out:
        out["aliases"] = ""
    for col in ("postcode_from", "postcode_to"):
        bad = ~out[col].astype(str).str.fullmatch(r"\d{5}")
        if bad.any():
            raise ConfigError(
                f"{origin}: {col} must be a 5-digit postcode; found {out.loc[bad, col].tolist()[:5]}"
            )
        out[col] = out[col].astype(int)
    if (out["postcode_from"] > out["postcode_to"]).any():
        raise ConfigError(f"{origin}: postcode_from is after postcode_to in some rows")
    out = out.sort_values("postcode_from", kind="stable").reset_index(drop=True)
    overlap = out["postcode_from"].to_numpy()[1:] <= out["postcode_to"].to_numpy()[:-1]
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        raise ConfigError(f"{origin}: ranges overlap: {out.loc[i, 'city']} and {out.loc[i + 1, 'city']}")
    out["aliases"] = out["aliases"].fillna("").astype(str)
    return out[["postcode_from", "postcode_to", "city", "aliases"]]


# ==================================================================================================
# Small helpers
# ==================================================================================================


def end_of_period(period: str | pd.Timestamp | Any) -> pd.Timestamp:
    """The last instant of a period: "2026-10" -> 2026-10-31 23:59:59.999999999; a day -> its end."""
    if isinstance(period, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        return pd.Period(period, "M").end_time
    ts = pd.Timestamp(period)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if ts == ts.normalize() else ts


_DATE_EXPR = re.compile(r"period_end\s*(?:([+-])\s*(\d+)\s*d)?")


def _resolve_arg(value: Any, end: pd.Timestamp, datetime_column: bool) -> Any:
    """Date arguments: "period_end", "period_end+400d", "YYYY-MM-DD" -> Timestamp."""
    if isinstance(value, str):
        m = _DATE_EXPR.fullmatch(value.strip())
        if m:
            days = int(m.group(2) or 0) * (-1 if m.group(1) == "-" else 1)
            return end + pd.Timedelta(days=days)
        if datetime_column:
            return pd.Timestamp(value)
    elif datetime_column and hasattr(value, "year"):
        return pd.Timestamp(value)
    return value


def score_status(score: pd.Series | float, thresholds: Thresholds) -> pd.Series | str | None:
    """green / amber / red for scores (None where there is no score)."""
    if isinstance(score, pd.Series):
        s = score.astype(float)
        out = np.where(s >= thresholds.green, "green", np.where(s >= thresholds.amber, "amber", "red"))
        return pd.Series(np.where(s.isna(), None, out), index=score.index, dtype=object)
    if score is None or score != score:
        return None
    return "green" if score >= thresholds.green else "amber" if score >= thresholds.amber else "red"


def _key_text(s: pd.Series) -> pd.Series:
    """Values as comparable text: trimmed, case-folded."""
    return s.astype("string").str.strip().str.casefold()


def _name_key(s: pd.Series) -> pd.Series:
    return std.name_key(s).value.astype("string")


def _as_text(s: pd.Series) -> pd.Series:
    """A column as text for the findings (dates as ISO days/datetimes)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        t = s.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(" 00:00:00", "", regex=False)
        return t.astype(object).where(s.notna(), None)
    return s.astype("string").astype(object).where(s.notna(), None)


#: Checks on identity fields that ingest may derive (full_name from given + family names): they apply
#: to a field the staged frame has even when the source does not map it.
_DERIVED_OK = frozenset({"agrees_with_golden"})


def _fields_of(rule: Rule, spec: SourceSpec, present: Iterable[str] = ()) -> list[str]:
    """The fields of `rule` that apply to a source: selectors expanded over its mapped columns."""
    if rule.kinds is not None and spec.kind not in rule.kinds:
        return []
    if rule.sources is not None and spec.name not in rule.sources:
        return []
    kind = schema.KINDS[spec.kind]
    mapped = [c for c in kind if c in spec.columns]
    out: list[str] = []
    for f in rule.fields:
        if f == "@record":
            out.append(RECORD)
        elif f == "@mapped":
            out.extend(mapped)
        elif f.startswith("@"):
            out.extend(c for c in mapped if kind[c] == f[1:])
        elif f in spec.columns or (rule.check in _DERIVED_OK and f in present):
            out.append(f)
    excluded = set(rule.exclude)
    return [f for f in dict.fromkeys(out) if f not in excluded]


def _raw_to_canonical(spec: SourceSpec) -> dict[str, list[str]]:
    """Raw column name (as ingest writes it in a reject) -> canonical columns, in mapping order."""
    out: dict[str, list[str]] = {}
    for canonical, raw in spec.columns.items():
        key = raw if isinstance(raw, str) else "+".join(raw)
        out.setdefault(key, []).append(canonical)
    for canonical in spec.constants:
        out.setdefault(f"(constant {canonical})", []).append(canonical)
    return out


def _canonical_to_raw(spec: SourceSpec, field: str) -> str:
    raw = spec.columns.get(field)
    if raw is None:
        return "*" if field == RECORD else field
    return raw if isinstance(raw, str) else "+".join(raw)


# ==================================================================================================
# Pandera checks on the staged values
# ==================================================================================================


def _ok_where_null(valid: pd.Series | np.ndarray, values: pd.Series) -> pd.Series:
    out = pd.Series(np.asarray(valid, dtype=bool), index=values.index)
    return out | values.isna().to_numpy()


def _standardiser_check(fn: Callable[..., std.Standardised], **kw) -> Callable[[pd.Series], pd.Series]:
    """A vectorised check: the value passes iff the ingest standardiser accepts it (no reason code)."""

    def check(values: pd.Series) -> pd.Series:
        result = fn(values, **kw)
        return _ok_where_null(result.reason.isna().to_numpy(), values)

    return check


def _province_keys(aliases: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """(province code, name key) pairs accepted by postcode_province."""
    pairs: set[tuple[str, str]] = set()
    for code, name in std.PROVINCES.items():
        names = [name, *name.split("/")]
        names += list(aliases.get(code, []) or [])
        keys = _name_key(pd.Series(names, dtype=object)).dropna()
        pairs.update((code, k) for k in keys)
    for code in aliases:
        if str(code) not in std.PROVINCES:
            raise ConfigError(f"postcode_province: alias code {code!r} is not a province code (01-52)")
    return pairs


def _postcode_province_check(
    frame: pd.DataFrame, args: Mapping[str, Any]
) -> Callable[[pd.Series], pd.Series]:
    accepted = _province_keys({str(k): v for k, v in (args.get("aliases") or {}).items()})
    province = frame["province"] if "province" in frame else None

    def check(postcodes: pd.Series) -> pd.Series:  # pandera may pass the non-null values only
        ok = std.postcode(postcodes).reason.isna().to_numpy() & postcodes.notna().to_numpy()
        if province is not None:
            prov = province.reindex(postcodes.index)
            code = postcodes.astype("string").str.slice(0, 2)
            has = prov.notna().to_numpy() & postcodes.notna().to_numpy()
            if has.any():
                pairs = pd.MultiIndex.from_arrays([code[has].fillna(""), _name_key(prov[has]).fillna("")])
                match = pairs.isin(list(accepted))
                sub = ok[has]
                sub &= match
                ok[has] = sub
        return _ok_where_null(ok, postcodes)

    return check


def _mixed_postcode_check(
    frame: pd.DataFrame, args: Mapping[str, Any], countries: pd.Series
) -> Callable[[pd.Series], pd.Series]:
    """Spanish records: postcode and province agree; the others: the postcode fits their country."""
    spanish_check = _postcode_province_check(frame, args)
    foreign_check = _country_check(lambda v, cc: std.postcode(v, country=cc), countries)

    def check(postcodes: pd.Series) -> pd.Series:
        spanish = countries.reindex(postcodes.index).eq("ES")
        out = pd.Series(True, index=postcodes.index)
        if spanish.any():
            out[spanish] = spanish_check(postcodes[spanish]).to_numpy()
        if (~spanish).any():
            out[~spanish] = foreign_check(postcodes[~spanish]).to_numpy()
        return out

    return check


def _one_of_check(values: Iterable[Any]) -> Callable[[pd.Series], pd.Series]:
    allowed = {str(v).strip().casefold() for v in values}

    def check(s: pd.Series) -> pd.Series:
        return _ok_where_null(_key_text(s).isin(allowed).fillna(False).to_numpy(bool), s)

    return check


def _not_before_check(frame: pd.DataFrame, other: str, by_day: bool) -> Callable[[pd.Series], pd.Series]:
    earlier = frame[other]

    def check(s: pd.Series) -> pd.Series:  # pandera may pass the non-null values only
        a, b = pd.to_datetime(s, errors="coerce"), pd.to_datetime(earlier.reindex(s.index), errors="coerce")
        if by_day:
            a, b = a.dt.normalize(), b.dt.normalize()
        valid = (a >= b).fillna(True).to_numpy(bool) | a.isna().to_numpy() | b.isna().to_numpy()
        return pd.Series(valid, index=s.index)

    return check


def _country_check(fn: Callable[[pd.Series, str], std.Standardised], countries: pd.Series):
    """A check by each record's own country (as ingest validated it)."""

    def check(values: pd.Series) -> pd.Series:  # pandera may pass the non-null values only
        result = std.by_country(fn, values, countries.reindex(values.index))
        return _ok_where_null(result.reason.isna().to_numpy(), values)

    return check


def _pandera_check(
    rule: Rule,
    field: str,
    frame: pd.DataFrame,
    kind: str,
    end: pd.Timestamp,
    ingest_country: str,
    spec: SourceSpec | None = None,
) -> tuple[pa.Check, np.ndarray] | None:
    """The pandera Check of `rule` on `field`, and the mask of the records it scores (None: not applicable).

    Tax ids, phones and postcodes are checked by each record's country (its `country`, else the
    source's, else `ingest_country`), as ingest validated them; a column the source keeps unvalidated
    (`validate: false`) is not scored by a validity check."""
    values = frame[field]
    checked = values.notna().to_numpy()
    name = f"{rule.name}:{field}"
    args = rule.args
    c = rule.check
    if (
        spec is not None
        and not spec.validated(field)
        and c in ("tax_id", "iban", "email", "phone", "country", "postcode_province")
    ):
        return None
    home = (spec.country if spec is not None else None) or ingest_country
    countries = (
        frame["country"].astype(object).where(frame["country"].notna(), home)
        if "country" in frame
        else pd.Series(home, index=frame.index, dtype=object)
    )
    if c == "tax_id":
        fn = lambda v, cc: std.tax_id(v, country=cc, also=home)  # noqa: E731
        return pa.Check(_country_check(fn, countries), name=name), checked
    if c == "iban":
        return pa.Check(_standardiser_check(std.iban), name=name), checked
    if c == "email":
        return pa.Check(_standardiser_check(std.email), name=name), checked
    if c == "phone":
        if "default_country" in args:
            countries = countries.where(
                frame["country"].notna() if "country" in frame else False, args["default_country"]
            )
        fn = lambda v, cc: std.phone(v, default_country=cc)  # noqa: E731
        return pa.Check(_country_check(fn, countries), name=name), checked
    if c == "country":
        return pa.Check(_standardiser_check(std.country), name=name), checked
    if c == "postcode_province":
        spanish = countries.eq("ES").to_numpy()
        if not (
            checked & spanish
        ).any():  # provinces are Spanish: others' postcodes by their country's format
            fn = lambda v, cc: std.postcode(v, country=cc)  # noqa: E731
            return pa.Check(_country_check(fn, countries), name=name), checked
        if not spanish.all():
            return pa.Check(_mixed_postcode_check(frame, args, countries), name=name), checked
        return pa.Check(_postcode_province_check(frame, args), name=name), checked
    if c == "one_of":
        return pa.Check(_one_of_check(args["values"]), name=name), checked
    if c == "not_before":
        other = args["other"]
        if other not in frame or not frame[other].notna().any():
            return None
        logical = schema.KINDS[kind]
        by_day = "date" in (logical.get(field), logical.get(other))
        mask = checked & frame[other].notna().to_numpy()
        return pa.Check(_not_before_check(frame, other, by_day), name=name), mask
    is_dt = pd.api.types.is_datetime64_any_dtype(values.dtype)
    resolved = {k: _resolve_arg(v, end, is_dt) for k, v in args.items()}
    builtin = {
        "in_range": pa.Check.in_range,
        "ge": pa.Check.ge,
        "le": pa.Check.le,
        "gt": pa.Check.gt,
        "lt": pa.Check.lt,
        "isin": pa.Check.isin,
        "str_matches": pa.Check.str_matches,
    }[c]
    try:
        return builtin(**resolved, name=name), checked
    except TypeError as exc:
        raise ConfigError(f"rule {rule.name}: bad args {args} for pandera check {c!r}: {exc}") from None


def _validate(
    frame: pd.DataFrame, plan: list[tuple[Rule, str, pa.Check, np.ndarray]]
) -> dict[tuple[str, str], np.ndarray]:
    """Run every planned check in one lazy pandera validation; (rule, field) -> failing row positions."""
    by_field: dict[str, list[tuple[Rule, pa.Check]]] = {}
    for rule, field, check, _ in plan:
        by_field.setdefault(field, []).append((rule, check))
    columns = {
        f: pa.Column(checks=[c for _, c in items], nullable=True, required=True)
        for f, items in by_field.items()
    }
    out: dict[tuple[str, str], np.ndarray] = {(r.name, f): np.empty(0, dtype=np.int64) for r, f, _, _ in plan}
    try:
        pa.DataFrameSchema(columns).validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        broken = cases[cases["index"].isna()]
        if len(broken):
            first = broken.iloc[0]
            raise ConfigError(
                f"quality check {first['check']!r} on column {first['column']!r} could not run: "
                f"{first['failure_case']}"
            ) from None
        for (field, number), idx in cases.groupby(["column", "check_number"])["index"]:
            rule = by_field[field][int(number)][0]
            out[(rule.name, field)] = np.unique(idx.to_numpy(dtype=np.int64))
    return out


# ==================================================================================================
# The audit
# ==================================================================================================


@dataclass
class QualityAudit:
    """What the audit returns: the scorecard, the failing records behind it, and source freshness."""

    scorecard: pd.DataFrame  # SCORECARD_COLUMNS: one row per (source, field, dimension, rule)
    findings: pd.DataFrame  # FINDING_COLUMNS: one row per failing record (raw values: mask before showing)
    freshness: pd.DataFrame  # FRESHNESS_COLUMNS: one row per source with a dated record


class _Collector:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.findings: list[pd.DataFrame] = []

    def add(
        self,
        source: str,
        field: str,
        rule: Rule | str,
        dimension: str,
        passed: int,
        failed: int,
        detail: str = "",
    ) -> None:
        self.rows.append(
            {
                "source": source,
                "field": field,
                "dimension": dimension,
                "rule": rule.name if isinstance(rule, Rule) else rule,
                "passed": int(passed),
                "failed": int(failed),
                "detail": detail,
                "_thresholds": rule.thresholds if isinstance(rule, Rule) else None,
            }
        )

    def find(self, source: str, field: str, rule: Rule | str, dimension: str, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        f = frame.copy()
        f["source"], f["field"], f["dimension"] = source, field, dimension
        f["rule"] = rule.name if isinstance(rule, Rule) else rule
        for c in FINDING_COLUMNS:
            if c not in f:
                f[c] = None
        self.findings.append(f[FINDING_COLUMNS])


def _prepare_rejects(rejects: pd.DataFrame | Mapping[str, pd.DataFrame] | None) -> pd.DataFrame:
    cols = ["source", "file", "row_number", "column", "value", "reason", "action"]
    if rejects is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    if isinstance(rejects, Mapping):
        parts = [r for r in rejects.values() if r is not None and len(r)]
        rejects = pd.concat(parts, ignore_index=True) if parts else None
        return _prepare_rejects(rejects)
    missing = {"source", "row_number", "column", "reason", "action"} - set(rejects.columns)
    if missing:
        raise ValueError(f"rejects need the columns {sorted(missing)} (as ingest writes them)")
    out = rejects.copy()
    if "value" not in out:
        out["value"] = None
    out["row_number"] = pd.to_numeric(out["row_number"], errors="coerce").astype("Int64")
    return out


def _placeholder_counts(placeholders: pd.DataFrame | None) -> dict[tuple[str, str], int]:
    if placeholders is None or not len(placeholders):
        return {}
    g = placeholders.groupby(["source", "column"])["count"].sum()
    return {(str(s), str(c)): int(v) for (s, c), v in g.items()}


def _attribute_rejects(
    rejects: pd.DataFrame, spec: SourceSpec, rules: Sequence[Rule], fields: dict[str, list[str]]
) -> pd.DataFrame:
    """Each reject of a source with the canonical field and the rule that counts it."""
    out = rejects.copy()
    if not len(out):
        out["field"], out["rule"] = pd.Series(dtype=object), pd.Series(dtype=object)
        return out
    reverse = _raw_to_canonical(spec)
    claims: dict[tuple[str, str], str] = {}
    for rule in rules:
        for f in fields[rule.name]:
            for reason in rule.rejects:
                claims.setdefault((f, reason), rule.name)
    pairs = out[["column", "reason"]].astype(str).drop_duplicates()
    decided: dict[tuple[str, str], tuple[str, str]] = {}
    for column, reason in pairs.itertuples(index=False):
        if column == "*" or reason in _ROW_REASONS:
            candidates = [RECORD]
        else:
            candidates = reverse.get(column, [column])
        field = next((c for c in candidates if (c, reason) in claims), candidates[0])
        if reason == "missing_required":  # a raw column mapped twice: the required one is missing
            req = [c for c in candidates if c in schema.REQUIRED[spec.kind]]
            field = next((c for c in req if (c, reason) in claims), req[0] if req else field)
        decided[(column, reason)] = (field, claims.get((field, reason), f"ingest:{reason}"))
    keys = list(zip(out["column"].astype(str), out["reason"].astype(str), strict=True))
    out["field"] = [decided[k][0] for k in keys]
    out["rule"] = [decided[k][1] for k in keys]
    return out


def _record_lookup(frame: pd.DataFrame) -> pd.DataFrame:
    """First staged record per row number: record_id and source_id (for findings from rejects)."""
    cols = [c for c in ("row_number", "record_id", "source_id") if c in frame]
    if "row_number" not in cols:
        return pd.DataFrame(columns=["row_number", "record_id", "source_id"])
    first = frame[cols].drop_duplicates("row_number")
    first = first.assign(row_number=pd.to_numeric(first["row_number"]).astype("Int64"))
    for c in ("record_id", "source_id"):
        if c not in first:
            first[c] = None
    return first


def _reject_findings(attributed: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    f = attributed[["row_number", "value", "reason", "field", "rule"]].merge(
        lookup, on="row_number", how="left"
    )
    return f.rename(columns={"reason": "problem"})


def audit(
    staged: Mapping[str, pd.DataFrame],
    rejects: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
    placeholders: pd.DataFrame | None,
    specs: Mapping[str, SourceSpec],
    rules: Sequence[Rule],
    settings: QualitySettings,
    *,
    period_end: Any,
    crosswalk: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    postcode_reference: pd.DataFrame | None = None,
    ingest_country: str = "ES",
) -> QualityAudit:
    """Score every rule on every source for one period.

    staged: source -> staged frame (data/processed/<period>/staged/); rejects: ingest's rejects (one
    frame, or source -> frame); placeholders: (source, column, count) as ingest counts them;
    crosswalk (source, source_id, customer_id) and customers (customer_id + golden fields) from unify,
    for duplicates after unification and consistency (None: those rules are skipped);
    postcode_reference: `load_postcode_reference` (None: accuracy is skipped); period_end: "YYYY-MM"
    or a timestamp, for freshness and date ranges.
    """
    end = end_of_period(period_end)
    unknown = sorted(set(staged) - set(specs))
    if unknown:
        raise ValueError(f"staged sources {unknown} are not declared in sources.yaml")
    rejects = _prepare_rejects(rejects)
    ph_counts = _placeholder_counts(placeholders)
    out = _Collector()
    freshness: list[dict[str, Any]] = []
    linked_values: dict[tuple[str, str], list[pd.DataFrame]] = {}

    for source, frame in staged.items():
        spec = specs[source]
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
            frame = frame.reset_index(drop=True)
        fields = {r.name: _fields_of(r, spec, frame.columns) for r in rules}
        src_rejects = _attribute_rejects(rejects[rejects["source"] == source], spec, rules, fields)
        lookup = _record_lookup(frame)
        keys = _Keys(frame)
        staged_rows = set(pd.to_numeric(frame["row_number"]).tolist()) if "row_number" in frame else set()
        row_rej = src_rejects[src_rejects["action"] == "row"]
        rows_read = (
            len(staged_rows | set(row_rej["row_number"].dropna().astype(int).tolist()))
            if len(frame) or len(row_rej)
            else 0
        )
        field_rej = src_rejects[src_rejects["action"] == "field"]
        claimed = src_rejects.groupby("rule").size().to_dict() if len(src_rejects) else {}
        plan: list[tuple[Rule, str, pa.Check, np.ndarray]] = []

        def rejects_of(rule_name: str, field: str, rej: pd.DataFrame = src_rejects) -> pd.DataFrame:
            return rej[(rej["rule"] == rule_name) & (rej["field"] == field)]

        for rule in rules:
            for field in fields[rule.name]:
                if field != RECORD and field not in frame:
                    continue
                rej = rejects_of(rule.name, field)
                c = rule.check
                if c in PANDERA_CHECKS:
                    built = _pandera_check(rule, field, frame, spec.kind, end, ingest_country, spec)
                    if built is not None:
                        plan.append((rule, field, *built))
                    elif len(rej):
                        out.add(source, field, rule, rule.dimension, 0, len(rej))
                        out.find(source, field, rule, rule.dimension, _reject_findings(rej, lookup))
                elif c == "parsed":
                    checked = int(frame[field].notna().sum())
                    if checked + len(rej):
                        out.add(
                            source,
                            field,
                            rule,
                            rule.dimension,
                            checked,
                            len(rej),
                            f"{len(rej)} rejected by ingest" if len(rej) else "",
                        )
                        out.find(source, field, rule, rule.dimension, _reject_findings(rej, lookup))
                elif c in ("not_null", "not_placeholder"):
                    _completeness(
                        out,
                        source,
                        field,
                        rule,
                        frame,
                        rej,
                        lookup,
                        field_rej,
                        ph_counts.get((source, field), 0),
                    )
                elif c == "unique_record":
                    failed = int(rej["row_number"].nunique())
                    if rows_read:
                        out.add(
                            source,
                            field,
                            rule,
                            rule.dimension,
                            rows_read - failed,
                            failed,
                            f"{failed} of {rows_read} rows read" if failed else "",
                        )
                        out.find(source, field, rule, rule.dimension, _reject_findings(rej, lookup))
                elif c == "unique_person":
                    _unique_person(out, source, field, rule, keys)
                elif c == "unique_customer":
                    if crosswalk is not None:
                        _unique_customer(out, source, field, rule, frame, crosswalk)
                elif c == "agrees_with_golden":
                    if crosswalk is not None:
                        linked = _linked_values(source, keys, field, rule, crosswalk)
                        if linked is not None and len(linked):
                            linked_values.setdefault((rule.name, field), []).append(linked)
                elif c == "postcode_city":
                    if postcode_reference is not None:
                        _postcode_city(out, source, field, rule, frame, postcode_reference)
            if rule.check == "fresh" and fields[rule.name]:
                days = settings.stale_days_for(source, rule.args.get("stale_days"))
                row = _freshness(out, source, rule, frame, fields[rule.name], end, days)
                if row is not None:
                    freshness.append(row)

        if plan:
            failures = _validate(frame, plan)
            for rule, field, _check, mask in plan:
                rej = rejects_of(rule.name, field)
                fail_pos = failures[(rule.name, field)]
                fail_pos = fail_pos[mask[fail_pos]] if len(fail_pos) else fail_pos
                checked = int(mask.sum())
                failed = len(fail_pos) + len(rej)
                if checked + len(rej) == 0:
                    continue
                detail = ", ".join(
                    p
                    for p in (
                        f"{len(fail_pos)} staged values fail" if len(fail_pos) else "",
                        f"{len(rej)} rejected by ingest" if len(rej) else "",
                    )
                    if p
                )
                out.add(source, field, rule, rule.dimension, checked - len(fail_pos), failed, detail)
                if len(fail_pos):
                    rows = frame.iloc[fail_pos]
                    other = rule.args.get("other") if rule.check == "not_before" else None
                    out.find(
                        source,
                        field,
                        rule,
                        rule.dimension,
                        pd.DataFrame(
                            {
                                "record_id": rows["record_id"].to_numpy() if "record_id" in rows else None,
                                "row_number": rows["row_number"].to_numpy() if "row_number" in rows else None,
                                "source_id": rows["source_id"].to_numpy() if "source_id" in rows else None,
                                "value": _as_text(rows[field]).to_numpy(),
                                "expected": _as_text(rows[other]).to_numpy() if other else None,
                                "problem": rule.check if not other else f"before {other}",
                            }
                        ),
                    )
                out.find(source, field, rule, rule.dimension, _reject_findings(rej, lookup))

        # rejects no rule claims are still counted
        for rule_name in sorted(set(claimed) - {r.name for r in rules}):
            rej = src_rejects[src_rejects["rule"] == rule_name]
            reason = rule_name.removeprefix("ingest:")
            dimension = _DEFAULT_DIMENSION.get(reason, "validity")
            for field, part in rej.groupby("field"):
                failed = int(part["row_number"].nunique()) if field == RECORD else len(part)
                if field == RECORD:
                    passed = max(rows_read - failed, 0)
                else:
                    passed = int(frame[field].notna().sum()) if field in frame else 0
                out.add(
                    source,
                    str(field),
                    rule_name,
                    dimension,
                    passed,
                    failed,
                    f"{failed} rejected by ingest ({reason}); no rule claims it",
                )
                out.find(source, str(field), rule_name, dimension, _reject_findings(part, lookup))

    by_name = {r.name: r for r in rules}
    for (rule_name, field), parts in linked_values.items():
        _consistency(out, pd.concat(parts, ignore_index=True), field, by_name[rule_name], customers)

    card = pd.DataFrame(
        out.rows, columns=[*SCORECARD_COLUMNS[:4], "passed", "failed", "detail", "_thresholds"]
    )
    card = card[(card["passed"] + card["failed"]) > 0].reset_index(drop=True)
    total = card["passed"] + card["failed"]
    card["score"] = (card["passed"] / total).astype(float)
    card["status"] = [
        score_status(s, t if t is not None else settings.thresholds_for(d))
        for s, t, d in zip(card["score"], card["_thresholds"], card["dimension"], strict=True)
    ]
    dim_order = {d: i for i, d in enumerate(DIMENSIONS)}
    card = card.assign(_d=card["dimension"].map(dim_order)).sort_values(
        ["source", "_d", "field", "rule"], kind="stable"
    )
    card = card[SCORECARD_COLUMNS].reset_index(drop=True)
    card["passed"] = card["passed"].astype("int64")
    card["failed"] = card["failed"].astype("int64")
    # built in a fixed order (sources as given, rules as in the table, records by row): no sort needed
    findings = (
        pd.concat(out.findings, ignore_index=True) if out.findings else pd.DataFrame(columns=FINDING_COLUMNS)
    )
    findings["row_number"] = pd.to_numeric(findings["row_number"], errors="coerce").astype("Int64")
    for c in ("record_id", "source_id", "value", "expected", "problem"):
        col = findings[c].astype(object)
        findings[c] = col.where(col.notna(), None)
    fresh = pd.DataFrame(freshness, columns=FRESHNESS_COLUMNS)
    return QualityAudit(card, findings, fresh)


def scorecard(
    staged: Mapping[str, pd.DataFrame],
    rejects,
    placeholders,
    specs: Mapping[str, SourceSpec],
    rules: Sequence[Rule],
    settings: QualitySettings,
    *,
    period_end: Any,
    crosswalk: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    postcode_reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scorecard alone (see `audit`): source, field, dimension, rule, passed, failed, score, status, detail."""
    return audit(
        staged,
        rejects,
        placeholders,
        specs,
        rules,
        settings,
        period_end=period_end,
        crosswalk=crosswalk,
        customers=customers,
        postcode_reference=postcode_reference,
    ).scorecard


# --------------------------------------------------------------------------------------------------
# Dimension by dimension
# --------------------------------------------------------------------------------------------------


def _completeness(
    out: _Collector,
    source: str,
    field: str,
    rule: Rule,
    frame: pd.DataFrame,
    rej: pd.DataFrame,
    lookup: pd.DataFrame,
    field_rejects: pd.DataFrame,
    placeholders: int,
) -> None:
    """not_null: blank (and missing required) fail, a placeholder counts as delivered; not_placeholder:
    of the delivered values, placeholders fail. A value ingest rejected as invalid is scored by validity,
    not here. Ingest counts placeholders per column before it quarantines rows: the count is capped at
    the nulls. `when` ({column: value}) scores only the records whose column equals the value."""
    values = frame[field]
    invalid_rows = field_rejects.loc[field_rejects["field"] == field, "row_number"].dropna()
    if rule.when:
        keep = np.ones(len(frame), dtype=bool)
        for col, wanted in rule.when.items():
            if col not in frame:
                return
            keep &= _key_text(frame[col]).eq(str(wanted).strip().casefold()).fillna(False).to_numpy(bool)
        values = values[keep]
        if "row_number" in frame:
            invalid_rows = invalid_rows[invalid_rows.isin(frame.loc[keep, "row_number"])]
        rej = rej.iloc[0:0]  # a quarantined row's party type is unknown
    n = len(values)
    invalid = int(invalid_rows.nunique())
    nulls = int(values.isna().sum())
    nonnull = n - nulls
    available = max(nulls - invalid, 0)
    ph = min(placeholders, available)
    blank = available - ph
    if rule.check == "not_null":
        failed = blank + len(rej)
        if nonnull + ph + failed:
            detail = ", ".join(
                p
                for p in (
                    f"{blank} blank" if blank else "",
                    f"{len(rej)} required missing (rows rejected)" if len(rej) else "",
                )
                if p
            )
            out.add(source, field, rule, rule.dimension, nonnull + ph, failed, detail)
            out.find(source, field, rule, rule.dimension, _reject_findings(rej, lookup))
            if available:
                out.find(
                    source, field, rule, rule.dimension, _blank_findings(frame, values, invalid_rows, ph)
                )
    elif nonnull + ph:
        out.add(source, field, rule, rule.dimension, nonnull, ph, f"{ph} placeholders" if ph else "")


def _blank_findings(
    frame: pd.DataFrame, values: pd.Series, invalid_rows: pd.Series, placeholders: int
) -> pd.DataFrame:
    """The records whose value is missing, for the owners' lists of records to fix. Ingest counts
    placeholders ("n/a", "-") per column, not per record, so when there were some the problem says
    the value is blank or a placeholder: either way the record needs a real value."""
    missing = values.isna().to_numpy()
    rows = frame.loc[values.index[missing]]
    if "row_number" in rows and len(invalid_rows):  # rejected as invalid: listed under validity
        rows = rows[~rows["row_number"].isin(set(invalid_rows))]
    problem = "blank or a placeholder" if placeholders else "blank"
    out = pd.DataFrame(
        {c: (rows[c].to_numpy() if c in rows else None) for c in ("record_id", "row_number", "source_id")},
        index=pd.RangeIndex(len(rows)),
    )
    out["value"], out["expected"], out["problem"] = None, None, problem
    return out


_NAME_COLUMNS = frozenset({"given_name", "family_names", "family_name_1", "family_name_2", "full_name"})


class _Keys:
    """Comparable keys of a frame's columns, each computed once per audit of a source: names
    accent- and case-free (standardise.name_key), dates as days, other text trimmed and case-folded."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cache: dict[tuple[str, str], pd.Series] = {}

    def get(self, column: str, how: str | None = None) -> pd.Series:
        how = how or ("name" if column in _NAME_COLUMNS else "auto")
        key = (column, how)
        if key not in self._cache:
            self._cache[key] = _compare_key(self.frame[column], how)
        return self._cache[key]


def _compare_key(s: pd.Series, how: str) -> pd.Series:
    """name: standardise.name_key; date (or a datetime column): the day; exact: trimmed upper case;
    auto: trimmed case-folded text."""
    if how == "name":
        return _name_key(s)
    if how == "date" or pd.api.types.is_datetime64_any_dtype(s.dtype):
        return pd.to_datetime(s, errors="coerce").dt.normalize()
    if how == "exact":
        return s.astype("string").str.strip().str.upper()
    return _key_text(s)


def _identity_key(keys: _Keys, columns: list[str]) -> pd.Series | None:
    """One integer key per record from `columns` (-1 where any is missing); None if a column is absent."""
    if any(c not in keys.frame for c in columns):
        return None
    code: np.ndarray | None = None
    for c in columns:
        part, uniques = pd.factorize(keys.get(c), use_na_sentinel=True)
        part = part.astype(np.int64)
        if code is None:
            code = part
        else:  # combine two code columns into one, then renumber densely (no overflow)
            both = np.where((code < 0) | (part < 0), -1, code * (len(uniques) + 1) + part)
            code = pd.factorize(both, use_na_sentinel=False)[0].astype(np.int64)
            code = np.where(both < 0, -1, code)
    return pd.Series(code, index=keys.frame.index)


def _components(n: int, edges_a: np.ndarray, edges_b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given undirected edges between positions."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(edges_a), dtype=np.int8), (edges_a, edges_b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _flag_duplicates(ids: pd.Series, labels: np.ndarray) -> pd.DataFrame:
    """Every id but the first (smallest) of its group: (source_id, first)."""
    g = pd.DataFrame({"source_id": ids.to_numpy(), "group": labels}).sort_values(
        ["group", "source_id"], kind="stable"
    )
    first = g.groupby("group", sort=False)["source_id"].transform("first")
    dup = g["source_id"].to_numpy() != first.to_numpy()
    return pd.DataFrame({"source_id": g["source_id"].to_numpy()[dup], "first": first.to_numpy()[dup]})


def _first_records(frame: pd.DataFrame, source_ids: np.ndarray) -> dict[str, np.ndarray | None]:
    """record_id and row_number of the first staged record of each source id."""
    if "source_id" not in frame or not len(source_ids):
        return {"record_id": None, "row_number": None}
    first = (
        frame.assign(source_id=frame["source_id"].astype(str))
        .drop_duplicates("source_id")
        .set_index("source_id")
    )
    return {
        c: first[c].reindex(source_ids).to_numpy() if c in first else None
        for c in ("record_id", "row_number")
    }


def _unique_person(out: _Collector, source: str, field: str, rule: Rule, keys: _Keys) -> None:
    """Source ids of one source that share an identity key (before unification), as components."""
    frame = keys.frame
    if "source_id" not in frame:
        return
    sid = frame["source_id"].astype("string")
    ids = pd.Series(pd.unique(sid.dropna()), dtype=object)
    if not len(ids):
        return
    pos = np.asarray(pd.Index(ids).get_indexer(sid.fillna("\x00").astype(object)), dtype=np.int64)
    edges_a, edges_b = [], []
    for key_cols in rule.args["keys"]:
        key = _identity_key(keys, list(key_cols))
        if key is None:
            continue
        pairs = pd.DataFrame({"pos": pos, "key": key.to_numpy()})
        pairs = pairs[(pairs["key"] >= 0) & (pairs["pos"] >= 0)].drop_duplicates()
        pairs = pairs[pairs.groupby("key")["pos"].transform("size").to_numpy() > 1]
        if not len(pairs):
            continue
        edges_a.append(pairs["pos"].to_numpy())
        edges_b.append(pairs.groupby("key")["pos"].transform("first").to_numpy())
    if edges_a:
        dups = _flag_duplicates(ids, _components(len(ids), np.concatenate(edges_a), np.concatenate(edges_b)))
    else:
        dups = pd.DataFrame({"source_id": pd.Series(dtype=object), "first": pd.Series(dtype=object)})
    out.add(
        source,
        field,
        rule,
        rule.dimension,
        len(ids) - len(dups),
        len(dups),
        f"{len(dups)} of {len(ids)} source ids duplicate another" if len(dups) else "",
    )
    if len(dups):
        out.find(
            source,
            field,
            rule,
            rule.dimension,
            pd.DataFrame(
                {
                    **_first_records(frame, dups["source_id"].to_numpy()),
                    "source_id": dups["source_id"].to_numpy(),
                    "value": dups["source_id"].to_numpy(),
                    "expected": dups["first"].to_numpy(),
                    "problem": "same person as " + dups["first"].astype(str).to_numpy(),
                }
            ),
        )


def _unique_customer(
    out: _Collector, source: str, field: str, rule: Rule, frame: pd.DataFrame, crosswalk: pd.DataFrame
) -> None:
    """Source ids of one source that unify put into one customer (duplicates after unification)."""
    xw = crosswalk.loc[crosswalk["source"].astype(str) == source, ["source_id", "customer_id"]].astype(str)
    xw = xw.drop_duplicates("source_id")
    if not len(xw):
        return
    labels = pd.factorize(xw["customer_id"])[0]
    dups = _flag_duplicates(xw["source_id"], labels)
    out.add(
        source,
        field,
        rule,
        rule.dimension,
        len(xw) - len(dups),
        len(dups),
        f"{len(dups)} of {len(xw)} source ids share a customer with another" if len(dups) else "",
    )
    if len(dups):
        cust = xw.set_index("source_id")["customer_id"]
        out.find(
            source,
            field,
            rule,
            rule.dimension,
            pd.DataFrame(
                {
                    **_first_records(frame, dups["source_id"].to_numpy()),
                    "source_id": dups["source_id"].to_numpy(),
                    "value": dups["source_id"].to_numpy(),
                    "expected": dups["first"].to_numpy(),
                    "problem": (
                        "customer "
                        + cust.reindex(dups["source_id"]).astype(str).to_numpy()
                        + " also holds "
                        + dups["first"].astype(str).to_numpy()
                    ),
                }
            ),
        )


def _linked_values(
    source: str, keys: _Keys, field: str, rule: Rule, crosswalk: pd.DataFrame
) -> pd.DataFrame | None:
    """Distinct (source_id, value) of a party source with its customer_id (for consistency)."""
    frame = keys.frame
    if "source_id" not in frame:
        return None
    key = keys.get(field, rule.args["compare"])
    has = key.notna().to_numpy() & frame["source_id"].notna().to_numpy()
    if not has.any():
        return None
    cols = [c for c in ("source_id", "record_id", "row_number") if c in frame]
    sub = frame.loc[has, cols].assign(_key=key[has], _pos=np.flatnonzero(has))
    sub["source_id"] = sub["source_id"].astype(str)
    sub = sub.drop_duplicates(["source_id", "_key"])
    xw = crosswalk.loc[crosswalk["source"].astype(str) == source, ["source_id", "customer_id"]].astype(str)
    linked = sub.merge(xw.drop_duplicates("source_id"), on="source_id", how="inner")
    linked["_value"] = frame[field].to_numpy()[linked["_pos"].to_numpy()]
    linked["source"], linked["rule"] = source, rule.name
    return linked.drop(columns="_pos")


def _consistency(
    out: _Collector, values: pd.DataFrame, field: str, rule: Rule, customers: pd.DataFrame | None
) -> None:
    """Each linked source record against its customer's golden value (or, without golden records, the
    most frequent value among the customer's records)."""
    compare = rule.args["compare"]
    if customers is not None and field in customers and "customer_id" in customers:
        gold = customers.loc[customers[field].notna(), ["customer_id", field]]
        gold = gold[gold["customer_id"].astype(str).isin(values["customer_id"])]
        if compare == "name":  # most golden names are a source's name: reuse the keys already computed
            known = pd.Series(values["_key"].to_numpy(), index=values["_value"].astype(str).to_numpy())
            known = known[~known.index.duplicated()]
            gold_key = known.reindex(gold[field].astype(str).to_numpy()).to_numpy(dtype=object)
            missing = pd.isna(gold_key)
            if missing.any():
                gold_key[missing] = _compare_key(gold[field][missing], compare).to_numpy(dtype=object)
        else:
            gold_key = _compare_key(gold[field], compare).to_numpy()
        gold = pd.DataFrame(
            {
                "customer_id": gold["customer_id"].astype(str).to_numpy(),
                "_gold_key": gold_key,
                "_gold": gold[field].to_numpy(),
            }
        ).dropna(subset=["_gold_key"])
    else:
        counts = values.groupby(["customer_id", "_key"]).size().rename("n").reset_index()
        counts = counts.sort_values(
            ["customer_id", "n", "_key"], ascending=[True, False, True], kind="stable"
        )
        top = counts.drop_duplicates("customer_id")
        first_val = values.drop_duplicates(["customer_id", "_key"]).set_index(["customer_id", "_key"])[
            "_value"
        ]
        gold = pd.DataFrame(
            {
                "customer_id": top["customer_id"].to_numpy(),
                "_gold_key": top["_key"].to_numpy(),
                "_gold": first_val.reindex(pd.MultiIndex.from_frame(top[["customer_id", "_key"]])).to_numpy(),
            }
        )
    m = values.merge(gold.drop_duplicates("customer_id"), on="customer_id", how="inner")
    if not len(m):
        return
    if compare == "name":
        from rapidfuzz import fuzz, process

        sim = process.cpdist(
            m["_key"].astype(str).tolist(),
            m["_gold_key"].astype(str).tolist(),
            scorer=fuzz.token_set_ratio,
            workers=-1,
        )
        agree = np.asarray(sim) >= float(rule.args.get("min_similarity", 80))
    else:
        agree = (m["_key"] == m["_gold_key"]).fillna(False).to_numpy(bool)
    m["_agree"] = agree
    for source, part in m.groupby("source", sort=True):
        bad = part[~part["_agree"]]
        out.add(
            str(source),
            field,
            rule,
            rule.dimension,
            int(part["_agree"].sum()),
            len(bad),
            f"{len(bad)} of {len(part)} linked records disagree with the golden record" if len(bad) else "",
        )
        if len(bad):
            out.find(
                str(source),
                field,
                rule,
                rule.dimension,
                pd.DataFrame(
                    {
                        "record_id": bad["record_id"].to_numpy() if "record_id" in bad else None,
                        "row_number": bad["row_number"].to_numpy() if "row_number" in bad else None,
                        "source_id": bad["source_id"].to_numpy(),
                        "value": _as_text(pd.Series(bad["_value"].to_numpy())).to_numpy(),
                        "expected": _as_text(pd.Series(bad["_gold"].to_numpy())).to_numpy(),
                        "problem": "customer "
                        + bad["customer_id"].astype(str).to_numpy()
                        + " has another value",
                    }
                ),
            )


def _freshness(
    out: _Collector,
    source: str,
    rule: Rule,
    frame: pd.DataFrame,
    fields: list[str],
    end: pd.Timestamp,
    stale_days: int,
) -> dict[str, Any] | None:
    """Age in days of the newest record (over `fields`) at the end of the period."""
    cols = [f for f in fields if f in frame and pd.api.types.is_datetime64_any_dtype(frame[f].dtype)]
    if not cols:
        return None
    newest_per = {c: frame[c].max() for c in cols}
    dated = {c: v for c, v in newest_per.items() if pd.notna(v)}
    if not dated:
        out.add(source, cols[0], rule, rule.dimension, 0, 1, "no dated record")
        return {
            "source": source,
            "rule": rule.name,
            "column": cols[0],
            "newest": pd.NaT,
            "age_days": None,
            "stale_days": stale_days,
            "stale": True,
        }
    column = max(dated, key=lambda c: dated[c])
    newest = pd.Timestamp(dated[column])
    age = int((end.normalize() - newest.normalize()).days)
    stale = age > stale_days
    when = f"{age} days before" if age >= 0 else f"{-age} days after"
    out.add(
        source,
        column,
        rule,
        rule.dimension,
        int(not stale),
        int(stale),
        f"newest {newest:%Y-%m-%d}, {when} the period end (stale after {stale_days})",
    )
    return {
        "source": source,
        "rule": rule.name,
        "column": column,
        "newest": newest,
        "age_days": age,
        "stale_days": stale_days,
        "stale": stale,
    }


def _postcode_city(
    out: _Collector, source: str, field: str, rule: Rule, frame: pd.DataFrame, reference: pd.DataFrame
) -> None:
    """City against the postcode reference: records whose postcode a range covers are scored."""
    if "postcode" not in frame or field not in frame:
        return
    has = frame["postcode"].notna() & frame[field].notna()
    sub = frame.loc[
        has, [c for c in ("record_id", "row_number", "source_id", "postcode", field) if c in frame]
    ]
    text = sub["postcode"].astype("string").str.strip()
    five = text.str.fullmatch(r"\d{5}").fillna(False).astype(bool)
    code = pd.to_numeric(text.where(five), errors="coerce")
    sub = sub.assign(_code=code).dropna(subset=["_code"])
    if not len(sub):
        return
    ref = reference.reset_index(drop=True).assign(_range=lambda r: np.arange(len(r)))
    sub = sub.assign(_code=sub["_code"].astype("int64"), _pos=np.arange(len(sub))).sort_values("_code")
    hit = pd.merge_asof(
        sub,
        ref[["postcode_from", "postcode_to", "_range", "city"]].rename(columns={"city": "_ref_city"}),
        left_on="_code",
        right_on="postcode_from",
        direction="backward",
    )
    covered = hit["postcode_to"].notna() & (hit["_code"] <= hit["postcode_to"])
    hit = hit[covered.to_numpy()]
    if not len(hit):
        return
    names = ref[["_range", "city", "aliases"]].copy()
    names["name"] = names["city"] + "|" + names["aliases"]
    accepted = names.assign(name=names["name"].str.split("|")).explode("name")
    accepted = accepted[accepted["name"].str.strip() != ""]
    accepted_keys = pd.MultiIndex.from_arrays(
        [accepted["_range"].to_numpy(), _name_key(accepted["name"]).to_numpy()]
    )
    keys = pd.MultiIndex.from_arrays(
        [hit["_range"].astype(int).to_numpy(), _name_key(hit[field]).fillna("").to_numpy()]
    )
    ok = keys.isin(accepted_keys)
    bad = hit[~ok]
    out.add(
        source,
        field,
        rule,
        rule.dimension,
        int(ok.sum()),
        len(bad),
        f"{len(hit)} of {int(has.sum())} records with a postcode covered by the reference",
    )
    if len(bad):
        bad = bad.sort_values("_pos")
        out.find(
            source,
            field,
            rule,
            rule.dimension,
            pd.DataFrame(
                {
                    "record_id": bad["record_id"].to_numpy() if "record_id" in bad else None,
                    "row_number": bad["row_number"].to_numpy() if "row_number" in bad else None,
                    "source_id": bad["source_id"].to_numpy() if "source_id" in bad else None,
                    "value": bad[field].astype(str).to_numpy(),
                    "expected": bad["_ref_city"].to_numpy(),
                    "problem": "postcode "
                    + bad["postcode"].astype(str).to_numpy()
                    + " is in "
                    + bad["_ref_city"].to_numpy(),
                }
            ),
        )


# ==================================================================================================
# Summaries, issues, records to fix
# ==================================================================================================


def summary(
    card: pd.DataFrame, settings: QualitySettings, *, by: Sequence[str] = ("source", "dimension")
) -> pd.DataFrame:
    """Score per (source, dimension) (add "period" to `by` for trends), its status and the weakest rule.

    Rules are pooled per field first: a field's checked values are the largest population among its
    rules of that dimension, its failures the sum of their failures (capped at that population), so
    that "not_null" and "not_placeholder" together give the share of values present and real. Then
    fields are pooled: score = 1 - failed / checked over the fields of the dimension.
    """
    by = [c for c in by if c in card.columns]
    cols = [*by, "passed", "failed", "score", "status", "worst_field", "worst_rule", "worst_score"]
    if not len(card):
        return pd.DataFrame(columns=cols)
    per_field = (
        card.assign(_checked=card["passed"] + card["failed"])
        .groupby([*by, "field"], sort=True)
        .agg(failed=("failed", "sum"), checked=("_checked", "max"))
    )
    per_field["failed"] = per_field[["failed", "checked"]].min(axis=1)
    out = per_field.groupby(level=list(range(len(by))), sort=True)[["failed", "checked"]].sum().reset_index()
    out["passed"] = out["checked"] - out["failed"]
    out["score"] = (out["passed"] / out["checked"]).astype(float)
    worst = card.sort_values(["score", "failed"], ascending=[True, False], kind="stable").drop_duplicates(by)
    worst = worst[[*by, "field", "rule", "score"]].rename(
        columns={"field": "worst_field", "rule": "worst_rule", "score": "worst_score"}
    )
    out = out.merge(worst, on=by, how="left")
    if "dimension" in out:
        out["status"] = [
            score_status(s, settings.thresholds_for(d))
            for s, d in zip(out["score"], out["dimension"], strict=True)
        ]
    else:
        out["status"] = score_status(out["score"], settings.thresholds)
    return out[cols]


def heatmap_table(card: pd.DataFrame, settings: QualitySettings) -> pd.DataFrame:
    """Score per source (rows) × dimension (columns), for the heatmap; NaN where nothing was checked."""
    s = summary(card, settings)
    table = s.pivot(index="source", columns="dimension", values="score")
    return table.reindex(columns=[d for d in DIMENSIONS if d in table.columns])


def masked_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings with `value` and `expected` masked by their field (privacy.PII_COLUMNS); a whole raw
    line (field "(record)") shows only its length."""
    out = findings.copy()
    kinds = out["field"].replace({RECORD: "text"})  # a malformed raw line may hold anything
    for col in ("value", "expected"):
        out[col] = privacy.mask_values(out[col], kinds)
    return out


def _example_text(rows: pd.DataFrame) -> str:
    parts = []
    for r in rows.itertuples(index=False):
        where = f"row {r.row_number}" if pd.notna(r.row_number) else ""
        if r.source_id is not None and str(r.source_id) != str(r.value):
            where += f" (id {r.source_id})"
        what = "" if r.value is None else f"{r.value!s}"
        if r.expected is not None:
            what += f" vs {r.expected}"
        parts.append(" ".join(p for p in (where.strip(), what, f"[{r.problem}]" if r.problem else "") if p))
    return "; ".join(parts)


def issues(
    card: pd.DataFrame,
    findings: pd.DataFrame,
    specs: Mapping[str, SourceSpec],
    settings: QualitySettings,
    rules: Sequence[Rule] | None = None,
) -> pd.DataFrame:
    """The red items, worst first: count, the source and its owner to fix it, and a few masked examples."""
    red = card[card["status"] == "red"].copy()
    cols = [
        "source",
        "system",
        "owner",
        "dimension",
        "field",
        "rule",
        "failed",
        "checked",
        "score",
        "description",
        "examples",
    ]
    if not len(red):
        return pd.DataFrame(columns=cols)
    red["checked"] = red["passed"] + red["failed"]
    red["system"] = red["source"].map(lambda s: specs[s].system if s in specs else None)
    red["owner"] = red["source"].map(lambda s: specs[s].owner if s in specs else None)
    text = {r.name: r.description for r in (rules or [])}
    red["description"] = [text.get(r) or d for r, d in zip(red["rule"], red["detail"], strict=True)]
    n = settings.examples
    examples = {}
    if len(findings) and n:
        keys = ["source", "field", "rule"]
        wanted = pd.MultiIndex.from_frame(red[keys])
        top = (
            findings[pd.MultiIndex.from_frame(findings[keys]).isin(wanted)].groupby(keys, sort=False).head(n)
        )
        examples = {k: _example_text(g) for k, g in masked_findings(top).groupby(keys, sort=False)}
    red["examples"] = [
        examples.get((s, f, r)) or d
        for s, f, r, d in zip(red["source"], red["field"], red["rule"], red["detail"], strict=True)
    ]
    red = red.sort_values(["failed", "score"], ascending=[False, True], kind="stable")
    return red[cols].reset_index(drop=True)


def records_to_fix(
    findings: pd.DataFrame,
    specs: Mapping[str, SourceSpec],
    *,
    mask: bool = True,
    rules: Sequence[Rule] | None = None,
) -> dict[str, pd.DataFrame]:
    """Failing records grouped by the owner of their source system (sources.yaml `owner`): one table
    per owner, to send as a CSV. Values are masked unless `mask=False`."""
    cols = [
        "owner",
        "system",
        "source",
        "file",
        "row_number",
        "record_id",
        "source_id",
        "column",
        "field",
        "dimension",
        "rule",
        "problem",
        "value",
        "expected",
    ]
    if not len(findings):
        return {}
    f = masked_findings(findings) if mask else findings.copy()
    f = f[f["source"].isin(list(specs))].copy()
    f["owner"] = f["source"].map(lambda s: specs[s].owner)
    f["system"] = f["source"].map(lambda s: specs[s].system)
    f["file"] = f["source"].map(lambda s: specs[s].path or specs[s].location(Path(".")))
    f["column"] = [_canonical_to_raw(specs[s], fl) for s, fl in zip(f["source"], f["field"], strict=True)]
    if rules:
        text = {r.name: r.description for r in rules}
        f["problem"] = [
            f"{text[r]} ({p})" if text.get(r) and p else text.get(r) or p
            for r, p in zip(f["rule"], f["problem"], strict=True)
        ]
    f = f.sort_values(["source", "row_number", "field", "rule"], kind="stable", na_position="last")
    return {str(owner): part[cols].reset_index(drop=True) for owner, part in f.groupby("owner", sort=True)}


def fix_file_name(owner: str) -> str:
    """A file name for an owner's CSV: "Sales operations" -> "fix_sales_operations.csv"."""
    ascii_name = unicodedata.normalize("NFKD", owner).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_") or "unassigned"
    return f"fix_{slug}.csv"
