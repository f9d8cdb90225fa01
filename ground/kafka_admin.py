"""Creating leadstream's topics on the broker.

Raw topics are the source of truth (docs/architecture.md, principle 1), so nothing here ever
expires them: ``retention.ms=-1``. Creation is idempotent: an existing topic is kept.
"""

from __future__ import annotations

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ground.settings import Settings
from ground.topics import Topics

__all__ = ["consumer_lag", "create_topics", "delete_topics"]

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def create_topics(settings: Settings, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, str]:
    """Create the prefixed topics; returns name -> "created" | "exists"."""
    names = names if names is not None else Topics(settings.topic_prefix).all()
    admin = AdminClient(settings.kafka_common_config())
    new = [
        NewTopic(n, num_partitions=settings.topic_partitions,
                 replication_factor=settings.topic_replication, config=TOPIC_CONFIG)
        for n in names
    ]
    status: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            status[name] = "created"
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
            status[name] = "exists"
    _await_metadata(admin, names, timeout)
    return status


def _await_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Block until every topic has leaders for all partitions (creation is async)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=5)
        ready = all(
            n in md.topics and md.topics[n].error is None and md.topics[n].partitions
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        )
        if ready:
            return
        time.sleep(0.1)  # metadata propagation poll


def delete_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> None:
    admin = AdminClient(settings.kafka_common_config())
    for future in admin.delete_topics(names, request_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise


def consumer_lag(settings: Settings, group: str, topics: list[str], timeout: float = 10.0) -> int:
    """Messages of ``topics`` that consumer group ``group`` has not committed yet.

    A partition the group never committed counts from its low watermark, so a group
    that has not started yet shows everything as lag.
    """
    admin = AdminClient(settings.kafka_common_config())
    metadata = admin.list_topics(timeout=timeout)
    partitions = [TopicPartition(t, p) for t in topics if t in metadata.topics
                  for p in metadata.topics[t].partitions]
    if not partitions:
        return 0
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in admin.list_consumer_group_offsets(request, request_timeout=timeout)[group]
        .result(timeout=timeout).topic_partitions
    }
    probe = Consumer(settings.kafka_consumer_config(f"{group}-lag-probe"))
    try:
        lag = 0
        for tp in partitions:
            low, high = probe.get_watermark_offsets(tp, timeout=timeout)
            done = committed.get((tp.topic, tp.partition), -1)
            lag += max(high - (done if done >= 0 else low), 0)
        return lag
    finally:
        probe.close()
