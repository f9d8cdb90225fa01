"""Scenario 2: the sink crashes before, between, during and after its inserts, before the commit.

One worker turns a seeded dataset (duplicates, out-of-order arrival) into enriched
records while the sink is started through ``faulty_sink.py``, which ends the process
(status 137) at one chosen point of its insert/commit cycle; the next sink starts at once,
faulty again until every crash point was hit, then the real ``leadstream sink``. When
everything settled, ClickHouse must hold every produced touch once, every live contact's
and deal's latest state as the oracle computes it, ``lead_counts`` must count each live
contact once, and every report must equal the oracle's.

Negative controls: the check on damaged copies of the snapshot (see accounting.py), and
an unsafe sink that commits a batch's offsets before inserting it, then crashes: the same
check must find those rows lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, delete_worker_topics, produce
from sinks.sink import SINK_TOPICS
from tests.chaos.pipeline import arrivals, assert_exact, record, settle, sink_group, verify
from tests.chaos.progress import Committed
from tests.chaos.results import Table
from tests.chaos.scale import Scale
from tests.chaos.sink_process import SinkProcess

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

SESSION_MS = "6000"
#: (kind, at, fraction of the insert's duration for "during"); full runs add later points.
#: Each faulty sink counts from its own start and reaches its point only while there is
#: work, so a fresh slice of the stream is produced before each one. A "between" needs
#: batches of several tables, which a backlog read topic by topic rarely gives: the late
#: one goes first, while the worker is still writing every table at once.
SHORT_POINTS = [("before", 3, 0.5), ("between", 2, 0.5), ("during", 3, 0.5), ("after", 4, 0.5)]
FULL_POINTS = [("between", 5, 0.5), *SHORT_POINTS, ("during", 2, 0.25), ("before", 8, 0.5), ("during", 4, 0.8),
               ("after", 9, 0.5)]


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> object:
    yield
    delete_worker_topics(topics)


def _said(sink: SinkProcess) -> str:
    lines = [ln for ln in sink.log_tail(20_000).splitlines() if ln.startswith("faulty-sink: crash")]
    return lines[-1].removeprefix("faulty-sink: ") if lines else "?"


def _run_sinks(sink: SinkProcess, points: list[tuple[str, int, float]], probe: Committed,
               feed: Callable[[int], None]) -> list[float]:
    """Each crash point in turn, then the real sink; returns each crash's recovery time.

    Recovery: from the crash until the group commits past its offsets at the crash (when the
    next faulty sink crashes before it commits, both crashes are one outage).
    """
    recovery: list[float] = []
    pending: tuple[float, int] | None = None  # (crash time, committed offsets then)
    for index, point in enumerate([*points, None]):
        feed(index)
        if point is None:
            sink.start()
        else:
            kind, at, fraction = point
            sink.start("--crash", kind, "--at", str(at), "--during-fraction", str(fraction),
                       "--session-timeout-ms", SESSION_MS)
        deadline = time.monotonic() + 600
        while sink.alive() and (point is not None or pending is not None):
            if pending is not None and probe.committed() > pending[1]:
                recovery.append(time.monotonic() - pending[0])
                pending = None
            assert time.monotonic() < deadline, f"the sink {point} neither crashed nor recovered: {sink.log_tail()}"
            time.sleep(0.1)  # polling the group's commits
        if point is not None:
            code = sink.wait_exit(timeout=60)
            assert code in (137, -9), f"the faulty sink {point} ended with {code}: {sink.log_tail()}"
            if pending is None:  # a crash before the group committed again extends the same outage
                pending = (time.monotonic(), probe.committed())
    return recovery


def test_sink_crashes_at_every_point_lose_and_double_nothing(topics: Settings, tmp_path: Path, scale: Scale,
                                                             chaos_results: Table) -> None:
    started = time.monotonic()
    settings = topics.model_copy(update={"sink_batch_rows": 400, "sink_batch_seconds": 0.2})
    events = arrivals(21, scale.dataset)
    points = SHORT_POINTS if scale.name == "short" else FULL_POINTS
    share = -(-len(events) // (len(points) + 1))  # one slice per crash point, the last for the real sink

    def feed(index: int) -> None:
        produce(settings, events[index * share:(index + 1) * share])

    worker = WorkerProcess(settings, tmp_path / "w0", "0").start()
    sink = SinkProcess(settings, tmp_path / "sink")
    probe = Committed(settings, sink_group(settings), SINK_TOPICS)
    try:
        worker.wait_ready()
        recovery = _run_sinks(sink, points, probe, feed)
        notes = [line for line in sink.log_path.read_text(errors="replace").splitlines()
                 if line.startswith("faulty-sink: ") and "outage" not in line]
        sink.wait_ready()
        settle(settings, [worker], sink)
        outcome = verify(settings, sink, events)
    finally:
        probe.close()
        sink.stop()
        worker.stop()
    record(chaos_results, "2 sink crash points", outcome, events=len(events), recovery=recovery, started=started,
           notes=[n.removeprefix("faulty-sink: ") for n in notes])
    assert_exact(outcome)
    assert recovery, "no recovery was measured"
