"""Privacy: erasure of a person, the suppression list, CSV formula escaping, and no committed secrets.

Covered elsewhere, not repeated here:
- masking per audience and the scan of rendered reports for raw NIF/NIE/CIF, IBAN, e-mail and phone:
  tests/test_render.py (the render engineer's leak check);
- customers without consent for a channel never in its target list: the property test in
  tests/test_campaigns.py;
- formula escaping of every staged and rejects table of the fuzz corpus: tests/test_fuzz.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from helpers import ingest, pipeline, privacy_ops, store
from helpers.config import IngestSettings, SourceSpec, expand_env, load_settings, load_sources
from helpers.errors import ConfigError
from helpers.readers import read_source
from tests.conftest import ROOT, make_project

SETTINGS = IngestSettings()

# ---------------------------------------------------------------------------------------------------
# CSV exports: formula injection
# ---------------------------------------------------------------------------------------------------


def test_csv_export_escapes_formulas_in_text_categorical_cells_and_column_names(tmp_path):
    frame = pd.DataFrame(
        {
            "campaign": pd.Categorical(["=cmd|' /C calc'!A0", "spring"]),
            "name": pd.array(["@SUM(A1:A9)", None], dtype="string"),
            "note": ["\t=1+2", "-2+3"],
            "amount": ["-12,50", "7"],
            '=HYPERLINK("http://x")': [1, 2],
        }
    )
    path = store.write_csv(frame, tmp_path / "targets.csv")
    cells = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(cells.columns)[-1] == '\'=HYPERLINK("http://x")'
    assert cells["campaign"].tolist() == ["'=cmd|' /C calc'!A0", "spring"]
    assert cells["name"].tolist() == ["'@SUM(A1:A9)", ""]
    assert cells["note"].tolist() == ["'\t=1+2", "'-2+3"]
    assert cells["amount"].tolist() == ["-12,50", "7"], "numbers are data, not formulas"
    assert frame["campaign"].tolist()[0].startswith("="), "the caller's frame is not modified"


# ---------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------

CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<password>[^@\s]+)@", re.I)
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key)\s*:\s*(?P<value>\S+)")


def test_committed_params_hold_no_credentials():
    files = sorted((ROOT / "params").rglob("*.yaml")) + sorted((ROOT / "params").rglob("*.yml"))
    assert files
    for path in files:
        if path.name == "secrets.yaml":  # git-ignored by design
            continue
        text = path.read_text(encoding="utf-8")
        for m in CREDENTIAL_URL.finditer(text):
            assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", m.group("password")), (
                f"{path.name}: a url with a literal password; use ${{ENV_VAR}}"
            )
        for m in SECRET_KEY.finditer(text):
            assert m.group("value").startswith("${"), f"{path.name}: {m.group(1)} holds a literal value"
    for spec in load_sources(root=ROOT).values():
        if spec.url:
            assert not CREDENTIAL_URL.search(spec.url) or "${" in spec.url, spec.name


def test_the_credential_check_would_catch_a_password():
    assert CREDENTIAL_URL.search("url: postgresql://scv:hunter2@db/crm").group("password") == "hunter2"
    assert SECRET_KEY.search("  password: hunter2").group("value") == "hunter2"


def test_credentials_come_from_the_environment_and_stay_out_of_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("SCV_TEST_DB_PASSWORD", "pa55-w0rd")
    assert (
        expand_env("postgresql://scv:${SCV_TEST_DB_PASSWORD}@db/crm") == "postgresql://scv:pa55-w0rd@db/crm"
    )
    spec = SourceSpec(
        name="crm_db", kind="party", system="CRM", trust_rank=1, format="sql",
        url="postgresql://scv:${SCV_TEST_DB_PASSWORD}@127.0.0.1:9/crm", query="select 1",
        columns={"source_id": "id"},
    )  # fmt: skip
    with pytest.raises(Exception) as err:
        read_source(spec, tmp_path)
    assert "pa55-w0rd" not in str(err.value) and "scv:***@127.0.0.1" in str(err.value)
    monkeypatch.delenv("SCV_TEST_DB_PASSWORD")
    with pytest.raises(
        ConfigError, match=r"crm_db: environment variable SCV_TEST_DB_PASSWORD is not set.*\.env"
    ):
        read_source(spec, tmp_path)


def test_secret_files_are_git_ignored_and_documented():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "params/secrets.yaml" in ignored
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "${CRM_DB_PASSWORD}" in readme and ".env" in readme


# ---------------------------------------------------------------------------------------------------
# Suppression at ingest
# ---------------------------------------------------------------------------------------------------

CONTACTS = (
    "id,nombre,nif,email,tel\n"
    "K1,Ana,12345678Z,ana@example.es,612345678\n"
    "K2,Luis,X1234567L,luis@example.es,699000111\n"
    "K3,Eva,,eva@example.es,\n"
)
ORDERS = "linea,cliente,fecha,importe\nL1,K1,2026-10-01,10\nL2,K2,2026-10-02,20\nL3,K1,2026-10-03,5\n"


def tiny_sources() -> dict[str, SourceSpec]:
    # the transaction source is declared first: ingest must still know K1 is erased when it reads it
    orders = SourceSpec(
        name="orders", kind="transaction", system="Shop", trust_rank=2, format="csv", path="orders.csv",
        party_source="contacts",
        columns={"source_id": "linea", "party_id": "cliente", "date": "fecha", "amount": "importe"},
    )  # fmt: skip
    contacts = SourceSpec(
        name="contacts", kind="party", system="CRM", trust_rank=1, format="csv", path="contacts.csv",
        columns={"source_id": "id", "given_name": "nombre", "tax_id": "nif", "email": "email", "phone": "tel"},
    )  # fmt: skip
    return {"orders": orders, "contacts": contacts}


def write_tiny_raw(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    (raw / "orders.csv").write_text(ORDERS, encoding="utf-8")


def test_suppressed_people_and_their_transactions_are_quarantined_without_their_data(tmp_path):
    raw = tmp_path / "data" / "raw"
    write_tiny_raw(raw)
    (raw / "contacts.csv").write_text(CONTACTS + 'K9,"broken,ana@example.es\n', encoding="utf-8")
    suppression = privacy_ops.Suppression(b"salt")
    suppression.digests.add(suppression.digest("email", "ana@example.es"))
    results = ingest.ingest_all(tiny_sources(), raw, SETTINGS, progress=False, suppression=suppression)
    assert list(results) == ["orders", "contacts"], "results keep the declaration order"
    contacts, orders = results["contacts"], results["orders"]
    assert list(contacts.staged["source_id"]) == ["K2", "K3"]
    assert list(orders.staged["source_id"]) == ["L2"], "K1's orders follow K1 out"
    for result in (contacts, orders):
        assert result.rows_read == result.rows_staged + result.rows_rejected
        assert set(result.rejects["reason"]) == {"erased"}
        assert (result.rejects["value"] == "").all(), "an erased record's data is never stored"
    assert sorted(contacts.rejects["row_number"]) == [1, 4], "the broken line naming her is erased too"
    text = pd.concat([contacts.rejects, orders.rejects]).to_csv()
    assert "ana@example.es" not in text and "12345678Z" not in text


def test_the_suppression_list_is_salted_and_holds_no_identifier(tmp_path):
    a, b = privacy_ops.Suppression(b"one"), privacy_ops.Suppression(b"two")
    assert a.digest("email", "ana@example.es") != b.digest("email", "ana@example.es")
    assert a.digest("email", "ana@example.es") != a.digest("tax_id", "ana@example.es")
    assert privacy_ops.load_suppression(tmp_path / "suppression") is None  # nobody erased yet


# ---------------------------------------------------------------------------------------------------
# Erasure on a tiny project (fast) and on the sample (slow)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_project(tmp_path):
    root = make_project(tmp_path / "project")
    write_tiny_raw(root / "data" / "raw")
    sources = tiny_sources()
    (root / "params" / "sources.yaml").write_text(
        yaml.safe_dump(
            {
                "sources": {
                    n: s.model_dump(exclude={"name"}, exclude_defaults=True) for n, s in sources.items()
                }
            }
        ),
        encoding="utf-8",
    )
    settings = load_settings(root=root)
    results = ingest.ingest_all(sources, settings.path("raw"), SETTINGS, progress=False)
    ingest.save_results(results, settings.path("processed"), settings.path("store"), "2026-10")
    crosswalk = pd.DataFrame({"source": ["contacts"] * 3, "source_id": ["K1", "K2", "K3"],
                              "customer_id": ["C0000001", "C0000002", "C0000003"]})  # fmt: skip
    customers = pd.DataFrame({"customer_id": ["C0000001", "C0000002", "C0000003"],
                              "tax_id": ["12345678Z", "X1234567L", None],
                              "email": ["ana@example.es", "luis@example.es", "eva@example.es"],
                              "phone": ["+34612345678", "+34699000111", None]})  # fmt: skip
    store.save_table(settings.path("store"), "crosswalk", crosswalk, period="2026-10")
    store.save_table(settings.path("store"), "customers", customers, period="2026-10")
    store.write_csv(
        customers.assign(note="call ana@example.es"), settings.path("processed") / "2026-10" / "x.csv"
    )
    return root, settings, load_sources(root=root)


def all_text(root: Path) -> str:
    """Every processed file and store table as text (for leak scans)."""
    processed = root / "data" / "processed"
    parts = []
    for path in sorted(processed.rglob("*")):
        if path.is_file() and path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).astype(str).to_csv())
        elif path.is_file() and path.suffix in (".csv", ".json"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    with duckdb.connect(str(processed / "scv.duckdb"), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            parts.append(con.execute(f'SELECT * FROM "{table}"').df().astype(str).to_csv())
    return "\n".join(parts).lower()


def test_erase_by_tax_id_removes_the_person_and_keeps_the_accounting(tiny_project):
    root, settings, sources = tiny_project
    report = privacy_ops.erase(
        " 12.345.678-z ", settings=settings, sources=sources, reason="ticket 7 (ana@example.es)"
    )
    assert (report.customers, report.source_records, report.staged_rows_erased) == (1, 3, 3)
    text = all_text(root)
    for leaked in ("ana@example.es", "12345678z", "612345678", "c0000001"):
        assert leaked not in text, leaked
    assert "luis@example.es" in text and "c0000002" in text, "nobody else is touched"
    base = root / "data" / "processed" / "2026-10"
    rejected = pd.read_parquet(base / "rejected" / "contacts.parquet")
    assert rejected[["row_number", "reason", "value"]].values.tolist() == [[1, "erased", ""]]
    accounting = store.load_table(settings.path("store"), "ingest_accounting").set_index("source")
    assert accounting.loc["contacts", "rows_staged"] == 2 and accounting.loc["contacts", "rows_rejected"] == 1
    assert accounting.loc["orders", "rows_staged"] == 1 and accounting["balanced"].all()
    for name in ("contacts", "orders"):  # files still balance: staged + rejected rows = rows read
        staged = pd.read_parquet(base / "staged" / f"{name}.parquet")["row_number"].nunique()
        rejected_rows = pd.read_parquet(base / "rejected" / f"{name}.parquet")
        assert staged + rejected_rows.loc[rejected_rows.action == "row", "row_number"].nunique() == 3
    folder = root / "data" / "suppression"
    audit = (folder / privacy_ops.AUDIT_FILE).read_text(encoding="utf-8")
    listed = (folder / privacy_ops.LIST_FILE).read_text(encoding="utf-8")
    for secret_text in (audit.lower(), listed.lower()):
        for leaked in ("ana@example.es", "12345678z", "612345678", "c0000001", "k1"):
            assert leaked not in secret_text
    entry = json.loads(audit.splitlines()[-1])
    assert entry["reason"] == "ticket 7 ([erased])" and entry["customers"] == 1
    assert (folder / ".gitignore").read_text().strip().endswith("*"), "data/suppression/ never goes to git"
    # the next ingest does not bring her back from the raw files
    again = ingest.ingest_all(sources, settings.path("raw"), SETTINGS, progress=False)
    assert list(again["contacts"].staged["source_id"]) == ["K2", "K3"]
    assert list(again["orders"].staged["source_id"]) == ["L2"]


def test_erase_refuses_ambiguous_or_unknown_identifiers(tiny_project):
    root, settings, sources = tiny_project
    store.save_table(
        settings.path("store"), "customers",
        pd.DataFrame({"customer_id": ["C0000002", "C0000003"], "email": ["luis@example.es", "luis@example.es"]}),
        period="2026-10",
    )  # fmt: skip
    with pytest.raises(privacy_ops.ErasureError, match="belongs to 2 customers"):
        privacy_ops.erase("luis@example.es", settings=settings, sources=sources)
    with pytest.raises(privacy_ops.ErasureError, match="no customer or source record"):
        privacy_ops.erase("nobody@example.es", settings=settings, sources=sources)
    with pytest.raises(privacy_ops.ErasureError, match="not valid"):
        privacy_ops.erase("12345678A", settings=settings, sources=sources, kind="tax_id")
    assert not (root / "data" / "suppression" / privacy_ops.LIST_FILE).exists(), "nothing was suppressed"


def test_scv_erase_reads_the_id_from_stdin_and_errors_without_traceback(tiny_project):
    root, _, _ = tiny_project
    done = subprocess.run([sys.executable, "-m", "helpers.cli", "erase", "--id", "-", "--reason", "request 12"],
                          input="luis@example.es\n", cwd=root, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 customer(s)" in done.stdout and "luis@example.es" not in done.stdout + done.stderr
    assert "luis@example.es" not in all_text(root)
    again = subprocess.run([sys.executable, "-m", "helpers.cli", "erase", "--id", "luis@example.es"], cwd=root,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 2 and "no customer or source record" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_shared_email_is_not_suppressed(tiny_project):
    root, settings, sources = tiny_project
    customers = store.load_table(settings.path("store"), "customers").drop(columns="period")
    customers.loc[customers.customer_id == "C0000003", "email"] = "ana@example.es"  # a family address
    store.save_table(settings.path("store"), "customers", customers, period="2026-10")
    report = privacy_ops.erase("C0000001", settings=settings, sources=sources)
    assert report.shared_identifiers_not_suppressed == 1
    suppression = privacy_ops.load_suppression(root / "data" / "suppression")
    assert suppression.digest("email", "ana@example.es") not in suppression.digests
    assert suppression.digest("tax_id", "12345678Z") in suppression.digests
    assert "c0000003" in all_text(root), "the other customer keeps the shared address"


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_erase_a_person_from_the_sample_and_rerun(sample_project, tmp_path_factory):
    import shutil

    from tests.test_determinism import reference_run

    root = tmp_path_factory.mktemp("erase") / "project"
    shutil.copytree(
        reference_run(sample_project, tmp_path_factory), root, ignore=shutil.ignore_patterns("reports")
    )
    store_path = root / "data" / "processed" / "scv.duckdb"
    with duckdb.connect(str(store_path), read_only=True) as con:
        person = (
            con.execute(
                "SELECT customer_id, tax_id, email, phone, iban FROM customers WHERE tax_id IS NOT NULL AND email IS NOT NULL "
                "AND phone IS NOT NULL AND n_records >= 3 ORDER BY customer_id LIMIT 1"
            )
            .df()
            .iloc[0]
        )
        keys = con.execute(
            "SELECT source, source_id FROM crosswalk WHERE customer_id = ?", [person.customer_id]
        ).df()
        before = con.execute("SELECT source, source_id, customer_id FROM crosswalk").df()
    needles = {str(v).lower() for v in person.dropna()} | {person.phone[3:]}
    assert all(n in all_text(root) for n in needles), "the person is in the processed data before"
    messy_tax_id = (
        f"{person.tax_id[:2]}.{person.tax_id[2:5]}.{person.tax_id[5:8]}-{person.tax_id[8:].lower()}"
    )

    done = subprocess.run([sys.executable, "-m", "helpers.cli", "erase", "--id", "-", "--reason", "GDPR art. 17"],
                          input=messy_tax_id + "\n", cwd=root, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 customer(s)" in done.stdout and messy_tax_id not in done.stdout + done.stderr

    def assert_gone() -> None:
        text = all_text(root)
        assert not [n for n in needles if n in text], "an identifier of the erased person is still stored"
        raw_store = store_path.read_bytes()
        assert not [n for n in needles if n.encode() in raw_store.lower()], (
            "deleted rows linger in the store file"
        )
        for path in (root / "data" / "processed").glob("*/staged/*.parquet"):
            staged = pd.read_parquet(path)
            pairs = set(zip(staged["source"], staged["source_id"], strict=True))
            assert not pairs & set(zip(keys["source"], keys["source_id"], strict=True)), path.name

    assert_gone()
    folder = root / "data" / "suppression"
    for name in (privacy_ops.AUDIT_FILE, privacy_ops.LIST_FILE):
        kept = (folder / name).read_text(encoding="utf-8").lower()
        assert not [n for n in needles if n in kept], f"{name} holds an identifier"

    manifest = pipeline.run(stages=["ingest", "unify"], root=root, quiet=True)
    assert manifest["status"] == "ok"
    assert manifest["suppression_sha256"] == pipeline.sha256_file(folder / privacy_ops.LIST_FILE)
    assert_gone()
    ingest_stats = manifest["stages"][0]["stats"]["sources"]
    assert all(c["rows_read"] == c["rows_staged"] + c["rows_rejected"] for c in ingest_stats.values())
    with duckdb.connect(str(store_path), read_only=True) as con:
        erased = con.execute(
            "SELECT count(*), max(length(value)) FROM rejects WHERE reason = 'erased'"
        ).fetchone()
        after = con.execute("SELECT source, source_id, customer_id FROM crosswalk").df()
    assert erased[0] >= len(keys) and erased[1] == 0, "the re-run quarantines them as `erased`, without data"
    kept = before[before.customer_id != person.customer_id].merge(
        after, on=["source", "source_id"], how="left"
    )
    assert (kept["customer_id_x"] == kept["customer_id_y"]).mean() > 0.99, "everybody else keeps their id"

    bad = subprocess.run([sys.executable, "-m", "helpers.cli", "erase", "--id", "nobody@example.es"], cwd=root,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "no customer" in bad.stderr and "Traceback" not in bad.stderr
