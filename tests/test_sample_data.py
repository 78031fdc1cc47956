"""The synthetic sample company: files as sources.yaml declares them, valid identities, a truthful truth."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from stdnum import iban as stdnum_iban
from stdnum.es import cif as stdnum_cif
from stdnum.es import nif as stdnum_nif

from helpers import sample_data

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 300
SEED = 11


def _generate(base: Path, seed: int = SEED, customers: int = CUSTOMERS) -> tuple[Path, Path, dict]:
    raw, truth = base / "raw", base / "truth"
    summary = sample_data.generate(
        raw, truth, customers=customers, months=24, end_date="2026-11-10", seed=seed
    )
    return raw, truth, summary


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, Path, dict]:
    return _generate(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def truth(sample) -> dict[str, pd.DataFrame]:
    _, truth_dir, _ = sample
    read = lambda name: pd.read_csv(truth_dir / f"{name}.csv", dtype=str, keep_default_na=False)  # noqa: E731
    return {
        name: read(name)
        for name in ("persons", "records", "defects", "campaign_effects", "mention_sentiment")
    }


@pytest.fixture(scope="module")
def sources() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "params" / "sources.yaml").read_text(encoding="utf-8"))["sources"]


def _hashes(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _read_source(raw: Path, spec: dict) -> pd.DataFrame:
    """A source's records as text columns, the way a plain reader sees them (JSON flattened with dots)."""
    fmt = spec["format"]
    if fmt == "sql":
        with sqlite3.connect(raw / "loyalty" / "loyalty.sqlite") as con:
            return pd.read_sql(spec["query"], con).astype(object)
    path = raw / spec["path"]
    if fmt == "csv":
        text = path.read_text(encoding=spec["encoding"])
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=spec.get("delimiter", ",")))
        width = len(rows[0])
        return pd.DataFrame([r for r in rows[1:] if len(r) == width], columns=rows[0], dtype=object)
    if fmt == "excel":
        return pd.read_excel(path, sheet_name=spec["sheet"], dtype=object)
    if fmt == "jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        records = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("record_path"):  # one row per list element, with its parent's fields
        key = spec["record_path"]
        records = [
            {**{k: v for k, v in r.items() if k != key}, key: item} for r in records for item in r[key]
        ]
    return pd.json_normalize(records, sep=".")


# ----------------------------------------------------------------------------------------- files


def test_same_seed_gives_identical_files_and_another_seed_does_not(sample, tmp_path):
    raw, truth_dir, _ = sample
    again_raw, again_truth, _ = _generate(tmp_path / "again")
    assert _hashes(again_raw) == _hashes(raw)
    assert _hashes(again_truth) == _hashes(truth_dir)
    other_raw, _, _ = _generate(tmp_path / "other", seed=SEED + 1)
    first, other = _hashes(raw), _hashes(other_raw)
    changed = [name for name in first if first[name] != other[name]]
    assert set(first) == set(other)
    assert len(changed) == len(first) - 1, "only the product catalogue is the same for every seed"


def test_every_declared_source_exists_and_carries_its_mapped_columns(sample, sources):
    raw, _, summary = sample
    for name, spec in sources.items():
        frame = _read_source(raw, spec)
        assert len(frame) > 0, name
        mapped = [c for v in spec["columns"].values() for c in ([v] if isinstance(v, str) else v)]
        missing = [c for c in mapped if c not in frame.columns]
        assert not missing, f"{name}: raw columns {missing} not in {spec.get('path', spec.get('url'))}"
    assert summary["source_records"] == sum(summary["files"].values())
    assert summary["persons"] == CUSTOMERS


def test_the_contract_in_the_module_matches_sources_yaml(sources):
    for name, spec in sources.items():
        path, columns = sample_data.SOURCE_FILES[name]
        declared = [c for v in spec["columns"].values() for c in ([v] if isinstance(v, str) else v)]
        assert set(columns) == set(declared), name
        assert path == spec.get("path", "loyalty/loyalty.sqlite"), name


def test_erp_files_are_cp1252_with_accents_decimal_commas_and_day_first_dates(sample):
    raw, _, _ = sample
    data = (raw / "erp" / "facturas.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("cp1252")
    assert any(ch in text for ch in "áéíóúñ")
    lines = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False, on_bad_lines="skip")
    amounts = lines["importe"].str.fullmatch(r"-?\d+,\d{2}")
    assert amounts.mean() > 0.98
    assert lines["fecha"].str.fullmatch(r"\d\d/\d\d/\d{4}").mean() > 0.98
    assert lines["linea_factura"].is_unique is False  # exact duplicate rows are a planted defect
    assert (lines.groupby("num_factura")["linea_factura"].nunique() >= 1).all()
    assert not text.endswith("\n"), "the last line is truncated"
    clientes = (raw / "erp" / "clientes.csv").read_bytes().decode("cp1252")
    assert clientes.splitlines()[0].split(";")[0] == "cod_cliente"


def test_invoice_amounts_are_quantity_times_price_and_refunds_are_negative(sample, truth):
    raw, _, _ = sample
    lines = pd.read_csv(
        raw / "erp" / "facturas.csv",
        sep=";",
        encoding="cp1252",
        dtype=str,
        keep_default_na=False,
        on_bad_lines="skip",
    )
    defect_rows = {int(r) for r in truth["defects"].query("file == 'erp/facturas.csv'")["row_number"]}
    clean = lines[~(lines.index + 1).isin(defect_rows)]
    qty = clean["cantidad"].astype(int)
    price = clean["precio"].str.replace(",", ".").astype(float)
    amount = clean["importe"].str.replace(",", ".").astype(float)
    assert (qty > 0).all()
    assert np.allclose(amount.abs(), (qty * price).round(2))
    assert 0 < (amount < 0).mean() < 0.03
    assert set(clean["moneda"]) >= {"EUR"} and set(clean["moneda"]) <= {"EUR", "USD", "GBP"}


# ----------------------------------------------------------------------------------------- truth


def test_tax_ids_and_ibans_of_the_persons_are_valid(truth):
    persons = truth["persons"]
    is_company = persons["party_type"] == "company"
    assert persons.loc[~is_company, "tax_id"].map(stdnum_nif.is_valid).all()
    assert persons.loc[is_company, "tax_id"].map(stdnum_cif.is_valid).all()
    assert persons["iban"].map(stdnum_iban.is_valid).all()
    assert persons.loc[~is_company, "tax_id"].str[0].isin(list("XYZ")).any(), "some foreigners with an NIE"
    assert persons["tax_id"].is_unique


def test_persons_phones_and_postcodes_are_realistic(truth):
    phonenumbers = pytest.importorskip("phonenumbers")
    persons = truth["persons"]
    for number in pd.concat([persons["mobile"], persons["landline"]]).loc[lambda s: s != ""]:
        assert phonenumbers.is_valid_number(phonenumbers.parse(number, "ES")), number
    assert persons["mobile"].str.match(r"[67]").all() or (persons["mobile"] == "").any()
    provinces = {code: p[0] for code, p in sample_data.PROVINCES.items()}
    assert (persons["postcode"].str[:2].map(provinces) == persons["province"]).all()
    assert persons.loc[persons["city"] == "Barcelona", "postcode"].str.startswith("08").all()


def test_every_party_record_in_the_raw_files_is_in_the_truth(sample, sources, truth):
    raw, _, _ = sample
    records = truth["records"]
    assert not records.duplicated(["source", "source_id"]).any()
    assert set(records["person_id"]) <= set(truth["persons"]["person_id"])
    assert set(records["source"]) == set(sample_data.PARTY_SOURCES)
    for name in sample_data.PARTY_SOURCES:
        spec = sources[name]
        ids = _read_source(raw, spec)[spec["columns"]["source_id"]].dropna().astype(str)
        known = set(records.loc[records["source"] == name, "source_id"])
        assert set(ids) == known, name
    once = records.groupby("source")["person_id"].apply(lambda s: s.is_unique)
    assert once.all(), "a person appears at most once per party source"


def test_each_defect_class_is_planted_where_the_truth_says(sample, truth):
    raw, _, _ = sample
    defects = truth["defects"]
    expected = {
        "invalid_date",
        "invalid_number",
        "invalid_tax_id",
        "invalid_iban",
        "invalid_email",
        "negative_quantity",
        "duplicate_row",
        "malformed_row",
        "placeholder",
    }
    assert set(defects["defect_class"]) == expected
    csv_files = {
        "erp/facturas.csv": ("cp1252", ";"),
        "erp/clientes.csv": ("cp1252", ";"),
        "crm/contacts.csv": ("utf-8", ","),
        "crm/opportunities.csv": ("utf-8", ","),
        "surveys/nps.csv": ("utf-8", ","),
    }
    for file, (encoding, sep) in csv_files.items():
        rows = list(
            csv.reader(io.StringIO((raw / file).read_text(encoding=encoding), newline=""), delimiter=sep)
        )
        header, body = rows[0], rows[1:]
        for d in defects[defects["file"] == file].itertuples():
            row = body[int(d.row_number) - 1]
            if d.defect_class == "duplicate_row":
                assert row == body[int(d.row_number) - 2], (file, d.row_number)
            elif d.defect_class == "malformed_row":
                assert int(d.row_number) == len(body) and len(row) < len(header)
            else:
                assert row[header.index(d.column)] == d.value, (file, d.row_number, d.column)
    lines = (raw / "web" / "orders.jsonl").read_text(encoding="utf-8").splitlines()
    for d in defects[defects["file"] == "web/orders.jsonl"].itertuples():
        order = json.loads(lines[int(d.row_number) - 1])
        if d.column.startswith("items."):
            assert d.value in [str(i[d.column.split(".")[1]]) for i in order["items"]]
        else:
            node = order
            for part in d.column.split("."):
                node = node[part]
            assert node == d.value
    tickets = pd.read_excel(raw / "support" / "tickets.xlsx", sheet_name="Tickets", dtype=object)
    for d in defects[defects["file"] == "support/tickets.xlsx"].itertuples():
        assert str(tickets.at[int(d.row_number) - 1, d.column]) == d.value
    with sqlite3.connect(raw / "loyalty" / "loyalty.sqlite") as con:
        members = pd.read_sql("SELECT * FROM members", con)
    for d in defects[defects["file"] == "loyalty/loyalty.sqlite"].itertuples():
        assert members.at[int(d.row_number) - 1, d.column] == d.value


def test_defects_are_rare_and_on_distinct_rows(sample, truth):
    _, _, summary = sample
    defects = truth["defects"].drop_duplicates(["file", "row_number", "defect_class"])
    assert not defects.duplicated(["file", "row_number"]).any(), "one defect per record"
    per_file = defects.groupby("file").size() / pd.Series(summary["files"])
    assert (per_file.dropna() < 0.08).all(), per_file.to_dict()


def test_households_and_namesakes_exist(truth):
    persons = truth["persons"]
    households = persons[persons["household_id"] != ""].groupby("household_id")
    assert households.ngroups >= 3
    assert (households["street"].nunique() == 1).all() and (households.size() >= 2).all()
    assert (households["tax_id"].nunique() == households.size()).all()
    share = (persons["household_id"] != "").sum() / (persons["party_type"] == "person").sum()
    assert 0.05 < share < 0.2
    namesakes = persons[persons["namesake_group"] != ""].groupby("namesake_group")
    assert namesakes.ngroups >= 1
    assert (namesakes["tax_id"].nunique() == namesakes.size()).all()
    assert (namesakes["city"].nunique() > 1).any()


def test_trajectories_shape_purchases(sample, truth):
    raw, _, _ = sample
    lines = pd.read_csv(
        raw / "erp" / "facturas.csv",
        sep=";",
        encoding="cp1252",
        dtype=str,
        keep_default_na=False,
        on_bad_lines="skip",
    ).drop_duplicates("num_factura")
    code = truth["records"].query("source == 'erp_customers'").set_index("source_id")["person_id"]
    persons = truth["persons"].set_index("person_id")
    lines["person"] = lines["cod_cliente"].map(code)
    lines["date"] = pd.to_datetime(lines["fecha"], format="%d/%m/%Y", errors="coerce")
    lines = lines.dropna(subset=["date"])
    churned_at = pd.to_datetime(lines["person"].map(persons["churned_at"]).replace("", None))
    assert (lines["date"][churned_at.notna()] <= churned_at.dropna() + pd.Timedelta(days=1)).all()
    second = lines["date"] >= pd.Timestamp("2025-11-10")
    ratio = second.groupby(lines["person"].map(persons["trajectory"])).mean()
    assert ratio["advancing"] > ratio["stagnating"] > ratio["regressing"] > ratio["churned"]
    assert lines["date"].max() < pd.Timestamp("2026-11-10")


# ----------------------------------------------------------------------------------------- campaigns


def test_campaign_groups_are_disjoint_with_the_planned_control_share_and_consent(sample, truth):
    raw, _, _ = sample
    contacts = pd.read_csv(raw / "campaigns" / "contacts.csv", dtype=str, keep_default_na=False)
    crm = pd.read_csv(raw / "crm" / "contacts.csv", dtype=str, keep_default_na=False).drop_duplicates(
        "contact_id"
    )
    effects = truth["campaign_effects"]
    assert 4 <= contacts["campaign_id"].nunique() <= 6
    assert set(contacts["contact_id"]) <= set(crm["contact_id"])
    assert not contacts.duplicated(["campaign_id", "contact_id"]).any(), (
        "groups are disjoint within a campaign"
    )
    for (campaign, group), rows in contacts.groupby(["campaign_id", "group"]):
        planned = float(
            effects.query("campaign == @campaign and group == @group")["planned_control_share"].iloc[0]
        )
        share = (rows["is_control"] == "1").mean()
        assert abs(share - planned) <= 1 / len(rows) + 0.01, (campaign, group, share, planned)
    opt_in = {
        "email": "opt_in_email",
        "sms": "opt_in_sms",
        "telemarketing": "opt_in_phone",
        "mailing": "opt_in_mail",
    }
    merged = contacts.merge(crm, on="contact_id", how="left")
    consent = merged.apply(lambda r: r[opt_in[r["channel"]]] == "true", axis=1)
    assert consent.all(), "nobody without consent for the campaign's channel is selected"
    assert set(effects["group"]) == {"model", "marketing", "random"}
    for _, rows in effects.groupby("campaign"):
        by_group = rows.set_index("group").astype({"control_rate": float, "uplift": float})
        assert (
            by_group.loc["model", "control_rate"]
            > by_group.loc["marketing", "control_rate"]
            > by_group.loc["random", "control_rate"]
        )
        assert (
            by_group.loc["model", "uplift"]
            > by_group.loc["marketing", "uplift"]
            > by_group.loc["random", "uplift"]
        )


def test_planted_campaign_effect_is_measurable_at_a_larger_scale(tmp_path):
    """With enough contacts the treated-minus-control response rate recovers the planted uplift."""
    raw, truth_dir, _ = _generate(tmp_path, seed=5, customers=3000)
    contacts = pd.read_csv(raw / "campaigns" / "contacts.csv")
    effects = pd.read_csv(truth_dir / "campaign_effects.csv")
    rates = contacts.groupby(["group", "is_control"])["responded"].mean().unstack()
    measured = rates[0] - rates[1]
    planted = effects.groupby("group")["uplift"].mean()
    assert measured["model"] > measured["random"]
    assert abs(measured["model"] - planted["model"]) < 0.05


# ----------------------------------------------------------------------------------------- the rest


def test_social_authors_without_email_carry_both_surnames(sample, truth):
    raw, _, _ = sample
    mentions = json.loads((raw / "social" / "mentions.json").read_text(encoding="utf-8"))
    assert isinstance(mentions, list) and mentions
    handle_person = truth["records"].query("source == 'social_authors'").set_index("source_id")["person_id"]
    persons = truth["persons"].set_index("person_id")
    for m in mentions:
        if not m["author_email"] and persons.at[handle_person[m["handle"]], "family_name_2"]:
            assert len(m["author_name"].split()) >= 3, m["author_name"]
    sentiment = truth["mention_sentiment"]
    assert set(sentiment["mention_id"]) == {m["mention_id"] for m in mentions}
    assert set(sentiment["sentiment"]) == {"positive", "negative", "neutral"}


def test_nps_follows_satisfaction(sample, truth):
    raw, _, _ = sample
    nps = pd.read_csv(raw / "surveys" / "nps.csv", dtype=str, keep_default_na=False)
    person = nps["respondent_id"].map(
        truth["records"].query("source == 'survey_respondents'").set_index("source_id")["person_id"]
    )
    satisfaction = person.map(truth["persons"].set_index("person_id")["satisfaction"]).astype(int)
    score = pd.to_numeric(nps["nps"])
    assert score.between(0, 10).all()
    means = score.groupby(satisfaction).mean()
    assert means.is_monotonic_increasing


def test_customers_for_records_hits_the_requested_size(tmp_path):
    assert sample_data.customers_for_records(1_000_000) > sample_data.customers_for_records(100_000) > 1000
    customers = sample_data.customers_for_records(12_000)
    _, _, summary = _generate(tmp_path, customers=customers)
    assert 0.8 * 12_000 < summary["source_records"] < 1.2 * 12_000


def test_generate_rejects_a_tiny_company(tmp_path):
    with pytest.raises(ValueError, match="customers"):
        sample_data.generate(tmp_path / "raw", tmp_path / "truth", customers=3)


def test_the_committed_truth_readme_is_what_generation_writes():
    """Generating the sample must not modify a tracked file: every run's code version would read
    '-dirty' on a clean clone."""
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "data" / "sample_truth" / "README.md"
    assert readme.read_text(encoding="utf-8") == sample_data.TRUTH_README
