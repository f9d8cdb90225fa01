"""The walking skeleton's last hop and the sink's read-only query API.

One enriched touch (google / cpc) and its contact version go through the real broker
into a real sink on the embedded engine; ``leadstream query sources --format json``
(the CLI, talking to the sink's query API with its bearer token) must return a row for
that source. The API must refuse anything but a single SELECT, apply its row limit, want
the token on everything but ``/healthz``, and ``leadstream query`` must say clearly when no
sink is serving. (Every refusal of the SQL door: ``test_sink_sql_guard.py``.)
"""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from ground.settings import Settings, get_settings
from leadstream.testing.processes import free_port, settings_env
from leadstream.testing.waiting import wait_for
from sinks.clickhouse import connect
from sinks.service import SinkService
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import produce

pytestmark = [pytest.mark.integration]


def _env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    from leadstream.cli import app

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args), env=_env(settings))
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stdout, result.stderr


def test_one_touch_reaches_sources_through_the_cli(topics: Settings) -> None:
    """An enriched touch consumed by the sink shows up in `leadstream query sources --format json`."""
    settings = topics.model_copy(update={"query_port": free_port(), "query_token": SecretStr("skeleton-token")})
    auth = {"Authorization": "Bearer skeleton-token"}
    touch = one_touch(contact_id=None, anonymous_id="anon-skeleton")
    produce(settings, [("enriched-touches", "anon-skeleton", touch),
                       ("enriched-contacts", "c-skeleton", one_contact("c-skeleton", touch))])
    service = SinkService(settings, connect(settings), serve_api=True).start()
    try:
        wait_for(lambda: service.sink.stats.rows.get("touches", 0) >= 1
                 and service.sink.stats.rows.get("contact_versions", 0) >= 1, 180, "the sink to store the touch")
        code, out, err = _cli(settings, "query", "sources", "--format", "json")
        assert code == 0, err
        rows = json.loads(out)
        print("sources:", rows)
        assert [r["lead_source"] for r in rows] == ["Paid Search"]
        assert set(rows[0]) == {"lead_source", "leads", "deals", "won", "lost", "open", "win_rate",
                                "avg_deal_size", "revenue", "pipeline", "median_days_to_close"}
        assert rows[0]["leads"] == 1
        code, out, _ = _cli(settings, "query", "sources", "--by", "source", "--format", "csv")
        assert code == 0 and out.splitlines()[1].startswith("google,1,")
        code, out, _ = _cli(settings, "query", "attribution", "--model", "u_shaped")
        assert code == 0 and "attribution: no rows" in out  # no deals yet

        base = f"http://{settings.query_host}:{settings.query_port}"
        health = httpx.get(f"{base}/healthz", timeout=10).json()  # open: no token needed
        assert health["status"] == "ok" and health["sink"]["rows"]["touches"] == 1
        db = settings.clickhouse_database
        assert httpx.post(f"{base}/sql", timeout=30, json={"sql": "SELECT 1"}).status_code == 401
        assert httpx.get(f"{base}/reports/sources", timeout=30).status_code == 401
        ok = httpx.post(f"{base}/sql", timeout=30, headers=auth, json={
            "sql": f"SELECT channel, count() AS n FROM {db}.touches_dedup WHERE source = {{src:String}} "
                   "GROUP BY channel", "parameters": {"src": "google"}}).json()
        assert ok["columns"] == ["channel", "n"] and ok["rows"] == [["Paid Search", 1]]
        limited = httpx.post(f"{base}/sql", timeout=30, headers=auth,
                             json={"sql": "SELECT number FROM numbers(100)", "limit": 5}).json()
        assert len(limited["rows"]) == 5 and limited["truncated"] is True
        for bad in (f"DROP TABLE {db}.touches", f"SELECT 1; DROP TABLE {db}.touches",
                    f"INSERT INTO {db}.touches SELECT * FROM {db}.touches"):
            refused = httpx.post(f"{base}/sql", timeout=30, headers=auth, json={"sql": bad})
            assert refused.status_code == 400, bad
        # no SETTINGS clause can lift readonly
        sneaky = httpx.post(f"{base}/sql", timeout=30, headers=auth,
                            json={"sql": "SELECT * FROM system.numbers SETTINGS readonly = 0 LIMIT 1"})
        assert sneaky.status_code == 400
        assert httpx.get(f"{base}/reports/nope", timeout=10, headers=auth).status_code == 400
    finally:
        service.stop()


def test_query_without_a_running_sink_says_so(settings: Settings) -> None:
    """In embedded mode `leadstream query` fails clearly when no sink serves the query API."""
    quiet = settings.model_copy(update={"query_port": free_port()})
    code, _out, err = _cli(quiet, "query", "sources")
    assert code == 1
    assert "no sink is serving the query API" in err
