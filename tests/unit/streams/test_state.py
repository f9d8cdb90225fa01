"""Pure state rules of the stream worker (streams/state.py): no broker, no Faust."""

from __future__ import annotations

import copy
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import state as S

H = 30.0  # engagement half-life in days


def ref(i: str, t: int, typ: str = "page_view", ch: str = "Direct") -> dict[str, object]:
    return {"id": i, "t": t, "type": typ, "ch": ch, "src": ch.lower(), "det": ""}


touches_st = st.lists(
    st.tuples(st.integers(0, 50), st.sampled_from(["a", "b", "c", "d", "e"]),
              st.sampled_from(["page_view", "outbound_call", "outbound_email"])),
    min_size=1, max_size=25,
).map(lambda xs: [ref(f"{i}-{t}-{typ}", t, typ) for t, i, typ in xs])


@given(touches_st, st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_first_touch_is_the_minimum_whatever_the_order_and_duplicates(touches: list[dict[str, object]],
                                                                      rnd: random.Random) -> None:
    """First touch = min (event_time, event_id); arrival order and re-deliveries change nothing."""
    arrival = touches + rnd.sample(touches, k=len(touches) // 3)
    rnd.shuffle(arrival)
    contact = S.new_contact("c")
    for r in arrival:
        S.contact_touch(contact, r, H)
    assert contact["first"] == min(touches, key=S.touch_key)


def _contact_with(cid: str, touches: list[dict[str, object]], created: int | None, source: tuple[int, str] | None,
                  anons: list[str]) -> dict[str, object]:
    c = S.new_contact(cid)
    for r in touches:
        S.contact_touch(c, r, H)
    if created is not None:
        S.contact_change(c, {"event_id": f"cc-{cid}", "event_time": created, "change": "created"})
    if source is not None:
        S.contact_change(c, {"event_id": f"cs-{cid}", "event_time": source[0], "change": "updated",
                             "contact_source": source[1]})
    for a in anons:
        S.contact_identified(c, a, 100, None, outbound=[], anon_eng=None)
    return c


def test_merge_is_commutative_and_idempotent() -> None:
    """Absorbing B then C, C then B, or B twice gives the same lead source, sources and ids."""
    a = _contact_with("A", [ref("a1", 50)], 40, (45, "Form"), ["x"])
    b = _contact_with("B", [ref("b1", 20), ref("b2", 60, "outbound_call")], 30, (35, "Rep list"), ["y"])
    c = _contact_with("C", [ref("c1", 25)], None, None, ["z"])
    pb, pc = S.portable(b, H), S.portable(c, H)
    one, two = copy.deepcopy(a), copy.deepcopy(a)
    for p in (pb, pc, pb):
        S.merge_contact(one, p)
    for p in (pc, pb):
        S.merge_contact(two, p)
    v1, v2 = S.contact_view(one, H), S.contact_view(two, H)
    assert v1 == v2
    assert v1["first_touch_event_id"] == "b1"
    assert v1["contact_source"] == "Rep list"
    assert v1["created_at"] == 30
    assert v1["lead_method"] == "outbound_call"
    assert v1["merged_contact_ids"] == ["B", "C"]
    assert v1["anonymous_ids"] == ["x", "y", "z"]


def test_merge_chain_carries_the_absorbed_contacts_ids() -> None:
    """C merged into B, B into A: A lists both and has C's earlier first touch."""
    c = _contact_with("C", [ref("c1", 5)], None, None, [])
    b = _contact_with("B", [ref("b1", 10)], None, None, [])
    a = _contact_with("A", [ref("a1", 20)], None, None, [])
    S.merge_contact(b, S.portable(c, H))
    S.merge_contact(a, S.portable(b, H))
    view = S.contact_view(a, H)
    assert view["merged_contact_ids"] == ["B", "C"]
    assert view["first_touch_event_id"] == "c1"


def test_lead_method_is_the_first_outbound_touch_at_or_after_creation() -> None:
    """Outbound before creation does not count; creation moving earlier can change it; no creation: None."""
    c = _contact_with("C", [ref("o1", 10, "outbound_email"), ref("o2", 30, "outbound_call")], None, None, [])
    assert S.lead_method(c) is None
    S.contact_change(c, {"event_id": "e1", "event_time": 20, "change": "created"})
    assert S.lead_method(c) == "outbound_call"
    S.contact_identified(c, "anon", 10, None, outbound=[], anon_eng=None)
    assert S.lead_method(c) == "outbound_email"


def test_contact_source_is_the_earliest_change_carrying_one() -> None:
    """A later change never overwrites the contact source; an earlier one does."""
    c = S.new_contact("C")
    S.contact_change(c, {"event_id": "e2", "event_time": 20, "change": "updated", "contact_source": "Purchased"})
    S.contact_change(c, {"event_id": "e3", "event_time": 30, "change": "updated", "contact_source": "Partner"})
    assert S.contact_view(c, H)["contact_source"] == "Purchased"
    S.contact_change(c, {"event_id": "e1", "event_time": 10, "change": "updated", "contact_source": "Form"})
    assert S.contact_view(c, H)["contact_source"] == "Form"


def test_versions_strictly_increase_even_after_a_future_version() -> None:
    """next_version is > prev also when prev lies ahead of the clock."""
    prev = 0
    for _ in range(1000):
        nxt = S.next_version(prev)
        assert nxt > prev
        prev = nxt
    future = S.next_version(0) + 10**12
    assert S.next_version(future) == future + 1


def test_change_reason_prefers_the_most_significant_change() -> None:
    """A new earlier first touch reports earlier_touch; a merge hint wins over it."""
    c = _contact_with("C", [ref("t2", 20)], None, None, [])
    before = S.contact_view(c, H)
    S.contact_touch(c, ref("t1", 10), H)
    after = S.contact_view(c, H)
    assert S.change_reason(before, after, []) == "earlier_touch"
    assert S.change_reason(before, after, ["merge"]) == "merge"
    assert S.change_reason(None, after, []) == "first_touch"


def test_engagement_dedupes_recent_touches_and_combines_parts() -> None:
    """A re-delivered touch counts once; combined parts equal the sequential summary."""
    c = S.new_contact("C")
    for r in (ref("t1", 0, ch="Email"), ref("t2", S.MS_PER_DAY * 30, ch="Direct"), ref("t1", 0, ch="Email")):
        S.contact_touch(c, r, H)
    view = S.contact_view(c, H)
    assert view["touch_count"] == 2
    assert view["touches_by_channel"] == {"Email": 1, "Direct": 1}
    assert view["last_channel"] == "Direct"
    assert abs(view["engagement_score"] - 1.5) < 1e-6  # the 30-day-old touch weighs 1/2
    left, right = S.eng_new(), S.eng_new()
    S.eng_add(left, ref("t1", 0, ch="Email"), H)
    S.eng_add(right, ref("t2", S.MS_PER_DAY * 30, ch="Direct"), H)
    combined = S.eng_combine([right, left], H)
    assert combined["count"] == 2 and abs(combined["score"] - 1.5) < 1e-9


def _deal_change(eid: str, version: int, t: int, change: str, primary: str, *, amount: float | None = None
                 ) -> dict[str, object]:
    return {"event_id": eid, "event_time": t, "version": version, "change": change, "stage": None,
            "amount": amount, "currency": "USD", "owner": None, "pipeline": None, "close_reason": None,
            "source_system": None, "primary_contact_id": primary, "contact_ids": [primary]}


def test_deal_latest_version_status_and_stamp() -> None:
    """Latest by (version, event_time); won closes; stamps take the minimum; stale primaries are ignored."""
    d = S.new_deal("D")
    S.deal_change(d, _deal_change("e2", 2, 200, "won", "P", amount=500.0))
    S.deal_change(d, _deal_change("e1", 1, 100, "created", "P", amount=100.0))
    S.stamp_merge(d, "P", ref("late", 50, ch="Email"), None)
    S.stamp_merge(d, "P", ref("early", 40, ch="Referral"), {"id": "s", "t": 1, "value": "Form"})
    S.stamp_merge(d, "Q", ref("other", 1, ch="Display"), None)
    view = S.deal_view(d)
    assert view is not None
    assert (view["status"], view["amount"], view["created_at"], view["closed_at"]) == ("won", 500.0, 100, 200)
    assert (view["lead_channel"], view["first_touch_event_id"], view["contact_source"]) == ("Referral", "early", "Form")
    S.deal_change(d, _deal_change("e3", 3, 300, "reopened", "Q"))
    view = S.deal_view(d)
    assert view is not None
    assert (view["status"], view["closed_at"], view["lead_channel"]) == ("open", None, "Unknown")
