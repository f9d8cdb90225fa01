"""The Faust application of the stream worker: three stages, three tables.

Where it sits: between the raw topics (written by the producers) and the enriched
topics (read by the sink). ``leadstream worker`` (streams/cli.py) runs one process of
it; several processes share the work by partition.

Stages (every topic keyed so that one entity's events meet in one partition; all
producers use the murmur2 partitioner, so equal keys co-partition across topics):

- identity (``touches`` + ``identities``, keyed by anonymous id; table ``anon``):
  classifies every touch and emits it to ``enriched-touches``; forwards touches of
  linked anonymous ids and touches carrying a contact id to ``contact-events``; on an
  identify forwards the anonymous id's earliest touch, outbound touches and
  engagement summary to the contact.
- contact (``contacts`` + ``contact-events``, keyed by contact id; table ``contact``):
  first touch, creation time, contact source, lead method, engagement, anonymous ids,
  merges (state forwarded to the survivor, a pointer kept), deals held; emits
  ``enriched-contacts`` and ``identity-map``; sends the lead-source stamp of each of
  its deals to ``deal-events``.
- deal (``deals`` + ``deal-events``, keyed by deal id; table ``deal``): latest deal
  state, stamp of its current primary contact; emits ``enriched-deals``.

Each agent takes events in batches (``take_events``), folds every key's events once,
publishes its outputs and waits for their delivery, then writes the table (changelog)
and only then lets Faust acknowledge the batch: a crash at any point replays events
whose effects are idempotent (streams/state.py), and never acknowledges an event whose
outputs or state were not delivered. An event that cannot be processed goes to the
dead-letter topic with its reason; no exception escapes an agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import Producer
from faust.streams import _current_event
from faust.types import EventT

from ground.errors import SchemaError, StreamError
from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from ground.vocabulary import CLICK_IDS, now_ms
from schemas.codec import Codec, get_codec
from schemas.dead_letter import dead_letter
from streams import faust_fixes
from streams import state as S
from streams.taxonomy import Taxonomy, load_taxonomy

__all__ = ["BATCH_SIZE", "BATCH_WITHIN", "Pipeline", "build_app"]

log = logging.getLogger("leadstream.streams")

#: Events per batch and the longest a partial batch waits; the batch is the unit of
#: table writes (one per key per batch) and of the delivery wait.
BATCH_SIZE = 2000
BATCH_WITHIN = 0.25
#: A DeadLetter keeps at most this much of the offending payload.
#: Merge chains longer than this are treated as a cycle and dead-lettered.
MAX_HOPS = 64
#: Exit status of a worker that could not deliver a batch (it is replayed on restart).
EXIT_DELIVERY_FAILED = 70
#: Changelogs are the only copy of the state besides the local RocksDB: never expire them.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}

#: One RocksDB per table partition: Faust's default memtables (3 x 64 MiB each) would let
#: 12 databases hold gigabytes of superseded state versions in memory.
ROCKSDB_OPTIONS = {"write_buffer_size": 8 * 2**20, "max_write_buffer_number": 2}

Out = tuple[str, bytes | None, bytes]  # (topic, key, value)


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> bytes:
    return _encoder.encode(value).encode()


def _b(key: str | None) -> bytes | None:
    return key.encode() if key is not None else None


class Outbox:
    """A confluent-kafka producer whose deliveries a coroutine can wait for.

    Same partitioner as the producers and as aiokafka (murmur2), so a key lands in
    the same partition whichever client wrote it.
    """

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(settings.kafka_producer_config(**{"linger.ms": 2}))
        self.errors: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                else:
                    self.producer.produce(topic, value=value, key=key, partition=partition,
                                          on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)  # local queue full: serve deliveries, then retry

    async def delivered(self, timeout: float = 120.0) -> None:
        """Wait (in a thread, the loop keeps running) until everything produced is acknowledged."""
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, timeout)
        if remaining or self.errors:
            errors, self.errors = self.errors, []
            raise StreamError(f"{remaining} messages undelivered; errors: {errors[:5]}")


class Batch:
    """Outputs and table writes collected while folding one batch."""

    def __init__(self) -> None:
        self.outputs: list[Out] = []
        self.writes: list[tuple[Any, bytes, Any]] = []  # (table, key, value)
        self.events: dict[bytes, EventT] = {}  # key -> an event of that key (its partition)


class Pipeline:
    """The Faust app with its topics, tables and agents, built from settings."""

    def __init__(self, settings: Settings, datadir: Path, taxonomy: Taxonomy | None = None) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.codec: Codec = get_codec(settings.schema_registry_url)
        self.taxonomy = taxonomy or load_taxonomy(settings.taxonomy_path, settings.site_domain_list)
        self.half_life = settings.engagement_half_life_days
        faust_fixes.apply()  # commit only offsets whose messages were processed (see the module)
        self.counters: Counter[str] = Counter()
        # One librdkafka producer per stage: produce() costs a few microseconds and no
        # await; each stage waits only for its own batch's deliveries.
        self.outboxes = {stage: Outbox(settings) for stage in ("identity", "contact", "deal")}
        self.app = faust.App(
            settings.stream_app_id,
            broker=[f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",")],
            store="rocksdb://",
            datadir=str(datadir),
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
            # Standby replicas would make each worker also replay the other workers'
            # changelogs; recovery from the changelog is the tested path.
            table_standby_replicas=0,
            broker_commit_interval=1.0,
            # A killed worker's partitions move to the others after this long.
            broker_session_timeout=20.0,
            broker_heartbeat_interval=3.0,
            stream_buffer_maxsize=BATCH_SIZE * 2,
            producer_linger_ms=5,
            producer_max_batch_size=256 * 1024,
        )
        #: topic name -> the one record type it may carry
        self.expected_records = {self.topics.name(base): rec for base, rec in TOPIC_RECORDS.items()}
        self.expected_records[self.topics.name("contact-events")] = "ContactEvent"
        self.expected_records[self.topics.name("deal-events")] = "DealStamp"
        self._declare()

    # ---- declarations ----------------------------------------------------------------
    def _topic(self, *bases: str) -> faust.TopicT:
        return self.app.topic(
            *[self.topics.name(b) for b in bases],
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=self.settings.topic_partitions,
        )

    def _table(self, name: str) -> Any:
        return self.app.Table(
            name, default=None, partitions=self.settings.topic_partitions,
            # Raw bytes both ways: the agents encode states with the C JSON encoder
            # (Faust's own JSON codec costs several times more per write).
            key_type=bytes, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG,
            options=ROCKSDB_OPTIONS,
        )

    def _declare(self) -> None:
        self.anon_table = self._table("anon")
        self.contact_table = self._table("contact")
        self.deal_table = self._table("deal")
        self._agent("identity", self._topic("touches", "identities"), self.identity_batch)
        self._agent("contact", self._topic("contacts", "contact-events"), self.contact_batch)
        self._agent("deal", self._topic("deals", "deal-events"), self.deal_batch)

    def _agent(self, name: str, channel: faust.TopicT,
               handler: Callable[[list[EventT]], Awaitable[None]]) -> None:
        async def run(stream: faust.StreamT) -> None:
            # take_events (not take): the batch handler needs each event's partition.
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):  # type: ignore[attr-defined]
                try:
                    t0 = time.perf_counter()
                    await handler(list(events))
                    log.debug("stage %s: %d events in %.4fs", name, len(events), time.perf_counter() - t0)
                except Exception:
                    # Per-event errors are dead-lettered inside the handler; what reaches
                    # here is a failure to deliver (broker gone, producer fenced). Leaving
                    # the loop would acknowledge the batch and lose it, and a dead actor
                    # stalls silently: exit at once instead, without committing, so a
                    # supervisor restarts the worker and the batch is replayed.
                    log.exception("stage %s could not deliver a batch of %d events; exiting",
                                  name, len(events))
                    logging.shutdown()
                    os._exit(EXIT_DELIVERY_FAILED)

        run.__name__ = name
        run.__qualname__ = name
        self.app.agent(channel, name=name, concurrency=1)(run)

    # ---- plumbing ----------------------------------------------------------------------
    def dead_letter(self, batch: Batch, stage: str, event: EventT, reason: str, detail: str | None = None) -> None:
        """Queue a DeadLetter for ``event`` with the reason; counted per stage."""
        msg = event.message
        raw = msg.value if isinstance(msg.value, bytes) else bytes(str(msg.value), "utf-8")
        record = dead_letter(stage=stage, reason=reason, origin=msg.topic, payload=raw, detail=detail,
                             origin_topic=msg.topic, origin_partition=msg.partition, origin_offset=msg.offset)
        self.counters[f"{stage}.dead_letters"] += 1
        log.warning("dead letter from %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        batch.outputs.append((self.topics.dead_letter, _b(msg.topic), self.codec.encode("DeadLetter", record)))

    def decode(self, batch: Batch, stage: str, event: EventT) -> tuple[str, dict[str, Any]] | None:
        """The event's record, or None after dead-lettering it (undecodable, wrong type)."""
        value = event.message.value
        try:
            if not isinstance(value, bytes | bytearray):
                raise SchemaError("payload is not bytes")
            name, record = self.codec.decode(bytes(value))
        except SchemaError as exc:
            self.dead_letter(batch, stage, event, f"undecodable: {exc}")
            return None
        expected = self.expected_records.get(event.message.topic)
        if expected is not None and name != expected:
            self.dead_letter(batch, stage, event, f"unexpected record {name} on {event.message.topic}")
            return None
        return name, record

    def keyed_by(self, batch: Batch, stage: str, event: EventT, key: bytes) -> bool:
        """True when the message key is the entity's id; else dead-letter the event.

        The entity's state lives in the partition its id hashes to; a message keyed by
        something else arrives in another partition, where that state is not.
        """
        if event.message.key == key:
            return True
        self.dead_letter(batch, stage, event, f"keyed by {event.message.key!r}, not by its entity id {key!r}")
        return False

    async def commit_batch(self, batch: Batch, stage: str) -> None:
        """Publish the outputs and wait for them, then write the tables and wait again.

        Outputs first: if the process dies after the state was written but before an
        output was delivered, the replayed batch would find nothing changed and never
        emit it again. Table writes go to RocksDB and to the changelog (the same bytes
        Faust would write, to the partition of the key's source event). Both waits end
        before this returns, so Faust acknowledges (and later commits) only events whose
        effects are on the broker.
        """
        outbox = self.outboxes[stage]
        for topic, key, value in batch.outputs:
            outbox.produce(topic, key, value)
        await outbox.delivered()
        for table, key, value in batch.writes:
            event = batch.events[key]
            value_bytes = _dumps(value)
            token = _current_event.set(weakref.ref(event))
            try:
                table.data._set(key, value_bytes)  # RocksDB of the event's partition
            finally:
                _current_event.reset(token)
            outbox.produce(table.changelog_topic.get_topic_name(), key, value_bytes, event.message.partition)
        await outbox.delivered()
        self.counters["outputs"] += len(batch.outputs)

    def _get(self, table: Any, key: bytes, event: EventT) -> Any:
        token = _current_event.set(weakref.ref(event))
        try:
            raw = table.get(key)
        finally:
            _current_event.reset(token)
        return json.loads(raw) if raw is not None else None

    def _emit(self, batch: Batch, topic: str, key: str | None, name: str, record: dict[str, Any]) -> None:
        batch.outputs.append((topic, _b(key), self.codec.encode(name, record)))

    def _to_contact(self, batch: Batch, contact_id: str, kind: str, event_id: str, event_time: int,
                    **fields: Any) -> None:
        self._emit(batch, self.topics.name("contact-events"), contact_id, "ContactEvent",
                   {"kind": kind, "contact_id": contact_id, "event_id": event_id,
                    "event_time": event_time, **fields})

    # ---- identity stage ----------------------------------------------------------------
    def touch_ref(self, touch: dict[str, Any], cls: Any) -> dict[str, Any]:
        return {"id": touch["event_id"], "t": int(touch["event_time"]), "type": touch["touch_type"],
                "ch": cls.channel, "src": cls.source, "det": cls.detail}

    async def identity_batch(self, events: list[EventT]) -> None:
        batch = Batch()
        groups: dict[bytes, list[tuple[EventT, str, dict[str, Any]]]] = {}
        for event in events:
            decoded = self.decode(batch, "identity", event)
            if decoded is None:
                continue
            name, rec = decoded
            if name not in ("Touch", "Identify"):
                self.dead_letter(batch, "identity", event, f"unexpected record {name} on {event.message.topic}")
                continue
            anon = rec.get("anonymous_id")
            if name == "Touch" and not anon:
                self._contact_touch(batch, event, rec)
                continue
            key = str(anon).encode()
            if not self.keyed_by(batch, "identity", event, key):
                continue
            groups.setdefault(key, []).append((event, name, rec))
        for key, items in groups.items():
            anon_state = self._get(self.anon_table, key, items[-1][0]) or S.new_anon()
            for event, name, rec in items:
                try:
                    if name == "Touch":
                        self._anon_touch(batch, anon_state, rec)
                    else:
                        self._identify(batch, anon_state, rec)
                except Exception as exc:
                    self.dead_letter(batch, "identity", event, f"{type(exc).__name__}: {exc}")
            batch.writes.append((self.anon_table, key, anon_state))
            batch.events[key] = items[-1][0]
        self.counters["identity.events"] += len(events)
        await self.commit_batch(batch, "identity")

    def _classify(self, touch: dict[str, Any]) -> Any:
        return self.taxonomy.classify(touch)

    def _enriched_touch(self, batch: Batch, touch: dict[str, Any], cls: Any, contact_id: str | None,
                        seq: int) -> None:
        click = next((c for c in CLICK_IDS if touch.get(c)), None)
        record = {
            "event_id": touch["event_id"], "event_time": touch["event_time"],
            "received_at": touch["received_at"], "processed_at": now_ms(),
            "anonymous_id": touch.get("anonymous_id"), "contact_id": contact_id,
            "touch_type": touch["touch_type"], "url": touch.get("url"), "referrer": touch.get("referrer"),
            "utm_source": touch.get("utm_source"), "utm_medium": touch.get("utm_medium"),
            "utm_campaign": touch.get("utm_campaign"), "click_id_type": click,
            "channel": cls.channel, "source": cls.source, "detail": cls.detail, "rule": cls.rule,
            "taxonomy_version": str(cls.version), "is_bot": bool(touch.get("is_bot")), "sequence": seq,
        }
        self._emit(batch, self.topics.enriched_touches, contact_id or touch.get("anonymous_id"),
                   "EnrichedTouch", record)

    def _contact_touch(self, batch: Batch, event: EventT, touch: dict[str, Any]) -> None:
        """A touch without anonymous id: it must name its contact."""
        try:
            contact_id = touch.get("contact_id")
            if not contact_id:
                self.dead_letter(batch, "identity", event, "touch has neither anonymous_id nor contact_id")
                return
            cls = self._classify(touch)
            self._enriched_touch(batch, touch, cls, contact_id, 0)
            ref = self.touch_ref(touch, cls)
            self._to_contact(batch, contact_id, "touch", ref["id"], ref["t"], touch=ref)
        except Exception as exc:
            self.dead_letter(batch, "identity", event, f"{type(exc).__name__}: {exc}")

    def _anon_touch(self, batch: Batch, anon: dict[str, Any], touch: dict[str, Any]) -> None:
        cls = self._classify(touch)
        ref = self.touch_ref(touch, cls)
        S.anon_touch(anon, ref, self.half_life)
        named = touch.get("contact_id")
        targets = list(anon["contacts"])
        if named and named not in targets:
            targets.append(named)
        resolved = named or (anon["contacts"][0] if anon["contacts"] else None)
        self._enriched_touch(batch, touch, cls, resolved, anon["seq"])
        for contact_id in targets:
            self._to_contact(batch, contact_id, "touch", ref["id"], ref["t"], touch=ref)

    def _identify(self, batch: Batch, anon: dict[str, Any], ident: dict[str, Any]) -> None:
        contact_id = ident["contact_id"]
        if not contact_id:
            raise ValueError("identify without contact_id")
        S.anon_link(anon, contact_id)
        # Always forwarded (not only on a new link): the contact folds it idempotently,
        # and a replay after a crash must not lose the history it carries.
        self._to_contact(batch, contact_id, "identified", ident["event_id"], int(ident["event_time"]),
                         anonymous_id=ident["anonymous_id"], touch=anon["first"],
                         outbound=list(anon["outbound"]), engagement=anon["eng"], for_contact=contact_id)

    # ---- contact stage -------------------------------------------------------------------
    async def contact_batch(self, events: list[EventT]) -> None:
        batch = Batch()
        groups: dict[bytes, list[tuple[EventT, str, dict[str, Any]]]] = {}
        for event in events:
            decoded = self.decode(batch, "contact", event)
            if decoded is None:
                continue
            name, rec = decoded
            if name not in ("ContactChange", "ContactEvent"):
                self.dead_letter(batch, "contact", event, f"unexpected record {name} on {event.message.topic}")
                continue
            if not rec.get("contact_id"):
                self.dead_letter(batch, "contact", event, f"{name} without contact_id")
                continue
            key = rec["contact_id"].encode()
            if not self.keyed_by(batch, "contact", event, key):
                continue
            groups.setdefault(key, []).append((event, name, rec))
        for key, items in groups.items():
            try:
                self._contact_group(batch, key, items)
            except Exception as exc:
                for event, _, _ in items:
                    self.dead_letter(batch, "contact", event, f"{type(exc).__name__}: {exc}")
        self.counters["contact.events"] += len(events)
        await self.commit_batch(batch, "contact")

    def _contact_group(self, batch: Batch, key: bytes, items: list[tuple[EventT, str, dict[str, Any]]]) -> None:
        contact_id = key.decode()
        st = self._get(self.contact_table, key, items[-1][0]) or S.new_contact(contact_id)
        before_stamp = S.stamp_of(st)
        before_anons = set(st["anons"])
        new_deals: set[str] = set()
        links: dict[str, str] = {}  # new anon -> contact the identify named
        hints: list[str] = []
        was_merged = st["merged_into"] is not None
        for event, name, rec in items:
            try:
                if st["merged_into"] is not None:
                    self._forward(batch, event, st, name, rec)
                    continue
                if name == "ContactChange":
                    self._contact_change(batch, st, rec, hints)
                    continue
                kind = rec["kind"]
                if kind == "touch":
                    S.contact_touch(st, rec["touch"], self.half_life)
                elif kind == "identified":
                    anon = rec["anonymous_id"]
                    S.contact_identified(st, anon, int(rec["event_time"]), rec["touch"], outbound=rec["outbound"],
                                         anon_eng=rec["engagement"])
                    if anon not in before_anons:
                        links[anon] = rec["for_contact"] or contact_id
                    hints.append("identify")
                elif kind == "state":
                    other = rec["state"]
                    if other["id"] != contact_id:
                        S.merge_contact(st, other)
                        for anon in other["anons"]:
                            links.setdefault(anon, other["id"])
                        new_deals.update(other["deals"])
                        hints.append("merge")
                elif kind == "deal_link":
                    st["deals"][rec["deal_id"]] = rec["for_contact"]
                    new_deals.add(rec["deal_id"])
                    hints.append("deal")
                elif kind == "change":
                    facts = rec["change"]
                    S.contact_change(st, {**facts, "change": facts["change"] if facts["change"] != "merge"
                                          else "updated"})
                    hints.append("contact_change")
            except Exception as exc:
                self.dead_letter(batch, "contact", event, f"{type(exc).__name__}: {exc}")
        # Emit what changed: the contact version, new identity links, deal stamps.
        view = S.contact_view(st, self.half_life)
        if view != st["view"] and not (was_merged and st["view"] is not None):
            reason = S.change_reason(st["view"], view, hints)
            st["version"] = S.next_version(st["version"])
            st["view"] = view
            self._emit(batch, self.topics.enriched_contacts, contact_id, "ContactVersion",
                       {**view, "version": st["version"], "event_time": st["last_time"], "reason": reason})
        if st["merged_into"] is None:
            for anon, named in links.items():
                self._emit(batch, self.topics.identity_map, anon, "IdentityLink",
                           {"anonymous_id": anon, "contact_id": named, "canonical_contact_id": contact_id,
                            "version": S.next_version(0), "event_time": st["last_time"]})
            stamp = S.stamp_of(st)
            deals = st["deals"] if stamp != before_stamp else {d: st["deals"][d] for d in new_deals}
            for deal_id, named in deals.items():
                self._emit(batch, self.topics.name("deal-events"), deal_id, "DealStamp",
                           {"deal_id": deal_id, "for_contact": named, "canonical_contact_id": contact_id,
                            "event_time": st["last_time"], "first": stamp["first"], "csrc": stamp["csrc"]})
        batch.writes.append((self.contact_table, key, st))
        batch.events[key] = items[-1][0]

    def _contact_change(self, batch: Batch, st: dict[str, Any], rec: dict[str, Any], hints: list[str]) -> None:
        S.contact_change(st, rec)
        hints.append("contact_change")
        target = rec.get("merged_into")
        if rec.get("change") == "merge" and target and target != st["id"]:
            st["merged_into"] = target
            self._send_state(batch, st, rec["event_id"], int(rec["event_time"]))

    def _send_state(self, batch: Batch, st: dict[str, Any], event_id: str, event_time: int, hops: int = 0) -> None:
        self._to_contact(batch, st["merged_into"], "state", event_id, event_time, hops=hops,
                         state=S.portable(st, self.half_life))

    def _forward(self, batch: Batch, event: EventT, st: dict[str, Any], name: str, rec: dict[str, Any]) -> None:
        """An event for a merged-away contact goes to its survivor (transitively)."""
        target = st["merged_into"]
        hops = int(rec.get("hops") or 0) + 1
        if hops > MAX_HOPS:
            self.dead_letter(batch, "contact", event, f"merge chain longer than {MAX_HOPS} at {st['id']}")
            return
        if name == "ContactChange":
            if rec.get("change") == "merge":
                # A repeated merge of this contact: hand the state over again (idempotent).
                self._send_state(batch, st, rec["event_id"], int(rec["event_time"]), hops)
                return
            facts = {k: rec.get(k) for k in ("event_id", "event_time", "change", "contact_source", "owner",
                                             "lifecycle_stage", "merged_into")}
            self._to_contact(batch, target, "change", rec["event_id"], int(rec["event_time"]), hops=hops,
                             change=facts)
            return
        fwd = {**rec, "contact_id": target, "hops": hops}
        self._emit(batch, self.topics.name("contact-events"), target, "ContactEvent", fwd)

    # ---- deal stage ----------------------------------------------------------------------
    async def deal_batch(self, events: list[EventT]) -> None:
        batch = Batch()
        groups: dict[bytes, list[tuple[EventT, str, dict[str, Any]]]] = {}
        for event in events:
            decoded = self.decode(batch, "deal", event)
            if decoded is None:
                continue
            name, rec = decoded
            if name not in ("DealChange", "DealStamp"):
                self.dead_letter(batch, "deal", event, f"unexpected record {name} on {event.message.topic}")
                continue
            if not rec.get("deal_id") or (name == "DealChange" and not rec.get("primary_contact_id")):
                self.dead_letter(batch, "deal", event, f"{name} without deal_id or primary_contact_id")
                continue
            key = rec["deal_id"].encode()
            if not self.keyed_by(batch, "deal", event, key):
                continue
            groups.setdefault(key, []).append((event, name, rec))
        for key, items in groups.items():
            deal = self._get(self.deal_table, key, items[-1][0]) or S.new_deal(key.decode())
            for event, name, rec in items:
                try:
                    if name == "DealChange":
                        S.deal_change(deal, rec)
                        # Every change re-announces the deal to its primary contact, which
                        # answers with a stamp; cheap, and robust to replays.
                        primary = rec["primary_contact_id"]
                        self._to_contact(batch, primary, "deal_link", rec["event_id"], int(rec["event_time"]),
                                         deal_id=rec["deal_id"], for_contact=primary)
                    else:
                        S.stamp_merge(deal, rec["for_contact"], rec["first"], rec["csrc"])
                except Exception as exc:
                    self.dead_letter(batch, "deal", event, f"{type(exc).__name__}: {exc}")
            self._emit_deal(batch, deal)
            batch.writes.append((self.deal_table, key, deal))
            batch.events[key] = items[-1][0]
        self.counters["deal.events"] += len(events)
        await self.commit_batch(batch, "deal")

    def _emit_deal(self, batch: Batch, deal: dict[str, Any]) -> None:
        view = S.deal_view(deal)
        if view is None or view == deal["emitted"]:
            return
        prev = deal["emitted"] or {}
        deal["stamp_version"] = S.next_version(deal["stamp_version"])
        record = {**view, "stamp_version": deal["stamp_version"],
                  "prev_status": prev.get("status"), "prev_amount": prev.get("amount"),
                  "prev_lead_channel": prev.get("lead_channel"), "prev_lead_source": prev.get("lead_source"),
                  "prev_lead_detail": prev.get("lead_detail")}
        deal["emitted"] = view
        self._emit(batch, self.topics.enriched_deals, view["deal_id"], "EnrichedDeal", record)


def build_app(settings: Settings, datadir: Path, taxonomy: Taxonomy | None = None) -> Pipeline:
    """The worker's pipeline for ``settings``, its RocksDB stores under ``datadir``."""
    return Pipeline(settings, datadir, taxonomy)


def summarize(counters: Counter[str]) -> Iterable[str]:
    return (f"{k}={v}" for k, v in sorted(counters.items()))
