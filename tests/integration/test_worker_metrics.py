"""The stream worker's Prometheus exporter: counters per stage, readiness, lag per partition."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, produce, wait_idle
from leadstream.testing.processes import free_port
from leadstream.testing.waiting import wait_for
from tests.oracle.generator import generate

pytestmark = [pytest.mark.integration]


def _value(text: str, metric: str) -> float:
    found = re.search(rf"^{re.escape(metric)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{metric} missing from:\n{text[:2000]}"
    return float(found.group(1))


def test_a_worker_exposes_its_stages_readiness_and_lag(topics: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = topics.model_copy(update={"worker_metrics_port": port})
    data = generate(17, contacts=60, touches=400, deals=20, merges=3)
    arrivals = data.arrival(seed=1, duplicate_rate=0.0, out_of_order=0.0)
    worker = WorkerProcess(settings, tmp_path, "0").start()
    try:
        worker.wait_ready()
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _value(httpx.get(url).text, "leadstream_worker_ready") == 1.0, 60, "ready in the metrics")
        produce(settings, arrivals)
        wait_idle(settings, timeout=300, workers=[worker])
        wait_for(lambda: _value(httpx.get(url).text, 'leadstream_worker_events{stage="identity"}') >= 400, 60,
                 "the identity stage's events")
        text = httpx.get(url).text
    finally:
        worker.stop()
    touches = sum(1 for topic, _, _ in arrivals if topic in ("touches", "identities"))
    assert _value(text, 'leadstream_worker_events{stage="identity"}') == touches
    assert _value(text, 'leadstream_worker_events{stage="deal"}') >= sum(1 for t, _, _ in arrivals if t == "deals")
    assert _value(text, 'leadstream_worker_batches{stage="contact"}') >= 1
    assert _value(text, 'leadstream_worker_batch_seconds{stage="identity"}') > 0
    assert _value(text, "leadstream_worker_outputs") > touches
    assert _value(text, 'leadstream_worker_dead_letters{stage="identity"}') == 0
    lags = re.findall(rf'^leadstream_worker_consumer_lag{{partition="\d+",topic="{topics.topic_prefix}touches"}} '
                      r"([0-9.]+)$", text, re.MULTILINE)
    assert len(lags) == settings.topic_partitions, text[-3000:]
