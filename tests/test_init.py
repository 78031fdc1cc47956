"""`scv init` drafts a sources.yaml from a folder of exports that `scv check` then accepts."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from helpers import checks, sample_harbour, scaffold
from helpers.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_sniffs_a_spanish_csv_with_a_title_line(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "facturas.csv").write_bytes(
        (
            "Listado de facturas;;;;\n"
            "Nº Factura;Cod Cliente;Fecha;Cantidad;Importe\n"
            "F1;C1;01/10/2026;2;1.234,50\nF2;C2;15/10/2026;1;3,25\nF3;C1;20/10/2026;4;12,00\n"
        ).encode("cp1252")
    )
    (folder / "clientes.csv").write_text(
        "Código;Nombre;Apellidos;Email;Teléfono\nC1;Ana;Ruiz;a@x.es;612345678\n", encoding="utf-8"
    )
    drafts = {d.name: d for d in scaffold.draft_folder(folder)}
    invoices = drafts["facturas"]
    assert invoices.kind == "transaction" and invoices.options["delimiter"] == ";"
    assert invoices.options["encoding"] in ("cp1252", "iso8859_15", "latin_1")
    assert invoices.options["header_row"] == 2 and invoices.options["date_format"] == "%d/%m/%Y"
    assert invoices.options["decimal"] == "," and invoices.options["thousands"] == "."
    assert invoices.columns["party_id"] == "Cod Cliente" and invoices.columns["amount"] == "Importe"
    assert invoices.options["party_source"] == "clientes"
    customers = drafts["clientes"]
    assert customers.kind == "party" and customers.columns["source_id"] == "Código"
    assert customers.columns["family_names"] == "Apellidos" and customers.columns["phone"] == "Teléfono"


def test_init_then_check_on_the_second_sample_company(tmp_path, capsys, monkeypatch):
    root = tmp_path / "co"
    (root / "params").mkdir(parents=True)
    shutil.copy(ROOT / "params" / "default.yaml", root / "params")
    shutil.copy(ROOT / "params" / "quality_rules.yaml", root / "params")
    (root / "pyproject.toml").write_text("")
    raw = root / "data" / "raw"
    sample_harbour.generate(raw, root / "truth", customers=80, months=6, seed=3)
    monkeypatch.setenv("SCV_ROOT", str(root))
    assert main(["init", str(raw)]) == 0
    drafted = yaml.safe_load((root / "params" / "sources.yaml").read_text())["sources"]
    assert drafted["erp_accounts"]["find_header"] == ["Account No", "Account Name"]
    assert drafted["erp_accounts"]["footer_rows"] == 1
    assert drafted["web_order_lines"]["expressions"] == {"amount": '"Qty" * "Unit Price"'}
    assert drafted["web_order_lines"]["party_source"] == "web_order_lines_customers"
    assert drafted["helpdesk_tickets"]["columns"]["party_id"] == "requester.id"
    assert main(["init", str(raw)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err
    d = yaml.safe_load((root / "params" / "default.yaml").read_text())
    d["ingest"]["default_country"] = "GB"
    d["ingest"]["country_aliases"] = {"England": "GB"}
    d["quality"]["postcode_reference"] = None
    (root / "params" / "default.yaml").write_text(yaml.safe_dump(d, allow_unicode=True))
    report = checks.run_check(root)
    assert not report.errors, "\n".join(map(str, report.errors))
