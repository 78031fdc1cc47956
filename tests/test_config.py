"""Parameters are validated on load with errors that name the file, the key and what was expected."""

from pathlib import Path

import pytest
import yaml

from helpers.config import expand_env, fingerprint, load_settings, load_sources
from helpers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def copy_params(tmp_path: Path, default: dict | None = None, sources: dict | None = None) -> Path:
    params = tmp_path / "params"
    params.mkdir()
    d = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    s = yaml.safe_load((ROOT / "params" / "sources.yaml").read_text())
    if default:
        d.update(default)
    if sources is not None:
        s = sources
    (params / "default.yaml").write_text(yaml.safe_dump(d))
    (params / "sources.yaml").write_text(yaml.safe_dump(s))
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def test_the_shipped_parameters_load():
    settings = load_settings(root=ROOT)
    sources = load_sources(root=ROOT)
    assert settings.path("raw") == ROOT / "data" / "raw"
    kinds = {s.kind for s in sources.values()}
    assert kinds == {"party", "transaction", "interaction", "campaign_contact", "opportunity", "product"}
    assert sources["erp_invoices"].decimal == "," and sources["erp_invoices"].encoding == "cp1252"


def test_unknown_key_names_file_and_key(tmp_path):
    root = copy_params(tmp_path, default={"ingest": {"default_countyr": "ES"}})
    with pytest.raises(ConfigError) as err:
        load_settings(root=root)
    msg = str(err.value)
    assert "default.yaml" in msg and "ingest.default_countyr" in msg and "unknown key" in msg


def test_wrong_type_names_value_and_expectation(tmp_path):
    root = copy_params(tmp_path, default={"sample": {"customers": "many"}})
    with pytest.raises(ConfigError, match=r"sample\.customers.*integer.*'many'"):
        load_settings(root=root)


def test_bad_period_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="period"):
        load_settings(root=ROOT, overrides={"period": "2026-13"})


def test_unknown_canonical_column_lists_the_allowed_ones(tmp_path):
    sources = yaml.safe_load((ROOT / "params" / "sources.yaml").read_text())
    sources["sources"]["crm_contacts"]["columns"]["nickname"] = "apodo"
    root = copy_params(tmp_path, sources=sources)
    with pytest.raises(ConfigError) as err:
        load_sources(root=root)
    msg = str(err.value)
    assert (
        "sources.yaml" in msg
        and "sources.crm_contacts" in msg
        and "'nickname'" in msg
        and "given_name" in msg
    )


def test_missing_required_mapping_and_bad_party_source(tmp_path):
    sources = yaml.safe_load((ROOT / "params" / "sources.yaml").read_text())
    del sources["sources"]["erp_invoices"]["columns"]["amount"]
    root = copy_params(tmp_path, sources=sources)
    with pytest.raises(ConfigError, match=r"erp_invoices.*'amount'"):
        load_sources(root=root)
    sources = yaml.safe_load((ROOT / "params" / "sources.yaml").read_text())
    sources["sources"]["erp_invoices"]["party_source"] = "erp_invoicez"
    (tmp_path / "b").mkdir()
    root2 = copy_params(tmp_path / "b", sources=sources)
    with pytest.raises(ConfigError, match="party_source.*'erp_invoicez'.*not a party source"):
        load_sources(root=root2)


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    root = copy_params(tmp_path)
    (root / "params" / "sources.yaml").write_text("sources: [unclosed\n")
    with pytest.raises(ConfigError, match="sources.yaml: not valid YAML"):
        load_sources(root=root)


def test_credentials_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    assert expand_env("postgresql://scv:${DB_PASSWORD}@db/crm") == "postgresql://scv:s3cret@db/crm"
    monkeypatch.delenv("DB_PASSWORD")
    with pytest.raises(ConfigError, match="DB_PASSWORD is not set"):
        expand_env("postgresql://scv:${DB_PASSWORD}@db/crm")


def test_fingerprint_changes_with_parameters():
    settings = load_settings(root=ROOT)
    sources = load_sources(root=ROOT)
    other = load_settings(root=ROOT, overrides={"ingest.default_country": "PT"})
    assert fingerprint(settings, sources) == fingerprint(load_settings(root=ROOT), sources)
    assert fingerprint(settings, sources) != fingerprint(other, sources)
