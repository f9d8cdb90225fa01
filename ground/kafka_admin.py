"""Creating leadstream's topics on the broker.

Raw topics are the source of truth (docs/architecture.md, principle 1), so nothing here ever
expires them: ``retention.ms=-1``. Creation is idempotent: an existing topic is kept.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ground.settings import Settings
from ground.topics import Topics

__all__ = ["create_topics", "delete_topics"]

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
