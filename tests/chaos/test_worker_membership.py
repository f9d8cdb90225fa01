"""Scenario 6: workers join and leave three times mid-stream; one loses its RocksDB meanwhile.

A seeded dataset is produced at a steady rate for the whole scenario while the worker
group changes every few seconds: worker 1 joins, worker 2 joins, worker 1 leaves and its
RocksDB directory is deleted, worker 0 leaves, worker 1 comes back with no local state,
worker 2 leaves. No standby replicas: every partition that moves is rebuilt from its
changelog. When everything settled, the worker's outputs sunk into ClickHouse must equal
the oracle: every touch once, every live contact's and deal's latest state, every report.
Recovery time: from a membership change until the group commits again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, delete_worker_topics
from tests.chaos.load import ArrivalProducer
from tests.chaos.pipeline import arrivals, assert_exact, record, settle, verify
from tests.chaos.progress import RAW_TOPICS, Committed
from tests.chaos.results import Table
from tests.chaos.scale import Scale
from tests.chaos.sink_process import SinkProcess

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

#: (action, worker id); one step every STEP_SECONDS while the stream flows
STEPS = [("add", "1"), ("add", "2"), ("remove+wipe", "1"), ("remove", "0"), ("add", "1"), ("remove", "2")]


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> object:
    yield
    delete_worker_topics(topics)


def test_workers_join_and_leave_and_state_comes_back_from_changelogs(topics: Settings, tmp_path: Path,
                                                                     scale: Scale, chaos_results: Table) -> None:
    started = time.monotonic()
    settings = topics
    events = arrivals(61, scale.dataset)
    step_seconds = 10.0 if scale.name == "short" else 20.0
    # the stream lasts longer than the schedule, so every change happens mid-stream
    rate = len(events) / (step_seconds * (len(STEPS) + 3))
    sink = SinkProcess(settings, tmp_path / "sink").start()
    workers = {"0": WorkerProcess(settings, tmp_path / "w0", "0").start()}
    committed = Committed(settings, settings.stream_app_id, RAW_TOPICS)
    producer = ArrivalProducer(settings, events, rate)
    recovery: list[float] = []
    notes: list[str] = []
    try:
        workers["0"].wait_ready()
        sink.wait_ready()
        producer.start()
        for action, wid in STEPS:
            time.sleep(step_seconds)  # the schedule: one membership change per step
            for w in workers.values():
                assert w.alive(), f"worker {w.worker_id} died: {w.log_tail()}"
            before = committed.committed()
            changed = time.monotonic()
            if action == "add":
                workers[wid] = WorkerProcess(settings, tmp_path / f"w{wid}", wid).start()
                workers[wid].wait_ready(timeout=300)
            else:
                workers.pop(wid).stop()
                if action == "remove+wipe":
                    shutil.rmtree(tmp_path / f"w{wid}" / "streams")
            deadline = time.monotonic() + 300
            while committed.committed() <= before and not (producer.finished_at and committed.lag() == 0):
                assert time.monotonic() < deadline, f"no commit for 300 s after {action} worker {wid}"
                time.sleep(0.2)  # polling the group's commits
            recovery.append(time.monotonic() - changed)
            notes.append(f"{action} worker {wid} ({len(workers)} running, {producer.sent} of {len(events)} "
                         f"produced): committing again after {recovery[-1]:.1f}s")
        acknowledged = producer.acknowledged()
        assert len(acknowledged) == len(events), producer.failures[:5]
        settle(settings, list(workers.values()), sink)
        outcome = verify(settings, sink, acknowledged)
    finally:
        committed.close()
        sink.stop()
        for w in workers.values():
            w.stop()
    record(chaos_results, "6 workers join/leave", outcome, events=len(events), recovery=recovery, started=started,
           notes=notes)
    assert_exact(outcome)
