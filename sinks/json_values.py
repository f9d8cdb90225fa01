"""ClickHouse scalars as JSON values: what the reports and the query API's ``/sql`` return.

Both answer in JSON, which has no NaN, infinity or datetime; this is the one conversion
they share, so a report row and the same row fetched through ``/sql`` read alike.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["json_scalar"]


def json_scalar(value: Any) -> Any:
    """NaN and infinities -> None (a ratio with nothing to divide), datetimes -> ISO strings in UTC."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).isoformat()
    return value
