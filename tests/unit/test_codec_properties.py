"""Property tests of the Avro codec: every shipped schema round-trips; headers and evolution.

Records are generated from the .avsc files themselves, so a schema added later is
covered without touching this file.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground.errors import SchemaError
from schemas import decode, encode, schema_info
from schemas.codec import AVRO_DIR, _load, get_codec

CURRENT = sorted(p.stem for p in AVRO_DIR.glob("*.avsc") if "." not in p.stem)
OLDER = sorted(p.name for p in AVRO_DIR.glob("*.avsc") if "." in p.stem)

# Avro strings are UTF-8: no lone surrogates.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


def independent_crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO computed bit by bit from the Avro specification (no table, no codec code)."""
    empty = 0xC15D213AA4D7A795
    fp = empty
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ (empty if fp & 1 else 0)
    return fp


def _strategy(node: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for values of the Avro type ``node`` (logical types as their base)."""
    if isinstance(node, str):
        if node in named:
            return st.deferred(lambda: _strategy(named[node], named))
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(allow_nan=False, allow_infinity=False, width=32),
            "double": st.floats(allow_nan=False),
            "string": TEXT,
            "bytes": st.binary(max_size=40),
        }[node]
    if isinstance(node, list):
        return st.one_of([_strategy(branch, named) for branch in node])
    kind = node["type"]
    if kind in ("record", "enum", "fixed"):
        # Named types may be referenced later by short or namespace-qualified name.
        namespace = node.get("namespace") or named.get("__namespace__", "")
        named[node["name"]] = node
        named[f"{namespace}.{node['name']}"] = node
    if kind == "record":
        outer = named.get("__namespace__")
        named["__namespace__"] = node.get("namespace") or outer or ""
        fields = {f["name"]: _strategy(f["type"], named) for f in node["fields"]}
        named["__namespace__"] = outer or ""
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "fixed":
        return st.binary(min_size=node["size"], max_size=node["size"])
    if kind == "array":
        return st.lists(_strategy(node["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(TEXT, _strategy(node["values"], named), max_size=4)
    if node.get("logicalType") == "uuid":
        return st.uuids().map(str)
    return _strategy(kind, named)


def records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    raw = json.loads((AVRO_DIR / f"{name}.avsc").read_text())
    return _strategy(raw, {})


@pytest.mark.parametrize("name", CURRENT)
def test_every_schema_round_trips(name: str) -> None:
    """For every current schema, encode(record) then decode gives the same record back."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records(name))
    def round_trip(record: dict[str, Any]) -> None:
        payload = encode(name, record)
        decoded_name, decoded = decode(payload, expect=name)
        assert decoded_name == name
        assert decoded == record

    round_trip()


@pytest.mark.parametrize("name", CURRENT)
def test_header_is_marker_plus_independent_fingerprint(name: str) -> None:
    """Each schema's messages start with C3 01 + the bit-by-bit CRC-64-AVRO of its canonical form."""
    from fastavro.schema import to_parsing_canonical_form

    info = schema_info(name)
    pcf = to_parsing_canonical_form(info.raw).encode()
    expected = independent_crc64_avro(pcf).to_bytes(8, "little")
    assert info.fingerprint == expected

    @settings(max_examples=5, deadline=None)
    @given(records(name))
    def header(record: dict[str, Any]) -> None:
        payload = encode(name, record)
        assert payload[:2] == b"\xc3\x01" and payload[2:10] == expected

    header()


def test_independent_crc_matches_the_specification_vector() -> None:
    """The spec's empty-input fingerprint is the EMPTY constant itself; a negative control differs."""
    assert independent_crc64_avro(b"") == 0xC15D213AA4D7A795
    assert independent_crc64_avro(b'"int"') != independent_crc64_avro(b'"long"')


@pytest.mark.parametrize("file", OLDER)
def test_older_writer_versions_decode_with_the_current_reader(file: str) -> None:
    """Any record written with an older shipped version decodes into the current schema, defaults filled."""
    old = _load(AVRO_DIR / file)
    current = schema_info(old.name)
    new_fields = {f["name"]: f.get("default") for f in current.raw["fields"]}
    old_names = {f["name"] for f in old.raw["fields"]}

    @settings(max_examples=40, deadline=None)
    @given(_strategy(json.loads(old.file.read_text()), {}))
    def evolve(record: dict[str, Any]) -> None:
        payload = get_codec().encode_with(old, record)
        assert payload[2:10] == old.fingerprint != current.fingerprint
        name, decoded = decode(payload)
        assert name == old.name
        for field, value in decoded.items():
            if field in old_names:
                assert value == record[field]
            else:
                assert value == new_fields[field]

    evolve()


@given(st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_never_decode_silently_wrong(payload: bytes) -> None:
    """Random bytes either raise SchemaError or decode into a record of a known schema."""
    try:
        name, record = decode(b"\xc3\x01" + schema_info("Touch").fingerprint + payload)
    except SchemaError:
        return
    assert name == "Touch" and isinstance(record, dict)
