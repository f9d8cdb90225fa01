"""``leadstream dashboard``: the query API without a sink, for a ClickHouse server.

In embedded mode the sink serves the dashboard, the reports and both SQL doors (the
engine lives in its process). Against a ClickHouse server nothing has to ingest for
people to look: this serves the same app over analyst connections to the server. It
also serves an embedded engine directory that no sink holds (after ``leadstream demo``).
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from ground.errors import SinkError
from ground.settings import Settings
from sinks.alert_watch import AlertWatch, metrics_text
from sinks.analyst_pool import AnalystPool
from sinks.api import build_app, require_query_token

__all__ = ["AlreadyServedError", "serve_query_api"]


class AlreadyServedError(SinkError):
    """Something (the sink, in embedded mode) already answers on the query API's address."""


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def serve_query_api(settings: Settings) -> None:
    """Serve reports, ``/sql``, ``/`` and ``/dashboard`` on the query host and port until interrupted."""
    token = require_query_token(settings)
    if _listening(settings.query_host, settings.query_port):
        raise AlreadyServedError(f"http://{settings.query_host}:{settings.query_port}/dashboard is already served "
                                 "(in embedded mode the sink serves the dashboard itself)")
    try:
        pool = AnalystPool(settings)
    except Exception as exc:  # a held engine directory, an unreachable server
        raise SinkError(f"cannot open ClickHouse at {settings.clickhouse_url}: {str(exc).splitlines()[0][:300]} "
                        "(in embedded mode, while a sink runs, it serves the dashboard itself)") from exc

    def health() -> dict[str, Any]:
        return {"status": "ok", "database": settings.clickhouse_database, "sink": None}

    # the rules evaluated periodically here too (on a connection of their own), for /metrics
    alert_db = AnalystPool(settings.model_copy(update={"analyst_connections": 1}))
    watch = AlertWatch(settings, alert_db)
    if settings.alert_interval_seconds > 0:
        watch.start()
    try:
        uvicorn.run(build_app(pool, health, token=token, alerts=watch.check,
                              metrics=lambda: metrics_text(None, watch)),
                    host=settings.query_host, port=settings.query_port, log_level="warning", lifespan="off")
    finally:
        watch.stop()
        alert_db.close()
        pool.close()
