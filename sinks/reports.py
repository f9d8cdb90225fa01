"""The analyst-facing reports: documented SQL in ``sinks/sql/`` run with typed parameters.

Each report is a parameterised query over the latest-state views of the migrations
(see README, "Reports", for the definitions). Only the database name (an identifier,
checked) is substituted into the text; every value travels as a ClickHouse query
parameter, taken from a :class:`~sinks.report_params.ReportParams` that the edge
(CLI or query API) already parsed. Reports run wherever ClickHouse is: inside the sink
(embedded mode, behind the query API) or directly against a server.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from sinks.clickhouse import Database
from sinks.errors import ReportError
from sinks.json_values import json_scalar
from sinks.report_params import ReportParams

__all__ = ["REPORTS", "check_report", "load_sql", "report_sql", "run_report"]

SQL_DIR = Path(__file__).parent / "sql"
REPORTS = ("sources", "quarterly", "funnel", "contact-sources", "attribution", "quality")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_report(name: str) -> str:
    """The name when it is a report; ReportError (with the list of names) otherwise."""
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
    return name


@cache
def load_sql(name: str) -> str:
    """The text of ``sinks/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()


def report_sql(name: str, database: str) -> str:
    """A report's SQL with the database name filled in (identifiers only)."""
    if not _IDENT.match(database):
        raise ReportError(f"database must be a plain identifier, got {database!r}")
    return load_sql(name).replace("{db}", database)


def _rows(db: Database, sql_name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = db.query(report_sql(sql_name, db.database), parameters=values)
    return [{c: json_scalar(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def run_report(db: Database, name: str, params: ReportParams) -> list[dict[str, Any]] | dict[str, Any]:
    """Run one report; a list of row objects, or an object of sections for ``quality``."""
    check_report(name)
    values = params.sql_parameters()
    if name == "quality":
        contacts = _rows(db, "quality_contacts", values)
        return {
            "contacts": contacts[0] if contacts else {},
            "dead_letters": _rows(db, "quality_dead_letters", values),
            "unclassified_pairs": _rows(db, "quality_unclassified", values),
            "taxonomy_coverage": _rows(db, "quality_coverage", values),
        }
    return _rows(db, name.replace("-", "_"), values)
