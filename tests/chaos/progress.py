"""Watching a consumer group make progress: how recovery time is measured.

A fault's recovery time is the time from the fault until the affected consumer group
commits past where it stood when the fault struck (the stage is working again). The
probe keeps one client, so polling it every fraction of a second is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from ground.settings import Settings
from ground.topics import Topics

__all__ = ["RAW_TOPICS", "Committed", "wait_until"]

RAW_TOPICS = ("touches", "identities", "contacts", "deals")


def wait_until(condition: Callable[[], bool], what: str, timeout: float, interval: float = 0.25,
               alive: Callable[[], None] | None = None) -> float:
    """Poll a real condition; returns the seconds waited, fails with ``what`` at the deadline.

    ``alive`` is called every round and raises when a process the condition depends on died.
    """
    start = time.monotonic()
    while True:
        if alive is not None:
            alive()
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Committed:
    """Committed offsets and end offsets of one group on some topics."""

    def __init__(self, settings: Settings, group_id: str, bases: Sequence[str]) -> None:
        names = [Topics(settings.topic_prefix).name(b) for b in bases]
        metadata = AdminClient(settings.kafka_common_config()).list_topics(timeout=30)
        self.partitions = [TopicPartition(n, p) for n in names if n in metadata.topics
                           for p in metadata.topics[n].partitions]
        self.consumer = Consumer(settings.kafka_consumer_config(group_id))

    def committed(self) -> int:
        """Sum of the group's committed offsets (0 where it never committed); -1 if unreachable."""
        try:
            offsets = self.consumer.committed([TopicPartition(tp.topic, tp.partition) for tp in self.partitions],
                                              timeout=10)
        except Exception:  # the coordinator may be moving (a broker failure is the scenario)
            return -1
        return sum(max(tp.offset, 0) for tp in offsets)

    def ends(self) -> int:
        total = 0
        for tp in self.partitions:
            total += self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
        return total

    def lag(self) -> int:
        done = self.committed()
        return -1 if done < 0 else max(0, self.ends() - done)

    def close(self) -> None:
        self.consumer.close()
