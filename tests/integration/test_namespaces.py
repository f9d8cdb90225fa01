"""Namespaces: two deployments on one broker, told apart only by LEADSTREAM_TOPIC_PREFIX.

Both keep the default LEADSTREAM_APP_ID, which once made them share the worker's
consumer group and changelog topics (the second recovered the first one's state and
took its own events for already seen). Fed the same dataset, each must reach exactly
the oracle's state and reports on its own; and a worker refuses state that belongs to
another namespace or to topics that were recreated.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, delete_worker_topics, end_offsets, produce, wait_idle
from leadstream.testing.processes import leadstream_cmd, settings_env
from streams.state_owner import MARKER, StateOwnerError, claim_state_dir
from streams.worker import worker_datadir
from tests.integration.test_stream_oracle import _compare, _compare_reports
from tests.oracle.generator import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def two(settings: Settings) -> Iterator[tuple[Settings, Settings]]:
    """Two namespaces (prefixes) with the same, default app id and their own databases."""
    base = settings.topic_prefix.rstrip("-")
    pair = tuple(settings.model_copy(update={"topic_prefix": f"{base}{tag}-", "app_id": "ls",
                                             "clickhouse_database": f"ls_{base}{tag}"}) for tag in ("a", "b"))
    for s in pair:
        create_topics(s)
    yield pair  # type: ignore[misc]
    for s in pair:
        delete_worker_topics(s)


def test_two_namespaces_on_one_broker_are_independent(two: tuple[Settings, Settings], tmp_path: Path) -> None:
    """Same dataset into both: each namespace's state and reports equal the oracle."""
    arrivals = generate(7, contacts=300, touches=3000, deals=60, merges=5).arrival(seed=3, duplicate_rate=0.05,
                                                                                    out_of_order=0.25)
    first, second = two
    shared = [f"ls-{t}-changelog" for t in ("anon", "contact", "deal")]
    admin = AdminClient(first.kafka_common_config())
    before = set(admin.list_topics(timeout=10).topics)
    # a deployment with the default, empty prefix may already use these names on this broker
    shared_before = end_offsets(first, [t for t in shared if t in before])
    assert first.stream_app_id != second.stream_app_id and first.sink_group_id != second.sink_group_id
    for s in two:
        produce(s, arrivals)
    workers = [WorkerProcess(s, tmp_path / s.topic_prefix.rstrip("-"), "0").start() for s in two]
    try:
        for w in workers:
            w.wait_ready()
        for s, w in zip(two, workers, strict=True):
            wait_idle(s, timeout=600, workers=[w])
    finally:
        for w in workers:
            w.stop()
    existing = set(admin.list_topics(timeout=10).topics)
    for s in two:  # each namespace has its own changelogs ...
        assert {f"{s.topic_prefix}{t}" for t in shared} <= existing
    # ... and neither created nor wrote the un-namespaced ones the shared default app id used to name
    assert not (set(shared) & existing) - before
    assert end_offsets(first, [t for t in shared if t in before]) == shared_before
    for s in two:
        result = _compare(s, arrivals)
        assert result.contacts >= 250 and result.mismatches == [], "\n".join(result.mismatches[:20])
        problems = _compare_reports(s, arrivals)
        assert problems == [], "\n".join(problems[:20])


def test_worker_refuses_state_of_another_namespace(settings: Settings, tmp_path: Path) -> None:
    """A state directory marked for another namespace: the worker exits 2 with a sentence."""
    create_topics(settings)
    try:
        datadir = worker_datadir(settings.data_dir, settings.stream_app_id, "0")
        datadir.mkdir(parents=True)
        (datadir / MARKER).write_text(json.dumps({"namespace": "other-ls", "topics": {}}))
        proc = subprocess.run(leadstream_cmd("worker", "--no-create-topics"), env=settings_env(settings),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "holds the stream state of namespace 'other-ls'" in proc.stderr
    finally:
        delete_worker_topics(settings)


def test_recreated_topic_is_detected(settings: Settings, tmp_path: Path) -> None:
    """Delete and recreate `touches` after the state was claimed: the next claim refuses."""
    create_topics(settings)
    try:
        datadir = tmp_path / "state"
        claim_state_dir(datadir, settings)
        claim_state_dir(datadir, settings)  # same topics: accepted again
        touches = f"{settings.topic_prefix}touches"
        delete_topics(settings, [touches])
        create_topics(settings, [touches])
        with pytest.raises(StateOwnerError, match="was deleted and recreated"):
            claim_state_dir(datadir, settings)
    finally:
        delete_worker_topics(settings)
