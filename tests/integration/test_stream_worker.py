"""One real worker process: bad input is dead-lettered and the pipeline keeps going.

Also the walking skeleton's stream step: a Google CPC page view of an anonymous visitor
is classified, emitted as an enriched touch, and becomes the first touch of the contact
an identify links it to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from ground.settings import Settings
from ground.topics import Topics
from leadstream.testing.harness import WorkerProcess, delete_worker_topics, read_latest, wait_idle
from schemas.codec import encode

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> Iterator[None]:
    """Leave the shared broker as we found it: the test's topics and its changelogs go."""
    yield
    delete_worker_topics(topics)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _touch(anon: str | None, contact: str | None, t: int, **extra: object) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "event_time": t, "received_at": t, "anonymous_id": anon,
            "contact_id": contact, "touch_type": "page_view", **extra}


def test_bad_events_are_dead_lettered_and_good_ones_flow(topics: Settings, tmp_path: Path) -> None:
    """Garbage, a touch naming nobody, a wrong record type and a mis-keyed touch go to dead-letter;
    the valid touch and identify after them still produce the enriched touch, contact and link."""
    settings = topics
    names = Topics(settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path / "w0").start()
    try:
        worker.wait_ready()
        producer = Producer(settings.kafka_producer_config())
        garbage = b"\x00not avro at all"
        identify = {"event_id": str(uuid.uuid4()), "event_time": T0 + 60_000, "received_at": T0 + 60_000,
                    "anonymous_id": "anon-1", "contact_id": "contact-1"}
        producer.produce(names.touches, key=b"anon-x", value=garbage)
        producer.produce(names.touches, key=b"nobody", value=encode("Touch", _touch(None, None, T0)))
        producer.produce(names.touches, key=b"anon-1", value=encode("Identify", identify))
        producer.produce(names.touches, key=b"wrong-key", value=encode("Touch", _touch("anon-2", None, T0)))
        good = _touch("anon-1", None, T0, url="https://www.leadstream.example/?utm_source=google&utm_medium=cpc",
                      utm_source="google", utm_medium="cpc")
        producer.produce(names.touches, key=b"anon-1", value=encode("Touch", good))
        producer.produce(names.identities, key=b"anon-1", value=encode("Identify", identify))
        assert producer.flush(30) == 0
        wait_idle(settings, timeout=300, quiet=3.0, workers=[worker])
        assert worker.alive()
    finally:
        worker.stop()

    dead = read_latest(settings, "dead-letter", "failed_at", key_field="event_id")
    reasons = sorted(d["reason"] for d in dead.values())
    assert len(reasons) == 4, reasons
    assert any(r.startswith("undecodable") for r in reasons)
    assert any("neither anonymous_id nor contact_id" in r for r in reasons)
    assert any("unexpected record Identify" in r for r in reasons)
    assert any(r.startswith("keyed by b'wrong-key'") for r in reasons)
    for d in dead.values():
        assert d["origin_topic"] == names.touches and d["origin_offset"] is not None and d["stage"] == "identity"
    assert any(d["payload"] == garbage for d in dead.values())

    touches = read_latest(settings, "enriched-touches", "processed_at", key_field="event_id")
    enriched = touches[str(good["event_id"])]
    assert (enriched["channel"], enriched["source"]) == ("Paid Search", "google")
    assert enriched["taxonomy_version"]
    contact = read_latest(settings, "enriched-contacts", "version")["contact-1"]
    assert contact["first_touch_event_id"] == good["event_id"]
    assert (contact["lead_channel"], contact["lead_source"]) == ("Paid Search", "google")
    assert contact["anonymous_ids"] == ["anon-1"]
    assert contact["created_at"] == T0 + 60_000
    link = read_latest(settings, "identity-map", "version")["anon-1"]
    assert link["canonical_contact_id"] == "contact-1"
