"""Fixtures of the chaos suite: its scale, its results table, and the table's printout.

Every test here injects a fault into running leadstream processes (kill -9, a crash at
a chosen point of the sink, a broker or cluster node going away, the engine refusing
writes, workers joining and leaving) and then checks, against the plain-Python oracle,
that nothing was lost or doubled. Each one also proves its check able to fail (a negative
control) and records a row of the chaos table, printed at the end of the session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.results import Table, render
from tests.chaos.scale import Scale, current

RESULTS_ENV = "LEADSTREAM_CHAOS_RESULTS"
_TABLE = pytest.StashKey[Table]()


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current()


@pytest.fixture(scope="session")
def chaos_results(request: pytest.FixtureRequest) -> Table:
    """The session's chaos table, mirrored into LEADSTREAM_CHAOS_RESULTS (or .leadstream/)."""
    config = request.config
    default = Path(str(config.rootpath)) / ".leadstream" / "chaos-results.jsonl"
    table = Table(Path(os.environ.get(RESULTS_ENV, str(default))))
    table.reset()
    config.stash[_TABLE] = table
    return table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    table = config.stash.get(_TABLE, None)
    if table is None or not table.rows:
        return
    terminalreporter.section(f"chaos ({current().name} scale)")
    for line in render(table.rows):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"rows also in {table.path}")
