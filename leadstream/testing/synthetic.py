"""Seeded synthetic raw events: the input of the oracle tests and of ``leadstream demo``.

It sits before the producers in the flow: each record is exactly what a producer would
publish on a raw topic (``touches``, ``identities``, ``contacts``, ``deals``), a plain dict
that ``schemas.codec.encode`` accepts for Touch, Identify, ContactChange and DealChange.
Every field of the schema is present, so a record decodes back to an equal dict.

What it simulates (see docs/demo-dataset.md):

- contacts who browse anonymously on 1-3 devices (anonymous ids) with UTM-tagged or
  referred page views, then fill a form (Identify); other devices are identified later,
  sometimes after all of their touches, so a late identify can move the lead source earlier;
- offline touches known only by contact id (event scans, webinars, calls, direct mail) and
  the sales team's outbound calls and emails (the lead method);
- CRM contact changes: created / updated with a contact source and lifecycle stages, and
  merges of duplicate contacts (including chains C -> B -> A, never cycles);
- deals moving through stages with increasing versions, amount changes, won / lost / left
  open, some lost then reopened, some whose primary contact is later merged away;
- visitors who are never identified.

The module passes 400 lines on purpose: the generator is one seeded sequence of draws,
and every dataset the tests and the demo know depends on their exact order; split over
several files, a change in one would silently reorder the draws of the others.

Only the standard library's ``random`` is used, seeded, so a seed always yields the same
events. ``Dataset.arrival`` turns the events into a shuffled arrival order with
out-of-order and duplicated events, keyed as the partitioning plan (``ground.topics.MESSAGE_KEYS``) says.
"""

from __future__ import annotations

import copy
import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

from ground import vocabulary
from ground.topics import message_key

__all__ = [
    "CONTACT_SOURCES",
    "DEMO_CHANNELS",
    "DEMO_SIZES",
    "OUTBOUND_TYPES",
    "Arrival",
    "ChannelSpec",
    "Dataset",
    "Record",
    "arrival_stats",
    "generate",
]

Record = dict[str, Any]
#: (topic base name, message key, record) in the order the broker receives them.
Arrival = tuple[str, str, Record]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: Contacts' first touches fall in [START_MS, START_MS + BIRTH_WINDOW_MS).
START_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
BIRTH_WINDOW_MS = 400 * DAY_MS
#: No event time is later than this (2026-04-26): deals span 2025-Q1 .. 2026-Q2.
DATA_END_MS = START_MS + 480 * DAY_MS

SITE = "https://www.leadstream.example"
PAGES = (
    ("/", "leadstream - lead source tracking"),
    ("/pricing", "Pricing"),
    ("/product", "Product tour"),
    ("/blog/first-touch-attribution", "First-touch attribution, explained"),
    ("/blog/lead-source-vs-contact-source", "Lead source vs contact source"),
    ("/docs/quickstart", "Quickstart"),
    ("/customers", "Customers"),
    ("/demo", "Request a demo"),
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
REPS = ("Alice", "Bob", "Carol", "Dan")
CONTACT_SOURCES = ("Alice Contacts", "Bob Contacts", "Purchased list", "Partner referral", "Web form", "Event list")
LIFECYCLE = ("subscriber", "lead", "mql", "sql", "opportunity", "customer")
OUTBOUND_TYPES = tuple(sorted(vocabulary.OUTBOUND_TYPES))  # a sequence: rng.choice needs an order
#: Touch types that carry a contact id and no anonymous id (imports, sales tools, calls).
OFFLINE_TYPES = ("event_scan", "webinar_attended", "inbound_call", "direct_mail_response", *OUTBOUND_TYPES)
DEAL_STAGES = ("discovery", "proposal", "negotiation")
EVENTS = ("SaaStr Annual 2025", "Web Summit 2025", "Dreamforce 2025", "MarTech Berlin 2026")
WEBINARS = ("Attribution 101", "First touch vs last touch", "Pipeline reviews that work")
PARTNERS = ("acme-consulting", "northwind-partners", "globex-agency")


class ChannelSpec(NamedTuple):
    """How the demo profile treats one intended first-touch channel."""

    weight: float  # share of the touching contacts whose FIRST touch is of this channel
    win_rate: float  # won / (won + lost) of deals whose primary contact came from it
    mean_deal_size: float  # mean amount (USD) of those deals
    recipe: str  # the touch that makes a conventional default taxonomy say this channel


#: The demo's channels. In ``profile="demo"`` each contact's earliest touch follows its
#: channel's recipe, and the closed deals of its primary contacts are won with exactly
#: round(win_rate x closed) wins (an urn draw), so the sources table shows these rates.
DEMO_CHANNELS: dict[str, ChannelSpec] = {
    "Paid Search": ChannelSpec(
        0.20, 0.22, 18_000.0,
        "page_view / ad_click: utm_source=google|bing, utm_medium=cpc (+gclid / msclkid); or a gclid with no UTM",
    ),
    "Organic Search": ChannelSpec(
        0.18, 0.30, 22_000.0,
        "page_view, no UTM, referrer https://www.google.com/ | https://www.bing.com/ | https://duckduckgo.com/",
    ),
    "Paid Social": ChannelSpec(
        0.12, 0.12, 12_000.0,
        "ad_click: utm_source=linkedin (+li_fat_id) | facebook (+fbclid), utm_medium=paid_social",
    ),
    "Email": ChannelSpec(0.10, 0.20, 15_000.0, "email_click: utm_source=newsletter, utm_medium=email"),
    "Referral": ChannelSpec(
        0.08, 0.35, 25_000.0,
        "page_view, no UTM, referrer https://www.capterra.com/... | https://www.g2.com/...; "
        "or utm_source=partner, utm_medium=referral",
    ),
    "Events": ChannelSpec(0.08, 0.40, 40_000.0, "event_scan with contact_id (booth scan), properties.event"),
    "Webinar": ChannelSpec(0.07, 0.28, 20_000.0, "webinar_attended with contact_id, properties.webinar"),
    "Outbound": ChannelSpec(0.07, 0.10, 30_000.0, "outbound_call | outbound_email with contact_id"),
    "Partner": ChannelSpec(0.05, 0.45, 35_000.0, "page_view: utm_source=<partner slug>, utm_medium=partner"),
    "Direct": ChannelSpec(0.05, 0.15, 10_000.0, "page_view, no UTM, no referrer, no click id"),
}

#: Sizes for ``leadstream demo``: every channel gets at least deals // 20 deals (50), of which
#: about 85 % close, so each channel's observed win rate is within 1 / (2 x closed) of its
#: target (the urn draw), far inside the binomial sampling error sqrt(p(1-p)/n) <= 0.07.
DEMO_SIZES: dict[str, int] = {"contacts": 3000, "touches": 24000, "deals": 1000, "merges": 20}

#: Oracle profile: extra first-touch channels (messy and unknown values included).
_ORACLE_EXTRA_WEIGHTS = {"Organic Social": 0.03, "Phone": 0.02, "Direct mail": 0.01, "Messy": 0.03, "Unknown": 0.02}
#: Channels of the touches after the first one (engagement), with weights.
_ENGAGEMENT_WEIGHTS = {
    "Email": 22, "Direct": 18, "Organic Search": 14, "Paid Search": 10, "Paid Social": 8, "Referral": 5,
    "Organic Social": 5, "Webinar": 5, "Events": 3, "Partner": 2, "Phone": 3, "Direct mail": 1,
    "Messy": 2, "Unknown": 2,
}
#: Channels whose first touch is offline (a contact id, no anonymous id).
_OFFLINE_CHANNELS = {"Events", "Webinar", "Phone", "Direct mail"}


def _day(days: float) -> int:
    return int(days * DAY_MS)


@dataclass
class _Plan:
    """What the generator decided about one contact before writing its events."""

    contact_id: str
    channel: str  # intended first-touch channel ("" for a contact without touches)
    kind: str  # web | offline | outbound | cold
    born: int  # event time of the first touch (or of creation for cold contacts)
    n_touches: int
    created_at: int = 0  # min(first identify, first ContactChange created)
    stage: int = 0  # index into LIFECYCLE reached so far


@dataclass
class Dataset:
    """Raw events of one generated dataset, in generation order (not arrival order)."""

    seed: int
    profile: str
    touches: list[Record] = field(default_factory=list)
    identifies: list[Record] = field(default_factory=list)
    contact_changes: list[Record] = field(default_factory=list)
    deal_changes: list[Record] = field(default_factory=list)
    #: contact_id -> intended first-touch channel (DEMO_CHANNELS key or oracle extra).
    intended_channel: dict[str, str] = field(default_factory=dict)

    def records(self) -> list[tuple[str, Record]]:
        """Every event with its topic base name (touches|identities|contacts|deals)."""
        out: list[tuple[str, Record]] = [("touches", r) for r in self.touches]
        out += [("identities", r) for r in self.identifies]
        out += [("contacts", r) for r in self.contact_changes]
        out += [("deals", r) for r in self.deal_changes]
        return out

    @property
    def max_event_time(self) -> int:
        """The latest event time in the data: "now" for open deals' journeys."""
        return max(r["event_time"] for _, r in self.records())

    def arrival(self, seed: int = 11, duplicate_rate: float = 0.05, out_of_order: float = 0.25) -> list[Arrival]:
        """The events as the broker would receive them: (topic, key, record).

        Events normally arrive in event-time order; a random ``out_of_order`` share is
        delayed by 2 hours to 30 days, so it arrives after events that happened later.
        A random ``duplicate_rate`` share is delivered a second time (an equal copy of the
        record, same event_id) between 1 second and 3 days after the first delivery.
        Keys: touches by anonymous_id (contact_id when none), identities by anonymous_id,
        contacts by contact_id, deals by deal_id.
        """
        rng = random.Random(seed)
        items = self.records()
        n = len(items)
        delayed = set(rng.sample(range(n), round(out_of_order * n)))
        timed: list[tuple[int, float, Arrival]] = []
        for i, (topic, record) in enumerate(items):
            at = record["event_time"]
            if i in delayed:
                at += rng.randrange(2 * HOUR_MS, 30 * DAY_MS)
            timed.append((at, rng.random(), (topic, message_key(topic, record), record)))
        for i in rng.sample(range(n), round(duplicate_rate * n)):
            at, _, (topic, key, record) = timed[i]
            timed.append((at + rng.randrange(1000, 3 * DAY_MS), rng.random(), (topic, key, copy.deepcopy(record))))
        timed.sort(key=lambda item: (item[0], item[1]))
        return [item for _, _, item in timed]


def arrival_stats(arrivals: Sequence[Arrival]) -> tuple[int, int]:
    """(duplicate deliveries, first deliveries that arrive after a later-timed event)."""
    seen: set[str] = set()
    duplicates = late = 0
    latest = -1
    for _, _, record in arrivals:
        if record["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(record["event_id"])
        if record["event_time"] < latest:
            late += 1
        latest = max(latest, record["event_time"])
    return duplicates, late


def generate(  # noqa: PLR0917 - the documented call is generate(seed, contacts, touches, ...)
    seed: int = 7,
    contacts: int = 2000,
    touches: int = 20000,
    deals: int = 300,
    merges: int = 20,
    profile: str = "oracle",
) -> Dataset:
    """Generate a dataset: exactly ``touches`` touches, ``contacts`` contacts, ``deals`` deals.

    ``profile="oracle"`` mixes in messy and unknown UTM values (also on first touches) and
    leaves a few extra devices unidentified; ``profile="demo"`` makes every contact's first
    touch follow its DEMO_CHANNELS recipe and draws deal outcomes with the channel's win rate.
    """
    if profile not in ("oracle", "demo"):
        raise ValueError(f"unknown profile {profile!r}: expected 'oracle' or 'demo'")
    if contacts < 1 or touches < contacts or deals < 0 or merges < 0:
        raise ValueError("need contacts >= 1, touches >= contacts, deals >= 0, merges >= 0")
    return _Generator(seed, profile).run(contacts, touches, deals, merges)


class _Generator:
    """Writes the events; one instance per ``generate`` call."""

    def __init__(self, seed: int, profile: str) -> None:
        self.rng = random.Random(seed)
        self.demo = profile == "demo"
        self.data = Dataset(seed=seed, profile=profile)
        self.plans: list[_Plan] = []

    # -- ids and record builders ------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _anon(self) -> str:
        return "anon-" + self._uuid()[:18]

    @staticmethod
    def _email_hash(contact_id: str) -> str:
        return hashlib.sha256(f"{contact_id}@customer.example".encode()).hexdigest()

    def _touch(self, t: int, shape: Record, anonymous_id: str | None, contact_id: str | None) -> None:
        offline = shape["touch_type"] in OFFLINE_TYPES
        delay = self.rng.randrange(HOUR_MS, 2 * DAY_MS) if offline else self.rng.randrange(30, 3000)
        record: Record = {
            "event_id": self._uuid(),
            "event_time": t,
            "received_at": t + delay,
            "anonymous_id": None if offline else anonymous_id,
            "contact_id": contact_id,
            "touch_type": shape["touch_type"],
            "url": shape.get("url"),
            "referrer": shape.get("referrer"),
            "utm_source": shape.get("utm_source"),
            "utm_medium": shape.get("utm_medium"),
            "utm_campaign": shape.get("utm_campaign"),
            "utm_term": shape.get("utm_term"),
            "utm_content": shape.get("utm_content"),
            "gclid": shape.get("gclid"),
            "fbclid": shape.get("fbclid"),
            "msclkid": shape.get("msclkid"),
            "li_fat_id": shape.get("li_fat_id"),
            "ttclid": None,
            "user_agent": None if offline else self.rng.choice(USER_AGENTS),
            "page_title": shape.get("page_title"),
            "is_bot": False,
            "properties": dict(shape.get("properties", {})),
        }
        self.data.touches.append(record)

    def _identify(self, t: int, anonymous_id: str, contact_id: str) -> None:
        self.data.identifies.append({
            "event_id": self._uuid(),
            "event_time": t,
            "received_at": t + self.rng.randrange(30, 3000),
            "anonymous_id": anonymous_id,
            "contact_id": contact_id,
            "email_sha256": self._email_hash(contact_id),
            "traits": {"company_size": self.rng.choice(["1-10", "11-50", "51-200", "201-1000", "1000+"])},
            "source_system": self.rng.choice(["web-form", "web-form", "login", "chat"]),
        })

    def _contact_change(
        self, t: int, contact_id: str, change: str, *, contact_source: str | None = None,
        stage: str | None = None, merged_into: str | None = None,
    ) -> None:
        self.data.contact_changes.append({
            "event_id": self._uuid(),
            "event_time": t,
            "received_at": t + self.rng.randrange(1000, 10 * MINUTE_MS),
            "contact_id": contact_id,
            "change": change,
            "contact_source": contact_source,
            "owner": self.rng.choice(REPS),
            "lifecycle_stage": stage,
            "merged_into": merged_into,
            "email_sha256": self._email_hash(contact_id),
            "source_system": "crm",
            "properties": {},
        })

    # -- touch shapes (what makes a taxonomy classify a touch to a channel) ------------------
    def _page(self, params: dict[str, str]) -> tuple[str, str]:
        path, title = self.rng.choice(PAGES)
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return (f"{SITE}{path}?{query}" if query else f"{SITE}{path}"), title

    def _web(self, touch_type: str, referrer: str | None = None, **params: str) -> Record:
        url, title = self._page(params)
        return {"touch_type": touch_type, "url": url, "referrer": referrer, "page_title": title, **params}

    def _shape(self, channel: str, clean: bool) -> Record:
        """One touch of ``channel``; ``clean=False`` allows messy spellings of the same channel."""
        rng = self.rng
        campaign = f"{rng.choice(['brand', 'generic', 'competitor', 'retarget'])}-q{rng.randint(1, 4)}"
        if channel == "Paid Search":
            variant = rng.randrange(3)
            if variant == 0:
                return self._web("ad_click", "https://www.google.com/", utm_source="google", utm_medium="cpc",
                                 utm_campaign=campaign, utm_term="lead source tracking", gclid=self._uuid()[:20])
            if variant == 1:
                return self._web("ad_click", "https://www.bing.com/", utm_source="bing", utm_medium="cpc",
                                 utm_campaign=campaign, msclkid=self._uuid()[:20])
            # A Google Ads click with auto-tagging only: gclid, no UTM.
            return self._web("ad_click", "https://www.google.com/", gclid=self._uuid()[:20])
        if channel == "Organic Search":
            ref = rng.choice(["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"])
            return self._web("page_view", ref)
        if channel == "Paid Social":
            if rng.random() < 0.5:
                return self._web("ad_click", "https://www.linkedin.com/", utm_source="linkedin",
                                 utm_medium="paid_social", utm_campaign=campaign, li_fat_id=self._uuid()[:16])
            return self._web("ad_click", "https://www.facebook.com/", utm_source="facebook",
                             utm_medium="paid_social", utm_campaign=campaign, fbclid=self._uuid()[:24])
        if channel == "Email":
            return self._web("email_click", None, utm_source="newsletter", utm_medium="email",
                             utm_campaign=f"newsletter-{rng.randrange(1, 40):02d}")
        if channel == "Referral":
            variant = rng.randrange(3)
            if variant == 0:
                return self._web("page_view", "https://www.capterra.com/p/leadstream/")
            if variant == 1:
                return self._web("page_view", "https://www.g2.com/products/leadstream/reviews")
            return self._web("page_view", "https://blog.partner.example/", utm_source="partner", utm_medium="referral")
        if channel == "Partner":
            return self._web("page_view", None, utm_source=rng.choice(PARTNERS), utm_medium="partner",
                             utm_campaign="co-marketing")
        if channel == "Direct":
            return self._web("page_view", None)
        if channel == "Organic Social":
            ref = rng.choice(["https://t.co/" + self._uuid()[:10], "https://www.linkedin.com/feed/",
                              "https://www.reddit.com/r/marketing/"])
            return self._web("page_view", ref)
        if channel == "Events":
            return {"touch_type": "event_scan", "properties": {"event": rng.choice(EVENTS)}}
        if channel == "Webinar":
            return {"touch_type": "webinar_attended", "properties": {"webinar": rng.choice(WEBINARS)}}
        if channel == "Outbound":
            return {"touch_type": rng.choice(OUTBOUND_TYPES), "properties": {"rep": rng.choice(REPS)}}
        if channel == "Phone":
            return {"touch_type": "inbound_call", "properties": {"number": "+1-800-555-0100"}}
        if channel == "Direct mail":
            return {"touch_type": "direct_mail_response", "properties": {"campaign": "postcard-2025"}}
        if channel == "Messy":
            if clean:  # demo: never used as a first touch
                return self._shape("Paid Search", True)
            source, medium = rng.choice([(" Google ", "CPC"), ("Facebook", "Paid_Social"),
                                         ("NEWSLETTER", " Email"), ("LinkedIn ", "paid_social")])
            return self._web("ad_click", None, utm_source=source, utm_medium=medium, utm_campaign=campaign.upper())
        # Unknown: values no default taxonomy knows; they must stay visible as Unknown.
        source, medium = rng.choice([("qr-flyer", "print"), ("zx-network", "xyz"), ("podcast-ep12", "audio")])
        return self._web("page_view", None, utm_source=source, utm_medium=medium)

    def _engagement_channel(self) -> str:
        names = list(_ENGAGEMENT_WEIGHTS)
        return self.rng.choices(names, weights=[_ENGAGEMENT_WEIGHTS[n] for n in names])[0]

    # -- the plan --------------------------------------------------------------------------
    def run(self, contacts: int, touches: int, deals: int, merges: int) -> Dataset:
        rng = self.rng
        channel_weights = {name: spec.weight for name, spec in DEMO_CHANNELS.items()}
        if not self.demo:
            channel_weights.update(_ORACLE_EXTRA_WEIGHTS)
        names = list(channel_weights)
        n_cold = contacts * 3 // 100  # contacts imported from a list who never touch anything
        anon_budget = touches * 8 // 100 if touches - touches * 8 // 100 >= contacts else 0
        budgets = self._split_budget(touches - anon_budget, contacts - n_cold)
        for i in range(contacts):
            cid = f"c{i + 1:05d}"
            born = START_MS + rng.randrange(BIRTH_WINDOW_MS)
            if i >= contacts - n_cold:
                plan = _Plan(cid, "", "cold", born, 0)
            else:
                channel = rng.choices(names, weights=[channel_weights[n] for n in names])[0]
                kind = "outbound" if channel == "Outbound" else "offline" if channel in _OFFLINE_CHANNELS else "web"
                plan = _Plan(cid, channel, kind, born, budgets[i])
                self.data.intended_channel[cid] = channel
            self.plans.append(plan)
            self._contact(plan)
        self._anonymous_visitors(anon_budget)
        self._deals(deals)
        self._merges(merges)
        return self.data

    def _split_budget(self, total: int, n: int) -> list[int]:
        """n positive touch counts summing to total, skewed (a few very engaged contacts)."""
        if n == 0:
            return []
        weights = [self.rng.lognormvariate(0.0, 0.9) for _ in range(n)]
        spare = total - n
        scale = spare / sum(weights)
        counts = [1 + int(w * scale) for w in weights]
        for _ in range(total - sum(counts)):
            counts[self.rng.randrange(n)] += 1
        return counts

    # -- one contact -----------------------------------------------------------------------
    def _contact(self, plan: _Plan) -> None:
        rng = self.rng
        cid = plan.contact_id
        source = self._contact_source_for(plan.channel)
        if plan.kind == "cold":
            plan.created_at = plan.born
            self._created(plan, plan.born, source)
            return
        # Event times of the journey: the first touch, then strictly later ones.
        later = sorted(
            min(plan.born + MINUTE_MS + int(rng.expovariate(1 / (25 * DAY_MS))), DATA_END_MS - MINUTE_MS)
            for _ in range(plan.n_touches - 1)
        )
        times = [plan.born, *later]
        shapes = [self._shape(plan.channel, clean=True) if self.demo else self._shape(plan.channel, clean=False)]
        shapes += [self._shape(self._engagement_channel(), clean=False) for _ in later]
        is_web = [s["touch_type"] not in OFFLINE_TYPES for s in shapes]

        # Devices: each web touch is on one of 1-3 anonymous ids.
        web_idx = [i for i, w in enumerate(is_web) if w]
        n_dev = min(rng.choice([1, 1, 1, 2, 2, 3]), max(1, len(web_idx)))
        devices = [self._anon() for _ in range(n_dev)]
        device_of: dict[int, int] = {i: rng.randrange(n_dev) for i in web_idx}

        if plan.kind == "web":
            # The form fill: one of the first web touches, on device 0, identifies it.
            form = rng.choice(web_idx[:4])
            device_of[form] = 0
            identify_at = times[form] + rng.randrange(5000, 5 * MINUTE_MS)
            if rng.random() < 0.9:
                created_cc = identify_at + rng.randrange(MINUTE_MS, 2 * DAY_MS)
            else:  # known to the CRM before the form fill (an imported list)
                created_cc = identify_at - rng.randrange(HOUR_MS, 30 * DAY_MS)
            plan.created_at = min(identify_at, created_cc)
            first_device_identify: int | None = identify_at
        else:
            created_cc = plan.born + rng.randrange(HOUR_MS, 3 * DAY_MS)
            if plan.kind == "outbound":  # imported from a list, then called or emailed
                created_cc = plan.born - rng.randrange(HOUR_MS, 10 * DAY_MS)
            plan.created_at = created_cc
            first_device_identify = None
        self._created(plan, created_cc, source)

        # Identify each device that has touches; extra devices may be identified late.
        identified_at: dict[int, int] = {}
        for d in range(n_dev):
            own = [times[i] for i in web_idx if device_of[i] == d]
            if not own:
                continue
            if d == 0 and first_device_identify is not None:
                at = first_device_identify
            elif not self.demo and d > 0 and rng.random() < 0.1:
                continue  # never identified: its touches belong to nobody
            elif rng.random() < 0.5:  # late: after all of the device's touches
                at = min(max(own) + rng.randrange(HOUR_MS, 10 * DAY_MS), DATA_END_MS)
            else:
                at = rng.choice(own) + rng.randrange(5000, 5 * MINUTE_MS)
            identified_at[d] = at
            self._identify(at, devices[d], cid)
            plan.created_at = min(plan.created_at, at)
            if rng.random() < 0.1:  # the same device logs in again later: changes nothing
                self._identify(min(at + rng.randrange(DAY_MS, 40 * DAY_MS), DATA_END_MS), devices[d], cid)

        # Sales follow-ups: some of the later touches become outbound calls / emails.
        outbound_from = len(times)
        if len(times) >= 3 and rng.random() < 0.35:
            outbound_from = len(times) - rng.randint(1, 2)
        for i, (planned_time, planned_shape) in enumerate(zip(times, shapes, strict=True)):
            t, shape = planned_time, planned_shape
            if i >= outbound_from:
                shape = self._shape("Outbound", clean=True)
                if not self.demo and rng.random() < 0.15 and plan.created_at - plan.born > 2 * MINUTE_MS:
                    # Cold outreach before the contact was created: not the lead method.
                    t = rng.randrange(plan.born + MINUTE_MS, plan.created_at)
                else:
                    t = min(plan.created_at + rng.randrange(HOUR_MS, 30 * DAY_MS), DATA_END_MS)
                    t = max(t, plan.born + MINUTE_MS)
            if shape["touch_type"] in OFFLINE_TYPES:
                self._touch(t, shape, None, cid)
            else:
                d = device_of[i]
                # Logged-in views and email clicks after identification also carry the contact id.
                known = d in identified_at and t > identified_at[d] and rng.random() < 0.25
                self._touch(t, shape, devices[d], cid if known else None)

        # Lifecycle: subscriber/lead at creation, then some contacts move on.
        depth = rng.choices([0, 1, 2, 3], weights=[40, 30, 20, 10])[0]
        t = plan.created_at
        for _ in range(depth):
            if plan.stage >= LIFECYCLE.index("sql"):
                break
            t = min(t + rng.randrange(DAY_MS, 20 * DAY_MS), DATA_END_MS)
            self._advance(plan, t, LIFECYCLE[plan.stage + 1])

    def _contact_source_for(self, channel: str) -> str:
        rng = self.rng
        if channel == "Events":
            return "Event list"
        if channel == "Partner":
            return "Partner referral"
        if channel in {"Outbound", ""}:
            return rng.choice(["Alice Contacts", "Bob Contacts", "Purchased list"])
        return "Web form" if rng.random() < 0.85 else rng.choice(CONTACT_SOURCES)

    def _created(self, plan: _Plan, t: int, source: str) -> None:
        """ContactChange(created), sometimes without a source that a later update brings."""
        rng = self.rng
        plan.stage = rng.choice([0, 1])
        if rng.random() < 0.1:
            self._contact_change(t, plan.contact_id, "created", stage=LIFECYCLE[plan.stage])
            later = min(t + rng.randrange(HOUR_MS, 5 * DAY_MS), DATA_END_MS)
            self._contact_change(later, plan.contact_id, "updated", contact_source=source)
        else:
            self._contact_change(t, plan.contact_id, "created", contact_source=source, stage=LIFECYCLE[plan.stage])
        if rng.random() < 0.08:  # someone re-types the field later: the earliest value stays
            later = min(t + rng.randrange(10 * DAY_MS, 90 * DAY_MS), DATA_END_MS)
            other = rng.choice([s for s in CONTACT_SOURCES if s != source])
            self._contact_change(later, plan.contact_id, "updated", contact_source=other)

    def _advance(self, plan: _Plan, t: int, stage: str) -> None:
        index = LIFECYCLE.index(stage)
        if index > plan.stage:
            plan.stage = index
            self._contact_change(t, plan.contact_id, "updated", stage=stage)

    def _anonymous_visitors(self, budget: int) -> None:
        """Visitors who never fill a form: 1-5 page views each, any channel."""
        rng = self.rng
        while budget > 0:
            n = min(budget, rng.randint(1, 5))
            budget -= n
            anon = self._anon()
            t = START_MS + rng.randrange(BIRTH_WINDOW_MS)
            for _ in range(n):
                channel = rng.choice(["Paid Search", "Organic Search", "Paid Social", "Direct", "Referral",
                                      "Organic Social", "Messy", "Unknown"])
                shape = self._shape(channel, clean=False)
                self._touch(t, shape, anon, None)
                t = min(t + rng.randrange(MINUTE_MS, 10 * DAY_MS), DATA_END_MS)

    # -- deals -----------------------------------------------------------------------------
    def _deals(self, count: int) -> None:
        rng = self.rng
        if count == 0:
            return
        latest_start = DATA_END_MS - 75 * DAY_MS
        eligible = [p for p in self.plans if max(p.born, p.created_at) < latest_start]
        if self.demo:
            eligible = [p for p in eligible if p.kind != "cold"]
        if not eligible:
            raise ValueError("no contact early enough to carry a deal; generate more contacts")
        by_channel: dict[str, list[_Plan]] = {}
        for p in eligible:
            by_channel.setdefault(p.channel, []).append(p)
        # Deals per channel: a floor so every channel closes enough deals, the rest by volume.
        channels = sorted(by_channel)
        floor = count // (2 * len(channels))
        volume = {c: len(by_channel[c]) for c in channels}
        allocation = {c: floor for c in channels}
        for c in rng.choices(channels, weights=[volume[c] for c in channels], k=count - floor * len(channels)):
            allocation[c] += 1
        deal_no = 0
        for channel in channels:
            n = allocation[channel]
            closed = [rng.random() < 0.85 for _ in range(n)]
            spec = DEMO_CHANNELS.get(channel, ChannelSpec(0.0, 0.25, 15_000.0, ""))
            n_closed = sum(closed)
            # Urn draw: exactly round(p x closed) wins among the closed deals, in random order.
            wins = [True] * round(spec.win_rate * n_closed) + [False] * (n_closed - round(spec.win_rate * n_closed))
            rng.shuffle(wins)
            outcomes = iter(wins)
            for is_closed in closed:
                deal_no += 1
                primary = rng.choice(by_channel[channel])
                outcome = ("won" if next(outcomes) else "lost") if is_closed else "open"
                self._deal(f"d{deal_no:05d}", primary, outcome, spec.mean_deal_size)

    def _deal(self, deal_id: str, primary: _Plan, outcome: str, mean_size: float) -> None:
        rng = self.rng
        others = rng.sample(self.plans, k=rng.choice([0, 0, 1, 2]))
        contact_ids = [primary.contact_id] + [p.contact_id for p in others if p.contact_id != primary.contact_id]
        created = max(primary.born, primary.created_at) + rng.randrange(DAY_MS, 45 * DAY_MS)
        created = min(created, DATA_END_MS - 30 * DAY_MS)
        close = min(created + rng.randrange(7 * DAY_MS, 120 * DAY_MS), DATA_END_MS - HOUR_MS)
        if outcome == "open":  # still open at the end of the data: changes stop earlier
            close = min(close, DATA_END_MS - 2 * DAY_MS)
        amount: float | None = round(mean_size * rng.uniform(0.4, 1.6), -2)
        if not self.demo and rng.random() < 0.04:
            amount = None  # created without an amount; an amount_changed may bring it
        owner = rng.choice(REPS)
        version = 0
        steps = rng.randint(0, 3)
        reopen = rng.random() < (0.12 if outcome != "open" else 0.05)
        n_events = 1 + steps + (2 if reopen else 0) + (1 if outcome != "open" else 0)
        times = sorted(rng.randrange(created + 1, close) for _ in range(n_events - 1))
        times = [created, *times]
        if outcome != "open":
            times[-1] = close

        def emit(t: int, change: str, stage: str | None, close_reason: str | None = None) -> None:
            nonlocal version
            version += rng.choice([1, 1, 1, 2])
            self.data.deal_changes.append({
                "event_id": self._uuid(),
                "event_time": t,
                "received_at": t + rng.randrange(1000, 5 * MINUTE_MS),
                "deal_id": deal_id,
                "change": change,
                "stage": stage,
                "amount": amount,
                "currency": "USD",
                "owner": owner,
                "primary_contact_id": primary.contact_id,
                "contact_ids": list(contact_ids),
                "pipeline": "new-business",
                "close_reason": close_reason,
                "source_system": "crm",
                "version": version,
            })

        clock = iter(times)
        emit(next(clock), "created", "qualification")
        self._advance(primary, min(created + MINUTE_MS, DATA_END_MS), "opportunity")
        stage = "qualification"
        for k in range(steps):
            if rng.random() < 0.3:
                amount = round(mean_size * rng.uniform(0.4, 1.6), -2)
                emit(next(clock), "amount_changed", stage)
            else:
                stage = DEAL_STAGES[min(k, len(DEAL_STAGES) - 1)]
                emit(next(clock), "stage_changed", stage)
        if reopen:
            emit(next(clock), "lost", "closed_lost", "no budget")
            emit(next(clock), "reopened", "discovery")
            stage = "discovery"
        if outcome == "won":
            if amount is None and rng.random() < 0.5:
                amount = round(mean_size, -2)
            emit(next(clock), "won", "closed_won")
            self._advance(primary, close, "customer")
        elif outcome == "lost":
            emit(next(clock), "lost", "closed_lost", rng.choice(["no budget", "competitor", "no decision"]))
        if not self.demo and rng.random() < 0.03:
            # A stale sync: an older version delivered later. The latest is by version first.
            stale = copy.deepcopy(self.data.deal_changes[-1])
            stale.update(event_id=self._uuid(), version=max(0, version - 1), change="stage_changed",
                         stage="proposal", event_time=min(stale["event_time"] + HOUR_MS, DATA_END_MS))
            stale["received_at"] = stale["event_time"] + 1000
            self.data.deal_changes.append(stale)

    # -- merges ----------------------------------------------------------------------------
    def _merges(self, count: int) -> None:
        """Merge duplicates: B merged_into A. Chains exist (C -> B -> A); cycles never do."""
        rng = self.rng
        merged_into: dict[str, str] = {}
        plans = {p.contact_id: p for p in self.plans}
        primaries = sorted({d["primary_contact_id"] for d in self.data.deal_changes})

        def reaches(start: str, target: str) -> bool:
            node: str | None = start
            while node is not None:
                if node == target:
                    return True
                node = merged_into.get(node)
            return False

        def candidates(absorbed: str) -> list[str]:
            a = plans[absorbed]
            return [p.contact_id for p in self.plans
                    if p.contact_id != absorbed and not reaches(p.contact_id, absorbed)
                    and (not self.demo or (p.channel == a.channel and p.kind != "cold"))]

        def merge(absorbed: str, survivor: str, not_before: int = 0) -> int | None:
            start = max(plans[absorbed].created_at, plans[survivor].created_at, plans[absorbed].born,
                        plans[survivor].born, not_before) + DAY_MS
            if start >= DATA_END_MS - HOUR_MS or absorbed in merged_into or reaches(survivor, absorbed):
                return None
            t = rng.randrange(start, min(start + 60 * DAY_MS, DATA_END_MS))
            merged_into[absorbed] = survivor
            self._contact_change(t, absorbed, "merge", merged_into=survivor)
            return t

        done = 0
        attempts = 0
        # Chains: C -> B then B -> A (in event time), and once the other way round.
        while done + 2 <= count and done < 4 and attempts < 200:
            attempts += 1
            pool = [p for p in self.plans if p.kind != "cold" or not self.demo]
            b = rng.choice(pool).contact_id
            c_options = [x for x in candidates(b) if x not in merged_into and x not in merged_into.values()]
            a_options = [x for x in candidates(b) if x not in merged_into]
            if not c_options or not a_options:
                continue
            c = rng.choice(c_options)
            a = rng.choice([x for x in a_options if x != c] or a_options)
            if a == c or b in merged_into:
                continue
            if done == 0:
                t1 = merge(c, b)
                t2 = merge(b, a, not_before=t1 or 0) if t1 is not None else None
            else:
                t2 = merge(b, a)
                t1 = merge(c, b, not_before=t2 or 0) if t2 is not None else None
            done += (t1 is not None) + (t2 is not None)
        while done < count and attempts < 2000:
            attempts += 1
            ids = primaries if primaries and rng.random() < 0.5 else [p.contact_id for p in self.plans]
            absorbed = rng.choice(ids)
            options = candidates(absorbed)
            if absorbed in merged_into or not options:
                continue
            # A deal's primary contact is merged away after the deal exists: its deals get re-stamped.
            after_deals = max((d["event_time"] for d in self.data.deal_changes
                               if d["primary_contact_id"] == absorbed and d["change"] == "created"), default=0)
            if merge(absorbed, rng.choice(options), not_before=after_deals) is not None:
                done += 1
