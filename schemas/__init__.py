"""Shared vocabulary of leadstream: Avro schemas, topic names, encode/decode.

Every other package depends on this one; it depends on none of them.
"""

from schemas.codec import Codec, SchemaInfo, crc64_avro, decode, encode, get_codec, schema_info
from schemas.topics import ENRICHED_TOPICS, RAW_TOPICS, TOPIC_RECORDS, Topics

__all__ = [
    "ENRICHED_TOPICS",
    "RAW_TOPICS",
    "TOPIC_RECORDS",
    "Codec",
    "SchemaInfo",
    "Topics",
    "crc64_avro",
    "decode",
    "encode",
    "get_codec",
    "schema_info",
]
