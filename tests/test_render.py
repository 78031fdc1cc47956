"""helpers.render: notebooks to self-contained HTML + PDF (fallback and Quarto), cards, index, masking.

Small notebooks (a chart and a table, with a Papermill parameters cell) are executed once per session
on the project's kernel and rendered; PDFs are read back with pdftotext (Debian: poppler-utils).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import pipeline, privacy, render
from helpers.config import load_settings
from helpers.errors import ConfigError
from tests.conftest import make_project

pytestmark = pytest.mark.xdist_group("render")  # one worker: the executed notebooks are shared fixtures

needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="pdftotext missing: apt-get install poppler-utils"
)

MANIFEST = {
    "run_id": "2026-10-v7",
    "period": "2026-10",
    "version": 7,
    "status": "running",
    "started_at": "2026-11-02T06:00:00+00:00",
    "code_version": "0123456789ab-dirty",
    "parameters_sha256": "ab" * 32,
    "parameter_overrides": {"unify.threshold": 0.9},
    "inputs_sha256": {"crm/contacts.csv": "cd" * 32, "erp/invoices.csv": "ef" * 32},
}

# valid check digits: the leak check and the scan must recognise them
RAW = {
    "tax_id": ["12345678Z", "X1234567L"],
    "iban": ["ES9121000418450200051332", "ES7921000813610123456789"],
    "email": ["ana.gil@ejemplo.es", "jordi.puig@empresa.cat"],
    "phone": ["+34612345678", "+34933456789"],
}


def _notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": pipeline.KERNEL, "display_name": "scv", "language": "python"}
    nb.cells = cells
    return nb


def _params(source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def report_notebook() -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return _notebook(
        [
            md("# Executive summary\nWhat the month looked like. Charts come before tables."),
            _params("period = None\nrun_id = None\nmasked = False\ndata_path = 'customers.json'"),
            md("## Revenue by segment"),
            code(
                "import warnings\nimport matplotlib.pyplot as plt\nimport pandas as pd\nimport seaborn as sns\n"
                "from helpers import privacy\n"
                "warnings.warn('a noisy warning meant for the analyst only')\n"
                "revenue = pd.DataFrame({'segment': ['Gold', 'Silver', 'Bronze'], 'revenue': [120.0, 80.0, 30.0]})\n"
                "ax = sns.barplot(revenue, x='revenue', y='segment', color='#1f6f8b')\n"
                "ax.set(title='Revenue by segment', xlabel='Revenue (k€)', ylabel='')\nplt.show()"
            ),
            md("Gold customers bring half of the revenue."),
            md("## Customers at risk"),
            code(
                "customers = pd.read_json(data_path, dtype=str)\n"
                "privacy.mask_frame(customers) if masked else customers"
            ),
        ]
    )


def execute(nb: nbformat.NotebookNode, folder: Path, name: str, parameters: dict) -> Path:
    import papermill as pm

    source, executed = folder / f"{name}.source.ipynb", folder / f"{name}.ipynb"
    nbformat.write(nb, source)
    pm.execute_notebook(
        str(source),
        str(executed),
        parameters=parameters,
        kernel_name=pipeline.KERNEL,
        cwd=str(folder),
        progress_bar=False,
        log_output=False,
    )
    return executed


@pytest.fixture(scope="session")
def executed(tmp_path_factory) -> dict[str, Path]:
    """The same report notebook executed twice: identifiers shown (raw) and masked."""
    folder = tmp_path_factory.mktemp("executed")
    pd.DataFrame({"customer_id": ["C1", "C2"], "full_name": ["Ana Gil", "Jordi Puig"], **RAW}).to_json(
        folder / "customers.json"
    )
    nb = report_notebook()
    run = {"period": "2026-10", "run_id": MANIFEST["run_id"]}
    with ThreadPoolExecutor(2) as pool:  # two kernels side by side: half the wait on two cores
        raw = pool.submit(execute, nb, folder, "raw", {**run, "masked": False})
        masked = pool.submit(execute, nb, folder, "masked", {**run, "masked": True})
        return {"raw": raw.result(), "masked": masked.result()}


@pytest.fixture(scope="session")
def rendered(executed, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """The fallback route (nbconvert + WeasyPrint), whatever is on PATH."""
    out = tmp_path_factory.mktemp("rendered")
    t0 = time.perf_counter()
    raw = render.render_notebook(
        executed["raw"], out, name="account_managers", manifest=MANIFEST, masked=False, engine="fallback"
    )
    seconds = time.perf_counter() - t0
    masked = render.render_notebook(
        executed["masked"], out, name="executive", manifest=MANIFEST, masked=True, engine="fallback"
    )
    print(
        f"\nfallback render (HTML + PDF) of one notebook: {seconds:.2f} s; "
        f"HTML {raw['html'].stat().st_size / 1024:.0f} KiB, PDF {raw['pdf'].stat().st_size / 1024:.0f} KiB"
    )
    return {"raw": raw, "masked": masked}


EXTERNAL_LOAD = re.compile(
    r"""<script[^>]*\ssrc\s*=\s*["']?(https?:)?//|<link[^>]*\shref\s*=\s*["']?(https?:)?//|@import|"""
    r"""url\(\s*["']?(https?:)?//|import\(\s*["'](https?:)?//|<iframe|<img[^>]*\ssrc\s*=\s*["']?(https?:)?//""",
    re.I,
)


# ---------------------------------------------------------------------------- fallback: HTML and PDF


def test_fallback_html_is_self_contained_with_no_code(rendered):
    html_text = rendered["raw"]["html"].read_text(encoding="utf-8")
    assert "<h1" in html_text and "Revenue by segment" in html_text and "Customers at risk" in html_text
    assert "Gold customers bring half of the revenue." in html_text
    # no code input, no prompts, no stderr noise
    assert "sns.barplot" not in html_text
    assert "read_json" not in html_text
    assert "jp-CodeCell" in html_text  # the code cells' outputs are there ...
    assert not re.search(
        r'class="[^"]*(jp-InputArea-editor|jp-InputPrompt|jp-OutputPrompt|highlight hl-)', html_text
    )  # ... without their code or prompts
    assert "noisy warning" not in html_text
    # the chart is inline and nothing is loaded from outside
    assert re.search(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/]{1000,}', html_text)
    assert 'alt="Chart: Revenue by segment"' in html_text  # described for screen readers
    assert not EXTERNAL_LOAD.search(html_text), EXTERNAL_LOAD.search(html_text)
    # the run manifest is printed
    footer = html_text[html_text.index('id="scv-manifest"') :]
    for value in (
        "2026-10-v7",
        "2026-10",
        "0123456789ab-dirty",
        "abababababab",
        "unify.threshold=0.9",
        "2 files",
    ):
        assert value in footer


@needs_pdftotext
def test_fallback_pdf_is_a_real_a4_pdf_with_sections_and_footer(rendered, monkeypatch):
    pdf = rendered["raw"]["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    pages = render.pdf_page_count(pdf)
    assert pages >= 1
    with monkeypatch.context() as m:  # without poppler: the page tree, read from compressed object streams
        m.setattr(render.shutil, "which", lambda name: None)
        assert render.pdf_page_count(pdf) == pages
    text = render.pdf_text(pdf)
    for heading in ("Executive summary", "Revenue by segment", "Customers at risk"):
        assert heading in text
    # the running footer (run id) on every page, and page numbers
    assert text.count("Run 2026-10-v7") >= pages and f"Page 1 of {pages}" in text
    assert "sns.barplot" not in text
    if shutil.which("pdfinfo"):
        import subprocess

        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info)


def test_headings_stay_with_what_they_introduce_and_charts_with_their_reading():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    chart = code("plot()")
    chart.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "fig"})
    ]
    table = code("frame")
    table.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/html": "<table></table>"}, execution_count=1)
    ]
    nb = _notebook(
        [
            md("# Title\nWhat this shows."),
            code("import x"),
            md("## A"),
            code("setup = 1"),
            chart,
            md("Gold brings half."),
            md("## B"),
            md("## C"),
            table,
        ]
    )
    tags = [c.metadata.get("tags", []) for c in render.prepare_notebook(nb).cells]
    assert tags == [
        [],
        [],
        ["scv-keep-start"],
        [],
        [],
        ["scv-keep-end"],
        [],
        ["scv-keep-start"],
        ["scv-keep-end"],
    ]
    html_text = render.html_from_notebook(nb, title="t", manifest=MANIFEST)
    assert html_text.count('<div class="scv-keep">') == 2


# ---------------------------------------------------------------------------- masking


@needs_pdftotext
def test_scan_finds_raw_identifiers_in_an_unmasked_report_and_none_in_a_masked_one(rendered, executed):
    raw_files = [rendered["raw"]["html"], rendered["raw"]["pdf"], executed["raw"]]
    found = render.scan_for_identifiers(raw_files, RAW)
    for path in raw_files:
        hits = {f.identifier for f in found if f.path == path}
        assert "12345678Z" in hits, path  # the planted NIF, in every file
        assert hits == {v for vs in RAW.values() for v in vs}, path
    masked_files = [rendered["masked"]["html"], rendered["masked"]["pdf"], executed["masked"]]
    assert render.scan_for_identifiers(masked_files, RAW) == []
    # the masked report still shows the masked forms (the table is there, only the identifiers are hidden)
    assert privacy.mask_tax_id("12345678Z") in render.pdf_text(rendered["masked"]["pdf"])


def test_scan_sees_formatted_identifiers_and_plain_lists(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<p>IBAN ES91 2100 0418 4502 0005 1332, tel. 612 345 678</p>"
        '<a href="mailto:Ana.Gil@Ejemplo.es">write</a><p>NIF 12.345.678-Z</p>',
        encoding="utf-8",
    )
    kinds = {f.kind for f in render.scan_for_identifiers([page], RAW)}
    assert kinds == {"iban", "phone", "email", "tax_id"}
    assert [f.identifier for f in render.scan_for_identifiers([page], ["12345678Z"])] == ["12345678Z"]
    clean = tmp_path / "clean.html"
    clean.write_text(
        f"<p>IBAN {privacy.mask_iban(RAW['iban'][0])}, NIF {privacy.mask_tax_id('12345678Z')}, "
        f"{privacy.mask_email(RAW['email'][0])}, {privacy.mask_phone(RAW['phone'][0])}</p>",
        encoding="utf-8",
    )
    assert render.scan_for_identifiers([clean], RAW) == []


def test_a_masked_audience_report_showing_raw_identifiers_is_refused(executed, tmp_path):
    with pytest.raises(render.RenderError, match="masked audience but shows"):
        render.render_notebook(
            executed["raw"],
            tmp_path,
            name="marketing",
            manifest=MANIFEST,
            masked=True,
            engine="fallback",
            pdf=False,
        )
    assert not (tmp_path / "marketing.html").exists()  # nothing left to publish by mistake
    with pytest.warns(UserWarning, match="raw identifier"):
        out = render.render_notebook(
            executed["raw"],
            tmp_path,
            name="marketing",
            manifest=MANIFEST,
            masked=True,
            engine="fallback",
            pdf=False,
            leak_check="warn",
        )
    assert out["html"].exists()
    # a raw identifier only in the executed notebook (a warning on stderr) is caught too
    nb = nbformat.read(executed["masked"], as_version=4)
    nb.cells[-1].outputs.append(
        nbformat.v4.new_output("stream", name="stderr", text="bad row: ana.gil@ejemplo.es\n")
    )
    leaky = tmp_path / "leaky.ipynb"
    nbformat.write(nb, leaky)
    with pytest.raises(render.RenderError, match="1 raw identifier"):
        render.render_notebook(
            leaky, tmp_path, name="executive", manifest=MANIFEST, masked=True, engine="fallback", pdf=False
        )


def test_identifier_patterns_need_valid_check_digits():
    text = (
        "12345678Z X1234567L B12345674 ES9121000418450200051332 ana.gil@ejemplo.es +34 612 345 678 "
        "12345678A ES0021000418450200051332 sha 0123456789abcdef12345678z9"
    )
    found = render.find_identifier_patterns(text)
    assert {v for _, v in found} == {
        "12345678Z",
        "X1234567L",
        "B12345674",
        "ES9121000418450200051332",
        "ana.gil@ejemplo.es",
        "+34 612 345 678",
    }
    masked = " ".join(str(privacy.MASKS[k](v)) for k, vs in RAW.items() for v in vs)
    assert render.find_identifier_patterns(masked) == []


# ---------------------------------------------------------------------------- Quarto


FAKE_QUARTO = """#!{python}
# A stand-in for `quarto`: records how it was called and writes the file Quarto would write.
import json, os, pathlib, sys
cwd = pathlib.Path.cwd()
args = sys.argv[1:]
nb = json.loads((cwd / args[1]).read_text())
entry = {{"args": args, "files": sorted(p.name for p in cwd.iterdir()),
          "footer_html": (cwd / "_scv_footer.html").read_text(),
          "footer_typ": (cwd / "_scv_footer.typ").read_text(),
          "code_cells": ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]}}
with open({log!r}, "a") as fh:
    fh.write(json.dumps(entry) + "\\n")
if os.environ.get("FAKE_QUARTO_FAIL"):
    print("ERROR: Typst compilation failed: unknown font", file=sys.stderr)
    sys.exit(1)
stem = args[1].rsplit(".", 1)[0]
if args[args.index("--to") + 1] == "html":
    (cwd / (stem + ".html")).write_text("<html><body><h1>Executive summary</h1></body></html>")
else:
    (cwd / (stem + ".pdf")).write_bytes(b"%PDF-1.7 fake")
"""


@pytest.fixture
def fake_quarto(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "quarto-calls.jsonl"
    script = bin_dir / "quarto"
    script.write_text(FAKE_QUARTO.format(python=sys.executable, log=str(log)), encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_quarto_branch_renders_the_executed_notebook_without_executing_it(executed, fake_quarto, tmp_path):
    out_dir = tmp_path / "run"
    assert render.choose_engine("auto") == "quarto"
    out = render.render_notebook(
        executed["masked"],
        out_dir,
        name="executive",
        manifest=MANIFEST,
        masked=True,
        quarto_project=render.quarto_project_dir(Path(__file__).resolve().parents[1]),
    )
    assert out == {"html": out_dir / "executive.html", "pdf": out_dir / "executive.pdf"}
    assert out["pdf"].read_bytes().startswith(b"%PDF")
    calls = [json.loads(line) for line in fake_quarto.read_text().splitlines()]
    assert [c["args"] for c in calls] == [
        ["render", "executive.ipynb", "--to", "html", "--no-execute"],
        ["render", "executive.ipynb", "--to", "typst", "--no-execute"],
    ]
    for call in calls:
        assert {
            "_quarto.yml",
            "_scv-theme.scss",
            "_scv_footer.html",
            "_scv_footer.typ",
            "executive.ipynb",
        } <= set(call["files"])
        assert "2026-10-v7" in call["footer_html"] and "Run 2026-10-v7" in call["footer_typ"]
        assert call["code_cells"] and all(src.startswith("#| echo: false\n") for src in call["code_cells"])
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "executive.html",
        "executive.pdf",
    ]  # no work folder left


def test_quarto_failure_is_reported_with_its_message(executed, fake_quarto, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_QUARTO_FAIL", "1")
    with pytest.raises(render.RenderError, match="unknown font"):
        render.render_notebook(
            executed["masked"],
            tmp_path,
            name="executive",
            manifest=MANIFEST,
            masked=True,
            quarto_project=render.quarto_project_dir(Path(__file__).resolve().parents[1]),
        )


def test_engine_quarto_without_quarto_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert render.choose_engine("auto") == "fallback"
    with pytest.raises(render.RenderError, match="not on PATH"):
        render.choose_engine("quarto")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("quarto") is None, reason="quarto is not installed (the fallback is tested above)"
)
@needs_pdftotext
def test_real_quarto_renders_html_and_pdf(executed, tmp_path):
    out = render.render_notebook(
        executed["masked"],
        tmp_path,
        name="executive",
        manifest=MANIFEST,
        masked=True,
        engine="quarto",
        quarto_project=render.quarto_project_dir(Path(__file__).resolve().parents[1]),
    )
    html_text = out["html"].read_text(encoding="utf-8")
    assert (
        "Revenue by segment" in html_text and "sns.barplot" not in html_text and "data:image/png" in html_text
    )
    assert not re.search(r"<script[^>]*\ssrc\s*=\s*[\"']?https?://", html_text)
    text = render.pdf_text(out["pdf"])
    assert "Revenue by segment" in text and "2026-10-v7" in text
    assert render.scan_for_identifiers([out["html"], out["pdf"]], RAW) == []


# ---------------------------------------------------------------------------- cards


def card_frame(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "display_name": [f"Cliente {i} Núñez-Góngora" for i in range(n)],
            "customer_type": rng.choice(["person", "company"], n),
            "tax_id": [RAW["tax_id"][i % 2] for i in range(n)],
            "email": [RAW["email"][i % 2] for i in range(n)],
            "phone": [RAW["phone"][i % 2] for i in range(n)],
            "iban": [RAW["iban"][i % 2] for i in range(n)],
            "city": rng.choice(["Madrid", "Bilbao", None], n),
            "account_manager": rng.choice(["Ana Ruiz", "Luis Gil"], n),
            "customer_since": pd.Timestamp("2021-01-01")
            + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
            "sources": [["CRM", "ERP"]] * n,
            "revenue_12m": rng.gamma(2, 1500, n),
            "clv_12m": rng.gamma(2, 1800, n),
            "orders_12m": rng.integers(0, 30, n),
            "churn_risk": np.where(np.arange(n) % 5 == 0, np.nan, rng.random(n)),
            "tier": rng.choice(["Gold", "Silver", "Bronze"], n),
            "next_best_offer": "Premium maintenance plan",
            "offer_reason": "Similar customers upgraded after a year on the base plan. " * 6,
            "monthly_revenue": [list(rng.gamma(2, 100, 12)) for _ in range(n)],
            "not_a_card_field": 1,
        }
    )


@needs_pdftotext
def test_cards_one_pdf_page_per_customer_and_one_html_each(tmp_path):
    frame = card_frame(7)
    frame.loc[3, "display_name"] = None  # falls back to the id
    frame.loc[2, "customer_id"] = "C/00002 x"  # an id that is not a safe file name
    out = render.render_cards(frame, tmp_path / "cards", MANIFEST)
    assert out["count"] == 7 and render.pdf_page_count(out["pdf"]) == 7
    pages = render.pdf_text(out["pdf"]).split("\f")
    assert (
        "Cliente 0 Núñez-Góngora" in pages[0] and "Card 1 of 7" in pages[0] and "Run 2026-10-v7" in pages[0]
    )
    assert "12345678Z" in pages[0] and "Premium maintenance plan" in pages[0]
    assert "C00003" in pages[3] and render.MISSING in pages[0]  # missing fields shown as "—"
    html_files = sorted(p.name for p in out["html_dir"].glob("*.html"))
    assert len(html_files) == 8 and "index.html" in html_files and "C_00002_x.html" in html_files
    card = (out["html_dir"] / "C00000.html").read_text(encoding="utf-8")
    assert "Cliente 0 Núñez-Góngora" in card and "ES9121000418450200051332" in card and "2026-10-v7" in card
    assert not EXTERNAL_LOAD.search(card)
    index = (out["html_dir"] / "index.html").read_text(encoding="utf-8")
    for href in re.findall(r'href="([^"]+)"', index):
        assert (out["html_dir"] / href).exists(), href


@needs_pdftotext
def test_no_cards_selected_still_gives_a_readable_pdf(tmp_path):
    out = render.render_cards(card_frame(0), tmp_path / "cards", MANIFEST)
    assert out["count"] == 0 and "No customer matched" in render.pdf_text(out["pdf"])


@needs_pdftotext
def test_cards_for_a_masked_audience_hide_identifiers(tmp_path):
    out = render.render_cards(card_frame(4), tmp_path / "cards", MANIFEST, masked=True)
    files = [out["pdf"], *out["html_dir"].glob("*.html")]
    assert render.scan_for_identifiers(files, RAW) == []
    text = render.pdf_text(out["pdf"])
    assert privacy.mask_tax_id("12345678Z") in text and "Cliente 0" not in text  # names are personal data too


def test_card_values_are_formatted_with_fallbacks():
    assert render.format_value(None, "money") == render.MISSING
    assert render.format_value(float("nan"), "percent") == render.MISSING
    assert render.format_value(pd.NaT, "date") == render.MISSING
    assert render.format_value([], "list") == render.MISSING
    assert render.format_value(1234.4, "money") == "€1,234"
    assert render.format_value(-5.0, "money", currency="CHF") == "-5 CHF"
    assert render.format_value(0.237, "percent") == "24 %"
    assert render.format_value(pd.Timestamp("2026-10-31 13:00"), "date") == "2026-10-31"
    assert render.format_value(["CRM", None, "ERP"], "list") == "CRM, ERP"
    assert render.format_value("x" * 500, "text").endswith("…")
    with pytest.raises(render.RenderError, match="customer_id"):
        render.card_records(pd.DataFrame({"name": ["x"]}))
    files = [
        c["file"] for c in render.card_records(pd.DataFrame({"customer_id": ["index", "a/b", "a b", "A_B"]}))
    ]
    assert files == ["index-2.html", "a_b.html", "a_b-2.html", "A_B-3.html"]  # never the cards' index page
    (card,) = render.card_records(pd.DataFrame({"customer_id": ["C9"], "full_name": ["Eva Sanz"]}))
    assert card["title"] == "Eva Sanz" and card["series"] is None and card["offer"] is None


def test_card_selection():
    frame = card_frame(30)
    top, _ = render.select_cards(frame, render.CardSettings(select="top_n", top_n=5, by="clv_12m"))
    assert top["clv_12m"].tolist() == sorted(frame["clv_12m"], reverse=True)[:5]
    picked, missing = render.select_cards(
        frame, render.CardSettings(select="ids", ids=["C00007", "nope", "C00002"])
    )
    assert picked["customer_id"].tolist() == ["C00007", "C00002"] and missing == ["nope"]
    mine, _ = render.select_cards(
        frame, render.CardSettings(select="account_manager", account_manager="Ana Ruiz")
    )
    assert (
        set(mine["account_manager"]) == {"Ana Ruiz"}
        and len(mine) == (frame["account_manager"] == "Ana Ruiz").sum()
    )
    with pytest.raises(render.RenderError, match="cards.by"):
        render.select_cards(frame, render.CardSettings(by="nonexistent"))


@pytest.mark.slow
def test_a_thousand_cards_render(tmp_path):
    frame = card_frame(1000)
    t0 = time.perf_counter()
    out = render.render_cards(frame, tmp_path / "cards", MANIFEST)
    seconds = time.perf_counter() - t0
    size = out["pdf"].stat().st_size
    print(f"\n1,000 cards: {seconds:.2f} s (PDF {size / 2**20:.1f} MiB + 1,000 HTML pages)")
    assert render.pdf_page_count(out["pdf"]) == 1000
    assert len(list(out["html_dir"].glob("*.html"))) == 1001  # timed against 60 s by make bench


# ---------------------------------------------------------------------------- settings


def test_report_settings_are_validated_with_a_clear_message(tmp_path):
    settings = load_settings(root=Path(__file__).resolve().parents[1])
    rs = render.report_settings(settings)
    assert rs.audiences["executive"].masked and rs.audiences["marketing"].masked
    assert not rs.audiences["account_managers"].masked
    bad = settings.model_copy(update={"reports": {"engine": "latex"}})
    with pytest.raises(ConfigError, match=r"default\.yaml.*\n.*reports\.engine"):
        render.report_settings(bad)
    bad = settings.model_copy(update={"reports": {"cards": {"select": "ids"}}})
    with pytest.raises(ConfigError, match="needs a non-empty `ids`"):
        render.report_settings(bad)
    bad = settings.model_copy(
        update={
            "reports": {"audiences": {"Exec Board": {"title": "x", "notebook": "x.ipynb", "masked": True}}}
        }
    )
    with pytest.raises(ConfigError, match="lower_snake_case"):
        render.report_settings(bad)


# ---------------------------------------------------------------------------- index


def _fake_run(period_dir: Path, name: str, manifest: dict, files: dict[str, str]) -> Path:
    run = period_dir / name
    run.mkdir(parents=True)
    for rel, text in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def index_links(index: Path) -> list[str]:
    return re.findall(r'href="([^"#]+)"', index.read_text(encoding="utf-8"))


def test_index_lists_every_period_version_and_audience_with_links_that_resolve(tmp_path):
    reports = tmp_path / "reports"
    sep, oct_ = reports / "2026-09", reports / "2026-10"
    rep = {
        "audiences": [
            {
                "name": "executive",
                "title": "Executive summary",
                "html": "executive.html",
                "pdf": "executive.pdf",
                "masked": True,
            }
        ],
        "cards": {"count": 2, "masked": False, "pdf": "cards/cards.pdf", "index": "cards/index.html"},
    }
    files = {
        "executive.html": "x",
        "executive.pdf": "%PDF",
        "cards/cards.pdf": "%PDF",
        "cards/index.html": "x",
        "notebooks/01_ingest.ipynb": "{}",
        "notebooks/reports/executive.ipynb": "{}",
    }
    _fake_run(
        sep,
        "v1",
        {**MANIFEST, "run_id": "2026-09-v1", "period": "2026-09", "status": "ok", "reports": rep},
        files,
    )
    _fake_run(oct_, "v1", {**MANIFEST, "run_id": "2026-10-v1", "status": "ok", "reports": rep}, files)
    _fake_run(
        oct_,
        "v2.failed",
        {
            **MANIFEST,
            "run_id": "2026-10-v2",
            "status": "failed",
            "error": "stage 'unify' failed in notebooks/02_unify.ipynb",
        },
        {},
    )
    _fake_run(
        oct_,
        "v3",
        {**MANIFEST, "run_id": "2026-10-v3", "status": "ok"},  # no "reports" record: found by name
        {"marketing.html": "x", "marketing.pdf": "%PDF"},
    )
    (oct_ / ".v4.partial").mkdir()  # a run in progress is not listed
    os.symlink("2026-10/v3", reports / "latest")

    index = render.write_index(reports)
    html_text = index.read_text(encoding="utf-8")
    links = index_links(index)
    assert links and all(not re.match(r"[a-z]+:|/", href) for href in links)  # relative only
    for href in links:
        assert (reports / href).exists(), href
    for href in (
        "2026-09/v1/executive.html",
        "2026-10/v1/executive.pdf",
        "2026-10/v1/cards/index.html",
        "2026-10/v1/cards/cards.pdf",
        "2026-10/v1/manifest.json",
        "2026-10/v3/marketing.pdf",
        "2026-10/v1/notebooks/reports/executive.ipynb",
        "2026-10/v3/",
    ):
        assert href in links
    assert "2026-10-v2" in html_text and "failed" in html_text and "02_unify" in html_text
    assert ".v4" not in html_text
    assert html_text.index("2026-10-v3") < html_text.index("2026-10-v1") < html_text.index("2026-09-v1")


# ---------------------------------------------------------------------------- the runner's entry point


@pytest.mark.slow
@needs_pdftotext
def test_render_run_renders_audiences_and_cards_into_the_run_folder(tmp_path):
    root = make_project(tmp_path / "proj")
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nbformat.write(
        _notebook(
            [
                md("# Account managers\nThe portfolio and the customers who get a card."),
                _params("period = None\nrun_id = None\noverrides = {}\naudience = None\nmasked = False"),
                md("## Portfolio value"),
                code(
                    "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom helpers import render\n"
                    "from helpers.config import load_settings\n"
                    "cards = pd.DataFrame({'customer_id': [f'C{i}' for i in range(12)], 'clv_12m': [100.0 * i for i in range(12)],\n"
                    "                      'account_manager': ['Ana Ruiz', 'Luis Gil'] * 6, 'tax_id': '12345678Z'})\n"
                    "render.save_cards(cards, load_settings(), period)\n"
                    "cards.groupby('account_manager')['clv_12m'].sum().plot.barh(title='CLV by manager')\nplt.show()"
                ),
            ]
        ),
        root / "notebooks" / "reports" / "am.ipynb",
    )
    settings = load_settings(
        root=root,
        overrides={
            "reports": {
                "engine": "fallback",
                "audiences": {
                    "account_managers": {"title": "Account managers", "notebook": "am.ipynb", "masked": False}
                },
                "cards": {"audience": "account_managers", "select": "top_n", "top_n": 5, "by": "clv_12m"},
            }
        },
    )
    reports = settings.path("reports")
    partial = reports / "2026-10" / ".v1.partial"
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text(json.dumps({**MANIFEST, "run_id": "2026-10-v1"}))
    summary = render.render_run(partial, settings, quiet=True)
    assert summary["engine"] == "fallback" and summary["cards"]["count"] == 5
    (aud,) = summary["audiences"]
    assert aud["pdf_pages"] >= 1 and aud["execute_seconds"] > 0
    assert json.loads((partial / "manifest.json").read_text())["reports"] == summary
    assert render.pdf_page_count(partial / "cards" / "cards.pdf") == 5
    assert "Run 2026-10-v1" in render.pdf_text(partial / "account_managers.pdf")
    assert (partial / "notebooks" / "reports" / "am.ipynb").exists()
    os.replace(partial, reports / "2026-10" / "v1")  # what the runner does next
    index = render.write_index(reports)
    links = index_links(index)
    assert "2026-10/v1/account_managers.pdf" in links and "2026-10/v1/cards/index.html" in links
    assert all((reports / href).exists() for href in links)
