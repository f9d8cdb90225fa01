"""Rewriting the raw topics without the erased subjects' events.

The raw topics are the source of truth and are otherwise never modified. An erasure is
the one exception: as long as a raw topic holds a subject's events, the person is still
stored, and a Kafka topic cannot delete single records. So ``leadstream erase --apply``
rewrites each raw topic that holds any: every record is copied, partition by partition,
in order, with its key, timestamp and headers, to ``<topic>-erasure-copy``, except the
erased subjects' events (deal changes stay, their contact ids replaced by the
placeholder); then the topic is deleted, created again and the copy copied back.

Safe to interrupt: the original is deleted only once the copy is complete and nothing was
written to the original meanwhile (a collector or an import still running makes the
rewrite stop before deleting anything); a copy left by an interrupted run is used again
when the original is gone or empty, and discarded otherwise. Offsets of the rewritten
topics start again at 0: the worker's and the sink's groups are deleted by the rebuild
anyway; any other consumer group of these topics has to start from the beginning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ground.errors import LeadstreamError
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
    rewritten: bool = False


def _ends(consumer: Consumer, topic: str, timeout: float) -> dict[int, int] | None:
    """partition -> end offset; None when the topic does not exist."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in metadata.partitions}


def _copy(settings: Settings, source: str, target: str, keep: Callable[[Message], bytes | None],
          timeout: float) -> int:
    """Produce every message of ``source`` that ``keep`` returns a value for to the same partition of ``target``."""
    consumer = Consumer(settings.kafka_consumer_config(f"leadstream-raw-rewrite-{time.time_ns()}"))
    producer = Producer({**settings.kafka_producer_config(), "linger.ms": 20})
    failures: list[str] = []
    written = 0

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    def handle(msg: Message) -> None:
        nonlocal written
        value = keep(msg)
        if value is None:
            return
        _, timestamp = msg.timestamp()
        while True:
            try:
                producer.produce(target, value=value, key=msg.key(), partition=int(msg.partition() or 0),
                                 timestamp=timestamp if timestamp > 0 else 0, headers=msg.headers() or None,
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        written += 1
        producer.poll(0)

    try:
        read_to_end(consumer, source, handle, timeout)
    finally:
        consumer.close()
        left = producer.flush(max(timeout, 60.0))
    if left or failures:
        raise RawRewriteError(f"copying {source} to {target}: {left} undelivered, errors: {failures[:3]}")
    return written


def _create_copy(settings: Settings, name: str, partitions: int, timeout: float) -> None:
    admin = AdminClient(settings.kafka_common_config())
    topic = NewTopic(name, num_partitions=partitions, replication_factor=settings.topic_replication,
                     config={"retention.ms": "-1", "cleanup.policy": "delete"})
    try:
        admin.create_topics([topic], request_timeout=timeout)[name].result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def _recreate(settings: Settings, name: str, partitions: int, timeout: float) -> None:
    """Create ``name`` again, with its partitions and configuration, once its deletion is complete.

    "Already exists" right after a deletion means the broker has not finished deleting:
    copying into that topic would lose the records with it, so it is waited out.
    """
    admin = AdminClient(settings.kafka_common_config())
    topic = NewTopic(name, num_partitions=partitions, replication_factor=settings.topic_replication,
                     config=topic_config(settings, name))
    wait = max(timeout, 60.0)
    deadline = time.monotonic() + wait
    while True:
        if name not in admin.list_topics(timeout=timeout).topics:
            try:
                admin.create_topics([topic], request_timeout=timeout)[name].result(timeout=timeout)
                break
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
        if time.monotonic() > deadline:
            raise RawRewriteError(f"{name} was deleted but is still listed after {wait:.0f}s")
        time.sleep(0.5)
    while name not in admin.list_topics(timeout=timeout).topics:  # producers need its metadata
        time.sleep(0.2)


def _rewrite_one(settings: Settings, name: str, erasures: ErasureSet, timeout: float) -> RawRewrite:
    codec = get_codec(settings.schema_registry_url)
    copy = name + COPY_SUFFIX
    result = RawRewrite(name)
    probe = Consumer(settings.kafka_consumer_config(f"leadstream-raw-rewrite-{time.time_ns()}"))
    try:
        before, copy_ends = _ends(probe, name, timeout), _ends(probe, copy, timeout)
    finally:
        probe.close()
    if copy_ends is not None and before and any(before.values()):
        log.warning("discarding %s left by an interrupted rewrite (%s still holds its records)", copy, name)
        delete_topics(settings, [copy], timeout)
        copy_ends = None
    if copy_ends is None:
        if not before or not any(before.values()):
            return result
        _create_copy(settings, copy, len(before), timeout)

        def keep(msg: Message) -> bytes | None:
            result.read += 1
            value = msg.value()
            if not value:
                return value
            try:
                record_name, record = codec.decode(value)
            except Exception:  # not ours to judge here: the record stays as it is
                return value
            if erasures.drops(record_name, record):
                result.dropped += 1
                return None
            if erasures.scrub(record_name, record):
                result.scrubbed += 1
                return codec.encode(record_name, record)
            return value

        kept = _copy(settings, name, copy, keep, timeout)
        if not result.dropped and not result.scrubbed:
            delete_topics(settings, [copy], timeout)  # nothing of the subjects here: the topic stays untouched
            return result
        probe = Consumer(settings.kafka_consumer_config(f"leadstream-raw-rewrite-{time.time_ns()}"))
        try:
            after = _ends(probe, name, timeout)
        finally:
            probe.close()
        if after != before:
            delete_topics(settings, [copy], timeout)
            raise RawRewriteError(f"something still writes to {name} ({sum(before.values())} records before the copy, "
                                  f"{sum((after or {}).values())} after): stop the collector and every import, "
                                  "then run `leadstream erase --apply` again")
        log.info("%s: %d of %d records kept (%d dropped, %d scrubbed); replacing the topic", name, kept,
                 result.read, result.dropped, result.scrubbed)
        delete_topics(settings, [name], timeout)
        _recreate(settings, name, len(before), timeout)
    else:
        log.warning("resuming the rewrite of %s from %s", name, copy)
        result.dropped = -1  # unknown: counted by the interrupted run
        if before is None:  # deleted before the interruption; an empty recreated one is used as it is
            _recreate(settings, name, len(copy_ends), timeout)
    _copy(settings, copy, name, lambda msg: msg.value(), timeout)
    delete_topics(settings, [copy], timeout)
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
