"""The errors of the analytical layer, under the project's one base.

They sit under :class:`ground.errors.LeadstreamError` so the console script prints them
as one line. A report or migration mistake is the caller's (a bad value), so those also
are ``ValueError``\\s; an engine that stays locked is a :class:`ground.errors.SinkError`,
like any other ClickHouse that cannot be opened.
"""

from __future__ import annotations

from ground.errors import LeadstreamError, SinkError

__all__ = ["EngineLockedError", "MigrationError", "QueryTokenError", "ReportError"]


class ReportError(LeadstreamError, ValueError):
    """A report name, report parameter or ad-hoc statement that does not make sense.

    The query API answers it with 400 and ``leadstream query`` exits 2: the request is
    wrong, not ClickHouse.
    """


class MigrationError(LeadstreamError, ValueError):
    """A migration file, database or cluster name that cannot be applied as written."""


class EngineLockedError(SinkError):
    """The embedded engine's directory stayed locked by another process for the whole wait."""


class QueryTokenError(LeadstreamError, ValueError):
    """The query API would listen beyond loopback without ``LEADSTREAM_QUERY_TOKEN``: a configuration mistake."""
