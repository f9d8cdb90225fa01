"""A sink that died between a table's part and its view's part is repaired when it starts.

The embedded engine stores a contact version's part before the ``lead_counts`` and
``lead_totals`` deltas its materialized views derive from it, and a touch before its
``touch_sources``, ``touch_source_totals`` and ``touch_quality`` rows. Killing
the sink between the two (tests/chaos/test_sink_crash_points.py does it for real) leaves
versions stored without their deltas, and no replay brings them back. Here that state is
made exactly: a small world is sunk normally, then the view deltas of some keys of both
lead aggregates, every row of both touch aggregates and some touch_quality rows are
taken away, as a crash would have left them. The next sink must correct all of them
before consuming, and the reports must be as before (ranged and not, and quality).
"""

from __future__ import annotations

from datetime import date
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
TOTAL_KEY = "lead_channel, lead_source, lead_detail"
DAY_COLUMNS = (", toUInt8(first_touch_time IS NOT NULL) AS has_touch, "
               "toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC') AS first_touch_day")
RANGED = ReportParams(since=date(2000, 1, 1), until=date(2100, 1, 1))


def _counted_vs_live(db: Database, database: str, table: str = "lead_counts") -> list[tuple[Any, ...]]:
    """Keys of a lead aggregate whose sum differs from the live contacts they stand for."""
    key = KEY if table == "lead_counts" else TOTAL_KEY
    _, rows = db.query(
        f"SELECT {key}, c.n, l.n FROM (SELECT {key}, sum(leads) AS n FROM {database}.{table} GROUP BY {key}) "
        f"AS c FULL OUTER JOIN (SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, "
        f"lead_detail{DAY_COLUMNS if table == 'lead_counts' else ''}, count() AS n "
        f"FROM {database}.contacts_live GROUP BY {key}) AS l USING ({key}) WHERE c.n != l.n")
    return rows


def _reports(db: Database) -> list[Any]:
    return [run_report(db, "sources", ReportParams()), run_report(db, "sources", RANGED),
            run_report(db, "quality", ReportParams())]


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
    before = _reports(db)
    compare("sources before the crash", before[0], ref_sources(truth), ["lead_source"])
    assert _counted_vs_live(db, d) == [] and _counted_vs_live(db, d, "lead_totals") == []

    # what a crash between the parts leaves: versions stored, three keys' deltas never written
    db.command(f"INSERT INTO {d}.lead_counts ({KEY}, leads) SELECT {KEY}, -sum(leads) FROM {d}.lead_counts "
               f"GROUP BY {KEY} HAVING sum(leads) > 0 ORDER BY {KEY} LIMIT 3")
    db.command(f"INSERT INTO {d}.lead_totals ({TOTAL_KEY}, leads) SELECT {TOTAL_KEY}, -sum(leads) "
               f"FROM {d}.lead_totals GROUP BY {TOTAL_KEY} HAVING sum(leads) > 0 ORDER BY {TOTAL_KEY} LIMIT 3")
    db.command(f"TRUNCATE TABLE {d}.touch_sources")
    db.command(f"TRUNCATE TABLE {d}.touch_source_totals")
    db.command(f"DELETE FROM {d}.touch_quality WHERE classified = 0")
    assert len(_counted_vs_live(db, d)) == 3, "the damage must be visible to the check"
    assert len(_counted_vs_live(db, d, "lead_totals")) == 3
    damaged = _reports(db)
    assert all(got != want for got, want in zip(damaged, before, strict=True)), "every report shows the damage"

    Sink(settings, db)  # a restarted sink repairs before it consumes
    assert _counted_vs_live(db, d) == [] and _counted_vs_live(db, d, "lead_totals") == []
    compare("sources after the repair", run_report(db, "sources", ReportParams()), ref_sources(truth),
            ["lead_source"])
    assert _reports(db) == before
    counts = "SELECT (SELECT count() FROM {d}.lead_counts), (SELECT count() FROM {d}.lead_totals), " \
             "(SELECT count() FROM {d}.touch_sources), (SELECT count() FROM {d}.touch_quality)"
    _, again = db.query(counts.format(d=d))
    Sink(settings, db)  # nothing to repair: nothing is inserted
    assert db.query(counts.format(d=d))[1] == again
    db.close()
