"""The readers' fast paths give exactly what the plain paths gave: each shared raw file parsed once per
run, Excel through calamine as through openpyxl, JSON flattened as `pandas.json_normalize` does."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import readers
from helpers.config import IngestSettings, SourceSpec, load_sources
from helpers.errors import SourceError
from helpers.ingest import ingest_all, ingest_source
from helpers.privacy_ops import Suppression
from helpers.readers import ITEM, ROW
from tests.fuzz import make_corpus

SETTINGS = IngestSettings(placeholders=["n/a", "-"])


def assert_same_raw(a: readers.RawRecords, b: readers.RawRecords) -> None:
    """Same records (values and their Python types), same malformed rows, same columns."""
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
    pd.testing.assert_frame_equal(a.malformed, b.malformed, check_exact=True)
    assert a.columns == b.columns
    for col in a.records.columns:
        assert [type(v) for v in a.records[col]] == [type(v) for v in b.records[col]], col


# ---------------------------------------------------------------------------------------------------
# Each raw file parsed once per run
# ---------------------------------------------------------------------------------------------------


def test_parsed_files_parses_once_and_frees_after_last_reader(tmp_path):
    (tmp_path / "t.csv").write_text("id,name\n1,Ana\n2,Luis\n", encoding="utf-8")
    common = dict(kind="party", system="S", trust_rank=1, format="csv", path="t.csv", encoding="utf-8")
    a = SourceSpec(name="a", columns={"source_id": "id"}, **common)
    b = SourceSpec(name="b", columns={"full_name": "name", "source_id": "id"}, **common)
    parsed = readers.ParsedFiles([a, b], tmp_path)
    key = readers.parse_key(a, tmp_path)
    assert key == readers.parse_key(b, tmp_path)
    first = readers.read_source(a, tmp_path, parsed)
    assert parsed._parsed  # held for b
    second = readers.read_source(b, tmp_path, parsed)
    assert parsed.parses[key] == 1
    assert not parsed._parsed  # dropped after its last reader
    assert first is not second and first.records is second.records


def test_parse_key_separates_reader_options(tmp_path):
    base = dict(name="a", kind="party", system="S", trust_rank=1, columns={"source_id": "id"})
    csv_a = SourceSpec(**base, format="csv", path="t.csv", delimiter=",")
    csv_b = SourceSpec(**base, format="csv", path="t.csv", delimiter=";")
    xls_a = SourceSpec(**base, format="excel", path="t.xlsx", sheet="A")
    xls_b = SourceSpec(**base, format="excel", path="t.xlsx", sheet="B")
    web = SourceSpec(**base, format="jsonl", path="o.jsonl")
    lines = SourceSpec(**base, format="jsonl", path="o.jsonl", record_path="items")
    assert readers.parse_key(csv_a, tmp_path) != readers.parse_key(csv_b, tmp_path)
    assert readers.parse_key(xls_a, tmp_path) != readers.parse_key(xls_b, tmp_path)
    assert readers.parse_key(web, tmp_path) == readers.parse_key(lines, tmp_path)  # items apply later


@pytest.fixture(scope="module")
def sample_results(sample_project):
    """The sample company ingested with and without the shared parses, counting the parses."""
    raw = sample_project / "data" / "raw"
    sources = load_sources(root=sample_project)
    calls: dict[str, list[str]] = {"csv": [], "excel": [], "json": []}
    with pytest.MonkeyPatch.context() as mp:
        for fmt, name in (("csv", "read_csv"), ("excel", "read_excel"), ("json", "_json_records")):
            original = getattr(readers, name)

            def counted(path, *args, _original=original, _fmt=fmt, **kwargs):
                calls[_fmt].append(Path(path).relative_to(raw).as_posix())
                return _original(path, *args, **kwargs)

            mp.setattr(readers, name, counted)
        shared = ingest_all(sources, raw, SETTINGS, progress=False, suppression=Suppression(b"salt"))
    alone = {name: ingest_source(spec, raw, SETTINGS, Suppression(b"salt")) for name, spec in sources.items()}
    return sources, calls, shared, alone


def test_ingest_all_parses_each_shared_file_once(sample_results):
    sources, calls, _, _ = sample_results
    shared_files = {"orders.jsonl", "tickets.xlsx", "nps.csv", "mentions.json"}
    per_file = [s.path for s in sources.values() if s.path]
    assert shared_files <= {Path(f).name for f in per_file if per_file.count(f) > 1}  # the sample shares them
    parsed = calls["csv"] + calls["excel"] + calls["json"]
    assert sorted(parsed) == sorted(set(per_file)), parsed  # every file once, shared or not


def test_shared_parse_gives_the_results_of_separate_reads(sample_results):
    _, _, shared, alone = sample_results
    assert list(shared) == list(alone)
    for name in alone:
        pd.testing.assert_frame_equal(shared[name].staged, alone[name].staged, check_exact=True)
        pd.testing.assert_frame_equal(shared[name].rejects, alone[name].rejects, check_exact=True)
        assert shared[name].accounting() == alone[name].accounting()


# ---------------------------------------------------------------------------------------------------
# Excel: calamine gives what openpyxl gave
# ---------------------------------------------------------------------------------------------------


def excel_spec(path: str = "tickets.xlsx", sheet: str | int | None = "S") -> SourceSpec:
    return SourceSpec(
        name="t",
        kind="party",
        system="S",
        trust_rank=1,
        format="excel",
        path=path,
        sheet=sheet,
        columns={"source_id": "id"},
    )


def test_calamine_reads_cells_as_openpyxl(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "S"
    ws.append(["id", "when", "day", "at", "took", "n", "x", "flag", "text", None, dt.datetime(2024, 5, 1)])
    ws.append(
        [1, dt.datetime(2024, 1, 2, 3, 4, 5), dt.date(2024, 1, 2), dt.time(3, 4), dt.timedelta(hours=30)]
    )
    ws.append([2.0, dt.datetime(2024, 1, 2, 3, 4, 5, 123000), None, None, None, 8001.0, 0.1, True, " a  b "])
    ws.append([])  # a blank row between records
    ws.append(["003", "#N/A", "N/A", "", "=1+1", 1e20, -2.5, False, "ñandú €", "extra"])
    ws.append([None] * 5)
    ws.merge_cells("I2:J2")
    wb.save(tmp_path / "tickets.xlsx")
    spec = excel_spec()
    calamine = readers.read_excel(tmp_path / "tickets.xlsx", spec, engine="calamine")
    openpyxl = readers.read_excel(tmp_path / "tickets.xlsx", spec, engine="openpyxl")
    assert_same_raw(calamine, openpyxl)
    assert isinstance(calamine.records.loc[0, "when"], dt.datetime)
    assert not isinstance(calamine.records.loc[0, "when"], pd.Timestamp)
    assert type(calamine.records.loc[0, "took"]) is dt.timedelta
    assert calamine.records[ROW].tolist() == [1, 2, 4]


def test_calamine_reads_the_sample_workbook_as_openpyxl(sample_project):
    raw = sample_project / "data" / "raw"
    spec = load_sources(root=sample_project)["support_tickets"]
    path = raw / spec.path
    calamine = readers.read_excel(path, spec, engine="calamine")
    assert len(calamine.records) > 100
    assert_same_raw(calamine, readers.read_excel(path, spec, engine="openpyxl"))


def _excel_case_outcome(folder: Path, spec: SourceSpec, engine: str):
    try:
        return readers.read_excel(folder / spec.path, spec, engine=engine)
    except SourceError as exc:
        return str(exc).split(":")[1]  # the kind of failure (engines word their own reasons)


@pytest.mark.parametrize("case", make_corpus.excel_cases(), ids=lambda c: c.name)
def test_calamine_reads_the_fuzz_workbooks_as_openpyxl(case, tmp_path):
    if case.build is not None:
        case.build(tmp_path)
    else:
        (tmp_path / case.spec["path"]).write_bytes(case.content)
    spec = SourceSpec(**case.manifest()["spec"])
    calamine = _excel_case_outcome(tmp_path, spec, "calamine")
    openpyxl = _excel_case_outcome(tmp_path, spec, "openpyxl")
    if isinstance(openpyxl, str):
        assert calamine == openpyxl
    else:
        assert_same_raw(calamine, openpyxl)


# ---------------------------------------------------------------------------------------------------
# JSON: flattened as pandas.json_normalize does
# ---------------------------------------------------------------------------------------------------

TRICKY = [
    {"id": 1, "a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": None},
    {"id": 2, "a": {}, "g": {"": {"h": 3}}, "f": 2.5},
    {"a.b": "flat", "a": {"b": "nested"}, "id": "3"},
    {"": 1, "id": True, "z": {"y": {}}},
    {"id": 5, "a": {"c": {"d": None}}, "f": "abc"},
    {},
]


def test_normalized_equals_json_normalize():
    ours = readers._normalized(TRICKY)
    pd.testing.assert_frame_equal(ours, pd.json_normalize(TRICKY, sep="."), check_exact=True)
    for rec in TRICKY:
        assert (
            list(readers._flat_record(rec).items()) == list(pd.json_normalize([rec], sep=".").iloc[0].items())
            or not rec
        )


def old_read_json(path: Path, spec: SourceSpec, lines: bool) -> readers.RawRecords:
    """read_json as it was: every parent flattened per item with pandas.json_normalize."""
    objs, rows, malformed = readers._json_records(path, spec, lines)
    if not spec.record_path:
        frame = pd.json_normalize(objs, sep=".") if objs else pd.DataFrame()
        frame[ROW] = pd.array(rows, dtype="int64")
    else:
        key, parents, items, item_rows, item_pos = spec.record_path, [], [], [], []
        for obj, row in zip(objs, rows, strict=True):
            children = obj.get(key)
            if not isinstance(children, list) or not children:
                reason = f"malformed_row: no list in {key!r}"
                malformed.loc[len(malformed)] = [row, json.dumps(obj, ensure_ascii=False)[:500], reason]
                continue
            for pos, child in enumerate(children, start=1):
                parents.append({k: v for k, v in obj.items() if k != key})
                items.append(child if isinstance(child, dict) else {"value": child})
                item_rows.append(row)
                item_pos.append(pos)
        frame = pd.json_normalize(parents, sep=".") if parents else pd.DataFrame()
        frame[ROW] = pd.array(item_rows, dtype="int64")
        child = pd.json_normalize(items, sep=".") if items else pd.DataFrame()
        child.columns = [f"{key}.{c}" for c in child.columns]
        frame = pd.concat([frame.reset_index(drop=True), child.reset_index(drop=True)], axis=1)
        frame[ITEM] = pd.array(item_pos, dtype="int64")
        malformed[ROW] = malformed[ROW].astype("int64")
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names):
        deduped = iter(readers._dedupe_header([c for c in names if c not in (ROW, ITEM)], path))
        frame.columns = [c if c in (ROW, ITEM) else next(deduped) for c in names]
    frame = frame.astype({c: object for c in frame.columns if c not in (ROW, ITEM)})
    return readers.RawRecords(frame, malformed, columns=[c for c in frame.columns if c not in (ROW, ITEM)])


ORDERS = [
    '{"order_id": 1, "customer": {"id": 7, "address": {"city": "Lugo"}}, "items": [{"sku": "A", "q": 1}, {"sku": "B", "q": 2.5}]}',
    '{"order_id": 2, "customer": {"id": "8"}, "items": [{"sku": "C", "q": "abc"}, 5]}',
    '{"order_id": 3, "customer": {"id": 9}, "items": []}',
    '{"order_id": 4, broken',
    "[1, 2]",
    '{"order_id": 5, "customer": {}, "items": [{"sku": "D", "extra": {"k": null}}], "note": "\\ud800"}',
    '{"order_id": 6, "customer": {"id": 9, "vip": true}, "items": [{"sku": "E"}], "items.sku": "dup"}',
    "",
    '{"order_id": 7, "customer": {"id": 10}, "items": {"sku": "F"}}',
]


@pytest.mark.parametrize("record_path", [None, "items"])
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_read_json_equals_the_json_normalize_path(tmp_path, record_path, fmt):
    lines = [line for line in ORDERS if line and (fmt == "jsonl" or "broken" not in line)]
    text = "\n".join(lines) if fmt == "jsonl" else "[" + ",\n".join(lines) + "]"
    (tmp_path / f"o.{fmt}").write_text(text, encoding="utf-8")
    spec = SourceSpec(
        name="web",
        kind="party",
        system="S",
        trust_rank=1,
        format=fmt,
        path=f"o.{fmt}",
        record_path=record_path,
        columns={"source_id": "order_id"},
    )
    new = readers.read_json(tmp_path / spec.path, spec, lines=fmt == "jsonl")
    assert_same_raw(new, old_read_json(tmp_path / spec.path, spec, lines=fmt == "jsonl"))
    assert len(new.malformed) >= 2  # broken or non-object lines and orders without items stay quarantined
    # the shared parse is not modified by a source that explodes record_path
    parsed = readers._json_records(tmp_path / spec.path, spec, fmt == "jsonl")
    before = parsed[2].copy()
    readers.read_json(tmp_path / spec.path, spec, fmt == "jsonl", parsed=parsed)
    pd.testing.assert_frame_equal(parsed[2], before)


# ---------------------------------------------------------------------------------------------------
# CSV without quotes: split per line, as the csv module would
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_csv_without_quotes_reads_as_the_csv_module(tmp_path, newline):
    import csv

    lines = ["id;nombre;importe", "1;Ana;3,5", "", "2;Luis", "3;Eva;1;extra", "   ", "4; Pía ;\\t", "5;;"]
    text = newline.join(lines)  # no newline at the end
    (tmp_path / "f.csv").write_bytes(text.encode("cp1252"))
    spec = SourceSpec(
        name="f",
        kind="party",
        system="S",
        trust_rank=1,
        format="csv",
        path="f.csv",
        encoding="cp1252",
        delimiter=";",
        columns={"source_id": "id"},
    )
    raw = readers.read_csv(tmp_path / "f.csv", spec)
    records = [r for r in csv.reader(io_lines(text), delimiter=";") if r][1:]
    good = [(n, r) for n, r in enumerate(records, start=1) if len(r) == 3]
    assert raw.records.drop(columns=ROW).to_numpy().tolist() == [r for _, r in good]
    assert raw.records[ROW].tolist() == [n for n, _ in good]
    assert raw.malformed[ROW].tolist() == [2, 3, 4]
    assert raw.malformed["reason"].tolist() == [
        "malformed_row: 2 fields, expected 3",
        "malformed_row: 4 fields, expected 3",
        "malformed_row: 1 fields, expected 3",
    ]
    assert raw.malformed["value"].tolist() == ["2;Luis", "3;Eva;1;extra", "   "]


def io_lines(text: str) -> list[str]:
    import io

    return io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n"), newline="").readlines()
