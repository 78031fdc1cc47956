"""A sample company living through consecutive months (a test helper for test_life.py).

The generated sample holds 24 months of history at once. `SampleLife` keeps that full history aside
and, for each month, writes into ``data/raw/`` what the company's systems would have exported at the
start of the next month: invoices and web orders dated up to the end of the month (so that `scv run`
with no period picks that month, as the scheduled job does), plus what happened in between:

- new customers: a CRM contact and an ERP customer (same person: name, tax id, e-mail, phone) with an
  invoice in the month;
- changed details: existing CRM contacts moving house (street) and changing their e-mail;
- a late invoice: an ERP invoice line dated in an earlier month that was held back from that month's
  export and only arrives now.

It edits the raw files as text, line by line, so that the sample's injected defects (broken rows,
bad encodings) stay exactly as generated. Issue 19 will give `scv sample` a way to grow a sample day
by day; until then this helper is the only way a test lives through months.
"""

from __future__ import annotations

import calendar
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_DMY = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")


def month_end(period: str) -> date:
    year, month = (int(x) for x in period.split("-"))
    return date(year, month, calendar.monthrange(year, month)[1])


def dni(n: int) -> str:
    return f"{n:08d}{DNI_LETTERS[n % 23]}"


@dataclass
class NewCustomer:
    crm_id: str
    erp_id: str
    given: str
    family: str
    tax_id: str
    email: str
    phone: str


@dataclass
class SampleLife:
    root: Path
    #: ERP invoice lines held back from their month's export, keyed by the period they arrive in
    late: dict[str, list[str]] = field(default_factory=dict)
    new_customers: list[tuple[str, NewCustomer]] = field(default_factory=list)  # (arrives in, person)
    changed: dict[str, dict[str, str]] = field(default_factory=dict)  # CRM contact id -> new values

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def full(self) -> Path:
        return self.root / "data" / "full_history"

    def __post_init__(self) -> None:
        if not self.full.exists():
            shutil.copytree(self.raw, self.full)

    # --- what changes between months -------------------------------------------------------------

    def add_customers(self, period: str, n: int, start: int) -> list[NewCustomer]:
        """`n` new people in the CRM and the ERP, each with an invoice dated in `period`."""
        names = [("Lorena", "Quintana Albiol"), ("Teodoro", "Vallbona Saez"), ("Itziar", "Garmendia Roca")]
        added = []
        for i in range(start, start + n):
            given, family = names[i % len(names)]
            added.append(
                NewCustomer(
                    crm_id=f"CT-9{i:05d}",
                    erp_id=f"49{i:07d}",
                    given=given,
                    family=family,
                    tax_id=dni(71_000_000 + i * 7_919),
                    email=f"{given.lower()}.{i}@correo-nuevo.es",
                    phone=f"+34 699 {i % 1000:03d} {i % 97:03d}",
                )
            )
        self.new_customers += [(period, c) for c in added]
        return added

    def change_contacts(self, contacts: dict[str, dict[str, str]]) -> None:
        """New values for CRM contacts from now on, e.g. {"CT-000048": {"street": ..., "email": ...}}."""
        for contact, values in contacts.items():
            self.changed.setdefault(contact, {}).update(values)

    def hold_back_invoice(self, dated_in: str, arrives_in: str) -> str:
        """Hold back the last ERP invoice line dated in `dated_in` until `arrives_in`; its line id."""
        lines = self._lines(self.full / "erp" / "facturas.csv")
        first, last = month_end(dated_in).replace(day=1), month_end(dated_in)
        for line in reversed(lines[1:]):
            day = _invoice_date(line)
            if day is not None and first <= day <= last and line.count(";") == lines[0].count(";"):
                self.late.setdefault(arrives_in, []).append(line)
                return line.split(";")[1]
        raise AssertionError(f"no invoice dated in {dated_in}")

    # --- the export of one month -----------------------------------------------------------------

    def export(self, period: str) -> None:
        """Write data/raw/ as the systems would export it at the start of the month after `period`."""
        cutoff = month_end(period)
        held = {
            line for arrives, lines in self.late.items() if arrives > period for line in lines
        }  # not arrived yet
        # ERP invoices up to the cutoff (undated or broken lines stay: they are the sample's defects)
        lines = self._lines(self.full / "erp" / "facturas.csv")
        kept = [lines[0]] + [
            line
            for line in lines[1:]
            if line not in held and ((day := _invoice_date(line)) is None or day <= cutoff)
        ]
        customers = self._lines(self.full / "erp" / "clientes.csv")
        contacts = self._lines(self.full / "crm" / "contacts.csv", encoding="utf-8")
        contacts = contacts[:1] + [self._changed_contact(contacts[0], line) for line in contacts[1:]]
        for arrived, person in self.new_customers:
            if arrived > period:
                continue
            contacts.append(
                ",".join(
                    [
                        person.crm_id,
                        person.given,
                        person.family,
                        "",
                        person.tax_id,
                        person.email,
                        person.phone,
                        "1985-03-14",
                        "Calle Mayor 12",
                        "28013",
                        "Madrid",
                        "ES",
                        "true",
                        "false",
                        "false",
                        "false",
                        "Web",
                        "cfernandez",
                        f"{arrived}-05",
                        f"{arrived}-05",
                    ]
                )
            )
            customers.append(
                ";".join(
                    [
                        person.erp_id,
                        person.given,
                        person.family,
                        "",
                        person.tax_id,
                        "",
                        "Calle Mayor, 12",
                        "Calle Mayor, 12",
                        "28013",
                        "Madrid",
                        "Madrid",
                        "ES",
                        "EUR",
                        "transferencia",
                        person.phone,
                        person.email,
                        f"05/{arrived[5:]}/{arrived[:4]}",
                    ]
                )
            )
            when = f"12/{arrived[5:]}/{arrived[:4]}"
            kept.append(
                f"FN-{person.erp_id};FN-{person.erp_id}-1;{person.erp_id};{when};CAF-001;Cafetería;"
                f"Café en grano natural 1 kg;2;18,90;37,80;EUR;tienda;transferencia;{when};{when}"
            )
        self._write(self.raw / "erp" / "facturas.csv", kept)
        self._write(self.raw / "erp" / "clientes.csv", customers)
        self._write(self.raw / "crm" / "contacts.csv", contacts, encoding="utf-8")
        # web orders up to the cutoff
        orders = (self.full / "web" / "orders.jsonl").read_text(encoding="utf-8").split("\n")
        (self.raw / "web" / "orders.jsonl").write_text(
            "\n".join(line for line in orders if _order_day(line) is None or _order_day(line) <= cutoff),
            encoding="utf-8",
        )

    def _changed_contact(self, header: str, line: str) -> str:
        contact = line.split(",", 1)[0]
        if contact not in self.changed or '"' in line:
            return line
        names = header.split(",")
        cells = line.split(",")
        if len(cells) != len(names):
            return line
        for column, value in self.changed[contact].items():
            cells[names.index(column)] = value
        return ",".join(cells)

    @staticmethod
    def _lines(path: Path, encoding: str = "cp1252") -> list[str]:
        text = path.read_bytes().decode(encoding, errors="surrogateescape")
        return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")

    @staticmethod
    def _write(path: Path, lines: list[str], encoding: str = "cp1252") -> None:
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding, errors="surrogateescape"))


def _invoice_date(line: str) -> date | None:
    cells = line.split(";")
    m = _DMY.match(cells[3]) if len(cells) > 3 else None
    if not m:
        return None
    try:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None


def _order_day(line: str) -> date | None:
    try:
        return date.fromisoformat(str(json.loads(line)["created_at"])[:10])
    except (ValueError, KeyError, TypeError):
        return None
