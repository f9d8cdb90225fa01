"""The one way to build a DeadLetter record (schemas/avro/DeadLetter.avsc).

Every stage (collector, imports, worker, sink) dead-letters through this function, so a
dead letter always carries the same fields and the same payload bound, whoever wrote it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["MAX_PAYLOAD", "dead_letter"]

#: Raw payload kept per dead letter; longer inputs are cut and flagged as truncated.
MAX_PAYLOAD = 64 * 1024


def dead_letter(
    *,
    stage: str,
    reason: str,
    origin: str,
    payload: bytes,
    detail: str | None = None,
    origin_topic: str | None = None,
    origin_partition: int | None = None,
    origin_offset: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A DeadLetter record: the reason, where the input came from and its raw bytes (bounded).

    ``event_id`` may be given to make the dead letter of a re-read input the same record
    (the sink derives it from topic, partition and offset); otherwise a random one.
    """
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "failed_at": int(time.time() * 1000),
        "stage": stage,
        "reason": reason,
        "detail": detail[:1000] if detail is not None else None,
        "origin": origin,
        "origin_topic": origin_topic,
        "origin_partition": origin_partition,
        "origin_offset": origin_offset,
        "payload": payload[:MAX_PAYLOAD],
        "payload_truncated": len(payload) > MAX_PAYLOAD,
    }
