"""Outage: ClickHouse unavailable for 30 seconds in the middle of a stream.

The sink's ClickHouse client is wrapped so that, while the outage lasts, every insert
fails; the very first failing insert reaches the engine and only its acknowledgement
is lost (the nastiest case: a retry re-sends a block the engine already has). The
sink must pause, retry with backoff, and end with exactly the produced rows in every
table — none lost, none doubled — and reports equal to the plain-Python oracle.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ground.errors import SinkError
from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import Database, connect
from sinks.contact_rows import CONTACT_COLUMNS, contact_row, stored_states, with_previous
from sinks.migrate import MIGRATIONS_DIR, apply_migrations
from sinks.report_params import ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from tests.integration.sink_feed import Truth, enriched_feed, generate_world, ref_attribution, ref_sources
from tests.integration.sink_support import compare, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 30.0


class FlakyDatabase(Database):
    """The real engine behind a switch: inserts fail while ``down`` is set."""

    def __init__(self, real: Database) -> None:
        super().__init__(real.client, real.database)
        self.down = threading.Event()
        self.failures = 0
        self.lost_acks = 0

    def _insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        # optimize_on_insert=0: the replacing engines would otherwise collapse versions inside
        # a block on write, and raw row counts could not prove "none lost, none doubled"
        super().insert(table, rows, column_names, settings={"optimize_on_insert": 0})

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str],
               settings: dict[str, Any] | None = None) -> None:
        if self.down.is_set():
            self.failures += 1
            if self.lost_acks == 0:
                self.lost_acks += 1
                self._insert(table, rows, column_names)  # the engine has it, the sink never hears so
            raise SinkError("ClickHouse unavailable (injected outage)")
        self._insert(table, rows, column_names)


def _leads(db: Database) -> list[tuple[Any, ...]]:
    return db.query(f"SELECT lead_channel, sum(leads) FROM {db.database}.lead_counts "
                    "GROUP BY lead_channel HAVING sum(leads) != 0 ORDER BY lead_channel")[1]


def test_a_block_stored_before_its_lost_acknowledgement_counts_once(settings: Settings) -> None:
    """The retry re-sends a contact block the engine has: lead_counts must not count it again.

    Seen in the engine-outage chaos scenario as surplus contacts: the engine dropped the
    repeated block from contact_versions but still fed it to the view.
    """
    db = connect(settings)
    apply_migrations(db)
    at = datetime(2026, 1, 5, tzinfo=UTC)
    records = [{"contact_id": "c1", "version": 1, "event_time": at, "reason": "touch", "lead_channel": "Email",
                "lead_source": "newsletter", "first_touch_time": at},
               {"contact_id": "c2", "version": 1, "event_time": at, "reason": "identify"}]
    block = with_previous([contact_row(r) for r in records], {})
    db.insert("contact_versions", block, CONTACT_COLUMNS)
    db.insert("contact_versions", block, CONTACT_COLUMNS)  # the retry after the lost acknowledgement
    assert _leads(db) == [("Email", 1), ("Unknown", 1)]
    later = with_previous([contact_row({**records[1], "version": 2, "lead_channel": "Email"})],
                          stored_states(db, block))
    db.insert("contact_versions", later, CONTACT_COLUMNS)  # a distinct block still counts
    assert _leads(db) == [("Email", 2)]
    # negative control: the same check sees a block that really was counted twice
    db.insert("contact_versions", block, CONTACT_COLUMNS,
              settings={"insert_deduplicate": 0, "deduplicate_blocks_in_dependent_materialized_views": 0})
    assert _leads(db) != [("Email", 2)]


def test_the_migration_repairs_counts_a_doubled_block_left(settings: Settings, tmp_path: Path) -> None:
    """A database that counted a block twice before migration 0005 gets its counts rebuilt."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("000[1-4]_*.sql")):
        shutil.copy(path, before)
    db = connect(settings)
    apply_migrations(db, directory=before)
    at = datetime(2026, 2, 1, tzinfo=UTC)
    block = with_previous([contact_row({"contact_id": f"c{i}", "version": 1, "event_time": at, "reason": "touch",
                                        "lead_channel": "Referral", "first_touch_time": at}) for i in range(3)], {})
    db.insert("contact_versions", block, CONTACT_COLUMNS)
    db.insert("contact_versions", block, CONTACT_COLUMNS)  # counted twice without the window
    assert _leads(db) == [("Referral", 6)]
    applied = apply_migrations(db)
    assert applied[0] == "0005_view_block_dedup" and applied == sorted(applied)  # and any later ones
    assert _leads(db) == [("Referral", 3)]


def test_thirty_second_outage_loses_nothing_and_doubles_nothing(topics: Settings) -> None:
    """Rows end exact after a 30 s outage mid-stream; reports equal the oracle."""
    settings = topics.model_copy(update={"sink_batch_rows": 50, "sink_batch_seconds": 0.2})
    world = generate_world(seed=21)
    truth = Truth(world)
    feed = enriched_feed(world)
    half = len(feed) // 2
    db = FlakyDatabase(connect(settings))
    service = SinkService(settings, db, serve_api=False)  # applies the migrations
    for table in ("touches", "contact_versions", "deal_versions", "identity_links", "dead_letters"):
        # background merges would collapse duplicates and versions on their own and hide
        # a doubled insert: with merges stopped the raw row counts must match exactly
        db.command(f"SYSTEM STOP MERGES {settings.clickhouse_database}.{table}")
    service.start()
    try:
        first = produce(settings, feed[:half])
        wait_for(lambda: sum(service.sink.stats.rows.values()) >= sum(first.values()), 60, "the first half to land")
        db.down.set()
        started = time.monotonic()
        second = produce(settings, feed[half:])
        wait_for(lambda: db.failures >= 1, 180, "the sink to hit the outage")
        # the outage itself is the scenario: the engine stays away for 30 seconds of wall time
        wait_for(lambda: time.monotonic() - started >= OUTAGE_SECONDS, OUTAGE_SECONDS + 30,
                 "the outage to last 30 s")
        failures_during = db.failures
        paused_during = service.sink.stats.paused
        db.down.clear()
        total = first + second
        wait_for(lambda: all(service.sink.stats.rows.get(t, 0) >= n for t, n in total.items()),
                 180, "every row to be acknowledged after the outage")
    finally:
        service.stop()
    print(f"outage: {OUTAGE_SECONDS:.0f}s, {failures_during} failed inserts retried "
          f"({service.sink.stats.insert_failures} retries), one with a lost acknowledgement")
    assert failures_during >= 3, "the sink must keep retrying through the outage"
    assert paused_during, "consumption must be paused while ClickHouse is away"
    for table, n in total.items():
        _, rows = db.query(f"SELECT count() FROM {settings.clickhouse_database}.{table}")
        assert rows[0][0] == n, f"{table}: {rows[0][0]} rows stored, {n} produced"
        print(f"outage: {table}: {n} produced, {rows[0][0]} stored")
    # negative control: the same check must see a block that really was inserted twice
    _, dup = db.query(f"SELECT count() FROM {settings.clickhouse_database}.touches")
    db.command(f"INSERT INTO {settings.clickhouse_database}.touches SELECT * FROM "
               f"{settings.clickhouse_database}.touches LIMIT 3", settings={"insert_deduplicate": 0})
    _, again = db.query(f"SELECT count() FROM {settings.clickhouse_database}.touches")
    assert again[0][0] == dup[0][0] + 3 != total["touches"], "the row-count check must catch doubled rows"
    compare("sources after outage", run_report(db, "sources", ReportParams()), ref_sources(truth), ["lead_source"])
    compare("attribution w_shaped after outage", run_report(db, "attribution", ReportParams(model="w_shaped")),
            ref_attribution(truth, "w_shaped"), ["channel"])
