"""Masking of personal data for reports and exports (DESIGN.md, "Privacy").

Each mask keeps just enough to recognise a record without revealing the identifier: a tax id keeps
its first four characters and its control letter ("1234****Z"), an IBAN its country and last four
digits ("ES****1332"), an e-mail the first letter of the mailbox and of the domain ("j***@d***.com"),
a phone its last three digits ("***678"). Masks work on raw values too (a rejected "12.345.678-z"),
never echo an unknown shape back, and map every null to null.

They are vectorised over unique values, so masking a column of a million records is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

_SEPARATORS = re.compile(r"[\s.\-/]+")
_NON_DIGITS = re.compile(r"\D+")
_STAR = "*"


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT:
        return None
    t = str(value).strip()
    return t or None


def mask_tax_id(value: object) -> str | None:
    """ "12345678Z" -> "1234****Z"; NIE "X1234567L" -> "X123****L"; short values keep only their last character."""
    t = _text(value)
    if t is None:
        return None
    c = _SEPARATORS.sub("", t).upper()
    if len(c) >= 8:
        return c[:4] + _STAR * (len(c) - 5) + c[-1]
    if len(c) >= 2:
        return _STAR * (len(c) - 1) + c[-1]
    return _STAR


def mask_iban(value: object) -> str | None:
    """ "ES91 2100 0418 4502 0005 1332" -> "ES****1332" (country and the last four characters)."""
    t = _text(value)
    if t is None:
        return None
    c = _SEPARATORS.sub("", t).upper()
    if c.startswith("IBAN"):
        c = c[4:]
    if len(c) >= 10:
        return c[:2] + _STAR * 4 + c[-4:]
    return _STAR * 4 + (c[-2:] if len(c) >= 6 else "")


def mask_email(value: object) -> str | None:
    """ "juan.perez@dominio.com" -> "j***@d***.com"; a value without "@" -> "j***"."""
    t = _text(value)
    if t is None:
        return None
    local, at, domain = t.rpartition("@")
    if not at:
        return t[0] + "***"
    head = (local[:1] or "") + "***"
    domain = domain.strip()
    if "." in domain.strip("."):
        name, _, tld = domain.strip(".").rpartition(".")
        tail = (name[:1] or "") + "***." + tld[:10]
    else:
        tail = (domain[:1] + "***") if domain else "***"
    return f"{head}@{tail}"


def mask_phone(value: object) -> str | None:
    """ "+34 612 34 56 78" -> "***678" (the last three digits)."""
    t = _text(value)
    if t is None:
        return None
    digits = _NON_DIGITS.sub("", t)
    return "***" + digits[-3:] if len(digits) >= 6 else "***"


def mask_name(value: object) -> str | None:
    """ "María del Carmen Prados García" -> "M. d. C. P. G." (initials only)."""
    t = _text(value)
    if t is None:
        return None
    return " ".join(w[0] + "." for w in t.split() if w[:1].isalnum() or w[:1].isalpha()) or _STAR


def mask_date(value: object) -> str | None:
    """A birth date keeps its year: "1980-02-01" -> "1980-**-**"; other text -> "****"."""
    t = _text(value)
    if t is None:
        return None
    m = re.search(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", t)
    return f"{m.group(1)}-**-**" if m else "****"


def mask_address(value: object) -> str | None:
    """ "Calle Mayor 5, 3º B" -> "Calle ***" (the street type at most)."""
    t = _text(value)
    if t is None:
        return None
    first = t.split()[0]
    return (first + " ***") if first.isalpha() and len(first) <= 12 else "***"


def mask_handle(value: object) -> str | None:
    """ "@juanp_82" -> "@j***"."""
    t = _text(value)
    if t is None:
        return None
    body = t.lstrip("@")
    return "@" + body[:1] + "***"


def mask_text(value: object) -> str | None:
    """Free text (a malformed raw line, a comment) -> its length only: "[42 chars]"."""
    t = _text(value)
    if t is None:
        return None
    return f"[{len(t)} chars]"


#: Mask per kind of personal data.
MASKS: dict[str, Callable[[object], str | None]] = {
    "tax_id": mask_tax_id,
    "iban": mask_iban,
    "email": mask_email,
    "phone": mask_phone,
    "name": mask_name,
    "date": mask_date,
    "address": mask_address,
    "handle": mask_handle,
    "text": mask_text,
}

#: Canonical columns that hold personal data, and how each is masked.
PII_COLUMNS: dict[str, str] = {
    "tax_id": "tax_id",
    "iban": "iban",
    "email": "email",
    "phone": "phone",
    "given_name": "name",
    "family_names": "name",
    "family_name_1": "name",
    "family_name_2": "name",
    "full_name": "name",
    "birth_date": "date",
    "address": "address",
    "billing_address": "address",
    "handle": "handle",
    "text": "text",
}


def mask_series(values: pd.Series, kind: str) -> pd.Series:
    """Mask a column with the mask of `kind` (a key of MASKS); nulls stay null. Computed once per
    distinct value."""
    if kind not in MASKS:
        raise ValueError(f"unknown kind of personal data {kind!r}; expected one of {sorted(MASKS)}")
    fn = MASKS[kind]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    masked = np.empty(len(uniques) + 1, dtype=object)
    masked[:-1] = [fn(u) for u in uniques]
    masked[-1] = None
    return pd.Series(masked[codes], index=values.index, name=values.name, dtype=object)


def mask_values(values: pd.Series, fields: pd.Series, *, default: str | None = None) -> pd.Series:
    """Mask each value by the canonical field it belongs to (a findings table: one value column, a
    field per row). Fields that hold no personal data are left as they are, unless `default` names a
    mask for them."""
    out = values.astype(object).copy()
    fields = fields.astype(object)
    for field in pd.unique(fields):
        kind = PII_COLUMNS.get(field, default) if isinstance(field, str) else default
        if kind is None:
            continue
        sel = (fields == field).to_numpy() if isinstance(field, str) else fields.isna().to_numpy()
        out[sel] = mask_series(values[sel], kind).to_numpy()
    return out


def mask_frame(frame: pd.DataFrame, columns: Iterable[str] | Mapping[str, str] | None = None) -> pd.DataFrame:
    """A copy of `frame` with personal columns masked.

    `columns` is a list of column names (each masked by the kind its canonical name implies, see
    PII_COLUMNS), a mapping column -> kind (a key of MASKS), or None for every PII_COLUMNS column
    present.
    """
    if columns is None:
        plan = {c: PII_COLUMNS[c] for c in frame.columns if c in PII_COLUMNS}
    elif isinstance(columns, Mapping):
        plan = dict(columns)
    else:
        plan = {}
        for c in columns:
            if c not in PII_COLUMNS:
                raise ValueError(
                    f"cannot tell how to mask column {c!r}; pass a mapping column -> kind "
                    f"(one of {sorted(MASKS)})"
                )
            plan[c] = PII_COLUMNS[c]
    missing = [c for c in plan if c not in frame.columns]
    if missing:
        raise KeyError(f"columns to mask not in the frame: {missing}")
    out = frame.copy()
    for column, kind in plan.items():
        out[column] = mask_series(frame[column], kind)
    return out
