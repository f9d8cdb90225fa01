"""The ClickHouse-compatible endpoint (``/``): real clients connect, and it is as read-only as ``/sql``.

clickhouse-connect's own HTTP client is pointed at a query API served by uvicorn over the
session's embedded engine, holding a world of touches, contacts and deals: its rows of
the ``sources`` report equal ``leadstream query sources --format json``. Every attempt of
the ``/sql`` refusal list (:func:`tests.integration.test_sink_sql_guard._refused_attempts`)
is refused here too, in ClickHouse's error shape, and afterwards nothing was written or
fetched; so are the ways out this door adds (settings in the URL, formats that read
files, other databases, oversized bodies).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import pytest
import uvicorn
from clickhouse_connect.driver.exceptions import DatabaseError

from ground.topics import TOPIC_RECORDS
from leadstream.testing.processes import free_port
from leadstream.testing.waiting import wait_for
from sinks.api import build_app
from sinks.clickhouse_http import MAX_RESULT_ROWS
from sinks.json_values import json_scalar
from sinks.report_params import ReportParams
from sinks.reports import report_sql, report_values
from sinks.rows import TABLES
from sinks.sql_guard import MAX_SQL_CHARS
from tests.integration.sink_feed import enriched_feed, generate_world
from tests.integration.test_sink_sql_guard import TOKEN, Door, _cli, _health, _refused_attempts, door

pytestmark = [pytest.mark.integration]

__all__ = ["door"]  # the fixture, shared with the /sql tests

#: Refused on ``/sql`` but served here: what ClickHouse clients read or send at connect time.
SERVED_HERE = {"SELECT * FROM system.settings", "SELECT 1 FORMAT JSON"}
AUTH = {"Authorization": "Basic " + base64.b64encode(f"default:{TOKEN}".encode()).decode()}


def _post(d: Door, statement: str, parameters: dict[str, Any] | None = None, **query: str) -> Any:
    params = {f"param_{k}": str(v) for k, v in (parameters or {}).items()} | query
    return d.client.post("/", content=statement.encode(), params=params, headers=AUTH)


def _refused(response: Any) -> bool:
    """ClickHouse's error shape: a 4xx, the code in the header, ``Code: N. DB::Exception: ...`` in the body."""
    code = response.headers.get("x-clickhouse-exception-code", "")
    return 400 <= response.status_code < 500 and code.isdigit() and response.text.startswith(f"Code: {code}.")


@pytest.fixture
def served(door: Door) -> Iterator[tuple[Door, int]]:
    """The door's app on a real port (clickhouse-connect speaks HTTP over a socket)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(door.db, _health, token=TOKEN), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the query API")
        yield door, port
    finally:
        server.should_exit = True
        thread.join(30)


def _load_world(d: Door) -> None:
    batches: dict[str, list[Any]] = {}
    for base, _, record in enriched_feed(generate_world(seed=5)):
        batches.setdefault(TOPIC_RECORDS[base], []).append(record)
    for name, records in batches.items():
        spec = TABLES[name]
        d.db.insert(spec.table, [spec.convert(r) for r in records], spec.columns)


def test_clickhouse_connect_gets_the_sources_rows_of_leadstream_query(served: tuple[Door, int]) -> None:
    d, port = served
    _load_world(d)
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default", password=TOKEN)
    try:
        assert client.server_version and client.command("SELECT 1") == 1
        # the report's own SQL; its SETTINGS clause (a speed hint) is the limits' business here
        sql = report_sql("sources", d.database).replace("SETTINGS optimize_aggregation_in_order = 1", "")
        assert "SETTINGS" not in sql
        result = client.query(sql, parameters=report_values(ReportParams()))
        got = [{c: json_scalar(v) for c, v in zip(result.column_names, row, strict=True)} for row in result.result_rows]
        # the other formats and doors of the client
        frame = client.raw_query(f"SELECT uniqExact(event_id) AS n FROM {d.database}.touches", fmt="JSONEachRow")
        bound = client.query("SELECT {a:Array(String)} AS a, {s:String} AS s", parameters={"a": ["x'y", "z"],
                                                                                         "s": "tab\there"})
        with pytest.raises(DatabaseError, match="164"):
            client.query(f"SELECT * FROM file('{d.secret_file}', 'LineAsString')")
    finally:
        client.close()
    code, out, err = _cli(d.settings.model_copy(update={"query_port": port}), "query", "sources", "--format", "json")
    assert code == 0, err
    expected = json.loads(out)
    print(f"clickhouse-connect: {len(got)} sources rows, leadstream query: {len(expected)}")
    assert len(expected) >= 3 and got == expected
    touches = {r["event_id"] for base, _, r in enriched_feed(generate_world(seed=5)) if base == "enriched-touches"}
    assert json.loads(frame)["n"] == len(touches) + 1  # and the door's own touch
    assert bound.result_rows == [(["x'y", "z"], "tab\there")]


def test_the_clickhouse_http_basics(door: Door) -> None:
    """/ping, formats, default_format, query_id, the token as password, and each answer's shape."""
    client = door.client
    assert client.get("/ping").text == "Ok.\n"  # open, like /healthz
    assert client.get("/").status_code == 401 and client.get("/", headers=AUTH).text == "Ok.\n"
    wrong = base64.b64encode(b"default:nope").decode()
    assert _refused(client.post("/", content=b"SELECT 1", headers={"Authorization": f"Basic {wrong}"}))
    assert client.post("/", content=b"SELECT 1", headers={"X-ClickHouse-Key": TOKEN}).text == "1\n"
    assert client.post("/", content=b"SELECT 1", headers={"Authorization": f"Bearer {TOKEN}"}).text == "1\n"
    answers = {"TabSeparated": "0\n1\n", "CSVWithNames": '"n"\n0\n1\n', "JSONEachRow": '{"n":0}\n{"n":1}\n'}
    for fmt, text in answers.items():
        response = _post(door, f"SELECT toUInt8(number) AS n FROM numbers(2) FORMAT {fmt}")
        assert response.status_code == 200 and response.headers["x-clickhouse-format"] == fmt, response.text
        assert response.text == text, fmt
    by_default = _post(door, "SELECT number FROM numbers(2)", default_format="JSONCompact", query_id="q-7")
    assert json.loads(by_default.text)["data"] == [[0], [1]] and by_default.headers["x-clickhouse-query-id"] == "q-7"
    hostile_id = _post(door, "SELECT 1", query_id="q\r\nSet-Cookie: x=1")
    assert hostile_id.status_code == 200 and "set-cookie" not in hostile_id.headers
    assert hostile_id.headers["x-clickhouse-query-id"] != "q\r\nSet-Cookie: x=1"
    via_url = door.client.get("/", params={"query": "SELECT 2"}, headers=AUTH)
    assert via_url.text == "2\n"
    assert _post(door, "SELECT {n:UInt8} + 1", {"n": 4}).text == "5\n"
    assert door.client.post("/", content=b"SELECT 1", headers={**AUTH, "X-ClickHouse-Format": "JSONEachRow"}
                            ).text == '{"1":1}\n'  # the JDBC driver asks for its format in a header
    compressed = _post(door, "SELECT 1", compress="1")
    assert _refused(compressed) and "compress=0" in compressed.text
    ignored = _post(door, "SELECT 1", send_logs_level="trace")
    assert ignored.text == "1\n" and ignored.headers["x-leadstream-ignored-settings"] == "send_logs_level"


def test_every_way_out_is_refused_on_the_clickhouse_endpoint(door: Door) -> None:
    """The /sql refusal list, then what this door adds; nothing written, fetched or leaked."""
    answers: list[str] = []
    attempts = [(s, p) for s, p in _refused_attempts(door) if s not in SERVED_HERE]
    assert len(attempts) >= 55
    for statement, parameters in attempts:
        if any(not k.isidentifier() for k in parameters):  # a name the URL cannot carry as param_<name>
            continue
        response = _post(door, statement, parameters)
        print(f"{response.status_code} {statement!r}: {response.text.strip()}")
        assert _refused(response), (statement, response.status_code, response.text)
        answers.append(response.text)
    for query in ({"readonly": "0"}, {"max_result_rows": "0"}, {"max_execution_time": "100000"},
                  {"max_memory_usage": "0"}, {"allow_introspection_functions": "1"},
                  {"result_overflow_mode": "break"}, {"format_schema": "/etc/passwd"},
                  {"format_template_resultset": str(door.secret_file)}, {"database": door.other},
                  {"default_format": "Template"}):
        response = _post(door, "SELECT 1", **query)
        print(f"{response.status_code} ?{query}: {response.text.strip()}")
        assert _refused(response), query
        answers.append(response.text)
    for statement in ("SELECT 1 FORMAT Template", "SELECT 1 FORMAT Protobuf", "SELECT 1 FORMAT CapnProto",
                      "SELECT 1 FORMAT JSON INTO OUTFILE 'x'", f"SELECT 1 INTO OUTFILE '{door.outfile}' FORMAT CSV"):
        response = _post(door, statement)
        assert _refused(response), statement
    huge = door.client.post("/", content=b"SELECT 1 -- " + b"x" * MAX_SQL_CHARS, headers=AUTH)
    assert huge.status_code == 413 and _refused(huge)
    assert not door.outfile.exists(), "INTO OUTFILE wrote a file"
    assert not door.marker.exists(), "a process ran"
    assert door.server.connections == [], "the engine reached the network"
    assert not any(door.secret in answer for answer in answers), "a secret came back"
    assert _post(door, f"SELECT count() FROM {door.database}.touches").text == "1\n"


def test_the_limits_hold_on_the_clickhouse_endpoint(door: Door) -> None:
    """Rows, memory and time stop at the engine, in a UNION too; the connection is still usable after."""
    too_many = _post(door, f"SELECT number FROM numbers({MAX_RESULT_ROWS + 10})")
    assert too_many.status_code == 500 and too_many.headers["x-clickhouse-exception-code"] == "396", too_many.text
    # the engine hands a failed query's unsent rows to the next query on its connection: not here
    assert _post(door, "SELECT 'mine'").text == "mine\n"
    failed = door.sql("SELECT number, throwIf(number = 200000) FROM numbers(300000) WHERE number % 10000 = 0")
    assert failed.status_code == 400 and door.sql("SELECT 'mine'").json()["rows"] == [["mine"]]
    union = _post(door, f"SELECT 1 AS n UNION ALL SELECT number AS n FROM numbers({MAX_RESULT_ROWS + 10})")
    assert union.status_code == 500 and union.headers["x-clickhouse-exception-code"] == "396", union.text[:300]
    heavy = _post(door, "SELECT length(groupArray(toString(number))) FROM numbers(200000000)")
    assert heavy.status_code == 500 and heavy.headers["x-clickhouse-exception-code"] in ("241", "159"), heavy.text
    assert _post(door, "SELECT 1").text == "1\n"
    assert door.db.query("SELECT getSetting('readonly')")[1] == [(0,)]  # the sink's connection can still write
    assert door.sql("SELECT 1").json()["rows"] == [[1]]  # and /sql still sets its own limits
