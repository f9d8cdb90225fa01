"""Analyst isolation: a long analyst query never holds ingestion, and analysts queue apart.

The sink used to share its one engine connection (and its lock) with the query API: a
30-second query through ``POST /sql`` kept a webhook's deal out of ClickHouse for 29.5 s.
Here an analyst query that runs until its time limit is in flight while a contact
arrives: the contact must reach ``sources`` while that query is still running, the API
must keep answering, and a query beyond the analyst connections is told to come back
(503) instead of queueing behind it forever.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from ground.settings import Settings
from leadstream.testing.processes import free_port
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import connect
from sinks.report_params import ReportParams
from sinks.reports import run_report
from sinks.service import SinkService
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Runs until the analyst time limit stops it: far more rows than any machine hashes in 12 s.
SLOW_SQL = "SELECT count() FROM numbers(1000000000000) WHERE sipHash64(number) % 7 = 1"
LIMIT_S = 12.0


def _leads(db: Any) -> int:
    rows = run_report(db, "sources", ReportParams())
    return sum(int(r["leads"]) for r in rows if r["lead_source"] == "Paid Search")  # type: ignore[index]


def test_a_long_analyst_query_holds_neither_ingestion_nor_the_api(topics: Settings) -> None:
    """A contact reaches `sources` while a 12-second analyst query runs; a second analyst query gets 503."""
    settings = topics.model_copy(update={"query_port": free_port(), "analyst_connections": 1,
                                         "analyst_queue_seconds": 1.0, "analyst_timeout_seconds": LIMIT_S})
    service = SinkService(settings, connect(settings), serve_api=True).start()
    base = f"http://{settings.query_host}:{settings.query_port}"
    slow: dict[str, Any] = {}

    def analyst() -> None:
        started = time.monotonic()
        response = httpx.post(f"{base}/sql", json={"sql": SLOW_SQL}, timeout=120)
        slow.update(status=response.status_code, body=response.text[:300], seconds=time.monotonic() - started)

    thread = threading.Thread(target=analyst, name="slow-analyst", daemon=True)
    try:
        thread.start()
        time.sleep(1.0)  # the slow query is on the engine (it cannot finish before LIMIT_S)
        touch = one_touch(contact_id=None, anonymous_id="anon-iso")
        produce(settings, [("enriched-touches", "anon-iso", touch),
                           ("enriched-contacts", "c-iso", one_contact("c-iso", touch))])
        wait_for(lambda: _leads(service.db) == 1, 60, "the contact to reach sources")
        still_running = thread.is_alive()
        health = httpx.get(f"{base}/healthz", timeout=10)
        busy = httpx.post(f"{base}/sql", json={"sql": "SELECT 1"}, timeout=30)
        thread.join(LIMIT_S + 60)
    finally:
        service.stop()
    print(f"analyst query: {slow}; contact in sources while it ran: {still_running}; "
          f"second query answered {busy.status_code}")
    assert still_running, f"ingestion waited for the analyst query: {slow}"
    assert health.status_code == 200
    assert busy.status_code == 503 and "busy" in busy.json()["error"], busy.text
    assert slow["seconds"] >= LIMIT_S - 1 and slow["status"] == 400, slow  # stopped by its time limit
