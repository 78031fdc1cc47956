"""The canonical schema every source is mapped to (see DESIGN.md, "The canonical schema").

One dictionary per record kind: canonical column -> logical type. Ingest maps each source's columns
onto these names, parses them by type, and writes exactly these columns (plus the lineage columns)
to ``data/processed/<period>/staged/<source>.parquet``. Later stages rely on nothing else.

Logical types: ``str`` (text, stripped, empty -> null), ``date`` (datetime64 day), ``datetime``,
``float`` (decimal number), ``int``, ``bool``.
"""

from __future__ import annotations

#: Lineage columns added by ingest to every staged record.
LINEAGE: dict[str, str] = {
    "source": "str",  # the source name in params/sources.yaml
    "record_id": "str",  # "<source>:<row_number>", unique across the whole run
    "row_number": "int",  # 1-based position of the record in its file (header excluded)
}

#: Reference from a non-party record to the party record it belongs to (source + source_id).
PARTY_REF: dict[str, str] = {"party_source": "str", "party_id": "str"}

PARTY: dict[str, str] = {
    "source_id": "str",
    "party_type": "str",  # person | company (derived from tax id or name when not mapped)
    "given_name": "str",
    "family_names": "str",  # both Spanish surnames, as delivered ("Prados García")
    "family_name_1": "str",  # derived by standardise
    "family_name_2": "str",  # derived by standardise
    "full_name": "str",  # company name for companies
    "tax_id": "str",  # NIF / NIE / CIF, compact upper case
    "email": "str",
    "phone": "str",  # E.164
    "birth_date": "date",
    "address": "str",  # shipping / main address
    "billing_address": "str",
    "postcode": "str",
    "city": "str",
    "province": "str",
    "country": "str",  # ISO 3166 alpha-2
    "iban": "str",
    "currency": "str",  # ISO 4217
    "payment_method": "str",
    "handle": "str",  # social network handle
    "consent_email": "bool",
    "consent_sms": "bool",
    "consent_phone": "bool",
    "consent_mail": "bool",
    "created_at": "datetime",
    "updated_at": "datetime",
}

TRANSACTION: dict[str, str] = {
    "source_id": "str",  # invoice line / order line id
    **PARTY_REF,
    "order_id": "str",
    "date": "datetime",
    "product": "str",
    "category": "str",
    "quantity": "float",
    "amount": "float",  # line amount in `currency`, negative for refunds
    "currency": "str",
    "channel": "str",  # store | web | phone | sales_rep ...
    "payment_method": "str",
    "due_date": "date",
    "paid_date": "date",
}

INTERACTION: dict[str, str] = {
    "source_id": "str",
    **PARTY_REF,
    "channel": "str",
    "type": "str",  # ticket | survey | mention | email | visit
    "opened_at": "datetime",
    "closed_at": "datetime",
    "handling_minutes": "float",
    "score": "float",  # CSAT 1-5 or NPS 0-10
    "score_type": "str",  # csat | nps
    "text": "str",
}

CAMPAIGN_CONTACT: dict[str, str] = {
    "source_id": "str",
    **PARTY_REF,
    "campaign": "str",
    "selection_group": "str",  # model | marketing | random
    "control": "bool",
    "channel": "str",  # sms | email | mailing | telemarketing
    "contacted_at": "datetime",
    "opened": "bool",
    "responded": "bool",
    "response_at": "datetime",
    "revenue": "float",
}

OPPORTUNITY: dict[str, str] = {
    "source_id": "str",
    **PARTY_REF,
    "created_at": "datetime",
    "closed_at": "datetime",
    "stage": "str",  # open | won | lost
    "amount": "float",
    "product": "str",
}

PRODUCT: dict[str, str] = {
    "source_id": "str",  # product code
    "product": "str",
    "category": "str",
    "price": "float",
    "unit_cost": "float",
}

#: The party consent flag that allows contacting a customer on each campaign channel.
CHANNEL_CONSENT: dict[str, str] = {
    "sms": "consent_sms",
    "email": "consent_email",
    "mailing": "consent_mail",
    "telemarketing": "consent_phone",
}

KINDS: dict[str, dict[str, str]] = {
    "party": PARTY,
    "transaction": TRANSACTION,
    "interaction": INTERACTION,
    "campaign_contact": CAMPAIGN_CONTACT,
    "opportunity": OPPORTUNITY,
    "product": PRODUCT,
}

#: Columns derived by standardisation; a source never maps them directly.
DERIVED: dict[str, set[str]] = {
    "party": {"family_name_1", "family_name_2"},
}

#: Columns that must be mapped for a source of each kind (validated when params are loaded).
REQUIRED: dict[str, set[str]] = {
    "party": {"source_id"},
    "transaction": {"source_id", "party_id", "date", "amount"},
    "interaction": {"source_id", "party_id", "type"},
    "campaign_contact": {"source_id", "party_id", "campaign", "selection_group", "control"},
    "opportunity": {"source_id", "party_id", "created_at"},
    "product": {"source_id"},
}


def staged_columns(kind: str) -> list[str]:
    """Column order of a staged table of ``kind``: lineage first, then the canonical columns."""
    return [*LINEAGE, *KINDS[kind]]
