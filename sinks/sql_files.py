"""The SQL files of ``sinks/sql/``: reports, alerts and lead scores, with the database filled in."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sinks.errors import ReportError

__all__ = ["SQL_DIR", "load_sql", "report_sql"]

SQL_DIR = Path(__file__).parent / "sql"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def load_sql(name: str) -> str:
    """The text of ``sinks/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()


def report_sql(name: str, database: str) -> str:
    """A query's SQL with the database name filled in (identifiers only)."""
    if not _IDENT.match(database):
        raise ReportError(f"database must be a plain identifier, got {database!r}")
    return load_sql(name).replace("{db}", database)
