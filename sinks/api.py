"""The read-only HTTP query API of the sink (embedded mode).

The embedded engine lives inside the sink process (one engine per process), so the
sink also answers the analysts: ``leadstream query`` and any HTTP client call it.

Endpoints (with ``LEADSTREAM_QUERY_TOKEN`` set, all but ``/healthz`` need
``Authorization: Bearer <token>``; beyond loopback the token is required, see
:func:`require_query_token`):

* ``GET /healthz`` — the sink's counters; 200 while the consumer runs. Open, so liveness
  probes need no secret.
* ``GET /reports`` — the report names.
* ``GET /reports/{name}?by=&since=&until=&model=&half_life=&include_open_lost=`` — a report
  as JSON (a list of objects; an object of sections for ``quality``).
* ``GET /alerts`` — the alert rules evaluated now: ``{"evaluated_at", "alerts": [...]}``.
* ``GET /metrics`` — Prometheus: the sink's counters and the latest alerts (``sinks.alert_watch``).
* ``POST /sql`` with ``{"sql": "SELECT ...", "parameters": {...}, "limit": 1000}`` — one
  SELECT (or WITH … SELECT) statement that :mod:`sinks.sql_guard` lets through, values
  bound by the engine as ClickHouse parameters (``{name:Type}``), run with ``readonly=1``
  and row, time and memory limits.
* ``GET /dashboard`` — the live dashboard (:mod:`sinks.dashboard`): a page without data,
  served without the token; it fetches the reports with the token the user gives it.
* ``/`` and ``/ping`` — enough of ClickHouse's own HTTP interface for ClickHouse clients
  (:mod:`sinks.clickhouse_http`), behind the same guard; the token is also accepted as
  the password (HTTP Basic or ``X-ClickHouse-Key``) there.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ground.errors import LeadstreamError
from ground.settings import Settings
from sinks.analyst_pool import AnalystsBusyError
from sinks.clickhouse import Database
from sinks.clickhouse_http import clickhouse_routes
from sinks.dashboard import OPEN_PREFIXES, dashboard_routes
from sinks.errors import QueryTokenError, ReportError
from sinks.json_values import json_scalar
from sinks.report_params import ReportParams
from sinks.reports import REPORTS, run_report
from sinks.sql_guard import guard_select

__all__ = ["MAX_QUERY_MEMORY", "MAX_ROWS", "OPEN_PATHS", "QUERY_TIMEOUT_S", "build_app", "require_query_token"]

MAX_ROWS = 10_000
QUERY_TIMEOUT_S = 30
#: Bytes one ``/sql`` statement may hold: the engine lives in the sink's process.
MAX_QUERY_MEMORY = 1 << 30
#: Paths served without the bearer token (liveness probes; ClickHouse's ``/ping``).
OPEN_PATHS = frozenset({"/healthz", "/ping"})


class _JSON(JSONResponse):
    """JSON with a fallback for ClickHouse scalar types json does not know (dates, UUIDs, decimals)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, allow_nan=False, separators=(",", ":")).encode()


def require_query_token(settings: Settings) -> str | None:
    """The token the query API enforces; QueryTokenError when it would listen beyond loopback without one.

    On loopback only this machine's users reach the API, so the token is optional there
    (and enforced when set); on any other address anyone on the network could ask.
    """
    token = settings.query_token.get_secret_value() if settings.query_token else None
    if token is None and not settings.query_host_is_loopback:
        raise QueryTokenError(
            f"the query API would listen on {settings.query_host}:{settings.query_port}, beyond this machine's "
            "loopback, without a token: set LEADSTREAM_QUERY_TOKEN (clients send it as "
            "'Authorization: Bearer <token>'), or keep LEADSTREAM_QUERY_HOST=127.0.0.1")
    return token


class _BearerToken:
    """401 for every request outside :data:`OPEN_PATHS` without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _matches(self, credentials: str) -> bool:
        # compare_digest on bytes: constant time, and no TypeError for a non-ASCII header
        return hmac.compare_digest(credentials.strip().encode(), self.token)

    def _authorised(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self._matches(credentials)
        if scope["path"] != "/":
            return False
        # ClickHouse clients authenticate with a user and a password: the password is the token
        if scheme.lower() == "basic":
            try:
                _, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return self._matches(password)
        return "x-clickhouse-key" in headers and self._matches(headers["x-clickhouse-key"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] == "http" and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)
                and not self._authorised(scope)):
            response: Response
            if scope["path"] == "/":  # a ClickHouse client reads ClickHouse's error shape
                response = PlainTextResponse(
                    "Code: 516. DB::Exception: missing or wrong token: send LEADSTREAM_QUERY_TOKEN as the "
                    "password (or as 'Authorization: Bearer <token>'). (AUTHENTICATION_FAILED)\n",
                    status_code=401, headers={"X-ClickHouse-Exception-Code": "516"})
            else:
                response = _JSON({"error": "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                           "with the sink's LEADSTREAM_QUERY_TOKEN"},
                                 status_code=401, headers={"WWW-Authenticate": 'Bearer realm="leadstream"'})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _sql_request(body: Any) -> tuple[str, dict[str, Any], int]:
    """(sql, parameters, limit) of a ``/sql`` body; ReportError for a malformed one."""
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise ReportError('expected a JSON object {"sql": "...", "parameters": {...}}')
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ReportError("parameters must be an object")
    limit = body.get("limit", MAX_ROWS)
    # max_result_rows = 0 would mean no limit at all
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ReportError(f"limit must be a whole number from 1 to {MAX_ROWS:,}")
    return body["sql"], parameters, min(limit, MAX_ROWS)


def build_app(db: Database, health: Callable[[], dict[str, Any]], *, token: str | None = None,
              alerts: Callable[[], dict[str, Any]] | None = None,
              metrics: Callable[[], bytes] | None = None) -> Starlette:
    """The ASGI app; ClickHouse calls run in worker threads, on ``db`` (the sink gives its analyst pool).

    ``token``: when given, every path but :data:`OPEN_PATHS` needs it as a bearer token.
    ``alerts``: evaluates the alert rules now (``GET /alerts``; 404 without it).
    ``metrics``: the Prometheus text of ``GET /metrics`` (404 without it).
    """

    async def metrics_page(request: Request) -> Response:
        if metrics is None:
            return _JSON({"error": "no metrics here"}, status_code=404)
        from prometheus_client import CONTENT_TYPE_LATEST

        try:
            return Response(await asyncio.to_thread(metrics), media_type=CONTENT_TYPE_LATEST)
        except Exception as exc:  # a scrape never gets a traceback: the scraper retries
            return _JSON({"error": f"metrics unavailable: {exc!r}"[:500]}, status_code=503)

    async def alert_list(request: Request) -> JSONResponse:
        if alerts is None:
            return _JSON({"error": "alerts are not evaluated here"}, status_code=404)
        try:
            return _JSON(await asyncio.to_thread(alerts))
        except AnalystsBusyError as exc:
            return _JSON({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        except LeadstreamError as exc:  # the rules file
            return _JSON({"error": str(exc)}, status_code=500)
        except Exception as exc:  # the broker or the engine unreachable: retryable, not a bug
            reason = str(exc).splitlines()[0][:500] if str(exc) else repr(exc)
            return _JSON({"error": f"alerts could not be evaluated: {reason}"}, status_code=503,
                         headers={"Retry-After": "5"})

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
            text, parameters, limit = _sql_request(await request.json())
            statement = await asyncio.to_thread(guard_select, db, text, parameters)
        except (ValueError, ReportError) as exc:  # a refusal names what was refused
            return _JSON({"error": str(exc)}, status_code=400)
        except AnalystsBusyError as exc:
            return _JSON({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        settings = {
            "readonly": 1,
            "max_result_rows": limit,
            "result_overflow_mode": "break",
            "max_execution_time": QUERY_TIMEOUT_S,
            "max_memory_usage": MAX_QUERY_MEMORY,
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

    middleware = [Middleware(_BearerToken, token=token)] if token else []
    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/reports", list_reports),
        Route("/reports/{name}", report),
        Route("/sql", sql, methods=["POST"]),
        Route("/alerts", alert_list),
        Route("/metrics", metrics_page),
        *clickhouse_routes(db),
        *dashboard_routes(),
    ], middleware=middleware)
