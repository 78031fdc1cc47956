"""Hostile inputs and misuse, reproduced as a user meets them (issue 14, items 1-13).

Each test sets up what the attack did (a sources.yaml, a raw file, a killed run, a shell command) and
checks what the user sees: a refusal or a quarantine with a clear, bounded message, or the correct
result; never a traceback or silently wrong data. The fuzz corpus (tests/fuzz, test_fuzz.py) covers
the same readers with hundreds of malformed files; the store's plain types are in test_store.py.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import ingest, pipeline, privacy_ops, store, unify, unify_io
from helpers.config import IngestSettings, SourceSpec, load_settings
from helpers.errors import MAX_MESSAGE, ConfigError, ScvError, SourceError, StageError, bounded
from helpers.readers import decode_file, read_source
from tests.conftest import ROOT, make_project
from tests.test_pipeline import write_notebook
from tests.test_privacy import tiny_sources, write_tiny_raw

SETTINGS = IngestSettings(run_date="2026-12-03")
CONTACTS = SourceSpec(
    name="contacts",
    kind="party",
    system="CRM",
    trust_rank=1,
    format="csv",
    path="contacts.csv",
    columns={"source_id": "id", "given_name": "nombre", "family_names": "apellidos", "city": "ciudad"},
)


def scv(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SCV_ROOT"}
    return subprocess.run(
        [sys.executable, "-m", "helpers.cli", *args],
        cwd=root,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=600,
    )


def project(
    tmp_path: Path, sources: dict[str, SourceSpec], files: dict[str, bytes | str] | None = None
) -> Path:
    """A project copy whose params/sources.yaml declares `sources` and data/raw/ holds `files`."""
    root = make_project(tmp_path / "project")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        target = raw / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    body = {n: s.model_dump(exclude={"name"}, exclude_defaults=True) for n, s in sources.items()}
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump({"sources": body}), encoding="utf-8")
    defaults = root / "params" / "default.yaml"  # the run date fixed: no test depends on the clock
    defaults.write_text(defaults.read_text().replace("  run_date: null", '  run_date: "2026-12-03"'))
    return root


# ---------------------------------------------------------------------------------------------------
# 1. A source path cannot read any file on the machine
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../../../../../../etc/passwd", "/etc/passwd", "crm/../../outside.csv"])
def test_a_path_outside_paths_raw_is_refused_by_check_and_run(tmp_path, path):
    root = make_project(tmp_path / "project")
    (root / "data" / "raw").mkdir(parents=True)
    sources = {"contacts": {**CONTACTS.model_dump(exclude={"name"}, exclude_defaults=True), "path": path}}
    sources["contacts"]["delimiter"] = ":"  # /etc/passwd read as a table: root:x:0:0:...
    sources["contacts"]["columns"] = {"source_id": "root", "given_name": "x"}
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
    for args in (["check"], ["run", "--stage", "ingest", "--period", "2026-10"], ["period"]):
        done = scv(root, *args)
        out = done.stdout + done.stderr
        assert done.returncode == 2, (args, out)
        assert "sources.contacts.path" in out and "relative to paths.raw" in out, out
        assert "Traceback" not in out and "/bin/" not in out and "daemon" not in out
    assert not (root / "reports").exists() or not any((root / "reports").rglob("*.partial"))


def test_a_symbolic_link_out_of_paths_raw_is_refused(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,nombre,apellidos,ciudad\n1,Top,Secret,Madrid\n", encoding="utf-8")
    root = project(tmp_path, {"contacts": CONTACTS})
    (root / "data" / "raw" / "contacts.csv").symlink_to(secret)
    done = scv(root, "check")
    assert done.returncode == 1 and "through a symbolic link to" in done.stdout, done.stdout
    with pytest.raises(ConfigError, match="symbolic link"):
        read_source(CONTACTS, root / "data" / "raw")
    # a link that stays inside paths.raw is an ordinary file
    inside = root / "data" / "raw" / "exports" / "contacts.csv"
    inside.parent.mkdir()
    inside.write_text(secret.read_text(), encoding="utf-8")
    (root / "data" / "raw" / "contacts.csv").unlink()
    (root / "data" / "raw" / "contacts.csv").symlink_to(inside)
    assert read_source(CONTACTS, root / "data" / "raw").records["nombre"].tolist() == ["Top"]
    assert scv(root, "check").returncode == 0


# ---------------------------------------------------------------------------------------------------
# 2. Mixed encodings: no mojibake staged silently
# ---------------------------------------------------------------------------------------------------

PEOPLE = [
    ("Ramón", "Núñez Peña", "Alcalá de Henares"),
    ("Begoña", "Ibáñez", "Cádiz"),
    ("José", "Muñoz", "Ávila"),
]


def mixed_file(n: int = 200) -> tuple[bytes, list[tuple[str, str, str, str]]]:
    """n records, two in three UTF-8 and one in three cp1252, like an export appended by two systems."""
    lines, expected = [b"id,nombre,apellidos,ciudad\n"], []
    for i in range(1, n + 1):
        given, family, city = PEOPLE[i % len(PEOPLE)]
        encoding = "cp1252" if i % 3 == 0 else "utf-8"
        lines.append(f"{i},{given},{family},{city}\n".encode(encoding))
        expected.append((str(i), given, family, city))
    return b"".join(lines), expected


def test_a_file_mixing_utf8_and_cp1252_lines_is_read_without_mojibake(tmp_path):
    data, expected = mixed_file()
    (tmp_path / "contacts.csv").write_bytes(data)
    result = ingest.ingest_source(CONTACTS.model_copy(update={"encoding": None}), tmp_path, SETTINGS)
    staged = result.staged[["source_id", "given_name", "family_names", "city"]].astype(str)
    assert [tuple(r) for r in staged.itertuples(index=False)] == expected  # every value exact
    assert result.rows_staged == 200 and result.rows_rejected == 0
    decoded = decode_file(tmp_path / "contacts.csv", None)
    assert decoded.encoding == "cp1252 + utf-8 (134 lines)" and decoded.confidence == 1.0


def test_an_undecodable_line_is_quarantined_with_reason_encoding(tmp_path):
    data, _ = mixed_file(6)
    broken = b"7,Ram\x81n,Pe\x8dez,Le\xf3n\n"  # bytes cp1252 leaves undefined, and not UTF-8
    (tmp_path / "contacts.csv").write_bytes(data + broken + "8,Íñigo,Peña,León\n".encode("cp1252"))
    result = ingest.ingest_source(CONTACTS.model_copy(update={"encoding": None}), tmp_path, SETTINGS)
    assert result.rows_read == 8 and result.rows_staged == 7 and result.rows_rejected == 1
    reject = result.rejects.iloc[0]
    assert (reject["row_number"], reject["reason"]) == (7, "encoding")
    assert result.staged["given_name"].tolist()[-1] == "Íñigo"


def test_a_file_whose_encoding_cannot_be_told_is_refused_naming_two_candidates(tmp_path):
    # Russian names in cp1251: every Western single-byte encoding reads them as accented gibberish
    text = "".join(f"{i},Иван,Петров,Москва\n" for i in range(5))
    (tmp_path / "contacts.csv").write_bytes(b"id,nombre,apellidos,ciudad\n" + text.encode("cp1251"))
    with pytest.raises(SourceError) as err:
        read_source(CONTACTS.model_copy(update={"encoding": None}), tmp_path)
    message = str(err.value)
    assert "contacts.csv: cannot tell the encoding" in message and "set `encoding`" in message
    assert message.count("(confidence") == 1 and " or " in message  # two candidates, with confidences


def test_a_utf8_line_in_a_file_declared_cp1252_is_read_as_utf8(tmp_path):
    data = (
        "id,nombre,apellidos,ciudad\n1,Begoña,Ibáñez,Cádiz\n".encode("cp1252")
        + "2,Ramón,Núñez,Ávila\n".encode()
    )
    (tmp_path / "contacts.csv").write_bytes(data)
    result = ingest.ingest_source(CONTACTS.model_copy(update={"encoding": "cp1252"}), tmp_path, SETTINGS)
    assert result.staged["given_name"].tolist() == ["Begoña", "Ramón"]
    assert result.staged["city"].tolist() == ["Cádiz", "Ávila"]


# ---------------------------------------------------------------------------------------------------
# 3. A future-dated invoice never takes over the period
# ---------------------------------------------------------------------------------------------------


def test_a_future_dated_invoice_is_rejected_and_never_sets_the_period(tmp_path):
    root = project(tmp_path, tiny_sources())
    write_tiny_raw(root / "data" / "raw")
    orders = "linea,cliente,fecha,importe\nL1,K1,2026-10-01,10\nL2,K2,2026-11-30,20\nL3,K1,2099-12-31,5\n"
    (root / "data" / "raw" / "orders.csv").write_text(orders, encoding="utf-8")
    done = scv(root, "period")
    assert done.returncode == 0 and done.stdout.strip() == "2026-11", done.stdout + done.stderr
    result = ingest.ingest_source(tiny_sources()["orders"], root / "data" / "raw", SETTINGS)
    assert result.staged["source_id"].tolist() == ["L1", "L2"]
    reject = result.rejects.iloc[0]
    assert (reject["row_number"], reject["column"], reject["reason"], reject["value"]) == (
        3,
        "fecha",
        "future_date",
        "2099-12-31",
    )
    tolerant = IngestSettings(run_date="2099-12-30", future_tolerance_days=1)
    assert ingest.ingest_source(tiny_sources()["orders"], root / "data" / "raw", tolerant).rows_staged == 3


# ---------------------------------------------------------------------------------------------------
# 4. A re-run of a month changes nothing: earlier periods' feedback only, the first run's ids
#    (two consecutive runs of the sample: test_determinism.py; re-running an older month: test_life.py)
# ---------------------------------------------------------------------------------------------------


def test_feedback_is_read_only_from_earlier_periods(tmp_path):
    db = tmp_path / "scv.duckdb"
    for period, rate in (("2026-08", 0.1), ("2026-09", 0.2), ("2026-10", 0.3)):
        store.save_table(
            db, "campaign_feedback", pd.DataFrame({"customer_id": ["C1"], "rate": [rate]}), period=period
        )
    assert store.load_latest_before(db, "campaign_feedback", "2026-10")["rate"].tolist() == [0.2]
    assert store.load_latest_before(db, "campaign_feedback", "2026-12")["period"].tolist() == ["2026-10"]
    assert store.load_latest_before(db, "campaign_feedback", "2026-08").empty
    assert store.load_latest_before(db, "missing", "2026-08").empty
    notebook = json.loads((ROOT / "notebooks" / "05_segmentation.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert 'load_latest_before(store_path, "campaign_feedback", period)' in code
    assert 'load_table(store_path, "campaign_feedback")' not in code


def test_a_rerun_gives_the_first_runs_ids_and_id_log():
    """A re-run of a period builds on the same earlier period as its first run (hysteresis, events)
    and takes the ids its first run (or a later period) gave: same crosswalk, same id log."""
    earlier = pd.DataFrame({"source": "s", "source_id": list("ab"), "customer_id": ["C0000001", "C0000002"]})
    records = pd.DataFrame({"source": "s", "source_id": list("abcd")})
    clusters = pd.Series([0, 1, 2, 3])
    first, log1 = unify.assign_ids(records, clusters, earlier, next_id=3)
    assert first["customer_id"].tolist() == ["C0000001", "C0000002", "C0000003", "C0000004"]
    # the re-run: the same earlier period, and the first run's ids reserved; the stored mark is now 5
    again, log2 = unify.assign_ids(records, clusters, earlier, next_id=5, reserved=first)
    assert again["customer_id"].tolist() == first["customer_id"].tolist()
    pd.testing.assert_frame_equal(log1, log2)
    # a re-run of an older month after a later one: a record the later month knows keeps its id there,
    # and a record nobody ever saw gets a number after every id issued
    later = pd.DataFrame({"source": "s", "source_id": ["e"], "customer_id": ["C0000009"]})
    older = pd.DataFrame({"source": "s", "source_id": list("abcdef")})
    ids, _ = unify.assign_ids(
        older, pd.Series(range(6)), earlier, next_id=10, reserved=pd.concat([first, later])
    )
    assert ids["customer_id"].tolist()[2:] == ["C0000003", "C0000004", "C0000009", "C0000010"]


def test_previous_state_builds_on_the_earlier_period_and_reserves_the_others(tmp_path):
    db = tmp_path / "scv.duckdb"
    for period, ids in (("2026-08", ["C1"]), ("2026-09", ["C1", "C2"]), ("2026-10", ["C1", "C2", "C3"])):
        frame = pd.DataFrame({"source": "s", "source_id": list("abc")[: len(ids)], "customer_id": ids})
        store.save_table(db, "crosswalk", frame, period=period)
    state = unify_io.previous_state(db, "2026-09")
    assert state.period == "2026-08" and state.crosswalk["customer_id"].tolist() == ["C1"]
    assert state.reserved.values.tolist() == [["s", "a", "C1"], ["s", "b", "C2"], ["s", "c", "C3"]]
    first = unify_io.previous_state(db, "2026-07")
    assert first.crosswalk is None and len(first.reserved) == 3


# ---------------------------------------------------------------------------------------------------
# 5. Decisions copied from the review queue are honoured
# ---------------------------------------------------------------------------------------------------


def test_decisions_copied_from_the_review_queue_keep_their_handles(tmp_path):
    review = pd.DataFrame(
        {
            "source_a": ["social_authors", "social_authors", "crm_contacts"],
            "source_id_a": ["@ana_lopez", "=1+1", "CT-1"],
            "source_b": ["crm_contacts", "web_customers", "web_customers"],
            "source_id_b": ["CT-7", "-cmd", "+34 600"],
            "match_probability": [0.55, 0.6, 0.5],
        }
    )
    exported = store.write_csv(review, tmp_path / "review_queue.csv")
    assert "'@ana_lopez" in exported.read_text(encoding="utf-8"), "the export is escaped for spreadsheets"
    # the analyst copies the rows as they are and adds a decision (README: params/link_decisions.csv)
    rows = pd.read_csv(exported, dtype=str, keep_default_na=False)
    decisions = rows[["source_a", "source_id_a", "source_b", "source_id_b"]].assign(decision="must-link")
    decisions.to_csv(tmp_path / "link_decisions.csv", index=False)
    loaded = unify_io.load_decisions(tmp_path / "link_decisions.csv")
    assert loaded["source_id_a"].tolist() == ["@ana_lopez", "=1+1", "CT-1"]
    assert loaded["source_id_b"].tolist() == ["CT-7", "-cmd", "+34 600"]
    records = pd.DataFrame(
        {
            "source": ["social_authors", "crm_contacts", "social_authors", "web_customers", "crm_contacts", "web_customers"],
            "source_id": ["@ana_lopez", "CT-7", "=1+1", "-cmd", "CT-1", "+34 600"],
        }
    )  # fmt: skip
    assert len(unify.decisions_as_pairs(records, loaded)) == 3, "every decision names its records"


# ---------------------------------------------------------------------------------------------------
# 6. Error messages are bounded
# ---------------------------------------------------------------------------------------------------


def test_a_20_mb_single_line_file_gives_a_bounded_error_naming_file_line_and_byte(tmp_path):
    (tmp_path / "contacts.csv").write_bytes(b"id," + b"x" * 20_000_000)
    with pytest.raises(SourceError) as err:
        ingest.ingest_source(CONTACTS, tmp_path, SETTINGS)
    message = str(err.value)
    assert len(message) <= MAX_MESSAGE
    assert "contacts.csv: line 1 (byte 0): column name 2 is 20,000,000 characters long" in message


def test_a_20_mb_json_line_is_quarantined_with_a_bounded_value(tmp_path):
    spec = SourceSpec(
        name="web", kind="party", system="Web", trust_rank=2, format="jsonl", path="w.jsonl",
        columns={"source_id": "id", "given_name": "name"},
    )  # fmt: skip
    lines = [json.dumps({"id": 1, "name": "Ana"}), json.dumps({"id": 2, "name": "x" * 20_000_000})]
    (tmp_path / "w.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = ingest.ingest_source(spec, tmp_path, SETTINGS)
    assert result.staged["given_name"].tolist() == ["Ana"]
    reject = result.rejects.iloc[0]
    assert reject["reason"] == "field_too_long" and len(reject["value"]) <= 500


def test_every_user_facing_error_is_bounded():
    huge = "id,email," + "x" * 1_000_000
    assert len(str(SourceError(f"f.csv: column(s) not found; the source has: {huge}"))) <= MAX_MESSAGE
    assert bounded("a" * 10, 5) != "a" * 10 and "more characters not shown" in bounded("a" * 5000)

    class FakeCellError(Exception):
        ename, evalue, exec_count = "ConversionException", "Conversion Error: " + "C0000001, " * 20_000, 7

    error = pipeline._stage_error(pipeline.STAGES[1], FakeCellError(), Path("x.ipynb"))
    assert isinstance(error, StageError) and len(str(error)) < 2500 and "cell 7" in str(error)


def test_a_runaway_file_fails_the_run_with_a_small_manifest_and_notebook(tmp_path):
    root = project(tmp_path, {"contacts": CONTACTS}, {"contacts.csv": b"id," + b"x" * 20_000_000})
    done = scv(root, "run", "--stage", "ingest", "--period", "2026-10")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr) < 6000 and "column name 2 is 20,000,000 characters long" in done.stderr
    failed = root / "reports" / "2026-10" / "v1.failed"
    assert (failed / "manifest.json").stat().st_size < 20_000
    assert (failed / "notebooks" / "01_ingest.ipynb").stat().st_size < 1_000_000


# ---------------------------------------------------------------------------------------------------
# 7. reports/latest points only at complete runs with reports, never back to an older month
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def runner_project(tmp_path, monkeypatch):
    """One fast stage and a fake renderer that writes every audience (or only the ones asked for)."""
    from helpers import render

    root = make_project(tmp_path / "proj")
    (root / "data" / "raw").mkdir(parents=True)
    write_notebook(root / "notebooks" / "ok.ipynb", "x = 1")
    monkeypatch.setattr(pipeline, "STAGES", [pipeline.Stage("first", "ok.ipynb", "ok")])

    def fake_render(run_dir, settings, *, manifest, audiences=None, quiet=False):
        names = audiences or list(render.report_settings(settings).audiences)
        for name in names:
            (Path(run_dir) / f"{name}.html").write_text("<html>report</html>", encoding="utf-8")
        manifest["reports"] = {"audiences": [{"name": n} for n in names]}
        return manifest["reports"]

    monkeypatch.setattr(render, "render_run", fake_render)
    return root


def test_latest_moves_only_to_a_complete_run_of_the_newest_period(runner_project):
    root = runner_project
    latest = root / "reports" / "latest"

    def target() -> str:
        return os.readlink(latest)

    pipeline.run("2026-10", root=root, quiet=True, render=True)
    assert target() == "2026-10/v1"
    pipeline.run("2026-10", root=root, quiet=True)  # stages only: no reports
    assert target() == "2026-10/v1"
    pipeline.run("2026-10", root=root, quiet=True, render=True, audiences=["executive"])  # one audience
    assert target() == "2026-10/v1"
    pipeline.run("2026-09", root=root, quiet=True, render=True)  # a complete re-run of an older month
    assert target() == "2026-10/v1"
    pipeline.run("2026-10", root=root, quiet=True, render=True)
    assert target() == "2026-10/v4"
    index = (root / "reports" / "index.html").read_text(encoding="utf-8")
    for run in ("2026-10-v1", "2026-10-v2", "2026-10-v3", "2026-10-v4", "2026-09-v1"):
        assert run in index, f"index.html lists {run}"


# ---------------------------------------------------------------------------------------------------
# 8. A folder as path
# ---------------------------------------------------------------------------------------------------


def test_a_folder_as_path_is_named_by_check_and_run_leaves_no_partial(tmp_path):
    root = project(tmp_path, {"contacts": CONTACTS})
    (root / "data" / "raw" / "contacts.csv").mkdir()
    done = scv(root, "check")
    assert done.returncode == 1 and "not a file" in done.stdout and "contacts.csv" in done.stdout
    done = scv(root, "run", "--period", "2026-10")
    assert (
        done.returncode == 2 and "is a folder, not a file" in done.stderr and "Traceback" not in done.stderr
    )
    assert not list((root / "reports").rglob("*.partial")) and not (root / "reports" / "2026-10").exists()
    with pytest.raises(SourceError, match="is a folder, not a file"):
        read_source(CONTACTS, root / "data" / "raw")


# ---------------------------------------------------------------------------------------------------
# 9. The erasure audit log keeps no personal data from the reason
# ---------------------------------------------------------------------------------------------------


def test_the_audit_log_keeps_no_name_phone_email_tax_id_or_iban_from_the_reason(tmp_path):
    root = project(tmp_path, tiny_sources())
    write_tiny_raw(root / "data" / "raw")
    settings = load_settings(root=root)
    results = ingest.ingest_all(tiny_sources(), settings.path("raw"), SETTINGS, progress=False)
    ingest.save_results(results, settings.path("processed"), settings.path("store"), "2026-10")
    reason = (
        "RGPD-2026-0042: María García Pérez pidió el borrado por teléfono 612 34 56 78 "
        "desde maria.garcia@gmail.com, DNI 00000023T, IBAN ES91 2100 0418 4502 0005 1332"
    )
    privacy_ops.erase("12345678Z", settings=settings, sources=tiny_sources(), reason=reason)
    entry = json.loads((root / "data" / "suppression" / privacy_ops.AUDIT_FILE).read_text().splitlines()[-1])
    assert entry["reason"] == (
        "RGPD-2026-0042: [name] [name] [name] pidió el borrado por teléfono [phone] "
        "desde [e-mail], DNI [tax id], IBAN [iban]"
    )
    assert len(entry["reason_sha256"]) == 64 and "García" not in json.dumps(entry, ensure_ascii=False)
    assert privacy_ops.scrub_reason("request 2026/117") == "request 2026/117"


# ---------------------------------------------------------------------------------------------------
# 10. make erase passes the ID exactly, without make or shell expansion
# ---------------------------------------------------------------------------------------------------


def test_make_erase_passes_id_and_reason_without_expansion(tmp_path):
    stub = tmp_path / "scv"
    log = tmp_path / "called.txt"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\necho stdin: >> {log}\ncat >> {log}\n")
    stub.chmod(0o755)
    pwned = tmp_path / "pwned"
    identifier = f"ana$HOME\"x'y`touch {pwned}`$(shell touch {pwned})"
    reason = f'ticket $$1 "quoted" it\'s `touch {pwned}`'
    done = subprocess.run(
        [
            "make",
            "-s",
            "-o",
            ".venv/.installed",
            "erase",
            f"ID={identifier}",
            f"REASON={reason}",
            f"SCV={stub}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    called = log.read_text().splitlines()
    assert called == ["erase", "--id", "-", "--reason", reason, "stdin:", identifier]
    assert not pwned.exists(), "nothing in ID or REASON ran"
    usage = subprocess.run(["make", "-s", "-o", ".venv/.installed", "erase", f"SCV={stub}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert usage.returncode == 2 and "usage: make erase ID=" in usage.stdout


# ---------------------------------------------------------------------------------------------------
# 11. Killed runs: partial folders are marked failed, stage folders swap whole
# ---------------------------------------------------------------------------------------------------


def test_a_killed_runs_partial_folder_is_marked_failed_by_the_next_run(runner_project):
    root = runner_project
    period = root / "reports" / "2026-10"
    partial = period / ".v1.partial"
    (partial / "notebooks").mkdir(parents=True)
    store.write_json(
        {"run_id": "2026-10-v1", "period": "2026-10", "status": "running"}, partial / "manifest.json"
    )
    manifest = pipeline.run("2026-10", root=root, quiet=True)
    assert manifest["run_id"] == "2026-10-v2"
    assert sorted(p.name for p in period.iterdir()) == ["v1.failed", "v2"]
    marked = json.loads((period / "v1.failed" / "manifest.json").read_text())
    assert marked["status"] == "failed" and marked["error"].startswith("interrupted")


def test_a_stage_folder_killed_half_way_through_keeps_all_its_old_files(tmp_path):
    folder = tmp_path / "2026-10" / "unify"
    for name in ("customers", "crosswalk", "provenance"):
        store.write_parquet(pd.DataFrame({"run": ["old"]}), folder / f"{name}.parquet")
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        import pandas as pd
        sys.path.insert(0, {str(ROOT / "src")!r})
        from helpers import store
        with store.atomic_folder({str(folder)!r}) as new:
            store.write_parquet(pd.DataFrame({{"run": ["new"]}}), new / "customers.parquet")
            store.write_parquet(pd.DataFrame({{"run": ["new"]}}), new / "crosswalk.parquet")
            os.kill(os.getpid(), signal.SIGKILL)  # before provenance
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    runs = {p.name: pd.read_parquet(p)["run"].tolist() for p in folder.glob("*.parquet")}
    assert runs == {"customers.parquet": ["old"], "crosswalk.parquet": ["old"], "provenance.parquet": ["old"]}
    with store.atomic_folder(folder) as new:  # and a finished swap replaces the folder whole
        store.write_parquet(pd.DataFrame({"run": ["new"]}), new / "customers.parquet")
    assert sorted(p.name for p in folder.iterdir()) == ["customers.parquet"]
    leftovers = [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".unify.")  # the killed write's, swept later
    assert pipeline.sweep_temporaries([folder.parent], older_than_s=0) == 1


def test_a_stages_store_tables_change_together(tmp_path):
    db = tmp_path / "scv.duckdb"
    store.save_tables(db, {"a": pd.DataFrame({"v": [1]}), "b": pd.DataFrame({"v": [1]})}, period="2026-10")
    with pytest.raises(Exception):  # noqa: B017 - whatever DuckDB raises for a type it cannot store
        store.save_tables(
            db, {"a": pd.DataFrame({"v": [2]}), "b": pd.DataFrame({"v": [1 + 2j]})}, period="2026-10"
        )
    assert store.load_table(db, "a")["v"].tolist() == [1], "the failed save left the first table as it was"


# ---------------------------------------------------------------------------------------------------
# 13. The lock first, readable manifests, literal passwords named
# ---------------------------------------------------------------------------------------------------


def test_the_run_lock_is_taken_before_the_period_is_detected(runner_project, monkeypatch):
    calls = []
    monkeypatch.setattr(ingest, "detect_period", lambda *a, **k: calls.append(1) or "2026-10")
    reports = runner_project / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    with pipeline.run_lock(reports), pytest.raises(ScvError, match="another run is in progress"):
        pipeline.run(root=runner_project, quiet=True)
    assert calls == [], "a second run is refused at once, before reading every transaction"


def test_manifests_are_readable_by_whoever_reads_the_index(runner_project):
    manifest_path = Path(
        pipeline.run("2026-10", root=runner_project, quiet=True)["run_id"].replace("-v", "/v")
    )
    mode = (runner_project / "reports" / manifest_path / "manifest.json").stat().st_mode
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH, oct(mode)


def test_check_warns_about_a_literal_password_in_a_url(tmp_path):
    sql = SourceSpec(
        name="loyalty", kind="party", system="L", trust_rank=2, format="sql",
        url="postgresql://scv:hunter2@db/crm", query="select 1", columns={"source_id": "id"},
    )  # fmt: skip
    env_sql = sql.model_copy(update={"name": "env", "url": "postgresql://scv:${DB_PASSWORD}@db/crm"})
    root = project(tmp_path, {"loyalty": sql, "env": env_sql})
    done = scv(root, "check")
    assert "sources.loyalty.url in params/sources.yaml holds a literal password" in done.stdout
    # the ${VARIABLE} source gets no warning (its unset variable is an error of its own), and the
    # password itself is never printed
    assert "sources.env.url in params/sources.yaml holds a literal password" not in done.stdout
    assert "hunter2" not in done.stdout
