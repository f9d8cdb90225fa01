"""The raw-topic rewrite of ``leadstream erase --apply``, interrupted at its two dangerous points.

An interruption must never lose a record that is not the subject's: a copy that was never
verified is discarded (the original was not touched), a verified copy (its marker file
written) replaces the original even when the original is already gone or half copied back.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ground.settings import Settings
from leadstream.raw_rewrite import _DROP, COPY_SUFFIX, _copy, _create, _delete, _marker, rewrite_raw
from leadstream.testing.harness import produce
from producers.erasure_requests import Subject, publish_requests
from tests.support.capture import read_all

pytestmark = [pytest.mark.integration]


def _touch(anonymous_id: str, n: int) -> tuple[str, str, dict[str, object]]:
    return ("touches", anonymous_id, {
        "event_id": str(uuid.uuid4()), "event_time": 1_750_000_000_000 + n, "received_at": 1_750_000_000_000 + n,
        "anonymous_id": anonymous_id, "contact_id": None, "touch_type": "page_view",
        "url": f"https://example.com/p{n}", "referrer": None, "utm_source": "google", "utm_medium": "cpc",
        "utm_campaign": None, "utm_term": None, "utm_content": None, "click_ids": {}, "page_title": None,
        "user_agent": None, "is_bot": False, "properties": {}})


def _world(settings: Settings) -> int:
    """Touches of 20 visitors, 5 of them the subject's; the erasure request. Returns the others' count."""
    arrivals = [_touch("a-subject" if n % 4 == 0 else f"a-{n}", n) for n in range(20)]
    produce(settings, arrivals)
    publish_requests(settings, [Subject("someone", {"c-subject"}, {"a-subject"})])
    return sum(1 for _, key, _ in arrivals if key != "a-subject")


def _anonymous_ids(settings: Settings, at_least: int) -> list[str]:
    return [str(m.record["anonymous_id"]) for m in read_all(settings, "touches", at_least=at_least)]


def test_an_unverified_copy_is_discarded_and_the_rewrite_done_again(topics: Settings, tmp_path: Path) -> None:
    settings = topics.model_copy(update={"data_dir": tmp_path})
    others = _world(settings)
    copy = settings.topic_prefix + "touches" + COPY_SUFFIX
    _create(settings, copy, settings.topic_partitions, {}, 30)  # left by a run killed during the first copy
    [done] = [r for r in rewrite_raw(settings) if r.topic.endswith("touches")]
    assert done.rewritten and done.dropped == 5
    kept = _anonymous_ids(settings, others)
    assert len(kept) == others and "a-subject" not in kept
    assert copy not in AdminClient(settings.kafka_common_config()).list_topics(timeout=10).topics


def test_a_verified_copy_replaces_an_original_already_deleted(topics: Settings, tmp_path: Path) -> None:
    settings = topics.model_copy(update={"data_dir": tmp_path})
    others = _world(settings)
    name = settings.topic_prefix + "touches"
    copy = name + COPY_SUFFIX
    # the state a run killed right after deleting the original leaves: a verified copy, its marker
    _create(settings, copy, settings.topic_partitions, {}, 30)
    written = _copy(settings, name, copy, lambda m: m.value() if m.key() != b"a-subject" else _DROP, 30)
    marker = _marker(settings, copy)
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"topic": name, "partitions": settings.topic_partitions, "written": written}))
    _delete(settings, name, 30)
    [done] = [r for r in rewrite_raw(settings) if r.topic == name]
    assert done.rewritten
    kept = _anonymous_ids(settings, others)
    assert len(kept) == others and "a-subject" not in kept
    assert not marker.exists()
