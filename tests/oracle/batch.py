"""Plain batch recomputation of contact and deal state from raw events: the ground truth.

The stream worker computes this state incrementally, event by event, in whatever order
the broker delivers; this module computes it once, over the complete set of raw events,
in the most obvious way it can be written, following docs/definitions.md.
Integration tests compare the worker's outputs with it.

Input is any of: a ``Dataset``, its ``arrival()`` list of (topic, key, record), a list of
(topic, record) pairs, or plain records (the record type is told by its fields).
Duplicated events are dropped by event_id first, so they cannot change anything.

Channel classification is injected (``classify(touch) -> (channel, source, detail)``) so
the oracle does not depend on the streams package it checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.oracle.generator import OUTBOUND_TYPES, Dataset, Record

__all__ = [
    "UNKNOWN_LEAD",
    "Batch",
    "Classify",
    "ExpectedContact",
    "ExpectedDeal",
    "RawEvents",
    "canonical",
    "contacts",
    "deals",
]

Classify = Callable[[Record], tuple[str, str, str]]
#: The lead source of a contact without touches.
UNKNOWN_LEAD = ("Unknown", "Unknown", "")


def _order(record: Record) -> tuple[int, str]:
    """The total order of events used by every definition: (event_time, event_id)."""
    return (record["event_time"], record["event_id"])


@dataclass(frozen=True)
class RawEvents:
    """The raw events split by type, each event once (first delivery wins)."""

    touches: list[Record]
    identifies: list[Record]
    contact_changes: list[Record]
    deal_changes: list[Record]

    @classmethod
    def of(cls, events: Dataset | Iterable[Any]) -> RawEvents:
        if isinstance(events, Dataset):
            items: Iterable[Any] = events.records()
        else:
            items = events
        split: dict[str, list[Record]] = {"touch": [], "identify": [], "contact": [], "deal": []}
        seen: set[str] = set()
        for item in items:
            record: Record = item[-1] if isinstance(item, tuple) else item
            if record["event_id"] in seen:
                continue  # a duplicate delivery: same event, changes nothing
            seen.add(record["event_id"])
            split[_kind(record)].append(record)
        return cls(split["touch"], split["identify"], split["contact"], split["deal"])

    @property
    def max_event_time(self) -> int:
        """The latest event time of all events ("now" for open deals)."""
        every = self.touches + self.identifies + self.contact_changes + self.deal_changes
        return max(r["event_time"] for r in every)


def _kind(record: Record) -> str:
    if "deal_id" in record:
        return "deal"
    if "change" in record:
        return "contact"
    if "touch_type" in record:
        return "touch"
    return "identify"


def canonical(merged_into: Mapping[str, str], contact_id: str) -> str:
    """Follow merge pointers (B merged into A, A into Z ...) to the surviving contact."""
    seen = {contact_id}
    while contact_id in merged_into:
        contact_id = merged_into[contact_id]
        if contact_id in seen:  # generators never make cycles; fail loudly if data does
            raise ValueError(f"merge cycle through {contact_id}")
        seen.add(contact_id)
    return contact_id


@dataclass(frozen=True)
class ExpectedContact:
    """What the worker must say about one live contact."""

    contact_id: str
    lead_channel: str
    lead_source: str
    lead_detail: str
    first_touch_event_id: str | None
    first_touch_time: int | None
    contact_source: str | None
    lead_method: str | None
    created_at: int | None
    anonymous_ids: tuple[str, ...]
    merged_contact_ids: tuple[str, ...]
    touch_count: int
    #: The lead-creation touch (last touch at or before created_at, else first after).
    lead_creation_event_id: str | None


@dataclass(frozen=True)
class ExpectedDeal:
    """What the worker must say about one deal: its latest state and its stamp."""

    deal_id: str
    status: str  # won | lost | open
    amount: float | None  # of the latest version; reports read None as 0.0
    created_at: int
    closed_at: int | None
    primary_contact_id: str  # canonical
    contact_ids: tuple[str, ...]  # canonical, primary included, sorted
    version: int
    latest_event_id: str
    # The stamp: the primary contact's lead source, contact source and first-touch time.
    lead_channel: str
    lead_source: str
    lead_detail: str
    contact_source: str | None
    first_touch_time: int | None
    currency: str = "USD"  # of the latest version


class Batch:
    """All derived state of one set of raw events, computed on construction."""

    def __init__(self, events: Dataset | Iterable[Any], classify: Classify) -> None:
        self.raw = RawEvents.of(events)
        self.classify = classify
        self.merged_into = self._merge_pointers()
        self._classified: dict[str, tuple[str, str, str]] = {}

        # Every contact id named anywhere (docs/definitions.md: "A contact exists when ...").
        named: set[str] = set()
        named.update(r["contact_id"] for r in self.raw.identifies)
        named.update(r["contact_id"] for r in self.raw.contact_changes)
        named.update(r["merged_into"] for r in self.raw.contact_changes if r["merged_into"])
        named.update(r["contact_id"] for r in self.raw.touches if r["contact_id"])
        named.update(r["primary_contact_id"] for r in self.raw.deal_changes)
        self.members: dict[str, set[str]] = {}  # live contact -> itself and all ids merged into it
        for contact_id in named:
            self.members.setdefault(self.canonical(contact_id), set()).add(contact_id)

        # Anonymous id -> the live contacts its identifies link it to; and the other way round.
        self.anonymous_links: dict[str, set[str]] = {}
        self._identifies: dict[str, list[Record]] = {c: [] for c in self.members}
        for r in self.raw.identifies:
            owner = self.canonical(r["contact_id"])
            self.anonymous_links.setdefault(r["anonymous_id"], set()).add(owner)
            self._identifies[owner].append(r)
        # Live contact -> the ContactChanges of itself and of every id merged into it.
        self._changes: dict[str, list[Record]] = {c: [] for c in self.members}
        for r in self.raw.contact_changes:
            self._changes[self.canonical(r["contact_id"])].append(r)

        # Live contact -> its touches, ordered by (event_time, event_id).
        self._touches: dict[str, list[Record]] = {c: [] for c in self.members}
        for touch in self.raw.touches:
            for owner in self.owners(touch):
                self._touches[owner].append(touch)
        for touch_list in self._touches.values():
            touch_list.sort(key=_order)

        self._contacts: dict[str, ExpectedContact] | None = None
        self._deals: dict[str, ExpectedDeal] | None = None

    def _merge_pointers(self) -> dict[str, str]:
        """absorbed -> survivor. If an id were merged twice, its first merge would count."""
        pointers: dict[str, str] = {}
        for r in sorted(self.raw.contact_changes, key=_order):
            if r["change"] == "merge" and r["merged_into"] and r["contact_id"] not in pointers:
                pointers[r["contact_id"]] = r["merged_into"]
        return pointers

    def canonical(self, contact_id: str) -> str:
        """The live contact that ``contact_id`` is, or was merged into (transitively)."""
        return canonical(self.merged_into, contact_id)

    def owners(self, touch: Record) -> set[str]:
        """The live contacts a touch belongs to (none for a never-identified visitor)."""
        result: set[str] = set()
        if touch["contact_id"]:
            result.add(self.canonical(touch["contact_id"]))
        if touch["anonymous_id"]:
            result.update(self.anonymous_links.get(touch["anonymous_id"], set()))
        return result

    def classification(self, touch: Record) -> tuple[str, str, str]:
        """classify(touch), computed once per event id."""
        event_id = touch["event_id"]
        if event_id not in self._classified:
            self._classified[event_id] = self.classify(touch)
        return self._classified[event_id]

    def touches_of(self, contact_id: str) -> list[Record]:
        """The touches of a contact (any id it is or absorbed), by (event_time, event_id)."""
        return list(self._touches.get(self.canonical(contact_id), []))

    @property
    def max_event_time(self) -> int:
        return self.raw.max_event_time

    # -- contacts ------------------------------------------------------------------------
    def contacts(self) -> dict[str, ExpectedContact]:
        """Every live contact, by contact id."""
        if self._contacts is None:
            self._contacts = {c: self._contact(c) for c in sorted(self.members)}
        return self._contacts

    def _contact(self, contact_id: str) -> ExpectedContact:
        members = self.members[contact_id]
        identifies = self._identifies[contact_id]
        changes = self._changes[contact_id]
        touches = self._touches[contact_id]

        first = touches[0] if touches else None  # touches are sorted: the minimum comes first
        channel, source, detail = self.classification(first) if first else UNKNOWN_LEAD

        creations = [r["event_time"] for r in identifies]
        creations += [r["event_time"] for r in changes if r["change"] == "created"]
        created_at = min(creations) if creations else None

        lead_method = None
        lead_creation = None
        if created_at is not None:
            outbound = [t for t in touches if t["touch_type"] in OUTBOUND_TYPES and t["event_time"] >= created_at]
            lead_method = outbound[0]["touch_type"] if outbound else None
            at_or_before = [t for t in touches if t["event_time"] <= created_at]
            after = [t for t in touches if t["event_time"] > created_at]
            if at_or_before:
                lead_creation = at_or_before[-1]["event_id"]
            elif after:
                lead_creation = after[0]["event_id"]

        with_source = sorted(
            (r for r in changes if r["contact_source"] is not None),
            key=_order,
        )
        contact_source = with_source[0]["contact_source"] if with_source else None

        anonymous_ids = sorted({r["anonymous_id"] for r in identifies})
        return ExpectedContact(
            contact_id=contact_id,
            lead_channel=channel,
            lead_source=source,
            lead_detail=detail,
            first_touch_event_id=first["event_id"] if first else None,
            first_touch_time=first["event_time"] if first else None,
            contact_source=contact_source,
            lead_method=lead_method,
            created_at=created_at,
            anonymous_ids=tuple(anonymous_ids),
            merged_contact_ids=tuple(sorted(members - {contact_id})),
            touch_count=len(touches),
            lead_creation_event_id=lead_creation,
        )

    # -- deals ---------------------------------------------------------------------------
    def deals(self) -> dict[str, ExpectedDeal]:
        """Every deal, by deal id."""
        if self._deals is None:
            by_deal: dict[str, list[Record]] = {}
            for r in self.raw.deal_changes:
                by_deal.setdefault(r["deal_id"], []).append(r)
            self._deals = {d: self._deal(d, by_deal[d]) for d in sorted(by_deal)}
        return self._deals

    def _deal(self, deal_id: str, changes: list[Record]) -> ExpectedDeal:
        latest = max(changes, key=lambda r: (r["version"], r["event_time"], r["event_id"]))
        status = latest["change"] if latest["change"] in ("won", "lost") else "open"
        created = [r["event_time"] for r in changes if r["change"] == "created"]
        created_at = min(created) if created else min(r["event_time"] for r in changes)
        primary = self.canonical(latest["primary_contact_id"])
        contact_ids = {self.canonical(c) for c in latest["contact_ids"]} | {primary}
        stamp = self.contacts()[primary]
        return ExpectedDeal(
            deal_id=deal_id,
            status=status,
            amount=latest["amount"],
            created_at=created_at,
            closed_at=latest["event_time"] if status != "open" else None,
            primary_contact_id=primary,
            contact_ids=tuple(sorted(contact_ids)),
            version=latest["version"],
            latest_event_id=latest["event_id"],
            lead_channel=stamp.lead_channel,
            lead_source=stamp.lead_source,
            lead_detail=stamp.lead_detail,
            contact_source=stamp.contact_source,
            first_touch_time=stamp.first_touch_time,
            currency=str(latest.get("currency") or "USD"),
        )


def contacts(events: Dataset | Iterable[Any], classify: Classify) -> dict[str, ExpectedContact]:
    """Every live contact of the raw events, by contact id."""
    return Batch(events, classify).contacts()


def deals(events: Dataset | Iterable[Any], classify: Classify) -> dict[str, ExpectedDeal]:
    """Every deal of the raw events, by deal id, stamped with its primary contact's sources."""
    return Batch(events, classify).deals()
