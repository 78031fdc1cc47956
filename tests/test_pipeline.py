"""The runner: versions, manifest, failure handling (no partial output promoted)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers import pipeline
from helpers.errors import StageError
from tests.conftest import make_project


def write_notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": pipeline.KERNEL, "display_name": "scv", "language": "python"}
    params = nbformat.v4.new_code_cell("period = None\nrun_id = None\noverrides = {}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    (root / "data" / "raw").mkdir(parents=True)
    write_notebook(
        root / "notebooks" / "ok.ipynb",
        """
from helpers import pipeline
from helpers.config import load_settings
s = load_settings()
pipeline.record_stage(s, period, "first", {"rows_in": 3, "rows_out": 2, "run": run_id})
""",
    )
    write_notebook(root / "notebooks" / "boom.ipynb", "x = 1\nraise ValueError('the amount column is empty')")
    monkeypatch.setattr(
        pipeline,
        "STAGES",
        [pipeline.Stage("first", "ok.ipynb", "ok"), pipeline.Stage("second", "boom.ipynb", "fails")],
    )
    return root


def test_successful_runs_are_versioned_with_a_manifest(tiny_project):
    first = pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    second = pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    assert (first["run_id"], second["run_id"]) == ("2026-10-v1", "2026-10-v2")
    run1 = tiny_project / "reports" / "2026-10" / "v1"
    manifest = json.loads((run1 / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["period"] == "2026-10"
    assert len(manifest["parameters_sha256"]) == 64 and manifest["code_version"]
    stage = manifest["stages"][0]
    assert stage["stats"] == {"rows_in": 3, "rows_out": 2, "run": "2026-10-v1"} and stage["seconds"] > 0
    assert (run1 / "notebooks" / "ok.ipynb").exists()
    assert (tiny_project / "reports" / "latest").resolve() == (
        tiny_project / "reports" / "2026-10" / "v2"
    ).resolve()


def test_a_failing_stage_names_notebook_cell_and_error_and_promotes_nothing(tiny_project):
    pipeline.run("2026-10", stages=["first"], root=tiny_project, quiet=True)
    with pytest.raises(StageError) as err:
        pipeline.run("2026-10", root=tiny_project, quiet=True)
    msg = str(err.value)
    assert "stage 'second'" in msg and "boom.ipynb" in msg and "cell" in msg
    assert "ValueError: the amount column is empty" in msg
    period = tiny_project / "reports" / "2026-10"
    assert sorted(p.name for p in period.iterdir()) == ["v1", "v2.failed"]
    failed = json.loads((period / "v2.failed" / "manifest.json").read_text())
    assert failed["status"] == "failed" and [s["status"] for s in failed["stages"]] == ["ok", "failed"]
    assert (tiny_project / "reports" / "latest").resolve() == (period / "v1").resolve()
    assert pipeline.next_version(period) == 3  # a failed run's number is never reused


def test_unknown_stage_is_refused(tiny_project):
    with pytest.raises(Exception, match="unknown stage"):
        pipeline.run("2026-10", stages=["nope"], root=tiny_project, quiet=True)
