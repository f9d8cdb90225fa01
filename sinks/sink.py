"""The sink: enriched topics + dead letters -> ClickHouse, in acknowledged batches.

Where it sits: after the stream worker. It consumes ``enriched-touches``,
``enriched-contacts``, ``identity-map``, ``enriched-deals`` and ``dead-letter`` with
confluent-kafka (auto-commit off) and writes one table per record type. This module
is the delivery protocol; the row layouts are :mod:`sinks.rows` and
:mod:`sinks.contact_rows`.

The protocol, one batch at a time:

1. **Read** (:meth:`Sink.run`). Messages set aside during a retry (step 4) come first,
   then ``consume()`` fetches at most the room left in the batch, which closes at
   ``LEADSTREAM_SINK_BATCH_ROWS`` rows or ``LEADSTREAM_SINK_BATCH_SECONDS`` after its
   first message. Every message read is in the batch with its offset, row or not.
2. **Decode** (:meth:`Sink._accept`). The Avro payload is decoded and converted to its
   table's row. A message that does not decode, is not the record its topic carries, or
   does not convert is published to the dead-letter topic (stage ``sink``, with the
   reason and its origin; its event id is derived from topic/partition/offset, so a
   replay produces the same dead letter) and stays in the batch without a row.
   Enriched touches written with the current schema skip this: their bodies go to the
   engine as one Avro block (:mod:`sinks.avro_blocks`, ``LEADSTREAM_SINK_NATIVE_AVRO``),
   and only if the engine refuses a block are its touches decoded here, one by one
   (:meth:`Sink._insert_native`).
3. **Dedupe** (:meth:`Sink._insert_all`, first attempt only). Nothing is dropped here:
   the tables collapse repeats (touches and dead letters by event id, versions by
   version, in the latest-state views). What the sink adds is the state each contact
   version replaces, read once per batch from what ClickHouse acknowledged
   (:func:`sinks.contact_rows.with_previous`), so that a version ClickHouse already has
   adds nothing to ``lead_counts``. The rows are then frozen for the batch.
4. **Insert** (:meth:`Sink.flush`). One block per table (native touches: a few, at once),
   synchronously. A failure is
   retried with exponential backoff until it succeeds or the sink is stopped: the
   tables already acknowledged are skipped and the others get the very same blocks,
   so a block that did land before the failure is dropped by insert de-duplication
   (``non_replicated_deduplication_window`` on the tables, migration 0001, and on the
   views' targets, migration 0005) and does not feed the views twice. Meanwhile the
   partitions are paused and the consumer keeps polling to stay in its group; what it
   still fetches is set aside for the next batch (step 1).
5. **Commit** (:meth:`Sink.flush`). Once every insert is acknowledged, the producer is
   flushed so that this batch's dead letters are on the broker (it waits up to 30 s),
   then the next offset of each partition in the batch is committed, synchronously, and
   the batch is cleared.

Why nothing is lost: an offset is committed only after its row or its dead letter is
acknowledged (steps 4 and 5 in that order), so a crash or a stop at any earlier point
leaves it to be read again from the last commit. The one exception is logged: a dead
letter the broker has not acknowledged within the 30 s is committed past while still
queued in the (idempotent, retrying) producer, and lost only if the process dies before
it is delivered. Why nothing is doubled: what is read
again is re-inserted as rows the tables and views de-duplicate (step 3), a retried
block is dropped by insert de-duplication (step 4), and a revoked partition drops the
uncommitted batch for its next owner to replay the same way. A failed commit (a
rebalance can refuse it) is therefore only logged.

Backpressure comes for free: inserts are synchronous in the consumer loop, so a slow
ClickHouse slows consumption, and an unavailable one pauses it.

A crash inside an insert is repaired: the embedded engine stores a table's part before
its materialized view's, and a crash in between is corrected when the sink starts
again (:mod:`sinks.repair`), before it consumes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from ground.errors import LeadstreamError, SchemaError
from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from schemas.codec import encode, get_codec, schema_info
from schemas.dead_letter import dead_letter
from schemas.erasures import ErasureSet
from sinks.avro_blocks import HEADER_BYTES, AvroBlock, container, single_object_prefix
from sinks.clickhouse import Database
from sinks.contact_rows import stored_states, with_previous
from sinks.migrate import apply_migrations
from sinks.repair import repair_aggregates
from sinks.rows import BY_TABLE, TABLES

__all__ = ["SINK_TOPICS", "Sink", "SinkStats"]

log = logging.getLogger("leadstream.sink")
SINK_TOPICS = ("enriched-touches", "enriched-contacts", "identity-map", "enriched-deals", "dead-letter", "spend",
               "fx-rates")
_DL_NAMESPACE = uuid.UUID("6f1c8f0e-5a0b-4d58-9a8c-2f3b7f1e9d41")
#: The name, among the batch's acknowledged tables, of its native touch block.
_NATIVE = "touches:native"


@dataclass
class SinkStats:
    """Counters the query API's ``/healthz`` shows."""

    messages: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    insert_failures: int = 0
    dead_letters: int = 0
    erased: int = 0
    #: touches the engine decoded itself, and native blocks it refused for their data (decoded here then)
    native_rows: int = 0
    native_refusals: int = 0
    last_flush_at: float | None = None
    last_insert_seconds: float | None = None
    last_error: str | None = None
    paused: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "messages": self.messages, "rows": dict(self.rows), "batches": self.batches,
            "insert_failures": self.insert_failures, "dead_letters": self.dead_letters,
            "erased": self.erased, "native_rows": self.native_rows, "native_refusals": self.native_refusals,
            "last_flush_at": self.last_flush_at,
            "last_insert_seconds": self.last_insert_seconds, "last_error": self.last_error,
            "paused": self.paused,
        }


@dataclass
class _Batch:
    """One round of the protocol: rows per table, and the next offset of each partition read."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    #: enriched touches in the current schema, left for the engine to decode (sinks/avro_blocks.py);
    #: once split, their parts and blocks (each re-sent as it is until acknowledged)
    native: list[Message] = field(default_factory=list)
    native_split: bool = False
    native_parts: list[list[Message]] = field(default_factory=list)
    native_blocks: list[AvroBlock] = field(default_factory=list)
    native_acked: set[int] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    started: float | None = None
    count: int = 0
    done: set[str] = field(default_factory=set)
    prepared: bool = False

    def add(self, table: str | None, row: tuple[Any, ...] | None, msg: Message) -> None:
        if table is not None and row is not None:
            self.rows.setdefault(table, []).append(row)
            self.count += 1
        self._read(msg)

    def add_native(self, msg: Message) -> None:
        self.native.append(msg)
        self.count += 1
        self._read(msg)

    def _read(self, msg: Message) -> None:
        if self.started is None:
            self.started = time.monotonic()
        self.offsets[(str(msg.topic()), int(msg.partition() or 0))] = int(msg.offset() or 0) + 1

    def empty(self) -> bool:
        return not self.offsets


class _Stopped(LeadstreamError):
    """The sink was asked to stop while a batch was still failing (caught in :meth:`Sink.run`)."""


class Sink:
    """One consumer of the enriched topics writing into one ClickHouse database."""

    def __init__(self, settings: Settings, db: Database, *, group_id: str | None = None,
                 migrate: bool = True) -> None:
        self.settings = settings
        self.db = db
        self.topics = Topics(settings.topic_prefix)
        self.group_id = group_id or settings.sink_group_id
        self.stats = SinkStats()
        self.stop_event = threading.Event()
        self._codec = get_codec(settings.schema_registry_url)
        self._base_of = {self.topics.name(b): b for b in SINK_TOPICS}
        self._batch = _Batch()
        self._pending: list[Message] = []
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._erasures: ErasureSet | None = None
        # enriched touches the engine decodes itself: only single-object encoded ones (no
        # registry) written with the current schema; anything else takes the Python path
        self._native = schema_info("EnrichedTouch") if settings.sink_native_avro and not settings.schema_registry_url \
            else None
        self._native_prefix = single_object_prefix(self._native) if self._native is not None else None
        self._touch_topic = self.topics.name("enriched-touches")
        self._insert_dbs: list[Database] = []  # extra engine connections for native blocks
        if migrate:
            apply_migrations(db, settings.clickhouse_cluster)
        if settings.clickhouse_embedded:
            repair_aggregates(db)  # a crash of this process can cut an insert between table and view

    # ---------------------------------------------------------------- conversion
    def _dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        """Publish a message the sink cannot store to the dead-letter topic."""
        assert self._producer is not None
        raw = msg.value() or b""
        topic, partition, offset = str(msg.topic()), msg.partition(), msg.offset()
        record = dead_letter(
            stage="sink", reason=reason, origin=topic, payload=raw, detail=detail, origin_topic=topic,
            origin_partition=partition, origin_offset=offset,
            # deterministic: a replay of the same bad message is the same dead letter
            event_id=str(uuid.uuid5(_DL_NAMESPACE, f"{topic}/{partition}/{offset}")),
        )
        self._producer.produce(self.topics.dead_letter, value=encode("DeadLetter", record), key=topic.encode())
        self._producer.poll(0)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s[%s]@%s: %s (%s)", topic, partition, offset, reason, detail)

    def _accept_all(self, messages: list[Message]) -> None:
        """Every message into the batch. This is the sink's hot loop: a current-schema touch is
        taken as it is (the engine decodes it at insert time), without a call per message;
        everything else goes through :meth:`_accept`."""
        b = self._batch
        native = self._native_prefix
        if self._erasures is not None and self._erasures.active:
            native = None  # each record must be checked against the erased subjects
        touch_topic = self._touch_topic
        for msg in messages:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
                continue
            value = msg.value()
            if native is not None and value is not None and msg.topic() == touch_topic and value.startswith(native):
                b.add_native(msg)
                self.stats.messages += 1
            else:
                self._accept(msg)

    def _accept(self, msg: Message) -> None:
        """One message decoded here: its row, or a dead letter."""
        self.stats.messages += 1
        converted = self._convert(msg)
        if converted is None:
            self._batch.add(None, None, msg)
        else:
            self._batch.add(*converted, msg)

    def _convert(self, msg: Message) -> tuple[str, tuple[Any, ...]] | None:
        """(table, row) of a message; None when it was dead-lettered or belongs to an erased subject."""
        base = self._base_of.get(str(msg.topic()), "")
        expect = TOPIC_RECORDS.get(base)
        try:
            name, record = self._codec.decode(msg.value() or b"")
        except SchemaError as exc:
            self._dead_letter(msg, "undecodable", str(exc))
            return None
        spec = TABLES.get(name)
        if spec is None or name != expect:
            self._dead_letter(msg, "unexpected_record", f"{name} on {msg.topic()}, expected {expect}")
            return None
        if self._erasures is not None and self._erasures.active:
            if self._erasures.drops(name, record):  # an erased subject's: acknowledged, never stored
                self.stats.erased += 1
                return None
            self._erasures.scrub(name, record)
        try:
            row = spec.convert(record)
        except (KeyError, TypeError, ValueError) as exc:
            self._dead_letter(msg, "unconvertible_record", f"{name}: {exc!r}")
            return None
        return spec.table, row

    def _split_native(self) -> None:
        """Cut the batch's native touches (there are some) into parts of at least 1,000, one Avro block each."""
        assert self._native is not None
        b = self._batch
        parts = max(1, min(self.settings.sink_insert_threads, len(b.native) // 1000))
        size = -(-len(b.native) // parts)
        b.native_parts = [b.native[k:k + size] for k in range(0, len(b.native), size)]
        b.native_blocks = [container(self._native, [(m.value() or b"")[HEADER_BYTES:] for m in part])
                           for part in b.native_parts]
        b.native_split = True

    def _helpers(self, n: int) -> list[Database]:
        """Up to ``n`` extra engine connections of this sink (fewer when none can be opened)."""
        while len(self._insert_dbs) < n:
            helper = self.db.sibling()
            if helper is None:
                break
            self._insert_dbs.append(helper)
        return self._insert_dbs[:n]

    def _insert_native(self) -> None:
        """The batch's native touches as Avro blocks, inserted at once, each the same bytes on every attempt.

        Only the blocks not yet acknowledged are sent again. A block the engine refuses for
        its data (an error about the block, not an unreachable engine) stored nothing: its
        touches are decoded here instead, the ones that do not decode are dead-lettered and
        the others join the batch as rows, so a refused block is never sent again. Any other
        failure is an outage, and the very same blocks are sent again, so that insert
        de-duplication drops any that did land.
        """
        b = self._batch
        if not b.native_split:
            self._split_native()
        columns = TABLES["EnrichedTouch"].columns
        todo = [i for i in range(len(b.native_blocks)) if i not in b.native_acked]
        helpers = self._helpers(len(todo) - 1)
        failures: dict[int, Exception] = {}

        def send(i: int, db: Database) -> None:
            try:
                db.insert("touches", b.native_blocks[i], columns)
                b.native_acked.add(i)
            except Exception as exc:  # reported below, in this thread
                failures[i] = exc

        threads = [threading.Thread(target=send, args=(i, db), name="sink-insert", daemon=True)
                   for i, db in zip(todo[1:], helpers, strict=False)]
        for thread in threads:
            thread.start()
        alone = todo[1 + len(threads):]  # no helper connection for these: sent from here, one by one
        if todo:
            send(todo[0], self.db)
        for i in alone:
            send(i, self.db)
        for thread in threads:
            thread.join()
        if not failures:
            return
        refused = {i for i, exc in failures.items()
                   if isinstance(exc, DatabaseError) and not isinstance(exc, OperationalError)}
        if refused:
            self.stats.native_refusals += len(refused)
            moved = [m for i in sorted(refused) for m in b.native_parts[i]]
            log.warning("the engine refused %d native block(s) of %d touches (%r): decoded here instead",
                        len(refused), len(moved), failures[min(refused)])
            for msg in moved:
                converted = self._convert(msg)  # dead-letters what does not decode
                if converted is not None:
                    b.rows.setdefault(converted[0], []).append(converted[1])
            keep = [i for i in range(len(b.native_parts)) if i not in refused]
            b.native_parts = [b.native_parts[i] for i in keep]
            b.native_blocks = [b.native_blocks[i] for i in keep]
            b.native_acked = {k for k, i in enumerate(keep) if i in b.native_acked}
        raise next(iter(failures.values()))

    # --------------------------------------------------------------------- flush
    def _due(self) -> bool:
        b = self._batch
        if b.empty():
            return False
        if b.count >= self.settings.sink_batch_rows:
            return True
        return b.started is not None and time.monotonic() - b.started >= self.settings.sink_batch_seconds

    def _insert_all(self) -> None:
        b = self._batch
        contacts = b.rows.get("contact_versions")
        if not b.prepared and contacts:
            # step 3, once per batch: a retry must re-send the very same block, so that insert
            # de-duplication drops it (and skips the materialized view) if it already landed
            b.rows["contact_versions"] = with_previous(contacts, stored_states(self.db, contacts))
        b.prepared = True
        if b.native and _NATIVE not in b.done:
            self._insert_native()
        b.done.add(_NATIVE)
        for table, rows in b.rows.items():
            if table in b.done or not rows:
                continue
            self.db.insert(table, rows, BY_TABLE[table].columns)
            b.done.add(table)  # a retry after a partial failure skips what ClickHouse acknowledged

    def _pause(self, on: bool) -> None:
        consumer = self._consumer
        if consumer is None or on == self.stats.paused:
            return
        assignment = consumer.assignment()
        if on:
            consumer.pause(assignment)
        else:
            consumer.resume(assignment)
        self.stats.paused = on

    def _wait(self, seconds: float) -> None:
        """Back off between attempts: partitions paused, still polling to keep the group."""
        self._pause(True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop_event.is_set():
                raise _Stopped
            if self._consumer is not None:
                msg = self._consumer.poll(min(0.2, max(0.0, deadline - time.monotonic())))
                if msg is not None and msg.error() is None:
                    # fetched before the pause took effect: kept for the NEXT batch, so a retried
                    # insert sends the very same block (and insert de-duplication recognises it)
                    self._pending.append(msg)
            else:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.insert_failures += 1
        self.stats.last_error = repr(exc)
        log.warning("ClickHouse insert failed (attempt %s), retrying: %r", state.attempt_number, exc)

    def flush(self) -> None:
        """Insert the batch (retrying until acknowledged), then commit its offsets."""
        if self._batch.empty():
            return
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.2, min=0.2, max=5.0),
            sleep=self._wait,
            before_sleep=self._on_retry,
            reraise=True,
        )
        started = time.monotonic()
        retrying(self._insert_all)
        self.stats.last_insert_seconds = time.monotonic() - started
        self._pause(False)
        if self._producer is not None:
            # dead letters of this batch are on the broker before we commit past them
            queued = self._producer.flush(30)
            if queued:
                log.warning("%d dead letter(s) not yet acknowledged by the broker; committing past them", queued)
        b = self._batch
        if self._consumer is not None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in b.offsets.items()]
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # a rebalance can refuse it: the rows are in, a replay dedups
                log.warning("offset commit failed: %r", exc)
        for table, rows in b.rows.items():
            self.stats.rows[table] = self.stats.rows.get(table, 0) + len(rows)
        native = sum(len(part) for part in b.native_parts)  # all acknowledged by now
        self.stats.rows["touches"] = self.stats.rows.get("touches", 0) + native
        self.stats.native_rows += native
        self.stats.batches += 1
        self.stats.last_flush_at = time.time()
        self._batch = _Batch()

    # ---------------------------------------------------------------------- loop
    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing of the batch is committed yet: the next owner re-reads it from the
        # committed offsets, and the tables de-duplicate what we may also insert.
        self._batch = _Batch()
        self._pending = []
        self.stats.paused = False

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Consume until :meth:`stop`; flushes what it holds before returning."""
        config = self.settings.kafka_consumer_config(self.group_id, **{"max.poll.interval.ms": 600_000,
                                                                       "max.partition.fetch.bytes": 8 * 2**20})
        self._consumer = Consumer(config)
        self._producer = Producer(self.settings.kafka_producer_config())
        self._erasures = erasures = ErasureSet(self.settings, step="sink")  # before the first row
        self._consumer.subscribe([self.topics.name(b) for b in SINK_TOPICS], on_revoke=self._on_revoke)
        if on_ready is not None:
            on_ready()
        try:
            while not self.stop_event.is_set():
                erasures.refresh()
                pending, self._pending = self._pending, []
                self._accept_all(pending)
                room = max(1, min(5000, self.settings.sink_batch_rows - self._batch.count))
                self._accept_all(self._consumer.consume(num_messages=room, timeout=0.1))
                if self._due():
                    self.flush()
            self.flush()
        except _Stopped:
            log.warning("stopped with an unacknowledged batch: it will be re-read from the committed offsets")
        finally:
            self._consumer.close()
            self._producer.flush(10)
            erasures.close()
            self._consumer = None
            for helper in self._insert_dbs:
                helper.close()
            self._insert_dbs = []

    def stop(self) -> None:
        self.stop_event.set()

