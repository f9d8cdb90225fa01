"""Settings: defaults and environment names as documented."""

from __future__ import annotations

import pytest

from ground.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults: localhost broker, 4 partitions, embedded ClickHouse under .leadstream/."""
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "LEADSTREAM_TOPIC_PREFIX",
                "LEADSTREAM_TOPIC_PARTITIONS", "LEADSTREAM_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert s.topic_partitions == 4
    assert s.clickhouse_url.startswith("chdb://") and s.clickhouse_url.endswith(".leadstream/chdb")
    assert s.kafka_is_local and s.kafka_port == 9092


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables override, and a remote broker is recognised as remote."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:29092")
    monkeypatch.setenv("CLICKHOUSE_URL", "http://ch:8123")
    monkeypatch.setenv("LEADSTREAM_TOPIC_PREFIX", "p-")
    monkeypatch.setenv("LEADSTREAM_WEBHOOK_SECRET", "s3cret")
    s = Settings()
    assert not s.kafka_is_local and s.kafka_port == 29092
    assert s.clickhouse_url == "http://ch:8123" and not s.clickhouse_embedded
    assert s.topic_prefix == "p-"
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.kafka_producer_config()["partitioner"] == "murmur2_random"
