"""Load generators of the chaos scenarios, each recording what the system acknowledged.

* :class:`ArrivalProducer` publishes a dataset's arrivals to the raw topics at a steady
  rate from a background thread, as the producers do (Avro, murmur2, ``acks=all``,
  idempotent), and keeps every arrival whose delivery the broker confirmed.
* :class:`BeaconLoad` posts touch batches to a running collector at a steady rate and
  keeps the event ids of every answer in the 2xx range.

Only what was acknowledged is owed downstream: the oracle is computed over it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from confluent_kafka import KafkaError, Message, Producer

from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from schemas.codec import encode
from tests.oracle.generator import Arrival

__all__ = ["ArrivalProducer", "BeaconLoad"]


class ArrivalProducer(threading.Thread):
    """Produce ``arrivals`` in order at ``rate`` per second; ``acknowledged`` after ``join``."""

    def __init__(self, settings: Settings, arrivals: Sequence[Arrival], rate: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.settings = settings
        self.arrivals = arrivals
        self.rate = rate
        self.acked: set[int] = set()
        self.failures: list[str] = []
        self.error: BaseException | None = None
        self.sent = 0
        self.finished_at: float | None = None

    def _delivered(self, index: int) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                self.acked.add(index)
            else:
                self.failures.append(f"{msg.topic()}: {err}")
        return on_delivery

    def run(self) -> None:
        try:
            topics = Topics(self.settings.topic_prefix)
            producer = Producer(self.settings.kafka_producer_config(**{"linger.ms": 20}))
            started = time.monotonic()
            for i, (base, key, record) in enumerate(self.arrivals):
                value = encode(TOPIC_RECORDS[base], dict(record))
                while True:
                    try:
                        producer.produce(topics.name(base), key=key.encode(), value=value,
                                         on_delivery=self._delivered(i))
                        break
                    except BufferError:
                        producer.poll(0.2)  # local queue full (a broker may be away): deliveries drain it
                self.sent = i + 1
                if i % 500 == 0:
                    producer.poll(0)
                    ahead = self.sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # the steady rate of the scenario
            remaining = producer.flush(600)
            if remaining:
                self.failures.append(f"{remaining} messages still queued after 600 s")
        except BaseException as exc:  # surfaced by acknowledged()
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def acknowledged(self, timeout: float = 900.0) -> list[Arrival]:
        """Wait for the end; the arrivals the broker confirmed, in order."""
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error
        return [a for i, a in enumerate(self.arrivals) if i in self.acked]


class BeaconLoad(threading.Thread):
    """POST ``batch`` page views per request to ``collector``/collect at ``rate`` events per second.

    Every ``identify_every``-th request also identifies one of the visitors (``/identify``),
    so contacts with lead sources come out of the stream too.
    """

    def __init__(self, collector: str, rate: int, batch: int = 20, run_id: str = "", identify_every: int = 5) -> None:
        super().__init__(name="chaos-beacons", daemon=True)
        self.collector = collector
        self.identify_every = identify_every
        self.rate = rate
        self.batch = batch
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.stop_event = threading.Event()
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.statuses: dict[int, int] = {}
        self.error: BaseException | None = None

    def _events(self, n: int) -> list[dict[str, Any]]:
        sources = ("google", "linkedin", "newsletter", "bing")
        return [{"event_id": str(uuid.uuid4()), "type": "page_view", "anonymous_id": f"{self.run_id}-{k % 500}",
                 "url": f"https://example.com/p/{k % 7}?utm_source={sources[k % 4]}&utm_medium=cpc"}
                for k in range(n)]

    def _post(self, client: httpx.Client, path: str, events: list[dict[str, Any]]) -> None:
        try:
            status = client.post(f"{self.collector}{path}", json={"events": events}).status_code
        except httpx.HTTPError:
            status = 0
        self.statuses[status] = self.statuses.get(status, 0) + 1
        (self.accepted if 200 <= status < 300 else self.refused).extend(e["event_id"] for e in events)

    def run(self) -> None:
        sent = requests = 0
        started = time.monotonic()
        try:
            with httpx.Client(timeout=30) as client:
                while not self.stop_event.is_set():
                    events = self._events(self.batch)
                    self._post(client, "/collect", events)
                    requests += 1
                    if requests % self.identify_every == 0:
                        visitor = (requests // self.identify_every) % 500
                        self._post(client, "/identify", [{
                            "event_id": str(uuid.uuid4()), "anonymous_id": f"{self.run_id}-{visitor}",
                            "contact_id": f"{self.run_id}-c{visitor}", "source": "chaos-form"}])
                    sent += len(events)
                    ahead = sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # the steady rate of the scenario
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.stop_event.set()
        self.join(60)
        if self.error is not None:
            raise self.error
