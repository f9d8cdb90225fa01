"""Scenario 1: ``kill -9`` of the worker and of the sink at seeded random moments.

Per seed: a dataset of that seed (200,000 arrivals at full scale, 5% duplicates, 25% out
of order) is produced at a steady rate while one worker and one sink run as processes.
A seeded plan kills the worker and the sink (alternating in a seeded order) when the
worker has consumed seeded random fractions of the stream; each victim is restarted at
once, as a supervisor would. When everything settled, ClickHouse must hold exactly the
produced distinct touches, every live contact's and deal's latest state as the oracle
computes it, and every report must equal the oracle's (accounting.py); the negative
controls prove that check able to fail. Recovery time: from the kill until the victim's
consumer group commits again (the restarted worker waits out the killed member's 20 s
session, the sink librdkafka's default 45 s).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, delete_worker_topics
from sinks.sink import SINK_TOPICS
from tests.chaos.load import ArrivalProducer
from tests.chaos.pipeline import arrivals, assert_exact, record, settle, sink_group, verify
from tests.chaos.progress import RAW_TOPICS, Committed
from tests.chaos.results import Table
from tests.chaos.scale import Scale, current
from tests.chaos.sink_process import SinkProcess

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

PRODUCE_RATE = 1500.0  # arrivals per second: faster than one worker, so a backlog builds


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> object:
    yield
    delete_worker_topics(topics)


def kill_plan(seed: int, kills: int) -> list[tuple[str, float]]:
    """(victim, fraction of the stream the worker has consumed when it dies), in order."""
    rng = random.Random(seed)
    victims = ["worker", "sink"] * (kills // 2) + ["worker"] * (kills % 2)
    rng.shuffle(victims)
    moments = sorted(rng.uniform(0.1, 0.85) for _ in victims)
    return list(zip(victims, moments, strict=True))


@pytest.mark.parametrize("seed", current().kill_seeds)
def test_kill_9_worker_and_sink_at_random_moments(seed: int, topics: Settings, tmp_path: Path, scale: Scale,
                                                  chaos_results: Table) -> None:
    started = time.monotonic()
    settings = topics
    events = arrivals(seed, scale.kill_dataset, arrival_seed=100 + seed)
    plan = kill_plan(seed, scale.kills)
    worker_dir = tmp_path / "w0"
    worker = WorkerProcess(settings, worker_dir, "0").start()
    sink = SinkProcess(settings, tmp_path / "sink").start()
    consumed = Committed(settings, settings.stream_app_id, RAW_TOPICS)
    sunk = Committed(settings, sink_group(settings), SINK_TOPICS)
    producer = ArrivalProducer(settings, events, PRODUCE_RATE)
    recovery: list[float] = []
    notes: list[str] = []

    def alive() -> None:
        assert worker.alive(), f"the worker died: {worker.log_tail()}"
        assert sink.alive(), f"the sink died: {sink.log_tail()}"

    try:
        worker.wait_ready()
        sink.wait_ready()
        producer.start()
        todo = list(plan)
        pending: list[tuple[str, float, float, int, Committed]] = []  # victim, fraction, killed at, before, probe
        deadline = time.monotonic() + 1800
        while todo or pending:
            alive()
            assert time.monotonic() < deadline, f"kills {todo} / recoveries {pending} did not happen"
            for item in list(pending):
                victim, fraction, killed, before, probe = item
                # back at work: it commits past where it stood (or there was nothing left to do)
                if probe.committed() > before or (producer.finished_at and probe.lag() == 0):
                    pending.remove(item)
                    recovery.append(time.monotonic() - killed)
                    notes.append(f"kill -9 {victim} at {fraction:.0%} of the stream: committing again after "
                                 f"{recovery[-1]:.1f}s")
            if todo and consumed.committed() >= todo[0][1] * len(events):
                victim, fraction = todo.pop(0)
                probe = consumed if victim == "worker" else sunk
                before = probe.committed()
                if victim == "worker":
                    worker.kill()
                    worker = WorkerProcess(settings, worker_dir, "0").start()
                else:
                    sink.kill()
                    sink.start()
                pending.append((victim, fraction, time.monotonic(), before, probe))
            time.sleep(0.2)  # polling the groups' commits
        acknowledged = producer.acknowledged()
        assert len(acknowledged) == len(events), producer.failures[:5]
        settle(settings, [worker], sink)
        outcome = verify(settings, sink, acknowledged)
    finally:
        consumed.close()
        sunk.close()
        sink.stop()
        worker.stop()
    record(chaos_results, f"1 kill -9 seed {seed}", outcome, events=len(events), recovery=recovery, started=started,
           notes=notes)
    assert_exact(outcome)
