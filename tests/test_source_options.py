"""sources.yaml options for real exports: layout rows, row filters, expressions, value maps, ranges,
refunds, countries, unvalidated columns and extra columns - each through ingest, with exact counts."""

from __future__ import annotations

from datetime import date

import openpyxl
import pandas as pd
import pytest
from pydantic import ValidationError

from helpers import expressions
from helpers import standardise as std
from helpers.config import IngestSettings, SourceSpec
from helpers.errors import SourceError
from helpers.ingest import detect_period, ingest_source

SETTINGS = IngestSettings(placeholders=["n/a", "-"])


def spec(**kw) -> SourceSpec:
    base = dict(name="src", kind="party", system="S", trust_rank=1, format="csv", path="f.csv")
    base.update(kw)
    return SourceSpec(**base)


def sales(**kw) -> SourceSpec:
    base = dict(
        name="ventas",
        kind="transaction",
        system="ERP",
        trust_rank=1,
        format="csv",
        path="ventas.csv",
        delimiter=";",
        decimal=",",
        party_source="clientes",
        columns={"source_id": "Linea", "party_id": "Cliente", "date": "Fecha", "quantity": "Cantidad"},
        expressions={"amount": "Cantidad * PrecioUnitario"},
    )
    base.update(kw)
    return SourceSpec(**base)


# --------------------------------------------------------------------------------------------------
# Layout: title rows, a units row, a footer
# --------------------------------------------------------------------------------------------------

TITLED_CSV = (
    "Informe de clientes;;\n"
    "Generado el 01/11/2026;;\n"
    "\n"
    "Código;Nombre;Saldo\n"
    "(texto);(texto);(EUR)\n"
    "C1;Ana;10,5\n"
    "C2;Luis;3\n"
    "Total registros;2;13,5\n"
    "\n"
)


@pytest.mark.parametrize(
    "layout",
    [
        {"header_row": 4, "skip_rows": 1, "footer_rows": 1},
        {"find_header": ["código", "NOMBRE"], "skip_rows": 1, "footer_rows": 1},
    ],
)
def test_csv_title_units_and_footer_rows_are_not_records(tmp_path, layout):
    (tmp_path / "f.csv").write_text(TITLED_CSV, encoding="utf-8")
    s = spec(delimiter=";", columns={"source_id": "Código", "given_name": "Nombre"}, **layout)
    result = ingest_source(s, tmp_path, SETTINGS)
    assert result.staged["source_id"].tolist() == ["C1", "C2"]
    assert result.rows_read == 2 and result.rows_rejected == 0
    # numbering continues through the skipped units row: record n is line header + n
    assert result.staged["row_number"].tolist() == [2, 3]


def test_without_the_layout_the_title_row_is_taken_for_the_header_and_the_error_says_so(tmp_path):
    (tmp_path / "f.csv").write_text(TITLED_CSV, encoding="utf-8")
    with pytest.raises(SourceError, match=r"not found.*header_row.*find_header"):
        ingest_source(spec(delimiter=";", columns={"source_id": "Código"}), tmp_path, SETTINGS)


def titled_workbook(path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Ventas"
    ws["B1"] = "Listado de clientes"
    ws["B2"] = "Empresa Ejemplo S.L."
    ws.append([])
    ws.append([None, "Código", "Nombre", "Saldo"])
    ws.append([None, "C1", "Ana", 10.5])
    ws.append([])
    ws.append([None, "C2", "Luis", 3])
    ws.append([None, "Total registros", 2, 13.5])
    wb.save(path)


@pytest.mark.parametrize(
    "layout", [{"header_row": 4, "footer_rows": 1}, {"find_header": ["Código"], "footer_rows": 1}]
)
def test_excel_title_rows_and_total_footer(tmp_path, layout):
    titled_workbook(tmp_path / "f.xlsx")
    s = spec(
        format="excel",
        path="f.xlsx",
        sheet="Ventas",
        columns={"source_id": "Código", "given_name": "Nombre"},
        **layout,
    )
    result = ingest_source(s, tmp_path, SETTINGS)
    assert result.staged["source_id"].tolist() == ["C1", "C2"]  # no "Total registros" customer
    assert result.staged["row_number"].tolist() == [1, 3]  # sheet row = header row + row_number
    assert result.rows_read == 2


def test_find_header_names_what_it_did_not_find(tmp_path):
    titled_workbook(tmp_path / "f.xlsx")
    s = spec(format="excel", path="f.xlsx", columns={"source_id": "Código"}, find_header=["Código", "NIF"])
    with pytest.raises(SourceError, match=r"holds all of \['Código', 'NIF'\]"):
        ingest_source(s, tmp_path, SETTINGS)


# --------------------------------------------------------------------------------------------------
# Row filter and expressions
# --------------------------------------------------------------------------------------------------

SALES = (
    "Linea;Cliente;Fecha;Cantidad;PrecioUnitario;Estado\n"
    "1;C1;2026-10-01;2;1,50;ok\n"
    "2;C1;2026-10-02;3;2;Anulado\n"  # filtered out
    "3;C2;2026-10-03;x;2;ok\n"  # quantity is not a number: the amount cannot be computed
    "4;C2;2026-10-04;-1;2,25;ok\n"  # a refund (negative quantity, by policy)
    "5;C3;2026-10-05;4;;ok\n"  # no unit price: no amount (required)
)


def test_amount_from_quantity_times_unit_price_and_a_row_filter(tmp_path):
    (tmp_path / "ventas.csv").write_text(SALES, encoding="utf-8")
    s = sales(row_filter="Estado <> 'Anulado'", refunds={"negative_quantity": "refund"})
    result = ingest_source(s, tmp_path, SETTINGS)
    staged = result.staged.set_index("source_id")
    assert staged.loc["1", "amount"] == pytest.approx(3.0)
    assert staged.loc["4", "amount"] == pytest.approx(-2.25) and staged.loc["4", "quantity"] == 1
    assert result.rows_filtered == 1 and "2" not in staged.index
    reasons = result.rejects.set_index("row_number")["reason"].to_dict()
    assert reasons[3] == "invalid_number" and reasons[5] == "missing_required"
    bad = result.rejects.set_index("row_number").loc[3]
    assert bad["column"] == "Cantidad" or bad["value"] == "x"
    acct = result.accounting()
    assert acct["rows_read"] == 5 == acct["rows_staged"] + acct["rows_rejected"] + acct["rows_filtered"]
    assert acct["balanced"]


def test_default_refund_policy_quarantines_negative_quantities(tmp_path):
    (tmp_path / "ventas.csv").write_text(SALES, encoding="utf-8")
    result = ingest_source(sales(), tmp_path, SETTINGS)
    assert result.rejects.set_index("row_number").loc[4, "reason"] == "negative_quantity"


def test_negative_amounts_as_defects(tmp_path):
    (tmp_path / "ventas.csv").write_text(SALES, encoding="utf-8")
    s = sales(expressions={"amount": "-Cantidad * PrecioUnitario"}, refunds={"negative_amount": "defect"})
    result = ingest_source(s, tmp_path, SETTINGS)
    reasons = result.rejects.groupby("row_number")["reason"].agg(set)
    assert "negative_amount" in reasons[1] and "negative_amount" in reasons[2]
    assert "negative_quantity" in reasons[4]


def test_detect_period_reads_a_date_through_the_layout_and_filter(tmp_path):
    (tmp_path / "ventas.csv").write_text(SALES, encoding="utf-8")
    assert detect_period({"ventas": sales()}, tmp_path, SETTINGS) == "2026-09"


def test_expression_grammar():
    frame = pd.DataFrame({"a": ["2", "3,5", None], "b b": ["x", "y", "z"], "c": ["1", "0", "4"]})

    def number(values):
        r = std.number(values, decimal=",")
        return r.value, r.reason.notna()

    def run(text):
        return expressions.parse(text).evaluate(frame, number=number)

    assert run("a * 2 + 1").values.tolist()[:2] == [5.0, 8.0]
    assert run("concat_ws(' ', \"b b\", a)").values.tolist() == ["x 2", "y 3,5", "z"]
    assert run("upper(`b b`) || '-' || coalesce(a, 'none')").values.tolist() == ["X-2", "Y-3,5", "Z-none"]
    assert run("a / c").invalid.tolist() == [False, True, False]  # division by zero is a reject
    assert run("c in (1, 4) and not a is null").values.tolist() == [True, False, False]
    assert run("\"b b\" like 'x%' or c >= 4").values.tolist() == [True, False, True]
    for bad in ("a *", "eval('1')", "a b", "__import__('os')", "a ; b"):
        with pytest.raises(expressions.ExpressionError):
            expressions.parse(bad)


# --------------------------------------------------------------------------------------------------
# Value maps, ranges, extra columns
# --------------------------------------------------------------------------------------------------


def test_value_maps_ranges_and_extra_columns(tmp_path):
    (tmp_path / "f.csv").write_text(
        "id;acepta;pago;csat;limite\n"
        "1;S;Tarjeta;5;1000\n"
        "2;N;TARJETA CRÉDITO;7;\n"  # CSAT 7 is outside 1-5: a field reject
        "3;s;efectivo;0,5;250\n",
        encoding="utf-8",
    )
    s = spec(
        delimiter=";",
        decimal=",",
        columns={"source_id": "id", "consent_email": "acepta", "payment_method": "pago"},
        value_maps={
            "consent_email": {"S": True, "N": False},
            "payment_method": {"tarjeta": "card", "tarjeta crédito": "card", "efectivo": "cash"},
        },
        extra_columns={"credit_limit": "limite"},
    )
    result = ingest_source(s, tmp_path, SETTINGS)
    staged = result.staged.set_index("source_id")
    assert staged["consent_email"].tolist() == [True, False, True]
    assert staged["payment_method"].tolist() == ["card", "card", "cash"]
    extras = result.extras
    assert extras[["source_id", "field", "value"]].values.tolist() == [
        ["1", "credit_limit", "1000"],
        ["3", "credit_limit", "250"],
    ]

    (tmp_path / "t.csv").write_text("id;c;score\nt1;1;5\nt2;1;7\nt3;1;0,5\nt4;1;\n", encoding="utf-8")
    tickets = SourceSpec(
        name="tickets", kind="interaction", system="S", trust_rank=1, format="csv", path="t.csv",
        delimiter=";", decimal=",", party_source="src",
        columns={"source_id": "id", "party_id": "c", "score": "score"}, constants={"type": "ticket"},
        ranges={"score": [1, 5]},
    )  # fmt: skip
    result = ingest_source(tickets, tmp_path, SETTINGS)
    assert result.rows_staged == 4  # an optional field out of range is a field reject
    rejects = result.rejects.set_index("row_number")
    assert rejects.loc[2, "reason"] == "out_of_range" and rejects.loc[2, "action"] == "field"
    assert rejects.loc[3, "reason"] == "out_of_range"
    assert result.staged.set_index("source_id")["score"].isna().tolist() == [False, True, True, True]


# --------------------------------------------------------------------------------------------------
# Countries
# --------------------------------------------------------------------------------------------------


def test_records_are_validated_by_their_own_country(tmp_path):
    (tmp_path / "f.csv").write_text(
        "id,pais,cp,tel,nif\n"
        "1,Australia,0810,(02) 9374 4000,51 824 753 556\n"  # AU: a 4-digit postcode, an ABN
        "2,,2100,0412 345 678,123 456 782\n"  # no country: the source's (AU)
        "3,España,8001,612345678,12345678Z\n"  # a Spanish customer of an Australian company
        "4,United States,02134,(202) 555-0182,536-90-4399\n"
        "5,Portugal,1250-096,+351 912 345 678,501964843\n"
        "6,Reino Unido,EC1Y 8SY,020 7946 0958,\n"
        "7,AU,2100,12345,12345678Z\n",  # bad phone; a Spanish NIF is valid for the source's home? no: AU home
        encoding="utf-8",
    )
    s = spec(
        country="AU",
        columns={"source_id": "id", "country": "pais", "postcode": "cp", "phone": "tel", "tax_id": "nif"},
    )
    result = ingest_source(s, tmp_path, SETTINGS)
    staged = result.staged.set_index("source_id")
    assert staged["country"].fillna("-").tolist() == ["AU", "-", "ES", "US", "PT", "GB", "AU"]
    assert staged["postcode"].tolist() == ["0810", "2100", "08001", "02134", "1250-096", "EC1Y 8SY", "2100"]
    assert staged.loc["1", "phone"] == "+61293744000" and staged.loc["4", "phone"] == "+12025550182"
    assert staged.loc["3", "phone"] == "+34612345678" and staged.loc["6", "phone"] == "+442079460958"
    assert staged.loc["1", "party_type"] == "company"  # an ABN identifies a company
    assert staged.loc["2", "tax_id"] == "123456782" and staged.loc["3", "tax_id"] == "12345678Z"
    assert (
        staged.loc["3", "province"] == "Barcelona" and staged[["province"]].drop(index="3").isna().all().all()
    )
    rejects = result.rejects.set_index(["row_number", "reason"])
    assert (7, "invalid_phone") in rejects.index and (7, "invalid_tax_id") in rejects.index


def test_an_id_that_is_not_a_tax_id_is_kept_unvalidated(tmp_path):
    (tmp_path / "f.csv").write_text("id,ssn,cp\n1,5714719,2100\n2,57 147-91,abc\n", encoding="utf-8")
    s = spec(
        country="AU",
        columns={"source_id": "id", "tax_id": "ssn", "postcode": "cp"},
        validate={"tax_id": False, "postcode": False},
    )
    staged = ingest_source(s, tmp_path, SETTINGS).staged
    assert staged["tax_id"].tolist() == ["5714719", "5714791"]
    assert staged["postcode"].tolist() == ["2100", "ABC"]


def test_a_country_without_a_stdnum_validator_keeps_ids_opaque():
    result = std.tax_id(pd.Series(["HK-123.45", "A1"]), country="HK")
    assert result.value.tolist() == ["HK12345", "A1"] and result.reason.isna().all()


def test_every_iso_country_and_yaml_aliases():
    values = pd.Series(
        ["Nueva Zelanda", "Países Bajos", "Côte d'Ivoire", "Deutschland", "Tierra Media", "Holland"]
    )
    result = std.country(values, aliases={"Tierra Media": "NZ"})
    assert result.value.tolist() == ["NZ", "NL", "CI", "DE", "NZ", "NL"]


# --------------------------------------------------------------------------------------------------
# Load-time errors name the key and the fix
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"expressions": {"amount": "Quantity *"}}, r"expressions\.amount.*expected a value"),
        ({"row_filter": "Estado"}, r"row_filter.*not a condition"),
        ({"ranges": {"score": [1, 5]}}, r"ranges\.score.*not mapped"),
        ({"ranges": {"quantity": [5, 1]}}, r"min 5 is above max 1"),
        ({"validate": {"date": False}}, r"validate\.date: only"),
        ({"value_maps": {"quantity": {}}}, r"value_maps\.quantity: expected a mapping"),
        ({"country": "XX"}, r"not an ISO 3166-1 alpha-2"),
        ({"header_row": 3, "find_header": ["a"]}, r"either `header_row` or `find_header`"),
        ({"extra_columns": {"amount": "x"}}, r"canonical column names"),
        ({"refunds": {"negative_quantity": "maybe"}}, r"refund.*defect"),
    ],
)
def test_option_errors_name_the_key(extra, message):
    base = dict(
        name="ventas", kind="transaction", system="ERP", trust_rank=1, format="csv", path="v.csv",
        party_source="c", columns={"source_id": "l", "party_id": "c", "date": "f", "amount": "a", "quantity": "q"},
    )  # fmt: skip
    if "expressions" in extra:
        base["columns"] = {k: v for k, v in base["columns"].items() if k not in extra["expressions"]}
    with pytest.raises(ValidationError, match=message):
        SourceSpec(**base, **extra)


def test_ranges_accept_dates_and_open_sides():
    s = sales(ranges={"date": [date(2020, 1, 1), None], "quantity": {"min": 0}})
    assert s.ranges == {"date": [date(2020, 1, 1), None], "quantity": [0, None]}
