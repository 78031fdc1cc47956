"""Ingest: read each source, map it to the canonical schema, standardise, validate, quarantine.

`ingest_source` is the whole stage for one source: it returns the staged records, the rejects and the
row accounting. A bad value in an optional field (an IBAN with a wrong checksum, say) is removed
from the staged record and listed as a field reject; a record whose required fields are unusable, or
that is malformed or an exact duplicate, is quarantined whole as a row reject. Either way the reject
names the source, file, row, column, raw value and reason. Rows read = rows staged + rows rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from helpers import config, expressions, schema
from helpers import standardise as std
from helpers.config import IngestSettings, SourceSpec
from helpers.errors import AccountingError, SourceError
from helpers.readers import ITEM, ROW, ParsedFiles, RawRecords, parse_key, read_source

if TYPE_CHECKING:
    import pandera.pandas as pa

    from helpers.privacy_ops import Suppression

REJECT_COLUMNS = ["source", "file", "row_number", "column", "value", "reason", "action"]

#: Columns standardised with a dedicated field standardiser (others go by logical type).
FIELD_STANDARDISERS = {
    "iban": std.iban,
    "email": std.email,
}
#: Columns validated by the country of each record (its `country` column, else the source's `country`,
#: else ingest.default_country).
COUNTRY_STANDARDISERS = ("tax_id", "postcode", "phone")
#: Reason codes ingest adds beside the standardisers' (helpers.standardise.REASONS).
OUT_OF_RANGE = "out_of_range"
NEGATIVE_QUANTITY = "negative_quantity"
NEGATIVE_AMOUNT = "negative_amount"
_ID_SEPARATORS = r"[\s.\-/]+"
NAME_COLUMNS = ("given_name", "family_names", "full_name")
#: Event dates that cannot lie in the future (later than IngestSettings.latest_event): `future_date`.
#: Due dates and an opportunity's expected close can, and are not bounded.
FUTURE_BOUNDED = {
    "transaction": ("date", "paid_date"),
    "interaction": ("opened_at", "closed_at"),
    "campaign_contact": ("contacted_at", "response_at"),
}
FUTURE_DATE = "future_date"
#: Spanish legal forms that mark a company name when no CIF says so.
COMPANY_SUFFIX = (
    r"(?i)\b(?:S\.?\s?L\.?(?:U\.?)?|S\.?\s?A\.?(?:U\.?)?|S\.?\s?COOP\.?|S\.?\s?C\.?|C\.?\s?B\.?"
    r"|Sociedad\s+(?:Limitada|An[oó]nima|Cooperativa|Civil)(?:\s+Unipersonal)?|Comunidad\s+de\s+Bienes)\s*$"
)


@dataclass
class IngestResult:
    """One source's staged records, rejects and accounting."""

    source: str
    kind: str
    staged: pd.DataFrame
    rejects: pd.DataFrame
    rows_read: int
    rows_rejected: int
    placeholders: pd.DataFrame  # (column, count): values recognised as placeholders and nulled
    rows_filtered: int = 0  # rows the source's `row_filter` leaves out (not records of this source)
    #: the source's `extra_columns` of each staged record: record_id, source_id, field, value (text)
    extras: pd.DataFrame | None = None

    @property
    def rows_staged(self) -> int:
        return int(self.staged["row_number"].nunique())

    def accounting(self) -> dict[str, object]:
        return {
            "source": self.source,
            "kind": self.kind,
            "rows_read": self.rows_read,
            "rows_staged": self.rows_staged,
            "rows_rejected": self.rows_rejected,
            "rows_filtered": self.rows_filtered,
            "records_staged": len(self.staged),
            "field_rejects": int((self.rejects["action"] == "field").sum()),
            "balanced": self.rows_read == self.rows_staged + self.rows_rejected + self.rows_filtered,
        }


def _empty_rejects(columns: list[str] = REJECT_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row_number" else "object") for c in columns})


#: The store table of the sources' `extra_columns` (long: one row per record and extra column).
EXTRA_COLUMNS_TABLE = "source_extra_columns"
EXTRA_COLUMNS = ["source", "record_id", "source_id", "field", "value"]


@dataclass
class Mapped:
    """A source's records in canonical columns (raw values), before standardisation."""

    frame: pd.DataFrame  # canonical columns, raw values (value maps applied)
    #: canonical column -> rows an expression could not evaluate and the raw value that stopped it
    expression_errors: dict[str, tuple[pd.Series, pd.Series]] = field(default_factory=dict)
    extras: pd.DataFrame | None = None  # extra_columns: name -> raw values (same index)


def _number_reader(spec: SourceSpec, settings: IngestSettings | None):
    marks = settings.placeholders if settings is not None else std.PLACEHOLDERS

    def read(values: pd.Series) -> tuple[pd.Series, pd.Series]:
        result = std.number(values, decimal=spec.decimal, thousands=spec.thousands, placeholders=marks)
        return result.value, result.reason.notna()

    return read


def check_columns(raw: RawRecords, spec: SourceSpec, file: str) -> None:
    """SourceError naming every raw column the source needs but the file lacks."""
    available = set(raw.columns)
    missing = [c for c in spec.read_columns() if c not in available]
    if missing and not len(raw.records) and not raw.columns:
        # no record parsed (an empty JSON array, only broken JSON lines): there are no keys to check
        # the mapping against; the source has zero good records, its broken ones are quarantined
        raw.records = raw.records.assign(**{c: pd.Series(dtype=object) for c in missing})
        return
    if missing:
        wanted = {
            k: v
            for k, v in spec.columns.items()
            if (v in missing if isinstance(v, str) else set(v) & set(missing))
        }
        where = []
        if wanted:
            where.append(f"mapped in sources.{spec.name}.columns as {wanted}")
        used = [k for k, e in spec.expressions.items() if set(expressions.parse(e).columns) & set(missing)]
        if used:
            where.append(f"used by sources.{spec.name}.expressions {used}")
        if spec.row_filter and set(expressions.parse(spec.row_filter).columns) & set(missing):
            where.append(f"used by sources.{spec.name}.row_filter")
        extra = [k for k, v in spec.extra_columns.items() if v in missing]
        if extra:
            where.append(f"named in sources.{spec.name}.extra_columns {extra}")
        hint = ""
        if spec.format in ("csv", "excel") and not (spec.header_row or spec.find_header):
            hint = " (is the header on another row? set `header_row` or `find_header`)"
        raise SourceError(
            f"{file}: column(s) {missing} not found ({'; '.join(where)}); "
            f"the source has: {sorted(available)[:40]}{hint}"
        )


def apply_value_map(values: pd.Series, table: dict) -> pd.Series:
    """Raw values replaced per a `value_maps` table (matched trimmed, case- and accent-insensitively);
    values the table does not name pass unchanged. A YAML true/false key stands for yes/true/on and
    no/false/off (YAML reads an unquoted `no:` as false)."""
    folded: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(key, bool):
            for word in ("yes", "true", "on") if key else ("no", "false", "off"):
                folded.setdefault(word, value)
            continue
        text = std._to_text(key)
        if text is not None:
            folded[std._fold(text)] = value
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    out_u = np.empty(len(uniques), dtype=object)
    for i, u in enumerate(uniques):
        text = std._to_text(u)
        key = std._fold(text) if text is not None else None
        out_u[i] = folded[key] if key in folded else u
    out = np.empty(len(values), dtype=object)
    out[:] = None
    hit = codes >= 0
    out[hit] = out_u[codes[hit]]
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def map_columns(
    raw: RawRecords, spec: SourceSpec, file: str, settings: IngestSettings | None = None
) -> Mapped:
    """Canonical columns (as raw text) from a source's raw columns, per its `columns` mapping, its
    `expressions` (derived columns) and its `value_maps`; its `extra_columns` alongside."""
    check_columns(raw, spec, file)
    frame = raw.records
    out = pd.DataFrame(index=frame.index)
    for canonical, source_col in spec.columns.items():
        if isinstance(source_col, str):
            out[canonical] = frame[source_col]
        else:
            parts = frame[list(source_col)].astype("string").fillna("")
            joined = parts.apply(lambda r: " ".join(v.strip() for v in r if v.strip()), axis=1)
            out[canonical] = joined.where(joined != "", None).astype(object)
    errors: dict[str, tuple[pd.Series, pd.Series]] = {}
    number = _number_reader(spec, settings)
    for canonical, text in spec.expressions.items():
        result = expressions.parse(text).evaluate(frame, number=number)
        values = result.values
        if values.dtype == object:
            values = values.where(values.notna(), None)
        out[canonical] = values
        if result.invalid.any():
            errors[canonical] = (result.invalid, result.invalid_value)
    for canonical, value in spec.constants.items():
        out[canonical] = value
    for canonical, table in spec.value_maps.items():
        if canonical in out:
            out[canonical] = apply_value_map(out[canonical], table)
    extras = None
    if spec.extra_columns:
        extras = pd.DataFrame(
            {name: frame[col] for name, col in spec.extra_columns.items()}, index=frame.index
        )
    return Mapped(out, errors, extras)


def apply_row_filter(raw: RawRecords, spec: SourceSpec, settings: IngestSettings | None = None):
    """The records the source's `row_filter` keeps, the rows it leaves out (counted, not records), and
    the records it could not decide (a value that is not a number where the filter compares one):
    those are kept and quarantined with the reason."""
    empty = pd.Series(False, index=raw.records.index)
    if not spec.row_filter or not len(raw.records):
        return raw, 0, empty, pd.Series(None, index=raw.records.index, dtype=object)
    result = expressions.parse(spec.row_filter).evaluate(raw.records, number=_number_reader(spec, settings))
    keep = result.values.eq(True) | result.invalid
    rows_before = raw.records[ROW]
    kept = raw.records.loc[keep.to_numpy()]
    rows_filtered = int(rows_before.nunique() - kept[ROW].nunique())
    filtered = replace(raw, records=kept)
    filtered.memo = {}  # per-file results (duplicates) were worked out on all the records
    invalid = result.invalid[keep.to_numpy()]
    return filtered, rows_filtered, invalid, result.invalid_value[keep.to_numpy()]


def _raw_column(spec: SourceSpec, canonical: str) -> str:
    raw = spec.columns.get(canonical)
    if raw is None:
        if canonical in spec.expressions:
            return f"={spec.expressions[canonical]}"
        return f"(constant {canonical})"
    return raw if isinstance(raw, str) else "+".join(raw)


def source_country(spec: SourceSpec, settings: IngestSettings) -> str:
    """The country of a source's records when they do not say: its `country`, else the default."""
    return spec.country or settings.default_country


def _unvalidated(column: str, values: pd.Series, marks) -> std.Standardised:
    """A column kept as delivered (`validate: {column: false}`): text, an identifier without spaces,
    dots and dashes, an e-mail in lower case."""
    result = std.text(values, placeholders=marks)
    v = result.value.astype("string")
    if column in ("tax_id", "iban"):
        v = v.str.replace(_ID_SEPARATORS, "", regex=True).str.upper()
    elif column == "email":
        v = v.str.lower()
    elif column in ("postcode", "country"):
        v = v.str.upper()
    result.value = v.astype(object).where(v.notna() & v.ne(""), None)
    return result


def _parse(
    column: str,
    logical: str,
    values: pd.Series,
    spec: SourceSpec,
    settings: IngestSettings,
    countries: pd.Series | None = None,
):
    """Standardise one canonical column; returns the Standardised result. `countries`: each record's
    country (ISO alpha-2), for tax ids, postcodes and phones."""
    marks = settings.placeholders
    if not spec.validated(column):
        return _unvalidated(column, values, marks)
    home = source_country(spec, settings)
    if countries is None:
        countries = pd.Series(home, index=values.index, dtype=object)
    if column == "tax_id":
        return std.by_country(
            lambda v, cc: std.tax_id(v, placeholders=marks, country=cc, also=home), values, countries
        )
    if column == "postcode":
        return std.by_country(
            lambda v, cc: std.postcode(v, placeholders=marks, country=cc), values, countries
        )
    if column == "phone":
        return std.by_country(
            lambda v, cc: std.phone(v, default_country=cc, placeholders=marks), values, countries
        )
    if column in FIELD_STANDARDISERS:
        return FIELD_STANDARDISERS[column](values, placeholders=marks)
    if column == "country":
        return std.country(values, placeholders=marks, aliases=settings.country_aliases)
    if column in NAME_COLUMNS:
        return std.person_name(values, placeholders=marks)
    if logical in ("date", "datetime"):
        max_date = None
        min_date = settings.min_date
        if column == "birth_date":
            max_date = date.today()
            min_date = max(min_date, date(date.today().year - settings.max_birth_age, 1, 1))
        result = std.date(
            values,
            fmt=spec.date_format,
            dayfirst=spec.dayfirst,
            min_date=min_date,
            max_date=max_date,
            tz=settings.timezone,
            placeholders=marks,
        )
        if logical == "date":
            result.value = result.value.dt.normalize()
        if column in FUTURE_BOUNDED.get(spec.kind, ()):
            future = result.value > settings.latest_event()
            if future.any():
                result.value = result.value.where(~future)
                result.reason = result.reason.where(~future, FUTURE_DATE)
        return result
    if logical in ("float", "int"):
        return std.number(values, decimal=spec.decimal, thousands=spec.thousands, placeholders=marks)
    if logical == "bool":
        return std.boolean(values, placeholders=marks)
    return std.text(values, placeholders=marks)


def _derive_party(
    staged: pd.DataFrame, tax_kind: pd.Series | None = None, countries: pd.Series | None = None
) -> pd.DataFrame:
    """Fill the derived name columns, the full name, the party type and the province.

    `tax_kind`: what each tax id identifies, as its validation found (Spain nif/nie/cif; elsewhere
    person/company/tax_id); `countries`: each record's country - a province is derived from a Spanish
    postcode only."""
    # a source that only gives a full name ("María del Carmen Prados García") is split
    only_full = staged["full_name"].notna() & staged["given_name"].isna() & staged["family_names"].isna()
    if tax_kind is None:
        tax_kind = std.tax_id_kind(staged["tax_id"])
    legal_form = staged["full_name"].astype("string").str.contains(COMPANY_SUFFIX, na=False)
    company = tax_kind.isin(["cif", "company"]) | legal_form
    person_full = only_full & ~company  # a company name is never split into given name and surnames
    if person_full.any():
        given, family = std.split_full_name(staged.loc[person_full, "full_name"])
        staged.loc[person_full, "given_name"] = given
        staged.loc[person_full, "family_names"] = family
    first, second = std.split_family_names(staged["family_names"])
    staged["family_name_1"] = first
    staged["family_name_2"] = second
    built = (staged["given_name"].fillna("") + " " + staged["family_names"].fillna("")).str.strip()
    staged["full_name"] = staged["full_name"].where(
        staged["full_name"].notna(), built.where(built != "", None)
    )
    legal_form = staged["full_name"].astype("string").str.contains(COMPANY_SUFFIX, na=False)
    inferred = pd.Series(np.where(company | legal_form, "company", "person"), index=staged.index)
    staged["party_type"] = staged["party_type"].where(staged["party_type"].notna(), inferred)
    spanish = pd.Series(True, index=staged.index) if countries is None else countries.eq("ES")
    if spanish.any():
        province = std.province_from_postcode(staged["postcode"].where(spanish, None))
        staged["province"] = staged["province"].where(staged["province"].notna(), province)
    return staged


def _text_codes(values: pd.Series) -> np.ndarray:
    """Factor codes of a column's values compared as text (as `astype("string")` compares them; -1 = null)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = values.astype("string")  # numbers, lists from JSON: compared by their text
    return pd.factorize(values, use_na_sentinel=True)[0]


def _duplicated_text(records: pd.DataFrame, columns: list[int]) -> np.ndarray:
    """`records.iloc[:, columns].astype("string").duplicated(keep="first")`, without copying or
    converting every column.

    Only rows whose values so far repeat can be duplicates, so the candidates are narrowed column
    by column (an id column leaves almost none) and the later columns are compared on those alone.
    """
    n = len(records)
    candidates = np.arange(n)
    group = np.zeros(n, dtype=np.int64)  # the candidates' groups of equal values so far
    for i in columns:
        if not len(candidates):
            break
        column = records.iloc[:, i]
        codes = _text_codes(column if len(candidates) == n else column.iloc[candidates])
        keys = group * (int(codes.max(initial=-1)) + 2) + (codes + 1)  # < n * (n + 1): no overflow
        group = pd.factorize(keys)[0].astype(np.int64)
        repeated = np.bincount(group)[group] > 1
        candidates = candidates[repeated]
        group = pd.factorize(group[repeated])[0].astype(np.int64)
    dup = np.zeros(n, dtype=bool)
    dup[candidates] = pd.Series(group).duplicated(keep="first").to_numpy()
    return dup


def duplicate_records(raw: RawRecords) -> np.ndarray:
    """True for each record that repeats an earlier one of the same file exactly (all raw columns).

    Sources that map the same parsed file share the answer (it is worked out once per file).
    """
    cached = raw.memo.get("duplicates")
    if cached is not None and cached[0] is raw.records:
        return cached[1]
    raw_cols = [i for i, c in enumerate(raw.records.columns) if c != ROW]
    if raw_cols:
        dup = _duplicated_text(raw.records, raw_cols)
    else:  # no columns to compare (pandas' answer for that case)
        dup = raw.records.iloc[:, []].duplicated(keep="first").to_numpy(dtype=bool)
    raw.memo["duplicates"] = (raw.records, dup)
    return dup


def _reject_frame(rows: np.ndarray, column: str, values, reason, action: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"row_number": rows, "column": column, "value": values, "reason": reason, "action": action}
    )


def _out_of_range(values: pd.Series, bounds: list, logical: str) -> pd.Series:
    """True where a parsed value lies outside [min, max] (either side may be open)."""
    lo, hi = bounds
    if logical in ("date", "datetime"):
        lo = pd.Timestamp(lo) if lo is not None else None
        hi = pd.Timestamp(hi) + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if hi is not None else None
    v = values if logical in ("date", "datetime") else pd.to_numeric(values, errors="coerce")
    outside = pd.Series(False, index=values.index)
    if lo is not None:
        outside |= v.lt(lo).fillna(False).astype(bool)
    if hi is not None:
        outside |= v.gt(hi).fillna(False).astype(bool)
    return outside


def record_countries(mapped: pd.DataFrame, spec: SourceSpec, settings: IngestSettings) -> pd.Series:
    """Each record's country (ISO alpha-2): its own `country` column when it has a valid one, else the
    source's country, else ingest.default_country."""
    home = source_country(spec, settings)
    if "country" in mapped and spec.validated("country"):
        parsed = std.country(
            mapped["country"], placeholders=settings.placeholders, aliases=settings.country_aliases
        )
        return parsed.value.where(parsed.value.notna(), home).astype(object)
    return pd.Series(home, index=mapped.index, dtype=object)


def standardise_source(
    mapped: pd.DataFrame | Mapped,
    raw: RawRecords,
    spec: SourceSpec,
    settings: IngestSettings,
    file: str,
    filter_errors: tuple[pd.Series, pd.Series] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Canonical, typed, standardised records + rejects (field and row) + placeholder counts.

    Every record is validated by its own country; `ranges`, the `refunds` policy and values an
    expression or the row filter could not read (`filter_errors`) give rejects with their reason."""
    if isinstance(mapped, Mapped):
        expression_errors = mapped.expression_errors
        mapped = mapped.frame
    else:
        expression_errors = {}
    kind_schema = schema.KINDS[spec.kind]
    required = schema.REQUIRED[spec.kind]
    rows = raw.records[ROW].to_numpy()
    staged = pd.DataFrame(index=mapped.index)
    reject_parts: list[pd.DataFrame] = []
    placeholder_counts: dict[str, int] = {}
    row_bad = pd.Series(False, index=mapped.index)
    countries = record_countries(mapped, spec, settings)
    tax_kind = None
    mapped_columns = set(spec.mapped())

    if filter_errors is not None and filter_errors[0].any():
        bad = filter_errors[0].to_numpy()
        reject_parts.append(
            _reject_frame(
                rows[bad],
                f"row_filter: {spec.row_filter}",
                filter_errors[1][bad].astype(str).str.slice(0, 500).to_numpy(),
                std.INVALID_NUMBER,
                "row",
            )
        )
        row_bad |= filter_errors[0].to_numpy()

    for column, logical in kind_schema.items():
        if column not in mapped:
            staged[column] = None
            continue
        values = mapped[column]
        failed = None
        if column in expression_errors:
            failed, failed_value = expression_errors[column]
            values = values.where(~failed, None)
        result = _parse(column, logical, values, spec, settings, countries)
        staged[column] = result.value
        if column == "tax_id":
            tax_kind = result.kind
        n_placeholder = int(result.placeholder.sum()) if result.placeholder is not None else 0
        if n_placeholder:
            placeholder_counts[column] = n_placeholder
        bad = result.reason.notna()
        reasons = result.reason
        shown = mapped[column].astype(str).str.slice(0, 500)
        if failed is not None:  # an expression met a value that is not a number
            bad = bad | failed
            reasons = reasons.where(~failed, std.INVALID_NUMBER)
            shown = shown.where(~failed, failed_value.astype(str).str.slice(0, 500))
        if column in spec.ranges and logical in config.RANGED_TYPES:
            outside = _out_of_range(result.value, spec.ranges[column], logical) & ~bad
            if outside.any():
                bad = bad | outside
                reasons = reasons.where(~outside, OUT_OF_RANGE)
                staged[column] = staged[column].where(~outside)
        empty_required = column in required and column in mapped_columns
        if empty_required:
            missing = result.value.isna() & ~bad
            if missing.any():
                reject_parts.append(
                    _reject_frame(
                        rows[missing.to_numpy()], _raw_column(spec, column), "", "missing_required", "row"
                    )
                )
                row_bad |= missing
        if bad.any():
            action = "row" if column in required else "field"
            reject_parts.append(
                _reject_frame(
                    rows[bad.to_numpy()],
                    _raw_column(spec, column),
                    shown[bad].to_numpy(),
                    reasons[bad].to_numpy(),
                    action,
                )
            )
            if action == "row":
                row_bad |= bad
            elif column in staged and failed is not None:
                staged[column] = staged[column].where(~failed)

    if spec.kind == "transaction":
        staged, row_bad = _refunds(staged, mapped, spec, rows, row_bad, reject_parts)

    # exact duplicates of an earlier record in the same file (the later copy is quarantined)
    dup = pd.Series(duplicate_records(raw), index=raw.records.index)
    if dup.any():
        first_row = raw.records.loc[dup, ROW].to_numpy()
        reject_parts.append(
            pd.DataFrame(
                {
                    "row_number": first_row,
                    "column": "*",
                    "value": "",
                    "reason": "duplicate_row",
                    "action": "row",
                }
            )
        )
        row_bad |= dup

    if spec.kind == "party":
        staged = _derive_party(staged, tax_kind, countries)
    for key in ("source_id", "party_id"):
        if key in staged:
            staged[key] = staged[key].astype("string").str.strip().astype(object)

    if ITEM in raw.records:  # a JSON record with a bad item is quarantined whole
        bad_parent_rows = set(raw.records.loc[row_bad, ROW])
        row_bad = raw.records[ROW].isin(bad_parent_rows)

    rejects = (
        pd.concat(reject_parts, ignore_index=True) if reject_parts else _empty_rejects(REJECT_COLUMNS[2:])
    )
    # a quarantined record is listed with its row reasons only, not also with its field rejects
    quarantined = set(raw.records.loc[row_bad, ROW])
    rejects = rejects[(rejects["action"] == "row") | ~rejects["row_number"].isin(quarantined)]
    rejects = rejects.drop_duplicates(["row_number", "column", "reason"]).sort_values(
        ["row_number", "column"], kind="stable"
    )
    rejects = rejects.reset_index(drop=True)
    rejects.insert(0, "source", spec.name)
    rejects.insert(1, "file", file)
    rejects["row_number"] = rejects["row_number"].astype("int64")

    keep = ~row_bad
    out = staged.loc[keep].copy()
    out.insert(0, "row_number", raw.records.loc[keep, ROW].astype("int64").to_numpy())
    if ITEM in raw.records:
        item = raw.records.loc[keep, ITEM].astype("int64").astype(str).to_numpy()
        out.insert(0, "record_id", spec.name + ":" + out["row_number"].astype(str) + "." + item)
    else:
        out.insert(0, "record_id", spec.name + ":" + out["row_number"].astype(str))
    out.insert(0, "source", spec.name)
    if spec.party_source and "party_source" in kind_schema:
        out["party_source"] = spec.party_source
    out = out[schema.staged_columns(spec.kind)].reset_index(drop=True)
    placeholders = pd.DataFrame(
        {"source": spec.name, "column": list(placeholder_counts), "count": list(placeholder_counts.values())}
    )
    return _typed(out, spec.kind), rejects, placeholders


def _refunds(
    staged: pd.DataFrame,
    mapped: pd.DataFrame,
    spec: SourceSpec,
    rows: np.ndarray,
    row_bad: pd.Series,
    reject_parts: list[pd.DataFrame],
) -> tuple[pd.DataFrame, pd.Series]:
    """Apply the source's refunds policy to negative quantities and amounts: a refund is booked with a
    positive quantity and a negative amount; a defect is quarantined with its reason."""
    policy = spec.refund_policy()
    quantity = pd.to_numeric(staged["quantity"], errors="coerce")
    amount = pd.to_numeric(staged["amount"], errors="coerce")
    neg_q = quantity.lt(0).fillna(False).astype(bool)
    neg_a = amount.lt(0).fillna(False).astype(bool)
    refund = pd.Series(False, index=staged.index)
    if policy.negative_quantity == "refund":
        refund |= neg_q
    elif neg_q.any():
        reject_parts.append(
            _reject_frame(
                rows[neg_q.to_numpy()],
                _raw_column(spec, "quantity"),
                mapped.loc[neg_q, "quantity"].astype(str).to_numpy(),
                NEGATIVE_QUANTITY,
                "row",
            )
        )
        row_bad = row_bad | neg_q
    if policy.negative_amount == "refund":
        refund |= neg_a & ~row_bad
    else:
        defect = neg_a & ~refund & ~row_bad
        if defect.any():
            reject_parts.append(
                _reject_frame(
                    rows[defect.to_numpy()],
                    _raw_column(spec, "amount"),
                    mapped.loc[defect, "amount"].astype(str).to_numpy(),
                    NEGATIVE_AMOUNT,
                    "row",
                )
            )
            row_bad = row_bad | defect
    if refund.any():
        staged.loc[refund, "quantity"] = quantity[refund].abs()
        staged.loc[refund, "amount"] = -amount[refund].abs()
    return staged, row_bad


def _typed(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Cast staged columns to the dtypes of their logical types (stable Parquet schemas)."""
    types = {**schema.LINEAGE, **schema.KINDS[kind]}
    for col, logical in types.items():
        s = frame[col]
        if logical == "str":
            frame[col] = s.astype("string")
        elif logical in ("date", "datetime"):
            frame[col] = pd.to_datetime(s, errors="coerce")
            if getattr(frame[col].dt, "tz", None) is not None:
                frame[col] = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
            frame[col] = frame[col].astype("datetime64[ns]")
        elif logical == "float":
            frame[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif logical == "int":
            frame[col] = pd.to_numeric(s, errors="coerce").astype("Int64")
        elif logical == "bool":
            frame[col] = s.astype("boolean")
    return frame


def staged_schema(kind: str) -> pa.DataFrameSchema:
    """The pandera contract of a staged table: types, required fields present, unique record ids."""
    import pandera.pandas as pa  # here, not at import: `scv check` and the stages start faster

    dtypes = {
        "str": "string",
        "date": "datetime64[ns]",
        "datetime": "datetime64[ns]",
        "float": "float64",
        "int": "Int64",
        "bool": "boolean",
    }
    required = schema.REQUIRED[kind] | {"source", "record_id", "row_number"}
    columns = {}
    for col, logical in {**schema.LINEAGE, **schema.KINDS[kind]}.items():
        checks = []
        if col == "quantity":
            checks.append(pa.Check.ge(0))
        columns[col] = pa.Column(
            dtypes[logical], nullable=col not in required, checks=checks, unique=col == "record_id"
        )
    return pa.DataFrameSchema(columns, strict=True, ordered=True)


def _suppress(
    staged: pd.DataFrame, rejects: pd.DataFrame, spec: SourceSpec, file: str, suppression: Suppression
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records of erased people (helpers.privacy_ops) leave staged as row rejects "erased" with no
    value, and their field rejects go; a party record's erasure carries over to the records pointing
    at it."""
    if spec.kind == "party":
        hit = suppression.party_mask(spec.name, staged)
        suppression.add_source_keys(spec.name, staged.loc[hit, "source_id"].dropna())
    else:
        hit = suppression.reference_mask(staged)
    if not hit.any():
        return staged, rejects
    rows = sorted(set(staged.loc[hit, "row_number"].astype("int64")))
    erased = pd.DataFrame(
        {
            "source": spec.name,
            "file": file,
            "row_number": pd.array(rows, dtype="int64"),
            "column": "*",
            "value": "",
            "reason": "erased",
            "action": "row",
        }
    )
    rejects = pd.concat([rejects[~rejects["row_number"].isin(rows)], erased], ignore_index=True)
    rejects = rejects.sort_values(["row_number", "column"], kind="stable").reset_index(drop=True)
    return staged[~staged["row_number"].isin(rows)].reset_index(drop=True), rejects


def ingest_source(
    spec: SourceSpec,
    raw_dir: Path,
    settings: IngestSettings,
    suppression: Suppression | None = None,
    parsed: ParsedFiles | None = None,
) -> IngestResult:
    """Read, map, standardise and validate one source; raises AccountingError if rows go missing.

    With a `suppression` list (helpers.privacy_ops), records of erased people are quarantined as
    "erased", without their data. With `parsed`, a file shared with other sources is parsed once.
    """
    file = spec.path if spec.path else spec.location(raw_dir)
    raw = read_source(spec, raw_dir, parsed)
    rows_read = raw.rows_read
    check_columns(raw, spec, str(Path(raw_dir) / spec.path) if spec.path else file)
    raw, rows_filtered, filter_bad, filter_value = apply_row_filter(raw, spec, settings)
    mapped = map_columns(raw, spec, str(Path(raw_dir) / spec.path) if spec.path else file, settings)
    staged, rejects, placeholders = standardise_source(
        mapped, raw, spec, settings, file, filter_errors=(filter_bad, filter_value)
    )
    suppressing = suppression is not None and len(suppression) > 0
    if suppressing:
        staged, rejects = _suppress(staged, rejects, spec, file, suppression)
    extras = _extra_values(mapped, raw, staged, spec)
    if len(raw.malformed):
        values = raw.malformed["value"].astype(str)
        reasons = raw.malformed["reason"].str.split(":").str[0]
        if suppressing:  # a line too broken to parse may still name an erased person
            erased = pd.Series(suppression.mentions(values), index=values.index)
            values, reasons = values.where(~erased, ""), reasons.where(~erased, "erased")
        malformed = pd.DataFrame(
            {
                "source": spec.name,
                "file": file,
                "row_number": raw.malformed[ROW].astype("int64"),
                "column": "*",
                "value": values,
                "reason": reasons,
                "action": "row",
            }
        )
        rejects = pd.concat([rejects, malformed], ignore_index=True)
    staged_schema(spec.kind).validate(staged, lazy=True)
    rows_rejected = int(rejects.loc[rejects["action"] == "row", "row_number"].nunique())
    result = IngestResult(
        spec.name,
        spec.kind,
        staged,
        rejects.reset_index(drop=True),
        rows_read,
        rows_rejected,
        placeholders,
        rows_filtered=rows_filtered,
        extras=extras,
    )
    if result.rows_read != result.rows_staged + result.rows_rejected + result.rows_filtered:
        raise AccountingError(
            f"{spec.name}: read {result.rows_read} rows but staged {result.rows_staged}, rejected "
            f"{result.rows_rejected} and filtered out {result.rows_filtered}; rows would be lost"
        )
    return result


def _extra_values(mapped: Mapped, raw: RawRecords, staged: pd.DataFrame, spec: SourceSpec) -> pd.DataFrame:
    """The `extra_columns` of the staged records, long: record_id, source_id, field, value (text)."""
    if mapped.extras is None or not len(staged):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in EXTRA_COLUMNS})
    extras = mapped.extras.copy()
    extras["row_number"] = raw.records[ROW].astype("int64").to_numpy()
    if ITEM in raw.records:
        extras["item"] = raw.records[ITEM].astype("int64").to_numpy()
        keys = staged["record_id"].str.rsplit(".", n=1).str[1].astype("int64")
        staged_keys = pd.DataFrame({"row_number": staged["row_number"].to_numpy(), "item": keys.to_numpy()})
        on = ["row_number", "item"]
    else:
        staged_keys = pd.DataFrame({"row_number": staged["row_number"].to_numpy()})
        on = ["row_number"]
    staged_keys["record_id"] = staged["record_id"].to_numpy()
    staged_keys["source_id"] = staged["source_id"].to_numpy()
    kept = staged_keys.merge(extras, on=on, how="left")
    long = kept.melt(
        id_vars=["record_id", "source_id"], value_vars=list(spec.extra_columns), var_name="field"
    )
    long["value"] = std.text(long["value"]).value
    long = long[long["value"].notna()]
    long.insert(0, "source", spec.name)
    return long[EXTRA_COLUMNS].astype("string").reset_index(drop=True)


def detect_period(specs: dict[str, SourceSpec], raw_dir: Path, settings: IngestSettings) -> str:
    """The last complete month in the data: from the newest transaction date across sources."""
    newest: datetime | None = None
    for spec in specs.values():
        if spec.kind != "transaction":
            continue
        raw = read_source(spec, raw_dir)
        file = str(Path(raw_dir) / spec.path) if spec.path else spec.location(raw_dir)
        check_columns(raw, spec, file)
        raw = apply_row_filter(raw, spec, settings)[0]
        dates = map_columns(raw, spec, file, settings).frame["date"]
        values = std.date(
            dates, fmt=spec.date_format, dayfirst=spec.dayfirst, min_date=settings.min_date
        ).value.dropna()
        values = values[values <= settings.latest_event()]  # a date in the future never sets the period
        if len(values):
            top = values.max().to_pydatetime().replace(tzinfo=None)
            newest = top if newest is None or top > newest else newest
    if newest is None:
        raise SourceError(
            "cannot find the last complete month: no transaction source has a valid date; "
            "set `period` in params/default.yaml or PERIOD=YYYY-MM"
        )
    ts = pd.Timestamp(newest)
    month = ts.to_period("M")
    complete = ts.normalize() == (ts + pd.offsets.MonthEnd(0)).normalize()
    return str(month if complete else month - 1)


def ingest_all(
    specs: dict[str, SourceSpec],
    raw_dir: Path,
    settings: IngestSettings,
    *,
    progress: bool = True,
    suppression: Suppression | None = None,
) -> dict[str, IngestResult]:
    """Ingest every source, with a progress bar; the results in declaration order.

    Erased people are left out: the suppression list in data/suppression/ (beside paths.raw), unless
    `suppression` is given. Party sources are read first, so that a transaction follows its party
    record out even when only that record's e-mail or tax id is on the list; then the sources whose
    file a party source has just parsed (each file is parsed once, and held only until its last
    source is done).
    """
    from tqdm.auto import tqdm

    from helpers import privacy_ops

    if suppression is None:
        suppression = privacy_ops.load_suppression(privacy_ops.suppression_dir(raw_dir))
    results: dict[str, IngestResult] = {}
    party_files = {parse_key(spec, raw_dir) for spec in specs.values() if spec.kind == "party"} - {None}
    ordered = sorted(
        specs.values(),
        key=lambda spec: (spec.kind != "party", parse_key(spec, raw_dir) not in party_files),
    )
    parsed = ParsedFiles(ordered, raw_dir)
    bar = tqdm(ordered, desc="ingest", unit="source", disable=not progress)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        results[spec.name] = ingest_source(spec, raw_dir, settings, suppression, parsed)
    return {name: results[name] for name in specs}


def accounting(results: dict[str, IngestResult]) -> pd.DataFrame:
    """One row per source: rows read, staged, rejected, field rejects, and whether it balances."""
    return pd.DataFrame([r.accounting() for r in results.values()])


def all_rejects(results: dict[str, IngestResult]) -> pd.DataFrame:
    frames = [r.rejects for r in results.values() if len(r.rejects)]
    return pd.concat(frames, ignore_index=True) if frames else _empty_rejects()


def reject_summary(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects counted by source, reason and action (row quarantined / field removed)."""
    if rejects.empty:
        return pd.DataFrame(columns=["source", "reason", "action", "count"])
    return (
        rejects.groupby(["source", "reason", "action"], as_index=False)
        .size()
        .rename(columns={"size": "count"})
        .sort_values("count", ascending=False, ignore_index=True)
    )


def save_results(results: dict[str, IngestResult], processed: Path, store_path: Path, period: str) -> dict:
    """Write staged/ and rejected/ Parquet per source (atomically) and the store tables; returns stats."""
    from helpers import store

    base = Path(processed) / period
    table = accounting(results)
    rejects = all_rejects(results)
    placeholders = pd.concat([r.placeholders for r in results.values()], ignore_index=True)
    extras = [r.extras for r in results.values() if r.extras is not None]
    extra_table = (
        pd.concat(extras, ignore_index=True)
        if extras
        else pd.DataFrame({c: pd.Series(dtype="string") for c in EXTRA_COLUMNS})
    )
    # each folder, and the store tables, change in one step (store.atomic_folder, one transaction)
    with store.atomic_folder(base / "staged") as staged, store.atomic_folder(base / "rejected") as rejected:
        for name, result in results.items():
            store.write_parquet(result.staged, staged / f"{name}.parquet")
            store.write_parquet(result.rejects, rejected / f"{name}.parquet")
        tables = {
            "ingest_accounting": table,
            "rejects": rejects,
            "placeholders": placeholders,
            EXTRA_COLUMNS_TABLE: extra_table,
        }
        store.save_tables(store_path, tables, period=period)
    return {
        "rows_in": int(table["rows_read"].sum()),
        "rows_out": int(table["records_staged"].sum()),
        "rows_rejected": int(table["rows_rejected"].sum()),
        "rows_filtered": int(table["rows_filtered"].sum()),
        "field_rejects": int(table["field_rejects"].sum()),
        "extra_values": len(extra_table),
        "sources": {
            row["source"]: {k: row[k] for k in ("rows_read", "rows_staged", "rows_rejected", "rows_filtered")}
            for row in table.to_dict("records")
        },
    }


def empty_staged(kind: str) -> pd.DataFrame:
    """A staged table of `kind` with no records: its columns and dtypes, for a kind no source has."""
    return _typed(pd.DataFrame({c: pd.Series(dtype=object) for c in schema.staged_columns(kind)}), kind)


def load_staged(processed: Path, period: str, specs: dict[str, SourceSpec], kind: str) -> pd.DataFrame:
    """All staged records of one kind for a period, concatenated (for the later stages); an empty
    table with the staged schema when no source of that kind is declared (every kind but a party
    source is optional)."""
    base = Path(processed) / period / "staged"
    if not any(spec.kind == kind for spec in specs.values()):
        return empty_staged(kind)
    frames = [
        pd.read_parquet(base / f"{name}.parquet")
        for name, spec in specs.items()
        if spec.kind == kind and (base / f"{name}.parquet").exists()
    ]
    if not frames:
        raise SourceError(f"no staged {kind} records in {base}; run the ingest stage for {period} first")
    return pd.concat(frames, ignore_index=True)
