"""Avro schemas of every leadstream message and their encode/decode.

Sits on the ground (``ground``) and under the stages: it imports nothing of the
project but ``ground``.
"""

from schemas.codec import Codec, SchemaInfo, crc64_avro, decode, encode, get_codec, schema_info
from schemas.vocabulary import TOUCH_TYPES

__all__ = ["TOUCH_TYPES", "Codec", "SchemaInfo", "crc64_avro", "decode", "encode", "get_codec",
           "schema_info"]
