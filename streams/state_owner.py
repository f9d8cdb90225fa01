"""Which namespace and which topics a worker's local RocksDB state belongs to.

A worker's tables are a cache of its changelog topics, valid only for the namespace and
the very topics they were built from. Started on another namespace's directory, or
after its input topics were deleted and recreated (same names, new data), the cache
would be silently wrong: the worker would treat new events as already seen. So the
state directory carries a small marker, checked before Faust opens anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient

from ground.errors import LeadstreamError
from ground.settings import Settings
from ground.topics import INTERNAL_TOPICS, RAW_TOPICS, Topics

__all__ = ["MARKER", "StateOwnerError", "claim_state_dir"]

MARKER = "OWNER.json"


class StateOwnerError(LeadstreamError):
    """The local state directory belongs to another namespace or to recreated topics."""


def _topic_ids(settings: Settings, names: list[str], timeout: float = 15.0) -> dict[str, str]:
    admin = AdminClient(settings.kafka_common_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described = admin.describe_topics(TopicCollection(wanted), request_timeout=timeout)
    return {name: str(future.result(timeout=timeout).topic_id) for name, future in described.items()}


def claim_state_dir(datadir: Path, settings: Settings) -> None:
    """Refuse a state directory of another namespace or of recreated topics; mark it ours."""
    topics = Topics(settings.topic_prefix)
    ids = _topic_ids(settings, [topics.name(t) for t in (*RAW_TOPICS, *INTERNAL_TOPICS)])
    marker = datadir / MARKER
    namespace = settings.stream_app_id
    recorded: dict[str, str] = {}
    if marker.exists():
        data = json.loads(marker.read_text())
        if data.get("namespace") != namespace:
            raise StateOwnerError(
                f"{datadir} holds the stream state of namespace {data.get('namespace')!r}, not {namespace!r} "
                "(LEADSTREAM_TOPIC_PREFIX + LEADSTREAM_APP_ID): give this worker its own --data-dir or --id")
        recorded = dict(data.get("topics", {}))
        for name, topic_id in recorded.items():
            if name in ids and ids[name] != topic_id:
                raise StateOwnerError(
                    f"topic {name} was deleted and recreated since {datadir} was built (topic id {topic_id}, "
                    f"now {ids[name]}): its local state no longer matches; delete {datadir} (and the "
                    f"{namespace}-*-changelog topics to start from nothing) before starting the worker")
    datadir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"namespace": namespace, "topics": {**recorded, **ids}}, indent=1))
