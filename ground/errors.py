"""The leadstream exception hierarchy: one base, one subclass per stage.

Errors that concern one record carry it raw together with where it came from, so a
handler can put it on the dead-letter topic without re-deriving anything.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "CaptureError",
    "LeadstreamError",
    "RecordError",
    "SchemaError",
    "SinkError",
    "StreamError",
]


class LeadstreamError(Exception):
    """Base of every error leadstream raises on purpose."""


class RecordError(LeadstreamError):
    """An error about one record: keeps the raw bytes and their origin."""

    def __init__(
        self,
        reason: str,
        raw: bytes | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.topic = topic
        self.partition = partition
        self.offset = offset


class SchemaError(RecordError):
    """A payload that does not decode, or a record that does not fit its schema."""


class CaptureError(RecordError):
    """Input rejected by the collector, a webhook or an import."""


class StreamError(RecordError):
    """An event the stream worker cannot process."""


class SinkError(LeadstreamError):
    """ClickHouse refused or could not be reached."""


class BrokerError(LeadstreamError):
    """The local Kafka broker could not be prepared, started or reached."""
