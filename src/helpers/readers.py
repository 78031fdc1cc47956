"""Read one source as it comes (CSV in any encoding/delimiter, Excel, JSON, JSON lines, Parquet, SQL).

A reader returns every record as text, numbered by its position in the file, plus the records it
could not parse (ragged or truncated rows, broken JSON lines) so that ingest can quarantine them
with a reason. Nothing is dropped silently; a file that cannot be read at all raises a SourceError
that names the file and what was tried.

A file that several sources map (web orders -> customers and order lines, say) is parsed once per
run: `ParsedFiles` keeps the parse for the sources still to come and drops it after the last one.
Excel is read with calamine (Rust), its cells handed over as openpyxl gives them (datetime, not
pandas Timestamp); JSON objects are flattened to dotted columns as `pandas.json_normalize` does.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import config
from helpers.config import SourceSpec, expand_env
from helpers.errors import ConfigError, SourceError

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
    #: results worked out once per parsed file, shared by the sources that map it (ingest keys them)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows_read(self) -> int:
        """Records read: parsed ones (counted once per file record) plus malformed ones."""
        parsed = self.records[ROW].nunique() if len(self.records) else 0
        return int(parsed + len(self.malformed))


#: Encodings considered when a source does not declare one (Western European business data).
#: UTF-16 without a byte-order mark is named by its byte order: the "utf_16" codec refuses such a stream.
CANDIDATE_ENCODINGS = [
    "utf_8",
    "cp1252",
    "iso8859_15",
    "latin_1",
    "utf_16_le",
    "utf_16_be",
    "cp850",
    "mac_roman",
]
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
        except UnicodeError as exc:  # UnicodeDecodeError, or a UTF-16/32 stream the codec refuses
            start = getattr(exc, "start", 0)
            line = data[:start].count(b"\n") + 1
            bom = next((name for mark, name in BOMS if data.startswith(mark)), None)
            hint = f" (the file starts with a {bom} byte-order mark)" if bom else ""
            raise SourceError(
                f"{path}: cannot decode as {declared!r} at byte {start} (line {line}){hint}; fix `encoding` in "
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
        plausible = sum(
            1 for ch in text if ch in PLAUSIBLE or ch.isascii() and (ch.isprintable() or ch in "\r\n\t")
        )
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
    raise SourceError(
        f"{path}: cannot decode the file; tried encodings {tried}"
    )  # pragma: no cover (latin-1)


def read_text(path: Path, encoding: str, *, universal_newlines: bool = True) -> str:
    """The file decoded as `encoding` (as detect_encoding checked it), with universal newlines unless
    told otherwise (in JSON lines only "\n" ends a line).

    Decoding the bytes in one go, rather than through a text stream, accepts exactly what
    detect_encoding accepted (a stream decoder refuses, for one, UTF-16 without a byte-order mark).
    """
    text = path.read_bytes().decode(encoding)
    return text.replace("\r\n", "\n").replace("\r", "\n") if universal_newlines else text


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
    text = read_text(path, encoding)
    if not text.strip():
        raise SourceError(f"{path}: the file is empty; expected a header row and records")
    lines = io.StringIO(text, newline="").readlines()  # physical lines, to re-read a record a quote ran over
    lines, skipped = _csv_layout(lines, spec, path)
    reader = csv.reader(lines, delimiter=spec.delimiter)
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
    n = skipped  # rows skipped after the header keep their numbers: row n is line header + n
    start = reader.line_num  # lines consumed before the current record
    n_lines = len(lines)
    plain = '"' not in text and "\x00" not in text
    if plain:
        # no quotes: the csv module would split each line at the delimiter; str.split does it in a
        # fraction of the time (a blank line is not a record, a short or long one is malformed)
        delimiter = spec.delimiter
        for line in lines[start:]:
            if line == "\n":
                continue
            record = line.removesuffix("\n").split(delimiter)
            n += 1
            if len(record) == width:
                good.append(record)
                rows.append(n)
            else:
                bad_rows.append(n)
                bad_values.append(line.removesuffix("\n")[:500])
                bad_reasons.append(f"malformed_row: {len(record)} fields, expected {width}")
    while not plain:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            n += 1
            bad_rows.append(n)
            bad_values.append("")
            bad_reasons.append(f"malformed_row: {exc}")
            start = reader.line_num
            continue
        end = reader.line_num
        if end - start == 1 and len(record) == width and end != n_lines:
            # the common case, a whole record on one line that is not the last: no checks below apply
            n += 1
            good.append(record)
            rows.append(n)
            start = end
            continue
        span = lines[start:end]
        first_line, start = start + 1, reader.line_num
        if not record:  # a blank line is not a record
            continue
        at_end = reader.line_num == len(lines)
        unterminated = at_end and _unterminated(span, spec.delimiter)
        if (
            len(span) > 1
            and (unterminated or len(record) != width)
            and _swallowed_records(span, width, spec.delimiter)
        ):
            # a stray quote ran over whole records: the csv module read them into one field. Each line
            # is counted as a record of its own and the line that opened the quote is quarantined. When
            # the quote is never closed the following lines are records (kept if whole); when it closes
            # later, nothing tells which line is which, so all of them are quarantined.
            for k, line in enumerate(span):
                if not line.strip():
                    continue
                n += 1
                fields = _one_line(line, spec.delimiter)
                if unterminated and k > 0 and fields is not None and len(fields) == width:
                    good.append(fields)
                    rows.append(n)
                else:
                    bad_rows.append(n)
                    bad_values.append(line.rstrip("\n")[:500])
                    bad_reasons.append(
                        f"malformed_row: unbalanced quote (a quoted field opened on line {first_line} "
                        f"runs over {len(span)} lines)"
                    )
            continue
        n += 1
        if unterminated:
            bad_rows.append(n)
            bad_values.append("".join(span)[:500])
            bad_reasons.append(
                f"malformed_row: a quoted field opened on line {first_line} is not closed at the "
                "end of the file (truncated?)"
            )
        elif len(record) == width:
            good.append(record)
            rows.append(n)
        else:
            bad_rows.append(n)
            bad_values.append(spec.delimiter.join(record)[:500])
            bad_reasons.append(f"malformed_row: {len(record)} fields, expected {width}")
    records = (
        pd.DataFrame(good, columns=header, dtype=object)
        if good
        else pd.DataFrame(columns=header, dtype=object)
    )
    records[ROW] = pd.array(rows, dtype="int64")
    malformed = pd.DataFrame(
        {ROW: pd.array(bad_rows, dtype="int64"), "value": bad_values, "reason": bad_reasons}
    )
    return RawRecords(records, malformed, encoding, header)


def _has_layout(spec: SourceSpec) -> bool:
    return bool(spec.header_row or spec.find_header or spec.skip_rows or spec.footer_rows)


def _holds_header(cells: list[object], wanted: list[str]) -> bool:
    names = {str(c).strip().lstrip("\ufeff").casefold() for c in cells if c is not None and not pd.isna(c)}
    return all(str(w).strip().casefold() in names for w in wanted)


def _header_index(rows: list[list[object]], spec: SourceSpec, path: Path, unit: str) -> int:
    """0-based position of the header among `rows` (`header_row`, or the first row holding every
    `find_header` name)."""
    if spec.find_header:
        for i, cells in enumerate(rows[: config.FIND_HEADER_ROWS]):
            if _holds_header(cells, spec.find_header):
                return i
        raise SourceError(
            f"{path}: no {unit} among the first {config.FIND_HEADER_ROWS} holds all of {spec.find_header} "
            f"(sources.{spec.name}.find_header); check the names or set `header_row`"
        )
    h = (spec.header_row or 1) - 1
    if h >= len(rows):
        raise SourceError(
            f"{path}: header_row {spec.header_row} is past the end ({len(rows)} {unit}s) "
            f"(sources.{spec.name}.header_row)"
        )
    return h


def _csv_layout(lines: list[str], spec: SourceSpec, path: Path) -> tuple[list[str], int]:
    """The lines from the header on, without `skip_rows` lines after it and `footer_rows` lines at the end
    (trailing blank lines aside); and how many lines were skipped after the header."""
    if not _has_layout(spec):
        return lines, 0
    h = _header_index(
        [next(csv.reader([line], delimiter=spec.delimiter), []) for line in lines[: config.FIND_HEADER_ROWS]]
        if spec.find_header
        else lines,
        spec,
        path,
        "line",
    )
    end = len(lines)
    while end > h + 1 and not lines[end - 1].strip():
        end -= 1
    end = max(end - spec.footer_rows, h + 1)
    skip = min(spec.skip_rows, end - h - 1)
    return [lines[h], *lines[h + 1 + skip : end]], skip


def _excel_layout(frame: pd.DataFrame, spec: SourceSpec, path: Path) -> pd.DataFrame:
    """A sheet read without a header, cut to its header row, records and footer: the header row's
    cells become the column names and the index counts rows from the header (0 = the first below)."""
    rows = (
        frame.iloc[: config.FIND_HEADER_ROWS].to_numpy(dtype=object).tolist()
        if spec.find_header
        else frame.index
    )
    h = _header_index(rows, spec, path, "row")
    header = ["" if pd.isna(v) else v for v in frame.iloc[h].tolist()]
    body = frame.iloc[h + 1 :]
    filled = np.flatnonzero(body.notna().any(axis=1).to_numpy())
    end = (filled[-1] + 1) if len(filled) else 0
    end = max(end - spec.footer_rows, 0)
    body = body.iloc[min(spec.skip_rows, end) : end].copy()
    body.columns = header
    body.index = body.index - h - 1
    return body


def _one_line(line: str, delimiter: str) -> list[str] | None:
    """The fields of one physical line read alone; None when a quoted field on it is not closed."""
    if _unterminated([line], delimiter):
        return None
    return next(csv.reader([line], delimiter=delimiter), [])


def _unterminated(span: list[str], delimiter: str) -> bool:
    """True when a quoted field in these lines is still open at their end."""
    try:
        for _ in csv.reader(span, delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _swallowed_records(span: list[str], width: int, delimiter: str) -> bool:
    """True when a broken record read over several lines holds lines that are whole records themselves.

    Called only for a record already known to be broken (wrong width, or a quote open at the end of
    the file): a stray quote makes the csv module read the following records into one field until
    the next quote or the end of the file, and those lines are `width` fields long on their own; the
    continuation of a legitimate multi-line field rarely is. With fewer than three columns the test
    cannot tell the two apart, so it is not made.
    """
    if width < 3:
        return False
    return any(len(fields) == width for line in span[1:] if (fields := _one_line(line, delimiter)))


def _excel_engine() -> str:
    """calamine when python-calamine is installed (ten times faster than openpyxl), else openpyxl."""
    try:
        import python_calamine  # noqa: F401
    except ImportError:  # pragma: no cover - python-calamine is a dependency
        return "openpyxl"
    return "calamine"


def _as_openpyxl_cell(value: object) -> object:
    """A calamine cell as openpyxl gives it: pandas turns calamine's dates into Timestamp/Timedelta."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    return value


def read_excel(path: Path, spec: SourceSpec, engine: str | None = None) -> RawRecords:
    """One sheet, header on its first non-blank row; fully empty rows are not records."""
    sheet = spec.sheet if spec.sheet is not None else 0
    engine = engine or _excel_engine()
    try:
        book = pd.ExcelFile(path, engine=engine)
    except Exception as exc:  # the engines raise many types for broken files
        raise SourceError(f"{path}: cannot open as an Excel workbook: {exc}") from None
    with book:
        if isinstance(sheet, str) and sheet not in book.sheet_names:
            raise SourceError(
                f"{path}: no sheet {sheet!r}; the workbook has {book.sheet_names} (set `sheet`)"
            )
        if isinstance(sheet, int) and not 0 <= sheet < len(book.sheet_names):
            raise SourceError(
                f"{path}: no sheet number {sheet} (counted from 0); the workbook has "
                f"{len(book.sheet_names)} sheet(s) {book.sheet_names} (set `sheet`)"
            )
        try:
            frame = book.parse(sheet_name=sheet, dtype=object, header=None if _has_layout(spec) else 0)
        except Exception as exc:  # a damaged sheet inside a readable workbook
            raise SourceError(f"{path}: cannot read sheet {sheet!r}: {exc}") from None
    if _has_layout(spec):
        frame = _excel_layout(frame, spec, path)
    if engine == "calamine":
        for i in range(frame.shape[1]):
            values = frame.iloc[:, i].to_numpy(dtype=object)
            if any(isinstance(v, pd.Timestamp | pd.Timedelta) for v in values):
                cells = np.empty(len(values), dtype=object)
                cells[:] = [_as_openpyxl_cell(v) for v in values]
                frame.isetitem(i, pd.Series(cells, index=frame.index, dtype=object))  # no inference
        frame.columns = [_as_openpyxl_cell(c) for c in frame.columns]
    frame.columns = _dedupe_header(
        [str(c) if not str(c).startswith("Unnamed:") else "" for c in frame.columns], path
    )
    frame = frame.dropna(how="all")  # fully empty rows (e.g. below merged cells) are not records
    frame[ROW] = (frame.index.to_numpy() + 1).astype("int64")
    return RawRecords(frame.reset_index(drop=True), columns=list(frame.columns[:-1]))


def _flat_into(obj: dict, prefix: str, out: dict) -> None:
    for key, value in obj.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flat_into(value, name, out)
        else:
            out[name] = value


def _flat_record(obj: dict) -> dict:
    """One JSON object with its nested objects as dotted keys, exactly as `pandas.json_normalize`
    flattens it (its scalars first, then the nested keys; an empty object gives no key), in a third
    of the time."""
    top: dict = {}
    nested: dict = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            _flat_into(value, key, nested)
        else:
            top[key] = value
    if nested:
        top.update(nested)
    return top


def _normalized(records: list[dict]) -> pd.DataFrame:
    """The frame `pandas.json_normalize(records, sep=".")` makes (same columns, dtypes and values)."""
    return pd.DataFrame([_flat_record(r) for r in records]) if records else pd.DataFrame()


def _flatten(records: list[dict], parent_rows: list[int]) -> pd.DataFrame:
    frame = _normalized(records)
    frame[ROW] = pd.array(parent_rows, dtype="int64")
    return frame


def _json_records(path: Path, spec: SourceSpec, lines: bool) -> tuple[list[dict], list[int], pd.DataFrame]:
    encoding = detect_encoding(path, spec.encoding)
    text = read_text(path, encoding, universal_newlines=False)
    good: list[dict] = []
    rows: list[int] = []
    bad_rows: list[int] = []
    bad_values: list[str] = []
    bad_reasons: list[str] = []
    if lines:
        if not text.strip():
            raise SourceError(f"{path}: the file is empty; expected one JSON object per line")
        n = 0
        # only "\n" ends a JSON line: str.splitlines() would also split at U+2028, U+0085 and the like,
        # which JSON allows unescaped inside strings
        for line in text.split("\n"):
            line = line.removesuffix("\r")
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
            except RecursionError:
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append("malformed_row: JSON nested too deeply")
                continue
            if _lone_surrogate(obj, line):
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append("malformed_row: invalid unicode escape (a lone surrogate \\ud800-\\udfff)")
                continue
            if not isinstance(obj, dict):
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append(f"malformed_row: expected a JSON object, found {type(obj).__name__}")
                continue
            good.append(obj)
            rows.append(n)
        if not good and text.lstrip().startswith(("[", "{")):
            try:
                json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                pass
            else:
                raise SourceError(
                    f"{path}: the file is one JSON document (a JSON array or object over several "
                    "lines), not one JSON object per line; use format: json"
                )
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
        except RecursionError:
            raise SourceError(
                f"{path}: not readable: the JSON is nested too deeply; expected a JSON array of objects"
            ) from None
        if isinstance(data, dict):
            lists = [k for k, v in data.items() if isinstance(v, list)]
            if len(lists) == 1:
                data = data[lists[0]]
            else:
                raise SourceError(
                    f"{path}: expected a JSON array of objects, found an object with keys {list(data)[:10]}"
                )
        if not isinstance(data, list):
            raise SourceError(f"{path}: expected a JSON array of objects, found {type(data).__name__}")
        check_unicode = bool(_SURROGATE_ESCAPE.search(text))
        for i, obj in enumerate(data, start=1):
            if check_unicode and _lone_surrogate(obj, "\\ud800"):
                bad_rows.append(i)
                bad_values.append(json.dumps(obj, ensure_ascii=True)[:500])
                bad_reasons.append("malformed_row: invalid unicode escape (a lone surrogate \\ud800-\\udfff)")
            elif isinstance(obj, dict):
                good.append(obj)
                rows.append(i)
            else:
                bad_rows.append(i)
                bad_values.append(json.dumps(obj, ensure_ascii=False)[:500])
                bad_reasons.append(f"malformed_row: expected a JSON object, found {type(obj).__name__}")
    malformed = pd.DataFrame(
        {ROW: pd.array(bad_rows, dtype="int64"), "value": bad_values, "reason": bad_reasons}
    )
    return good, rows, malformed


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(obj: object, raw: str) -> bool:
    """True when the parsed JSON holds a lone surrogate (from an escape such as "\\ud800"), which no
    text encoding can store; checked only when the raw text has such an escape."""
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_json(
    path: Path,
    spec: SourceSpec,
    lines: bool,
    parsed: tuple[list[dict], list[int], pd.DataFrame] | None = None,
) -> RawRecords:
    """JSON array or JSON lines; nested objects become dotted columns, `record_path` lists become rows.

    `parsed` is the file as `_json_records` parsed it (shared with other sources; not modified).
    """
    objs, rows, malformed = parsed if parsed is not None else _json_records(path, spec, lines)
    malformed = malformed.copy()
    if spec.record_path:
        key = spec.record_path
        items: list[dict] = []
        item_rows: list[int] = []
        item_pos: list[int] = []
        parents: list[dict] = []
        parent_of_item: list[int] = []
        for obj, row in zip(objs, rows, strict=True):
            children = obj.get(key)
            if not isinstance(children, list) or not children:
                malformed.loc[len(malformed)] = [
                    row,
                    json.dumps(obj, ensure_ascii=False)[:500],
                    f"malformed_row: no list in {key!r}",
                ]
                continue
            parents.append({k: v for k, v in obj.items() if k != key})
            for pos, child in enumerate(children, start=1):
                parent_of_item.append(len(parents) - 1)
                items.append(child if isinstance(child, dict) else {"value": child})
                item_rows.append(row)
                item_pos.append(pos)
        # each parent is flattened once and repeated for its items: every parent has an item, so the
        # columns and dtypes are those of the frame of one parent per item
        frame = _normalized(parents)
        frame = frame.take(parent_of_item).reset_index(drop=True)
        frame[ROW] = pd.array(item_rows, dtype="int64")
        child_frame = _normalized(items)
        child_frame.columns = [f"{key}.{c}" for c in child_frame.columns]
        frame = pd.concat([frame.reset_index(drop=True), child_frame.reset_index(drop=True)], axis=1)
        frame[ITEM] = pd.array(item_pos, dtype="int64")
        malformed[ROW] = malformed[ROW].astype("int64")
    else:
        frame = _flatten(objs, rows)
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names):  # {"a.b": 1, "a": {"b": 2}} flattens to two "a.b" columns
        deduped = iter(_dedupe_header([c for c in names if c not in (ROW, ITEM)], path))
        frame.columns = [c if c in (ROW, ITEM) else next(deduped) for c in names]
    frame = frame.astype({c: object for c in frame.columns if c not in (ROW, ITEM)})
    return RawRecords(frame, malformed, columns=[c for c in frame.columns if c not in (ROW, ITEM)])


def _as_raw_text(frame: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """Object columns with unique names; bytes cells (BLOBs, Parquet binary) as text, never lost."""
    textual = [i for i, dtype in enumerate(frame.dtypes) if pd.api.types.is_object_dtype(dtype)]
    frame = frame.astype(object)
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names):
        frame.columns = _dedupe_header(names, Path(path))
    for i in textual:
        values = frame.iloc[:, i]
        if pd.api.types.infer_dtype(values, skipna=True) not in (
            "string",
            "empty",
            "integer",
            "floating",
            "boolean",
            "decimal",
        ):
            frame.iloc[:, i] = values.map(
                lambda v: (
                    bytes(v).decode("utf-8", errors="backslashreplace")
                    if isinstance(v, bytes | bytearray | memoryview)
                    else v
                )
            )
    return frame


def read_parquet(path: Path, spec: SourceSpec) -> RawRecords:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        try:  # pandas refuses repeated column names; read the file directly and number them as in a CSV
            import pyarrow.parquet as pq

            table = pq.ParquetFile(path).read()
            if len(set(table.column_names)) == len(table.column_names):
                raise ValueError("no repeated column names") from exc
            frame = table.rename_columns(_dedupe_header(table.column_names, path)).to_pandas()
        except Exception:
            raise SourceError(f"{path}: cannot read as Parquet: {exc}") from None
    frame = _as_raw_text(frame, path)
    frame[ROW] = pd.array(range(1, len(frame) + 1), dtype="int64")
    return RawRecords(frame, columns=list(frame.columns[:-1]))


def read_sql(spec: SourceSpec, raw_dir: Path) -> RawRecords:
    import sqlalchemy

    try:
        url = expand_env(spec.url or "", {"SCV_RAW_DIR": str(raw_dir)})
    except ConfigError as exc:
        raise ConfigError(
            f"{spec.name}: {exc}; set it in the environment or in the git-ignored .env "
            f"(sources.{spec.name}.url in params/sources.yaml)"
        ) from None
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
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        password = _password(url)
        if password:  # a driver may echo the url it was given
            reason = reason.replace(password, "***")
        raise SourceError(f"{spec.name}: cannot read from {where}: {reason}") from None
    frame = _as_raw_text(frame, spec.name)
    frame[ROW] = pd.array(range(1, len(frame) + 1), dtype="int64")
    return RawRecords(frame, columns=list(frame.columns[:-1]))


def _password(url: str) -> str | None:
    m = re.search(r"//[^:/@]+:([^@]*)@", url)
    return m.group(1) if m and m.group(1) else None


def parse_key(spec: SourceSpec, raw_dir: Path) -> Hashable | None:
    """What one parse of a source's file depends on (the file and the reader options that matter);
    sources with the same key share the parse. None for a database query (not shared)."""
    if spec.format == "sql" or not spec.path:
        return None
    path = str((Path(raw_dir) / spec.path).absolute())
    if spec.format == "csv":
        return ("csv", path, spec.encoding, spec.delimiter)
    if spec.format == "excel":
        return ("excel", path, spec.sheet if spec.sheet is not None else 0)
    if spec.format in ("json", "jsonl"):
        return (spec.format, path, spec.encoding)  # record_path is applied per source, after the parse
    return (spec.format, path)


class ParsedFiles:
    """Raw files parsed once per run and shared by the sources that map them.

    Made for the sources that will be read; each read through it uses up one of the file's readers,
    and the parse is dropped after its last one so that a large file is not held for the whole run.
    `parses` counts the parses per key.
    """

    def __init__(self, specs: Iterable[SourceSpec], raw_dir: Path) -> None:
        keys = (parse_key(spec, raw_dir) for spec in specs)
        self._readers = Counter(key for key in keys if key is not None)
        self._parsed: dict[Hashable, object] = {}
        self.parses: Counter[Hashable] = Counter()

    def get(self, key: Hashable | None, parse: Callable[[], object]) -> object:
        """The parse for `key`, made by `parse()` the first time."""
        if key is None:
            return parse()
        if key in self._parsed:
            value = self._parsed[key]
        else:
            value = parse()
            self.parses[key] += 1
        self._readers[key] -= 1
        if self._readers[key] > 0:
            self._parsed[key] = value
        else:
            self._parsed.pop(key, None)
        return value


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a file is parsed into millions of new lists and dicts:
    they hold no cycles, and the collections their allocation triggers (each going over everything
    allocated so far) took half the time of a large CSV. Reference counting still frees memory."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_source(spec: SourceSpec, raw_dir: Path, parsed: ParsedFiles | None = None) -> RawRecords:
    """Read a source per its declaration; SourceError with the file and the reason if impossible.

    With `parsed`, a file that other sources also map is parsed once for all of them.
    """
    with _gc_paused():
        return _read_source(spec, raw_dir, parsed)


def _read_source(spec: SourceSpec, raw_dir: Path, parsed: ParsedFiles | None) -> RawRecords:
    if spec.format == "sql":
        return read_sql(spec, raw_dir)
    path = Path(raw_dir) / (spec.path or "")
    if not path.exists():
        raise SourceError(
            f"{spec.name}: file {path} not found (sources.{spec.name}.path in params/sources.yaml)"
        )
    key = parse_key(spec, raw_dir)

    def shared(parse: Callable[[], object]):
        return parse() if parsed is None else parsed.get(key, parse)

    if spec.format in ("json", "jsonl"):
        lines = spec.format == "jsonl"
        return read_json(path, spec, lines, parsed=shared(lambda: _json_records(path, spec, lines)))
    if spec.format == "csv":
        raw = shared(lambda: read_csv(path, spec))
    elif spec.format == "excel":
        raw = shared(lambda: read_excel(path, spec))
    else:
        raw = shared(lambda: read_parquet(path, spec))
    return replace(raw)  # its own RawRecords (ingest may swap its frames); the frames are not modified


def input_files(specs: dict[str, SourceSpec], raw_dir: Path) -> list[Path]:
    """Every raw file the sources read (for fingerprints), in a stable order."""
    files: set[Path] = set()
    for spec in specs.values():
        if spec.path:
            files.add(Path(raw_dir) / spec.path)
        elif spec.url and spec.url.startswith("sqlite:///"):
            files.add(Path(expand_env(spec.url, {"SCV_RAW_DIR": str(raw_dir)}).removeprefix("sqlite:///")))
    return sorted(files)
