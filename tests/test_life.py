"""The product's life: three consecutive monthly runs of the sample company, as the scheduler runs them.

Between the months (tests/life.py writes the systems' exports of each month): new customers arrive,
customers move house and change their e-mail, an invoice of the first month arrives late, and a
person is erased (`scv erase`). Each month is one `scv run` without a period (the last complete
month in the data, as `make report` picks it), the last one with `--render`. Then month 2 is run
again, as an analyst re-running an older month would.

Checked: every run exits 0 and picks the expected month; customer ids are stable for everybody whose
records did not change, and for the people who moved; the erased person is gone and their id never
comes back; the late invoice is in month 2 and month 1 is untouched; every store table has plain
column types (no ENUM, whatever pandas handed over); and the re-run of month 2 leaves every table
slice, file and report of month 3 exactly as it was, and `reports/latest` on month 3.

The whole life costs four pipeline runs and one rendering on the small sample (about as much as the
end-to-end test and the determinism test together); it runs in its own xdist group, beside them.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.life import SampleLife
from tests.test_determinism import content_digests, frame_digest, project_copy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("life")]

MONTHS = ["2026-08", "2026-09", "2026-10"]


def scv(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SCV_ROOT"}
    return subprocess.run(
        [sys.executable, "-m", "helpers.cli", *args],
        cwd=root,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def store_state(root: Path) -> dict:
    """Per table: its column types, and the digest of each period's slice."""
    with duckdb.connect(str(root / "data" / "processed" / "scv.duckdb"), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        state = {}
        for table in sorted(tables):
            types = {r[0]: r[1] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
            slices = {}
            if "period" in types:
                frame = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').df()
                for period, part in frame.groupby("period", sort=True):
                    slices[period] = slice_digest(part)
            state[table] = {"types": types, "slices": slices}
        return state


def slice_digest(part: pd.DataFrame) -> str:
    """The digest of one period's rows, blind to what another period's save may do to the column types
    (a column null in every row of this period, an integer column widened to decimals): the values."""
    part = part.dropna(axis=1, how="all").reset_index(drop=True)
    for column in part.columns:
        if pd.api.types.is_numeric_dtype(part[column]) and not pd.api.types.is_bool_dtype(part[column]):
            part[column] = part[column].astype("float64")
    return frame_digest(part)


def crosswalk(root: Path) -> pd.DataFrame:
    with duckdb.connect(str(root / "data" / "processed" / "scv.duckdb"), read_only=True) as con:
        return con.execute("SELECT period, source, source_id, customer_id FROM crosswalk").df()


def movers(raw: Path, n: int = 2) -> dict[str, dict[str, str]]:
    """n CRM contacts (people with an e-mail, on a line without quotes) and their new street and e-mail."""
    text = (raw / "crm" / "contacts.csv").read_text(encoding="utf-8")
    header = text.split("\n", 1)[0].split(",")
    picked = {}
    for line in text.split("\n")[1:]:
        cells = next(csv.reader(io.StringIO(line)), [])
        if '"' in line or len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        if row["email"] and row["first_name"] and row["tax_id"] and not row["account_name"]:
            i = len(picked) + 1
            picked[row["contact_id"]] = {
                "street": f"Calle del Traslado {i}",
                "email": f"mudanza.{i}@correo-nuevo.es",
            }
        if len(picked) == n:
            return picked
    raise AssertionError("no contact to move")


@pytest.fixture(scope="module")
def lived(sample_project, tmp_path_factory) -> dict:
    root = project_copy(sample_project, tmp_path_factory.mktemp("life"))
    life = SampleLife(root)
    out: dict = {"root": root, "runs": {}, "seconds": {}, "state": {}, "crosswalk": {}}

    def month(period: str, *args: str) -> None:
        life.export(period)
        t0 = time.perf_counter()
        done = scv(root, "run", *args)
        out["seconds"][period] = round(time.perf_counter() - t0, 1)
        out["runs"][period] = done
        assert done.returncode == 0, f"{period}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        out["state"][period] = store_state(root)
        out["crosswalk"][period] = crosswalk(root)

    out["late"] = life.hold_back_invoice("2026-08", arrives_in="2026-09")
    month(MONTHS[0])
    out["new_1"] = life.add_customers("2026-09", 3, start=1)
    out["movers"] = movers(root / "data" / "raw")
    life.change_contacts(out["movers"])
    month(MONTHS[1])
    out["erased"] = out["new_1"][0]
    erase = scv(root, "erase", "--id", "-", "--reason", "request 2026/117", input=out["erased"].email + "\n")
    assert erase.returncode == 0, erase.stderr
    out["new_2"] = life.add_customers("2026-10", 2, start=4)
    month(MONTHS[2], "--render")
    out["month_3_files"] = {k: v for k, v in content_digests(root).items() if k.startswith("2026-10/")}
    out["latest"] = os.readlink(root / "reports" / "latest")
    t0 = time.perf_counter()
    out["rerun"] = scv(root, "run", "--period", "2026-09")
    out["seconds"]["rerun 2026-09"] = round(time.perf_counter() - t0, 1)
    out["state_after_rerun"] = store_state(root)
    out["month_3_files_after_rerun"] = {
        k: v for k, v in content_digests(root).items() if k.startswith("2026-10/")
    }
    print(f"\nlife of the sample company, seconds per run: {out['seconds']}")
    return out


def test_each_month_runs_as_the_scheduler_runs_it(lived):
    for period in MONTHS:
        assert f"period: {period} (the last complete month in the data)" in lived["runs"][period].stdout
    run_3 = lived["root"] / "reports" / "2026-10" / "v1"
    assert (run_3 / "executive.pdf").exists() and (run_3 / "cards").is_dir()
    assert lived["rerun"].returncode == 0, lived["rerun"].stderr[-3000:]


def test_every_store_table_has_plain_types(lived):
    for period, state in [*lived["state"].items(), ("rerun", lived["state_after_rerun"])]:
        enums = {(t, c): kind for t, s in state.items() for c, kind in s["types"].items() if "ENUM" in kind}
        assert not enums, f"after {period}: {enums}"
    tables = lived["state_after_rerun"]
    assert {"provenance", "match_pairs", "crosswalk", "customers"} <= set(tables)


def test_customer_ids_are_stable_for_people_whose_records_did_not_change(lived):
    one, two, three = (lived["crosswalk"][p] for p in MONTHS)
    movers = {("crm_contacts", c) for c in lived["movers"]}
    for earlier, later, label in ((one, two, "month 1 -> 2"), (two, three, "month 2 -> 3")):
        earlier = earlier[earlier["period"] == earlier["period"].max()]
        later = later[later["period"] == later["period"].max()]
        both = earlier.merge(later, on=["source", "source_id"], suffixes=("_before", "_after"))
        assert len(both) > 500 and movers <= set(zip(both["source"], both["source_id"], strict=True)), label
        moved = both[both["customer_id_before"] != both["customer_id_after"]]
        # everybody keeps their id: the people who did not change and the ones who moved house
        assert moved.empty, (
            f"{label}: {len(moved)} of {len(both)} records changed customer:\n{moved.head(10)}"
        )


def test_new_customers_get_new_ids_and_the_erased_person_is_gone(lived):
    two, three = lived["crosswalk"]["2026-09"], lived["crosswalk"]["2026-10"]
    two, three = two[two["period"] == "2026-09"], three[three["period"] == "2026-10"]
    earlier_ids = set(lived["crosswalk"]["2026-08"]["customer_id"])
    for people, frame in ((lived["new_1"][1:], three), (lived["new_2"], three)):
        for person in people:
            ids = set(frame.loc[frame["source_id"].isin([person.crm_id, person.erp_id]), "customer_id"])
            assert len(ids) == 1 and not ids & earlier_ids, (person, ids)  # one new customer each
    erased = lived["erased"]
    erased_id = set(two.loc[two["source_id"] == erased.crm_id, "customer_id"])
    assert len(erased_id) == 1, "the person to erase had a customer id in month 2"
    now = lived["crosswalk"]["2026-10"]  # every period's slice, after the erasure
    assert not now["source_id"].isin([erased.crm_id, erased.erp_id]).any(), "erased from every period"
    assert not erased_id & set(now["customer_id"]), "the erased customer's id is never issued again"
    staged = pd.read_parquet(
        lived["root"] / "data" / "processed" / "2026-10" / "staged" / "crm_contacts.parquet"
    )
    assert erased.email not in set(staged["email"].dropna()) and erased.tax_id not in set(
        staged["tax_id"].dropna()
    )
    rejected = pd.read_parquet(
        lived["root"] / "data" / "processed" / "2026-10" / "rejected" / "crm_contacts.parquet"
    )
    assert "erased" in set(rejected["reason"]), "month 3 quarantines the erased person's records"


def test_the_late_invoice_lands_in_month_2_and_month_1_is_untouched(lived):
    base = lived["root"] / "data" / "processed"
    month_1 = pd.read_parquet(base / "2026-08" / "staged" / "erp_invoices.parquet")
    month_2 = pd.read_parquet(base / "2026-09" / "staged" / "erp_invoices.parquet")
    assert lived["late"] not in set(month_1["source_id"]) and lived["late"] in set(month_2["source_id"])
    assert month_2.loc[month_2["source_id"] == lived["late"], "date"].dt.strftime("%Y-%m").tolist() == [
        "2026-08"
    ]
    before, after = lived["state"]["2026-08"], lived["state"]["2026-09"]
    for table, state in before.items():
        if "2026-08" in state["slices"]:
            assert after[table]["slices"].get("2026-08") == state["slices"]["2026-08"], table


def test_rerunning_month_2_leaves_month_3_intact(lived):
    before, after = lived["state"]["2026-10"], lived["state_after_rerun"]
    compared = 0
    for table, state in before.items():
        if "2026-10" in state["slices"]:
            assert after[table]["slices"].get("2026-10") == state["slices"]["2026-10"], table
            compared += 1
    assert compared >= 20, compared
    assert lived["month_3_files_after_rerun"] == lived["month_3_files"]
    assert len(lived["month_3_files"]) >= 30
    assert os.readlink(lived["root"] / "reports" / "latest") == lived["latest"] == "2026-10/v1"
