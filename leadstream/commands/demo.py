"""``leadstream demo``: the whole pipeline, for real, on a seeded synthetic dataset.

It starts the local broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names a remote one), the
sink, a stream worker and the collector as child processes, posts the demo dataset of
``leadstream.testing.synthetic`` to the collector over HTTP (beacons, identifies, signed contact
and deal webhooks), waits until the sources report has seen every deal, prints it next
to the win rates the generator was given, and stops what it started.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ground.errors import LeadstreamError
from ground.settings import Settings, get_settings
from ground.vocabulary import MARKETING_PARAMS
from leadstream.stack import Stack, http_ready, settings_env, wait_until

__all__ = ["register", "run_demo"]

# The sources table has twelve columns: give it room even when stdout is not a terminal.
console = Console(soft_wrap=True, width=max(shutil.get_terminal_size((160, 24)).columns, 150))
MARKER = "demo.json"
BEACON_BATCH = 50
UTM_KEYS = MARKETING_PARAMS


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        seed: int = typer.Option(42, help="Seed of the synthetic dataset."),
        contacts: int = typer.Option(3000, min=100, help="Contacts to simulate (8 touches and 1/3 deal each)."),
        reset: bool = typer.Option(False, help="Wipe existing (non-demo) topics and tables first."),
        timeout: float = typer.Option(600.0, help="Seconds to wait for the pipeline to catch up."),
    ) -> None:
        """Start the local stack, stream a synthetic dataset through it, print the sources table."""
        run_demo(get_settings(), seed=seed, contacts=contacts, reset=reset, timeout=timeout)


def run_demo(settings: Settings, *, seed: int, contacts: int, reset: bool, timeout: float) -> None:
    from leadstream.testing.synthetic import DEMO_CHANNELS, DEMO_SIZES, generate
    from sinks.query_client import api_headers

    _start_broker(settings)
    _prepare_state(settings, reset=reset)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_hex(16)
    env = settings_env(settings, LEADSTREAM_WEBHOOK_SECRET=secret)
    stack = Stack(settings.data_dir / "logs")
    collector = f"http://{settings.collector_host}:{settings.collector_port}"
    query = f"http://{settings.query_host}:{settings.query_port}"
    try:
        console.print("Starting the sink, a stream worker and the collector ...")
        stack.start("sink", ["sink"], env)
        stack.start("worker", ["worker"], env)
        stack.start("collector", ["collector"], env)
        for url, what in ((f"{collector}/healthz", "the collector"), (f"{query}/healthz", "the sink")):
            _await_ready(stack, url, what)

        scale = contacts / DEMO_SIZES["contacts"]
        dataset = generate(seed=seed, contacts=contacts, touches=round(DEMO_SIZES["touches"] * scale),
                           deals=round(DEMO_SIZES["deals"] * scale), merges=DEMO_SIZES["merges"], profile="demo")
        events = _events(dataset)
        _post_all(collector, secret, events)
        expected_deals = len({d["deal_id"] for d in dataset.deal_changes})
        rows = _await_report(query, api_headers(settings), expected_deals, stack, timeout)
    finally:
        stack.stop()
    _print(rows, DEMO_CHANNELS)
    (settings.data_dir / MARKER).write_text(json.dumps({"seed": seed, "contacts": contacts}))
    console.print(
        "\nQuery further (the reports read the embedded engine in .leadstream/):\n"
        "  leadstream query quarterly\n"
        "  leadstream query attribution --model w_shaped\n"
        "  leadstream query sources --by source --format csv\n"
        "  leadstream query quality\n"
        f"  leadstream dashboard      # then open http://{settings.query_host}:{settings.query_port}/dashboard\n"
        f"Process logs are in {stack.log_dir}."
    )


def _await_ready(stack: Stack, url: str, what: str) -> None:
    """Wait for a child's health endpoint; a child that dies meanwhile fails at once with its log."""
    ready = http_ready(url)

    def check() -> bool:
        stack.check_alive()
        return ready()

    wait_until(check, 180, what)


def _start_broker(settings: Settings) -> None:
    if not settings.kafka_is_local:
        console.print(f"Using the broker at {settings.kafka_bootstrap_servers}.")
        return
    from leadstream.broker import LocalBroker

    info = LocalBroker(settings).up()
    console.print(f"Kafka {info.version} ready on {info.bootstrap} (cluster id {info.cluster_id}).")


def _prepare_state(settings: Settings, *, reset: bool) -> None:
    """Start from empty topics, tables and worker state.

    Existing data is wiped only when it came from an earlier demo (a marker file in the
    data directory says so) or when ``--reset`` is given; otherwise the demo refuses
    rather than mix its synthetic events into real ones.
    """
    from confluent_kafka.admin import AdminClient

    from ground.kafka_admin import create_topics, delete_topics
    from ground.topics import Topics

    names = Topics(settings.topic_prefix).all()
    admin = AdminClient(settings.kafka_common_config())
    existing = set(admin.list_topics(timeout=10).topics)
    ours = [n for n in existing if n in names or n.startswith(f"{settings.stream_app_id}-")]
    from_demo = (settings.data_dir / MARKER).exists()
    if ours and not (from_demo or reset):
        raise LeadstreamError(
            "the leadstream topics already exist and were not written by the demo; run "
            "`leadstream demo --reset` to wipe them, or set LEADSTREAM_TOPIC_PREFIX to use other topics"
        )
    if ours:
        console.print("Wiping the previous demo's topics, tables and worker state ...")
        delete_topics(settings, ours)
        _await_deleted(admin, ours)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_topics(settings, names)


def _await_deleted(admin: Any, names: Sequence[str]) -> None:
    wait_until(lambda: not set(names) & set(admin.list_topics(timeout=10).topics), 60, "topic deletion")


def _url(touch: dict[str, Any]) -> str | None:
    """The page URL carrying the touch's UTM parameters and click ids, as a browser sends it."""
    url = touch.get("url")
    params = {k: touch[k] for k in UTM_KEYS if touch.get(k)}
    if not params:
        return url if isinstance(url, str) else None
    base = url if isinstance(url, str) else "https://www.example.com/"
    base = base.split("?", 1)[0]
    return str(httpx.URL(base, params=params))


def _events(dataset: Any) -> list[tuple[str, dict[str, Any]]]:
    """(endpoint, JSON body field dict) for every event, in event-time order."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    for t in dataset.touches:
        body = {"event_id": t["event_id"], "event_time": t["event_time"], "type": t["touch_type"],
                "anonymous_id": t.get("anonymous_id"), "contact_id": t.get("contact_id"),
                "url": _url(t), "referrer": t.get("referrer"), "title": t.get("page_title")}
        out.append((t["event_time"], "/collect", {k: v for k, v in body.items() if v is not None}))
    for i in dataset.identifies:
        body = {"event_id": i["event_id"], "event_time": i["event_time"], "anonymous_id": i["anonymous_id"],
                "contact_id": i["contact_id"], "traits": i.get("traits") or {}}
        out.append((i["event_time"], "/identify", body))
    for c in dataset.contact_changes:
        body = {k: v for k, v in c.items() if v is not None and k not in {"received_at", "properties"}}
        out.append((c["event_time"], "/webhooks/contacts", body))
    for d in dataset.deal_changes:
        body = {k: v for k, v in d.items() if v is not None and k != "received_at"}
        out.append((d["event_time"], "/webhooks/deals", body))
    out.sort(key=lambda e: e[0])
    return [(endpoint, body) for _, endpoint, body in out]


def _batches(events: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Consecutive touches go as one beacon batch; everything else one request each."""
    batch: list[dict[str, Any]] = []
    for endpoint, body in events:
        if endpoint == "/collect":
            batch.append(body)
            if len(batch) == BEACON_BATCH:
                yield "/collect", batch
                batch = []
            continue
        if batch:
            yield "/collect", batch
            batch = []
        yield endpoint, [body]
    if batch:
        yield "/collect", batch


def _post_all(collector: str, secret: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    from producers.collector.signing import sign

    with httpx.Client(base_url=collector, timeout=30) as client, _progress() as progress:
        task = progress.add_task("Streaming the demo dataset through the collector", total=len(events))
        for endpoint, bodies in _batches(events):
            if endpoint == "/collect":
                resp = client.post(endpoint, json={"events": bodies})
            elif endpoint.startswith("/webhooks/"):
                raw = json.dumps(bodies[0]).encode()
                ts = str(int(time.time()))
                resp = client.post(endpoint, content=raw, headers={
                    "content-type": "application/json", "X-Leadstream-Timestamp": ts,
                    "X-Leadstream-Signature": sign(secret, ts, raw)})
            else:
                resp = client.post(endpoint, json=bodies[0])
            if resp.status_code >= 300:
                raise LeadstreamError(f"the collector refused a demo event on {endpoint}: "
                                      f"{resp.status_code} {resp.text[:300]}")
            progress.advance(task, len(bodies))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _sources(query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    try:
        resp = httpx.get(f"{query}/reports/sources", params={"by": "channel"}, headers=headers, timeout=30)
    except httpx.HTTPError:
        return []
    if resp.status_code != 200:
        return []
    rows = resp.json()
    return rows if isinstance(rows, list) else []


def _await_report(query: str, headers: dict[str, str], expected_deals: int, stack: Stack,
                  timeout: float) -> list[dict[str, Any]]:
    """Wait until the sources report counts every deal, and the counts stop moving."""
    rows: list[dict[str, Any]] = []
    stable_since = time.monotonic()
    last: object = None
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task("Waiting for the worker and the sink to catch up (deals)", total=expected_deals)
        while time.monotonic() < deadline:
            stack.check_alive()
            rows = _sources(query, headers)
            deals = sum(int(r.get("deals") or 0) for r in rows)
            progress.update(task, completed=min(deals, expected_deals))
            snapshot = json.dumps(rows, sort_keys=True)
            if snapshot != last:
                last, stable_since = snapshot, time.monotonic()
            if deals >= expected_deals and time.monotonic() - stable_since >= 3.0:
                return rows
            time.sleep(0.5)  # poll interval of the report
    raise LeadstreamError(f"the pipeline did not catch up within {timeout:.0f}s (see the logs in {stack.log_dir})")


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "money":
        return f"{float(value):,.0f}"
    if kind == "days":
        return f"{float(value):.1f}"
    return str(value)


def _print(rows: list[dict[str, Any]], given: dict[str, Any]) -> None:
    table = Table(title="Lead sources (by channel)", title_justify="left")
    columns = [("lead_source", "Lead source", ""), ("leads", "Leads", ""), ("deals", "Deals", ""),
               ("won", "Won", ""), ("lost", "Lost", ""), ("open", "Open", ""),
               ("win_rate", "Win rate", "pct"), ("avg_deal_size", "Avg deal size", "money"),
               ("revenue", "Revenue", "money"), ("pipeline", "Pipeline", "money"),
               ("median_days_to_close", "Median days to close", "days")]
    for _, title, kind in columns:
        table.add_column(title, justify="left" if not kind and title == "Lead source" else "right")
    table.add_column("Given win rate", justify="right")
    for row in sorted(rows, key=lambda r: -float(r.get("revenue") or 0)):
        channel = str(row.get("lead_source"))
        spec = given.get(channel)
        rate = getattr(spec, "win_rate", None) if spec is not None else None
        table.add_row(*[_fmt(row.get(key), kind) for key, _, kind in columns], _fmt(rate, "pct"))
    console.print(table)


def demo_marker(settings: Settings) -> Path:
    return settings.data_dir / MARKER
