"""The Python API of the capture layer: publishers other Python code can use.

    from producers import DealPublisher
    with DealPublisher() as deals:
        deals.publish({"deal_id": "D-1", "change": "won", "event_time": "2025-03-01T10:00:00Z",
                       "amount": 12000, "primary_contact_id": "C-1"})

Each publisher validates with the same rules as the collector and the imports
(``producers.events``), produces to its raw topic with the partitioning plan's key,
and on invalid input publishes a dead letter (stage ``api``) and raises
:class:`producers.events.Rejected`. Server-side callers give ``event_time``; without
``event_id`` a deterministic id is derived from the content, so publishing the same
change twice is de-duplicated downstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

from ground.errors import SchemaError
from ground.settings import Settings, get_settings
from ground.vocabulary import now_ms
from producers.dead_letters import DeadLetterPublisher, rejection
from producers.events import (
    Rejected,
    contact_change_record,
    deal_change_record,
    fx_rate_record,
    identify_record,
    spend_record,
    touch_record,
)
from producers.kafka import EventProducer
from producers.privacy import Pseudonyms

__all__ = [
    "ContactPublisher",
    "DealPublisher",
    "IdentityPublisher",
    "Publisher",
    "RatePublisher",
    "SpendPublisher",
    "TouchPublisher",
    "build_record",
]

Record = dict[str, Any]


def build_record(kind: str, fields: Mapping[str, Any], *, received_at: int, ids: Pseudonyms,
                 csv: bool = False) -> Record:
    """Validate server-side input (API, webhook, import) of ``kind`` into its Avro record.

    Server-side inputs must carry ``event_time``; with ``csv`` unknown columns become
    properties (touches, contacts) or traits (identities).
    """
    if kind == "touch":
        return touch_record(fields, received_at=received_at, require_event_time=True,
                            deterministic_id=True, extra_properties=csv)
    if kind == "identify":
        return identify_record(fields, received_at=received_at, ids=ids, require_event_time=True,
                               deterministic_id=True, extra_traits=csv)
    if kind == "contact":
        return contact_change_record(fields, received_at=received_at, ids=ids, extra_properties=csv)
    if kind == "deal":
        return deal_change_record(fields, received_at=received_at)
    if kind == "spend":
        return spend_record(fields, received_at=received_at)
    if kind == "fx_rate":
        return fx_rate_record(fields, received_at=received_at)
    raise ValueError(f"unknown event kind {kind!r}")


def _raw(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(fields), default=str, ensure_ascii=False).encode("utf-8", "surrogateescape")


class Publisher:
    """Base of the typed publishers; owns its producer unless one is passed in."""

    kind: ClassVar[str]

    def __init__(self, settings: Settings | None = None, *, producer: EventProducer | None = None,
                 stage: str = "api") -> None:
        self.settings = settings or get_settings()
        self._owns_producer = producer is None
        self.producer = producer or EventProducer(self.settings)
        self.dead_letters = DeadLetterPublisher(self.producer)
        self.stage = stage
        self.ids = Pseudonyms.of(self.settings.id_secret)

    def publish(self, fields: Mapping[str, Any], *, origin: str | None = None, csv: bool = False) -> Record:
        """Validate and produce one event; on invalid input dead-letter it and raise Rejected."""
        try:
            record = build_record(self.kind, fields, received_at=now_ms(), ids=self.ids, csv=csv)
            self.producer.send(self.kind, record)
        except (Rejected, SchemaError) as exc:
            code, detail = rejection(exc)
            self.dead_letters.publish(stage=self.stage, reason=code, detail=detail,
                                      origin=origin or f"{self.stage}:{self.kind}", payload=_raw(fields))
            if isinstance(exc, Rejected):
                raise
            raise Rejected(code, detail) from exc
        return record

    def flush(self, timeout: float = 30.0) -> int:
        return self.producer.flush(timeout)

    def close(self) -> None:
        if self._owns_producer:
            self.producer.close()
        else:
            self.producer.flush()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class TouchPublisher(Publisher):
    """Offline and server-side touches (calls, scans, webinars, ad clicks) -> ``touches``."""

    kind = "touch"


class IdentityPublisher(Publisher):
    """Anonymous id -> contact links (form fills, logins, CRM syncs) -> ``identities``."""

    kind = "identify"


class ContactPublisher(Publisher):
    """Contact created/updated/merged, with contact source and lifecycle -> ``contacts``."""

    kind = "contact"


class DealPublisher(Publisher):
    """Deal changes from sales tools -> ``deals``."""

    kind = "deal"


class SpendPublisher(Publisher):
    """Marketing spend per day and channel › source › campaign -> ``spend`` (the roi report)."""

    kind = "spend"


class RatePublisher(Publisher):
    """Exchange rates into the reporting currency, per currency and day -> ``fx-rates``."""

    kind = "fx_rate"
