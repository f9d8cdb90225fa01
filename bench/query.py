"""Benchmark of the analytical layer (not a test): report latency, sink insert rate, freshness.

Run: ``.venv/bin/python bench/query.py`` (defaults: 10M touches, 1M contacts, 100k deals;
``--scale 0.1`` for a quick run). It needs the local Kafka broker (``leadstream kafka up``)
and uses a fresh embedded engine in a temporary directory. Everything is measured in the
same run and printed next to its baseline and goal:

1. Report latency: each report's warm median over the latest-state views, next to the
   same report written as a plain GROUP BY over the raw touch table (the lead source
   recomputed from the touches themselves with argMin, no contact versions): sources,
   quarterly, funnel, contact-sources, quality and attribution under each of the 9 models.
   Goal: every report <= 1 s, ``sources`` <= 50 ms. Every table is first settled
   (OPTIMIZE … FINAL, as background merges leave it); the reports are exact either way.
2. Insert rate: the real sink (Kafka -> batches -> ClickHouse, the engine decoding the
   Avro bodies) consuming enriched touches, next to a raw engine insert (Native format,
   columnar) of the same rows by clickhouse-connect; the median of 3 runs of each.
   Goal: sink >= 0.4x raw.
3. Freshness over the whole path: ``leadstream collector``, one ``leadstream worker`` and
   ``leadstream sink`` (embedded engine, query API) run as child processes on their own
   topics. A burst of signed deal changes POSTed to ``/webhooks/deals`` gives the maximum
   end-to-end rate (changes/s until ``sources`` counts them all); then ``won`` changes are
   posted open-loop at half that rate while a poller reads ``sources``, and each change's
   freshness is the time from its POST until the report's won total includes it; then the
   same again while 30-second analyst queries (``POST /sql``, stopped by the analyst time
   limit) keep running. Goal: p99 <= 2 s, both without and with the analyst query.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import Topics
from leadstream.stack import Stack
from leadstream.testing.harness import delete_worker_topics
from leadstream.testing.processes import settings_env
from leadstream.testing.waiting import http_ok, wait_for
from producers.collector.signing import sign
from schemas.codec import encode
from sinks.clickhouse import Database, connect
from sinks.migrate import apply_migrations
from sinks.report_params import MODELS, ReportParams
from sinks.reports import run_report
from sinks.rows import TABLES
from sinks.service import SinkService

CHANNELS = ["Paid Search", "Paid Social", "Organic Search", "Email", "Referral", "Direct", "Webinar", "Events",
            "Partner", "Unknown"]
T0_MS = 1_735_689_600_000  # 2025-01-01
DAY = 86_400_000


def load(db: Database, touches: int, contacts: int, deals: int) -> dict[str, float]:
    """Generate the dataset inside the engine (INSERT … SELECT FROM numbers, columnar)."""
    d = db.database
    timings: dict[str, float] = {}
    channels = "[" + ", ".join(f"'{c}'" for c in CHANNELS) + "]"
    started = time.perf_counter()
    db.command(f"""
        INSERT INTO {d}.contact_versions (contact_id, version, event_time, reason, merged_into, merged_contact_ids,
            anonymous_ids, created_at, first_touch_event_id, first_touch_time, lead_channel, lead_source,
            lead_detail, contact_source, stage_times, touch_count, engagement_score)
        SELECT 'c' || toString(number), 1, toDateTime64(({T0_MS} + number % 700 * 86400000) / 1000, 3, 'UTC'),
               'first_touch', NULL, [], ['a' || toString(number)],
               toDateTime64(({T0_MS} + number % 700 * 86400000 + 3600000) / 1000, 3, 'UTC'),
               'e' || toString(number), toDateTime64(({T0_MS} + number % 700 * 86400000) / 1000, 3, 'UTC'),
               {channels}[1 + cityHash64(number) % 10], 'src' || toString(cityHash64(number) % 40),
               'cmp' || toString(cityHash64(number, 1) % 200),
               if(number % 3 = 0, NULL, ['Alice Contacts', 'Bob Contacts', 'Purchased List', 'Web Form'][
                   1 + number % 4]),
               map('lead', {T0_MS} + number % 700 * 86400000), 10, 1.0
        FROM numbers({contacts}) SETTINGS max_insert_threads = 2
    """)
    timings["contacts"] = time.perf_counter() - started
    started = time.perf_counter()
    db.command(f"""
        INSERT INTO {d}.touches (event_id, event_time, received_at, processed_at, anonymous_id, contact_id,
            touch_type, utm_source, utm_medium, utm_campaign, channel, source, detail, rule, taxonomy_version,
            is_bot, sequence)
        SELECT 'e' || toString(number), toDateTime64(({T0_MS} + (number % {contacts}) % 700 * 86400000
                   + intDiv(number, {contacts}) * 3600000) / 1000, 3, 'UTC') AS t, t, t,
               'a' || toString(number % {contacts}), if(number % 10 = 0, 'c' || toString(number % {contacts}), ''),
               'page_view', 'src', 'cpc', 'cmp',
               {channels}[1 + cityHash64(number % {contacts}, intDiv(number, {contacts})) % 10],
               'src' || toString(cityHash64(number) % 40), 'cmp' || toString(cityHash64(number, 1) % 200),
               'bench', 'bench', false, 1
        FROM numbers({touches}) SETTINGS max_insert_threads = 2
    """)
    timings["touches"] = time.perf_counter() - started
    started = time.perf_counter()
    db.command(f"""
        INSERT INTO {d}.deal_versions (deal_id, stamp_version, version, event_time, change, status, amount,
            currency, primary_contact_id, contact_ids, created_at, closed_at, lead_channel, lead_source,
            lead_detail, contact_source)
        SELECT 'd' || toString(intDiv(number, 2)), number % 2 + 1, number % 2 + 1,
               toDateTime64(({T0_MS} + intDiv(number, 2) % 700 * 86400000 + number % 2 * 30 * 86400000) / 1000,
                            3, 'UTC'),
               if(number % 2 = 0, 'created', 'closed'),
               if(number % 2 = 0, 'open', ['won', 'lost', 'open'][1 + cityHash64(number) % 3]),
               toFloat64(1000 * (1 + cityHash64(number) % 50)), 'USD',
               'c' || toString(intDiv(number, 2) * 7 % {contacts}), [],
               toDateTime64(({T0_MS} + intDiv(number, 2) % 700 * 86400000) / 1000, 3, 'UTC'),
               if(number % 2 = 1, toDateTime64(({T0_MS} + intDiv(number, 2) % 700 * 86400000 + 30 * 86400000)
                                               / 1000, 3, 'UTC'), NULL),
               {channels}[1 + cityHash64(intDiv(number, 2) * 7 % {contacts}) % 10], 'src1', 'cmp1', 'Web Form'
        FROM numbers({deals * 2})
    """)
    timings["deals"] = time.perf_counter() - started
    # every table settled, as after background merges (the views and reports are exact either way)
    _, tables = db.query("SELECT name FROM system.tables WHERE database = {d:String} AND engine LIKE '%MergeTree'",
                         {"d": d})
    for (table,) in tables:
        db.command(f"OPTIMIZE TABLE {d}.{table} FINAL")
    return timings


#: The same reports as plain GROUP BYs over the raw touch table (lead source recomputed).
def plain_sql(db: str) -> dict[str, str]:
    first_touch = f"""
        SELECT key AS contact_id, argMin(channel, (event_time, event_id)) AS lead, min(event_time) AS ft
        FROM (SELECT if(contact_id != '', contact_id, 'c' || substring(anonymous_id, 2)) AS key, channel,
                     event_time, event_id FROM {db}.touches)
        GROUP BY key"""
    return {
        "sources": f"""
            SELECT lead, count() AS leads, sum(n) AS deals, sum(w) AS won
            FROM ({first_touch}) AS f
            LEFT JOIN (SELECT primary_contact_id, count() AS n, countIf(status = 'won') AS w
                       FROM {db}.deal_versions GROUP BY primary_contact_id) AS d
                ON d.primary_contact_id = f.contact_id
            GROUP BY lead""",
        "quarterly": f"""
            SELECT toStartOfQuarter(ft) AS q, lead, count() FROM ({first_touch}) GROUP BY q, lead""",
        "funnel": f"""
            SELECT f.lead AS lead, count() AS leads, countIf(d.n > 0) AS opportunity, countIf(d.w > 0) AS customer
            FROM ({first_touch}) AS f
            LEFT JOIN (SELECT primary_contact_id, count() AS n, countIf(status = 'won') AS w
                       FROM {db}.deal_versions GROUP BY primary_contact_id) AS d
                ON d.primary_contact_id = f.contact_id
            GROUP BY lead""",
        "contact-sources": f"""
            SELECT ifNull(c.contact_source, 'Unknown') AS cs, count() AS contacts
            FROM {db}.contact_versions AS c
            INNER JOIN (SELECT DISTINCT 'c' || substring(anonymous_id, 2) AS k FROM {db}.touches) AS t
                ON t.k = c.contact_id
            GROUP BY cs""",
        "quality": f"""
            SELECT taxonomy_version, uniqExact(event_id) AS touches,
                   uniqExactIf(event_id, channel NOT IN ('Unknown', 'Unclassified')) AS classified
            FROM {db}.touches GROUP BY taxonomy_version""",
        # a last-touch-like credit: every touch of a won deal's primary contact, by channel
        "attribution": f"""
            SELECT t.channel AS channel, count() AS credit
            FROM {db}.touches AS t
            INNER JOIN (SELECT DISTINCT primary_contact_id FROM {db}.deal_versions WHERE status = 'won') AS d
                ON d.primary_contact_id = if(t.contact_id != '', t.contact_id, 'c' || substring(t.anonymous_id, 2))
            GROUP BY channel""",
    }


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Warm median in milliseconds (one warm-up run first)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


REPORT_LIMIT_S = 120
REPORT_GOAL_MS = 1000.0
SOURCES_GOAL_MS = 50.0


def report_latencies(db: Database, repeat: int) -> list[tuple[str, float, float]]:
    """Every report's warm median next to its plain GROUP BY over the raw touches; (name, ms, plain ms)."""
    db.client.set_client_setting("max_execution_time", REPORT_LIMIT_S)
    print(f"\n== report latency (warm median of {repeat}; goal: each <= {REPORT_GOAL_MS:.0f} ms, "
          f"sources <= {SOURCES_GOAL_MS:.0f} ms) ==")
    print(f"{'report':<28}{'leadstream':>12}{'plain GROUP BY':>16}{'speed-up':>10}  verdict")
    plains = plain_sql(db.database)
    plain_ms = {name: timed(lambda s=sql: db.query(s), 3) for name, sql in plains.items()}
    variants = [("sources", ReportParams()), ("quarterly", ReportParams()), ("funnel", ReportParams()),
                ("contact-sources", ReportParams()), ("quality", ReportParams())]
    variants += [("attribution", ReportParams(model=model)) for model in MODELS]
    results = []
    for name, params in variants:
        ours = timed(lambda n=name, p=params: run_report(db, n, p), repeat)
        base = plain_ms[name]
        goal = SOURCES_GOAL_MS if name == "sources" else REPORT_GOAL_MS
        label = f"{name} {params.model}" if name == "attribution" else name
        print(f"{label:<28}{ours:>10.1f}ms{base:>14.1f}ms{base / ours:>9.1f}x  "
              f"{'MEETS' if ours <= goal else 'MISSES'} (<= {goal:.0f} ms)")
        results.append((label, ours, base))
    worst = max(results, key=lambda r: r[1])
    print(f"   slowest: {worst[0]} {worst[1]:.1f} ms; every report <= {REPORT_GOAL_MS:.0f} ms -> "
          f"{'MEETS' if all(r[1] <= REPORT_GOAL_MS for r in results) else 'MISSES'}")
    return results


def touch_records(n: int) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        t = T0_MS + i * 1000
        records.append({
            "event_id": str(uuid.UUID(int=i + 1)), "event_time": t, "received_at": t, "processed_at": t,
            "anonymous_id": f"ins-a{i % 50_000}", "contact_id": None, "touch_type": "page_view",
            "url": "https://example.com/?utm_source=google&utm_medium=cpc", "referrer": None,
            "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand", "click_id_type": None,
            "channel": CHANNELS[i % 10], "source": "google", "detail": "brand", "rule": "bench",
            "taxonomy_version": "bench", "is_bot": False, "sequence": 1,
        })
    return records


def _sink_rate(settings: Settings, db: Database, n: int) -> float:
    """Rows/s of one real sink reading the n touches from the start, under a fresh consumer group."""
    service = SinkService(settings, db, serve_api=False, group_id=f"bench-insert-{uuid.uuid4().hex[:6]}")
    service.start()
    deadline = time.monotonic() + 900
    # timed from the first message consumed (the consumer-group join is start-up, not throughput)
    while service.sink.stats.messages == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    started = time.perf_counter()
    while service.sink.stats.rows.get("touches", 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    rate = service.sink.stats.rows.get("touches", 0) / (time.perf_counter() - started)
    service.stop()
    return rate


def insert_rates(settings: Settings, db: Database, n: int, runs: int = 3) -> None:
    print(f"\n== insert rate: {n:,} enriched touches (median of {runs} runs each) ==")
    spec = TABLES["EnrichedTouch"]
    records = touch_records(n)
    rows = [spec.convert(r) for r in records]
    db.command(f"CREATE TABLE {db.database}.raw_insert AS {db.database}.touches")
    raw_rates = []
    for _ in range(runs):
        db.command(f"TRUNCATE TABLE {db.database}.raw_insert")
        started = time.perf_counter()
        for k in range(0, n, settings.sink_batch_rows):
            db.insert("raw_insert", rows[k:k + settings.sink_batch_rows], spec.columns)
        raw_rates.append(n / (time.perf_counter() - started))

    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config(**{"linger.ms": 50, "batch.num.messages": 10000}))
    for r in records:
        value = encode("EnrichedTouch", r)
        while True:
            try:
                producer.produce(topics.enriched_touches, key=r["anonymous_id"].encode(), value=value)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)
    sink_rates = [_sink_rate(settings, db, n) for _ in range(runs)]
    raw_rate, sink_rate = statistics.median(raw_rates), statistics.median(sink_rates)
    print(f"raw engine insert (Native, clickhouse-connect, {settings.sink_batch_rows:,}-row blocks): "
          f"{raw_rate:>10,.0f} rows/s  ({', '.join(f'{r:,.0f}' for r in raw_rates)})")
    print(f"sink (Kafka -> Avro -> batches -> ClickHouse, offsets committed):      {sink_rate:>10,.0f} rows/s  "
          f"({', '.join(f'{r:,.0f}' for r in sink_rates)})")
    print(f"   goal: sink >= 0.4x raw -> {'MEETS' if sink_rate >= 0.4 * raw_rate else 'MISSES'} "
          f"({sink_rate / raw_rate:.2f}x)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stack:
    """Collector, one worker and the sink as child processes on their own topics and engine."""

    def __init__(self, bootstrap: str, workdir: Path, batch_seconds: float) -> None:
        prefix = f"benchf{uuid.uuid4().hex[:6]}-"
        self.secret = secrets.token_hex(16)
        self.settings = Settings.model_validate({
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CLICKHOUSE_URL": f"chdb://{workdir}/chdb",
            "LEADSTREAM_TOPIC_PREFIX": prefix, "LEADSTREAM_APP_ID": f"ls-{prefix.rstrip('-')}",
            "LEADSTREAM_CLICKHOUSE_DATABASE": "fresh", "LEADSTREAM_DATA_DIR": str(workdir / "data"),
            "LEADSTREAM_QUERY_PORT": _free_port(), "LEADSTREAM_COLLECTOR_PORT": _free_port(),
            "LEADSTREAM_WEBHOOK_SECRET": self.secret, "LEADSTREAM_SINK_BATCH_SECONDS": batch_seconds})
        self.stack = Stack(workdir / "logs")
        self.collector = f"http://{self.settings.collector_host}:{self.settings.collector_port}"
        self.sources_url = f"http://{self.settings.query_host}:{self.settings.query_port}/reports/sources"

    def start(self) -> None:
        from streams.worker import worker_datadir

        create_topics(self.settings)
        env = settings_env(self.settings)
        self.stack.start("sink", ["sink"], env)
        self.stack.start("worker", ["worker", "--id", "0", "--no-create-topics", "--loglevel", "warning"], env)
        self.stack.start("collector", ["collector"], env)
        ready = worker_datadir(self.settings.data_dir, self.settings.stream_app_id, "0") / "READY"
        query = self.sources_url.rsplit("/reports/", 1)[0]
        for check, what in ((http_ok(f"{self.collector}/healthz"), "the collector"),
                            (http_ok(f"{query}/healthz"), "the sink"), (ready.exists, "the worker")):
            wait_for(lambda c=check: self._alive() and c(), 180, what)  # type: ignore[misc]

    def _alive(self) -> bool:
        self.stack.check_alive()  # raises with the child's log when one died
        return True

    def stop(self) -> None:
        self.stack.stop()
        delete_worker_topics(self.settings)  # raw, enriched, repartition and changelog topics


def _post_deal(client: httpx.Client, secret: str, deal: dict[str, Any]) -> None:
    raw = json.dumps(deal).encode()
    ts = str(int(time.time()))
    resp = client.post("/webhooks/deals", content=raw, headers={
        "content-type": "application/json", "X-Leadstream-Timestamp": ts,
        "X-Leadstream-Signature": sign(secret, ts, raw)})
    if resp.status_code >= 300:
        raise RuntimeError(f"the collector refused a deal change: {resp.status_code} {resp.text[:200]}")


def _deal(k: int, change: str, version: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"event_id": str(uuid.uuid4()), "event_time": now, "deal_id": f"fresh-{k}", "change": change,
            "stage": "closedwon" if change == "won" else "appointment", "amount": 1000.0 + k, "currency": "USD",
            "primary_contact_id": f"fresh-c{k % 10}", "contact_ids": [f"fresh-c{k % 10}"], "version": version}


def _totals(client: httpx.Client, url: str) -> tuple[int, int]:
    """(deals, won) summed over every row of `sources` by channel."""
    resp = client.get(url, params={"by": "channel"})
    if resp.status_code != 200:
        return 0, 0
    rows = resp.json()
    return sum(int(r.get("deals") or 0) for r in rows), sum(int(r.get("won") or 0) for r in rows)


#: An analyst query that runs until the analyst time limit (30 s by default) stops it.
SLOW_SQL = "SELECT count() FROM numbers(1000000000000) WHERE sipHash64(number) % 7 = 1"


def _probe(run: _Stack, post: httpx.Client, poll: httpx.Client, *, rate: float, first: int, probes: int,
           won_before: int) -> list[float]:
    """Post `won` changes for deals first..first+probes-1 open-loop at ``rate``; each one's freshness in s.

    A poller watches the won total of `sources`; the k-th change counts as visible when the
    total first reaches won_before + k + 1 (a change can only be counted once it was sent,
    so this never runs ahead of the sender).
    """
    sent: list[float] = []
    seen: list[float] = []
    done = threading.Event()

    def poller() -> None:
        deadline = time.monotonic() + 600
        while len(seen) < probes and time.monotonic() < deadline and not done.is_set():
            won = _totals(poll, run.sources_url)[1] - won_before
            now = time.perf_counter()
            while len(seen) < min(won, probes):
                seen.append(now)

    watcher = threading.Thread(target=poller, name="sources-poller", daemon=True)
    watcher.start()
    interval = 1 / rate
    begin = time.perf_counter()
    for k in range(probes):
        time.sleep(max(0.0, begin + k * interval - time.perf_counter()))
        sent.append(time.perf_counter())
        _post_deal(post, run.secret, _deal(first + k, "won", 2))
    watcher.join(120)
    done.set()
    if len(seen) < probes:
        raise RuntimeError(f"only {len(seen)} of {probes} won changes showed up in `sources`")
    return sorted(s - t for s, t in zip(seen, sent, strict=True))


def _print_latencies(label: str, latencies: list[float]) -> float:
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"{label}: freshness p50 {p50:.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s"
          f" -> {'MEETS' if p99 <= 2 else 'MISSES'} (goal p99 <= 2 s)")
    return p99


def freshness(bootstrap: str, burst: int, probes: int, batch_seconds: float) -> None:
    print(f"\n== freshness: deal change POSTed to the collector -> visible in `sources` "
          f"(collector + worker + sink processes; {probes} changes without, {probes} with a 30 s analyst query) ==")
    probes = min(probes, burst // 2)
    with tempfile.TemporaryDirectory(prefix="ls-bench-fresh-") as tmp:
        run = _Stack(bootstrap, Path(tmp), batch_seconds)
        try:
            run.start()
            post = httpx.Client(base_url=run.collector, timeout=30)
            poll = httpx.Client(timeout=30)
            # warm-up (not timed): group joins, first batches, the report's first run
            _post_deal(post, run.secret, _deal(burst, "created", 1))
            wait_for(lambda: _totals(poll, run.sources_url)[0] >= 1, 180, "the warm-up deal in `sources`", 0.05)
            # the maximum rate: a burst of `created` changes, posted back to back, until `sources` counts them all
            started = time.perf_counter()
            for k in range(burst):
                _post_deal(post, run.secret, _deal(k, "created", 1))
            posted_s = time.perf_counter() - started
            wait_for(lambda: run._alive() and _totals(poll, run.sources_url)[0] >= burst + 1, 600,
                       "the burst in `sources`", 0.02)
            max_rate = burst / (time.perf_counter() - started)
            rate = max_rate / 2
            print(f"max rate: burst of {burst} deal changes posted in {posted_s:.2f}s ({burst / posted_s:,.0f}/s), "
                  f"all in `sources` after {burst / max_rate:.2f}s -> {max_rate:,.0f} changes/s end to end")
            print(f"probes: `won` changes at {rate:,.1f}/s (half the max); sink batch window {batch_seconds}s")
            quiet = _probe(run, post, poll, rate=rate, first=0, probes=probes, won_before=0)
            _print_latencies("without an analyst query", quiet)

            # the same while analyst queries that each run for 30 s (the analyst time limit) keep
            # one analyst connection busy through POST /sql
            query_api = run.sources_url.rsplit("/reports/", 1)[0]
            stop = threading.Event()
            analyst_runs: list[float] = []

            def analyst() -> None:
                with httpx.Client(timeout=120) as client:
                    while not stop.is_set():
                        began = time.monotonic()
                        client.post(f"{query_api}/sql", json={"sql": SLOW_SQL})
                        analyst_runs.append(time.monotonic() - began)

            worker = threading.Thread(target=analyst, name="slow-analyst", daemon=True)
            worker.start()
            time.sleep(2.0)  # the slow query is on the engine
            busy = _probe(run, post, poll, rate=rate, first=probes, probes=probes, won_before=probes)
            stop.set()
            worker.join(60)
            post.close()
            poll.close()
        finally:
            run.stop()
    longest = max(analyst_runs, default=0.0)
    _print_latencies(f"with a 30 s analyst query running (longest analyst query {longest:.1f} s)", busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10M touches, 1M contacts, 100k deals")
    parser.add_argument("--insert-rows", type=int, default=200_000)
    parser.add_argument("--probes", type=int, default=200, help="deal changes of the freshness phase")
    parser.add_argument("--burst", type=int, default=1000, help="deal changes of the maximum-rate burst")
    parser.add_argument("--fresh-batch-seconds", type=float, default=0.1, help="the sink's batch window there")
    parser.add_argument("--freshness-only", action="store_true", help="skip the load, latency and insert phases")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per report (after one warm-up)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    if args.freshness_only:
        freshness(args.bootstrap, args.burst, args.probes, args.fresh_batch_seconds)
        return
    touches, contacts, deals = int(10_000_000 * args.scale), int(1_000_000 * args.scale), int(100_000 * args.scale)
    prefix = f"bench{uuid.uuid4().hex[:6]}-"
    with tempfile.TemporaryDirectory(prefix="ls-bench-") as tmp:
        settings = Settings(KAFKA_BOOTSTRAP_SERVERS=args.bootstrap, CLICKHOUSE_URL=f"chdb://{tmp}/chdb",
                            LEADSTREAM_TOPIC_PREFIX=prefix, LEADSTREAM_CLICKHOUSE_DATABASE="bench",
                            LEADSTREAM_APP_ID=prefix.rstrip("-"), LEADSTREAM_QUERY_PORT=18124,
                            LEADSTREAM_SINK_BATCH_ROWS=20_000)
        create_topics(settings)
        db = connect(settings)
        try:
            apply_migrations(db)
            started = time.perf_counter()
            timings = load(db, touches, contacts, deals)
            print(f"loaded {touches:,} touches, {contacts:,} contacts, {deals:,} deals "
                  f"in {time.perf_counter() - started:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in timings.items())})")
            report_latencies(db, args.repeat)
            insert_rates(settings, db, args.insert_rows)
        finally:
            db.close()
            delete_topics(settings, Topics(prefix).all())
    freshness(args.bootstrap, args.burst, args.probes, args.fresh_batch_seconds)


if __name__ == "__main__":
    main()
