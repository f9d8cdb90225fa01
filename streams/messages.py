"""The worker's internal messages and the records it emits, each built in one place.

Where it sits: between the stage handlers (streams/identity_stage.py,
contact_stage.py, deal_stage.py), which decide *what* to send, and the Avro schemas
(schemas/avro/ContactEvent.avsc, DealStamp.avsc, Enriched*.avsc), which fix the wire
format. Every record the worker writes is built by a function here, so the shape of
a message is read in one file instead of being implied by keyword arguments.

Two internal topics carry the worker's own messages:

- ``contact-events`` (keyed by the addressed contact id) carries a ``ContactEvent``
  whose ``kind`` says which optional fields are set (:class:`ContactEventKind`);
- ``deal-events`` (keyed by deal id) carries a ``DealStamp``: the lead source and
  contact source of the deal's contact, sent whenever they change.

A touch travels between stages as a compact :class:`TouchRef`. Its short keys are
the field names of the ``TouchRef`` Avro record and of every state stored in the
changelogs, so they cannot be renamed without migrating the stored state; the
TypedDict gives each one its meaning.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypedDict

from ground.vocabulary import CLICK_IDS, now_ms
from streams.taxonomy import Classification

__all__ = [
    "ContactEventKind",
    "TouchRef",
    "contact_event",
    "contact_facts",
    "contact_version",
    "deal_stamp",
    "enriched_deal",
    "enriched_touch",
    "identity_link",
    "touch_ref",
]

Record = dict[str, Any]


class ContactEventKind(enum.StrEnum):
    """What a ``ContactEvent`` asks the contact stage to fold (the Avro enum's symbols)."""

    #: A classified touch of the contact (``touch``).
    TOUCH = "touch"
    #: An anonymous id was identified as this contact (``anonymous_id``; ``touch``: the
    #: anonymous id's earliest touch; ``outbound``; ``engagement``; ``for_contact``).
    IDENTIFIED = "identified"
    #: The portable state of a contact merged into this one (``state``).
    STATE = "state"
    #: A deal names this contact as primary (``deal_id``, ``for_contact``).
    DEAL_LINK = "deal_link"
    #: A contact change forwarded from a merged-away contact (``change``).
    CHANGE = "change"


class TouchRef(TypedDict):
    """A classified touch as the contact stage keeps it."""

    id: str  #: event_id of the touch
    t: int  #: event time, epoch ms
    type: str  #: touch_type
    ch: str  #: channel
    src: str  #: source
    det: str  #: detail


#: The fields of a ContactChange that a merged-away contact forwards to its survivor.
CONTACT_FACTS = ("event_id", "event_time", "change", "contact_source", "owner", "lifecycle_stage",
                 "merged_into")


def touch_ref(touch: Mapping[str, Any], cls: Classification) -> TouchRef:
    """The compact form of a raw touch and its classification."""
    return {"id": touch["event_id"], "t": int(touch["event_time"]), "type": touch["touch_type"],
            "ch": cls.channel, "src": cls.source, "det": cls.detail}


def contact_event(kind: ContactEventKind, contact_id: str, event_id: str, event_time: int,
                  **fields: Any) -> Record:
    """A ``ContactEvent`` addressed to ``contact_id``; ``fields`` are the ones ``kind`` sets."""
    return {"kind": kind.value, "contact_id": contact_id, "event_id": event_id, "event_time": event_time,
            **fields}


def contact_facts(change: Mapping[str, Any]) -> Record:
    """The part of a ContactChange that a merged-away contact forwards (``ContactFacts``)."""
    return {k: change.get(k) for k in CONTACT_FACTS}


def deal_stamp(deal_id: str, for_contact: str, canonical_contact_id: str, event_time: int,
               stamp: Mapping[str, Any]) -> Record:
    """A ``DealStamp``: the first touch and contact source of the deal's (surviving) contact."""
    return {"deal_id": deal_id, "for_contact": for_contact, "canonical_contact_id": canonical_contact_id,
            "event_time": event_time, "first": stamp["first"], "csrc": stamp["csrc"]}


def identity_link(anonymous_id: str, named: str, canonical_contact_id: str, version: int,
                  event_time: int) -> Record:
    """An ``IdentityLink``: the anonymous id, the contact its identify named, the survivor."""
    return {"anonymous_id": anonymous_id, "contact_id": named, "canonical_contact_id": canonical_contact_id,
            "version": version, "event_time": event_time}


def enriched_touch(touch: Mapping[str, Any], cls: Classification, contact_id: str | None,
                   sequence: int) -> Record:
    """An ``EnrichedTouch``: the raw touch, its classification, the contact it resolved to."""
    click = next((c for c in CLICK_IDS if touch.get(c)), None)
    return {
        "event_id": touch["event_id"], "event_time": touch["event_time"],
        "received_at": touch["received_at"], "processed_at": now_ms(),
        "anonymous_id": touch.get("anonymous_id"), "contact_id": contact_id,
        "touch_type": touch["touch_type"], "url": touch.get("url"), "referrer": touch.get("referrer"),
        "utm_source": touch.get("utm_source"), "utm_medium": touch.get("utm_medium"),
        "utm_campaign": touch.get("utm_campaign"), "click_id_type": click,
        "channel": cls.channel, "source": cls.source, "detail": cls.detail, "rule": cls.rule,
        "taxonomy_version": str(cls.version), "is_bot": bool(touch.get("is_bot")), "sequence": sequence,
    }


def contact_version(view: Mapping[str, Any], version: int, event_time: int, reason: str) -> Record:
    """A ``ContactVersion``: the contact's view with its version and why it changed."""
    return {**view, "version": version, "event_time": event_time, "reason": reason}


def enriched_deal(view: Mapping[str, Any], stamp_version: int, prev: Mapping[str, Any]) -> Record:
    """An ``EnrichedDeal``: the deal's view and what the previous version said.

    The ``prev_*`` fields let the sink retract the previous version's contribution to
    the sign-weighted aggregates without reading it back.
    """
    return {**view, "stamp_version": stamp_version,
            "prev_status": prev.get("status"), "prev_amount": prev.get("amount"),
            "prev_lead_channel": prev.get("lead_channel"), "prev_lead_source": prev.get("lead_source"),
            "prev_lead_detail": prev.get("lead_detail")}
