"""The capture layer's Kafka producer: Avro-encode, key, produce, count deliveries.

One :class:`EventProducer` per process (collector, import, Python API). It routes
each kind of event to its raw topic with the key of the partitioning plan
(``ground.topics.MESSAGE_KEYS``):

=============  ==============  ==============================================
kind           topic           key
=============  ==============  ==============================================
touch          ``touches``     anonymous_id (contact_id for offline touches)
identify       ``identities``  anonymous_id
contact        ``contacts``    contact_id
deal           ``deals``       deal_id
dead_letter    ``dead-letter`` origin
=============  ==============  ==============================================

``produce`` never waits for the broker: librdkafka batches in the background, a
daemon thread serves delivery callbacks (counted, latency observed), and ``close``
flushes. The partitioner is the settings' ``murmur2_random`` so that keys land where
the Faust worker expects them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from ground.errors import BrokerError
from ground.settings import Settings
from ground.topics import KIND_TOPICS, TOPIC_RECORDS, Topics, message_key
from producers.metrics import CaptureMetrics
from schemas.codec import get_codec

__all__ = ["ROUTES", "EventProducer", "Route"]

log = logging.getLogger(__name__)

Record = dict[str, Any]


class Route:
    """Where one kind of event goes: topic (unprefixed), Avro record name, key."""

    def __init__(self, topic: str, record: str, key: Callable[[Record], str]) -> None:
        self.topic = topic
        self.record = record
        self.key = key


def _route(topic: str) -> Route:
    return Route(topic, TOPIC_RECORDS[topic], lambda record: message_key(topic, record))


ROUTES: dict[str, Route] = {kind: _route(topic) for kind, topic in KIND_TOPICS.items()}

# How long produce() keeps retrying while librdkafka's local queue is full before it
# reports the broker as unavailable (the collector answers 503 then).
QUEUE_FULL_PATIENCE_S = 5.0


class EventProducer:
    """Encodes and produces leadstream events; thread-safe; one per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: CaptureMetrics | None = None,
        poll_thread: bool = True,
        **producer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.metrics = metrics
        self.codec = get_codec(settings.schema_registry_url)
        self._producer = Producer(settings.kafka_producer_config(**producer_overrides))
        self._stop = threading.Event()
        self._failures: list[str] = []
        self._children: dict[tuple[str, str], Any] = {}
        # Delivery callbacks run wherever poll() is called: in this thread, or (collector)
        # in the event loop through ``poll``, which spares the GIL hand-offs of a thread.
        self._poller: threading.Thread | None = None
        if poll_thread:
            self._poller = threading.Thread(target=self._poll_loop, name="leadstream-producer-poll", daemon=True)
            self._poller.start()
        self._closed = False

    # ---- producing ------------------------------------------------------------------
    def encode(self, kind: str, record: Record) -> tuple[str, str, bytes]:
        """(topic, key, value) for a record; raises SchemaError if it does not fit."""
        route = ROUTES[kind]
        topic = self.topics.name(route.topic)
        value = self.codec.encode(route.record, record, subject=topic)
        return topic, route.key(record), value

    def send(self, kind: str, record: Record) -> None:
        """Encode and produce one record (non-blocking)."""
        topic, key, value = self.encode(kind, record)
        self.produce_raw(topic, key, value)

    def produce_raw(self, topic: str, key: str, value: bytes) -> None:
        """Produce pre-encoded bytes; waits only while the local queue is full."""
        deadline = None
        while True:
            try:
                self._producer.produce(topic, value=value, key=key.encode(), on_delivery=self._on_delivery)
                break
            except BufferError as exc:
                # librdkafka's queue is full: give the poller a moment to drain it.
                deadline = deadline or time.monotonic() + QUEUE_FULL_PATIENCE_S
                if time.monotonic() > deadline:
                    raise BrokerError("Kafka producer queue stayed full: is the broker reachable?") from exc
                self._producer.poll(0.05)
        if self.metrics is not None:
            self._child("produced", topic).inc()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        if err is not None:
            log.error("delivery to %s failed: %s", topic, err)
            self._failures.append(f"{topic}: {err}")
            if self.metrics is not None:
                self._child("delivery_failed", topic).inc()
            return
        if self.metrics is not None:
            self._child("delivered", topic).inc()
            latency = msg.latency()
            if latency is not None:
                self.metrics.produce_latency.observe(latency)

    def _child(self, metric: str, topic: str) -> Any:
        """The per-topic child of a counter, resolved once (label lookups take a lock)."""
        child = self._children.get((metric, topic))
        if child is None:
            child = self._children[(metric, topic)] = getattr(self.metrics, metric).labels(topic)
        return child

    def poll(self, timeout: float = 0.0) -> int:
        """Serve pending delivery callbacks (for callers without the poll thread)."""
        served: int = self._producer.poll(timeout)
        return served

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def failures(self) -> list[str]:
        """Delivery errors seen so far (topic: error)."""
        return list(self._failures)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every produced event is acknowledged; returns how many are still queued."""
        remaining: int = self._producer.flush(timeout)
        return remaining

    def close(self, timeout: float = 30.0) -> int:
        """Flush, then stop the delivery thread; returns events left undelivered."""
        if self._closed:
            return 0
        remaining = self.flush(timeout)
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._closed = True
        if remaining:
            log.error("%d events were not delivered before shutdown", remaining)
        return remaining

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
