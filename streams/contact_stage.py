"""The contact stage: contact changes and the worker's contact events (table ``contact``).

Where it sits: second stage, reading the raw ``contacts`` topic and the internal
``contact-events`` topic (streams/messages.py), both keyed by contact id. It keeps
each contact's first touch, creation time, contact source, lead method, engagement,
anonymous ids, merges (state forwarded to the survivor, a pointer kept) and deals,
and emits ``enriched-contacts`` and ``identity-map``; it sends the lead-source stamp
of each of its deals to ``deal-events`` (streams/deal_stage.py).
"""

from __future__ import annotations

from typing import Any

from faust.types import EventT

from streams import state as S
from streams.delivery import Batch
from streams.messages import ContactEventKind, contact_facts, contact_version, deal_stamp, identity_link
from streams.stage import Item, Stage

__all__ = ["MAX_HOPS", "ContactStage"]

#: Merge chains longer than this are treated as a cycle and dead-lettered.
MAX_HOPS = 64


class ContactStage(Stage):
    """Contacts: what they are, where they came from, who they were merged into."""

    name = "contact"
    records = frozenset({"ContactChange", "ContactEvent"})

    def route(self, batch: Batch, event: EventT, name: str, rec: dict[str, Any]) -> str | None:
        if not rec.get("contact_id"):
            self.dead_letter(batch, event, f"{name} without contact_id")
            return None
        return str(rec["contact_id"])

    def fold(self, batch: Batch, key: bytes, items: list[Item]) -> None:
        try:
            self._fold(batch, key, items)
        except Exception as exc:
            for event, _, _ in items:
                self.dead_letter(batch, event, f"{type(exc).__name__}: {exc}")

    def _fold(self, batch: Batch, key: bytes, items: list[Item]) -> None:
        contact_id = key.decode()
        half_life = self.ctx.half_life
        st = self.read(key, items[-1][0]) or S.new_contact(contact_id)
        before_stamp = S.stamp_of(st)
        before_anons = set(st["anons"])
        new_deals: set[str] = set()
        links: dict[str, str] = {}  # new anon -> contact the identify named
        hints: list[str] = []
        was_merged = st["merged_into"] is not None
        for event, name, rec in items:
            try:
                if st["merged_into"] is not None:
                    self._forward(batch, event, st, name, rec)
                    continue
                if name == "ContactChange":
                    self._contact_change(batch, st, rec, hints)
                    continue
                kind = rec["kind"]
                if kind == ContactEventKind.TOUCH:
                    S.contact_touch(st, rec["touch"], half_life)
                elif kind == ContactEventKind.IDENTIFIED:
                    anon = rec["anonymous_id"]
                    S.contact_identified(st, anon, int(rec["event_time"]), rec["touch"], outbound=rec["outbound"],
                                         anon_eng=rec["engagement"])
                    if anon not in before_anons:
                        links[anon] = rec["for_contact"] or contact_id
                    hints.append("identify")
                elif kind == ContactEventKind.STATE:
                    other = rec["state"]
                    if other["id"] != contact_id:
                        S.merge_contact(st, other)
                        for anon in other["anons"]:
                            links.setdefault(anon, other["id"])
                        new_deals.update(other["deals"])
                        hints.append("merge")
                elif kind == ContactEventKind.DEAL_LINK:
                    st["deals"][rec["deal_id"]] = rec["for_contact"]
                    new_deals.add(rec["deal_id"])
                    hints.append("deal")
                elif kind == ContactEventKind.CHANGE:
                    facts = rec["change"]
                    S.contact_change(st, {**facts, "change": facts["change"] if facts["change"] != "merge"
                                          else "updated"})
                    hints.append("contact_change")
            except Exception as exc:
                self.dead_letter(batch, event, f"{type(exc).__name__}: {exc}")
        # Emit what changed: the contact version, new identity links, deal stamps.
        view = S.contact_view(st, half_life)
        if view != st["view"] and not (was_merged and st["view"] is not None):
            reason = S.change_reason(st["view"], view, hints)
            st["version"] = S.next_version(st["version"])
            st["view"] = view
            self.emit(batch, self.topics.enriched_contacts, contact_id, "ContactVersion",
                      contact_version(view, st["version"], st["last_time"], reason))
        if st["merged_into"] is None:
            for anon, named in links.items():
                self.emit(batch, self.topics.identity_map, anon, "IdentityLink",
                          identity_link(anon, named, contact_id, S.next_version(0), st["last_time"]))
            stamp = S.stamp_of(st)
            deals = st["deals"] if stamp != before_stamp else {d: st["deals"][d] for d in new_deals}
            for deal_id, named in deals.items():
                self.emit(batch, self.topics.name("deal-events"), deal_id, "DealStamp",
                          deal_stamp(deal_id, named, contact_id, st["last_time"], stamp))
        batch.write(self.table, key, st, items[-1][0])

    def _contact_change(self, batch: Batch, st: dict[str, Any], rec: dict[str, Any], hints: list[str]) -> None:
        S.contact_change(st, rec)
        hints.append("contact_change")
        target = rec.get("merged_into")
        if rec.get("change") == "merge" and target and target != st["id"]:
            st["merged_into"] = target
            self._send_state(batch, st, rec["event_id"], int(rec["event_time"]))

    def _send_state(self, batch: Batch, st: dict[str, Any], event_id: str, event_time: int, hops: int = 0) -> None:
        self.to_contact(batch, ContactEventKind.STATE, st["merged_into"], event_id, event_time, hops=hops,
                        state=S.portable(st, self.ctx.half_life))

    def _forward(self, batch: Batch, event: EventT, st: dict[str, Any], name: str, rec: dict[str, Any]) -> None:
        """An event for a merged-away contact goes to its survivor (transitively)."""
        target = st["merged_into"]
        hops = int(rec.get("hops") or 0) + 1
        if hops > MAX_HOPS:
            self.dead_letter(batch, event, f"merge chain longer than {MAX_HOPS} at {st['id']}")
            return
        if name == "ContactChange":
            if rec.get("change") == "merge":
                # A repeated merge of this contact: hand the state over again (idempotent).
                self._send_state(batch, st, rec["event_id"], int(rec["event_time"]), hops)
                return
            self.to_contact(batch, ContactEventKind.CHANGE, target, rec["event_id"], int(rec["event_time"]),
                            hops=hops, change=contact_facts(rec))
            return
        fwd = {**rec, "contact_id": target, "hops": hops}
        self.emit(batch, self.topics.name("contact-events"), target, "ContactEvent", fwd)
