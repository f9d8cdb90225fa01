"""``rep-sources`` (contact sources per rep) against a recomputation from the records."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ground.settings import Settings
from sinks.clickhouse import connect
from sinks.migrate import apply_migrations
from sinks.report_params import ReportParams
from sinks.reports import run_report
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import enriched_deal, store
from tests.oracle.reports import diff

pytestmark = [pytest.mark.integration]

REPS = ["Ana", "Bob", None]
SOURCES = ["Ana Contacts", "Purchased list", "Web form", None]


def test_rep_sources_equal_the_recomputation(clickhouse_url: str, tmp_path: Path) -> None:
    settings = Settings(CLICKHOUSE_URL=clickhouse_url, LEADSTREAM_DATA_DIR=str(tmp_path),
                        LEADSTREAM_CLICKHOUSE_DATABASE=f"ls_reps_{uuid.uuid4().hex[:8]}")
    rng = random.Random(3)
    contacts, deals = [], []
    for i in range(120):
        c = one_contact(f"c{i}", one_touch(str(uuid.uuid4()), anonymous_id=f"a{i}", event_time=1_750_000_000_000))
        c.update(owner=rng.choice(REPS), contact_source=rng.choice(SOURCES))
        contacts.append(c)
    contacts[5].update(merged_into="c6", reason="merged_away", version=2)  # not a live contact any more
    contacts[6]["merged_contact_ids"] = ["c5"]
    for i in range(70):
        primary = "c5" if i == 0 else f"c{rng.randrange(120)}"  # a deal of the merged-away id counts for c6
        deals.append(enriched_deal(f"d{i}", status=rng.choice(["won", "lost", "open"]), closed_at=1_760_000_000_000,
                                   created_at=1_755_000_000_000, primary=primary))
        deals[-1]["amount"] = float(rng.randrange(1, 50) * 100)
    live = {c["contact_id"]: c for c in contacts if c["merged_into"] is None}
    canonical = {c["contact_id"]: c["merged_into"] or c["contact_id"] for c in contacts}
    want: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"contacts": 0, "deals": 0, "won": 0,
                                                                       "revenue": 0.0})
    def key(c: dict[str, Any]) -> tuple[str, str]:
        return c["owner"] or "Unassigned", c["contact_source"] or "Unknown"

    for c in live.values():
        want[key(c)]["contacts"] += 1
    for d in deals:
        row = want[key(live[canonical[d["primary_contact_id"]]])]
        row["deals"] += 1
        if d["status"] == "won":
            row["won"] += 1
            row["revenue"] += d["amount"]
    expected = [{"owner": o, "contact_source": s, **v} for (o, s), v in want.items()]

    db = connect(settings)
    try:
        apply_migrations(db)
        store(db, ContactVersion=contacts, EnrichedDeal=deals)
        got = run_report(db, "rep-sources", ReportParams())
    finally:
        db.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        db.close()
    assert isinstance(got, list) and len(got) == len(expected) >= 9
    assert diff(expected, got, key=["owner", "contact_source"]) == []
