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
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError

from ground.settings import get_settings
from sinks.clickhouse import Database
from sinks.errors import ReportError
from sinks.json_values import json_scalar
from sinks.lead_scores import lead_scores
from sinks.report_params import ReportParams
from sinks.sql_files import SQL_DIR, load_sql, plain_ctes, report_sql

__all__ = ["REPORTS", "SQL_DIR", "check_report", "load_sql", "report_sql", "report_values", "run_report"]

REPORTS = ("sources", "quarterly", "funnel", "contact-sources", "attribution", "quality", "lead-scores", "roi",
           "rep-sources")


def check_report(name: str) -> str:
    """The name when it is a report; ReportError (with the list of names) otherwise."""
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
    return name


#: Engines (by URL) that refused a materialized CTE: their reports run the plain variant.
_NO_MATERIALIZED_CTE: set[str] = set()


def _rows(db: Database, sql_name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    sql = report_sql(sql_name, db.database)
    engine = db.url or str(id(db))
    if "AS MATERIALIZED" in sql and engine in _NO_MATERIALIZED_CTE:
        sql = plain_ctes(sql)
    try:
        columns, rows = db.query(sql, parameters=values)
    except DatabaseError as exc:
        # an engine without materialized CTEs knows neither the setting nor the syntax
        if "AS MATERIALIZED" not in sql or not _MATERIALIZED_REFUSAL.search(str(exc)):
            raise
        columns, rows = db.query(plain_ctes(sql), parameters=values)
        _NO_MATERIALIZED_CTE.add(engine)  # the plain variant worked: use it from now on
    return [{c: json_scalar(v) for c, v in zip(columns, row, strict=True)} for row in rows]


#: How such an engine refuses: an unknown setting, or the syntax (matched by error code, never
#: by words of the query, which error messages quote).
_MATERIALIZED_REFUSAL = re.compile(r"\bCode: (62|115)\b|\((SYNTAX_ERROR|UNKNOWN_SETTING)\)")


def report_values(params: ReportParams) -> dict[str, Any]:
    """The query parameters of a report's SQL: the typed options and the reporting currency."""
    return {**params.sql_parameters(), "reporting_currency": get_settings().reporting_currency}


def run_report(db: Database, name: str, params: ReportParams) -> list[dict[str, Any]] | dict[str, Any]:
    """Run one report; a list of row objects, or an object of sections for ``quality``."""
    check_report(name)
    if name == "lead-scores":
        return [{k: json_scalar(v) for k, v in row.items()} for row in lead_scores(db, params)]
    values = report_values(params)
    if name == "quality":
        contacts = _rows(db, "quality_contacts", values)
        return {
            "contacts": contacts[0] if contacts else {},
            "dead_letters": _rows(db, "quality_dead_letters", values),
            "unclassified_pairs": _rows(db, "quality_unclassified", values),
            "taxonomy_coverage": _rows(db, "quality_coverage", values),
            "unconverted_deals": _rows(db, "quality_unconverted", values),
            "unconverted_spend": _rows(db, "quality_unconverted_spend", values),
        }
    if name == "roi":
        rows = _rows(db, "roi", values)
        return rows if params.by_quarter else [{k: v for k, v in r.items() if k != "quarter"} for r in rows]
    return _rows(db, name.replace("-", "_"), values)
