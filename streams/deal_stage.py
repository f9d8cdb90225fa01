"""The deal stage: deal changes and the stamps of their contacts (table ``deal``).

Where it sits: third stage, reading the raw ``deals`` topic and the internal
``deal-events`` topic (stamps sent by streams/contact_stage.py), both keyed by deal
id. It keeps each deal's latest state and the lead source of its current primary
contact, and emits ``enriched-deals`` whenever what a report reads changes.
"""

from __future__ import annotations

from typing import Any

from faust.types import EventT

from streams import state as S
from streams.delivery import Batch
from streams.messages import ContactEventKind, enriched_deal
from streams.stage import Item, Stage

__all__ = ["DealStage"]


class DealStage(Stage):
    """Deals: their stage, amount and outcome, credited to their contact's lead source."""

    name = "deal"
    records = frozenset({"DealChange", "DealStamp"})

    def route(self, batch: Batch, event: EventT, name: str, rec: dict[str, Any]) -> str | None:
        if not rec.get("deal_id") or (name == "DealChange" and not rec.get("primary_contact_id")):
            self.dead_letter(batch, event, f"{name} without deal_id or primary_contact_id")
            return None
        return str(rec["deal_id"])

    def fold(self, batch: Batch, key: bytes, items: list[Item]) -> None:
        deal = self.read(key, items[-1][0]) or S.new_deal(key.decode())
        for event, name, rec in items:
            try:
                if name == "DealChange":
                    S.deal_change(deal, rec)
                    # Every change re-announces the deal to its primary contact, which
                    # answers with a stamp; cheap, and robust to replays.
                    primary = rec["primary_contact_id"]
                    self.to_contact(batch, ContactEventKind.DEAL_LINK, primary, rec["event_id"],
                                    int(rec["event_time"]), deal_id=rec["deal_id"], for_contact=primary)
                else:
                    S.stamp_merge(deal, rec["for_contact"], rec["first"], rec["csrc"])
            except Exception as exc:
                self.dead_letter(batch, event, f"{type(exc).__name__}: {exc}")
        self._emit_deal(batch, deal)
        batch.write(self.table, key, deal, items[-1][0])

    def _emit_deal(self, batch: Batch, deal: dict[str, Any]) -> None:
        view = S.deal_view(deal)
        if view is None or view == deal["emitted"]:
            return
        prev = deal["emitted"] or {}
        deal["stamp_version"] = S.next_version(deal["stamp_version"])
        deal["emitted"] = view
        self.emit(batch, self.topics.enriched_deals, view["deal_id"], "EnrichedDeal",
                  enriched_deal(view, deal["stamp_version"], prev))
