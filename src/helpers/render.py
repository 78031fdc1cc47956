"""Reports: executed notebooks to self-contained HTML + PDF, customer cards in batch, the index.

Two routes give the same outputs in ``reports/<period>/v<N>/``:

- **Quarto** when ``quarto`` is on PATH (engine ``auto``) or asked for (``quarto``): the executed
  notebook is copied beside the project's Quarto files (``notebooks/reports/_quarto.yml``: HTML and
  Typst PDF, code hidden, one theme) and rendered without executing it again.
- **Fallback** (no Quarto; works offline from the pinned lock file): nbconvert with the template
  ``templates/scv_report.html.j2`` (no code input, no prompts, no CDN scripts, charts inline) and
  WeasyPrint for the A4 PDF of that same HTML (``templates/scv_report.css``: margins, page numbers,
  the run manifest as running footer).

Customer cards are not one notebook per customer: `render_cards` formats a frame (one row per
customer, columns as in `CARD_FIELDS`) into one JSON file and compiles ONE Typst template into one
PDF with a page per customer, and renders ONE Jinja template into a HTML page per customer.

Every output prints the run manifest (period, run, code version, parameter hash, input fingerprint).
Reports of masked audiences are checked for identifier-shaped text (`find_identifier_patterns`)
before they are kept; `scan_for_identifiers` checks rendered files against known raw identifiers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helpers import store
from helpers.errors import ScvError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_TEMPLATE = TEMPLATES / "scv_report.html.j2"  # nbconvert template (extends lab/index.html.j2)
REPORT_CSS = TEMPLATES / "scv_report.css"  # screen + print (@page A4, page numbers, footer)
CARDS_TYPST = TEMPLATES / "cards.typ"  # one page per customer
CARD_HTML = "card.html.j2"  # one HTML page per customer
CARDS_INDEX_HTML = "cards_index.html.j2"
REPORTS_INDEX_HTML = "reports_index.html.j2"

MISSING = "—"
Engine = Literal["auto", "quarto", "fallback"]


class RenderError(ScvError):
    """A report could not be rendered, or a masked report shows a raw identifier."""


# --------------------------------------------------------------------------------------------------
# Parameters: the `reports:` section of params/default.yaml
# --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudienceSettings(_Strict):
    """One audience: its notebook in notebooks/reports/ and whether identifiers are masked for it."""

    title: str
    notebook: str = Field(pattern=r"^[\w.-]+\.ipynb$")
    masked: bool
    pdf: bool = True


class CardSettings(_Strict):
    """Which customers get a card ("ficha de cliente") and for which audience."""

    enabled: bool = True
    audience: str = "account_managers"
    select: Literal["top_n", "ids", "account_manager", "all"] = "top_n"
    top_n: int = Field(200, ge=1)
    by: str = "clv_12m"
    ids: list[str] = Field(default_factory=list)
    account_manager: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> CardSettings:
        if self.select == "ids" and not self.ids:
            raise ValueError("select: ids needs a non-empty `ids` list of customer ids")
        if self.select == "account_manager" and not self.account_manager:
            raise ValueError("select: account_manager needs `account_manager` (a name as in the card column)")
        return self


DEFAULT_AUDIENCES: dict[str, AudienceSettings] = {
    "executive": AudienceSettings(title="Executive summary", notebook="executive.ipynb", masked=True),
    "account_managers": AudienceSettings(
        title="Account managers", notebook="account_managers.ipynb", masked=False
    ),
    "marketing": AudienceSettings(title="Marketing", notebook="marketing.ipynb", masked=True),
    "data_stewards": AudienceSettings(title="Data stewards", notebook="data_stewards.ipynb", masked=False),
}


class ReportSettings(_Strict):
    """The `reports:` section of params/default.yaml (validated here; config.Settings keeps it as a dict)."""

    engine: Engine = "auto"
    leak_check: Literal["fail", "warn", "off"] = "fail"
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    quarto_timeout_s: int = Field(600, ge=10)
    audiences: dict[str, AudienceSettings] = Field(default_factory=lambda: dict(DEFAULT_AUDIENCES))
    cards: CardSettings = CardSettings()

    @field_validator("audiences")
    @classmethod
    def _names(cls, v: dict[str, AudienceSettings]) -> dict[str, AudienceSettings]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(
                    f"audience name {name!r} must be lower_snake_case (it names the output files)"
                )
        if not v:
            raise ValueError("at least one audience is needed")
        return v

    @model_validator(mode="after")
    def _cards_audience(self) -> ReportSettings:
        if self.cards.enabled and self.cards.audience not in self.audiences:
            raise ValueError(
                f"cards.audience {self.cards.audience!r} is not one of the audiences {list(self.audiences)}"
            )
        return self


def report_settings(settings: Any) -> ReportSettings:
    """Validate `settings.reports` (a dict from params/default.yaml) into ReportSettings."""
    from helpers.config import explain_validation_error

    raw = getattr(settings, "reports", None) or {}
    try:
        return ReportSettings(**raw)
    except ValidationError as exc:
        root = getattr(settings, "root", Path("."))
        raise explain_validation_error(
            Path(root) / "params" / "default.yaml", exc, prefix="reports"
        ) from None


# --------------------------------------------------------------------------------------------------
# The run manifest, as printed in every report's footer
# --------------------------------------------------------------------------------------------------


def inputs_fingerprint(inputs: Mapping[str, str | None] | None) -> str:
    """One sha256 over every input file's sha256 (stable order): the inputs in one short value."""
    payload = json.dumps(sorted((inputs or {}).items()), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def manifest_items(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing the run: printed in report footers and the index."""
    inputs = manifest.get("inputs_sha256") or {}
    missing = sum(1 for v in inputs.values() if v is None)
    overrides = manifest.get("parameter_overrides") or {}
    params = str(manifest.get("parameters_sha256") or "?")[:12]
    if overrides:
        params += " with " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    inputs_text = f"{len(inputs)} files, sha256 {inputs_fingerprint(inputs)[:12]}"
    if missing:
        inputs_text += f" ({missing} missing)"
    return [
        ("Run", str(manifest.get("run_id", "?"))),
        ("Period", str(manifest.get("period", "?"))),
        ("Code version", str(manifest.get("code_version", "?"))),
        ("Parameters", f"sha256 {params}"),
        ("Inputs", inputs_text),
        ("Started", str(manifest.get("started_at", "?"))),
    ]


def footer_line(manifest: Mapping[str, Any]) -> str:
    """The manifest in one line, for page footers."""
    items = dict(manifest_items(manifest))
    return (
        f"Run {items['Run']} · period {items['Period']} · code {items['Code version']} · "
        f"parameters {items['Parameters']} · inputs {items['Inputs']}"
    )


# --------------------------------------------------------------------------------------------------
# Notebooks -> HTML + PDF
# --------------------------------------------------------------------------------------------------

REMOVE_CELL_TAGS = {"remove-cell", "remove_cell"}
REMOVE_OUTPUT_TAGS = {"remove-output", "remove_output"}
_ENDS_WITH_HEADING = re.compile(r"(^|\n)#{1,4}\s[^\n]*\s*$")


def _shows(cell: Any) -> bool:
    return cell.cell_type == "markdown" or (cell.cell_type == "code" and bool(cell.get("outputs")))


def _is_chart(cell: Any) -> bool:
    return cell.cell_type == "code" and any(
        k.startswith("image/") for o in cell.get("outputs", []) for k in o.get("data", {})
    )


def _is_reading(cell: Any) -> bool:
    """A short Markdown cell without headings: the sentence that says what a chart shows."""
    return cell.cell_type == "markdown" and len(cell.source) <= 500 and not re.search(r"(^|\n)#", cell.source)


def _keep_headings_with_content(cells: list) -> None:
    """Group a heading with what it introduces, and a chart with the sentence reading it.

    The groups are tagged scv-keep-start / scv-keep-end; the report template wraps each in
    <div class="scv-keep">, which the print CSS keeps on one page (WeasyPrint does not honour
    break-after: avoid through JupyterLab's nested cell markup).
    """
    visible = [i for i, c in enumerate(cells) if _shows(c)]
    k = 0
    while k < len(visible):
        start = end = visible[k]
        cell = cells[start]
        if cell.cell_type == "markdown" and _ENDS_WITH_HEADING.search(cell.source):
            if k + 1 >= len(visible):
                break
            nxt = cells[visible[k + 1]]
            if nxt.cell_type == "markdown" and _ENDS_WITH_HEADING.search(nxt.source):
                k += 1
                continue
            k += 1
            end = visible[k]
        elif not _is_chart(cell):
            k += 1
            continue
        if _is_chart(cells[end]) and k + 1 < len(visible) and _is_reading(cells[visible[k + 1]]):
            k += 1
            end = visible[k]
        if end != start:
            cells[start].metadata["tags"] = [*cells[start].metadata.get("tags", []), "scv-keep-start"]
            cells[end].metadata["tags"] = [*cells[end].metadata.get("tags", []), "scv-keep-end"]
        k += 1


def prepare_notebook(nb: Any, title: str | None = None) -> Any:
    """A copy fit for readers: cells tagged remove-cell dropped, remove-output emptied, stderr removed.

    Warnings and logs that a kernel writes to stderr are for the analyst, not the report's reader.
    """
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & REMOVE_CELL_TAGS:
            continue
        if cell.cell_type == "code":
            if tags & REMOVE_OUTPUT_TAGS:
                cell.outputs = []
            else:
                cell.outputs = [
                    o
                    for o in cell.outputs
                    if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                ]
        cells.append(cell)
    nb.cells = cells
    _keep_headings_with_content(cells)
    if title:
        nb.metadata["title"] = title
    return nb


def notebook_title(nb: Any, default: str) -> str:
    """The notebook's title: metadata.title, else its first Markdown '# heading', else `default`."""
    if nb.metadata.get("title"):
        return str(nb.metadata["title"])
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+?)\s*#*\s*$", cell.source, flags=re.M)
            if m:
                return m.group(1)
    return default


def quarto_available() -> str | None:
    """The path of `quarto` on PATH, or None."""
    return shutil.which("quarto")


def choose_engine(engine: Engine = "auto") -> Literal["quarto", "fallback"]:
    """auto -> Quarto when it is on PATH, else the fallback; `quarto` without Quarto is an error."""
    if engine == "fallback":
        return "fallback"
    if quarto_available():
        return "quarto"
    if engine == "quarto":
        raise RenderError(
            "reports.engine is 'quarto' but `quarto` is not on PATH; install Quarto "
            "(conda-forge, see environment.yml) or set reports.engine: auto"
        )
    return "fallback"


def html_from_notebook(nb: Any, *, title: str, manifest: Mapping[str, Any], banner: str = "") -> str:
    """Self-contained HTML of an executed notebook: outputs only, charts inline, nothing from outside."""
    from nbconvert import HTMLExporter

    # nbconvert's "alternative text is missing" warning: _describe_charts supplies the text instead
    quiet_log = logging.getLogger("helpers.render.nbconvert")
    quiet_log.setLevel(logging.ERROR)
    exporter = HTMLExporter(
        template_file=str(REPORT_TEMPLATE),
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        anchor_link_text="",
        log=quiet_log,
    )
    resources = {
        "metadata": {"name": title},
        "scv": {
            "css": REPORT_CSS.read_text(encoding="utf-8"),
            "footer": {"run_id": str(manifest.get("run_id", ""))},
            "footer_line": footer_line(manifest),
            "footer_items": manifest_items(manifest),
            "banner": banner,
        },
    }
    body, _ = exporter.from_notebook_node(prepare_notebook(nb, title=title), resources=resources)
    return _describe_charts(body)


_NO_ALT = "No description has been provided for this image"


def _describe_charts(html_text: str) -> str:
    """Give each chart without a description the alt text "Chart: <the heading above it>"."""
    if _NO_ALT not in html_text:
        return html_text
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_text, "html.parser")
    for img in soup.find_all("img", alt=_NO_ALT):
        heading = img.find_previous(["h1", "h2", "h3", "h4"])
        img["alt"] = f"Chart: {heading.get_text(' ', strip=True)}" if heading else "Chart"
    return str(soup)


def _quiet_weasyprint() -> None:
    # WeasyPrint warns about every CSS property it ignores (JupyterLab's CSS has many): not actionable
    for name in ("weasyprint", "weasyprint.progress", "fontTools", "fontTools.subset"):
        logging.getLogger(name).setLevel(logging.ERROR)


def html_to_pdf(html_text: str, pdf_path: Path, *, base_url: Path | None = None) -> int:
    """Print HTML to an A4 PDF with WeasyPrint (the @page rules of the HTML apply); returns pages."""
    import weasyprint

    _quiet_weasyprint()
    document = weasyprint.HTML(string=html_text, base_url=str(base_url or pdf_path.parent)).render()
    with store.atomic_path(pdf_path) as tmp:
        document.write_pdf(tmp)
        readable(tmp)
    return len(document.pages)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def readable(path: Path) -> Path:
    """Give a published file (0644) or folder (0755) the usual permissions, subject to the umask.

    Atomic writes go through mkstemp/mkdtemp, which create 0600 files and 0700 folders: fine for
    data, wrong for reports that a web server or colleagues read.
    """
    path = Path(path)
    mode = 0o777 if path.is_dir() else 0o666
    path.chmod(mode & ~_umask())
    return path


def _write_text(path: Path, text: str) -> Path:
    with store.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        readable(tmp)
    return path


def quarto_project_dir(root: Path | None = None) -> Path:
    """The Quarto project of the report notebooks (notebooks/reports/ with _quarto.yml)."""
    if root is None:
        from helpers.config import project_root

        root = project_root()
    return Path(root) / "notebooks" / "reports"


def quarto_command(notebook_name: str, to: Literal["html", "typst"], quarto: str = "quarto") -> list[str]:
    """The Quarto call for one format of an already executed notebook (run in the render folder)."""
    return [quarto, "render", notebook_name, "--to", to, "--no-execute"]


def quarto_footer_files(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The per-run files that _quarto.yml includes: the manifest footer for HTML and for Typst."""
    from jinja2 import Environment

    items = manifest_items(manifest)
    html_footer = (
        Environment(autoescape=True)
        .from_string(
            '<footer class="scv-footer" id="scv-manifest"><strong>Run manifest</strong><dl>'
            "{% for k, v in items %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl></footer>\n"
        )
        .render(items=items)
    )
    line = json.dumps(footer_line(manifest), ensure_ascii=False)  # a valid Typst string literal
    typst_footer = (
        "// The run manifest in every page footer (written for each run by helpers.render)\n"
        f"#let scv-footer-line = {line}\n"
        "#set page(footer: context {\n"
        "  set text(size: 7pt, fill: luma(90))\n"
        "  grid(columns: (1fr, auto), column-gutter: 10pt, scv-footer-line,\n"
        "       [Page #counter(page).display() of #counter(page).final().first()])\n"
        "})\n"
    )
    return {"_scv_footer.html": html_footer, "_scv_footer.typ": typst_footer}


def _render_quarto(
    nb: Any,
    out_dir: Path,
    *,
    name: str,
    manifest: Mapping[str, Any],
    pdf: bool,
    project: Path,
    timeout_s: int,
) -> dict[str, Path]:
    import nbformat

    quarto = quarto_available()
    if not quarto:
        raise RenderError("`quarto` is not on PATH")
    if not (project / "_quarto.yml").exists():
        raise RenderError(f"no Quarto project at {project} (expected _quarto.yml)")
    work = Path(tempfile.mkdtemp(prefix=f".quarto-{name}-", dir=out_dir))
    try:
        # the project's support files are the ones named _*; the report notebooks themselves are not needed
        for f in project.iterdir():
            if f.is_file() and f.name.startswith("_"):
                shutil.copy2(f, work / f.name)
        for fname, text in quarto_footer_files(manifest).items():
            (work / fname).write_text(text, encoding="utf-8")
        nb = copy.deepcopy(nb)
        for cell in nb.cells:  # code hidden even if a notebook's own options say otherwise
            if cell.cell_type == "code":
                cell.source = "#| echo: false\n" + cell.source
        nbformat.write(nb, work / f"{name}.ipynb")
        formats: list[tuple[Literal["html", "typst"], str]] = [("html", "html")] + (
            [("typst", "pdf")] if pdf else []
        )
        outputs: dict[str, Path] = {}
        for to, ext in formats:
            cmd = quarto_command(f"{name}.ipynb", to, quarto=quarto)
            try:
                proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise RenderError(f"quarto render of {name} ({to}) took more than {timeout_s} s") from None
            produced = work / f"{name}.{ext}"
            if proc.returncode != 0 or not produced.exists():
                tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
                raise RenderError(f"quarto render of {name} to {to} failed (exit {proc.returncode}):\n{tail}")
            target = out_dir / f"{name}.{ext}"
            os.replace(produced, target)
            outputs["html" if ext == "html" else "pdf"] = target
        return outputs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render_notebook(
    executed_ipynb: Path,
    out_dir: Path,
    *,
    name: str,
    manifest: Mapping[str, Any],
    masked: bool,
    engine: Engine = "auto",
    pdf: bool = True,
    title: str | None = None,
    quarto_project: Path | None = None,
    leak_check: Literal["fail", "warn", "off"] = "fail",
    quarto_timeout_s: int = 600,
) -> dict[str, Path]:
    """Render an executed notebook to ``out_dir/<name>.html`` and ``.pdf``; returns {"html", "pdf"}.

    `masked` says the audience must not see raw identifiers: the rendered HTML is then checked for
    valid tax ids, IBANs, emails and phones, and `leak_check` decides whether one found is an error.
    """
    import nbformat

    executed_ipynb, out_dir = Path(executed_ipynb), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(executed_ipynb, as_version=4)
    title = title or notebook_title(nb, default=name.replace("_", " ").capitalize())
    used = choose_engine(engine)
    banner = f"{title} · period {manifest.get('period', '?')} · run {manifest.get('run_id', '?')}"
    banner += " · identifiers masked" if masked else ""
    if used == "quarto":
        outputs = _render_quarto(
            prepare_notebook(nb, title=title),
            out_dir,
            name=name,
            manifest=manifest,
            pdf=pdf,
            project=quarto_project or quarto_project_dir(),
            timeout_s=quarto_timeout_s,
        )
    else:
        html_text = html_from_notebook(nb, title=title, manifest=manifest, banner=banner)
        outputs = {"html": _write_text(out_dir / f"{name}.html", html_text)}
        if pdf:
            html_to_pdf(html_text, out_dir / f"{name}.pdf", base_url=out_dir)
            outputs["pdf"] = out_dir / f"{name}.pdf"
    if masked and leak_check != "off":
        # the rendered HTML, and every output of the executed notebook (it is published beside it)
        text = (
            html_text_content(outputs["html"].read_text(encoding="utf-8")) + "\n" + notebook_output_text(nb)
        )
        found = find_identifier_patterns(text)
        if found:
            shown = ", ".join(f"{kind} ending …{value[-3:]}" for kind, value in found[:5])
            msg = (
                f"the {name} report is for a masked audience but shows {len(found)} raw identifier(s): "
                f"{shown}; mask them in the notebook with helpers.privacy.mask_frame"
            )
            if leak_check == "fail":
                for path in outputs.values():
                    path.unlink(missing_ok=True)
                raise RenderError(msg)
            warnings.warn(msg, stacklevel=2)
    return outputs


# --------------------------------------------------------------------------------------------------
# Customer cards
# --------------------------------------------------------------------------------------------------

FieldKind = Literal["text", "money", "int", "number", "percent", "date", "bool", "list", "series"]


@dataclass(frozen=True)
class CardField:
    """One column of the card contract: its name in the frame, how it is shown, where, and aliases."""

    name: str
    label: str
    kind: FieldKind
    section: str
    pii: str | None = None  # the kind of personal data (a key of helpers.privacy.MASKS): masked when asked
    aliases: tuple[str, ...] = ()
    description: str = ""


#: The columns a customer card reads (the contract with the metrics and segments stages).
#: Only `customer_id` is required; any other missing column or value is shown as "—". Extra columns
#: are ignored. Money is in reports.currency; `churn_risk` is a probability in [0, 1];
#: `monthly_revenue` is a list of the last months' revenue, oldest first, ending at the period.
CARD_FIELDS: tuple[CardField, ...] = (
    # identity
    CardField(
        "customer_id", "Customer id", "text", "identity", description="stable golden-record id (required)"
    ),
    CardField(
        "display_name",
        "Name",
        "text",
        "identity",
        pii="name",
        aliases=("full_name", "name"),
        description="person's full name or company name",
    ),
    CardField(
        "customer_type", "Type", "text", "identity", aliases=("party_type",), description="person / company"
    ),
    CardField("tax_id", "Tax id (NIF/NIE/CIF)", "text", "identity", pii="tax_id"),
    CardField("birth_date", "Birth date", "date", "identity", pii="date"),
    CardField("currency", "Currency", "text", "identity"),
    # contact
    CardField("email", "Email", "text", "contact", pii="email"),
    CardField("phone", "Phone", "text", "contact", pii="phone"),
    CardField("iban", "IBAN", "text", "contact", pii="iban"),
    CardField("address", "Address", "text", "contact", pii="address"),
    CardField("postcode", "Postcode", "text", "contact"),
    CardField("city", "City", "text", "contact"),
    CardField("country", "Country", "text", "contact"),
    CardField("preferred_channel", "Preferred channel", "text", "contact"),
    CardField("consent_email", "Consent: email", "bool", "contact"),
    CardField("consent_phone", "Consent: phone", "bool", "contact"),
    # relationship
    CardField("account_manager", "Account manager", "text", "relationship"),
    CardField(
        "customer_since",
        "Customer since",
        "date",
        "relationship",
        aliases=("first_purchase_at", "created_at"),
    ),
    CardField("sources", "Known in", "list", "relationship", description="source systems holding a record"),
    CardField("source_records", "Source records", "int", "relationship", aliases=("n_records",)),
    CardField(
        "relationship_trend",
        "Relationship trend",
        "text",
        "relationship",
        aliases=("trend",),
        description="e.g. growing / stable / declining",
    ),
    CardField(
        "strategy",
        "Strategy",
        "text",
        "relationship",
        description="acquisition / retention / loyalty / development",
    ),
    # value (the tiles at the top are CARD_TILES)
    CardField("revenue_12m", "Revenue, last 12 months", "money", "value"),
    CardField("clv_12m", "CLV, next 12 months", "money", "value", aliases=("clv",)),
    CardField("orders_12m", "Orders, last 12 months", "int", "value"),
    CardField("revenue_total", "Revenue, all time", "money", "value", aliases=("revenue_lifetime",)),
    CardField("avg_order_value", "Average order", "money", "value", aliases=("aov",)),
    CardField("margin_12m", "Margin, last 12 months", "money", "value"),
    CardField("days_to_pay", "Average days to pay", "number", "value", aliases=("mean_days_to_pay",)),
    CardField("outstanding", "Outstanding balance", "money", "value", aliases=("outstanding_balance",)),
    CardField("payment_method", "Payment method", "text", "value", aliases=("preferred_payment_method",)),
    # behaviour
    CardField("last_purchase_date", "Last purchase", "date", "behaviour", aliases=("last_purchase_at",)),
    CardField("recency_days", "Days since last purchase", "int", "behaviour"),
    CardField("top_categories", "Preferred categories", "text", "behaviour"),
    CardField("purchase_channel", "Buys through", "text", "behaviour"),
    CardField("responsiveness", "Campaign responsiveness", "text", "behaviour"),
    CardField("rfm_segment", "RFM segment", "text", "behaviour"),
    CardField("rfm_score", "RFM score", "text", "behaviour", aliases=("rfm_code",)),
    CardField("open_tickets", "Open tickets", "int", "behaviour"),
    CardField("last_nps", "Last NPS answer", "int", "behaviour", aliases=("nps_last",)),
    CardField("csat_avg", "Average CSAT", "number", "behaviour", aliases=("csat_mean",)),
    CardField("sentiment", "Sentiment (mentions)", "number", "behaviour", aliases=("sentiment_mean",)),
    # segments and risk
    CardField("tier", "Value tier", "text", "segments", aliases=("value_tier",)),
    CardField("cluster", "Behavioural cluster", "text", "segments", aliases=("segment",)),
    CardField("churn_risk", "Churn risk", "percent", "segments", aliases=("churn_probability",)),
    CardField("churn_band", "Churn band", "text", "segments"),
    CardField("prescription_reasons", "Prescriber (influence)", "text", "segments"),
    CardField("vulnerability_reasons", "Vulnerability signals", "text", "segments"),
    # offer
    CardField("next_best_offer", "Next best offer", "text", "offer", aliases=("offer_name", "nbo")),
    CardField("offer_reason", "Why this offer", "text", "offer", aliases=("reason", "nbo_reason")),
    # series
    CardField(
        "monthly_revenue",
        "Revenue by month",
        "series",
        "series",
        description="list of monthly revenue, oldest first, ending at the period",
    ),
)

CARD_SECTIONS = {
    "identity": "Identity",
    "contact": "Contact",
    "relationship": "Relationship",
    "value": "Value",
    "behaviour": "Behaviour",
    "segments": "Segments and risk",
}
CARD_LEFT = ("identity", "contact", "relationship")
CARD_RIGHT = ("value", "behaviour", "segments")
CARD_TILES = ("revenue_12m", "clv_12m", "orders_12m", "churn_risk")
CARD_BADGES = ("tier", "churn_band")
CARD_INDEX_COLUMNS = ("tier", "churn_band", "clv_12m", "account_manager")
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
MAX_TEXT = 300  # longer text is cut with "…" so that a card always fits on its page
MAX_ROW_TEXT, MAX_BADGE_TEXT, MAX_TITLE_TEXT, MAX_MONTHS = 90, 24, 60, 12


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | dict):
        return len(value) == 0
    if hasattr(value, "__len__") and hasattr(value, "dtype"):  # numpy array
        return len(value) == 0
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value: Any, kind: FieldKind, *, currency: str = "EUR") -> str:
    """A card value as text ("—" when missing), the same in the PDF and the HTML."""
    if _is_missing(value):
        return MISSING
    try:
        if kind == "money":
            amount = float(value)
            symbol = CURRENCY_SYMBOLS.get(currency)
            text = f"{abs(amount):,.0f}"
            sign = "-" if amount < 0 and round(abs(amount)) else ""
            return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"
        if kind == "int":
            return f"{int(round(float(value))):,}"
        if kind == "number":
            return f"{float(value):,.1f}"
        if kind == "percent":
            return f"{float(value) * 100:.0f} %"
        if kind == "date":
            return pd.Timestamp(value).strftime("%Y-%m-%d")
        if kind == "bool":
            if isinstance(value, str):
                return value
            return "Yes" if bool(value) else "No"
        if kind == "list":
            items = [
                str(v) for v in (list(value) if not isinstance(value, str) else [value]) if not _is_missing(v)
            ]
            return ", ".join(items) if items else MISSING
    except (TypeError, ValueError, OverflowError):
        pass  # a value of an unexpected type is shown as text rather than failing a run of 1,000 cards
    text = str(value).strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1].rstrip() + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _field_value(row: Mapping[str, Any], field: CardField) -> Any:
    for col in (field.name, *field.aliases):
        if col in row and not _is_missing(row[col]):
            return row[col]
    return None


def _month_labels(period: str | None, n: int) -> list[str]:
    try:
        end = pd.Period(str(period), freq="M")
    except (ValueError, TypeError):
        return [str(i - n + 1) for i in range(n)]
    return [(end - (n - 1 - i)).strftime("%b") for i in range(n)]


def _series(value: Any, *, period: str | None, currency: str) -> dict[str, Any] | None:
    if _is_missing(value):
        return None
    try:
        values = [0.0 if _is_missing(v) else float(v) for v in list(value)][-MAX_MONTHS:]
    except (TypeError, ValueError):
        return None
    if not values:
        return None
    top = max(max(values), 0.0) or 1.0
    labels = _month_labels(period, len(values))
    return {
        "title": f"Revenue by month, last {len(values)} months",
        "bars": [
            {
                "h": round(max(v, 0.0) / top, 4),
                "label": lab,
                "value": format_value(v, "money", currency=currency) if v else "",
            }
            for v, lab in zip(values, labels, strict=True)
        ],
    }


def _safe_name(customer_id: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", customer_id).strip("._") or "customer"
    name, i = base, 1
    while name.lower() in used:
        i += 1
        name = f"{base}-{i}"
    used.add(name.lower())
    return f"{name}.html"


def card_records(
    customers: pd.DataFrame, *, masked: bool = False, currency: str = "EUR", period: str | None = None
) -> list[dict[str, Any]]:
    """One dict per customer with every value formatted: the data both card templates lay out."""
    from helpers import privacy

    if "customer_id" not in customers.columns:
        raise RenderError(f"the card frame needs a `customer_id` column; it has {list(customers.columns)}")
    by_section: dict[str, list[CardField]] = {}
    for f in CARD_FIELDS:
        by_section.setdefault(f.section, []).append(f)
    fields = {f.name: f for f in CARD_FIELDS}
    used: set[str] = {"index"}  # cards/index.html lists the cards
    cards = []
    for row in customers.to_dict("records"):
        raw = {f.name: _field_value(row, f) for f in CARD_FIELDS}
        if masked:
            for f in CARD_FIELDS:
                if f.pii and raw[f.name] is not None:
                    raw[f.name] = privacy.MASKS[f.pii](raw[f.name])
        shown = {
            name: format_value(raw[name], f.kind, currency=currency)
            for name, f in fields.items()
            if f.kind != "series"
        }
        cid = str(raw["customer_id"]) if raw["customer_id"] is not None else MISSING
        title = _cut(shown["display_name"] if shown["display_name"] != MISSING else cid, MAX_TITLE_TEXT)
        subtitle = " · ".join(
            x
            for x in (
                f"Customer {cid}",
                shown["customer_type"] if shown["customer_type"] != MISSING else "",
                f"since {shown['customer_since']}" if shown["customer_since"] != MISSING else "",
                f"account manager {shown['account_manager']}" if shown["account_manager"] != MISSING else "",
            )
            if x
        )
        sections = {
            key: {
                "title": CARD_SECTIONS[key],
                "rows": [
                    [f.label, _cut(shown[f.name], MAX_ROW_TEXT)]
                    for f in by_section.get(key, [])
                    if f.name not in CARD_TILES
                ],
            }
            for key in CARD_SECTIONS
        }
        offer = None
        if shown["next_best_offer"] != MISSING:
            offer = {
                "title": shown["next_best_offer"],
                "reason": shown["offer_reason"] if shown["offer_reason"] != MISSING else "",
            }
        cards.append(
            {
                "id": cid,
                "file": _safe_name(cid, used),
                "title": title,
                "subtitle": subtitle,
                "badges": [
                    _cut(f"{fields[b].label}: {shown[b]}", MAX_BADGE_TEXT)
                    for b in CARD_BADGES
                    if shown[b] != MISSING
                ],
                "kpis": [[fields[k].label, shown[k]] for k in CARD_TILES],
                "left": [sections[k] for k in CARD_LEFT],
                "right": [sections[k] for k in CARD_RIGHT],
                "series": _series(raw["monthly_revenue"], period=period, currency=currency),
                "offer": offer,
                "summary": [shown[c] for c in CARD_INDEX_COLUMNS],
            }
        )
    return cards


def select_cards(customers: pd.DataFrame, selection: CardSettings) -> tuple[pd.DataFrame, list[str]]:
    """The customers who get a card, in card order; also the requested ids that were not found."""
    missing: list[str] = []
    if selection.select == "all":
        return customers.reset_index(drop=True), missing
    if selection.select == "ids":
        ids = [str(i) for i in selection.ids]
        index = {str(c): i for i, c in enumerate(customers["customer_id"])}
        missing = [i for i in ids if i not in index]
        return customers.iloc[[index[i] for i in ids if i in index]].reset_index(drop=True), missing
    if selection.select == "account_manager":
        if "account_manager" not in customers.columns:
            raise RenderError(
                "cards.select is account_manager but the card frame has no `account_manager` column"
            )
        chosen = customers[customers["account_manager"].astype("string") == selection.account_manager]
        if selection.by in chosen.columns:
            chosen = chosen.sort_values(selection.by, ascending=False, na_position="last", kind="stable")
        return chosen.reset_index(drop=True), missing
    if selection.by not in customers.columns:
        raise RenderError(
            f"cards.by is {selection.by!r} but the card frame has no such column; "
            f"use one of {[c for c in customers.columns if pd.api.types.is_numeric_dtype(customers[c])]}"
        )
    ranked = customers.sort_values(selection.by, ascending=False, na_position="last", kind="stable")
    return ranked.head(selection.top_n).reset_index(drop=True), missing


def _jinja() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def compile_typst(template: Path, data: Mapping[str, Any], pdf_path: Path) -> None:
    """Compile a Typst template that reads `sys.inputs.data` (a JSON file) into a PDF, atomically."""
    import typst

    with tempfile.TemporaryDirectory(prefix=".typst-", dir=pdf_path.parent) as work:
        work_dir = Path(work)
        shutil.copy2(template, work_dir / "main.typ")
        (work_dir / "data.json").write_text(
            json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8"
        )
        with store.atomic_path(pdf_path) as tmp:
            try:
                with warnings.catch_warnings():
                    # e.g. a font family missing on this machine: Typst falls back to the next one
                    warnings.simplefilter("ignore")
                    # pdf_tags=False: a tagged (accessible) PDF of 1,000 cards took 11 s and 29 MB
                    # instead of 0.8 s and 4 MB; the per-customer HTML pages are the accessible version
                    typst.compile(
                        str(work_dir / "main.typ"),
                        output=str(tmp),
                        root=str(work_dir),
                        sys_inputs={"data": "data.json"},
                        pdf_tags=False,
                    )
                readable(tmp)
            except typst.TypstError as exc:  # a template error: say where
                raise RenderError(
                    f"Typst could not compile {template.name}: {exc.message}\n{exc.diagnostic}"
                ) from None


def render_cards(
    customers: pd.DataFrame,
    out_dir: Path,
    manifest: Mapping[str, Any],
    *,
    masked: bool = False,
    currency: str = "EUR",
    title: str = "Customer cards",
    html: bool = True,
) -> dict[str, Any]:
    """One PDF (a page per customer, Typst) and a HTML page per customer (Jinja) in `out_dir`.

    Returns {"pdf", "html_dir", "index", "count", "seconds"}. `out_dir` is replaced as a whole, so
    a failure leaves the previous cards (if any) untouched.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cards = card_records(customers, masked=masked, currency=currency, period=manifest.get("period"))
    footer = footer_line(manifest)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        pdf_name = "cards.pdf"
        compile_typst(
            CARDS_TYPST,
            {"title": f"{title} · {manifest.get('run_id', '')}", "footer": footer, "cards": cards},
            build / pdf_name,
        )
        if html:
            env = _jinja()
            page = env.get_template(CARD_HTML)
            common = {
                "title": title,
                "footer": footer,
                "run_id": str(manifest.get("run_id", "")),
                "pdf_name": pdf_name,
            }
            for card in cards:
                (build / card["file"]).write_text(page.render(card=card, **common), encoding="utf-8")
            columns = [
                "Customer id",
                "Name",
                *[next(f.label for f in CARD_FIELDS if f.name == c) for c in CARD_INDEX_COLUMNS],
            ]
            (build / "index.html").write_text(
                env.get_template(CARDS_INDEX_HTML).render(cards=cards, columns=columns, **common),
                encoding="utf-8",
            )
        readable(build)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(build, out_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return {
        "pdf": out_dir / "cards.pdf",
        "html_dir": out_dir,
        "index": out_dir / "index.html" if html else None,
        "count": len(cards),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def cards_path(settings: Any, period: str) -> Path:
    """Where the account managers' notebook leaves the card frame for `render_run` to render."""
    return settings.path("processed") / period / "reports" / "cards.parquet"


def save_cards(customers: pd.DataFrame, settings: Any, period: str) -> Path:
    """Called by the account managers' notebook: the card frame (one row per customer, CARD_FIELDS)."""
    if "customer_id" not in customers.columns:
        raise RenderError("the card frame needs a `customer_id` column (see helpers.render.CARD_FIELDS)")
    frame = customers.copy()
    for col in frame.columns:  # parquet needs one type per column; lists (monthly_revenue) stay lists
        if frame[col].dtype == object and not frame[col].map(lambda v: isinstance(v, list | tuple)).any():
            frame[col] = frame[col].map(
                lambda v: v if v is None or isinstance(v, str) or _is_missing(v) else str(v)
            )
    return store.write_parquet(frame, cards_path(settings, period))


# --------------------------------------------------------------------------------------------------
# Identifier scans (masked audiences)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A raw identifier found in a rendered file."""

    path: Path
    kind: str
    identifier: str
    context: str


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{120,}")
_COMPACT_DROP = re.compile(r"[\s\u00a0\u202f\-.()/]+")


def html_text_content(html_text: str) -> str:
    """The visible text of a HTML page plus its attribute values (scripts, styles, images removed)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_text, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    attrs = []
    for tag in soup.find_all(True):
        for key, value in tag.attrs.items():
            if key in {"src", "srcset"} and str(value).startswith("data:"):
                continue
            attrs.append(" ".join(value) if isinstance(value, list) else str(value))
    return soup.get_text(" ") + "\n" + "\n".join(attrs)


def notebook_output_text(nb: Any) -> str:
    """Every output of a notebook as text (HTML outputs as their text), stderr and errors included."""
    parts: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                parts.append(str(out.get("text", "")))
            elif out.get("output_type") == "error":
                parts.append(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", []))))
            else:
                data = out.get("data", {})
                for mime in ("text/plain", "text/markdown", "text/latex"):
                    if mime in data:
                        parts.append(str(data[mime]))
                if "text/html" in data:
                    parts.append(html_text_content(str(data["text/html"])))
    return "\n".join(parts)


def pdf_text(path: Path, *, raw: bool = False) -> str:
    """The text of a PDF (pdftotext from poppler-utils); `raw` keeps the order it was drawn in."""
    exe = shutil.which("pdftotext")
    if not exe:
        raise RenderError("reading PDF text needs `pdftotext` (Debian package poppler-utils)")
    mode = ["-raw"] if raw else []
    proc = subprocess.run(
        [exe, "-q", *mode, "-enc", "UTF-8", str(path), "-"], capture_output=True, timeout=300
    )
    if proc.returncode != 0:
        raise RenderError(f"pdftotext could not read {path} (exit {proc.returncode})")
    return proc.stdout.decode("utf-8", errors="replace")


def pdf_page_count(path: Path) -> int:
    """Pages of a PDF (pdfinfo when available, else the page tree's /Count)."""
    exe = shutil.which("pdfinfo")
    if exe:
        out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60).stdout
        m = re.search(r"^Pages:\s+(\d+)", out, flags=re.M)
        if m:
            return int(m.group(1))
    data = Path(path).read_bytes()
    chunks = [data]
    for m in re.finditer(rb"/ObjStm.*?stream\r?\n", data, flags=re.S):  # dictionaries in object streams
        try:
            chunks.append(zlib.decompressobj().decompress(data[m.end() :]))
        except zlib.error:
            continue
    pattern = rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b"
    counts = [int(a or b) for chunk in chunks for a, b in re.findall(pattern, chunk)]
    return max(counts, default=0)


def file_text(path: Path) -> str:
    """The readable text of a rendered file: PDF text, HTML text, or the file (notebooks, JSON, CSV)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        # both reading orders: a value wrapped inside a table cell is contiguous in at least one of them
        return pdf_text(path) + "\n" + pdf_text(path, raw=True)
    text = path.read_text(encoding="utf-8", errors="replace")
    if suffix in {".html", ".htm"}:
        return html_text_content(text)
    return _BASE64_RUN.sub(" ", _DATA_URI.sub(" ", text))


def _compact(text: str) -> str:
    return _COMPACT_DROP.sub("", text.casefold())


def _variants(kind: str, value: str) -> set[str]:
    forms = {_compact(value)}
    if kind in {"phone", "value"} and re.fullmatch(r"\+?[\d\s().-]{8,}", value):
        try:
            import phonenumbers

            national = str(
                phonenumbers.parse(value if value.strip().startswith("+") else "+" + value).national_number
            )
            if len(national) >= 8:
                forms.add(national)
        except Exception:  # noqa: BLE001 - not a phone number: the plain form is enough
            pass
    return {f for f in forms if len(f) >= 6}


def scan_for_identifiers(
    paths: Iterable[Path], identifiers: Mapping[str, Iterable[Any]] | Iterable[Any]
) -> list[Finding]:
    """Every occurrence of a known raw identifier in the rendered files (PDF text, HTML text, notebooks).

    `identifiers` is {kind: values} (kinds such as tax_id, iban, email, phone) or a plain list. The
    comparison ignores case, spaces, dots, dashes and brackets, so "ES91 2100 0418 …" matches the
    compact IBAN, and a phone also matches by its national number (612 345 678 for +34612345678).
    """
    if isinstance(identifiers, Mapping):
        pairs = [(str(k), str(v)) for k, vs in identifiers.items() for v in vs if not _is_missing(v)]
    else:
        pairs = [("value", str(v)) for v in identifiers if not _is_missing(v)]
    needles: dict[str, tuple[str, str]] = {}
    for kind, value in pairs:
        for form in _variants(kind, value):
            needles.setdefault(form, (kind, value))
    if not needles:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    findings = []
    for path in paths:
        compact = _compact(file_text(Path(path)))
        for m in pattern.finditer(compact):
            kind, value = needles[m.group(0)]
            context = compact[max(0, m.start() - 25) : m.end() + 25]
            findings.append(Finding(Path(path), kind, value, context))
    return findings


_TAX_ID = re.compile(
    r"(?<![A-Za-z0-9])(?:[XYZ]\d{7}[A-Z]|\d{8}[A-Z]|[ABCDEFGHJNPQRSUVW]\d{7}[0-9A-J])(?![A-Za-z0-9])"
)
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\d){6,13}(?!\d)|(?<![\w+])[6789]\d{2}(?:[ ]?\d{3}){2}(?![\d])"
)


def find_identifier_patterns(text: str) -> list[tuple[str, str]]:
    """Valid-looking raw identifiers in text: Spanish tax ids and IBANs that pass their check digits
    (python-stdnum), emails, and phone numbers that phonenumbers accepts. Masked values never match."""
    import phonenumbers
    from stdnum import iban
    from stdnum.es import cif, nie, nif

    text = _BASE64_RUN.sub(" ", _DATA_URI.sub(" ", text))
    found: list[tuple[str, str]] = []
    for m in _TAX_ID.finditer(text):
        v = m.group(0)
        if nif.is_valid(v) or nie.is_valid(v) or cif.is_valid(v):
            found.append(("tax_id", v))
    for m in _IBAN.finditer(text):
        if iban.is_valid(m.group(0)):
            found.append(("iban", m.group(0)))
    found += [("email", m.group(0)) for m in _EMAIL.finditer(text)]
    for m in _PHONE.finditer(text):
        v = m.group(0)
        try:
            number = phonenumbers.parse(v, None if v.startswith("+") else "ES")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.append(("phone", v))
    return found


# --------------------------------------------------------------------------------------------------
# reports/index.html
# --------------------------------------------------------------------------------------------------

_PERIOD = re.compile(r"^\d{4}-\d{2}$")
_RUN_DIR = re.compile(r"^v(\d+)(\.failed)?$")


def _href(*parts: str) -> str:
    return "/".join(quote(p) for part in parts for p in str(part).split("/") if p)


def _run_entry(period_dir: Path, run_dir: Path, latest: Path | None) -> dict[str, Any]:
    failed = run_dir.name.endswith(".failed")
    manifest: dict[str, Any] = {}
    if (run_dir / "manifest.json").exists():
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            manifest = {"status": "unreadable manifest"}
    base = (period_dir.name, run_dir.name)
    items = dict(manifest_items(manifest)) if manifest else {}

    def link(rel: str | None) -> str | None:
        return _href(*base, rel) if rel and (run_dir / rel).is_file() else None

    reports = manifest.get("reports") or {}
    audiences = []
    if reports.get("audiences"):
        for a in reports["audiences"]:
            audiences.append(
                {
                    "name": a.get("name"),
                    "title": a.get("title") or a.get("name"),
                    "html": link(a.get("html")),
                    "pdf": link(a.get("pdf")),
                    "masked": a.get("masked"),
                }
            )
    else:  # a run rendered before the manifest recorded its reports: list what is there
        for html_file in sorted(run_dir.glob("*.html")):
            stem = html_file.stem
            audiences.append(
                {
                    "name": stem,
                    "title": stem.replace("_", " ").capitalize(),
                    "html": link(html_file.name),
                    "pdf": link(f"{stem}.pdf"),
                    "masked": None,
                }
            )
    cards = None
    c = reports.get("cards")
    if c or (run_dir / "cards" / "index.html").exists():
        c = c or {}
        cards = {
            "count": c.get("count"),
            "masked": c.get("masked", False),
            "index": link(c.get("index") or "cards/index.html"),
            "pdf": link(c.get("pdf") or "cards/cards.pdf"),
        }
    notebooks = (
        [
            {
                "name": str(p.relative_to(run_dir / "notebooks")),
                "href": _href(*base, str(p.relative_to(run_dir))),
            }
            for p in sorted((run_dir / "notebooks").rglob("*.ipynb"))
        ]
        if (run_dir / "notebooks").is_dir()
        else []
    )
    status = "failed" if failed else str(manifest.get("status") or "unknown")
    return {
        "name": run_dir.name,
        "version": int(_RUN_DIR.match(run_dir.name).group(1)),  # type: ignore[union-attr]
        "run_id": manifest.get("run_id", f"{period_dir.name}-{run_dir.name}"),
        "status": status,
        "latest": latest is not None and run_dir.resolve() == latest,
        "started_at": manifest.get("started_at", "?"),
        "seconds": manifest.get("seconds"),
        "code_version": items.get("Code version", "?"),
        "parameters": items.get("Parameters", "?"),
        "inputs": items.get("Inputs", "?"),
        "manifest": link("manifest.json"),
        "error": manifest.get("error") if failed else None,
        "audiences": audiences,
        "cards": cards,
        "notebooks": notebooks,
    }


def collect_runs(reports_dir: Path) -> list[dict[str, Any]]:
    """Every period (newest first) with its runs (newest first), finished or failed, from the manifests."""
    reports_dir = Path(reports_dir)
    latest_link = reports_dir / "latest"
    latest = latest_link.resolve() if latest_link.is_symlink() or latest_link.exists() else None
    periods = []
    if not reports_dir.is_dir():
        return periods
    for period_dir in sorted(
        (p for p in reports_dir.iterdir() if p.is_dir() and _PERIOD.match(p.name) and not p.is_symlink()),
        key=lambda p: p.name,
        reverse=True,
    ):
        runs = [
            _run_entry(period_dir, r, latest)
            for r in period_dir.iterdir()
            if r.is_dir() and _RUN_DIR.match(r.name)
        ]
        runs.sort(key=lambda r: r["version"], reverse=True)
        if runs:
            periods.append({"name": period_dir.name, "runs": runs})
    return periods


def write_index(reports_dir: Path) -> Path:
    """Write reports/index.html: every period, run (failed ones marked) and audience, with relative links."""
    reports_dir = Path(reports_dir)
    periods = collect_runs(reports_dir)
    latest = next(
        (
            {"run_id": r["run_id"], "href": _href(p["name"], r["name"]) + "/"}
            for p in periods
            for r in p["runs"]
            if r["latest"]
        ),
        None,
    )
    html_text = (
        _jinja()
        .get_template(REPORTS_INDEX_HTML)
        .render(periods=periods, latest=latest, written_at=datetime.now(UTC).isoformat(timespec="seconds"))
    )
    return _write_text(reports_dir / "index.html", html_text)


# --------------------------------------------------------------------------------------------------
# The runner's entry point
# --------------------------------------------------------------------------------------------------


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def _execute_report_notebook(source: Path, executed: Path, parameters: dict[str, Any], cwd: Path) -> None:
    from helpers.pipeline import execute_notebook

    try:
        execute_notebook(source, executed, parameters, cwd=cwd)
    except Exception as exc:  # papermill raises PapermillExecutionError; a dying kernel raises others
        cell = getattr(exc, "exec_count", None)
        ename = getattr(exc, "ename", type(exc).__name__)
        evalue = re.sub(r"\x1b\[[0-9;]*m", "", str(getattr(exc, "evalue", exc)))
        where = f", cell {cell}" if cell is not None else ""
        raise RenderError(
            f"report notebook notebooks/reports/{source.name} failed{where}: {ename}: {evalue}\n"
            f"  the executed notebook with the traceback: {executed}"
        ) from None


def audience_files(run_dir: Path, name: str, *, notebook: str | None = None) -> list[Path]:
    """Every rendered file of one audience in a run folder (HTML, PDF, its executed notebook)."""
    run_dir = Path(run_dir)
    files = [run_dir / f"{name}.html", run_dir / f"{name}.pdf"]
    if notebook:
        files.append(run_dir / "notebooks" / "reports" / notebook)
    return [f for f in files if f.exists()]


def render_run(
    run_dir: Path,
    settings: Any,
    *,
    manifest: dict[str, Any] | None = None,
    audiences: list[str] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Execute each audience's notebook and render it, then the customer cards, into `run_dir`.

    `run_dir` is the run's folder (the runner's ``.v<N>.partial``); the manifest is read from its
    manifest.json unless given. Writes ``<audience>.html/.pdf``, ``notebooks/reports/*.ipynb`` and
    ``cards/`` there, records what it rendered under "reports" in manifest.json and returns that
    record. The runner then renames the folder and calls `write_index` (links must name the final
    folder).
    """
    run_dir = Path(run_dir)
    rs = report_settings(settings)
    if manifest is None:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    period = str(manifest["period"])
    chosen = audiences or list(rs.audiences)
    unknown = [a for a in chosen if a not in rs.audiences]
    if unknown:
        raise RenderError(f"unknown audience(s) {unknown}; the audiences are {list(rs.audiences)}")
    source_dir = quarto_project_dir(settings.root)
    missing = [
        rs.audiences[a].notebook for a in chosen if not (source_dir / rs.audiences[a].notebook).exists()
    ]
    if missing:
        raise RenderError(
            f"report notebook(s) missing in {source_dir}: {missing} (see params/default.yaml reports.audiences)"
        )
    engine = choose_engine(rs.engine)
    summary: dict[str, Any] = {"engine": engine, "audiences": [], "cards": None}
    started = time.perf_counter()
    lock = threading.Lock()  # one render at a time (WeasyPrint, Quarto); progress lines

    begun: list[str] = []

    def one(name: str) -> dict[str, Any]:
        aud = rs.audiences[name]
        with lock:
            begun.append(name)
            _say(
                f"  report {len(begun)}/{len(chosen)} {name} "
                f"({'masked' if aud.masked else 'identifiers shown'}) ...",
                quiet,
            )
        executed = run_dir / "notebooks" / "reports" / aud.notebook
        if rs.cards.enabled and name == rs.cards.audience:
            cards_path(settings, period).unlink(missing_ok=True)  # never render an earlier run's cards
        t0 = time.perf_counter()
        _execute_report_notebook(
            source_dir / aud.notebook,
            executed,
            {
                "period": period,
                "run_id": manifest.get("run_id"),
                "overrides": manifest.get("parameter_overrides") or {},
                "audience": name,
                "masked": aud.masked,
            },
            cwd=source_dir,
        )
        executed_s = time.perf_counter() - t0
        with lock:
            t1 = time.perf_counter()
            out = render_notebook(
                executed,
                run_dir,
                name=name,
                manifest=manifest,
                masked=aud.masked,
                engine=engine,
                pdf=aud.pdf,
                title=aud.title,
                quarto_project=source_dir,
                leak_check=rs.leak_check,
                quarto_timeout_s=rs.quarto_timeout_s,
            )
            t2 = time.perf_counter()
            entry = {
                "name": name,
                "title": aud.title,
                "masked": aud.masked,
                "notebook": str(executed.relative_to(run_dir)),
                "html": out["html"].name,
                "html_bytes": out["html"].stat().st_size,
                "execute_seconds": round(executed_s, 2),
                "render_seconds": round(t2 - t1, 2),
            }
            if "pdf" in out:
                entry.update(
                    pdf=out["pdf"].name,
                    pdf_bytes=out["pdf"].stat().st_size,
                    pdf_pages=pdf_page_count(out["pdf"]),
                )
            _say(
                f"      {name} executed in {entry['execute_seconds']:.1f} s, "
                f"rendered in {entry['render_seconds']:.1f} s",
                quiet,
            )
        return entry

    workers = max(1, min(getattr(getattr(settings, "run", None), "workers", 1), len(chosen)))
    if workers == 1:
        summary["audiences"] = [one(name) for name in chosen]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scv-report") as pool:
            futures = [pool.submit(one, name) for name in chosen]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        summary["audiences"] = [f.result() for f in futures]
    if rs.cards.enabled and rs.cards.audience in chosen:
        source = cards_path(settings, period)
        if not source.exists():
            raise RenderError(
                f"no card data at {source}: the {rs.cards.audience} notebook must call "
                "helpers.render.save_cards(frame, settings, period)"
            )
        frame, not_found = select_cards(store.read_parquet(source), rs.cards)
        masked = rs.audiences[rs.cards.audience].masked
        cards = render_cards(frame, run_dir / "cards", manifest, masked=masked, currency=rs.currency)
        summary["cards"] = {
            "count": cards["count"],
            "masked": masked,
            "select": rs.cards.select,
            "pdf": "cards/cards.pdf",
            "index": "cards/index.html",
            "pdf_bytes": cards["pdf"].stat().st_size,
            "seconds": cards["seconds"],
            "ids_not_found": not_found,
        }
        _say(f"  cards: {cards['count']} customers in {cards['seconds']:.1f} s", quiet)
        if not_found:
            _say(f"  cards: {len(not_found)} requested customer id(s) not found: {not_found[:10]}", quiet)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    manifest["reports"] = summary
    store.write_json(manifest, run_dir / "manifest.json")
    return summary
