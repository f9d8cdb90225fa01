"""Scenario 5: the embedded engine unavailable for 60 s (20 s at short scale) under steady load.

The collector, one worker and the sink run as processes; beacons and identifies are
posted to the collector at a steady rate for the whole scenario. The sink runs through
``faulty_sink.py --outage-file``: while that file exists every engine call fails (the
first failing insert is stored and only its acknowledgement lost, so the retry re-sends
a block the engine already has). During the outage the collector must answer every
request 2xx, and the sink must stay bounded: rows it buffers (``/healthz``: messages
accepted minus rows acknowledged) within one batch plus one fetch, resident memory
within 150 MiB of where it stood. Afterwards ClickHouse must hold every event the
collector produced exactly once and every report must equal the oracle over the raw
topics. Negative control of the bound: the backlog the outage piles up on the enriched
topics is several times larger than the bound, so a sink that buffered it would fail.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, delete_worker_topics
from leadstream.testing.processes import collector_process
from sinks.sink import SINK_TOPICS
from tests.chaos.load import BeaconLoad
from tests.chaos.pipeline import assert_exact, record, settle, sink_group, verify
from tests.chaos.progress import Committed, wait_until
from tests.chaos.results import Table
from tests.chaos.scale import Scale
from tests.chaos.sink_process import SinkProcess
from tests.oracle.generator import Arrival
from tests.support.capture import read_all

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

BATCH_ROWS = 1000
ROW_BOUND = BATCH_ROWS + 1000  # one batch being retried plus what one consume call may bring
RSS_BOUND = 150 * 2**20
WARM_UP_S = 10.0
AFTER_S = 10.0


@pytest.fixture(autouse=True)
def _drop_topics_afterwards(topics: Settings) -> object:
    yield
    delete_worker_topics(topics)


def _buffered(sink: SinkProcess) -> int:
    stats = sink.health()["sink"]
    return int(stats["messages"]) - sum(int(n) for n in stats["rows"].values()) - int(stats["dead_letters"])


def _raw_events(settings: Settings) -> list[Arrival]:
    return [(base, m.key or "", m.record) for base in ("touches", "identities") for m in read_all(settings, base)]


def test_engine_outage_keeps_collector_up_sink_bounded_and_loses_nothing(topics: Settings, tmp_path: Path,
                                                                         scale: Scale, chaos_results: Table) -> None:
    started = time.monotonic()
    settings = topics.model_copy(update={"sink_batch_rows": BATCH_ROWS, "sink_batch_seconds": 0.5})
    outage = tmp_path / "engine-down"
    sink = SinkProcess(settings, tmp_path / "sink").start("--outage-file", str(outage))
    worker = WorkerProcess(settings, tmp_path / "w0", "0").start()
    probe = Committed(settings, sink_group(settings), SINK_TOPICS)
    samples: list[tuple[int, int]] = []  # (rss, buffered rows) during the outage
    try:
        worker.wait_ready()
        sink.wait_ready()
        with collector_process(settings) as collector:
            load = BeaconLoad(collector, scale.outage_rate)
            load.start()
            time.sleep(WARM_UP_S)  # steady load with the engine up
            rss_before = sink.rss_bytes()
            outage.touch()
            down_at = time.monotonic()
            while time.monotonic() - down_at < scale.outage_seconds:
                assert sink.alive() and worker.alive(), sink.log_tail() + worker.log_tail()
                samples.append((sink.rss_bytes(), _buffered(sink)))
                time.sleep(0.5)  # sampling the sink's memory through the outage
            backlog = probe.lag()
            committed_at_end = probe.committed()
            outage.unlink()
            up_at = time.monotonic()
            resumed = wait_until(lambda: probe.committed() > committed_at_end, "the sink to commit again", 300)
            time.sleep(AFTER_S)  # steady load with the engine back
            load.finish()
        settle(settings, [worker], sink)
        drained = time.monotonic() - up_at
        raw = _raw_events(settings)
        outcome = verify(settings, sink, raw)
    finally:
        probe.close()
        sink.stop()
        worker.stop()
    raw_ids = {r["event_id"] for _, _, r in raw}
    missing = set(load.accepted) - raw_ids
    max_rss = max(r for r, _ in samples)
    max_rows = max(b for _, b in samples)
    notes = [f"collector answers: {dict(sorted(load.statuses.items()))}; {len(load.accepted)} events accepted, "
             f"{len(missing)} of them missing from the raw topics",
             f"outage {scale.outage_seconds:.0f}s: sink RSS {rss_before / 2**20:.0f} MiB before, max "
             f"{max_rss / 2**20:.0f} MiB during; buffered rows max {max_rows} (bound {ROW_BOUND}); backlog on the "
             f"enriched topics at the end {backlog}",
             f"after the outage: committing again in {resumed:.1f}s, backlog drained in {drained:.0f}s"]
    record(chaos_results, "5 engine outage", outcome, events=len(load.accepted), recovery=[resumed],
           started=started, notes=notes)
    assert load.refused == [] and set(load.statuses) == {200}, load.statuses
    assert not missing, f"{len(missing)} accepted events are not on the raw topics"
    assert "acknowledgement lost" in sink.log_tail(200_000), "the outage must include a lost acknowledgement"
    assert max_rows <= ROW_BOUND, f"the sink buffered {max_rows} rows during the outage"
    assert max_rss - rss_before <= RSS_BOUND, f"the sink grew by {(max_rss - rss_before) / 2**20:.0f} MiB"
    assert backlog >= 3 * ROW_BOUND, f"negative control: a backlog of {backlog} cannot tell bounded from buffered"
    assert_exact(outcome)
