"""Collector limits on a real server: the per-client 429 path and several worker processes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.processes import collector_process
from tests.support.capture import read_all

pytestmark = pytest.mark.integration


def _beacon() -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "anonymous_id": "a1", "type": "page_view", "url": "https://example.com/"}


def test_rate_limit_answers_429_with_retry_after_and_counts_it(topics: Settings) -> None:
    """Burst 5 at 0.2/s: 5 accepted, then 429 + Retry-After; /healthz is never limited."""
    env = (("LEADSTREAM_RATE_LIMIT_PER_SECOND", "0.2"), ("LEADSTREAM_RATE_LIMIT_BURST", "5"))
    with collector_process(topics, *env) as url:
        statuses = [httpx.post(f"{url}/collect", json=_beacon(), timeout=10) for _ in range(8)]
        assert [r.status_code for r in statuses] == [200] * 5 + [429] * 3
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert all(httpx.get(f"{url}/healthz", timeout=10).status_code == 200 for _ in range(20))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'leadstream_rejected_total{reason="rate_limited"} 3.0' in metrics
    assert len(read_all(topics, "touches", at_least=5)) == 5


def test_rate_limit_is_off_by_default(topics: Settings) -> None:
    """Without the setting, 30 quick requests from one client are all accepted."""
    with collector_process(topics) as url:
        assert {httpx.post(f"{url}/collect", json=_beacon(), timeout=10).status_code for _ in range(30)} == {200}


def test_two_worker_processes_serve_one_port(topics: Settings) -> None:
    """`leadstream collector --workers 2`: every accepted event reaches Kafka once."""
    with collector_process(topics, workers=2) as url:
        ids = []
        with httpx.Client(timeout=10) as client:
            for _ in range(40):
                beacon = _beacon()
                ids.append(beacon["event_id"])
                assert client.post(f"{url}/collect", json=beacon, headers={"Connection": "close"}).status_code == 200
    found = read_all(topics, "touches", at_least=40)
    assert sorted(str(m.record["event_id"]) for m in found) == sorted(ids)
