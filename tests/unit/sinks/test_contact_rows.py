"""Contact rows carry the state they replace: chained inside a batch, nothing for a replay."""

from __future__ import annotations

from typing import Any

from sinks.contact_rows import CONTACT_COLUMNS, NO_PREVIOUS, PREVIOUS_COLUMNS, contact_row, with_previous


def _version(contact_id: str, version: int, **fields: Any) -> tuple[Any, ...]:
    return contact_row({"contact_id": contact_id, "version": version, "event_time": version, "reason": "touch",
                        **fields})


def _prev_version(row: tuple[Any, ...]) -> int:
    return int(dict(zip(CONTACT_COLUMNS, row, strict=True))["prev_version"])


def test_a_converted_row_replaces_nothing_yet() -> None:
    """The record's columns come first; the previous-state columns start out as NO_PREVIOUS."""
    row = _version("c", 1, lead_channel="Paid Search")
    assert len(row) == len(CONTACT_COLUMNS) and row[-len(PREVIOUS_COLUMNS):] == NO_PREVIOUS


def test_versions_chain_onto_the_stored_state_and_each_other() -> None:
    """The first version in a batch replaces the stored state, the next one the version before it."""
    stored = {"c": (3, True, "Direct", "direct", "", 1000)}
    rows = [_version("c", 5, lead_channel="Email", lead_source="newsletter", merged_into="d"),
            _version("c", 4, lead_channel="Paid Search", lead_source="google", first_touch_time=2000),
            _version("n", 1, lead_channel="Organic Search")]
    out = with_previous(rows, stored)
    assert [(r[0], r[1]) for r in out] == [("c", 4), ("c", 5), ("n", 1)]
    assert out[0][-len(PREVIOUS_COLUMNS):] == (3, True, "Direct", "direct", "", 1000)
    assert out[1][-len(PREVIOUS_COLUMNS):] == (4, True, "Paid Search", "google", "", 2000)
    assert out[2][-len(PREVIOUS_COLUMNS):] == NO_PREVIOUS


def test_a_version_already_stored_replaces_nothing() -> None:
    """A replayed (not newer) version carries prev_version >= version, which lead_counts ignores."""
    stored = {"c": (7, False, "Email", "newsletter", "", None)}
    out = with_previous([_version("c", 7), _version("c", 6)], stored)
    assert [_prev_version(r) for r in out] == [7, 7]
