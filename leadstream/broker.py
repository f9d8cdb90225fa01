"""A real single-node Apache Kafka broker (KRaft) for machines without Docker.

The jars come from Maven Central through ``leadstream/kafka/pom.xml`` (package data, so
an installed wheel can start the broker from any directory) and are cached in
``<cache>/kafka-<version>/libs``; each port gets its own directory
``<cache>/kafka-<version>/broker-<port>/`` with the properties, the formatted
storage, the pid file and ``logs/server.log``. Readiness is a real metadata request,
never a sleep. Nothing here runs when ``KAFKA_BOOTSTRAP_SERVERS`` names another host.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka.admin import AdminClient

from ground.errors import BrokerError
from ground.settings import Settings

__all__ = ["BrokerInfo", "LocalBroker", "NodeLayout", "describe_cluster"]

#: Shipped inside the package; copied into the cache before use, because Maven writes
#: beside its pom and an installed package directory may be read-only.
PACKAGED = resources.files("leadstream") / "kafka"
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class BrokerInfo:
    """What ``kafka status`` reports."""

    bootstrap: str
    cluster_id: str
    broker_count: int
    controller_id: int
    version: str


def describe_cluster(bootstrap: str, timeout: float = 5.0) -> tuple[str, int, int]:
    """(cluster id, broker count, controller id) from a real metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 3000,
                         "log_level": 5})  # librdkafka's info lines are noise on a CLI
    result = admin.describe_cluster(request_timeout=timeout)
    desc = result.result(timeout=timeout + 1)
    controller = desc.controller.id if desc.controller is not None else -1
    return desc.cluster_id or "", len(desc.nodes), controller


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class NodeLayout:
    """Where one node of a multi-node KRaft cluster listens and who its voters are.

    Every node of such a cluster is broker and controller at once; ``voters`` is the
    static quorum (``1@127.0.0.1:PORT,2@...``) shared by all of them.
    """

    node_id: int
    port: int
    controller_port: int
    voters: str
    replication: int
    directory: Path


class LocalBroker:
    """The broker of ``leadstream/kafka/pom.xml`` on 127.0.0.1:<port>.

    Alone (the default) it is a single-node cluster under the cache directory; given a
    :class:`NodeLayout` it is one node of a larger cluster, in that layout's directory.
    """

    def __init__(self, settings: Settings, layout: NodeLayout | None = None) -> None:
        self.settings = settings
        self.layout = layout
        self.version = settings.kafka_version
        self.port = layout.port if layout else settings.kafka_port
        self.home = settings.cache_dir.expanduser() / f"kafka-{self.version}"
        self.libs = self.home / "libs"
        self.dir = layout.directory if layout else self.home / f"broker-{self.port}"
        self.log_file = self.dir / "logs" / "server.log"
        self.pid_file = self.dir / "broker.pid"
        self.bootstrap = f"127.0.0.1:{self.port}"

    # ---- jars ------------------------------------------------------------------------
    def resolve_jars(self, quiet: bool = False) -> None:
        """Copy the broker's runtime jars from Maven Central into the cache, once."""
        marker = self.libs / ".complete"
        if marker.exists():
            return
        pom = self._packaged_file("pom.xml")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed to fetch the Kafka broker jars; install it")
        if not quiet:
            print(f"Resolving Apache Kafka {self.version} jars from Maven Central (first run only)...",
                  file=sys.stderr, flush=True)
        tmp = self.home / "libs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-Dkafka.version={self.version}", f"-DoutputDirectory={tmp}",
               "-DincludeScope=runtime"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            output = (proc.stdout + proc.stderr)[-4000:]
            raise BrokerError(f"Maven could not resolve Kafka {self.version}:\n{output}")
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)
        marker.touch()

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17+ is needed to run the Kafka broker; install a JDK")
        log4j = self._packaged_file("log4j2.yaml")
        return [java, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self.libs}/*", *args]

    def _packaged_file(self, name: str) -> Path:
        """A copy of the packaged broker file ``name`` under the cache, refreshed when it changed."""
        source = PACKAGED / name
        if not source.is_file():
            raise BrokerError(f"the leadstream package is incomplete: {name} is missing from leadstream/kafka")
        content = source.read_bytes()
        target = self.home / "build" / name
        if not target.exists() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return target

    # ---- storage ----------------------------------------------------------------------
    def _properties(self) -> Path:
        props = self.dir / "server.properties"
        if props.exists():
            return props
        self.dir.mkdir(parents=True, exist_ok=True)
        layout = self.layout or NodeLayout(1, self.port, _free_port(), "", 1, self.dir)
        controller_port = layout.controller_port
        voters = layout.voters or f"1@127.0.0.1:{controller_port}"
        replicas = layout.replication
        props.write_text(
            "\n".join([
                "# Written by leadstream: a KRaft broker and controller on loopback.",
                "process.roles=broker,controller",
                f"node.id={layout.node_id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.dir / 'data'}",
                f"num.partitions={self.settings.topic_partitions}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={max(replicas - 1, 1)}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={max(replicas - 1, 1)}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "log.retention.hours=-1",
                "",
            ])
        )
        return props

    def random_cluster_id(self) -> str:
        """A cluster id as Kafka's storage tool makes them."""
        out = subprocess.run(
            self._java("kafka.tools.StorageTool", "random-uuid"),
            capture_output=True, text=True, check=False,
        ).stdout.strip().splitlines()
        return out[-1] if out else uuid.uuid4().hex[:22]

    def format_storage(self, cluster_id: str | None = None) -> None:
        """Format the KRaft storage once (every node of a cluster with the same id); reused after."""
        props = self._properties()
        if (self.dir / "data" / "meta.properties").exists():
            return
        cid = cluster_id or self.random_cluster_id()
        proc = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cid, "-c", str(props)),
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}")

    # ---- lifecycle --------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            # Reap it if it is our own exited child, so a zombie never looks alive.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        # A stale pid file can name a recycled pid: only our broker's command line counts.
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None
        return pid

    def is_ready(self, timeout: float = 3.0) -> bool:
        try:
            describe_cluster(self.bootstrap, timeout=timeout)
        except Exception:
            return False
        return True

    def up(self, quiet: bool = False) -> BrokerInfo:
        """Start the broker unless it already answers; idempotent."""
        if _port_open(self.port) and self.is_ready():
            return self.info()
        self.resolve_jars(quiet=quiet)
        self.format_storage()
        return self.wait_ready(self.start())

    def start(self) -> int | None:
        """Spawn the broker process unless one runs; returns the new pid (None: already running)."""
        if self.pid() is not None:
            return None
        started = self._spawn()
        self.pid_file.write_text(str(started))
        return started

    def wait_ready(self, started: int | None) -> BrokerInfo:
        """Wait until the broker answers a metadata request; fail at once if it exits."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            # Our own child is watched with waitpid: until its exec completes, its command line
            # is not java's yet. A broker found running is watched through the pid file.
            exited = os.waitpid(started, os.WNOHANG)[0] == started if started else self.pid() is None
            if exited:
                raise BrokerError(f"the Kafka broker exited during start-up; see {self.log_file}")
            if _port_open(self.port) and self.is_ready(timeout=2.0):
                return self.info()
            time.sleep(0.2)  # polling interval between real readiness checks
        raise BrokerError(f"the Kafka broker did not become ready in {READY_TIMEOUT_S:.0f}s; see {self.log_file}")

    def _spawn(self) -> int:
        """Start the broker in its own session, detached from this process's lifetime.

        posix_spawn rather than Popen: the broker is meant to outlive this process, and a
        Popen object collected while its child runs is reported as a leaked resource.
        """
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = self._java(f"-Xmx{self.settings.kafka_heap}", "-Xms256m", "-XX:+UseG1GC",
                         "kafka.Kafka", str(self._properties()))
        env = {**os.environ, "KAFKA_HEAP_OPTS": ""}
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            return os.posix_spawn(cmd[0], cmd, env, setsid=True, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ])
        finally:
            os.close(log_fd)

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker and wait until its port is free. False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        while _port_open(self.port) and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """``kill -9`` the broker (a crash, for failure tests); False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.killpg(pid, signal.SIGKILL)
        while self.pid() is not None:
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def info(self) -> BrokerInfo:
        cluster_id, brokers, controller = describe_cluster(self.bootstrap)
        return BrokerInfo(self.bootstrap, cluster_id, brokers, controller, self.running_version())

    def running_version(self) -> str:
        """The version of the broker serving this port, read from its log."""
        try:
            for line in reversed(self.log_file.read_text(errors="replace").splitlines()):
                if "Kafka version:" in line:
                    return line.split("Kafka version:", 1)[1].split()[0]
        except OSError:
            pass
        return self.version
