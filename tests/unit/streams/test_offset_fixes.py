"""The corrected commit-offset rule of streams/delivery.py, on a stand-in consumer."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from streams import delivery


class FakeConsumer:
    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self._acked: defaultdict[str, list[int]] = defaultdict(list, {"tp": list(acked)})
        self._acked_index: defaultdict[str, set[int]] = defaultdict(set, {"tp": set(acked)})
        self._committed_offset: dict[str, int | None] = {"tp": committed}
        self.seeks = 0

    async def perform_seek(self) -> None:
        self.seeks += 1


def _new_offset(consumer: Any) -> int | None:
    return delivery._new_offset(consumer, "tp")


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


def test_without_a_committed_offset_the_run_must_start_at_zero() -> None:
    """A fresh group commits its first run from offset 0, and nothing when 0..4 are missing."""
    assert _new_offset(FakeConsumer(None, [0, 1, 2, 5])) == 3
    assert _new_offset(FakeConsumer(None, [5, 6, 7])) is None


def test_a_log_starting_later_is_accepted_after_some_seeks(monkeypatch: Any) -> None:
    """If a fresh partition's log really starts at 5, the hole survives FRESH_RESEEKS seeks, then 5.. is committed."""
    import asyncio

    consumer = FakeConsumer(None, [5, 6, 7])
    monkeypatch.setattr(delivery, "HOLE_RESEEK_SECONDS", 0.0)

    async def run() -> int | None:
        result = None
        for _ in range(delivery.FRESH_RESEEKS + 1):
            result = _new_offset(consumer)
            await asyncio.sleep(0)
        return result

    assert asyncio.run(run()) == 8
    assert consumer.seeks == delivery.FRESH_RESEEKS


def test_a_persisting_hole_seeks_back(monkeypatch: Any) -> None:
    """A hole older than HOLE_RESEEK_SECONDS schedules a seek to the committed offsets."""
    import asyncio

    consumer = FakeConsumer(10, [11])
    monkeypatch.setattr(delivery, "HOLE_RESEEK_SECONDS", 0.0)

    async def run() -> None:
        assert _new_offset(consumer) is None
        await asyncio.sleep(0)

    asyncio.run(run())
    assert consumer.seeks == 1
