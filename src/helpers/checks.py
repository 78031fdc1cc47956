"""`scv check`: everything a first run would trip on, told in seconds, before the long run.

1. every section of params/default.yaml through the model of the stage that owns it (unknown keys,
   typos, types), params/sources.yaml, params/quality_rules.yaml and params/offers.yaml;
2. every source opened as configured (header row, layout, sheet), each raw column it reads checked to
   exist, its first rows mapped and standardised (a preview of up to PREVIEW_ROWS records), five of
   them shown, and the share of values that would be rejected per column, with the likely fix;
3. which stages and report sections will be empty for lack of data (helpers.coverage);
4. the offers against the categories and products in the data.

Each finding names the file, the key, the value and the fix. Errors make `scv check` exit non-zero;
warnings do not.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from helpers import coverage
from helpers.config import (
    Settings,
    SourceSpec,
    explain_validation_error,
    literal_passwords,
    load_settings,
    load_sources,
)
from helpers.errors import ConfigError, ScvError

#: Records read per source for the preview (the file's head; a larger file is cut there).
PREVIEW_ROWS = 2000
#: Files above this size are cut to their first PREVIEW_ROWS lines before the preview parse.
CUT_ABOVE_BYTES = 1 << 20
#: A column whose values would be rejected in at least this share of the previewed records is an
#: error (a wrong column, a wrong format, a missing setting), not a data problem.
ERROR_SHARE = 0.5
#: ... and from this share a warning (below it, the share is only shown in the source's table).
WARN_SHARE = 0.05

#: Reject reason -> the likely fix, for the analyst.
FIXES = {
    "invalid_tax_id": "records of another country? set `country` on the source or ingest.default_country; "
    "an id that is no tax id: `validate: {tax_id: false}`",
    "invalid_postcode": "set the source's `country` (postcodes are checked by country), or `validate: {postcode: false}`",
    "invalid_phone": "set the source's `country` (numbers without a prefix are read as that country's)",
    "invalid_country": "add the name to ingest.country_aliases in params/default.yaml, e.g. {Holanda: NL}",
    "invalid_date": "set `date_format` (strptime, e.g. '%d/%m/%Y') or `dayfirst: true`",
    "date_out_of_range": "check `date_format` (day and month swapped?) and ingest.min_date",
    "invalid_number": "check `decimal` and `thousands`; an amount from quantity x price: "
    "`expressions: {amount: 'Quantity * UnitPrice'}`",
    "invalid_bool": "map the labels: `value_maps: {column: {S: true, N: false}}`",
    "invalid_email": "the values are not e-mail addresses: check the mapped column",
    "invalid_iban": "the values are not IBANs: check the mapped column, or `validate: {iban: false}`",
    "missing_required": "map the column that holds it, or check `header_row` / `find_header`",
    "negative_quantity": "negative quantities that are returns: `refunds: {negative_quantity: refund}`",
    "negative_amount": "negative amounts that are refunds: `refunds: {negative_amount: refund}`",
    "out_of_range": "values outside `ranges`: check the range or the column",
    "duplicate_row": "exact repeats of a row in the file",
    "malformed_row": "rows with the wrong number of fields: check `delimiter`, `encoding`, `header_row`",
}


@dataclass
class Finding:
    level: str  # error | warning | info
    where: str  # file and key, e.g. "params/sources.yaml: sources.erp.columns.amount"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class SourcePreview:
    """What the preview of one source found."""

    name: str
    rows: int = 0
    seconds: float = 0.0
    shown: pd.DataFrame | None = None  # five mapped and standardised records
    reject_shares: pd.DataFrame | None = None  # column, reason, rejected, share, examples
    staged: pd.DataFrame | None = None


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    previews: dict[str, SourcePreview] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def add(self, level: str, where: str, message: str) -> None:
        self.findings.append(Finding(level, where, message))


# --------------------------------------------------------------------------------------------------
# 1. Parameters: every section, eagerly
# --------------------------------------------------------------------------------------------------


def _section_validators() -> dict[str, Callable[[Settings], Any]]:
    """Section of params/default.yaml -> the stage model that validates it (imported here, not in
    config, so that config stays free of the stage modules)."""
    from helpers import campaigns, metrics, quality, render, segments, unify

    return {
        "unify": lambda s: unify.UnifySettings(**s.unify),
        "quality": lambda s: quality.QualitySettings.from_settings(s),
        "metrics": lambda s: metrics.metrics_settings(s),
        "segments": lambda s: segments.segments_settings(s),
        "campaigns": lambda s: campaigns.campaign_settings(s),
        "reports": lambda s: render.report_settings(s),
    }


def validate_sections(settings: Settings, report: CheckReport | None = None) -> CheckReport:
    """Every stage section of params/default.yaml through its model; findings name the key."""
    report = report or CheckReport()
    path = settings.params_file("default.yaml")
    for section, validate in _section_validators().items():
        try:
            validate(settings)
        except ValidationError as exc:
            text = str(explain_validation_error(path, exc, prefix=section)).split("\n", 1)[-1]
            for line in text.splitlines():
                report.add("error", _rel(path, settings), line.strip())
        except (ConfigError, ValueError, TypeError) as exc:
            report.add("error", f"{_rel(path, settings)}: {section}", str(exc))
    return report


def validate_rule_and_offer_files(settings: Settings, report: CheckReport) -> list:
    """params/quality_rules.yaml and params/offers.yaml; returns the offers (empty when absent)."""
    from helpers import quality, segments

    try:
        qs = quality.QualitySettings.from_settings(settings)
        quality.load_rules(qs.resolve(settings.root, "rules"))
    except (ConfigError, ValidationError, ValueError) as exc:
        report.add("error", "quality.rules (params/quality_rules.yaml)", str(exc))
    try:
        reference = qs.resolve(settings.root, "postcode_reference")
        if reference:
            quality.load_postcode_reference(reference)
    except (ConfigError, ValidationError, ValueError, UnboundLocalError) as exc:
        report.add("error", "quality.postcode_reference", f"{exc}; fix the path, or set it to null")
    offers: list = []
    try:
        ss = segments.segments_settings(settings)
        path = settings.params_file(ss.nbo.offers_file)
        if path.exists():
            offers = segments.load_offers(path)
        else:
            report.add(
                "warning",
                _rel(path, settings),
                "absent: no offer catalogue, so no next best offers from it (segments.nbo.offers_file)",
            )
    except (ConfigError, ValidationError, ValueError) as exc:
        report.add("error", "params/offers.yaml", str(exc))
    return offers


def _rel(path: Path, settings: Settings) -> str:
    try:
        return str(Path(path).relative_to(settings.root))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------
# 2. Sources: open, columns, preview, reject shares
# --------------------------------------------------------------------------------------------------


def _cut_copy(spec: SourceSpec, raw_dir: Path, tmp: Path) -> tuple[SourceSpec, Path, bool]:
    """For a large CSV or JSON-lines file: a copy of its first lines in `tmp`, and the spec to read it
    (footer rows dropped: the copy has no end). Other sources are read where they are."""
    if spec.format not in ("csv", "jsonl") or not spec.path:
        return spec, raw_dir, False
    from helpers.readers import source_path

    path = source_path(spec, raw_dir)  # confined to paths.raw
    if not path.exists() or path.stat().st_size <= CUT_ABOVE_BYTES:
        return spec, raw_dir, False
    keep = PREVIEW_ROWS + (spec.header_row or 1) + spec.skip_rows + 1
    with open(path, "rb") as fh:
        head = fh.read(2)
        if head in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16: read it whole
            return spec, raw_dir, False
        fh.seek(0)
        lines = []
        for _ in range(keep):
            line = fh.readline()
            if not line:
                break
            lines.append(line)
    target = tmp / spec.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"".join(lines[:-1]) if len(lines) == keep else b"".join(lines))
    return spec.model_copy(update={"footer_rows": 0}), tmp, True


def preview_source(spec: SourceSpec, settings: Settings, report: CheckReport, tmp: Path) -> SourcePreview:
    """Read the head of one source as configured, map and standardise it, and report what would be
    rejected; findings are added to `report`."""
    from helpers import ingest, readers

    t0 = time.perf_counter()
    out = SourcePreview(spec.name)
    raw_dir = settings.path("raw")
    where = f"{_rel(settings.params_file('sources.yaml'), settings)}: sources.{spec.name}"
    if spec.format == "sql":
        limited = f"SELECT * FROM ({spec.query}) AS scv_check LIMIT {PREVIEW_ROWS}"
        spec_read, dir_read, cut = spec.model_copy(update={"query": limited}), raw_dir, True
    else:
        spec_read, dir_read, cut = _cut_copy(spec, raw_dir, tmp)
    try:
        raw = readers.read_source(spec_read, dir_read)
    except ScvError as exc:
        report.add("error", where, str(exc))
        return out
    if spec.format in ("csv", "excel"):
        unnamed = [c for c in raw.columns if str(c).startswith("unnamed_")]
        if unnamed and len(unnamed) * 2 >= len(raw.columns) and not (spec.header_row or spec.find_header):
            report.add(
                "warning",
                where,
                f"{len(unnamed)} of {len(raw.columns)} header cells are empty: a title above the header? "
                "set `header_row: N` or `find_header: [a column name, ...]`",
            )
    file = spec.location(raw_dir)
    try:
        ingest.check_columns(raw, spec, file)
    except ScvError as exc:
        report.add("error", f"{where}.columns", str(exc))
        return out
    if len(raw.records) > PREVIEW_ROWS:
        raw.records = raw.records.iloc[:PREVIEW_ROWS]
    if not cut and spec.format in ("csv", "excel") and not spec.footer_rows and len(raw.records):
        last = raw.records.iloc[-1].drop(labels=[readers.ROW, readers.ITEM], errors="ignore")
        first_text = next((str(v) for v in last if v is not None and str(v).strip() and str(v) != "nan"), "")
        if "total" in first_text.lower() or "registros" in first_text.lower():
            report.add(
                "warning",
                where,
                f"the last row starts with {first_text[:40]!r}: a totals footer? it would become a record; "
                "set `footer_rows: 1`",
            )
    try:
        filtered, n_filtered, bad, bad_value = ingest.apply_row_filter(raw, spec, settings.ingest)
        mapped = ingest.map_columns(filtered, spec, file, settings.ingest)
        staged, rejects, _ = ingest.standardise_source(
            mapped, filtered, spec, settings.ingest, spec.path or file, filter_errors=(bad, bad_value)
        )
    except (ScvError, ValueError) as exc:
        report.add("error", where, f"cannot map and standardise the first rows: {exc}")
        return out
    out.rows = int(filtered.records[readers.ROW].nunique()) if len(filtered.records) else 0
    out.staged = staged
    out.shown = staged.drop(columns=["source", "record_id"]).head(5)
    out.reject_shares = _reject_shares(rejects, out.rows)
    for r in out.reject_shares.itertuples(index=False):
        if r.share < WARN_SHARE:
            continue  # a few bad values: the data, shown in the table, not the settings
        level = "error" if r.share >= ERROR_SHARE and r.reason not in ("duplicate_row",) else "warning"
        fix = FIXES.get(r.reason, "")
        report.add(
            level,
            f"{where}.columns (raw {r.column!r})",
            f"{r.rejected} of {out.rows} previewed records ({r.share:.0%}) would be rejected as {r.reason}, "
            f"e.g. {r.examples}" + (f"; fix: {fix}" if fix else ""),
        )
    if n_filtered:
        report.add(
            "info",
            f"{where}.row_filter",
            f"leaves out {n_filtered} of the first {out.rows + n_filtered} rows",
        )
    out.seconds = time.perf_counter() - t0
    return out


def _reject_shares(rejects: pd.DataFrame, rows: int) -> pd.DataFrame:
    cols = ["column", "reason", "rejected", "share", "examples"]
    if not len(rejects) or not rows:
        return pd.DataFrame(columns=cols)
    g = rejects.groupby(["column", "reason"], sort=False)
    out = g["row_number"].nunique().rename("rejected").reset_index()
    out["share"] = out["rejected"] / rows
    examples = g["value"].agg(lambda v: ", ".join(repr(x) for x in pd.unique(v.astype(str))[:3] if x != ""))
    out["examples"] = out.set_index(["column", "reason"]).index.map(examples)
    return out.sort_values("share", ascending=False, ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------------
# 3 + 4. Coverage and offers
# --------------------------------------------------------------------------------------------------


def check_offers(offers: list, report: CheckReport, previews: dict[str, SourcePreview], sources) -> None:
    """Each offer against the categories and products seen in the previewed data."""
    from helpers import segments

    if not offers:
        return
    lines = [
        p.staged[["product", "category"]].assign(amount=p.staged["amount"])
        for n, p in previews.items()
        if p.staged is not None and sources[n].kind == "transaction"
    ]
    products = [
        p.staged for n, p in previews.items() if p.staged is not None and sources[n].kind == "product"
    ]
    if not lines:
        report.add("warning", "params/offers.yaml", "no transaction data to check the offers against")
        return
    sales = pd.concat(lines, ignore_index=True)
    catalogue = pd.concat(products, ignore_index=True) if products else None
    checked = segments.offers_against_data(offers, catalogue, sales)
    bad = checked[~checked["usable"]]
    for r in bad.itertuples(index=False):
        report.add(
            "warning" if r.found else "error",
            f"params/offers.yaml: offer {r.offer_id}",
            f"{r.reason} (first {PREVIEW_ROWS:,} rows of each source checked); fix: name a product or "
            "category of your data, give `margin`, or remove the offer",
        )
    if len(bad) == len(checked):
        report.add(
            "warning", "params/offers.yaml", "no offer fits the data: no next best offers will be made"
        )


def _sections_in_child(root: str) -> list[tuple[str, str, str]]:
    """validate_sections in a separate process (the stage modules' imports take seconds of one core;
    the sources are previewed on the other meanwhile)."""
    report = validate_sections(load_settings(root=Path(root)))
    return [(f.level, f.where, f.message) for f in report.findings]


def run_check(root: Path | None = None, *, sources_only: list[str] | None = None) -> CheckReport:
    """All the checks; parameter files that do not load at all raise ConfigError (nothing else can run)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    report = CheckReport()
    settings = load_settings(root=root)
    sources = load_sources(root=settings.root)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    sections = pool.submit(_sections_in_child, str(settings.root))
    from helpers.readers import input_problems

    where = _rel(settings.params_file("sources.yaml"), settings)
    for warning in literal_passwords(sources):
        report.add("warning", where, warning.removeprefix("warning: "))
    # a path outside paths.raw, a missing file or a folder: said once, and that source is not opened
    unreadable = input_problems(sources, settings.path("raw"))
    for name, problem in unreadable.items():
        report.add("error", f"{where}: sources.{name}.path", problem)
    tmp = Path(tempfile.mkdtemp(prefix="scv-check-"))
    try:
        for name, spec in sources.items():
            if (sources_only and name not in sources_only) or name in unreadable:
                continue
            report.previews[name] = preview_source(spec, settings, report, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        for level, where, message in sections.result():
            report.add(level, where, message)
    except Exception:  # no second process here: validate in this one
        validate_sections(settings, report)
    finally:
        pool.shutdown()
    offers = validate_rule_and_offer_files(settings, report)
    for _kind, text in coverage.absent(sources):
        report.add("info", "data", text)
    check_offers(offers, report, report.previews, sources)
    report.seconds = time.perf_counter() - t0
    return report


def print_report(report: CheckReport, sources: dict[str, SourceSpec], *, rows: int = 5) -> None:
    """The report as text: per source its preview, then every finding."""
    with pd.option_context("display.width", 160, "display.max_columns", 12, "display.max_colwidth", 24):
        for name, preview in report.previews.items():
            spec = sources[name]
            print(
                f"\n== {name} ({spec.kind}, {spec.format}) · {preview.rows:,} records previewed in {preview.seconds:.1f} s"
            )
            if preview.shown is not None and len(preview.shown):
                shown = preview.shown.dropna(axis=1, how="all").head(rows)
                print(shown.to_string(index=False))
            if preview.reject_shares is not None and len(preview.reject_shares):
                table = preview.reject_shares.assign(
                    share=preview.reject_shares["share"].map("{:.1%}".format)
                )
                print("would be rejected:")
                print(table.to_string(index=False))
    levels = {"error": 0, "warning": 1, "info": 2}
    print()
    for f in sorted(report.findings, key=lambda f: levels[f.level]):
        print(f)
    n_err = len(report.errors)
    n_warn = sum(f.level == "warning" for f in report.findings)
    print(
        f"\n{len(report.previews)} sources checked in {report.seconds:.1f} s: {n_err} error(s), {n_warn} warning(s)"
        + ("" if n_err else " - ready for `make report`")
    )
