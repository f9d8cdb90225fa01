"""Test helpers of the capture layer: read a test's topics back from the real broker.

Reads go up to the topics' end offsets (high watermarks) taken after the producer
flushed, so "exactly these events" and "nothing at all" are exact checks, not
timing guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from ground.settings import Settings
from ground.topics import Topics
from schemas import decode

__all__ = ["ID_SECRET", "Consumed", "all_topic_counts", "count", "end_offsets", "keyed", "read_all"]

#: The keyed-hash secret (LEADSTREAM_ID_SECRET) of every test deployment.
ID_SECRET = "test-id-secret"


def keyed(email: str) -> str:
    """The stored hash of ``email`` under the tests' ID secret, computed independently of the product."""
    return hmac.new(ID_SECRET.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Consumed:
    """One message read back: key, partition, raw value and the decoded record."""

    key: str | None
    partition: int
    value: bytes
    name: str
    record: dict[str, Any]


def _consumer(settings: Settings) -> Consumer:
    return Consumer(settings.kafka_consumer_config(f"{settings.app_id}-read-{uuid.uuid4().hex[:6]}"))


def end_offsets(settings: Settings, base: str) -> dict[int, int]:
    """partition -> high watermark of the prefixed topic ``base``."""
    topic = Topics(settings.topic_prefix).name(base)
    consumer = _consumer(settings)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
                return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                        for p in partitions}
            except KafkaException:
                # Fresh topics can briefly answer NOT_LEADER while leadership settles.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # bounded retry of a real broker condition
    finally:
        consumer.close()


def count(settings: Settings, base: str) -> int:
    """Messages on the prefixed topic ``base``."""
    return sum(end_offsets(settings, base).values())


def all_topic_counts(settings: Settings) -> dict[str, int]:
    """Message count of every topic of the test's prefix (raw, enriched, internal, dead-letter)."""
    prefix = settings.topic_prefix
    return {name[len(prefix):]: count(settings, name[len(prefix):]) for name in Topics(prefix).all()}


def read_all(settings: Settings, base: str, *, at_least: int = 0, timeout: float = 60.0) -> list[Consumed]:
    """Every message of topic ``base`` up to its end offsets (waiting for ``at_least``)."""
    topic = Topics(settings.topic_prefix).name(base)
    deadline = time.monotonic() + timeout
    ends = end_offsets(settings, base)
    while sum(ends.values()) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the broker's end offsets for a condition, with a deadline
        ends = end_offsets(settings, base)
    out: list[Consumed] = []
    wanted = {p: end for p, end in ends.items() if end > 0}
    if not wanted:
        return out
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
        while wanted and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = msg.value() or b""
            name, record = decode(value)
            key = msg.key()
            partition, offset = msg.partition() or 0, msg.offset() or 0
            out.append(Consumed(key.decode() if key else None, partition, value, name, record))
            if offset + 1 >= wanted.get(partition, 0):
                wanted.pop(partition, None)
    finally:
        consumer.close()
    assert not wanted, f"could not read {topic} up to its end offsets within {timeout}s"
    return out
