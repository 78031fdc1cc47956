"""The quality audit on crafted frames with known defects (exact counts), the status thresholds, the
masking of personal data, the records to fix per owner, and the sample company against its truth."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import privacy
from helpers import quality as q
from helpers.config import SourceSpec, load_settings
from helpers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RULES = q.load_rules(ROOT / "params" / "quality_rules.yaml")
SETTINGS = q.QualitySettings()
PERIOD = "2026-10"

# --------------------------------------------------------------------------------------------------
# A crafted company: a CRM (party), a loyalty list (party) and invoices, with known defects
# --------------------------------------------------------------------------------------------------

CRM = SourceSpec(
    name="crm",
    kind="party",
    system="CRM",
    owner="Sales operations",
    trust_rank=2,
    format="csv",
    path="crm.csv",
    columns={
        "source_id": "id",
        "given_name": "nombre",
        "family_names": "apellidos",
        "tax_id": "nif",
        "email": "email",
        "phone": "tel",
        "birth_date": "nacimiento",
        "postcode": "cp",
        "city": "ciudad",
        "province": "provincia",
        "iban": "iban",
        "updated_at": "modificado",
    },
)
LOYALTY = SourceSpec(
    name="loy",
    kind="party",
    system="Loyalty",
    owner="Marketing",
    trust_rank=3,
    format="csv",
    path="loy.csv",
    columns={
        "source_id": "card",
        "full_name": "nombre",
        "tax_id": "dni",
        "birth_date": "nacimiento",
        "created_at": "alta",
    },
)
INVOICES = SourceSpec(
    name="erp_invoices",
    kind="transaction",
    system="ERP",
    owner="Finance",
    trust_rank=1,
    format="csv",
    path="facturas.csv",
    party_source="crm",
    columns={
        "source_id": "linea",
        "party_id": "cliente",
        "date": "fecha",
        "quantity": "cantidad",
        "amount": "importe",
        "paid_date": "cobro",
        "due_date": "vence",
    },
)
SPECS = {s.name: s for s in (CRM, LOYALTY, INVOICES)}

NA = None


def _lineage(source: str, rows: list[int]) -> dict:
    return {"source": source, "record_id": [f"{source}:{r}" for r in rows], "row_number": rows}


def crm_staged() -> pd.DataFrame:
    """Five staged CRM records, as ingest leaves them (invalid values and placeholders already nulled)."""
    f = pd.DataFrame(
        {
            **_lineage("crm", [1, 2, 3, 4, 5]),
            "source_id": ["C1", "C2", "C3", "C4", "C5"],
            "party_type": ["person", "person", "person", "person", "company"],
            "given_name": ["José", "Ana", "Luis", "José", NA],
            "family_names": ["Prados García", "López", "Martín", "Prados García", NA],
            "full_name": [
                "José Prados García",
                "Ana López",
                "Luis Martín",
                "José Prados García",
                "Talleres Norte S.L.",
            ],
            # row 2: invalid NIF nulled (field reject); C4 repeats C1's NIF (a duplicate person)
            "tax_id": ["12345678Z", NA, "X1234567L", "12345678Z", "B12345674"],
            # row 2: "test@test.com" nulled as a placeholder; row 5: a bad address that reached staging
            "email": ["jose@example.com", NA, "luis@example.com", "jose2@example.com", "info@example"],
            # row 3 blank; row 4: "000000000" nulled as a placeholder
            "phone": ["+34612345678", "+34612345679", NA, NA, "+34912345678"],
            # row 2: impossible date nulled (field reject); row 3: in the future
            "birth_date": pd.to_datetime(["1980-02-01", NA, "2030-01-01", "1980-02-01", NA]),
            # row 3: Madrid postcode with province Barcelona; row 5: no such province
            "postcode": ["28001", "08001", "28001", "46001", "99999"],
            "city": ["Madrid", "Madrid", "Madrid", "València", NA],  # row 2: Madrid with a Barcelona postcode
            "province": ["Madrid", "Barcelona", "Barcelona", "Valencia/València", NA],
            "iban": ["ES9121000418450200051332", NA, NA, NA, NA],  # row 4: invalid IBAN nulled (field reject)
            "updated_at": pd.to_datetime(["2026-10-20", "2026-09-01", NA, "2026-10-01", "2026-10-25"]),
        }
    )
    return f


def loyalty_staged() -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_lineage("loy", [1, 2]),
            "source_id": ["L1", "L2"],
            "party_type": ["person", "person"],
            "full_name": ["Pedro Sánchez", "ANA LOPEZ"],
            "tax_id": ["12345678Z", NA],
            "birth_date": pd.to_datetime(["1980-01-02", "1985-02-03"]),
            "created_at": pd.to_datetime(["2026-01-01", "2025-12-01"]),
        }
    )


def invoices_staged() -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_lineage("erp_invoices", [1, 2, 3, 4]),
            "source_id": ["F1", "F2", "F3", "F4"],
            "party_source": "crm",
            "party_id": ["C1", "C2", "C3", "C4"],
            "date": pd.to_datetime(
                ["2026-10-05 14:00", "2026-10-10 09:00", "2026-10-20 10:30", "2026-09-30 18:00"]
            ),
            "quantity": [2.0, 1.0, 3.0, 1.0],
            "amount": [10.0, -5.0, 7.5, 3.0],  # a refund is negative: not a defect on invoice lines
            "paid_date": pd.to_datetime(["2026-10-05", "2026-10-01", NA, NA]),  # row 2 paid before invoiced
            "due_date": pd.to_datetime(
                ["2026-11-04", "2026-11-09", "2026-11-19", "2026-09-01"]
            ),  # row 4 due before
        }
    )


REJECTS = pd.DataFrame(
    [
        # source, file, row, raw column, raw value, reason, action
        ("crm", "crm.csv", 2, "nif", "12345678A", "invalid_tax_id", "field"),
        ("crm", "crm.csv", 2, "nacimiento", "31/02/1985", "invalid_date", "field"),
        ("crm", "crm.csv", 4, "iban", "ES0021000418450200051332", "invalid_iban", "field"),
        ("crm", "crm.csv", 6, "*", "", "duplicate_row", "row"),
        ("crm", "crm.csv", 7, "*", "9,Eva,Ruiz,12345678Z", "malformed_row", "row"),
        ("crm", "crm.csv", 8, "id", "", "missing_required", "row"),
        ("erp_invoices", "facturas.csv", 5, "cantidad", "-2", "negative_quantity", "row"),
        ("erp_invoices", "facturas.csv", 6, "importe", "12,3,4", "invalid_number", "row"),
        ("erp_invoices", "facturas.csv", 7, "fecha", "31/02/2026", "invalid_date", "row"),
        ("erp_invoices", "facturas.csv", 8, "importe", "", "missing_required", "row"),
        ("erp_invoices", "facturas.csv", 9, "*", "", "duplicate_row", "row"),
    ],
    columns=["source", "file", "row_number", "column", "value", "reason", "action"],
)

PLACEHOLDERS = pd.DataFrame(
    {"source": ["crm", "crm", "erp_invoices"], "column": ["email", "phone", "amount"], "count": [1, 1, 1]}
)  # the invoice placeholder ("--") was on a quarantined row

CROSSWALK = pd.DataFrame(
    {
        "source": ["crm"] * 5 + ["loy"] * 2,
        "source_id": ["C1", "C2", "C3", "C4", "C5", "L1", "L2"],
        "customer_id": ["K1", "K2", "K3", "K1", "K5", "K1", "K2"],
    }
)
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["K1", "K2", "K3", "K5"],
        "full_name": ["José Prados García", "Ana López", "Luis Martín Gómez", "Talleres Norte S.L."],
        "tax_id": ["12345678Z", NA, "X1234567L", "B12345674"],
        "birth_date": pd.to_datetime(["1980-02-01", "1985-02-03", "1975-05-05", NA]),
    }
)
REFERENCE = q.postcode_reference(
    pd.DataFrame(
        {
            "postcode_from": ["28001", "08001", "46001"],
            "postcode_to": ["28055", "08042", "46026"],
            "city": ["Madrid", "Barcelona", "Valencia"],
            "aliases": ["", "", "València"],
        }
    )
)


@pytest.fixture(scope="module")
def crafted() -> q.QualityAudit:
    staged = {"crm": crm_staged(), "loy": loyalty_staged(), "erp_invoices": invoices_staged()}
    return q.audit(
        staged,
        REJECTS,
        PLACEHOLDERS,
        SPECS,
        RULES,
        SETTINGS,
        period_end=PERIOD,
        crosswalk=CROSSWALK,
        customers=CUSTOMERS,
        postcode_reference=REFERENCE,
    )


#: (source, field, rule) -> (passed, failed), worked out by hand from the frames above.
EXPECTED = {
    # completeness: blank fails not_null; a placeholder counts as delivered there and fails not_placeholder;
    # values ingest rejected as invalid are validity's, not completeness'
    ("crm", "source_id", "not_null"): (5, 1),  # row 8 quarantined: id missing
    ("crm", "tax_id", "not_null"): (4, 0),  # row 2's null is an invalid NIF
    ("crm", "email", "not_null"): (5, 0),
    ("crm", "email", "not_placeholder"): (4, 1),
    ("crm", "phone", "not_null"): (4, 1),
    ("crm", "phone", "not_placeholder"): (3, 1),
    ("crm", "city", "not_null"): (4, 1),
    ("crm", "province", "not_null"): (4, 1),
    ("crm", "iban", "not_null"): (1, 3),  # row 4's null is an invalid IBAN
    ("crm", "updated_at", "not_null"): (4, 1),
    ("loy", "tax_id", "not_null"): (1, 1),
    ("crm", "given_name", "not_null_person"): (4, 0),  # the company is not scored
    ("crm", "birth_date", "not_null_person"): (3, 0),
    # validity
    ("crm", "(record)", "well_formed_row"): (7, 1),  # 8 rows read
    ("crm", "tax_id", "tax_id_checksum"): (4, 1),
    ("crm", "iban", "iban_checksum"): (1, 1),
    ("crm", "email", "email_syntax"): (3, 1),  # "info@example" reached staging
    ("crm", "phone", "phone_number"): (3, 0),
    ("crm", "postcode", "postcode_province"): (3, 2),  # 28001 in Barcelona; 99999
    ("crm", "updated_at", "date_in_range"): (4, 0),
    ("crm", "birth_date", "birth_date_in_range"): (2, 2),  # 2030 (staged) + 31/02 (rejected)
    # uniqueness
    ("crm", "(record)", "duplicate_row"): (7, 1),
    ("crm", "source_id", "duplicate_person"): (4, 1),  # C4 = C1 by NIF and by name + birth date
    ("crm", "source_id", "duplicate_customer"): (4, 1),  # C1 and C4 in K1
    ("loy", "source_id", "duplicate_customer"): (2, 0),
    # consistency against the golden records
    ("crm", "birth_date", "birth_date_agrees"): (2, 1),  # C3: 2030 vs 1975
    ("loy", "birth_date", "birth_date_agrees"): (1, 1),  # L1: day and month swapped
    ("crm", "tax_id", "tax_id_agrees"): (4, 0),
    ("loy", "tax_id", "tax_id_agrees"): (1, 0),
    ("crm", "full_name", "name_agrees"): (5, 0),  # "Luis Martín" is within "Luis Martín Gómez"
    ("loy", "full_name", "name_agrees"): (1, 1),  # "Pedro Sánchez" is not "José Prados García"
    # timeliness (period end 2026-10-31)
    ("crm", "updated_at", "fresh"): (1, 0),  # 6 days old
    ("loy", "created_at", "fresh_new_records"): (0, 1),  # 303 days old > 120
    # accuracy: postcode <-> city (row 5 has no city; València is an alias of Valencia)
    ("crm", "city", "postcode_city"): (3, 1),
    # invoices
    ("erp_invoices", "amount", "not_null"): (4, 1),  # row 8 quarantined: amount missing
    ("erp_invoices", "amount", "not_placeholder"): (4, 0),  # its placeholder was on that quarantined row
    ("erp_invoices", "(record)", "well_formed_row"): (9, 0),
    ("erp_invoices", "amount", "number_parses"): (4, 1),
    ("erp_invoices", "quantity", "number_parses"): (4, 0),
    ("erp_invoices", "quantity", "quantity_not_negative"): (4, 1),
    ("erp_invoices", "date", "date_in_range"): (4, 1),
    ("erp_invoices", "paid_date", "paid_after_invoiced"): (1, 1),  # same day passes; row 2 fails
    ("erp_invoices", "due_date", "paid_after_invoiced"): (3, 1),
    ("erp_invoices", "(record)", "duplicate_row"): (8, 1),
    ("erp_invoices", "date", "fresh"): (1, 0),
}


def test_crafted_scores_exact(crafted):
    card = crafted.scorecard.set_index(["source", "field", "rule"])
    assert card.index.is_unique
    got = {k: (int(card.loc[k, "passed"]), int(card.loc[k, "failed"])) for k in EXPECTED if k in card.index}
    assert got == EXPECTED
    for k, (p, f) in EXPECTED.items():
        assert card.loc[k, "score"] == pytest.approx(p / (p + f))


def test_crafted_no_unexpected_failures(crafted):
    """Every failure in the scorecard is one of the planted defects."""
    failing = crafted.scorecard[crafted.scorecard["failed"] > 0]
    keys = set(zip(failing["source"], failing["field"], failing["rule"], strict=True))
    assert keys <= set(EXPECTED)
    assert crafted.scorecard[["passed", "failed"]].ge(0).all().all()
    assert crafted.scorecard["score"].between(0, 1).all()


def test_rules_not_applicable_are_absent(crafted):
    card = crafted.scorecard
    assert not ((card["source"] == "erp_invoices") & (card["rule"] == "amount_not_negative")).any()  # refunds
    assert not ((card["source"] == "crm") & (card["rule"] == "country_code")).any()  # not mapped
    assert set(card["dimension"]) == set(q.DIMENSIONS)


def test_every_reject_is_counted(crafted):
    from_rejects = crafted.findings[crafted.findings["problem"].isin(REJECTS["reason"])]
    got = sorted(
        zip(
            from_rejects["source"],
            from_rejects["row_number"].astype(int),
            from_rejects["problem"],
            strict=True,
        )
    )
    assert got == sorted(zip(REJECTS["source"], REJECTS["row_number"], REJECTS["reason"], strict=True))


def test_unclaimed_reject_gets_its_own_rule():
    rules = [r for r in RULES if r.name != "tax_id_checksum"]
    card = q.scorecard(
        {"crm": crm_staged()},
        REJECTS[REJECTS.source == "crm"],
        PLACEHOLDERS,
        SPECS,
        rules,
        SETTINGS,
        period_end=PERIOD,
    )
    row = card[card["rule"] == "ingest:invalid_tax_id"]
    assert row[["source", "field", "dimension", "passed", "failed"]].values.tolist() == [
        ["crm", "tax_id", "validity", 4, 1]
    ]


def test_findings_point_at_records(crafted):
    f = crafted.findings.set_index(["source", "rule"]).sort_index()
    email = f.loc[("crm", "email_syntax")]
    assert email[["record_id", "row_number", "source_id", "value"]].values.tolist() == [
        ["crm:5", 5, "C5", "info@example"]
    ]
    province = f.loc[("crm", "postcode_province")]
    assert sorted(province["source_id"]) == ["C3", "C5"]
    dup = f.loc[("crm", "duplicate_person")]
    assert dup[["source_id", "expected"]].values.tolist() == [["C4", "C1"]]
    tax = f.loc[("crm", "tax_id_checksum")]  # a field reject: the staged record is found by its row
    assert tax[["record_id", "source_id", "value"]].values.tolist() == [["crm:2", "C2", "12345678A"]]
    conflict = f.loc[("loy", "birth_date_agrees")]
    assert conflict[["source_id", "value", "expected"]].values.tolist() == [
        ["L1", "1980-01-02", "1980-02-01"]
    ]


def test_freshness_table(crafted):
    fresh = crafted.freshness.set_index(["source", "rule"])
    assert fresh.loc[("crm", "fresh"), "age_days"] == 6
    assert fresh.loc[("loy", "fresh_new_records"), ["age_days", "stale_days", "stale"]].tolist() == [
        303,
        120,
        True,
    ]
    assert fresh.loc[("erp_invoices", "fresh"), "column"] == "date"


def test_stale_days_by_source_wins():
    settings = q.QualitySettings(stale_days_by_source={"loy": 400})
    card = q.scorecard({"loy": loyalty_staged()}, None, None, SPECS, RULES, settings, period_end=PERIOD)
    assert card.loc[card["rule"] == "fresh_new_records", ["passed", "failed"]].values.tolist() == [[1, 0]]


def test_consistency_without_golden_records_uses_the_most_frequent_value():
    staged = {"crm": crm_staged(), "loy": loyalty_staged()}
    card = q.scorecard(staged, None, None, SPECS, RULES, SETTINGS, period_end=PERIOD, crosswalk=CROSSWALK)
    got = card[card["rule"] == "birth_date_agrees"].set_index("source")[["passed", "failed"]]
    # K1 holds 1980-02-01 twice (C1, C4) and 1980-01-02 once (L1): L1 disagrees; C3 is alone in K3
    assert got.loc["crm"].tolist() == [3, 0]
    assert got.loc["loy"].tolist() == [1, 1]


def test_without_unify_outputs_those_rules_are_skipped():
    card = q.scorecard({"crm": crm_staged()}, None, None, SPECS, RULES, SETTINGS, period_end=PERIOD)
    assert not card["rule"].isin(["duplicate_customer", "birth_date_agrees", "name_agrees"]).any()
    assert "duplicate_person" in set(card["rule"])


# --------------------------------------------------------------------------------------------------
# Status, summaries, issues, records to fix
# --------------------------------------------------------------------------------------------------


def test_status_thresholds():
    t = q.Thresholds(green=0.98, amber=0.90)
    assert [q.score_status(s, t) for s in (1.0, 0.98, 0.979, 0.90, 0.899, 0.0)] == [
        "green",
        "green",
        "amber",
        "amber",
        "red",
        "red",
    ]
    assert q.score_status(float("nan"), t) is None
    s = q.score_status(pd.Series([0.99, 0.95, 0.5, np.nan]), t)
    assert s.tolist() == ["green", "amber", "red", None]
    with pytest.raises(ValueError):
        q.Thresholds(green=0.5, amber=0.9)


def test_status_uses_dimension_then_rule_thresholds(crafted):
    card = crafted.scorecard.set_index(["source", "field", "rule"])
    # completeness bands are 0.95 / 0.75: phone 4/5 = 0.8 is amber; validity 0.98 / 0.90: 3/4 is red
    assert card.loc[("crm", "phone", "not_null"), "status"] == "amber"
    assert card.loc[("crm", "email", "email_syntax"), "status"] == "red"
    lenient = [
        r.model_copy(update={"thresholds": q.Thresholds(green=0.7, amber=0.5)})
        if r.name == "email_syntax"
        else r
        for r in RULES
    ]
    again = q.scorecard({"crm": crm_staged()}, None, None, SPECS, lenient, SETTINGS, period_end=PERIOD)
    assert again.set_index(["field", "rule"]).loc[("email", "email_syntax"), "status"] == "green"


def test_summary_pools_checks(crafted):
    s = q.summary(crafted.scorecard, SETTINGS).set_index(["source", "dimension"])
    card = crafted.scorecard
    part = card[(card.source == "crm") & (card.dimension == "validity")]
    assert s.loc[("crm", "validity"), "failed"] == part["failed"].sum()
    assert s.loc[("crm", "validity"), "score"] == pytest.approx(
        part["passed"].sum() / (part["passed"] + part["failed"]).sum()
    )
    assert s.loc[("crm", "validity"), "worst_rule"] == "birth_date_in_range"  # 2 of 4
    # completeness pools not_null and not_placeholder per field: email has 5 values, 1 is a placeholder
    comp = card[(card.source == "crm") & (card.dimension == "completeness")]
    fields = (
        comp.assign(n=comp.passed + comp.failed).groupby("field").agg(f=("failed", "sum"), n=("n", "max"))
    )
    assert fields.loc["email"].tolist() == [1, 5] and fields.loc["phone"].tolist() == [2, 5]
    assert s.loc[("crm", "completeness"), "failed"] == fields["f"].sum()
    assert s.loc[("crm", "completeness"), "score"] == pytest.approx(1 - fields["f"].sum() / fields["n"].sum())
    heat = q.heatmap_table(crafted.scorecard, SETTINGS)
    assert list(heat.columns) == list(q.DIMENSIONS)
    assert np.isnan(heat.loc["erp_invoices", "consistency"])


def test_issues_list_red_items_with_masked_examples(crafted):
    found = q.issues(crafted.scorecard, crafted.findings, SPECS, SETTINGS, RULES)
    assert (found["failed"] > 0).all()
    red = crafted.scorecard[crafted.scorecard["status"] == "red"]
    assert len(found) == len(red)
    assert found["failed"].is_monotonic_decreasing
    tax = found[found["rule"] == "tax_id_checksum"].iloc[0]
    assert tax["owner"] == "Sales operations" and tax["system"] == "CRM"
    assert "1234****A" in tax["examples"] and "12345678A" not in tax["examples"]
    text = " ".join(found["examples"])
    for raw in ("12345678A", "ES0021000418450200051332", "info@example", "9,Eva,Ruiz"):
        assert raw not in text


def test_records_to_fix_per_owner(crafted):
    files = q.records_to_fix(crafted.findings, SPECS, rules=RULES)
    assert set(files) == {"Sales operations", "Marketing", "Finance"}
    crm = files["Sales operations"]
    assert set(crm["source"]) == {"crm"}
    assert (crm["owner"] == "Sales operations").all()
    tax = crm[crm["rule"] == "tax_id_checksum"].iloc[0]
    assert tax["column"] == "nif" and tax["file"] == "crm.csv" and tax["value"] == "1234****A"
    assert tax["problem"].startswith("the NIF/NIE/CIF has a wrong format")
    # the records with a missing value are listed too, so the owner can fill them; an invalid value
    # ingest removed is listed under validity, not as blank
    iban = crm[(crm["field"] == "iban") & (crm["rule"] == "not_null")]
    assert (
        len(iban) == 3 and 4 not in set(iban["row_number"]) and iban["problem"].str.endswith("(blank)").all()
    )
    phone = crm[(crm["field"] == "phone") & (crm["rule"] == "not_null")]
    assert len(phone) == 2 and phone["problem"].str.endswith("(blank or a placeholder)").all()
    assert phone["record_id"].notna().all() and phone["value"].isna().all()
    finance = files["Finance"]
    assert sorted(finance["row_number"].dropna().astype(int)) == [2, 4, 5, 6, 7, 8, 9]
    everything = pd.concat(files.values())
    assert len(everything) == len(crafted.findings)
    blob = everything.astype(str).to_csv()
    for raw in (
        "12345678Z",
        "12345678A",
        "jose@example.com",
        "info@example",
        "ES0021000418450200051332",
        "Pedro Sánchez",
        "9,Eva,Ruiz,12345678Z",
    ):
        assert raw not in blob
    assert q.fix_file_name("Atención al cliente / Soporte") == "fix_atencion_al_cliente_soporte.csv"


# --------------------------------------------------------------------------------------------------
# Parameters and the rule table
# --------------------------------------------------------------------------------------------------


def test_settings_defaults_equal_the_yaml():
    settings = load_settings(root=ROOT)
    assert q.QualitySettings.from_settings(settings) == q.QualitySettings()


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"quality\.stale_dayz: unknown key"):
        q.QualitySettings.from_settings({"stale_dayz": 3})
    with pytest.raises(ConfigError, match=r"quality\.thresholds"):
        q.QualitySettings.from_settings({"thresholds": {"green": 0.5, "amber": 0.9}})


def test_rule_table_errors_name_the_rule():
    good = {
        "name": "x",
        "dimension": "validity",
        "check": "ge",
        "fields": ["amount"],
        "args": {"min_value": 0},
    }
    assert q.parse_rules([good])[0].name == "x"
    with pytest.raises(ConfigError, match=r"rules\[0\] \(x\).*unknown check"):
        q.parse_rules([{**good, "check": "positive"}])
    with pytest.raises(ConfigError, match=r"needs args \['min_value'\]"):
        q.parse_rules([{**good, "args": {}}])
    with pytest.raises(ConfigError, match=r"unknown field 'amout'"):
        q.parse_rules([{**good, "fields": ["amout"]}])
    with pytest.raises(ConfigError, match=r"unknown reject reason"):
        q.parse_rules([{**good, "rejects": ["bad_amount"]}])
    with pytest.raises(ConfigError, match=r"repeated: \['x'\]"):
        q.parse_rules([good, good])
    with pytest.raises(ConfigError, match=r"dimension"):
        q.parse_rules([{**good, "dimension": "beauty"}])


def test_postcode_reference_file_is_valid_and_covers_the_sample_places():
    from helpers.sample_data import PLACES

    ref = q.load_postcode_reference(ROOT / "params" / "reference" / "postcodes.csv")
    assert len(ref) >= len(PLACES)
    frame = pd.DataFrame(
        {
            "record_id": [f"s:{i}" for i in range(len(PLACES))],
            "row_number": range(len(PLACES)),
            "source_id": [str(i) for i in range(len(PLACES))],
            "postcode": [f"{lo:05d}" for _, lo, _, _ in PLACES],
            "city": [c for c, *_ in PLACES],
        }
    )
    spec = SourceSpec(
        name="s",
        kind="party",
        system="x",
        trust_rank=1,
        format="csv",
        path="s.csv",
        columns={"source_id": "id", "postcode": "cp", "city": "ciudad"},
    )
    card = q.scorecard(
        {"s": frame}, None, None, {"s": spec}, RULES, SETTINGS, period_end=PERIOD, postcode_reference=ref
    )
    acc = card[card["rule"] == "postcode_city"].iloc[0]
    assert (acc["passed"], acc["failed"]) == (len(PLACES), 0)
    with pytest.raises(ConfigError, match="overlap"):
        q.postcode_reference(
            pd.DataFrame(
                {"postcode_from": ["28001", "28010"], "postcode_to": ["28020", "28030"], "city": ["A", "B"]}
            )
        )


def test_end_of_period():
    assert q.end_of_period("2026-10") == pd.Timestamp("2026-10-31 23:59:59.999999999")
    assert q.end_of_period("2026-02-15").normalize() == pd.Timestamp("2026-02-15")
    assert q.end_of_period(pd.Timestamp("2026-10-31 12:00")) == pd.Timestamp("2026-10-31 12:00")


# --------------------------------------------------------------------------------------------------
# Masking (helpers.privacy)
# --------------------------------------------------------------------------------------------------


def test_masks_have_the_documented_shapes():
    assert privacy.mask_tax_id("12345678Z") == "1234****Z"
    assert privacy.mask_tax_id("12.345.678-z") == "1234****Z"
    assert privacy.mask_tax_id("X1234567L") == "X123****L"
    assert privacy.mask_iban("ES91 2100 0418 4502 0005 1332") == "ES****1332"
    assert privacy.mask_email("juan.perez@dominio.com") == "j***@d***.com"
    assert privacy.mask_email("juan@") == "j***@***"
    assert privacy.mask_phone("+34 612 34 56 78") == "***678"
    assert privacy.mask_name("María del Carmen Prados") == "M. d. C. P."
    assert privacy.mask_date("1980-02-01") == "1980-**-**"
    assert privacy.mask_text("9,Eva,Ruiz,12345678Z") == "[20 chars]"
    for fn in privacy.MASKS.values():
        assert fn(None) is None and fn(float("nan")) is None and fn("  ") is None


def _digit_runs(text: str, n: int) -> set[str]:
    digits = re.sub(r"\D", "", text)
    return {digits[i : i + n] for i in range(len(digits) - n + 1)}


def test_masking_never_leaks_the_identifier():
    rng = np.random.default_rng(3)
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    for _ in range(300):
        n = int(rng.integers(0, 10**8))
        nif = f"{n:08d}{letters[n % 23]}"
        iban = "ES" + "".join(str(d) for d in rng.integers(0, 10, 22))
        phone = "+346" + "".join(str(d) for d in rng.integers(0, 10, 8))
        email = f"user{n}@mail{n % 97}.com"
        for raw, masked in (
            (nif, privacy.mask_tax_id(nif)),
            (iban, privacy.mask_iban(iban)),
            (phone, privacy.mask_phone(phone)),
            (email, privacy.mask_email(email)),
        ):
            assert raw not in masked
            assert not (_digit_runs(masked, 5) & _digit_runs(raw, 5)), (raw, masked)
        assert str(n) not in privacy.mask_email(email)


def test_mask_frame_and_values():
    frame = pd.DataFrame(
        {"tax_id": ["12345678Z", None], "email": ["ana@x.es", "b@y.com"], "city": ["Madrid", "Vigo"]}
    )
    out = privacy.mask_frame(frame)
    assert out["tax_id"].tolist() == ["1234****Z", None]
    assert out["email"].tolist() == ["a***@x***.es", "b***@y***.com"]
    assert out["city"].tolist() == ["Madrid", "Vigo"]  # not personal
    assert frame["tax_id"].iloc[0] == "12345678Z"  # the input is untouched
    assert privacy.mask_frame(frame, {"city": "text"})["city"].tolist() == ["[6 chars]", "[4 chars]"]
    with pytest.raises(ValueError):
        privacy.mask_frame(frame, ["city"])
    values = privacy.mask_values(
        pd.Series(["12345678Z", "28001", "+34612345678"]), pd.Series(["tax_id", "postcode", "phone"])
    )
    assert values.tolist() == ["1234****Z", "28001", "***678"]


# --------------------------------------------------------------------------------------------------
# The sample company: every injected defect class is found where it was planted
# --------------------------------------------------------------------------------------------------

#: defect class -> (dimension, rules that may count it)
TRUTH_RULES = {
    "invalid_date": ("validity", {"date_in_range", "birth_date_in_range"}),
    "invalid_number": ("validity", {"number_parses"}),
    "invalid_tax_id": ("validity", {"tax_id_checksum"}),
    "invalid_iban": ("validity", {"iban_checksum"}),
    "invalid_email": ("validity", {"email_syntax"}),
    "negative_quantity": ("validity", {"quantity_not_negative"}),
    "duplicate_row": ("uniqueness", {"duplicate_row"}),
    "malformed_row": ("validity", {"well_formed_row"}),
    "placeholder": ("completeness", {"not_placeholder"}),
}
PLACEHOLDER_VALUES = {
    "--",
    "-",
    "n/a",
    "na",
    "null",
    "none",
    "?",
}  # an injected "bad number" ingest reads as "no data"


@pytest.mark.slow
@pytest.mark.xdist_group("sample")
def test_sample_company_scorecard_finds_every_injected_defect(sample_project):
    from helpers import ingest
    from helpers.config import load_sources

    settings = load_settings(root=sample_project)
    specs = load_sources(root=sample_project)
    raw = settings.path("raw")
    results = ingest.ingest_all(specs, raw, settings.ingest, progress=False)
    period = ingest.detect_period(specs, raw, settings.ingest)
    staged = {name: r.staged for name, r in results.items()}
    placeholders = pd.concat([r.placeholders for r in results.values()], ignore_index=True)
    qs = q.QualitySettings.from_settings(settings)
    rules = q.load_rules(qs.resolve(sample_project, "rules"))
    reference = q.load_postcode_reference(qs.resolve(sample_project, "postcode_reference"))
    result = q.audit(
        staged,
        ingest.all_rejects(results),
        placeholders,
        specs,
        rules,
        qs,
        period_end=period,
        postcode_reference=reference,
    )
    card = result.scorecard

    truth = pd.read_csv(settings.path("truth") / "defects.csv", dtype=str, keep_default_na=False)
    assert set(truth["defect_class"]) == set(TRUTH_RULES)
    for (source, column, cls), part in truth.groupby(["source", "column", "defect_class"]):
        dimension, rule_names = TRUTH_RULES[cls]
        if column:
            field = q._raw_to_canonical(specs[source])[column][0]
        else:
            field = q.RECORD
        expected = len(part)
        if cls == "invalid_number":  # "--" is read as a placeholder: a required amount goes missing
            as_missing = part["value"].str.strip().str.lower().isin(PLACEHOLDER_VALUES)
            expected = int((~as_missing).sum())
            if as_missing.any():
                missing = card[(card.source == source) & (card.field == field) & (card.rule == "not_null")]
                assert missing["failed"].sum() >= int(as_missing.sum()), (source, column, cls)
        hits = card[
            (card.source == source)
            & (card.field == field)
            & (card.dimension == dimension)
            & card.rule.isin(rule_names)
        ]
        assert hits["failed"].sum() >= expected, (source, column, cls, expected, hits.to_dict("records"))
        assert expected == 0 or hits["failed"].sum() > 0

    # every ingest reject is in the scorecard, and the clean sample raises no false duplicate persons
    rejects = ingest.all_rejects(results)
    counted = result.findings[result.findings["problem"].isin(rejects["reason"])]
    assert len(counted) == len(rejects)
    persons = card[card.rule == "duplicate_person"]
    assert persons["failed"].sum() <= 0.01 * (persons["passed"] + persons["failed"]).sum()
    accuracy = card[card.dimension == "accuracy"]
    assert len(accuracy) and (accuracy["failed"] == 0).all()  # the sample's cities match their postcodes
