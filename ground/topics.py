"""Topic names, with the configurable prefix, what each one carries and how it is keyed.

This is the one topic -> record -> key plan (docs/architecture.md, "Topics"); every
producer, agent and sink asks this module for names so that
``LEADSTREAM_TOPIC_PREFIX`` moves all of them, and every producer of raw events keys
them with :func:`message_key`, which is what co-partitions a visitor's touches with
their identifies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENRICHED_TOPICS",
    "ERASURES",
    "INTERNAL_TOPICS",
    "KIND_TOPICS",
    "MESSAGE_KEYS",
    "RAW_TOPICS",
    "REFERENCE_TOPICS",
    "TOPIC_RECORDS",
    "Topics",
    "message_key",
]

RAW_TOPICS = ("touches", "identities", "contacts", "deals")
#: Reference data the sink reads as it is (no worker stage): marketing spend, exchange rates.
REFERENCE_TOPICS = ("spend", "fx-rates")
ENRICHED_TOPICS = ("enriched-touches", "enriched-contacts", "identity-map", "enriched-deals")
#: Repartition topics of the worker: events re-keyed by contact id or deal id.
INTERNAL_TOPICS = ("contact-events", "deal-events")
DEAD_LETTER = "dead-letter"
#: Erasure requests and their acknowledgements (compacted, never expired: docs/privacy.md).
ERASURES = "erasures"

#: The record name each topic carries (internal topics carry several).
TOPIC_RECORDS: dict[str, str] = {
    "touches": "Touch",
    "identities": "Identify",
    "contacts": "ContactChange",
    "deals": "DealChange",
    "spend": "Spend",
    "fx-rates": "FxRate",
    "dead-letter": "DeadLetter",
    "erasures": "Erasure",
    "enriched-touches": "EnrichedTouch",
    "enriched-contacts": "ContactVersion",
    "identity-map": "IdentityLink",
    "enriched-deals": "EnrichedDeal",
}


#: The kind of event a producer is handed -> the (unprefixed) topic it goes to.
KIND_TOPICS: dict[str, str] = {
    "touch": "touches",
    "identify": "identities",
    "contact": "contacts",
    "deal": "deals",
    "spend": "spend",
    "fx_rate": "fx-rates",
    "dead_letter": DEAD_LETTER,
}

#: The partitioning plan of the topics producers write: the record fields whose first
#: non-empty value is the message key. Touches are keyed by visitor (offline touches,
#: which have none, by contact) so that a visitor's touches and identifies share a
#: partition and the worker can stitch them without a repartition.
MESSAGE_KEYS: dict[str, tuple[str, ...]] = {
    "touches": ("anonymous_id", "contact_id"),
    "identities": ("anonymous_id",),
    "contacts": ("contact_id",),
    "deals": ("deal_id",),
    "spend": ("event_id",),
    "fx-rates": ("currency",),
    DEAD_LETTER: ("origin",),
}


def message_key(topic: str, record: Mapping[str, Any]) -> str:
    """The key of ``record`` on the unprefixed ``topic``, following :data:`MESSAGE_KEYS`."""
    fields = MESSAGE_KEYS[topic]
    return str(next((record[f] for f in fields if record.get(f)), record.get(fields[-1])))


class _TopicName:
    """A prefixed topic name read as an attribute: ``Topics("t1-").touches == "t1-touches"``."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __get__(self, topics: Topics, owner: type | None = None) -> str:
        return topics.name(self.base)


@dataclass(frozen=True)
class Topics:
    """Prefixed topic names. ``Topics("t1-").touches == "t1-touches"``."""

    prefix: str = ""

    touches = _TopicName("touches")
    identities = _TopicName("identities")
    contacts = _TopicName("contacts")
    deals = _TopicName("deals")
    spend = _TopicName("spend")
    fx_rates = _TopicName("fx-rates")
    dead_letter = _TopicName(DEAD_LETTER)
    erasures = _TopicName(ERASURES)
    enriched_touches = _TopicName("enriched-touches")
    enriched_contacts = _TopicName("enriched-contacts")
    identity_map = _TopicName("identity-map")
    enriched_deals = _TopicName("enriched-deals")

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def all(self) -> list[str]:
        """Every topic leadstream creates up front (internal ones included)."""
        return [self.name(t) for t in (*RAW_TOPICS, *REFERENCE_TOPICS, *ENRICHED_TOPICS, *INTERNAL_TOPICS,
                                       DEAD_LETTER, ERASURES)]
