"""The broker fixtures: local broker lifecycle and the testcontainers path."""

from __future__ import annotations

import pytest

from leadstream.broker import describe_cluster
from tests.support.docker import DOCKER_SKIP_REASON, docker_available

pytestmark = pytest.mark.integration


def test_session_broker_answers_metadata(kafka_bootstrap: str) -> None:
    """The session broker is real: it has a cluster id and one broker."""
    cluster_id, brokers, controller = describe_cluster(kafka_bootstrap)
    assert cluster_id
    assert brokers >= 1
    assert controller >= 0


def test_testcontainers_kafka() -> None:
    """With a Docker engine, testcontainers starts a Kafka that answers metadata."""
    if not docker_available():
        pytest.skip(DOCKER_SKIP_REASON)
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        cluster_id, brokers, _ = describe_cluster(kafka.get_bootstrap_server())
        assert cluster_id and brokers == 1
