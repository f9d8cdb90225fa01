"""How big each chaos scenario runs: ``LEADSTREAM_CHAOS_SCALE=short`` (default) or ``full``.

``short`` is what ``make test`` (plain pytest) runs: one seed and 10-20 thousand events per
scenario, so the whole suite stays within a few minutes on a shared 2-core machine.
``full`` is ``make chaos``: five seeds of 200,000 events for the kill scenario and larger
streams everywhere else. Sizes are dataset parameters of ``tests.oracle.generator.generate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SCALE_ENV", "DatasetSize", "Scale", "current"]

SCALE_ENV = "LEADSTREAM_CHAOS_SCALE"


@dataclass(frozen=True)
class DatasetSize:
    """Arguments of ``generate``; ``arrivals`` is roughly 1.25 x ``touches`` (duplicates included)."""

    contacts: int
    touches: int
    deals: int
    merges: int


@dataclass(frozen=True)
class Scale:
    name: str
    #: scenario 1: one full run per seed, each with ``kills`` kill -9 events
    kill_seeds: tuple[int, ...]
    kill_dataset: DatasetSize
    kills: int
    #: scenarios 2, 4, 6 (sink crash points, cluster failover, worker membership)
    dataset: DatasetSize
    #: scenario 3: events posted to the collector per second, and rows of the CSV import
    collector_rate: int
    import_rows: int
    #: scenario 5: seconds without the engine, and the steady beacon load around it
    outage_seconds: float
    outage_rate: int


SHORT = Scale(
    name="short",
    kill_seeds=(1,),
    kill_dataset=DatasetSize(contacts=1000, touches=9000, deals=150, merges=10),
    kills=2,
    dataset=DatasetSize(contacts=700, touches=6500, deals=100, merges=8),
    collector_rate=400,
    import_rows=20000,
    outage_seconds=20.0,
    outage_rate=400,
)

FULL = Scale(
    name="full",
    kill_seeds=(1, 2, 3, 4, 5),
    kill_dataset=DatasetSize(contacts=14400, touches=128000, deals=2000, merges=120),
    kills=4,
    dataset=DatasetSize(contacts=4000, touches=36000, deals=600, merges=40),
    collector_rate=800,
    import_rows=60000,
    outage_seconds=60.0,
    outage_rate=600,
)


def current() -> Scale:
    """The scale named by ``LEADSTREAM_CHAOS_SCALE`` (short unless it says full)."""
    value = os.environ.get(SCALE_ENV, "short").strip().lower()
    if value not in ("short", "full"):
        raise ValueError(f"{SCALE_ENV} must be short or full, not {value!r}")
    return FULL if value == "full" else SHORT
