"""The analysts' SQL door (``POST /sql``) is read-only, and its bearer token holds.

Everything runs on the real embedded engine of the session (no broker needed): a migrated
database with one touch and one contact, a second database holding a secret row, a file
holding a secret, and a local HTTP server that counts every connection it is offered.
Each attempt of :func:`_refused_attempts` must answer 400 with a message, and afterwards
nothing may have been written (the OUTFILE paths and the marker do not exist, the tables
are unchanged) or fetched (the server saw no connection), and no answer may carry a secret.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from ground.settings import Settings
from leadstream.testing.processes import free_port, leadstream_cmd, settings_env
from leadstream.testing.waiting import wait_for
from sinks.api import build_app
from sinks.clickhouse import Database, connect
from sinks.errors import QueryTokenError
from sinks.migrate import apply_migrations
from sinks.rows import TABLES
from sinks.service import SinkService
from sinks.sql_guard import MAX_SQL_CHARS, SYSTEM_TABLES, TABLE_FUNCTIONS
from tests.integration.sink_feed import one_contact, one_touch
from tests.integration.sink_support import cli

pytestmark = [pytest.mark.integration]

TOKEN = "analyst-token-1"


class _CountingServer(http.server.ThreadingHTTPServer):
    """An HTTP server on loopback that records every connection, whatever protocol follows."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections: list[tuple[str, int]] = []
        self.daemon_threads = True

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections.append(client_address)
        return True


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"fetched\n")

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Door:
    """The SQL door under test and everything its attempts could touch."""

    settings: Settings
    db: Database
    client: TestClient
    other: str  # a database beside the configured one
    secret: str  # the row in other.secret and the content of secret_file
    secret_file: Path
    outfile: Path
    marker: Path
    server: _CountingServer

    @property
    def database(self) -> str:
        return self.settings.clickhouse_database

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def sql(self, statement: str, parameters: dict[str, Any] | None = None, **extra: Any) -> Any:
        body = {"sql": statement, "parameters": parameters or {}, **extra}
        return self.client.post("/sql", json=body, headers={"Authorization": f"Bearer {TOKEN}"})


def _health() -> dict[str, Any]:
    return {"status": "ok"}


@pytest.fixture
def door(clickhouse_url: str, tmp_path: Path) -> Iterator[Door]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(CLICKHOUSE_URL=clickhouse_url, LEADSTREAM_CLICKHOUSE_DATABASE=f"ls_guard_{tag}",
                        LEADSTREAM_DATA_DIR=str(tmp_path / "data"), LEADSTREAM_QUERY_TOKEN=TOKEN)
    db = connect(settings)
    other, secret = f"ls_other_{tag}", f"top-secret-{tag}"
    server = _CountingServer()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        apply_migrations(db)
        touch = one_touch(contact_id="c-guard", anonymous_id="anon-guard")
        for name, record in (("EnrichedTouch", touch), ("ContactVersion", one_contact("c-guard", touch))):
            spec = TABLES[name]
            db.insert(spec.table, [spec.convert(record)], spec.columns)
        db.command(f"CREATE DATABASE {other}")
        db.command(f"CREATE TABLE {other}.secret (s String) ENGINE = MergeTree ORDER BY s")
        db.command(f"INSERT INTO {other}.secret VALUES ('{secret}')")
        secret_file = tmp_path / "secret.txt"
        secret_file.write_text(f"{secret}\n")
        with TestClient(build_app(db, _health, token=TOKEN)) as client:
            yield Door(settings, db, client, other, secret, secret_file, tmp_path / "out.txt",
                       tmp_path / "marker", server)
    finally:
        server.shutdown()
        server.server_close()
        for name in (other, settings.clickhouse_database):
            db.command(f"DROP DATABASE IF EXISTS {name}")
        db.close()


def _refused_attempts(d: Door) -> list[tuple[str, dict[str, Any]]]:
    """Every way out of the door that must be refused: (statement, parameters)."""
    db, other, out, secret_file, http = d.database, d.other, d.outfile, d.secret_file, d.http
    return [
        # writing files on the sink's machine
        (f"SELECT 1 INTO OUTFILE '{out}'", {}),
        (f"SELECT 1 /* ; */ INTO OUTFILE '{out}'", {}),
        (f"SELECT * FROM {db}.touches INTO OUTFILE '{out}' TRUNCATE", {}),
        (f"SELECT 1 INTO OUTFILE '{out}' AND STDOUT", {}),
        (f"SELECT 1 -- a comment\nINTO OUTFILE '{out}'", {}),
        # files, the network, processes, the client's input
        (f"SELECT * FROM file('{secret_file}', 'LineAsString')", {}),
        (f"SELECT file('{secret_file}')", {}),
        (f"SELECT FILE('{secret_file}')", {}),
        (f"SELECT arrayMap(x -> file(x), ['{secret_file}'])", {}),
        (f"SELECT * FROM url('{http}/url', 'LineAsString')", {}),
        (f"SELECT * FROM s3('{http}/bucket/s3.csv', 'CSV', 'a String')", {}),
        (f"SELECT * FROM remote('127.0.0.1:{d.server.server_address[1]}', system.one)", {}),
        (f"SELECT * FROM executable('touch {d.marker}', 'TSV', 'a String')", {}),
        ("SELECT * FROM input('a String')", {}),
        ("SELECT * FROM Python(db)", {}),
        (f"SELECT * FROM icebergS3('{http}/bucket/table/')", {}),
        # hidden in a CTE, a subquery, a scalar subquery, a UNION, an EXCEPT
        (f"WITH c AS (SELECT * FROM url('{http}/cte', 'LineAsString')) SELECT * FROM c", {}),
        (f"SELECT * FROM (SELECT * FROM file('{secret_file}', 'LineAsString'))", {}),
        (f"SELECT (SELECT file('{secret_file}'))", {}),
        (f"SELECT 1 UNION ALL SELECT * FROM url('{http}/union', 'LineAsString')", {}),
        (f"SELECT 'a' EXCEPT SELECT * FROM s3('{http}/bucket/except.csv', 'CSV', 'a String')", {}),
        # other databases, the default database, system tables that are not served
        (f"SELECT * FROM {other}.secret", {}),
        (f"SELECT count() FROM {db}.touches WHERE 1 IN (SELECT 1 FROM {other}.secret)", {}),
        (f"SELECT '{d.secret}' IN {other}.secret", {}),
        (f"SELECT * FROM {db}.touches AS t JOIN {other}.secret AS s ON t.source = s.s", {}),
        ("SELECT * FROM secret", {}),
        (f"SELECT * FROM `{other}.secret`", {}),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", {}),
        ("SELECT * FROM system.settings", {}),
        ("SELECT * FROM system.processes", {}),
        ("SELECT * FROM system.users", {}),
        (f"SELECT * FROM merge('{other}', '.*')", {}),
        (f"SELECT * FROM view(SELECT * FROM {other}.secret)", {}),
        ("SELECT * FROM {t:Identifier}", {"t": f"{other}.secret"}),
        ("SELECT * FROM {d:Identifier}.secret", {"d": other}),
        (f"SELECT hasColumnInTable('{other}', 'secret', 's')", {}),
        (f"SELECT joinGet('{other}.secret', 's', 1)", {}),
        ("SELECT dictGet('some_dictionary', 'a', 1)", {}),
        # the machine itself
        ("SELECT getServerSetting('path')", {}),
        ("SELECT hostName()", {}),
        ("SELECT filesystemAvailable()", {}),
        # lifting the limits
        ("SELECT number FROM numbers(1000000) SETTINGS max_result_rows = 1000000", {}),
        ("SELECT 1 SETTINGS readonly = 0", {}),
        ("SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 0)", {}),
        ("SELECT 1 FORMAT JSON", {}),
        # more than one statement, and every statement that is no SELECT
        ("SELECT 1; SELECT 2", {}),
        (f"SELECT 1; DROP TABLE {db}.touches", {}),
        (f"INSERT INTO {db}.touches SELECT * FROM {db}.touches", {}),
        (f"CREATE TABLE {db}.evil (a UInt8) ENGINE = Memory", {}),
        (f"DROP TABLE {db}.touches", {}),
        (f"TRUNCATE TABLE {db}.touches", {}),
        (f"ALTER TABLE {db}.touches DELETE WHERE 1", {}),
        (f"ATTACH TABLE {db}.gone", {}),
        ("SYSTEM STOP MERGES", {}),
        ("KILL QUERY WHERE 1", {}),
        ("SET readonly = 0", {}),
        (f"EXPLAIN SELECT * FROM {db}.touches", {}),
        (f"DESCRIBE TABLE {db}.touches", {}),
        # values the client library would splice into the text after the check
        ("SELECT '%(x)s'", {"x": "' , file('x') , '"}),
        ("SELECT 1", {"bad name": 1}),
    ]


def test_every_way_out_is_refused_and_nothing_is_written_or_fetched(door: Door) -> None:
    """Each refused attempt answers 400 naming what was refused; no file, no fetch, no secret, no change."""
    db = door.database
    before = door.sql(f"SELECT count() FROM {db}.touches").json()["rows"]
    answers: list[str] = []
    for statement, parameters in _refused_attempts(door):
        response = door.sql(statement, parameters)
        print(f"{response.status_code} {statement!r}: {response.text}")
        assert response.status_code == 400, statement
        error = response.json()["error"]
        assert isinstance(error, str) and len(error) > 10, statement
        answers.append(response.text)
    # a limit of 0 would lift the row limit (max_result_rows = 0 is unlimited)
    for limit in (0, -1, "5", True):
        assert door.sql("SELECT number FROM numbers(10)", limit=limit).status_code == 400, limit

    assert not door.outfile.exists(), "INTO OUTFILE wrote a file"
    assert not door.marker.exists(), "a process ran"
    assert door.server.connections == [], "the engine reached the network"
    assert not any(door.secret in answer for answer in answers), "a secret came back"
    assert door.sql(f"SELECT count() FROM {db}.touches").json()["rows"] == before == [[1]]
    tables = door.sql("SELECT name FROM system.tables WHERE database = {d:String} AND name = 'evil'",
                      {"d": db}).json()["rows"]
    assert tables == []


def test_refusals_name_what_was_refused(door: Door) -> None:
    """The message says which clause, table or function was refused."""
    expect = {
        f"SELECT 1 INTO OUTFILE '{door.outfile}'": "INTO OUTFILE",
        f"SELECT file('{door.secret_file}')": "function file()",
        f"SELECT * FROM url('{door.http}/x', 'LineAsString')": "table function url()",
        f"SELECT * FROM {door.other}.secret": f"{door.other}.secret is outside the {door.database} database",
        "SELECT * FROM system.settings": "system table system.settings",
        "SELECT 1 SETTINGS readonly = 0": "SETTINGS",
        "SELECT 1; SELECT 2": "one statement only",
        f"DROP TABLE {door.database}.touches": "only SELECT statements are accepted, not DROP",
        "SELECT * FROM secret": f"write {door.database}.secret",
    }
    for statement, words in expect.items():
        error = door.sql(statement).json()["error"]
        assert words in error, (statement, error)


def test_what_analysts_need_still_works(door: Door) -> None:
    """Reports' tables, a join, CTEs (also across a UNION), parameters, comments, limits, served system tables."""
    db = door.database
    ok = door.sql(f"SELECT channel, count() AS n FROM {db}.touches_dedup WHERE source = {{src:String}} "
                  "GROUP BY channel", {"src": "google"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"columns": ["channel", "n"], "rows": [["Paid Search", 1]], "truncated": False}
    joined = door.sql(f"SELECT t.channel, c.lead_source FROM {db}.touches_dedup AS t "
                      f"INNER JOIN {db}.contacts_latest AS c ON t.contact_id = c.contact_id").json()
    assert joined["rows"] == [["Paid Search", "google"]]
    cte = door.sql(f"-- how many leads\nWITH x AS (SELECT lead_source FROM {db}.contacts_latest) "
                   "SELECT count() FROM x UNION ALL SELECT count() FROM x /* twice */;").json()
    assert cte["rows"] == [[1], [1]]
    counts = door.sql(f"SELECT lead_source, sum(leads) FROM {db}.lead_counts GROUP BY lead_source").json()
    assert counts["rows"] == [["google", 1]]
    recursive = door.sql("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                         "SELECT n FROM r").json()
    assert recursive["rows"] == [[1], [2], [3]]
    for placeholder in ("{x:UInt32}", "{ x : UInt32 }"):
        bound = door.sql(f"SELECT number FROM numbers(10) WHERE number < {placeholder}", {"x": 3}).json()
        assert bound["rows"] == [[0], [1], [2]], placeholder
    assert door.sql("SELECT '%(x)s' AS s").json()["rows"] == [["%(x)s"]]
    limited = door.sql("SELECT number FROM numbers(100)", limit=5).json()
    assert len(limited["rows"]) == 5 and limited["truncated"] is True
    generators = {"numbers": "numbers(2)", "numbers_mt": "numbers_mt(2)", "generate_series": "generate_series(0, 1)",
                  "generateSeries": "generateSeries(0, 1)", "values": "values('a UInt8', 0, 1)"}
    assert set(generators) == TABLE_FUNCTIONS
    for call in generators.values():
        assert sorted(door.sql(f"SELECT * FROM {call}").json()["rows"]) == [[0], [1]], call
    schema = door.sql("SELECT name FROM system.tables WHERE database = {d:String} AND name = 'touches'",
                      {"d": db}).json()
    assert schema["rows"] == [["touches"]]
    for table in sorted(SYSTEM_TABLES):
        limit_clause = " LIMIT 1" if table == "numbers" else ""
        assert door.sql(f"SELECT count() FROM (SELECT * FROM system.{table}{limit_clause})").status_code == 200
    assert door.client.get("/reports/sources", headers={"Authorization": f"Bearer {TOKEN}"}).json()[0][
        "lead_source"] == "Paid Search"


@pytest.mark.timeout(60)
def test_hostile_text_is_refused_at_once(door: Door) -> None:
    """Unclosed comment openers, deep nesting and huge names are refused without a hang."""
    for text in ("/*" * 500_000, "/*" * (MAX_SQL_CHARS // 2 - 1), "SELECT " + "(" * 5000 + "1" + ")" * 5000,
                 "SELECT " + "-" * (MAX_SQL_CHARS - 10), "SELECT 1 -- " + "/*" * 40_000):
        response = door.sql(text)
        if text.startswith("SELECT 1 --"):
            assert response.json()["rows"] == [[1]]  # a comment is only a comment
            continue
        assert response.status_code == 400 and response.json()["error"], text[:40]
    assert door.sql("SELECT 1", {"a" * 100_000 + "-": 1}).status_code == 400


def test_the_engine_limits_hold(door: Door) -> None:
    """Memory and time limits reach the engine: a statement over them is a 400, not a stuck sink."""
    heavy = door.sql("SELECT length(groupArray(toString(number))) FROM numbers(200000000)")
    assert heavy.status_code == 400
    assert "limit" in heavy.json()["error"].lower() or "timeout" in heavy.json()["error"].lower()
    assert door.sql("SELECT 1").json()["rows"] == [[1]]  # the session is not left in a bad state
    assert door.db.query("SELECT getSetting('readonly')")[1] == [(0,)]  # the sink can still write


def test_the_bearer_token_is_required_when_set(door: Door) -> None:
    """Without the token (or with a wrong one) every path but /healthz answers 401; with it, 200."""
    client = door.client
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}):
        assert client.post("/sql", json={"sql": "SELECT 1"}, headers=headers).status_code == 401, headers
        assert client.get("/reports", headers=headers).status_code == 401, headers
        response = client.get("/reports/sources", headers=headers)
        assert response.status_code == 401 and "bearer token" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/healthz").status_code == 200
    assert client.get("/reports", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert door.sql("SELECT 1").json()["rows"] == [[1]]


def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    return cli(settings, *args)


def test_leadstream_query_sends_the_token(door: Door) -> None:
    """`leadstream query` passes LEADSTREAM_QUERY_TOKEN; without it the API's 401 is its error."""
    settings = door.settings.model_copy(update={"query_port": free_port()})
    server = uvicorn.Server(uvicorn.Config(build_app(door.db, _health, token=TOKEN), host=settings.query_host,
                                           port=settings.query_port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the query API")
        code, out, err = _cli(settings, "query", "sources", "--format", "json")
        assert code == 0, err
        assert '"lead_source": "Paid Search"' in out
        code, _, err = _cli(settings.model_copy(update={"query_token": None}), "query", "sources")
        assert code == 1 and "401" in err and "bearer token" in err
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_sink_refuses_to_serve_beyond_loopback_without_a_token(door: Door) -> None:
    """On 0.0.0.0 without LEADSTREAM_QUERY_TOKEN: QueryTokenError in process, exit 2 from `leadstream sink`."""
    exposed = door.settings.model_copy(update={"query_host": "0.0.0.0", "query_token": None,
                                               "query_port": free_port()})
    with pytest.raises(QueryTokenError, match="LEADSTREAM_QUERY_TOKEN"):
        SinkService(exposed, door.db, serve_api=True)
    env = settings_env(exposed, LEADSTREAM_QUERY_TOKEN="")  # blank is unset, whatever this shell exports
    done = subprocess.run(leadstream_cmd("sink"), env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2, done.stderr
    assert "LEADSTREAM_QUERY_TOKEN" in done.stderr and "0.0.0.0" in done.stderr
    done = subprocess.run(leadstream_cmd("serve", "--no-create-topics"), env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2 and "LEADSTREAM_QUERY_TOKEN" in done.stderr, done.stderr
