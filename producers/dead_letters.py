"""Publishing rejected input to the dead-letter topic: the one way the capture layer does it.

The collector, the CSV imports and the Python publishers all hand a rejection to
:class:`DeadLetterPublisher`, which redacts emails from the raw payload (a rejected
identify must not leak the plain address it carried), builds the record with
``schemas.dead_letter.dead_letter`` (the shared field set and payload bound), produces it
and counts it by reason. Reading the topic back is ``producers.dlq``.
"""

from __future__ import annotations

from typing import Any

from ground.errors import SchemaError
from producers.events import Rejected
from producers.kafka import EventProducer
from producers.privacy import MAX_EMAIL, redact_emails
from schemas.dead_letter import MAX_PAYLOAD, dead_letter

__all__ = ["DeadLetterPublisher", "rejection"]


def rejection(exc: Rejected | SchemaError) -> tuple[str, str]:
    """(reason code, detail) of a rejected input; a record that does not fit its schema is bad input too."""
    if isinstance(exc, Rejected):
        return exc.code, exc.detail
    return "schema_mismatch", str(exc)


class DeadLetterPublisher:
    """Publishes rejected inputs to the dead-letter topic, keyed by origin."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    def publish(self, *, stage: str, reason: str, origin: str, payload: bytes,
                detail: str | None = None) -> dict[str, Any]:
        """Produce the dead letter of one rejected input and count it under ``reason``."""
        # Only what is kept is redacted (plus the longest address, so one that straddles the
        # cut is caught too): the work is bounded by the kept size, not by a megabyte body.
        head = payload[: MAX_PAYLOAD + MAX_EMAIL]
        redacted = redact_emails(head.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        record = dead_letter(stage=stage, reason=reason, origin=origin, payload=redacted, detail=detail)
        record["payload_truncated"] = record["payload_truncated"] or len(payload) > len(head)
        self.producer.send("dead_letter", record)
        if self.producer.metrics is not None:
            self.producer.metrics.rejected.labels(reason).inc()
        return record
