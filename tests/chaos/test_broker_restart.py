"""Scenario 3: the broker restarts while the collector and a CSV import produce.

A dedicated single-node KRaft broker (``LocalCluster(size=1)``: its own ports and data
under the test's directory; the shared broker is never touched) is killed with
``kill -9`` while beacons flow to the collector and ``leadstream import touches`` runs,
started again, then later stopped cleanly and started again. The producers are
idempotent with ``acks=all``. Afterwards every event the collector answered 2xx for, and
every row the import reported published, must be on the raw topics exactly once
(no loss across the restart, no duplicate from a retried batch). Negative control: the
same tally on copies with one event removed and one doubled must report exactly that.
Recovery time: from the broker going away until the raw topics grow again.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from ground.kafka_admin import create_topics
from ground.settings import Settings
from ground.topics import Topics
from leadstream.testing.cluster import LocalCluster
from leadstream.testing.processes import collector_process, leadstream_cmd, settings_env
from tests.chaos.accounting import id_tally, prove_id_tally_able_to_fail
from tests.chaos.load import BeaconLoad
from tests.chaos.results import Row, Table
from tests.chaos.scale import Scale
from tests.support.capture import read_all

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

HEAP = "384m"


def _write_touches(path: Path, rows: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(rows)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "event_time", "contact_id", "type", "utm_source", "utm_medium", "utm_campaign"])
        for i, event_id in enumerate(ids):
            writer.writerow([event_id, f"2025-04-{1 + i % 28:02d}T10:{i % 60:02d}:00Z", f"C-{i % 997}", "event_scan",
                             "saastr", "event", "booth-2025"])
    return ids


class TopicGrowth:
    """Total end offsets of the raw topics; -1 while the broker does not answer."""

    def __init__(self, settings: Settings) -> None:
        topics = Topics(settings.topic_prefix)
        self.partitions = [TopicPartition(topics.name(base), p) for base in ("touches", "identities")
                           for p in range(settings.topic_partitions)]
        self.consumer = Consumer(settings.kafka_consumer_config(f"{settings.app_id}-growth"))

    def total(self) -> int:
        try:
            return sum(self.consumer.get_watermark_offsets(tp, timeout=2, cached=False)[1] for tp in self.partitions)
        except Exception:  # the broker is away: that is the scenario
            return -1

    def close(self) -> None:
        self.consumer.close()


def _wait_publishing(importer: subprocess.Popen[bytes], growth: TopicGrowth, rate: int) -> bool:
    """Until the import's rows show on the topics (beyond what the beacons add); False if it already ended."""
    base, since = growth.total(), time.monotonic()
    while importer.poll() is None:
        if growth.total() - base > 1.5 * rate * (time.monotonic() - since) + 500:
            return True
        time.sleep(0.05)  # polling the topics' end offsets
    return False


def _restart(cluster: LocalCluster, growth: TopicGrowth, *, crash: bool) -> float:
    """Take the node away (kill -9 or SIGTERM), start it again; seconds until the topics grow."""
    before = growth.total()
    gone = time.monotonic()
    if crash:
        cluster.kill(1)
    else:
        assert cluster.nodes[1].down(timeout=60)
    time.sleep(2.0)  # the producers notice the broker is gone and queue
    cluster.start(1)
    cluster.wait_brokers(1, timeout=180)
    deadline = time.monotonic() + 300
    while growth.total() <= before:
        assert time.monotonic() < deadline, "the raw topics did not grow after the restart"
        time.sleep(0.2)  # polling the topics' end offsets
    return time.monotonic() - gone


def test_broker_restart_loses_and_doubles_no_acknowledged_event(settings: Settings, tmp_path: Path, scale: Scale,
                                                                chaos_results: Table) -> None:
    started = time.monotonic()
    cluster = LocalCluster(settings.model_copy(update={"kafka_heap": HEAP}), tmp_path / "cluster", size=1)
    cluster.up()
    local = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap, "kafka_heap": HEAP})
    recovery: list[float] = []
    try:
        create_topics(local)
        growth = TopicGrowth(local)
        import_ids = _write_touches(tmp_path / "scans.csv", scale.import_rows)
        with collector_process(local) as collector:
            load = BeaconLoad(collector, scale.collector_rate)
            load.start()
            time.sleep(3.0)  # steady load before the first restart
            with (tmp_path / "import.log").open("w") as log:
                importer = subprocess.Popen(leadstream_cmd("import", "touches", str(tmp_path / "scans.csv")),
                                            env=settings_env(local), stdout=log, stderr=subprocess.STDOUT)
                running = _wait_publishing(importer, growth, scale.collector_rate)
                recovery.append(_restart(cluster, growth, crash=True))
                code = importer.wait(timeout=600)
            time.sleep(3.0)
            recovery.append(_restart(cluster, growth, crash=False))
            time.sleep(3.0)
            load.finish()
        growth.close()
        output = (tmp_path / "import.log").read_text()
        published = re.search(r"(\d+) of (\d+) rows published", output)
        assert code == 0 and published, f"the import failed ({code}): {output[-2000:]}"
        assert int(published.group(1)) == scale.import_rows
        found: Counter[str] = Counter(m.record["event_id"] for base in ("touches", "identities")
                                      for m in read_all(local, base, timeout=300))
    finally:
        cluster.down()
    acknowledged = set(load.accepted) | set(import_ids)
    lost, doubled, unknown = id_tally(acknowledged, found)
    proofs = prove_id_tally_able_to_fail(acknowledged, found)
    chaos_results.add(Row(
        scenario="3 broker restart", events=len(acknowledged), produced=len(acknowledged),
        found=len(acknowledged) - lost, lost=lost, doubled=doubled, reports="n/a", recovery=max(recovery),
        wall=time.monotonic() - started,
        notes=[f"collector answers {dict(sorted(load.statuses.items()))}: {len(load.accepted)} events accepted, "
               f"{len(load.refused)} refused ({unknown} refused-or-unanswered events still arrived); "
               f"import: {scale.import_rows} rows published, "
               f"{'still publishing' if running else 'already finished'} when the broker was killed",
               f"kill -9 of the broker: topics growing again after {recovery[0]:.1f}s; clean restart: "
               f"{recovery[1]:.1f}s",
               f"negative controls reported: {'; '.join(proofs)}"]))
    assert (lost, doubled) == (0, 0), f"{lost} acknowledged events lost, {doubled} doubled"
    assert unknown <= len(load.refused), "events on the topic that nobody sent"
    assert running, "the import ended before the broker went away: raise import_rows"
