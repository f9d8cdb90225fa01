"""Complete raw records for hand-made test datasets (every schema field present).

Tests that pin a definition on three or four events build them here, so the records are
the same shape as the generator's and as the producers' (each one encodes with
``schemas.codec.encode``). Event ids are readable uuids: ``eid(3)`` sorts before ``eid(10)``.
"""

from __future__ import annotations

from tests.oracle.generator import DAY_MS, START_MS, Record

__all__ = ["contact_change", "day", "deal_change", "eid", "identify", "touch"]


def eid(n: int) -> str:
    """A valid uuid4 string whose order follows n (ties on event_time break by it)."""
    return f"00000000-0000-4000-8000-{n:012d}"


def day(d: float) -> int:
    """Epoch ms of START_MS + d days: hand-made timelines read in days."""
    return START_MS + int(d * DAY_MS)


def touch(
    n: int, t: int, *, anonymous_id: str | None = None, contact_id: str | None = None,
    touch_type: str = "page_view", utm_source: str | None = None, utm_medium: str | None = None,
    utm_campaign: str | None = None, referrer: str | None = None,
) -> Record:
    return {
        "event_id": eid(n), "event_time": t, "received_at": t, "anonymous_id": anonymous_id,
        "contact_id": contact_id, "touch_type": touch_type, "url": None, "referrer": referrer,
        "utm_source": utm_source, "utm_medium": utm_medium, "utm_campaign": utm_campaign,
        "utm_term": None, "utm_content": None, "gclid": None, "fbclid": None, "msclkid": None,
        "li_fat_id": None, "ttclid": None, "user_agent": None, "page_title": None, "is_bot": False,
        "properties": {},
    }


def identify(n: int, t: int, anonymous_id: str, contact_id: str) -> Record:
    return {
        "event_id": eid(n), "event_time": t, "received_at": t, "anonymous_id": anonymous_id,
        "contact_id": contact_id, "email_sha256": None, "traits": {}, "source_system": None,
    }


def contact_change(
    n: int, t: int, contact_id: str, change: str = "updated", *, contact_source: str | None = None,
    merged_into: str | None = None, lifecycle_stage: str | None = None,
) -> Record:
    return {
        "event_id": eid(n), "event_time": t, "received_at": t, "contact_id": contact_id, "change": change,
        "contact_source": contact_source, "owner": None, "lifecycle_stage": lifecycle_stage,
        "merged_into": merged_into, "email_sha256": None, "source_system": None, "properties": {},
    }


def deal_change(  # noqa: PLR0917 - hand-written event tables read best positionally
    n: int, t: int, deal_id: str, change: str, version: int, primary: str, *,
    amount: float | None = None, contact_ids: list[str] | None = None,
) -> Record:
    return {
        "event_id": eid(n), "event_time": t, "received_at": t, "deal_id": deal_id, "change": change,
        "stage": None, "amount": amount, "currency": "USD", "owner": None, "primary_contact_id": primary,
        "contact_ids": contact_ids if contact_ids is not None else [primary], "pipeline": None,
        "close_reason": None, "source_system": None, "version": version,
    }
