"""A ClickHouse-compatible HTTP door to the embedded engine, read-only.

Analysts' own tools speak ClickHouse's HTTP interface, and the embedded engine has no
server of its own: the sink answers enough of that interface on the query API's port
that ``clickhouse_connect.get_client(host=..., port=...)``, ``curl`` and other HTTP
clients can query it. What the door lets through is exactly what ``POST /sql`` does
(:mod:`sinks.sql_guard`, with :data:`~sinks.sql_guard.CLIENT_DOOR`: a top-level ``FORMAT``
and ``system.settings`` on top), run on the analysts' own connections with their limits.

* ``GET /ping`` answers ``Ok.``; ``GET /`` without a query too.
* ``GET`` or ``POST /`` with the statement in ``query=`` and/or the body (joined by a
  newline, as ClickHouse does); the answer in the statement's ``FORMAT``, else
  ``default_format`` (or the ``X-ClickHouse-Format`` header), else ``TabSeparated``.
* ``param_<name>=<text>`` binds ``{name:Type}`` placeholders (the text as ClickHouse
  reads it over HTTP); ``database`` may be absent, ``default`` or the configured one
  (tables are still named ``leadstream.<table>``); ``query_id`` is echoed back.
* Settings in the URL: those that only shape the output (:data:`OUTPUT_SETTINGS`) are
  applied; one that would change a limit or the access (:func:`_lifts_a_limit`) is
  refused; any other is ignored (and named in ``X-Leadstream-Ignored-Settings``), so
  that clients which send their usual settings keep working.
* Errors come as ClickHouse's do: ``Code: N. DB::Exception: ...`` in the body and the
  code in ``X-ClickHouse-Exception-Code``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import re2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sinks.analyst_pool import AnalystsBusyError
from sinks.clickhouse import Database
from sinks.sql_guard import CLIENT_FORMATS, MAX_SQL_CHARS, SqlRefused, guard_client_select

__all__ = ["MAX_EXECUTION_S", "MAX_MEMORY_BYTES", "MAX_RESULT_BYTES", "MAX_RESULT_ROWS", "OUTPUT_SETTINGS",
           "TRANSPORT_PARAMETERS", "clickhouse_routes"]

#: Bounds of one statement on this door (the engine stops it beyond them; the analysts'
#: pool may tighten the time and memory further).
MAX_RESULT_ROWS = 1_000_000
MAX_RESULT_BYTES = 64 << 20
MAX_EXECUTION_S = 30
MAX_MEMORY_BYTES = 1 << 30

#: URL parameters of ClickHouse's HTTP interface that are no settings: read here or ignored.
TRANSPORT_PARAMETERS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "user", "password", "quota_key", "compress", "decompress", "enable_http_compression",
    "http_zlib_compression_level", "buffer_size", "wait_end_of_query", "client_protocol_version",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close",
    "add_http_cors_header", "http_native_compression_disable_checksumming_on_decompress", "role",
    "date_time_input_format", "cast_string_to_dynamic_use_inference", "input_format_null_as_default",
})

#: Settings a client may send that only change how rows are written out.
OUTPUT_SETTINGS = frozenset({
    "output_format_json_quote_64bit_integers", "output_format_json_quote_64bit_floats",
    "output_format_json_quote_denormals", "output_format_json_quote_decimals",
    "output_format_json_named_tuples_as_objects",
    "output_format_json_escape_forward_slashes", "output_format_json_array_of_rows", "output_format_json_validate_utf8",
    "output_format_native_encode_types_in_binary_format", "output_format_native_write_json_as_string",
    "output_format_decimal_trailing_zeros", "output_format_csv_crlf_end_of_line", "output_format_tsv_crlf_end_of_line",
    "output_format_arrow_string_as_string", "output_format_parquet_string_as_string", "output_format_pretty_color",
    "output_format_pretty_max_rows", "output_format_write_statistics", "format_csv_delimiter",
    "date_time_output_format", "session_timezone", "output_format_binary_encode_types_in_binary_format",
})

_LIMIT_PREFIXES = ("max_", "min_", "readonly", "allow_", "timeout_", "result_overflow", "read_overflow",
                   "sort_overflow", "group_by_overflow", "set_overflow", "join_overflow", "distinct_overflow",
                   "transfer_overflow", "output_format_schema", "format_schema", "format_template")
_CODE = re2.compile(r"Code: (\d+)")
_SAFE_ID = re2.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_CONTENT_TYPES = {"JSON": "application/json; charset=UTF-8", "TabSeparated": "text/tab-separated-values; charset=UTF-8",
                  "TSV": "text/tab-separated-values; charset=UTF-8", "CSV": "text/csv; charset=UTF-8"}
_CODES = {"BAD_ARGUMENTS": 36, "READONLY": 164, "SYNTAX_ERROR": 62, "UNKNOWN_FORMAT": 73,
          "TOO_MANY_SIMULTANEOUS_QUERIES": 202, "QUERY_IS_TOO_LARGE": 157, "UNKNOWN_DATABASE": 81}


class _TooLarge(Exception):
    """The statement is over :data:`MAX_SQL_CHARS` bytes."""


class _NoSuchDatabase(Exception):
    """The client named a database this door does not serve."""


class _Text:
    """A parameter value that reaches the engine as the client wrote it.

    clickhouse-connect escapes a ``str`` before binding it; the HTTP client already sent
    ClickHouse's text form, which must not be escaped twice (an ``Array(String)`` value
    would no longer parse). A value that is no ``str`` is bound by its ``str()``.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _lifts_a_limit(name: str) -> bool:
    """True for settings that could change a limit, the access or a file read: refused, never ignored."""
    return name.startswith(_LIMIT_PREFIXES) or name.endswith(("_overflow_mode", "_timeout", "_limit"))


def _error(status: int, name: str, message: str, code: int | None = None) -> Response:
    number = code if code is not None else _CODES.get(name, 1002)
    body = f"Code: {number}. DB::Exception: {message}. ({name})\n"
    return PlainTextResponse(body, status_code=status, headers={"X-ClickHouse-Exception-Code": str(number)})


def _engine_error(exc: Exception) -> Response:
    """The engine's own message and code (a failed statement is the client's to read, as from ClickHouse)."""
    text = str(exc).strip()
    found = _CODE.search(text)
    first = text.split("DB::Exception: ", 1)[-1].splitlines()[0][:2000] if text else "unknown error"
    number = int(found.group(1)) if found else 1002
    return PlainTextResponse(f"Code: {number}. DB::Exception: {first}\n", status_code=500,
                             headers={"X-ClickHouse-Exception-Code": str(number)})


def _split_parameters(query: Mapping[str, str], database: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(bind parameters, settings to apply, settings ignored); SqlRefused for a limit-changing setting."""
    bound: dict[str, Any] = {}
    applied: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in query.items():
        if name.startswith("param_"):
            bound[name.removeprefix("param_")] = _Text(value)
        elif name in TRANSPORT_PARAMETERS:
            continue
        elif name in OUTPUT_SETTINGS:
            applied[name] = value
        elif _lifts_a_limit(name):
            raise SqlRefused(f"Cannot modify '{name}' setting: the analyst limits of this endpoint are fixed")
        else:
            ignored.append(name)
    chosen = query.get("database", "")
    if chosen not in ("", "default", database):
        raise _NoSuchDatabase(f"database {chosen} is not served: only {database} is (name tables {database}.<table>)")
    return bound, applied, ignored


async def _statement_text(request: Request) -> str:
    """``query=`` and the body joined by a newline; SqlRefused beyond :data:`MAX_SQL_CHARS` bytes."""
    parts = [request.query_params.get("query", "")]
    if request.method == "POST":
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_SQL_CHARS:
                raise _TooLarge(f"the statement is longer than {MAX_SQL_CHARS:,} bytes")
        parts.append(body.decode("utf-8", "replace"))
    return "\n".join(p for p in parts if p)


def clickhouse_routes(db: Database) -> list[Route]:
    """``/`` and ``/ping`` of ClickHouse's HTTP interface over ``db`` (the analysts' pool)."""

    async def ping(request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def query(request: Request) -> Response:
        given = request.query_params.get("query_id", "")
        # echoed in a header: only an id made of plain characters, else one of ours
        query_id = given if _SAFE_ID.match(given) else str(uuid.uuid4())
        try:
            text = await _statement_text(request)
            if not text.strip():
                return PlainTextResponse("Ok.\n")
            options = dict(request.query_params)
            if options.get("compress") == "1" or options.get("decompress") == "1":
                return _error(400, "BAD_ARGUMENTS", "ClickHouse's native block compression (compress=1, "
                              "decompress=1) is not served here: turn it off in the client (JDBC: add "
                              "?compress=0 to the URL); HTTP compression is not needed on this door")
            if "database" not in options and request.headers.get("x-clickhouse-database"):
                options["database"] = request.headers["x-clickhouse-database"]
            bound, applied, ignored = _split_parameters(options, db.database)
            statement, own_format = await asyncio.to_thread(guard_client_select, db, text, bound)
            fmt = (own_format or request.query_params.get("default_format")
                   or request.headers.get("x-clickhouse-format") or "TabSeparated")
            if fmt not in CLIENT_FORMATS:
                return _error(400, "UNKNOWN_FORMAT", f"format {fmt} is not served here: "
                                                     f"{', '.join(sorted(CLIENT_FORMATS))}")
            limits = {**applied, "readonly": 1, "max_result_rows": MAX_RESULT_ROWS,
                      "max_result_bytes": MAX_RESULT_BYTES, "result_overflow_mode": "throw",
                      "max_execution_time": MAX_EXECUTION_S, "max_memory_usage": MAX_MEMORY_BYTES}
            data = await asyncio.to_thread(db.raw_query, statement, bound, limits, fmt)
        except _TooLarge as exc:
            return _error(413, "QUERY_IS_TOO_LARGE", str(exc))
        except _NoSuchDatabase as exc:
            return _error(404, "UNKNOWN_DATABASE", str(exc))
        except SqlRefused as exc:
            name = "SYNTAX_ERROR" if "does not parse" in str(exc) else "READONLY"
            return _error(400 if name == "SYNTAX_ERROR" else 403, name, str(exc))
        except AnalystsBusyError as exc:
            response = _error(503, "TOO_MANY_SIMULTANEOUS_QUERIES", str(exc))
            response.headers["Retry-After"] = "1"
            return response
        except Exception as exc:  # the engine's message is the useful answer to a failed statement
            return _engine_error(exc)
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Format": fmt, "X-ClickHouse-Timezone": "UTC",
                   "X-ClickHouse-Summary": '{"read_rows":"0","read_bytes":"0","written_rows":"0",'
                                           '"written_bytes":"0","total_rows_to_read":"0"}'}
        named = sorted(n for n in ignored if _SAFE_ID.match(n))
        if named:
            headers["X-Leadstream-Ignored-Settings"] = ",".join(named)[:2000]
        media = next((v for k, v in _CONTENT_TYPES.items() if fmt.startswith(k)), "application/octet-stream")
        return Response(data, media_type=media, headers=headers)

    return [Route("/ping", ping, methods=["GET", "HEAD"]), Route("/", query, methods=["GET", "POST", "HEAD"])]
