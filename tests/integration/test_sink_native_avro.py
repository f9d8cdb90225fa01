"""Enriched touches decoded by the engine store exactly what the Python path stores.

The sink hands the bodies of current-schema touches to the engine as one Avro block
(sinks/avro_blocks.py). Here the same feed goes through a sink with that path and one
without (LEADSTREAM_SINK_NATIVE_AVRO=false): the touch tables must be equal row for
row, every nullable field and timestamp included. Hostile messages ride in the same
batches: a body cut short behind a valid header (the engine refuses the whole block;
its bodies are then checked in Python, exactly that message is dead-lettered and the
block is rebuilt without it) and plain garbage (never native: no header). Nothing is
lost and only the bad ones are dead letters.
"""

from __future__ import annotations

from typing import Any

import pytest

from ground.settings import Settings
from leadstream.testing.waiting import wait_for
from schemas.codec import encode
from sinks.clickhouse import connect
from sinks.service import SinkService
from tests.integration.sink_feed import one_touch
from tests.integration.sink_support import produce

pytestmark = [pytest.mark.integration]

N = 600


def _feed() -> list[tuple[str, str, dict[str, Any]]]:
    items = []
    for i in range(N):
        t = one_touch(f"00000000-0000-4000-8000-{i:012d}", anonymous_id=f"anon-{i % 50}" if i % 7 else None,
                      contact_id=f"c-{i % 13}" if i % 3 == 0 else None, event_time=1_735_689_600_000 + i * 997)
        t["referrer"] = "https://news.example/" if i % 5 == 0 else None
        t["click_id_type"] = "gclid" if i % 11 == 0 else None
        t["is_bot"] = i % 17 == 0
        t["sequence"] = i
        items.append(("enriched-touches", t["anonymous_id"] or "k", t))
    return items


def _sink(settings: Settings, native: bool) -> tuple[list[tuple[Any, ...]], tuple[int, int, bool]]:
    s = settings.model_copy(update={"sink_native_avro": native, "sink_batch_rows": 250})
    db = connect(s)
    service = SinkService(s, db, serve_api=False, group_id=f"native-{native}").start()
    try:
        wait_for(lambda: service.sink.stats.rows.get("touches", 0) >= N
                 and service.sink.stats.dead_letters >= 2, 120, "the feed to land")
        assert service.sink.stats.rows.get("touches", 0) == N
        _, rows = db.query(f"SELECT * FROM {s.clickhouse_database}.touches ORDER BY event_id")
        stats = service.sink.stats
        dead = (stats.dead_letters, stats.native_refusals, stats.native_rows > 0)
    finally:
        service.stop()
        db.close()
    return rows, dead


def test_native_touches_equal_the_python_path_and_bad_ones_are_dead_letters(topics: Settings) -> None:
    good = _feed()
    valid = encode("EnrichedTouch", good[0][2])
    cut = valid[: len(valid) // 2]  # a valid header, then half a body
    produce(topics, good[:300], raw=[("enriched-touches", cut), ("enriched-touches", b"\x00garbage")])
    produce(topics, good[300:])
    native = topics.model_copy(update={"clickhouse_database": f"{topics.clickhouse_database}_n"})
    python = topics.model_copy(update={"clickhouse_database": f"{topics.clickhouse_database}_p"})
    native_rows, native_dead = _sink(native, True)
    python_rows, python_dead = _sink(python, False)
    assert len(native_rows) == N
    assert native_rows == python_rows  # every column of every row
    assert native_dead == (2, 1, True)  # one block refused (the cut body), the others decoded by the engine
    assert python_dead == (2, 0, False)
    nulls = [r for r in native_rows if r[5] == ""]  # contact_id NULL -> '' on both paths
    assert 0 < len(nulls) < N


def test_a_batch_whose_only_touch_is_corrupt_is_dead_lettered_and_the_sink_goes_on(topics: Settings) -> None:
    """The refused block held nothing else: its one message is a dead letter, never re-sent."""
    good = _feed()[:20]
    valid = encode("EnrichedTouch", good[0][2])
    produce(topics, [], raw=[("enriched-touches", valid[: len(valid) - 7])])  # a valid header, a short body
    db = connect(topics)
    service = SinkService(topics, db, serve_api=False, group_id="native-alone").start()
    try:
        wait_for(lambda: service.sink.stats.dead_letters == 1 and service.sink.stats.batches >= 1, 60,
                 "the corrupt touch to be dead-lettered")
        assert service.sink.stats.native_refusals == 1
        produce(topics, good)
        wait_for(lambda: service.sink.stats.rows.get("touches", 0) == len(good), 60, "the good touches after it")
        assert service.sink.stats.native_rows == len(good) and service.sink.stats.dead_letters == 1
    finally:
        service.stop()
        db.close()
