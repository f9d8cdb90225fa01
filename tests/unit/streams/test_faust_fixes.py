"""The corrected commit-offset rule of streams/faust_fixes.py, on a stand-in consumer."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from streams import faust_fixes


class FakeConsumer:
    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self._acked: defaultdict[str, list[int]] = defaultdict(list, {"tp": list(acked)})
        self._acked_index: defaultdict[str, set[int]] = defaultdict(set, {"tp": set(acked)})
        self._committed_offset: dict[str, int | None] = {"tp": committed}
        self.seeks = 0

    async def perform_seek(self) -> None:
        self.seeks += 1


def _new_offset(consumer: Any) -> int | None:
    return faust_fixes._new_offset(consumer, "tp")


def test_commits_the_run_that_starts_at_the_committed_offset() -> None:
    """Acked 10, 11, 12 after committed 10: commit 13."""
    assert _new_offset(FakeConsumer(10, [12, 10, 11])) == 13


def test_a_single_missing_message_is_not_committed_over() -> None:
    """Committed 10 (next to read), acked 11, 12: message 10 was never processed, commit nothing.

    Faust's own rule (``min(acked) - committed > 1``) would commit 13 here and lose 10."""
    assert _new_offset(FakeConsumer(10, [11, 12])) is None


def test_reacked_offsets_below_the_committed_one_are_dropped() -> None:
    """After a seek back, offsets already committed are acked again; they do not block commits."""
    consumer = FakeConsumer(10, [8, 9, 10, 11])
    assert _new_offset(consumer) == 12
    assert consumer._acked["tp"] == []


def test_without_a_committed_offset_the_first_run_is_committed() -> None:
    """A fresh group (nothing committed yet) commits its first consecutive run."""
    assert _new_offset(FakeConsumer(None, [0, 1, 2, 5])) == 3


def test_a_persisting_hole_seeks_back(monkeypatch: Any) -> None:
    """A hole older than HOLE_RESEEK_SECONDS schedules a seek to the committed offsets."""
    import asyncio

    consumer = FakeConsumer(10, [11])
    monkeypatch.setattr(faust_fixes, "HOLE_RESEEK_SECONDS", 0.0)

    async def run() -> None:
        assert _new_offset(consumer) is None
        await asyncio.sleep(0)

    asyncio.run(run())
    assert consumer.seeks == 1
