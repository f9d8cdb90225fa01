"""The sink's own look at its alerts and counters, for Prometheus and for a webhook.

``leadstream alerts check`` answers when someone asks; nobody asks at 3 a.m. when a tag
breaks. So the sink evaluates the rules every ``LEADSTREAM_ALERT_INTERVAL_SECONDS`` on
the analysts' connections (never on the ingestion connection), exposes the result and
its own counters at ``/metrics``, and, when ``LEADSTREAM_ALERT_WEBHOOK_URL`` is set,
POSTs each change of the firing set there, signed like leadstream's own webhooks
(``X-Leadstream-Timestamp``, ``X-Leadstream-Signature`` with ``LEADSTREAM_WEBHOOK_SECRET``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from tenacity import Retrying, stop_after_attempt, wait_exponential

from ground.kafka_admin import partition_lag
from ground.settings import Settings
from sinks.alerts import Alert, evaluate
from sinks.clickhouse import Database

__all__ = ["AlertWatch", "CachedLag", "SinkCollector", "metrics_text", "signed_headers"]

log = logging.getLogger("leadstream.alerts")


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a body signed like leadstream's webhooks: HMAC-SHA256 of ``"<ts>.<body>"``."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadstream-Timestamp": str(ts), "X-Leadstream-Signature": f"sha256={digest}",
            "Content-Type": "application/json"}


class AlertWatch:
    """Evaluates the rules periodically in a thread; keeps the latest result; notifies a webhook."""

    def __init__(self, settings: Settings, db: Database, *, evaluate_fn: Callable[[], list[Alert]] | None = None
                 ) -> None:
        self.settings = settings
        self._evaluate = evaluate_fn or (lambda: evaluate(db, settings))
        self.latest: list[Alert] = []
        self.evaluated_at: float | None = None
        self.last_error: str | None = None
        self.notified = 0
        self._sent: set[tuple[str, str]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> dict[str, Any]:
        """Evaluate now; the ``/alerts`` answer."""
        alerts = self._evaluate()
        self.latest, self.evaluated_at, self.last_error = alerts, time.time(), None
        return {"evaluated_at": int(self.evaluated_at * 1000), "alerts": [a.as_dict() for a in alerts]}

    def _round(self) -> None:
        try:
            answer = self.check()
        except Exception as exc:  # an engine or broker hiccup: the next round tries again
            self.last_error = str(exc).splitlines()[0][:500] if str(exc) else repr(exc)
            log.warning("alert evaluation failed: %s", self.last_error)
            return
        firing = {(a.rule, a.subject) for a in self.latest}
        if firing != self._sent and self.settings.alert_webhook_url:
            self._notify(answer, firing)

    def _notify(self, answer: dict[str, Any], firing: set[tuple[str, str]]) -> None:
        url = self.settings.alert_webhook_url
        secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else ""
        body = json.dumps({"source": "leadstream", **answer}, default=str).encode()
        try:
            for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=5),
                                    reraise=True):
                with attempt:
                    response = httpx.post(str(url), content=body, headers=signed_headers(secret, body), timeout=10)
                    response.raise_for_status()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self.last_error = f"alert webhook {url}: {exc}"
            log.warning("%s", self.last_error)
            return
        self._sent = firing
        self.notified += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as exc:  # whatever a round meets, the next one runs
                self.last_error = repr(exc)[:500]
                log.exception("alert round failed")
            self._stop.wait(self.settings.alert_interval_seconds)

    def start(self) -> AlertWatch:
        self._thread = threading.Thread(target=self._run, name="alert-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


class SinkCollector(Collector):
    """The sink's counters and the latest alerts as Prometheus metrics, read at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, Any]] | None, watch: AlertWatch | None,
                 lag: Callable[[], dict[tuple[str, int], int]] | None = None) -> None:
        self._stats = stats
        self._watch = watch
        self._lag = lag

    def collect(self) -> Any:
        yield from self._sink()
        yield from self._alerts()

    def _sink(self) -> Any:
        if self._stats is None:  # `leadstream dashboard`: no sink in this process
            return
        s = self._stats()
        rows = GaugeMetricFamily("leadstream_sink_rows", "Rows acknowledged by ClickHouse, by table.",
                                 labels=["table"])
        for table, n in sorted(s.get("rows", {}).items()):
            rows.add_metric([table], n)
        yield rows
        for key, help_text in (("messages", "Messages read from the enriched and dead-letter topics."),
                               ("batches", "Batches inserted and committed."),
                               ("insert_failures", "Failed insert attempts (each retried)."),
                               ("dead_letters", "Records the sink could not decode or store, dead-lettered."),
                               ("erased", "Records of erased subjects dropped.")):
            yield GaugeMetricFamily(f"leadstream_sink_{key}", help_text, value=s.get(key) or 0)
        yield GaugeMetricFamily("leadstream_sink_paused", "1 while ClickHouse is unreachable and consumption is "
                                "paused.", value=1 if s.get("paused") else 0)
        yield GaugeMetricFamily("leadstream_sink_last_flush_timestamp_seconds", "When the last batch was committed.",
                                value=s.get("last_flush_at") or 0)
        yield GaugeMetricFamily("leadstream_sink_insert_seconds", "Duration of the last batch's inserts.",
                                value=s.get("last_insert_seconds") or 0)
        if self._lag is not None:
            lag = GaugeMetricFamily("leadstream_sink_consumer_lag", "Messages of the sink's topics its group has "
                                    "not committed, per partition.", labels=["topic", "partition"])
            for (topic, partition), n in sorted(self._lag().items()):
                lag.add_metric([topic, str(partition)], n)
            yield lag

    def _alerts(self) -> Any:
        if self._watch is None:
            return
        firing = GaugeMetricFamily("leadstream_alert_firing", "1 per firing alert, by rule and subject.",
                                   labels=["rule", "subject"])
        for alert in self._watch.latest:
            firing.add_metric([alert.rule, alert.subject], 1)
        yield firing
        yield GaugeMetricFamily("leadstream_alerts_evaluated_timestamp_seconds", "When the rules were last "
                                "evaluated.", value=self._watch.evaluated_at or 0)
        yield GaugeMetricFamily("leadstream_alert_evaluation_failing", "1 when the last evaluation failed.",
                                value=1 if self._watch.last_error else 0)


def metrics_text(stats: Callable[[], dict[str, Any]] | None, watch: AlertWatch | None,
                 lag: Callable[[], dict[tuple[str, int], int]] | None = None) -> bytes:
    """The ``/metrics`` body: the sink's counters (``stats``; None without a sink), its lag, the alerts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SinkCollector(stats, watch, lag))
    return bytes(generate_latest(registry))


class CachedLag:
    """The sink group's lag per partition, asked of the broker at most every ``seconds``."""

    def __init__(self, settings: Settings, group: str, topics: list[str], seconds: float = 5.0) -> None:
        self.settings, self.group, self.topics, self.seconds = settings, group, topics, seconds
        self._value: dict[tuple[str, int], int] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> dict[tuple[str, int], int]:
        with self._lock:
            if time.monotonic() - self._at > self.seconds:
                try:
                    self._value = partition_lag(self.settings, self.group, self.topics, timeout=5.0)
                except Exception as exc:  # the broker away: the last figures
                    log.warning("metrics: sink lag unavailable: %s", exc)
                self._at = time.monotonic()
            return dict(self._value)
