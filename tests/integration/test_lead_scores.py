"""``lead-scores`` against a plain recomputation from the records themselves.

A world of contacts (three channels, sources, details; some leads outside the trailing
window, one merged away, some without touches) and deals (open, won, lost, closed before
the window) is written to a fresh database; the oracle below recomputes every open lead's
score from those records alone, following docs/lead-scores.md step by step, at each
level. ``leadstream query lead-scores --format json`` must print the same rows, keys and
numbers.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ground.settings import Settings
from sinks.clickhouse import Database, connect
from sinks.lead_scores import LEAD_SCORE_KEYS, K, lead_scores, trailing_start
from sinks.migrate import apply_migrations
from sinks.report_params import ReportParams
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import cli, enriched_deal, served_api, store

pytestmark = [pytest.mark.integration]

DAY = 86_400_000
HALF_LIFE_DAYS = 30.0
LEADS = [("Paid Search", "google", "brand"), ("Paid Search", "google", "generic"), ("Paid Search", "bing", "brand"),
         ("Email", "newsletter", "weekly"), ("Referral", "partner-x", ""), ("Unknown", "Unknown", "")]


def _world(now: int, seed: int = 4) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    start = trailing_start(now)
    contacts, deals = [], []
    for i in range(160):
        lead = LEADS[rng.randrange(len(LEADS))] if i % 9 else LEADS[0]
        in_window = rng.random() < 0.85
        at = rng.randrange(start, now - DAY) if in_window else start - rng.randrange(DAY, 200 * DAY)
        touch = one_touch(str(uuid.uuid4()), anonymous_id=f"a{i}", event_time=at)
        contact = one_contact(f"c{i:03d}", touch, version=1)
        contact.update(lead_channel=lead[0], lead_source=lead[1], lead_detail=lead[2],
                       engagement_score=round(rng.uniform(0, 12), 3), last_seen=rng.randrange(at, now))
        if lead[0] == "Unknown":  # no touch at all: dated by creation
            contact.update(first_touch_time=None, first_touch_event_id=None, first_touch_type=None)
        if i == 7:  # merged away: not a lead any more
            contact.update(merged_into="c008", reason="merged_away", version=2)
        contacts.append(contact)
        roll = rng.random()
        if roll < 0.45:
            status = rng.choice(["open", "won", "lost", "won", "lost"])
            before = rng.random() < 0.2  # closed before the trailing window: no part of p
            closed = (start - rng.randrange(DAY, 90 * DAY)) if before else rng.randrange(at, now)
            deals.append(enriched_deal(f"d{i:03d}", status=status, closed_at=None if status == "open" else closed,
                                       created_at=at, primary=contact["contact_id"], lead=lead))
    return contacts, deals


def _oracle(contacts: list[dict[str, Any]], deals: list[dict[str, Any]], by: str, now: int) -> list[dict[str, Any]]:
    """docs/lead-scores.md, computed from the records, one step at a time."""
    start = trailing_start(now)
    depth = {"channel": 1, "source": 2, "detail": 3}[by]
    live = [c for c in contacts if c["merged_into"] is None]
    with_deal = {d["primary_contact_id"] for d in deals}
    closed_contacts = {d["primary_contact_id"] for d in deals if d["status"] in ("won", "lost")}

    def path(r: dict[str, Any]) -> tuple[str, str, str]:
        return r["lead_channel"], r["lead_source"], r["lead_detail"]

    def lead_time(c: dict[str, Any]) -> int:
        return c["first_touch_time"] if c["first_touch_time"] is not None else c["created_at"]

    recent = [c for c in live if start <= lead_time(c) < now]
    closed = [d for d in deals if d["status"] in ("won", "lost") and start <= d["closed_at"] < now]

    def counts(node: tuple[str, ...]) -> dict[str, int]:
        leads = [c for c in recent if path(c)[:len(node)] == node]
        done = [d for d in closed if path(d)[:len(node)] == node]
        return {"leads": len(leads), "with_deal": sum(c["contact_id"] in with_deal for c in leads),
                "won": sum(d["status"] == "won" for d in done), "lost": sum(d["status"] == "lost" for d in done)}

    def p(node: tuple[str, ...]) -> float:
        c = counts(node)
        if not node:
            return c["won"] / (c["won"] + c["lost"]) if c["won"] + c["lost"] else 0.0
        return (c["won"] + K * p(node[:-1])) / (c["won"] + c["lost"] + K)

    def q(node: tuple[str, ...]) -> float:
        c = counts(node)
        if not node:
            return c["with_deal"] / c["leads"] if c["leads"] else 0.0
        return (c["with_deal"] + K * q(node[:-1])) / (c["leads"] + K)

    open_leads = [c for c in live if c["contact_id"] not in closed_contacts]
    engagement = {c["contact_id"]: c["engagement_score"] * 2 ** (-(now - c["last_seen"]) / (HALF_LIFE_DAYS * DAY))
                  for c in open_leads}
    values = sorted(engagement.values())
    n = len(values)

    def percentile(v: float) -> float:  # the mean 0-based rank of v among the open leads, over n - 1
        first, last = values.index(v), n - 1 - values[::-1].index(v)
        return (first + last) / 2 / (n - 1)

    rows = []
    for c in open_leads:
        node = path(c)[:depth]
        m = 0.5 + percentile(engagement[c["contact_id"]])
        got = counts(node)
        rows.append({"contact_id": c["contact_id"], "lead_source": node[-1], "raw": q(node) * p(node) * m,
                     "q_s": q(node), "p_s": p(node), "leads": got["leads"], "contacts_with_deal": got["with_deal"],
                     "won": got["won"], "lost": got["lost"], "engagement": engagement[c["contact_id"]], "m": m})
    best = max(r["raw"] for r in rows)
    for r in rows:
        r["score"] = 100 * r.pop("raw") / best
    return sorted(rows, key=lambda r: (-r["score"], r["contact_id"]))


@pytest.fixture
def deployment(clickhouse_url: str, tmp_path: Any) -> Iterator[tuple[Settings, Database]]:
    settings = Settings(CLICKHOUSE_URL=clickhouse_url, LEADSTREAM_DATA_DIR=str(tmp_path / "data"),
                        LEADSTREAM_CLICKHOUSE_DATABASE=f"ls_score_{uuid.uuid4().hex[:8]}",
                        LEADSTREAM_ENGAGEMENT_HALF_LIFE_DAYS=HALF_LIFE_DAYS)
    db = connect(settings)
    apply_migrations(db)
    try:
        yield settings, db
    finally:
        db.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        db.close()


def _differences(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[str]:
    problems = [] if len(got) == len(want) else [f"{len(got)} rows, the oracle has {len(want)}"]
    for g, w in zip(got, want, strict=False):
        for key in LEAD_SCORE_KEYS:
            a, b = g[key], w[key]
            same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) if isinstance(b, float) else a == b
            if not same:
                problems.append(f"{w['contact_id']}.{key}: {a!r} != {b!r}")
    return problems


@pytest.mark.parametrize("by", ["channel", "source", "detail"])
def test_lead_scores_equal_the_recomputation(deployment: tuple[Settings, Database], by: str) -> None:
    settings, db = deployment
    now = int(time.time() * 1000)
    contacts, deals = _world(now)
    store(db, ContactVersion=contacts, EnrichedDeal=deals)
    want = _oracle(contacts, deals, by, now)
    got = lead_scores(db, ReportParams(by=by, top=1000), now_ms=now, half_life_days=HALF_LIFE_DAYS)  # type: ignore[arg-type]
    print(f"lead-scores --by {by}: {len(got)} open leads, top {got[0]['contact_id']} {got[0]['score']:.1f}, "
          f"{len(_differences(got, want))} differences")
    assert len(want) > 80 and _differences(got, want) == []
    assert got[0]["score"] == 100.0 and all(0.5 <= r["m"] <= 1.5 for r in got)
    sources = {r["lead_source"] for r in got}
    assert len(sources) >= 3  # several sources, so the smoothing toward parents is exercised

    with served_api(settings, db) as reached:
        code, out, err = cli(reached, "query", "lead-scores", "--by", by, "--top", "5", "--format", "json")
    assert code == 0, err
    printed = json.loads(out)
    assert [list(r) for r in printed] == [list(LEAD_SCORE_KEYS)] * 5
    assert [r["contact_id"] for r in printed] == [r["contact_id"] for r in want[:5]]  # a later "now": same order


def test_a_source_without_history_takes_its_parents_rates(deployment: tuple[Settings, Database]) -> None:
    """With no lead and no closed deal of its own, a detail's rates are its source's, and so on up."""
    _, db = deployment
    now = int(time.time() * 1000)
    contacts, deals = _world(now)
    lonely = one_contact("c-new", one_touch(str(uuid.uuid4()), anonymous_id="a-new", event_time=now - 300 * DAY * 2))
    lonely.update(lead_channel="Referral", lead_source="partner-x", lead_detail="brand-new-detail",
                  engagement_score=1.0, last_seen=now)
    store(db, ContactVersion=[*contacts, lonely], EnrichedDeal=deals)
    detail = {r["contact_id"]: r for r in lead_scores(db, ReportParams(by="detail", top=1000), now_ms=now,
                                                      half_life_days=HALF_LIFE_DAYS)}
    source = {r["contact_id"]: r for r in lead_scores(db, ReportParams(by="source", top=1000), now_ms=now,
                                                      half_life_days=HALF_LIFE_DAYS)}
    row = detail["c-new"]
    assert (row["leads"], row["won"], row["lost"]) == (0, 0, 0)
    assert math.isclose(row["p_s"], source["c-new"]["p_s"]) and math.isclose(row["q_s"], source["c-new"]["q_s"])
