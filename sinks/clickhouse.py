"""The ClickHouse connection of the analytical layer.

ClickHouse is reached only through clickhouse-connect (ARCHITECTURE principle 7):
``chdb://PATH`` opens the embedded engine in this process, ``http(s)://host:8123`` a
server. The embedded engine allows one engine per process and is not meant to be
driven from several threads at once, so every call goes through one lock: the sink's
consumer thread and its query API share one :class:`Database`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import clickhouse_connect

from ground.errors import SinkError
from ground.settings import Settings

__all__ = ["Database", "connect"]


class Database:
    """A clickhouse-connect client plus the lock that serialises calls to it."""

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = database
        self.lock = threading.RLock()

    def command(self, sql: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> Any:
        with self.lock:
            return self.client.command(sql, parameters=parameters, settings=settings)

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; returns (column names, rows)."""
        with self.lock:
            result = self.client.query(sql, parameters=parameters, settings=settings)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        with self.lock:
            self.client.insert(f"{self.database}.{table}", rows, column_names=list(column_names))

    def close(self) -> None:
        with self.lock:
            self.client.close()


def connect(settings: Settings) -> Database:
    """Open the configured ClickHouse (embedded engine or server)."""
    try:
        client = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
    except Exception as exc:  # the driver raises several types for an unreachable server
        raise SinkError(f"cannot open ClickHouse at {settings.clickhouse_url}: {exc}") from exc
    return Database(client, settings.clickhouse_database)
