"""The report oracle on hand-made datasets: every number below was computed by hand.

Attribution uses one 4-touch journey (touches on days 1, 2, 3, 4; contact created on day
2.5, so the lead-creation touch is T2; deal created on day 3.5, so the deal-creation touch
is T3; won on day 5, so the closing touch is T4) and variations of it.
"""

from __future__ import annotations

import math

import pytest

from tests.oracle.generator import Record, generate
from tests.oracle.records import contact_change, day, deal_change, eid, identify, touch
from tests.oracle.reports import MODELS, Reports, diff, quarter_of

T1, T2, T3, T4 = eid(1), eid(2), eid(3), eid(4)


def classify(t: Record) -> tuple[str, str, str]:
    """Test taxonomy: channel = utm_source (else the touch type), source = medium, detail = campaign."""
    return (t["utm_source"] or t["touch_type"], t["utm_medium"] or "", t["utm_campaign"] or "")


def journey_events(identify_day: float = 2.5, deal_created_day: float = 3.5, close_day: float = 5.0) -> list[Record]:
    """Contact C with touches T1..T4 (channels s1..s4) on days 1..4 and a won deal of 1000."""
    return [
        *(touch(i, day(i), anonymous_id="a", utm_source=f"s{i}", utm_medium=f"m{i % 2}") for i in range(1, 5)),
        identify(10, day(identify_day), "a", "C"),
        deal_change(20, day(deal_created_day), "d", "created", 1, "C", amount=1000.0),
        deal_change(21, day(close_day), "d", "won", 2, "C", amount=1000.0),
    ]


def credits(events: list[Record], model: str, half_life_days: float = 7.0, deal: str = "d") -> list[float]:
    reports = Reports(events, classify)
    result = reports.credits(reports.deals[deal], model, half_life_days)
    return [result.get(event_id, 0.0) for event_id in (T1, T2, T3, T4)]


FOUR_TOUCH = {
    "first_touch": [1.0, 0.0, 0.0, 0.0],
    "last_touch": [0.0, 0.0, 0.0, 1.0],
    "linear": [0.25, 0.25, 0.25, 0.25],
    "u_shaped": [0.4, 0.4, 0.1, 0.1],
    "w_shaped": [0.3, 0.3, 0.3, 0.1],
    "full_path": [0.25, 0.25, 0.25, 0.25],  # no other touch: its 10% spreads over the four
    "j_shaped": [0.2, 0.1, 0.1, 0.6],
    "inverse_j": [0.6, 0.1, 0.1, 0.2],
    # half-life 1 day, close on day 5: 2^-4, 2^-3, 2^-2, 2^-1, normalised by 15/16
    "time_decay": [1 / 15, 2 / 15, 4 / 15, 8 / 15],
}


@pytest.mark.parametrize("model", MODELS)
def test_four_touch_journey_weights(model: str) -> None:
    """Each model's hand-computed weights on the 4-touch journey."""
    assert credits(journey_events(), model, half_life_days=1.0) == pytest.approx(FOUR_TOUCH[model])


def test_time_decay_default_half_life_is_seven_days() -> None:
    """Without a half-life the weights are 2^(-delta/7 days), normalised."""
    raw = [2 ** (-(5 - d) / 7) for d in (1, 2, 3, 4)]
    assert credits(journey_events(), "time_decay") == pytest.approx([w / sum(raw) for w in raw])


def test_coincident_positions_add_their_shares() -> None:
    """Lead-creation on the first touch (identify on day 1.5): T1 gets both shares."""
    events = journey_events(identify_day=1.5)
    assert credits(events, "u_shaped") == pytest.approx([0.8, 0.2 / 3, 0.2 / 3, 0.2 / 3])
    assert credits(events, "w_shaped") == pytest.approx([0.6, 0.05, 0.3, 0.05])
    assert credits(events, "full_path") == pytest.approx([0.45, 0.1, 0.225, 0.225])
    # Deal created on day 4.5: the deal-creation touch is the closing touch T4.
    events = journey_events(deal_created_day=4.5)
    assert credits(events, "full_path") == pytest.approx([0.225, 0.225, 0.1, 0.45])


def test_missing_position_share_is_redistributed_in_proportion() -> None:
    """No deal-creation touch (deal created before any touch): its 30% is spread 3:3:1 over the rest."""
    events = journey_events(deal_created_day=0.5)
    assert credits(events, "w_shaped") == pytest.approx([3 / 7, 3 / 7, 1 / 14, 1 / 14])


def test_missing_lead_creation_touch_outside_the_journey() -> None:
    """The primary's lead-creation touch is after the close: it is not in the journey and loses its share."""
    events = [
        *(touch(i, day(i), anonymous_id="b", utm_source=f"s{i}") for i in range(1, 5)),
        identify(10, day(2.5), "b", "Q"),
        contact_change(11, day(0.5), "P", "created"),
        touch(12, day(6), contact_id="P", utm_source="late"),
        deal_change(20, day(3.5), "d", "created", 1, "P", amount=1000.0, contact_ids=["P", "Q"]),
        deal_change(21, day(5), "d", "won", 2, "P", amount=1000.0, contact_ids=["P", "Q"]),
    ]
    assert credits(events, "w_shaped") == pytest.approx([3 / 7, 1 / 14, 3 / 7, 1 / 14])
    assert credits(events, "u_shaped") == pytest.approx([2 / 3, 1 / 9, 1 / 9, 1 / 9])


def test_two_touches_without_others() -> None:
    """No "other" touch: the others' share is divided among the positions in proportion."""
    events = [e for e in journey_events() if e["event_id"] not in (T3, T4)]
    assert credits(events, "u_shaped")[:2] == pytest.approx([0.5, 0.5])
    assert credits(events, "j_shaped")[:2] == pytest.approx([0.25, 0.75])
    assert credits(events, "inverse_j")[:2] == pytest.approx([0.75, 0.25])


@pytest.mark.parametrize("model", MODELS)
def test_one_touch_journey_gets_everything(model: str) -> None:
    """A journey of one touch gives it 100% under every model."""
    events = [e for e in journey_events() if e["event_id"] not in (T2, T3, T4)]
    assert credits(events, model) == [1.0, 0.0, 0.0, 0.0]


def test_touches_after_close_and_empty_journeys() -> None:
    """Touches after the close are not in the journey; a deal without touches gives no credit."""
    events = [*journey_events(deal_created_day=1.5, close_day=2.5),
              deal_change(30, day(1), "e", "created", 1, "Z", amount=5.0),
              deal_change(31, day(2), "e", "won", 2, "Z", amount=5.0)]
    reports = Reports(events, classify)
    assert [t["event_id"] for t in reports.journey(reports.deals["d"])] == [T1, T2]
    assert reports.credits(reports.deals["e"], "linear") == {}
    rows = reports.attribution("linear")
    assert rows == [{"channel": "s1", "deal_credit": 0.5, "revenue_credit": 500.0},
                    {"channel": "s2", "deal_credit": 0.5, "revenue_credit": 500.0}]


def test_attribution_rows_keys_levels_and_open_lost() -> None:
    """Rows carry channel/deal_credit/revenue_credit; --by picks the level; open/lost add deal credit only."""
    events = [
        *journey_events(),
        identify(40, day(1), "o", "O"), touch(41, day(1), anonymous_id="o", utm_source="open-src"),
        touch(42, day(8), anonymous_id="o", utm_source="later-src"),  # the last event: "now"
        deal_change(43, day(2), "open-deal", "created", 1, "O", amount=50.0),
        identify(50, day(1), "l", "L"), touch(51, day(1), anonymous_id="l", utm_source="lost-src"),
        deal_change(52, day(2), "lost-deal", "created", 1, "L", amount=70.0),
        deal_change(53, day(3), "lost-deal", "lost", 2, "L", amount=70.0),
    ]
    reports = Reports(events, classify)
    assert [r["channel"] for r in reports.attribution("first_touch")] == ["s1"]
    rows = {r["channel"]: r for r in reports.attribution("last_touch", include_open_lost=True)}
    assert rows["later-src"] == {"channel": "later-src", "deal_credit": 1.0, "revenue_credit": 0.0}
    assert rows["lost-src"] == {"channel": "lost-src", "deal_credit": 1.0, "revenue_credit": 0.0}
    assert rows["s4"]["revenue_credit"] == 1000.0
    by_source = {r["channel"]: r["deal_credit"] for r in reports.attribution("linear", by="source")}
    assert by_source == {"m0": pytest.approx(0.5), "m1": pytest.approx(0.5)}
    with pytest.raises(ValueError, match="--by"):
        reports.attribution("linear", by="campaign")
    with pytest.raises(ValueError, match="unknown model"):
        reports.attribution("position_based")


def test_credits_sum_to_one_per_deal_on_generated_data() -> None:
    """Over a generated dataset, every deal with a journey hands out exactly 1, never a negative credit."""
    data = generate(seed=2, contacts=150, touches=1500, deals=60, merges=4)
    reports = Reports(data.arrival(seed=3), classify)
    checked = 0
    for deal in reports.deals.values():
        for model in MODELS:
            values = reports.credits(deal, model).values()
            if values:
                checked += 1
                assert math.isclose(sum(values), 1.0, rel_tol=1e-12)
                assert min(values) >= 0.0
    assert checked >= 9 * 40
    won = sum(1 for d in reports.deals.values() if d.status == "won" and reports.journey(d))
    for model in MODELS:
        assert sum(r["deal_credit"] for r in reports.attribution(model)) == pytest.approx(won)


# -- sources, quarterly, contact-sources ----------------------------------------------------
def report_events() -> list[Record]:
    """C1, C2 from channel A (Q1, Q2 2025), C3 from B, C4 without touches; five deals."""
    return [
        identify(1, day(1), "a1", "C1"), touch(2, day(1), anonymous_id="a1", utm_source="A", utm_medium="cpc"),
        contact_change(3, day(1), "C1", "created", contact_source="Web form"),
        identify(4, day(100), "a2", "C2"), touch(5, day(100), anonymous_id="a2", utm_source="A", utm_medium="mail"),
        contact_change(6, day(100), "C2", "created", contact_source="Web form"),
        identify(7, day(2), "a3", "C3"), touch(8, day(2), anonymous_id="a3", utm_source="B"),
        contact_change(9, day(2), "C3", "created", contact_source="Bob Contacts"),
        contact_change(10, day(3), "C4", "created", contact_source="Purchased list"),
        deal_change(20, day(10), "d1", "created", 1, "C1", amount=1000.0),
        deal_change(21, day(20), "d1", "won", 2, "C1", amount=1000.0),
        deal_change(22, day(10), "d2", "created", 1, "C1", amount=3000.0),
        deal_change(23, day(40), "d2", "won", 2, "C1", amount=3000.0),
        deal_change(24, day(110), "d3", "created", 1, "C2", amount=500.0),
        deal_change(25, day(120), "d3", "lost", 2, "C2", amount=500.0),
        deal_change(26, day(15), "d4", "created", 1, "C3", amount=None),
        deal_change(27, day(16), "d5", "created", 1, "C3", amount=200.0),
    ]


def sources_row(lead_source: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "lead_source": lead_source, "leads": 0, "deals": 0, "won": 0, "lost": 0, "open": 0, "win_rate": None,
        "avg_deal_size": None, "revenue": 0.0, "pipeline": 0.0, "median_days_to_close": None,
    }
    row.update(values)
    return row


def test_sources_by_channel() -> None:
    """leads, deals, won/lost/open, win_rate, avg_deal_size, revenue, pipeline, median days; Unknown included."""
    rows = Reports(report_events(), classify).sources()
    assert rows == [
        sources_row("A", leads=2, deals=3, won=2, lost=1, win_rate=2 / 3, avg_deal_size=2000.0, revenue=4000.0,
                    median_days_to_close=20.0),
        sources_row("B", leads=1, deals=2, open=2, pipeline=200.0),
        sources_row("Unknown", leads=1),
    ]


def test_sources_since_until_and_levels() -> None:
    """--since/--until filter contacts by first touch and deals by creation; no-touch contacts drop out."""
    reports = Reports(report_events(), classify)
    assert reports.sources(since="2025-04-01") == [
        sources_row("A", leads=1, deals=1, lost=1, win_rate=0.0),
    ]
    before = reports.sources(until="2025-04-01")
    assert [(r["lead_source"], r["leads"], r["deals"]) for r in before] == [("A", 1, 2), ("B", 1, 2)]
    assert [r["lead_source"] for r in reports.sources(by="source")] == ["", "Unknown", "cpc", "mail"]


def test_quarterly() -> None:
    """Leads by first-touch quarter, deals by creation quarter, closed numbers by close quarter."""
    rows = Reports(report_events(), classify).quarterly()
    base = {"won": 0, "lost": 0, "win_rate": None, "avg_deal_size": None, "revenue": 0.0}
    assert rows == [
        {"quarter": "2025-Q1", "lead_source": "A", "leads": 1, "deals": 2, **base, "won": 2, "win_rate": 1.0,
         "avg_deal_size": 2000.0, "revenue": 4000.0},
        {"quarter": "2025-Q1", "lead_source": "B", "leads": 1, "deals": 2, **base},
        {"quarter": "2025-Q2", "lead_source": "A", "leads": 1, "deals": 1, **base, "lost": 1, "win_rate": 0.0},
    ]
    assert quarter_of(day(0)) == "2025-Q1" and quarter_of(day(90)) == "2025-Q2"


def test_contact_sources() -> None:
    """Per contact source: contacts, engaged contacts, deals, won and revenue; one row per source."""
    rows = Reports(report_events(), classify).contact_sources()
    assert rows == [
        {"contact_source": "Bob Contacts", "contacts": 1, "engaged_contacts": 1, "deals": 2, "won": 0,
         "revenue": 0.0},
        {"contact_source": "Purchased list", "contacts": 1, "engaged_contacts": 0, "deals": 0, "won": 0,
         "revenue": 0.0},
        {"contact_source": "Web form", "contacts": 2, "engaged_contacts": 2, "deals": 3, "won": 2,
         "revenue": 4000.0},
    ]


def test_duplicates_change_no_report() -> None:
    """Delivering every event twice leaves every report identical."""
    events = report_events()
    once, twice = Reports(events, classify), Reports(events + [dict(e) for e in events], classify)
    assert once.sources() == twice.sources() and once.quarterly() == twice.quarterly()
    assert once.contact_sources() == twice.contact_sources()


def test_diff_reports_real_differences_only() -> None:
    """diff tolerates float noise and zero-only missing rows, and reports everything else."""
    expected = [{"channel": "a", "deal_credit": 0.1 + 0.2, "revenue_credit": 3.0}]
    assert diff(expected, [{"channel": "a", "deal_credit": 0.3, "revenue_credit": 3}], key=["channel"]) == []
    assert diff(expected, [{"channel": "a", "deal_credit": 0.31, "revenue_credit": 3.0}], key=["channel"])
    extra = [*expected, {"channel": "b", "deal_credit": 0.0, "revenue_credit": 0.0}]
    assert diff(expected, extra, key=["channel"], zero_missing=True) == []
    assert diff(expected, extra, key=["channel"])
    assert diff([{"k": 1, "v": None}], [{"k": 1, "v": 0.0}], key=["k"])
