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


class SampleSettings(Strict):
    seed: int = 42
    customers: int = Field(5000, ge=10)
    months: int = Field(24, ge=3, le=120)
    end_date: date = date(2026, 11, 10)


class IngestSettings(Strict):
    default_country: str = Field("ES", pattern=r"^[A-Z]{2}$")
    min_date: date = date(1900, 1, 1)
    max_birth_age: int = 110
    timezone: str = "Europe/Madrid"  # offsets in timestamps are converted to this local wall time
    placeholders: list[str] = Field(default_factory=list)
    # transaction, interaction and campaign-contact dates later than the run date plus this tolerance are
    # rejected (`future_date`): one invoice typed as 2099 would otherwise become the automatic period
    future_tolerance_days: int = Field(1, ge=0)
    run_date: date | None = None  # the day a run counts as today (None: the clock)

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

    def path(self, name: str) -> Path:
        """An absolute path from the `paths:` section."""
        p = getattr(self.paths, name)
        return p if p.is_absolute() else self.root / p


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

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"`thousands` and `decimal` are both {self.decimal!r}; they must differ")
        canonical = schema.KINDS[self.kind]
        derived = schema.DERIVED.get(self.kind, set())
        for key in [*self.columns, *self.constants]:
            if key not in canonical or key in derived:
                allowed = ", ".join(c for c in canonical if c not in derived)
                raise ValueError(
                    f"unknown canonical column {key!r} for kind {self.kind!r}; expected one of: {allowed}"
                )
        missing = schema.REQUIRED[self.kind] - set(self.columns) - set(self.constants)
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
        return self

    def raw_columns(self) -> list[str]:
        """Every raw column this source reads, in mapping order."""
        cols: list[str] = []
        for raw in self.columns.values():
            cols.extend([raw] if isinstance(raw, str) else raw)
        return cols

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
    params = Path(params_dir) if params_dir else root / "params"
    path = params / "default.yaml"
    data = _read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return Settings(**data, root=root)
    except ValidationError as exc:
        raise explain_validation_error(path, exc) from None


def load_sources(params_dir: Path | str | None = None, root: Path | None = None) -> dict[str, SourceSpec]:
    """Load and validate params/sources.yaml into {name: SourceSpec}."""
    root = root or project_root()
    params = Path(params_dir) if params_dir else root / "params"
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
        "settings": settings.model_dump(mode="json", exclude={"root", "paths", "period"}),
        "sources": {n: s.model_dump(mode="json") for n, s in sorted(sources.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
