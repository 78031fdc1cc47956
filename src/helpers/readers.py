"""Read one source as it comes (CSV in any encoding/delimiter, Excel, JSON, JSON lines, Parquet, SQL).

A reader returns every record as text, numbered by its position in the file, plus the records it
could not parse (ragged or truncated rows, broken JSON lines) so that ingest can quarantine them
with a reason. Nothing is dropped silently; a file that cannot be read at all raises a SourceError
that names the file and what was tried.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.config import SourceSpec, expand_env
from helpers.errors import SourceError

ROW = "__row__"  # 1-based record position in the file (header excluded)
ITEM = "__item__"  # 1-based position inside an exploded JSON list (record_path), else 0

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class RawRecords:
    """What a reader got from one source: parsed records as text, and the unparseable ones."""

    records: pd.DataFrame  # raw columns (object dtype) + ROW (+ ITEM)
    malformed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({ROW: pd.Series(dtype="int64"), "value": [], "reason": []})
    )
    encoding: str | None = None
    columns: list[str] = field(default_factory=list)  # the header / keys as found

    @property
    def rows_read(self) -> int:
        """Records read: parsed ones (counted once per file record) plus malformed ones."""
        parsed = self.records[ROW].nunique() if len(self.records) else 0
        return int(parsed + len(self.malformed))


#: Encodings considered when a source does not declare one (Western European business data).
CANDIDATE_ENCODINGS = ["utf_8", "cp1252", "iso8859_15", "latin_1", "utf_16", "cp850", "mac_roman"]
PLAUSIBLE = set("áéíóúüñçàèìòùâêîôûäëïöÁÉÍÓÚÜÑÇÀÈÌÒÙ€ºª¿¡·«»’“”–—")
BOMS = [(b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")]


def detect_encoding(path: Path, declared: str | None) -> str:
    """The declared encoding if it decodes the file, else a detected one; SourceError otherwise."""
    data = path.read_bytes()
    if declared:
        try:
            data.decode(declared)
        except LookupError:
            raise SourceError(f"{path}: unknown encoding {declared!r} in params/sources.yaml") from None
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SourceError(
                f"{path}: cannot decode as {declared!r} at byte {exc.start} (line {line}); fix `encoding` in "
                "params/sources.yaml or remove it to let the encoding be detected"
            ) from None
        if declared.lower().replace("_", "-") in ("utf-8", "utf8") and data.startswith(BOMS[0][0]):
            return "utf-8-sig"
        return declared
    for bom, name in BOMS:
        if data.startswith(bom):
            return name
    tried = ["utf-8"]
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # charset-normalizer alone often mistakes short cp1252 Spanish text for cp850 or a CJK code page,
    # so first score the Western candidates by how much of the text reads as Spanish/Latin script.
    sample = data[:500_000]
    scored = []
    for enc in CANDIDATE_ENCODINGS[1:]:
        try:
            text = sample.decode(enc)
        except UnicodeDecodeError:
            continue
        plausible = sum(1 for ch in text if ch in PLAUSIBLE or ch.isascii() and (ch.isprintable() or ch in "\r\n\t"))
        scored.append((plausible / max(len(text), 1), -CANDIDATE_ENCODINGS.index(enc), enc))
    if scored and max(scored)[0] > 0.995:
        enc = max(scored)[2]
        try:
            data.decode(enc)
            return enc
        except UnicodeDecodeError:
            tried.append(enc)
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    for enc in ([best.encoding] if best is not None else []) + ["cp1252", "latin_1"]:
        tried.append(enc)
        try:
            data.decode(enc)
            return enc
        except UnicodeDecodeError:
            continue
    raise SourceError(f"{path}: cannot decode the file; tried encodings {tried}")  # pragma: no cover (latin-1)


def _dedupe_header(header: list[str], path: Path) -> list[str]:
    cleaned = [h.strip().lstrip("\ufeff") for h in header]
    if not any(cleaned):
        raise SourceError(f"{path}: the header row is empty; expected column names on the first line")
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(cleaned):
        name = h or f"unnamed_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def read_csv(path: Path, spec: SourceSpec) -> RawRecords:
    """CSV with the declared delimiter/encoding; ragged rows are returned as malformed."""
    encoding = detect_encoding(path, spec.encoding)
    text = path.read_text(encoding=encoding)
    if not text.strip():
        raise SourceError(f"{path}: the file is empty; expected a header row and records")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise SourceError(f"{path}: cannot parse the header: {exc}") from None
    header = _dedupe_header(header, path)
    width = len(header)
    good: list[list[str]] = []
    rows: list[int] = []
    bad_rows: list[int] = []
    bad_values: list[str] = []
    bad_reasons: list[str] = []
    n = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            n += 1
            bad_rows.append(n)
            bad_values.append("")
            bad_reasons.append(f"malformed_row: {exc}")
            continue
        if not record:  # a blank line is not a record
            continue
        n += 1
        if len(record) == width:
            good.append(record)
            rows.append(n)
        else:
            bad_rows.append(n)
            bad_values.append(spec.delimiter.join(record)[:500])
            bad_reasons.append(f"malformed_row: {len(record)} fields, expected {width}")
    records = pd.DataFrame(good, columns=header, dtype=object) if good else pd.DataFrame(columns=header, dtype=object)
    records[ROW] = pd.array(rows, dtype="int64")
    malformed = pd.DataFrame({ROW: pd.array(bad_rows, dtype="int64"), "value": bad_values, "reason": bad_reasons})
    return RawRecords(records, malformed, encoding, header)


def read_excel(path: Path, spec: SourceSpec) -> RawRecords:
    sheet = spec.sheet if spec.sheet is not None else 0
    try:
        book = pd.ExcelFile(path)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise SourceError(f"{path}: cannot open as an Excel workbook: {exc}") from None
    if isinstance(sheet, str) and sheet not in book.sheet_names:
        raise SourceError(f"{path}: no sheet {sheet!r}; the workbook has {book.sheet_names} (set `sheet`)")
    frame = book.parse(sheet_name=sheet, dtype=object, header=0)
    frame.columns = _dedupe_header([str(c) if not str(c).startswith("Unnamed:") else "" for c in frame.columns], path)
    frame = frame.dropna(how="all")  # fully empty rows (e.g. below merged cells) are not records
    frame[ROW] = (frame.index.to_numpy() + 1).astype("int64")
    return RawRecords(frame.reset_index(drop=True), columns=list(frame.columns[:-1]))


def _flatten(records: list[dict], parent_rows: list[int]) -> pd.DataFrame:
    frame = pd.json_normalize(records, sep=".") if records else pd.DataFrame()
    frame[ROW] = pd.array(parent_rows, dtype="int64")
    return frame


def _json_records(path: Path, spec: SourceSpec, lines: bool) -> tuple[list[dict], list[int], pd.DataFrame]:
    encoding = detect_encoding(path, spec.encoding)
    text = path.read_text(encoding=encoding)
    good: list[dict] = []
    rows: list[int] = []
    bad_rows: list[int] = []
    bad_values: list[str] = []
    bad_reasons: list[str] = []
    if lines:
        n = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            n += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append(f"malformed_row: invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append(f"malformed_row: expected a JSON object, found {type(obj).__name__}")
                continue
            good.append(obj)
            rows.append(n)
    else:
        if not text.strip():
            raise SourceError(f"{path}: the file is empty; expected a JSON array of objects")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(
                f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                "expected a JSON array of objects (use format: jsonl for one object per line)"
            ) from None
        if isinstance(data, dict):
            lists = [k for k, v in data.items() if isinstance(v, list)]
            if len(lists) == 1:
                data = data[lists[0]]
            else:
                raise SourceError(f"{path}: expected a JSON array of objects, found an object with keys {list(data)[:10]}")
        if not isinstance(data, list):
            raise SourceError(f"{path}: expected a JSON array of objects, found {type(data).__name__}")
        for i, obj in enumerate(data, start=1):
            if isinstance(obj, dict):
                good.append(obj)
                rows.append(i)
            else:
                bad_rows.append(i)
                bad_values.append(json.dumps(obj, ensure_ascii=False)[:500])
                bad_reasons.append(f"malformed_row: expected a JSON object, found {type(obj).__name__}")
    malformed = pd.DataFrame({ROW: pd.array(bad_rows, dtype="int64"), "value": bad_values, "reason": bad_reasons})
    return good, rows, malformed


def read_json(path: Path, spec: SourceSpec, lines: bool) -> RawRecords:
    """JSON array or JSON lines; nested objects become dotted columns, `record_path` lists become rows."""
    objs, rows, malformed = _json_records(path, spec, lines)
    if spec.record_path:
        key = spec.record_path
        items: list[dict] = []
        item_rows: list[int] = []
        item_pos: list[int] = []
        parents: list[dict] = []
        for obj, row in zip(objs, rows, strict=True):
            children = obj.get(key)
            if not isinstance(children, list) or not children:
                malformed.loc[len(malformed)] = [row, json.dumps(obj, ensure_ascii=False)[:500],
                                                 f"malformed_row: no list in {key!r}"]
                continue
            parent = {k: v for k, v in obj.items() if k != key}
            for pos, child in enumerate(children, start=1):
                parents.append(parent)
                items.append(child if isinstance(child, dict) else {"value": child})
                item_rows.append(row)
                item_pos.append(pos)
        frame = _flatten(parents, item_rows)
        child_frame = pd.json_normalize(items, sep=".") if items else pd.DataFrame()
        child_frame.columns = [f"{key}.{c}" for c in child_frame.columns]
        frame = pd.concat([frame.reset_index(drop=True), child_frame.reset_index(drop=True)], axis=1)
        frame[ITEM] = pd.array(item_pos, dtype="int64")
        malformed[ROW] = malformed[ROW].astype("int64")
    else:
        frame = _flatten(objs, rows)
    frame = frame.astype({c: object for c in frame.columns if c not in (ROW, ITEM)})
    return RawRecords(frame, malformed, columns=[c for c in frame.columns if c not in (ROW, ITEM)])


def read_parquet(path: Path, spec: SourceSpec) -> RawRecords:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise SourceError(f"{path}: cannot read as Parquet: {exc}") from None
    frame = frame.astype(object)
    frame[ROW] = pd.array(range(1, len(frame) + 1), dtype="int64")
    return RawRecords(frame, columns=list(frame.columns[:-1]))


def read_sql(spec: SourceSpec, raw_dir: Path) -> RawRecords:
    import sqlalchemy

    url = expand_env(spec.url or "", {"SCV_RAW_DIR": str(raw_dir)})
    where = spec.location(raw_dir)
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        if not db.exists():
            raise SourceError(f"{spec.name}: SQLite database {db} not found (url {where})")
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as con:
            frame = pd.read_sql(sqlalchemy.text(spec.query or ""), con)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        raise SourceError(f"{spec.name}: cannot read from {where}: {reason}") from None
    frame = frame.astype(object)
    frame[ROW] = pd.array(range(1, len(frame) + 1), dtype="int64")
    return RawRecords(frame, columns=list(frame.columns[:-1]))


def read_source(spec: SourceSpec, raw_dir: Path) -> RawRecords:
    """Read a source per its declaration; SourceError with the file and the reason if impossible."""
    if spec.format == "sql":
        return read_sql(spec, raw_dir)
    path = Path(raw_dir) / (spec.path or "")
    if not path.exists():
        raise SourceError(f"{spec.name}: file {path} not found (sources.{spec.name}.path in params/sources.yaml)")
    if spec.format == "csv":
        return read_csv(path, spec)
    if spec.format == "excel":
        return read_excel(path, spec)
    if spec.format in ("json", "jsonl"):
        return read_json(path, spec, lines=spec.format == "jsonl")
    return read_parquet(path, spec)


def input_files(specs: dict[str, SourceSpec], raw_dir: Path) -> list[Path]:
    """Every raw file the sources read (for fingerprints), in a stable order."""
    files: set[Path] = set()
    for spec in specs.values():
        if spec.path:
            files.add(Path(raw_dir) / spec.path)
        elif spec.url and spec.url.startswith("sqlite:///"):
            files.add(Path(expand_env(spec.url, {"SCV_RAW_DIR": str(raw_dir)}).removeprefix("sqlite:///")))
    return sorted(files)
