"""Scenario 4: a 3-node KRaft cluster loses a partition leader, then the active controller.

A dedicated cluster (``LocalCluster``: three broker+controller nodes on loopback, their
own ports and directories) carries every topic with replication 3 and
``min.insync.replicas=2``, the worker's changelogs included. A seeded dataset is produced
(``acks=all``, idempotent) at a steady rate while one worker and one sink run on the
cluster. Mid-stream the leader of ``touches`` partition 0 is killed with ``kill -9`` and
started again; later the active controller is. A process that exits meanwhile is
restarted, as a supervisor would (the notes say so). Afterwards ClickHouse must hold,
for every acknowledged event, what the oracle computes (touches, contacts, deals, every
report). Recovery time: from a kill until acknowledgements and the worker's commits
both flow again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from ground.kafka_admin import create_topics
from ground.settings import Settings
from ground.topics import Topics
from leadstream.testing.cluster import LocalCluster
from leadstream.testing.harness import WorkerProcess
from tests.chaos.load import ArrivalProducer
from tests.chaos.pipeline import arrivals, assert_exact, record, settle, verify
from tests.chaos.progress import RAW_TOPICS, Committed, wait_until
from tests.chaos.results import Table
from tests.chaos.scale import Scale
from tests.chaos.sink_process import SinkProcess

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

HEAP = "384m"
NODES = 3


def _topic_config(admin: AdminClient, topic: str, name: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    return str(configs[name].value)


def _replicated(admin: AdminClient, prefix: str) -> bool:
    """Every partition of the scenario's topics has its full in-sync replica set."""
    topics = admin.list_topics(timeout=10).topics
    ours = [t for name, t in topics.items() if name.startswith(prefix)]
    return bool(ours) and all(len(p.isrs) == NODES for t in ours for p in t.partitions.values())


class Supervisor:
    """Restarts the worker or the sink when it exits (a crash under broker failures is allowed)."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.worker = WorkerProcess(settings, root / "w0", "0").start()
        self.sink = SinkProcess(settings, root / "sink").start()
        self.restarts: list[str] = []

    def check(self) -> None:
        if not self.worker.alive():
            code = self.worker.proc.returncode if self.worker.proc else None
            self.restarts.append(f"worker exited with {code}, restarted")
            self.worker = WorkerProcess(self.settings, self.root / "w0", "0").start()
        if not self.sink.alive():
            self.restarts.append(f"sink exited with {self.sink.returncode()}, restarted")
            self.sink.start()

    def stop(self) -> None:
        self.sink.stop()
        self.worker.stop()


def test_leader_and_controller_killed_mid_stream_lose_no_acknowledged_event(
        settings: Settings, tmp_path: Path, scale: Scale, chaos_results: Table,
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    cluster = LocalCluster(settings.model_copy(update={"kafka_heap": HEAP}), tmp_path / "cluster", size=NODES)
    cluster.up(timeout=240)
    local = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap, "topic_replication": NODES,
                                        "kafka_heap": HEAP})
    # the worker process reads the replication of its changelogs from the environment
    monkeypatch.setenv("LEADSTREAM_TOPIC_REPLICATION", str(NODES))
    events = arrivals(41, scale.dataset)
    topics = Topics(local.topic_prefix)
    admin = AdminClient(local.kafka_common_config())
    recovery: list[float] = []
    notes: list[str] = []
    supervisor: Supervisor | None = None
    try:
        create_topics(local)
        assert _topic_config(admin, topics.name("touches"), "min.insync.replicas") == "2"
        supervisor = Supervisor(local, tmp_path)
        supervisor.worker.wait_ready(timeout=300)
        supervisor.sink.wait_ready()
        changelogs = [n for n in admin.list_topics(timeout=10).topics if n.startswith(f"{local.stream_app_id}-")]
        assert changelogs and all(len(p.replicas) == NODES for n in changelogs
                                  for p in admin.list_topics(n, timeout=10).topics[n].partitions.values())
        committed = Committed(local, local.stream_app_id, RAW_TOPICS)
        producer = ArrivalProducer(local, events, len(events) / (60.0 if scale.name == "short" else 120.0))
        producer.start()
        for victim_is, share in (("leader", 0.25), ("controller", 0.6)):
            wait_until(lambda s=share: producer.sent >= s * len(events), f"{share:.0%} of the stream produced",
                       600, alive=supervisor.check)
            leader = victim_is == "leader"
            node = cluster.leader_of(topics.name("touches"), 0) if leader else cluster.active_controller()
            acked, done, sent = len(producer.acked), committed.committed(), producer.sent
            killed = time.monotonic()
            cluster.kill(node)
            time.sleep(5.0)  # the cluster runs on two nodes for a while
            cluster.start(node)
            wait_until(lambda a=acked, d=done: len(producer.acked) > a + 100 and committed.committed() > d,
                       f"acknowledgements and commits after killing node {node}", 300, alive=supervisor.check)
            recovery.append(time.monotonic() - killed)
            wait_until(lambda: _replicated(admin, local.topic_prefix), f"node {node} back in every ISR", 300,
                       alive=supervisor.check)
            notes.append(f"kill -9 of the {victim_is} (node {node}) at {sent} of {len(events)} produced: "
                         f"acks and commits flowing again after {recovery[-1]:.1f}s, back in sync after "
                         f"{time.monotonic() - killed:.1f}s")
        acknowledged = producer.acknowledged()
        committed.close()
        notes.append(f"{len(acknowledged)} of {len(events)} arrivals acknowledged; delivery errors: "
                     f"{len(producer.failures)}; {'; '.join(supervisor.restarts) or 'no process restarted'}")
        assert len(acknowledged) == len(events), producer.failures[:5]
        supervisor.check()
        settle(local, [supervisor.worker], supervisor.sink)
        outcome = verify(local, supervisor.sink, acknowledged)
    finally:
        if supervisor is not None:
            supervisor.stop()
        cluster.down()
    record(chaos_results, "4 leader+controller kill", outcome, events=len(events), recovery=recovery,
           started=started, notes=notes)
    assert_exact(outcome)
