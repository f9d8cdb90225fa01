"""Creating leadstream's topics on the broker, and measuring how far a group lags.

Raw topics are the source of truth (docs/architecture.md, principle 1), so by default
nothing expires them: ``retention.ms=-1``. ``LEADSTREAM_RAW_RETENTION_DAYS`` bounds the
raw topics only (a privacy or storage choice, see the README: a reprocessing can then
rebuild only what is still retained); derived topics never expire. Creation is
idempotent: an existing topic is kept, and its retention is brought in line with the
settings.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from ground.settings import Settings
from ground.topics import ERASURES, RAW_TOPICS, Topics

__all__ = ["consumer_lag", "create_topics", "delete_topics", "partition_lag", "topic_config"]

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def topic_config(settings: Settings, name: str) -> dict[str, str]:
    """The configuration leadstream gives topic ``name``: raw topics get the raw retention."""
    topics = Topics(settings.topic_prefix)
    if name in {topics.name(t) for t in RAW_TOPICS}:
        return {**TOPIC_CONFIG, "retention.ms": str(settings.raw_retention_ms)}
    if name == topics.name(ERASURES):  # one record per request and step: the latest is what counts
        return {**TOPIC_CONFIG, "cleanup.policy": "compact"}
    return dict(TOPIC_CONFIG)


def create_topics(settings: Settings, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, str]:
    """Create the prefixed topics; returns name -> "created" | "exists" | "exists, retention updated"."""
    names = names if names is not None else Topics(settings.topic_prefix).all()
    admin = AdminClient(settings.kafka_common_config())
    new = [
        NewTopic(n, num_partitions=settings.topic_partitions,
                 replication_factor=settings.topic_replication, config=topic_config(settings, n))
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
    for name in [n for n, state in status.items() if state == "exists"]:
        if _align_retention(admin, name, topic_config(settings, name)["retention.ms"], timeout):
            status[name] = "exists, retention updated"
    return status


def _align_retention(admin: AdminClient, name: str, retention_ms: str, timeout: float) -> bool:
    """Set ``retention.ms`` of an existing topic when it differs; True when it changed."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    current = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout)
    if current["retention.ms"].value == retention_ms:
        return False
    change = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", retention_ms, incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([change], request_timeout=timeout)[change].result(timeout=timeout)
    # the controller has it; the broker that answers describe may apply it a moment later
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout)
        if described["retention.ms"].value == retention_ms:
            break
        time.sleep(0.1)  # config propagation poll
    return True


def _await_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Block until every topic has leaders for all partitions (creation is async)."""

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
    return sum(partition_lag(settings, group, topics, timeout).values())


def partition_lag(settings: Settings, group: str, topics: list[str],
                  timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """(topic, partition) -> messages the group has not committed yet (see :func:`consumer_lag`)."""
    admin = AdminClient(settings.kafka_common_config())
    metadata = admin.list_topics(timeout=timeout)
    partitions = [TopicPartition(t, p) for t in topics if t in metadata.topics
                  for p in metadata.topics[t].partitions]
    if not partitions:
        return {}
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in admin.list_consumer_group_offsets(request, request_timeout=timeout)[group]
        .result(timeout=timeout).topic_partitions
    }
    probe = Consumer(settings.kafka_consumer_config(f"{group}-lag-probe"))
    try:
        lag = {}
        for tp in partitions:
            low, high = probe.get_watermark_offsets(tp, timeout=timeout)
            done = committed.get((tp.topic, tp.partition), -1)
            lag[(tp.topic, tp.partition)] = max(high - (done if done >= 0 else low), 0)
        return lag
    finally:
        probe.close()
