"""Delivery: how a batch's effects reach the broker before Faust may acknowledge it.

Where it sits: under the stage handlers (streams/stage.py and the three stages) and
beside the Faust wiring (streams/app.py). This is the one module of the worker that
touches Faust internals; each use says why beside it.

The protocol of one batch (``commit_batch``):

1. every output record (enriched records, internal messages, dead letters) is
   produced through the stage's :class:`Outbox` and the batch waits until the broker
   acknowledged all of them;
2. then every table write goes to the RocksDB store of the key's partition and, as
   the same bytes Faust would write, to the table's changelog partition; the batch
   waits again;
3. only then does the agent's loop take the next batch, which lets Faust acknowledge
   (and later commit) the events of this one.

Outputs first: if the process dies after the state was written but before an output
was delivered, the replayed batch would find nothing changed and never emit it again.
A crash anywhere else replays events whose effects are idempotent (streams/state.py).

The offset corrections (:func:`apply_offset_fixes`) make Faust commit only offsets
whose messages were processed. Why: under a rebalance while events are flowing (a
worker joining, a worker killed and restarted), Faust can drop a fetched message
without processing it (queues cleared on revocation, messages skipped for a stale
generation, read offsets moved past messages re-fetched after a seek). Three details
of its commit logic then turn a dropped message into a lost one, found by the restart
oracle test (one contact change never applied):

1. ``Consumer._new_offset`` refuses to commit past a hole at the head of the acked
   offsets only when ``min(acked) - committed > 1``; the committed offset is the *next*
   offset to read, so a single missing message (``min(acked) == committed + 1``) is
   committed over.
2. ``Consumer._add_gap`` marks offsets it did not see delivered as "gaps" (meant for
   compacted topics and transaction markers) that count as acknowledged, including the
   message just fetched; after a seek those can be messages that were never processed.
3. Before a partition's first commit there is no committed offset to compare with, and
   Faust commits the first run of acknowledged offsets wherever it starts, so messages
   dropped at the very beginning (a worker joining while the first events flow) are lost.

The replacement commits only a run of acknowledged offsets that starts exactly at the
committed position (at offset 0 before the first commit), and when a hole persists it
seeks back to the committed offsets so the missing messages are fetched and processed
again. Gaps are not recorded: every input topic of the worker has consecutive offsets
(not compacted, written without transactions).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer
from faust.streams import _current_event
from faust.transport.consumer import Consumer
from faust.types import EventT
from faust.utils.functional import consecutive_numbers

from ground.errors import StreamError
from ground.settings import Settings

__all__ = [
    "FRESH_RESEEKS",
    "HOLE_RESEEK_SECONDS",
    "Batch",
    "Out",
    "Outbox",
    "apply_offset_fixes",
    "commit_batch",
    "read_state",
]

log = logging.getLogger("leadstream.streams")

#: How long a hole at the head of the acknowledged offsets may last before the
#: consumer seeks back to its committed offsets to fetch the missing messages again.
HOLE_RESEEK_SECONDS = 3.0
#: Seeks back before a partition that has no committed offset yet is taken to start later than 0.
FRESH_RESEEKS = 3

Out = tuple[str, bytes | None, bytes]  # (topic, key, value)

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_applied = False
_tasks: set[asyncio.Future[Any]] = set()


class Outbox:
    """A confluent-kafka producer whose deliveries a coroutine can wait for.

    Same partitioner as the producers and as aiokafka (murmur2), so a key lands in
    the same partition whichever client wrote it. One per stage: ``produce`` costs a
    few microseconds and no await, and each stage waits only for its own deliveries.
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

    def write(self, table: Any, key: bytes, value: Any, event: EventT) -> None:
        """Queue the new state of ``key``; ``event`` (of that key) names its partition."""
        self.writes.append((table, key, value))
        self.events[key] = event


@contextmanager
def _as_current(event: EventT) -> Iterator[None]:
    # Faust internal: a table finds the partition (and so the RocksDB store and the
    # changelog partition) of a key from the stream's "current event" context
    # variable. The agents handle a whole batch outside Faust's per-event iteration,
    # so the event of the key is set here around each table access.
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def read_state(table: Any, key: bytes, event: EventT) -> Any:
    """The stored state of ``key`` (decoded JSON), or None; ``event`` is one of that key."""
    with _as_current(event):
        raw = table.get(key)
    return json.loads(raw) if raw is not None else None


async def commit_batch(batch: Batch, outbox: Outbox) -> None:
    """Steps 1 and 2 of the protocol: outputs delivered, then table writes delivered."""
    for topic, key, value in batch.outputs:
        outbox.produce(topic, key, value)
    await outbox.delivered()
    for table, key, value in batch.writes:
        event = batch.events[key]
        value_bytes = _encoder.encode(value).encode()
        with _as_current(event):
            # Faust internal: ``data._set`` writes the store without Faust's own
            # changelog send, whose delivery nobody waits for; the changelog record is
            # produced below with the same bytes and partition, through the outbox, so
            # that the batch waits for it like for every other output.
            table.data._set(key, value_bytes)
        outbox.produce(table.changelog_topic.get_topic_name(), key, value_bytes, event.message.partition)
    await outbox.delivered()


# ---- offset corrections (Faust internals: Consumer._new_offset, Consumer._add_gap) ----------
def _new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp``: the end of the acked run starting at the committed one.

    Before the group's first commit of ``tp`` the run must start at offset 0 (the
    worker's topics are never truncated: kafka_admin creates them without retention);
    if a partition's log does start later, the hole outlives a few seeks back and the
    first run is accepted.
    """
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    committed = self._committed_offset.get(tp)
    holes: dict[Any, list[float]] = self.__dict__.setdefault("_ls_holes", {})
    fresh = committed is None or committed < 0
    expected = 0 if fresh else committed
    index = self._acked_index[tp]
    while acked and acked[0] < expected:  # processed again after a seek: already committed
        index.discard(acked.pop(0))
    if not acked:
        return None
    if acked[0] != expected:
        hole = holes.setdefault(tp, [time.monotonic(), 0])
        if fresh and hole[1] >= FRESH_RESEEKS:
            log.warning("%s starts at offset %s, not 0: committing from there", tp, acked[0])
        else:
            if time.monotonic() - hole[0] >= HOLE_RESEEK_SECONDS:
                hole[0], hole[1] = time.monotonic(), hole[1] + 1
                log.warning("offset %s of %s was never processed; seeking back to the committed offsets",
                            expected, tp)
                task = asyncio.ensure_future(self.perform_seek())
                _tasks.add(task)  # keep a reference until it is done
                task.add_done_callback(_tasks.discard)
            return None
    holes.pop(tp, None)
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    index.difference_update(batch)
    return int(batch[-1]) + 1


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Record no gaps: the worker's input topics have consecutive offsets."""
    return None


def apply_offset_fixes() -> None:
    """Install the offset corrections (idempotent); the pipeline calls it before building the app."""
    global _applied  # noqa: PLW0603 - a process-wide, once-only patch of a library class
    if _applied:
        return
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    _applied = True
