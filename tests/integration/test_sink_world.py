"""The sink against a small hand-built world with its own plain-Python reference.

Independent of ``tests/oracle``: :mod:`tests.integration.sink_feed` builds the raw facts
(merges in a chain, a touch owned by two contacts, ties broken by event_id, duplicates),
the reports straight from them, and the enriched feed with superseded versions. Every
number of ``sources``, ``quarterly``, ``contact-sources`` and every attribution model is
compared, then the whole feed is replayed from offset 0 and nothing may change. Also:
undecodable and misplaced messages are dead-lettered without stalling ingestion.
"""

from __future__ import annotations

from typing import Any

import pytest

from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from schemas.codec import encode
from sinks.clickhouse import connect
from sinks.report_params import MODELS, ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from sinks.sink import SINK_TOPICS
from tests.integration.sink_feed import (
    Truth,
    enriched_feed,
    generate_world,
    one_touch,
    ref_attribution,
    ref_contact_sources,
    ref_quarterly,
    ref_sources,
)
from tests.integration.sink_support import all_reports, compare, produce, reset_offsets, same

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _dead_letter(reason: str, n: int) -> dict[str, Any]:
    return {"event_id": f"00000000-0000-4000-9000-{n:012d}", "failed_at": 1_760_000_000_000, "stage": "collector",
            "reason": reason, "detail": None, "origin": "/p.gif", "origin_topic": None, "origin_partition": None,
            "origin_offset": None, "payload": b"?", "payload_truncated": False}


def test_reports_equal_plain_python_and_survive_replay(topics: Settings) -> None:
    """Every report number equals the plain-Python oracle, and a full replay changes nothing."""
    settings = topics
    world = generate_world()
    truth = Truth(world)
    feed = enriched_feed(world)
    dead = [("dead-letter", "x", _dead_letter("invalid_json", k)) for k in range(3)]
    dead += [("dead-letter", "x", _dead_letter("missing_field", 10 + k)) for k in range(2)]
    dead.append(dead[0])  # a dead letter delivered twice is still one
    expected_rows = produce(settings, feed + dead, raw=[("enriched-touches", b"not avro at all")])
    expected_rows["dead_letters"] += 1  # the sink dead-letters the garbage message, then stores that too

    db = connect(settings)
    service = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(service.sink.stats.rows.get(t, 0) >= n for t, n in expected_rows.items()),
                 180, f"the sink to acknowledge {dict(expected_rows)}")
    finally:
        service.stop()
    assert service.sink.stats.rows == dict(expected_rows)
    assert service.sink.stats.dead_letters == 1

    compared = 0
    for by in ("channel", "source", "detail"):
        compared += compare(f"sources --by {by}", run_report(db, "sources", ReportParams(by=by)),
                            ref_sources(truth, by), ["lead_source"])
        compared += compare(f"quarterly --by {by}", run_report(db, "quarterly", ReportParams(by=by)),
                            ref_quarterly(truth, by), ["quarter", "lead_source"])
    compared += compare("contact-sources", run_report(db, "contact-sources", ReportParams()),
                        ref_contact_sources(truth), ["contact_source"])
    for model in MODELS:
        for by in ("channel", "source"):
            for iol in (False, True):
                params = ReportParams(model=model, by=by, include_open_lost=iol)  # type: ignore[arg-type]
                compared += compare(f"attribution --model {model} --by {by} include_open_lost={iol}",
                                    run_report(db, "attribution", params),
                                    ref_attribution(truth, model, by, include_open_lost=iol), ["channel"])
    print(f"oracle: {len(truth.live)} live contacts, {len(truth.touch_by_id)} unique touches "
          f"({len(world.touches)} delivered), {len(truth.deals())} deals; {compared} values compared")

    quality = run_report(db, "quality", ReportParams())
    assert isinstance(quality, dict)
    assert quality["contacts"]["contacts_without_touch"] == sum(1 for c in truth.live if not truth.touches_of.get(c))
    assert {(r["stage"], r["reason"]): r["count"] for r in quality["dead_letters"]} == {
        ("collector", "invalid_json"): 3, ("collector", "missing_field"): 2, ("sink", "undecodable"): 1}
    assert quality["unclassified_pairs"][0]["utm_source"] == "weird"

    before = all_reports(db)
    reset_offsets(settings, service.sink.group_id, SINK_TOPICS)
    replay = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(replay.sink.stats.rows.get(t, 0) >= n for t, n in expected_rows.items()),
                 180, "the replay to be acknowledged")
    finally:
        replay.stop()
    after = all_reports(db)
    for name, result in before.items():
        assert same(after[name], result), f"replay changed {name}: {after[name]} != {result}"
    print(f"replay: {sum(replay.sink.stats.rows.values())} rows re-delivered, {len(before)} reports unchanged")


def test_undecodable_message_is_dead_lettered_and_ingestion_continues(topics: Settings) -> None:
    """Corrupt and misplaced messages go to the dead-letter topic with a reason; the good one is stored."""
    from confluent_kafka import Consumer

    from ground.topics import Topics
    from schemas.codec import decode

    settings = topics
    touch = one_touch()
    produce(settings, [], raw=[("enriched-deals", b"\xc3\x01garbage"),
                               ("enriched-contacts", encode("EnrichedTouch", touch))])
    produce(settings, [("enriched-touches", "anon-1", touch)])
    db = connect(settings)
    service = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: service.sink.stats.rows.get("touches", 0) >= 1
                 and service.sink.stats.rows.get("dead_letters", 0) >= 2,
                 180, "the good touch and both dead letters to be stored")
    finally:
        service.stop()
    consumer = Consumer(settings.kafka_consumer_config(f"{settings.app_id}-dlq-check"))
    consumer.subscribe([Topics(settings.topic_prefix).dead_letter])
    reasons: list[str] = []

    def collect() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            reasons.append(decode(msg.value(), expect="DeadLetter")[1]["reason"])
        return len(reasons) >= 2

    try:
        wait_for(collect, 60, "two dead letters on the dead-letter topic")
    finally:
        consumer.close()
    assert sorted(reasons) == ["undecodable", "unexpected_record"]
    _, rows = db.query(f"SELECT reason FROM {settings.clickhouse_database}.dead_letters ORDER BY reason")
    assert [r[0] for r in rows] == ["undecodable", "unexpected_record"]
