"""Benchmark of the analytical layer (not a test): report latency, sink insert rate, freshness.

Run: ``.venv/bin/python bench/query.py`` (defaults: 10M touches, 1M contacts, 100k deals;
``--scale 0.1`` for a quick run). It needs the local Kafka broker (``leadstream kafka up``)
and uses a fresh embedded engine in a temporary directory. Everything is measured in the
same run and printed next to its baseline and goal:

1. Report latency: each report's warm median over the latest-state views, next to the
   same report written as a plain GROUP BY over the raw touch table (the lead source
   recomputed from the touches themselves with argMin, no contact versions).
   Goal: ``sources`` <= 100 ms and >= 10x faster than its plain GROUP BY.
2. Insert rate: the real sink (Kafka -> Avro decode -> batches -> ClickHouse) consuming
   enriched touches, next to a raw engine insert (Native format, columnar) of the same
   rows by clickhouse-connect. Goal: sink >= 0.4x raw.
3. Freshness: the stream worker and collector are separate stages, so this measures from
   an EnrichedDeal produced to the enriched-deals topic until ``sources`` served by the
   sink's query API shows it, for deal changes sent at half the maximum rate the probe
   loop sustains. Goal: p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import Producer

from leadstream.kafka_admin import create_topics, delete_topics
from leadstream.settings import Settings
from schemas.codec import encode
from schemas.topics import Topics
from sinks.clickhouse import Database, connect
from sinks.migrate import apply_migrations
from sinks.reports import ReportParams, run_report
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
    for table in ("touches", "contact_versions", "deal_versions"):
        db.command(f"OPTIMIZE TABLE {d}.{table} FINAL")  # a settled table, as after background merges
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
        "contact-sources": f"""
            SELECT ifNull(c.contact_source, 'Unknown') AS cs, count() AS contacts
            FROM {db}.contact_versions AS c
            INNER JOIN (SELECT DISTINCT 'c' || substring(anonymous_id, 2) AS k FROM {db}.touches) AS t
                ON t.k = c.contact_id
            GROUP BY cs""",
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


HEAVY_LIMIT_S = 120


def report_latencies(db: Database, repeat: int, heavy: bool = True) -> None:
    db.client.set_client_setting("max_execution_time", HEAVY_LIMIT_S)
    print("\n== report latency (warm median) ==")
    print(f"{'report':<26}{'leadstream':>12}{'plain GROUP BY':>16}{'speed-up':>10}")
    plains = plain_sql(db.database)
    for name, params in [("sources", ReportParams()), ("quarterly", ReportParams()),
                         ("funnel", ReportParams()), ("contact-sources", ReportParams()),
                         ("quality", ReportParams()), ("attribution", ReportParams(model="w_shaped"))]:
        if not heavy and name not in ("sources", "quarterly"):
            continue
        if name not in ("sources", "quarterly", "funnel"):
            # the reports that resolve every touch to its contacts are heavy at 10M touches:
            # one cold run, bounded, keeps the benchmark within minutes
            try:
                started = time.perf_counter()
                run_report(db, name, params)
                print(f"{name:<26}{(time.perf_counter() - started) * 1000:>10.1f}ms  (one run, not warm)")
            except Exception as exc:  # the engine's time limit
                print(f"{name:<26}{'> ' + str(HEAVY_LIMIT_S) + ' s':>12}  ({str(exc).splitlines()[0][:60]})")
            continue
        ours = timed(lambda n=name, p=params: run_report(db, n, p), repeat)
        if name in plains:
            sql = plains[name]
            base = timed(lambda s=sql: db.query(s), 3)
            print(f"{name:<26}{ours:>10.1f}ms{base:>14.1f}ms{base / ours:>9.1f}x")
        else:
            print(f"{name:<26}{ours:>10.1f}ms{'-':>16}{'':>10}")
        if name == "sources":
            verdict = "meets" if ours <= 100 and base / ours >= 10 else "MISSES"
            print(f"   goal: sources <= 100 ms and >= 10x plain -> {verdict} "
                  f"({ours:.1f} ms, {base / ours:.1f}x)")


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


def insert_rates(settings: Settings, db: Database, n: int) -> None:
    print(f"\n== insert rate: {n:,} enriched touches ==")
    spec = TABLES["EnrichedTouch"]
    records = touch_records(n)
    rows = [spec.convert(r) for r in records]
    db.command(f"CREATE TABLE {db.database}.raw_insert AS {db.database}.touches")
    started = time.perf_counter()
    for k in range(0, n, settings.sink_batch_rows):
        db.insert("raw_insert", rows[k:k + settings.sink_batch_rows], spec.columns)
    raw_rate = n / (time.perf_counter() - started)

    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config(**{"linger.ms": 50, "batch.num.messages": 10000}))
    for r in records:
        producer.produce(topics.enriched_touches, key=r["anonymous_id"].encode(), value=encode("EnrichedTouch", r))
        producer.poll(0)
    producer.flush(120)
    service = SinkService(settings, db, serve_api=False, group_id=f"bench-insert-{uuid.uuid4().hex[:6]}")
    service.start()
    deadline = time.monotonic() + 900
    # timed from the first message consumed (the consumer-group join is start-up, not throughput)
    while service.sink.stats.messages == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    started = time.perf_counter()
    while service.sink.stats.rows.get("touches", 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    sink_rate = service.sink.stats.rows.get("touches", 0) / (time.perf_counter() - started)
    service.stop()
    print(f"raw engine insert (Native, clickhouse-connect, {settings.sink_batch_rows:,}-row blocks): "
          f"{raw_rate:>10,.0f} rows/s")
    print(f"sink (Kafka -> Avro -> batches -> ClickHouse, offsets committed):      {sink_rate:>10,.0f} rows/s")
    print(f"   goal: sink >= 0.4x raw -> {'meets' if sink_rate >= 0.4 * raw_rate else 'MISSES'} "
          f"({sink_rate / raw_rate:.2f}x)")


def freshness(settings: Settings, db: Database, probes: int, backlog: int) -> None:
    print(f"\n== freshness: EnrichedDeal produced -> visible in `sources` via the query API ({probes} changes) ==")
    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config(**{"linger.ms": 0}))
    service = SinkService(settings, db, serve_api=True, group_id=f"bench-fresh-{uuid.uuid4().hex[:6]}").start()
    # the new consumer group starts from the beginning: let it catch up with the insert
    # phase's touches first, so the probes measure freshness, not a backlog
    deadline = time.monotonic() + 900
    while service.sink.stats.rows.get("touches", 0) < backlog and time.monotonic() < deadline:
        time.sleep(0.1)
    url = f"http://{settings.query_host}:{settings.query_port}/reports/sources"
    client = httpx.Client(timeout=30)

    def won_in(channel: str) -> int:
        rows = client.get(url, params={"by": "channel"}).json()
        return next((int(r["won"]) for r in rows if r["lead_source"] == channel), 0)

    # the maximum rate: how fast one produce + one visible check can go back to back
    started = time.perf_counter()
    for _ in range(3):
        won_in("Bench")
    query_s = (time.perf_counter() - started) / 3
    interval = 2 * query_s  # half the maximum rate
    latencies = []
    try:
        for k in range(probes):
            deal = {
                "deal_id": f"fresh-{k}", "stamp_version": 1, "version": 1, "event_time": T0_MS, "change": "won",
                "status": "won", "stage": None, "amount": 1000.0, "currency": "USD", "owner": None,
                "pipeline": None, "close_reason": None, "source_system": "bench", "primary_contact_id": "c1",
                "contact_ids": [], "created_at": T0_MS, "closed_at": T0_MS + DAY, "lead_channel": "Bench",
                "lead_source": "bench", "lead_detail": "", "contact_source": None, "first_touch_time": None,
                "first_touch_event_id": None, "prev_status": None, "prev_amount": None, "prev_lead_channel": None,
                "prev_lead_source": None, "prev_lead_detail": None,
            }
            sent = time.perf_counter()
            producer.produce(topics.enriched_deals, key=deal["deal_id"].encode(), value=encode("EnrichedDeal", deal))
            producer.flush(10)
            while won_in("Bench") < k + 1:
                if time.perf_counter() - sent > 60:
                    raise RuntimeError("a deal change did not show up within 60 s")
            latencies.append(time.perf_counter() - sent)
            time.sleep(max(0.0, interval - (time.perf_counter() - sent)))
    finally:
        client.close()
        service.stop()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"one `sources` call: {query_s * 1000:.0f} ms; probes every {interval * 1000:.0f} ms (half the max rate); "
          f"sink batch window {settings.sink_batch_seconds}s")
    print(f"freshness p50 {p50:.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s")
    print(f"   goal: p99 <= 2 s -> {'meets' if p99 <= 2 else 'MISSES'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10M touches, 1M contacts, 100k deals")
    parser.add_argument("--insert-rows", type=int, default=200_000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--skip-heavy", action="store_true",
                        help="only sources and quarterly latency (skip the reports that take minutes at 10M touches)")
    args = parser.parse_args()
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
            report_latencies(db, args.repeat, heavy=not args.skip_heavy)
            insert_rates(settings, db, args.insert_rows)
            freshness(settings.model_copy(update={"sink_batch_seconds": 0.1}), db, args.probes, args.insert_rows)
        finally:
            db.close()
            delete_topics(settings, Topics(prefix).all())


if __name__ == "__main__":
    main()
