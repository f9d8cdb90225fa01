"""Prometheus metrics of the capture layer (served by the collector at ``/metrics``).

Each collector app owns its registry, so several apps in one process (tests, the
benchmark) never collide on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["CaptureMetrics"]


class CaptureMetrics:
    """Requests, produced events, rejections by reason, produce latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = self._counter(
            "leadstream_collector_requests", "HTTP requests by endpoint and status code.", "endpoint", "status")
        self.produced = self._counter(
            "leadstream_produced", "Events handed to the Kafka producer, by topic.", "topic")
        self.delivered = self._counter(
            "leadstream_delivered", "Events acknowledged by the broker, by topic.", "topic")
        self.delivery_failed = self._counter(
            "leadstream_delivery_failed", "Events the broker did not acknowledge, by topic.", "topic")
        self.rejected = self._counter(
            "leadstream_rejected", "Inputs rejected (4xx, dead-lettered or unauthenticated), by reason.", "reason")
        self.bots = self._counter(
            "leadstream_bot_hits", "Hits whose user agent matched a bot pattern, by action (flag/drop).", "action")
        self.produce_latency = Histogram(
            "leadstream_produce_latency_seconds",
            "Time from produce() to the broker's acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)
