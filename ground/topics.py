"""Topic names, with the configurable prefix, and what each one carries.

The names are the vocabulary of ARCHITECTURE.md; every producer, agent and sink
asks this module for them so that ``LEADSTREAM_TOPIC_PREFIX`` moves all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENRICHED_TOPICS", "INTERNAL_TOPICS", "RAW_TOPICS", "TOPIC_RECORDS", "Topics"]

RAW_TOPICS = ("touches", "identities", "contacts", "deals")
ENRICHED_TOPICS = ("enriched-touches", "enriched-contacts", "identity-map", "enriched-deals")
#: Repartition topics of the worker: events re-keyed by contact id or deal id.
INTERNAL_TOPICS = ("contact-events", "deal-events")
DEAD_LETTER = "dead-letter"

#: The record name each topic carries (internal topics carry several).
TOPIC_RECORDS: dict[str, str] = {
    "touches": "Touch",
    "identities": "Identify",
    "contacts": "ContactChange",
    "deals": "DealChange",
    "dead-letter": "DeadLetter",
    "enriched-touches": "EnrichedTouch",
    "enriched-contacts": "ContactVersion",
    "identity-map": "IdentityLink",
    "enriched-deals": "EnrichedDeal",
}


@dataclass(frozen=True)
class Topics:
    """Prefixed topic names. ``Topics("t1-").touches == "t1-touches"``."""

    prefix: str = ""

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def touches(self) -> str:
        return self.name("touches")

    @property
    def identities(self) -> str:
        return self.name("identities")

    @property
    def contacts(self) -> str:
        return self.name("contacts")

    @property
    def deals(self) -> str:
        return self.name("deals")

    @property
    def dead_letter(self) -> str:
        return self.name(DEAD_LETTER)

    @property
    def enriched_touches(self) -> str:
        return self.name("enriched-touches")

    @property
    def enriched_contacts(self) -> str:
        return self.name("enriched-contacts")

    @property
    def identity_map(self) -> str:
        return self.name("identity-map")

    @property
    def enriched_deals(self) -> str:
        return self.name("enriched-deals")

    def all(self) -> list[str]:
        """Every topic leadstream creates up front (internal ones included)."""
        return [self.name(t) for t in (*RAW_TOPICS, *ENRICHED_TOPICS, *INTERNAL_TOPICS, DEAD_LETTER)]
