"""The analyst-facing reports: documented SQL in ``sinks/sql/`` plus their parameters.

Each report is a parameterised query over the latest-state views of the migrations
(see README, "Reports", for the definitions). Only the database name (an identifier,
checked) is substituted into the text; every value travels as a ClickHouse query
parameter. Reports run wherever ClickHouse is: inside the sink (embedded mode, behind
the query API) or directly against a server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from sinks.clickhouse import Database

__all__ = [
    "LEVELS",
    "MODELS",
    "REPORTS",
    "ReportError",
    "ReportParams",
    "run_report",
]

SQL_DIR = Path(__file__).parent / "sql"
LEVELS = ("channel", "source", "detail")
REPORTS = ("sources", "quarterly", "funnel", "contact-sources", "attribution", "quality")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Position shares per model: first, lead creation, deal creation, closing, others.
MODELS: dict[str, tuple[float, float, float, float, float]] = {
    "first_touch": (1.0, 0.0, 0.0, 0.0, 0.0),
    "last_touch": (0.0, 0.0, 0.0, 1.0, 0.0),
    "linear": (0.0, 0.0, 0.0, 0.0, 1.0),
    "u_shaped": (0.4, 0.4, 0.0, 0.0, 0.2),
    "w_shaped": (0.3, 0.3, 0.3, 0.0, 0.1),
    "full_path": (0.225, 0.225, 0.225, 0.225, 0.1),
    "time_decay": (0.0, 0.0, 0.0, 0.0, 0.0),
    "j_shaped": (0.2, 0.0, 0.0, 0.6, 0.2),
    "inverse_j": (0.6, 0.0, 0.0, 0.2, 0.2),
}
_MIN_MS = -(2**62)
_MAX_MS = 2**62


class ReportError(ValueError):
    """A report name or parameter that does not make sense."""


@dataclass(frozen=True)
class ReportParams:
    """The options of ``leadstream query`` (and of ``GET /reports/{name}``)."""

    since: date | None = None
    until: date | None = None
    by: Literal["channel", "source", "detail"] = "channel"
    model: str = "linear"
    half_life: float = 7.0
    include_open_lost: bool = False
    top: int = 20

    @classmethod
    def parse(cls, raw: dict[str, str]) -> ReportParams:
        """From query-string style values (strings); raises ReportError on bad input."""
        try:
            by = raw.get("by", "channel")
            if by not in LEVELS:
                raise ReportError(f"--by must be one of {', '.join(LEVELS)}")
            model = raw.get("model", "linear")
            if model not in MODELS:
                raise ReportError(f"--model must be one of {', '.join(MODELS)}")
            half_life = float(raw.get("half_life", "7"))
            if not half_life > 0 or not math.isfinite(half_life):
                raise ReportError("--half-life must be a positive number of days")
            flag = raw.get("include_open_lost", "false").lower() in {"1", "true", "yes", "on"}
            return cls(
                since=date.fromisoformat(raw["since"]) if raw.get("since") else None,
                until=date.fromisoformat(raw["until"]) if raw.get("until") else None,
                by=by,  # type: ignore[arg-type]
                model=model,
                half_life=half_life,
                include_open_lost=flag,
                top=int(raw.get("top", "20")),
            )
        except ValueError as exc:
            if isinstance(exc, ReportError):
                raise
            raise ReportError(str(exc)) from exc

    def to_query(self) -> dict[str, str]:
        out = {"by": self.by, "model": self.model, "half_life": repr(self.half_life),
               "include_open_lost": str(self.include_open_lost).lower(), "top": str(self.top)}
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        return out

    def sql_parameters(self) -> dict[str, Any]:
        def ms(d: date) -> int:
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)

        shares = MODELS[self.model]
        return {
            "level": self.by,
            "ranged": 1 if (self.since or self.until) else 0,
            "since_ms": ms(self.since) if self.since else _MIN_MS,
            "until_ms": ms(self.until) if self.until else _MAX_MS,
            "since_day": ms(self.since) // 86_400_000 if self.since else -(2**31),
            "until_day": ms(self.until) // 86_400_000 if self.until else 2**31 - 1,
            "include_open_lost": 1 if self.include_open_lost else 0,
            "s_first": shares[0],
            "s_lead": shares[1],
            "s_deal": shares[2],
            "s_close": shares[3],
            "s_other": shares[4],
            "time_decay": 1 if self.model == "time_decay" else 0,
            "half_life_ms": self.half_life * 86_400_000.0,
            "top": self.top,
        }


@cache
def load_sql(name: str) -> str:
    """The text of ``sinks/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()


def report_sql(name: str, database: str) -> str:
    """A report's SQL with the database name filled in (identifiers only)."""
    if not _IDENT.match(database):
        raise ReportError(f"database must be a plain identifier, got {database!r}")
    return load_sql(name).replace("{db}", database)


def _clean(value: Any) -> Any:
    """JSON-friendly scalars: NaN/inf -> None, datetimes -> ISO strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).isoformat()
    return value


def _rows(db: Database, sql_name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = db.query(report_sql(sql_name, db.database), parameters=params)
    return [{c: _clean(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def run_report(db: Database, name: str, params: ReportParams) -> list[dict[str, Any]] | dict[str, Any]:
    """Run one report; a list of row objects, or an object of sections for ``quality``."""
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
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
