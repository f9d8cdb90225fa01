"""Placeholder channel taxonomy with the contract of the real one (replaced on merge).

Classifies a touch from utm_source / utm_medium and the touch type into
channel › source › detail; everything else is Direct.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Classification", "Taxonomy", "load_taxonomy"]

_MEDIUM = {
    "cpc": "Paid Search",
    "ppc": "Paid Search",
    "paid_social": "Paid Social",
    "social": "Organic Social",
    "email": "Email",
    "referral": "Referral",
    "display": "Display",
    "affiliate": "Affiliate",
}
_TYPES = {
    "outbound_call": "Outbound",
    "outbound_email": "Outbound",
    "event_scan": "Events",
    "webinar_attended": "Webinar",
    "direct_mail_response": "Direct mail",
    "inbound_call": "Phone",
}


class Classification(NamedTuple):
    channel: str
    source: str
    detail: str
    rule: str
    version: str
    raw_source: str | None
    raw_medium: str | None


class Taxonomy:
    version = "stub-1"

    def classify(self, touch: Mapping[str, Any]) -> Classification:
        src = (touch.get("utm_source") or "").strip().lower() or None
        med = (touch.get("utm_medium") or "").strip().lower() or None
        det = (touch.get("utm_campaign") or "").strip().lower()
        ttype = touch.get("touch_type") or ""
        if ttype in _TYPES:
            return Classification(_TYPES[ttype], src or ttype, det, "type", self.version, src, med)
        if med in _MEDIUM:
            return Classification(_MEDIUM[med], src or "unknown", det, "medium", self.version, src, med)
        if src:
            return Classification("Referral", src, det, "source", self.version, src, med)
        return Classification("Direct", "direct", "", "default", self.version, src, med)


def load_taxonomy(path: Path | str | None = None, site_domains: Iterable[str] = ()) -> Taxonomy:
    return Taxonomy()
