"""The Faust wiring of the stream worker: the app, its topics, tables and agents.

Where it sits: between the raw topics (written by the producers) and the enriched
topics (read by the sink). ``leadstream worker`` (streams/worker.py) runs one process
of it; several processes share the work by partition.

Three stages, each an agent over two topics with one table (every topic keyed so
that one entity's events meet in one partition; all producers use the murmur2
partitioner, so equal keys co-partition across topics):

- identity (``touches`` + ``identities``, keyed by anonymous id; table ``anon``):
  streams/identity_stage.py;
- contact (``contacts`` + ``contact-events``, keyed by contact id; table ``contact``):
  streams/contact_stage.py;
- deal (``deals`` + ``deal-events``, keyed by deal id; table ``deal``):
  streams/deal_stage.py.

The messages between stages are defined in streams/messages.py, the pure state folds
in streams/state.py, the shared batch step in streams/stage.py and the delivery
protocol (outputs, then table writes, then acknowledgement) in streams/delivery.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT

from ground.settings import Settings
from ground.topics import TOPIC_RECORDS, Topics
from schemas.codec import get_codec
from schemas.erasures import ErasureSet
from streams.contact_stage import ContactStage
from streams.deal_stage import DealStage
from streams.delivery import Outbox, apply_offset_fixes
from streams.identity_stage import IdentityStage
from streams.stage import Stage, StageContext
from streams.taxonomy import Taxonomy, load_taxonomy

__all__ = ["BATCH_SIZE", "BATCH_WITHIN", "EXIT_DELIVERY_FAILED", "Pipeline", "build_app", "summarize"]

log = logging.getLogger("leadstream.streams")

#: Events per batch and the longest a partial batch waits; the batch is the unit of
#: table writes (one per key per batch) and of the delivery wait.
BATCH_SIZE = 2000
BATCH_WITHIN = 0.25
#: Exit status of a worker that could not deliver a batch (it is replayed on restart).
EXIT_DELIVERY_FAILED = 70
#: Changelogs are the only copy of the state besides the local RocksDB: never expire them.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}

#: One RocksDB per table partition: Faust's default memtables (3 x 64 MiB each) would let
#: 12 databases hold gigabytes of superseded state versions in memory.
ROCKSDB_OPTIONS = {"write_buffer_size": 8 * 2**20, "max_write_buffer_number": 2}


class Pipeline:
    """The Faust app with its topics, tables and agents, built from settings."""

    def __init__(self, settings: Settings, datadir: Path, taxonomy: Taxonomy | None = None,
                 worker_id: str = "0") -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        apply_offset_fixes()  # commit only offsets whose messages were processed (streams/delivery.py)
        self.counters: Counter[str] = Counter()
        #: what the metrics read besides the counters: readiness, the last batch's duration
        self.state: dict[str, Any] = {"ready": False}
        self.app = faust.App(
            settings.stream_app_id,
            broker=[f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",")],
            store="rocksdb://",
            datadir=str(datadir),
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
            # Standby replicas would make each worker also replay the other workers'
            # changelogs; recovery from the changelog is the tested path.
            table_standby_replicas=0,
            broker_commit_interval=1.0,
            # A killed worker's partitions move to the others after this long.
            broker_session_timeout=settings.worker_session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 3),
            consumer_group_instance_id=(f"{settings.stream_app_id}-{worker_id}"
                                        if settings.worker_static_membership else None),
            stream_buffer_maxsize=BATCH_SIZE * 2,
            producer_linger_ms=5,
            producer_max_batch_size=256 * 1024,
        )
        #: topic name -> the one record type it may carry
        expected = {self.topics.name(base): rec for base, rec in TOPIC_RECORDS.items()}
        expected[self.topics.name("contact-events")] = "ContactEvent"
        expected[self.topics.name("deal-events")] = "DealStamp"
        # Read to the end before any agent starts: no erased subject's event is folded, on a
        # first start, a restart or a replay from offset 0 alike.
        self.erasures = ErasureSet(settings, step="worker")
        ctx = StageContext(
            topics=self.topics, codec=get_codec(settings.schema_registry_url),
            taxonomy=taxonomy or load_taxonomy(settings.taxonomy_path, settings.site_domain_list),
            half_life=settings.engagement_half_life_days, counters=self.counters, expected_records=expected,
            erasures=self.erasures,
        )
        self.stages: dict[str, Stage] = {
            "identity": IdentityStage(ctx, self._table("anon"), Outbox(settings)),
            "contact": ContactStage(ctx, self._table("contact"), Outbox(settings)),
            "deal": DealStage(ctx, self._table("deal"), Outbox(settings)),
        }
        self._agent("identity", self._topic("touches", "identities"))
        self._agent("contact", self._topic("contacts", "contact-events"))
        self._agent("deal", self._topic("deals", "deal-events"))

    def _topic(self, *bases: str) -> faust.TopicT:
        return self.app.topic(
            *[self.topics.name(b) for b in bases],
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=self.settings.topic_partitions,
        )

    def _table(self, name: str) -> Any:
        return self.app.Table(
            name, default=None, partitions=self.settings.topic_partitions,
            # Raw bytes both ways: the stages encode states with the C JSON encoder
            # (Faust's own JSON codec costs several times more per write).
            key_type=bytes, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG,
            options=ROCKSDB_OPTIONS,
        )

    def _agent(self, name: str, channel: faust.TopicT) -> None:
        handler: Callable[[list[EventT]], Awaitable[None]] = self.stages[name].handle

        async def run(stream: faust.StreamT) -> None:
            # take_events (not take): the batch handler needs each event's partition.
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):  # type: ignore[attr-defined]
                try:
                    t0 = time.perf_counter()
                    await handler(list(events))
                    elapsed = time.perf_counter() - t0
                    self.counters[f"{name}.batches"] += 1
                    self.counters[f"{name}.batch_ms"] += round(elapsed * 1000)
                    self.state[f"{name}.last_batch_seconds"] = elapsed
                    log.debug("stage %s: %d events in %.4fs", name, len(events), elapsed)
                except Exception:
                    # Per-event errors are dead-lettered inside the stage; what reaches
                    # here is a failure to deliver (broker gone, producer fenced). Leaving
                    # the loop would acknowledge the batch and lose it, and a dead actor
                    # stalls silently: exit at once instead, without committing, so a
                    # supervisor restarts the worker and the batch is replayed.
                    log.exception("stage %s could not deliver a batch of %d events; exiting",
                                  name, len(events))
                    logging.shutdown()
                    os._exit(EXIT_DELIVERY_FAILED)

        run.__name__ = name
        run.__qualname__ = name
        self.app.agent(channel, name=name, concurrency=1)(run)


def build_app(settings: Settings, datadir: Path, taxonomy: Taxonomy | None = None,
              worker_id: str = "0") -> Pipeline:
    """The worker's pipeline for ``settings``, its RocksDB stores under ``datadir``."""
    return Pipeline(settings, datadir, taxonomy, worker_id)


def summarize(counters: Counter[str]) -> Iterable[str]:
    return (f"{k}={v}" for k, v in sorted(counters.items()))
