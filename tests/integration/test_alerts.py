"""Quality alerts: a dataset built to break each rule fires exactly that rule; a clean one fires none.

Every dataset is written into a fresh database of the session's embedded engine and onto
the test's topics, with times relative to now: a clean baseline (new leads with a normal
Unknown/Direct share, a source touching daily, classified touches, steady win rates, a
fresh newest touch, raw events with a dead-letter rate under 1 %), plus one defect per
test. ``leadstream alerts check`` runs against a query API serving that database (as the
sink serves it) and must exit 1 naming exactly the broken rule, or 0 for the clean set.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from sinks.alert_watch import AlertWatch, metrics_text
from sinks.alerts import AlertRulesError, load_rules, win_drop_probability
from sinks.clickhouse import Database, connect
from sinks.lead_scores import quarter_start
from sinks.migrate import apply_migrations
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import cli, enriched_deal, served_api, store

pytestmark = [pytest.mark.integration]

DAY = 86_400_000
HOUR = 3_600_000
MINUTE = 60_000


class World:
    """Rows for the tables and raw messages for the topics, all relative to ``now``."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.touches: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.deals: list[dict[str, Any]] = []
        self.raw = 200  # events accepted on the raw topics in the last minutes
        self.dead = 1  # dead letters among them: 0.5 %
        self.received_lag = MINUTE  # how long ago the newest touch was received

    def touch(self, at: int, utm: tuple[str, str, str], channel: str | None = None, source: str | None = None,
              received: int | None = None) -> dict[str, Any]:
        t = one_touch(str(uuid.uuid4()), anonymous_id=f"a-{uuid.uuid4().hex[:8]}", utm=utm, event_time=at)
        if channel:
            t["channel"], t["source"], t["detail"] = channel, source or utm[0], ""
        t["received_at"] = t["processed_at"] = received if received is not None else at
        self.touches.append(t)
        return t

    def lead(self, at: int, channel: str) -> None:
        t = self.touch(at, ("google", "cpc", "brand"))
        c = one_contact(f"c-{uuid.uuid4().hex[:8]}", t)
        c["lead_channel"] = channel
        self.contacts.append(c)

    def deal(self, closed_at: int, won: bool, source: str = "google") -> None:
        self.deals.append(enriched_deal(f"d-{uuid.uuid4().hex[:8]}", status="won" if won else "lost",
                                        closed_at=closed_at, created_at=closed_at - 30 * DAY, primary="c-x",
                                        lead=("Paid Search", source, "")))


def clean(now: int) -> World:
    w = World(now)
    for i in range(60):  # new leads of the last 7 days: 10 % Unknown/Direct
        w.lead(now - (i % 6 + 1) * DAY, "Direct" if i % 10 == 0 else "Paid Search")
    for i in range(100):  # the 4 weeks before: 10 % too
        w.lead(now - (8 + i % 27) * DAY, "Unknown" if i % 10 == 0 else "Paid Search")
    for day in range(30):  # google: 15 touches a day, the last 24 h included
        for k in range(15):
            w.touch(now - day * DAY - (k + 1) * 20 * MINUTE, ("google", "cpc", "brand"))
    w.touch(now - MINUTE, ("google", "cpc", "brand"))  # the newest touch: a minute old
    for k in range(5):  # an unknown pair, but only 5 touches
        w.touch(now - (k + 1) * HOUR, ("odd", "thing", ""), channel="Unknown", source="odd")
    quarter = quarter_start(now)
    for i in range(30):  # trailing quarters: half won
        w.deal(quarter_start(now, 1 + i % 4) + DAY, won=i % 2 == 0)
    for i in range(10):  # this quarter: half won
        w.deal(max(quarter, now - 10 * MINUTE) + i, won=i % 2 == 0)
    return w


def break_unknown_direct(w: World) -> None:
    for i in range(40):
        w.lead(w.now - (i % 6 + 1) * DAY, "Unknown")


def break_unclassified(w: World) -> None:
    for k in range(25):
        w.touch(w.now - (k + 1) * 30 * MINUTE, ("podcast-x", "audio", "ep1"), channel="Unclassified",
                source="podcast-x")


def break_dead_letters(w: World) -> None:
    w.dead = 10  # 5 % of 200


def break_silent_source(w: World) -> None:
    for day in range(2, 29):  # bing: 12 a day, nothing in the last 24 h
        for k in range(12):
            w.touch(w.now - day * DAY - k * HOUR, ("bing", "cpc", "brand"))


def break_win_rate(w: World) -> None:
    quarter = quarter_start(w.now)
    for i in range(30):  # bing: 70 % won over the trailing quarters, 1 of 12 this quarter
        w.deal(quarter_start(w.now, 1 + i % 4) + 2 * DAY, won=i % 10 < 7, source="bing")
    for i in range(12):
        w.deal(max(quarter, w.now - 20 * MINUTE) + i, won=i == 0, source="bing")


def break_freshness(w: World) -> None:
    w.received_lag = 40 * MINUTE


def _store(settings: Settings, db: Database, w: World) -> None:
    newest = w.now - w.received_lag
    for t in w.touches:  # nothing received after the newest receipt
        t["received_at"] = t["processed_at"] = min(t["received_at"], newest)
    store(db, EnrichedTouch=w.touches, ContactVersion=w.contacts, EnrichedDeal=w.deals)
    producer = Producer(settings.kafka_producer_config())
    for i in range(w.raw):
        producer.produce(f"{settings.topic_prefix}touches", key=f"k{i}".encode(), value=b"raw")
    for i in range(w.dead):
        producer.produce(f"{settings.topic_prefix}dead-letter", key=f"d{i}".encode(), value=b"dead")
    assert producer.flush(30) == 0


@pytest.fixture
def deployment(topics: Settings) -> Iterator[tuple[Settings, Database]]:
    db = connect(topics)
    apply_migrations(db)
    try:
        yield topics, db
    finally:
        db.command(f"DROP DATABASE IF EXISTS {topics.clickhouse_database}")
        db.close()


def _check(settings: Settings, db: Database) -> tuple[int, dict[str, Any]]:
    """`leadstream alerts check --format json` against a query API over ``db`` (as the sink serves it)."""
    with served_api(settings, db, alerts=AlertWatch(settings, db).check) as reached:
        code, out, err = cli(reached, "alerts", "check", "--format", "json")
        table_code, table, _ = cli(reached, "alerts", "check")
    assert code in (0, 1), err
    assert table_code == code and ("no alert fires" in table) == (code == 0)
    return code, json.loads(out)


BREAKS: dict[str, Callable[[World], None]] = {
    "unknown_direct_share": break_unknown_direct,
    "unclassified_pair": break_unclassified,
    "dead_letter_rate": break_dead_letters,
    "source_silent": break_silent_source,
    "win_rate_drop": break_win_rate,
    "freshness_lag": break_freshness,
}
SUBJECTS = {"unknown_direct_share": "all leads", "unclassified_pair": "podcast-x / audio",
            "dead_letter_rate": "pipeline", "source_silent": "bing", "win_rate_drop": "bing",
            "freshness_lag": "pipeline"}


def _now() -> int:
    import time

    return int(time.time() * 1000)


def test_a_clean_dataset_fires_no_alert(deployment: tuple[Settings, Database]) -> None:
    settings, db = deployment
    _store(settings, db, clean(_now()))
    code, answer = _check(settings, db)
    assert (code, answer["alerts"]) == (0, []), [a["message"] for a in answer["alerts"]]


@pytest.mark.parametrize("rule", list(BREAKS))
def test_each_broken_rule_fires_alone(deployment: tuple[Settings, Database], rule: str) -> None:
    settings, db = deployment
    world = clean(_now())
    BREAKS[rule](world)
    _store(settings, db, world)
    code, answer = _check(settings, db)
    fired = [(a["rule"], a["subject"]) for a in answer["alerts"]]
    print(f"{rule}: {[a['message'] for a in answer['alerts']]}")
    assert code == 1 and fired == [(rule, SUBJECTS[rule])], answer
    [alert] = answer["alerts"]
    assert {"value", "threshold", "window", "evidence"} <= set(alert) and alert["message"]
    if rule != "freshness_lag":
        return
    metrics = metrics_text(lambda: {"rows": {"touches": 1}, "messages": 3}, AlertWatch(settings, db))
    assert b"leadstream_sink_rows" in metrics  # the exposition renders without an evaluation
    watch = AlertWatch(settings, db)
    watch.check()
    text = metrics_text(lambda: {"rows": {}}, watch).decode()
    assert 'leadstream_alert_firing{rule="freshness_lag",subject="pipeline"} 1.0' in text


def test_the_rules_file_is_validated_strictly(tmp_path: Path) -> None:
    good = load_rules()
    assert good.rules.unknown_direct_share.max_share == 0.25 and good.rules.win_rate_drop.min_closed == 20
    for text, words in (("version: 2\n", "version"), ("rules:\n  source_silent:\n    min_daily_touchs: 3\n",
                                                        "min_daily_touchs"),
                        ("rules:\n  win_rate_drop:\n    level: planet\n", "level"), (": : :\n", "YAML")):
        path = tmp_path / "rules.yaml"
        path.write_text(text)
        with pytest.raises(AlertRulesError, match=words):
            load_rules(path)
    tighter = tmp_path / "tight.yaml"
    tighter.write_text("version: 1\nrules:\n  freshness_lag:\n    enabled: false\n")
    assert load_rules(tighter).rules.freshness_lag.enabled is False
    assert load_rules(tighter).rules.source_silent.min_daily_touches == 10  # the others keep their defaults


def test_the_win_rate_drop_probability_matches_a_simulation() -> None:
    import random

    rng = random.Random(7)
    for counts in ((2, 8, 40, 20), (5, 5, 60, 40), (10, 10, 10, 10), (1, 11, 21, 9)):
        exact = win_drop_probability(*counts, 0.1)
        simulated = sum(rng.betavariate(1 + counts[0], 1 + counts[1])
                        < rng.betavariate(1 + counts[2], 1 + counts[3]) - 0.1 for _ in range(40_000)) / 40_000
        assert abs(exact - simulated) < 0.015, (counts, exact, simulated)


def test_the_sink_posts_a_change_of_the_firing_alerts_signed(deployment: tuple[Settings, Database]) -> None:
    """The periodic evaluation (what the sink runs) POSTs once per change of the firing set, signed."""
    import http.server

    from producers.collector.signing import verify

    settings, db = deployment
    world = clean(_now())
    break_freshness(world)
    _store(settings, db, world)
    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    watching = settings.model_copy(update={"alert_interval_seconds": 0.2,
                                           "alert_webhook_url": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    watch = AlertWatch(watching, db).start()
    try:
        wait_for(lambda: watch.evaluated_at is not None and len(received) >= 1, 60, "the alert webhook")
        wait_for(lambda: watch.notified >= 1, 10, "the notification count")
        rounds = watch.evaluated_at
        wait_for(lambda: watch.evaluated_at != rounds, 10, "another evaluation")  # the same set: no new POST
    finally:
        watch.stop()
        server.shutdown()
    assert len(received) == 1, received
    headers, body = received[0]
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    assert verify(headers, body, secret) is None
    payload = json.loads(body)
    assert [a["rule"] for a in payload["alerts"]] == ["freshness_lag"] and payload["source"] == "leadstream"
