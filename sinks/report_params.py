"""The options of a report: parsed once, at the edge, into one typed value.

Two edges take them from people: ``leadstream query`` (typer options) and the query
API's ``GET /reports/{name}`` (a query string). Each turns its input into a
:class:`ReportParams` here, with the same checks and the same messages; below the edge
nothing is parsed again: :mod:`sinks.reports` takes the typed value and binds
:meth:`ReportParams.sql_parameters` to the SQL. :meth:`ReportParams.to_query` is the
way back to a query string, for the CLI calling the API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeVar, cast, get_args

from sinks.errors import ReportError

__all__ = ["LEVELS", "MODELS", "Level", "Model", "ReportParams"]

Level = Literal["channel", "source", "detail"]
Model = Literal["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "full_path", "time_decay",
                "j_shaped", "inverse_j"]
LEVELS: tuple[Level, ...] = get_args(Level)

#: Position shares per model: first, lead creation, deal creation, closing, others.
MODELS: dict[Model, tuple[float, float, float, float, float]] = {
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
# open-ended ranges bind these bounds, so the SQL has one shape with and without dates
_MIN_MS = -(2**62)
_MAX_MS = 2**62
_MIN_DAY = -(2**31)
_MAX_DAY = 2**31 - 1
_DAY_MS = 86_400_000
_TRUE = {"1", "true", "yes", "on"}
_N = TypeVar("_N", int, float)


def _level(value: str) -> Level:
    if value not in LEVELS:
        raise ReportError(f"--by must be one of {', '.join(LEVELS)}")
    return cast(Level, value)


def _model(value: str) -> Model:
    if value not in MODELS:
        raise ReportError(f"--model must be one of {', '.join(MODELS)}")
    return cast(Model, value)


def _half_life(value: float) -> float:
    if not value > 0 or not math.isfinite(value):
        raise ReportError("--half-life must be a positive number of days")
    return value


def _day(value: str | None) -> date | None:
    """An ISO date (UTC) or nothing; the date parser's own message when it is not one."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ReportError(str(exc)) from exc


def _number(kind: Callable[[str], _N], text: str) -> _N:
    """A number from a query string; Python's own message (it names the value) when it is not one."""
    try:
        return kind(text)
    except ValueError as exc:
        raise ReportError(str(exc)) from exc


def _epoch_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


#: Rows a ``top`` may ask for (quality's unclassified pairs, lead-scores' leads).
MAX_TOP = 10_000


def _top(value: int) -> int:
    if not 1 <= value <= MAX_TOP:
        raise ReportError(f"top must be a whole number from 1 to {MAX_TOP:,}, got {value}")
    return value


@dataclass(frozen=True)
class ReportParams:
    """The options of ``leadstream query`` (and of ``GET /reports/{name}``), checked and typed.

    ``since`` is inclusive and ``until`` exclusive (UTC midnights); ``by`` is the level
    of the lead source, ``model`` and ``half_life`` (days) choose the attribution
    weights, ``include_open_lost`` gives deal credit for open and lost deals too.
    """

    since: date | None = None
    until: date | None = None
    by: Level = "channel"
    model: Model = "linear"
    half_life: float = 7.0
    include_open_lost: bool = False
    top: int = 20
    by_quarter: bool = False

    @classmethod
    def from_options(cls, *, since: str | None, until: str | None, by: str, model: str, half_life: float,
                     include_open_lost: bool, top: int = 20, by_quarter: bool = False) -> ReportParams:
        """From the CLI's options (typer already made the numbers and flags); ReportError on bad input."""
        first, last = _day(since), _day(until)
        return cls(since=first, until=last, by=_level(by), model=_model(model), half_life=_half_life(half_life),
                   include_open_lost=include_open_lost, top=_top(top), by_quarter=by_quarter)

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> ReportParams:
        """From a query string (every value a string); ReportError on bad input."""
        by, model = _level(raw.get("by", "channel")), _model(raw.get("model", "linear"))
        half_life = _half_life(_number(float, raw.get("half_life", "7")))
        flag = raw.get("include_open_lost", "false").lower() in _TRUE
        first, last = _day(raw.get("since")), _day(raw.get("until"))
        top = _top(_number(int, raw.get("top", "20")))
        quarters = raw.get("by_quarter", "false").lower() in _TRUE
        return cls(since=first, until=last, by=by, model=model, half_life=half_life, include_open_lost=flag,
                   top=top, by_quarter=quarters)

    def to_query(self) -> dict[str, str]:
        """The query string :meth:`parse` reads back into these very parameters."""
        out = {"by": self.by, "model": self.model, "half_life": repr(self.half_life),
               "include_open_lost": str(self.include_open_lost).lower(), "top": str(self.top),
               "by_quarter": str(self.by_quarter).lower()}
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        return out

    def sql_parameters(self) -> dict[str, Any]:
        """The ClickHouse query parameters every report's SQL binds (``{name:Type}``)."""
        shares = MODELS[self.model]
        since_ms = _epoch_ms(self.since) if self.since else None
        until_ms = _epoch_ms(self.until) if self.until else None
        return {
            "level": self.by,
            "ranged": 1 if (self.since or self.until) else 0,
            "since_ms": _MIN_MS if since_ms is None else since_ms,
            "until_ms": _MAX_MS if until_ms is None else until_ms,
            "since_day": _MIN_DAY if since_ms is None else since_ms // _DAY_MS,
            "until_day": _MAX_DAY if until_ms is None else until_ms // _DAY_MS,
            "include_open_lost": 1 if self.include_open_lost else 0,
            "s_first": shares[0],
            "s_lead": shares[1],
            "s_deal": shares[2],
            "s_close": shares[3],
            "s_other": shares[4],
            "time_decay": 1 if self.model == "time_decay" else 0,
            "half_life_ms": self.half_life * float(_DAY_MS),
            "top": self.top,
            "by_quarter": 1 if self.by_quarter else 0,
        }
