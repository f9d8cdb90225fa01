"""Report oracle and replay against ``tests/oracle`` (the project's plain-Python ground truth).

The stream worker is another stage, so the enriched feed is built FROM the oracle:
one EnrichedTouch per raw touch delivery (duplicates included, classified by the
product's taxonomy), one ContactVersion per live contact preceded by a superseded
version carrying wrong values, merged-away contacts with ``merged_into``, and one
EnrichedDeal version per deal change where only the latest carries the right stamp.
It goes through the real broker (4 partitions) into a real sink on the embedded
engine; every number of ``sources`` and ``quarterly`` (each --by level),
``contact-sources`` and every attribution model (by channel and by source, won only
and with open/lost deals) must equal ``tests/oracle/reports.py``. Then the sink's
consumer group is reset to the beginning and everything is consumed again: every
report must be unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import Database, connect
from sinks.report_params import MODELS, ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from sinks.sink import SINK_TOPICS
from tests.integration.sink_support import FeedItem, all_reports, produce, reset_offsets, same
from tests.oracle.batch import Batch
from tests.oracle.generator import Dataset, generate
from tests.oracle.reports import Reports, diff

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Classify = Callable[[dict[str, Any]], tuple[str, str, str]]


def _classifier() -> Classify:
    from streams.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()

    def classify(touch: dict[str, Any]) -> tuple[str, str, str]:
        c = taxonomy.classify(touch)
        return c.channel, c.source, c.detail

    return classify


class _WithoutMaterializedCte(Database):
    """The real engine, answering a materialized CTE as an engine without the feature does."""

    refused = 0

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        if "AS MATERIALIZED" in sql:
            self.refused += 1
            raise DatabaseError("Code: 115. DB::Exception: Unknown setting 'enable_materialized_cte'. "
                                "(UNKNOWN_SETTING)")
        return super().query(sql, parameters, settings)


def stage_times_of(batch: Batch) -> dict[str, dict[str, int]]:
    """Lifecycle stage times for the live contacts (the oracle has none of its own), named as
    CRMs name them: every funnel stage, loose spellings, a stage before the lead (out of order)."""
    day = 86_400_000
    shapes = [
        {"MQL": 1, "Sales Qualified Lead": 5},
        {"subscriber": -2, "marketingqualifiedlead": 2},
        {"opportunity": 10},
        {},
        {"mql": -3, "SQL": 4, "Customer": 40},
        {"lead": -1, "Marketing-Qualified Lead": 3, "opp": 20, "won": 30},
    ]
    out: dict[str, dict[str, int]] = {}
    for k, (contact_id, c) in enumerate(sorted(batch.contacts().items())):
        born = c.created_at if c.created_at is not None else c.first_touch_time
        if born is not None:
            out[contact_id] = {name: born + offset * day for name, offset in shapes[k % len(shapes)].items()}
    return out


def build_feed(data: Dataset, arrivals: list[Any], batch: Batch) -> list[FeedItem]:
    """What the worker would publish for these arrivals, in a per-key-ordered interleaving."""
    feed: list[FeedItem] = []
    processed = data.max_event_time + 1000
    for topic, _key, touch in arrivals:
        if topic != "touches":
            continue
        channel, source, detail = batch.classification(touch)
        owner = sorted(batch.owners(touch))
        processed += 1
        feed.append(("enriched-touches", touch["contact_id"] or touch["anonymous_id"], {
            "event_id": touch["event_id"], "event_time": touch["event_time"],
            "received_at": touch.get("received_at") or touch["event_time"], "processed_at": processed,
            "anonymous_id": touch.get("anonymous_id"),
            # the worker knows the contact only when it saw the identify first: leave it out
            # for anonymous touches, the sink must resolve them through the contact versions
            "contact_id": touch.get("contact_id"),
            "touch_type": touch["touch_type"], "url": touch.get("url"), "referrer": touch.get("referrer"),
            "utm_source": touch.get("utm_source"), "utm_medium": touch.get("utm_medium"),
            "utm_campaign": touch.get("utm_campaign"), "click_id_type": None, "channel": channel,
            "source": source, "detail": detail, "rule": "taxonomy", "taxonomy_version": "default",
            "is_bot": bool(touch.get("is_bot")), "sequence": len(owner),
        }))
    contacts = batch.contacts()
    stage_times = stage_times_of(batch)
    version = 10_000
    for contact_id, c in sorted(contacts.items()):
        live = {
            "contact_id": contact_id, "event_time": c.created_at or 0, "reason": "first_touch",
            "merged_into": None, "merged_contact_ids": list(c.merged_contact_ids),
            "anonymous_ids": list(c.anonymous_ids), "created_at": c.created_at,
            "first_touch_event_id": c.first_touch_event_id, "first_touch_time": c.first_touch_time,
            "first_touch_type": None, "lead_channel": c.lead_channel, "lead_source": c.lead_source,
            "lead_detail": c.lead_detail, "contact_source": c.contact_source, "owner": None,
            "lifecycle_stage": None, "stage_times": stage_times.get(contact_id, {}), "lead_method": c.lead_method,
            "touch_count": c.touch_count, "touches_by_channel": {}, "first_seen": None, "last_seen": None,
            "last_channel": None, "engagement_score": 0.0,
        }
        version += 7
        feed.append(("enriched-contacts", contact_id, {**live, "version": version, "lead_channel": "Stale",
                                                       "lead_source": "stale", "contact_source": "Stale List",
                                                       "merged_contact_ids": [], "anonymous_ids": []}))
        version += 7
        feed.append(("enriched-contacts", contact_id, {**live, "version": version}))
    for absorbed, survivor in sorted(batch.merged_into.items()):
        base = {"contact_id": absorbed, "event_time": 0, "reason": "merge", "merged_into": None,
                "merged_contact_ids": [], "anonymous_ids": [], "lead_channel": "Unknown", "lead_source": "Unknown",
                "lead_detail": "", "stage_times": {}, "touches_by_channel": {}}
        version += 7
        feed.append(("enriched-contacts", absorbed, {**base, "version": version}))  # live before the merge
        version += 7
        feed.append(("enriched-contacts", absorbed, {**base, "version": version, "reason": "merged_away",
                                                     "merged_into": survivor}))
    changes_of: dict[str, list[dict[str, Any]]] = {}
    for topic, _key, change in arrivals:
        if topic == "deals":
            changes_of.setdefault(change["deal_id"], []).append(change)
    for deal_id, d in sorted(batch.deals().items()):
        changes = sorted({c["event_id"]: c for c in changes_of[deal_id]}.values(),
                         key=lambda c: (c["version"], c["event_time"], c["event_id"]))
        stamp = 0
        for k, change in enumerate(changes):
            stamp += 1000
            last = k == len(changes) - 1
            record = {
                "deal_id": deal_id, "stamp_version": stamp, "version": change["version"],
                "event_time": change["event_time"], "change": change["change"],
                "status": d.status if last else "open", "stage": change.get("stage"),
                "amount": d.amount if last else change.get("amount"),
                "currency": d.currency if last else (change.get("currency") or "USD"), "owner": None,
                "pipeline": None, "close_reason": None, "source_system": "oracle",
                "primary_contact_id": d.primary_contact_id if last else change["primary_contact_id"],
                "contact_ids": list(d.contact_ids) if last else list(change.get("contact_ids") or []),
                "created_at": d.created_at, "closed_at": d.closed_at if last else None,
                "lead_channel": d.lead_channel if last else "Stale",
                "lead_source": d.lead_source if last else "stale", "lead_detail": d.lead_detail if last else "",
                "contact_source": d.contact_source if last else "Stale List",
                "first_touch_time": d.first_touch_time, "first_touch_event_id": None, "prev_status": None,
                "prev_amount": None, "prev_lead_channel": None, "prev_lead_source": None,
                "prev_lead_detail": None,
            }
            feed.append(("enriched-deals", deal_id, record))
    return _interleave(feed)


def _interleave(feed: list[FeedItem]) -> list[FeedItem]:
    """Round-robin over keys: entities interleave, each key keeps its order (as a keyed topic does)."""
    queues: dict[tuple[str, str], list[FeedItem]] = {}
    for item in feed:
        queues.setdefault((item[0], item[1]), []).append(item)
    out: list[FeedItem] = []
    pending = list(queues.values())
    while pending:
        for q in pending:
            out.append(q.pop(0))
        pending = [q for q in pending if q]
    return out


def test_every_report_equals_the_oracle_and_a_replay_changes_nothing(topics: Settings) -> None:
    """sources, quarterly, contact-sources and all 9 attribution models equal tests/oracle; replay is a no-op."""
    settings = topics
    classify = _classifier()
    data = generate(seed=7, contacts=300, touches=3000, deals=80, merges=12)
    arrivals = data.arrival(seed=11)
    batch = Batch(arrivals, classify)
    oracle = Reports(arrivals, classify)
    feed = build_feed(data, arrivals, batch)
    expected_rows = produce(settings, feed)

    db = connect(settings)
    service = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(service.sink.stats.rows.get(t, 0) >= n for t, n in expected_rows.items()),
                 300, f"the sink to acknowledge {dict(expected_rows)}")
    finally:
        service.stop()

    problems: list[str] = []
    compared: list[str] = []

    def check(name: str, want: list[dict[str, Any]], got: Any, key: list[str], zero_missing: bool = False) -> None:
        assert isinstance(got, list)
        found = diff(want, got, key=key, zero_missing=zero_missing)
        values = sum(len(r) for r in want)
        compared.append(f"{name}: {len(want)} rows, {values} values, {'OK' if not found else 'DIFFERENT'}")
        problems.extend(f"{name}: {p}" for p in found)

    stage_times = stage_times_of(batch)
    for by in ("channel", "source", "detail"):
        check(f"sources --by {by}", oracle.sources(by), run_report(db, "sources", ReportParams(by=by)),
              ["lead_source"])
        check(f"quarterly --by {by}", oracle.quarterly(by), run_report(db, "quarterly", ReportParams(by=by)),
              ["quarter", "lead_source"])
        check(f"funnel --by {by}", oracle.funnel(by, stage_times), run_report(db, "funnel", ReportParams(by=by)),
              ["lead_source"])
    quality = run_report(db, "quality", ReportParams(top=1000))
    want_quality = oracle.quality("default", top=1000)
    assert isinstance(quality, dict)
    check("quality contacts", [want_quality["contacts"]], [quality["contacts"]], ["contacts"])
    check("quality unclassified_pairs", want_quality["unclassified_pairs"], quality["unclassified_pairs"],
          ["utm_source", "utm_medium"])
    check("quality taxonomy_coverage", want_quality["taxonomy_coverage"], quality["taxonomy_coverage"],
          ["taxonomy_version"])
    assert quality["dead_letters"] == []
    for since, until in (("2025-04-01", "2025-10-01"), ("2025-07-15", None), (None, "2025-03-02")):
        params = ReportParams.parse({"by": "channel", "since": since or "", "until": until or ""})
        check(f"sources --since {since} --until {until}", oracle.sources("channel", since, until),
              run_report(db, "sources", params), ["lead_source"])
    check("contact-sources", oracle.contact_sources(), run_report(db, "contact-sources", ReportParams()),
          ["contact_source"])
    for model in MODELS:
        for by in ("channel", "source", "detail"):
            for iol in (False, True):
                params = ReportParams(model=model, by=by, include_open_lost=iol)  # type: ignore[arg-type]
                check(f"attribution --model {model} --by {by}{' --include-open-lost' if iol else ''}",
                      oracle.attribution(model, by, include_open_lost=iol),
                      run_report(db, "attribution", params), ["channel"], zero_missing=True)
    # an engine without materialized CTEs (ClickHouse servers before them) refuses the
    # attribution query as written: the report then runs its plain variant, same rows
    older = _WithoutMaterializedCte(db.client, db.database, "chdb://an-engine-without-materialized-ctes")
    for model in ("w_shaped", "time_decay"):
        params = ReportParams(model=model, by="source")  # type: ignore[arg-type]
        check(f"attribution --model {model} --by source, no materialized CTE",
              oracle.attribution(model, "source"), run_report(older, "attribution", params), ["channel"],
              zero_missing=True)
    assert older.refused >= 1
    print("\n".join(compared))
    won = sum(1 for d in batch.deals().values() if d.status == "won")
    print(f"oracle: {len(batch.contacts())} live contacts, {len(batch.merged_into)} merged away, "
          f"{len({t['event_id'] for t in data.touches})} touches ({sum(1 for a in arrivals if a[0] == 'touches')} "
          f"delivered), {len(batch.deals())} deals ({won} won); {len(compared)} reports compared")
    assert problems == [], "\n".join(problems[:40])

    before = all_reports(db)
    reset_offsets(settings, service.sink.group_id, SINK_TOPICS)
    replay = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(replay.sink.stats.rows.get(t, 0) >= n for t, n in expected_rows.items()),
                 300, "the replay to be acknowledged")
    finally:
        replay.stop()
    after = all_reports(db)
    changed = [name for name in before if not same(before[name], after[name])]
    print(f"replay: {sum(replay.sink.stats.rows.values())} rows delivered again, "
          f"{len(before) - len(changed)}/{len(before)} reports unchanged")
    assert changed == []
