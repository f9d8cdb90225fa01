"""Outage: ClickHouse unavailable for 30 seconds in the middle of a stream.

The sink's ClickHouse client is wrapped so that, while the outage lasts, every insert
fails; the very first failing insert reaches the engine and only its acknowledgement
is lost (the nastiest case: a retry re-sends a block the engine already has). The
sink must pause, retry with backoff, and end with exactly the produced rows in every
table — none lost, none doubled — and reports equal to the plain-Python oracle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from ground.errors import SinkError
from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import Database, connect
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
        with self.lock:
            self.client.insert(f"{self.database}.{table}", rows, column_names=list(column_names),
                               settings={"optimize_on_insert": 0})

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        if self.down.is_set():
            self.failures += 1
            if self.lost_acks == 0:
                self.lost_acks += 1
                self._insert(table, rows, column_names)  # the engine has it, the sink never hears so
            raise SinkError("ClickHouse unavailable (injected outage)")
        self._insert(table, rows, column_names)


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
