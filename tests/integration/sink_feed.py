"""A small raw world, its plain-Python reports, and the enriched feed the worker would emit.

The sink tests cannot run the stream worker (another stage), so they build its output
from first principles: :func:`generate_world` makes contacts, anonymous visitors,
identifies, merges, touches (with duplicates) and deals moving through versions;
:func:`reference_reports` computes ``sources``, ``quarterly``, ``contact-sources`` and
every attribution model directly from those raw facts (the definitions of
docs/definitions.md, nothing shared with the SQL); :func:`enriched_feed`
produces what the worker would publish: one EnrichedTouch per raw touch (duplicates
included), ContactVersions (superseded older versions with wrong values first, merged
away contacts with ``merged_into``), EnrichedDeal versions (superseded stamps first).
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY = 86_400_000
T0 = int(datetime(2025, 10, 1, tzinfo=UTC).timestamp() * 1000)

#: (utm_source, utm_medium) -> (channel, source); campaign is the detail.
RULES = {
    ("google", "cpc"): ("Paid Search", "google"),
    ("bing", "cpc"): ("Paid Search", "bing"),
    ("linkedin", "paid_social"): ("Paid Social", "linkedin"),
    ("newsletter", "email"): ("Email", "newsletter"),
    ("partner", "referral"): ("Referral", "partner"),
    ("", ""): ("Direct", "direct"),
}
RAW_PAIRS = [*RULES.keys(), ("weird", "thing")]
OUTBOUND = ("outbound_call", "outbound_email")


def classify(utm_source: str, utm_medium: str, utm_campaign: str) -> tuple[str, str, str]:
    """Deterministic stand-in for the taxonomy: unknown pairs are channel Unknown."""
    channel, source = RULES.get((utm_source, utm_medium), ("Unknown", utm_source or "unknown"))
    return channel, source, utm_campaign if channel != "Direct" else ""


@dataclass
class Touch:
    event_id: str
    event_time: int
    anonymous_id: str | None
    contact_id: str | None
    touch_type: str
    utm_source: str
    utm_medium: str
    utm_campaign: str

    @property
    def klass(self) -> tuple[str, str, str]:
        return classify(self.utm_source, self.utm_medium, self.utm_campaign)


@dataclass
class DealChange:
    event_id: str
    event_time: int
    deal_id: str
    change: str
    amount: float | None
    primary_contact_id: str
    contact_ids: list[str]
    version: int


@dataclass
class World:
    contacts: list[str]
    created_at: dict[str, int]  # contact -> creation time (identify / created change)
    contact_source_changes: list[tuple[int, str, str, str]]  # (time, event_id, contact, contact_source)
    merges: dict[str, str]  # absorbed -> survivor
    identifies: list[tuple[str, str]]  # (anonymous_id, contact_id)
    touches: list[Touch]  # raw, duplicates included
    deal_changes: list[DealChange]
    extra: dict[str, Any] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_world(seed: int = 7, n_contacts: int = 60, n_deals: int = 36) -> World:
    """A seeded world with every case the reports must get right."""
    rng = random.Random(seed)
    contacts = [f"c{i:03d}" for i in range(n_contacts)]
    created = {c: T0 + rng.randrange(0, 200) * DAY + rng.randrange(DAY) for c in contacts}
    # merges: a few contacts absorbed (chains included: c5 -> c4 -> c3), never cycles
    merges = {contacts[5]: contacts[4], contacts[4]: contacts[3], contacts[10]: contacts[11],
              contacts[20]: contacts[21]}
    contact_sources = ["Alice Contacts", "Bob Contacts", "Purchased List", "Partner Referral", "Web Form"]
    cs_changes: list[tuple[int, str, str, str]] = []
    for c in contacts:
        if rng.random() < 0.7:
            for _ in range(rng.choice([1, 1, 2])):
                cs_changes.append((created[c] + rng.randrange(-DAY, 5 * DAY), _uuid(rng), c,
                                   rng.choice(contact_sources)))
    identifies: list[tuple[str, str]] = []
    touches: list[Touch] = []
    for c in contacts:
        if c in (contacts[7], contacts[8]):
            continue  # contacts without any touch (lead source Unknown)
        anons = [f"a-{c}-{k}" for k in range(rng.choice([1, 1, 2]))]
        for a in anons:
            identifies.append((a, c))
        for _ in range(rng.randrange(1, 9)):
            src, med = rng.choice(RAW_PAIRS)
            by_contact = rng.random() < 0.25
            ttype = rng.choice(OUTBOUND) if by_contact and rng.random() < 0.5 else "page_view"
            touches.append(Touch(
                _uuid(rng), created[c] + rng.randrange(-30, 120) * DAY + rng.randrange(DAY),
                None if by_contact else rng.choice(anons), c if by_contact else None, ttype,
                src, med, rng.choice(["spring", "brand", "launch"]) if src else "",
            ))
    # a touch with both a contact id and an anonymous id of ANOTHER contact: belongs to both
    touches.append(Touch(_uuid(rng), T0 + 50 * DAY, f"a-{contacts[30]}-0", contacts[31], "page_view",
                         "google", "cpc", "brand"))
    # never identified visitors: belong to no contact
    for k in range(15):
        touches.append(Touch(_uuid(rng), T0 + rng.randrange(0, 200) * DAY, f"anon-{k}", None, "page_view",
                             *rng.choice(RAW_PAIRS), "x"))
    # ties in event_time broken by event_id
    touches.append(Touch("00000000-0000-4000-8000-000000000001", touches[0].event_time,
                         touches[0].anonymous_id, touches[0].contact_id, "page_view", "bing", "cpc", "tie"))
    # duplicates: the same event delivered again
    touches.extend(rng.sample(touches, 25))

    deal_changes: list[DealChange] = []
    for d in range(n_deals):
        deal_id = f"d{d:03d}"
        primary = rng.choice(contacts)  # may be a merged-away id: the deal belongs to the survivor
        others = rng.sample(contacts, rng.choice([0, 0, 1, 2]))
        cids = sorted({primary, *others})
        t = created[primary] + rng.randrange(1, 60) * DAY
        amount = float(rng.choice([1000, 2500, 4000, 12000, 30000])) if rng.random() < 0.95 else None
        version = 1
        deal_changes.append(DealChange(_uuid(rng), t, deal_id, "created", amount, primary, cids, version))
        for _ in range(rng.randrange(0, 3)):
            t += rng.randrange(1, 20) * DAY
            version += 1
            if rng.random() < 0.5 and amount is not None:
                amount = amount * rng.choice([0.5, 1.5, 2.0])
                deal_changes.append(DealChange(_uuid(rng), t, deal_id, "amount_changed", amount, primary, cids,
                                               version))
            else:
                deal_changes.append(DealChange(_uuid(rng), t, deal_id, "stage_changed", amount, primary, cids,
                                               version))
        fate = rng.random()
        if fate < 0.55:
            t += rng.randrange(1, 90) * DAY
            version += 1
            deal_changes.append(DealChange(_uuid(rng), t, deal_id, "won", amount, primary, cids, version))
        elif fate < 0.8:
            t += rng.randrange(1, 90) * DAY
            version += 1
            deal_changes.append(DealChange(_uuid(rng), t, deal_id, "lost", amount, primary, cids, version))
    return World(contacts, created, cs_changes, merges, identifies, touches, deal_changes)


# --------------------------------------------------------------------------- truth
class Truth:
    """Everything derived from the raw world, by the definitions, in plain Python."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.live = [c for c in w.contacts if c not in w.merges]
        self.touch_by_id = {t.event_id: t for t in w.touches}
        self.unique = sorted(self.touch_by_id.values(), key=lambda t: (t.event_time, t.event_id))
        anon_contacts: dict[str, set[str]] = defaultdict(set)
        for a, c in w.identifies:
            anon_contacts[a].add(self.canonical(c))
        self.touches_of: dict[str, list[Touch]] = defaultdict(list)
        for t in self.unique:
            owners = set()
            if t.contact_id:
                owners.add(self.canonical(t.contact_id))
            if t.anonymous_id:
                owners |= anon_contacts.get(t.anonymous_id, set())
            for o in owners:
                self.touches_of[o].append(t)
        self.members: dict[str, set[str]] = defaultdict(set)
        for c in w.contacts:
            self.members[self.canonical(c)].add(c)

    def canonical(self, c: str) -> str:
        while c in self.w.merges:
            c = self.w.merges[c]
        return c

    def first_touch(self, c: str) -> Touch | None:
        ts = self.touches_of.get(c, [])
        return ts[0] if ts else None

    def lead(self, c: str) -> tuple[str, str, str]:
        t = self.first_touch(c)
        return t.klass if t else ("Unknown", "Unknown", "")

    def created(self, c: str) -> int:
        return min(self.w.created_at[m] for m in self.members[c])

    def contact_source(self, c: str) -> str | None:
        changes = sorted(x for x in self.w.contact_source_changes if x[2] in self.members[c])
        return changes[0][3] if changes else None

    def anonymous_ids(self, c: str) -> list[str]:
        return sorted({a for a, x in self.w.identifies if x in self.members[c]})

    def deals(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        by_deal: dict[str, list[DealChange]] = defaultdict(list)
        for ch in self.w.deal_changes:
            by_deal[ch.deal_id].append(ch)
        for deal_id, changes in by_deal.items():
            latest = max(changes, key=lambda x: (x.version, x.event_time, x.event_id))
            status = latest.change if latest.change in ("won", "lost") else "open"
            created = [x.event_time for x in changes if x.change == "created"] or [x.event_time for x in changes]
            primary = self.canonical(latest.primary_contact_id)
            out[deal_id] = {
                "status": status, "amount": latest.amount, "created_at": min(created),
                "closed_at": latest.event_time if status != "open" else None,
                "primary": primary, "contacts": sorted({self.canonical(c) for c in latest.contact_ids} | {primary}),
                "lead": self.lead(primary), "contact_source": self.contact_source(primary),
                "first_touch_time": (ft.event_time if (ft := self.first_touch(primary)) else None),
                "changes": sorted(changes, key=lambda x: (x.version, x.event_time, x.event_id)),
            }
        return out


LEVEL_INDEX = {"channel": 0, "source": 1, "detail": 2}


def _quarter(ms: int) -> str:
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def ref_sources(tr: Truth, by: str = "channel") -> list[dict[str, Any]]:
    i = LEVEL_INDEX[by]
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"leads": 0, "deals": 0, "won": 0, "lost": 0, "open": 0,
                                                           "revenue": 0.0, "pipeline": 0.0, "days": []})
    for c in tr.live:
        rows[tr.lead(c)[i]]["leads"] += 1
    for t in tr.touch_by_id.values():  # every source that brought a touch is listed
        _ = rows[t.klass[i]]
    for d in tr.deals().values():
        r = rows[d["lead"][i]]
        r["deals"] += 1
        r[d["status"]] += 1
        amount = d["amount"] or 0.0
        if d["status"] == "won":
            r["revenue"] += amount
            r["days"].append((d["closed_at"] - d["created_at"]) / DAY)
        elif d["status"] == "open":
            r["pipeline"] += amount
    out = []
    for key, r in rows.items():
        won, lost = r["won"], r["lost"]
        out.append({"lead_source": key, "leads": r["leads"], "deals": r["deals"], "won": won, "lost": lost,
                    "open": r["open"], "win_rate": won / (won + lost) if won + lost else None,
                    "avg_deal_size": r["revenue"] / won if won else None, "revenue": r["revenue"],
                    "pipeline": r["pipeline"],
                    "median_days_to_close": statistics.median(r["days"]) if r["days"] else None})
    return out


def ref_quarterly(tr: Truth, by: str = "channel") -> list[dict[str, Any]]:
    i = LEVEL_INDEX[by]
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"leads": 0, "deals": 0, "won": 0, "lost": 0, "revenue": 0.0})
    for c in tr.live:
        ft = tr.first_touch(c)
        if ft:
            rows[(_quarter(ft.event_time), ft.klass[i])]["leads"] += 1
    for d in tr.deals().values():
        rows[(_quarter(d["created_at"]), d["lead"][i])]["deals"] += 1
        if d["status"] != "open":
            r = rows[(_quarter(d["closed_at"]), d["lead"][i])]
            r[d["status"]] += 1
            if d["status"] == "won":
                r["revenue"] += d["amount"] or 0.0
    out = []
    for (q, key), r in sorted(rows.items()):
        won, lost = r["won"], r["lost"]
        out.append({"quarter": q, "lead_source": key, "leads": r["leads"], "deals": r["deals"], "won": won,
                    "lost": lost, "win_rate": won / (won + lost) if won + lost else None,
                    "avg_deal_size": r["revenue"] / won if won else None, "revenue": r["revenue"]})
    return out


def ref_contact_sources(tr: Truth) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"contacts": 0, "engaged_contacts": 0, "deals": 0,
                                                           "won": 0, "revenue": 0.0})
    for c in tr.live:
        r = rows[tr.contact_source(c) or "Unknown"]
        r["contacts"] += 1
        r["engaged_contacts"] += 1 if tr.touches_of.get(c) else 0
    for d in tr.deals().values():
        r = rows[d["contact_source"] or "Unknown"]
        r["deals"] += 1
        if d["status"] == "won":
            r["won"] += 1
            r["revenue"] += d["amount"] or 0.0
    return [{"contact_source": k, **v} for k, v in rows.items()]


MODEL_SHARES = {  # first, lead creation, deal creation, closing, others
    "first_touch": (1.0, 0.0, 0.0, 0.0, 0.0),
    "last_touch": (0.0, 0.0, 0.0, 1.0, 0.0),
    "linear": (0.0, 0.0, 0.0, 0.0, 1.0),
    "u_shaped": (0.4, 0.4, 0.0, 0.0, 0.2),
    "w_shaped": (0.3, 0.3, 0.3, 0.0, 0.1),
    "full_path": (0.225, 0.225, 0.225, 0.225, 0.1),
    "j_shaped": (0.2, 0.0, 0.0, 0.6, 0.2),
    "inverse_j": (0.6, 0.0, 0.0, 0.2, 0.2),
}


def _credits(model: str, journey: list[Touch], lead_idx: int | None, deal_idx: int | None, *, close_time: int,
             half_life_days: float) -> list[float]:
    n = len(journey)
    if model == "time_decay":
        w = [2 ** (-((close_time - t.event_time) / DAY) / half_life_days) for t in journey]
        return [x / sum(w) for x in w]
    if n == 1:
        return [1.0]
    sf, sl, sd, sc, so = MODEL_SHARES[model]
    positions = [(0, sf), (n - 1, sc)]
    if lead_idx is not None:
        positions.append((lead_idx, sl))
    if deal_idx is not None:
        positions.append((deal_idx, sd))
    pos = [0.0] * n
    for idx, share in positions:
        pos[idx] += share
    existing = sum(share for _, share in positions)
    others = [k for k in range(n) if pos[k] == 0]
    total = existing + (so if others else 0.0)
    return [(pos[k] + (so / len(others) if k in others else 0.0)) / total for k in range(n)]


def ref_attribution(tr: Truth, model: str, by: str = "channel", half_life: float = 7.0,
                    include_open_lost: bool = False) -> list[dict[str, Any]]:
    i = LEVEL_INDEX[by]
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for d in tr.deals().values():
        if d["status"] != "won" and not include_open_lost:
            continue
        seen: dict[str, Touch] = {}
        for c in d["contacts"]:
            for t in tr.touches_of.get(c, []):
                if d["closed_at"] is None or t.event_time <= d["closed_at"]:
                    seen[t.event_id] = t
        journey = sorted(seen.values(), key=lambda t: (t.event_time, t.event_id))
        if not journey:
            continue
        lead_idx = None
        primary_touches = tr.touches_of.get(d["primary"], [])
        created = tr.created(d["primary"])
        before = [t for t in primary_touches if t.event_time <= created]
        after = [t for t in primary_touches if t.event_time > created]
        lead_touch = before[-1] if before else (after[0] if after else None)
        ids = [t.event_id for t in journey]
        if lead_touch is not None and lead_touch.event_id in ids:
            lead_idx = ids.index(lead_touch.event_id)
        deal_before = [k for k, t in enumerate(journey) if t.event_time <= d["created_at"]]
        deal_idx = deal_before[-1] if deal_before else None
        close = d["closed_at"] if d["closed_at"] is not None else journey[-1].event_time
        credits = _credits(model, journey, lead_idx, deal_idx, close_time=close, half_life_days=half_life)
        amount = (d["amount"] or 0.0) if d["status"] == "won" else 0.0
        for t, cr in zip(journey, credits, strict=True):
            out[t.klass[i]][0] += cr
            out[t.klass[i]][1] += cr * amount
    return [{"channel": k, "deal_credit": v[0], "revenue_credit": v[1]} for k, v in out.items() if v[0] or v[1]]


# ----------------------------------------------------------------------------- feed
def enriched_feed(w: World, seed: int = 11) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic base, key, record) in an arrival order the worker could produce."""
    rng = random.Random(seed)
    tr = Truth(w)
    feed: list[tuple[str, str, dict[str, Any]]] = []
    processed = T0 + 400 * DAY
    for k, t in enumerate(w.touches):
        channel, source, detail = t.klass
        feed.append(("enriched-touches", t.contact_id or t.anonymous_id or "", {
            "event_id": t.event_id, "event_time": t.event_time, "received_at": t.event_time + 1000,
            "processed_at": processed + k, "anonymous_id": t.anonymous_id, "contact_id": t.contact_id,
            "touch_type": t.touch_type, "url": "https://example.com/", "referrer": None,
            "utm_source": t.utm_source or None, "utm_medium": t.utm_medium or None,
            "utm_campaign": t.utm_campaign or None, "click_id_type": None, "channel": channel, "source": source,
            "detail": detail, "rule": "test", "taxonomy_version": "test-1", "is_bot": False, "sequence": 0,
        }))
    version = 1_000_000
    for c in w.contacts:
        canon = tr.canonical(c)
        live = canon == c
        ft = tr.first_touch(canon)
        lead = tr.lead(canon)
        base = {
            "contact_id": c, "event_time": tr.created(canon), "reason": "first_touch", "merged_into": None,
            "merged_contact_ids": sorted(tr.members[c] - {c}) if live else [],
            "anonymous_ids": tr.anonymous_ids(c) if live else [], "created_at": tr.created(canon),
            "first_touch_event_id": ft.event_id if ft else None, "first_touch_time": ft.event_time if ft else None,
            "first_touch_type": ft.touch_type if ft else None, "lead_channel": lead[0], "lead_source": lead[1],
            "lead_detail": lead[2], "contact_source": tr.contact_source(canon), "owner": None,
            "lifecycle_stage": None, "stage_times": {}, "lead_method": None,
            "touch_count": len(tr.touches_of.get(canon, [])), "touches_by_channel": {}, "first_seen": None,
            "last_seen": None, "last_channel": None, "engagement_score": 0.0,
        }
        # a superseded version with wrong values: the latest must win
        version += rng.randrange(1, 1000)
        feed.append(("enriched-contacts", c, {**base, "version": version, "lead_channel": "Stale",
                                              "lead_source": "stale", "contact_source": "Stale List",
                                              "merged_contact_ids": [], "anonymous_ids": []}))
        version += rng.randrange(1, 1000)
        if live:
            feed.append(("enriched-contacts", c, {**base, "version": version}))
        else:
            feed.append(("enriched-contacts", c, {**base, "version": version, "reason": "merged_away",
                                                  "merged_into": w.merges[c]}))
    for deal_id, d in tr.deals().items():
        changes = d["changes"]
        stamp = 2_000_000
        for k, ch in enumerate(changes):
            stamp += rng.randrange(1, 1000)
            last = k == len(changes) - 1
            status = (ch.change if ch.change in ("won", "lost") else "open")
            stale = not last
            feed.append(("enriched-deals", deal_id, {
                "deal_id": deal_id, "stamp_version": stamp, "version": ch.version, "event_time": ch.event_time,
                "change": ch.change, "status": status, "stage": None, "amount": ch.amount, "currency": "USD",
                "owner": None, "pipeline": None, "close_reason": None, "source_system": "test",
                "primary_contact_id": d["primary"], "contact_ids": ch.contact_ids,
                "created_at": d["created_at"], "closed_at": ch.event_time if status != "open" else None,
                "lead_channel": "Stale" if stale else d["lead"][0], "lead_source": "stale" if stale else d["lead"][1],
                "lead_detail": "" if stale else d["lead"][2],
                "contact_source": "Stale List" if stale else d["contact_source"],
                "first_touch_time": d["first_touch_time"], "first_touch_event_id": None,
                "prev_status": None, "prev_amount": None, "prev_lead_channel": None, "prev_lead_source": None,
                "prev_lead_detail": None,
            }))
    # arrival order: shuffled across entities, but each key's versions stay in order
    # (a keyed topic keeps per-key order); the latest must win regardless of batches.
    by_key: dict[tuple[str, str], list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for item in feed:
        by_key[(item[0], item[1])].append(item)
    queues = list(by_key.values())
    ordered: list[tuple[str, str, dict[str, Any]]] = []
    while queues:
        q = rng.choice(queues)
        ordered.append(q.pop(0))
        if not q:
            queues.remove(q)
    return ordered


def one_touch(event_id: str = "11111111-1111-4111-8111-111111111111", *, contact_id: str | None = None,
              anonymous_id: str | None = "anon-1", utm: tuple[str, str, str] = ("google", "cpc", "brand"),
              event_time: int = T0) -> dict[str, Any]:
    """One EnrichedTouch record, classified by :func:`classify`."""
    channel, source, detail = classify(*utm)
    return {
        "event_id": event_id, "event_time": event_time, "received_at": event_time, "processed_at": event_time,
        "anonymous_id": anonymous_id, "contact_id": contact_id, "touch_type": "page_view",
        "url": "https://example.com/?utm_source=google&utm_medium=cpc", "referrer": None,
        "utm_source": utm[0], "utm_medium": utm[1], "utm_campaign": utm[2], "click_id_type": None,
        "channel": channel, "source": source, "detail": detail, "rule": "test", "taxonomy_version": "test-1",
        "is_bot": False, "sequence": 1,
    }


def one_contact(contact_id: str, touch: dict[str, Any], version: int = 1) -> dict[str, Any]:
    """The ContactVersion the worker emits for a contact whose first touch is ``touch``."""
    return {
        "contact_id": contact_id, "version": version, "event_time": touch["event_time"], "reason": "first_touch",
        "merged_into": None, "merged_contact_ids": [],
        "anonymous_ids": [touch["anonymous_id"]] if touch.get("anonymous_id") else [],
        "created_at": touch["event_time"], "first_touch_event_id": touch["event_id"],
        "first_touch_time": touch["event_time"], "first_touch_type": touch["touch_type"],
        "lead_channel": touch["channel"], "lead_source": touch["source"], "lead_detail": touch["detail"],
        "contact_source": None, "owner": None, "lifecycle_stage": None, "stage_times": {}, "lead_method": None,
        "touch_count": 1, "touches_by_channel": {touch["channel"]: 1}, "first_seen": touch["event_time"],
        "last_seen": touch["event_time"], "last_channel": touch["channel"], "engagement_score": 1.0,
    }
