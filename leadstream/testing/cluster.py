"""A real multi-node Kafka cluster (KRaft) on loopback, for failure tests.

Used by the chaos suite to kill a partition leader or the active controller while
events flow. The nodes run from the same Maven jars as ``leadstream kafka up``, each
broker and controller at once, on ports and directories of their own, so a cluster
never touches the single-node broker other tests use.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from ground.errors import BrokerError
from ground.settings import Settings
from leadstream.broker import LocalBroker, NodeLayout, describe_cluster

__all__ = ["LocalCluster"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class LocalCluster:
    """``size`` KRaft nodes (ids 1..size) under ``directory``; replication ``size``."""

    def __init__(self, settings: Settings, directory: Path, size: int = 3) -> None:
        ports = _free_ports(2 * size)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[size + i]}" for i in range(size))
        self.directory = directory
        self.nodes = {
            i + 1: LocalBroker(settings, NodeLayout(node_id=i + 1, port=ports[i], controller_port=ports[size + i],
                                                    voters=voters, replication=size,
                                                    directory=directory / f"node-{i + 1}"))
            for i in range(size)
        }
        self.bootstrap = ",".join(node.bootstrap for node in self.nodes.values())

    def up(self, timeout: float = 120.0) -> None:
        """Format every node with one cluster id, start them all, wait until all are brokers."""
        first = next(iter(self.nodes.values()))
        first.resolve_jars(quiet=True)
        cluster_id = first.random_cluster_id()
        for node in self.nodes.values():
            node.format_storage(cluster_id)
        for node in self.nodes.values():
            node.start()
        self.wait_brokers(len(self.nodes), timeout)

    def wait_brokers(self, count: int, timeout: float = 120.0) -> None:
        """Wait until the cluster's metadata lists ``count`` live brokers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if describe_cluster(self.bootstrap, timeout=3.0)[1] >= count:
                    return
            except Exception:  # not answering yet: a quorum is still forming
                pass
            time.sleep(0.3)  # between real metadata requests
        raise BrokerError(f"the {len(self.nodes)}-node cluster did not show {count} brokers in {timeout:.0f}s")

    def kill(self, node_id: int) -> None:
        """``kill -9`` one node."""
        self.nodes[node_id].kill()

    def start(self, node_id: int) -> None:
        """Start a killed node again (it rejoins with its own data)."""
        self.nodes[node_id].start()

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id leading ``topic``'s ``partition``, from a metadata request."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)

    def active_controller(self) -> int:
        """The node id leading the metadata quorum, as the live nodes' quorum state says.

        The admin protocol of the Python client does not expose the quorum leader
        (DescribeCluster names a random broker in KRaft), so the state file every
        controller keeps in its metadata log directory is read instead.
        """
        newest: tuple[int, int] | None = None  # (leader epoch, leader id)
        for node in self.nodes.values():
            if node.pid() is None:
                continue
            state = node.dir / "data" / "__cluster_metadata-0" / "quorum-state"
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            seen = (int(data.get("leaderEpoch", -1)), int(data.get("leaderId", -1)))
            if seen[1] > 0 and (newest is None or seen > newest):
                newest = seen
        if newest is None:
            raise BrokerError("no live node of the cluster knows a quorum leader")
        return newest[1]

    def down(self) -> None:
        """Stop every node and remove the cluster's directories."""
        for node in self.nodes.values():
            if not node.down(timeout=20):
                node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
