"""Erasure requests: who a subject is (every id of theirs), published without personal data.

Where it sits: behind ``leadstream erase`` and ``POST /erasures``. The worker and the
sink match events against what is published here (schemas/erasures.py);
docs/privacy.md says what an erasure removes and what it does not.

Why the raw topics are read: a subject is more than the id an operator types. It is
the contact, every contact merged into it (transitively), and every anonymous id an
identify linked to one of those, and only the raw ``identities`` and ``contacts``
topics hold all of that for certain, whatever the state of the worker or the
database. Reading them is one pass over identifies and contact changes (touches are
not read); a contact the subject was merged *into* is somebody else and is kept: the
rebuild recomputes it without the subject's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message

from ground.settings import Settings
from ground.topic_reader import read_to_end
from ground.topics import Topics
from producers.privacy import Pseudonyms
from schemas.codec import decode
from schemas.erasures import ErasureKeys, erasure_record, publish_erasures

__all__ = ["IdGraph", "Subject", "publish_requests", "read_id_graph", "resolve"]


@dataclass
class Subject:
    """One person to erase: what the operator named, and every id resolved from it."""

    named: str
    contact_ids: set[str] = field(default_factory=set)
    anonymous_ids: set[str] = field(default_factory=set)


@dataclass
class IdGraph:
    """Links between ids as the raw topics state them."""

    #: contact id -> contacts merged into it
    absorbed: dict[str, set[str]] = field(default_factory=dict)
    #: contact id -> anonymous ids identified as it
    anonymous: dict[str, set[str]] = field(default_factory=dict)
    #: keyed email hash -> contact ids that carried it
    by_email: dict[str, set[str]] = field(default_factory=dict)

    def fold(self, name: str, record: dict[str, object]) -> None:
        contact = str(record.get("contact_id") or "")
        if not contact:
            return
        email = record.get("email_sha256")
        if email:
            self.by_email.setdefault(str(email), set()).add(contact)
        if name == "Identify" and record.get("anonymous_id"):
            self.anonymous.setdefault(contact, set()).add(str(record["anonymous_id"]))
        elif name == "ContactChange" and record.get("change") == "merge" and record.get("merged_into"):
            self.absorbed.setdefault(str(record["merged_into"]), set()).add(contact)

    def subject(self, named: str, seeds: Iterable[str]) -> Subject:
        """The subject whose contact ids start from ``seeds``: merged-in contacts, their visitors."""
        found = Subject(named)
        todo = [s for s in seeds if s]
        while todo:
            contact = todo.pop()
            if contact in found.contact_ids:
                continue
            found.contact_ids.add(contact)
            todo.extend(self.absorbed.get(contact, ()))
        for contact in found.contact_ids:
            found.anonymous_ids |= self.anonymous.get(contact, set())
        return found


def read_id_graph(settings: Settings, progress: Callable[[str, int, int], None] | None = None,
                  timeout: float = 30.0) -> IdGraph:
    """One pass over the raw identities and contact changes."""
    graph = IdGraph()
    topics = Topics(settings.topic_prefix)

    def handle(msg: Message) -> None:
        value = msg.value()
        if value:
            name, record = decode(value)
            graph.fold(name, record)

    for topic in (topics.identities, topics.contacts):
        consumer = Consumer(settings.kafka_consumer_config("leadstream-erasure-resolver"))
        try:
            read_to_end(consumer, topic, handle, timeout, _progress_of(topic, progress))
        finally:
            consumer.close()
    return graph


def _progress_of(topic: str, progress: Callable[[str, int, int], None] | None
                 ) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    report = progress
    return lambda done, total: report(topic, done, total)


def resolve(settings: Settings, graph: IdGraph, *, emails: Iterable[str] = (),
            contact_ids: Iterable[str] = ()) -> list[Subject]:
    """One subject per email and per contact id (raises ValueError on a malformed email)."""
    ids = Pseudonyms.of(settings.id_secret)
    subjects = []
    for email in emails:
        hashed = ids.email_hash(email)
        subjects.append(graph.subject(email, {"email:" + hashed[:32], *graph.by_email.get(hashed, set())}))
    subjects.extend(graph.subject(c, [c]) for c in contact_ids)
    return subjects


def publish_requests(settings: Settings, subjects: list[Subject]) -> list[str]:
    """Publish one request per subject (keyed hashes only); their erasure ids."""
    hasher = ErasureKeys(settings.id_secret)
    records = [
        erasure_record(str(uuid.uuid4()), "requested",
                       keys={hasher.key(i) for i in (*subject.contact_ids, *subject.anonymous_ids)},
                       contacts=len(subject.contact_ids), anonymous_ids=len(subject.anonymous_ids))
        for subject in subjects
    ]
    publish_erasures(settings, records)
    return [str(r["erasure_id"]) for r in records]
