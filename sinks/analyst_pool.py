"""The analysts' own engine connections, apart from the sink's.

The sink serialises its engine calls behind one lock (one connection must not be driven
from two threads at once), and the query API used to share that connection: a
30-second analyst query held ingestion for 30 seconds. The embedded engine accepts
several connections in one process and runs their queries side by side, so analysts get
a pool of their own. A query waits at most ``LEADSTREAM_ANALYST_QUEUE_SECONDS`` for a
free connection (then :class:`AnalystsBusyError`, answered 503), and runs under limits
that keep it from starving the sink: a time limit, a memory limit, and a few engine
threads (one by default, so on a small machine the other cores stay the sink's).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import clickhouse_connect

from ground.errors import SinkError
from ground.settings import Settings
from sinks.clickhouse import ConnectionTainted, Database, drained_on_error, with_settings

__all__ = ["AnalystPool", "AnalystsBusyError", "analyst_limits"]

log = logging.getLogger("leadstream.analysts")


class AnalystsBusyError(SinkError):
    """Every analyst connection stayed busy for the whole queue wait."""


def analyst_limits(settings: Settings) -> dict[str, Any]:
    """Engine settings every analyst query runs under (a call may only tighten them)."""
    return {
        "max_execution_time": settings.analyst_timeout_seconds,
        "max_memory_usage": settings.analyst_max_memory_bytes,
        "max_threads": settings.analyst_max_threads,
    }


class AnalystPool(Database):
    """A :class:`Database` for reads, spread over connections of its own.

    Only ``query`` is offered: the analyst doors read. Each connection is used by one
    query at a time; the pool's size bounds how many run at once.
    """

    def __init__(self, settings: Settings, *, connect: Callable[[], Any] | None = None) -> None:
        opener = connect or (lambda: clickhouse_connect.get_client(dsn=settings.clickhouse_url))
        self._open = opener
        clients = [opener() for _ in range(settings.analyst_connections)]
        super().__init__(clients[0], settings.clickhouse_database)
        self._free: queue.Queue[Any] = queue.Queue()
        for client in clients:
            self._free.put(client)
        self._clients = clients
        self._wait = settings.analyst_queue_seconds
        self._limits = analyst_limits(settings)

    @contextmanager
    def _checkout(self) -> Iterator[Any]:
        """A free connection for one query; AnalystsBusyError after the queue wait."""
        try:
            client = self._free.get(timeout=self._wait)
        except queue.Empty:
            raise AnalystsBusyError(f"all {len(self._clients)} analyst connections are busy; "
                                    "try again shortly") from None
        try:
            with drained_on_error(client):
                yield client
        except ConnectionTainted:
            client = self._replace(client)  # never hand a tainted connection to the next analyst
            raise
        finally:
            self._free.put(client)

    def _replace(self, client: Any) -> Any:
        try:
            client.close()
        except Exception as exc:  # closing a broken connection may fail too; a fresh one is what matters
            log.warning("closing a tainted analyst connection: %s", exc)
        fresh = self._open()
        self._clients = [fresh if c is client else c for c in self._clients]
        return fresh

    def _limited(self, settings: dict[str, Any] | None) -> dict[str, Any]:
        merged = {**self._limits, **(settings or {})}
        for name, bound in self._limits.items():  # a call may tighten a limit, never lift it
            merged[name] = min(merged[name], bound)
        return merged

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._checkout() as client:
            result = client.query(sql, parameters=parameters, settings=self._limited(settings))
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def raw_query(self, sql: str, parameters: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, fmt: str = "TabSeparated") -> bytes:
        final = with_settings(sql, self._limited(settings), fmt)  # a clause: see with_settings
        with self._checkout() as client:
            return bytes(client.raw_query(final, parameters=parameters))

    def command(self, sql: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> Any:
        raise SinkError("the analyst connections only read")

    def insert(self, table: str, rows: Any, column_names: Any, settings: dict[str, Any] | None = None) -> None:
        raise SinkError("the analyst connections only read")

    def close(self) -> None:
        for client in self._clients:
            client.close()
