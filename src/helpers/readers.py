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

import codecs
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
from helpers.errors import ConfigError, SourceError, quote

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
    #: column names the header repeats -> the names their repeats were given ("email" -> ["email.1"])
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    #: results worked out once per parsed file, shared by the sources that map it (ingest keys them)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows_read(self) -> int:
        """Records read: parsed ones (counted once per file record) plus malformed ones."""
        parsed = self.records[ROW].nunique() if len(self.records) else 0
        return int(parsed + len(self.malformed))


#: Single-byte encodings considered for the lines of an undeclared file that are not UTF-8 (Western
#: European business data), in order of preference when they read a line alike.
SINGLE_BYTE_ENCODINGS = ["cp1252", "iso8859_15", "latin_1", "cp850", "mac_roman"]
#: Below this confidence (share of non-ASCII characters that read as plausible text) the encoding of
#: an undeclared file is not guessed: the file is refused, naming the two best candidates.
MIN_CONFIDENCE = 0.9
#: Letters and signs that Western European text commonly holds beyond ASCII.
PLAUSIBLE_LETTERS = set("áéíóúüñçàèìòùâêîôûäëïöÿãõåæœøßÁÉÍÓÚÜÑÇÀÈÌÒÙÂÊÎÔÛÄËÏÖŸÃÕÅÆŒØ")
PLAUSIBLE_SIGNS = set("€ºª¿¡·«»‘’“”–—…°±²³µ×÷§©®™•¢£¥½¼¾\u00a0´")
BOMS = [(b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")]
_MULTIBYTE_UTF8 = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_MID_BOM = re.compile("\n\ufeff(?=[^\n])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 and C1 controls (not \t \n \r)
_C0_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
)  # in Unicode text, C1 (U+0085 NEL) is legitimate


@dataclass
class Decoded:
    """A text file decoded: its text, what it was read as, and the lines that could not be read."""

    text: str
    encoding: str  # e.g. "utf-8", "cp1252", or "cp1252 + utf-8 (3 lines)" for a file mixing both
    confidence: float = 1.0  # share of its non-ASCII characters that read as plausible text
    #: 0-based line index -> why that line could not be decoded (with its line number and byte offset)
    bad_lines: dict[int, str] = field(default_factory=dict)


_WORD_NON_ASCII = re.compile(r"\w*[^\x00-\x7f]\w*")
#: Signs that may sit inside a word: "l·l", "d’Ebre", "1º", "2ª".
_IN_WORD_SIGNS = set("·’ºª")


def _plausibility(text: str) -> tuple[int, int]:
    """(plausible, all) non-ASCII characters of `text`, as Western European text holds them:

    - a common accented letter whose case fits the letter before it ("García", not "GarcÝa"), in a
      word that is not mostly accented letters (Russian read as cp1252, "Ìîñêâà", is);
    - a common sign ("€", "º", "¿") that is not wedged between two letters ("Mu±oz").
    """
    good = total = 0
    for m in _WORD_NON_ASCII.finditer(text):
        word = m.group()
        if not word[0].isalnum() and len(word) == 1:  # a sign on its own, not a letter
            total += 1
            start = m.start()
            before = text[start - 1] if start else " "
            after = text[start + 1] if start + 1 < len(text) else " "
            good += word in PLAUSIBLE_SIGNS and not (
                before.isalpha() and after.isalpha() and word not in "·’'"
            )
            continue
        marks = [i for i, ch in enumerate(word) if ch >= "\x80"]
        dense = len(word) >= 3 and len(marks) >= 0.75 * len(word)
        for i in marks:
            total += 1
            ch = word[i]
            if dense:
                continue
            if ch in PLAUSIBLE_LETTERS:
                good += not (ch.isupper() and i and word[i - 1].islower())
            elif ch in _IN_WORD_SIGNS:
                good += 1
            else:  # "12€" is fine, "Mu±oz" is not
                before = word[i - 1] if i else " "
                after = word[i + 1] if i + 1 < len(word) else " "
                good += ch in PLAUSIBLE_SIGNS and not (before.isalpha() and after.isalpha())
    return good, total


def _line_ends(universal: bool) -> re.Pattern[bytes]:
    return re.compile(rb"\r\n|\r|\n" if universal else rb"\n")


def _bad_declared(path: Path, data: bytes, declared: str, exc: UnicodeError) -> SourceError:
    start = getattr(exc, "start", 0)
    line = data[:start].count(b"\n") + 1
    bom = next((name for mark, name in BOMS if data.startswith(mark)), None)
    hint = f" (the file starts with a {bom} byte-order mark)" if bom else ""
    guess = ""
    if declared.lower().replace("_", "-") in ("utf-8", "utf8") and not bom:
        tail = data[start : data.find(b"\n", start) if b"\n" in data[start:] else len(data)]
        try:
            tail.decode("cp1252")
            guess = "; that line reads as cp1252 (a file mixing UTF-8 and cp1252 lines?)"
        except UnicodeDecodeError:
            pass
    return SourceError(
        f"{path}: cannot decode as {declared!r} at byte {start} (line {line}){hint}{guess}; fix `encoding` "
        "in params/sources.yaml or remove it to let the encoding be detected"
    )


def decode_file(path: Path, declared: str | None, *, universal_newlines: bool = True) -> Decoded:
    """Decode a text file: as declared, else as detected, line by line where lines differ.

    - Declared: the whole file must decode (else a SourceError naming the byte and line). In a file
      declared as a single-byte encoding (cp1252, latin-1, ...), a line that is valid UTF-8 with
      multi-byte characters is read as UTF-8: read as cp1252 it would be mojibake ("RamÃ³n").
    - Undeclared: a byte-order mark decides; else a file that is all valid UTF-8 is UTF-8 (UTF-16
      without a mark is recognised by its zero bytes). Otherwise every line is decoded on its own:
      a line that is valid UTF-8 as UTF-8, the others as the single-byte encoding that reads them
      most plausibly (its confidence: the share of their non-ASCII characters that read as common
      Western letters and signs). Below MIN_CONFIDENCE the file is refused, naming the two best
      candidates (declare `encoding`). A line that decodes in neither, or only into control
      characters, is returned in `bad_lines` (the reader quarantines it with reason `encoding`).

    Lines are split at "\r\n", "\r" or "\n" (`universal_newlines`, joined with "\n"), else at "\n".
    """
    data = path.read_bytes()
    _refuse_binary(path, data)
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            raise SourceError(f"{path}: unknown encoding {declared!r} in params/sources.yaml") from None
        name = codecs.lookup(declared).name
        if name == "utf-8" and data.startswith(BOMS[0][0]):
            declared, name = "utf-8-sig", "utf-8-sig"
        if _single_byte(name) and _MULTIBYTE_UTF8.search(data):
            return _declared_single_byte(path, data, declared, universal_newlines)
        try:
            text = data.decode(declared)
        except UnicodeError as exc:  # UnicodeDecodeError, or a UTF-16/32 stream the codec refuses
            raise _bad_declared(path, data, declared, exc) from None
        return Decoded(_newlines(text, universal_newlines), declared)
    for bom, name in BOMS:
        if data.startswith(bom):
            try:
                return Decoded(_newlines(data.decode(name), universal_newlines), name)
            except UnicodeDecodeError as exc:
                if name != "utf-8-sig":
                    raise _bad_declared(path, data, name, exc) from None
                data = data[len(bom) :]  # a UTF-8 mark on a file with other lines: line by line
                break
    try:
        return _with_control_lines(Decoded(_newlines(data.decode("utf-8"), universal_newlines), "utf-8"))
    except UnicodeDecodeError:
        pass
    if data.count(b"\x00") > len(data) // 8:  # UTF-16 without a byte-order mark
        for name in ("utf_16_le", "utf_16_be"):
            try:
                text = data.decode(name)
            except UnicodeDecodeError:
                continue
            if sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:10_000]) > 0.95 * min(
                len(text), 10_000
            ):
                return Decoded(_newlines(text, universal_newlines), name)
    return _decode_lines(path, data, universal_newlines)


#: The first bytes of files that are not text, and what they are.
MAGIC = [
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)", "excel"),
    (b"PAR1", "a Parquet file", "parquet"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first", None),
    (b"%PDF-", "a PDF document", None),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other OLE file", "excel"),
    (b"SQLite format 3\x00", "an SQLite database", "sql"),
    (b"\x89PNG", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
]


def _refuse_binary(path: Path, data: bytes) -> None:
    """A SourceError for a file that a text reader was given but that is a known binary format."""
    for magic, what, fmt in MAGIC:
        if data.startswith(magic):
            expected = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(
                path.suffix.lower(), "csv"
            )
            if fmt is None and "gzip" in what:
                raise SourceError(f"{path}: the file is {what} (a text reader cannot read it)")
            fix = f"; set `format: {fmt}`" if fmt in ("excel", "parquet") else (
                "; read it with `format: sql` and a sqlite:/// url" if fmt == "sql" else "")  # fmt: skip
            raise SourceError(f"{path}: the file is {what}, not a {expected} file{fix}")


def _declared_single_byte(path: Path, data: bytes, declared: str, universal: bool) -> Decoded:
    """A file declared as a single-byte encoding that holds UTF-8 multi-byte sequences: each line
    that is valid UTF-8 is read as UTF-8 (as cp1252 it would be mojibake), the others as declared."""
    pieces = _line_ends(universal).split(data)
    lines, rescued = [], 0
    for i, piece in enumerate(pieces):
        if not piece.isascii() and _MULTIBYTE_UTF8.search(piece):
            try:
                lines.append(piece.decode("utf-8"))
                rescued += 1
                continue
            except UnicodeDecodeError:
                pass
        try:
            lines.append(piece.decode(declared))
        except UnicodeDecodeError as exc:
            start = _offset(pieces, i, universal, data) + exc.start
            raise SourceError(
                f"{path}: cannot decode as {declared!r} at byte {start} (line {i + 1}); fix `encoding` in "
                "params/sources.yaml or remove it to let the encoding be detected"
            ) from None
    encoding = f"{declared} + utf-8 ({rescued} line{'s' if rescued > 1 else ''})" if rescued else declared
    return Decoded("\n".join(lines), encoding)


def _with_control_lines(decoded: Decoded) -> Decoded:
    """Mark the lines that hold control characters (NUL, escape sequences, ...): binary junk, not text."""
    if not _C0_CONTROL.search(decoded.text):
        return decoded
    for i, line in enumerate(decoded.text.split("\n")):
        m = _C0_CONTROL.search(line)
        if m and i not in decoded.bad_lines:
            decoded.bad_lines[i] = (
                f"encoding: line {i + 1} holds a control character ({m.group()!r} at column {m.start() + 1}), not text"
            )
    return decoded


def _single_byte(codec_name: str) -> bool:
    return codec_name.startswith(("cp", "iso8859", "latin", "mac", "windows")) and codec_name not in (
        "cp65001",
    )


def _newlines(text: str, universal: bool) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if universal else text


def _decode_lines(path: Path, data: bytes, universal: bool) -> Decoded:
    """Decode a file that is not all UTF-8 line by line (see `decode_file`)."""
    pieces = _line_ends(universal).split(data)
    texts: list[str | None] = [None] * len(pieces)
    other: list[int] = []  # lines that are not UTF-8
    for i, piece in enumerate(pieces):
        if piece.isascii():
            texts[i] = piece.decode("ascii")
            continue
        try:
            texts[i] = piece.decode("utf-8")
        except UnicodeDecodeError:
            other.append(i)
    sample = other[:20_000]
    scores = []
    for rank, name in enumerate(SINGLE_BYTE_ENCODINGS):
        good = total = readable = 0
        for i in sample:
            line = _single_line(pieces[i], name)
            if line is None:
                continue
            readable += 1
            g, t = _plausibility(line)
            good, total = good + g, total + t
        confidence = good / total if total else 0.0
        # lines it cannot read count against an encoding, a little, and so does being less common
        penalty = 0.01 * (len(sample) - readable) + 0.02 * rank
        scores.append((confidence - penalty, -rank, name, confidence, readable))
    scores.sort(reverse=True)
    _, _, chosen, confidence, readable = scores[0]
    few = len(other) <= max(3, len(pieces) // 100)
    if not readable or (confidence < MIN_CONFIDENCE and few):
        # a few lines no code page reads well in an otherwise UTF-8 file: corrupt lines, not an
        # encoding to choose; each one that cp1252 does not read plausibly is quarantined
        chosen, confidence = SINGLE_BYTE_ENCODINGS[0], 0.0
    elif confidence < MIN_CONFIDENCE:
        second = scores[1]
        from charset_normalizer import from_bytes

        guess = from_bytes(b"\n".join(pieces[i] for i in sample)).best()
        hint = f"; charset-normalizer guesses {guess.encoding}" if guess is not None else ""
        raise SourceError(
            f"{path}: cannot tell the encoding of {len(other)} line(s) that are not UTF-8 (the first is "
            f"line {other[0] + 1}, byte {_offset(pieces, other[0], universal, data)}): {chosen} "
            f"(confidence {confidence:.2f}) or {second[2]} ({second[3]:.2f}){hint}; set "
            "`encoding` in params/sources.yaml"
        )
    bad_lines: dict[int, str] = {}
    for i in other:
        line = _single_line(pieces[i], chosen)
        good, total = _plausibility(line) if line is not None else (0, 0)
        if line is None or (total and good < total / 2):
            bad_lines[i] = (
                f"encoding: line {i + 1} (byte {_offset(pieces, i, universal, data)}) is neither UTF-8 "
                f"nor {chosen} text"
            )
            line = pieces[i].decode(chosen, errors="replace")
        texts[i] = line
    not_utf8 = set(other)
    utf8_lines = sum(1 for i, p in enumerate(pieces) if i not in not_utf8 and not p.isascii())
    encoding = (
        chosen if not utf8_lines else f"{chosen} + utf-8 ({utf8_lines} line{'s' if utf8_lines > 1 else ''})"
    )
    return _with_control_lines(
        Decoded("\n".join(t or "" for t in texts), encoding, round(confidence, 4), bad_lines)
    )


def _single_line(piece: bytes, encoding: str) -> str | None:
    """One line decoded, or None when it does not decode or decodes into control characters."""
    try:
        line = piece.decode(encoding)
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(line) else line


def _offset(pieces: list[bytes], index: int, universal: bool, data: bytes) -> int:
    """The byte offset where line `index` starts (line ends counted as one byte, two for CRLF)."""
    if not universal:
        return sum(len(p) + 1 for p in pieces[:index])
    pos = 0
    for piece in pieces[:index]:
        pos += len(piece)
        pos += 2 if data[pos : pos + 2] == b"\r\n" else 1
    return pos


def detect_encoding(path: Path, declared: str | None) -> str:
    """What `decode_file` reads the file as (e.g. "cp1252", or "cp1252 + utf-8 (2 lines)")."""
    return decode_file(path, declared).encoding


def read_text(path: Path, encoding: str | None = None, *, universal_newlines: bool = True) -> str:
    """The file's text as `decode_file` reads it (`encoding` as declared, None to detect)."""
    return decode_file(path, encoding, universal_newlines=universal_newlines).text


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
    decoded = decode_file(path, spec.encoding)
    text, bad_lines = decoded.text, decoded.bad_lines
    if not text.strip():
        raise SourceError(f"{path}: the file is empty; expected a header row and records")
    if "\ufeff" in text:  # a byte-order mark opening a line (files concatenated) is not data
        text = text[:1] + _MID_BOM.sub("\n", text[1:])
    lines = io.StringIO(text, newline="").readlines()  # physical lines, to re-read a record a quote ran over
    lines, skipped, bad_lines = _csv_layout(lines, spec, path, bad_lines)
    if 0 in bad_lines:
        raise SourceError(f"{path}: the header {bad_lines[0].removeprefix('encoding: ')}; set `encoding`")
    reader = csv.reader(lines, delimiter=spec.delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise SourceError(f"{path}: cannot parse the header: {exc}") from None
    _check_header(header, path, spec)
    raw_header = [h.strip().lstrip("\ufeff") for h in header]
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
        for i in range(start, n_lines):
            line = lines[i]
            if line == "\n":
                continue
            record = line.removesuffix("\n").split(delimiter)
            n += 1
            if bad_lines and i in bad_lines:
                bad_rows.append(n)
                bad_values.append(line.removesuffix("\n")[:500])
                bad_reasons.append(bad_lines[i])
            elif len(record) == width:
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
        hit = next((j for j in range(start, end) if j in bad_lines), None) if bad_lines else None
        if hit is not None:
            n += 1
            bad_rows.append(n)
            bad_values.append("".join(lines[start:end])[:500])
            bad_reasons.append(bad_lines[hit])
            start = end
            continue
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
    if good and max(map(len, lines)) > MAX_FIELD_CHARS:
        good, rows = _drop_long_fields(
            good, rows, (bad_rows, bad_values, bad_reasons), delimiter=spec.delimiter
        )
    if good:
        good, rows = _drop_repeated_headers(good, rows, raw_header, (bad_rows, bad_values, bad_reasons))
    records = (
        pd.DataFrame(good, columns=header, dtype=object)
        if good
        else pd.DataFrame(columns=header, dtype=object)
    )
    records[ROW] = pd.array(rows, dtype="int64")
    order = np.argsort(np.asarray(bad_rows, dtype=np.int64), kind="stable")
    malformed = pd.DataFrame(
        {
            ROW: pd.array(np.asarray(bad_rows, dtype=np.int64)[order], dtype="int64"),
            "value": [bad_values[i] for i in order],
            "reason": [bad_reasons[i] for i in order],
        }
    )
    return RawRecords(
        records, malformed, decoded.encoding, header, duplicates=_duplicates(raw_header, header)
    )


#: The longest field (characters) a record may hold; a longer one quarantines its record
#: (`field_too_long`), so that a runaway value (a file without line breaks) never reaches a table.
MAX_FIELD_CHARS = 100_000
#: The longest column name a header may hold: a longer one is not a header.
MAX_HEADER_CHARS = 1_000


def _check_header(header: list[str], path: Path, spec: SourceSpec) -> None:
    """Refuse a header with a column name no export would write (a binary file, a file without line
    breaks, the wrong delimiter), quoting a bounded part of it."""
    for i, name in enumerate(header, start=1):
        if len(name) > MAX_HEADER_CHARS:
            raise SourceError(
                f"{path}: line 1 (byte 0): column name {i} is {len(name):,} characters long (at most "
                f"{MAX_HEADER_CHARS:,}), starting {quote(name[:60])}: the first line is not a header of "
                f"{spec.delimiter!r}-separated columns; check the file (is it a CSV?) and "
                f"sources.{spec.name}.delimiter"
            )


def _drop_long_fields(
    good: list[list[str]], rows: list[int], bad: tuple[list, list, list], delimiter: str
) -> tuple[list[list[str]], list[int]]:
    """Move records with a field longer than MAX_FIELD_CHARS to the malformed ones."""
    keep_good, keep_rows = [], []
    for record, row in zip(good, rows, strict=True):
        longest = max((len(f) for f in record), default=0)
        if longest > MAX_FIELD_CHARS:
            column = next(i for i, f in enumerate(record, start=1) if len(f) == longest)
            bad[0].append(row)
            bad[1].append(delimiter.join(f[:100] for f in record)[:500])
            bad[2].append(
                f"field_too_long: field {column} has {longest:,} characters (at most {MAX_FIELD_CHARS:,})"
            )
        else:
            keep_good.append(record)
            keep_rows.append(row)
    return keep_good, keep_rows


def _drop_repeated_headers(
    good: list[list[str]], rows: list[int], header: list[str], bad: tuple[list, list, list]
) -> tuple[list[list[str]], list[int]]:
    """A record that repeats the header (files concatenated with their headers) is not data."""
    first = header[0] if header else None
    if first is None or not any(r[0].strip() == first for r in good):
        return good, rows
    keep_good, keep_rows = [], []
    for record, row in zip(good, rows, strict=True):
        if record[0].strip() == first and [f.strip() for f in record] == header:
            bad[0].append(row)
            bad[1].append(",".join(record)[:500])
            bad[2].append("repeated_header: the header row again (files joined together?)")
        else:
            keep_good.append(record)
            keep_rows.append(row)
    return keep_good, keep_rows


def _duplicates(names: list[str], deduped: list[str]) -> dict[str, list[str]]:
    """{name: [the names its repeats were given]} for column names the header repeats."""
    out: dict[str, list[str]] = {}
    for original, given in zip(names, deduped, strict=True):
        if original and given != original:
            out.setdefault(original, []).append(given)
    return out


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


def _csv_layout(
    lines: list[str], spec: SourceSpec, path: Path, bad_lines: dict[int, str] | None = None
) -> tuple[list[str], int, dict[int, str]]:
    """The lines from the header on, without `skip_rows` lines after it and `footer_rows` lines at the end
    (trailing blank lines aside); how many lines were skipped after the header; and `bad_lines`
    (undecodable lines by position) renumbered to the kept lines (lines cut away are not records)."""
    bad_lines = bad_lines or {}
    if not _has_layout(spec):
        return lines, 0, bad_lines
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
    first = h + 1 + skip  # the first record line: kept at position 1
    kept_bad = {
        (0 if i == h else i - first + 1): why for i, why in bad_lines.items() if i == h or first <= i < end
    }
    return [lines[h], *lines[first:end]], skip, kept_bad


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
            written = None
            if _has_layout(spec):  # the header row is found below; its cells are kept as written
                frame = book.parse(sheet_name=sheet, dtype=object, header=None)
            else:
                frame = book.parse(sheet_name=sheet, dtype=object, header=0)
                # pandas renames a repeated column name "x" to "x.1": read the header row as written
                mangled = {str(c) for c in frame.columns} & {
                    f"{c}.{n}" for c in map(str, frame.columns) for n in range(1, 10)
                }
                if mangled:
                    first = book.parse(sheet_name=sheet, header=None, nrows=1, dtype=object).iloc[0]
                    written = [str(v) for v in first]
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
    names = [str(c) if not str(c).startswith("Unnamed:") else "" for c in frame.columns]
    frame.columns = _dedupe_header(names, path)
    _check_header(names, path, spec)
    frame = frame.dropna(how="all")  # fully empty rows (e.g. below merged cells) are not records
    frame[ROW] = (frame.index.to_numpy() + 1).astype("int64")
    originals = [n.strip().lstrip("\ufeff") for n in names]
    if written is not None and len(written) == len(originals):
        originals = [w.strip() if w != "nan" else o for w, o in zip(written, originals, strict=True)]
    duplicates = _duplicates(originals, list(frame.columns[:-1]))
    return RawRecords(frame.reset_index(drop=True), columns=list(frame.columns[:-1]), duplicates=duplicates)


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
    decoded = decode_file(path, spec.encoding, universal_newlines=False)
    text, bad_lines = decoded.text, decoded.bad_lines
    if "\ufeff" in text[1:]:  # a byte-order mark opening a line (files concatenated) is not data
        text = text[:1] + _MID_BOM.sub("\n", text[1:])
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
        for i, line in enumerate(text.split("\n")):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            n += 1
            if bad_lines and i in bad_lines:
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append(bad_lines[i])
                continue
            if len(line) > MAX_FIELD_CHARS and _longest_string(line) > MAX_FIELD_CHARS:
                bad_rows.append(n)
                bad_values.append(line[:500])
                bad_reasons.append(
                    f"field_too_long: a value of {_longest_string(line):,} characters (at most {MAX_FIELD_CHARS:,})"
                )
                continue
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
        if bad_lines:
            first = min(bad_lines)
            raise SourceError(
                f"{path}: {len(bad_lines)} line(s) cannot be decoded, the first {bad_lines[first].removeprefix('encoding: ')}"
                f" (read as {decoded.encoding}); a JSON document is one text: fix the file or set `encoding`"
            )
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
        check_length = len(text) > MAX_FIELD_CHARS
        for i, obj in enumerate(data, start=1):
            if check_length and isinstance(obj, dict) and _longest_value(obj) > MAX_FIELD_CHARS:
                bad_rows.append(i)
                bad_values.append(json.dumps(obj, ensure_ascii=False)[:500])
                bad_reasons.append(
                    f"field_too_long: a value of {_longest_value(obj):,} characters (at most {MAX_FIELD_CHARS:,})"
                )
            elif check_unicode and _lone_surrogate(obj, "\\ud800"):
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


def _longest_value(obj: object) -> int:
    """The length of the longest string (or key) anywhere in a parsed JSON value."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return max([0, *(max(len(str(k)), _longest_value(v)) for k, v in obj.items())])
    if isinstance(obj, list):
        return max([0, *(_longest_value(v) for v in obj)])
    return len(str(obj)) if isinstance(obj, int | float) else 0


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _longest_string(line: str) -> int:
    """The longest quoted string of a JSON line (its raw length; escapes counted as written)."""
    return max((m.end() - m.start() - 2 for m in _JSON_STRING.finditer(line)), default=len(line))


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
    path = source_path(spec, raw_dir)
    if not path.exists():
        raise SourceError(
            f"{spec.name}: file {path} not found (sources.{spec.name}.path in params/sources.yaml)"
        )
    if not path.is_file():
        raise SourceError(
            f"{spec.name}: {path} is a folder, not a file (sources.{spec.name}.path in params/sources.yaml); "
            "name the file inside it"
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
    raw = replace(raw)  # its own RawRecords (ingest may swap its frames); the frames are not modified
    check_duplicate_columns(raw, spec, path)
    return raw


def check_duplicate_columns(raw: RawRecords, spec: SourceSpec, path: Path) -> None:
    """A mapped column whose name the header repeats is ambiguous unless the repeats hold the same
    values: refuse it, naming the columns and a record where they differ."""
    mapped = set(spec.raw_columns())
    for name, repeats in raw.duplicates.items():
        alias = f"{name}.0"
        if alias in mapped and alias not in raw.records:  # "email.0": the first of the repeated columns
            raw.records = raw.records.assign(**{alias: raw.records[name]})
            raw.columns = [*raw.columns, alias]
        if name not in mapped or any(r in mapped for r in repeats):
            continue
        first = raw.records[name].astype("string")
        for other in repeats:
            differ = first.fillna("\x00").ne(raw.records[other].astype("string").fillna("\x00"))
            if differ.any():
                row = int(raw.records.loc[differ.idxmax(), ROW])
                positions = [i + 1 for i, c in enumerate(raw.columns) if c == name or c in repeats]
                raise SourceError(
                    f"{path}: the header names {len(repeats) + 1} columns {name!r} (columns "
                    f"{', '.join(map(str, positions))}) and they differ (first at record {row}); "
                    f"sources.{spec.name}.columns maps {name!r}, which does not say which one is meant: map "
                    f"{alias!r} for the first one or {repeats[0]!r} for the second, or rename the columns "
                    "in the export"
                )


def source_path(spec: SourceSpec, raw_dir: Path) -> Path:
    """The file a source reads: `path` under paths.raw, refused (ConfigError) when it leads outside
    paths.raw, through `..`, an absolute path or a symbolic link: sources.yaml names exports, not
    any file on the machine."""
    raw_dir = Path(raw_dir)
    where = f"sources.{spec.name}.path in params/sources.yaml"
    relative = Path(spec.path or "")
    if relative.is_absolute() or ".." in relative.parts:
        raise ConfigError(
            f"{where}: {quote(spec.path)} is outside paths.raw ({raw_dir}); give a path relative to it, "
            "without '..', and copy the export into it"
        )
    path = raw_dir / relative
    root = raw_dir.resolve()
    real = path.resolve()
    if real != root and root not in real.parents:
        raise ConfigError(
            f"{where}: {quote(spec.path)} leads outside paths.raw ({raw_dir}) through a symbolic link to "
            f"{real}; copy the export into {raw_dir} instead of linking to it"
        )
    return path


def input_problems(specs: dict[str, SourceSpec], raw_dir: Path) -> dict[str, str]:
    """What `scv check` reports about the declared input files, by source: a path outside paths.raw,
    missing, or a folder (no entry when the file is readable)."""
    problems: dict[str, str] = {}
    for spec in specs.values():
        if not spec.path:
            continue
        try:
            path = source_path(spec, raw_dir)
        except ConfigError as exc:
            problems[spec.name] = str(exc)
            continue
        if not path.exists():
            problems[spec.name] = f"missing input: {path} (sources.{spec.name}.path)"
        elif not path.is_file():
            problems[spec.name] = (
                f"not a file: {path} is a folder (sources.{spec.name}.path); name the file inside it"
            )
    return problems


def input_files(specs: dict[str, SourceSpec], raw_dir: Path) -> list[Path]:
    """Every raw file the sources read (for fingerprints), in a stable order."""
    files: set[Path] = set()
    for spec in specs.values():
        if spec.path:
            files.add(source_path(spec, raw_dir))
        elif spec.url and spec.url.startswith("sqlite:///"):
            files.add(Path(expand_env(spec.url, {"SCV_RAW_DIR": str(raw_dir)}).removeprefix("sqlite:///")))
    return sorted(files)
