"""What the pipeline scenarios share: a dataset, settling, the check and its table row.

A scenario produces a seeded dataset (duplicates, out-of-order arrival) to the raw
topics, runs workers and a sink as processes while it injects its fault, waits until
everything settled (workers idle, the sink's group committed to the end of the enriched
topics), then checks ClickHouse against the oracle and proves the check able to fail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ground.settings import Settings
from leadstream.testing.harness import WorkerProcess, wait_idle
from sinks.sink import SINK_TOPICS
from tests.chaos.accounting import Tally, check, classifier, expect, prove_able_to_fail, read
from tests.chaos.progress import Committed, wait_until
from tests.chaos.results import Row, Table
from tests.chaos.scale import DatasetSize
from tests.chaos.sink_process import SinkProcess
from tests.oracle.generator import Arrival, generate

__all__ = ["Outcome", "arrivals", "assert_exact", "record", "settle", "sink_group", "verify"]


def arrivals(seed: int, size: DatasetSize, arrival_seed: int = 11) -> list[Arrival]:
    """The seeded dataset as the broker receives it: 5% duplicates, 25% out of order."""
    data = generate(seed, contacts=size.contacts, touches=size.touches, deals=size.deals, merges=size.merges)
    return data.arrival(seed=arrival_seed, duplicate_rate=0.05, out_of_order=0.25)


def sink_group(settings: Settings) -> str:
    return settings.sink_group_id


def settle(settings: Settings, workers: Sequence[WorkerProcess], sink: SinkProcess, timeout: float = 900.0) -> float:
    """Wait until the workers are idle and the sink committed everything they emitted."""
    started = time.monotonic()
    wait_idle(settings, timeout=timeout, workers=workers)
    probe = Committed(settings, sink_group(settings), SINK_TOPICS)

    def sink_alive() -> None:
        if not sink.alive():
            raise RuntimeError(f"the sink exited with {sink.returncode()}: {sink.log_tail()}")

    try:
        wait_until(lambda: probe.lag() == 0, "the sink to commit every enriched record", timeout, alive=sink_alive)
    finally:
        probe.close()
    return time.monotonic() - started


@dataclass
class Outcome:
    tally: Tally
    proofs: list[str] = field(default_factory=list)


def verify(settings: Settings, sink: SinkProcess, acknowledged: Sequence[Arrival]) -> Outcome:
    """Check ClickHouse against the oracle of ``acknowledged``; then the negative controls."""
    expected = expect(acknowledged, classifier(settings))
    snap = read(sink, expected)
    tally = check(expected, snap)
    print(f"chaos check: {tally.summary()}")
    for problem in (tally.problems + tally.report_problems)[:30]:
        print(f"  {problem}")
    proofs = prove_able_to_fail(expected, snap) if tally.found else []
    return Outcome(tally, proofs)


def record(table: Table, scenario: str, outcome: Outcome, *, events: int, recovery: Sequence[float],
           started: float, notes: Sequence[str] = ()) -> Row:
    """Add the scenario's row to the chaos table (before asserting, so failures show too)."""
    t = outcome.tally
    row = Row(scenario=scenario, events=events, produced=t.produced, found=t.found, lost=t.lost, doubled=t.doubled,
              reports="equal" if t.reports_equal else f"{len(t.report_problems)} differ",
              recovery=max(recovery) if recovery else None, wall=time.monotonic() - started,
              notes=[*notes, f"negative controls reported: {'; '.join(outcome.proofs) or 'none ran'}"])
    table.add(row)
    return row


def assert_exact(outcome: Outcome) -> None:
    t = outcome.tally
    details = "\n".join((t.problems + t.report_problems)[:30])
    assert (t.lost, t.doubled, t.unknown) == (0, 0, 0), f"{t.summary()}\n{details}"
    assert t.reports_equal, f"{t.summary()}\n{details}"
    assert outcome.proofs, "the negative controls did not run"
