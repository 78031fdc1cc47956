"""Which kinds of data a company has, and what stays empty without the others.

Every kind but a party source is optional: a company without campaign lists, tickets, surveys,
opportunities, a product catalogue or social mentions still gets every stage and report, with the
sections that need the missing data empty and saying so in a sentence - what is absent and what to
add. This module is the one place those sentences live: `scv check` lists them before a run, the stage
notebooks print them, and the reports can show them.
"""

from __future__ import annotations

from collections.abc import Mapping

from helpers.config import SourceSpec

#: Interaction types whose absence empties a section of their own.
INTERACTION_TYPES = ("ticket", "survey", "mention")

#: (what is missing) -> (stages and report sections left empty, what to add to params/sources.yaml).
ABSENT: dict[str, tuple[str, str]] = {
    "transaction": (
        "revenue, frequency, recency, RFM, CLV, payment behaviour, value tiers, clusters, churn risk and next "
        "best offers",
        "a transaction source (invoice or order lines: source_id, party_id, date, amount)",
    ),
    "interaction": (
        "service (tickets, handling time), satisfaction (CSAT, NPS) and social sentiment",
        "an interaction source (source_id, party_id, type: ticket | survey | mention, opened_at, score, text)",
    ),
    "ticket": (
        "service (tickets, handling time, open tickets) and CSAT",
        "an interaction source with type ticket (opened_at, closed_at, handling_minutes, score)",
    ),
    "survey": (
        "NPS and survey satisfaction",
        "an interaction source with type survey (score with score_type nps or csat)",
    ),
    "mention": (
        "social sentiment and mentions",
        "an interaction source with type mention (text, opened_at)",
    ),
    "campaign_contact": (
        "campaign measurement (uplift per campaign and selection, channels, qini) and campaign responsiveness",
        "a campaign_contact source (campaign, selection_group, control, contacted_at, responded)",
    ),
    "opportunity": (
        "sales cycle and open pipeline",
        "an opportunity source (source_id, party_id, created_at, closed_at, stage, amount)",
    ),
    "product": (
        "catalogue margins (offers need a `margin` in params/offers.yaml instead) and product names",
        "a product source (source_id, product, category, price, unit_cost)",
    ),
}


def declared_kinds(sources: Mapping[str, SourceSpec]) -> set[str]:
    """Record kinds the sources declare, plus the interaction types they hold (by a `type` constant;
    an interaction source that maps `type` from a column may hold any)."""
    kinds = {s.kind for s in sources.values()}
    for s in sources.values():
        if s.kind != "interaction":
            continue
        if "type" in s.constants:
            kinds.add(str(s.constants["type"]))
        else:
            kinds.update(INTERACTION_TYPES)
    return kinds


def absent(sources: Mapping[str, SourceSpec]) -> list[tuple[str, str]]:
    """(kind, sentence) for each kind of data the sources do not declare: what is left empty, and
    what to add. Interaction types are listed only when some interactions exist."""
    have = declared_kinds(sources)
    out = []
    for kind in (
        "transaction",
        "interaction",
        *INTERACTION_TYPES,
        "campaign_contact",
        "opportunity",
        "product",
    ):
        if kind in have:
            continue
        if kind in INTERACTION_TYPES and "interaction" not in have:
            continue
        out.append((kind, sentence(kind)))
    return out


def sentence(kind: str) -> str:
    """'No <kind> data: <sections> are empty; add <what>.'"""
    empty, add = ABSENT[kind]
    label = {
        "transaction": "transactions",
        "interaction": "tickets, surveys or social mentions",
        "ticket": "support tickets",
        "survey": "surveys",
        "mention": "social mentions",
        "campaign_contact": "campaign contacts",
        "opportunity": "opportunities",
        "product": "product catalogue",
    }[kind]
    return f"no {label}: {empty} stay empty; to fill them, add {add} to params/sources.yaml"
