"""The live dashboard in a real headless browser (Debian's chromium driven by playwright).

First a query API over the session's embedded engine holding a world of touches,
contacts and deals: every chart renders with data, every scorecard cell and KPI equals the
``/reports`` JSON (at two levels, the level chosen through the page's control and kept in
the URL), sorting works, the browser logs no error, and a screenshot is saved. Then the
whole pipeline (collector, stream worker, sink): a deal won through the webhook appears on
the page that stays open, without a reload.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ground.settings import Settings
from ground.topics import TOPIC_RECORDS
from leadstream.testing.harness import WorkerProcess
from leadstream.testing.processes import collector_process, free_port, leadstream_cmd, settings_env, wait_http
from leadstream.testing.waiting import wait_for
from producers.collector import sign
from producers.events import spend_record
from sinks.alert_watch import AlertWatch, metrics_text
from sinks.analyst_pool import AnalystPool
from sinks.api import build_app
from sinks.clickhouse import connect
from sinks.dashboard import CHART_JS
from sinks.migrate import apply_migrations
from sinks.rows import TABLES
from sinks.service import SinkService
from tests.integration.sink_feed import enriched_feed, generate_world
from tests.integration.sink_support import store

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"  # installed by deploy/system-deps.sh (make test runs it)
SCREENSHOTS = Path(".leadstream") / "screenshots"
CHARTS = ("chart-winrate", "chart-quarterly", "chart-funnel", "chart-attribution", "chart-contact-sources",
          "chart-unknown-direct", "chart-rep-sources")
READY = "window.leadstreamDashboard && window.leadstreamDashboard.data.attribution !== undefined"


def _health() -> dict[str, Any]:
    return {"status": "ok", "database": "", "sink": {"messages": 0}}


@pytest.fixture
def api(clickhouse_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[str]:
    """A query API on a free port over a database holding a generated world; yields its base URL."""
    settings = Settings(CLICKHOUSE_URL=clickhouse_url, LEADSTREAM_DATA_DIR=str(tmp_path / "data"),
                        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                        LEADSTREAM_CLICKHOUSE_DATABASE=f"ls_dash_{uuid.uuid4().hex[:8]}")
    db = connect(settings)
    apply_migrations(db)
    batches: dict[str, list[Any]] = {}
    for base, _, record in enriched_feed(generate_world(seed=3, n_contacts=120, n_deals=70)):
        batches.setdefault(TOPIC_RECORDS[base], []).append(record)
    for name, records in batches.items():
        spec = TABLES[name]
        db.insert(spec.table, [spec.convert(r) for r in records], spec.columns)
    day = min(r["event_time"] for r in batches["EnrichedTouch"])
    spend = [spend_record({"date": day, "channel": "Paid Search", "source": "google", "campaign": "brand",
                           "amount": amount, "currency": "USD"}, received_at=day + 1)
             for amount in ("1000", "2500")]  # one row replaces the other: same day and keys
    store(db, Spend=spend[1:])
    pool = AnalystPool(settings)
    port = free_port()
    health = lambda: {**_health(), "database": settings.clickhouse_database}  # noqa: E731
    watch = AlertWatch(settings, pool)
    app = build_app(pool, health, alerts=watch.check, metrics=lambda: metrics_text(None, watch))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the query API")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        pool.close()
        db.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        db.close()


class Browser:
    """One headless chromium page; every console error and page error is kept."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def state(self, expression: str) -> Any:
        return self.page.evaluate(f"JSON.parse(JSON.stringify({expression}))")


@pytest.fixture
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium missing: run `bash deploy/system-deps.sh`"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield Browser(page)
        finally:
            chromium.close()


def _same(shown: str | None, value: Any) -> bool:
    """A cell's data-value against the JSON value (numbers compared as numbers)."""
    if value is None:
        return shown == "null"
    if isinstance(value, bool | str):
        return shown == str(value)
    return shown is not None and math.isclose(float(shown), float(value), rel_tol=1e-12, abs_tol=1e-12)


def _scorecard_matches(b: Browser, rows: list[dict[str, Any]]) -> list[str]:
    shown = b.page.eval_on_selector_all(
        "#scorecard tbody tr",
        "trs => trs.map(tr => Object.fromEntries([...tr.children].map(td => [td.dataset.key, td.dataset.value])))")
    problems = [] if len(shown) == len(rows) else [f"{len(shown)} rows shown, {len(rows)} in the JSON"]
    by_source = {r["lead_source"]: r for r in shown}
    for row in rows:
        cells = by_source.get(row["lead_source"])
        if cells is None:
            problems.append(f"{row['lead_source']}: missing")
            continue
        problems += [f"{row['lead_source']}.{k}: shown {cells.get(k)!r}, JSON {v!r}"
                     for k, v in row.items() if k != "open" and not _same(cells.get(k), v)]
    return problems


def test_the_dashboard_shows_the_report_figures(api: str, browser: Browser) -> None:
    b = browser
    b.page.goto(f"{api}/dashboard?by=channel&model=linear")
    b.page.wait_for_function(READY)
    sources = httpx.get(f"{api}/reports/sources?by=channel").json()
    assert len(sources) >= 3 and sum(r["won"] for r in sources) > 0
    assert _scorecard_matches(b, sources) == []
    roi = {r["lead_source"]: r for r in httpx.get(f"{api}/reports/roi?by=channel").json()}
    assert roi["Paid Search"]["spend"] == 2500.0
    spend_cells = b.page.eval_on_selector_all(
        "#scorecard tbody tr", "trs => Object.fromEntries(trs.map(tr => [tr.dataset.source, "
        "[tr.querySelector('td[data-key=spend]').dataset.value, tr.querySelector('td[data-key=roi]').dataset.value]]))")
    paid = spend_cells["Paid Search"]
    assert _same(paid[0], 2500.0) and _same(paid[1], roi["Paid Search"]["roi"])
    assert all(v == ["null", "null"] for k, v in spend_cells.items() if k != "Paid Search")
    # KPIs: totals of the sources rows
    kpis = b.page.eval_on_selector_all(".kpi", "ks => Object.fromEntries(ks.map(k => [k.dataset.kpi, "
                                                "k.querySelector('.value').dataset.value]))")
    won, lost = sum(r["won"] for r in sources), sum(r["lost"] for r in sources)
    assert _same(kpis["leads"], sum(r["leads"] for r in sources)) and _same(kpis["won"], won)
    assert _same(kpis["revenue"], sum(r["revenue"] for r in sources)) and _same(kpis["win_rate"], won / (won + lost))
    # every chart drew data
    for chart in CHARTS:
        points = b.state(f"window.leadstreamDashboard.charts['{chart}'].data.datasets"
                         ".flatMap(d => d.data).filter(v => v !== null && v !== 0).length")
        assert points > 0, chart
        assert b.page.eval_on_selector(f"#{chart}", "c => c.width * c.height") > 0, chart
    quarterly = httpx.get(f"{api}/reports/quarterly?by=channel").json()
    for point in b.state("window.leadstreamDashboard.data.unknownDirect"):  # the share over time, from quarterly
        rows = [r for r in quarterly if r["quarter"] == point["quarter"]]
        leads = sum(r["leads"] for r in rows)
        share = sum(r["leads"] for r in rows if r["lead_source"] in ("Unknown", "Direct")) / leads
        assert math.isclose(point["share"], share), point
    assert b.state("window.leadstreamDashboard.data.repSources") == httpx.get(f"{api}/reports/rep-sources").json()
    attribution = b.state("window.leadstreamDashboard.data.attribution")
    assert attribution["linear"] == httpx.get(f"{api}/reports/attribution?by=channel&model=linear").json()
    quality = httpx.get(f"{api}/reports/quality?by=channel").json()
    assert _same(b.page.get_attribute("#q-share", "data-value"), quality["contacts"]["unknown_or_direct_share"])
    assert "no events yet" not in b.page.inner_text("#q-newest")
    # the alerts panel lists what /alerts says fires
    shown_alerts = b.page.eval_on_selector_all("#q-alerts tbody tr[data-rule]", "trs => trs.map(t => t.dataset.rule)")
    assert shown_alerts == [a["rule"] for a in httpx.get(f"{api}/alerts", timeout=60).json()["alerts"]]
    assert b.page.input_value("select[name=model]") == "linear"
    scores = httpx.get(f"{api}/reports/lead-scores?by=channel&top=10").json()
    shown_scores = b.page.eval_on_selector_all(
        "#lead-scores tbody tr", "trs => trs.map(tr => [tr.children[0].dataset.value, +tr.children[2].dataset.value])")
    assert len(scores) == 10 and [s[0] for s in shown_scores] == [r["contact_id"] for r in scores]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "dashboard.png"
    b.page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard: {len(sources)} sources rows, {len(CHARTS)} charts, screenshot {shot.resolve()}")

    # the level control: the URL follows, the scorecard shows the source level
    b.page.select_option("select[name=by]", "source")
    b.page.wait_for_function("new URL(location.href).searchParams.get('by') === 'source'")
    by_source = httpx.get(f"{api}/reports/sources?by=source").json()
    b.page.wait_for_function(f"document.querySelectorAll('#scorecard tbody tr').length === {len(by_source)}")
    assert _scorecard_matches(b, by_source) == []
    # sorting: Won, highest first
    b.page.click("#scorecard th[data-key=won]")
    shown = b.page.eval_on_selector_all("#scorecard tbody td[data-key=won]", "tds => tds.map(t => +t.dataset.value)")
    assert shown == sorted(shown, reverse=True) and shown[0] == max(r["won"] for r in by_source)
    assert b.errors == [] and b.state("window.leadstreamDashboard.errors") == []


def _won_deal(deal_id: str) -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"event_id": str(uuid.uuid4()), "event_time": now, "deal_id": deal_id, "change": "won",
                       "stage": "Closed Won", "amount": "4321.5", "currency": "usd", "owner": "Ana",
                       "primary_contact_id": f"c-{deal_id}", "contact_ids": [], "version": 1}).encode()


@pytest.mark.slow
def test_a_deal_won_through_the_webhook_appears_on_the_open_page(topics: Settings, tmp_path: Path,
                                                                 browser: Browser) -> None:
    settings = topics.model_copy(update={"query_port": free_port()})
    worker = WorkerProcess(settings, tmp_path / "worker", "0").start()
    service: SinkService | None = None
    try:
        worker.wait_ready()
        service = SinkService(settings, serve_api=True).start()
        with collector_process(settings) as collector:
            page_url = f"http://127.0.0.1:{settings.query_port}/dashboard"
            browser.page.goto(page_url)
            browser.page.wait_for_function(READY)
            before = int(browser.page.get_attribute("[data-kpi=won] .value", "data-value") or 0)
            body = _won_deal(f"D-{uuid.uuid4().hex[:6]}")
            ts = int(time.time())
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
            answer = httpx.post(f"{collector}/webhooks/deals", content=body, headers={
                "X-Leadstream-Timestamp": str(ts), "X-Leadstream-Signature": sign(secret, ts, body),
                "Content-Type": "application/json"})
            assert answer.status_code == 200, answer.text
            posted = time.monotonic()
            # a hang guard, not a speed check: the latency is printed
            browser.page.wait_for_function(
                f"+document.querySelector('[data-kpi=won] .value').dataset.value === {before + 1}", timeout=60_000)
            latency = time.monotonic() - posted
            unknown = browser.page.get_attribute("#scorecard tr[data-source=Unknown] td[data-key=won]", "data-value")
        print(f"dashboard live: the won deal was on the open page {latency:.2f}s after the webhook answered")
        assert unknown is not None and int(unknown) >= 1
        browser.page.wait_for_function("document.getElementById('q-sink').textContent.includes('last batch')",
                                       timeout=30_000)  # the freshness panel reads the sink's /metrics
        api = f"http://127.0.0.1:{settings.query_port}"
        metrics = httpx.get(f"{api}/metrics").text  # the sink's own counters, for Prometheus
        assert 'leadstream_sink_rows{table="deal_versions"}' in metrics and "leadstream_sink_paused 0.0" in metrics
        assert f'leadstream_sink_consumer_lag{{partition="0",topic="{settings.topic_prefix}enriched-deals"}}' in metrics
        alerts = httpx.get(f"{api}/alerts", timeout=60)
        assert alerts.status_code == 200 and isinstance(alerts.json()["alerts"], list), alerts.text
        assert browser.errors == []
    finally:
        if service is not None:
            service.stop()
        worker.stop()


def test_leadstream_dashboard_serves_the_page_without_a_sink(tmp_path: Path) -> None:
    """`leadstream dashboard` on an engine no sink holds: the page, its script and library, /ping; a second
    one on the same address says the page is already served."""
    port = free_port()
    env = settings_env(Settings(CLICKHOUSE_URL=f"chdb://{tmp_path / 'engine'}", LEADSTREAM_QUERY_PORT=port))
    proc = subprocess.Popen(leadstream_cmd("dashboard"), env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping")
        page = httpx.get(f"http://127.0.0.1:{port}/dashboard")
        assert page.status_code == 200 and "Lead sources" in page.text
        for asset in ("dashboard.js", "dashboard.css", CHART_JS):
            assert httpx.get(f"http://127.0.0.1:{port}/dashboard/static/{asset}").status_code == 200, asset
        second = subprocess.run(leadstream_cmd("dashboard"), env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        assert second.returncode == 0 and "already served" in second.stderr, second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=60)
