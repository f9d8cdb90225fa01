"""Avro encoding of every leadstream message, with a schema identifier in each one.

Without a registry a message is Avro single-object encoded: the marker ``C3 01``,
the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's parsing
canonical form, then the Avro binary body. The fingerprint resolves to one of the
schemas shipped in ``schemas/avro`` (older versions included), and the body is read
with writer/reader resolution into the current version, so old messages keep
decoding after a schema evolves.

With ``SCHEMA_REGISTRY_URL`` set, the Confluent wire format is used instead (magic
byte 0, 4-byte schema id), through confluent-kafka's registry client.

Python code sees plain dicts: timestamps as epoch milliseconds (int) and uuids as
strings. Logical types are still declared in the .avsc files for other readers.
"""

from __future__ import annotations

import copy
import io
import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from ground.errors import SchemaError

__all__ = [
    "AVRO_DIR",
    "SINGLE_OBJECT_MARKER",
    "Codec",
    "SchemaInfo",
    "crc64_avro",
    "decode",
    "encode",
    "get_codec",
    "record_name",
    "schema_info",
]

AVRO_DIR = Path(__file__).parent / "avro"
SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
Record = dict[str, Any]


@dataclass(frozen=True)
class SchemaInfo:
    """One shipped schema version."""

    name: str  # short record name, e.g. "Touch"
    file: Path
    raw: dict[str, Any]
    parsed: Any  # fastavro parsed schema, logical types stripped
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO
    current: bool


def crc64_avro(data: bytes) -> bytes:
    """The Avro specification's CRC-64-AVRO (Rabin) fingerprint, little-endian."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


_EMPTY = 0xC15D213AA4D7A795


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _make_table()


def _strip_logical(node: Any) -> Any:
    """Drop logicalType annotations so readers return ints and strings.

    The parsing canonical form ignores logical types, so fingerprints are the same
    with or without them.
    """
    if isinstance(node, dict):
        out = {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
        if node.get("logicalType") and isinstance(node.get("type"), str) and len(out) == 1:
            return out["type"]
        return out
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


def _load(path: Path) -> SchemaInfo:
    raw = json.loads(path.read_text())
    pcf = to_parsing_canonical_form(raw)
    fp = bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))
    # _write_hint marks the dict as parsed: without it fastavro re-parses the schema on
    # every read and write (about 6x slower per message).
    parsed = parse_schema(_strip_logical(copy.deepcopy(raw)), _write_hint=True)
    current = "." not in path.stem  # Touch.avsc is current, Touch.v1.avsc is not
    return SchemaInfo(raw["name"], path, raw, parsed, fp, current)


@lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, SchemaInfo], dict[bytes, SchemaInfo]]:
    current: dict[str, SchemaInfo] = {}
    by_fp: dict[bytes, SchemaInfo] = {}
    for path in sorted(AVRO_DIR.glob("*.avsc")):
        info = _load(path)
        by_fp[info.fingerprint] = info
        if info.current:
            current[info.name] = info
    return current, by_fp


def schema_info(name: str) -> SchemaInfo:
    """The current version of the record schema called ``name``."""
    try:
        return _catalog()[0][name]
    except KeyError as exc:
        raise SchemaError(f"unknown schema {name!r}") from exc


def record_name(payload: bytes) -> str:
    """The record name a single-object encoded payload was written with."""
    if payload[:2] != SINGLE_OBJECT_MARKER or len(payload) < 10:
        raise SchemaError("not an Avro single-object encoded message", payload)
    info = _catalog()[1].get(payload[2:10])
    if info is None:
        raise SchemaError("unknown schema fingerprint " + payload[2:10].hex(), payload)
    return info.name


class Codec:
    """Encodes and decodes leadstream messages; one per process."""

    def __init__(self, schema_registry_url: str | None = None) -> None:
        self._registry: Any = None
        self._registry_ids: dict[tuple[str, str], int] = {}
        self._registry_writers: dict[int, Any] = {}
        if schema_registry_url:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._registry = SchemaRegistryClient({"url": schema_registry_url})

    # ---- encode ---------------------------------------------------------------------
    def encode(self, name: str, record: Record, *, subject: str | None = None) -> bytes:
        """Serialise ``record`` with the current ``name`` schema.

        Raises SchemaError (with no raw bytes: there are none yet) when the record
        does not fit the schema.
        """
        info = schema_info(name)
        buf = io.BytesIO()
        if self._registry is not None:
            buf.write(CONFLUENT_MAGIC + struct.pack(">I", self._registry_id(info, subject or name)))
        else:
            buf.write(SINGLE_OBJECT_MARKER + info.fingerprint)
        try:
            fastavro.schemaless_writer(buf, info.parsed, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise SchemaError(f"{name} record does not fit its schema: {exc}") from exc
        return buf.getvalue()

    def encode_with(self, info: SchemaInfo, record: Record) -> bytes:
        """Serialise with a specific (possibly older) schema version; for tests and tools."""
        buf = io.BytesIO()
        buf.write(SINGLE_OBJECT_MARKER + info.fingerprint)
        fastavro.schemaless_writer(buf, info.parsed, record)
        return buf.getvalue()

    # ---- decode ---------------------------------------------------------------------
    def decode(self, payload: bytes, expect: str | None = None) -> tuple[str, Record]:
        """Return (record name, record) read into the current version of its schema."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise SchemaError("payload is not bytes")
        payload = bytes(payload)
        if payload[:1] == CONFLUENT_MAGIC and self._registry is not None:
            return self._decode_registry(payload, expect)
        name = record_name(payload)
        writer = _catalog()[1][payload[2:10]]
        reader = schema_info(name)
        if expect is not None and name != expect:
            raise SchemaError(f"expected {expect}, got {name}", payload)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(payload[10:]),
                writer.parsed,
                reader.parsed if reader is not writer else None,
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise SchemaError(f"corrupt {name} body: {exc}", payload) from exc
        assert isinstance(record, dict)
        return name, record

    def _registry_id(self, info: SchemaInfo, subject: str) -> int:
        key = (info.name, subject)
        if key not in self._registry_ids:
            from confluent_kafka.schema_registry import Schema

            schema = Schema(json.dumps(info.raw), "AVRO")
            self._registry_ids[key] = self._registry.register_schema(f"{subject}-value", schema)
        return self._registry_ids[key]

    def _decode_registry(self, payload: bytes, expect: str | None) -> tuple[str, Record]:
        if len(payload) < 5:
            raise SchemaError("truncated Confluent wire-format message", payload)
        schema_id = struct.unpack(">I", payload[1:5])[0]
        if schema_id not in self._registry_writers:
            schema = self._registry.get_schema(schema_id)
            raw = json.loads(schema.schema_str)
            self._registry_writers[schema_id] = (raw["name"], parse_schema(_strip_logical(raw)))
        name, writer = self._registry_writers[schema_id]
        if expect is not None and name != expect:
            raise SchemaError(f"expected {expect}, got {name}", payload)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(payload[5:]), writer, schema_info(name).parsed
            )
        except Exception as exc:
            raise SchemaError(f"corrupt {name} body: {exc}", payload) from exc
        assert isinstance(record, dict)
        return name, record


@lru_cache(maxsize=4)
def get_codec(schema_registry_url: str | None = None) -> Codec:
    """A shared codec for ``schema_registry_url`` (None: single-object encoding)."""
    return Codec(schema_registry_url)


def encode(name: str, record: Record) -> bytes:
    """Single-object encode with the default codec."""
    return get_codec().encode(name, record)


def decode(payload: bytes, expect: str | None = None) -> tuple[str, Record]:
    """Decode with the default codec."""
    return get_codec().decode(payload, expect)
