"""The SQL files of ``sinks/sql/``: reports, alerts and lead scores, with the database filled in."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sinks.errors import ReportError

__all__ = ["SQL_DIR", "load_sql", "plain_ctes", "report_sql"]

SQL_DIR = Path(__file__).parent / "sql"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def load_sql(name: str) -> str:
    """The text of ``sinks/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()


def report_sql(name: str, database: str) -> str:
    """A query's SQL with the database name filled in (identifiers only).

    ``{money_deals}`` and ``{money_spend}`` stand for the deals and the spend rows with
    their amounts in the reporting currency (``_money_deals.sql``, ``_money_spend.sql``), so
    that every report converts money the same way.
    """
    if not _IDENT.match(database):
        raise ReportError(f"database must be a plain identifier, got {database!r}")
    text = load_sql(name).replace("{money_deals}", load_sql("_money_deals"))
    text = text.replace("{money_spend}", load_sql("_money_spend"))
    return text.replace("{db}", database)


_MATERIALIZED = re.compile(r"\bAS MATERIALIZED\n")
_MATERIALIZED_SETTING = re.compile(r"\nSETTINGS enable_materialized_cte = 1\s*$")


def plain_ctes(sql: str) -> str:
    """The same query without materialized CTEs, for engines older than that feature: every
    ``name AS MATERIALIZED (…)`` becomes ``name AS (…)`` (evaluated at each reference: the
    same rows, more work) and the setting that enables them is dropped."""
    return _MATERIALIZED_SETTING.sub("\n", _MATERIALIZED.sub("AS\n", sql))
