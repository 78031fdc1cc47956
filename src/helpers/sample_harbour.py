"""The second sample company, "Harbour & Co": a British homeware shop whose exports look nothing like
the Spanish sample's (helpers.sample_data), with ground truth - for demos and tests only.

What is deliberately different: English column names; an ERP customer master exported to Excel with
two title rows, a blank row and a "Total accounts" footer; names surname-first ("SMITH, Jane") in the
ERP and given-first elsewhere; line-level invoices and web orders with quantity and unit price (no
amount column); cancelled web lines to filter out and returns as negative quantities; payment methods
as card brands; CSAT scores with out-of-range values; British postcodes, phones and VAT numbers; a few
Irish customers; amounts in pounds (GBP); no campaigns, no surveys, no opportunities, no catalogue.

Files (under the raw folder): erp/accounts.xlsx, erp/invoice_lines.csv, web/order_lines.csv,
helpdesk/tickets.json. Ground truth (under the truth folder): records.csv (source, source_id,
person_id for every party record), persons.csv (person_id, kind, names, trajectory) and defects.csv
(source, row_number, column, defect_class, value). Run it with `make report PARAMS=params/companies/harbour`.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

FORENAMES = (
    "Oliver George Harry Jack Jacob Noah Charlie Thomas Oscar William James Leo Alfie Henry Archie Joshua "
    "Olivia Amelia Isla Ava Emily Sophia Grace Mia Poppy Ella Lily Evie Isabella Jessica Sophie Chloe "
    "Margaret Susan David Paul Andrew Mark Richard Helen Sarah Claire Rachel Fiona Siobhan Aoife Niamh Sean"
).split()
SURNAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson Wright "
    "Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill "
    "Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis Parker "
    "Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller "
    "O'Brien Byrne Walsh McCarthy"
).split()
TOWNS = [
    ("London", ["SW1A", "EC1Y", "N1", "SE1", "W1A", "E14", "NW3"]),
    ("Manchester", ["M1", "M2", "M14", "M20"]),
    ("Bristol", ["BS1", "BS8", "BS16"]),
    ("Leeds", ["LS1", "LS6", "LS17"]),
    ("Glasgow", ["G1", "G12", "G41"]),
    ("Cardiff", ["CF10", "CF24"]),
    ("Brighton", ["BN1", "BN2"]),
    ("Norwich", ["NR1", "NR2"]),
]
IRISH = [("Dublin", ["D02 X285", "D04 C932", "D08 VF8H"]), ("Cork", ["T12 YX4E", "T23 K2V8"])]
GROUPS = {
    "Kitchen": [("KIT-01", "Cast iron casserole", 89.0), ("KIT-02", "Chef's knife", 45.0), ("KIT-03", "Linen tea towels", 12.0)],
    "Bedroom": [("BED-01", "Duvet cover set", 65.0), ("BED-02", "Wool throw", 79.0), ("BED-03", "Feather pillow", 29.0)],
    "Garden": [("GAR-01", "Terracotta planter", 24.0), ("GAR-02", "Bistro set", 149.0)],
    "Lighting": [("LIG-01", "Brass table lamp", 119.0), ("LIG-02", "Pendant shade", 38.0)],
    "Bath": [("BAT-01", "Waffle towel", 18.0), ("BAT-02", "Bath mat", 22.0)],
}  # fmt: skip
LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
CARD_LABELS = ["Visa", "VISA", "Mastercard", "MasterCard", "PayPal", "Paypal", "Bank Transfer", "Amex"]


def _vat(rng: np.random.Generator) -> str:
    """A valid UK VAT number (GB + 9 digits, mod-97 check) for a company."""
    from stdnum.gb import vat

    while True:
        base = f"{rng.integers(1_000_000, 9_999_999)}"
        for check in range(100):
            number = f"{base}{check:02d}"
            if vat.is_valid(number):
                return f"GB{number[:3]} {number[3:7]} {number[7:]}"


def _postcode(rng: np.random.Generator, outwards: list[str]) -> str:
    return (
        f"{rng.choice(outwards)} {rng.integers(0, 10)}{rng.choice(list(LETTERS))}{rng.choice(list(LETTERS))}"
    )


def _phone(rng: np.random.Generator, irish: bool = False) -> tuple[str, str]:
    """(as typed, E.164) of a made-up mobile number that phonenumbers accepts: UK 07xxx, Irish 08x."""
    import phonenumbers

    while True:
        if irish:
            national = f"08{rng.choice([3, 5, 6, 7, 9])}{rng.integers(1_000_000, 9_999_999)}"
            typed = rng.choice([f"{national[:3]} {national[3:6]} {national[6:]}", f"+353 {national[1:]}"])
            region = "IE"
        else:
            national = f"07{rng.choice([4, 5, 7, 8, 9])}{rng.integers(10_000_000, 99_999_999)}"
            typed = rng.choice(
                [f"{national[:5]} {national[5:]}", f"+44 {national[1:5]} {national[5:]}", national]
            )
            region = "GB"
        parsed = phonenumbers.parse(national, region)
        if phonenumbers.is_valid_number(parsed):
            return str(typed), phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        company = rng.random() < 0.15
        forename, surname = str(rng.choice(FORENAMES)), str(rng.choice(SURNAMES))
        irish = rng.random() < 0.04
        town, outwards = (IRISH if irish else TOWNS)[rng.integers(0, len(IRISH if irish else TOWNS))]
        postcode = str(rng.choice(outwards)) if irish else _postcode(rng, outwards)
        typed_phone, phone = _phone(rng, irish)
        local = f"{forename}.{surname}".lower().replace("'", "")
        domain = rng.choice(["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"])
        name = (
            f"{surname} {rng.choice(['Interiors', 'Hospitality', '& Sons', 'Design'])} Ltd"
            if company
            else None
        )
        rows.append(
            {
                "person_id": f"H{i + 1:05d}",
                "kind": "company" if company else "person",
                "forename": forename,
                "surname": surname,
                "company_name": name,
                "email": (f"accounts@{surname.lower().replace(chr(39), '')}{i}.co.uk" if company else f"{local}{i % 97}@{domain}"),
                "phone_typed": typed_phone,
                "phone": phone,
                "postcode": postcode,
                "town": town,
                "country": "Ireland" if irish else str(rng.choice(["United Kingdom", "UK", "England", "United Kingdom"])),
                "vat": _vat(rng) if company else None,
                "trajectory": str(rng.choice(["advancing", "stagnating", "regressing", "churned"], p=[0.25, 0.4, 0.2, 0.15])),
                "rate": float(rng.gamma(2.0, 0.35)) * (3 if company else 1),
                "erp": company or rng.random() < 0.45,
                "web": (not company and rng.random() < 0.75) or rng.random() < 0.1,
            }
        )  # fmt: skip
    people = pd.DataFrame(rows)
    none = ~people["erp"] & ~people["web"]
    people.loc[none, "web"] = True
    return people


def _monthly_factor(trajectory: str, m: int, months: int) -> float:
    x = m / max(months - 1, 1)
    return {
        "advancing": 0.4 + 1.2 * x,
        "stagnating": 1.0,
        "regressing": 1.5 - 1.2 * x,
        "churned": 1.4 if x < 0.55 else 0.0,
    }[trajectory]


def generate(
    raw_dir: Path,
    truth_dir: Path,
    *,
    customers: int = 1500,
    months: int = 18,
    end_date: str | date = "2026-11-10",
    seed: int = 42,
    progress: bool = False,
) -> dict:
    """Write Harbour & Co's exports and their ground truth; returns {"files": {relpath: rows},
    "source_records": total, "persons": n, "seconds": t}."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    for sub in ("erp", "web", "helpdesk"):
        (raw_dir / sub).mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    end = pd.Timestamp(end_date)
    start = (end - pd.DateOffset(months=months)).normalize()
    people = _people(rng, customers)
    records: list[dict] = []
    defects: list[dict] = []
    files: dict[str, int] = {}

    # ---- ERP customer master: Excel with a title, a blank row, the header on row 4, a total footer
    erp = people[people["erp"]].reset_index(drop=True)
    accounts = pd.DataFrame(
        {
            "Account No": [f"ACC-{i + 10001}" for i in range(len(erp))],
            "Account Name": np.where(
                erp["kind"] == "company", erp["company_name"], erp["surname"].str.upper() + ", " + erp["forename"]
            ),
            "Email Address": erp["email"],
            "Telephone": erp["phone_typed"],
            "Post Code": erp["postcode"],
            "Town": erp["town"],
            "Country": erp["country"],
            "VAT No": erp["vat"],
            "Marketing OK": rng.choice(["Y", "N"], size=len(erp), p=[0.6, 0.4]),
            "Opened": [(start - timedelta(days=int(d))).strftime("%d/%m/%Y") for d in rng.integers(30, 2000, len(erp))],
            "Credit Limit": np.where(erp["kind"] == "company", rng.choice([2500, 5000, 10000], len(erp)), 0),
            "Segment": np.where(erp["kind"] == "company", "TRADE", "RETAIL"),
        }
    )  # fmt: skip
    bad = rng.choice(len(accounts), size=max(1, len(accounts) // 150), replace=False)
    for i in bad:
        accounts.loc[i, "Email Address"] = str(accounts.loc[i, "Email Address"]).replace("@", " at ")
        defects.append({"source": "erp_accounts", "row_number": i + 1, "column": "Email Address",
                        "defect_class": "invalid_email", "value": accounts.loc[i, "Email Address"]})  # fmt: skip
    _write_accounts(accounts, raw_dir / "erp" / "accounts.xlsx", end)
    files["erp/accounts.xlsx"] = len(accounts)
    acc_of = dict(zip(erp["person_id"], accounts["Account No"], strict=True))
    records += [{"source": "erp_accounts", "source_id": a, "person_id": p} for p, a in acc_of.items()]

    # ---- purchases: ERP invoice lines for account customers, web order lines for web customers
    catalogue = [(g, sku, name, price) for g, items in GROUPS.items() for sku, name, price in items]
    inv_rows, web_rows = [], []
    web_people = people[people["web"]].reset_index(drop=True)
    web_of = {p: f"WEB-{i + 50001}" for i, p in enumerate(web_people["person_id"])}
    for person in people.itertuples(index=False):
        for m in range(months):
            month_start = start + pd.DateOffset(months=m)
            lam = person.rate * _monthly_factor(person.trajectory, m, months) * 0.5
            for _ in range(rng.poisson(lam)):
                day = month_start + pd.Timedelta(
                    days=int(rng.integers(0, 28)), hours=int(rng.integers(8, 21))
                )
                if day >= end:
                    continue
                lines = [
                    catalogue[k] for k in rng.choice(len(catalogue), size=rng.integers(1, 4), replace=False)
                ]
                via_erp = person.erp and (not person.web or rng.random() < 0.5)
                if via_erp:
                    _invoice(inv_rows, rng, acc_of[person.person_id], day, lines, end)
                else:
                    _web_order(web_rows, rng, person, web_of[person.person_id], day, lines)
    invoices = pd.DataFrame(inv_rows)
    for i in rng.choice(len(invoices), size=max(1, len(invoices) // 400), replace=False):
        invoices.loc[i, "Invoice Date"] = "31/02/2026"
        defects.append({"source": "erp_invoices", "row_number": i + 1, "column": "Invoice Date",
                        "defect_class": "invalid_date", "value": "31/02/2026"})  # fmt: skip
    invoices.to_csv(raw_dir / "erp" / "invoice_lines.csv", sep=";", index=False, encoding="utf-8")
    files["erp/invoice_lines.csv"] = len(invoices)
    web = pd.DataFrame(web_rows)
    dup = int(rng.choice(np.flatnonzero(web["Status"].to_numpy() == "Completed")))  # a line that is kept
    web = pd.concat([web.iloc[: dup + 1], web.iloc[[dup]], web.iloc[dup + 1 :]], ignore_index=True)
    for source in ("web_orders", "web_customers"):  # both read the file: each quarantines the copy
        defects.append(
            {
                "source": source,
                "row_number": dup + 2,
                "column": "*",
                "defect_class": "duplicate_row",
                "value": "",
            }
        )
    web.to_csv(raw_dir / "web" / "order_lines.csv", index=False, encoding="utf-8")
    files["web/order_lines.csv"] = len(web)
    records += [{"source": "web_customers", "source_id": w, "person_id": p} for p, w in web_of.items()]

    # ---- help desk tickets (JSON, nested requester), CSAT 1-5 with a few out-of-range values
    tickets = []
    for person in people.itertuples(index=False):
        for _ in range(rng.poisson(0.6)):
            opened = start + pd.Timedelta(days=float(rng.uniform(0, (end - start).days - 2)))
            minutes = float(np.round(rng.gamma(2.0, 12.0), 1))
            tickets.append(
                {
                    "id": f"T{len(tickets) + 1:06d}",
                    "requester": {"id": f"REQ-{person.person_id[1:]}", "name": f"{person.forename} {person.surname}",
                                  "email": person.email},
                    "channel": str(rng.choice(["email", "phone", "chat"])),
                    "created": opened.isoformat(timespec="seconds"),
                    "solved": (opened + pd.Timedelta(minutes=minutes * 20)).isoformat(timespec="seconds"),
                    "minutes": minutes,
                    "satisfaction": int(rng.choice([1, 2, 3, 4, 5], p=[0.06, 0.09, 0.2, 0.35, 0.3])),
                    "subject": str(rng.choice(["Delivery late", "Damaged item", "Change of address", "Invoice query", "Thank you"])),
                }
            )  # fmt: skip
    for i in rng.choice(len(tickets), size=max(1, len(tickets) // 100), replace=False):
        tickets[i]["satisfaction"] = 9
        defects.append({"source": "helpdesk_tickets", "row_number": i + 1, "column": "satisfaction",
                        "defect_class": "out_of_range", "value": "9"})  # fmt: skip
    (raw_dir / "helpdesk" / "tickets.json").write_text(
        json.dumps({"exported": end.isoformat(), "tickets": tickets}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    files["helpdesk/tickets.json"] = len(tickets)
    requesters = {t["requester"]["id"]: "H" + t["requester"]["id"][4:] for t in tickets}
    records += [
        {"source": "helpdesk_requesters", "source_id": r, "person_id": p} for r, p in requesters.items()
    ]

    pd.DataFrame(records).to_csv(truth_dir / "records.csv", index=False)
    people[["person_id", "kind", "forename", "surname", "company_name", "email", "trajectory"]].to_csv(
        truth_dir / "persons.csv", index=False
    )
    pd.DataFrame(defects, columns=["source", "row_number", "column", "defect_class", "value"]).to_csv(
        truth_dir / "defects.csv", index=False
    )
    return {
        "files": files,
        "source_records": int(sum(files.values())),
        "persons": len(people),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _invoice(
    rows: list, rng: np.random.Generator, account: str, day: pd.Timestamp, lines, end: pd.Timestamp
) -> None:
    number = f"INV{len(rows) + 700001}"
    due = day + pd.Timedelta(days=30)
    late = rng.choice([0, 0, 0, 5, 20, 45, 75])
    paid = due + pd.Timedelta(days=int(late))
    for k, (group, sku, _name, price) in enumerate(lines, start=1):
        qty = int(rng.integers(1, 6))
        rows.append(
            {
                "Invoice": number,
                "Line": f"{number}-{k}",
                "Account No": account,
                "Invoice Date": day.strftime("%d/%m/%Y"),
                "Due Date": due.strftime("%d/%m/%Y"),
                "Paid Date": paid.strftime("%d/%m/%Y") if paid < end else "",
                "Item": sku,
                "Group": group,
                "Qty": qty,
                "Net Price": f"{price * 0.8:.2f}",
            }
        )


def _web_order(rows: list, rng: np.random.Generator, person, ref: str, day: pd.Timestamp, lines) -> None:
    order = f"W{len(rows) + 100001}"
    status = rng.choice(["Completed", "Completed", "Completed", "Completed", "Cancelled"])
    payment = str(rng.choice(CARD_LABELS))
    for k, (group, sku, _name, price) in enumerate(lines, start=1):
        qty = int(rng.integers(1, 4))
        rows.append(
            {
                "Order Ref": order,
                "Line": k,
                "Line Ref": f"{order}-{k}",
                "Customer Ref": ref,
                "Customer Email": person.email,
                "Customer First Name": person.forename,
                "Customer Last Name": person.surname,
                "Ship Postcode": person.postcode,
                "Ship Country": "IE" if person.country == "Ireland" else "GB",
                "Order Date": day.isoformat(timespec="seconds"),
                "SKU": sku,
                "Product Group": group,
                "Qty": qty,
                "Unit Price": f"{price:.2f}",
                "Status": status,
                "Payment Method": payment,
            }
        )
    if status == "Completed" and rng.random() < 0.06:  # a return: the same line, negative quantity
        last = dict(rows[-1])
        last.update({"Line": len(lines) + 1, "Line Ref": f"{order}-R", "Qty": -1, "Status": "Returned",
                     "Order Date": (day + pd.Timedelta(days=int(rng.integers(3, 20)))).isoformat(timespec="seconds")})  # fmt: skip
        rows.append(last)


def _write_accounts(accounts: pd.DataFrame, path: Path, end: pd.Timestamp) -> None:
    """The customer master as the ERP exports it: title, export date, a blank row, the header on row 4,
    the accounts, and a 'Total accounts' footer."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Accounts"
    ws.append(["Harbour & Co - Customer accounts"])
    ws.append([f"Exported {datetime(end.year, end.month, end.day):%d %B %Y} by ERP"])
    ws.append([])
    ws.append(list(accounts.columns))
    for row in accounts.itertuples(index=False):
        ws.append([None if (isinstance(v, float) and np.isnan(v)) or v is None else v for v in row])
    ws.append([f"Total accounts: {len(accounts)}"])
    wb.save(path)
