"""Helpers of the sink integration tests: produce a feed, wait for the sink, compare reports."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from schemas.codec import encode
from sinks.report_params import MODELS, ReportParams
from sinks.reports import run_report
from sinks.rows import TABLES

FeedItem = tuple[str, str, dict[str, Any]]


def produce(settings: Settings, items: Iterable[FeedItem], raw: Iterable[tuple[str, bytes]] = ()) -> Counter[str]:
    """Produce feed items (Avro) and raw payloads to the test's topics; returns rows per table."""
    topics = Topics(settings.topic_prefix)
    producer = Producer(settings.kafka_producer_config())
    per_table: Counter[str] = Counter()
    for base, key, record in items:
        name = TOPIC_RECORDS[base]
        producer.produce(topics.name(base), key=key.encode(), value=encode(name, record))
        per_table[TABLES[name].table] += 1
        producer.poll(0)
    for base, payload in raw:
        producer.produce(topics.name(base), key=b"bad", value=payload)
    assert producer.flush(60) == 0
    return per_table


def reset_offsets(settings: Settings, group_id: str, bases: Iterable[str]) -> None:
    """Commit offset 0 on every partition of the topics for the group (a replay from the start)."""
    topics = Topics(settings.topic_prefix)
    consumer = Consumer(settings.kafka_consumer_config(group_id))
    try:
        offsets = []
        for base in bases:
            name = topics.name(base)
            md = consumer.list_topics(name, timeout=10)
            offsets += [TopicPartition(name, p, 0) for p in md.topics[name].partitions]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def compare(name: str, got: list[dict[str, Any]], expected: list[dict[str, Any]], key: list[str]) -> int:
    """Compare report rows by key: exact for ints/strings, 1e-9 for floats. Prints and returns the count."""
    g = {tuple(r[k] for k in key): r for r in got}
    e = {tuple(r[k] for k in key): r for r in expected}
    assert set(g) == set(e), f"{name}: row keys differ: only got {set(g) - set(e)}, only expected {set(e) - set(g)}"
    compared = 0
    for k, exp_row in e.items():
        assert set(g[k]) == set(exp_row), f"{name}: JSON keys {sorted(g[k])} != {sorted(exp_row)}"
        for column, want in exp_row.items():
            have = g[k][column]
            if isinstance(want, float) and have is not None:
                assert math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-9), f"{name} {k} {column}: {have} != {want}"
            else:
                assert have == want, f"{name} {k} {column}: {have!r} != {want!r}"
            compared += 1
    print(f"compared {name}: {len(e)} rows, {compared} values")
    return compared


def all_reports(db: Any) -> dict[str, Any]:
    """Every report variant, keyed by name and parameters: the replay tests compare two of these."""
    out: dict[str, Any] = {}
    for by in ("channel", "source", "detail"):
        out[f"sources/{by}"] = run_report(db, "sources", ReportParams(by=by))
        out[f"quarterly/{by}"] = run_report(db, "quarterly", ReportParams(by=by))
    out["contact-sources"] = run_report(db, "contact-sources", ReportParams())
    for model in MODELS:
        for by in ("channel", "source"):
            for iol in (False, True):
                params = ReportParams(model=model, by=by, include_open_lost=iol)  # type: ignore[arg-type]
                out[f"attribution/{model}/{by}/{iol}"] = run_report(db, "attribution", params)
    out["quality"] = run_report(db, "quality", ReportParams())
    out["funnel"] = run_report(db, "funnel", ReportParams())
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-9 (ClickHouse may sum in a different order between runs)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@contextmanager
def served_api(settings: Settings, db: Any, **app_options: Any) -> Iterator[Settings]:
    """The query API over ``db`` on a free port, as the sink serves it; yields the settings that reach it."""
    import threading

    import uvicorn

    from leadstream.testing.processes import free_port
    from leadstream.testing.waiting import wait_for
    from sinks.api import build_app

    settings = settings.model_copy(update={"query_port": free_port()})
    server = uvicorn.Server(uvicorn.Config(build_app(db, lambda: {"status": "ok"}, **app_options),
                                           host="127.0.0.1", port=settings.query_port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the query API")
        yield settings
    finally:
        server.should_exit = True
        thread.join(30)


def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``leadstream ARGS`` in this process with ``settings`` as its environment: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from ground.settings import get_settings
    from leadstream.cli import app
    from leadstream.testing.processes import settings_env

    env = settings_env(settings)
    env.setdefault("LEADSTREAM_QUERY_TOKEN", "")  # blank is unset, whatever this shell exports
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stdout, result.stderr


def enriched_deal(deal_id: str, *, status: str, closed_at: int | None, created_at: int, primary: str,
                  lead: tuple[str, str, str] = ("Paid Search", "google", "")) -> dict[str, Any]:
    """One EnrichedDeal record (its latest stamp), stamped with ``lead``."""
    return {
        "deal_id": deal_id, "stamp_version": 1, "version": 1, "event_time": closed_at or created_at,
        "change": status if status in ("won", "lost") else "created", "status": status, "stage": None,
        "amount": 1000.0, "currency": "USD", "owner": None, "pipeline": None, "close_reason": None,
        "source_system": "test", "primary_contact_id": primary, "contact_ids": [primary], "created_at": created_at,
        "closed_at": closed_at, "lead_channel": lead[0], "lead_source": lead[1], "lead_detail": lead[2],
        "contact_source": None, "first_touch_time": None, "first_touch_event_id": None, "prev_status": None,
        "prev_amount": None, "prev_lead_channel": None, "prev_lead_source": None, "prev_lead_detail": None}


def store(db: Any, **records: list[dict[str, Any]]) -> None:
    """Insert records into the tables of their record types (``EnrichedTouch=[...]``, ...)."""
    for name, rows in records.items():
        spec = TABLES[name]
        if rows:
            db.insert(spec.table, [spec.convert(r) for r in rows], spec.columns)
