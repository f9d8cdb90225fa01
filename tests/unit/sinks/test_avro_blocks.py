"""The Avro object container built from message bodies reads back as the records written."""

from __future__ import annotations

import io
from typing import Any

import fastavro

from schemas.codec import encode, schema_info
from sinks.avro_blocks import HEADER_BYTES, container, single_object_prefix


def _touch(i: int) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}", "event_time": 1_700_000_000_000 + i,
        "received_at": 1_700_000_000_000 + i, "processed_at": 1_700_000_000_500 + i,
        "anonymous_id": f"anon-{i}" if i % 3 else None, "contact_id": None if i % 2 else f"c-{i}",
        "touch_type": "page_view", "url": "https://example.com/é?x=" + "y" * (i * 50), "referrer": None,
        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": None, "click_id_type": None,
        "channel": "Paid Search", "source": "google", "detail": "", "rule": "r", "taxonomy_version": "1",
        "is_bot": i == 4, "sequence": -i,  # negative longs too
    }


def test_a_container_of_bodies_reads_back_as_the_records() -> None:
    info = schema_info("EnrichedTouch")
    records = [_touch(i) for i in range(300)]  # bodies up to ~15 kB: multi-byte lengths in the framing
    messages = [encode("EnrichedTouch", r) for r in records]
    assert all(m.startswith(single_object_prefix(info)) for m in messages)
    blob = container(info, [m[HEADER_BYTES:] for m in messages])
    assert len(blob) == len(records)
    read = list(fastavro.reader(io.BytesIO(blob.data)))
    assert len(read) == len(records)
    for got, want in zip(read, records, strict=True):
        # the reader applies the logical types the container's schema declares
        assert got["event_time"].timestamp() * 1000 == want["event_time"]
        assert {k: v for k, v in got.items() if k not in ("event_time", "received_at", "processed_at", "event_id")} \
            == {k: v for k, v in want.items() if k not in ("event_time", "received_at", "processed_at", "event_id")}
        assert str(got["event_id"]) == want["event_id"]


def test_an_empty_container_is_well_formed() -> None:
    assert list(fastavro.reader(io.BytesIO(container(schema_info("EnrichedTouch"), []).data))) == []
