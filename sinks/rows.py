"""Enriched records -> ClickHouse rows: each sink table's columns and converter, by record.

The one place that knows a table's row layout (contact versions, which also carry the
state they replace, have theirs in :mod:`sinks.contact_rows`). The converters are pure
functions from the decoded Avro dicts (timestamps as epoch milliseconds, which
DateTime64(3) columns take as-is) to row tuples, so the sink's delivery code does not
know the record shapes and unit tests need nothing running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sinks.contact_rows import CONTACT_COLUMNS, contact_row

__all__ = ["BY_TABLE", "TABLES", "TableSpec"]

Record = dict[str, Any]


def _s(value: Any) -> str:
    """Optional string -> '' (the String columns that join and group prefer non-null)."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class TableSpec:
    """One sink table: its columns and how a record becomes a row."""

    table: str
    columns: tuple[str, ...]
    convert: Callable[[Record], tuple[Any, ...]]


_TOUCH_COLS = ("event_id", "event_time", "received_at", "processed_at", "anonymous_id", "contact_id",
               "touch_type", "url", "referrer", "utm_source", "utm_medium", "utm_campaign", "click_id_type",
               "channel", "source", "detail", "rule", "taxonomy_version", "is_bot", "sequence")


def _touch(r: Record) -> tuple[Any, ...]:
    return (
        r["event_id"], r["event_time"], r["received_at"], r["processed_at"], _s(r.get("anonymous_id")),
        _s(r.get("contact_id")), r["touch_type"], _s(r.get("url")), _s(r.get("referrer")),
        _s(r.get("utm_source")), _s(r.get("utm_medium")), _s(r.get("utm_campaign")), _s(r.get("click_id_type")),
        r["channel"], r["source"], r.get("detail") or "", r.get("rule") or "", r.get("taxonomy_version") or "",
        bool(r.get("is_bot")), int(r.get("sequence") or 0),
    )


_DEAL_COLS = ("deal_id", "stamp_version", "version", "event_time", "change", "status", "stage", "amount",
              "currency", "owner", "pipeline", "close_reason", "source_system", "primary_contact_id",
              "contact_ids", "created_at", "closed_at", "lead_channel", "lead_source", "lead_detail",
              "contact_source", "first_touch_time", "first_touch_event_id", "prev_status", "prev_amount",
              "prev_lead_channel", "prev_lead_source", "prev_lead_detail")


def _deal(r: Record) -> tuple[Any, ...]:
    return (
        r["deal_id"], r["stamp_version"], r["version"], r["event_time"], r["change"], r["status"],
        r.get("stage"), r.get("amount"), r.get("currency") or "USD", r.get("owner"), r.get("pipeline"),
        r.get("close_reason"), r.get("source_system"), r["primary_contact_id"], list(r.get("contact_ids") or []),
        r.get("created_at"), r.get("closed_at"), r.get("lead_channel") or "Unknown",
        r.get("lead_source") or "Unknown", r.get("lead_detail") or "", r.get("contact_source"),
        r.get("first_touch_time"), r.get("first_touch_event_id"), r.get("prev_status"), r.get("prev_amount"),
        r.get("prev_lead_channel"), r.get("prev_lead_source"), r.get("prev_lead_detail"),
    )


_LINK_COLS = ("anonymous_id", "contact_id", "canonical_contact_id", "version", "event_time")


def _link(r: Record) -> tuple[Any, ...]:
    return (r["anonymous_id"], r["contact_id"], r["canonical_contact_id"], r["version"], r["event_time"])


_DEAD_COLS = ("event_id", "failed_at", "stage", "reason", "detail", "origin", "origin_topic", "origin_partition",
              "origin_offset", "payload", "payload_truncated")


def _dead(r: Record) -> tuple[Any, ...]:
    payload = r.get("payload") or b""
    return (
        r["event_id"], r["failed_at"], r["stage"], r["reason"], r.get("detail"), r["origin"],
        r.get("origin_topic"), r.get("origin_partition"), r.get("origin_offset"),
        payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload),
        bool(r.get("payload_truncated")),
    )


_SPEND_COLS = ("event_id", "day", "received_at", "channel", "source", "campaign", "amount", "currency",
               "source_system")


def _spend(r: Record) -> tuple[Any, ...]:
    return (r["event_id"], _day(r["event_time"]), r["received_at"], r["channel"], r.get("source") or "",
            r.get("campaign") or "", float(r["amount"]), r.get("currency") or "USD", r.get("source_system"))


_RATE_COLS = ("currency", "day", "rate", "received_at", "event_id")


def _rate(r: Record) -> tuple[Any, ...]:
    return (r["currency"], _day(r["event_time"]), float(r["rate"]), r["received_at"], r["event_id"])


def _day(value: Any) -> date:
    """The UTC date of an event time (epoch ms or a datetime, as the codec gives it)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    return datetime.fromtimestamp(int(value) / 1000, UTC).date()


#: Record name -> the table it lands in.
TABLES: dict[str, TableSpec] = {
    "EnrichedTouch": TableSpec("touches", _TOUCH_COLS, _touch),
    "ContactVersion": TableSpec("contact_versions", CONTACT_COLUMNS, contact_row),
    "EnrichedDeal": TableSpec("deal_versions", _DEAL_COLS, _deal),
    "IdentityLink": TableSpec("identity_links", _LINK_COLS, _link),
    "DeadLetter": TableSpec("dead_letters", _DEAD_COLS, _dead),
    "Spend": TableSpec("spend", _SPEND_COLS, _spend),
    "FxRate": TableSpec("fx_rates", _RATE_COLS, _rate),
}

#: Table name -> its spec (the sink inserts per table).
BY_TABLE: dict[str, TableSpec] = {spec.table: spec for spec in TABLES.values()}
