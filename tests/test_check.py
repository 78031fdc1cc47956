"""`scv check` catches, before any long run, every error a new company tripped on (issue 15, "Why")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import yaml

from helpers import checks

ROOT = Path(__file__).resolve().parents[1]

PARTIES = "CustomerID;Name;TaxID;Country;OptIn\nC1;Ana Ruiz;12345678Z;ES;S\nC2;Luis Gil;X1234567L;España;N\nC3;Eva Sanz;;ES;S\n"
SALES = (
    "InvoiceNo;CustomerID;InvoiceDate;Quantity;UnitPrice;Family\n"
    "1;C1;01/10/2026;2;1,5;Hogar\n2;C2;02/10/2026;1;3;Hogar\n3;C3;03/10/2026;-1;3;Jardín\n4;C1;04/10/2026;4;2;Hogar\n"
)


def company(
    tmp_path: Path, *, sources: dict | None = None, default: dict | None = None, files: dict | None = None
) -> Path:
    """A project with two small exports and a sources.yaml written for them (edited per test)."""
    root = tmp_path / "co"
    (root / "params").mkdir(parents=True)
    shutil.copy(ROOT / "params" / "quality_rules.yaml", root / "params")
    shutil.copytree(ROOT / "params" / "reference", root / "params" / "reference")
    d = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    for key, value in (default or {}).items():
        d[key] = {**d.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "params" / "default.yaml").write_text(yaml.safe_dump(d, allow_unicode=True))
    (root / "params" / "offers.yaml").write_text(
        yaml.safe_dump(
            {
                "offers": [
                    {
                        "id": "OF-HOGAR",
                        "name": "Hogar",
                        "category": "Hogar",
                        "channels": ["email"],
                        "margin": 5,
                    }
                ]
            }
        )
    )
    (root / "pyproject.toml").write_text("")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    for name, text in {"parties.csv": PARTIES, "sales.csv": SALES, **(files or {})}.items():
        (raw / name).write_text(text, encoding="utf-8")
    base = {
        "customers": {
            "kind": "party", "system": "CRM", "trust_rank": 1, "format": "csv", "path": "parties.csv",
            "delimiter": ";", "columns": {"source_id": "CustomerID", "full_name": "Name", "tax_id": "TaxID",
                                          "country": "Country", "consent_email": "OptIn"},
        },
        "sales": {
            "kind": "transaction", "system": "ERP", "trust_rank": 1, "format": "csv", "path": "sales.csv",
            "delimiter": ";", "decimal": ",", "date_format": "%d/%m/%Y", "party_source": "customers",
            "columns": {"source_id": "InvoiceNo", "party_id": "CustomerID", "date": "InvoiceDate",
                        "quantity": "Quantity", "category": "Family"},
            "expressions": {"amount": "Quantity * UnitPrice"},
            "refunds": {"negative_quantity": "refund"},
        },
    }  # fmt: skip
    for name, body in (sources or {}).items():
        if body is None:
            base.pop(name)
        else:
            base[name] = {**base.get(name, {}), **body}
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump({"sources": base}, allow_unicode=True))
    return root


def errors(report: checks.CheckReport) -> str:
    return "\n".join(str(f) for f in report.errors)


def test_a_good_company_checks_clean(tmp_path):
    report = checks.run_check(company(tmp_path))
    assert not report.errors, errors(report)
    assert report.previews["sales"].staged["amount"].tolist() == [3.0, 3.0, -3.0, 8.0]
    assert len(report.previews["customers"].shown) == 3
    infos = " ".join(f.message for f in report.findings if f.level == "info")
    assert "no campaign contacts" in infos and "no support tickets" not in infos  # no interactions at all
    assert "no tickets, surveys or social mentions" in infos


def test_mapped_column_that_does_not_exist(tmp_path):
    report = checks.run_check(company(tmp_path, sources={"sales": {"columns": {"source_id": "InvoiceNo", "party_id": "CustID",
                                                                          "date": "InvoiceDate"}}}))  # fmt: skip
    assert "sources.sales.columns" in errors(report) and "['CustID'] not found" in errors(report)


def test_typo_in_a_stage_section_of_default_yaml(tmp_path):
    report = checks.run_check(company(tmp_path, default={"segments": {"churn": {"horizon_monts": 3}}}))
    assert "segments.churn.horizon_monts: unknown key" in errors(report) and "default.yaml" in errors(report)


def test_wrong_type_in_a_stage_section(tmp_path):
    report = checks.run_check(company(tmp_path, default={"campaigns": {"confidence": "high"}}))
    assert "campaigns.confidence" in errors(report) and "'high'" in errors(report)


def test_offers_naming_what_the_data_lacks(tmp_path):
    root = company(tmp_path)
    (root / "params" / "offers.yaml").write_text(
        yaml.safe_dump(
            {"offers": [{"id": "OF-ELE", "name": "Aspirador", "product": "ELE-001", "channels": ["email"]}]}
        )
    )
    report = checks.run_check(root)
    assert "offer OF-ELE" in errors(report) and "product ELE-001 is not in the data" in errors(report)


def test_title_rows_and_a_total_footer_in_excel(tmp_path):
    root = company(
        tmp_path, sources={"customers": {"format": "excel", "path": "clientes.xlsx", "delimiter": ","}}
    )
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Listado de clientes"])
    ws.append([])
    ws.append(["CustomerID", "Name", "TaxID", "Country", "OptIn"])
    ws.append(["C1", "Ana Ruiz", "12345678Z", "ES", "S"])
    ws.append(["Total registros", 1, None, None, None])
    wb.save(root / "data" / "raw" / "clientes.xlsx")
    report = checks.run_check(root)
    assert "not found" in errors(report) and "header_row" in errors(report)
    # with the header row set, the footer is the next thing check points at
    spec = yaml.safe_load((root / "params" / "sources.yaml").read_text())
    spec["sources"]["customers"]["header_row"] = 3
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    report = checks.run_check(root)
    warnings = " ".join(str(f) for f in report.findings if f.level == "warning")
    assert "'Total registros'" in warnings and "footer_rows: 1" in warnings


def test_amount_mapped_as_two_columns_rejects_every_row(tmp_path):
    sales = {"columns": {"source_id": "InvoiceNo", "party_id": "CustomerID", "date": "InvoiceDate",
                         "amount": ["Quantity", "UnitPrice"]}, "expressions": {}}  # fmt: skip
    report = checks.run_check(company(tmp_path, sources={"sales": sales}))
    assert "as invalid_number" in errors(report) and "Quantity * UnitPrice" in errors(report)


def test_foreign_tax_ids_postcodes_and_country_names(tmp_path):
    parties = "CustomerID;Name;TaxID;Country;Zip\nC1;Ana;51 824 753 556;Oz;2100\nC2;Luis;123 456 782;Oz;3000\nC3;Eva;;Oz;0810\n"
    cols = {
        "source_id": "CustomerID",
        "full_name": "Name",
        "tax_id": "TaxID",
        "country": "Country",
        "postcode": "Zip",
    }
    root = company(tmp_path, files={"parties.csv": parties}, sources={"customers": {"columns": cols}})
    text = errors(report := checks.run_check(root))
    assert "invalid_tax_id" in text and "set `country`" in text
    assert "invalid_country" in text and "ingest.country_aliases" in text
    everything = " ".join(str(f) for f in report.findings)
    assert "invalid_postcode" in everything  # read as Spanish (the default country), '0810' is no postcode
    # the fixes the messages name make it clean
    root = company(
        tmp_path / "fixed", files={"parties.csv": parties}, sources={"customers": {"columns": cols, "country": "AU"}},
        default={"ingest": {"country_aliases": {"Oz": "AU"}}},
    )  # fmt: skip
    report = checks.run_check(root)
    assert not report.errors, errors(report)


def test_values_ranges_and_refunds_are_pointed_at(tmp_path):
    sales = {"refunds": None}
    root = company(tmp_path, sources={"sales": sales})
    spec = yaml.safe_load((root / "params" / "sources.yaml").read_text())
    spec["sources"]["sales"].pop("refunds")
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    report = checks.run_check(root)
    warnings = " ".join(str(f) for f in report.findings if f.level == "warning")
    assert "negative_quantity" in warnings and "refunds: {negative_quantity: refund}" in warnings
    parties = "CustomerID;Name;TaxID;Country;OptIn\nC1;Ana;;ES;Oui\nC2;Luis;;ES;Non\n"
    report = checks.run_check(company(tmp_path / "b", files={"parties.csv": parties}))
    assert "invalid_bool" in errors(report) and "value_maps" in errors(report)


def test_cli_exit_codes_and_speed_on_the_default_sample(sample_project):
    """Exit 0 on the sample, 1 with an error that names the column (timing: `make bench`, not here)."""
    done = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "check"], cwd=sample_project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 error(s)" in done.stdout and "== erp_invoices" in done.stdout
    spec = yaml.safe_load((sample_project / "params" / "sources.yaml").read_text())
    spec["sources"]["erp_invoices"]["columns"]["amount"] = "importe_total"
    broken = sample_project / "params" / "sources.broken.yaml"
    broken.write_text(yaml.safe_dump(spec, allow_unicode=True))
    original = sample_project / "params" / "sources.yaml"
    saved = original.read_text()
    try:
        original.write_text(broken.read_text())
        bad = subprocess.run(
            [sys.executable, "-m", "helpers.cli", "check"], cwd=sample_project, capture_output=True, text=True
        )
    finally:
        original.write_text(saved)
        broken.unlink()
    assert bad.returncode == 1 and "importe_total" in bad.stdout and "Traceback" not in bad.stderr


def test_scv_run_refuses_a_typo_in_a_stage_section_before_any_stage(tmp_path, monkeypatch, capsys):
    from helpers.cli import main

    root = company(tmp_path, default={"campaigns": {"bootstrapp": 100}})
    monkeypatch.setenv("SCV_ROOT", str(root))
    assert main(["run", "--period", "2026-10"]) == 2
    err = capsys.readouterr().err
    assert "campaigns.bootstrapp: unknown key" in err and not (root / "data" / "processed").exists()
