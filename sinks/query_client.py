"""``leadstream query``: run a report where the data is and print it.

Embedded mode (``CLICKHOUSE_URL=chdb://…``): the engine belongs to the running sink,
so the report is fetched from the sink's query API. When no sink is serving, the engine
directory is free, and the report runs on it directly (after ``leadstream demo``, for
example); when there is no data there either, the error says to start the sink.
Server mode (``http(s)://…``): the report runs directly against
ClickHouse. Output: a rich table, CSV (header row, then one row per object) or JSON
(the report's objects, keys exactly as documented).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ground.errors import SinkError
from ground.settings import Settings
from sinks.clickhouse import Database
from sinks.report_params import ReportParams
from sinks.reports import run_report

__all__ = ["api_headers", "fetch_alerts", "fetch_report", "render"]

Result = list[dict[str, Any]] | dict[str, Any]


def api_headers(settings: Settings) -> dict[str, str]:
    """The headers a request to the sink's query API carries: the bearer token when one is configured."""
    if settings.query_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.query_token.get_secret_value()}"}


def fetch_report(settings: Settings, name: str, params: ReportParams, timeout: float = 120.0) -> Result:
    """The report's rows, from the sink's API (embedded) or straight from the server."""
    if not settings.clickhouse_embedded:
        from sinks.clickhouse import connect

        db = connect(settings)
        try:
            return run_report(db, name, params)
        finally:
            db.close()
    url = f"http://{settings.query_host}:{settings.query_port}/reports/{name}"
    try:
        response = httpx.get(url, params=params.to_query(), headers=api_headers(settings), timeout=timeout)
    except httpx.TransportError as exc:
        direct = _run_on_idle_engine(settings, name, params)
        if direct is not None:
            return direct
        raise SinkError(
            f"no sink is serving the query API at {settings.query_host}:{settings.query_port} "
            f"({exc.__class__.__name__}). The embedded engine belongs to the sink process: start it with "
            "`leadstream sink` (same CLICKHOUSE_URL and LEADSTREAM_QUERY_PORT), or point CLICKHOUSE_URL at a "
            "ClickHouse server."
        ) from exc
    data: Result = _answer(response)
    return data


def _answer(response: httpx.Response) -> Any:
    """The JSON of a 200 from the query API; SinkError with the API's own message otherwise."""
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise SinkError(f"query API answered {response.status_code}: {message}")
    return response.json()


def fetch_alerts(settings: Settings, timeout: float = 120.0) -> dict[str, Any]:
    """The alert rules evaluated now: by the sink's API (embedded) or here, on the server or an idle engine."""
    from sinks.alert_watch import AlertWatch

    if settings.clickhouse_embedded:
        url = f"http://{settings.query_host}:{settings.query_port}/alerts"
        try:
            response = httpx.get(url, headers=api_headers(settings), timeout=timeout)
        except httpx.TransportError as exc:
            db = _idle_engine(settings)
            if db is None:
                raise SinkError(f"no sink is serving the query API at {settings.query_host}:{settings.query_port} "
                                f"({exc.__class__.__name__}) and the embedded engine holds no leadstream "
                                "database: start `leadstream sink`") from exc
            try:
                return AlertWatch(settings, db).check()
            finally:
                db.close()
        answer: dict[str, Any] = _answer(response)
        return answer
    from sinks.clickhouse import connect

    db = connect(settings)
    try:
        return AlertWatch(settings, db).check()
    finally:
        db.close()


def _idle_engine(settings: Settings) -> Database | None:
    """The embedded engine opened here when no sink holds it and it has a leadstream database."""
    from pathlib import Path

    from sinks.clickhouse import connect

    path = Path(settings.clickhouse_url.removeprefix("chdb://"))
    if not path.is_dir():
        return None
    try:
        db = connect(settings)
    except SinkError:
        return None
    _, rows = db.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
        {"db": settings.clickhouse_database})
    if not rows[0][0]:
        db.close()
        return None
    return db


def _run_on_idle_engine(settings: Settings, name: str, params: ReportParams) -> Result | None:
    """The report straight from the embedded engine when no sink holds it; None if there is no data."""
    db = _idle_engine(settings)
    if db is None:
        return None
    try:
        return run_report(db, name, params)
    finally:
        db.close()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column, justify="left" if isinstance(rows[0][column], str) else "right")
    for row in rows:
        table.add_row(*(_fmt(row[c]) for c in columns))
    return table


def _sections(name: str, result: Result) -> list[tuple[str, list[dict[str, Any]]]]:
    if isinstance(result, list):
        return [(name, result)]
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for section, value in result.items():
        rows = value if isinstance(value, list) else [value]
        out.append((f"{name}: {section}", rows))
    return out


def render(name: str, result: Result, fmt: str, console: Console | None = None) -> str:
    """The report as text in ``fmt`` (table, csv, json)."""
    if fmt == "json":
        return json.dumps(result, indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        for title, rows in _sections(name, result):
            if isinstance(result, dict):
                buffer.write(f"# {title}\n")
            if rows:
                writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
                writer.writeheader()
                writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        return buffer.getvalue()
    console = console or Console(width=200, record=True)
    with console.capture() as capture:
        for title, rows in _sections(name, result):
            if rows:
                console.print(_table(title, rows))
            else:
                console.print(f"{title}: no rows")
    return capture.get()
