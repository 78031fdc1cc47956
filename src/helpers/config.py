"""Parameters: `params/default.yaml` and `params/sources.yaml`, validated on load into typed objects.

An error names the file, the key, the value and what was expected, so that an analyst adapting the
product to their company can fix the YAML without reading Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helpers import schema
from helpers.errors import ConfigError

Kind = Literal["party", "transaction", "interaction", "campaign_contact", "opportunity", "product"]
Format = Literal["csv", "excel", "json", "jsonl", "parquet", "sql"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(Strict):
    raw: Path = Path("data/raw")
    processed: Path = Path("data/processed")
    truth: Path = Path("data/sample_truth")
    reports: Path = Path("reports")
    store: Path = Path("data/processed/scv.duckdb")


#: The generated sample companies (`scv sample --company NAME`; sample.company in params).
SAMPLE_COMPANIES = ("default", "harbour")


class SampleSettings(Strict):
    # default: the Spanish retailer (helpers.sample_data); harbour: a British homeware shop with other
    # exports (helpers.sample_harbour), run with PARAMS=params/companies/harbour
    company: Literal["default", "harbour"] = "default"
    seed: int = 42
    customers: int = Field(5000, ge=10)
    months: int = Field(24, ge=3, le=120)
    end_date: date = date(2026, 11, 10)


def _iso_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code that exists (pycountry), upper case."""
    import pycountry

    code = str(value).strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(
            f"{value!r} is not an ISO 3166-1 alpha-2 country code (two letters, e.g. ES, PT, GB, US, AU)"
        )
    return code


class IngestSettings(Strict):
    # the country of the records when a source sets none: phones without a prefix, tax ids (python-stdnum
    # for that country), postcodes; a source's own `country` and a record's country column win
    default_country: str = "ES"
    min_date: date = date(1900, 1, 1)
    max_birth_age: int = 110
    timezone: str = "Europe/Madrid"  # offsets in timestamps are converted to this local wall time
    placeholders: list[str] = Field(default_factory=list)
    # extra names of countries (alias -> ISO alpha-2), on top of ISO 3166 names and codes in many languages
    country_aliases: dict[str, str] = Field(default_factory=dict)
    # transaction, interaction and campaign-contact dates later than the run date plus this tolerance are
    # rejected (`future_date`): one invoice typed as 2099 would otherwise become the automatic period
    future_tolerance_days: int = Field(1, ge=0)
    run_date: date | None = None  # the day a run counts as today (None: the clock)

    @field_validator("default_country")
    @classmethod
    def _country(cls, v: str) -> str:
        return _iso_country(v)

    @field_validator("country_aliases")
    @classmethod
    def _aliases(cls, v: dict[str, str]) -> dict[str, str]:
        return {str(alias): _iso_country(code) for alias, code in v.items()}

    def latest_event(self) -> datetime:
        """The latest moment an event (an invoice, a ticket) may be dated: the end of the run date plus
        the tolerance, in local wall time."""
        today = self.run_date or datetime.now(ZoneInfo(self.timezone)).date()
        return datetime.combine(today + timedelta(days=self.future_tolerance_days), time.max)


class RunSettings(Strict):
    """How the runner executes the notebooks (helpers.pipeline)."""

    # notebooks executed at once: a stage starts as soon as the stages it reads have finished
    # (quality runs beside metrics), and the audience reports execute side by side; 1 = in order
    workers: int = Field(2, ge=1, le=16)


class Settings(Strict):
    """Everything in params/default.yaml, with paths resolved against the project root."""

    paths: Paths = Paths()
    period: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    run: RunSettings = RunSettings()
    sample: SampleSettings = SampleSettings()
    ingest: IngestSettings = IngestSettings()
    # Later stages own their sections; they are validated by the stage's own model when used.
    unify: dict[str, Any] = Field(default_factory=dict)
    quality: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    segments: dict[str, Any] = Field(default_factory=dict)
    campaigns: dict[str, Any] = Field(default_factory=dict)
    reports: dict[str, Any] = Field(default_factory=dict)

    root: Path = Path(".")
    params: Path = Path("params")  # the folder these parameters were read from (PARAMS / SCV_PARAMS)

    def params_file(self, name: str) -> Path:
        """A file of the parameter folder in use (params/, or the one SCV_PARAMS names)."""
        folder = self.params if self.params.is_absolute() else self.root / self.params
        return folder / name

    def path(self, name: str) -> Path:
        """An absolute path from the `paths:` section."""
        p = getattr(self.paths, name)
        return p if p.is_absolute() else self.root / p


class Refunds(Strict):
    """What a negative quantity or amount on a transaction line means, per source."""

    # refund: the line is a return, booked with a positive quantity and a negative amount;
    # defect: the line is quarantined (reason negative_quantity / negative_amount)
    negative_quantity: Literal["refund", "defect"] = "defect"
    negative_amount: Literal["refund", "defect"] = "refund"


#: Canonical columns whose validation a source may switch off (`validate: {column: false}`): the value
#: is then kept as delivered text (trimmed; an identifier also without spaces, dots and dashes).
VALIDATABLE = ("tax_id", "iban", "email", "phone", "postcode", "country")
#: Logical types a `ranges:` entry can bound.
RANGED_TYPES = ("float", "int", "date", "datetime")
#: How many rows from the top `find_header` looks at.
FIND_HEADER_ROWS = 50


class SourceSpec(Strict):
    """One source system table, as declared in params/sources.yaml."""

    name: str
    kind: Kind
    system: str
    owner: str = "unassigned"
    trust_rank: int = Field(ge=1)
    format: Format
    path: str | None = None
    url: str | None = None
    query: str | None = None
    encoding: str | None = None
    delimiter: str = ","
    decimal: Literal[".", ","] = "."
    thousands: str | None = None
    date_format: str | None = None
    dayfirst: bool = False
    sheet: str | int | None = None
    record_path: str | None = None
    party_source: str | None = None
    columns: dict[str, str | list[str]]
    constants: dict[str, Any] = Field(default_factory=dict)
    # --- layout of CSV and Excel files (title rows, a units row, a "Total" footer)
    header_row: int | None = Field(None, ge=1)  # 1-based row (Excel) or line (CSV) of the header
    find_header: list[str] | None = None  # or: the first row holding all these column names
    skip_rows: int = Field(0, ge=0)  # rows right after the header that are not records
    footer_rows: int = Field(0, ge=0)  # rows at the end that are not records (totals)
    # --- which rows and what they mean
    row_filter: str | None = None  # an expression (helpers.expressions): rows where it is false are left out
    expressions: dict[str, str] = Field(default_factory=dict)  # canonical column: expression over raw columns
    value_maps: dict[str, dict[Any, Any]] = Field(default_factory=dict)  # canonical column: {raw: value}
    ranges: dict[str, list[Any]] = Field(default_factory=dict)  # canonical column: [min, max] (null = open)
    validate_: dict[str, bool] = Field(default_factory=dict, alias="validate")  # canonical column: false
    refunds: Refunds | None = None  # transaction sources
    country: str | None = None  # ISO alpha-2 of this source's records (default: ingest.default_country)
    extra_columns: dict[str, str] = Field(default_factory=dict)  # name in the store: raw column

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("path")
    @classmethod
    def _inside_raw(cls, v: str | None) -> str | None:
        if v is not None and (Path(v).is_absolute() or ".." in Path(v).parts or "\x00" in v):
            raise ValueError(
                "a path is relative to paths.raw (data/raw/), without '..': the sources are exports there"
            )
        return v

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError("a delimiter is one character, e.g. ',' or ';' or '\\t'")
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return None if v is None else _iso_country(v)

    @field_validator("extra_columns", mode="before")
    @classmethod
    def _extra_list(cls, v: Any) -> Any:
        if isinstance(v, list):  # [credit_limit, segment]: kept under their own names
            return {str(c): str(c) for c in v}
        return v

    @field_validator("ranges", mode="before")
    @classmethod
    def _range_pairs(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for key, bounds in v.items():
                if isinstance(bounds, dict) and set(bounds) <= {"min", "max"}:
                    bounds = [bounds.get("min"), bounds.get("max")]
                out[key] = bounds
            return out
        return v

    def mapped(self) -> list[str]:
        """Canonical columns read from the data: by a raw column or by an expression."""
        return [*self.columns, *(c for c in self.expressions if c not in self.columns)]

    def validated(self, column: str) -> bool:
        return self.validate_.get(column, True)

    def refund_policy(self) -> Refunds:
        return self.refunds or Refunds()

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"`thousands` and `decimal` are both {self.decimal!r}; they must differ")
        canonical = schema.KINDS[self.kind]
        derived = schema.DERIVED.get(self.kind, set())
        allowed = ", ".join(c for c in canonical if c not in derived)
        for key in [*self.columns, *self.constants, *self.expressions]:
            if key not in canonical or key in derived:
                raise ValueError(
                    f"unknown canonical column {key!r} for kind {self.kind!r}; expected one of: {allowed}"
                )
        both = sorted(set(self.columns) & set(self.expressions))
        if both:
            raise ValueError(
                f"{both} are mapped in both `columns` and `expressions`; keep one (an expression "
                "computes the column from raw columns)"
            )
        missing = schema.REQUIRED[self.kind] - set(self.mapped()) - set(self.constants)
        if missing:
            raise ValueError(f"a {self.kind} source must map {sorted(missing)} in `columns`")
        if self.format == "sql":
            if not (self.url and self.query):
                raise ValueError("an sql source needs `url` and `query`")
        elif not self.path:
            raise ValueError(f"a {self.format} source needs `path` (relative to paths.raw)")
        if self.kind != "party" and self.kind != "product" and not self.party_source:
            raise ValueError(
                f"a {self.kind} source needs `party_source`: the party source its party_id refers to"
            )
        layout = [k for k in ("header_row", "find_header") if getattr(self, k)]
        layout += [k for k in ("skip_rows", "footer_rows") if getattr(self, k)]
        if layout and self.format not in ("csv", "excel"):
            raise ValueError(f"{layout} apply to csv and excel sources, not {self.format}")
        if self.header_row and self.find_header:
            raise ValueError("set either `header_row` or `find_header`, not both")
        if self.find_header is not None and not [c for c in self.find_header if str(c).strip()]:
            raise ValueError(
                "`find_header` lists the column names the header row holds, e.g. [Cliente, Fecha]"
            )
        from helpers import expressions

        for key, text in [("row_filter", self.row_filter)] + [
            (f"expressions.{c}", e) for c, e in self.expressions.items()
        ]:
            if text is None:
                continue
            try:
                parsed = expressions.parse(text)
            except expressions.ExpressionError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if key == "row_filter" and parsed.result_kind() != "bool":
                raise ValueError(
                    f"row_filter: {text!r} is not a condition; write a comparison, e.g. Estado <> 'Anulado'"
                )
            if key != "row_filter":
                column = key.split(".", 1)[1]
                kind = parsed.result_kind()
                logical = canonical[column]
                if kind == "bool" and logical != "bool":
                    raise ValueError(f"{key}: {text!r} is a condition (true/false) but {column} is {logical}")
        mapped = set(self.mapped())
        for section, keys in (
            ("value_maps", self.value_maps),
            ("ranges", self.ranges),
            ("validate", self.validate_),
        ):
            for key in keys:
                if key not in mapped:
                    raise ValueError(
                        f"{section}.{key}: {key!r} is not mapped by this source (in `columns` or "
                        f"`expressions`); mapped: {sorted(mapped)}"
                    )
        for key, bounds in self.ranges.items():
            logical = canonical[key]
            if logical not in RANGED_TYPES:
                raise ValueError(f"ranges.{key}: {key} is {logical}; ranges bound numbers and dates")
            if not isinstance(bounds, list) or len(bounds) != 2 or bounds == [None, None]:
                raise ValueError(f"ranges.{key}: expected [min, max] (null for an open side), got {bounds!r}")
            lo, hi = bounds
            if logical in ("float", "int"):
                for b in bounds:
                    if b is not None and (isinstance(b, bool) or not isinstance(b, int | float)):
                        raise ValueError(f"ranges.{key}: {b!r} is not a number")
            else:
                for b in bounds:
                    if b is not None and not isinstance(b, date):
                        raise ValueError(f"ranges.{key}: {b!r} is not a date (YYYY-MM-DD)")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"ranges.{key}: min {lo!r} is above max {hi!r}")
        for key, on in self.validate_.items():
            if not on and key not in VALIDATABLE:
                raise ValueError(
                    f"validate.{key}: only {list(VALIDATABLE)} can be kept unvalidated; {key} is parsed "
                    "by its type"
                )
        for key, table in self.value_maps.items():
            if not isinstance(table, dict) or not table:
                raise ValueError(f"value_maps.{key}: expected a mapping of raw value -> value, got {table!r}")
        if self.refunds is not None and self.kind != "transaction":
            raise ValueError("`refunds` applies to transaction sources only")
        clash = sorted(set(self.extra_columns) & set(canonical))
        if clash:
            raise ValueError(
                f"extra_columns {clash} are canonical column names; map them in `columns`, or give the "
                "extra column another name"
            )
        for name in self.extra_columns:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(
                    f"extra_columns: {name!r} is not a valid name for the store (letters, digits, _), "
                    "e.g. credit_limit: LimiteCredito"
                )
        return self

    def raw_columns(self) -> list[str]:
        """Every raw column this source maps by name, in mapping order."""
        cols: list[str] = []
        for raw in self.columns.values():
            cols.extend([raw] if isinstance(raw, str) else raw)
        return cols

    def read_columns(self) -> list[str]:
        """Every raw column the source reads: mapped, in expressions and the row filter, and extra."""
        from helpers import expressions

        cols = self.raw_columns()
        for text in [*self.expressions.values(), *([self.row_filter] if self.row_filter else [])]:
            cols.extend(expressions.parse(text).columns)
        cols.extend(self.extra_columns.values())
        return list(dict.fromkeys(cols))

    def location(self, raw_dir: Path) -> str:
        """Where the data comes from, for messages: a file path, or the SQL url without password."""
        if self.format == "sql":
            return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url or "")
        return str(raw_dir / (self.path or ""))


def project_root(start: Path | None = None) -> Path:
    """The folder holding pyproject.toml and params/ (works from notebooks/ and from the root)."""
    env = os.environ.get("SCV_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in [here, *here.parents]:
        if (candidate / "params" / "default.yaml").exists() and (candidate / "pyproject.toml").exists():
            return candidate
    raise ConfigError(f"cannot find the project root (a folder with params/default.yaml) from {here}")


def params_folder(root: Path) -> Path:
    """The parameter folder: $SCV_PARAMS (relative to the project root; `make report PARAMS=...` sets
    it) when set, else params/."""
    env = os.environ.get("SCV_PARAMS")
    if env:
        folder = Path(env)
        folder = folder if folder.is_absolute() else root / folder
        if not (folder / "default.yaml").exists():
            raise ConfigError(f"SCV_PARAMS={env}: no default.yaml in {folder}")
        return folder
    return root / "params"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, found {type(data).__name__}")
    return data


def explain_validation_error(path: Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (value: {value!r})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against the documented keys"
        lines.append(f"  {key}: {msg}{shown}")
    return ConfigError(f"{path}: invalid parameters\n" + "\n".join(lines))


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _inherited(path: Path, data: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """`inherit: ../../default.yaml` at the top of a default.yaml: that file's settings, with this
    file's on top (mappings merged key by key, everything else replaced)."""
    base = data.pop("inherit", None)
    if base is None:
        return data
    if depth > 5:
        raise ConfigError(f"{path}: inherit: too many levels (a loop?)")
    base_path = (path.parent / str(base)).resolve()
    if not base_path.exists():
        raise ConfigError(f"{path}: inherit: {base!r} not found (a path relative to {path.parent})")
    return _merged(_inherited(base_path, _read_yaml(base_path), depth + 1), data)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


def load_settings(
    params_dir: Path | str | None = None, overrides: dict[str, Any] | None = None, root: Path | None = None
) -> Settings:
    """Load and validate params/default.yaml; `overrides` are dotted keys (``{"period": "2026-09"}``)."""
    root = root or project_root()
    params = Path(params_dir) if params_dir else params_folder(root)
    path = params / "default.yaml"
    data = _inherited(path, _read_yaml(path))
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return Settings(**data, root=root, params=params)
    except ValidationError as exc:
        raise explain_validation_error(path, exc) from None


def load_sources(params_dir: Path | str | None = None, root: Path | None = None) -> dict[str, SourceSpec]:
    """Load and validate params/sources.yaml into {name: SourceSpec}."""
    root = root or project_root()
    params = Path(params_dir) if params_dir else params_folder(root)
    path = params / "sources.yaml"
    data = _read_yaml(path)
    unknown = set(data) - {"sources"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected only `sources`")
    raw = data.get("sources")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: `sources` must be a non-empty mapping of source name -> settings")
    specs: dict[str, SourceSpec] = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: sources.{name}: expected a mapping of settings")
        try:
            specs[name] = SourceSpec(name=name, **body)
        except ValidationError as exc:
            raise explain_validation_error(path, exc, prefix=f"sources.{name}") from None
    for spec in specs.values():
        ref = spec.party_source
        if ref is not None and (ref not in specs or specs[ref].kind != "party"):
            parties = sorted(n for n, s in specs.items() if s.kind == "party")
            raise ConfigError(
                f"{path}: sources.{spec.name}.party_source: {ref!r} is not a party source; expected one of {parties}"
            )
    return specs


def expand_env(text: str, extra: dict[str, str] | None = None) -> str:
    """Replace ${VAR} with environment variables (credentials never live in committed YAML)."""
    env = {**os.environ, **(extra or {})}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ConfigError(f"environment variable {name} is not set (used in a source url)")
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, text)


def literal_passwords(sources: dict[str, SourceSpec]) -> list[str]:
    """A warning for each source whose `url` holds a password typed into params/sources.yaml rather
    than a ${VARIABLE} from the environment (a committed file would carry the secret)."""
    warnings = []
    for spec in sources.values():
        m = re.search(r"//[^:/@]+:([^@]+)@", spec.url or "")
        if m and not re.fullmatch(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\})+", m.group(1)):
            warnings.append(
                f"warning: sources.{spec.name}.url in params/sources.yaml holds a literal password; use "
                "${VARIABLE} (set in the environment or a git-ignored .env) so that it never reaches git"
            )
    return warnings


def fingerprint(settings: Settings, sources: dict[str, SourceSpec]) -> str:
    """sha256 of the parameters that shape a run (for the manifest); paths are not part of it."""
    payload = {
        "settings": settings.model_dump(mode="json", exclude={"root", "paths", "period", "params"}),
        "sources": {n: s.model_dump(mode="json") for n, s in sorted(sources.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
