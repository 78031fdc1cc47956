"""The sample company end to end: `scv run` on a small generated sample, checked against its truth."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from helpers import pipeline
from helpers.config import load_sources

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sample")]

#: What ingest must say about each injected defect class (placeholders are nulled, not rejected).
EXPECTED_REASON = {
    "invalid_date": {"invalid_date", "date_out_of_range"},
    "invalid_number": {"invalid_number"},
    "invalid_tax_id": {"invalid_tax_id"},
    "invalid_iban": {"invalid_iban"},
    "invalid_email": {"invalid_email"},
    "negative_quantity": {"negative_quantity"},
    "duplicate_row": {"duplicate_row"},
    "malformed_row": {"malformed_row"},
}


@pytest.fixture(scope="module")
def ingested(sample_project):
    """The whole pipeline on the small sample, as `make report` runs it: every stage, then the reports."""
    manifest = pipeline.run(root=sample_project, quiet=True, render=True)
    period = manifest["period"]
    base = sample_project / "data" / "processed" / period
    rejects = pd.concat(
        [pd.read_parquet(p) for p in sorted((base / "rejected").glob("*.parquet"))], ignore_index=True
    )
    return manifest, base, rejects


def test_run_manifest_accounts_for_every_row(ingested, sample_project):
    manifest, base, _ = ingested
    assert manifest["status"] == "ok" and manifest["period"] == "2026-10"
    assert all(v for v in manifest["inputs_sha256"].values()), "every declared input file is fingerprinted"
    stats = manifest["stages"][0]["stats"]
    sources = load_sources(root=sample_project)
    assert set(stats["sources"]) == set(sources)
    for name, counts in stats["sources"].items():
        assert counts["rows_read"] == counts["rows_staged"] + counts["rows_rejected"], name
        assert counts["rows_staged"] > 0, name
        assert (base / "staged" / f"{name}.parquet").exists()
    run_dir = sample_project / "reports" / "2026-10" / "v1"
    for stage in pipeline.STAGES:
        assert (run_dir / "notebooks" / stage.notebook).exists(), stage.name
    assert [s["stage"] for s in manifest["stages"]] == pipeline.stage_names()
    assert all(s["status"] == "ok" and "rows_in" in s["stats"] for s in manifest["stages"])


def test_unify_links_the_sample_accurately(ingested):
    manifest, base, _ = ingested
    unify_stats = next(s["stats"] for s in manifest["stages"] if s["stage"] == "unify")
    accuracy = unify_stats["accuracy"]
    assert accuracy["pair_precision"] >= 0.98 and accuracy["pair_recall"] >= 0.95, accuracy
    assert accuracy["blocking_recall"] >= 0.98, accuracy
    crosswalk = pd.read_parquet(base / "unify" / "crosswalk.parquet")
    assert crosswalk["customer_id"].notna().all()


def test_reports_for_every_audience_the_cards_and_the_index(ingested, sample_project):
    manifest, _, _ = ingested
    reports = sample_project / "reports"
    run_dir = reports / "2026-10" / "v1"
    audiences = [a["name"] for a in manifest["reports"]["audiences"]]
    assert set(audiences) == {"executive", "account_managers", "marketing", "data_stewards"}
    for name in audiences:
        for ext in ("html", "pdf"):
            path = run_dir / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
        assert (run_dir / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert (run_dir / "cards").is_dir() and list((run_dir / "cards").glob("*.pdf"))
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert "2026-10" in index and "executive" in index.lower()
    assert (reports / "latest").resolve() == run_dir.resolve()


def test_a_second_run_creates_v2_and_leaves_v1_intact(ingested, sample_project):
    period_dir = sample_project / "reports" / "2026-10"
    before = {
        p.relative_to(period_dir): p.read_bytes() for p in (period_dir / "v1").rglob("*") if p.is_file()
    }
    second = pipeline.run(root=sample_project, stages=[], render=True, audiences=["executive"], quiet=True)
    assert second["run_id"] == "2026-10-v2"
    after = {p.relative_to(period_dir): p.read_bytes() for p in (period_dir / "v1").rglob("*") if p.is_file()}
    assert before == after
    assert (period_dir / "v2" / "executive.pdf").exists()
    # v2 holds one audience's report: `latest` stays on v1, which has them all
    assert (sample_project / "reports" / "latest").resolve() == (period_dir / "v1").resolve()


def test_every_injected_defect_is_rejected_with_the_right_reason(ingested, sample_project):
    _, _, rejects = ingested
    truth = pd.read_csv(
        sample_project / "data" / "sample_truth" / "defects.csv", dtype={"row_number": "int64"}
    )
    truth = truth[truth["defect_class"].isin(EXPECTED_REASON)]
    assert set(truth["defect_class"]) == set(EXPECTED_REASON), "the sample injects every defect class"
    quarantined = set(
        zip(
            rejects.loc[rejects.action == "row", "source"],
            rejects.loc[rejects.action == "row", "row_number"],
            strict=True,
        )
    )
    found = rejects.groupby(["source", "row_number"])["reason"].agg(set).to_dict()
    missed = []
    for d in truth.itertuples():
        reasons = found.get((d.source, d.row_number), set())
        if not (reasons & EXPECTED_REASON[d.defect_class]) and (d.source, d.row_number) not in quarantined:
            missed.append((d.source, d.row_number, d.column, d.defect_class, d.value, sorted(reasons)))
    assert not missed, f"{len(missed)} injected defects not rejected, e.g. {missed[:5]}"


def test_no_valid_row_is_rejected(ingested, sample_project):
    _, _, rejects = ingested
    truth = pd.read_csv(
        sample_project / "data" / "sample_truth" / "defects.csv", dtype={"row_number": "int64"}
    )
    defect_rows = set(zip(truth["source"], truth["row_number"], strict=True))
    row_rejects = rejects[rejects.action == "row"]
    innocent = [
        r
        for r in zip(row_rejects.source, row_rejects.row_number, row_rejects.reason, strict=True)
        if (r[0], r[1]) not in defect_rows
    ]
    assert not innocent, f"{len(innocent)} rows rejected without an injected defect, e.g. {innocent[:5]}"
    field_rejects = rejects[rejects.action == "field"]
    innocent = [
        r
        for r in zip(
            field_rejects.source,
            field_rejects.row_number,
            field_rejects.column,
            field_rejects.reason,
            field_rejects.value,
            strict=True,
        )
        if (r[0], r[1]) not in defect_rows
    ]
    assert not innocent, f"{len(innocent)} values rejected without an injected defect, e.g. {innocent[:5]}"


def test_notebooks_pass_nbval(ingested, sample_project):
    notebooks = [str(sample_project / "notebooks" / s.notebook) for s in pipeline.STAGES]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--nbval-lax",
            *notebooks,
        ],
        cwd=sample_project,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_cli_help_and_errors(ingested, sample_project):
    for args in (["--help"], ["sample", "--help"], ["run", "--help"], ["check", "--help"]):
        out = subprocess.run([sys.executable, "-m", "helpers.cli", *args], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: scv" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "run", "--period", "2026-13"],
        cwd=sample_project,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "period" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "check"], cwd=sample_project, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        json.loads((sample_project / "reports" / "2026-10" / "v1" / "manifest.json").read_text())["status"]
        == "ok"
    )
