"""Session fixtures: the real Kafka broker and the real ClickHouse engine.

Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a testcontainers Kafka when a Docker
engine answers, else the local broker (``leadstream.broker``). ClickHouse: ``CLICKHOUSE_URL``
when set, else the embedded engine (chdb) in a temporary directory. Each test gets its
own topic prefix (so its own topics and consumer groups) and its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ground.settings import Settings
from tests.support.capture import ID_SECRET
from tests.support.docker import docker_available

BROKER_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def _write_line(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():  # fixtures run with output captured
        reporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap servers of a real broker for the whole session."""
    from leadstream.broker import LocalBroker, describe_cluster

    if os.environ.get(BROKER_ENV):
        bootstrap = os.environ[BROKER_ENV]
        version = "external"
        container = None
        broker = None
        already_running = True
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().with_kraft()
        container.start()
        bootstrap = container.get_bootstrap_server()
        version = "testcontainers"
        broker = None
        already_running = True
    else:
        container = None
        broker = LocalBroker(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092"))
        already_running = broker.is_ready()
        bootstrap = broker.up(quiet=False).bootstrap
        version = broker.running_version()
    cluster_id, brokers, _ = describe_cluster(bootstrap)
    _write_line(request.config, f"kafka broker: version {version}, cluster id {cluster_id}, "
                                f"{brokers} broker(s) at {bootstrap}")
    yield bootstrap
    if container is not None:
        container.stop()
    if broker is not None and not already_running:
        broker.down()  # started for this session: leave the machine as we found it


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One ClickHouse for the session: CLICKHOUSE_URL, else an embedded engine directory."""
    if os.environ.get("CLICKHOUSE_URL"):
        return os.environ["CLICKHOUSE_URL"]
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def settings(kafka_bootstrap: str, clickhouse_url: str, topic_prefix: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics, consumer groups, database and data dir."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        CLICKHOUSE_URL=clickhouse_url,
        LEADSTREAM_TOPIC_PREFIX=topic_prefix,
        LEADSTREAM_TOPIC_PARTITIONS=4,
        LEADSTREAM_APP_ID=f"ls-{topic_prefix.rstrip('-')}",
        LEADSTREAM_CLICKHOUSE_DATABASE=f"ls_{topic_prefix.rstrip('-')}",
        LEADSTREAM_DATA_DIR=str(tmp_path / "data"),
        LEADSTREAM_WEBHOOK_SECRET="test-secret",
        LEADSTREAM_ID_SECRET=ID_SECRET,
    )


@pytest.fixture
def topics(settings: Settings) -> Iterator[Settings]:
    """Create the test's topics (4 partitions each); delete them, and the worker's, afterwards.

    Deleting keeps a long test run within the broker's file-descriptor budget (each
    partition holds several open segment files).
    """
    from confluent_kafka.admin import AdminClient

    from ground.kafka_admin import create_topics, delete_topics

    create_topics(settings)
    yield settings
    existing = AdminClient(settings.kafka_common_config()).list_topics(timeout=10).topics
    ours = [t for t in existing if t.startswith((settings.topic_prefix, f"{settings.app_id}-"))]
    if ours:
        delete_topics(settings, ours)
