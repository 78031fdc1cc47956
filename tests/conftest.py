"""Shared fixtures: a small generated sample company in a throw-away copy of the project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL_SAMPLE = 400  # customers: enough for every defect class and source, fast to generate and run


def make_project(dest: Path) -> Path:
    """A copy of the project's params and notebooks (not its data) where a run can write freely."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "params", dest / "params")
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    (dest / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return dest


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    """A project copy with the sample company generated at SMALL_SAMPLE customers."""
    from helpers import sample_data

    root = make_project(tmp_path_factory.mktemp("project"))
    sample_data.generate(root / "data" / "raw", root / "data" / "sample_truth", customers=SMALL_SAMPLE,
                         months=24, end_date="2026-11-10", seed=7)
    return root
