"""Rewriting the raw topics without the erased subjects' events.

The raw topics are the source of truth and are otherwise never modified. An erasure is
the one exception: as long as a raw topic holds a subject's events, the person is still
stored, and a Kafka topic cannot delete single records. So ``leadstream erase --apply``
rewrites each raw topic that holds any: every record is copied, partition by partition,
in order, with its key, timestamp and headers, to ``<topic>-erasure-copy``, except the
erased subjects' events (deal changes stay, their contact ids replaced by the
placeholder); then the topic is deleted, created again and the copy copied back.

Safe to interrupt: the original is deleted only once the copy holds exactly what was
written to it, partition by partition, and nothing was written to the original meanwhile
(a collector or an import still running makes the rewrite stop before deleting anything);
then a marker file (``LEADSTREAM_DATA_DIR/raw-rewrite/<copy>.verified``) says so. A copy
left by an interrupted run is used again when its marker exists (the original, or what a
copy back had written of it, is replaced from it) and discarded otherwise (the original
was not touched). Records that are no record of ours are kept as they were and counted. Offsets of the rewritten
topics start again at 0: the worker's and the sink's groups are deleted by the rebuild
anyway; any other consumer group of these topics has to start from the beginning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ground.errors import LeadstreamError, SchemaError
from ground.kafka_admin import delete_topics, topic_config
from ground.settings import Settings
from ground.topic_reader import read_to_end
from ground.topics import RAW_TOPICS, Topics
from schemas.codec import get_codec
from schemas.erasures import ErasureSet

__all__ = ["COPY_SUFFIX", "RawRewrite", "RawRewriteError", "rewrite_raw"]

log = logging.getLogger("leadstream.raw_rewrite")

COPY_SUFFIX = "-erasure-copy"


class RawRewriteError(LeadstreamError):
    """A raw topic could not be rewritten safely (something still writes to it)."""


@dataclass
class RawRewrite:
    """What the rewrite of one raw topic did."""

    topic: str
    read: int = 0
    dropped: int = 0
    scrubbed: int = 0
    undecodable: int = 0  # records that are no record of ours: kept as they were
    rewritten: bool = False


def _ends(consumer: Consumer, topic: str, timeout: float) -> dict[int, int] | None:
    """partition -> end offset; None when the topic does not exist."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in metadata.partitions}


def _offsets(settings: Settings, topic: str, timeout: float) -> dict[int, tuple[int, int]] | None:
    """partition -> (low, high) watermarks; None when the topic does not exist."""
    probe = Consumer(settings.kafka_consumer_config(f"leadstream-raw-rewrite-{time.time_ns()}"))
    try:
        metadata = probe.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                for p in metadata.partitions}
    finally:
        probe.close()


#: What ``keep`` returns for a record that must not be copied (a None value is a tombstone, copied).
_DROP = object()


def _copy(settings: Settings, source: str, target: str, keep: Callable[[Message], object],
          timeout: float) -> dict[int, int]:
    """Produce every message of ``source`` that ``keep`` does not drop to the same partition of
    ``target``, in order; the number written per partition."""
    consumer = Consumer(settings.kafka_consumer_config(f"leadstream-raw-rewrite-{time.time_ns()}"))
    producer = Producer({**settings.kafka_producer_config(), "linger.ms": 20})
    failures: list[str] = []
    written: dict[int, int] = {}

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    def handle(msg: Message) -> None:
        kept = keep(msg)
        if kept is _DROP:
            return
        value = kept if isinstance(kept, bytes) else None
        partition = int(msg.partition() or 0)
        _, timestamp = msg.timestamp()
        while True:
            try:
                producer.produce(target, value=value, key=msg.key(), partition=partition,
                                 timestamp=timestamp if timestamp > 0 else 0, headers=msg.headers() or None,
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        written[partition] = written.get(partition, 0) + 1
        producer.poll(0)

    try:
        read_to_end(consumer, source, handle, timeout)
    finally:
        consumer.close()
        left = producer.flush(max(timeout, 60.0))
    if left or failures:
        raise RawRewriteError(f"copying {source} to {target}: {left} undelivered, errors: {failures[:3]}")
    return written


def _verify(settings: Settings, topic: str, written: dict[int, int], partitions: int, timeout: float) -> None:
    """The topic holds exactly ``written`` per partition, from offset 0; RawRewriteError otherwise."""
    found = _offsets(settings, topic, timeout) or {}
    expected = {p: (0, written.get(p, 0)) for p in range(partitions)}
    if found != expected:
        raise RawRewriteError(f"{topic} does not hold what was written to it (expected {expected}, found {found}); "
                              "nothing was deleted")


def _await_absent(admin: AdminClient, name: str, timeout: float) -> None:
    """Wait until ``name`` is no longer listed (a deletion is accepted before it is complete)."""
    wait = max(timeout, 60.0)
    deadline = time.monotonic() + wait
    while name in admin.list_topics(timeout=timeout).topics:
        if time.monotonic() > deadline:
            raise RawRewriteError(f"{name} was deleted but is still listed after {wait:.0f}s")
        time.sleep(0.5)


def _create(settings: Settings, name: str, partitions: int, config: dict[str, str], timeout: float) -> None:
    """Create ``name`` afresh once any earlier one is gone; an existing one is an error, not a reuse."""
    admin = AdminClient(settings.kafka_common_config())
    topic = NewTopic(name, num_partitions=partitions, replication_factor=settings.topic_replication, config=config)
    wait = max(timeout, 60.0)
    deadline = time.monotonic() + wait
    while True:
        _await_absent(admin, name, timeout)
        try:
            admin.create_topics([topic], request_timeout=timeout)[name].result(timeout=timeout)
            break
        except KafkaException as exc:
            # listed as gone, then "exists": the broker was still finishing the deletion
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS" or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    while name not in admin.list_topics(timeout=timeout).topics:  # producers need its metadata
        if time.monotonic() > deadline:
            raise RawRewriteError(f"{name} was created but is not listed after {wait:.0f}s")
        time.sleep(0.2)


def _delete(settings: Settings, name: str, timeout: float) -> None:
    delete_topics(settings, [name], timeout)
    _await_absent(AdminClient(settings.kafka_common_config()), name, timeout)


def _marker(settings: Settings, copy: str) -> Path:
    """The file that says the copy of a topic is complete and verified (written before the original goes)."""
    return settings.data_dir / "raw-rewrite" / f"{copy}.verified"


def _rewrite_one(settings: Settings, name: str, erasures: ErasureSet, timeout: float) -> RawRewrite:
    codec = get_codec(settings.schema_registry_url)
    copy = name + COPY_SUFFIX
    marker = _marker(settings, copy)
    result = RawRewrite(name)
    before, copy_offsets = _offsets(settings, name, timeout), _offsets(settings, copy, timeout)
    if copy_offsets is not None and not marker.exists():
        # an interrupted first copy: the original was never deleted (that happens only after the marker)
        if before is None:
            raise RawRewriteError(f"{name} is missing and {copy} was never verified complete: restore {name} "
                                  f"from {copy} by hand if it holds the data")
        log.warning("discarding %s left by an interrupted copy (%s was not touched)", copy, name)
        _delete(settings, copy, timeout)
        copy_offsets = None
    if copy_offsets is None:
        marker.unlink(missing_ok=True)
        if not before or not any(high for _, high in before.values()):
            return result
        _create(settings, copy, len(before), {"retention.ms": "-1", "cleanup.policy": "delete"}, timeout)

        def keep(msg: Message) -> object:
            result.read += 1
            value = msg.value()
            if value is None:
                return value
            try:
                record_name, record = codec.decode(value)
            except SchemaError:  # not a record of ours: kept as it is, and said
                result.undecodable += 1
                return value
            if erasures.drops(record_name, record):
                result.dropped += 1
                return _DROP
            if erasures.scrub(record_name, record):
                result.scrubbed += 1
                return codec.encode(record_name, record)
            return value

        written = _copy(settings, name, copy, keep, timeout)
        if not result.dropped and not result.scrubbed:
            _delete(settings, copy, timeout)  # nothing of the subjects here: the topic stays untouched
            return result
        after = _offsets(settings, name, timeout)
        if after != before:
            _delete(settings, copy, timeout)
            raise RawRewriteError(f"something still writes to {name} while it is copied: stop the collector and "
                                  "every import, then run `leadstream erase --apply` again")
        _verify(settings, copy, written, len(before), timeout)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"topic": name, "partitions": len(before), "written": written}))
        log.info("%s: %d of %d records kept (%d dropped, %d scrubbed); replacing the topic", name,
                 sum(written.values()), result.read, result.dropped, result.scrubbed)
    else:
        log.warning("resuming the rewrite of %s from its verified copy %s", name, copy)
        result.dropped = -1  # counted by the interrupted run
        saved = json.loads(marker.read_text())
        written = {int(p): n for p, n in saved["written"].items()}
        _verify(settings, copy, written, int(saved["partitions"]), timeout)
    partitions = len(copy_offsets) if copy_offsets is not None else len(before or {})
    if _offsets(settings, name, timeout) is not None:
        _delete(settings, name, timeout)  # the original, or the part of a copy back an interruption left
    _create(settings, name, partitions, topic_config(settings, name), timeout)
    back = _copy(settings, copy, name, lambda msg: msg.value(), timeout)
    _verify(settings, name, back, partitions, timeout)
    _delete(settings, copy, timeout)
    marker.unlink(missing_ok=True)
    result.rewritten = True
    return result


def rewrite_raw(settings: Settings, timeout: float = 30.0,
                progress: Callable[[RawRewrite], None] | None = None) -> list[RawRewrite]:
    """Rewrite every raw topic that holds an erased subject's event; what was done per topic."""
    erasures = ErasureSet(settings, follow=False, timeout=timeout)
    topics = Topics(settings.topic_prefix)
    results = []
    try:
        for base in RAW_TOPICS:
            done = _rewrite_one(settings, topics.name(base), erasures, timeout)
            results.append(done)
            if progress is not None:
                progress(done)
    finally:
        erasures.close()
    return results
