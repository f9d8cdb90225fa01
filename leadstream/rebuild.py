"""Clearing everything derived, so that the next start rebuilds it from the raw topics.

Where it sits: behind ``leadstream erase --apply``. An erasure stops the subject's events
at once (schemas/erasures.py), but what was derived from them before is spread over
states that cannot be retracted piecewise: a first touch is a minimum, a merged contact's
history is a union folded into its survivor, a deal carries its contact's lead source.
The exact way to remove it is the one the pipeline is built on: recompute from the raw
events, this time without the subject's. So this deletes the derived topics, the
worker's changelogs and local state, the consumer groups and the ClickHouse database;
the worker and the sink then replay the raw topics from offset 0, dropping the erased
subjects' events, and the reports fill up again to what they were minus the subjects.
Deleting a topic or a database is physical, which is what an erasure needs.

Before that, the raw topics that hold any of the erased subjects' events are rewritten
without them (:mod:`leadstream.raw_rewrite`; ``--keep-raw`` skips it). The dead-letter
topic and the erasures topic are kept.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from ground.errors import LeadstreamError
from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import ENRICHED_TOPICS, INTERNAL_TOPICS, Topics
from leadstream.raw_rewrite import RawRewrite, rewrite_raw
from schemas.erasures import erasure_record, publish_erasures, read_erasures

__all__ = ["RebuildError", "RebuildPlan", "clear_derived", "drop_database", "plan_rebuild"]

log = logging.getLogger("leadstream.rebuild")

#: Topics Faust creates for the worker's app id (changelogs, the assignor's leader topic).
_FAUST_SUFFIXES = ("-changelog", "-__assignor-__leader")


class RebuildError(LeadstreamError):
    """The derived state cannot be cleared now (a process still uses it)."""


@dataclass
class RebuildPlan:
    """What :func:`clear_derived` deletes."""

    topics: list[str]
    groups: list[str]
    state_dir: str
    database: str
    erasures: list[str] = field(default_factory=list)


def _active_members(admin: AdminClient, groups: list[str], timeout: float) -> dict[str, int]:
    busy = {}
    for group, future in admin.describe_consumer_groups(groups, request_timeout=timeout).items():
        try:
            members = len(future.result(timeout=timeout).members)
        except KafkaException:
            continue  # a group that does not exist has no member
        if members:
            busy[group] = members
    return busy


def plan_rebuild(settings: Settings, timeout: float = 30.0) -> RebuildPlan:
    """What a rebuild would delete; raises RebuildError while a worker or a sink runs."""
    admin = AdminClient(settings.kafka_common_config())
    app_id = settings.stream_app_id
    groups = [app_id, settings.sink_group_id]
    busy = _active_members(admin, groups, timeout)
    if busy:
        raise RebuildError(
            "stop the stream workers and the sink first (consumer groups still active: "
            + ", ".join(f"{g} with {n} member(s)" for g, n in busy.items()) + ")")
    topics = Topics(settings.topic_prefix)
    existing = set(admin.list_topics(timeout=timeout).topics)
    derived = [topics.name(t) for t in (*ENRICHED_TOPICS, *INTERNAL_TOPICS)]
    faust = sorted(t for t in existing if t.startswith(f"{app_id}-") and t.endswith(_FAUST_SUFFIXES))
    return RebuildPlan(
        topics=[t for t in derived if t in existing] + faust, groups=groups,
        state_dir=str(settings.data_dir / "streams" / app_id), database=settings.clickhouse_database,
        erasures=list(read_erasures(settings, timeout).requests))


def drop_database(settings: Settings) -> None:
    """Drop the configured ClickHouse database now (``SYNC``: its files go at once)."""
    from sinks.clickhouse import connect

    db = connect(settings)
    try:
        cluster = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clickhouse_cluster else ""
        db.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`{cluster} SYNC")
    finally:
        db.close()


def clear_derived(settings: Settings, plan: RebuildPlan, drop: Callable[[Settings], None] = drop_database,
                  timeout: float = 30.0, *, raw: bool = True,
                  progress: Callable[[RawRewrite], None] | None = None) -> list[RawRewrite]:
    """Rewrite the raw topics without the erased subjects (unless ``raw`` is False), delete what
    ``plan`` names, recreate the empty topics, record the rebuild per erasure.

    The raw rewrite comes first: when it refuses (something still writes to a raw topic),
    nothing has been deleted yet.
    """
    rewrites = rewrite_raw(settings, timeout, progress) if raw and plan.erasures else []
    admin = AdminClient(settings.kafka_common_config())
    log.info("deleting %d derived topics", len(plan.topics))
    if plan.topics:
        delete_topics(settings, plan.topics, timeout)
    for group, future in admin.delete_consumer_groups(plan.groups, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].name() != "GROUP_ID_NOT_FOUND":
                raise
        log.info("deleted consumer group %s", group)
    shutil.rmtree(plan.state_dir, ignore_errors=True)
    drop(settings)
    _recreate(settings, timeout)
    _record_rebuilt(settings, plan, rewrites if raw else None)
    return rewrites


def _recreate(settings: Settings, timeout: float) -> None:
    """Create the topics again; a deletion still in progress is waited out."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            create_topics(settings, timeout=timeout)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the broker finishes deleting the old topic in the background


def _record_rebuilt(settings: Settings, plan: RebuildPlan, rewrites: list[RawRewrite] | None) -> None:
    detail = f"{len(plan.topics)} derived topics and the {plan.database} database cleared; raw topics "
    if rewrites is None:
        detail += "kept (--keep-raw)"
    else:
        changed = [r for r in rewrites if r.rewritten]
        detail += (f"rewritten: {', '.join(r.topic for r in changed)}" if changed else "hold none of the subjects")
        odd = sum(r.undecodable for r in rewrites)
        if odd:
            detail += f"; {odd} records that are no leadstream record kept as they were"
    publish_erasures(settings, [erasure_record(e, "rebuilt", detail=detail) for e in plan.erasures])
