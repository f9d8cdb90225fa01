"""Driving and observing stream workers from outside, for tests and benchmarks.

Used by the stream integration tests (tests/integration/test_stream_*.py) and by
bench/stream.py and bench/query.py, which need real worker processes and exact offsets
rather than the product's own supervisor. Nothing here runs inside a worker. It starts
``leadstream worker`` processes with a given environment, produces raw events the way the
producers do (confluent-kafka, murmur2 partitioner, Avro single-object encoding), measures
the worker group's lag, waits until the workers are idle (lag 0 on every input topic and no
new output for a quiet period), and reads an output topic's latest record per key.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from ground.errors import LeadstreamError
from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from leadstream.testing.processes import leadstream_cmd, settings_env
from schemas.codec import decode, encode

__all__ = [
    "INPUT_TOPICS",
    "OUTPUT_TOPICS",
    "LagProbe",
    "WorkerProcess",
    "delete_worker_topics",
    "end_offsets",
    "group_lag",
    "produce",
    "read_latest",
    "wait_idle",
]

#: Topics the worker group consumes (raw and internal repartition topics).
INPUT_TOPICS = ("touches", "identities", "contacts", "deals", "contact-events", "deal-events")
OUTPUT_TOPICS = ("enriched-touches", "enriched-contacts", "identity-map", "enriched-deals", "dead-letter")


@dataclass
class WorkerProcess:
    """One ``leadstream worker`` subprocess, its log in ``data_dir/worker.log``."""

    settings: Settings
    data_dir: Path
    worker_id: str = "0"
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.worker_id}.log"

    @property
    def ready_file(self) -> Path:
        from streams.worker import worker_datadir

        return worker_datadir(self.data_dir, self.settings.stream_app_id, self.worker_id) / "READY"

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            leadstream_cmd("worker", "--id", self.worker_id, "--no-create-topics", "--loglevel", "warning"),
            env=settings_env(self.settings, LEADSTREAM_DATA_DIR=str(self.data_dir)), stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the worker wrote its READY file (after table recovery), or fail."""
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise LeadstreamError(f"worker exited with {self.proc.returncode}; log: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise LeadstreamError(f"worker not ready after {timeout}s; log: {self.log_tail()}")
            time.sleep(0.2)  # polling the READY file

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def delete_worker_topics(settings: Settings) -> int:
    """Delete every topic of ``settings``' prefix and of its worker group (changelogs, assignor).

    For tests and benchmarks that leave a shared broker as they found it; returns the count.
    """
    from ground.kafka_admin import delete_topics

    admin = AdminClient(settings.kafka_common_config())
    names = [n for n in admin.list_topics(timeout=30).topics
             if n.startswith(settings.topic_prefix) or n.startswith(f"{settings.stream_app_id}-")]
    if names and settings.topic_prefix:
        delete_topics(settings, names)
    return len(names)


def produce(settings: Settings, arrivals: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
    """Publish (topic base, key, record) in order, as the producers do; returns the count."""
    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config(**{"linger.ms": 20}))
    count = 0
    for base, key, record in arrivals:
        value = encode(TOPIC_RECORDS[base], dict(record))
        while True:
            try:
                producer.produce(topics.name(base), key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.5)  # local queue full: let deliveries drain
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise LeadstreamError(f"{remaining} messages not delivered")
    return count


def _partitions(admin: AdminClient, names: Sequence[str]) -> list[TopicPartition]:
    md = admin.list_topics(timeout=10)
    return [TopicPartition(n, p) for n in names if n in md.topics for p in md.topics[n].partitions]


def end_offsets(settings: Settings, names: Sequence[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``names``."""
    admin = AdminClient(settings.kafka_common_config())
    consumer = Consumer(settings.kafka_consumer_config("ls-harness-offsets"))
    try:
        out = {}
        for tp in _partitions(admin, names):
            _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            out[(tp.topic, tp.partition)] = high
        return out
    finally:
        consumer.close()


class LagProbe:
    """Lag of a consumer group on some topics, with one long-lived client (cheap to poll)."""

    def __init__(self, settings: Settings, group_id: str | None = None, bases: Sequence[str] = INPUT_TOPICS) -> None:
        topics = Topics(settings.topic_prefix)
        admin = AdminClient(settings.kafka_common_config())
        self.partitions = _partitions(admin, [topics.name(b) for b in bases])
        self.consumer = Consumer(settings.kafka_consumer_config(group_id or settings.stream_app_id))

    def lag(self) -> int:
        committed = self.consumer.committed([TopicPartition(tp.topic, tp.partition) for tp in self.partitions],
                                            timeout=10)
        total = 0
        for tp in committed:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10,
                                                          cached=False)
            total += max(0, high - (tp.offset if tp.offset >= 0 else 0))
        return total

    def close(self) -> None:
        self.consumer.close()


def group_lag(settings: Settings, group_id: str | None = None, bases: Sequence[str] = INPUT_TOPICS) -> int:
    """Messages of ``bases`` not yet committed by the worker group (the app id)."""
    probe = LagProbe(settings, group_id, bases)
    try:
        return probe.lag()
    finally:
        probe.close()


def wait_idle(settings: Settings, timeout: float = 600.0, quiet: float = 5.0,
              workers: Sequence[WorkerProcess] = ()) -> float:
    """Wait until the group's lag is 0 and the outputs did not grow for ``quiet`` seconds.

    Returns the seconds waited. Fails early when a worker process died.
    """
    inputs = LagProbe(settings)
    outputs = LagProbe(settings, "ls-harness-offsets", OUTPUT_TOPICS)
    start = time.monotonic()
    deadline = start + timeout
    last_out: list[int] = []
    stable_since: float | None = None
    try:
        while time.monotonic() < deadline:
            for w in workers:
                if not w.alive():
                    raise LeadstreamError(f"worker {w.worker_id} died; log: {w.log_tail()}")
            out = [outputs.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                   for tp in outputs.partitions]
            now = time.monotonic()
            if out != last_out:
                last_out, stable_since = out, now
            elif stable_since is not None and now - stable_since >= quiet and inputs.lag() == 0:
                return now - start
            time.sleep(0.5)  # poll interval of the idle condition
        raise LeadstreamError(f"workers not idle after {timeout}s (lag {inputs.lag()})")
    finally:
        inputs.close()
        outputs.close()


def read_latest(settings: Settings, base: str, version_field: str,
                key_field: str | None = None) -> dict[str, dict[str, Any]]:
    """Read an output topic from the beginning to its end offsets; latest record per key.

    ``version_field`` orders the records of one key; ``key_field`` (default: the
    message key) names the record field to key the result by.
    """
    name = Topics(settings.topic_prefix).name(base)
    ends = end_offsets(settings, [name])
    consumer = Consumer(settings.kafka_consumer_config(f"ls-harness-read-{time.time_ns()}"))
    latest: dict[str, dict[str, Any]] = {}
    try:
        todo = {tp: high for tp, high in ends.items() if high > 0}
        consumer.assign([TopicPartition(t, p, 0) for t, p in todo])
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error():
                    continue
                tp = (str(msg.topic()), int(msg.partition() or 0))
                _, record = decode(msg.value() or b"")
                key = str(record[key_field]) if key_field else (msg.key() or b"").decode()
                prev = latest.get(key)
                if prev is None or record[version_field] >= prev[version_field]:
                    latest[key] = record
                if tp in todo and int(msg.offset() or 0) + 1 >= todo[tp]:
                    del todo[tp]
        if todo:
            raise LeadstreamError(f"could not read {name} to its end: {todo}")
    finally:
        consumer.close()
    return latest
