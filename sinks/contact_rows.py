"""Contact versions -> ``contact_versions`` rows, with the state each version replaces.

The one owner of that table's row layout. A row is the record's columns followed by
the previous-state columns (``prev_version`` … ``prev_first_touch_time``), which no
record carries: the sink fills them, once per batch, from the latest version ClickHouse
has acknowledged, so that the sign-weighted ``lead_counts`` view (migration 0003) can
retract what the new version replaces. Versions of one contact inside a batch chain
onto each other; a version not newer than the stored one gets ``prev_version >=
version`` and so adds nothing, which is what makes a replay a no-op.

The converter and :func:`with_previous` are pure; :func:`stored_states` is the one read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sinks.clickhouse import Database

__all__ = ["CONTACT_COLUMNS", "NO_PREVIOUS", "PREVIOUS_COLUMNS", "contact_row", "stored_states", "with_previous"]

Row = tuple[Any, ...]
#: What a version leaves for the next one: the values of PREVIOUS_COLUMNS, in that order.
State = tuple[Any, ...]

_RECORD_COLUMNS = ("contact_id", "version", "event_time", "reason", "merged_into", "merged_contact_ids",
                   "anonymous_ids", "created_at", "first_touch_event_id", "first_touch_time", "first_touch_type",
                   "lead_channel", "lead_source", "lead_detail", "contact_source", "owner", "lifecycle_stage",
                   "stage_times", "lead_method", "touch_count", "touches_by_channel", "first_seen", "last_seen",
                   "last_channel", "engagement_score")
PREVIOUS_COLUMNS = ("prev_version", "prev_live", "prev_lead_channel", "prev_lead_source", "prev_lead_detail",
                    "prev_first_touch_time")
CONTACT_COLUMNS = _RECORD_COLUMNS + PREVIOUS_COLUMNS
#: The state before a contact's first version: nothing to retract.
NO_PREVIOUS: State = (0, False, "", "", "", None)

_AT = {name: i for i, name in enumerate(CONTACT_COLUMNS)}
_ID, _VERSION = _AT["contact_id"], _AT["version"]
# The stored counterpart of State, column for column: the latest version's values.
# argMax skips NULLs, so the nullable first-touch time rides in a tuple; in ms, like the rows.
_STORED_STATES = (
    "SELECT contact_id, max(version), argMax(merged_into IS NULL, version), argMax(lead_channel, version), "
    "argMax(lead_source, version), argMax(lead_detail, version), "
    "argMax(tuple(toUnixTimestamp64Milli(first_touch_time)), version).1 "
    "FROM {db}.contact_versions "
    "WHERE contact_id IN {{ids:Array(String)}} GROUP BY contact_id"
)


def contact_row(r: Mapping[str, Any]) -> Row:
    """A ContactVersion record as a row; its previous state is NO_PREVIOUS until :func:`with_previous`."""
    return (
        r["contact_id"], r["version"], r["event_time"], r["reason"], r.get("merged_into"),
        list(r.get("merged_contact_ids") or []), list(r.get("anonymous_ids") or []), r.get("created_at"),
        r.get("first_touch_event_id"), r.get("first_touch_time"), r.get("first_touch_type"),
        r.get("lead_channel") or "Unknown", r.get("lead_source") or "Unknown", r.get("lead_detail") or "",
        r.get("contact_source"), r.get("owner"), r.get("lifecycle_stage"), dict(r.get("stage_times") or {}),
        r.get("lead_method"), int(r.get("touch_count") or 0), dict(r.get("touches_by_channel") or {}),
        r.get("first_seen"), r.get("last_seen"), r.get("last_channel"), float(r.get("engagement_score") or 0.0),
        *NO_PREVIOUS,
    )


def _state_after(row: Row) -> State:
    """The state this version leaves: what the next version's PREVIOUS_COLUMNS must say."""
    return (row[_VERSION], row[_AT["merged_into"]] is None, row[_AT["lead_channel"]], row[_AT["lead_source"]],
            row[_AT["lead_detail"]], row[_AT["first_touch_time"]])


def stored_states(db: Database, rows: Iterable[Row]) -> dict[str, State]:
    """The latest acknowledged state of each contact of ``rows``: one query for the whole batch."""
    ids = sorted({row[_ID] for row in rows})
    _, stored = db.query(_STORED_STATES.format(db=db.database), parameters={"ids": ids})
    return {r[0]: tuple(r[1:]) for r in stored}


def with_previous(rows: Iterable[Row], stored: Mapping[str, State]) -> list[Row]:
    """The rows, ordered by contact and version, each carrying the state it replaces.

    The first version of a contact in the batch replaces the stored state (NO_PREVIOUS
    when there is none); each later one replaces the newest before it. A version that is
    not newer than that state replaces nothing, so the state stays.
    """
    state = dict(stored)
    out: list[Row] = []
    for row in sorted(rows, key=lambda r: (r[_ID], r[_VERSION])):
        prev = state.get(row[_ID], NO_PREVIOUS)
        out.append(row[:len(_RECORD_COLUMNS)] + prev)
        if row[_VERSION] > prev[0]:
            state[row[_ID]] = _state_after(row)
    return out
