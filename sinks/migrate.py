"""Versioned ClickHouse migrations: the schema of the analytical layer.

Migrations are the ``sinks/migrations/NNNN_name.sql`` files, applied in order and
recorded in ``<db>.schema_migrations``; applying them again is a no-op (each version
is applied once, and every statement is ``IF NOT EXISTS`` as a second line of
defence). ``leadstream migrate`` runs them, and the sink runs them at start-up.

The files are written for one node. When ``LEADSTREAM_CLICKHOUSE_CLUSTER`` is set the
same files are rendered into a cluster variant: every statement gets ``ON CLUSTER``,
each ``*MergeTree`` table becomes ``<name>_local`` on the ``Replicated*MergeTree``
engine, and a ``Distributed`` table with the original name (sharded by the key in the
table's ``-- shard:`` comment) is created over it, so the views and reports read the
same names in both deployments; ``ALTER`` and ``TRUNCATE`` go to the ``_local`` tables.
Only identifiers are substituted into the DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sinks.clickhouse import Database
from sinks.errors import MigrationError

__all__ = ["MIGRATIONS_DIR", "Migration", "apply_migrations", "load_migrations", "render"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) \{on_cluster\}")
_ALTER_TABLE = re.compile(r"(ALTER|TRUNCATE) TABLE \{db\}\.(\w+) \{on_cluster\}")
_ENGINE = re.compile(r"ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?")
_SHARD = re.compile(r"--\s*shard:\s*(.+)")


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name and statements (still templated)."""

    version: int
    name: str
    statements: tuple[str, ...]


def _split(sql: str) -> list[str]:
    """Split a file into statements on ``;`` at line ends; comments stay with their statement."""
    parts = [p.strip() for p in re.split(r";\s*\n", sql + "\n")]
    return [p for p in parts if p and not all(line.strip().startswith("--") or not line.strip()
                                                for line in p.splitlines())]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration of ``directory`` in version order."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), tuple(_split(path.read_text()))))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def _check_ident(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise MigrationError(f"{what} must be a plain identifier, got {value!r}")
    return value


def render(statement: str, database: str, cluster: str | None = None) -> list[str]:
    """The statement(s) to execute for one templated statement.

    One node: ``{db}`` and ``{on_cluster}`` are filled in. Cluster: MergeTree tables are
    created as replicated ``_local`` tables plus a ``Distributed`` table of the original name.
    """
    db = _check_ident(database, "database")
    if cluster is None:
        return [statement.replace("{on_cluster}", "").replace("{db}", db)]
    cl = _check_ident(cluster, "cluster")
    on_cluster = f"ON CLUSTER {cl}"
    altered = _ALTER_TABLE.search(statement)
    if altered is not None:  # settings live on the replicated tables, not on the Distributed one
        return [_ALTER_TABLE.sub(lambda m: f"{m.group(1)} TABLE {db}.{m.group(2)}_local {on_cluster}", statement)
                .replace("{db}", db)]
    table = _CREATE_TABLE.search(statement)
    engine = _ENGINE.search(statement)
    if table is None or engine is None:
        return [statement.replace("{on_cluster}", on_cluster).replace("{db}", db)]
    name = table.group(1)
    shard_match = _SHARD.search(statement)
    shard_key = shard_match.group(1).strip() if shard_match else "rand()"
    args = (engine.group(2) or "").strip()
    zk = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    replicated = f"ENGINE = Replicated{engine.group(1)}({zk}{', ' + args if args else ''})"
    local = statement[: table.start()] + f"CREATE TABLE IF NOT EXISTS {db}.{name}_local {on_cluster}" \
        + statement[table.end():]
    local = _ENGINE.sub(lambda _m: replicated, local, count=1).replace("{db}", db)
    distributed = (f"CREATE TABLE IF NOT EXISTS {db}.{name} {on_cluster} AS {db}.{name}_local "
                   f"ENGINE = Distributed({cl}, {db}, {name}_local, {shard_key})")
    return [local, distributed]


def _bootstrap_sql(database: str, cluster: str | None) -> list[str]:
    on_cluster = f"ON CLUSTER {cluster}" if cluster else ""
    engine = ("ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
              if cluster else "MergeTree")
    return [
        f"CREATE DATABASE IF NOT EXISTS {database} {on_cluster}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations {on_cluster} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY version",
    ]


def apply_migrations(database: Database, cluster: str | None = None,
                     directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; returns the names applied (empty when up to date)."""
    client = database
    db = _check_ident(database.database, "database")
    if cluster is not None:
        _check_ident(cluster, "cluster")
    for sql in _bootstrap_sql(db, cluster):
        client.command(sql)
    done = {int(r[0]) for r in client.query(f"SELECT version FROM {db}.schema_migrations")[1]}
    applied: list[str] = []
    for migration in load_migrations(directory):
        if migration.version in done:
            continue
        for statement in migration.statements:
            for sql in render(statement, db, cluster):
                client.command(sql)
        client.insert("schema_migrations", [[migration.version, migration.name]], ["version", "name"])
        applied.append(f"{migration.version:04d}_{migration.name}")
    return applied
