"""The ClickHouse connection of the analytical layer.

ClickHouse is reached only through clickhouse-connect:
``chdb://PATH`` opens the embedded engine in this process, ``http(s)://host:8123`` a
server. The embedded engine allows one engine per process, with several connections
into it; one connection is not meant to be driven from several threads at once, so every
call on a :class:`Database` goes through its lock, and work that runs alongside (analyst
queries, the sink's extra insert connections, :meth:`Database.sibling`) gets a
connection of its own. Across processes the
engine's directory is locked by whichever process opened it first; :func:`connect` can
wait for that lock (:mod:`sinks.engine_lock`) instead of failing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import clickhouse_connect

from ground.errors import SinkError
from ground.settings import Settings
from sinks.avro_blocks import AvroBlock
from sinks.engine_lock import engine_directory, lock_holder, wait_for_engine_lock

__all__ = ["INSERT_SETTINGS", "ConnectionTainted", "Database", "connect", "drained_on_error", "with_settings"]

_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")

#: A retried block the engine already has is dropped from the table *and* from the views
#: it feeds (the views' targets de-duplicate too, migration 0005): retries after a lost
#: acknowledgement are then no-ops.
INSERT_SETTINGS: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class Database:
    """A clickhouse-connect client plus the lock that serialises calls to it."""

    def __init__(self, client: Any, database: str, url: str | None = None) -> None:
        self.client = client
        self.database = database
        #: where the client connects (None when unknown): what :meth:`sibling` opens again
        self.url = url
        self.lock = threading.RLock()

    def sibling(self) -> Database | None:
        """Another connection to the same engine and database, for work alongside this one."""
        if self.url is None:
            return None
        return Database(clickhouse_connect.get_client(dsn=self.url), self.database, self.url)

    def command(self, sql: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> Any:
        with self.lock:
            return self.client.command(sql, parameters=parameters, settings=settings)

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; returns (column names, rows)."""
        with self.lock, drained_on_error(self.client):
            result = self.client.query(sql, parameters=parameters, settings=settings)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def raw_query(self, sql: str, parameters: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, fmt: str = "TabSeparated") -> bytes:
        """Run a SELECT (no SETTINGS, no FORMAT of its own) and return the engine's bytes in ``fmt``."""
        with self.lock, drained_on_error(self.client):
            return bytes(self.client.raw_query(with_settings(sql, settings, fmt), parameters=parameters))

    def insert(self, table: str, rows: Sequence[Sequence[Any]] | AvroBlock, column_names: Sequence[str],
               settings: dict[str, Any] | None = None) -> None:
        """Insert one block (row tuples, or an Avro container the engine decodes itself); a
        repeat of a block already stored feeds no materialized view again."""
        merged = {**INSERT_SETTINGS, **(settings or {})}
        with self.lock:
            if isinstance(rows, AvroBlock):
                self.client.raw_insert(f"{self.database}.{table}", column_names=list(column_names),
                                       insert_block=rows.data, settings=merged, fmt="Avro")
            else:
                self.client.insert(f"{self.database}.{table}", rows, column_names=list(column_names),
                                   settings=merged)

    def close(self) -> None:
        with self.lock:
            self.client.close()


_DRAIN = "SELECT 'leadstream-drained'\n FORMAT TabSeparated"


class ConnectionTainted(SinkError):
    """A connection still answered a failed query's leftover after the drain: it must not be used again."""


@contextmanager
def drained_on_error(client: Any) -> Iterator[None]:
    """After a failed query, make sure the connection's next answer is its own.

    The embedded engine keeps the output of a query that failed while it was writing
    rows (a result limit hit, an error in a later block) and hands it to the *next*
    query on the connection: another analyst would get the failed query's rows. So a
    failure is followed by throwaway queries until one answers itself.
    """
    try:
        yield
    except Exception:
        for _ in range(3):
            try:
                if bytes(client.raw_query(_DRAIN)) == b"leadstream-drained\n":
                    break
            except Exception:  # the leftover came back instead, or as an error: try again
                continue
        else:
            raise ConnectionTainted("the connection kept answering another query's output") from None
        raise


def with_settings(sql: str, settings: Mapping[str, Any] | None, fmt: str) -> str:
    """``sql`` with a SETTINGS clause and a FORMAT clause appended.

    A clause, not SET statements: on the embedded engine the client applies ``settings=``
    of a raw query with SET and restores them afterwards, which ``readonly=1`` forbids, so
    the connection would stay read-only with the last query's limits.
    """
    if not _FORMAT.match(fmt):
        raise SinkError(f"format {fmt!r} is not a format name")
    parts = []
    for name, value in (settings or {}).items():
        if not _SETTING.match(name):
            raise SinkError(f"setting {name!r} is not a setting name")
        if isinstance(value, bool | int | float):
            parts.append(f"{name} = {int(value) if isinstance(value, bool) else value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"{name} = '{escaped}'")
    clause = f"\n SETTINGS {', '.join(parts)}" if parts else ""
    return f"{sql}{clause}\n FORMAT {fmt}"


def connect(settings: Settings, *, lock_wait: float = 0.0) -> Database:
    """Open the configured ClickHouse (embedded engine or server).

    ``lock_wait`` > 0: an embedded engine directory that another process holds is waited
    for, that many seconds at most (then EngineLockedError), instead of failing at once.
    """
    directory = engine_directory(settings.clickhouse_url) if lock_wait > 0 else None
    deadline = time.monotonic() + lock_wait
    while True:
        if directory is not None:
            wait_for_engine_lock(directory, max(0.0, deadline - time.monotonic()))
        try:
            client = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
        except Exception as exc:  # the driver raises several types for an unreachable server
            if directory is not None and lock_holder(directory) is not None:
                continue  # another process took the directory between the look and the start: wait again
            raise SinkError(f"cannot open ClickHouse at {settings.clickhouse_url}: {exc}") from exc
        return Database(client, settings.clickhouse_database, settings.clickhouse_url)
