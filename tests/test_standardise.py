"""Field standardisers: known answers from the field libraries, fast paths equal to the libraries,
and properties (never raise, keep the index, idempotent) on arbitrary input."""

from __future__ import annotations

import datetime as dt
import re

import email_validator
import numpy as np
import pandas as pd
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum.es import nif as stdnum_nif

from helpers import standardise as std

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(fn, values, **kw) -> std.Standardised:
    return fn(pd.Series(values, dtype=object), **kw)


def one(fn, value, **kw):
    """(value, reason, placeholder) for a single raw value."""
    r = run(fn, [value], **kw)
    v = r.value.iloc[0]
    return (None if pd.isna(v) else v), r.reason.iloc[0], bool(r.placeholder.iloc[0])


# ------------------------------------------------------------------------------------------ tax ids


@pytest.mark.parametrize(
    "raw, expected, kind",
    [
        ("12345678Z", "12345678Z", "nif"),
        ("12.345.678-z", "12345678Z", "nif"),
        (" 12345678 z ", "12345678Z", "nif"),
        ("12345678", "12345678Z", "nif"),  # DNI without its letter: the letter is computed (a repair)
        (12345678, "12345678Z", "nif"),  # stored as a number
        (1234567.0, "01234567L", "nif"),  # stored as a number: leading zero and letter lost
        ("ES12345678Z", "12345678Z", "nif"),  # VAT form
        ("X1234567L", "X1234567L", "nie"),
        ("x-1234567-l", "X1234567L", "nie"),
        ("Y1234567X", "Y1234567X", "nie"),
        ("K1234567L", "K1234567L", "nif"),
        ("B12345674", "B12345674", "cif"),
        ("A58818501", "A58818501", "cif"),
        ("B-58378431", "B58378431", "cif"),
    ],
)
def test_tax_id_valid(raw, expected, kind):
    r = run(std.tax_id, [raw])
    assert r.value.iloc[0] == expected
    assert r.reason.iloc[0] is None
    assert r.kind.iloc[0] == kind
    assert stdnum_nif.is_valid(expected)  # the known answer agrees with python-stdnum


@pytest.mark.parametrize(
    "raw",
    [
        "12345678A",
        "X1234567A",
        "B12345675",
        "A58818502",
        "123",
        "ABCDEFGHI",
        "1234567Z8",
        "O1234567L",
        "12345678ZZ",
        5,
    ],
)
def test_tax_id_invalid(raw):
    assert one(std.tax_id, raw) == (None, "invalid_tax_id", False)
    assert not stdnum_nif.is_valid(str(raw))


@pytest.mark.parametrize("raw", ["00000000T", "00000000", "11111111H", "X0000000T"])
def test_tax_id_dummies_are_placeholders(raw):
    assert one(std.tax_id, raw) == (None, None, True)


def test_tax_id_kind_helper():
    kinds = std.tax_id_kind(pd.Series(["12345678Z", "X1234567L", "B12345674", "bad", None]))
    assert kinds.tolist() == ["nif", "nie", "cif", None, None]


@FAST
@given(st.integers(0, 99_999_999))
def test_generated_nif_always_validates(n):
    number = f"{n:08d}" + DNI_LETTERS[n % 23]
    assert stdnum_nif.is_valid(number)
    r = run(std.tax_id, [number])
    if len(set(number[:8])) == 1:  # 00000000T, 11111111H: dummies
        assert r.placeholder.iloc[0] and r.value.isna().all()
    else:
        assert r.value.iloc[0] == number and r.kind.iloc[0] == "nif" and r.reason.iloc[0] is None


@FAST
@given(st.integers(0, 9_999_999), st.sampled_from("XYZ"))
def test_generated_nie_always_validates(n, prefix):
    number = f"{prefix}{n:07d}" + DNI_LETTERS[int(str("XYZ".index(prefix)) + f"{n:07d}") % 23]
    dummy = len(set(number[1:8])) == 1
    assert one(std.tax_id, number) == ((None, None, True) if dummy else (number, None, False))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789XYZKLMABJNPW- .", min_size=7, max_size=12))
def test_tax_id_fast_path_agrees_with_stdnum(raw):
    value, reason, placeholder = one(std.tax_id, raw)
    compact = re.sub(r"[\s.\-]", "", raw).upper()
    if value is not None:
        assert stdnum_nif.is_valid(value)
    if stdnum_nif.is_valid(compact) and not placeholder:
        assert value == compact
    if reason is not None:
        assert not stdnum_nif.is_valid(compact)


# -------------------------------------------------------------------------------------------- IBAN


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ES9121000418450200051332", "ES9121000418450200051332"),
        ("es91 2100 0418 4502 0005 1332", "ES9121000418450200051332"),
        ("IBAN ES91-2100-0418-4502-0005-1332", "ES9121000418450200051332"),
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
    ],
)
def test_iban_valid(raw, expected):
    assert one(std.iban, raw) == (expected, None, False)
    assert stdnum_iban.is_valid(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "ES9121000418450200051333",
        "ES9121000418450200051",
        "GB82WEST12345698765433",
        "ES7921000418450200051332",
        "hello",
    ],
)
def test_iban_invalid(raw):
    assert one(std.iban, raw) == (None, "invalid_iban", False)


def test_iban_wrong_ccc_control_digits_is_invalid():
    # a correct IBAN checksum around a Spanish account number with wrong control digits ("DC")
    ccc = "21000418" + "99" + "0200051332"
    number = "ES" + stdnum_iban.calc_check_digits("ES00" + ccc) + ccc
    assert not stdnum_iban.is_valid(number)
    assert one(std.iban, number)[1] == "invalid_iban"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=20, max_size=20), st.booleans())
def test_spanish_iban_fast_path_agrees_with_stdnum(ccc, fix_checksum):
    check = stdnum_iban.calc_check_digits("ES00" + ccc) if fix_checksum else ccc[:2]
    number = "ES" + check + ccc
    assert std._iban_valid(number) == stdnum_iban.is_valid(number)


# ------------------------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    "raw, expected",
    [
        (" Juan.Perez@Gmail.COM ", "juan.perez@gmail.com"),  # trimmed, lower case, dots kept
        ("ana+news@empresa.es", "ana+news@empresa.es"),
        ("ana@example.com", "ana@example.com"),  # RFC 2606 example domains are accepted
        ("cliente@tienda.test", "cliente@tienda.test"),  # test domains accepted by default
        ("Ana López <ANA@x.es>", "ana@x.es"),  # display-name form
        ("josé@correo.es", "josé@correo.es"),  # internationalised local part
        ("a@xn--bcher-kva.de", "a@bücher.de"),  # IDNA normalised by email-validator
    ],
)
def test_email_valid(raw, expected):
    assert one(std.email, raw) == (expected, None, False)


@pytest.mark.parametrize(
    "raw",
    [
        "ana@gmail",
        "ana.gmail.com",
        "a..b@x.es",
        ".a@x.es",
        "a@x..es",
        "a@-x.es",
        "a b@x.es",
        "ana@x.local",
        "ana@localhost",
        "ana@x.invalid",
        "ana@x.onion",
        "a@b.c1",
    ],
)
def test_email_invalid(raw):
    assert one(std.email, raw) == (None, "invalid_email", False)


def test_email_test_domains_can_be_rejected():
    assert one(std.email, "a@shop.test", allow_test_domains=False)[1] == "invalid_email"


@pytest.mark.parametrize(
    "raw", ["test@test.com", "no@tiene.com", "noemail@gmail.com", "NOEMAIL@empresa.es", "sin email", "n/a"]
)
def test_email_placeholders(raw):
    assert one(std.email, raw) == (None, None, True)


def _library_verdict(e: str) -> str | None:
    try:
        return validate_email(
            e, check_deliverability=False, test_environment=True, globally_deliverable=True
        ).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet="ab1.-_+@xnä", min_size=3, max_size=20).map(lambda t: t + ".es")
    | st.emails().map(str.lower)
)
def test_email_fast_path_equals_email_validator(e):
    special = tuple(d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if d != "test")
    if std._email_fast_ok(e, special):
        assert _library_verdict(e) == e
    value, reason, placeholder = one(std.email, e)
    if not placeholder:
        assert value == _library_verdict(e)
        assert (reason is None) == (value is not None)


# ------------------------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+34 612 34 56 78", "+34612345678"),
        ("0034612345678", "+34612345678"),
        ("34612345678", "+34612345678"),
        ("612.345.678", "+34612345678"),
        ("612345678", "+34612345678"),
        ("(+34) 612-345-678", "+34612345678"),
        (612345678.0, "+34612345678"),
        ("612345678.0", "+34612345678"),
        ("912 345 678", "+34912345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_valid(raw, expected):
    assert one(std.phone, raw) == (expected, None, False)


@pytest.mark.parametrize("raw", ["12345", "abc", "+34 123 456 789", "6123456789012", "+99 123"])
def test_phone_invalid(raw):
    assert one(std.phone, raw) == (None, "invalid_phone", False)


@pytest.mark.parametrize(
    "raw", ["000000000", "999999999", "999 999 999", "+34 666666666", "111-111-111", "0"]
)
def test_phone_placeholders(raw):
    assert one(std.phone, raw) == (None, None, True)


def test_phone_default_country():
    assert one(std.phone, "06 12 34 56 78", default_country="FR")[0] == "+33612345678"


@settings(max_examples=200, deadline=None)
@given(st.integers(100_000_000, 999_999_999), st.sampled_from(["", "+34", "0034", "34", "+34 "]))
def test_phone_fast_path_equals_phonenumbers(n, prefix):
    raw = f"{prefix}{n}"
    value, reason, placeholder = one(std.phone, raw)
    if placeholder:
        return
    parsed = phonenumbers.parse(raw, "ES")
    if phonenumbers.is_valid_number(parsed):
        assert value == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    else:
        assert (value, reason) == (None, "invalid_phone")


# ------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  MARÍA   DEL CARMEN ", "María del Carmen"),
        ("josé luis DE LA FUENTE", "José Luis de la Fuente"),
        ("ortega y gasset", "Ortega y Gasset"),
        ("PUIG I CADAFALCH", "Puig i Cadafalch"),
        ("garcía-pelayo", "García-Pelayo"),
        ("o'donnell", "O'Donnell"),
        ("ÁNGELES NÚÑEZ", "Ángeles Núñez"),
        ("La Rosa", "La Rosa"),  # an article not after "de" keeps its capital
    ],
)
def test_person_name(raw, expected):
    assert one(std.person_name, raw) == (expected, None, False)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("María-José O'Donnell", "MARIA JOSE ODONNELL"),
        ("  núñez   de   ARCE ", "NUNEZ DE ARCE"),
        ("Çelik Straße", "CELIK STRASSE"),
    ],
)
def test_name_key(raw, expected):
    assert one(std.name_key, raw) == (expected, None, False)


@pytest.mark.parametrize(
    "raw, given_name, family",
    [
        ("María del Carmen Prados García", "María del Carmen", "Prados García"),
        ("José Luis Rodríguez", "José Luis", "Rodríguez"),  # compound given name + one surname
        ("JOSE LUIS RODRIGUEZ ZAPATERO", "Jose Luis", "Rodriguez Zapatero"),
        ("Juan Carlos de la Fuente García", "Juan Carlos", "de la Fuente García"),
        ("Miguel Ángel Martín", "Miguel Ángel", "Martín"),
        ("María José López Ruiz", "María José", "López Ruiz"),
        ("Mª José López Ruiz", "Mª José", "López Ruiz"),
        ("María de los Ángeles Sánchez", "María de los Ángeles", "Sánchez"),
        ("Ana García", "Ana", "García"),  # two tokens: given + one surname
        ("Juan García López", "Juan", "García López"),
        ("Ana de la Fuente", "Ana", "de la Fuente"),
        ("Pedro Fernández de Córdoba", "Pedro", "Fernández de Córdoba"),
        ("Luis García-Pelayo Ruiz", "Luis", "García-Pelayo Ruiz"),  # hyphenated surname kept whole
        ("Santiago Ramón y Cajal", "Santiago", "Ramón y Cajal"),
        ("Prados García, María del Carmen", "María del Carmen", "Prados García"),
        ("Sra. Dña. Lucía Pérez Gil", "Lucía", "Pérez Gil"),
        ("Madonna", "Madonna", None),
        ("José Luis", "José Luis", None),
    ],
)
def test_split_full_name(raw, given_name, family):
    g, f = std.split_full_name(pd.Series([raw]))
    assert (g.iloc[0], f.iloc[0]) == (given_name, family)


@pytest.mark.parametrize(
    "raw, first, second",
    [
        ("de la Fuente García", "de la Fuente", "García"),
        ("García López", "García", "López"),
        ("GARCÍA", "García", None),  # single surname
        ("García-Pelayo López", "García-Pelayo", "López"),
        ("del Río Ruiz", "del Río", "Ruiz"),
        ("López de los Santos", "López", "de los Santos"),
        ("San Martín Pérez", "San Martín", "Pérez"),
        ("Ramón y Cajal", "Ramón", "Cajal"),
        ("Puig i Cadafalch", "Puig", "Cadafalch"),
        ("Fernández de Córdoba López", "Fernández de Córdoba", "López"),
    ],
)
def test_split_family_names(raw, first, second):
    a, b = std.split_family_names(pd.Series([raw]))
    assert (a.iloc[0], b.iloc[0]) == (first, second)


def test_splits_keep_index_and_nulls():
    s = pd.Series(["Ana García", None, "n/a"], index=["x", "y", "z"])
    g, f = std.split_full_name(s)
    assert (
        list(g.index) == ["x", "y", "z"]
        and g.tolist() == ["Ana", None, None]
        and f.tolist() == ["García", None, None]
    )


# ------------------------------------------------------------------------------------------- dates


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def test_date_iso_and_timezones():
    r = run(
        std.date,
        [
            "2024-01-05",
            "2024-01-05T10:30:00",
            "2024-01-05 10:30",
            "2024-03-31T23:30:00Z",  # CEST begins that night: 01:30 Madrid on 1 April
            "2024-01-15T12:00:00+00:00",  # winter: +1 h
            "2024-07-01T10:00:00+02:00",
        ],
    )  # already Madrid summer time
    assert r.value.tolist() == [
        ts("2024-01-05"),
        ts("2024-01-05 10:30"),
        ts("2024-01-05 10:30"),
        ts("2024-04-01 01:30"),
        ts("2024-01-15 13:00"),
        ts("2024-07-01 10:00"),
    ]
    assert r.reason.isna().all()
    assert str(r.value.dtype) == "datetime64[ns]"


def test_date_timezone_utc_option():
    assert one(std.date, "2024-07-01T10:00:00+02:00", tz=None)[0] == ts("2024-07-01 08:00")


def test_date_with_format():
    r = run(
        std.date, ["05/01/2024", "5/1/2024", "31/02/2024", "2024-01-05", "hoy", "31/12/1899"], fmt="%d/%m/%Y"
    )
    assert r.value.tolist()[:2] == [ts("2024-01-05")] * 2
    assert r.value.iloc[3] == ts("2024-01-05")  # ISO text is accepted in any source
    assert r.reason.tolist() == [None, None, "invalid_date", None, "invalid_date", "date_out_of_range"]


def test_date_format_without_time_accepts_a_time():
    r = run(std.date, ["05/01/2024 10:30", "05/01/2024 10:30:15", "05/01/2024 25:00"], fmt="%d/%m/%Y")
    assert r.value.tolist()[:2] == [ts("2024-01-05 10:30"), ts("2024-01-05 10:30:15")]
    assert r.reason.tolist() == [None, None, "invalid_date"]


def test_date_dayfirst_without_format():
    assert one(std.date, "05/01/2024", dayfirst=True)[0] == ts("2024-01-05")
    assert one(std.date, "05/01/2024")[0] == ts("2024-05-01")  # month first, as pandas
    assert one(std.date, "31/01/2024")[1] == "invalid_date"


def test_date_out_of_range():
    r = run(std.date, ["1850-06-01", "9999-12-31", "0001-01-01", "2030-01-01"], max_date="2026-11-10")
    assert r.reason.tolist() == ["date_out_of_range"] * 4
    assert r.value.isna().all()


def test_date_max_date_as_a_day_includes_that_day():
    r = run(std.date, ["2026-11-10T18:00:00", "2026-11-11"], max_date=dt.date(2026, 11, 10))
    assert r.reason.tolist() == [None, "date_out_of_range"]


def test_date_cells_already_parsed_and_excel_serials():
    r = run(
        std.date,
        [
            dt.datetime(2024, 1, 1, 12),
            pd.Timestamp("2024-01-01 12:00", tz="UTC"),
            dt.date(2024, 5, 6),
            45000,
            45000.5,
            20240105,
            True,
            np.datetime64("2024-02-03"),
        ],
    )
    assert r.value.tolist()[:6] == [
        ts("2024-01-01 12:00"),
        ts("2024-01-01 13:00"),
        ts("2024-05-06"),
        ts("2023-03-15"),
        ts("2023-03-15 12:00"),
        ts("2024-01-05"),
    ]
    assert r.reason.tolist()[6] == "invalid_date"
    assert r.value.iloc[7] == ts("2024-02-03")


def test_date_datetime64_series():
    s = pd.Series(pd.to_datetime(["2024-01-01", None, "1800-01-01"]))
    r = std.date(s)
    assert r.value.tolist()[0] == ts("2024-01-01") and r.reason.tolist() == [None, None, "date_out_of_range"]
    aware = pd.Series(pd.to_datetime(["2024-01-15 12:00"]).tz_localize("UTC"))
    assert std.date(aware).value.iloc[0] == ts("2024-01-15 13:00")


def test_date_zero_dates_are_placeholders():
    r = run(std.date, ["0000-00-00", "00/00/0000", "n/a"])
    assert r.placeholder.all() and r.reason.isna().all()


# ------------------------------------------------------------------------------ numbers and booleans


def test_number_decimal_comma():
    r = run(
        std.number,
        [
            "1.234,56",
            "1234,5",
            "-12,50",
            "12,50-",
            "(12,50)",
            "1.234",
            "€ 1.000,00",
            "0,5",
            12,
            3.5,
            "12,3,4",
            "abc",
            "1.23,4",
            "12.34",
            "inf",
            "",
        ],
        decimal=",",
        thousands=".",
    )
    assert r.value.tolist()[:10] == [1234.56, 1234.5, -12.5, -12.5, -12.5, 1234.0, 1000.0, 0.5, 12.0, 3.5]
    assert r.reason.tolist()[10:] == ["invalid_number"] * 5 + [None]


def test_number_decimal_point():
    r = run(std.number, ["1,234.56", "1234.56", "1e3", ".5", "-7", "1,23"], decimal=".", thousands=",")
    assert r.value.tolist()[:5] == [1234.56, 1234.56, 1000.0, 0.5, -7.0]
    assert r.reason.iloc[5] == "invalid_number"
    assert one(std.number, "1,234.56")[1] == "invalid_number"  # no thousands separator declared


def test_number_numeric_series_passes_through():
    r = std.number(pd.Series([1.5, np.nan, np.inf]))
    assert r.value.iloc[0] == 1.5 and r.reason.tolist() == [None, None, "invalid_number"]


def test_number_rejects_same_separators():
    with pytest.raises(ValueError, match="thousands"):
        std.number(pd.Series(["1"]), decimal=",", thousands=",")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Sí", True),
        ("si", True),
        ("S", True),
        ("yes", True),
        ("Y", True),
        ("true", True),
        ("1", True),
        ("x", True),
        ("VERDADERO", True),
        (1, True),
        (1.0, True),
        (True, True),
        ("No", False),
        ("n", False),
        ("FALSE", False),
        ("0", False),
        ("falso", False),
        (0, False),
        (False, False),
    ],
)
def test_boolean(raw, expected):
    assert one(std.boolean, raw) == (expected, None, False)


@pytest.mark.parametrize("raw", ["maybe", 2, "sí sí", "-1"])
def test_boolean_invalid(raw):
    assert one(std.boolean, raw) == (None, "invalid_bool", False)


def test_boolean_dtype_is_nullable():
    r = run(std.boolean, ["sí", None, "n/a"])
    assert str(r.value.dtype) == "boolean" and r.value.isna().tolist() == [False, True, True]
    assert r.placeholder.tolist() == [False, False, True]


# ------------------------------------------------------------------------- postcodes and countries


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("08001", "08001"),
        (8001, "08001"),
        (8001.0, "08001"),
        ("8001", "08001"),
        ("8001.0", "08001"),
        ("28 001", "28001"),
        ("52006", "52006"),
        ("01001", "01001"),
    ],
)
def test_postcode_valid(raw, expected):
    assert one(std.postcode, raw) == (expected, None, False)


@pytest.mark.parametrize("raw", ["53000", "99999", "123", "280011", "abc", "8001.5"])
def test_postcode_invalid(raw):
    assert one(std.postcode, raw) == (None, "invalid_postcode", False)


def test_provinces_table_is_the_52_ine_codes():
    assert list(std.PROVINCES) == [f"{i:02d}" for i in range(1, 53)]
    assert std.PROVINCES["01"] == "Araba/Álava" and std.PROVINCES["28"] == "Madrid"
    assert std.PROVINCES["52"] == "Melilla"


def test_province_from_postcode():
    got = std.province_from_postcode(
        pd.Series(["08001", 28001, "8001", "41001", "99999", None], index=list("abcdef"))
    )
    assert got.tolist() == ["Barcelona", "Madrid", "Barcelona", "Sevilla", None, None]
    assert list(got.index) == list("abcdef")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("España", "ES"),
        ("ESPAÑA", "ES"),
        ("spain", "ES"),
        ("ES", "ES"),
        ("es", "ES"),
        ("ESP", "ES"),
        ("Francia", "FR"),
        ("EE.UU.", "US"),
        ("Reino Unido", "GB"),
        ("UK", "GB"),
        ("Alemania", "DE"),
        ("Países Bajos", "NL"),
        ("MX", "MX"),
        ("Portugal", "PT"),
    ],
)
def test_country(raw, expected):
    assert one(std.country, raw) == (expected, None, False)


def test_country_invalid():
    assert one(std.country, "Narnia") == (None, "invalid_country", False)


def test_text():
    r = run(std.text, ["  a  b\n c ", "", None, 8001.0, "n/a", "Jose\u0301"])
    assert r.value.tolist() == ["a b c", None, None, "8001", None, "José"]
    assert r.placeholder.tolist() == [False, False, False, False, True, False]


# ---------------------------------------------------------------------------------- placeholders


def test_placeholders_are_nulled_without_reason_and_counted():
    raw = ["N/A", "desconocido", " Sin  Datos ", "?", "--", "null", "12345678Z", None, "", "bad"]
    r = run(std.tax_id, raw)
    assert r.placeholder.sum() == 6
    assert r.value.notna().sum() == 1
    assert r.reason.tolist().count("invalid_tax_id") == 1
    assert r.counts() == {"invalid_tax_id": 1, "placeholder": 6}


def test_placeholders_are_configurable():
    assert one(std.text, "N/A", placeholders=[]) == ("N/A", None, False)
    assert one(std.text, "XXX", placeholders=["xxx"]) == (None, None, True)


# ------------------------------------------------------------------------------------ properties

STANDARDISERS = {
    "tax_id": std.tax_id,
    "iban": std.iban,
    "email": std.email,
    "phone": std.phone,
    "person_name": std.person_name,
    "name_key": std.name_key,
    "date": std.date,
    "date_fmt": lambda s: std.date(s, fmt="%d/%m/%Y"),
    "number": std.number,
    "number_comma": lambda s: std.number(s, decimal=",", thousands="."),
    "boolean": std.boolean,
    "postcode": std.postcode,
    "country": std.country,
    "text": std.text,
}
raw_cells = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(-(10**10), 10**10),
    st.integers(),  # unbounded: float() overflows
    st.floats(allow_nan=True),
    st.decimals(),  # includes NaN and signalling NaN (unhashable)
    st.booleans(),
    st.lists(st.integers(), max_size=2),  # JSON arrays are unhashable
    st.sampled_from(
        [
            "12345678Z",
            "X1234567L",
            "ES9121000418450200051332",
            "ana@x.es",
            "+34612345678",
            "2024-02-29",
            "31/12/2024",
            "1.234,56",
            "sí",
            "08001",
            "España",
            "María del Carmen",
            "n/a",
            "000000000",
            "0000-00-00",
        ]
    ),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
)


@pytest.mark.parametrize("name", list(STANDARDISERS))
@FAST
@given(cells=st.lists(raw_cells, max_size=8), offset=st.integers(0, 1000))
def test_never_raises_keeps_index_and_is_idempotent(name, cells, offset):
    fn = STANDARDISERS[name]
    index = pd.Index([f"r{offset + i}" for i in range(len(cells))])
    s = pd.Series(cells, index=index, dtype=object)
    r = fn(s)
    for part in (r.value, r.reason, r.placeholder):
        assert part.index.equals(index) and len(part) == len(s)
    assert set(r.reason.dropna()) <= set(std.REASONS)
    assert not (r.reason.notna() & r.value.notna()).any()
    assert not (r.reason.notna() & r.placeholder).any()
    again = fn(r.value)
    assert again.reason.isna().all(), again.reason[again.reason.notna()]
    assert not again.placeholder.any()
    pd.testing.assert_series_equal(again.value, r.value, check_dtype=name not in ("date", "date_fmt"))


@FAST
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), max_size=8))
def test_name_splits_never_raise(cells):
    s = pd.Series(cells, dtype=object)
    given_name, family = std.split_full_name(s)  # "García López," gives a family without a given name
    assert len(given_name) == len(family) == len(s) and given_name.index.equals(s.index)
    first, second = std.split_family_names(s)
    assert len(first) == len(second) == len(s) and first.index.equals(s.index)
    assert not (first.isna() & second.notna()).any()  # a second surname never comes without a first
