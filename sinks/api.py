"""The read-only HTTP query API of the sink (embedded mode).

The embedded engine lives inside the sink process (one engine per process), so the
sink also answers the analysts: ``leadstream query`` and any HTTP client call it.

Endpoints:

* ``GET /healthz`` — the sink's counters; 200 while the consumer runs.
* ``GET /reports`` — the report names.
* ``GET /reports/{name}?by=&since=&until=&model=&half_life=&include_open_lost=`` — a report
  as JSON (a list of objects; an object of sections for ``quality``).
* ``POST /sql`` with ``{"sql": "SELECT ...", "parameters": {...}, "limit": 1000}`` — one
  SELECT (or WITH … SELECT) statement, values bound as ClickHouse parameters
  (``{name:Type}``), run with ``readonly=1``, a row limit and a time limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import re2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sinks.analyst_pool import AnalystsBusyError
from sinks.clickhouse import Database
from sinks.errors import ReportError
from sinks.json_values import json_scalar
from sinks.report_params import ReportParams
from sinks.reports import REPORTS, run_report

__all__ = ["MAX_ROWS", "QUERY_TIMEOUT_S", "build_app", "check_select"]

MAX_ROWS = 10_000
QUERY_TIMEOUT_S = 30
# RE2: analysts' SQL is client text, and "/*/*/*..." made the lazy comment pattern quadratic.
_SELECT = re2.compile(r"(?i)^\s*(\(\s*)*(SELECT|WITH)\b")
_COMMENT = re2.compile(r"(?s)--[^\n]*|/\*.*?\*/")


class _JSON(JSONResponse):
    """JSON with a fallback for ClickHouse scalar types json does not know (dates, UUIDs, decimals)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, allow_nan=False, separators=(",", ":")).encode()


def check_select(sql: str) -> str:
    """The statement when it is one SELECT; ReportError otherwise."""
    body = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
    if not _SELECT.match(body):
        raise ReportError("only SELECT statements are accepted")
    if ";" in body:
        raise ReportError("one statement only")
    return body


def build_app(db: Database, health: Callable[[], dict[str, Any]]) -> Starlette:
    """The ASGI app; ClickHouse calls run in a worker thread behind the database lock."""

    async def healthz(request: Request) -> JSONResponse:
        info = health()
        return _JSON(info, status_code=200 if info.get("status") == "ok" else 503)

    async def list_reports(request: Request) -> JSONResponse:
        return _JSON({"reports": list(REPORTS)})

    async def report(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        try:
            params = ReportParams.parse(request.query_params)  # the HTTP edge: parsed here, once
            result = await asyncio.to_thread(run_report, db, name, params)  # an unknown name: ReportError
        except ReportError as exc:
            return _JSON({"error": str(exc)}, status_code=400)
        except AnalystsBusyError as exc:
            return _JSON({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        return _JSON(result)

    async def sql(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
                raise ReportError('expected a JSON object {"sql": "...", "parameters": {...}}')
            statement = check_select(body["sql"])
            parameters = body.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise ReportError("parameters must be an object")
            limit = min(int(body.get("limit", MAX_ROWS)), MAX_ROWS)
        except (ValueError, ReportError) as exc:
            return _JSON({"error": str(exc)}, status_code=400)
        settings = {
            "readonly": 1,
            "max_result_rows": limit,
            "result_overflow_mode": "break",
            "max_execution_time": QUERY_TIMEOUT_S,
        }
        try:
            columns, rows = await asyncio.to_thread(db.query, statement, parameters, settings)
        except AnalystsBusyError as exc:
            return _JSON({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        except Exception as exc:  # ClickHouse's message is the useful answer to a bad query
            return _JSON({"error": str(exc).splitlines()[0][:2000]}, status_code=400)
        rows = rows[:limit]
        return _JSON({"columns": columns,
                      "rows": [[json_scalar(v) for v in row] for row in rows],
                      "truncated": len(rows) >= limit})

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/reports", list_reports),
        Route("/reports/{name}", report),
        Route("/sql", sql, methods=["POST"]),
    ])
