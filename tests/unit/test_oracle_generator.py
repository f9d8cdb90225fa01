"""The oracle's dataset generator: schema fit, realism the oracle tests rely on, arrival order."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from schemas.codec import decode, encode
from tests.oracle.generator import DEMO_CHANNELS, OUTBOUND_TYPES, Dataset, Record, arrival_stats, generate
from tests.oracle.reports import Reports

RECORD_OF = {"touches": "Touch", "identities": "Identify", "contacts": "ContactChange", "deals": "DealChange"}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=7, contacts=600, touches=6000, deals=120, merges=12)


def test_every_record_encodes_and_round_trips(dataset: Dataset) -> None:
    """Each generated record is encodable with its Avro schema and decodes back unchanged."""
    for topic, record in dataset.records():
        name, back = decode(encode(RECORD_OF[topic], record))
        assert name == RECORD_OF[topic]
        assert back == record


def test_same_seed_same_events_other_seed_other_events() -> None:
    """Generation is a pure function of its seed."""
    a = generate(seed=3, contacts=50, touches=400, deals=10, merges=3)
    b = generate(seed=3, contacts=50, touches=400, deals=10, merges=3)
    c = generate(seed=4, contacts=50, touches=400, deals=10, merges=3)
    assert a.records() == b.records()
    assert a.records() != c.records()


def test_requested_sizes(dataset: Dataset) -> None:
    """Exactly the requested touches, contacts, deals and merges."""
    assert len(dataset.touches) == 6000
    contacts = {r["contact_id"] for r in dataset.contact_changes if r["change"] == "created"}
    assert len(contacts) == 600
    assert len({r["deal_id"] for r in dataset.deal_changes}) == 120
    assert sum(r["change"] == "merge" for r in dataset.contact_changes) == 12
    assert len({r["event_id"] for _, r in dataset.records()}) == len(dataset.records())


def test_identity_realism(dataset: Dataset) -> None:
    """Several anonymous ids per contact, identifies before and after touches, unidentified visitors."""
    anon_contacts: dict[str, set[str]] = {}
    identify_time: dict[str, int] = {}
    for r in dataset.identifies:
        anon_contacts.setdefault(r["contact_id"], set()).add(r["anonymous_id"])
        identify_time[r["anonymous_id"]] = min(identify_time.get(r["anonymous_id"], r["event_time"]), r["event_time"])
    assert max(len(v) for v in anon_contacts.values()) >= 3
    web = [t for t in dataset.touches if t["anonymous_id"] is not None]
    known = [t for t in web if t["anonymous_id"] in identify_time]
    before = [t for t in known if t["event_time"] < identify_time[t["anonymous_id"]]]
    after = [t for t in known if t["event_time"] > identify_time[t["anonymous_id"]]]
    never = [t for t in web if t["anonymous_id"] not in identify_time]
    assert before and after and never


def test_offline_outbound_and_messy_touches(dataset: Dataset) -> None:
    """Offline touches carry a contact id and no anonymous id; messy and unknown UTMs exist."""
    types = Counter(t["touch_type"] for t in dataset.touches)
    for kind in ("event_scan", "webinar_attended", "inbound_call", "direct_mail_response", *OUTBOUND_TYPES):
        assert types[kind] > 0, kind
    for t in dataset.touches:
        if t["touch_type"] in ("event_scan", "webinar_attended", "outbound_call", "outbound_email"):
            assert t["anonymous_id"] is None and t["contact_id"] is not None
    sources = {t["utm_source"] for t in dataset.touches}
    assert {" Google ", "google", "newsletter", "linkedin"} <= sources
    assert any(t["gclid"] and t["utm_source"] is None for t in dataset.touches)
    assert any(t["utm_medium"] in ("xyz", "print", "audio") for t in dataset.touches)


def test_merges_form_chains_without_cycles(dataset: Dataset) -> None:
    """Merges include a chain C -> B -> A; following merged_into always terminates."""
    merged_into = {r["contact_id"]: r["merged_into"] for r in dataset.contact_changes if r["change"] == "merge"}
    assert any(survivor in merged_into for survivor in merged_into.values())
    for start, survivor in merged_into.items():
        seen = {start}
        node = survivor
        while node in merged_into:
            assert node not in seen
            seen.add(node)
            node = merged_into[node]
    primaries = {r["primary_contact_id"] for r in dataset.deal_changes}
    assert primaries & set(merged_into)


def test_deals_span_quarters_and_outcomes(dataset: Dataset) -> None:
    """Deals are created over at least 4 quarters, with won, lost, open and reopened ones."""
    quarters = set()
    last: dict[str, str] = {}
    for r in sorted(dataset.deal_changes, key=lambda r: (r["version"], r["event_time"])):
        last[r["deal_id"]] = r["change"]
        if r["change"] == "created":
            moment = datetime.fromtimestamp(r["event_time"] / 1000, tz=UTC)
            quarters.add((moment.year, (moment.month - 1) // 3))
        assert 1 <= len(r["contact_ids"]) <= 3 and r["primary_contact_id"] in r["contact_ids"]
    assert len(quarters) >= 4
    outcomes = Counter(last.values())
    assert outcomes["won"] and outcomes["lost"] and sum(v for k, v in outcomes.items() if k not in ("won", "lost"))
    assert any(r["change"] == "reopened" for r in dataset.deal_changes)


def test_arrival_has_duplicates_and_out_of_order_events(dataset: Dataset) -> None:
    """About 5% duplicated deliveries and about 25% of events arriving after later-timed ones."""
    arrivals = dataset.arrival(seed=1)
    n = len(dataset.records())
    duplicates, late = arrival_stats(arrivals)
    assert len(arrivals) == n + duplicates
    assert 0.04 * n <= duplicates <= 0.06 * n
    assert 0.20 * n <= late <= 0.30 * n
    assert arrival_stats(sorted(arrivals, key=lambda a: a[2]["event_time"]))[1] == 0
    for topic, key, record in arrivals:
        if topic == "touches":
            assert key == (record["anonymous_id"] or record["contact_id"])
        elif topic == "identities":
            assert key == record["anonymous_id"]
        elif topic == "contacts":
            assert key == record["contact_id"]
        else:
            assert key == record["deal_id"]


def test_demo_first_touch_is_intended_channel_recipe() -> None:
    """In the demo profile every contact's earliest touch follows its channel's recipe."""
    data = generate(seed=5, contacts=300, touches=2400, deals=100, merges=4, profile="demo")
    assert set(data.intended_channel.values()) == set(DEMO_CHANNELS)
    identified = {r["anonymous_id"]: r["contact_id"] for r in data.identifies}
    first: dict[str, Record] = {}
    for t in data.touches:
        owner = t["contact_id"] or identified.get(t["anonymous_id"])
        if owner and (owner not in first or t["event_time"] < first[owner]["event_time"]):
            first[owner] = t
    expected_types = {"Events": {"event_scan"}, "Webinar": {"webinar_attended"}, "Outbound": set(OUTBOUND_TYPES)}
    for contact, channel in data.intended_channel.items():
        touch = first[contact]
        if channel in expected_types:
            assert touch["touch_type"] in expected_types[channel]
        elif channel == "Direct":
            assert touch["referrer"] is None and touch["utm_source"] is None and touch["gclid"] is None
        elif channel == "Email":
            assert touch["utm_medium"] == "email"
        elif channel == "Partner":
            assert touch["utm_medium"] == "partner"


def recipe_channel(t: Record) -> tuple[str, str, str]:
    """A minimal classifier that knows exactly the DEMO_CHANNELS recipes (not the product's taxonomy)."""
    offline = {"event_scan": "Events", "webinar_attended": "Webinar", "outbound_call": "Outbound",
               "outbound_email": "Outbound", "inbound_call": "Phone", "direct_mail_response": "Direct mail"}
    medium = (t["utm_medium"] or "").strip().lower()
    referrer = t["referrer"] or ""
    if t["touch_type"] in offline:
        channel = offline[t["touch_type"]]
    elif medium == "cpc" or (t["gclid"] and not medium):
        channel = "Paid Search"
    elif medium in ("paid_social", "email", "partner", "referral"):
        channel = {"paid_social": "Paid Social", "email": "Email", "partner": "Partner", "referral": "Referral"}[medium]
    elif medium:
        channel = "Unknown"
    elif not referrer:
        channel = "Direct"
    elif any(host in referrer for host in ("google.", "bing.", "duckduckgo.")):
        channel = "Organic Search"
    elif any(host in referrer for host in ("t.co/", "linkedin.", "reddit.", "facebook.")):
        channel = "Organic Social"
    else:
        channel = "Referral"
    return channel, (t["utm_source"] or "").strip().lower(), t["utm_campaign"] or ""


def test_demo_sources_show_each_channel_with_its_win_rate() -> None:
    """Demo: every channel is a lead source, and its observed win rate is its DEMO_CHANNELS rate (urn draw)."""
    data = generate(seed=7, contacts=1500, touches=12000, deals=600, merges=10, profile="demo")
    rows = {r["lead_source"]: r for r in Reports(data.arrival(), recipe_channel).sources()}
    assert set(DEMO_CHANNELS) <= set(rows)
    for channel, spec in DEMO_CHANNELS.items():
        row = rows[channel]
        closed = row["won"] + row["lost"]
        assert closed >= 20, (channel, row)
        assert abs(row["win_rate"] - spec.win_rate) <= 1 / (2 * closed) + 1e-12, (channel, row)
        assert row["avg_deal_size"] == pytest.approx(spec.mean_deal_size, rel=0.35), (channel, row)
    # other channels appear only through later touches: listed, but with no lead or deal
    for channel in set(rows) - set(DEMO_CHANNELS) - {"Unknown"}:
        assert rows[channel]["leads"] == 0 and rows[channel]["deals"] == 0, rows[channel]
