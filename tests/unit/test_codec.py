"""Avro single-object encoding: header, fingerprint and schema evolution."""

from __future__ import annotations

import pytest

from ground.errors import SchemaError
from schemas import crc64_avro, decode, encode, schema_info
from schemas.codec import AVRO_DIR, _load, get_codec


def _touch() -> dict[str, object]:
    return {"event_id": "6f1c7a8e-0000-4000-8000-000000000001", "event_time": 1_700_000_000_000,
            "received_at": 1_700_000_000_500, "anonymous_id": "a1", "touch_type": "page_view",
            "utm_source": "google"}


def test_single_object_header_uses_independent_crc64() -> None:
    """C3 01 + the CRC-64-AVRO of the canonical form, computed here independently."""
    from fastavro.schema import to_parsing_canonical_form

    payload = encode("Touch", _touch())
    pcf = to_parsing_canonical_form(schema_info("Touch").raw).encode()
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == crc64_avro(pcf)


def test_older_writer_version_is_read_by_current_reader() -> None:
    """A Touch written with v1 decodes into the current schema with defaults filled."""
    v1 = _load(AVRO_DIR / "Touch.v1.avsc")
    record = {k: v for k, v in _touch().items()}
    payload = get_codec().encode_with(v1, record)
    name, decoded = decode(payload)
    assert name == "Touch"
    assert decoded["utm_source"] == "google"
    assert decoded["page_title"] is None and decoded["properties"] == {} and decoded["is_bot"] is False


def test_garbage_is_a_schema_error_keeping_the_bytes() -> None:
    """Undecodable input raises SchemaError carrying the raw payload."""
    with pytest.raises(SchemaError) as info:
        decode(b"\xc3\x01" + b"\x00" * 8 + b"junk")
    assert info.value.raw is not None
