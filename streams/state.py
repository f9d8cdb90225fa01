"""Pure state logic of the stream worker: no Kafka, no Faust, only dicts in and out.

Where it sits: the stages (streams/identity_stage.py, contact_stage.py,
deal_stage.py) decode events, call the functions here to fold them into the per-key
state kept in Faust tables, and publish what these functions return. Keeping it pure
makes the rules unit-testable and keeps the stages thin.

Every state here is a join-semilattice: each fold is a ``min`` (first touch, contact
creation time, contact source), a ``max`` (latest owner / lifecycle stage, latest deal
version) or a set union (anonymous ids, merged ids, outbound touches, deals). Folding
the same event twice, or two events in either order, gives the same state, which is
what makes at-least-once delivery, duplicates, out-of-order arrival and merges safe
(docs/architecture.md, "Decisions").

The module is longer than most (past 400 lines) because the three states share their
lattice helpers (earliest/latest refs, engagement) and obey one set of laws, tested
together (tests/unit/streams); split per state, the helpers would become a public API
of their own with no second reader.

States are plain JSON-able dicts because they are the values of Faust tables (and so
of their changelog topics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ground.vocabulary import OUTBOUND_TYPES

__all__ = [
    "State",
    "TouchRef",
    "anon_link",
    "anon_touch",
    "change_reason",
    "contact_change",
    "contact_identified",
    "contact_touch",
    "contact_view",
    "deal_change",
    "deal_order",
    "deal_view",
    "eng_add",
    "eng_combine",
    "eng_new",
    "lead_method",
    "merge_contact",
    "new_anon",
    "new_contact",
    "new_deal",
    "next_version",
    "portable",
    "stamp_merge",
    "stamp_of",
    "touch_key",
]

#: How many recent direct touch ids a contact remembers to drop duplicates cheaply.
RECENT_IDS = 64
MS_PER_DAY = 86_400_000

State = dict[str, Any]
TouchRef = dict[str, Any]  # {id, t, type, ch, src, det}: see streams/messages.TouchRef


def touch_key(ref: Mapping[str, Any]) -> tuple[int, str]:
    """The order of touches and changes: (event_time, event_id)."""
    return (int(ref["t"]), str(ref["id"]))


def _min_ref(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a if touch_key(a) <= touch_key(b) else b


def _max_ref(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a if touch_key(a) >= touch_key(b) else b


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def next_version(prev: int) -> int:
    """A version strictly greater than ``prev`` and close to wall-clock microseconds.

    Time-based so that a version emitted after a restart (state recovered, maybe a
    little behind) still sorts after everything emitted before it.
    """
    return max(prev + 1, time.time_ns() // 1000)


# ---- engagement -------------------------------------------------------------------
# score = sum over touches of 2^(-(score_at - t) / half_life), i.e. the recency-weighted
# touch count as of ``score_at`` (the latest touch time). A reader decays it to "now"
# by multiplying with 2^(-(now - score_at) / half_life).


def eng_new() -> State:
    return {"count": 0, "by_channel": {}, "first_seen": None, "last_seen": None,
            "last_channel": None, "last_id": None, "score": 0.0, "score_at": None}


def _decay(score: float, dt_ms: int, half_life_days: float) -> float:
    return score * math.pow(2.0, -dt_ms / (half_life_days * MS_PER_DAY))


def eng_add(eng: State, ref: Mapping[str, Any], half_life_days: float) -> None:
    """Count one touch into an engagement summary (in place)."""
    t = int(ref["t"])
    eng["count"] += 1
    eng["by_channel"][ref["ch"]] = eng["by_channel"].get(ref["ch"], 0) + 1
    eng["first_seen"] = t if eng["first_seen"] is None else min(eng["first_seen"], t)
    last = eng["last_seen"]
    if last is None or (t, ref["id"]) >= (last, eng["last_id"] or ""):
        eng["last_seen"], eng["last_id"], eng["last_channel"] = t, ref["id"], ref["ch"]
    at = eng["score_at"]
    if at is None:
        eng["score"], eng["score_at"] = 1.0, t
    elif t >= at:
        eng["score"] = _decay(eng["score"], t - at, half_life_days) + 1.0
        eng["score_at"] = t
    else:
        eng["score"] += _decay(1.0, at - t, half_life_days)


def eng_combine(parts: Iterable[Mapping[str, Any]], half_life_days: float) -> State:
    """Sum several engagement summaries into one (a new dict)."""
    out = eng_new()
    for p in parts:
        if not p or not p["count"]:
            continue
        out["count"] += p["count"]
        for ch, n in p["by_channel"].items():
            out["by_channel"][ch] = out["by_channel"].get(ch, 0) + n
        out["first_seen"] = _min_opt(out["first_seen"], p["first_seen"])
        if out["last_seen"] is None or (p["last_seen"], p["last_id"] or "") > (out["last_seen"], out["last_id"] or ""):
            out["last_seen"], out["last_id"], out["last_channel"] = p["last_seen"], p["last_id"], p["last_channel"]
        if out["score_at"] is None:
            out["score"], out["score_at"] = p["score"], p["score_at"]
        else:
            at = max(out["score_at"], p["score_at"])
            out["score"] = (_decay(out["score"], at - out["score_at"], half_life_days)
                            + _decay(p["score"], at - p["score_at"], half_life_days))
            out["score_at"] = at
    return out


# ---- identity stage (keyed by anonymous id) -----------------------------------------


def new_anon() -> State:
    """What the identity stage knows of one anonymous id."""
    return {"contacts": [], "first": None, "outbound": [], "eng": eng_new(), "seq": 0}


def anon_touch(anon: State, ref: TouchRef, half_life_days: float) -> None:
    """Remember a touch of this anonymous id (earliest touch, outbound touches, summary)."""
    anon["seq"] += 1
    anon["first"] = _min_ref(anon["first"], ref)
    if ref["type"] in OUTBOUND_TYPES and all(o["id"] != ref["id"] for o in anon["outbound"]):
        anon["outbound"].append(ref)
    eng_add(anon["eng"], ref, half_life_days)


def anon_link(anon: State, contact_id: str) -> bool:
    """Link the anonymous id to a contact; True when the link is new."""
    if contact_id in anon["contacts"]:
        return False
    anon["contacts"].append(contact_id)
    return True


# ---- contact stage (keyed by contact id) ---------------------------------------------


def new_contact(contact_id: str) -> State:
    """What the contact stage knows of one contact (and everything merged into it)."""
    return {
        "id": contact_id,
        "merged_into": None,
        "first": None,            # earliest touch ref
        "created_at": None,       # min(first identify time, first created change time)
        "csrc": None,             # {id, t, value}: earliest ContactChange with a contact source
        "owner": None,            # {id, t, value}: latest ContactChange with an owner
        "stage": None,            # {id, t, value}: latest ContactChange with a lifecycle stage
        "stage_times": {},        # stage -> first time it was reached
        "outbound": [],           # outbound touch refs (lead method candidates)
        "anons": [],
        "merged": [],
        "deals": {},              # deal id -> contact id the deal names (its primary)
        "eng": {"self": eng_new()},  # engagement parts: own touches, anon histories, merged contacts
        "recent": [],             # recent direct touch ids (duplicate filter)
        "version": 0,
        "view": None,             # the derived view last emitted
        "last_time": 0,           # latest event time seen (the versions' event_time)
    }


def contact_touch(st: State, ref: TouchRef, half_life_days: float) -> None:
    """Fold one touch of the contact."""
    st["first"] = _min_ref(st["first"], ref)
    st["last_time"] = max(st["last_time"], int(ref["t"]))
    if ref["type"] in OUTBOUND_TYPES and all(o["id"] != ref["id"] for o in st["outbound"]):
        st["outbound"].append(ref)
    if ref["id"] in st["recent"]:
        return  # a duplicate we still remember: engagement counts it once
    st["recent"].append(ref["id"])
    del st["recent"][:-RECENT_IDS]
    eng_add(st["eng"]["self"], ref, half_life_days)


def contact_identified(st: State, anon_id: str, identify_time: int, first: TouchRef | None, *,
                       outbound: list[TouchRef], anon_eng: State | None) -> None:
    """An identify linked ``anon_id`` to this contact: fold in the anon's history."""
    st["created_at"] = _min_opt(st["created_at"], identify_time)
    st["last_time"] = max(st["last_time"], identify_time)
    if anon_id not in st["anons"]:
        st["anons"].append(anon_id)
    if first is not None:
        st["first"] = _min_ref(st["first"], first)
    for o in outbound:
        if all(x["id"] != o["id"] for x in st["outbound"]):
            st["outbound"].append(o)
    if anon_eng is not None:
        st["eng"][f"anon:{anon_id}"] = anon_eng  # replaced, never added: idempotent


def contact_change(st: State, change: Mapping[str, Any]) -> None:
    """Fold a ContactChange (not a merge: see :func:`merge_contact`)."""
    t, eid = int(change["event_time"]), str(change["event_id"])
    st["last_time"] = max(st["last_time"], t)
    if change.get("change") == "created":
        st["created_at"] = _min_opt(st["created_at"], t)
    if change.get("contact_source"):
        st["csrc"] = _min_ref(st["csrc"], {"id": eid, "t": t, "value": change["contact_source"]})
    if change.get("owner"):
        st["owner"] = _max_ref(st["owner"], {"id": eid, "t": t, "value": change["owner"]})
    stage = change.get("lifecycle_stage")
    if stage:
        st["stage"] = _max_ref(st["stage"], {"id": eid, "t": t, "value": stage})
        st["stage_times"][stage] = min(st["stage_times"].get(stage, t), t)


def portable(st: State, half_life_days: float) -> State:
    """The part of a contact's state another contact absorbs on merge."""
    return {
        "id": st["id"], "first": st["first"], "created_at": st["created_at"], "csrc": st["csrc"],
        "owner": st["owner"], "stage": st["stage"], "stage_times": st["stage_times"],
        "outbound": st["outbound"], "anons": st["anons"], "merged": st["merged"],
        "deals": st["deals"], "eng": eng_combine(st["eng"].values(), half_life_days),
        "last_time": st["last_time"],
    }


def merge_contact(st: State, other: Mapping[str, Any]) -> None:
    """Absorb another contact's portable state (commutative, idempotent)."""
    st["first"] = _min_ref(st["first"], other["first"])
    st["created_at"] = _min_opt(st["created_at"], other["created_at"])
    st["csrc"] = _min_ref(st["csrc"], other["csrc"])
    st["owner"] = _max_ref(st["owner"], other["owner"])
    st["stage"] = _max_ref(st["stage"], other["stage"])
    for stage, t in other["stage_times"].items():
        st["stage_times"][stage] = min(st["stage_times"].get(stage, t), t)
    for o in other["outbound"]:
        if all(x["id"] != o["id"] for x in st["outbound"]):
            st["outbound"].append(o)
    for a in other["anons"]:
        if a not in st["anons"]:
            st["anons"].append(a)
    for m in [other["id"], *other["merged"]]:
        if m not in st["merged"] and m != st["id"]:
            st["merged"].append(m)
    for deal_id, named in other["deals"].items():
        st["deals"].setdefault(deal_id, named)
    st["eng"][f"merged:{other['id']}"] = other["eng"]
    st["last_time"] = max(st["last_time"], other["last_time"])


def lead_method(st: Mapping[str, Any]) -> str | None:
    """Type of the earliest outbound touch at or after creation; None without creation."""
    created = st["created_at"]
    if created is None:
        return None
    candidates = [o for o in st["outbound"] if int(o["t"]) >= created]
    if not candidates:
        return None
    return str(min(candidates, key=touch_key)["type"])


def stamp_of(st: Mapping[str, Any]) -> State:
    """What a deal takes from its primary contact."""
    return {"first": st["first"], "csrc": st["csrc"]}


def contact_view(st: Mapping[str, Any], half_life_days: float) -> State:
    """The derived fields of a ContactVersion (without version, reason, event_time)."""
    first = st["first"]
    eng = eng_combine(st["eng"].values(), half_life_days)
    return {
        "contact_id": st["id"],
        "merged_into": st["merged_into"],
        "merged_contact_ids": sorted(st["merged"]),
        "anonymous_ids": sorted(st["anons"]),
        "created_at": st["created_at"],
        "first_touch_event_id": first["id"] if first else None,
        "first_touch_time": int(first["t"]) if first else None,
        "first_touch_type": first["type"] if first else None,
        "lead_channel": first["ch"] if first else "Unknown",
        "lead_source": first["src"] if first else "Unknown",
        "lead_detail": first["det"] if first else "",
        "contact_source": st["csrc"]["value"] if st["csrc"] else None,
        "owner": st["owner"]["value"] if st["owner"] else None,
        "lifecycle_stage": st["stage"]["value"] if st["stage"] else None,
        "stage_times": dict(st["stage_times"]),
        "lead_method": lead_method(st),
        "touch_count": eng["count"],
        "touches_by_channel": dict(eng["by_channel"]),
        "first_seen": eng["first_seen"],
        "last_seen": eng["last_seen"],
        "last_channel": eng["last_channel"],
        "engagement_score": round(float(eng["score"]), 6),
    }


#: When several things changed in one batch, the reason reported is the first of these.
REASON_ORDER = ("merged_away", "merge", "first_touch", "earlier_touch", "identify", "contact_change",
                "lead_method", "deal", "engagement")


def change_reason(prev: Mapping[str, Any] | None, view: Mapping[str, Any], hints: Iterable[str]) -> str:
    """Why the view changed: the most significant of the detected changes and hints."""
    found = set(hints)
    if prev is None:
        found.add("first_touch" if view["first_touch_event_id"] else "contact_change")
    else:
        if view["merged_into"] and not prev["merged_into"]:
            found.add("merged_away")
        if view["first_touch_event_id"] != prev["first_touch_event_id"]:
            found.add("earlier_touch" if prev["first_touch_event_id"] else "first_touch")
        if view["lead_method"] != prev["lead_method"]:
            found.add("lead_method")
        if (view["contact_source"], view["owner"], view["lifecycle_stage"], view["created_at"]) != (
                prev["contact_source"], prev["owner"], prev["lifecycle_stage"], prev["created_at"]):
            found.add("contact_change")
    for reason in REASON_ORDER:
        if reason in found:
            return reason
    return "engagement"


# ---- deal stage (keyed by deal id) ----------------------------------------------------


def new_deal(deal_id: str) -> State:
    return {"id": deal_id, "latest": None, "created_min": None, "any_min": None,
            "stamp": {"for": None, "first": None, "csrc": None},
            "stamp_version": 0, "emitted": None}


def deal_order(change: Mapping[str, Any]) -> tuple[int, int, str]:
    """The latest deal version is the max of (version, event_time); event_id breaks ties."""
    return (int(change.get("version") or 0), int(change["event_time"]), str(change["event_id"]))


DEAL_FIELDS = ("event_id", "event_time", "version", "change", "stage", "amount", "currency", "owner",
               "pipeline", "close_reason", "source_system", "primary_contact_id", "contact_ids")


def deal_change(deal: State, change: Mapping[str, Any]) -> None:
    """Fold a DealChange; a new primary contact resets the stamp (it was someone else's)."""
    t = int(change["event_time"])
    deal["any_min"] = _min_opt(deal["any_min"], t)
    if change.get("change") == "created":
        deal["created_min"] = _min_opt(deal["created_min"], t)
    latest = deal["latest"]
    if latest is None or deal_order(change) > deal_order(latest):
        deal["latest"] = {k: change.get(k) for k in DEAL_FIELDS}
        if deal["stamp"]["for"] != change["primary_contact_id"]:
            deal["stamp"] = {"for": change["primary_contact_id"], "first": None, "csrc": None}


def stamp_merge(deal: State, for_contact: str, first: TouchRef | None, csrc: Mapping[str, Any] | None) -> None:
    """Fold a stamp sent by the (canonical) contact of ``for_contact``.

    Stamps only ever move earlier as a contact absorbs more (merges, late touches),
    so the minimum over every stamp received for the current primary is the stamp of
    its canonical contact's final state, whatever order the stamps arrive in.
    """
    stamp = deal["stamp"]
    if stamp["for"] != for_contact:
        return  # a stamp for a former primary contact
    stamp["first"] = _min_ref(stamp["first"], first)
    stamp["csrc"] = _min_ref(stamp["csrc"], csrc)


def deal_view(deal: Mapping[str, Any]) -> State | None:
    """The EnrichedDeal fields (without stamp_version and prev_*); None before any change."""
    latest = deal["latest"]
    if latest is None:
        return None
    change = latest["change"]
    status = change if change in ("won", "lost") else "open"
    first, csrc = deal["stamp"]["first"], deal["stamp"]["csrc"]
    created = deal["created_min"] if deal["created_min"] is not None else deal["any_min"]
    return {
        "deal_id": deal["id"],
        "version": int(latest["version"] or 0),
        "event_time": int(latest["event_time"]),
        "change": change,
        "status": status,
        "stage": latest["stage"],
        "amount": latest["amount"],
        "currency": latest["currency"] or "USD",
        "owner": latest["owner"],
        "pipeline": latest["pipeline"],
        "close_reason": latest["close_reason"],
        "source_system": latest["source_system"],
        "primary_contact_id": latest["primary_contact_id"],
        "contact_ids": list(latest["contact_ids"] or []),
        "created_at": created,
        "closed_at": int(latest["event_time"]) if status != "open" else None,
        "lead_channel": first["ch"] if first else "Unknown",
        "lead_source": first["src"] if first else "Unknown",
        "lead_detail": first["det"] if first else "",
        "contact_source": csrc["value"] if csrc else None,
        "first_touch_time": int(first["t"]) if first else None,
        "first_touch_event_id": first["id"] if first else None,
    }
