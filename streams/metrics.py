"""The stream worker's Prometheus ``/metrics``: events in and out per stage, lag, batch time.

A worker has no HTTP server of its own (Faust's web server is off: it would be one more
port and one more dependency to secure), so this is prometheus_client's small exporter
in a thread, on ``LEADSTREAM_WORKER_METRICS_HOST:LEADSTREAM_WORKER_METRICS_PORT`` + the
worker id (so that several workers on one machine do not collide). Every value is read
at scrape time from the counters the stages keep; the consumer lag is asked of the broker
at most every 5 seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ground.kafka_admin import partition_lag
from ground.settings import Settings
from ground.topics import Topics

__all__ = ["STAGES", "WorkerCollector", "metrics_port", "serve_metrics"]

log = logging.getLogger("leadstream.worker")

STAGES = ("identity", "contact", "deal")
#: The topics each stage's consumer reads (the lag is theirs).
_INPUTS = ("touches", "identities", "contacts", "contact-events", "deals", "deal-events")
LAG_CACHE_SECONDS = 5.0


def metrics_port(settings: Settings, worker_id: str) -> int | None:
    """The port of this worker's exporter; None when metrics are off (port 0)."""
    if not settings.worker_metrics_port:
        return None
    return settings.worker_metrics_port + (int(worker_id) if worker_id.isdigit() else 0)


class WorkerCollector(Collector):
    """The worker's counters, readiness and lag as metrics, read at scrape time."""

    def __init__(self, settings: Settings, counters: Counter[str], state: dict[str, Any]) -> None:
        self.settings = settings
        self.counters = counters
        self.state = state
        self._lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0
        self._lock = threading.Lock()

    def _partition_lag(self) -> dict[tuple[str, int], int]:
        with self._lock:
            if time.monotonic() - self._lag_at > LAG_CACHE_SECONDS:
                topics = Topics(self.settings.topic_prefix)
                try:
                    self._lag = partition_lag(self.settings, self.settings.stream_app_id,
                                              [topics.name(t) for t in _INPUTS], timeout=5.0)
                except Exception as exc:  # the broker away: the last figures, and say so
                    log.warning("metrics: consumer lag unavailable: %s", exc)
                self._lag_at = time.monotonic()
            return dict(self._lag)

    def collect(self) -> Any:
        c = self.counters
        families = {
            "events": ("leadstream_worker_events", "Events read, per stage."),
            "dead_letters": ("leadstream_worker_dead_letters", "Events dead-lettered, per stage."),
            "erased": ("leadstream_worker_erased", "Events of erased subjects dropped, per stage."),
            "batches": ("leadstream_worker_batches", "Batches handled, per stage."),
        }
        for key, (name, help_text) in families.items():
            family = GaugeMetricFamily(name, help_text, labels=["stage"])
            for stage in STAGES:
                family.add_metric([stage], c.get(f"{stage}.{key}", 0))
            yield family
        seconds = GaugeMetricFamily("leadstream_worker_batch_seconds",
                                    "Total time spent handling batches, per stage.", labels=["stage"])
        last = GaugeMetricFamily("leadstream_worker_last_batch_seconds", "Duration of the last batch, per stage.",
                                 labels=["stage"])
        for stage in STAGES:
            seconds.add_metric([stage], c.get(f"{stage}.batch_ms", 0) / 1000)
            last.add_metric([stage], self.state.get(f"{stage}.last_batch_seconds", 0.0))
        yield seconds
        yield last
        yield GaugeMetricFamily("leadstream_worker_outputs", "Records produced (state changes, enriched events).",
                                value=c.get("outputs", 0))
        yield GaugeMetricFamily("leadstream_worker_ready", "1 once the worker recovered its tables and consumes; "
                                "0 while it recovers.", value=1 if self.state.get("ready") else 0)
        lag = GaugeMetricFamily("leadstream_worker_consumer_lag", "Messages of the input topics the worker group "
                                "has not committed, per partition.", labels=["topic", "partition"])
        for (topic, partition), n in sorted(self._partition_lag().items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag


def serve_metrics(settings: Settings, worker_id: str, counters: Counter[str], state: dict[str, Any]) -> int | None:
    """Start the exporter; its port, or None when off or when the port is taken (logged, not fatal)."""
    port = metrics_port(settings, worker_id)
    if port is None:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(settings, counters, state))
    try:
        start_http_server(port, addr=settings.worker_metrics_host, registry=registry)
    except OSError as exc:
        log.warning("worker metrics not served: %s:%d is taken (%s); set LEADSTREAM_WORKER_METRICS_PORT",
                    settings.worker_metrics_host, port, exc)
        return None
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, port)
    return port
