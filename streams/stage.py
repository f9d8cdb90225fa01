"""What every stage of the worker does with a batch: decode, check, group, fold, commit.

Where it sits: the base of the three stage handlers (streams/identity_stage.py,
contact_stage.py, deal_stage.py); the Faust wiring (streams/app.py) hands each
stage's agent batches to :meth:`Stage.handle`.

Why one shared step: the checks that protect state are the same for every stage and
must not drift apart. An event reaches a stage's fold only when it decodes, carries
the one record type its topic may carry, is a record the stage folds, names its
entity, and is keyed by that entity's id (the entity's state lives in the partition
its id hashes to). Anything else becomes a dead letter with the reason; no exception
from one event escapes the stage. A batch's events are grouped by key so that each
key's state is read once, folded over all its events, and written once.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from faust.types import EventT

from ground.errors import SchemaError
from ground.topics import Topics
from schemas.codec import Codec
from schemas.dead_letter import dead_letter
from schemas.erasures import ErasureSet
from streams.delivery import Batch, Outbox, commit_batch, read_state
from streams.messages import ContactEventKind, contact_event
from streams.taxonomy import Taxonomy

__all__ = ["Item", "Stage", "StageContext"]

log = logging.getLogger("leadstream.streams")

#: One event of a group: (event, record name, decoded record).
Item = tuple[EventT, str, dict[str, Any]]


@dataclass(frozen=True)
class StageContext:
    """What the stages share: names, codec, rules, and the worker's counters."""

    topics: Topics
    codec: Codec
    taxonomy: Taxonomy
    half_life: float
    counters: Counter[str]
    #: topic name -> the one record type it may carry
    expected_records: dict[str, str]
    #: the erased subjects, whose events are dropped before any fold (schemas/erasures.py)
    erasures: ErasureSet | None = None


class Stage:
    """One stage: its table, its outbox, and the shared batch step.

    A subclass names the records it folds (``records``), says which entity an event
    belongs to (:meth:`route`) and folds one key's events (:meth:`fold`).
    """

    name: ClassVar[str]
    records: ClassVar[frozenset[str]]

    def __init__(self, ctx: StageContext, table: Any, outbox: Outbox) -> None:
        self.ctx = ctx
        self.topics = ctx.topics
        self.table = table
        self.outbox = outbox

    # ---- the batch step ------------------------------------------------------------
    async def handle(self, events: list[EventT]) -> None:
        """Fold one batch and wait until its effects are on the broker (streams/delivery.py)."""
        batch = Batch()
        groups: dict[bytes, list[Item]] = {}
        erasures = self.ctx.erasures
        if erasures is not None:
            erasures.refresh()
        for event in events:
            decoded = self.decode(batch, event)
            if decoded is None:
                continue
            name, rec = decoded
            if name not in self.records:
                self.dead_letter(batch, event, f"unexpected record {name} on {event.message.topic}")
                continue
            if erasures is not None and erasures.active and self._erase(erasures, name, rec):
                continue
            entity = self.route(batch, event, name, rec)
            if entity is None:
                continue
            key = entity.encode()
            if not self.keyed_by(batch, event, key):
                continue
            groups.setdefault(key, []).append((event, name, rec))
        for key, items in groups.items():
            self.fold(batch, key, items)
        self.ctx.counters[f"{self.name}.events"] += len(events)
        await commit_batch(batch, self.outbox)
        self.ctx.counters["outputs"] += len(batch.outputs)

    def _erase(self, erasures: ErasureSet, name: str, rec: dict[str, Any]) -> bool:
        """True when the event is an erased subject's (dropped, counted, never dead-lettered:
        a dead letter would keep its payload); a deal keeps going with its ids replaced."""
        if erasures.drops(name, rec):
            self.ctx.counters[f"{self.name}.erased"] += 1
            return True
        if erasures.scrub(name, rec):
            self.ctx.counters[f"{self.name}.scrubbed"] += 1
        return False

    def route(self, batch: Batch, event: EventT, name: str, rec: dict[str, Any]) -> str | None:
        """The id of the entity ``rec`` belongs to; None when it was handled here or dead-lettered."""
        raise NotImplementedError

    def fold(self, batch: Batch, key: bytes, items: list[Item]) -> None:
        """Fold one key's events of the batch into its state; queue outputs and the write."""
        raise NotImplementedError

    # ---- checks --------------------------------------------------------------------
    def decode(self, batch: Batch, event: EventT) -> tuple[str, dict[str, Any]] | None:
        """The event's record, or None after dead-lettering it (undecodable, wrong type)."""
        value = event.message.value
        try:
            if not isinstance(value, bytes | bytearray):
                raise SchemaError("payload is not bytes")
            name, record = self.ctx.codec.decode(bytes(value))
        except SchemaError as exc:
            self.dead_letter(batch, event, f"undecodable: {exc}")
            return None
        expected = self.ctx.expected_records.get(event.message.topic)
        if expected is not None and name != expected:
            self.dead_letter(batch, event, f"unexpected record {name} on {event.message.topic}")
            return None
        return name, record

    def keyed_by(self, batch: Batch, event: EventT, key: bytes) -> bool:
        """True when the message key is the entity's id; else dead-letter the event."""
        if event.message.key == key:
            return True
        self.dead_letter(batch, event, f"keyed by {event.message.key!r}, not by its entity id {key!r}")
        return False

    # ---- outputs -------------------------------------------------------------------
    def dead_letter(self, batch: Batch, event: EventT, reason: str, detail: str | None = None) -> None:
        """Queue a DeadLetter for ``event`` with the reason; counted per stage."""
        msg = event.message
        raw = msg.value if isinstance(msg.value, bytes) else bytes(str(msg.value), "utf-8")
        record = dead_letter(stage=self.name, reason=reason, origin=msg.topic, payload=raw, detail=detail,
                             origin_topic=msg.topic, origin_partition=msg.partition, origin_offset=msg.offset)
        self.ctx.counters[f"{self.name}.dead_letters"] += 1
        log.warning("dead letter from %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        self._queue(batch, self.topics.dead_letter, msg.topic, self.ctx.codec.encode("DeadLetter", record))

    def emit(self, batch: Batch, topic: str, key: str | None, name: str, record: dict[str, Any]) -> None:
        """Queue ``record`` (of Avro type ``name``) for ``topic`` under ``key``."""
        self._queue(batch, topic, key, self.ctx.codec.encode(name, record))

    def to_contact(self, batch: Batch, kind: ContactEventKind, contact_id: str, event_id: str,
                   event_time: int, **fields: Any) -> None:
        """Queue a ``ContactEvent`` of ``kind`` for the contact stage (streams/messages.py)."""
        self.emit(batch, self.topics.name("contact-events"), contact_id, "ContactEvent",
                  contact_event(kind, contact_id, event_id, event_time, **fields))

    @staticmethod
    def _queue(batch: Batch, topic: str, key: str | None, value: bytes) -> None:
        batch.outputs.append((topic, key.encode() if key is not None else None, value))

    # ---- state ---------------------------------------------------------------------
    def read(self, key: bytes, event: EventT) -> Any:
        """The stored state of ``key`` (None when new)."""
        return read_state(self.table, key, event)
