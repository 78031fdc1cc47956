"""Ingest on crafted files with known defects: exact staged/rejected counts, clear errors."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from helpers.config import IngestSettings, SourceSpec
from helpers.errors import SourceError
from helpers.ingest import detect_period, ingest_source
from helpers.readers import read_source

SETTINGS = IngestSettings(placeholders=["n/a", "-"])


def party_spec(**kw) -> SourceSpec:
    base = dict(
        name="crm",
        kind="party",
        system="CRM",
        trust_rank=1,
        format="csv",
        path="contacts.csv",
        columns={
            "source_id": "id",
            "given_name": "nombre",
            "family_names": "apellidos",
            "tax_id": "nif",
            "email": "email",
            "phone": "tel",
            "birth_date": "nacimiento",
            "iban": "iban",
        },
        date_format="%d/%m/%Y",
    )
    base.update(kw)
    return SourceSpec(**base)


def invoice_spec(**kw) -> SourceSpec:
    base = dict(
        name="erp_invoices",
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
            "quantity": "cantidad",
            "amount": "importe",
            "paid_date": "cobro",
        },
    )
    base.update(kw)
    return SourceSpec(**base)


CONTACTS = (
    "id,nombre,apellidos,nif,email,tel,nacimiento,iban\n"
    "1,José,Prados García,12345678Z,Jose.Prados@Example.com,612 34 56 78,01/02/1980,ES9121000418450200051332\n"
    "2,joana,prado,12345678a,joana@,+34 612345679,31/02/1985,ES9121000418450200051333\n"  # bad nif, email, date, iban
    '3,Ana,"López, de la Fuente",X1234567L,ana@example.es,0034 699 000 111,15/06/1990,\n'
    "2,joana,prado,12345678a,joana@,+34 612345679,31/02/1985,ES9121000418450200051333\n"  # exact duplicate of row 2
    "4,Luis,Martín,N/A,n/a,-,,\n"  # placeholders
    ",Sin,Id,,,,,\n"  # missing source_id
    "5,Cut,Short\n"  # truncated
)


def test_party_csv_field_and_row_rejects(tmp_path):
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    result = ingest_source(party_spec(), tmp_path, SETTINGS)
    assert result.rows_read == 7
    assert result.rows_rejected == 3  # duplicate, missing id, truncated
    assert result.rows_staged == 4
    row_rejects = result.rejects[result.rejects.action == "row"].set_index("row_number")["reason"].to_dict()
    assert row_rejects == {4: "duplicate_row", 6: "missing_required", 7: "malformed_row"}
    field = result.rejects[result.rejects.action == "field"]
    got = set(zip(field.row_number, field.column, field.reason, strict=True))
    assert got == {
        (2, "nif", "invalid_tax_id"),
        (2, "email", "invalid_email"),
        (2, "nacimiento", "invalid_date"),
        (2, "iban", "invalid_iban"),
    }
    staged = result.staged.set_index("source_id")
    assert staged.loc["1", "tax_id"] == "12345678Z"
    assert staged.loc["1", "email"] == "jose.prados@example.com"
    assert staged.loc["1", "phone"] == "+34612345678"
    assert staged.loc["1", "birth_date"] == pd.Timestamp("1980-02-01")
    assert staged.loc["1", "family_name_1"] == "Prados" and staged.loc["1", "family_name_2"] == "García"
    assert staged.loc["3", "phone"] == "+34699000111" and staged.loc["3", "tax_id"] == "X1234567L"
    assert pd.isna(staged.loc["2", "tax_id"]) and pd.isna(staged.loc["2", "iban"])
    assert staged.loc["2", "given_name"] == "Joana"  # the record is kept, only bad values go
    assert pd.isna(staged.loc["4", "email"]) and pd.isna(staged.loc["4", "tax_id"])
    assert result.placeholders.set_index("column")["count"].get("email") == 1
    assert list(result.staged["record_id"]) == ["crm:1", "crm:2", "crm:3", "crm:5"]


def test_cp1252_semicolon_decimal_comma(tmp_path):
    text = (
        "linea;cliente;fecha;cantidad;importe;cobro\n"
        "F1-1;C1;05/10/2026;2;1.234,50;20/10/2026\n"
        "F1-2;C1;05/10/2026;-1;10,00;\n"  # negative quantity
        "F1-3;C2;32/10/2026;1;10,00;\n"  # invalid required date
        "F1-4;C2;06/10/2026;1;12,3,4;\n"  # unparseable amount
        "F1-5;C3;07/10/2026;1;-15,00;\n"  # a refund: negative amount, positive quantity
        "F1-6;Ñandú;08/10/2026;1;5,5;"
    )  # no trailing newline, non-ASCII id
    (tmp_path / "facturas.csv").write_bytes(text.encode("cp1252"))
    result = ingest_source(invoice_spec(), tmp_path, SETTINGS)
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (6, 3, 3)
    reasons = result.rejects.set_index("row_number")["reason"].to_dict()
    assert reasons == {2: "negative_quantity", 3: "invalid_date", 4: "invalid_number"}
    staged = result.staged.set_index("source_id")
    assert staged.loc["F1-1", "amount"] == pytest.approx(1234.5)
    assert staged.loc["F1-5", "amount"] == pytest.approx(-15.0)
    assert staged.loc["F1-6", "party_id"] == "Ñandú"
    assert set(staged["party_source"]) == {"crm"}


def test_wrong_declared_encoding_names_file_and_line(tmp_path):
    (tmp_path / "facturas.csv").write_bytes("linea;cliente\nF1;Ñ\n".encode("cp1252"))
    with pytest.raises(SourceError, match=r"facturas.csv: cannot decode as 'utf-8' at byte \d+ \(line 2\)"):
        read_source(invoice_spec(encoding="utf-8"), tmp_path)


def test_undeclared_encoding_is_detected(tmp_path):
    (tmp_path / "facturas.csv").write_bytes(
        "linea;cliente;fecha;cantidad;importe;cobro\nF1;Peña Ibáñez;05/10/2026;1;3,00;\n".encode("cp1252")
    )
    result = ingest_source(invoice_spec(encoding=None), tmp_path, SETTINGS)
    assert result.staged["party_id"].iloc[0] == "Peña Ibáñez"


def test_missing_column_lists_what_the_file_has(tmp_path):
    (tmp_path / "contacts.csv").write_text("id,nombre\n1,Ana\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        ingest_source(party_spec(), tmp_path, SETTINGS)
    msg = str(err.value)
    assert "contacts.csv" in msg and "'apellidos'" in msg and "the source has" in msg and "nombre" in msg


def test_missing_and_empty_files_are_clear(tmp_path):
    with pytest.raises(SourceError, match="contacts.csv not found"):
        ingest_source(party_spec(), tmp_path, SETTINGS)
    (tmp_path / "contacts.csv").write_text("", encoding="utf-8")
    with pytest.raises(SourceError, match="the file is empty"):
        ingest_source(party_spec(), tmp_path, SETTINGS)


def test_jsonl_with_nested_objects_record_path_and_a_broken_line(tmp_path):
    orders = [
        {
            "order_id": "W1",
            "created_at": "2026-10-03T10:00:00+02:00",
            "customer": {"id": "u1", "email": "A@B.es"},
            "items": [
                {"line_id": "W1-1", "total": 10.5, "quantity": 1},
                {"line_id": "W1-2", "total": 4, "quantity": 2},
            ],
        },
        {
            "order_id": "W2",
            "created_at": "2026-10-04T10:00:00Z",
            "customer": {"id": "u2", "email": "c@d.es"},
            "items": [{"line_id": "W2-1", "total": "x", "quantity": 1}],
        },
    ]
    lines = [json.dumps(o) for o in orders]
    lines.insert(1, '{"order_id": "W9", "customer": ')
    (tmp_path / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = SourceSpec(
        name="web_orders",
        kind="transaction",
        system="Web",
        trust_rank=3,
        format="jsonl",
        path="orders.jsonl",
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
    result = ingest_source(spec, tmp_path, SETTINGS)
    assert result.rows_read == 3  # three JSON lines
    assert result.rows_rejected == 2  # the broken line, and W2 whose only item has a bad amount
    assert list(result.staged["source_id"]) == ["W1-1", "W1-2"]
    assert list(result.staged["record_id"]) == ["web_orders:1.1", "web_orders:1.2"]
    assert result.staged["date"].iloc[0] == pd.Timestamp("2026-10-03 10:00:00")  # local (Madrid) wall time
    assert set(result.staged["channel"]) == {"web"}
    assert set(result.rejects["reason"]) == {"malformed_row", "invalid_number"}

    party = SourceSpec(
        name="web_customers",
        kind="party",
        system="Web",
        trust_rank=3,
        format="jsonl",
        path="orders.jsonl",
        columns={"source_id": "customer.id", "email": "customer.email"},
    )
    people = ingest_source(party, tmp_path, SETTINGS)
    assert (people.rows_read, people.rows_staged, people.rows_rejected) == (3, 2, 1)
    assert list(people.staged["email"]) == ["a@b.es", "c@d.es"]


def test_excel_and_sqlite_sources(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["T1", "T2"],
            "who": ["R1", "R2"],
            "opened": pd.to_datetime(["2026-10-01 09:00", "2026-10-02 17:30"]),
            "mins": [12.5, "n/a"],
        }
    )
    with pd.ExcelWriter(tmp_path / "tickets.xlsx") as xl:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(xl, sheet_name="Info", index=False)
        frame.to_excel(xl, sheet_name="Tickets", index=False)
    spec = SourceSpec(
        name="support",
        kind="interaction",
        system="Support",
        trust_rank=4,
        format="excel",
        path="tickets.xlsx",
        sheet="Tickets",
        party_source="crm",
        columns={"source_id": "id", "party_id": "who", "opened_at": "opened", "handling_minutes": "mins"},
        constants={"type": "ticket"},
    )
    result = ingest_source(spec, tmp_path, SETTINGS)
    assert (result.rows_read, result.rows_staged) == (2, 2)
    assert result.staged["opened_at"].iloc[0] == pd.Timestamp("2026-10-01 09:00")
    assert result.staged["handling_minutes"].iloc[0] == 12.5 and pd.isna(
        result.staged["handling_minutes"].iloc[1]
    )
    with pytest.raises(SourceError, match="no sheet 'Tikets'.*Info.*Tickets"):
        ingest_source(spec.model_copy(update={"sheet": "Tikets"}), tmp_path, SETTINGS)

    db = tmp_path / "loyalty.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table members (card text, first text, s1 text, s2 text)")
        con.executemany(
            "insert into members values (?,?,?,?)",
            [("L1", "Pepe", "Prados", "García"), ("L2", "Ana", "Ruiz", None)],
        )
    sql = SourceSpec(
        name="loyalty",
        kind="party",
        system="Loyalty",
        trust_rank=3,
        format="sql",
        url="sqlite:///${SCV_RAW_DIR}/loyalty.sqlite",
        query="select * from members",
        columns={"source_id": "card", "given_name": "first", "family_names": ["s1", "s2"]},
    )
    result = ingest_source(sql, tmp_path, SETTINGS)
    assert list(result.staged["family_names"]) == ["Prados García", "Ruiz"]
    bad = sql.model_copy(update={"query": "select * from nowhere"})
    with pytest.raises(SourceError, match="loyalty: cannot read from sqlite:///.*no such table"):
        ingest_source(bad, tmp_path, SETTINGS)


def test_period_is_the_last_complete_month(tmp_path):
    def period_for(last_date: str) -> str:
        (tmp_path / "facturas.csv").write_bytes(
            f"linea;cliente;fecha;cantidad;importe;cobro\nF1;C1;01/01/2026;1;1,00;\nF2;C1;{last_date};1;1,00;\n".encode(
                "cp1252"
            )
        )
        return detect_period({"inv": invoice_spec()}, tmp_path, SETTINGS)

    assert period_for("10/11/2026") == "2026-10"
    assert period_for("30/11/2026") == "2026-11"
    assert period_for("01/11/2026") == "2026-10"


def test_company_names_with_a_legal_form_are_companies_and_not_split(tmp_path):
    (tmp_path / "people.csv").write_text(
        "id,name\n1,Gimnasio Crespo Sociedad Limitada\n2,Talleres Prado S.L.\n3,María del Carmen Prados García\n",
        encoding="utf-8",
    )
    spec = SourceSpec(
        name="support",
        kind="party",
        system="Support",
        trust_rank=4,
        format="csv",
        path="people.csv",
        columns={"source_id": "id", "full_name": "name"},
    )
    staged = ingest_source(spec, tmp_path, SETTINGS).staged.set_index("source_id")
    assert list(staged["party_type"]) == ["company", "company", "person"]
    assert staged.loc["1", "given_name"] is pd.NA or pd.isna(staged.loc["1", "given_name"])
    assert (
        staged.loc["3", "given_name"] == "María del Carmen" and staged.loc["3", "family_name_1"] == "Prados"
    )


DUPLICATE_CELLS = [
    "a",
    "b",
    " a",
    "1",
    1,
    1.0,
    "1.0",
    None,
    float("nan"),
    pd.NA,
    True,
    "True",
    [1],
    "[1]",
    "",
]


@pytest.mark.parametrize("seed", range(40))
def test_duplicate_records_compare_every_column_as_text(seed):
    # the known answer: pandas comparing every raw column as text ("1" == 1, None == NaN, [1] == "[1]")
    import random

    from helpers.ingest import duplicate_records
    from helpers.readers import ROW, RawRecords

    rng = random.Random(seed)
    cells = rng.sample(DUPLICATE_CELLS, rng.randint(1, 5))
    n, width = rng.randint(0, 40), rng.randint(1, 4)
    records = pd.DataFrame(
        {f"c{j}": pd.Series([rng.choice(cells) for _ in range(n)], dtype=object) for j in range(width)}
    )
    records.insert(rng.randint(0, width), ROW, pd.array(range(1, n + 1), dtype="int64"))
    expected = records.drop(columns=ROW).astype("string").duplicated(keep="first").to_numpy()
    assert duplicate_records(RawRecords(records)).tolist() == expected.tolist()


def test_duplicate_check_is_made_once_per_parsed_file(tmp_path, monkeypatch):
    from helpers import ingest
    from helpers.readers import ParsedFiles

    (tmp_path / "contacts.csv").write_text(
        "id,nombre,apellidos,nif,email,tel,nacimiento,iban\n"
        "1,ana,ruiz,12345678Z,ana@x.es,612345678,01/02/1980,\n"
        "1,ana,ruiz,12345678Z,ana@x.es,612345678,01/02/1980,\n"
        "2,luis,gil,,luis@x.es,,,\n",
        encoding="utf-8",
    )
    specs = [party_spec(), party_spec(name="crm_copy")]
    calls = []
    check = ingest._duplicated_text
    monkeypatch.setattr(ingest, "_duplicated_text", lambda *a: calls.append(1) or check(*a))
    parsed = ParsedFiles(specs, tmp_path)
    results = [ingest_source(spec, tmp_path, SETTINGS, parsed=parsed) for spec in specs]
    assert len(calls) == 1
    for result in results:
        assert result.rejects.loc[result.rejects["reason"] == "duplicate_row", "row_number"].tolist() == [2]
        assert result.staged["row_number"].tolist() == [1, 3]
