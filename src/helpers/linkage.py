"""Record-linkage machinery behind `helpers.unify`: key preparation, blocking, comparison, Fellegi-Sunter.

Built on the recordlinkage framework: every blocking pass is a `BaseIndexAlgorithm` and every comparison
a `BaseCompareFeature`, so they plug into `recordlinkage.Index` / `recordlinkage.Compare`. They work on
integer codes into per-field vocabularies and score each *distinct* pair of values once with rapidfuzz,
which keeps millions of candidate pairs fast (recordlinkage's own string comparators run pair by pair in
Python). For speed and memory, `block` and `compare_pairs` call the algorithms directly on NumPy arrays
rather than through recordlinkage's DataFrame plumbing (tests hold both routes equal). The
classifier is a multi-level Fellegi-Sunter model: u from random record pairs, m from pairs that share a
validated tax id (no hand labels), both refined by EM, with term-frequency adjustment of exact agreement
on names (agreeing on "García" counts for less than agreeing on "Ybarra").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein, Indel, JaroWinkler
from recordlinkage.base import BaseCompareFeature, BaseIndexAlgorithm
from unidecode import unidecode

if TYPE_CHECKING:  # settings live in helpers.unify, which imports this module
    from helpers.unify import BlockingPass, UnifySettings

# --------------------------------------------------------------------------------------------------
# Normalisation of names, addresses and identifiers (applied once per distinct value)
# --------------------------------------------------------------------------------------------------

#: Spanish (and Catalan/Basque/Galician) hypocoristics and language variants -> canonical given name.
#: Gender is never crossed here: Joan/Joana, Juan/Juana stay apart (their likeness is left to similarity).
# fmt: off
NICKNAMES: dict[str, str] = {
    "pepe": "jose", "pepito": "jose", "josep": "jose", "xose": "jose", "jose": "jose",
    "pepa": "josefa", "pepi": "josefa", "fina": "josefina",
    "paco": "francisco", "pancho": "francisco", "curro": "francisco", "kiko": "francisco",
    "frasco": "francisco", "francesc": "francisco", "fran": "francisco", "xisco": "francisco",
    "paca": "francisca", "paqui": "francisca", "paquita": "francisca", "francesca": "francisca",
    "manolo": "manuel", "manu": "manuel", "lolo": "manuel",
    "lola": "dolores", "loli": "dolores", "lolita": "dolores",
    "concha": "concepcion", "conchi": "concepcion", "conchita": "concepcion", "conxita": "concepcion",
    "charo": "rosario", "chelo": "consuelo", "pili": "pilar", "lupe": "guadalupe",
    "nacho": "ignacio", "inaki": "ignacio", "ignasi": "ignacio",
    "quique": "enrique", "enric": "enrique", "rafa": "rafael", "toni": "antonio", "tono": "antonio",
    "antoni": "antonio", "txema": "jose maria", "chema": "jose maria", "josema": "jose maria",
    "juanjo": "juan jose", "juanma": "juan manuel", "juanlu": "juan luis", "joselu": "jose luis",
    "maite": "maria teresa", "marisa": "maria luisa", "maribel": "maria isabel", "marisol": "maria soledad",
    "mariajo": "maria jose", "majo": "maria jose", "mayte": "maria teresa", "mari": "maria",
    "maria": "maria", "meri": "maria", "mariona": "maria",
    "susi": "susana", "sole": "soledad", "nando": "fernando", "ferran": "fernando",
    "alex": "alejandro", "alejo": "alejandro", "alexandre": "alejandro", "xandre": "alejandro",
    "dani": "daniel", "santi": "santiago", "guille": "guillermo", "guillem": "guillermo",
    "isa": "isabel", "chabela": "isabel", "elisabet": "isabel",
    "jordi": "jorge", "pau": "pablo", "xavier": "javier", "xabier": "javier", "javi": "javier",
    "joan": "juan", "jon": "juan", "xoan": "juan", "joana": "juana", "jone": "juana",
    "montse": "montserrat", "tere": "teresa", "encarna": "encarnacion", "inma": "inmaculada",
    "puri": "purificacion", "reme": "remedios", "asun": "asuncion", "nico": "nicolas",
    "moncho": "ramon", "chimo": "joaquin", "ximo": "joaquin", "quim": "joaquin", "joaquim": "joaquin",
    "chus": "jesus", "jesu": "jesus", "merche": "mercedes", "mercche": "mercedes",
    "nuri": "nuria", "rosi": "rosa", "trini": "trinidad", "vicen": "vicente", "vicent": "vicente",
    "lucho": "luis", "lluis": "luis", "koldo": "luis", "miquel": "miguel", "mikel": "miguel",
    "pedrito": "pedro", "pere": "pedro", "jaume": "jaime", "jaimito": "jaime", "andreu": "andres",
    "pilar": "pilar", "beto": "alberto", "berto": "alberto", "edu": "eduardo", "fede": "federico",
    "gonzalo": "gonzalo", "goyo": "gregorio", "lalo": "eduardo", "luismi": "luis miguel",
    "migue": "miguel", "nieves": "nieves", "rocio": "rocio", "sergi": "sergio", "marc": "marcos",
    "david": "david", "jordina": "jorgina", "nerea": "nerea", "carles": "carlos", "carlitos": "carlos",
}
# fmt: on

# fmt: off
_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "i", "e", "da", "dos", "das"})
_LEGAL_FORMS = frozenset(
    "sl slu sa sau sll slne scp cb sc scoop coop sociedad limitada anonima unipersonal laboral "
    "cooperativa comunidad bienes civil ltd inc gmbh sas srl bv".split()
)
_ADDRESS_ABBREVIATIONS = {
    "calle": "c", "cl": "c", "cll": "c", "avenida": "av", "avda": "av", "avd": "av", "plaza": "pl",
    "pza": "pl", "plz": "pl", "paseo": "ps", "po": "ps", "pso": "ps", "carretera": "ctra", "crta": "ctra",
    "camino": "cm", "cmno": "cm", "ronda": "rd", "travesia": "tr", "trva": "tr", "urbanizacion": "urb",
    "numero": "", "num": "", "no": "", "n": "", "piso": "", "puerta": "pta", "escalera": "esc",
    "izquierda": "izq", "izda": "izq", "derecha": "dch", "dcha": "dch", "drcha": "dch", "bajo": "bj",
    "street": "st", "road": "rd", "avenue": "av", "place": "pl", "crescent": "cr", "circuit": "cct",
    "court": "ct", "drive": "dr", "close": "cl", "parade": "pde", "terrace": "tce", "lane": "ln",
    "de": "", "del": "", "la": "", "el": "", "los": "", "las": "",
}
# fmt: on
_NON_ALNUM = re.compile(r"[^a-z0-9 ]+")
_NON_ALPHA = re.compile(r"[^a-z ]+")
_DIGITS_LETTERS = re.compile(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)")


_COMBINING = re.compile("[\u0300-\u036f]")


def ascii_text(text: str) -> str:
    """Accents removed ("Núñez" -> "Nunez"): NFKD in C for Latin text, unidecode for anything else."""
    if text.isascii():
        return text
    stripped = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return stripped if stripped.isascii() else unidecode(text)


def fold(text: Any) -> str:
    """Accent-free lower-case letters and single spaces ("María-José Núñez" -> "maria jose nunez")."""
    if not isinstance(text, str):
        return ""
    return " ".join(_NON_ALPHA.sub(" ", ascii_text(text.replace("'", "")).lower()).split())


_LEGAL_FORM_AT_END = re.compile(
    r"(?:\b(?:s\.?\s?l\.?(?:\s?u\.?|\s?n\.?\s?e\.?|\s?l\.?)?|s\.?\s?a\.?(?:\s?u\.?)?|s\.?\s?coop\.?(?:\s?and\.?)?"
    r"|s\.?\s?c\.?(?:\s?p\.?)?|c\.?\s?b\.?|sociedad (?:limitada|anonima|cooperativa|civil)(?: (?:unipersonal|laboral))?"
    r"|comunidad de bienes))\s*$"
)


def _has_legal_form(text: Any) -> str:
    """ "1" when a name ends with a Spanish legal form (S.L., SA, S.L.U., Sociedad Limitada, C.B. ...)."""
    if not isinstance(text, str):
        return ""
    t = ascii_text(text).lower().strip().rstrip(",. ")
    return "1" if _LEGAL_FORM_AT_END.search(t + " ") or _LEGAL_FORM_AT_END.search(t) else ""


def surname_key(text: Any) -> str:
    """A folded surname without particles ("de la Fuente" -> "fuente"), kept whole when only particles."""
    tokens = fold(text).split()
    kept = [t for t in tokens if t not in _PARTICLES]
    return " ".join(kept or tokens)


def given_canonical(text: Any) -> str:
    """The canonical form of a folded given name: whole-name nickname first, then token by token."""
    folded = text if isinstance(text, str) else ""
    if folded in NICKNAMES:
        return NICKNAMES[folded]
    return " ".join(NICKNAMES.get(t, t) for t in folded.split())


def spanish_phonetic(text: Any) -> str:
    """A coarse Spanish phonetic key for blocking: b/v, c/z/s (seseo), g/j, ll/y, silent h, doubles."""
    s = text if isinstance(text, str) else ""
    if not s:
        return ""
    s = s.replace(" ", "")
    s = s.replace("ch", "X").replace("ll", "y").replace("qu", "k").replace("gu", "g")
    s = re.sub(r"c(?=[ei])", "s", s)
    s = re.sub(r"g(?=[ei])", "j", s)
    s = s.replace("c", "k").replace("z", "s").replace("v", "b").replace("w", "b").replace("x", "j")
    s = s.replace("h", "").replace("y", "i")
    s = re.sub(r"(.)\1+", r"\1", s)
    return s.lower()


def org_key(text: Any) -> str:
    """A company name without punctuation and legal forms ("Prados, S.L.U." -> "prados")."""
    if not isinstance(text, str):
        return ""
    folded = _NON_ALNUM.sub(" ", ascii_text(text.replace(".", "").replace("'", "")).lower())
    tokens = folded.split()
    kept = [t for t in tokens if t not in _LEGAL_FORMS]
    return " ".join(kept or tokens)


def address_key(text: Any) -> str:
    """A street address folded, abbreviated and token-sorted, so word order and "Calle"/"C/" do not matter."""
    if not isinstance(text, str):
        return ""
    folded = _NON_ALNUM.sub(" ", ascii_text(text.replace("º", " ").replace("ª", " ")).lower())
    folded = _DIGITS_LETTERS.sub(" ", folded)
    tokens = [_ADDRESS_ABBREVIATIONS.get(t, t) for t in folded.split()]
    return " ".join(sorted(t for t in tokens if t))


def email_local(email: Any) -> str:
    """The local part of an e-mail without +tags and dots ("Ana.Ruiz+shop" -> "anaruiz")."""
    if not isinstance(email, str) or "@" not in email:
        return ""
    local = email.lower().partition("@")[0]
    return local.split("+", 1)[0].replace(".", "")


def email_key(email: Any) -> str:
    """A mailbox key: lower case, local part without +tags and dots (Gmail ignores them; elsewhere a
    dot added or lost is far likelier a typing variant than another person's mailbox)."""
    if not isinstance(email, str) or "@" not in email:
        return ""
    domain = email.lower().partition("@")[2].replace("googlemail.com", "gmail.com")
    return f"{email_local(email)}@{domain}"


def map_distinct(values: pd.Series, func) -> np.ndarray:
    """Apply `func` once per distinct non-null value; returns an object array ("" for nulls)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    mapped = np.array([func(u) for u in uniques] + [""], dtype=object)
    return mapped[codes]  # code -1 picks the trailing ""


def encode(*arrays: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Integer codes (-1 = null/"") into one shared vocabulary for several string arrays.

    Returns the codes per array, the vocabulary, and the term frequency of each vocabulary entry over
    all non-null values of all arrays (so a surname's frequency counts both surname positions).
    """
    stacked = np.concatenate([np.asarray(a, dtype=object) for a in arrays])
    stacked = np.where(pd.isna(stacked) | (stacked == ""), None, stacked)
    codes, vocab = pd.factorize(stacked, use_na_sentinel=True)
    codes = codes.astype(np.int32)
    counts = np.bincount(codes[codes >= 0], minlength=len(vocab)).astype(np.float64)
    tf = counts / max(counts.sum(), 1.0)
    out, start = [], 0
    for a in arrays:
        out.append(codes[start : start + len(a)])
        start += len(a)
    return out, np.asarray(vocab, dtype=object), tf


@dataclass
class PreparedRecords:
    """Source records with their linkage keys as integer codes (row i = record `rid` i)."""

    records: pd.DataFrame  # the source records, RangeIndex = rid
    codes: pd.DataFrame  # int32 codes per key (-1 = null), same index
    vocab: dict[str, np.ndarray]  # key group -> distinct normalised values
    tf: dict[str, np.ndarray]  # key group -> term frequency per code
    sort_rank: dict[str, np.ndarray] = field(default_factory=dict)  # key group -> rank of each vocab entry

    def __len__(self) -> int:
        return len(self.records)


#: key column -> vocabulary group it codes into (keys of one group are directly comparable)
# fmt: off
KEY_GROUPS: dict[str, str] = {
    "given": "given", "given_canon": "given", "given_first": "given",
    "family_name_1": "surname", "family_name_2": "surname",
    "given_phonetic": "phonetic", "family_1_phonetic": "phonetic", "family_2_phonetic": "phonetic",
    "surnames_phonetic": "surnames_phonetic", "given_initial": "initial",
    "org_name": "org_name", "org_phonetic": "phonetic", "full_name": "full_name",
    "tax_id": "tax_id", "email": "email", "email_local": "email_local", "phone": "phone", "iban": "iban",
    "postcode": "postcode", "postcode3": "postcode3", "city": "city", "province": "province",
    "address": "address", "birth_year": "birth_year", "name_sort": "name_sort", "given_sort": "given_sort",
    "name_phonetic": "name_phonetic",
    "source": "source",
}
# fmt: on


def prepare(records: pd.DataFrame) -> PreparedRecords:
    """Normalise the fields that blocking and comparison use, and code them as integers.

    Person names are only used for persons: a company's given/family names are its contact person,
    not the entity. Missing first/second surnames are split from `family_names`, and a missing given
    name from `full_name`, so sources that only give a full name still compare name by name.
    """
    rec = records.copy(deep=False)  # a new index, the columns shared (not copied)
    rec.index = pd.RangeIndex(len(rec))
    n = len(rec)
    col = lambda name: rec[name] if name in rec.columns else pd.Series([None] * n, dtype=object)  # noqa: E731
    is_company = map_distinct(col("party_type"), lambda t: "1" if str(t).lower() == "company" else "") == "1"
    # a legal form in the name or a CIF makes a company, whatever the source said ("Gimnasio Crespo
    # Sociedad Limitada" split into given and family names is still a company)
    named = pd.Series(map_distinct(col("full_name"), _has_legal_form), dtype=object).eq("1").to_numpy()
    built = combine_distinct(
        lambda g, f: " ".join(x for x in (g, f) if isinstance(x, str)), col("given_name"), col("family_names")
    )
    named |= map_distinct(pd.Series(built), _has_legal_form) == "1"
    cif = map_distinct(col("tax_id"), lambda t: "1" if _CIF.match(str(t)) else "") == "1"
    is_company = is_company | named | cif

    given = map_distinct(col("given_name"), fold)
    fam1 = map_distinct(col("family_name_1"), surname_key)
    fam2 = map_distinct(col("family_name_2"), surname_key)
    # fall back on family_names / full_name when the standardiser left the parts empty
    fam_all = map_distinct(col("family_names"), fold)
    full = map_distinct(col("full_name"), fold)
    no_fam = (fam1 == "") & (fam_all != "")
    if no_fam.any():
        split = [_split_surnames(s) for s in fam_all[no_fam]]
        fam1[no_fam] = [a for a, _ in split]
        fam2[no_fam] = np.where(fam2[no_fam] == "", [b for _, b in split], fam2[no_fam])
    no_name = (given == "") & (fam1 == "") & (full != "") & ~is_company
    if no_name.any():
        parts = [_split_full_name(s) for s in full[no_name]]
        given[no_name] = [p[0] for p in parts]
        fam1[no_name] = [p[1] for p in parts]
        fam2[no_name] = [p[2] for p in parts]
    for arr in (given, fam1, fam2):
        arr[is_company] = ""

    canon = map_distinct(pd.Series(given), given_canonical)
    first = map_distinct(pd.Series(given), lambda g: g.split(" ", 1)[0])
    given_ph = map_distinct(pd.Series(canon), lambda s: spanish_phonetic(s.split(" ", 1)[0]))
    f1_ph = map_distinct(pd.Series(fam1), spanish_phonetic)
    f2_ph = map_distinct(pd.Series(fam2), spanish_phonetic)
    sur_ph = combine_distinct(lambda a, b: "|".join(sorted(p for p in (a, b) if p)), f1_ph, f2_ph)
    initial = map_distinct(pd.Series(canon), lambda c: c[:1])

    org = combine_distinct(
        lambda company, full_name, name: (
            org_key(full_name if isinstance(full_name, str) else name) if company else ""
        ),
        is_company,
        col("full_name"),
        built,
    )
    org_ph = map_distinct(pd.Series(org), lambda s: spanish_phonetic(s.split(" ", 1)[0]) if s else "")

    email = map_distinct(col("email"), email_key)
    local = map_distinct(pd.Series(email), email_local)
    postcode = _str(col("postcode"))
    postcode3 = map_distinct(pd.Series(postcode), lambda p: p[:3] if len(p) >= 3 else "")
    birth = pd.to_datetime(col("birth_date"), errors="coerce")
    birth_int = np.where(
        birth.notna(), (birth.dt.year * 10000 + birth.dt.month * 100 + birth.dt.day).fillna(-1), -1
    ).astype(np.int32)
    birth_year = map_distinct(
        pd.Series(np.where(birth_int > 0, birth_int // 10000, -1)), lambda y: str(y) if y > 0 else ""
    )
    squeeze = lambda *parts: " ".join(p for p in parts if p)  # noqa: E731
    name_sort = np.where(is_company, org, combine_distinct(squeeze, fam1, fam2, given))
    given_sort = np.where(is_company, "", combine_distinct(squeeze, given, fam1, fam2))

    codes: dict[str, np.ndarray] = {}
    vocab: dict[str, np.ndarray] = {}
    tf: dict[str, np.ndarray] = {}

    def add(group: str, **arrays: np.ndarray) -> None:
        coded, vocab[group], tf[group] = encode(*arrays.values())
        codes.update(zip(arrays.keys(), coded, strict=True))

    add("given", given=given, given_canon=canon, given_first=first)
    add("surname", family_name_1=fam1, family_name_2=fam2)
    add(
        "phonetic",
        given_phonetic=given_ph,
        family_1_phonetic=f1_ph,
        family_2_phonetic=f2_ph,
        org_phonetic=org_ph,
    )
    add("surnames_phonetic", surnames_phonetic=sur_ph)
    full_ph = combine_distinct(lambda g, a, b: f"{g}|{a}|{b}" if g and a else "", given_ph, f1_ph, f2_ph)
    add("name_phonetic", name_phonetic=np.where(is_company, "", full_ph).astype(object))
    add("initial", given_initial=initial)
    add("org_name", org_name=org)
    add("full_name", full_name=np.where(is_company, org, full).astype(object))
    add("tax_id", tax_id=_str(col("tax_id")))
    add("email", email=email)
    add("email_local", email_local=local)
    add("phone", phone=_str(col("phone")))
    add("iban", iban=_str(col("iban")))
    add("postcode", postcode=postcode)
    add("postcode3", postcode3=postcode3)
    add("city", city=map_distinct(col("city"), fold))
    add("province", province=map_distinct(col("province"), fold))
    add("address", address=map_distinct(col("address"), address_key))
    add("birth_year", birth_year=birth_year)
    add("name_sort", name_sort=name_sort)
    add("given_sort", given_sort=given_sort)
    add("source", source=_str(col("source")))
    codes["birth_date"] = birth_int
    codes["party"] = np.where(is_company, 1, 0).astype(np.int8)
    frame = pd.DataFrame(codes)
    sort_rank = {
        g: _rank(v)
        for g, v in vocab.items()
        if g in ("name_sort", "given_sort", "surname", "given", "address", "org_name")
    }
    return PreparedRecords(rec, frame, vocab, tf, sort_rank)


def _str(series: pd.Series) -> np.ndarray:
    """Stripped text as an object array ("" for null), one Python string per distinct value."""
    return map_distinct(series, lambda v: str(v).strip())


_CIF = re.compile(r"^[ABCDEFGHJNPQRSUVW]\d{7}[0-9A-J]$")


def combine_distinct(func, *arrays) -> np.ndarray:
    """`func(*values)` once per distinct combination of the arrays' values (None for null), as an object
    array per row: no per-row string building, and Arrow-backed columns are never turned into Python
    strings row by row."""
    key = np.zeros(len(arrays[0]), dtype=np.int64)
    codes_all, uniques = [], []
    for arr in arrays:
        codes, uniq = pd.factorize(arr, use_na_sentinel=True)
        uniq = np.append(np.asarray(uniq, dtype=object), None)  # code -1 -> None
        codes_all.append(codes)
        uniques.append(uniq)
        key = key * len(uniq) + np.where(codes < 0, len(uniq) - 1, codes)
        key = pd.factorize(key)[0].astype(np.int64)
    combo, first = np.unique(key, return_index=True)
    parts = [uniq[codes[first]] for codes, uniq in zip(codes_all, uniques, strict=True)]
    mapped = np.array([func(*vals) for vals in zip(*parts, strict=True)], dtype=object)
    return mapped[np.searchsorted(combo, key)]


def _rank(vocab: np.ndarray) -> np.ndarray:
    order = np.argsort(vocab.astype(str), kind="stable")
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[order] = np.arange(len(vocab))
    return rank


def _split_surnames(folded: str) -> tuple[str, str]:
    """First and second surname from a folded "family names" string, particles kept with their noun."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for t in folded.split():
        pending.append(t)
        if t not in _PARTICLES:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    keys = [surname_key(" ".join(g)) for g in groups]
    return (keys[0] if keys else ""), " ".join(keys[1:])


def _split_full_name(folded: str) -> tuple[str, str, str]:
    """(given, surname 1, surname 2) from a folded full name: the last two non-particle groups are surnames."""
    tokens = folded.split()
    if len(tokens) == 1:
        return tokens[0], "", ""
    if len(tokens) == 2:
        return tokens[0], surname_key(tokens[1]), ""
    given = " ".join(tokens[:-2])
    return given, surname_key(tokens[-2]), surname_key(tokens[-1])


# --------------------------------------------------------------------------------------------------
# Blocking: each pass is a recordlinkage index algorithm; their union is the candidate set
# --------------------------------------------------------------------------------------------------


def _combined_key(codes: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One int64 code per record for a compound key (-1 when any part is null)."""
    combined = np.zeros(len(codes), dtype=np.int64)
    valid = np.ones(len(codes), dtype=bool)
    for key in keys:
        part = codes[key].to_numpy().astype(np.int64)
        valid &= part >= 0
        combined = combined * (int(part.max(initial=0)) + 2) + (part + 1)
        combined, _ = pd.factorize(combined)  # keep the numbers small
        combined = combined.astype(np.int64)
    return np.where(valid, combined, -1)


def _pairs_within_blocks(key: np.ndarray, max_block_size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """All (i, j), i < j, of records sharing a key; blocks larger than `max_block_size` are skipped.

    Returns left, right, the number of skipped blocks and the records in them.
    """
    rids = np.flatnonzero(key >= 0)
    if len(rids) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), 0, 0
    order = rids[np.argsort(key[rids], kind="stable")]
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    too_big = sizes > max_block_size
    skipped_blocks, skipped_records = int(too_big.sum()), int(sizes[too_big].sum())
    keep = (sizes >= 2) & ~too_big
    starts, sizes = starts[keep], sizes[keep]
    if len(starts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), skipped_blocks, skipped_records
    # position p inside a block pairs with every later position of the same block
    pos = np.repeat(starts, sizes) + _ramp(sizes)
    block_end = np.repeat(starts + sizes, sizes)
    n_after = block_end - pos - 1
    left_pos = np.repeat(pos, n_after)
    right_pos = left_pos + 1 + _ramp(n_after)
    a, b = order[left_pos], order[right_pos]
    return np.minimum(a, b), np.maximum(a, b), skipped_blocks, skipped_records


def _ramp(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for each s in sizes, concatenated (vectorised)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total == 0:
        return np.empty(0, np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total, dtype=np.int64) - offsets


class BlockingPassIndex(BaseIndexAlgorithm):
    """One blocking pass as a recordlinkage index algorithm on prepared key codes.

    ``method="exact"``: pairs of records equal on every key. ``method="sorted_neighbourhood"``: records
    sorted on one key; pairs whose values are at most ``window // 2`` distinct values apart (as in
    `recordlinkage.index.SortedNeighbourhood`), optionally within equal ``block_on`` keys.
    """

    def __init__(self, spec: BlockingPass, prepared: PreparedRecords, max_block_size: int):
        super().__init__(verify_integrity=False)
        self.spec, self.prepared, self.max_block_size = spec, prepared, max_block_size
        self.skipped_blocks = 0
        self.skipped_records = 0
        self.note = ""

    def missing_keys(self) -> list[str]:
        """The pass's keys that no record has a value for (e.g. names in a file of organisations)."""
        codes = self.prepared.codes
        return [k for k in (*self.spec.keys, *self.spec.block_on) if not (codes[k].to_numpy() >= 0).any()]

    def pair_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs as (lo, hi) record-id arrays with lo < hi; none, with a note, when a key of
        the pass has no value in any record."""
        codes = self.prepared.codes
        limit = self.spec.max_block_size or self.max_block_size
        missing = self.missing_keys()
        if missing:
            self.note = f"skipped: no record has a value for {', '.join(missing)}"
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if self.spec.method == "exact":
            key = _combined_key(codes, list(self.spec.keys))
            a, b, self.skipped_blocks, self.skipped_records = _pairs_within_blocks(key, limit)
            return a, b
        if self.spec.unit == "records":
            return self._record_window()
        sort_key = self.spec.keys[0]
        group = KEY_GROUPS.get(sort_key, sort_key)
        value = codes[sort_key].to_numpy().astype(np.int64)
        rank = np.where(value >= 0, self.prepared.sort_rank[group][np.maximum(value, 0)], -1)
        within = (
            _combined_key(codes, list(self.spec.block_on))
            if self.spec.block_on
            else np.zeros(len(codes), np.int64)
        )
        valid = (rank >= 0) & (within >= 0)
        # dense rank of the sort value among valid records, so "window" counts values that occur
        dense = np.full(len(codes), -1, dtype=np.int64)
        dense[valid] = np.unique(rank[valid], return_inverse=True)[1]
        key = dense
        a0, b0, self.skipped_blocks, self.skipped_records = _pairs_within_blocks(
            np.where(valid, within * (int(dense.max(initial=0)) + 1) + dense, -1), limit
        )
        frame = pd.DataFrame({"rid": np.flatnonzero(valid), "v": key[valid], "w": within[valid]})
        sizes = frame.groupby("v")["rid"].transform("size")
        frame = frame[sizes <= limit]
        lefts, rights = [a0], [b0]
        for d in range(1, self.spec.window // 2 + 1):
            shifted = frame.assign(v=frame["v"] - d)
            m = frame.merge(shifted, on=["v", "w"], suffixes=("_a", "_b"))
            lefts.append(m["rid_a"].to_numpy())
            rights.append(m["rid_b"].to_numpy())
        a, b = np.concatenate(lefts), np.concatenate(rights)
        return np.minimum(a, b), np.maximum(a, b)

    def _record_window(self) -> tuple[np.ndarray, np.ndarray]:
        """Each record with the next window - 1 records in (block_on, sort key, rid) order."""
        codes = self.prepared.codes
        sort_key = self.spec.keys[0]
        group = KEY_GROUPS.get(sort_key, sort_key)
        value = codes[sort_key].to_numpy().astype(np.int64)
        rank = np.where(value >= 0, self.prepared.sort_rank[group][np.maximum(value, 0)], -1)
        within = (
            _combined_key(codes, list(self.spec.block_on))
            if self.spec.block_on
            else np.zeros(len(codes), np.int64)
        )
        rids = np.flatnonzero((rank >= 0) & (within >= 0))
        order = rids[np.lexsort((rids, rank[rids], within[rids]))]
        lefts, rights = [], []
        for d in range(1, self.spec.window):
            a, b = order[:-d], order[d:]
            same = within[a] == within[b]
            lefts.append(a[same])
            rights.append(b[same])
        a = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
        b = np.concatenate(rights) if rights else np.empty(0, np.int64)
        return np.minimum(a, b), np.maximum(a, b)

    def _dedup_index(self, df_a: pd.DataFrame) -> pd.MultiIndex:
        a, b = self.pair_arrays()
        return pd.MultiIndex.from_arrays([b, a], names=["rid_b", "rid_a"])  # recordlinkage: lower triangle

    def _link_index(self, df_a: pd.DataFrame, df_b: pd.DataFrame) -> pd.MultiIndex:
        raise NotImplementedError("the unify stage links all sources at once (deduplication mode)")


def block(prepared: PreparedRecords, settings: UnifySettings) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Union of all blocking passes as sorted (lo, hi) arrays, and a per-pass count table (pairs, pairs
    no earlier pass found, cumulative, skipped oversized blocks and their records, seconds)."""
    import time

    n = len(prepared)
    source = prepared.codes["source"].to_numpy()
    codes, rows = [], []
    for spec in settings.blocking:
        start = time.perf_counter()
        alg = BlockingPassIndex(spec, prepared, settings.max_block_size)
        a, b = alg.pair_arrays()
        keep = a != b
        if not settings.link_within_source:
            keep &= source[a] != source[b]
        pair_code = np.unique(a[keep].astype(np.int64) * n + b[keep])
        codes.append(pair_code)
        rows.append(
            {
                "pass": spec.name,
                "keys": "+".join(spec.keys),
                "method": spec.method,
                "pairs": len(pair_code),
                "skipped_blocks": alg.skipped_blocks,
                "skipped_records": alg.skipped_records,
                "seconds": round(time.perf_counter() - start, 3),
                "note": alg.note,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["pass", "keys", "method", "pairs", "skipped_blocks", "skipped_records", "seconds", "note"],
    )
    if not codes:
        return np.empty(0, np.int64), np.empty(0, np.int64), table
    # the first pass that produced a pair owns it: the pass number rides in the low digits of the pair
    # code, so one in-place sort puts each pair's earliest pass first (no argsort index, no gathered copies)
    n_passes = len(codes)
    every = np.empty(sum(len(c) for c in codes), dtype=np.int64)
    start = 0
    for i, c in enumerate(codes):
        np.multiply(c, n_passes, out=every[start : start + len(c)])
        every[start : start + len(c)] += i
        start += len(c)
    del codes
    every.sort()
    owner = (every % n_passes).astype(np.int16)
    every //= n_passes
    first = np.empty(len(every), dtype=bool)
    first[:1] = True
    np.not_equal(every[1:], every[:-1], out=first[1:])
    table.insert(4, "new_pairs", np.bincount(owner[first], minlength=n_passes))
    table.insert(5, "cumulative_pairs", table["new_pairs"].cumsum())
    del owner
    union = every[first]
    del every, first
    return (union // n if n else union), (union % n if n else union), table


# --------------------------------------------------------------------------------------------------
# Comparisons: recordlinkage compare features on codes, scoring each distinct value pair once
# --------------------------------------------------------------------------------------------------

_SCORERS = {
    "jaro_winkler": JaroWinkler.normalized_similarity,
    "indel": Indel.normalized_similarity,
    "token_set": lambda a, b, **kw: fuzz.token_set_ratio(a, b, **kw) / 100.0,
    "damerau": DamerauLevenshtein.distance,
}


def _distinct_pair_values(
    a: np.ndarray, b: np.ndarray, vocab: np.ndarray, func, workers: int = 1
) -> np.ndarray:
    """`func(vocab[a], vocab[b])` computed once per distinct unordered code pair (codes >= 0)."""
    if len(a) == 0:
        return np.empty(0, dtype=np.float64)
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    codes, uniq = pd.factorize(lo * (len(vocab) + 1) + hi)
    ua, ub = uniq // (len(vocab) + 1), uniq % (len(vocab) + 1)
    if func in _SCORERS:
        values = process.cpdist(list(vocab[ua]), list(vocab[ub]), scorer=_SCORERS[func], workers=workers)
    else:
        values = np.array([func(x, y) for x, y in zip(vocab[ua], vocab[ub], strict=True)], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)[codes]


def _log2_tf(tf: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log2(tf).astype(np.float16)


class LevelComparison(BaseCompareFeature):
    """A comparison returning an int8 level per pair: -1 null, 0 disagree, higher levels in `labels`.

    `columns` are the key codes it reads, for the left and the right record of each pair. Subclasses
    implement `levels(left_codes, right_codes)`. `tf_levels` names the levels whose weight is adjusted
    by the term frequency of the agreeing value; `compute` then also returns that tf.
    """

    labels: tuple[str, ...] = ("else",)
    tf_group: str | None = None

    def __init__(
        self,
        name: str,
        columns: list[str],
        prepared: PreparedRecords,
        *,
        thresholds=(),
        tf_adjust: bool = False,
        workers: int = 1,
    ):
        super().__init__(columns, columns, label=[name, f"tf_{name}"] if tf_adjust else name)
        self.name, self.columns, self.prepared, self.workers = name, list(columns), prepared, workers
        self.thresholds = tuple(thresholds)
        self.tf_adjust = tf_adjust and self.tf_group is not None

    @property
    def tf_levels(self) -> dict[int, tuple[str, int]]:
        """Level -> (vocabulary group, input column) whose value frequency replaces u at that level."""
        return {len(self.labels) - 1: (self.tf_group, 0)}  # the top level is exact agreement

    @property
    def outputs(self) -> list[str]:
        """The feature columns `compute` fills: the level, then the tf when adjusted."""
        return [self.name, f"tf_{self.name}"] if self.tf_adjust else [self.name]

    def _compute_vectorized(self, *args: pd.Series):
        """recordlinkage's entry point: the left columns' values, then the right's."""
        half = len(args) // 2
        level, tf = self.compute([np.asarray(x) for x in args[:half]], [np.asarray(x) for x in args[half:]])
        return level if tf is None else (level, tf)

    def compute(
        self, left: list[np.ndarray], right: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Level per pair (int8) and, when tf-adjusted, the log2 frequency of the agreeing value."""
        level = self.levels(left, right).astype(np.int8)
        return level, (self.tf_values(level, left, right) if self.tf_adjust else None)

    def tf_values(self, level: np.ndarray, left: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
        """log2 frequency of the agreeing value at tf-adjusted levels (NaN elsewhere), as float16: two
        bytes a pair, 0.01-bit precision."""
        tf = np.full(len(level), np.nan, dtype=np.float32)
        for lvl, (group, column) in self.tf_levels.items():
            hit = level == lvl
            tf[hit] = self.prepared.tf[group][left[column][hit]]
        return _log2_tf(tf)

    def levels(self, left: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _similarity_levels(self, a, b, vocab, scorer, level, todo, first_level_index: int) -> None:
        """Assign fuzzy levels from thresholds (highest first) to pairs still `todo`."""
        if not todo.any() or not self.thresholds:
            return
        sim = _distinct_pair_values(a[todo], b[todo], vocab, scorer, self.workers)
        assigned = np.zeros(len(sim), dtype=bool)
        idx = np.flatnonzero(todo)
        for k, t in enumerate(self.thresholds):
            hit = (sim >= t) & ~assigned
            level[idx[hit]] = first_level_index - k
            assigned |= hit


class GivenNameComparison(LevelComparison):
    """Given names: exact, nickname/variant (Pepe=José), gender variant (Joan/Joana, Mario/María) kept as
    its own level so EM learns it is weak evidence, compound name containment (María José ~ María), then
    Jaro-Winkler bands on accent-free names."""

    tf_group = "given"

    @property
    def labels(self):  # type: ignore[override]
        sims = tuple(f"jaro_winkler>={t:g}" for t in reversed(self.thresholds))
        return ("else", *sims, "compound", "gender_variant", "nickname", "exact")

    def levels(self, left, right):
        (ga, ca), (gb, cb) = left, right
        vocab = self.prepared.vocab["given"]
        level = np.full(len(ga), -1, dtype=np.int8)
        known = (ga >= 0) & (gb >= 0)
        level[known] = 0
        top = len(self.labels) - 1
        exact = known & (ga == gb)
        level[exact] = top
        nick = known & ~exact & (ca == cb) & (ca >= 0)
        level[nick] = top - 1
        todo = known & ~exact & ~nick
        if todo.any():
            kind = _distinct_pair_values(ca[todo], cb[todo], vocab, _given_relation)
            idx = np.flatnonzero(todo)
            level[idx[kind == 2]] = top - 2
            level[idx[kind == 1]] = top - 3
            todo[idx[kind > 0]] = False
        if todo.any() and self.thresholds:  # similarity of the names as written or canonical, the higher
            sim = np.maximum(
                _distinct_pair_values(ga[todo], gb[todo], vocab, "jaro_winkler", self.workers),
                _distinct_pair_values(ca[todo], cb[todo], vocab, "jaro_winkler", self.workers),
            )
            idx = np.flatnonzero(todo)
            assigned = np.zeros(len(sim), dtype=bool)
            for k, t in enumerate(self.thresholds):
                hit = (sim >= t) & ~assigned
                level[idx[hit]] = top - 4 - k
                assigned |= hit
        return level


#: Masculine/feminine given names that are not a simple -o/-a or +a pair.
# fmt: off
GENDER_PAIRS = frozenset(frozenset(p) for p in [
    ("jose", "josefa"), ("jose", "josefina"), ("pablo", "paula"), ("andres", "andrea"), ("jesus", "jesusa"),
    ("carlos", "carla"), ("marcos", "marta"), ("jorge", "jorgina"), ("jordi", "jordina"), ("pau", "paula"),
    ("joan", "joana"), ("juan", "juana"), ("luis", "luisa"), ("manuel", "manuela"), ("gabriel", "gabriela"),
    ("daniel", "daniela"), ("miguel", "micaela"), ("enrique", "enriqueta"), ("ignacio", "ignacia"),
    ("vicente", "vicenta"), ("clemente", "clementa"), ("felipe", "felipa"), ("jaime", "jaimita"),
])
# fmt: on


def _is_gender_pair(fa: str, fb: str) -> bool:
    if fa == fb:
        return False
    if frozenset((fa, fb)) in GENDER_PAIRS:
        return True
    for x, y in ((fa, fb), (fb, fa)):
        if (
            y == x + "a"
            or (len(x) > 2 and x[-1] in "oe" and y == x[:-1] + "a")
            or (len(x) > 3 and x.endswith("os") and y == x[:-2] + "a")
        ):
            return True
    return False


def _given_relation(a: str, b: str) -> float:
    """2 = gender variant of the first name, 1 = one name's tokens contain the other's, 0 = neither."""
    if a[:2] != b[:2] and " " not in a and " " not in b:
        return 0.0  # single names with different starts: neither (the common case, decided fast)
    ta, tb = a.split(), b.split()
    fa, fb = ta[0], tb[0]
    if _is_gender_pair(fa, fb):
        return 2.0
    sa, sb = set(ta), set(tb)
    if len(ta) != len(tb) and (sa <= sb or sb <= sa):
        return 1.0
    return 0.0


class SurnameComparison(LevelComparison):
    """One family name (first or second): exact, equal to the other record's other surname (swapped),
    then Jaro-Winkler bands on accent-free surnames without particles."""

    tf_group = "surname"

    def __init__(self, name, columns, prepared, *, second: bool = False, **kw):
        self.second = second
        super().__init__(name, columns, prepared, **kw)

    @property
    def labels(self):  # type: ignore[override]
        sims = tuple(f"jaro_winkler>={t:g}" for t in reversed(self.thresholds))
        return ("else", *sims, "swapped", "exact")

    @property
    def tf_levels(self) -> dict[int, tuple[str, int]]:
        top = len(self.labels) - 1
        return {top: ("surname", 0), top - 1: ("surname", 0)}

    def tf_values(self, level, left, right):
        (fa, oa), (fb, ob) = left, right
        tf = np.full(len(level), np.nan, dtype=np.float32)
        top = len(self.labels) - 1
        freq = self.prepared.tf["surname"]
        exact = level == top
        tf[exact] = freq[np.where(fa == fb, fa, oa)[exact]]  # a full swap agrees on the other position
        swapped = level == top - 1
        value = np.where(fa == ob, fa, oa)  # the surname found in the other position
        tf[swapped] = freq[value[swapped]]
        return _log2_tf(tf)

    def levels(self, left, right):
        (fa, oa), (fb, ob) = left, right  # this surname and the other surname of each record
        level = np.full(len(fa), -1, dtype=np.int8)
        known = (fa >= 0) & (fb >= 0)
        level[known] = 0
        top = len(self.labels) - 1
        exact = known & (fa == fb)
        level[exact] = top
        swapped = known & ~exact & (((fa == ob) & (ob >= 0)) | ((fb == oa) & (oa >= 0)))
        if self.second:  # both surnames swapped: the swap is counted once, on the first surname
            both = swapped & (fa == ob) & (fb == oa)
            level[both] = top
            exact |= both
            swapped &= ~both
        level[swapped] = top - 1
        todo = known & ~exact & ~swapped
        self._similarity_levels(fa, fb, self.prepared.vocab["surname"], "jaro_winkler", level, todo, top - 2)
        return level


class StringComparison(LevelComparison):
    """Exact agreement, then similarity bands with a rapidfuzz scorer (on the vocabulary `group`)."""

    def __init__(self, name, columns, prepared, *, group: str, scorer: str = "jaro_winkler", **kw):
        self.group, self.scorer = group, scorer
        self.tf_group = group
        super().__init__(name, columns, prepared, **kw)

    @property
    def labels(self):  # type: ignore[override]
        sims = tuple(f"{self.scorer}>={t:g}" for t in reversed(self.thresholds))
        return ("else", *sims, "exact")

    def levels(self, left, right):
        (a,), (b,) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a >= 0) & (b >= 0)
        level[known] = 0
        top = len(self.labels) - 1
        exact = known & (a == b)
        level[exact] = top
        self._similarity_levels(
            a, b, self.prepared.vocab[self.group], self.scorer, level, known & ~exact, top - 1
        )
        return level


class TaxIdComparison(LevelComparison):
    """Tax ids: exact, partial (one edit or transposition apart: a typo), else."""

    labels = ("else", "partial", "exact")

    def levels(self, left, right):
        (a,), (b,) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a >= 0) & (b >= 0)
        level[known] = 0
        level[known & (a == b)] = 2
        todo = known & (a != b)
        if todo.any():
            dist = _distinct_pair_values(
                a[todo], b[todo], self.prepared.vocab["tax_id"], "damerau", self.workers
            )
            level[np.flatnonzero(todo)[dist <= 1]] = 1
        return level


class EmailComparison(LevelComparison):
    """E-mail: exact address, same local part on another domain, similar local part, else."""

    tf_group = "email"

    @property
    def labels(self):  # type: ignore[override]
        sims = tuple(f"local_jaro_winkler>={t:g}" for t in reversed(self.thresholds))
        return ("else", *sims, "same_local_part", "exact")

    @property
    def tf_levels(self) -> dict[int, tuple[str, int]]:
        top = (
            len(self.labels) - 1
        )  # "info@" or "admin@" on two domains says little: frequency of the local part
        return {top: ("email", 0), top - 1: ("email_local", 1)}

    def levels(self, left, right):
        (ea, la), (eb, lb) = left, right
        level = np.full(len(ea), -1, dtype=np.int8)
        known = (ea >= 0) & (eb >= 0)
        level[known] = 0
        top = len(self.labels) - 1
        exact = known & (ea == eb)
        level[exact] = top
        local = known & ~exact & (la == lb) & (la >= 0)
        level[local] = top - 1
        todo = known & ~exact & ~local & (la >= 0) & (lb >= 0)
        self._similarity_levels(
            la, lb, self.prepared.vocab["email_local"], "jaro_winkler", level, todo, top - 2
        )
        return level


class ExactComparison(LevelComparison):
    """Exact agreement or not (phone in E.164, IBAN, party type)."""

    labels = ("else", "exact")

    def __init__(self, name, columns, prepared, *, group: str | None = None, **kw):
        self.tf_group = group
        super().__init__(name, columns, prepared, **kw)

    def levels(self, left, right):
        (a,), (b,) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a >= 0) & (b >= 0)
        level[known] = np.where(a[known] == b[known], 1, 0)
        return level


class PartyTypeComparison(LevelComparison):
    """Party types: both companies (rare, so informative), both persons, or different."""

    labels = ("else", "both_person", "both_company")

    def levels(self, left, right):
        (a,), (b,) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a >= 0) & (b >= 0)
        level[known] = 0
        level[known & (a == 0) & (b == 0)] = 1
        level[known & (a == 1) & (b == 1)] = 2
        return level


class PostcodeComparison(LevelComparison):
    """Postcodes: exact, same first three digits (same area), else."""

    tf_group = "postcode"
    labels = ("else", "same_area", "exact")

    def levels(self, left, right):
        (a, a3), (b, b3) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a >= 0) & (b >= 0)
        level[known] = 0
        level[known & (a3 == b3) & (a3 >= 0)] = 1
        level[known & (a == b)] = 2
        return level


class BirthDateComparison(LevelComparison):
    """Birth dates (yyyymmdd ints): exact, day and month transposed, two of three parts equal, else."""

    labels = ("else", "one_part_differs", "day_month_swapped", "exact")

    def levels(self, left, right):
        (a,), (b,) = left, right
        level = np.full(len(a), -1, dtype=np.int8)
        known = (a > 0) & (b > 0)
        level[known] = 0
        ya, ma, da = a // 10000, a // 100 % 100, a % 100
        yb, mb, db = b // 10000, b // 100 % 100, b % 100
        same = (ya == yb).astype(int) + (ma == mb) + (da == db)
        level[known & (same == 2)] = 1
        level[known & (ya == yb) & (ma == db) & (da == mb) & (ma != da)] = 2
        level[known & (a == b)] = 3
        return level


#: The comparisons settings can enable (see build_comparisons).
COMPARISONS = (
    "given_name",
    "family_name_1",
    "family_name_2",
    "org_name",
    "tax_id",
    "email",
    "phone",
    "iban",
    "birth_date",
    "postcode",
    "address",
    "city",
    "province",
    "party_type",
)


def build_comparisons(prepared: PreparedRecords, settings: UnifySettings) -> list[LevelComparison]:
    """The enabled comparisons, configured from settings (thresholds, term-frequency adjustment)."""
    w = settings.workers
    factories = {
        "given_name": lambda c: GivenNameComparison(
            "given_name",
            ["given", "given_canon"],
            prepared,
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "family_name_1": lambda c: SurnameComparison(
            "family_name_1",
            ["family_name_1", "family_name_2"],
            prepared,
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "family_name_2": lambda c: SurnameComparison(
            "family_name_2",
            ["family_name_2", "family_name_1"],
            prepared,
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
            second=True,
        ),
        "org_name": lambda c: StringComparison(
            "org_name",
            ["org_name"],
            prepared,
            group="org_name",
            scorer="token_set",
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "tax_id": lambda c: TaxIdComparison("tax_id", ["tax_id"], prepared, workers=w),
        "email": lambda c: EmailComparison(
            "email",
            ["email", "email_local"],
            prepared,
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "phone": lambda c: ExactComparison(
            "phone", ["phone"], prepared, group="phone", tf_adjust=c.tf_adjust
        ),
        "iban": lambda c: ExactComparison("iban", ["iban"], prepared, group="iban", tf_adjust=c.tf_adjust),
        "birth_date": lambda c: BirthDateComparison("birth_date", ["birth_date"], prepared),
        "postcode": lambda c: PostcodeComparison(
            "postcode", ["postcode", "postcode3"], prepared, tf_adjust=c.tf_adjust
        ),
        "address": lambda c: StringComparison(
            "address",
            ["address"],
            prepared,
            group="address",
            scorer="indel",
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "city": lambda c: StringComparison(
            "city",
            ["city"],
            prepared,
            group="city",
            scorer="jaro_winkler",
            thresholds=c.thresholds,
            tf_adjust=c.tf_adjust,
            workers=w,
        ),
        "province": lambda c: ExactComparison("province", ["province"], prepared, group="province"),
        "party_type": lambda c: PartyTypeComparison("party_type", ["party"], prepared),
    }
    out = []
    for name, conf in settings.comparisons.items():
        if conf.enabled:
            if name not in factories:
                raise ValueError(
                    f"unify.comparisons: unknown comparison {name!r}; known: {sorted(factories)}"
                )
            out.append(factories[name](conf))
    return out


def compare_pairs(
    prepared: PreparedRecords,
    lo: np.ndarray,
    hi: np.ndarray,
    comparisons: list[LevelComparison],
    chunk_size: int,
    skip_when: dict[str, tuple[dict[str, list[str]], list[str]]] | None = None,
) -> pd.DataFrame:
    """Comparison levels (int8) and tf columns (float16, log2 frequency) for pairs (lo[i], hi[i]).

    The features are those `recordlinkage.Compare(comparisons, indexing_type="position")` computes
    (a test holds them equal), without its per-chunk frames: each comparison sees the codes of its
    columns taken at the pairs' positions, `chunk_size` pairs at a time, and writes into one
    preallocated array per output column.
    """
    n = len(lo)
    codes = {c: prepared.codes[c].to_numpy() for comp in comparisons for c in comp.columns}
    out: dict[str, np.ndarray] = {}
    for comp in comparisons:
        out[comp.name] = np.empty(n, dtype=np.int8)
        if comp.tf_adjust:
            out[f"tf_{comp.name}"] = np.empty(n, dtype=np.float16)
    # a column's taken codes are dropped after the last comparison that reads it (holding every column's
    # for the whole chunk cost ~80 MB per 500k pairs)
    last_use = {c: i for i, comp in enumerate(comparisons) for c in comp.columns}
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        taken: dict[tuple[str, int], np.ndarray] = {}  # codes of a column at the left/right records
        for i, comp in enumerate(comparisons):
            left = [_take(taken, codes, c, lo, start, stop, 0) for c in comp.columns]
            right = [_take(taken, codes, c, hi, start, stop, 1) for c in comp.columns]
            level, tf = comp.compute(left, right)
            out[comp.name][start:stop] = level
            if tf is not None:
                out[f"tf_{comp.name}"][start:stop] = tf
            del left, right, level, tf
            for c in comp.columns:
                if last_use[c] == i:
                    taken.pop((c, 0), None)
                    taken.pop((c, 1), None)
        del taken
    return apply_skip_rules(pd.DataFrame(out, copy=False), comparisons, skip_when or {})


def _take(
    cache: dict[tuple[str, int], np.ndarray],
    codes: dict[str, np.ndarray],
    column: str,
    rows: np.ndarray,
    start: int,
    stop: int,
    side: int,
) -> np.ndarray:
    """The codes of `column` at rows[start:stop], taken once per chunk and side."""
    key = (column, side)
    if key not in cache:
        cache[key] = codes[column][rows[start:stop]]
    return cache[key]


def apply_skip_rules(
    features: pd.DataFrame,
    comparisons: list[LevelComparison],
    skip_when: dict[str, tuple[dict[str, list[str]], list[str]]],
) -> pd.DataFrame:
    """Null a comparison (or some of its levels) where another comparison already counts its evidence:
    the postcode when the street address agrees (one place, counted once), an e-mail local part shared
    across domains when the names agree (the local part is made of the name)."""
    labels = {c.name: tuple(c.labels) for c in comparisons}
    for name, (rules, only_levels) in skip_when.items():
        if name not in features:
            continue
        hit = np.zeros(len(features), dtype=bool)
        for other, levels in rules.items():
            if other in features:
                codes = [labels[other].index(x) for x in levels if x in labels[other]]
                hit |= np.isin(features[other].to_numpy(), codes)
        if only_levels:
            hit &= np.isin(
                features[name].to_numpy(), [labels[name].index(x) for x in only_levels if x in labels[name]]
            )
        features.loc[hit, name] = np.int8(-1)
        if f"tf_{name}" in features:
            features.loc[hit, f"tf_{name}"] = np.nan
    return features


# --------------------------------------------------------------------------------------------------
# Fellegi-Sunter model: u from random pairs, m from anchors + EM, tf adjustment, household guard
# --------------------------------------------------------------------------------------------------


@dataclass
class FellegiSunter:
    """Multi-level Fellegi-Sunter parameters and the scoring rule (weights in bits, log2 Bayes factors)."""

    labels: dict[str, tuple[str, ...]]  # comparison -> level labels (index = level)
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    prior: float  # P(match) among candidate pairs
    tf_adjusted: dict[str, tuple[int, ...]]  # comparison -> levels whose u is the value's frequency
    tf_min_u: float = 1e-5
    guard: dict[str, Any] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)  # prior per EM iteration
    m_source: str = "priors"

    def level_weight(self, name: str) -> np.ndarray:
        return np.log2(self.m[name] / self.u[name])

    def contributions(
        self, features: pd.DataFrame, names: list[str] | None = None, guard: bool = True
    ) -> pd.DataFrame:
        """Weight (bits) each comparison adds for each pair; nulls add 0; tf replaces u at exact level."""
        out = {}
        for name in names or list(self.labels):
            level = features[name].to_numpy()
            w = np.where(level >= 0, self.level_weight(name)[np.maximum(level, 0)], 0.0)
            if name in self.tf_adjusted and f"tf_{name}" in features:
                log_tf = features[f"tf_{name}"].to_numpy(dtype=np.float32)  # log2 of the value's frequency
                hit = np.isin(level, self.tf_adjusted[name]) & ~np.isnan(log_tf)
                floor = np.float32(np.log2(self.tf_min_u))
                w[hit] = np.log2(self.m[name][level[hit]]) - np.maximum(log_tf[hit], floor)
            out[f"w_{name}"] = w.astype(np.float32)
        if guard:
            out["w_guard"] = self.guard_penalty(features).astype(np.float32)
        return pd.DataFrame(out, index=features.index)

    def guard_penalty(self, features: pd.DataFrame) -> np.ndarray:
        """Negative weight for person pairs that clearly disagree on a personal field (given name, birth
        date) without agreeing on a personal identifier: household members and namesakes share address,
        phone and surnames, which the independence assumption would otherwise count many times over."""
        g = self.guard
        penalty = np.zeros(len(features))
        if not g or not g.get("enabled", False):
            return penalty
        when = np.zeros(len(features), dtype=bool)
        for name, levels in g.get("when_any", {}).items():
            if name in features:
                when |= np.isin(
                    features[name].to_numpy(),
                    [self.labels[name].index(x) for x in levels if x in self.labels[name]],
                )
        unless = np.zeros(len(features), dtype=bool)
        for name, levels in g.get("unless_any", {}).items():
            if name in features:
                unless |= np.isin(
                    features[name].to_numpy(),
                    [self.labels[name].index(x) for x in levels if x in self.labels[name]],
                )
        penalty[when & ~unless] = -float(g.get("penalty", 0.0))
        return penalty

    def total_weight(self, features: pd.DataFrame, chunk_size: int = 250_000) -> np.ndarray:
        """Prior + every contribution, summed in row chunks (never the full per-comparison frame)."""
        total = np.empty(len(features), dtype=np.float64)
        for start in range(0, len(features), chunk_size):
            part = features.iloc[start : start + chunk_size]
            acc = np.full(len(part), self.prior_weight, dtype=np.float64)
            for name in self.labels:
                cols = [c for c in (name, f"tf_{name}") if c in part]
                acc += self.contributions(part[cols], names=[name], guard=False)[f"w_{name}"].to_numpy()
            acc += self.guard_penalty(part)
            total[start : start + chunk_size] = acc
        return total

    @property
    def prior_weight(self) -> float:
        return float(np.log2(self.prior / (1 - self.prior)))

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """Contributions, total match weight and match probability per pair."""
        contrib = self.contributions(features)
        weight = self.prior_weight + contrib.sum(axis=1).to_numpy(dtype=np.float64)
        contrib.insert(0, "match_weight", weight)
        contrib.insert(1, "match_probability", 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60))))
        return contrib

    def parameters(self) -> pd.DataFrame:
        """One row per comparison level: m, u and the weight in bits."""
        rows = []
        for name, labels in self.labels.items():
            for lvl, label in enumerate(labels):
                rows.append(
                    {
                        "comparison": name,
                        "level": lvl,
                        "label": label,
                        "m": self.m[name][lvl],
                        "u": self.u[name][lvl],
                        "weight": float(self.level_weight(name)[lvl]),
                        "tf_adjusted": lvl in self.tf_adjusted.get(name, ()),
                    }
                )
        rows.append(
            {
                "comparison": "prior",
                "level": -1,
                "label": "P(two random records match)",
                "m": self.prior,
                "u": 1 - self.prior,
                "weight": self.prior_weight,
                "tf_adjusted": False,
            }
        )
        return pd.DataFrame(rows)


def _level_distribution(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    known = levels >= 0
    w = np.ones(len(levels)) if weights is None else weights
    counts = np.bincount(levels[known], weights=w[known], minlength=n_levels)[:n_levels]
    return counts


def estimate_u(features: pd.DataFrame, labels: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """u probabilities from comparison levels of random record pairs (almost all non-matches)."""
    u = {}
    for name, lab in labels.items():
        counts = _level_distribution(features[name].to_numpy(), len(lab))
        total = counts.sum()
        floor = 0.5 / max(total, 1.0)  # an agreement never seen among random pairs: rarer than 1 in n
        p = np.maximum(counts / max(total, 1.0), floor)
        u[name] = p / p.sum()
    return u


def default_m(labels: tuple[str, ...]) -> np.ndarray:
    """A generic starting m: most matches agree exactly, a few fuzzily, 5 % disagree."""
    k = len(labels)
    if k == 1:
        return np.ones(1)
    m = np.full(k, 0.10 / max(k - 2, 1))
    m[0], m[-1] = 0.05, 0.85 if k > 2 else 0.95
    return m / m.sum()


def _patterns(features: pd.DataFrame, names: list[str], labels) -> tuple[np.ndarray, np.ndarray]:
    """Distinct comparison patterns (levels per comparison) and how many pairs have each."""
    if len(features) == 0:
        return np.zeros((0, len(names)), np.int64), np.zeros(0)
    levels = np.stack([features[nm].to_numpy().astype(np.int64) + 1 for nm in names], axis=1)
    base = max(len(labels[nm]) + 1 for nm in names)
    code = levels @ (base ** np.arange(len(names), dtype=np.int64))
    _, first, counts = np.unique(code, return_index=True, return_counts=True)
    return levels[first] - 1, counts.astype(np.float64)


def _em(
    patterns: np.ndarray,
    counts: np.ndarray,
    names: list[str],
    labels,
    m: dict[str, np.ndarray],
    u: dict[str, np.ndarray],
    prior: float,
    settings: UnifySettings,
    estimate: set[str],
) -> tuple[dict[str, np.ndarray], float, int]:
    """EM on pattern counts with u fixed: re-estimates the match share and m of the comparisons in
    `estimate` (smoothed towards their starting value); the others' m stay fixed as evidence."""
    m = {nm: m[nm].copy() for nm in names}
    start = {nm: m[nm].copy() for nm in names}
    log_u = {nm: np.log(u[nm]) for nm in names}
    it = 0
    for it in range(1, settings.em.max_iterations + 1):  # noqa: B007 (the count is returned)
        s = np.full(len(patterns), np.log(prior / (1 - prior)))
        for c, nm in enumerate(names):
            lv = patterns[:, c]
            ok = lv >= 0
            s[ok] += np.log(m[nm][lv[ok]]) - log_u[nm][lv[ok]]
        wg = counts / (1.0 + np.exp(-np.clip(s, -700, 700)))
        new_prior = float(np.clip(wg.sum() / counts.sum(), 1e-6, 1 - 1e-6))
        change = abs(new_prior - prior)
        for c, nm in enumerate(names):
            if nm not in estimate:
                continue
            dist = _level_distribution(patterns[:, c], len(labels[nm]), wg)
            new_m = (dist + settings.em.prior_strength * start[nm]) / (
                dist.sum() + settings.em.prior_strength
            )
            new_m = np.maximum(new_m, settings.em.min_probability)
            new_m /= new_m.sum()
            change = max(change, float(np.abs(new_m - m[nm]).max()))
            m[nm] = new_m
        prior = new_prior
        if change < settings.em.tolerance:
            break
    return m, prior, it


def fit_fellegi_sunter(
    features: pd.DataFrame,
    u: dict[str, np.ndarray],
    labels: dict[str, tuple[str, ...]],
    settings: UnifySettings,
    tf_adjusted: dict[str, tuple[int, ...]],
    n_pairs: float,
) -> FellegiSunter:
    """Estimate m without hand labels, then the prior, with u fixed from random pairs.

    m: anchors are taken in order (e.g. pairs agreeing on a validated tax id, then pairs sharing an
    e-mail address). EM runs on the candidate pairs inside each anchor and estimates m of the comparisons
    no earlier anchor estimated, except the anchor's own (biased there, as in Splink's training per
    blocking rule); m already estimated stays fixed and helps tell matches from non-matches inside the
    block (e.g. namesakes sharing a family e-mail). Comparisons no anchor observes keep their m prior.
    EM on all candidates at once is avoided: blocked non-matches agree far more often than the random
    pairs u describes, and EM would call them matches.
    Prior: the probability that two random records match, the fixed point of
    "expected matches among candidates / all record pairs" (pairs outside the candidates are taken as
    non-matches), so the match probability is calibrated over all pairs, whatever the blocking.
    """
    names = list(labels)
    m0 = {}
    for name in names:
        conf = settings.comparisons.get(name)
        prior_m = conf.m_prior if conf is not None else None
        base = (
            np.array([prior_m.get(lbl, 0.0) for lbl in labels[name]], dtype=float)
            if prior_m
            else default_m(labels[name])
        )
        base = np.maximum(base, 1e-4)
        m0[name] = base / base.sum()
    m = dict(m0)
    estimated: set[str] = set()
    used, iterations = [], 0
    for anchor in settings.anchors:
        if anchor.comparison not in features or anchor.level not in labels.get(anchor.comparison, ()):
            continue
        others = [nm for nm in names if nm != anchor.comparison]
        todo = {nm for nm in others if nm not in estimated}
        inside = features[anchor.comparison].to_numpy() == labels[anchor.comparison].index(anchor.level)
        if not todo or int(inside.sum()) < anchor.min_pairs:
            continue
        patterns, counts = _patterns(features.loc[inside, others], others, labels)
        m_a, share, it = _em(
            patterns, counts, others, labels, m, u, settings.em.initial_prior, settings, todo
        )
        iterations += it
        for nm in todo:
            if (patterns[:, others.index(nm)] >= 0).any():  # only comparisons this anchor can observe
                m[nm] = m_a[nm]
                estimated.add(nm)
        used.append(
            f"{anchor.comparison}={anchor.level}: {int(inside.sum())} pairs, ~{share * inside.sum():.0f} "
            f"matches, estimated {sorted(todo & estimated)}"
        )
    model = FellegiSunter(
        labels=labels,
        m=m,
        u=u,
        prior=0.5,
        tf_adjusted=tf_adjusted,
        tf_min_u=settings.tf_min_u,
        guard=settings.guard.model_dump(),
        m_source=("anchors: " + "; ".join(used)) if used else "priors (no anchor had enough pairs)",
    )
    weight = model.total_weight(features) - model.prior_weight if len(features) else np.zeros(0)
    bf = np.exp2(np.clip(weight, -200, 200))
    prior = max(1.0 / max(n_pairs, 1.0), 1e-12)
    for _ in range(200):
        expected = float((prior * bf / (prior * bf + 1 - prior)).sum())
        new_prior = min(max(expected / max(n_pairs, 1.0), 1e-15), 0.5)
        done = abs(np.log(new_prior / prior)) < 1e-6
        prior = new_prior
        if done:
            break
    model.prior = prior
    model.history = [float(iterations)]
    return model


def random_pairs(
    n: int, size: int, seed: int, source: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct random record pairs (lo < hi); across sources only when `source` is given."""
    rng = np.random.default_rng(seed)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    size = int(min(size, n * (n - 1) // 2))
    a = rng.integers(0, n, size=int(size * 1.2) + 10)
    b = rng.integers(0, n, size=len(a))
    keep = a != b
    if source is not None:
        keep &= source[a] != source[b]
    code = np.minimum(a, b)  # pair code lo * n + hi, built in place (fewer transient arrays)
    np.maximum(a, b, out=b)
    del a
    code *= n
    code += b
    del b
    code = pd.unique(code[keep])[:size]  # first occurrences: still a uniform sample
    code.sort()
    return code // n, code % n
