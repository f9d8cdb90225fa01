"""Benchmark of worker failover (not a test): the processing pause after ``kill -9`` of one of two workers.

Two ``leadstream worker`` processes share the raw topics' partitions while touches are
produced at a steady rate. Once both have committed progress, worker 1 is killed with
SIGKILL. The pause is the time from the kill until every partition of the raw topics has
been committed past where it stood at the kill: the survivor has taken over the victim's
partitions (the group noticed the dead member, rebalanced, and the survivor rebuilt the
victim's table partitions from their changelogs) and processing runs everywhere again.

Measured in one run for each session timeout given (``--session-timeouts``, seconds;
``LEADSTREAM_WORKER_SESSION_TIMEOUT_SECONDS``), the shipped default first as the baseline,
and then for a restart: worker 1 killed and started again at once (what ``leadstream serve``
does), without and with static membership (``LEADSTREAM_WORKER_STATIC_MEMBERSHIP``: the
restarted worker rejoins under its old instance id and takes its partitions back without a
rebalance). Goal: the pause after kill -9 at most the session timeout plus 5 s.

    .venv/bin/python bench/failover.py [--rate 300] [--session-timeouts 20,6]

Needs the broker (KAFKA_BOOTSTRAP_SERVERS, default localhost:9092). Topics get a fresh
prefix per run; they are deleted at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from ground.kafka_admin import create_topics  # noqa: E402
from ground.settings import Settings  # noqa: E402
from ground.topics import Topics  # noqa: E402
from leadstream.testing.harness import WorkerProcess, delete_worker_topics  # noqa: E402
from schemas.codec import encode  # noqa: E402

RAW = ("touches", "identities")
T0 = 1_735_689_600_000


class Load(threading.Thread):
    """Touches at a steady rate over many anonymous ids (every partition gets some)."""

    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(name="load", daemon=True)
        self.settings, self.rate, self.stop_event, self.sent = settings, rate, threading.Event(), 0

    def run(self) -> None:
        topic = Topics(self.settings.topic_prefix).touches
        producer = Producer(self.settings.kafka_producer_config(**{"linger.ms": 5}))
        begin = time.monotonic()
        while not self.stop_event.is_set():
            due = int((time.monotonic() - begin) * self.rate)
            while self.sent < due:
                anon = f"anon-{self.sent % 5000:05d}"
                touch = {"event_id": str(uuid.uuid4()), "event_time": T0 + self.sent, "received_at": T0 + self.sent,
                         "anonymous_id": anon, "contact_id": None, "touch_type": "page_view",
                         "url": "https://www.leadstream.example/pricing", "utm_source": "google",
                         "utm_medium": "cpc", "utm_campaign": "spring"}
                producer.produce(topic, key=anon.encode(), value=encode("Touch", touch))
                self.sent += 1
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(30)


class Progress:
    """The worker group's committed offset on each raw partition."""

    def __init__(self, settings: Settings) -> None:
        topics = Topics(settings.topic_prefix)
        self.partitions = [TopicPartition(topics.name(b), p) for b in RAW for p in range(settings.topic_partitions)]
        self.consumer = Consumer(settings.kafka_consumer_config(settings.stream_app_id))

    def offsets(self) -> dict[tuple[str, int], int]:
        try:
            got = self.consumer.committed(self.partitions, timeout=10)
        except Exception:  # the coordinator is busy with the rebalance: no answer this round
            return {}
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    def close(self) -> None:
        self.consumer.close()


def _wait(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def measure(bootstrap: str, rate: float, session_timeout: float, *, restart: bool, static: bool) -> float:
    """Seconds from the kill until every raw partition (of touches) committed past its offset at the kill."""
    prefix = f"benchfo{uuid.uuid4().hex[:6]}-"
    with tempfile.TemporaryDirectory(prefix="ls-bench-failover-") as tmp:
        settings = Settings.model_validate({
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LEADSTREAM_TOPIC_PREFIX": prefix,
            "LEADSTREAM_APP_ID": f"ls-{prefix.rstrip('-')}", "LEADSTREAM_DATA_DIR": tmp,
            "LEADSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": session_timeout,
            "LEADSTREAM_WORKER_STATIC_MEMBERSHIP": static, "LEADSTREAM_WORKER_METRICS_PORT": 0})
        create_topics(settings)
        workers = [WorkerProcess(settings, Path(tmp) / f"w{i}", str(i)).start() for i in (0, 1)]
        load = Load(settings, rate)
        progress = Progress(settings)
        try:
            for w in workers:
                w.wait_ready(180)
            load.start()
            touches = [k for k in progress.partitions if k.topic.endswith("touches")]
            # both workers hold partitions and commit: every touch partition advanced twice
            first = progress.offsets()
            _wait(lambda: all(progress.offsets().get((tp.topic, tp.partition), -1)
                              > first.get((tp.topic, tp.partition), -1) for tp in touches), "a warm group", 180)
            time.sleep(5)
            at_kill = progress.offsets()
            killed = time.monotonic()
            workers[1].kill()
            if restart:
                workers[1] = WorkerProcess(settings, Path(tmp) / "w1", "1").start()
            resumed: dict[tuple[str, int], float] = {}
            deadline = killed + session_timeout + 180
            while len(resumed) < len(touches) and time.monotonic() < deadline:
                now = progress.offsets()
                for tp in touches:
                    key = (tp.topic, tp.partition)
                    if key not in resumed and now.get(key, -1) > at_kill.get(key, -1):
                        resumed[key] = time.monotonic() - killed
                time.sleep(0.1)
            if len(resumed) < len(touches):
                raise TimeoutError(f"only {len(resumed)} of {len(touches)} partitions resumed")
            return max(resumed.values())
        finally:
            load.stop_event.set()
            load.join(30)
            progress.close()
            for w in workers:
                w.stop()
            delete_worker_topics(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="touches produced per second")
    parser.add_argument("--session-timeouts", default="20,6",
                        help="comma-separated session timeouts (s); the first is the baseline")
    parser.add_argument("--bootstrap", default="localhost:9092")
    args = parser.parse_args()
    timeouts = [float(x) for x in args.session_timeouts.split(",")]
    print(f"== failover: kill -9 of one of two workers, {args.rate:.0f} touches/s ==")
    print(f"{'scenario':<52}{'pause':>9}  goal")
    for timeout in timeouts:
        pause = measure(args.bootstrap, args.rate, timeout, restart=False, static=False)
        goal = timeout + 5
        print(f"{f'killed, session timeout {timeout:g} s':<52}{pause:>8.1f}s  <= {goal:g} s "
              f"{'MEETS' if pause <= goal else 'MISSES'}", flush=True)
    shortest = min(timeouts)
    for static in (False, True):
        pause = measure(args.bootstrap, args.rate, shortest, restart=True, static=static)
        label = f"killed and restarted, {'static' if static else 'dynamic'} membership, {shortest:g} s"
        print(f"{label:<52}{pause:>8.1f}s", flush=True)


if __name__ == "__main__":
    main()
