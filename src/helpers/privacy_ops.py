"""Erasure of a person and the suppression list that keeps them out of later runs (DESIGN.md, "Privacy").

`erase` resolves a tax id, an e-mail or a customer id to the customer(s) it names, and then, for every
period on disk:

- in ``staged/`` the person's records (their party records and every record pointing at one) become
  row rejects with reason ``erased`` and an empty value in ``rejected/`` (so rows read = staged +
  rejected still holds), their field rejects go, and rejected values mentioning them are blanked;
- every other Parquet/CSV file under ``data/processed/<period>/`` loses the rows keyed to them
  (customer id, source record, row) and any cell that mentions one of their identifiers;
- in the store the same happens to every table inside one transaction, the ingest accounting is
  adjusted, and the database file is rebuilt so that no deleted row survives in free pages.

Their identifiers (tax ids, e-mails, phones, IBANs, source keys) go to ``data/suppression/suppressed.csv``
as salted SHA-256 digests (the salt is a per-installation secret in ``data/suppression/salt``), which
ingest reads to drop matching records as ``erased`` rejects, so that the next run does not bring them
back from the raw files. An identifier that other customers share (a family e-mail) is not suppressed,
and reported. ``data/suppression/audit_log.jsonl`` records each erasure: when, why, an erasure id and
counts, never an identifier or a customer id. Reports rendered before the erasure are not touched
(they are versioned records of what was published); later reports are built without the person.

``data/suppression/`` sits beside ``data/raw/`` (``paths.raw``'s parent), is kept by ``make clean`` and
ignores itself in git. Back up the salt with the list: without it the digests match nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import standardise as std
from helpers import store
from helpers.errors import ScvError

SUPPRESSION_FOLDER = "suppression"
SALT_FILE = "salt"
LIST_FILE = "suppressed.csv"
AUDIT_FILE = "audit_log.jsonl"
LIST_COLUMNS = ["erasure_id", "kind", "digest"]
#: Identifier columns of a party record that are suppressed when their owner is erased.
IDENTIFIER_COLUMNS = ("tax_id", "email", "phone", "iban")
ERASED = "[erased]"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ErasureError(ScvError):
    """The identifier to erase names nobody, or more than one customer."""


def suppression_dir(raw_dir: Path) -> Path:
    """data/suppression/, beside data/raw/ (kept by `make clean`)."""
    return Path(raw_dir).parent / SUPPRESSION_FOLDER


# ---------------------------------------------------------------------------------------------------
# The suppression list
# ---------------------------------------------------------------------------------------------------


class Suppression:
    """Salted digests of erased identifiers; tells ingest which records to drop."""

    def __init__(self, salt: bytes, digests: Iterable[str] = ()) -> None:
        self.salt = salt
        self.digests: set[str] = set(digests)

    def digest(self, kind: str, value: object) -> str:
        return hashlib.sha256(self.salt + f"{kind}\x00{value}".encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.digests)

    def _hit(self, kind: str, values: pd.Series) -> np.ndarray:
        if not self.digests or not len(values):
            return np.zeros(len(values), dtype=bool)
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
        listed = np.array(
            [str(u) != "" and self.digest(kind, u) in self.digests for u in uniques] + [False], dtype=bool
        )
        return listed[codes]

    def party_mask(self, source: str, staged: pd.DataFrame) -> np.ndarray:
        """Party records whose source key or any standardised identifier is suppressed."""
        hit = self._hit("source_key", source + "|" + staged["source_id"].astype("string").fillna(""))
        for col in IDENTIFIER_COLUMNS:
            if col in staged:
                hit |= self._hit(col, staged[col])
        return hit

    def reference_mask(self, staged: pd.DataFrame) -> np.ndarray:
        """Records (transactions, tickets, ...) pointing at a suppressed party record."""
        if "party_source" not in staged or "party_id" not in staged:
            return np.zeros(len(staged), dtype=bool)
        keys = (
            staged["party_source"].astype("string").fillna("")
            + "|"
            + staged["party_id"].astype("string").fillna("")
        )
        return self._hit("source_key", keys)

    def add_source_keys(self, source: str, source_ids: Iterable[object]) -> None:
        """Suppress these party records for the rest of the run (their transactions follow them)."""
        self.digests.update(self.digest("source_key", f"{source}|{sid}") for sid in source_ids)

    def mentions(self, texts: pd.Series) -> np.ndarray:
        """Which free texts (malformed raw lines) hold a suppressed e-mail, tax id, phone or IBAN."""
        hit = np.zeros(len(texts), dtype=bool)
        if not self.digests or not len(texts):
            return hit
        values = texts.astype(object).to_numpy()
        for kind, pattern, standardise in _TOKENS:
            owners, tokens = [], []
            for i, text in enumerate(values):
                if isinstance(text, str) and text:
                    found = pattern.findall(text)
                    owners.extend([i] * len(found))
                    tokens.extend(found)
            if tokens:
                standard = standardise(pd.Series(tokens, dtype=object), placeholders=()).value
                listed = self._hit(kind, standard)
                hit[np.asarray(owners)[listed]] = True
        return hit


_EMAIL_TOKEN = re.compile(r"[^\s\"'<>,;:()\[\]{}]+@[^\s\"'<>,;:()\[\]{}]+")
_TAX_TOKEN = re.compile(
    r"(?<![0-9A-Za-z])[0-9XYZKLMABCDEFGHJNPQRSUVW][0-9.\- ]{6,10}[0-9A-Za-z](?![0-9A-Za-z])"
)
_PHONE_TOKEN = re.compile(r"(?<![\w])\+?[\d][\d .\-()]{7,16}\d(?![\w])")
_IBAN_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){10,30}")


_TOKENS = (
    ("email", _EMAIL_TOKEN, std.email),
    ("tax_id", _TAX_TOKEN, std.tax_id),
    ("phone", _PHONE_TOKEN, std.phone),
    ("iban", _IBAN_TOKEN, std.iban),
)


#: Capitalised words a reason may keep: the words of a request, not of a person (a name, a street).
REASON_WORDS = {
    w.lower()
    for w in """
    request requests requested solicitud solicita solicitó petición peticion erasure erase supresión
    supresion suprimir borrado borrar derecho right rights art art. article artículo articulo ticket
    case caso expediente ref ref. reference referencia número numero no no. nº per por the el la los
    las un una de del by from via customer cliente email e-mail correo phone teléfono telefono letter
    carta form formulario web online call llamada registered registrado on en at a an of to and y
    received recibida recibido january february march april may june july august september october
    november december enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre
    noviembre diciembre monday tuesday wednesday thursday friday saturday sunday lunes martes miércoles
    jueves viernes sábado domingo dpo legal team equipo privacy privacidad data datos protection
    protección proteccion office oficina consent consentimiento withdrawn retirado
    """.split()
}
ACRONYMS = {
    "GDPR", "RGPD", "LOPD", "LOPDGDD", "ARCO", "DPO", "AEPD", "CCPA", "UE", "EU", "ID", "NIF", "NIE", "CIF",
    "DNI", "IBAN", "CRM", "ERP", "TEL",
}  # fmt: skip
_NOT_IN_A_REFERENCE = r"(?<![\w/\-])"
_REASON_REPLACEMENTS = (
    (_EMAIL_TOKEN, "[e-mail]"),
    (re.compile(_NOT_IN_A_REFERENCE + r"[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){10,30}"), "[iban]"),
    (re.compile(_NOT_IN_A_REFERENCE + r"\+?\d[\d .\-()]{7,16}\d(?![\w/\-])"), "[phone]"),
    (
        re.compile(
            _NOT_IN_A_REFERENCE + r"[0-9XYZKLMABCDEFGHJNPQRSUVW][0-9.\- ]{6,10}[0-9A-Za-z](?![\w/\-])"
        ),
        "[tax id]",
    ),
)
_WORD = re.compile(r"(?<![\w\[])[^\W\d_][\w'’.-]*", re.UNICODE)


def scrub_reason(reason: str | None) -> str | None:
    """An erasure's reason as the audit log keeps it: e-mails, IBANs, tax ids and phone numbers
    replaced by their kind ("[phone]"), and every capitalised word that is not a request's own word or
    a known acronym replaced by "[name]" (it may be a name, a street, a town). A request reference such
    as "request 2026/117" or "RGPD-2026-0042" is kept as written."""
    if not reason:
        return reason
    text = reason
    for pattern, kind in _REASON_REPLACEMENTS:
        # an identifier has an @ or seven digits or more; "art. 17" or "2026/117" are not one
        text = pattern.sub(
            lambda m, k=kind: k if "@" in m[0] or sum(map(str.isdigit, m[0])) >= 7 else m[0], text
        )

    def word(m: re.Match[str]) -> str:
        token = m.group()
        core = token.rstrip(".-’'")
        if not core[:1].isupper():
            return token
        if core.upper() == core and (
            core in ACRONYMS or any(part in ACRONYMS for part in re.split(r"[-.]", core))
        ):
            return token
        if core.lower() in REASON_WORDS or core.lower().rstrip(".") in REASON_WORDS:
            return token
        return "[name]" + token[len(core) :]

    return _WORD.sub(word, text)


def reason_digest(reason: str | None, salt: bytes | None) -> str | None:
    """A salted SHA-256 of the reason as typed: whoever holds the original request text can show which
    audit entry it is, and the log itself holds nothing readable."""
    if not reason:
        return None
    return hashlib.sha256((salt or b"") + b"reason\x00" + reason.encode("utf-8")).hexdigest()


def _salt(folder: Path, create: bool) -> bytes | None:
    path = folder / SALT_FILE
    if path.exists():
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())
    if not create:
        return None
    _ensure_folder(folder)
    with store.atomic_path(path) as tmp:
        tmp.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())


def _ensure_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():  # the salt, the digests and the audit log never go to git
        ignore.write_text(
            "# personal-data controls of this installation: never committed\n*\n", encoding="utf-8"
        )


def load_suppression(folder: Path) -> Suppression | None:
    """The suppression list in `folder` (data/suppression/), or None when nobody was ever erased."""
    folder = Path(folder)
    listed = folder / LIST_FILE
    if not listed.exists():
        return None
    salt = _salt(folder, create=False)
    if salt is None:
        raise ScvError(
            f"{listed} exists but {folder / SALT_FILE} is missing: without the salt the suppression "
            "list matches nobody; restore the salt from your backup"
        )
    with open(listed, newline="", encoding="utf-8") as fh:
        digests = [row["digest"] for row in csv.DictReader(fh)]
    return Suppression(salt, digests)


# ---------------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    """What an erasure did, in counts (this is what the audit log keeps)."""

    erasure_id: str
    identifier_kind: str
    customers: int = 0
    source_records: int = 0
    identifiers_suppressed: int = 0
    shared_identifiers_not_suppressed: int = 0
    staged_rows_erased: int = 0
    staged_records_erased: int = 0
    reject_values_blanked: int = 0
    file_rows_deleted: int = 0
    file_cells_blanked: int = 0
    files_rewritten: int = 0
    store_rows_deleted: int = 0
    store_cells_blanked: int = 0
    stale_temporaries_removed: int = 0
    periods: list[str] = field(default_factory=list)


@dataclass
class _Person:
    customer_ids: set[str]
    party_keys: set[tuple[str, str]]  # (source, source_id) of their party records
    keys: set[tuple[str, str]]  # every record of theirs: party records and records pointing at them
    rows: set[tuple[str, str, int]]  # (period, source, row_number) of their staged rows
    identifiers: dict[str, set[str]]  # kind -> standardised values (not shared with other customers)
    shared: dict[str, set[str]] = field(default_factory=dict)  # kind -> values other customers hold too

    def _literals(self) -> list[str]:
        literals = {v for vs in self.identifiers.values() for v in vs if len(v) >= 6}
        literals |= {c for c in self.customer_ids if len(c) >= 4}
        for phone in self.identifiers.get("phone", ()):
            if phone.startswith("+34") and len(phone) == 12:
                literals.add(phone[3:])  # the national form a raw file may hold
        return sorted(literals, key=lambda v: (-len(v), v))

    def pattern(self) -> str | None:
        """A regex (RE2 for DuckDB, and Python) finding any of their identifiers or customer ids in text."""
        literals = self._literals()
        if not literals:
            return None
        body = "|".join(re.escape(v) for v in literals)
        return rf"(?i)(?:^|[^0-9A-Za-z@._+-])(?:{body})(?:$|[^0-9A-Za-z@_-])"

    def scrub(self, text: str | None) -> str | None:
        """`text` with each of their identifiers replaced by "[erased]"."""
        literals = self._literals()
        if not text or not literals:
            return text
        body = "|".join(re.escape(v) for v in literals)
        return re.sub(rf"(?i)(?<![0-9A-Za-z@._+-])(?:{body})(?![0-9A-Za-z@_-])", ERASED, text)


def _periods(processed: Path) -> list[str]:
    return (
        sorted(p.name for p in Path(processed).iterdir() if p.is_dir() and PERIOD.match(p.name))
        if Path(processed).exists()
        else []
    )


def _read_staged(processed: Path, periods: list[str]) -> pd.DataFrame:
    """Every staged record of every period (lineage, keys and identifier columns only)."""
    wanted = [
        "source",
        "record_id",
        "row_number",
        "source_id",
        "party_source",
        "party_id",
        *IDENTIFIER_COLUMNS,
    ]
    frames = []
    for period in periods:
        for path in sorted((Path(processed) / period / "staged").glob("*.parquet")):
            frame = pd.read_parquet(path)
            frame = frame[[c for c in wanted if c in frame]].copy()
            frame["period"] = period
            frame["party"] = "party_id" not in frame
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*wanted, "period", "party"])
    out = pd.concat(frames, ignore_index=True)
    for col in wanted:
        if col not in out:
            out[col] = None
    return out.astype({c: "string" for c in wanted if c != "row_number"})


def _kind_of(identifier: str, kind: str | None, known_ids: set[str]) -> tuple[str, str]:
    """(kind, standardised value) of what the user typed."""
    text = identifier.strip()
    if kind is None:
        kind = "customer_id" if text in known_ids else ("email" if "@" in text else "tax_id")
    if kind == "customer_id":
        return kind, text
    standardise = {"email": std.email, "tax_id": std.tax_id}[kind]
    value = standardise(pd.Series([text], dtype=object), placeholders=()).value.iloc[0]
    if value is None or value is pd.NA:
        raise ErasureError(
            f"the {kind.replace('_', ' ')} given is not valid, so it can name nobody; check it, "
            "or pass --kind customer_id for a customer id"
        )
    return kind, str(value)


def _linked_to(keys: Iterable[tuple[str, str]], crosswalk: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """The customer ids each source record is linked to (in any period)."""
    wanted = set(keys)
    owners: dict[tuple[str, str], set[str]] = {}
    if len(crosswalk):
        for s, sid, cid in zip(
            crosswalk["source"], crosswalk["source_id"], crosswalk["customer_id"], strict=True
        ):
            if (s, sid) in wanted:
                owners.setdefault((s, sid), set()).add(cid)
    return owners


def _with_records(person: _Person, staged: pd.DataFrame) -> _Person:
    """Fill in the records pointing at the person's party records, and the rows of both."""
    parties = staged[staged["party"]]
    party_rows = parties[
        [k in person.party_keys for k in zip(parties["source"], parties["source_id"], strict=True)]
    ]
    others = staged[~staged["party"]]
    pointing = others[
        [k in person.party_keys for k in zip(others["party_source"], others["party_id"], strict=True)]
    ]
    person.keys = person.party_keys | set(zip(pointing["source"], pointing["source_id"], strict=True))
    person.rows = {
        (p, s, int(r))
        for frame in (party_rows, pointing)
        for p, s, r in zip(frame["period"], frame["source"], frame["row_number"], strict=True)
    }
    return person


def _resolve(
    kind: str, value: str, staged: pd.DataFrame, crosswalk: pd.DataFrame, customers: pd.DataFrame
) -> _Person:
    """The person an identifier names: their customer id(s), source records and identifiers.

    Their source records are those linked to their customer id, plus those holding the identifier
    given, plus records not linked to anyone that hold one of their identifiers (the next run would
    drop those anyway). An identifier that a record of another customer holds is shared: it is kept
    apart (`shared`), neither suppressed nor blanked.
    """
    parties = staged[staged["party"]]

    def holding(col: str, values: set[str]) -> set[tuple[str, str]]:
        if col not in parties or not values:
            return set()
        hits = parties[parties[col].isin(values).fillna(False).to_numpy(dtype=bool)]
        return set(zip(hits["source"], hits["source_id"], strict=True))

    if kind == "customer_id":
        known = set(crosswalk.get("customer_id", [])) | set(customers.get("customer_id", []))
        ids, direct = ({value} if value in known else set()), set()
    else:
        direct = holding(kind, {value})
        ids = set().union(*_linked_to(direct, crosswalk).values()) if direct else set()
        if kind in customers:
            ids |= set(
                customers.loc[customers[kind].eq(value).fillna(False).to_numpy(dtype=bool), "customer_id"]
            )
    if not ids and not direct:
        raise ErasureError(
            f"no customer or source record has that {kind.replace('_', ' ')}; nothing was erased"
        )
    if len(ids) > 1:
        raise ErasureError(
            f"that {kind.replace('_', ' ')} belongs to {len(ids)} customers ({', '.join(sorted(ids))}); "
            "erase each person by customer id (`--id <customer id>`) after checking who asked"
        )
    party_keys = set(direct)
    if len(crosswalk):
        mine = crosswalk[crosswalk["customer_id"].isin(ids)]
        party_keys |= set(zip(mine["source"], mine["source_id"], strict=True))
    party_rows = parties[[k in party_keys for k in zip(parties["source"], parties["source_id"], strict=True)]]
    golden = customers[customers["customer_id"].isin(ids)] if len(customers) else customers
    linked_anywhere = (
        set(zip(crosswalk["source"], crosswalk["source_id"], strict=True)) if len(crosswalk) else set()
    )
    identifiers: dict[str, set[str]] = {}
    shared: dict[str, set[str]] = {}
    for col in IDENTIFIER_COLUMNS:
        values = {str(v) for v in party_rows[col].dropna()} if col in party_rows else set()
        if col in golden:
            values |= {str(v) for v in golden[col].dropna()}
        if col == kind:
            values.add(value)
        values.discard("")
        others = set()
        if col in customers and len(customers):
            others = set(customers.loc[~customers["customer_id"].isin(ids), col].dropna().astype(str))
        owners = _linked_to(holding(col, values), crosswalk)
        for key, linked in owners.items():
            if linked - ids:
                others |= {
                    str(v)
                    for v in parties.loc[
                        (parties["source"] == key[0]).fillna(False)
                        & (parties["source_id"] == key[1]).fillna(False),
                        col,
                    ].dropna()
                }
        shared[col] = (values & others) - ({value} if col == kind else set())
        identifiers[col] = values - shared[col]
        # records linked to nobody that hold one of their (unshared) identifiers are theirs too
        unlinked = {k for k in holding(col, identifiers[col]) if k not in linked_anywhere}
        party_keys |= unlinked
    person = _Person(ids, party_keys, set(), set(), identifiers)
    person.shared = shared
    return _with_records(person, staged)


def _append_suppression(folder: Path, erasure_id: str, entries: list[tuple[str, str]]) -> int:
    salt = _salt(folder, create=True)
    suppression = Suppression(salt)
    listed = folder / LIST_FILE
    old = (
        pd.read_csv(listed, dtype=str, keep_default_na=False)
        if listed.exists()
        else pd.DataFrame(columns=LIST_COLUMNS)
    )
    new = pd.DataFrame(
        [(erasure_id, kind, suppression.digest(kind, value)) for kind, value in sorted(set(entries))],
        columns=LIST_COLUMNS,
    )
    new = new[~new["digest"].isin(set(old["digest"]))]
    combined = pd.concat([old, new], ignore_index=True)
    with store.atomic_path(listed) as tmp:
        combined.to_csv(tmp, index=False)
    return len(new)


def _row_mask(frame: pd.DataFrame, person: _Person, period: str | None) -> np.ndarray:
    """Rows keyed to the person: by customer id, by source record, or by (source, row) of a period."""
    hit = np.zeros(len(frame), dtype=bool)
    for col in ("customer_id", "new_id"):
        if col in frame:
            hit |= frame[col].astype("string").isin(person.customer_ids).fillna(False).to_numpy()
    for s_col, id_col in (
        ("source", "source_id"),
        ("source_a", "source_id_a"),
        ("source_b", "source_id_b"),
        ("party_source", "party_id"),
    ):
        if s_col in frame and id_col in frame:
            keys = person.keys if s_col != "party_source" else person.party_keys
            pairs = zip(frame[s_col].astype("string"), frame[id_col].astype("string"), strict=True)
            hit |= np.fromiter(((s, i) in keys for s, i in pairs), dtype=bool, count=len(frame))
    if "source" in frame and "row_number" in frame:
        periods = (
            frame["period"].astype("string") if "period" in frame else pd.Series(period, index=frame.index)
        )
        triples = zip(
            periods,
            frame["source"].astype("string"),
            pd.to_numeric(frame["row_number"], errors="coerce"),
            strict=True,
        )
        hit |= np.fromiter(
            ((p, s, int(r)) in person.rows if r == r else False for p, s, r in triples),
            dtype=bool,
            count=len(frame),
        )
    return hit


def _blank_mentions(frame: pd.DataFrame, pattern: str | None) -> tuple[pd.DataFrame, int]:
    """Cells of text columns that mention an identifier of the person become "[erased]"."""
    if pattern is None or not len(frame):
        return frame, 0
    blanked = 0
    for col in frame.columns:
        s = frame[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
            continue
        hit = s.astype("string").str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)
        if hit.any():
            frame = frame.copy() if blanked == 0 else frame
            frame[col] = s.astype(object).where(~hit, ERASED)
            if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
                frame[col] = frame[col].astype(s.dtype)
            blanked += int(hit.sum())
    return frame, blanked


def _erase_period_files(
    processed: Path, period: str, person: _Person, sources: dict, raw_dir: Path, report: ErasureReport
) -> pd.DataFrame:
    """Rewrite the period's files; returns the accounting change per source."""
    base = Path(processed) / period
    pattern = person.pattern()
    changes = []
    staged_dir, rejected_dir = base / "staged", base / "rejected"
    for staged_path in sorted(staged_dir.glob("*.parquet")) if staged_dir.exists() else []:
        name = staged_path.stem
        staged = pd.read_parquet(staged_path)
        rows = {(period, name, r) for r in staged["row_number"].astype(int)} & person.rows
        erased_rows = sorted(r for _, _, r in rows)
        rejected_path = rejected_dir / f"{name}.parquet"
        rejects = pd.read_parquet(rejected_path) if rejected_path.exists() else None
        field_removed = 0
        if erased_rows or (rejects is not None and pattern):
            keep = ~staged["row_number"].isin(erased_rows)
            records = int((~keep).sum())
            if erased_rows:
                store.write_parquet(staged[keep].reset_index(drop=True), staged_path)
                report.files_rewritten += 1
            if rejects is not None:
                gone = rejects["row_number"].isin(erased_rows)
                field_removed = int((gone & (rejects["action"] == "field")).sum())
                file = _file_of(sources, name, raw_dir)
                added = pd.DataFrame(
                    {
                        "source": name,
                        "file": file,
                        "row_number": pd.array(erased_rows, dtype="int64"),
                        "column": "*",
                        "value": "",
                        "reason": "erased",
                        "action": "row",
                    }
                )
                kept, blanked = _blank_mentions(rejects[~gone], pattern)
                new = (
                    pd.concat(
                        [
                            kept,
                            added.astype(
                                {c: kept[c].dtype for c in added if c in kept and c != "row_number"}
                            ),
                        ],
                        ignore_index=True,
                    )
                    if len(added)
                    else kept
                )
                new = new.sort_values(["row_number", "column"], kind="stable").reset_index(drop=True)
                if erased_rows or blanked:
                    store.write_parquet(new, rejected_path)
                    report.files_rewritten += 1
                report.reject_values_blanked += blanked
            report.staged_rows_erased += len(erased_rows)
            report.staged_records_erased += records
            if erased_rows:
                changes.append(
                    {
                        "period": period,
                        "source": name,
                        "rows": len(erased_rows),
                        "records": records,
                        "field_rejects": field_removed,
                    }
                )
    # every other table of the period: results keyed to the person go, mentions are blanked
    for path in sorted(base.rglob("*")):
        if path.name.startswith(".") or not path.is_file() or path.parent in (staged_dir, rejected_dir):
            continue
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            continue
        hit = _row_mask(frame, person, period)
        kept, blanked = _blank_mentions(frame[~hit].reset_index(drop=True), pattern)
        for col in kept.columns:  # a categorical keeps the categories of erased rows
            if isinstance(kept[col].dtype, pd.CategoricalDtype) and hit.any():
                kept[col] = kept[col].cat.remove_unused_categories()
        if hit.any() or blanked:
            if path.suffix == ".parquet":
                store.write_parquet(kept, path)
            else:
                with store.atomic_path(path) as tmp:
                    kept.to_csv(tmp, index=False)
            report.files_rewritten += 1
            report.file_rows_deleted += int(hit.sum())
            report.file_cells_blanked += blanked
    return pd.DataFrame(changes, columns=["period", "source", "rows", "records", "field_rejects"])


def _erase_store(
    store_path: Path,
    person: _Person,
    changes: pd.DataFrame,
    erased_rejects: pd.DataFrame,
    report: ErasureReport,
) -> None:
    """Delete and blank in every store table in one transaction, then rebuild the database file."""
    import duckdb

    if not Path(store_path).exists():
        return
    pattern = person.pattern()
    ids = pd.DataFrame({"customer_id": sorted(person.customer_ids)}, dtype="string")
    keys = pd.DataFrame(sorted(person.keys), columns=["source", "source_id"], dtype="string")
    party_keys = pd.DataFrame(sorted(person.party_keys), columns=["source", "source_id"], dtype="string")
    rows = pd.DataFrame(sorted(person.rows), columns=["period", "source", "row_number"])
    rows = rows.astype({"period": "string", "source": "string", "row_number": "int64"})
    con = duckdb.connect(str(store_path))
    try:
        for name, frame in (
            ("erase_ids", ids),
            ("erase_keys", keys),
            ("erase_party_keys", party_keys),
            ("erase_rows", rows),
            ("erase_changes", changes),
            ("erase_rejects", erased_rejects),
        ):
            con.register(name, frame)
        con.execute("BEGIN TRANSACTION")
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                    "AND table_type = 'BASE TABLE' ORDER BY 1"
                ).fetchall()
            ]
            for table in tables:
                info = con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = ? AND table_schema = 'main'",
                    [table],
                ).fetchall()
                cols = {c: t for c, t in info}
                for col, dtype in list(cols.items()):
                    # an ENUM type (a pandas categorical) lists every value it ever held, erased ones too
                    if dtype.startswith("ENUM(") and pattern and re.search(pattern, dtype):
                        con.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{col}" TYPE VARCHAR')
                        cols[col] = "VARCHAR"
                conditions = []
                for col in ("customer_id", "new_id"):
                    if col in cols:
                        conditions.append(
                            f'CAST(t."{col}" AS VARCHAR) IN (SELECT customer_id FROM erase_ids)'
                        )
                for s_col, id_col, keyset in (
                    ("source", "source_id", "erase_keys"),
                    ("source_a", "source_id_a", "erase_keys"),
                    ("source_b", "source_id_b", "erase_keys"),
                    ("party_source", "party_id", "erase_party_keys"),
                ):
                    if s_col in cols and id_col in cols:
                        conditions.append(
                            f'EXISTS (SELECT 1 FROM {keyset} k WHERE k.source = CAST(t."{s_col}" AS VARCHAR) '
                            f'AND k.source_id = CAST(t."{id_col}" AS VARCHAR))'
                        )
                if {"period", "source", "row_number"} <= set(cols):
                    conditions.append(
                        "EXISTS (SELECT 1 FROM erase_rows r WHERE r.period = CAST(t.period AS VARCHAR) "
                        "AND r.source = CAST(t.source AS VARCHAR) AND r.row_number = t.row_number)"
                    )
                if conditions:
                    deleted = con.execute(
                        f'DELETE FROM "{table}" AS t WHERE ' + " OR ".join(conditions)
                    ).fetchall()
                    report.store_rows_deleted += int(deleted[0][0]) if deleted else 0
                if table == "rejects" and len(erased_rejects):
                    con.execute('INSERT INTO "rejects" BY NAME SELECT * FROM erase_rejects')
                if (
                    table == "ingest_accounting"
                    and len(changes)
                    and {"rows_staged", "rows_rejected"} <= set(cols)
                ):
                    # rows a source's row_filter left out count in the balance (older stores lack them)
                    filtered = (
                        " + coalesce(ingest_accounting.rows_filtered, 0)" if "rows_filtered" in cols else ""
                    )
                    con.execute(f"""
                        UPDATE ingest_accounting SET
                            rows_staged = ingest_accounting.rows_staged - c.rows,
                            rows_rejected = ingest_accounting.rows_rejected + c.rows,
                            records_staged = ingest_accounting.records_staged - c.records,
                            field_rejects = ingest_accounting.field_rejects - c.field_rejects,
                            balanced = ingest_accounting.rows_read
                                       = ingest_accounting.rows_staged + ingest_accounting.rows_rejected{filtered}
                        FROM erase_changes c
                        WHERE ingest_accounting.period = c.period AND ingest_accounting.source = c.source""")
                if pattern:
                    for col, dtype in cols.items():
                        if dtype != "VARCHAR":
                            continue
                        changed = con.execute(
                            f'UPDATE "{table}" SET "{col}" = ? WHERE regexp_matches("{col}", ?)',
                            [ERASED, pattern],
                        ).fetchall()
                        report.store_cells_blanked += int(changed[0][0]) if changed else 0
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    finally:
        con.close()
    _rebuild(Path(store_path))


def _rebuild(store_path: Path) -> None:
    """Copy the database into a fresh file and swap it in: deleted rows leave no trace in free pages."""
    import duckdb

    with store.atomic_path(store_path) as tmp:
        tmp.unlink()  # DuckDB creates the file itself
        con = duckdb.connect(str(store_path))
        try:
            quoted = str(tmp).replace("'", "''")
            con.execute(f"ATTACH '{quoted}' AS fresh")
            name = con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
            con.execute(f'COPY FROM DATABASE "{name}" TO fresh')
            con.execute("DETACH fresh")
        finally:
            con.close()
    wal = Path(str(store_path) + ".wal")
    if wal.exists():  # the old file's log (checkpointed above) does not belong to the new file
        wal.unlink()


def remove_stale_temporaries(folder: Path) -> int:
    """Delete leftovers of writes a crash interrupted (the hidden `.<name>.*.tmp` files of
    store.atomic_path and folders of store.atomic_folder): they may hold the erased person's data."""
    removed = 0
    for path in sorted(Path(folder).rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif path.exists():
            path.unlink()
            removed += 1
    return removed


def erase(
    identifier: str, *, settings, sources: dict, kind: str | None = None, reason: str | None = None
) -> ErasureReport:
    """Erase the person named by `identifier` (tax id, e-mail or customer id); see the module docstring."""
    if kind not in (None, "tax_id", "email", "customer_id"):
        raise ErasureError(f"unknown kind {kind!r}; expected tax_id, email or customer_id")
    processed = settings.path("processed")
    store_path = settings.path("store")
    folder = suppression_dir(settings.path("raw"))
    periods = _periods(processed)
    staged = _read_staged(processed, periods)
    crosswalk = store.load_table(store_path, "crosswalk")
    customers = store.load_table(store_path, "customers")
    for frame in (crosswalk, customers):
        for col in frame.columns:
            if col != "period" and (frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col])):
                frame[col] = frame[col].astype("string")
    known = set(crosswalk.get("customer_id", pd.Series(dtype="string")).dropna()) | set(
        customers.get("customer_id", pd.Series(dtype="string")).dropna()
    )
    kind, value = _kind_of(identifier, kind, known)
    person = _resolve(kind, value, staged, crosswalk, customers)
    report = ErasureReport(
        erasure_id=uuid.uuid4().hex,
        identifier_kind=kind,
        customers=len(person.customer_ids),
        source_records=len(person.keys),
        periods=periods,
    )

    # 1. the suppression list first: if anything below is interrupted, the next run still leaves them out
    entries = [("source_key", f"{s}|{i}") for s, i in person.party_keys]
    entries += [(col, v) for col, values in person.identifiers.items() for v in values]
    report.shared_identifiers_not_suppressed = sum(len(v) for v in person.shared.values())
    report.identifiers_suppressed = _append_suppression(folder, report.erasure_id, entries)

    # 2. the files of every period, 3. the store (one transaction, then a rebuilt file)
    changes = [
        _erase_period_files(processed, period, person, sources, settings.path("raw"), report)
        for period in periods
    ]
    changes = (
        pd.concat(changes, ignore_index=True)
        if changes
        else pd.DataFrame(columns=["period", "source", "rows", "records", "field_rejects"])
    )
    erased_rejects = pd.DataFrame(
        [
            {
                "period": p,
                "source": s,
                "file": _file_of(sources, s, settings.path("raw")),
                "row_number": r,
                "column": "*",
                "value": "",
                "reason": "erased",
                "action": "row",
            }
            for p, s, r in sorted(person.rows)
        ],
        columns=["period", "source", "file", "row_number", "column", "value", "reason", "action"],
    )
    erased_rejects["row_number"] = erased_rejects["row_number"].astype("int64")
    _erase_store(
        store_path,
        person,
        changes.astype({"rows": "int64", "records": "int64", "field_rejects": "int64"}),
        erased_rejects,
        report,
    )
    report.stale_temporaries_removed = remove_stale_temporaries(processed) if Path(processed).exists() else 0

    # 4. the audit log: counts only, and the reason without anything that could name a person
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": scrub_reason(person.scrub(reason)),
        "reason_sha256": reason_digest(reason, _salt(folder, create=True)),
        **{k: v for k, v in asdict(report).items()},
    }
    _ensure_folder(folder)
    with open(folder / AUDIT_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return report


def _file_of(sources: dict, name: str, raw_dir: Path) -> str:
    """The `file` ingest writes in a reject of this source."""
    spec = sources.get(name)
    if spec is None:
        return name
    return spec.path if spec.path else spec.location(raw_dir)
