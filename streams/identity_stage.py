"""The identity stage: touches and identifies, keyed by anonymous id (table ``anon``).

Where it sits: first stage of the worker, reading the raw ``touches`` and
``identities`` topics. It classifies every touch (streams/taxonomy.py) and emits it to
``enriched-touches``, resolved to the anonymous id's contact when one is known. It
forwards to the contact stage (streams/contact_stage.py) what a contact needs: every
touch of a linked anonymous id, every touch that names its contact, and on an
identify the anonymous id's earliest touch, outbound touches and engagement summary.
"""

from __future__ import annotations

from typing import Any

from faust.types import EventT

from streams import state as S
from streams.delivery import Batch
from streams.messages import ContactEventKind, enriched_touch, touch_ref
from streams.stage import Item, Stage
from streams.taxonomy import Classification

__all__ = ["IdentityStage"]


class IdentityStage(Stage):
    """Anonymous visitors: their touches, and the contacts they were identified as."""

    name = "identity"
    records = frozenset({"Touch", "Identify"})

    def route(self, batch: Batch, event: EventT, name: str, rec: dict[str, Any]) -> str | None:
        anon = rec.get("anonymous_id")
        if name == "Touch" and not anon:
            self._contact_touch(batch, event, rec)
            return None
        return str(anon)

    def fold(self, batch: Batch, key: bytes, items: list[Item]) -> None:
        last = items[-1][0]
        anon_state = self.read(key, last) or S.new_anon()
        for event, name, rec in items:
            try:
                if name == "Touch":
                    self._anon_touch(batch, anon_state, rec)
                else:
                    self._identify(batch, anon_state, rec)
            except Exception as exc:
                self.dead_letter(batch, event, f"{type(exc).__name__}: {exc}")
        batch.write(self.table, key, anon_state, last)

    def _classify(self, touch: dict[str, Any]) -> Classification:
        return self.ctx.taxonomy.classify(touch)

    def _enriched(self, batch: Batch, touch: dict[str, Any], cls: Classification, contact_id: str | None,
                  seq: int) -> None:
        self.emit(batch, self.topics.enriched_touches, contact_id or touch.get("anonymous_id"),
                  "EnrichedTouch", enriched_touch(touch, cls, contact_id, seq))

    def _contact_touch(self, batch: Batch, event: EventT, touch: dict[str, Any]) -> None:
        """A touch without anonymous id: it must name its contact."""
        try:
            contact_id = touch.get("contact_id")
            if not contact_id:
                self.dead_letter(batch, event, "touch has neither anonymous_id nor contact_id")
                return
            cls = self._classify(touch)
            self._enriched(batch, touch, cls, contact_id, 0)
            ref = touch_ref(touch, cls)
            self.to_contact(batch, ContactEventKind.TOUCH, contact_id, ref["id"], ref["t"], touch=ref)
        except Exception as exc:
            self.dead_letter(batch, event, f"{type(exc).__name__}: {exc}")

    def _anon_touch(self, batch: Batch, anon: dict[str, Any], touch: dict[str, Any]) -> None:
        cls = self._classify(touch)
        ref = touch_ref(touch, cls)
        S.anon_touch(anon, dict(ref), self.ctx.half_life)
        named = touch.get("contact_id")
        targets = list(anon["contacts"])
        if named and named not in targets:
            targets.append(named)
        resolved = named or (anon["contacts"][0] if anon["contacts"] else None)
        self._enriched(batch, touch, cls, resolved, anon["seq"])
        for contact_id in targets:
            self.to_contact(batch, ContactEventKind.TOUCH, contact_id, ref["id"], ref["t"], touch=ref)

    def _identify(self, batch: Batch, anon: dict[str, Any], ident: dict[str, Any]) -> None:
        contact_id = ident["contact_id"]
        if not contact_id:
            raise ValueError("identify without contact_id")
        S.anon_link(anon, contact_id)
        # Always forwarded (not only on a new link): the contact folds it idempotently,
        # and a replay after a crash must not lose the history it carries.
        self.to_contact(batch, ContactEventKind.IDENTIFIED, contact_id, ident["event_id"],
                        int(ident["event_time"]), anonymous_id=ident["anonymous_id"], touch=anon["first"],
                        outbound=list(anon["outbound"]), engagement=anon["eng"], for_contact=contact_id)
