"""Names every stage shares: the marketing parameters of a touch and the touch groups.

The collector reads these parameters off URLs and forms, the worker classifies them
and the demo generates them; defining them once here keeps the three in step.
Touch types themselves are the ``TouchType`` enum of ``Touch.avsc`` and are read
from it (``schemas.vocabulary.TOUCH_TYPES``).
"""

from __future__ import annotations

import time

__all__ = ["CLICK_IDS", "MARKETING_PARAMS", "OUTBOUND_TYPES", "UTM_FIELDS", "now_ms"]

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
#: Ad-platform click ids, in the order the classifier prefers them when several are set.
CLICK_IDS = ("gclid", "fbclid", "msclkid", "li_fat_id", "ttclid")
#: Every URL parameter that says where a visit came from.
MARKETING_PARAMS = (*UTM_FIELDS, *CLICK_IDS)
#: Touches a rep makes: they engage a contact but never make one a lead (lead method).
OUTBOUND_TYPES = frozenset({"outbound_call", "outbound_email"})


def now_ms() -> int:
    """Current UTC time in epoch milliseconds, the unit of every event time."""
    return time.time_ns() // 1_000_000
