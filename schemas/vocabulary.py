"""Enumerations whose one definition is an Avro schema.

``TOUCH_TYPES`` is the ``TouchType`` enum of ``Touch.avsc``: a new touch type is
added to the schema (a compatible evolution) and every stage sees it.
"""

from __future__ import annotations

from schemas.codec import schema_info

__all__ = ["TOUCH_TYPES"]


def _enum_symbols(record: str, field: str) -> tuple[str, ...]:
    for spec in schema_info(record).raw["fields"]:
        if spec["name"] == field:
            return tuple(spec["type"]["symbols"])
    raise LookupError(f"{record}.avsc has no enum field {field!r}")


TOUCH_TYPES = _enum_symbols("Touch", "touch_type")
