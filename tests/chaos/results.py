"""The chaos table: one row per scenario run, written by the tests, printed at the end.

Each test records a :class:`Row` through the ``chaos_results`` fixture; rows are appended
to a JSON-lines file as they come (so an interrupted run still leaves its figures) and
printed as one table by the terminal summary hook in ``conftest.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["COLUMNS", "LEGEND", "Row", "Table", "render"]

COLUMNS = ("scenario", "events produced", "checked", "found", "lost", "doubled", "reports = oracle", "recovery s",
           "wall s")
LEGEND = [
    "events produced: raw events published (duplicate deliveries included), or acknowledged by the collector/import;",
    "checked: what the check counts: distinct touches + live contacts + deals in ClickHouse (their latest state),",
    "  or distinct acknowledged events on the raw topic; found = checked - lost; doubled: counted more than once;",
    "recovery s: the longest time from a fault until the affected stage was working (committing) again.",
]


@dataclass
class Row:
    """What one scenario run measured.

    ``events`` is how many raw events were published; ``produced`` / ``found`` count the
    units the scenario checks (distinct touches + contacts + deals in ClickHouse, or
    acknowledged events on a topic);
    ``reports`` is "equal" when every report equals the oracle, "n/a" when the scenario
    compares no report; ``recovery`` is the longest time from a fault to renewed progress.
    """

    scenario: str
    events: int
    produced: int
    found: int
    lost: int
    doubled: int
    reports: str
    recovery: float | None
    wall: float
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        recovery = "-" if self.recovery is None else f"{self.recovery:.1f}"
        return [self.scenario, str(self.events), str(self.produced), str(self.found), str(self.lost), str(self.doubled),
                self.reports, recovery, f"{self.wall:.0f}"]


@dataclass
class Table:
    """The rows of this session, mirrored into ``path``."""

    path: Path
    rows: list[Row] = field(default_factory=list)

    def reset(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def add(self, row: Row) -> None:
        self.rows.append(row)
        with self.path.open("a") as out:
            out.write(json.dumps(asdict(row)) + "\n")


def render(rows: list[Row]) -> list[str]:
    """A plain-text table (fixed-width columns), then each row's notes."""
    cells = [list(COLUMNS)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += LEGEND
    for r in rows:
        lines += [f"  {r.scenario}: {note}" for note in r.notes]
    return lines
