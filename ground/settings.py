"""The one settings object of leadstream, read from the environment.

Every process (collector, worker, sink, CLI) builds its configuration here and
nowhere else, so a variable means the same thing everywhere. librdkafka options are
derived from it (``kafka_producer_config`` / ``kafka_consumer_config``) rather than
assembled ad hoc at call sites.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

DEFAULT_DATA_DIR = Path(".leadstream")


class Settings(BaseSettings):
    """Configuration of every leadstream process; see README "Configuration"."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # --- Kafka -------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    topic_prefix: str = Field(default="", validation_alias="LEADSTREAM_TOPIC_PREFIX")
    topic_partitions: int = Field(default=4, ge=1, validation_alias="LEADSTREAM_TOPIC_PARTITIONS")
    topic_replication: int = Field(default=1, ge=1, validation_alias="LEADSTREAM_TOPIC_REPLICATION")
    schema_registry_url: str | None = Field(default=None, validation_alias="SCHEMA_REGISTRY_URL")
    #: Days the raw topics keep events; unset = forever (what a full reprocessing needs).
    raw_retention_days: float | None = Field(default=None, gt=0, validation_alias="LEADSTREAM_RAW_RETENTION_DAYS")

    # --- local broker (leadstream kafka up) ---------------------------------------
    kafka_version: str = Field(default="4.2.0", validation_alias="LEADSTREAM_KAFKA_VERSION")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "leadstream", validation_alias="LEADSTREAM_CACHE_DIR"
    )
    kafka_heap: str = Field(default="1g", validation_alias="LEADSTREAM_KAFKA_HEAP")

    # --- ClickHouse ----------------------------------------------------------------
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, validation_alias="LEADSTREAM_DATA_DIR")
    clickhouse_url_raw: str | None = Field(default=None, validation_alias="CLICKHOUSE_URL")
    clickhouse_database: str = Field(
        default="leadstream", validation_alias="LEADSTREAM_CLICKHOUSE_DATABASE"
    )
    clickhouse_cluster: str | None = Field(
        default=None, validation_alias="LEADSTREAM_CLICKHOUSE_CLUSTER"
    )

    # --- HTTP services -------------------------------------------------------------
    collector_host: str = Field(default="127.0.0.1", validation_alias="LEADSTREAM_COLLECTOR_HOST")
    collector_port: int = Field(default=8080, validation_alias="LEADSTREAM_COLLECTOR_PORT")
    query_host: str = Field(default="127.0.0.1", validation_alias="LEADSTREAM_QUERY_HOST")
    query_port: int = Field(default=8124, validation_alias="LEADSTREAM_QUERY_PORT")
    #: Bearer token of the sink's query API; the sink refuses to serve beyond loopback without one.
    query_token: SecretStr | None = Field(default=None, validation_alias="LEADSTREAM_QUERY_TOKEN")
    webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="LEADSTREAM_WEBHOOK_SECRET"
    )
    #: key of the HMAC that turns an email into its stored hash and contact id; events
    #: carrying an email are refused while it is unset (docs/privacy.md)
    id_secret: SecretStr | None = Field(default=None, validation_alias="LEADSTREAM_ID_SECRET")
    max_body_bytes: int = Field(default=1_000_000, validation_alias="LEADSTREAM_MAX_BODY_BYTES")
    cors_origins: str = Field(default="*", validation_alias="LEADSTREAM_CORS_ORIGINS")
    site_domains: str = Field(default="", validation_alias="LEADSTREAM_SITE_DOMAINS")
    rate_limit_per_second: float | None = Field(
        default=None, gt=0, validation_alias="LEADSTREAM_RATE_LIMIT_PER_SECOND"
    )
    rate_limit_burst: int = Field(default=100, ge=1, validation_alias="LEADSTREAM_RATE_LIMIT_BURST")
    bot_policy: Literal["flag", "drop"] = Field(
        default="flag", validation_alias="LEADSTREAM_BOT_POLICY"
    )

    # --- stream processing ---------------------------------------------------------
    app_id: str = Field(default="ls", validation_alias="LEADSTREAM_APP_ID")
    taxonomy_path: Path | None = Field(default=None, validation_alias="LEADSTREAM_TAXONOMY")
    #: every money figure of every report is in this currency (docs/money.md)
    reporting_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$",
                                    validation_alias="LEADSTREAM_REPORTING_CURRENCY")
    #: the stream worker's Prometheus exporter: worker N listens on this port + N (0: off)
    worker_metrics_port: int = Field(default=9464, ge=0, le=65000, validation_alias="LEADSTREAM_WORKER_METRICS_PORT")
    worker_metrics_host: str = Field(default="127.0.0.1", validation_alias="LEADSTREAM_WORKER_METRICS_HOST")
    #: how long a silent worker keeps its partitions before the others take them over (the
    #: broker's group.min.session.timeout.ms, 6 s by default, is the floor); heartbeats go
    #: out every third of it, at most every 3 s (bench/failover.py measures the pause)
    worker_session_timeout_seconds: float = Field(
        default=20.0, ge=6, le=1800, validation_alias="LEADSTREAM_WORKER_SESSION_TIMEOUT_SECONDS"
    )
    #: static group membership: worker N joins as instance "<app id>-N", so a restarted worker
    #: takes its partitions back without a rebalance if it returns within the session timeout
    worker_static_membership: bool = Field(default=False, validation_alias="LEADSTREAM_WORKER_STATIC_MEMBERSHIP")
    #: a YAML file replacing the shipped alert rules (sinks/alert_rules.yaml)
    alert_rules_path: Path | None = Field(default=None, validation_alias="LEADSTREAM_ALERT_RULES")
    #: how often the sink evaluates the alert rules (0: never; `leadstream alerts check` still works)
    alert_interval_seconds: float = Field(default=60.0, ge=0, validation_alias="LEADSTREAM_ALERT_INTERVAL_SECONDS")
    #: where the sink POSTs each change of the firing alerts, signed with LEADSTREAM_WEBHOOK_SECRET
    alert_webhook_url: str | None = Field(default=None, validation_alias="LEADSTREAM_ALERT_WEBHOOK_URL")
    engagement_half_life_days: float = Field(
        default=30.0, gt=0, validation_alias="LEADSTREAM_ENGAGEMENT_HALF_LIFE_DAYS"
    )

    # --- sink ------------------------------------------------------------------------
    sink_batch_rows: int = Field(default=5000, ge=1, validation_alias="LEADSTREAM_SINK_BATCH_ROWS")
    sink_batch_seconds: float = Field(
        default=0.5, gt=0, validation_alias="LEADSTREAM_SINK_BATCH_SECONDS"
    )
    #: let the engine decode enriched touches written with the current schema (Avro object
    #: container, sinks/avro_blocks.py) instead of decoding each one in Python
    sink_native_avro: bool = Field(default=True, validation_alias="LEADSTREAM_SINK_NATIVE_AVRO")
    #: a batch's native touches are split into this many blocks, inserted at once over as
    #: many engine connections (the engine decodes Avro on one thread per insert)
    sink_insert_threads: int = Field(default=2, ge=1, le=16, validation_alias="LEADSTREAM_SINK_INSERT_THREADS")
    engine_lock_wait_seconds: float = Field(
        default=60.0, ge=0, validation_alias="LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS"
    )

    # --- analysts (the sink's query API on the embedded engine) ----------------------
    #: engine connections of their own; also the number of analyst queries run at once
    analyst_connections: int = Field(default=2, ge=1, le=32, validation_alias="LEADSTREAM_ANALYST_CONNECTIONS")
    #: how long a query waits for a free connection before it is answered 503
    analyst_queue_seconds: float = Field(default=5.0, ge=0, validation_alias="LEADSTREAM_ANALYST_QUEUE_SECONDS")
    analyst_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, validation_alias="LEADSTREAM_ANALYST_TIMEOUT_SECONDS"
    )
    analyst_max_memory_bytes: int = Field(
        default=2_000_000_000, ge=10_000_000, validation_alias="LEADSTREAM_ANALYST_MAX_MEMORY_BYTES"
    )
    #: engine threads one analyst query may use: the rest of the machine stays the sink's
    analyst_max_threads: int = Field(default=1, ge=1, le=64, validation_alias="LEADSTREAM_ANALYST_MAX_THREADS")

    @field_validator("query_token")
    @classmethod
    def _blank_token_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty ``LEADSTREAM_QUERY_TOKEN=`` means no token, not a token everyone knows."""
        return value if value is not None and value.get_secret_value().strip() else None

    # ------------------------------------------------------------------------------------
    @property
    def clickhouse_url(self) -> str:
        """``CLICKHOUSE_URL`` or the embedded engine under the data directory."""
        if self.clickhouse_url_raw:
            return self.clickhouse_url_raw
        return f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def clickhouse_embedded(self) -> bool:
        return self.clickhouse_url.startswith("chdb://")

    @property
    def stream_app_id(self) -> str:
        """The Faust app id, inside the namespace of ``LEADSTREAM_TOPIC_PREFIX``.

        It names the worker's consumer group, its changelog topics
        (``<id>-anon-changelog``, ...) and its state directories, so two deployments with
        different prefixes on one broker never share any of them. Without a prefix it is
        ``LEADSTREAM_APP_ID`` itself (what every existing deployment already uses).
        """
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def sink_group_id(self) -> str:
        """The sink's consumer group, in the same namespace."""
        return f"{self.stream_app_id}-sink"

    @property
    def raw_retention_ms(self) -> int:
        """``retention.ms`` of the raw topics: -1 (forever) unless a retention is configured."""
        return -1 if self.raw_retention_days is None else round(self.raw_retention_days * 86_400_000)

    @property
    def kafka_is_local(self) -> bool:
        """True when every bootstrap server is on this machine's loopback."""
        hosts = [urlparse(f"//{s.strip()}").hostname for s in self.kafka_bootstrap_servers.split(",")]
        return all(h in {"localhost", "127.0.0.1", "::1"} for h in hosts)

    @property
    def query_host_is_loopback(self) -> bool:
        """True when the query API listens on this machine's loopback only (``localhost``, 127.0.0.0/8, ::1).

        Any other host (``0.0.0.0``, an interface address, a name) can be reached from
        elsewhere, so the API requires ``LEADSTREAM_QUERY_TOKEN`` there.
        """
        host = self.query_host.strip().removeprefix("[").removesuffix("]")
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def kafka_port(self) -> int:
        first = self.kafka_bootstrap_servers.split(",")[0].strip()
        return urlparse(f"//{first}").port or 9092

    @property
    def site_domain_list(self) -> list[str]:
        return [d.strip().lower() for d in self.site_domains.split(",") if d.strip()]

    def kafka_common_config(self) -> dict[str, Any]:
        # log_level 5 keeps librdkafka's warnings and errors, drops its informational lines
        return {"bootstrap.servers": self.kafka_bootstrap_servers, "log_level": 5}

    def kafka_producer_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka producer options.

        ``murmur2_random`` is the Java client's partitioner, which aiokafka (under
        Faust) uses too: without it a key produced here and a key produced by the
        worker land in different partitions and co-partitioning silently breaks.
        """
        config: dict[str, Any] = {
            **self.kafka_common_config(),
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        config.update(overrides)
        return config

    def kafka_consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            **self.kafka_common_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        config.update(overrides)
        return config


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
