"""Reading the dead-letter topic back: ``leadstream dlq tail``.

Dead letters are data (docs/architecture.md, "Decisions"): each one keeps the reason, the
stage and origin it came from, and the raw input. ``latest`` reads the newest records
of every partition without joining a consumer group (nothing is committed), and
``follow`` keeps printing new ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from ground.errors import BrokerError, SchemaError
from ground.settings import Settings
from ground.topics import Topics
from schemas.codec import get_codec

__all__ = ["DeadLetterEntry", "follow", "format_entry", "latest"]

PREVIEW_BYTES = 300


@dataclass(frozen=True)
class DeadLetterEntry:
    """A decoded dead letter with where it sits on the topic."""

    partition: int
    offset: int
    record: dict[str, Any]


def _consumer(settings: Settings) -> Consumer:
    # A throw-away group id: assign() is used, nothing is ever committed.
    return Consumer(settings.kafka_consumer_config(f"{settings.stream_app_id}-dlq-{uuid.uuid4().hex[:8]}",
                                                   **{"enable.partition.eof": True}))


def _decode(settings: Settings, partition: int, offset: int, value: bytes | None) -> DeadLetterEntry:
    try:
        _, record = get_codec(settings.schema_registry_url).decode(value or b"", expect="DeadLetter")
    except SchemaError as exc:
        record = {"failed_at": 0, "stage": "?", "reason": "undecodable_dead_letter", "detail": str(exc),
                  "origin": "?", "payload": value or b"", "payload_truncated": False}
    return DeadLetterEntry(partition, offset, record)


def latest(settings: Settings, count: int = 20, *, timeout: float = 15.0) -> list[DeadLetterEntry]:
    """The newest ``count`` dead letters across partitions, oldest first (by failed_at)."""
    topic = Topics(settings.topic_prefix).dead_letter
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise BrokerError(f"topic {topic} does not exist (run `leadstream topics create`)")
        assignments: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                assignments.append(TopicPartition(topic, partition, max(low, high - count)))
                ends[partition] = high
        entries: list[DeadLetterEntry] = []
        if assignments:
            consumer.assign(assignments)
            deadline = time.monotonic() + timeout
            pending = dict(ends)
            while pending and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.pop(msg.partition() or 0, None)
                    continue
                partition, offset = msg.partition() or 0, msg.offset() or 0
                entries.append(_decode(settings, partition, offset, msg.value()))
                if offset + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)
        entries.sort(key=lambda e: (e.record.get("failed_at", 0), e.partition, e.offset))
        return entries[-count:] if count else []
    finally:
        consumer.close()


def follow(settings: Settings, *, poll_s: float = 1.0) -> Iterator[DeadLetterEntry]:
    """New dead letters as they arrive (from the end of every partition), forever."""
    topic = Topics(settings.topic_prefix).dead_letter
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in metadata.topics[topic].partitions])
        while True:
            msg = consumer.poll(poll_s)
            if msg is None or msg.error():
                continue
            yield _decode(settings, msg.partition() or 0, msg.offset() or 0, msg.value())
    finally:
        consumer.close()


def format_entry(entry: DeadLetterEntry) -> str:
    """A readable multi-line rendering of one dead letter."""
    record = entry.record
    when = datetime.fromtimestamp(record.get("failed_at", 0) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    payload: bytes = record.get("payload") or b""
    preview = payload[:PREVIEW_BYTES].decode("utf-8", "replace")
    more = len(payload) > PREVIEW_BYTES or record.get("payload_truncated")
    lines = [
        f"{when}Z  {record.get('stage', '?')}  {record.get('reason', '?')}  from {record.get('origin', '?')}"
        f"  [p{entry.partition}@{entry.offset}]",
    ]
    if record.get("detail"):
        lines.append(f"    detail:  {record['detail']}")
    if record.get("origin_topic"):
        lines.append(f"    source:  {record['origin_topic']}[{record.get('origin_partition')}]"
                     f"@{record.get('origin_offset')}")
    lines.append(f"    payload: {preview!r}{' …' if more else ''}")
    return "\n".join(lines)
