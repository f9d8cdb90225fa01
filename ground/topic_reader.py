"""Reading a whole topic once, from offset 0 to the end it had when the read began.

Erasures and the subjects they resolve are read this way, by consumers of no group
that commit nothing: a read must see every record, and must finish even while
producers keep appending (what arrives after the start is left for the next read).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from ground.errors import LeadstreamError

__all__ = ["assign_from_start", "messages_since", "read_to_end"]


def assign_from_start(consumer: Consumer, topic: str, timeout: float) -> dict[int, int]:
    """Assign every partition of ``topic`` from offset 0; partition -> its end offset now,
    for the partitions that hold anything (a missing topic holds nothing)."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    parts = sorted(metadata.partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in parts}
    return {p: end for p, end in ends.items() if end > 0}


def read_to_end(consumer: Consumer, topic: str, handle: Callable[[Message], object], timeout: float,
                progress: Callable[[int, int], None] | None = None) -> int:
    """Hand every message of ``topic`` up to its current end to ``handle``; how many.

    ``timeout`` bounds the time without progress, not the whole read; ``progress`` is
    called with (messages read, messages to read) every 10,000 messages.
    """
    todo = assign_from_start(consumer, topic, timeout)
    total = sum(todo.values())  # an upper bound: compaction and retention leave gaps
    done, deadline = 0, time.monotonic() + timeout
    while todo:
        batch = consumer.consume(num_messages=1000, timeout=0.5)
        if not batch and time.monotonic() > deadline:
            raise LeadstreamError(f"could not read {topic} to its end: no message for {timeout:.0f}s")
        for msg in batch:
            if msg.error() is not None:
                continue
            deadline = time.monotonic() + timeout
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            if partition not in todo:
                continue
            handle(msg)
            done += 1
            if progress is not None and done % 10_000 == 0:
                progress(done, total)
            if offset + 1 >= todo[partition]:
                todo.pop(partition)
    return done


def messages_since(consumer: Consumer, topics: list[str], since_ms: int, timeout: float) -> dict[str, int]:
    """topic -> how many of its messages carry a timestamp at or after ``since_ms`` (missing topics: 0).

    From the broker's time index (``offsets_for_times``): no message is read.
    """
    counts: dict[str, int] = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            counts[topic] = 0
            continue
        asked = [TopicPartition(topic, p, since_ms) for p in sorted(metadata.partitions)]
        total = 0
        for found in consumer.offsets_for_times(asked, timeout=timeout):
            high = consumer.get_watermark_offsets(TopicPartition(topic, found.partition), timeout=timeout)[1]
            total += 0 if found.offset < 0 else max(0, high - found.offset)
        counts[topic] = total
    return counts

