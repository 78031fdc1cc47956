"""Ingest: read each source, map it to the canonical schema, standardise, validate, quarantine.

`ingest_source` is the whole stage for one source: it returns the staged records, the rejects and the
row accounting. A bad value in an optional field (an IBAN with a wrong checksum, say) is removed
from the staged record and listed as a field reject; a record whose required fields are unusable, or
that is malformed or an exact duplicate, is quarantined whole as a row reject. Either way the reject
names the source, file, row, column, raw value and reason. Rows read = rows staged + rows rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pandera.pandas as pa

from helpers import schema
from helpers import standardise as std
from helpers.config import IngestSettings, SourceSpec
from helpers.errors import AccountingError, SourceError
from helpers.readers import ITEM, ROW, ParsedFiles, RawRecords, parse_key, read_source

if TYPE_CHECKING:
    from helpers.privacy_ops import Suppression

REJECT_COLUMNS = ["source", "file", "row_number", "column", "value", "reason", "action"]

#: Columns standardised with a dedicated field standardiser (others go by logical type).
FIELD_STANDARDISERS = {
    "tax_id": std.tax_id,
    "iban": std.iban,
    "email": std.email,
    "postcode": std.postcode,
}
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
            "records_staged": len(self.staged),
            "field_rejects": int((self.rejects["action"] == "field").sum()),
            "balanced": self.rows_read == self.rows_staged + self.rows_rejected,
        }


def _empty_rejects(columns: list[str] = REJECT_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row_number" else "object") for c in columns})


def map_columns(raw: RawRecords, spec: SourceSpec, file: str) -> pd.DataFrame:
    """Canonical columns (as raw text) from a source's raw columns, per its `columns` mapping."""
    available = set(raw.columns)
    missing = [c for c in spec.raw_columns() if c not in available]
    if missing and not len(raw.records) and not raw.columns:
        # no record parsed (an empty JSON array, only broken JSON lines): there are no keys to check
        # the mapping against; the source has zero good records, its broken ones are quarantined
        raw.records = raw.records.assign(**{c: pd.Series(dtype=object) for c in missing})
        missing = []
    if missing:
        wanted = {
            k: v
            for k, v in spec.columns.items()
            if (v in missing if isinstance(v, str) else set(v) & set(missing))
        }
        raise SourceError(
            f"{file}: column(s) {missing} not found (mapped in sources.{spec.name}.columns as {wanted}); "
            f"the source has: {sorted(available)[:40]}"
        )
    frame = raw.records
    out = pd.DataFrame(index=frame.index)
    for canonical, source_col in spec.columns.items():
        if isinstance(source_col, str):
            out[canonical] = frame[source_col]
        else:
            parts = frame[list(source_col)].astype("string").fillna("")
            joined = parts.apply(lambda r: " ".join(v.strip() for v in r if v.strip()), axis=1)
            out[canonical] = joined.where(joined != "", None).astype(object)
    for canonical, value in spec.constants.items():
        out[canonical] = value
    return out


def _raw_column(spec: SourceSpec, canonical: str) -> str:
    raw = spec.columns.get(canonical)
    if raw is None:
        return f"(constant {canonical})"
    return raw if isinstance(raw, str) else "+".join(raw)


def _parse(column: str, logical: str, values: pd.Series, spec: SourceSpec, settings: IngestSettings):
    """Standardise one canonical column; returns the Standardised result."""
    marks = settings.placeholders
    if column in FIELD_STANDARDISERS:
        return FIELD_STANDARDISERS[column](values, placeholders=marks)
    if column == "phone":
        return std.phone(values, default_country=settings.default_country, placeholders=marks)
    if column == "country":
        return std.country(values, placeholders=marks)
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


def _derive_party(staged: pd.DataFrame) -> pd.DataFrame:
    """Fill the derived name columns, the full name, the party type and the province."""
    # a source that only gives a full name ("María del Carmen Prados García") is split
    only_full = staged["full_name"].notna() & staged["given_name"].isna() & staged["family_names"].isna()
    tax_kind = std.tax_id_kind(staged["tax_id"])
    legal_form = staged["full_name"].astype("string").str.contains(COMPANY_SUFFIX, na=False)
    company = tax_kind.eq("cif") | legal_form
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
    province = std.province_from_postcode(staged["postcode"])
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


def standardise_source(
    mapped: pd.DataFrame, raw: RawRecords, spec: SourceSpec, settings: IngestSettings, file: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Canonical, typed, standardised records + rejects (field and row) + placeholder counts."""
    kind_schema = schema.KINDS[spec.kind]
    required = schema.REQUIRED[spec.kind]
    rows = raw.records[ROW].to_numpy()
    staged = pd.DataFrame(index=mapped.index)
    reject_parts: list[pd.DataFrame] = []
    placeholder_counts: dict[str, int] = {}
    row_bad = pd.Series(False, index=mapped.index)

    for column, logical in kind_schema.items():
        if column not in mapped:
            staged[column] = None
            continue
        result = _parse(column, logical, mapped[column], spec, settings)
        staged[column] = result.value
        n_placeholder = int(result.placeholder.sum()) if result.placeholder is not None else 0
        if n_placeholder:
            placeholder_counts[column] = n_placeholder
        bad = result.reason.notna()
        empty_required = column in required and column in spec.columns
        if empty_required:
            missing = result.value.isna() & ~bad
            if missing.any():
                reject_parts.append(
                    pd.DataFrame(
                        {
                            "row_number": rows[missing.to_numpy()],
                            "column": _raw_column(spec, column),
                            "value": "",
                            "reason": "missing_required",
                            "action": "row",
                        }
                    )
                )
                row_bad |= missing
        if bad.any():
            action = "row" if column in required else "field"
            reject_parts.append(
                pd.DataFrame(
                    {
                        "row_number": rows[bad.to_numpy()],
                        "column": _raw_column(spec, column),
                        "value": mapped.loc[bad, column].astype(str).str.slice(0, 500).to_numpy(),
                        "reason": result.reason[bad].to_numpy(),
                        "action": action,
                    }
                )
            )
            if action == "row":
                row_bad |= bad

    if "quantity" in staged:
        negative = staged["quantity"].lt(0).fillna(False)
        if negative.any():
            reject_parts.append(
                pd.DataFrame(
                    {
                        "row_number": rows[negative.to_numpy()],
                        "column": _raw_column(spec, "quantity"),
                        "value": mapped.loc[negative, "quantity"].astype(str).to_numpy(),
                        "reason": "negative_quantity",
                        "action": "row",
                    }
                )
            )
            row_bad |= negative

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
        staged = _derive_party(staged)
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
    mapped = map_columns(raw, spec, str(Path(raw_dir) / spec.path) if spec.path else file)
    staged, rejects, placeholders = standardise_source(mapped, raw, spec, settings, file)
    suppressing = suppression is not None and len(suppression) > 0
    if suppressing:
        staged, rejects = _suppress(staged, rejects, spec, file, suppression)
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
        raw.rows_read,
        rows_rejected,
        placeholders,
    )
    if result.rows_read != result.rows_staged + result.rows_rejected:
        raise AccountingError(
            f"{spec.name}: read {result.rows_read} rows but staged {result.rows_staged} and rejected "
            f"{result.rows_rejected}; rows would be lost"
        )
    return result


def detect_period(specs: dict[str, SourceSpec], raw_dir: Path, settings: IngestSettings) -> str:
    """The last complete month in the data: from the newest transaction date across sources."""
    newest: datetime | None = None
    for spec in specs.values():
        if spec.kind != "transaction":
            continue
        raw = read_source(spec, raw_dir)
        col = spec.columns["date"]
        values = std.date(
            raw.records[col], fmt=spec.date_format, dayfirst=spec.dayfirst, min_date=settings.min_date
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
    # each folder, and the store tables, change in one step (store.atomic_folder, one transaction)
    with store.atomic_folder(base / "staged") as staged, store.atomic_folder(base / "rejected") as rejected:
        for name, result in results.items():
            store.write_parquet(result.staged, staged / f"{name}.parquet")
            store.write_parquet(result.rejects, rejected / f"{name}.parquet")
        tables = {"ingest_accounting": table, "rejects": rejects, "placeholders": placeholders}
        store.save_tables(store_path, tables, period=period)
    return {
        "rows_in": int(table["rows_read"].sum()),
        "rows_out": int(table["records_staged"].sum()),
        "rows_rejected": int(table["rows_rejected"].sum()),
        "field_rejects": int(table["field_rejects"].sum()),
        "sources": {
            row["source"]: {k: row[k] for k in ("rows_read", "rows_staged", "rows_rejected")}
            for row in table.to_dict("records")
        },
    }


def load_staged(processed: Path, period: str, specs: dict[str, SourceSpec], kind: str) -> pd.DataFrame:
    """All staged records of one kind for a period, concatenated (for the later stages)."""
    base = Path(processed) / period / "staged"
    frames = [
        pd.read_parquet(base / f"{name}.parquet")
        for name, spec in specs.items()
        if spec.kind == kind and (base / f"{name}.parquet").exists()
    ]
    if not frames:
        raise SourceError(f"no staged {kind} records in {base}; run the ingest stage for {period} first")
    return pd.concat(frames, ignore_index=True)
