"""Corrections to faust-streaming's offset bookkeeping that the worker depends on.

Where it sits: applied once by streams/app.py before the Faust app is built; it changes
how the Faust consumer decides which offset to commit, nothing else.

Why: under a rebalance while events are flowing (a worker joining, a worker killed and
restarted), Faust can drop a fetched message without processing it (queues cleared on
revocation, messages skipped for a stale generation, read offsets moved past messages
re-fetched after a seek). Two details of its commit logic then turn a dropped message
into a lost one, found by the restart oracle test (one contact change never applied):

1. ``Consumer._new_offset`` refuses to commit past a hole at the head of the acked
   offsets only when ``min(acked) - committed > 1``; the committed offset is the *next*
   offset to read, so a single missing message (``min(acked) == committed + 1``) is
   committed over.
2. ``Consumer._add_gap`` marks offsets it did not see delivered as "gaps" (meant for
   compacted topics and transaction markers) that count as acknowledged, including the
   message just fetched; after a seek those can be messages that were never processed.

3. Before a partition's first commit there is no committed offset to compare with, and
   Faust commits the first run of acknowledged offsets wherever it starts, so messages
   dropped at the very beginning (a worker joining while the first events flow) are lost.

The replacement commits only a run of acknowledged offsets that starts exactly at the
committed position (at offset 0 before the first commit), and when a hole persists it
seeks back to the committed offsets so the missing messages are fetched and processed
again (every effect of the worker is idempotent, so re-processing is safe). Gaps are not
recorded: every input topic of the worker has consecutive offsets (not compacted,
written without transactions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

__all__ = ["FRESH_RESEEKS", "HOLE_RESEEK_SECONDS", "apply"]

log = logging.getLogger("leadstream.streams")

#: How long a hole at the head of the acknowledged offsets may last before the
#: consumer seeks back to its committed offsets to fetch the missing messages again.
HOLE_RESEEK_SECONDS = 3.0
#: Seeks back before a partition that has no committed offset yet is taken to start later than 0.
FRESH_RESEEKS = 3

_applied = False
_tasks: set[asyncio.Future[Any]] = set()


def _new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp``: the end of the acked run starting at the committed one.

    Before the group's first commit of ``tp`` the run must start at offset 0 (the
    worker's topics are never truncated: kafka_admin creates them without retention);
    if a partition's log does start later, the hole outlives a few seeks back and the
    first run is accepted.
    """
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    committed = self._committed_offset.get(tp)
    holes: dict[Any, list[float]] = self.__dict__.setdefault("_ls_holes", {})
    fresh = committed is None or committed < 0
    expected = 0 if fresh else committed
    index = self._acked_index[tp]
    while acked and acked[0] < expected:  # processed again after a seek: already committed
        index.discard(acked.pop(0))
    if not acked:
        return None
    if acked[0] != expected:
        hole = holes.setdefault(tp, [time.monotonic(), 0])
        if fresh and hole[1] >= FRESH_RESEEKS:
            log.warning("%s starts at offset %s, not 0: committing from there", tp, acked[0])
        else:
            if time.monotonic() - hole[0] >= HOLE_RESEEK_SECONDS:
                hole[0], hole[1] = time.monotonic(), hole[1] + 1
                log.warning("offset %s of %s was never processed; seeking back to the committed offsets",
                            expected, tp)
                task = asyncio.ensure_future(self.perform_seek())
                _tasks.add(task)  # keep a reference until it is done
                task.add_done_callback(_tasks.discard)
            return None
    holes.pop(tp, None)
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    index.difference_update(batch)
    return int(batch[-1]) + 1


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Record no gaps: the worker's input topics have consecutive offsets."""
    return None


def apply() -> None:
    """Install the corrections (idempotent)."""
    global _applied  # noqa: PLW0603 - a process-wide, once-only patch of a library class
    if _applied:
        return
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    _applied = True
