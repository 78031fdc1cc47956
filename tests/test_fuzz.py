"""Ingest under a fuzz corpus of malformed inputs (tests/fuzz/make_corpus.py) and hypothesis-made files.

For every input: no unhandled exception; either a clear error (a SourceError/ConfigError naming the
file or source and what was expected) or the rows are read, each quarantined one with a row, column
and reason; rows read = rows written by the generator = rows staged + rows rejected (nothing lost).
"""

from __future__ import annotations

import csv
import io
import json
import re
import string
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from helpers import store
from helpers.config import IngestSettings, SourceSpec, explain_validation_error
from helpers.errors import MAX_MESSAGE, ScvError
from helpers.ingest import IngestResult, ingest_source
from tests.fuzz import make_corpus

pytestmark = pytest.mark.xdist_group("fuzz")  # one worker generates and runs the corpus once

SETTINGS = IngestSettings(placeholders=["n/a", "-"], run_date="2026-12-03")  # no case depends on the clock
CASES = {c.name: c.manifest() for c in make_corpus.all_cases()}
SECRET = "s3cr3t-pw"  # the password in the corpus' SQL urls: never in a message
RISKY = re.compile(r"^[=+\-@\t\r]")
NUMERIC = re.compile(r"^-?\d+([.,]\d+)?$")


@dataclass
class Outcome:
    name: str
    result: IngestResult | None = None
    error: Exception | None = None
    crash: str | None = None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, monkeypatch_module) -> dict[str, Outcome]:
    """Generate the corpus and ingest every case once (each test then checks one case)."""
    corpus = tmp_path_factory.mktemp("fuzz_corpus")
    manifest = make_corpus.generate(corpus)
    monkeypatch_module.delenv("SCV_FUZZ_UNSET_PASSWORD", raising=False)
    out: dict[str, Outcome] = {}
    for case in manifest:
        try:
            spec = declared(case["spec"])
            out[case["name"]] = Outcome(
                case["name"], result=ingest_source(spec, corpus / case["name"], SETTINGS)
            )
        except ScvError as exc:
            out[case["name"]] = Outcome(case["name"], error=exc)
        except Exception:  # an unhandled traceback: that case's test fails with it
            out[case["name"]] = Outcome(case["name"], crash=traceback.format_exc())
    out["__corpus__"] = Outcome(str(corpus))
    return out


def declared(body: dict) -> SourceSpec:
    """A source as params/sources.yaml declares it: an invalid declaration is a ConfigError naming it."""
    name = body["name"]
    try:
        return SourceSpec(**body)
    except ValidationError as exc:
        raise explain_validation_error(Path(f"{name}/sources.yaml"), exc, prefix=f"sources.{name}") from None


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def shown(value) -> str | None:
    """A staged value as the corpus writes what it expects: text, numbers without a needless ".0",
    dates as ISO (with the time only when it has one), booleans as true/false, null as None."""
    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat() if value.time() != pd.Timestamp(0).time() else value.date().isoformat()
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value)).removesuffix(".0")
    return str(value)


GENERATED_NAMES = [
    ("José", "Prados García"),
    ("Ana", "López de la Fuente"),
    ("Íñigo", "Muñoz Peña"),
    ("María del Carmen", "Ruiz"),
    ("Jordi", "Puig i Ferrer"),
    ("Lucía", "Sánchez-Vela Ortiz"),
]  # make_corpus.party_rows: record i is user{i}@example.es, named GENERATED_NAMES[i % 6]


#: Cases that change the generated values on purpose (their own checks say what must be staged).
CHANGED_ON_PURPOSE = {
    "csv_bom_utf8_declared_latin1", "csv_quoted_newline", "csv_quoted_newline_crlf", "csv_escaped_quotes",
    "csv_invisible_and_nfd_characters", "csv_emoji_and_bidi", "csv_formula_injection_cells",
    "csv_field_at_the_limit", "inv_decimal_comma_point_mix", "inv_decimal_point_declared",
    "inv_non_finite_and_exotic_numbers", "jsonl_unicode_line_separators_in_strings", "jsonl_huge_line",
}  # fmt: skip


def check_generated_values(result: IngestResult, name: str) -> int:
    """Every staged contact the corpus generator wrote (e-mail user{i}@example.es) holds exactly the
    name the generator gave record i, and invoices F{i}-1 the customer and amount of invoice i: a
    column shifted, a value mis-decoded or cut is caught in every case, not only the pinned rows.
    Returns how many staged rows were checked."""
    staged, checked = result.staged, 0
    if name in CHANGED_ON_PURPOSE or name.startswith("invoice_"):  # invoice_*: tests/fuzz/more_cases.py
        return 0
    if {"email", "given_name", "family_names"} <= set(staged.columns):
        for email, given, family in zip(
            staged["email"], staged["given_name"], staged["family_names"], strict=True
        ):
            m = re.fullmatch(r"user(\d+)@example\.es", str(email))
            if m and not (given is pd.NA and family is pd.NA):
                assert (given, family) == GENERATED_NAMES[int(m.group(1)) % 6], (
                    f"{name}: {email} is {given} {family}"
                )
                checked += 1
    if {"source_id", "party_id", "text"} <= set(staged.columns):  # tickets T{i}, mentions M{i}
        for sid, party, text in zip(staged["source_id"], staged["party_id"], staged["text"], strict=True):
            ticket, said = re.fullmatch(r"T(\d+)", str(sid)), re.fullmatch(r"M(\d+)", str(sid))
            if ticket and isinstance(text, str) and text.startswith("Pedido "):
                i = int(ticket.group(1))
                assert (party, text) == (f"C{i % 5}", f"Pedido {i} no llegó"), f"{name}: {sid}"
                checked += 1
            elif said and isinstance(text, str) and text.startswith("Me encanta"):
                i = int(said.group(1))
                assert (party, text) == (f"@user{i % 4}", f"Me encanta la tienda {i}"), f"{name}: {sid}"
                checked += 1
    if {"source_id", "order_id", "amount", "quantity"} <= set(staged.columns):  # web order lines W{i}-{k}
        for sid, order, amount, qty in zip(
            staged["source_id"], staged["order_id"], staged["amount"], staged["quantity"], strict=True
        ):
            m = re.fullmatch(r"W(\d+)-(\d)", str(sid))
            if m and pd.notna(amount) and pd.notna(qty):
                i, k = int(m.group(1)), int(m.group(2))
                assert (order, float(amount), float(qty)) == (f"W{i}", 10.5 * k, k), f"{name}: {sid}"
                checked += 1
    if {"source_id", "party_id", "amount"} <= set(staged.columns):
        for sid, party, amount in zip(staged["source_id"], staged["party_id"], staged["amount"], strict=True):
            m = re.fullmatch(r"F(\d+)-1", str(sid))
            if m and re.fullmatch(r"C\d", str(party)):
                i = int(m.group(1))
                assert (party, round(float(amount), 2)) == (f"C{i % 7}", i * 3 + (i % 100) / 100), (
                    f"{name}: {sid}"
                )
                checked += 1
    return checked


def check_values(result: IngestResult, case: dict) -> None:
    """The exact values staged for the rows the case pins (`values`: row -> {column: value}), and the
    rows it says are quarantined with a reason (`rejected`: row -> reason)."""
    check_generated_values(result, case["name"])
    staged = result.staged.set_index("row_number", drop=False)
    for row, expected in (case.get("values") or {}).items():
        row = int(row)
        assert row in staged.index, f"{case['name']}: row {row} not staged; rejects:\n{result.rejects}"
        record = staged.loc[[row]].iloc[0]
        got = {column: shown(record[column]) for column in expected}
        assert got == expected, f"{case['name']}: row {row} staged as {got}, expected {expected}"
    rejects = result.rejects
    for row, reason in (case.get("rejected") or {}).items():
        reasons = set(rejects.loc[rejects["row_number"] == int(row), "reason"])
        assert reason in reasons, (
            f"{case['name']}: row {row} rejected with {reasons or 'nothing'}, expected {reason}"
        )


def read_back_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def check_exports(frame: pd.DataFrame, folder: Path, name: str) -> None:
    """A staged or rejects table stores to Parquet unchanged, and exports to CSV without live formulas."""
    parquet = store.write_parquet(frame, folder / f"{name}.parquet")
    back = pd.read_parquet(parquet)
    assert len(back) == len(frame) and list(back.columns) == list(frame.columns)
    exported = store.write_csv(frame, folder / f"{name}.csv")
    for row in read_back_csv(exported)[1:]:
        for cell in row:
            assert not (RISKY.match(cell) and not NUMERIC.match(cell)), (
                f"formula not escaped in CSV export: {cell!r}"
            )


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_case(name, outcomes, tmp_path):
    case = CASES[name]
    outcome = outcomes[name]
    assert outcome.crash is None, f"{name}: unhandled exception\n{outcome.crash}"
    if case["expect"] == "error":
        assert outcome.error is not None, f"{name}: expected a clear error, but the source was read"
        message = str(outcome.error)
        assert re.search(case["error"], message, flags=re.S), f"{name}: unclear error: {message}"
        assert name in message, f"{name}: the error does not name the file or source: {message}"
        assert SECRET not in message, f"{name}: the error leaks a password: {message}"
        assert "Traceback" not in message and len(message) <= MAX_MESSAGE, (
            f"{name}: {len(message)} characters"
        )
        return
    assert outcome.error is None, f"{name}: expected the source to be read, got: {outcome.error}"
    result = outcome.result
    rejects = result.rejects
    assert result.rows_read == case["records"], (
        f"{name}: {case['records']} records written but {result.rows_read} read: rows merged or dropped"
    )
    assert result.rows_read == result.rows_staged + result.rows_rejected
    if case["staged"] is not None:
        assert result.rows_staged == case["staged"], rejects.to_string()
    found = set(rejects["reason"])
    assert set(case["reasons"]) <= found, f"{name}: expected reasons {case['reasons']}, got {sorted(found)}"
    row_rejects = rejects[rejects["action"] == "row"]
    assert row_rejects["row_number"].between(1, max(case["records"], 1)).all()
    assert (
        rejects["reason"].astype(str).str.len().gt(0).all()
        and rejects["column"].astype(str).str.len().gt(0).all()
    )
    assert rejects["value"].astype(str).str.len().le(500).all(), (
        "a reject keeps at most 500 characters of the value"
    )
    assert set(result.staged["row_number"]).isdisjoint(set(row_rejects["row_number"])), (
        "a row staged and rejected"
    )
    assert result.staged["record_id"].is_unique
    check_values(result, case)
    check_exports(result.staged, tmp_path, "staged")
    check_exports(rejects, tmp_path, "rejected")


def test_fuzz_summary(outcomes, capsys):
    """The counts for the closing note: inputs tried, clear errors, rows quarantined, rows lost (0)."""
    tried = [CASES[n] for n in CASES]
    malformed = [c for c in tried if c["family"] != "control"]
    errors = [n for n, o in outcomes.items() if n in CASES and o.error is not None]
    read = [o.result for n, o in outcomes.items() if n in CASES and o.result is not None]
    quarantined = sum(r.rows_rejected for r in read)
    lost = sum(CASES[r.source]["records"] - r.rows_staged - r.rows_rejected for r in read)
    families = pd.Series([c["family"] for c in malformed]).value_counts().to_dict()
    formats = pd.Series([c["spec"]["format"] for c in malformed]).value_counts().to_dict()
    summary = {
        "inputs_tried": len(tried),
        "malformed_inputs": len(malformed),
        "clear_errors": len(errors),
        "sources_read": len(read),
        "rows_read": sum(r.rows_read for r in read),
        "rows_staged": sum(r.rows_staged for r in read),
        "rows_quarantined": quarantined,
        "field_rejects": int(sum((r.rejects["action"] == "field").sum() for r in read)),
        "rows_lost": lost,
        "families": families,
        "formats": formats,
    }
    valued = [c for c in tried if c.get("values")]
    summary["cases_with_exact_values"] = len(valued)
    summary["rows_with_exact_values"] = sum(len(c["values"]) for c in valued)
    with capsys.disabled():
        print("\nfuzz corpus:", json.dumps(summary))
    assert len(tried) >= 250 and len(malformed) >= 200
    assert set(formats) == {"csv", "excel", "json", "jsonl", "parquet", "sql"}
    assert len(valued) >= 60 and summary["rows_with_exact_values"] >= 150
    assert len(errors) + len(read) == len(tried)
    assert lost == 0 and quarantined > 0


def test_corpus_script_writes_the_manifest(tmp_path):
    manifest = make_corpus.generate(tmp_path / "corpus")
    listed = json.loads((tmp_path / "corpus" / "cases.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in listed] == [c["name"] for c in manifest] == list(CASES)
    assert all((tmp_path / "corpus" / c["name"]).is_dir() for c in listed)


# ---------------------------------------------------------------------------------------------------
# Property-based: hypothesis writes CSV and JSON-lines files, ingest must count every record
# ---------------------------------------------------------------------------------------------------

CELL = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""',
            "a,b",
            "line\nbreak",
            "=cmd|' /C calc'!A0",
            "+34 612 345 678",
            "-1,5",
            "31/02/2026",
            "1.234,56",
            "n/a",
            "\ufeff",
            "\r",
            "12345678Z",
            "x@y",
            "ñ€",
        ]
    ),
)
FUZZ_PARTY = SourceSpec(
    name="fuzz",
    kind="party",
    system="F",
    trust_rank=1,
    format="csv",
    path="f.csv",
    date_format="%d/%m/%Y",
    columns={"source_id": "id", "given_name": "a", "email": "b", "birth_date": "c", "consent_sms": "d"},
)


def _rows_to_csv(rows: list[list[str]], delimiter: str) -> str:
    buf = io.StringIO()
    # "\r\n" ends a row so that the writer quotes any cell holding "\r" (a bare CR ends a line too)
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows([["id", "a", "b", "c", "d"], *rows])
    return buf.getvalue()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.lists(CELL, min_size=5, max_size=5), max_size=12),
    ragged=st.lists(
        st.tuples(
            st.integers(0, 12),
            st.lists(
                CELL.filter(lambda c: "\n" not in c and "\r" not in c and '"' not in c),
                min_size=1,
                max_size=7,
            ).filter(lambda r: len(r) != 5),
        ),
        max_size=3,
    ),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", None]),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_any_csv_is_counted_row_for_row(tmp_path_factory, rows, ragged, encoding, delimiter):
    """Well-formed rows of any content (quotes, line breaks, formulas, BOMs) and ragged one-line rows:
    every row written is one row read."""
    folder = tmp_path_factory.mktemp("hyp_csv")
    rows = list(rows)
    for position, row in ragged:
        rows.insert(min(position, len(rows)), row)
    text = _rows_to_csv(rows, delimiter)
    write_as = encoding or "utf-8"
    try:
        data = text.encode(write_as)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
        write_as = "utf-8"
    (folder / "f.csv").write_bytes(data)
    spec = FUZZ_PARTY.model_copy(update={"encoding": encoding and write_as, "delimiter": delimiter})
    try:
        result = ingest_source(spec, folder, SETTINGS)
    except ScvError as exc:  # only a file-level problem may refuse the file, and it says which
        assert "f.csv" in str(exc)
        return
    assert result.rows_read == len(rows) == result.rows_staged + result.rows_rejected
    assert result.staged["record_id"].is_unique


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(
            st.builds(
                lambda i, e, extra: json.dumps(
                    {"customer": {"id": i, "email": e}, **extra}, ensure_ascii=False
                ),
                st.one_of(st.text(max_size=6), st.integers(), st.none()),
                st.text(max_size=10),
                st.dictionaries(st.text(string.ascii_letters, max_size=4), st.text(max_size=5), max_size=2),
            ),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=20
            ),
        ),
        max_size=10,
    )
)
def test_any_json_lines_file_is_counted_line_for_line(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("hyp_jsonl")
    (folder / "w.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = SourceSpec(
        name="w",
        kind="party",
        system="W",
        trust_rank=1,
        format="jsonl",
        path="w.jsonl",
        encoding="utf-8",
        columns={"source_id": "customer.id", "email": "customer.email"},
    )
    records = sum(1 for line in lines if line.removesuffix("\r").strip())
    try:
        result = ingest_source(spec, folder, SETTINGS)
    except ScvError as exc:
        assert "w.jsonl" in str(exc)
        return
    assert result.rows_read == records == result.rows_staged + result.rows_rejected
