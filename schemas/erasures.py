"""The erasures every process honours: keyed hashes of erased ids, read from the ``erasures`` topic.

Where it sits: below the stages. ``leadstream erase`` publishes a request (producers/
erasure_requests.py); the worker (streams/) drops the subject's events with it, the sink
(sinks/) drops the subject's rows, both acknowledge, and ``leadstream erase --status``
reads the same topic back (docs/privacy.md).

Why keyed hashes: the request must carry no personal data, yet every process must
recognise the subject's ids in the events it reads. An HMAC-SHA256 under
``LEADSTREAM_ID_SECRET`` of each id does both: matching costs one hash per id looked at,
and the list of hashes says nothing to whoever reads the topic without the secret.

Why loaded before anything else: the raw topics keep the subject's events until their
retention expires, so every start, restart and replay from offset 0 reads them again;
the set is read to the end of the topic before the first event is processed, then
followed (:meth:`ErasureSet.refresh`) so that a request made while running takes effect
within a second.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer

from ground.errors import LeadstreamError
from ground.settings import Settings
from ground.topic_reader import read_to_end
from ground.topics import Topics
from ground.vocabulary import now_ms
from schemas.codec import decode, encode

__all__ = [
    "PLACEHOLDER_PREFIX",
    "SUBJECT_FIELDS",
    "ErasureKeys",
    "ErasureLog",
    "ErasureSet",
    "NoErasureSecretError",
    "erasure_record",
    "publish_erasures",
    "read_erasures",
]

log = logging.getLogger("leadstream.erasures")

#: The record fields that name a subject, per record type: an event any of whose fields
#: is an erased id is the subject's, and is dropped.
SUBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "Touch": ("anonymous_id", "contact_id"),
    "Identify": ("anonymous_id", "contact_id"),
    "ContactChange": ("contact_id",),
    "ContactEvent": ("contact_id", "anonymous_id", "for_contact"),
    "DealStamp": ("for_contact",),
    "EnrichedTouch": ("anonymous_id", "contact_id"),
    "ContactVersion": ("contact_id",),
    "IdentityLink": ("anonymous_id", "contact_id", "canonical_contact_id"),
}
#: Deals are the company's records: they stay, their erased contact ids replaced.
DEAL_CONTACT_FIELDS: dict[str, tuple[str, ...]] = {
    "DealChange": ("primary_contact_id",),
    "EnrichedDeal": ("primary_contact_id",),
}
#: Replaced contact ids read ``erased:<16 hex>``: the same for one id, reversible by nobody.
PLACEHOLDER_PREFIX = "erased:"
#: How often a running process looks for new requests.
REFRESH_SECONDS = 1.0


class NoErasureSecretError(LeadstreamError):
    """Erasures exist (or are asked for) and no ``LEADSTREAM_ID_SECRET`` can match them."""


class ErasureKeys:
    """The keyed hash of an id, and the placeholder that replaces an erased contact id."""

    def __init__(self, secret: object) -> None:
        value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
        if not value:
            raise NoErasureSecretError(
                "LEADSTREAM_ID_SECRET is not set: erasures are matched by ids hashed with it")
        self._key = str(value).encode()

    def key(self, value: str) -> str:
        return hmac.new(self._key, b"erasure\x00" + value.encode(), hashlib.sha256).hexdigest()[:32]

    def placeholder(self, contact_id: str) -> str:
        digest = hmac.new(self._key, b"placeholder\x00" + contact_id.encode(), hashlib.sha256).hexdigest()
        return PLACEHOLDER_PREFIX + digest[:16]


@dataclass
class ErasureLog:
    """What the erasures topic says: each request and, per step, when it was acknowledged."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any]) -> bool:
        """Fold one record; True when it is a request not seen before."""
        erasure_id, step = str(record["erasure_id"]), str(record["step"])
        if step == "requested":
            new = erasure_id not in self.requests
            self.requests[erasure_id] = dict(record)
            return new
        self.steps.setdefault(erasure_id, {})[step] = dict(record)
        return False

    def keys(self) -> set[str]:
        return {k for r in self.requests.values() for k in r["keys"]}

    def pending(self, step: str) -> list[str]:
        """Requests that ``step`` has not acknowledged yet."""
        return [e for e in self.requests if step not in self.steps.get(e, {})]


def erasure_record(erasure_id: str, step: str, *, keys: Iterable[str] = (), contacts: int = 0,
                   anonymous_ids: int = 0, detail: str | None = None) -> dict[str, Any]:
    """An ``Erasure`` record: a request (``step="requested"``) or a step's acknowledgement."""
    return {"erasure_id": erasure_id, "step": step, "at": now_ms(), "keys": sorted(keys), "contacts": contacts,
            "anonymous_ids": anonymous_ids, "detail": detail}


def publish_erasures(settings: Settings, records: list[dict[str, Any]]) -> None:
    """Publish ``records`` on the erasures topic and wait for the broker.

    Keyed ``erasure_id`` (a request) or ``erasure_id/step``, so that compaction keeps
    each request and the latest acknowledgement of each step.
    """
    topic = Topics(settings.topic_prefix).erasures
    producer = Producer(settings.kafka_producer_config())
    for record in records:
        key = record["erasure_id"] if record["step"] == "requested" else f"{record['erasure_id']}/{record['step']}"
        producer.produce(topic, key=key.encode(), value=encode("Erasure", record))
    if producer.flush(30) != 0:
        raise LeadstreamError(f"the broker did not acknowledge {len(records)} record(s) on {topic}")


def read_erasures(settings: Settings, timeout: float = 30.0) -> ErasureLog:
    """The whole erasures topic, read to its end with a consumer of no group."""
    consumer = Consumer(settings.kafka_consumer_config("leadstream-erasures-reader"))
    try:
        return _drain(consumer, Topics(settings.topic_prefix).erasures, ErasureLog(), timeout)
    finally:
        consumer.close()


def _drain(consumer: Consumer, topic: str, into: ErasureLog, timeout: float) -> ErasureLog:
    read_to_end(consumer, topic, lambda msg: _fold(into, msg.value()), timeout)
    return into


def _fold(into: ErasureLog, value: bytes | None) -> bool:
    """Fold one message of the topic (a compaction tombstone carries nothing)."""
    return value is not None and into.add(decode(value, expect="Erasure")[1])


class ErasureSet:
    """The erased ids a process matches events against, kept current while it runs.

    Built with ``follow=True`` it keeps its consumer and picks up new requests on
    :meth:`refresh` (at most once a second); ``step`` names the process that
    acknowledges what it has loaded ("worker" or "sink"), so that ``leadstream erase
    --status`` can show it.
    """

    def __init__(self, settings: Settings, *, step: str | None = None, follow: bool = True,
                 timeout: float = 30.0) -> None:
        self.settings = settings
        self.step = step
        self.topic = Topics(settings.topic_prefix).erasures
        self.log = ErasureLog()
        self._consumer: Consumer | None = Consumer(settings.kafka_consumer_config("leadstream-erasures-reader"))
        _drain(self._consumer, self.topic, self.log, timeout)
        self._keys = self.log.keys()
        self._hash: ErasureKeys | None = None
        if self._keys or settings.id_secret is not None:
            self._hash = ErasureKeys(settings.id_secret)
        self._next_refresh = time.monotonic() + REFRESH_SECONDS
        if not follow:
            self._consumer.close()
            self._consumer = None
        self.acknowledge()

    @property
    def active(self) -> bool:
        return bool(self._keys)

    def refresh(self) -> int:
        """Read requests published since the last look; how many are new."""
        if self._consumer is None or time.monotonic() < self._next_refresh:
            return 0
        self._next_refresh = time.monotonic() + REFRESH_SECONDS
        new = 0
        for msg in self._consumer.consume(num_messages=500, timeout=0):
            if msg.error() is None:
                new += _fold(self.log, msg.value())
        if new:
            self._keys = self.log.keys()
            if self._hash is None:
                self._hash = ErasureKeys(self.settings.id_secret)
            log.warning("%d new erasure request(s): the subjects' events are dropped from now on", new)
            self.acknowledge()
        return new

    def acknowledge(self) -> None:
        """Publish this process's step for every request it has not acknowledged yet."""
        if not self.step:
            return
        records = [erasure_record(e, self.step) for e in self.log.pending(self.step)]
        if records:
            publish_erasures(self.settings, records)
            for record in records:
                self.log.add(record)

    def erased(self, values: Iterable[Any]) -> bool:
        """True when any of ``values`` (ids; None and "" ignored) is an erased id."""
        if not self._keys or self._hash is None:
            return False
        return any(v and self._hash.key(str(v)) in self._keys for v in values)

    def drops(self, name: str, record: Mapping[str, Any]) -> bool:
        """True when ``record`` (of type ``name``) belongs to an erased subject."""
        fields = SUBJECT_FIELDS.get(name)
        return bool(fields) and self.erased(record.get(f) for f in fields)  # type: ignore[union-attr]

    def scrub(self, name: str, record: dict[str, Any]) -> bool:
        """Replace erased contact ids of a deal record in place; True when one was replaced."""
        fields = DEAL_CONTACT_FIELDS.get(name)
        if not fields or not self._keys or self._hash is None:
            return False
        changed = False
        for f in fields:
            value = record.get(f)
            if value and self.erased([value]):
                record[f] = self._hash.placeholder(str(value))
                changed = True
        ids = record.get("contact_ids")
        if ids and self.erased(ids):
            record["contact_ids"] = [self._hash.placeholder(str(c)) if self.erased([c]) else c for c in ids]
            changed = True
        return changed

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
