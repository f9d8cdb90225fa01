"""The batch oracle on hand-made datasets whose answers are known by hand.

Each test pins one definition of docs/definitions.md: if the
oracle drifts from them, the stream and report tests that trust it would be wrong too.
"""

from __future__ import annotations

import pytest

from schemas.codec import encode
from tests.oracle.batch import Batch, RawEvents, canonical, contacts, deals
from tests.oracle.generator import Record
from tests.oracle.records import contact_change, day, deal_change, eid, identify, touch


def classify(t: Record) -> tuple[str, str, str]:
    """Test taxonomy: channel = utm_source (else the touch type), source = medium, detail = campaign."""
    return (t["utm_source"] or t["touch_type"], t["utm_medium"] or "", t["utm_campaign"] or "")


def test_hand_made_records_fit_the_schemas() -> None:
    """The hand-made builders produce records the Avro codec accepts."""
    encode("Touch", touch(1, day(1), anonymous_id="a"))
    encode("Identify", identify(2, day(1), "a", "C"))
    encode("ContactChange", contact_change(3, day(1), "C", "merge", merged_into="D"))
    encode("DealChange", deal_change(4, day(1), "d1", "created", 1, "C", amount=10.0))


def test_first_touch_ignores_arrival_order_and_duplicates() -> None:
    """The first touch is the minimum (event_time, event_id), whatever the order and repeats."""
    events = [
        identify(1, day(5), "a1", "C"),
        touch(12, day(2), anonymous_id="a1", utm_source="same-time-larger-id"),
        touch(11, day(2), anonymous_id="a1", utm_source="first"),  # same time, smaller event id
        touch(13, day(3), anonymous_id="a1", utm_source="second"),
        touch(14, day(9), contact_id="C", utm_source="later"),
    ]
    arrivals = [("x", "k", e) for e in reversed(events)] + [("x", "k", dict(e)) for e in events]
    for variant in (events, arrivals):
        c = contacts(variant, classify)["C"]
        assert c.first_touch_event_id == eid(11)
        assert (c.lead_channel, c.first_touch_time) == ("first", day(2))
        assert c.touch_count == 4


def test_late_identify_moves_lead_source_earlier() -> None:
    """A second device identified late brings its earlier touches: the lead source moves earlier."""
    before = [
        touch(1, day(10), anonymous_id="laptop", utm_source="email"),
        identify(2, day(10) + 1000, "laptop", "C"),
        touch(3, day(2), anonymous_id="phone", utm_source="paid-social"),  # not yet linked to C
    ]
    assert contacts(before, classify)["C"].lead_channel == "email"
    after = [*before, identify(4, day(30), "phone", "C")]
    c = contacts(after, classify)["C"]
    assert (c.lead_channel, c.first_touch_event_id) == ("paid-social", eid(3))
    assert c.anonymous_ids == ("laptop", "phone")
    assert c.created_at == day(10) + 1000  # the first identify, not the late one


def test_merge_chain_is_transitive() -> None:
    """C merged into B, then B into A: everything of B and C belongs to A; B and C are not live."""
    events = [
        identify(1, day(5), "a-a", "A"), touch(2, day(5), anonymous_id="a-a", utm_source="direct"),
        identify(3, day(4), "a-b", "B"), touch(4, day(4), anonymous_id="a-b", utm_source="search"),
        identify(5, day(3), "a-c", "C"), touch(6, day(3), anonymous_id="a-c", utm_source="event"),
        contact_change(7, day(20), "C", "merge", merged_into="B"),
        contact_change(8, day(21), "B", "merge", merged_into="A"),
        touch(9, day(40), contact_id="C", utm_source="after-merge"),  # an old id keeps arriving
    ]
    batch = Batch(events, classify)
    assert batch.canonical("C") == "A" and canonical({"C": "B", "B": "A"}, "C") == "A"
    result = batch.contacts()
    assert set(result) == {"A"}
    a = result["A"]
    assert (a.lead_channel, a.first_touch_event_id) == ("event", eid(6))
    assert a.merged_contact_ids == ("B", "C")
    assert a.anonymous_ids == ("a-a", "a-b", "a-c")
    assert a.touch_count == 4 and [t["event_id"] for t in batch.touches_of("C")][-1] == eid(9)
    assert a.created_at == day(3)


def test_merge_chain_recorded_in_reverse_order() -> None:
    """B into A first, then C into the already absorbed B: C still ends in A."""
    events = [
        contact_change(1, day(1), "A", "created"), contact_change(2, day(1), "B", "created"),
        contact_change(3, day(1), "C", "created"),
        contact_change(4, day(5), "B", "merge", merged_into="A"),
        contact_change(5, day(6), "C", "merge", merged_into="B"),
    ]
    assert set(contacts(events, classify)) == {"A"}


def test_merge_cycle_is_refused() -> None:
    """Merge data with a cycle is reported, never looped on."""
    with pytest.raises(ValueError, match="cycle"):
        canonical({"A": "B", "B": "A"}, "A")


def test_lead_method_is_first_outbound_at_or_after_creation() -> None:
    """Outbound touches before creation do not count; one exactly at creation does."""
    events = [
        touch(1, day(1), contact_id="C", touch_type="outbound_call"),
        contact_change(2, day(2), "C", "created"),
        touch(3, day(3), contact_id="C", touch_type="outbound_call"),
        touch(4, day(2), contact_id="C", touch_type="outbound_email"),  # exactly at creation
        touch(5, day(2) - 1, contact_id="C", touch_type="inbound_call"),
        # D is named only by touches: no creation time, so no lead method.
        touch(6, day(4), contact_id="D", touch_type="outbound_email"),
    ]
    result = contacts(events, classify)
    assert result["C"].lead_method == "outbound_email"
    assert result["C"].lead_channel == "outbound_call"  # lead method never overwrites lead source
    assert result["D"].created_at is None and result["D"].lead_method is None


def test_lead_method_none_without_outbound() -> None:
    """A contact reached only by inbound touches has no lead method."""
    events = [identify(1, day(1), "a", "C"), touch(2, day(2), contact_id="C", touch_type="inbound_call")]
    assert contacts(events, classify)["C"].lead_method is None


def test_contact_source_is_earliest_non_null_over_merged_contacts() -> None:
    """The earliest ContactChange carrying a source wins, over the contact and what merged into it."""
    events = [
        contact_change(1, day(1), "A", "created"),  # no source on creation
        contact_change(2, day(5), "A", "updated", contact_source="Bob Contacts"),
        contact_change(3, day(9), "A", "updated", contact_source="Web form"),  # re-typed later
    ]
    assert contacts(events, classify)["A"].contact_source == "Bob Contacts"
    merged = [
        *events,
        contact_change(4, day(3), "B", "created", contact_source="Event list"),
        contact_change(5, day(12), "B", "merge", merged_into="A"),
    ]
    assert contacts(merged, classify)["A"].contact_source == "Event list"
    assert contacts([contact_change(6, day(1), "Z", "created")], classify)["Z"].contact_source is None


def test_contact_without_touch_is_unknown_and_visitors_belong_to_nobody() -> None:
    """No touch: lead source Unknown/Unknown/''. A never-identified visitor is no contact."""
    events = [
        contact_change(1, day(1), "C", "created", contact_source="Purchased list"),
        touch(2, day(2), anonymous_id="stranger", utm_source="x"),
    ]
    result = contacts(events, classify)
    assert set(result) == {"C"}
    c = result["C"]
    assert (c.lead_channel, c.lead_source, c.lead_detail) == ("Unknown", "Unknown", "")
    assert c.first_touch_event_id is None and c.touch_count == 0


def test_contact_creation_and_lead_creation_touch() -> None:
    """created_at = min(first identify, first created); lead-creation touch = last touch at or before it."""
    events = [
        touch(1, day(1), anonymous_id="a", utm_source="s1"),
        touch(2, day(3), anonymous_id="a", utm_source="s2"),
        touch(3, day(6), anonymous_id="a", utm_source="s3"),
        identify(4, day(4), "a", "C"),
        contact_change(5, day(3), "C", "created"),
        identify(6, day(1), "b", "D"),  # D: identified before its first touch
        touch(7, day(2), anonymous_id="b"),
    ]
    result = contacts(events, classify)
    assert result["C"].created_at == day(3)
    assert result["C"].lead_creation_event_id == eid(2)  # at created_at counts as "at or before"
    assert result["D"].lead_creation_event_id == eid(7)  # none before: the first one after


def test_contact_exists_when_only_a_deal_names_it() -> None:
    """A deal's primary contact exists even without any other event."""
    events = [deal_change(1, day(1), "d1", "created", 1, "P", amount=5.0)]
    assert set(contacts(events, classify)) == {"P"}
    assert deals(events, classify)["d1"].lead_channel == "Unknown"


def test_deal_latest_version_status_and_stamp_through_merged_primary() -> None:
    """Latest = max (version, event_time); won/lost/open from it; stamp of the canonical primary."""
    events = [
        identify(1, day(1), "a-b", "B"), touch(2, day(1), anonymous_id="a-b", utm_source="webinar-b"),
        identify(3, day(2), "a-a", "A"), touch(4, day(2), anonymous_id="a-a", utm_source="search-a"),
        contact_change(5, day(2), "A", "created", contact_source="Web form"),
        contact_change(6, day(1), "B", "created", contact_source="Event list"),
        deal_change(10, day(10), "d1", "created", 1, "B", amount=100.0, contact_ids=["B", "X"]),
        deal_change(11, day(20), "d1", "amount_changed", 2, "B", amount=250.0, contact_ids=["B", "X"]),
        deal_change(12, day(30), "d1", "won", 3, "B", amount=300.0, contact_ids=["B", "X"]),
        # A stale sync: lower version, later time. The latest stays version 3.
        deal_change(13, day(40), "d1", "stage_changed", 2, "B", amount=1.0, contact_ids=["B", "X"]),
        contact_change(14, day(50), "B", "merge", merged_into="A"),  # primary merged away later
        # Same version twice: the later event time wins.
        deal_change(20, day(10), "d2", "created", 1, "A", amount=None),
        deal_change(21, day(12), "d2", "lost", 2, "A", amount=None),
        deal_change(22, day(14), "d2", "reopened", 2, "A", amount=70.0),
    ]
    result = deals(events, classify)
    d1 = result["d1"]
    assert (d1.status, d1.amount, d1.version, d1.latest_event_id) == ("won", 300.0, 3, eid(12))
    assert (d1.created_at, d1.closed_at) == (day(10), day(30))
    assert d1.primary_contact_id == "A" and d1.contact_ids == ("A", "X")
    # A absorbed B: A's first touch is B's, and its contact source B's earlier one.
    assert (d1.lead_channel, d1.contact_source, d1.first_touch_time) == ("webinar-b", "Event list", day(1))
    d2 = result["d2"]
    assert (d2.status, d2.closed_at, d2.amount) == ("open", None, 70.0)


def test_deal_without_created_change_uses_earliest_change() -> None:
    """created_at falls back to the earliest change when no 'created' arrived."""
    events = [
        deal_change(1, day(5), "d", "stage_changed", 2, "P"),
        deal_change(2, day(7), "d", "lost", 3, "P"),
    ]
    d = deals(events, classify)["d"]
    assert (d.created_at, d.status, d.closed_at) == (day(5), "lost", day(7))


def test_raw_events_accepts_every_input_shape() -> None:
    """Dataset-like pairs, arrival triples and plain records give the same split, duplicates dropped."""
    records = [touch(1, day(1), anonymous_id="a"), identify(2, day(1), "a", "C"),
               contact_change(3, day(1), "C", "created"), deal_change(4, day(1), "d", "created", 1, "C")]
    for shape in (records, [("t", r) for r in records], [("t", "k", r) for r in records + records]):
        raw = RawEvents.of(shape)
        assert [len(raw.touches), len(raw.identifies), len(raw.contact_changes), len(raw.deal_changes)] == [1] * 4
