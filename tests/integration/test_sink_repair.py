"""A sink that died between a table's part and its view's part is repaired when it starts.

The embedded engine stores a contact version's part before the ``lead_counts`` delta its
materialized view derives from it, and a touch before its ``touch_sources`` row. Killing
the sink between the two (tests/chaos/test_sink_crash_points.py does it for real) leaves
versions stored without their deltas, and no replay brings them back. Here that state is
made exactly: a small world is sunk normally, then the view deltas of some lead-count
keys and every ``touch_sources`` row are taken away, as a crash would have left them.
The next sink must correct both before consuming, and every report must be as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import Database, connect
from sinks.report_params import ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from sinks.sink import Sink
from tests.integration.sink_feed import Truth, enriched_feed, generate_world, ref_sources
from tests.integration.sink_support import compare, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "lead_channel, lead_source, lead_detail, has_touch, first_touch_day"


def _counted_vs_live(db: Database, database: str) -> list[tuple[Any, ...]]:
    """lead_counts keys whose sum differs from the live contacts they stand for."""
    _, rows = db.query(
        f"SELECT {KEY}, c.n, l.n FROM (SELECT {KEY}, sum(leads) AS n FROM {database}.lead_counts GROUP BY {KEY}) "
        f"AS c FULL OUTER JOIN (SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, "
        f"lead_detail, toUInt8(first_touch_time IS NOT NULL) AS has_touch, "
        f"toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC') AS first_touch_day, count() AS n "
        f"FROM {database}.contacts_live GROUP BY {KEY}) AS l USING ({KEY}) WHERE c.n != l.n")
    return rows


def test_lost_view_deltas_are_corrected_before_consuming(topics: Settings) -> None:
    settings = topics
    world = generate_world(seed=5)
    truth = Truth(world)
    rows = produce(settings, enriched_feed(world))
    db = connect(settings)
    d = settings.clickhouse_database
    service = SinkService(settings, db, serve_api=False).start()
    try:
        wait_for(lambda: all(service.sink.stats.rows.get(t, 0) >= n for t, n in rows.items()), 180, "the feed to land")
    finally:
        service.stop()
    before = run_report(db, "sources", ReportParams())
    compare("sources before the crash", before, ref_sources(truth), ["lead_source"])
    assert _counted_vs_live(db, d) == []

    # what a crash between the parts leaves: versions stored, three keys' deltas never written
    db.command(f"INSERT INTO {d}.lead_counts ({KEY}, leads) SELECT {KEY}, -sum(leads) FROM {d}.lead_counts "
               f"GROUP BY {KEY} HAVING sum(leads) > 0 ORDER BY {KEY} LIMIT 3")
    db.command(f"TRUNCATE TABLE {d}.touch_sources")
    broken = _counted_vs_live(db, d)
    assert len(broken) == 3, "the damage must be visible to the check"
    assert run_report(db, "sources", ReportParams()) != before

    Sink(settings, db)  # a restarted sink repairs before it consumes
    assert _counted_vs_live(db, d) == []
    compare("sources after the repair", run_report(db, "sources", ReportParams()), ref_sources(truth),
            ["lead_source"])
    _, again = db.query(f"SELECT count() FROM {d}.lead_counts")
    Sink(settings, db)  # nothing to repair: nothing is inserted
    assert db.query(f"SELECT count() FROM {d}.lead_counts")[1] == again
    db.close()
