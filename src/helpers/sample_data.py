"""The sample company: "Hogar Ibérica", a Spanish home-goods retailer, as its silo systems deliver it.

`generate` writes every raw source that ``params/sources.yaml`` declares, exactly as declared (path,
format, encoding, delimiter, decimal comma, date format, raw column names: that file is the contract
with ingest), and, in a separate directory, the ground truth that no pipeline stage may read: the
real party behind each source record, every injected defect, the planted campaign effects and the
sentiment of each social mention (see TRUTH_README below, also written next to the truth files).

How the data is made
- A population of customers, ~90 % persons and ~10 % companies, with the traits that drive their
  records: identity (names, NIF/NIE/CIF, birth date, e-mail, phones, address, IBAN), consents, a
  preferred channel, a responsiveness to campaigns, a payment behaviour, a satisfaction level and a
  relationship trajectory that shapes their purchase frequency over the months of history.
  Households share an address (sometimes a landline, a surname, a joint IBAN); namesakes share a
  full name and nothing else.
- Each party source holds a subset of the customers, each at most once, with the identity noise
  of real life (NOISE, MISSING). Transactions and interactions follow from the traits.
- Defects are injected at small measured rates (DEFECTS, DUPLICATE_RATE) and listed in the truth
  with the row number a reader sees: the 1-based record position in the file, header excluded (CSV
  data record, JSONL line, JSON array element, Excel data row, SQL result row).

Every random draw comes from a numpy Generator seeded by (seed, stage name): the same arguments
give byte-identical files. The heavy tables (invoice lines, web order items) are built with
vectorised numpy/pandas; per-record Python runs only over small subsets and over serialisation.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["generate", "customers_for_records"]

# =============================================================================== scale and people
COMPANY_SHARE = 0.10  # companies among customers
FOREIGNER_SHARE = 0.03  # persons with an NIE (X/Y/Z) instead of a DNI
FOREIGN_NAME_SHARE = 0.5  # of foreigners, non-Spanish names with one surname (the rest: Latin American)
REGIONAL_NAME_SHARE = 0.35  # persons in Catalonia / Basque Country / Galicia with a regional given name
REGIONAL_SURNAME_SHARE = 0.30  # ... and a regional surname (each surname drawn separately)
HOUSEHOLD_SHARE = 0.10  # persons living at the address of another customer
HOUSEHOLD_TYPES = {"couple": 0.55, "parent_child": 0.35, "siblings": 0.10}
SHARED_LANDLINE = 0.70  # household members that share the head's landline (when the head has one)
JOINT_IBAN = 0.40  # couples that pay from a joint account
NAMESAKE_SHARE = 0.01  # persons given the full name of another person (other NIF, birth date, city)
OLD_EMAIL_SHARE = 0.20  # persons with an older e-mail address still found in some systems
LANDLINE_SHARE = 0.40  # persons with a landline
NEW_CUSTOMER_SHARE = 0.30  # customers whose relationship starts inside the window

#: Trajectory -> share, and the purchase intensity m(t) = a + b·t over the window (t in [0, 1]).
TRAJECTORIES = {"advancing": 0.25, "stagnating": 0.40, "regressing": 0.20, "churned": 0.15}
TRAJECTORY_SHAPE = {
    "advancing": (0.4, 1.2),
    "stagnating": (1.0, 0.0),
    "regressing": (1.6, -1.2),
    "churned": (1.0, 0.0),
}
CHURN_POINT = (0.25, 0.85)  # churned customers stop buying at this fraction of their active window
PAYMENT_BEHAVIOURS = {
    "person": {"on_time": 0.60, "late": 0.22, "very_late": 0.10, "some_unpaid": 0.08},
    "company": {"on_time": 0.45, "late": 0.30, "very_late": 0.15, "some_unpaid": 0.10},
}
UNPAID_SHARE = 0.30  # invoices left unpaid by "some_unpaid" customers
SATISFACTION_SHIFT = {"advancing": 0.5, "stagnating": 0.0, "regressing": -0.5, "churned": -0.8}
SATISFACTION_CUTS = (-1.5, -0.8, 0.0, 0.9)  # latent N(0,1)+shift -> satisfaction 1..5
CONSENT_RATES = {"email": 0.85, "sms": 0.78, "phone": 0.75, "mail": 0.90}  # the preferred channel: always
PREFERRED_CHANNELS = {"email": 0.45, "sms": 0.20, "phone": 0.20, "mail": 0.15}
RESPONSIVENESS_BETA = (2.0, 5.0)  # propensity to answer a campaign (mean 0.29)
MONTHLY_PURCHASES = {"person": (0.28, 0.7), "company": (0.9, 0.6)}  # lognormal median, sigma
FOREIGN_CURRENCY = {"USD": 0.03, "GBP": 0.02}  # companies invoiced in another currency
FX_PER_EUR = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85}
FAVOURITE_CATEGORY_SHARE = 0.45  # lines bought from the customer's favourite category

# =============================================================================== source coverage
#: Share of persons / companies present in each party source (each at most once per source).
COVERAGE = {
    "erp_customers": (0.667, 1.00),
    "crm_contacts": (0.70, 0.80),
    "web_customers": (0.40, 0.00),
    "loyalty_members": (0.30, 0.00),
    "support_contacts": (0.25, 0.25),
    "survey_respondents": (0.20, 0.20),
    "social_authors": (0.08, 0.00),
}
WEB_GIVEN_ERP = 0.30  # P(web shop | ERP customer); the rest of the web coverage comes from non-ERP persons
LOYALTY_GIVEN_ERP = 0.38  # loyalty cards are mostly used in the shops, i.e. by ERP customers
PARTY_SOURCES = (
    "crm_contacts",
    "erp_customers",
    "web_customers",
    "support_contacts",
    "survey_respondents",
    "social_authors",
    "loyalty_members",
)

#: The contract with params/sources.yaml: each source's file and the raw columns it maps.
SOURCE_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "crm_contacts": (
        "crm/contacts.csv",
        (
            "contact_id",
            "first_name",
            "last_name",
            "account_name",
            "tax_id",
            "email",
            "phone",
            "birth_date",
            "street",
            "zip",
            "city",
            "country",
            "opt_in_email",
            "opt_in_sms",
            "opt_in_phone",
            "opt_in_mail",
            "created_at",
            "modified_at",
        ),
    ),
    "crm_opportunities": (
        "crm/opportunities.csv",
        ("opportunity_id", "contact_id", "created_at", "closed_at", "stage", "amount", "product"),
    ),
    "erp_customers": (
        "erp/clientes.csv",
        (
            "cod_cliente",
            "nombre",
            "apellidos",
            "razon_social",
            "nif",
            "iban",
            "direccion_envio",
            "direccion_facturacion",
            "cod_postal",
            "poblacion",
            "provincia",
            "pais",
            "moneda",
            "forma_pago",
            "telefono",
            "email",
            "fecha_alta",
        ),
    ),
    "erp_invoices": (
        "erp/facturas.csv",
        (
            "linea_factura",
            "cod_cliente",
            "num_factura",
            "fecha",
            "producto",
            "familia",
            "cantidad",
            "importe",
            "moneda",
            "canal",
            "forma_pago",
            "fecha_vencimiento",
            "fecha_cobro",
        ),
    ),
    "web_customers": (
        "web/orders.jsonl",
        (
            "customer.id",
            "customer.first_name",
            "customer.last_name",
            "customer.email",
            "customer.phone",
            "customer.address.street",
            "customer.address.postcode",
            "customer.address.city",
            "customer.accepts_marketing",
            "created_at",
        ),
    ),
    "web_orders": (
        "web/orders.jsonl",
        (
            "items.line_id",
            "customer.id",
            "order_id",
            "created_at",
            "items.sku",
            "items.category",
            "items.quantity",
            "items.total",
            "currency",
            "payment.method",
        ),
    ),
    "support_contacts": (
        "support/tickets.xlsx",
        ("requester_id", "requester_name", "requester_email", "requester_phone", "opened_at"),
    ),
    "support_tickets": (
        "support/tickets.xlsx",
        (
            "ticket_id",
            "requester_id",
            "channel",
            "opened_at",
            "closed_at",
            "handling_minutes",
            "csat",
            "subject",
        ),
    ),
    "survey_respondents": ("surveys/nps.csv", ("respondent_id", "name", "email", "submitted_at")),
    "survey_responses": (
        "surveys/nps.csv",
        ("response_id", "respondent_id", "submitted_at", "nps", "comment"),
    ),
    "social_authors": ("social/mentions.json", ("handle", "author_name", "author_email", "published_at")),
    "social_mentions": ("social/mentions.json", ("mention_id", "handle", "network", "published_at", "text")),
    "campaign_contacts": (
        "campaigns/contacts.csv",
        (
            "row_id",
            "contact_id",
            "campaign_id",
            "group",
            "is_control",
            "channel",
            "sent_at",
            "opened",
            "responded",
            "responded_at",
            "revenue",
        ),
    ),
    "loyalty_members": (
        "loyalty/loyalty.sqlite",
        (
            "card_number",
            "first_name",
            "surname1",
            "surname2",
            "dni",
            "mobile",
            "email",
            "birth_date",
            "postcode",
            "sms_ok",
            "joined_at",
        ),
    ),
    "products": ("catalogue/products.csv", ("sku", "name", "category", "price", "unit_cost")),
}

# =============================================================================== identity noise
PHONE_STYLES = ("plain", "spaced", "dotted", "+34", "0034", "+34 spaced")  # 612345678, 612 345 678, ...
#: 12345678Z, 12345678z, 12345678-Z, 12345678 (DNI only), 12345678 Z; a CIF gets "B-12345678" for hyphen / no_letter
TAX_STYLES = ("compact", "lower", "hyphen", "no_letter", "spaced")


@dataclass(frozen=True)
class Noise:
    """Identity noise of one party source: the share of its records that get each alteration."""

    nickname: float = 0.0  # José -> Pepe, María del Carmen -> Mari Carmen (never a gender flip)
    drop_accents: float = 0.0  # José -> Jose, Muñoz -> Munoz
    upper: float = 0.0  # JOSÉ PRADO GARCÍA (names, and the address where the source has one)
    lower: float = 0.0  # josé prado garcía
    one_surname: float = 0.0  # the second surname left out
    swap_surnames: float = 0.0
    surname_variant: float = 0.0  # Prado -> Prados, Giménez -> Jiménez
    typo: float = 0.03  # one character transposed, deleted or substituted in a name
    old_email: float = 0.0  # the person's older address (when they have one)
    email_case: float = 0.0  # JUAN.GARCIA@GMAIL.COM, Juan.Garcia@Gmail.com
    email_dot: float = 0.0  # a dot added to / removed from the local part
    day_month_swap: float = 0.0  # birth date with day and month swapped (only when the result is a date)
    abbreviate: float = 0.0  # Calle -> C/, Avenida -> Avda., commas dropped
    company_form: float = 0.3  # "S.L." -> "SL", ", S.L.", "Sociedad Limitada"
    landline: float = 0.0  # the landline given instead of the mobile (when there is one)
    phone_styles: tuple[float, ...] = (0.45, 0.20, 0.05, 0.15, 0.05, 0.10)
    tax_styles: tuple[float, ...] = (0.75, 0.06, 0.10, 0.04, 0.05)


NOISE: dict[str, Noise] = {
    "crm_contacts": Noise(
        nickname=0.04,
        drop_accents=0.10,
        upper=0.02,
        lower=0.03,
        one_surname=0.06,
        swap_surnames=0.01,
        surname_variant=0.01,
        old_email=0.06,
        email_case=0.03,
        email_dot=0.02,
        day_month_swap=0.01,
        abbreviate=0.35,
        landline=0.08,
    ),
    "erp_customers": Noise(
        nickname=0.01,
        drop_accents=0.05,
        upper=0.40,
        one_surname=0.03,
        swap_surnames=0.01,
        surname_variant=0.01,
        old_email=0.10,
        email_case=0.05,
        email_dot=0.01,
        abbreviate=0.55,
        landline=0.35,
        phone_styles=(0.60, 0.25, 0.05, 0.04, 0.03, 0.03),
        tax_styles=(0.80, 0.02, 0.12, 0.03, 0.03),
    ),
    "web_customers": Noise(
        nickname=0.08,
        drop_accents=0.30,
        upper=0.02,
        lower=0.12,
        one_surname=0.25,
        swap_surnames=0.02,
        surname_variant=0.01,
        old_email=0.03,
        email_case=0.06,
        email_dot=0.03,
        abbreviate=0.45,
        landline=0.02,
        phone_styles=(0.35, 0.15, 0.05, 0.30, 0.05, 0.10),
    ),
    "support_contacts": Noise(
        nickname=0.06,
        drop_accents=0.25,
        upper=0.03,
        lower=0.08,
        one_surname=0.15,
        swap_surnames=0.02,
        surname_variant=0.01,
        old_email=0.05,
        email_case=0.04,
        email_dot=0.02,
        landline=0.25,
    ),
    "survey_respondents": Noise(
        nickname=0.08,
        drop_accents=0.25,
        upper=0.02,
        lower=0.10,
        one_surname=0.35,
        swap_surnames=0.02,
        surname_variant=0.01,
        old_email=0.04,
        email_case=0.04,
        email_dot=0.02,
    ),
    "social_authors": Noise(
        nickname=0.15,
        drop_accents=0.40,
        upper=0.02,
        lower=0.20,
        swap_surnames=0.02,
        surname_variant=0.01,
        old_email=0.05,
        email_case=0.05,
        email_dot=0.02,
    ),
    "loyalty_members": Noise(
        nickname=0.03,
        drop_accents=0.15,
        upper=0.20,
        lower=0.02,
        one_surname=0.08,
        swap_surnames=0.01,
        surname_variant=0.01,
        old_email=0.10,
        email_case=0.03,
        email_dot=0.02,
        day_month_swap=0.02,
        phone_styles=(0.70, 0.10, 0.0, 0.15, 0.05, 0.0),
        tax_styles=(0.70, 0.08, 0.08, 0.08, 0.06),
    ),
}

#: Share of records whose optional field is left empty, per party source (identity field names).
MISSING: dict[str, dict[str, float]] = {
    "crm_contacts": {
        "tax_id": 0.30,
        "email": 0.10,
        "phone": 0.12,
        "birth_date": 0.30,
        "street": 0.18,
        "postcode": 0.12,
        "city": 0.10,
    },
    "erp_customers": {"email": 0.22, "phone": 0.10},
    "web_customers": {},  # the phone is left out per order instead (WEB_PHONE_MISSING)
    "support_contacts": {"email": 0.12, "phone": 0.30},
    "survey_respondents": {"email": 0.05},
    "social_authors": {"email": 0.40},
    "loyalty_members": {"tax_id": 0.15, "email": 0.22, "birth_date": 0.15, "phone": 0.06, "postcode": 0.05},
}
WEB_PHONE_MISSING = 0.25
ERP_SEPARATE_SHIPPING = 0.15  # ERP customers with a shipping address different in form from the billing one

# =============================================================================== defects
#: file -> [(raw column, defect class, share of the file's rows)]. Each (column, class) gets at least
#: one row; rows carry at most one defect; the source records of the truth keep their party.
DEFECTS: dict[str, list[tuple[str, str, float]]] = {
    "erp/facturas.csv": [
        ("fecha", "invalid_date", 0.005),
        ("importe", "invalid_number", 0.006),
        ("cantidad", "negative_quantity", 0.005),
    ],
    "erp/clientes.csv": [
        ("nif", "invalid_tax_id", 0.008),
        ("iban", "invalid_iban", 0.008),
        ("email", "invalid_email", 0.006),
        ("fecha_alta", "invalid_date", 0.006),
        ("telefono", "placeholder", 0.003),
        ("email", "placeholder", 0.002),
        ("direccion_facturacion", "placeholder", 0.003),
    ],
    "crm/contacts.csv": [
        ("tax_id", "invalid_tax_id", 0.006),
        ("email", "invalid_email", 0.006),
        ("birth_date", "invalid_date", 0.006),
        ("phone", "placeholder", 0.003),
        ("email", "placeholder", 0.002),
        ("street", "placeholder", 0.003),
    ],
    "crm/opportunities.csv": [("amount", "invalid_number", 0.008)],
    "web/orders.jsonl": [
        ("created_at", "invalid_date", 0.004),
        ("customer.email", "invalid_email", 0.005),
        ("items.total", "invalid_number", 0.005),
        ("customer.phone", "placeholder", 0.004),
    ],
    "support/tickets.xlsx": [
        ("requester_email", "invalid_email", 0.006),
        ("opened_at", "invalid_date", 0.005),
        ("requester_phone", "placeholder", 0.005),
    ],
    "surveys/nps.csv": [("email", "invalid_email", 0.006), ("submitted_at", "invalid_date", 0.005)],
    "loyalty/loyalty.sqlite": [
        ("dni", "invalid_tax_id", 0.008),
        ("birth_date", "invalid_date", 0.006),
        ("email", "invalid_email", 0.006),
        ("mobile", "placeholder", 0.004),
        ("email", "placeholder", 0.002),
    ],
}
#: Exact duplicate rows (the copy, right after the original, is the defect).
DUPLICATE_RATE = {"erp/facturas.csv": 0.005, "crm/contacts.csv": 0.005, "surveys/nps.csv": 0.006}
TRUNCATED_FILE = "erp/facturas.csv"  # its last line is cut in the middle (no trailing newline)
REFUND_SHARE = 0.01  # invoice lines with a negative amount and a positive quantity (not a defect)

INVALID_DATES = {  # impossible calendar dates in each file's date style
    "dmy": ["31/02/2025", "30/02/2026", "31/04/2025", "32/01/2026", "00/05/2025", "29/02/2025", "15/13/2025"],
    "iso": ["2025-13-01", "2025-02-30", "2026-04-31", "2025-00-10", "2026-02-29", "2025-06-31"],
}
INVALID_NUMBERS = {
    ",": ["12,3,4", "abc", "1O,50", "7,,25", "12a"],
    ".": ["12.3.4", "abc", "1O.50", "7..25", "12a"],
}
PLACEHOLDER_PHONE, PLACEHOLDER_EMAIL, PLACEHOLDER_TEXT = "000000000", "test@test.com", "N/A"

# =============================================================================== campaigns
#: (name, months before end_date, channel, planned control share, effect factor)
CAMPAIGNS = (
    ("REACTIVACION", 11, "email", 0.15, 1.0),
    ("PRIMAVERA", 8, "sms", 0.15, 1.1),
    ("CATALOGO", 6, "mailing", 0.15, 0.9),
    ("FIDELIZACION", 4, "telemarketing", 0.10, 1.0),
    ("VENTA-CRUZADA", 2, "email", 0.20, 1.2),
)
#: group -> (control response rate, additive uplift when contacted, revenue per response in EUR)
GROUP_EFFECTS = {"model": (0.06, 0.10, 85.0), "marketing": (0.04, 0.05, 70.0), "random": (0.02, 0.025, 60.0)}
CHANNEL_MULTIPLIER = {"email": 1.0, "sms": 0.8, "mailing": 0.7, "telemarketing": 1.5}
CHANNEL_CONSENT = {
    "email": ("opt_in_email", "email"),
    "sms": ("opt_in_sms", "phone"),
    "telemarketing": ("opt_in_phone", "phone"),
    "mailing": ("opt_in_mail", "street"),
}
GROUP_SHARE = 0.32  # of the eligible CRM contacts, per group (random drawn first, then model, then marketing)
RESPONSE_WINDOW_DAYS = 30

# =============================================================================== names and places
MALE_NAMES = (
    "Antonio 650|José 590|Manuel 580|Francisco 520|David 370|Juan 360|Javier 300|Daniel 290|José Antonio 280|"
    "Carlos 270|José Luis 260|Alejandro 250|Francisco Javier 230|Jesús 220|Miguel 190|José Manuel 180|"
    "Rafael 170|Pedro 170|Pablo 160|Miguel Ángel 160|Ángel 150|José María 150|Fernando 150|Sergio 150|Luis 140|"
    "Jorge 140|Alberto 130|Juan Carlos 120|Juan José 120|Álvaro 120|Diego 110|Adrián 110|Juan Antonio 100|"
    "Raúl 100|Enrique 95|Ramón 95|Vicente 90|Iván 90|Rubén 90|Óscar 85|Andrés 85|Joaquín 80|Santiago 75|"
    "Víctor 75|Juan Manuel 70|Eduardo 70|Roberto 70|Jaime 65|Mario 65|Francisco José 60|Ignacio 60|Alfonso 60|"
    "Salvador 60|Ricardo 55|Marcos 55|Emilio 50|Julián 45|Julio 45|Guillermo 45|Gabriel 45|Tomás 45|"
    "Agustín 40|José Miguel 40|Gonzalo 40|Hugo 40|Félix 35|José Ramón 35|Lucas 35|Martín 30|Nicolás 30|"
    "Cristian 30|Samuel 30|Héctor 30|Arturo 25|Domingo 25|Lorenzo 25|Sebastián 20|Felipe 20|Esteban 20|"
    "Gregorio 20|Ramiro 15|Benito 12|Jacinto 10|Leandro 8"
)
FEMALE_NAMES = (
    "María Carmen 650|María 600|Carmen 400|María del Carmen 300|Ana María 300|Josefa 280|Isabel 270|"
    "María Pilar 260|María Dolores 250|Laura 250|María Teresa 240|Ana 240|Cristina 230|Marta 230|"
    "María Ángeles 220|Lucía 200|Francisca 190|María Isabel 190|María José 190|Antonia 180|Dolores 180|"
    "Sara 170|Paula 170|Elena 170|María Luisa 160|Raquel 160|Rosa María 150|Pilar 150|Concepción 140|"
    "Manuela 140|María Jesús 140|Mercedes 130|Julia 130|Beatriz 120|Alba 120|Silvia 120|Irene 120|"
    "Rosario 110|Juana 110|Teresa 110|Encarnación 100|Patricia 100|Montserrat 100|Andrea 100|Rocío 95|"
    "Mónica 95|Rosa 95|Alicia 90|Sonia 90|Sandra 90|Marina 85|Ángela 85|Susana 85|Natalia 80|Yolanda 80|"
    "Margarita 75|María del Mar 70|Inmaculada 70|Claudia 65|Eva 65|Esther 65|Noelia 60|Verónica 60|"
    "Carolina 60|Nerea 50|Carla 45|Sofía 45|Lorena 45|Guadalupe 45|Asunción 40|Consuelo 40|Martina 40|"
    "Miriam 40|Alejandra 40|Daniela 35|Gloria 35|Victoria 35|Valeria 30|Rebeca 30|Nieves 25|Remedios 25|"
    "Soledad 25|Esperanza 25|Emma 25|Milagros 20"
)
REGIONAL_NAMES = {  # (male, female) per region
    "cat": (
        "Jordi 60|Josep 60|Joan 55|Marc 45|Pau 30|Xavier 25|Pere 25|Oriol 20|Albert 20|Arnau 20|Sergi 20|"
        "Jaume 15|Lluís 15|Ferran 12",
        "Núria 45|Anna 35|Mireia 25|Laia 25|Meritxell 20|Joana 20|Neus 15|Roser 15|Aina 12|Queralt 8",
    ),
    "eus": (
        "Iker 25|Mikel 25|Iñaki 25|Aitor 25|Asier 20|Unai 20|Jon 20|Gorka 15|Xabier 15|Ander 12|Koldo 8|"
        "Joseba 8",
        "Ainhoa 25|Amaia 25|Begoña 25|Itziar 20|Leire 20|Arantxa 20|Maite 15|Idoia 12|Miren 12|Edurne 10|"
        "Nekane 8",
    ),
    "gal": (
        "Xoán 10|Xosé 10|Brais 10|Anxo 8|Roi 6|Iago 6|Uxío 4|Bieito 3",
        "Iria 10|Xiana 8|Uxía 8|Noa 8|Antía 6|Sabela 6|Aldara 4",
    ),
}
FOREIGN_NAMES = (
    "Mohamed 20|Ahmed 8|Youssef 6|Ion 8|Andrei 8|Mihai 6|Wei 5|John 5|Luca 5|Pierre 4|Thomas 4|"
    "Oleksandr 4|Ali 5",
    "Fatima 15|Khadija 6|Ioana 8|Elena 6|Olena 6|Mei 5|Sarah 5|Emma 4|Yasmina 5|Camille 4|Natalia 4",
)
SURNAMES = (
    "García 1450|Rodríguez 930|González 920|Fernández 900|López 860|Martínez 830|Sánchez 800|Pérez 770|"
    "Gómez 490|Martín 490|Jiménez 390|Ruiz 360|Hernández 350|Díaz 340|Moreno 320|Muñoz 300|Álvarez 300|"
    "Romero 230|Alonso 220|Gutiérrez 220|Navarro 200|Torres 200|Domínguez 190|Vázquez 180|Ramos 180|Gil 175|"
    "Ramírez 170|Serrano 170|Blanco 165|Molina 160|Morales 155|Suárez 155|Ortega 150|Delgado 145|Castro 145|"
    "Ortiz 140|Rubio 140|Marín 135|Sanz 135|Núñez 130|Iglesias 130|Medina 125|Garrido 120|Cortés 115|"
    "Castillo 115|Santos 110|Lozano 110|Guerrero 105|Cano 105|Prieto 100|Méndez 100|Cruz 95|Calvo 95|"
    "Gallego 95|Vidal 95|León 90|Márquez 90|Herrera 90|Peña 88|Flores 88|Cabrera 85|Campos 85|Vega 85|"
    "Fuentes 80|Carrasco 80|Díez 80|Caballero 78|Reyes 78|Nieto 75|Aguilar 75|Pascual 72|Santana 72|"
    "Herrero 70|Lorenzo 70|Montero 68|Hidalgo 68|Giménez 65|Ibáñez 65|Ferrer 65|Durán 62|Santiago 62|"
    "Benítez 60|Mora 60|Vicente 60|Vargas 58|Arias 58|Carmona 56|Crespo 56|Román 55|Pastor 55|Soto 54|"
    "Sáez 54|Velasco 52|Moya 52|Soler 50|Parra 50|Esteban 50|Bravo 48|Gallardo 48|Rojas 46|Pardo 45|"
    "Merino 44|Franco 44|Espinosa 43|Izquierdo 42|Lara 42|Rivas 41|Silva 40|Rivera 40|Casado 39|Arroyo 38|"
    "Redondo 38|Camacho 37|Rey 37|Vera 36|Otero 36|Luque 35|Galán 35|Montes 34|Ríos 34|Sierra 33|Segura 33|"
    "Carrillo 32|Marcos 32|Soriano 31|Mendoza 30|Prado 28|Bermúdez 25|Escobar 22|Benito 22|Salazar 20|"
    "Pacheco 20|de la Fuente 20|Quintana 18|Ballesteros 18|Valverde 16|del Río 16|Paredes 15|Prados 14|"
    "Toledo 14|Beltrán 14|de la Torre 14|Miranda 13|Cuesta 12|Tapia 10|Zamora 10|Palacios 10|del Pino 10|"
    "Barrios 9|Mesa 9|Cisneros 8|Valle 8|Plaza 8|Villalobos 7|Maldonado 7|Olmedo 6|Bustos 6|Alcaraz 6|"
    "Figueroa 6|Serna 6|Quesada 6|Echeverría 4|Arrieta 3|Ybarra 2|Urquijo 1.5|Azcárate 1.5|Zubiaurre 1"
)
REGIONAL_SURNAMES = {
    "cat": "Puig 20|Roca 15|Vila 12|Mas 12|Serra 12|Pujol 10|Font 10|Bosch 10|Sala 10|Costa 10|Casals 8|Riera 8|"
    "Rovira 8|Ribas 6|Castells 6|Vilanova 6|Figueras 5|Oliveras 5|Comas 5|Vilaró 4|Torrents 4|Batlle 4|"
    "Llobet 4",
    "eus": "Aguirre 10|Etxeberria 8|Garmendia 6|Zabala 6|Ibarra 6|Goikoetxea 5|Arregui 5|Ugarte 5|Arana 5|"
    "Larrañaga 4|Lizarraga 4|Uriarte 4|Olaizola 3|Iturbe 3|Elorza 3|Zubizarreta 3|Bengoetxea 3|Otxoa 3",
    "gal": "Varela 10|Pazos 6|Souto 6|Barreiro 6|Villar 6|Fraga 6|Carballo 6|Lamas 5|Seoane 5|Feijóo 5|"
    "Castiñeira 4|Outeiro 3|Rial 3|Quintela 3|Taboada 3|Rodiño 2|Louzao 2",
}
FOREIGN_SURNAMES = (
    "El Amrani 8|Popescu 8|Benali 6|Ionescu 6|Popa 5|Alaoui 5|Wang 5|Li 5|Silva 5|Santos 5|"
    "Chen 4|Smith 4|Rossi 4|Ferreira 4|Shevchenko 4|Dubois 3|Kovalenko 3|Müller 3|Schmidt 3"
)

NICKNAMES = {  # given name -> what people also write (never another gender)
    "José": ["Pepe", "Jose"],
    "Francisco": ["Paco", "Curro", "Fran"],
    "Dolores": ["Lola", "Loli"],
    "Manuel": ["Manolo", "Manu"],
    "Concepción": ["Concha", "Conchi"],
    "Ignacio": ["Nacho"],
    "José María": ["Chema", "Josema"],
    "Pilar": ["Pili"],
    "María Pilar": ["Pili", "Pilar", "Mª Pilar"],
    "Antonio": ["Toni", "Antoñito"],
    "Jesús": ["Chus", "Chuso"],
    "Enrique": ["Quique"],
    "Rosario": ["Charo"],
    "Mercedes": ["Merche"],
    "Guadalupe": ["Lupe"],
    "Alejandro": ["Álex", "Alex"],
    "Consuelo": ["Chelo"],
    "Asunción": ["Asun"],
    "Inmaculada": ["Inma"],
    "Montserrat": ["Montse"],
    "Francisca": ["Paqui", "Paca"],
    "Josefa": ["Pepa", "Pepi"],
    "Santiago": ["Santi"],
    "Fernando": ["Nando"],
    "Eduardo": ["Edu"],
    "Daniel": ["Dani"],
    "Cristina": ["Cris"],
    "Rafael": ["Rafa"],
    "Guillermo": ["Guille"],
    "Gregorio": ["Goyo"],
    "Isabel": ["Isa", "Chabela"],
    "Beatriz": ["Bea"],
    "Susana": ["Susi"],
    "Teresa": ["Tere"],
    "Juan José": ["Juanjo"],
    "José Luis": ["Joselu", "J. Luis"],
    "Juan Manuel": ["Juanma"],
    "Juan Carlos": ["J. Carlos"],
    "Francisco Javier": ["Javier", "Javi", "Fco. Javier"],
    "Francisco José": ["Fran", "Fco. José"],
    "Javier": ["Javi"],
    "Miguel Ángel": ["Miguel"],
    "María José": ["Majo", "Mª José"],
    "María Teresa": ["Maite", "Mª Teresa", "Teresa"],
    "María Dolores": ["Lola", "Loli", "Mª Dolores"],
    "María del Carmen": ["Mari Carmen", "Mamen", "Carmen", "Mª del Carmen"],
    "María Carmen": ["Mari Carmen", "Maricarmen", "Carmen", "Mª Carmen"],
    "María Isabel": ["Maribel"],
    "María Luisa": ["Marisa"],
    "María Jesús": ["Chus", "Mª Jesús"],
    "María Ángeles": ["Marián", "Mª Ángeles"],
    "María del Mar": ["Mar"],
    "Ana María": ["Ana", "Anamari"],
    "Rosa María": ["Rosa", "Rosamari"],
    "Encarnación": ["Encarna"],
    "Remedios": ["Reme"],
    "Milagros": ["Mila"],
    "Soledad": ["Sole"],
    "Esperanza": ["Espe"],
    "Nieves": ["Nieves"],
    "Ramón": ["Moncho"],
    "Joaquín": ["Quino"],
    "Salvador": ["Salva"],
    "Vicente": ["Vicen"],
    "Alberto": ["Berto"],
    "Roberto": ["Rober"],
    "Josep": ["Pep"],
    "Xavier": ["Xavi"],
    "Jordi": ["Jordi"],
    "Iñaki": ["Iñaki"],
    "Xosé": ["Xosé"],
    "Mohamed": ["Mohammed", "Mohammad"],
}
GENDERED_VARIANTS = {  # male -> female forms of one name: siblings "Joan" and "Joana" are two people
    "Joan": "Joana",
    "Francisco": "Francisca",
    "Antonio": "Antonia",
    "Manuel": "Manuela",
    "Juan": "Juana",
    "Daniel": "Daniela",
    "Julio": "Julia",
    "Ángel": "Ángela",
    "Alejandro": "Alejandra",
    "Carlos": "Carla",
    "Martín": "Martina",
    "José": "Josefa",
    "Víctor": "Victoria",
}
SURNAME_VARIANTS = {
    "Prado": "Prados",
    "Prados": "Prado",
    "Giménez": "Jiménez",
    "Jiménez": "Giménez",
    "González": "Gonzales",
    "Vázquez": "Vásquez",
    "Ibáñez": "Ybáñez",
    "Ybarra": "Ibarra",
    "Ibarra": "Ybarra",
    "Echeverría": "Etxeberria",
    "Etxeberria": "Echeverría",
    "Iglesias": "Iglesia",
    "Ruiz": "Ruíz",
    "Sáez": "Sáenz",
    "Díez": "Díaz",
    "Herrero": "Herrera",
    "Castillo": "Castilla",
    "Núñez": "Nuñez",
    "Soler": "Solé",
    "Bermúdez": "Vermúdez",
    "Aguirre": "Agirre",
    "Arregui": "Arregi",
    "Otxoa": "Ochoa",
    "Goikoetxea": "Goicoechea",
    "Muñoz": "Muñóz",
    "Álvarez": "Alvares",
    "Martínez": "Martines",
    "Sánchez": "Sanchéz",
    "Rodríguez": "Rodrigues",
    "Pérez": "Peres",
    "López": "Lopes",
    "Fernández": "Fernandes",
    "Gómez": "Gomes",
}
ACCENTS = str.maketrans("áéíóúÁÉÍÓÚàèìòùÀÈÌÒÙäëïöüÄËÏÖÜñÑçÇ", "aeiouAEIOUaeiouAEIOUaeiouAEIOUnNcC")
KEYBOARD = {  # Spanish QWERTY neighbours, for substitution typos
    "a": "qszx",
    "b": "vgn",
    "c": "xdv",
    "d": "sfec",
    "e": "wrd",
    "f": "dgr",
    "g": "fht",
    "h": "gjy",
    "i": "uok",
    "j": "hku",
    "k": "jli",
    "l": "kñp",
    "m": "nj",
    "n": "bm",
    "ñ": "lp",
    "o": "ipl",
    "p": "oñl",
    "q": "wa",
    "r": "etf",
    "s": "adw",
    "t": "ryg",
    "u": "yij",
    "v": "cbf",
    "w": "qes",
    "x": "zsc",
    "y": "tuh",
    "z": "xa",
}

#: (city, first postcode, last postcode, population in thousands). The province follows from the
#: postcode prefix (PROVINCES), so postcode <-> province is consistent by construction.
PLACES = (
    ("Madrid", 28001, 28055, 3300),
    ("Barcelona", 8001, 8042, 1650),
    ("Valencia", 46001, 46026, 800),
    ("Sevilla", 41001, 41020, 685),
    ("Zaragoza", 50001, 50021, 680),
    ("Málaga", 29001, 29018, 580),
    ("Murcia", 30001, 30012, 460),
    ("Palma", 7001, 7015, 420),
    ("Las Palmas de Gran Canaria", 35001, 35019, 380),
    ("Bilbao", 48001, 48015, 345),
    ("Alicante", 3001, 3016, 340),
    ("Córdoba", 14001, 14014, 320),
    ("Valladolid", 47001, 47016, 300),
    ("Vigo", 36201, 36216, 295),
    ("Gijón", 33201, 33213, 270),
    ("L'Hospitalet de Llobregat", 8901, 8908, 265),
    ("Vitoria-Gasteiz", 1001, 1015, 255),
    ("A Coruña", 15001, 15011, 245),
    ("Elche", 3201, 3208, 235),
    ("Granada", 18001, 18015, 230),
    ("Terrassa", 8221, 8228, 225),
    ("Badalona", 8911, 8918, 220),
    ("Oviedo", 33001, 33013, 220),
    ("Cartagena", 30201, 30205, 215),
    ("Sabadell", 8201, 8208, 215),
    ("Jerez de la Frontera", 11401, 11408, 212),
    ("Móstoles", 28931, 28938, 210),
    ("Santa Cruz de Tenerife", 38001, 38010, 210),
    ("Pamplona", 31001, 31015, 205),
    ("Almería", 4001, 4009, 200),
    ("Alcalá de Henares", 28801, 28807, 195),
    ("Fuenlabrada", 28940, 28947, 193),
    ("Leganés", 28911, 28919, 190),
    ("Donostia-San Sebastián", 20001, 20018, 188),
    ("Getafe", 28901, 28909, 185),
    ("Burgos", 9001, 9007, 175),
    ("Albacete", 2001, 2008, 175),
    ("Santander", 39001, 39012, 172),
    ("Castellón de la Plana", 12001, 12006, 172),
    ("Alcorcón", 28921, 28925, 170),
    ("Logroño", 26001, 26009, 152),
    ("Badajoz", 6001, 6011, 150),
    ("Marbella", 29600, 29604, 147),
    ("Salamanca", 37001, 37008, 144),
    ("Huelva", 21001, 21007, 143),
    ("Lleida", 25001, 25008, 140),
    ("Tarragona", 43001, 43008, 135),
    ("Torrejón de Ardoz", 28850, 28850, 132),
    ("Mataró", 8301, 8304, 128),
    ("León", 24001, 24010, 122),
    ("Cádiz", 11001, 11012, 115),
    ("Jaén", 23001, 23009, 112),
    ("Reus", 43201, 43206, 106),
    ("Ourense", 32001, 32005, 105),
    ("Girona", 17001, 17007, 103),
    ("Barakaldo", 48901, 48903, 101),
    ("Lugo", 27001, 27004, 98),
    ("Santiago de Compostela", 15701, 15707, 98),
    ("Cáceres", 10001, 10005, 96),
    ("Sant Cugat del Vallès", 8172, 8174, 92),
    ("Guadalajara", 19001, 19005, 87),
    ("Toledo", 45001, 45008, 85),
    ("Pontevedra", 36001, 36005, 83),
    ("Torrent", 46900, 46902, 83),
    ("Palencia", 34001, 34005, 78),
    ("Getxo", 48990, 48993, 77),
    ("Ciudad Real", 13001, 13005, 75),
    ("Gandia", 46700, 46702, 75),
    ("Ferrol", 15401, 15406, 65),
    ("Irun", 20300, 20305, 62),
    ("Zamora", 49001, 49029, 60),
    ("Ávila", 5001, 5005, 58),
    ("Cuenca", 16001, 16004, 54),
    ("Huesca", 22001, 22006, 53),
    ("Segovia", 40001, 40006, 51),
    ("Soria", 42001, 42005, 40),
    ("Teruel", 44001, 44003, 36),
)
#: INE province code (= postcode prefix) -> (province, landline prefix, naming region)
PROVINCES = {
    "01": ("Álava", "945", "eus"),
    "02": ("Albacete", "967", ""),
    "03": ("Alicante", "96", ""),
    "04": ("Almería", "950", ""),
    "05": ("Ávila", "920", ""),
    "06": ("Badajoz", "924", ""),
    "07": ("Illes Balears", "971", "cat"),
    "08": ("Barcelona", "93", "cat"),
    "09": ("Burgos", "947", ""),
    "10": ("Cáceres", "927", ""),
    "11": ("Cádiz", "956", ""),
    "12": ("Castellón", "964", ""),
    "13": ("Ciudad Real", "926", ""),
    "14": ("Córdoba", "957", ""),
    "15": ("A Coruña", "981", "gal"),
    "16": ("Cuenca", "969", ""),
    "17": ("Girona", "972", "cat"),
    "18": ("Granada", "958", ""),
    "19": ("Guadalajara", "949", ""),
    "20": ("Gipuzkoa", "943", "eus"),
    "21": ("Huelva", "959", ""),
    "22": ("Huesca", "974", ""),
    "23": ("Jaén", "953", ""),
    "24": ("León", "987", ""),
    "25": ("Lleida", "973", "cat"),
    "26": ("La Rioja", "941", ""),
    "27": ("Lugo", "982", "gal"),
    "28": ("Madrid", "91", ""),
    "29": ("Málaga", "952", ""),
    "30": ("Murcia", "968", ""),
    "31": ("Navarra", "948", "eus"),
    "32": ("Ourense", "988", "gal"),
    "33": ("Asturias", "985", ""),
    "34": ("Palencia", "979", ""),
    "35": ("Las Palmas", "928", ""),
    "36": ("Pontevedra", "986", "gal"),
    "37": ("Salamanca", "923", ""),
    "38": ("Santa Cruz de Tenerife", "922", ""),
    "39": ("Cantabria", "942", ""),
    "40": ("Segovia", "921", ""),
    "41": ("Sevilla", "95", ""),
    "42": ("Soria", "975", ""),
    "43": ("Tarragona", "977", "cat"),
    "44": ("Teruel", "978", ""),
    "45": ("Toledo", "925", ""),
    "46": ("Valencia", "96", ""),
    "47": ("Valladolid", "983", ""),
    "48": ("Bizkaia", "94", "eus"),
    "49": ("Zamora", "980", ""),
    "50": ("Zaragoza", "976", ""),
    "51": ("Ceuta", "956", ""),
    "52": ("Melilla", "952", ""),
}
STREET_TYPES = {
    "Calle": 0.62,
    "Avenida": 0.15,
    "Plaza": 0.06,
    "Paseo": 0.05,
    "Camino": 0.03,
    "Ronda": 0.03,
    "Travesía": 0.03,
    "Carretera": 0.03,
}
STREET_ABBREVIATIONS = {
    "Calle": ["C/", "C/", "Cl.", "c/"],
    "Avenida": ["Avda.", "Av.", "Avda"],
    "Plaza": ["Pza.", "Pl.", "Plza."],
    "Paseo": ["Pº", "Pso."],
    "Camino": ["Cno.", "Cmno."],
    "Ronda": ["Rda."],
    "Travesía": ["Trva.", "Travª"],
    "Carretera": ["Ctra."],
}
STREET_NAMES = (
    "Mayor|Real|Gran Vía|de la Constitución|del Sol|San Francisco|Nueva|de la Iglesia|de Andalucía|Cervantes|Goya|"
    "Alcalá|Serrano|Colón|de la Paz|de la Libertad|Sant Jordi|Santa María|del Carmen|Federico García Lorca|"
    "Antonio Machado|Juan Carlos I|Blasco Ibáñez|de Castilla|de España|de Europa|de los Reyes Católicos|"
    "Príncipe de Vergara|del Mar|de Valencia|de Aragón|Hernán Cortés|Miguel de Unamuno|Rosalía de Castro|"
    "Sabino Arana|Pintor Sorolla|Velázquez|Ramón y Cajal|San Vicente|Doctor Fleming|Severo Ochoa|Pío XII|"
    "Lope de Vega|Góngora|Quevedo|de las Flores|de los Olivos|del Pilar|de Santiago|San Juan|de Sevilla|"
    "de Granada|de Toledo|Huertas|de las Acacias|de los Pinos|del Rosario|de la Estación|del Ferrocarril|"
    "Independencia|de Cataluña|Pablo Picasso|Isaac Peral|Marqués de Larios"
).split("|")
DOORS = ("A", "B", "C", "D", "1ª", "2ª", "3ª", "4ª", "Izda.", "Dcha.")
EMAIL_DOMAINS = {
    "gmail.com": 0.42,
    "hotmail.com": 0.16,
    "yahoo.es": 0.07,
    "outlook.es": 0.07,
    "hotmail.es": 0.06,
    "outlook.com": 0.05,
    "icloud.com": 0.04,
    "telefonica.net": 0.04,
    "yahoo.com": 0.03,
    "live.com": 0.03,
    "gmx.es": 0.02,
    "protonmail.com": 0.01,
}
OLD_EMAIL_DOMAINS = (
    "terra.es",
    "hotmail.com",
    "yahoo.es",
    "ya.com",
    "wanadoo.es",
    "telefonica.net",
    "eresmas.com",
)
BANKS = {
    "2100": 0.22,
    "0049": 0.18,
    "0182": 0.15,
    "0081": 0.10,
    "1465": 0.07,
    "0128": 0.05,
    "0073": 0.04,
    "3058": 0.04,
    "2085": 0.04,
    "2095": 0.04,
    "3035": 0.03,
    "0239": 0.02,
    "0487": 0.02,
}

COMPANY_SECTORS = (
    "Talleres|Construcciones|Reformas|Hostelería|Restaurante|Hotel|Cafetería|Limpiezas|"
    "Distribuciones|Suministros|Asesoría|Clínica Dental|Inmobiliaria|Transportes|Jardinería|"
    "Electricidad|Fontanería|Panadería|Academia|Gestoría|Ferretería|Bar|Residencia|Gimnasio|"
    "Peluquería|Carpintería|Climatización"
).split("|")
COMPANY_PLACES = (
    "del Norte|Mediterráneo|Levante|Ibérica|Costa Brava|Cantábrico|La Mancha|del Sur|Atlántico|"
    "Sierra Nevada|Los Pinos|El Olivo|La Plaza|San Marcos|Miramar|Santa Ana|El Puerto|La Alameda|"
    "Guadalquivir|Montseny|Aneto|Bidasoa|Las Rías|Tramontana"
).split("|")
LEGAL_FORMS = {
    "S.L.": (0.60, "B"),
    "S.L.U.": (0.12, "B"),
    "S.A.": (0.10, "A"),
    "C.B.": (0.08, "E"),
    "S.Coop.": (0.05, "F"),
    "S.C.": (0.05, "J"),
}
LEGAL_FORM_VARIANTS = {
    "S.L.": ["SL", "S.L", ", S.L.", "Sociedad Limitada"],
    "S.L.U.": ["SLU", "S.L.U", "S.L."],
    "S.A.": ["SA", "S.A", ", S.A."],
    "C.B.": ["CB", "C. B."],
    "S.Coop.": ["S. Coop.", "SCOOP"],
    "S.C.": ["SC", "S. C."],
}
COMPANY_MAILBOXES = ("info", "administracion", "pedidos", "contabilidad", "compras", "facturacion")

# =============================================================================== catalogue and texts
#: (sku, name, category, price EUR, unit cost EUR)
PRODUCTS = (
    ("CAF-001", "Café en grano natural 1 kg", "Cafetería", 18.90, 9.50),
    ("CAF-002", "Cápsulas compatibles (50 ud.)", "Cafetería", 14.50, 6.00),
    ("CAF-003", "Cafetera espresso manual", "Cafetería", 189.00, 118.00),
    ("CAF-004", "Molinillo de café eléctrico", "Cafetería", 49.90, 27.00),
    ("CAF-005", "Té verde ecológico 250 g", "Cafetería", 8.90, 3.20),
    ("ELE-001", "Robot aspirador", "Electrodomésticos", 299.00, 205.00),
    ("ELE-002", "Freidora de aire 5,5 L", "Electrodomésticos", 119.00, 78.00),
    ("ELE-003", "Batidora de vaso", "Electrodomésticos", 79.90, 48.00),
    ("ELE-004", "Microondas con grill", "Electrodomésticos", 149.00, 104.00),
    ("ELE-005", "Plancha de vapor", "Electrodomésticos", 59.90, 33.00),
    ("MEN-001", "Juego de sartenes (3 piezas)", "Menaje", 64.90, 29.00),
    ("MEN-002", "Olla a presión 6 L", "Menaje", 89.00, 47.00),
    ("MEN-003", "Vajilla de porcelana 18 piezas", "Menaje", 74.50, 31.00),
    ("MEN-004", "Cuchillos de cocina (set de 5)", "Menaje", 45.00, 18.00),
    ("MEN-005", "Tápers de vidrio (pack de 4)", "Menaje", 24.90, 9.80),
    ("LIM-001", "Detergente concentrado 5 L", "Limpieza", 15.90, 8.70),
    ("LIM-002", "Fregona con cubo escurridor", "Limpieza", 22.50, 10.10),
    ("LIM-003", "Limpiador multiusos ecológico", "Limpieza", 4.95, 1.90),
    ("LIM-004", "Bayetas de microfibra (10 ud.)", "Limpieza", 9.90, 3.10),
    ("LIM-005", "Pastillas lavavajillas (100 ud.)", "Limpieza", 19.90, 11.40),
    ("JAR-001", "Manguera extensible 30 m", "Jardín", 39.90, 17.00),
    ("JAR-002", "Cortacésped eléctrico", "Jardín", 229.00, 158.00),
    ("JAR-003", "Set de macetas de terracota", "Jardín", 29.90, 11.00),
    ("JAR-004", "Tierra universal 50 L", "Jardín", 11.50, 5.20),
    ("JAR-005", "Tijeras de podar", "Jardín", 18.90, 7.50),
    ("ILU-001", "Bombilla LED E27 (pack de 6)", "Iluminación", 17.90, 6.50),
    ("ILU-002", "Lámpara de pie nórdica", "Iluminación", 89.00, 41.00),
    ("ILU-003", "Tira LED inteligente 5 m", "Iluminación", 34.90, 15.00),
    ("ILU-004", "Aplique de exterior", "Iluminación", 44.50, 21.00),
    ("ILU-005", "Flexo de escritorio", "Iluminación", 29.90, 12.00),
    ("HER-001", "Taladro percutor 18 V", "Herramientas", 129.00, 86.00),
    ("HER-002", "Caja de herramientas (108 piezas)", "Herramientas", 69.90, 38.00),
    ("HER-003", "Escalera de aluminio 5 peldaños", "Herramientas", 79.00, 47.00),
    ("HER-004", "Nivel láser", "Herramientas", 59.00, 29.00),
    ("HER-005", "Juego de destornilladores", "Herramientas", 19.90, 7.20),
    ("TEX-001", "Juego de sábanas 150 cm", "Textil hogar", 39.90, 14.00),
    ("TEX-002", "Edredón nórdico 220 g", "Textil hogar", 69.90, 29.00),
    ("TEX-003", "Toallas de algodón (pack de 4)", "Textil hogar", 29.90, 11.00),
    ("TEX-004", "Cortinas opacas (2 paneles)", "Textil hogar", 45.00, 19.00),
    ("TEX-005", "Alfombra de yute 160x230", "Textil hogar", 119.00, 52.00),
)
CONSUMABLE_CATEGORIES = ("Cafetería", "Limpieza")  # companies buy these by the box

SUPPORT_SUBJECTS = {
    "complaint": [
        "Producto defectuoso",
        "Retraso en la entrega",
        "Cobro duplicado en la tarjeta",
        "Reclamación por pedido incompleto",
        "Devolución no reembolsada",
        "Trato recibido en tienda",
        "Error en la factura",
        "Pedido recibido dañado",
    ],
    "request": [
        "Consulta sobre factura",
        "Cambio de dirección de envío",
        "Solicitud de devolución",
        "Información de producto",
        "Baja de comunicaciones comerciales",
        "Duplicado de factura",
        "Consulta de garantía",
        "Modificar forma de pago",
        "Estado de mi pedido",
        "Cita para instalación",
    ],
}
SUPPORT_CHANNELS = {"phone": 0.45, "email": 0.35, "chat": 0.20}
HANDLING_MEDIAN_MINUTES = {"phone": 9.0, "email": 22.0, "chat": 14.0}
CSAT_SHARE = 0.35  # closed tickets with a CSAT answer
SURVEY_COMMENTS = {
    "promoter": [
        "Muy contento con la atención recibida",
        "Todo perfecto, como siempre",
        "Rapidez en la entrega y buenos precios",
        "El personal de la tienda es muy amable",
        "Calidad excelente, lo recomiendo",
        "Repetiré sin duda",
    ],
    "passive": [
        "Bien en general, aunque el envío tardó un poco",
        "Precios correctos, pero la web es lenta",
        "Cumple, sin más",
        "Buen producto, la atención telefónica mejorable",
        "Correcto, aunque echo de menos más variedad",
    ],
    "detractor": [
        "El servicio postventa es muy lento",
        "Me cobraron de más y nadie lo soluciona",
        "Producto defectuoso y la devolución fue un calvario",
        "No contestan al teléfono",
        "El pedido llegó incompleto dos veces",
        "Muy caro para la calidad que ofrecen",
    ],
}
SURVEY_COMMENT_SHARE = 0.55
NPS_MEAN = {1: 2.0, 2: 4.5, 3: 6.5, 4: 8.0, 5: 9.3}  # by satisfaction, plus N(0, 1) noise
SOCIAL_NETWORKS = {"twitter": 0.45, "instagram": 0.35, "facebook": 0.20}
SOCIAL_EMAIL_SHARE = 0.60  # handles whose author e-mail is known
SENTIMENT_BY_SATISFACTION = {  # (positive, neutral, negative)
    1: (0.05, 0.25, 0.70),
    2: (0.10, 0.35, 0.55),
    3: (0.25, 0.50, 0.25),
    4: (0.50, 0.40, 0.10),
    5: (0.70, 0.25, 0.05),
}
MENTION_TEXTS = {
    "positive": [
        "Encantada con mi compra en @HogarIberica ({product}), ¡funciona genial!",
        "Muy buena atención en la tienda de Hogar Ibérica en {city} 👍",
        "Pedido recibido en 24 h, todo perfecto. Gracias @HogarIberica",
        "Lo mejor que he comprado este año: {product} de Hogar Ibérica",
        "Recomiendo @HogarIberica para {category}: buena calidad y buen precio",
    ],
    "negative": [
        "Llevo dos semanas esperando mi pedido de @HogarIberica y nadie me responde 😡",
        "Mi pedido ({product}) llegó roto. Qué decepción con Hogar Ibérica",
        "Pésima atención al cliente en @HogarIberica, no vuelvo a comprar",
        "Me han cobrado dos veces el mismo pedido, @HogarIberica ¿me lo explicáis?",
        "Hice una devolución ({product}) hace un mes y sigo sin el reembolso #HogarIberica",
    ],
    "neutral": [
        "¿Alguien ha probado esto de Hogar Ibérica? {product}",
        "Hoy abre la nueva tienda de Hogar Ibérica en {city}",
        "Buscando ideas de {category} para el piso nuevo, ¿sugerencias? @HogarIberica",
        "¿A qué hora cierra Hogar Ibérica los sábados?",
        "Comparando precios de {category} entre varias tiendas",
    ],
}

ERP_CHANNELS = {
    "person": {"tienda": 0.70, "telefono": 0.20, "comercial": 0.10},
    "company": {"comercial": 0.60, "telefono": 0.30, "tienda": 0.10},
}
PAYMENT_METHODS = {  # ERP default payment method by customer kind (on-time persons also pay by card / cash)
    "on_time": {"tarjeta": 0.35, "domiciliacion": 0.35, "efectivo": 0.15, "transferencia": 0.15},
    "person": {"domiciliacion": 0.60, "transferencia": 0.40},
    "company": {"transferencia": 0.70, "domiciliacion": 0.30},
}
WEB_PAYMENTS = {"card": 0.60, "paypal": 0.20, "bizum": 0.15, "transfer": 0.05}
CRM_LEAD_SOURCES = {"Tienda": 0.35, "Web": 0.30, "Feria": 0.10, "Referido": 0.15, "Campaña": 0.10}
CRM_OWNERS = ("mgarcia", "jlopez", "aruiz", "cfernandez", "pmartin", "lsanchez", "rnavarro", "egil")
FIXED_XLSX_TIME = datetime(2026, 1, 1)  # workbook timestamps, so that files are byte-identical per seed

#: Calibrated at the default shape (24 months): raw source records per customer (see customers_for_records).
RECORDS_PER_CUSTOMER = 18.4

TRUTH_README = """\
# Ground truth of the sample company

Written by `helpers.sample_data.generate` next to the raw files it describes. The pipeline never reads
these files; tests and the accuracy sections of the reports do.

- `persons.csv` — one row per real customer (person or company): the true identity (given name, both
  family names, company name, tax id, birth date, e-mail and older e-mail, mobile and landline,
  address, postcode, city, province, IBAN), `household_id` / `household_role` (members of one
  household share an address and sometimes a landline, a surname or a joint IBAN),
  `namesake_group` (different persons with the same given name and both family names), and the
  behavioural traits that drove the data: `trajectory` (advancing / stagnating / regressing /
  churned, with `churned_at`), `payment_behaviour`, `satisfaction` (1-5), `responsiveness` (0-1),
  `preferred_channel`, the consent flags, `favourite_category`, `monthly_rate` (purchases per
  month before the trajectory) and `customer_since`.
- `records.csv` — source, source_id, person_id for every party source record (crm_contacts,
  erp_customers, web_customers, support_contacts, survey_respondents, social_authors,
  loyalty_members): one row per distinct (source, source_id). A person appears at most once per
  party source. This is the answer key for record linkage.
- `defects.csv` — every injected defect: the source(s) whose mapped column carries it (a defect in a
  file read by two sources is listed once per source that maps the column; row-level defects,
  duplicate_row and malformed_row, once per source reading the file), the file, `row_number`
  (1-based record position as a reader sees it: CSV data record with the header excluded, JSONL
  line, JSON array element, Excel data row, SQL result row in rowid order), the raw column (empty
  for row-level defects), `defect_class` (invalid_date, invalid_number, invalid_tax_id,
  invalid_iban, invalid_email, negative_quantity, duplicate_row, malformed_row, placeholder), the
  raw injected `value` (for duplicate_row: the record key of the copied row) and `record_key` (the
  value of the record's id column: invoice line, order id, ticket id, ...).
- `campaign_effects.csv` — the planted effect per campaign and selection group: channel, response
  rate of the control arm, additive uplift of the contacted arm, contacted_rate = control_rate +
  uplift, expected revenue per response, planned control share, and the realised group and
  control sizes. Individual response probabilities are scaled by responsiveness but average to
  these rates within each group.
- `mention_sentiment.csv` — mention_id and the true sentiment (positive / negative / neutral).
"""


# =============================================================================== small helpers
@dataclass(frozen=True)
class Window:
    """The months of history: [start, end) as numpy days; `end` is the company's 'today'."""

    start: np.datetime64
    end: np.datetime64

    @property
    def days(self) -> int:
        return int((self.end - self.start).astype(int))


def _rng(seed: int, stage: str) -> np.random.Generator:
    """An independent generator per stage, so that changing one stage does not reshuffle the others."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode())])


def _weighted(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse 'Name 12|Other 3' into names and probabilities."""
    pairs = [item.rsplit(" ", 1) for item in text.split("|")]
    names = np.array([p[0] for p in pairs], dtype=object)
    weights = np.array([float(p[1]) for p in pairs])
    return names, weights / weights.sum()


def _choice(rng: np.random.Generator, options: dict | tuple | list, size: int) -> np.ndarray:
    """Draw `size` keys of a {key: probability} dict (or uniformly from a sequence)."""
    if isinstance(options, dict):
        keys = np.array(list(options), dtype=object)
        p = np.array(list(options.values()), dtype=float)
        return keys[rng.choice(len(keys), size=size, p=p / p.sum())]
    arr = np.array(options, dtype=object)
    return arr[rng.integers(0, len(arr), size)]


def _mask(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


def _unique_ints(rng: np.random.Generator, low: int, high: int, n: int) -> np.ndarray:
    """n distinct integers in [low, high)."""
    values = rng.integers(low, high, n)
    while True:
        _, first = np.unique(values, return_index=True)
        dup = np.ones(n, bool)
        dup[first] = False
        if not dup.any():
            return values
        values[dup] = rng.integers(low, high, int(dup.sum()))


def _dedupe(
    values: np.ndarray, rng: np.random.Generator, suffix: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Make strings unique by rewriting the later duplicates with `suffix(values, n)`."""
    values = values.copy()
    for _ in range(50):
        dup = pd.Series(values).duplicated().to_numpy()
        if not dup.any():
            return values
        values[dup] = suffix(values[dup], rng)
    raise RuntimeError("could not make values unique")


def _strip_accents(values: np.ndarray) -> np.ndarray:
    return np.array([v.translate(ACCENTS) for v in values], dtype=object)


def _ascii_slug(values: np.ndarray) -> np.ndarray:
    """Lower-case ASCII without spaces or punctuation, for e-mails and handles."""
    return np.array([re.sub(r"[^a-z0-9]", "", v.translate(ACCENTS).lower()) for v in values], dtype=object)


def _zfill(values: np.ndarray, width: int) -> np.ndarray:
    return pd.Series(values).astype(str).str.zfill(width).to_numpy(dtype=object)


@lru_cache(maxsize=1)
def _clock() -> np.ndarray:
    """'HH:MM:SS' for every second of a day."""
    return np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], dtype=object)


def _fmt_day(days: np.ndarray, fmt: str) -> np.ndarray:
    """Format datetime64 days ('' for NaT); each distinct day is formatted once."""
    d = np.asarray(days).astype("datetime64[D]")
    out = np.full(d.shape, "", dtype=object)
    ok = ~np.isnat(d)
    if ok.any():
        uniq, inverse = np.unique(d[ok], return_inverse=True)
        out[ok] = pd.DatetimeIndex(uniq).strftime(fmt).to_numpy(dtype=object)[inverse]
    return out


def _fmt_ts(ts: np.ndarray, sep: str = "T", suffix: np.ndarray | str = "") -> np.ndarray:
    """Format datetime64[s] values as ISO 'YYYY-MM-DD<sep>HH:MM:SS<suffix>' ('' for NaT)."""
    t = np.asarray(ts).astype("datetime64[s]")
    out = np.full(t.shape, "", dtype=object)
    ok = ~np.isnat(t)
    if ok.any():
        day = t[ok].astype("datetime64[D]")
        secs = (t[ok] - day).astype(np.int64)
        tail = suffix[ok] if isinstance(suffix, np.ndarray) else suffix
        out[ok] = _fmt_day(day, "%Y-%m-%d") + sep + _clock()[secs] + tail
    return out


def _fmt_money(values: np.ndarray, decimal: str = ".") -> np.ndarray:
    text = np.array([f"{v:.2f}" for v in np.asarray(values, dtype=float)], dtype=object)
    if decimal != ".":
        text = np.array([t.replace(".", decimal) for t in text], dtype=object)
    return text


# =============================================================================== check characters
NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
CCC_WEIGHTS = np.array([1, 2, 4, 8, 5, 10, 9, 7, 3, 6])


def _nif_letter(numbers: np.ndarray) -> np.ndarray:
    return np.array(list(NIF_LETTERS), dtype=object)[np.asarray(numbers, dtype=np.int64) % 23]


def _cif_control(letters: np.ndarray, digits7: np.ndarray) -> np.ndarray:
    """The control digit of a CIF (entity letter + 7 digits): the digit form, valid for A/B/E/F/J."""
    d = (np.asarray(digits7, dtype=np.int64)[:, None] // 10 ** np.arange(6, -1, -1)) % 10
    even = d[:, 1::2].sum(1)
    doubled = d[:, 0::2] * 2
    odd = (doubled // 10 + doubled % 10).sum(1)
    return ((10 - (even + odd) % 10) % 10).astype(str).astype(object)


def _ccc_digit(values: np.ndarray) -> np.ndarray:
    """A Spanish CCC control digit over a 10-digit group."""
    d = (np.asarray(values, dtype=np.int64)[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    r = 11 - (d * CCC_WEIGHTS).sum(1) % 11
    return np.where(r == 11, 0, np.where(r == 10, 1, r))


def _ibans(rng: np.random.Generator, n: int) -> np.ndarray:
    """Valid Spanish IBANs (CCC control digits and ISO 7064 mod-97 check digits)."""
    banks = _choice(rng, BANKS, n).astype(np.int64)
    branch = rng.integers(1, 10000, n)
    account = _unique_ints(rng, 10**8, 10**10, n)
    entity = banks * 10000 + branch
    dc = _ccc_digit(entity) * 10 + _ccc_digit(account)
    r = entity % 97
    r = (r * (10**2 % 97) + dc) % 97
    r = (r * (10**10 % 97) + account % 97) % 97
    r = (r * (10**6 % 97) + 142800 % 97) % 97  # "ES00" -> 1428 00
    check = 98 - r
    return np.array(
        [f"ES{c:02d}{e:08d}{d:02d}{a:010d}" for c, e, d, a in zip(check, entity, dc, account, strict=True)],
        dtype=object,
    )


# =============================================================================== population
def _places() -> pd.DataFrame:
    rows = []
    for city, lo, hi, pop in PLACES:
        province, landline, region = PROVINCES[f"{lo:05d}"[:2]]
        rows.append((city, lo, hi, pop, province, landline, region))
    frame = pd.DataFrame(rows, columns=["city", "cp_lo", "cp_hi", "weight", "province", "landline", "region"])
    frame["p"] = frame["weight"] / frame["weight"].sum()
    return frame


def _draw_place(rng: np.random.Generator, n: int, places: pd.DataFrame) -> np.ndarray:
    return rng.choice(len(places), size=n, p=places["p"].to_numpy())


def _addresses(rng: np.random.Generator, place: np.ndarray, places: pd.DataFrame) -> dict[str, np.ndarray]:
    """Street line, postcode, city and province for customers living in `place` (indices of PLACES)."""
    n = len(place)
    lo, hi = places["cp_lo"].to_numpy()[place], places["cp_hi"].to_numpy()[place]
    postcode = _zfill(lo + (rng.random(n) * (hi - lo + 1)).astype(int), 5)
    kind = _choice(rng, STREET_TYPES, n)
    name = _choice(rng, STREET_NAMES, n)
    number = rng.integers(1, 140, n)
    floor = rng.integers(0, 10, n)
    door = _choice(rng, DOORS, n)
    flat = rng.random(n) < 0.65
    street = np.array(
        [
            f"{k} {s}, {num}" + ((f", {'Bajo' if fl == 0 else str(fl) + 'º'} {d}") if f else "")
            for k, s, num, fl, d, f in zip(kind, name, number, floor, door, flat, strict=True)
        ],
        dtype=object,
    )
    return {
        "street": street,
        "postcode": postcode,
        "city": places["city"].to_numpy(dtype=object)[place],
        "province": places["province"].to_numpy(dtype=object)[place],
    }


def _landlines(rng: np.random.Generator, place: np.ndarray, places: pd.DataFrame) -> np.ndarray:
    """Valid landlines with the province prefix (9 digits)."""
    prefix = places["landline"].to_numpy(dtype=object)[place]
    out = []
    for p, r in zip(prefix, rng.integers(10**6, 10**7, len(place)), strict=True):
        if len(p) == 2:  # keep the third digit in 1-8 so that every number is a valid fixed line
            p = p + str(1 + r % 8)
        out.append(p + f"{r:07d}"[: 9 - len(p)])
    return np.array(out, dtype=object)


def _mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct valid Spanish mobiles: 6xx xxx xxx, or 71x-74x xx xx xx."""
    draw = _unique_ints(rng, 0, 140_000_000, n)
    numbers = np.where(draw < 100_000_000, 600_000_000 + draw, 710_000_000 + draw - 100_000_000)
    return pd.Series(numbers).astype(str).to_numpy(dtype=object)


def _given_names(
    rng: np.random.Generator, gender: np.ndarray, region: np.ndarray, foreign: np.ndarray
) -> np.ndarray:
    n = len(gender)
    out = np.empty(n, dtype=object)
    regional = (region != "") & ~foreign & _mask(rng, n, REGIONAL_NAME_SHARE)
    for g, common, foreign_pool, idx in (
        ("M", MALE_NAMES, FOREIGN_NAMES[0], 0),
        ("F", FEMALE_NAMES, FOREIGN_NAMES[1], 1),
    ):
        is_g = gender == g
        for mask, text in ((is_g & ~regional & ~foreign, common), (is_g & foreign, foreign_pool)):
            names, p = _weighted(text)
            out[mask] = names[rng.choice(len(names), int(mask.sum()), p=p)]
        for reg, pools in REGIONAL_NAMES.items():
            mask = is_g & regional & (region == reg)
            names, p = _weighted(pools[idx])
            out[mask] = names[rng.choice(len(names), int(mask.sum()), p=p)]
    return out


def _surnames(rng: np.random.Generator, region: np.ndarray, foreign: np.ndarray, n: int) -> np.ndarray:
    common, p_common = _weighted(SURNAMES)
    out = common[rng.choice(len(common), n, p=p_common)]
    for reg, text in REGIONAL_SURNAMES.items():
        mask = (region == reg) & ~foreign & _mask(rng, n, REGIONAL_SURNAME_SHARE)
        names, p = _weighted(text)
        out[mask] = names[rng.choice(len(names), int(mask.sum()), p=p)]
    names, p = _weighted(FOREIGN_SURNAMES)
    out[foreign] = names[rng.choice(len(names), int(foreign.sum()), p=p)]
    return out


def _tax_ids_persons(rng: np.random.Generator, foreign: np.ndarray) -> np.ndarray:
    n = len(foreign)
    dni = _unique_ints(rng, 1_000_000, 80_000_000, n)
    prefix = _choice(rng, {"X": 0.40, "Y": 0.45, "Z": 0.15}, n)
    nie_number = _unique_ints(rng, 0, 10**7, n)
    prefix_value = np.select([prefix == "X", prefix == "Y"], [0, 1], 2)
    nif = _zfill(dni, 8) + _nif_letter(dni)
    nie = prefix + _zfill(nie_number, 7) + _nif_letter(prefix_value * 10**7 + nie_number)
    return np.where(foreign, nie, nif)


def _emails(
    rng: np.random.Generator, given: np.ndarray, s1: np.ndarray, s2: np.ndarray, birth_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A unique current address per person and, for some, an older one."""
    n = len(given)
    first = _ascii_slug(np.array([g.split(" ")[0] for g in given], dtype=object))
    whole = _ascii_slug(given)
    a1, a2 = _ascii_slug(s1), _ascii_slug(s2)
    yy = pd.Series(birth_year % 100).astype(str).str.zfill(2).to_numpy(dtype=object)
    num = rng.integers(1, 999, n).astype(str).astype(object)
    initial = np.array([f[:1] for f in first], dtype=object)
    pattern = rng.choice(6, n, p=[0.30, 0.20, 0.15, 0.10, 0.10, 0.15])
    local = np.select(
        [pattern == 0, pattern == 1, pattern == 2, pattern == 3, pattern == 4],
        [first + "." + a1, whole + a1 + yy, initial + a1 + a2, first + "_" + a1, a1 + "." + a2 + yy],
        whole + num,
    )
    local = np.where(local == "", "cliente" + num, local)
    email = local + "@" + _choice(rng, EMAIL_DOMAINS, n)

    def suffix(values, r):
        return np.array([v.replace("@", f"{r.integers(1, 99)}@", 1) for v in values], dtype=object)

    email = _dedupe(email, rng, suffix)
    has_old = _mask(rng, n, OLD_EMAIL_SHARE)
    old_local = np.where(rng.random(n) < 0.5, whole + yy, first + a1 + num)
    old = old_local + "@" + _choice(rng, OLD_EMAIL_DOMAINS, n)
    old = np.where(has_old & (old != email), old, "")
    return email, old


def _persons(rng: np.random.Generator, n: int, window: Window, places: pd.DataFrame) -> pd.DataFrame:
    place = _draw_place(rng, n, places)
    region = places["region"].to_numpy(dtype=object)[place]
    gender = np.where(rng.random(n) < 0.51, "F", "M").astype(object)
    foreign = _mask(rng, n, FOREIGNER_SHARE)
    foreign_named = foreign & _mask(rng, n, FOREIGN_NAME_SHARE)
    given = _given_names(rng, gender, region, foreign_named)
    s1 = _surnames(rng, region, foreign_named, n)
    s2 = _surnames(rng, region, foreign_named, n)
    s2[foreign_named & _mask(rng, n, 0.6)] = ""  # most non-Spanish names carry one family name
    age_days = (np.clip(rng.normal(47, 15, n), 18.2, 92) * 365.25).astype(np.int64)
    birth = window.end - age_days.astype("timedelta64[D]")
    frame = pd.DataFrame(
        {
            "party_type": "person",
            "gender": gender,
            "foreign": foreign,
            "given_name": given,
            "family_name_1": s1,
            "family_name_2": s2,
            "company_name": "",
            "legal_form": "",
            "tax_id": _tax_ids_persons(rng, foreign),
            "birth_date": birth,
            "place": place,
            **_addresses(rng, place, places),
            "mobile": _mobiles(rng, n),
            "landline": np.where(_mask(rng, n, LANDLINE_SHARE), _landlines(rng, place, places), ""),
            "iban": _ibans(rng, n),
        }
    )
    frame["household_id"] = ""
    frame["household_role"] = ""
    return frame


def _households(rng: np.random.Generator, persons: pd.DataFrame, today: np.datetime64) -> None:
    """Group ~HOUSEHOLD_SHARE of the persons into households of 2-3 at one address (in place)."""
    n = len(persons)
    target = int(round(n * HOUSEHOLD_SHARE))
    if target < 2:
        return
    sizes = np.where(rng.random(target) < 0.8, 2, 3)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), target) + 1]
    members = rng.permutation(n)[: sizes.sum()]
    if len(members) < sizes.sum():
        return
    hh = np.repeat(np.arange(len(sizes)), sizes)
    head = members[np.r_[0, np.cumsum(sizes)[:-1]]][hh]
    kind = _choice(rng, HOUSEHOLD_TYPES, len(sizes))[hh]
    other = members != head
    col = persons.columns.get_loc
    # everyone in a household lives at the head's address
    for name in ("street", "postcode", "city", "province", "place"):
        persons.iloc[members, col(name)] = persons.iloc[head, col(name)].to_numpy()
    share_line = (
        other & (persons["landline"].to_numpy()[head] != "") & _mask(rng, len(members), SHARED_LANDLINE)
    )
    persons.iloc[members[share_line], col("landline")] = persons["landline"].to_numpy()[head[share_line]]
    birth = persons["birth_date"].to_numpy().astype("datetime64[D]")
    year = np.timedelta64(365, "D")
    # couples: similar ages; some pay from a joint account
    couple = other & (kind == "couple")
    jitter = (rng.normal(0, 4, len(members)) * 365).astype(np.int64).astype("timedelta64[D]")
    birth[members[couple]] = np.minimum(birth[head[couple]] + jitter[couple], birth.max())
    joint = couple & _mask(rng, len(members), JOINT_IBAN)
    persons.iloc[members[joint], col("iban")] = persons["iban"].to_numpy()[head[joint]]
    # parent and adult child: the child carries the parent's first surname
    child = other & (kind == "parent_child")
    old_enough = today - (48 + rng.integers(0, 20, len(members))) * year
    birth[head[child]] = np.minimum(birth[head[child]], old_enough[child])
    birth[members[child]] = birth[head[child]] + rng.integers(22, 30, int(child.sum())) * year
    persons.iloc[members[child], col("family_name_1")] = persons["family_name_1"].to_numpy()[head[child]]
    # siblings: both surnames; sometimes the gendered variant of the head's name (Joan / Joana)
    sib = other & (kind == "siblings")
    for name in ("family_name_1", "family_name_2"):
        persons.iloc[members[sib], col(name)] = persons[name].to_numpy()[head[sib]]
    adult = today - 18 * year - np.timedelta64(30, "D")
    birth[members[sib]] = np.minimum(birth[head[sib]] + rng.integers(-8, 9, int(sib.sum())) * year, adult)
    head_given = persons["given_name"].to_numpy()[head]
    variant = np.array([GENDERED_VARIANTS.get(g, "") for g in head_given], dtype=object)
    twin = sib & (variant != "") & (persons["gender"].to_numpy()[head] == "M") & _mask(rng, len(members), 0.5)
    persons.iloc[members[twin], col("given_name")] = variant[twin]
    persons.iloc[members[twin], col("gender")] = "F"
    persons["birth_date"] = birth
    persons.iloc[members, col("household_id")] = np.array([f"H{h + 1:06d}" for h in hh], dtype=object)
    persons.iloc[members, col("household_role")] = np.where(other, kind, "head")


def _namesakes(rng: np.random.Generator, persons: pd.DataFrame, places: pd.DataFrame) -> None:
    """Give ~NAMESAKE_SHARE of the persons the full name of another person elsewhere (in place)."""
    pairs = max(1, int(round(len(persons) * NAMESAKE_SHARE / 2)))
    free = np.flatnonzero(persons["household_id"].to_numpy() == "")
    if len(free) < 2 * pairs:
        return
    chosen = rng.permutation(free)[: 2 * pairs]
    a, b = chosen[:pairs], chosen[pairs:]
    col = persons.columns.get_loc
    for name in ("given_name", "family_name_1", "family_name_2", "gender"):
        persons.iloc[b, col(name)] = persons[name].to_numpy()[a]
    same_city = persons["city"].to_numpy()[a] == persons["city"].to_numpy()[b]
    if same_city.any():  # a namesake lives elsewhere
        moved = b[same_city]
        new_place = (
            persons["place"].to_numpy()[moved] + 1 + rng.integers(0, len(places) - 1, len(moved))
        ) % len(places)
        address = _addresses(rng, new_place, places)
        persons.iloc[moved, col("place")] = new_place
        for name, values in address.items():
            persons.iloc[moved, col(name)] = values
        persons.iloc[moved, col("landline")] = np.where(
            persons["landline"].to_numpy()[moved] != "", _landlines(rng, new_place, places), ""
        )
    same_birth = persons["birth_date"].to_numpy()[a] == persons["birth_date"].to_numpy()[b]
    birth = persons["birth_date"].to_numpy().astype("datetime64[D]")
    birth[b[same_birth]] -= np.timedelta64(400, "D")
    persons["birth_date"] = birth


def _companies(rng: np.random.Generator, n: int, places: pd.DataFrame) -> pd.DataFrame:
    place = _draw_place(rng, n, places)
    surnames, p = _weighted(SURNAMES)
    surname = surnames[rng.choice(len(surnames), n, p=p)]
    kind = rng.random(n)
    sector = _choice(rng, COMPANY_SECTORS, n)
    core = np.where(
        kind < 0.60,
        sector + " " + surname,
        np.where(kind < 0.85, sector + " " + _choice(rng, COMPANY_PLACES, n), "Hermanos " + surname),
    )
    forms = _choice(rng, {k: v[0] for k, v in LEGAL_FORMS.items()}, n)
    core = _dedupe(
        core, rng, lambda v, r: np.array([f"{x} {r.choice(list(COMPANY_PLACES))}" for x in v], dtype=object)
    )
    name = core + " " + forms
    letter = np.array([LEGAL_FORMS[f][1] for f in forms], dtype=object)
    address = _addresses(rng, place, places)
    province_code = np.array([pc[:2] for pc in address["postcode"]], dtype=object)
    digits5 = _unique_ints(rng, 0, 100000, n)
    digits7 = province_code.astype(int) * 100000 + digits5
    cif = letter + _zfill(digits7, 7) + _cif_control(letter, digits7)
    slug = _ascii_slug(core)
    slug = np.array([s[:22] for s in slug], dtype=object)
    tld = np.where(rng.random(n) < 0.7, ".es", ".com")
    email = _choice(rng, COMPANY_MAILBOXES, n) + "@" + slug + tld
    email = _dedupe(
        email,
        rng,
        lambda v, r: np.array([x.replace("@", f"@{r.integers(2, 99)}", 1) for x in v], dtype=object),
    )
    return pd.DataFrame(
        {
            "party_type": "company",
            "gender": "",
            "foreign": False,
            "given_name": "",
            "family_name_1": "",
            "family_name_2": "",
            "company_name": name,
            "legal_form": forms,
            "tax_id": cif,
            "birth_date": np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"),
            "place": place,
            **address,
            "mobile": np.where(rng.random(n) < 0.4, _mobiles(rng, n), ""),
            "landline": _landlines(rng, place, places),
            "iban": _ibans(rng, n),
            "household_id": "",
            "household_role": "",
            "email": email,
            "old_email": "",
        }
    )


def _traits(rng: np.random.Generator, pop: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The behaviour behind the records: trajectory, payment, satisfaction, channels, consents."""
    n = len(pop)
    company = (pop["party_type"] == "company").to_numpy()
    trajectory = _choice(rng, TRAJECTORIES, n)
    new = _mask(rng, n, NEW_CUSTOMER_SHARE)
    since_offset = np.where(new, rng.integers(0, int(window.days * 0.8), n), -rng.integers(15, 4000, n))
    since = window.start + since_offset.astype("timedelta64[D]")
    adult = pop["birth_date"].to_numpy().astype("datetime64[D]") + np.timedelta64(int(18 * 365.25), "D")
    since = np.where(
        np.isnat(adult), since, np.minimum(np.maximum(since, adult), window.end - np.timedelta64(1, "D"))
    )
    t0 = np.clip((since - window.start).astype(int) / window.days, 0, 1)
    churn_t = t0 + (1 - t0) * rng.uniform(*CHURN_POINT, n)
    churned = trajectory == "churned"
    churned_at = np.where(
        churned,
        window.start + (churn_t * window.days).astype(np.int64).astype("timedelta64[D]"),
        np.datetime64("NaT"),
    )
    payment = np.where(
        company, _choice(rng, PAYMENT_BEHAVIOURS["company"], n), _choice(rng, PAYMENT_BEHAVIOURS["person"], n)
    )
    latent = rng.normal(0, 1, n) + np.array([SATISFACTION_SHIFT[t] for t in trajectory])
    satisfaction = 1 + np.searchsorted(np.array(SATISFACTION_CUTS), latent)
    preferred = _choice(rng, PREFERRED_CHANNELS, n)
    consents = {
        f"consent_{ch}": (rng.random(n) < rate) | (preferred == ch) for ch, rate in CONSENT_RATES.items()
    }
    median = np.where(company, MONTHLY_PURCHASES["company"][0], MONTHLY_PURCHASES["person"][0])
    sigma = np.where(company, MONTHLY_PURCHASES["company"][1], MONTHLY_PURCHASES["person"][1])
    rate = median * np.exp(rng.normal(0, 1, n) * sigma)
    currency = np.where(
        company, _choice(rng, {**FOREIGN_CURRENCY, "EUR": 1 - sum(FOREIGN_CURRENCY.values())}, n), "EUR"
    )
    method = np.where(
        company,
        _choice(rng, PAYMENT_METHODS["company"], n),
        np.where(
            payment == "on_time",
            _choice(rng, PAYMENT_METHODS["on_time"], n),
            _choice(rng, PAYMENT_METHODS["person"], n),
        ),
    )
    categories = sorted({p[2] for p in PRODUCTS}, key=[p[2] for p in PRODUCTS].index)
    return pop.assign(
        customer_since=since,
        trajectory=trajectory,
        churned_at=churned_at,
        payment_behaviour=payment,
        payment_method=method,
        satisfaction=satisfaction,
        responsiveness=rng.beta(*RESPONSIVENESS_BETA, n).round(4),
        preferred_channel=preferred,
        **consents,
        favourite_category=_choice(rng, categories, n),
        monthly_rate=rate.round(4),
        web_share=rng.beta(2, 2, n),
        currency=currency,
        active_from=t0,
        active_to=np.where(churned, churn_t, 1.0),
    )


def _population(seed: int, customers: int, window: Window) -> pd.DataFrame:
    rng = _rng(seed, "population")
    places = _places()
    n_companies = max(1, int(round(customers * COMPANY_SHARE)))
    persons = _persons(rng, customers - n_companies, window, places)
    _households(rng, persons, window.end)
    _namesakes(rng, persons, places)
    birth_year = persons["birth_date"].to_numpy().astype("datetime64[Y]").astype(int) + 1970
    persons["email"], persons["old_email"] = _emails(
        rng,
        persons["given_name"].to_numpy(),
        persons["family_name_1"].to_numpy(),
        persons["family_name_2"].to_numpy(),
        birth_year,
    )
    companies = _companies(rng, n_companies, places)
    pop = pd.concat([persons, companies], ignore_index=True)
    pop = _traits(rng, pop, window)
    pop.insert(0, "person_id", [f"P{i:07d}" for i in range(1, len(pop) + 1)])
    full = (pop["given_name"] + " " + pop["family_name_1"] + " " + pop["family_name_2"]).str.strip()
    pop["full_name"] = np.where(pop["party_type"] == "company", pop["company_name"], full)
    key = pop.loc[pop["party_type"] == "person", "full_name"]
    groups = key[key.duplicated(keep=False)]
    codes = {name: f"N{i + 1:05d}" for i, name in enumerate(sorted(set(groups)))}
    pop["namesake_group"] = pop["full_name"].map(codes).where(pop["party_type"] == "person", None).fillna("")
    return pop


def _membership(seed: int, pop: pd.DataFrame) -> dict[str, np.ndarray]:
    """Which customers each party source holds; everybody is in at least one source."""
    rng = _rng(seed, "membership")
    n = len(pop)
    person = (pop["party_type"] == "person").to_numpy()
    member = {}
    for source, (p_person, p_company) in COVERAGE.items():
        member[source] = rng.random(n) < np.where(person, p_person, p_company)
    erp_share = COVERAGE["erp_customers"][0]
    for source, given_erp in (("web_customers", WEB_GIVEN_ERP), ("loyalty_members", LOYALTY_GIVEN_ERP)):
        otherwise = (COVERAGE[source][0] - given_erp * erp_share) / (1 - erp_share)
        member[source] = person & (rng.random(n) < np.where(member["erp_customers"], given_erp, otherwise))
    nowhere = ~np.logical_or.reduce(list(member.values()))
    member["crm_contacts"] |= nowhere  # prospects that only sales knows
    return member


# =============================================================================== identity noise
def _nicknames(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    for i, v in enumerate(values):
        options = NICKNAMES.get(v)
        if options:
            out[i] = options[rng.integers(0, len(options))]
    return out


def _surname_variant(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for i, v in enumerate(values):
        if v in SURNAME_VARIANTS:
            out[i] = SURNAME_VARIANTS[v]
        elif v[-1:] in "aeiou" and " " not in v:
            out[i] = v + "s"
        elif v.endswith("s") and len(v) > 4:
            out[i] = v[:-1]
    return out


def _typos(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One transposition, deletion or keyboard-neighbour substitution per value."""
    out = values.copy()
    draws = rng.random((len(values), 3))
    for i, w in enumerate(values):
        if len(w) < 4:
            continue
        pos = 1 + int(draws[i, 1] * (len(w) - 2))
        c = w[pos]
        if not c.isalpha():
            continue
        op = draws[i, 0]
        if op < 0.35 and w[pos + 1 : pos + 2].isalpha() and w[pos + 1] != c:
            out[i] = w[:pos] + w[pos + 1] + c + w[pos + 2 :]
        elif op < 0.65 and w[pos - 1] != " " and w[pos + 1 : pos + 2] not in ("", " "):
            out[i] = w[:pos] + w[pos + 1 :]
        else:
            near = KEYBOARD.get(c.lower().translate(ACCENTS), "")
            if near:
                sub = near[int(draws[i, 2] * len(near))]
                out[i] = w[:pos] + (sub.upper() if c.isupper() else sub) + w[pos + 1 :]
    return out


def _abbreviate(streets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = streets.copy()
    draws = rng.random((len(streets), 2))
    for i, s in enumerate(streets):
        kind, _, rest = s.partition(" ")
        options = STREET_ABBREVIATIONS.get(kind)
        if options:
            s = options[int(draws[i, 0] * len(options))] + " " + rest
        if draws[i, 1] < 0.25:  # floor and door left out
            s = ", ".join(s.split(", ")[:2])
        if draws[i, 1] < 0.5:
            s = s.replace(", ", " ", 1)
        out[i] = s.replace("C/ ", "C/") if draws[i, 1] > 0.9 else s
    return out


def _email_noise(email: np.ndarray, old: np.ndarray, nz: Noise, rng: np.random.Generator) -> np.ndarray:
    n = len(email)
    email = email.copy()
    use_old = (old != "") & _mask(rng, n, nz.old_email)
    email[use_old] = old[use_old]
    dot = (email != "") & _mask(rng, n, nz.email_dot)
    positions = rng.random(n)
    for i in np.flatnonzero(dot):
        local, _, domain = email[i].partition("@")
        if "." in local:
            local = local.replace(".", "", 1)
        elif len(local) > 3:
            cut = 1 + int(positions[i] * (len(local) - 2))
            local = local[:cut] + "." + local[cut:]
        email[i] = local + "@" + domain
    case = (email != "") & _mask(rng, n, nz.email_case)
    upper = case & (rng.random(n) < 0.5)
    email[upper] = np.array([e.upper() for e in email[upper]], dtype=object)
    title = case & ~upper
    email[title] = np.array(
        [".".join(p.capitalize() for p in e.split(".")) for e in email[title]], dtype=object
    )
    return email


def _phone_style(digits: np.ndarray, weights: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    style = rng.choice(len(PHONE_STYLES), len(digits), p=np.array(weights) / sum(weights))
    d = pd.Series(digits, dtype=object).astype(str)
    a, b, c = d.str[:3], d.str[3:6], d.str[6:]
    variants = [
        d,
        a + " " + b + " " + c,
        a + "." + b + "." + c,
        "+34" + d,
        "0034" + d,
        "+34 " + a + " " + d.str[3:5] + " " + d.str[5:7] + " " + d.str[7:],
    ]
    out = np.select(
        [style == k for k in range(len(PHONE_STYLES))], [v.to_numpy(dtype=object) for v in variants]
    )
    return np.where(d.to_numpy(dtype=object) == "", "", out).astype(object)


def _tax_style(
    tax: np.ndarray, company: np.ndarray, weights: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    style = rng.choice(len(TAX_STYLES), len(tax), p=np.array(weights) / sum(weights))
    out = tax.copy()
    for i in np.flatnonzero(style != 0):
        t, s = tax[i], TAX_STYLES[style[i]]
        if company[i]:
            out[i] = (
                t[0] + "-" + t[1:] if s in ("hyphen", "no_letter") else (t.lower() if s == "lower" else t)
            )
        elif s == "lower":
            out[i] = t.lower()
        elif s == "hyphen":
            out[i] = t[:-1] + "-" + t[-1]
        elif s == "no_letter":  # a DNI without its letter (a NIE is not written without it)
            out[i] = t[:-1] if t[0].isdigit() else t
        elif s == "spaced":
            out[i] = t[:-1] + " " + t[-1]
    return out


def _company_form_noise(
    names: np.ndarray, forms: np.ndarray, rate: float, rng: np.random.Generator
) -> np.ndarray:
    out = names.copy()
    pick = _mask(rng, len(names), rate) & (forms != "")
    draws = rng.random(len(names))
    for i in np.flatnonzero(pick):
        options = LEGAL_FORM_VARIANTS[forms[i]]
        variant = options[int(draws[i] * len(options))]
        base = names[i][: -len(forms[i])].rstrip()
        out[i] = base + variant if variant.startswith(",") else base + " " + variant
    return out


def _day_month_swap(birth: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Swap day and month where picked and the result is another valid date (day <= 12, day != month)."""
    birth = birth.copy()
    ok = ~np.isnat(birth)
    month = np.zeros(len(birth), int)
    day = np.zeros(len(birth), int)
    month[ok] = birth[ok].astype("datetime64[M]").astype(int) % 12 + 1
    day[ok] = (birth[ok] - birth[ok].astype("datetime64[M]")).astype(int) + 1
    swap = pick & ok & (day <= 12) & (day != month)
    year = birth[swap].astype("datetime64[Y]").astype(int) + 1970
    birth[swap] = np.array(
        [f"{y:04d}-{d:02d}-{m:02d}" for y, m, d in zip(year, month[swap], day[swap], strict=True)],
        dtype="datetime64[D]",
    )
    return birth


def _identity_view(pop: pd.DataFrame, source: str, rng: np.random.Generator) -> pd.DataFrame:
    """The customers as one party source records them: noisy names, formats and missing fields."""
    nz, n = NOISE[source], len(pop)
    person = (pop["party_type"] == "person").to_numpy()
    given = pop["given_name"].to_numpy(dtype=object).copy()
    s1 = pop["family_name_1"].to_numpy(dtype=object).copy()
    s2 = pop["family_name_2"].to_numpy(dtype=object).copy()
    m = person & _mask(rng, n, nz.nickname)
    given[m] = _nicknames(given[m], rng)
    m = person & _mask(rng, n, nz.surname_variant)
    first = rng.random(n) < 0.7
    s1[m & first] = _surname_variant(s1[m & first])
    second = m & ~first & (s2 != "")
    s2[second] = _surname_variant(s2[second])
    m = person & (s2 != "") & _mask(rng, n, nz.swap_surnames)
    s1[m], s2[m] = s2[m], s1[m].copy()
    s2[person & _mask(rng, n, nz.one_surname)] = ""
    m = person & _mask(rng, n, nz.typo)
    which = rng.integers(0, 3, n)
    for k, arr in enumerate((given, s1, s2)):
        sel = m & (which == k) & (arr != "")
        arr[sel] = _typos(arr[sel], rng)
    company = _company_form_noise(
        pop["company_name"].to_numpy(dtype=object),
        pop["legal_form"].to_numpy(dtype=object),
        nz.company_form,
        rng,
    )
    street = pop["street"].to_numpy(dtype=object).copy()
    city = pop["city"].to_numpy(dtype=object).copy()
    m = _mask(rng, n, nz.abbreviate)
    street[m] = _abbreviate(street[m], rng)
    m = _mask(rng, n, nz.drop_accents)
    for arr in (given, s1, s2, company, street, city):
        arr[m] = _strip_accents(arr[m])
    upper = _mask(rng, n, nz.upper)
    lower = ~upper & person & _mask(rng, n, nz.lower)
    for arr in (given, s1, s2, company, street, city):
        arr[upper] = np.array([v.upper() for v in arr[upper]], dtype=object)
    for arr in (given, s1, s2):
        arr[lower] = np.array([v.lower() for v in arr[lower]], dtype=object)
    email = _email_noise(
        pop["email"].to_numpy(dtype=object), pop["old_email"].to_numpy(dtype=object), nz, rng
    )
    mobile, landline = pop["mobile"].to_numpy(dtype=object), pop["landline"].to_numpy(dtype=object)
    use_landline = (landline != "") & ((mobile == "") | _mask(rng, n, nz.landline))
    phone = _phone_style(np.where(use_landline, landline, mobile), nz.phone_styles, rng)
    tax = _tax_style(pop["tax_id"].to_numpy(dtype=object), ~person, nz.tax_styles, rng)
    birth = _day_month_swap(
        pop["birth_date"].to_numpy().astype("datetime64[D]"), _mask(rng, n, nz.day_month_swap)
    )
    view = pd.DataFrame(
        {
            "person_id": pop["person_id"].to_numpy(),
            "party_type": pop["party_type"].to_numpy(),
            "given": given,
            "s1": s1,
            "s2": s2,
            "company": company,
            "tax_id": tax,
            "email": email,
            "phone": phone,
            "birth_date": birth,
            "street": street,
            "postcode": pop["postcode"].to_numpy(dtype=object),
            "city": city,
            "province": pop["province"].to_numpy(dtype=object),
        }
    )
    for column, rate in MISSING[source].items():
        gone = _mask(rng, n, rate)
        view.loc[gone, column] = np.datetime64("NaT") if column == "birth_date" else ""
    view["family"] = (view["s1"] + " " + view["s2"]).str.strip()
    full = (view["given"] + " " + view["family"]).str.strip()
    view["full"] = np.where(person, full, view["company"])
    return view


# =============================================================================== raw files and defects
@dataclass
class RawFile:
    """One raw file in the making: a frame of raw values, its defects and how it is written."""

    relpath: str
    frame: pd.DataFrame
    key: str  # the raw column that identifies a record (for the defect log)
    items: pd.DataFrame | None = None  # web order items: "order" is the position of their order
    defects: list[tuple[int, str, str, str]] = field(default_factory=list)  # (position, column, class, value)
    taken: np.ndarray | None = None  # rows that already carry a defect
    tail: str | None = None  # the truncated last line
    tail_key: str = ""  # its record key

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        self.taken = np.zeros(len(self.frame), bool)


def _date_style(raw: RawFile, column: str) -> str:
    sample = next((v for v in raw.frame[column] if isinstance(v, str) and v), "")
    return "dmy" if re.match(r"\d\d/\d\d/\d{4}", sample) else "iso"


def _invalid_dates(raw: RawFile, column: str, pos: np.ndarray, rng: np.random.Generator) -> list:
    options = INVALID_DATES[_date_style(raw, column)]
    out = []
    for p in pos:
        bad = options[rng.integers(0, len(options))]
        current = raw.frame.at[p, column]
        if isinstance(current, str) and len(current) > 10:  # keep the time (and zone) part
            bad += current[10:]
        elif isinstance(current, (datetime, pd.Timestamp)):
            bad += " " + current.strftime("%H:%M")
        out.append(bad)
    return out


def _corrupt_tax_id(value: str, r: int) -> str:
    last = value[-1]
    if last.isalpha():
        letters = NIF_LETTERS + NIF_LETTERS.lower()
        pool = NIF_LETTERS.lower() if last.islower() else NIF_LETTERS
        return (
            value[:-1] + pool[(pool.index(last) + 1 + r % 22) % 23] if last in letters else value[:-1] + "Q"
        )
    return value[:-1] + str((int(last) + 1 + r % 9) % 10)


def _corrupt_iban(value: str, r: int) -> str:
    check = int(value[2:4])
    return value[:2] + f"{(check + 1 + r % 90) % 100:02d}" + value[4:]


def _invalid_email(value: str, r: int) -> str:
    local, _, domain = value.partition("@")
    options = [
        local + "@",
        local + "@@" + domain,
        local + "@" + domain.split(".")[0],
        local + domain,
        local.replace(".", " ", 1) + "@" + domain if "." in local else local + " @" + domain,
    ]
    return options[r % len(options)]


def _placeholder(column: str) -> str:
    if "mail" in column:
        return PLACEHOLDER_EMAIL
    if any(k in column for k in ("phone", "telefono", "mobile")):
        return PLACEHOLDER_PHONE
    return PLACEHOLDER_TEXT


def _defect_values(
    raw: RawFile, column: str, cls: str, pos: np.ndarray, rng: np.random.Generator, frame: pd.DataFrame
) -> list:
    draws = rng.integers(0, 10**6, len(pos))
    current = [frame.at[p, column] for p in pos]
    if cls == "invalid_date":
        return _invalid_dates(raw, column, pos, rng)
    if cls == "invalid_number":
        options = INVALID_NUMBERS["," if raw.relpath.startswith("erp/") else "."]
        return [options[d % len(options)] for d in draws]
    if cls == "invalid_tax_id":
        return [_corrupt_tax_id(str(v), d) for v, d in zip(current, draws, strict=True)]
    if cls == "invalid_iban":
        return [_corrupt_iban(str(v), d) for v, d in zip(current, draws, strict=True)]
    if cls == "invalid_email":
        return [_invalid_email(str(v), d) for v, d in zip(current, draws, strict=True)]
    if cls == "negative_quantity":
        return [f"-{v}" for v in current]
    if cls == "placeholder":
        return [_placeholder(column)] * len(pos)
    raise ValueError(f"unknown defect class {cls}")


def _eligible(values: pd.Series, cls: str) -> np.ndarray:
    """Rows where a defect of `cls` can be planted (a value must be there to be corrupted)."""
    filled = values.map(lambda v: v is not None and v == v and v != "").to_numpy()
    if cls == "invalid_tax_id":
        return (
            filled & values.map(lambda v: isinstance(v, str) and len(v) >= 9 and v[-1].isalnum()).to_numpy()
        )
    if cls in ("invalid_iban", "invalid_email", "invalid_date"):
        return filled
    return np.ones(len(values), bool)


def _inject_defects(raw: RawFile, rng: np.random.Generator) -> None:
    """Plant the DEFECTS of this file on distinct rows and log them."""
    for column, cls, rate in DEFECTS.get(raw.relpath, []):
        on_items = raw.items is not None and column.startswith("items.")
        frame = raw.items if on_items else raw.frame
        target = column.removeprefix("items.") if on_items else column
        owner = frame["order"].to_numpy() if on_items else np.arange(len(frame))
        free = _eligible(frame[target], cls) & ~raw.taken[owner]
        candidates = np.flatnonzero(free)
        k = min(len(candidates), max(1, int(round(rate * len(raw.frame)))))
        if k == 0:
            continue
        pos = np.sort(rng.choice(candidates, k, replace=False))
        pos = pos[~pd.Series(owner[pos]).duplicated().to_numpy()]  # one defect per record
        renamed = frame.rename(columns={target: column}) if on_items else frame
        values = _defect_values(raw, column, cls, pos, rng, renamed)
        col = frame.columns.get_loc(target)
        for p, v in zip(pos, values, strict=True):
            frame.iat[p, col] = v
        raw.taken[owner[pos]] = True
        raw.defects.extend((int(owner[p]), column, cls, str(v)) for p, v in zip(pos, values, strict=True))


def _duplicate_rows(raw: RawFile, rng: np.random.Generator) -> None:
    """Insert exact copies of a few clean rows right after their originals (the copy is the defect)."""
    rate = DUPLICATE_RATE.get(raw.relpath)
    if not rate:
        return
    candidates = np.flatnonzero(~raw.taken)
    k = min(len(candidates), max(1, int(round(rate * len(raw.frame)))))
    originals = np.sort(rng.choice(candidates, k, replace=False))
    n = len(raw.frame)
    order = np.argsort(np.r_[np.arange(n) * 2, originals * 2 + 1], kind="stable")
    source_rows = np.r_[np.arange(n), originals][order]
    shift = np.searchsorted(originals, np.arange(n), side="left")  # copies inserted before each row
    raw.defects = [(p + int(shift[p]), c, cls, v) for p, c, cls, v in raw.defects]
    copies = originals + np.arange(1, k + 1)
    keys = raw.frame[raw.key].to_numpy()[originals]
    raw.frame = raw.frame.iloc[source_rows].reset_index(drop=True)
    raw.taken = np.zeros(len(raw.frame), bool)
    raw.defects.extend((int(p), "", "duplicate_row", str(key)) for p, key in zip(copies, keys, strict=True))


def _truncate_last_line(raw: RawFile, delimiter: str) -> None:
    """Cut the last record in the middle: fewer fields than the header and no trailing newline."""
    last = raw.frame.iloc[-1]
    line = delimiter.join(str(v) for v in last.to_numpy())
    fields = line.split(delimiter)
    keep = max(2, len(fields) // 2)
    cut = delimiter.join(fields[:keep])
    raw.tail = cut[: len(cut) - max(1, len(fields[keep - 1]) // 2)]
    raw.tail_key = str(last[raw.key])
    raw.frame = raw.frame.iloc[:-1].reset_index(drop=True)
    raw.defects.append((len(raw.frame), "", "malformed_row", raw.tail))


# =============================================================================== purchases
def _purchase_events(
    seed: int, pop: pd.DataFrame, member: dict[str, np.ndarray], window: Window
) -> pd.DataFrame:
    """Purchase moments per customer, shaped by the trajectory: Poisson counts, times by inverse CDF."""
    rng = _rng(seed, "purchases")
    in_erp, in_web = member["erp_customers"], member["web_customers"]
    a = np.array([TRAJECTORY_SHAPE[t][0] for t in pop["trajectory"]])
    b = np.array([TRAJECTORY_SHAPE[t][1] for t in pop["trajectory"]])
    t0, t1 = pop["active_from"].to_numpy(), pop["active_to"].to_numpy()
    mass = a * (t1 - t0) + b / 2 * (t1**2 - t0**2)
    months = window.days / 30.44
    expected = pop["monthly_rate"].to_numpy() * months * mass * (in_erp | in_web)
    count = rng.poisson(expected)
    cust = np.repeat(np.arange(len(pop)), count)
    u = rng.random(len(cust))
    A, B, T0, T1, M = a[cust], b[cust], t0[cust], t1[cust], mass[cust]
    C = A * T0 + B / 2 * T0**2 + u * M
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(
            B == 0,
            T0 + u * (T1 - T0),
            (-A + np.sqrt(np.maximum(A * A + 2 * B * C, 0))) / np.where(B == 0, 1, B),
        )
    web = in_web[cust] & (~in_erp[cust] | (rng.random(len(cust)) < pop["web_share"].to_numpy()[cust]))
    # a web shop customer has ordered at least once (an orders export knows no one else)
    ordered = np.zeros(len(pop), bool)
    ordered[cust[web]] = True
    first_order = np.flatnonzero(in_web & ~ordered)
    cust = np.r_[cust, first_order]
    t = np.r_[t, t0[first_order] + rng.random(len(first_order)) * (t1 - t0)[first_order]]
    web = np.r_[web, np.ones(len(first_order), bool)]
    day = np.minimum((t * window.days).astype(np.int64), window.days - 1)
    seconds = np.where(
        web,
        (rng.beta(2.2, 1.6, len(cust)) * 86399).astype(np.int64),
        rng.integers(9 * 3600, 21 * 3600, len(cust)),
    )
    ts = (window.start + day.astype("timedelta64[D]")).astype("datetime64[s]") + seconds.astype(
        "timedelta64[s]"
    )
    events = pd.DataFrame({"cust": cust, "ts": ts, "channel": np.where(web, "web", "erp")})
    return events.sort_values(["ts", "cust"], kind="stable").reset_index(drop=True)


def _pick_products(rng: np.random.Generator, favourite: np.ndarray) -> np.ndarray:
    """Product indices: often from the customer's favourite category, else by popularity (cheaper = more)."""
    n = len(favourite)
    price = np.array([p[3] for p in PRODUCTS])
    popularity = 1 / np.sqrt(price)
    cats = np.array([p[2] for p in PRODUCTS], dtype=object)
    overall = rng.choice(len(PRODUCTS), n, p=popularity / popularity.sum())
    fav = rng.random(n) < FAVOURITE_CATEGORY_SHARE
    out = overall.copy()
    for cat in np.unique(favourite[fav]):
        idx = np.flatnonzero(cats == cat)
        sel = fav & (favourite == cat)
        w = popularity[idx] / popularity[idx].sum()
        out[sel] = idx[rng.choice(len(idx), int(sel.sum()), p=w)]
    return out


# =============================================================================== sources
def _ids(prefix: str, n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Sequential ids handed out in a random order (ids say nothing about the person)."""
    return np.array([f"{prefix}{i:0{width}d}" for i in rng.permutation(np.arange(1, n + 1))], dtype=object)


def _products_file() -> RawFile:
    frame = pd.DataFrame(PRODUCTS, columns=["sku", "name", "category", "price", "unit_cost"])
    frame["price"] = _fmt_money(frame["price"].to_numpy())
    frame["unit_cost"] = _fmt_money(frame["unit_cost"].to_numpy())
    return RawFile("catalogue/products.csv", frame, "sku")


def _erp_customers(seed: int, pop: pd.DataFrame, idx: np.ndarray) -> tuple[RawFile, np.ndarray]:
    rng = _rng(seed, "erp_customers")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "erp_customers", rng)
    n = len(view)
    company = (view["party_type"] == "company").to_numpy()
    code = _ids("430", n, 6, rng)
    method = people["payment_method"].to_numpy(dtype=object)
    has_iban = np.isin(method, ["domiciliacion", "transferencia"]) | _mask(rng, n, 0.15)
    iban = people["iban"].to_numpy(dtype=object)
    spaced = _mask(rng, n, 0.4)
    iban = np.where(spaced, [" ".join(v[i : i + 4] for i in range(0, 24, 4)) for v in iban], iban)
    shipping = np.where(
        _mask(rng, n, ERP_SEPARATE_SHIPPING), _abbreviate(view["street"].to_numpy(), rng), view["street"]
    )
    frame = pd.DataFrame(
        {
            "cod_cliente": code,
            "nombre": np.where(company, "", view["given"]),
            "apellidos": np.where(company, "", view["family"]),
            "razon_social": np.where(company, view["company"], ""),
            "nif": view["tax_id"],
            "iban": np.where(has_iban, iban, ""),
            "direccion_envio": shipping,
            "direccion_facturacion": view["street"],
            "cod_postal": view["postcode"],
            "poblacion": view["city"],
            "provincia": view["province"],
            "pais": "ES",
            "moneda": people["currency"].to_numpy(dtype=object),
            "forma_pago": method,
            "telefono": view["phone"],
            "email": view["email"],
            "fecha_alta": _fmt_day(people["customer_since"].to_numpy(), "%d/%m/%Y"),
        }
    )
    order = np.argsort(frame["cod_cliente"].to_numpy())
    raw = RawFile("erp/clientes.csv", frame.iloc[order], "cod_cliente")
    _inject_defects(raw, rng)
    return raw, code


def _payment_dates(
    rng: np.random.Generator,
    fecha: np.ndarray,
    due: np.ndarray,
    behaviour: np.ndarray,
    method: np.ndarray,
    end: np.datetime64,
) -> np.ndarray:
    n = len(fecha)
    delay = np.select(
        [behaviour == "late", behaviour == "very_late", behaviour == "some_unpaid"],
        [rng.integers(3, 31, n), rng.integers(30, 121, n), rng.integers(0, 46, n)],
        0,
    )
    early = (rng.random(n) * (due - fecha).astype(int)).astype(np.int64)
    paid = np.where(
        behaviour == "on_time", fecha + early.astype("timedelta64[D]"), due + delay.astype("timedelta64[D]")
    )
    paid = np.where(np.isin(method, ["tarjeta", "efectivo"]), fecha, paid)
    unpaid = ((behaviour == "some_unpaid") & (rng.random(n) < UNPAID_SHARE)) | (paid >= end)
    return np.where(unpaid, np.datetime64("NaT"), paid).astype("datetime64[D]")


def _erp_invoices(
    seed: int, pop: pd.DataFrame, events: pd.DataFrame, erp_code: np.ndarray, window: Window
) -> RawFile:
    """Invoice lines (one row each) of the ERP purchases, in date order."""
    rng = _rng(seed, "erp_invoices")
    ev = events[events["channel"] == "erp"].reset_index(drop=True)
    cust = ev["cust"].to_numpy()
    kind = pop["party_type"].to_numpy(dtype=object)[cust]
    company = kind == "company"
    n_inv = len(ev)
    n_lines = 1 + np.minimum(rng.poisson(np.where(company, 1.5, 0.7)), 7)
    inv = np.repeat(np.arange(n_inv), n_lines)
    line_no = np.arange(len(inv)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    fecha = ev["ts"].to_numpy().astype("datetime64[D]")
    year = fecha.astype("datetime64[Y]").astype(int) + 1970
    seq = pd.Series(year).groupby(year).cumcount().to_numpy() + 1
    num = np.array([f"F{y}-{s:06d}" for y, s in zip(year, seq, strict=True)], dtype=object)
    lc = cust[inv]
    product = _pick_products(rng, pop["favourite_category"].to_numpy(dtype=object)[lc])
    category = np.array([p[2] for p in PRODUCTS], dtype=object)[product]
    bulk = company[inv] & np.isin(category, CONSUMABLE_CATEGORIES)
    qty = 1 + np.where(company[inv], rng.poisson(np.where(bulk, 8, 3)), rng.poisson(0.25, len(inv)))
    currency = pop["currency"].to_numpy(dtype=object)[lc]
    fx = np.array([FX_PER_EUR[c] for c in currency])
    price = np.round(np.array([p[3] for p in PRODUCTS])[product] * fx, 2)
    amount = np.round(qty * price, 2)
    amount = np.where(_mask(rng, len(inv), REFUND_SHARE), -amount, amount)
    canal = np.where(
        company, _choice(rng, ERP_CHANNELS["company"], n_inv), _choice(rng, ERP_CHANNELS["person"], n_inv)
    )
    default = pop["payment_method"].to_numpy(dtype=object)[cust]
    method = np.where(
        rng.random(n_inv) < 0.9, default, _choice(rng, ("transferencia", "domiciliacion", "tarjeta"), n_inv)
    )
    due = fecha + np.where(company, 60, 30).astype("timedelta64[D]")
    paid = _payment_dates(
        rng, fecha, due, pop["payment_behaviour"].to_numpy(dtype=object)[cust], method, window.end
    )
    frame = pd.DataFrame(
        {
            "num_factura": num[inv],
            "linea_factura": num[inv] + "-" + line_no.astype(str).astype(object),
            "cod_cliente": erp_code[cust][inv],
            "fecha": _fmt_day(fecha, "%d/%m/%Y")[inv],
            "producto": np.array([p[0] for p in PRODUCTS], dtype=object)[product],
            "familia": category,
            "descripcion": np.array([p[1] for p in PRODUCTS], dtype=object)[product],
            "cantidad": qty.astype(str).astype(object),
            "precio": _fmt_money(price, ","),
            "importe": _fmt_money(amount, ","),
            "moneda": currency,
            "canal": canal[inv],
            "forma_pago": method[inv],
            "fecha_vencimiento": _fmt_day(due, "%d/%m/%Y")[inv],
            "fecha_cobro": _fmt_day(paid, "%d/%m/%Y")[inv],
        }
    )
    raw = RawFile("erp/facturas.csv", frame, "linea_factura")
    raw.taken[-1] = True  # the last line will be truncated
    _inject_defects(raw, rng)
    return raw


def _crm_contacts(
    seed: int, pop: pd.DataFrame, idx: np.ndarray, window: Window
) -> tuple[RawFile, np.ndarray]:
    rng = _rng(seed, "crm_contacts")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "crm_contacts", rng)
    n = len(view)
    company = (view["party_type"] == "company").to_numpy()
    contact_id = _ids("CT-", n, 6, rng)
    since = people["customer_since"].to_numpy().astype("datetime64[D]")
    created = since + rng.integers(-30, 60, n).astype("timedelta64[D]")
    created = np.minimum(created, window.end - np.timedelta64(1, "D"))
    modified = created + (rng.random(n) * (window.end - created).astype(int)).astype(np.int64).astype(
        "timedelta64[D]"
    )
    flags = {
        f"opt_in_{ch}": np.where(people[f"consent_{ch}"].to_numpy(), "true", "false").astype(object)
        for ch in ("email", "sms", "phone", "mail")
    }
    frame = pd.DataFrame(
        {
            "contact_id": contact_id,
            "first_name": np.where(company, "", view["given"]),
            "last_name": np.where(company, "", view["family"]),
            "account_name": np.where(company, view["company"], ""),
            "tax_id": view["tax_id"],
            "email": view["email"],
            "phone": view["phone"],
            "birth_date": _fmt_day(view["birth_date"].to_numpy(), "%Y-%m-%d"),
            "street": view["street"],
            "zip": view["postcode"],
            "city": view["city"],
            "country": "ES",
            **flags,
            "lead_source": _choice(rng, CRM_LEAD_SOURCES, n),
            "owner": _choice(rng, CRM_OWNERS, n),
            "created_at": _fmt_day(created, "%Y-%m-%d"),
            "modified_at": _fmt_day(modified, "%Y-%m-%d"),
        }
    )
    frame["person"] = np.arange(n)
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    person_of_row = frame.pop("person").to_numpy()
    raw = RawFile("crm/contacts.csv", frame, "contact_id")
    _inject_defects(raw, rng)
    return raw, idx[person_of_row]


def _crm_opportunities(
    seed: int, pop: pd.DataFrame, crm: RawFile, crm_people: np.ndarray, window: Window
) -> RawFile:
    rng = _rng(seed, "crm_opportunities")
    company = pop["party_type"].to_numpy(dtype=object)[crm_people] == "company"
    count = np.where(company, rng.poisson(2.5, len(company)), (rng.random(len(company)) < 0.12).astype(int))
    row = np.repeat(np.arange(len(company)), count)
    n = len(row)
    since = pop["customer_since"].to_numpy().astype("datetime64[D]")[crm_people][row]
    first = np.maximum(since, window.start)
    span = np.maximum((window.end - first).astype(int), 1)
    created = first.astype("datetime64[s]") + (rng.random(n) * span * 86400).astype(np.int64).astype(
        "timedelta64[s]"
    )
    created = (
        created
        - (created - created.astype("datetime64[D]"))
        + rng.integers(8 * 3600, 19 * 3600, n).astype("timedelta64[s]")
    )
    cycle = rng.integers(5, 121, n)
    closed = created + (cycle * 86400 + rng.integers(-3600, 3600, n)).astype("timedelta64[s]")
    is_open = (closed >= window.end.astype("datetime64[s]")) | _mask(rng, n, 0.03)
    won = rng.random(n) < np.where(company[row], 0.5, 0.4)
    stage = np.where(is_open, "Open", np.where(won, "Won", "Lost"))
    product = rng.integers(0, len(PRODUCTS), n)
    qty = np.where(company[row], rng.integers(5, 51, n), rng.integers(1, 4, n))
    amount = np.round(qty * np.array([p[3] for p in PRODUCTS])[product], 2)
    frame = pd.DataFrame(
        {
            "opportunity_id": "",
            "contact_id": crm.frame["contact_id"].to_numpy()[row],
            "created_at": _fmt_ts(created),
            "closed_at": np.where(is_open, "", _fmt_ts(closed)),
            "stage": stage.astype(object),
            "amount": _fmt_money(amount),
            "product": np.array([p[0] for p in PRODUCTS], dtype=object)[product],
        }
    )
    order = np.argsort(created, kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame["opportunity_id"] = np.array([f"OPP-{i:06d}" for i in range(1, n + 1)], dtype=object)
    raw = RawFile("crm/opportunities.csv", frame, "opportunity_id")
    _inject_defects(raw, rng)
    return raw


def _madrid_offset(ts_utc: np.ndarray) -> np.ndarray:
    """UTC offset of Europe/Madrid in seconds at each UTC instant."""
    idx = pd.DatetimeIndex(ts_utc).tz_localize("UTC").tz_convert("Europe/Madrid")
    return (idx.tz_localize(None) - pd.DatetimeIndex(ts_utc)).total_seconds().to_numpy().astype(np.int64)


def _web_orders(
    seed: int, pop: pd.DataFrame, events: pd.DataFrame, idx: np.ndarray
) -> tuple[RawFile, np.ndarray]:
    """Web shop orders (one JSON line each) with a snapshot of the customer account."""
    rng = _rng(seed, "web_orders")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "web_customers", rng)
    account = np.full(len(pop), -1)
    account[idx] = np.arange(len(idx))
    customer_id = 100000 + rng.permutation(len(idx)) + 1
    ev = events[events["channel"] == "web"].reset_index(drop=True)
    acc = account[ev["cust"].to_numpy()]
    n = len(ev)
    local = ev["ts"].to_numpy().astype("datetime64[s]")
    offset = _madrid_offset(local - np.timedelta64(1, "h"))
    sign_hours = np.array([f"+{o // 3600:02d}:00" for o in offset], dtype=object)
    phone = view["phone"].to_numpy(dtype=object)[acc]
    phone = np.where(_mask(rng, n, WEB_PHONE_MISSING), "", phone)
    orders = pd.DataFrame(
        {
            "order_id": 500001 + np.arange(n),
            "created_at": _fmt_ts(local, "T", sign_hours),
            "currency": "EUR",
            "payment.method": _choice(rng, WEB_PAYMENTS, n),
            "customer.id": customer_id[acc],
            "customer.email": view["email"].to_numpy(dtype=object)[acc],
            "customer.first_name": view["given"].to_numpy(dtype=object)[acc],
            "customer.last_name": view["family"].to_numpy(dtype=object)[acc],
            "customer.phone": phone,
            "customer.accepts_marketing": people["consent_email"].to_numpy()[acc],
            "customer.address.street": view["street"].to_numpy(dtype=object)[acc],
            "customer.address.postcode": view["postcode"].to_numpy(dtype=object)[acc],
            "customer.address.city": view["city"].to_numpy(dtype=object)[acc],
        }
    )
    n_items = 1 + rng.binomial(2, 0.25, n)
    order_pos = np.repeat(np.arange(n), n_items)
    product = _pick_products(
        rng, pop["favourite_category"].to_numpy(dtype=object)[ev["cust"].to_numpy()][order_pos]
    )
    qty = 1 + rng.poisson(0.15, len(order_pos))
    discount = np.where(rng.random(len(order_pos)) < 0.15, 0.9, 1.0)
    total = np.round(qty * np.array([p[3] for p in PRODUCTS])[product] * discount, 2)
    items = pd.DataFrame(
        {
            "order": order_pos,
            "line_id": 9_000_001 + np.arange(len(order_pos)),
            "sku": np.array([p[0] for p in PRODUCTS], dtype=object)[product],
            "category": np.array([p[2] for p in PRODUCTS], dtype=object)[product],
            "quantity": qty,
            "total": total.astype(object),
        }
    )
    raw = RawFile("web/orders.jsonl", orders, "order_id", items=items)
    _inject_defects(raw, rng)
    return raw, customer_id


def _interaction_times(
    rng: np.random.Generator,
    pop: pd.DataFrame,
    who: np.ndarray,
    window: Window,
    hours: tuple[int, int] = (8, 22),
) -> np.ndarray:
    since = pop["customer_since"].to_numpy().astype("datetime64[D]")[who]
    first = np.maximum(since, window.start)
    span = np.maximum((window.end - first).astype(int), 1)
    day = first + (rng.random(len(who)) * span).astype(np.int64).astype("timedelta64[D]")
    return day.astype("datetime64[s]") + rng.integers(hours[0] * 3600, hours[1] * 3600, len(who)).astype(
        "timedelta64[s]"
    )


def _py_datetimes(ts: np.ndarray) -> np.ndarray:
    return np.array(pd.DatetimeIndex(ts.astype("datetime64[ns]")).to_pydatetime(), dtype=object)


def _support_tickets(
    seed: int, pop: pd.DataFrame, idx: np.ndarray, window: Window
) -> tuple[RawFile, np.ndarray]:
    rng = _rng(seed, "support")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "support_contacts", rng)
    requester = _ids("U", len(idx), 6, rng)
    satisfaction = people["satisfaction"].to_numpy()
    count = 1 + rng.poisson(0.3 + 0.35 * (5 - satisfaction))
    who = np.repeat(np.arange(len(idx)), count)
    n = len(who)
    opened = _interaction_times(rng, pop, idx[who], window)
    order = np.argsort(opened, kind="stable")
    who, opened = who[order], opened[order]
    channel = _choice(rng, SUPPORT_CHANNELS, n)
    minutes = np.round(
        np.array([HANDLING_MEDIAN_MINUTES[c] for c in channel]) * np.exp(rng.normal(0, 0.6, n)), 1
    )
    resolution = (np.exp(rng.normal(np.log(20 * 3600), 1.0, n))).astype(np.int64)
    closed = opened + resolution.astype("timedelta64[s]")
    still_open = closed >= window.end.astype("datetime64[s]")
    sat = satisfaction[who]
    csat = np.clip(np.round(sat + rng.normal(0, 0.8, n)), 1, 5).astype(int)
    has_csat = ~still_open & _mask(rng, n, CSAT_SHARE)
    complaint = rng.random(n) < (0.15 + 0.12 * (5 - sat))
    subject = np.where(
        complaint,
        _choice(rng, SUPPORT_SUBJECTS["complaint"], n),
        _choice(rng, SUPPORT_SUBJECTS["request"], n),
    )
    frame = pd.DataFrame(
        {
            "ticket_id": 40001 + np.arange(n),
            "requester_id": requester[who],
            "requester_name": view["full"].to_numpy(dtype=object)[who],
            "requester_email": view["email"].to_numpy(dtype=object)[who],
            "requester_phone": view["phone"].to_numpy(dtype=object)[who],
            "channel": channel,
            "opened_at": _py_datetimes(opened),
            "closed_at": np.where(still_open, None, _py_datetimes(closed)),
            "handling_minutes": minutes,
            "csat": np.where(has_csat, csat, None).astype(object),
            "subject": subject,
        }
    )
    for column in ("requester_email", "requester_phone"):
        frame[column] = np.where(frame[column] == "", None, frame[column])
    frame = frame.astype(object)  # cells keep their Python types (a defect may put text in a date column)
    raw = RawFile("support/tickets.xlsx", frame, "ticket_id")
    _inject_defects(raw, rng)
    return raw, requester


def _survey_responses(
    seed: int, pop: pd.DataFrame, idx: np.ndarray, window: Window
) -> tuple[RawFile, np.ndarray]:
    rng = _rng(seed, "surveys")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "survey_respondents", rng)
    respondent = _ids("R", len(idx), 6, rng)
    count = 1 + rng.poisson(0.6, len(idx))
    who = np.repeat(np.arange(len(idx)), count)
    n = len(who)
    submitted = _interaction_times(rng, pop, idx[who], window, hours=(7, 24))
    order = np.argsort(submitted, kind="stable")
    who, submitted = who[order], submitted[order]
    sat = people["satisfaction"].to_numpy()[who]
    nps = np.clip(np.round(np.array([NPS_MEAN[s] for s in sat]) + rng.normal(0, 1, n)), 0, 10).astype(int)
    band = np.where(nps >= 9, "promoter", np.where(nps >= 7, "passive", "detractor"))
    comment = np.empty(n, dtype=object)
    for b, texts in SURVEY_COMMENTS.items():
        sel = band == b
        comment[sel] = _choice(rng, texts, int(sel.sum()))
    comment[~_mask(rng, n, SURVEY_COMMENT_SHARE)] = ""
    frame = pd.DataFrame(
        {
            "response_id": np.array([f"NPS-{i:07d}" for i in range(1, n + 1)], dtype=object),
            "respondent_id": respondent[who],
            "name": view["full"].to_numpy(dtype=object)[who],
            "email": view["email"].to_numpy(dtype=object)[who],
            "submitted_at": _fmt_ts(submitted),
            "nps": nps.astype(str).astype(object),
            "comment": comment,
        }
    )
    raw = RawFile("surveys/nps.csv", frame, "response_id")
    _inject_defects(raw, rng)
    return raw, respondent


def _social_mentions(
    seed: int, pop: pd.DataFrame, idx: np.ndarray, window: Window
) -> tuple[RawFile, np.ndarray, pd.DataFrame]:
    rng = _rng(seed, "social")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "social_authors", rng)
    m = len(idx)
    first = _ascii_slug(np.array([g.split(" ")[0] for g in view["given"]], dtype=object))
    s1 = _ascii_slug(view["s1"].to_numpy(dtype=object))
    style = rng.integers(0, 4, m)
    num = rng.integers(1, 99, m).astype(str).astype(object)
    handle = "@" + np.select(
        [style == 0, style == 1, style == 2], [first + s1, first + "_" + s1 + num, s1 + first], first + num
    )
    handle = _dedupe(
        handle, rng, lambda v, r: np.array([f"{x}{r.integers(1, 999)}" for x in v], dtype=object)
    )
    has_email = view["email"].to_numpy(dtype=object) != ""
    # with an e-mail the display name may be short; without one it always carries both surnames
    short = has_email & (rng.random(m) < 0.6)
    first_only = short & (rng.random(m) < 0.4)
    name = np.where(
        first_only,
        view["given"],
        np.where(short, (view["given"] + " " + view["s1"]).str.strip(), view["full"]),
    )
    network = _choice(rng, SOCIAL_NETWORKS, m)
    count = 1 + rng.poisson(1.5, m)
    who = np.repeat(np.arange(m), count)
    n = len(who)
    published = _interaction_times(rng, pop, idx[who], window, hours=(0, 24))
    order = np.argsort(published, kind="stable")
    who, published = who[order], published[order]
    sat = people["satisfaction"].to_numpy()[who]
    p = np.array([SENTIMENT_BY_SATISFACTION[s] for s in sat])
    u = rng.random(n)
    sentiment = np.where(u < p[:, 0], "positive", np.where(u < p[:, 0] + p[:, 1], "neutral", "negative"))
    product = rng.integers(0, len(PRODUCTS), n)
    template_pick = rng.random(n)
    city = people["city"].to_numpy(dtype=object)[who]
    text = []
    for s, t, pr, c in zip(sentiment, template_pick, product, city, strict=True):
        templates = MENTION_TEXTS[s]
        name_p, cat = PRODUCTS[pr][1], PRODUCTS[pr][2].lower()
        text.append(templates[int(t * len(templates))].format(product=name_p.lower(), category=cat, city=c))
    mention_id = np.array([f"MEN-{i:07d}" for i in range(1, n + 1)], dtype=object)
    frame = pd.DataFrame(
        {
            "mention_id": mention_id,
            "network": network[who],
            "handle": handle[who],
            "author_name": name[who],
            "author_email": np.where(has_email, view["email"], None)[who],
            "published_at": _fmt_ts(published, "T", "Z"),
            "text": np.array(text, dtype=object),
        }
    )
    truth = pd.DataFrame({"mention_id": mention_id, "sentiment": sentiment})
    return RawFile("social/mentions.json", frame, "mention_id"), handle, truth


def _loyalty_members(
    seed: int, pop: pd.DataFrame, idx: np.ndarray, window: Window
) -> tuple[RawFile, np.ndarray, np.ndarray]:
    rng = _rng(seed, "loyalty")
    people = pop.iloc[idx].reset_index(drop=True)
    view = _identity_view(people, "loyalty_members", rng)
    n = len(view)
    card = np.array([f"6390{c:09d}" for c in _unique_ints(rng, 10**8, 10**9, n)], dtype=object)
    since = people["customer_since"].to_numpy().astype("datetime64[D]")
    joined = np.minimum(
        since + rng.integers(0, 400, n).astype("timedelta64[D]"), window.end - np.timedelta64(1, "D")
    )
    joined = joined.astype("datetime64[s]") + rng.integers(9 * 3600, 21 * 3600, n).astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "card_number": card,
            "first_name": view["given"],
            "surname1": view["s1"],
            "surname2": view["s2"],
            "dni": view["tax_id"],
            "mobile": view["phone"],
            "email": view["email"],
            "birth_date": _fmt_day(view["birth_date"].to_numpy(), "%Y-%m-%d"),
            "postcode": view["postcode"],
            "sms_ok": people["consent_sms"].to_numpy().astype(int),
            "joined_at": _fmt_ts(joined, " "),
            "points": rng.integers(0, 5000, n),
            "tier": _choice(rng, {"Bronce": 0.6, "Plata": 0.3, "Oro": 0.1}, n),
        }
    )
    order = np.argsort(joined, kind="stable")
    frame, card = frame.iloc[order].reset_index(drop=True), card[order]
    raw = RawFile("loyalty/loyalty.sqlite", frame, "card_number")
    _inject_defects(raw, rng)
    return raw, card, idx[order]


# =============================================================================== campaigns
def _clean_cells(raw: RawFile, column: str) -> np.ndarray:
    """Rows of `raw` whose `column` is filled and carries no defect."""
    bad = np.zeros(len(raw.frame), bool)
    for pos, col, _, _ in raw.defects:
        if col == column:
            bad[pos] = True
    return (raw.frame[column].to_numpy(dtype=object) != "") & ~bad


def _campaigns(
    seed: int, pop: pd.DataFrame, crm: RawFile, crm_people: np.ndarray, window: Window
) -> tuple[RawFile, pd.DataFrame]:
    """Campaign contact lists with planted response effects per campaign × group (see GROUP_EFFECTS)."""
    rng = _rng(seed, "campaigns")
    person = pop["party_type"].to_numpy(dtype=object)[crm_people] == "person"
    digits = crm.frame["phone"].str.replace(r"\D", "", regex=True).str[-9:]
    mobile = digits.str[:1].isin(["6", "7"]).to_numpy()
    responsiveness = pop["responsiveness"].to_numpy()[crm_people]
    value = pop["monthly_rate"].to_numpy()[crm_people] * (
        pop["trajectory"].to_numpy()[crm_people] != "churned"
    )
    rows, effects = [], []
    end_s = window.end.astype("datetime64[s]")
    for name, months_before, channel, control_share, factor in CAMPAIGNS:
        sent_day = (
            (pd.Timestamp(window.end) - pd.DateOffset(months=months_before))
            .to_datetime64()
            .astype("datetime64[D]")
        )
        campaign_id = f"CMP-{pd.Timestamp(sent_day):%Y%m}-{name}"
        consent_col, contact_col = CHANNEL_CONSENT[channel]
        eligible = person & (crm.frame[consent_col].to_numpy() == "true") & _clean_cells(crm, contact_col)
        if channel == "sms":
            eligible &= mobile
        pool = np.flatnonzero(eligible)
        size = int(round(GROUP_SHARE * len(pool)))
        random_group = rng.choice(pool, size, replace=False)
        rest = np.setdiff1d(pool, random_group)
        score = np.log(responsiveness[rest] / (1 - responsiveness[rest])) + rng.normal(0, 0.8, len(rest))
        model_group = rest[np.argsort(-score, kind="stable")[:size]]
        rest = np.setdiff1d(rest, model_group)
        marketing_score = np.log(value[rest] + 0.01) + rng.normal(0, 0.5, len(rest))
        marketing_group = rest[np.argsort(-marketing_score, kind="stable")[:size]]
        for group, members in (
            ("model", model_group),
            ("marketing", marketing_group),
            ("random", random_group),
        ):
            base, uplift, revenue = GROUP_EFFECTS[group]
            control_rate = round(base * CHANNEL_MULTIPLIER[channel] * factor, 4)
            uplift = round(uplift * CHANNEL_MULTIPLIER[channel] * factor, 4)
            rpr = round(revenue * factor, 2)
            members = rng.permutation(members)
            k = len(members)
            is_control = np.zeros(k, bool)
            is_control[: int(round(control_share * k))] = True
            is_control = rng.permutation(is_control)
            r = responsiveness[members]
            rate = np.where(is_control, control_rate, control_rate + uplift)
            p = np.clip(rate * r / r.mean(), 0, 0.95) if k else rate
            responded = rng.random(k) < p
            spread = rng.integers(0, 5 if channel == "telemarketing" else 1, k)
            sent = (sent_day + spread.astype("timedelta64[D]")).astype("datetime64[s]") + rng.integers(
                9 * 3600, 19 * 3600, k
            ).astype("timedelta64[s]")
            lag = np.minimum(rng.exponential(6 * 86400, k), RESPONSE_WINDOW_DAYS * 86400 - 1).astype(np.int64)
            answered = sent + lag.astype("timedelta64[s]")
            responded &= answered < end_s
            opened = np.where(responded, rng.random(k) < 0.8, rng.random(k) < 0.2 + 0.4 * r)
            rows.append(
                pd.DataFrame(
                    {
                        "campaign_id": campaign_id,
                        "contact_id": crm.frame["contact_id"].to_numpy()[members],
                        "group": group,
                        "is_control": is_control.astype(int),
                        "channel": channel,
                        "sent_at": _fmt_ts(sent),
                        "opened": np.where(
                            (channel == "email") & ~is_control, opened.astype(int).astype(str), ""
                        ).astype(object),
                        "responded": responded.astype(int),
                        "responded_at": np.where(responded, _fmt_ts(answered), ""),
                        "revenue": _fmt_money(np.where(responded, rng.gamma(4.0, rpr / 4, k), 0.0)),
                    }
                )
            )
            effects.append(
                {
                    "campaign": campaign_id,
                    "group": group,
                    "channel": channel,
                    "control_rate": control_rate,
                    "uplift": uplift,
                    "contacted_rate": round(control_rate + uplift, 4),
                    "revenue_per_response": rpr,
                    "planned_control_share": control_share,
                    "selected": k,
                    "controls": int(is_control.sum()),
                    "sent_on": str(sent_day),
                }
            )
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(0, "row_id", np.arange(1, len(frame) + 1))
    return RawFile("campaigns/contacts.csv", frame, "row_id"), pd.DataFrame(effects)


# =============================================================================== writers
CSV_FORMAT = {  # relpath -> (encoding, delimiter)
    "crm/contacts.csv": ("utf-8", ","),
    "crm/opportunities.csv": ("utf-8", ","),
    "erp/clientes.csv": ("cp1252", ";"),
    "erp/facturas.csv": ("cp1252", ";"),
    "surveys/nps.csv": ("utf-8", ","),
    "campaigns/contacts.csv": ("utf-8", ","),
    "catalogue/products.csv": ("utf-8", ","),
}


def _write_csv(raw: RawFile, path: Path) -> int:
    encoding, delimiter = CSV_FORMAT[raw.relpath]
    text = raw.frame.to_csv(index=False, sep=delimiter, lineterminator="\n")
    data = text.encode(encoding)
    if raw.tail is not None:
        data += raw.tail.encode(encoding)
    path.write_bytes(data)
    return len(raw.frame) + (raw.tail is not None)


def _jsonable(value):
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_jsonl(raw: RawFile, path: Path) -> int:
    orders, items = raw.frame, raw.items
    item_cols = ["line_id", "sku", "category", "quantity", "total"]
    item_rows = [
        dict(zip(item_cols, map(_jsonable, r), strict=True)) for r in items[item_cols].itertuples(index=False)
    ]
    bounds = np.searchsorted(items["order"].to_numpy(), np.arange(len(orders) + 1))
    lines = []
    for i, o in enumerate(orders.itertuples(index=False)):
        (
            order_id,
            created,
            currency,
            method,
            cid,
            email,
            first,
            last,
            phone,
            marketing,
            street,
            postcode,
            city,
        ) = o
        record = {
            "order_id": _jsonable(order_id),
            "created_at": created,
            "currency": currency,
            "payment": {"method": method},
            "customer": {
                "id": _jsonable(cid),
                "email": _jsonable(email),
                "first_name": _jsonable(first),
                "last_name": _jsonable(last),
                "phone": _jsonable(phone),
                "accepts_marketing": bool(marketing),
                "address": {
                    "street": _jsonable(street),
                    "postcode": _jsonable(postcode),
                    "city": _jsonable(city),
                },
            },
            "items": item_rows[bounds[i] : bounds[i + 1]],
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(orders)


def _write_json_array(raw: RawFile, path: Path) -> int:
    cols = list(raw.frame.columns)
    elements = [
        json.dumps(dict(zip(cols, map(_jsonable, r), strict=True)), ensure_ascii=False)
        for r in raw.frame.itertuples(index=False)
    ]
    path.write_text("[\n" + ",\n".join(elements) + "\n]\n", encoding="utf-8")
    return len(elements)


def _write_xlsx(raw: RawFile, path: Path, sheet: str = "Tickets") -> int:
    """An Excel workbook with one sheet (openpyxl write-only: dates become date cells, None empty cells)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    book.properties.created = FIXED_XLSX_TIME
    ws = book.create_sheet(sheet)
    ws.append(list(raw.frame.columns))
    for row in raw.frame.itertuples(index=False):
        ws.append([v if isinstance(v, datetime) else _jsonable(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(_reproducible_zip(buffer.getvalue()))
    return len(raw.frame)


def _reproducible_zip(data: bytes) -> bytes:
    """Re-pack a zip with fixed timestamps (and a fixed 'modified' property) so bytes depend on content only."""
    stamp = FIXED_XLSX_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\g<2>", content
                )
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_XLSX_TIME.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, content)
    return out.getvalue()


def _write_sqlite(raw: RawFile, path: Path) -> int:
    if path.exists():
        path.unlink()
    types = {"sms_ok": "INTEGER", "points": "INTEGER"}
    cols = list(raw.frame.columns)
    ddl = ", ".join(f"{c} {types.get(c, 'TEXT')}" for c in cols)
    rows = [tuple(map(_jsonable, r)) for r in raw.frame.itertuples(index=False)]
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE members ({ddl})")
        con.executemany(f"INSERT INTO members VALUES ({', '.join('?' * len(cols))})", rows)
    con.close()
    return len(rows)


def _write(raw: RawFile, raw_dir: Path) -> int:
    path = raw_dir / raw.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".csv":
        return _write_csv(raw, path)
    if suffix == ".jsonl":
        return _write_jsonl(raw, path)
    if suffix == ".json":
        return _write_json_array(raw, path)
    if suffix == ".xlsx":
        return _write_xlsx(raw, path)
    return _write_sqlite(raw, path)


# =============================================================================== truth
def _file_sources() -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """file -> raw column -> sources mapping it; file -> sources reading it."""
    by_column: dict[str, dict[str, list[str]]] = {}
    by_file: dict[str, list[str]] = {}
    for source, (relpath, columns) in SOURCE_FILES.items():
        by_file.setdefault(relpath, []).append(source)
        for column in columns:
            by_column.setdefault(relpath, {}).setdefault(column, []).append(source)
    return by_column, by_file


def _defect_table(files: list[RawFile]) -> pd.DataFrame:
    by_column, by_file = _file_sources()
    rows = []
    for raw in files:
        keys = raw.frame[raw.key].to_numpy()
        for pos, column, cls, value in sorted(raw.defects, key=lambda d: (d[0], d[1])):
            sources = by_column[raw.relpath][column] if column else by_file[raw.relpath]
            key = keys[pos] if pos < len(keys) else raw.tail_key
            for source in sources:
                rows.append(
                    {
                        "source": source,
                        "file": raw.relpath,
                        "row_number": pos + 1,
                        "column": column,
                        "defect_class": cls,
                        "value": value,
                        "record_key": str(key),
                    }
                )
    return pd.DataFrame(
        rows, columns=["source", "file", "row_number", "column", "defect_class", "value", "record_key"]
    )


def _records_truth(pop: pd.DataFrame, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """source, source_id, person_id for every party record: {source: (source ids, population rows)}."""
    person_id = pop["person_id"].to_numpy(dtype=object)
    frames = [
        pd.DataFrame(
            {"source": source, "source_id": pd.Series(ids).astype(str), "person_id": person_id[rows]}
        )
        for source, (ids, rows) in parts.items()
    ]
    records = pd.concat(frames, ignore_index=True)
    return records.sort_values(["source", "source_id"], kind="stable").reset_index(drop=True)


TRUTH_PERSON_COLUMNS = [
    "person_id",
    "party_type",
    "gender",
    "given_name",
    "family_names",
    "family_name_1",
    "family_name_2",
    "full_name",
    "legal_form",
    "tax_id",
    "birth_date",
    "email",
    "old_email",
    "phone",
    "mobile",
    "landline",
    "street",
    "postcode",
    "city",
    "province",
    "iban",
    "currency",
    "household_id",
    "household_role",
    "namesake_group",
    "customer_since",
    "trajectory",
    "churned_at",
    "payment_behaviour",
    "payment_method",
    "satisfaction",
    "responsiveness",
    "preferred_channel",
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_mail",
    "favourite_category",
    "monthly_rate",
]


def _write_truth(
    truth_dir: Path,
    pop: pd.DataFrame,
    records: pd.DataFrame,
    defects: pd.DataFrame,
    effects: pd.DataFrame,
    sentiment: pd.DataFrame,
) -> None:
    truth_dir.mkdir(parents=True, exist_ok=True)
    pop = pop.assign(
        family_names=(pop["family_name_1"] + " " + pop["family_name_2"]).str.strip(),
        phone=np.where(pop["mobile"] != "", pop["mobile"], pop["landline"]),
    )
    persons = pop[TRUTH_PERSON_COLUMNS].copy()
    for column in ("birth_date", "customer_since", "churned_at"):
        persons[column] = _fmt_day(persons[column].to_numpy(), "%Y-%m-%d")
    for name, frame in (
        ("persons", persons),
        ("records", records),
        ("defects", defects),
        ("campaign_effects", effects),
        ("mention_sentiment", sentiment),
    ):
        frame.to_csv(truth_dir / f"{name}.csv", index=False, lineterminator="\n")
    (truth_dir / "README.md").write_text(TRUTH_README, encoding="utf-8")


# =============================================================================== public API
def customers_for_records(records: int) -> int:
    """How many customers give about `records` raw source records in total (for benchmarks: 10k, 100k, 1M)."""
    return max(50, int(round(records / RECORDS_PER_CUSTOMER)))


def _window(end_date: str | date, months: int) -> Window:
    end = pd.Timestamp(end_date).normalize()
    start = end - pd.DateOffset(months=months)
    return Window(np.datetime64(start.date(), "D"), np.datetime64(end.date(), "D"))


def generate(
    raw_dir: Path,
    truth_dir: Path,
    *,
    customers: int = 5000,
    months: int = 24,
    end_date: str | date = "2026-11-10",
    seed: int = 42,
    progress: bool = False,
) -> dict:
    """Writes all raw sources + truth; returns a summary dict {"files": {relpath: rows}, "source_records": total, "persons": n, "seconds": t}."""
    if customers < 10:
        raise ValueError(f"customers must be at least 10 (got {customers})")
    started = time.perf_counter()
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    window = _window(end_date, months)

    def step(label: str) -> None:
        if progress:
            print(
                f"  sample: {label:<22} {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True
            )

    pop = _population(seed, customers, window)
    member = _membership(seed, pop)
    events = _purchase_events(seed, pop, member, window)
    step("population")
    idx = {source: np.flatnonzero(mask) for source, mask in member.items()}
    erp_customers, erp_code = _erp_customers(seed, pop, idx["erp_customers"])
    erp_lookup = np.full(len(pop), "", dtype=object)
    erp_lookup[idx["erp_customers"]] = erp_code
    erp_invoices = _erp_invoices(seed, pop, events, erp_lookup, window)
    step("erp")
    crm, crm_people = _crm_contacts(seed, pop, idx["crm_contacts"], window)
    opportunities = _crm_opportunities(seed, pop, crm, crm_people, window)
    campaigns, effects = _campaigns(seed, pop, crm, crm_people, window)
    step("crm and campaigns")
    web, web_ids = _web_orders(seed, pop, events, idx["web_customers"])
    support, requesters = _support_tickets(seed, pop, idx["support_contacts"], window)
    surveys, respondents = _survey_responses(seed, pop, idx["survey_respondents"], window)
    social, handles, sentiment = _social_mentions(seed, pop, idx["social_authors"], window)
    loyalty, cards, loyalty_people = _loyalty_members(seed, pop, idx["loyalty_members"], window)
    step("other sources")

    records = _records_truth(
        pop,
        {
            "crm_contacts": (crm.frame["contact_id"].to_numpy(), crm_people),
            "erp_customers": (erp_code, idx["erp_customers"]),
            "web_customers": (web_ids, idx["web_customers"]),
            "support_contacts": (requesters, idx["support_contacts"]),
            "survey_respondents": (respondents, idx["survey_respondents"]),
            "social_authors": (handles, idx["social_authors"]),
            "loyalty_members": (cards, loyalty_people),
        },
    )
    files = [
        _products_file(),
        erp_customers,
        erp_invoices,
        crm,
        opportunities,
        campaigns,
        web,
        support,
        surveys,
        social,
        loyalty,
    ]
    dup_rng = _rng(seed, "duplicates")
    for raw in files:
        _duplicate_rows(raw, dup_rng)
    _truncate_last_line(erp_invoices, CSV_FORMAT[TRUNCATED_FILE][1])
    counts = {raw.relpath: _write(raw, raw_dir) for raw in files}
    step("raw files written")
    _write_truth(truth_dir, pop, records, _defect_table(files), effects, sentiment)
    seconds = round(time.perf_counter() - started, 2)
    step("truth written")
    return {
        "files": dict(sorted(counts.items())),
        "source_records": int(sum(counts.values())),
        "persons": int(len(pop)),
        "seconds": seconds,
    }
