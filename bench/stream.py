"""Benchmark of the stream worker (not a test): events/s, against two baselines, and memory.

Measured in one run, on the same freshly produced topics (touches + identities of N
touches over C anonymous visitors, every visitor identified once):

1. raw drain: a plain confluent-kafka consumer reading both topics to their end;
2. the leadstream worker (one process): touch decode, classification, identity lookup,
   first-touch update, enriched outputs, contact stage behind it; timed from "ready"
   until its consumer group has committed everything (raw and internal topics);
3. a naive Faust agent over the same topics: one table write and one ``await send``
   per event, no batching; and a bare Faust agent that only consumes (the ceiling of
   any agent that iterates a Faust stream on the machine);
4. the worker's resident memory growth, scaled to 100k contacts.

Goals (issue 4): worker >= 0.25x raw drain and >= 10x the naive agent.

    .venv/bin/python bench/stream.py [--touches 60000] [--contacts 10000]

Needs the broker (KAFKA_BOOTSTRAP_SERVERS, default localhost:9092). Topics get a fresh
prefix per run; they are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from ground.kafka_admin import create_topics  # noqa: E402
from ground.settings import Settings, get_settings  # noqa: E402
from ground.topics import Topics  # noqa: E402
from leadstream.testing.harness import LagProbe, WorkerProcess, delete_worker_topics, end_offsets  # noqa: E402
from leadstream.testing.processes import settings_env  # noqa: E402
from schemas.codec import encode  # noqa: E402

T0 = 1_735_689_600_000  # 2025-01-01
SOURCES = [("google", "cpc"), ("facebook", "paid_social"), ("newsletter", "email"), ("linkedin", "social"),
           (None, None)]


def build_events(touches: int, contacts: int, seed: int = 1) -> list[tuple[str, bytes, bytes]]:
    """(topic base, key, Avro value): touches of ``contacts`` anonymous ids, one identify each."""
    rng = random.Random(seed)
    anons = [f"anon-{i:07d}" for i in range(contacts)]
    events: list[tuple[str, bytes, bytes]] = []
    for i in range(touches):
        anon = anons[i % contacts] if i < contacts else rng.choice(anons)
        src, med = rng.choice(SOURCES)
        t = T0 + rng.randrange(0, 365 * 86_400_000)
        touch = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "event_time": t,
                 "received_at": t, "anonymous_id": anon, "contact_id": None, "touch_type": "page_view",
                 "url": "https://www.leadstream.example/pricing", "utm_source": src, "utm_medium": med,
                 "utm_campaign": "spring" if src else None}
        events.append(("touches", anon.encode(), encode("Touch", touch)))
    for i, anon in enumerate(anons):
        t = T0 + rng.randrange(0, 365 * 86_400_000)
        ident = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "event_time": t,
                 "received_at": t, "anonymous_id": anon, "contact_id": f"contact-{i:07d}"}
        events.append(("identities", anon.encode(), encode("Identify", ident)))
    rng.shuffle(events)
    return events


def produce_raw(settings: Settings, events: list[tuple[str, bytes, bytes]]) -> None:
    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config(**{"linger.ms": 20}))
    for base, key, value in events:
        while True:
            try:
                producer.produce(topics.name(base), key=key, value=value)
                break
            except BufferError:
                producer.poll(0.2)
    assert producer.flush(120) == 0


def raw_drain(settings: Settings) -> tuple[int, float]:
    """Read touches + identities to their end with a plain consumer: (messages, seconds)."""
    topics = Topics(settings.topic_prefix)
    ends = {tp: high for tp, high in end_offsets(settings, [topics.touches, topics.identities]).items() if high}
    consumer = Consumer(settings.kafka_consumer_config(f"bench-drain-{uuid.uuid4().hex[:6]}",
                                                       **{"fetch.min.bytes": 1}))
    consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
    todo = dict(ends)
    count = 0
    start = time.perf_counter()
    while todo:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error():
                continue
            count += 1
            _ = msg.value()
            tp = (str(msg.topic()), int(msg.partition() or 0))
            if tp in todo and int(msg.offset() or 0) + 1 >= todo[tp]:
                del todo[tp]
    elapsed = time.perf_counter() - start
    consumer.close()
    return count, elapsed


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_drained(settings: Settings, group: str, bases: tuple[str, ...], proc: subprocess.Popen[bytes] | None,
                 timeout: float = 1800) -> float:
    """Seconds until ``group`` has committed everything on ``bases``."""
    probe = LagProbe(settings, group, bases)
    start = time.perf_counter()
    try:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}")
            if probe.lag() == 0:
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{group} not drained after {timeout}s")
            time.sleep(0.5)  # poll interval of the lag
    finally:
        probe.close()


# ---- baseline agents (each in its own process: `bench/stream.py --baseline-agent naive|bare`) ----

def naive_agent_main(kind: str) -> None:
    """``naive``: table write + await send per event; ``bare``: consumes and does nothing."""
    import faust

    settings = get_settings()
    topics = Topics(settings.topic_prefix)
    (settings.data_dir / kind).mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{settings.app_id}-{kind}", broker=f"kafka://{settings.kafka_bootstrap_servers}",
                    store="rocksdb://", datadir=str(settings.data_dir / kind), web_enabled=False,
                    topic_partitions=settings.topic_partitions, processing_guarantee="at_least_once",
                    table_standby_replicas=0, consumer_auto_offset_reset="earliest")
    source = app.topic(topics.touches, topics.identities, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    out = app.topic(topics.name("naive-out"), key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")
    table = app.Table("naive", default=None, partitions=settings.topic_partitions)

    @app.agent(source, name="naive", concurrency=1)
    async def naive(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if kind == "bare":
                continue
            key = event.key.decode() if event.key else ""
            table[key] = {"seen": event.message.offset}
            await out.send(key=event.key, value=event.value)

    ready = settings.data_dir / kind / "READY"

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            ready.write_text("ready\n")

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touches", type=int, default=60_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--baseline-agent", choices=("naive", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_agent:
        naive_agent_main(args.baseline_agent)
        return

    base = get_settings()
    prefix = f"bench{uuid.uuid4().hex[:6]}-"
    workdir = Path(tempfile.mkdtemp(prefix="ls-bench-"))
    settings = base.model_copy(update={"topic_prefix": prefix, "app_id": f"ls-{prefix.rstrip('-')}",
                                       "data_dir": workdir})
    topics = Topics(prefix)
    create_topics(settings, [*topics.all(), topics.name("naive-out")])
    try:
        print(f"building {args.touches} touches over {args.contacts} visitors (+1 identify each) ...")
        events = build_events(args.touches, args.contacts)
        produce_raw(settings, events)
        n = len(events)

        count, secs = raw_drain(settings)
        raw_rate = count / secs
        print(f"raw confluent-kafka drain : {count} msgs in {secs:6.2f}s = {raw_rate:10.0f} msg/s")

        worker = WorkerProcess(settings, workdir / "worker").start()
        worker.wait_ready()
        assert worker.proc is not None
        rss0 = rss_kb(worker.proc.pid)
        secs = wait_drained(settings, settings.stream_app_id,
                            ("touches", "identities", "contacts", "deals", "contact-events", "deal-events"),
                            worker.proc)
        rss1 = rss_kb(worker.proc.pid)
        worker.stop()
        worker_rate = n / secs
        print(f"leadstream worker (1 proc): {n} raw events in {secs:6.2f}s = {worker_rate:10.0f} events/s "
              f"(end to end: identity and contact stages)")

        env = settings_env(settings, LEADSTREAM_DATA_DIR=str(workdir))
        rates = {}
        for kind in ("naive", "bare"):
            proc = subprocess.Popen([sys.executable, __file__, "--baseline-agent", kind], env=env,
                                    stdout=subprocess.DEVNULL, stderr=(workdir / f"{kind}.log").open("wb"))
            try:
                ready = workdir / kind / "READY"
                while not ready.exists():  # the clock starts when the agent is up, as for the worker
                    if proc.poll() is not None:
                        raise RuntimeError(f"{kind} agent exited: see {workdir / f'{kind}.log'}")
                    time.sleep(0.1)
                secs = wait_drained(settings, f"{settings.app_id}-{kind}", ("touches", "identities"), proc)
            finally:
                proc.terminate()
                proc.wait(60)
            rates[kind] = n / secs
        naive_rate = rates["naive"]
        print(f"naive Faust agent         : {n} raw events at {naive_rate:10.0f} events/s "
              f"(table write + await send per event)")
        print(f"bare Faust agent          : {n} raw events at {rates['bare']:10.0f} events/s "
              f"(consumes, does nothing: the framework's ceiling here)")

        per_100k = (rss1 - rss0) / 1024 / args.contacts * 100_000
        print(f"worker memory             : RSS {rss0 / 1024:.0f} MiB ready -> {rss1 / 1024:.0f} MiB after "
              f"{args.contacts} contacts = {per_100k:.0f} MiB per 100k contacts")
        print(f"ratio vs raw drain        : {worker_rate / raw_rate:6.3f}x  (goal >= 0.25x) "
              f"{'MEETS' if worker_rate / raw_rate >= 0.25 else 'MISSES'}")
        print(f"ratio vs naive agent      : {worker_rate / naive_rate:6.2f}x  (goal >= 10x) "
              f"{'MEETS' if worker_rate / naive_rate >= 10 else 'MISSES'}")
        print(f"ratio bare agent vs raw   : {rates['bare'] / raw_rate:6.3f}x  (what any per-event Faust agent "
              f"can reach on this machine)")
        print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    finally:
        delete_worker_topics(settings)  # raw, enriched, internal, changelog and baseline topics
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
