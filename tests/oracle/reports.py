"""Plain recomputation of every report from raw events: what ``leadstream query`` must print.

This sits at the far end of the flow, beside ClickHouse: a test runs ``leadstream query
REPORT --format json`` and compares its rows with the rows built here, which use exactly
the JSON keys of the README's "Reports" section. Everything is computed from ``batch.Batch`` (the oracle's
contacts and deals) with loops and sums, no SQL, so a reader can check each number by hand.

Conventions shared with the SQL side:
- ``by`` picks the lead-source level: ``channel``, ``source`` or ``detail``; the row key
  holds that level's value only (``lead_source`` in sources/quarterly, ``channel`` in
  attribution).
- A deal's amount of None counts as 0.0 in sums and means.
- Rows are sorted by their key; ``diff`` compares row lists ignoring order, reading a
  missing attribution row as all zeros.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from tests.oracle.batch import Batch, Classify, ExpectedContact, ExpectedDeal
from tests.oracle.generator import DAY_MS, Dataset, Record

__all__ = [
    "BY_LEVELS",
    "MODELS",
    "POSITION_SHARES",
    "Reports",
    "diff",
    "quarter_of",
    "to_ms",
]

BY_LEVELS = ("channel", "source", "detail")
MODELS = (
    "first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "full_path", "time_decay", "j_shaped", "inverse_j",
)
#: Shares of the positional models (docs/definitions.md, "Attribution"). Positions: first touch,
#: lead-creation touch, deal-creation touch, last (= closing) touch, and the others.
POSITION_SHARES: dict[str, dict[str, float]] = {
    "first_touch": {"first": 1.0},
    "last_touch": {"last": 1.0},
    "u_shaped": {"first": 0.4, "lead": 0.4, "others": 0.2},
    "w_shaped": {"first": 0.3, "lead": 0.3, "deal": 0.3, "others": 0.1},
    "full_path": {"first": 0.225, "lead": 0.225, "deal": 0.225, "last": 0.225, "others": 0.1},
    "j_shaped": {"first": 0.2, "last": 0.6, "others": 0.2},
    "inverse_j": {"first": 0.6, "last": 0.2, "others": 0.2},
}


def to_ms(moment: str | date | datetime | int) -> int:
    """Epoch milliseconds of an ISO date / datetime (UTC when naive) or of a ms int."""
    if isinstance(moment, int):
        return moment
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def quarter_of(ms: int) -> str:
    """Calendar quarter in UTC, e.g. "2026-Q1"."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def _level(by: str) -> int:
    if by not in BY_LEVELS:
        raise ValueError(f"--by must be one of {', '.join(BY_LEVELS)}, not {by!r}")
    return BY_LEVELS.index(by)


def _amount(deal: ExpectedDeal) -> float:
    return deal.amount if deal.amount is not None else 0.0


def _sum(values: Iterable[float | None]) -> float:
    """A money sum: amounts without a rate (None) are left out."""
    return sum((v for v in values if v is not None), 0.0)


def _money_mean(values: list[float | None]) -> float | None:
    """The mean over the amounts that converted (None without any)."""
    return _mean([v for v in values if v is not None])


#: One exchange rate: (currency, first day it applies as epoch ms of that UTC midnight, rate).
Rate = tuple[str, int, float]


def _win_rate(won: int, lost: int) -> float | None:
    return won / (won + lost) if won + lost else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class Reports:
    """Every report over one set of raw events."""

    def __init__(self, events: Dataset | Iterable[Any], classify: Classify, now: int | None = None, *,
                 rates: Iterable[Rate] = (), spend: Iterable[Record] = (), reporting_currency: str = "USD") -> None:
        self.batch = Batch(events, classify)
        self.contacts: dict[str, ExpectedContact] = self.batch.contacts()
        self.deals: dict[str, ExpectedDeal] = self.batch.deals()
        #: The cut-off of open deals' journeys: the max event time in the data by default.
        self.now = now if now is not None else self.batch.max_event_time
        self.reporting_currency = reporting_currency
        #: currency -> [(day ms, rate)] sorted by day; a later row for the same day replaces an earlier one
        self.rates: dict[str, list[tuple[int, float]]] = {}
        by_day: dict[tuple[str, int], float] = {}
        for currency, day, rate in rates:
            by_day[(currency, day - day % DAY_MS)] = rate
        for (currency, day), rate in sorted(by_day.items()):
            self.rates.setdefault(currency, []).append((day, rate))
        #: spend rows: {"day": ms, "channel", "source", "campaign", "amount", "currency"}
        self.spend = list(spend)

    # -- money (docs/money.md) ---------------------------------------------------------------
    def convert(self, amount: float, currency: str, day: int | None) -> float | None:
        """``amount`` in the reporting currency at the latest rate on or before ``day`` (None: the
        latest rate of all); None when there is no such rate."""
        if currency == self.reporting_currency:
            return amount
        found = [rate for start, rate in self.rates.get(currency, []) if day is None or start <= day]
        return amount * found[-1] if found else None

    def money(self, deal: ExpectedDeal) -> float | None:
        """A deal's amount (None counts 0) in the reporting currency: closed at its close day's rate,
        open at the latest rate."""
        closed = deal.status in ("won", "lost") and deal.closed_at is not None
        day = deal.closed_at - deal.closed_at % DAY_MS if closed and deal.closed_at is not None else None
        return self.convert(_amount(deal), deal.currency, day)

    def unconverted_deals(self) -> list[str]:
        """The deal ids whose amount has no rate (quality, unconverted_deals)."""
        return sorted(d.deal_id for d in self.deals.values() if self.money(d) is None)

    def _contact_lead(self, contact: ExpectedContact, by: str) -> str:
        return (contact.lead_channel, contact.lead_source, contact.lead_detail)[_level(by)]

    def _deal_lead(self, deal: ExpectedDeal, by: str) -> str:
        return (deal.lead_channel, deal.lead_source, deal.lead_detail)[_level(by)]

    # -- sources -------------------------------------------------------------------------
    def sources(
        self, by: str = "channel", since: str | date | datetime | int | None = None,
        until: str | date | datetime | int | None = None,
    ) -> list[dict[str, Any]]:
        """Per lead source: leads, deals, won, lost, open, win_rate, ... (docs/definitions.md, "sources").

        ``since``/``until`` (half-open, UTC) filter contacts by first-touch time and deals by
        created_at; contacts without a touch are kept only when neither is given.
        """
        start = to_ms(since) if since is not None else None
        end = to_ms(until) if until is not None else None

        def inside(ms: int | None) -> bool:
            if start is None and end is None:
                return True
            if ms is None:
                return False
            return (start is None or ms >= start) and (end is None or ms < end)

        leads: dict[str, int] = {}
        for contact in self.contacts.values():
            if inside(contact.first_touch_time):
                key = self._contact_lead(contact, by)
                leads[key] = leads.get(key, 0) + 1
        deals_of: dict[str, list[ExpectedDeal]] = {}
        for deal in self.deals.values():
            if inside(deal.created_at):
                deals_of.setdefault(self._deal_lead(deal, by), []).append(deal)

        # Every source that brought a touch gets a row, with zeros where nothing counts
        # (README, "Reports": sources); with --since/--until, touches are taken by their UTC day.
        day_start = start - start % DAY_MS if start is not None else None
        day_end = end + (-end) % DAY_MS if end is not None else None
        visited = {
            self.batch.classification(t)[_level(by)]
            for t in self.batch.raw.touches
            if (day_start is None or t["event_time"] >= day_start) and (day_end is None or t["event_time"] < day_end)
        }

        rows = []
        for key in sorted(set(leads) | set(deals_of) | visited):
            group = deals_of.get(key, [])
            won = [d for d in group if d.status == "won"]
            lost = [d for d in group if d.status == "lost"]
            still_open = [d for d in group if d.status == "open"]
            days = [(d.closed_at - d.created_at) / DAY_MS for d in won if d.closed_at is not None]
            rows.append({
                "lead_source": key,
                "leads": leads.get(key, 0),
                "deals": len(group),
                "won": len(won),
                "lost": len(lost),
                "open": len(still_open),
                "win_rate": _win_rate(len(won), len(lost)),
                "avg_deal_size": _money_mean([self.money(d) for d in won]),
                "revenue": _sum(self.money(d) for d in won),
                "pipeline": _sum(self.money(d) for d in still_open),
                "median_days_to_close": statistics.median(days) if days else None,
            })
        return rows

    # -- quarterly -----------------------------------------------------------------------
    def quarterly(self, by: str = "channel") -> list[dict[str, Any]]:
        """Per (quarter, lead source): leads by first-touch quarter, deals by created quarter,
        won/lost/win_rate/avg_deal_size/revenue by close quarter. Rows with any non-zero number."""
        leads: dict[tuple[str, str], int] = {}
        for contact in self.contacts.values():
            if contact.first_touch_time is not None:
                key = (quarter_of(contact.first_touch_time), self._contact_lead(contact, by))
                leads[key] = leads.get(key, 0) + 1
        created: dict[tuple[str, str], int] = {}
        closed: dict[tuple[str, str], list[ExpectedDeal]] = {}
        for deal in self.deals.values():
            lead = self._deal_lead(deal, by)
            created_key = (quarter_of(deal.created_at), lead)
            created[created_key] = created.get(created_key, 0) + 1
            if deal.closed_at is not None:
                closed.setdefault((quarter_of(deal.closed_at), lead), []).append(deal)

        rows = []
        for quarter, lead in sorted(set(leads) | set(created) | set(closed)):
            group = closed.get((quarter, lead), [])
            won = [d for d in group if d.status == "won"]
            lost = [d for d in group if d.status == "lost"]
            row = {
                "quarter": quarter,
                "lead_source": lead,
                "leads": leads.get((quarter, lead), 0),
                "deals": created.get((quarter, lead), 0),
                "won": len(won),
                "lost": len(lost),
                "win_rate": _win_rate(len(won), len(lost)),
                "avg_deal_size": _money_mean([self.money(d) for d in won]),
                "revenue": _sum(self.money(d) for d in won),
            }
            if row["leads"] or row["deals"] or row["won"] or row["lost"] or row["revenue"]:
                rows.append(row)
        return rows

    # -- contact sources -----------------------------------------------------------------
    def contact_sources(self) -> list[dict[str, Any]]:
        """Per contact source ("Unknown" when none): contacts, engaged contacts, deals, won, revenue."""
        rows: dict[str, dict[str, Any]] = {}

        def row(source: str | None) -> dict[str, Any]:
            key = source if source is not None else "Unknown"
            if key not in rows:
                rows[key] = {"contact_source": key, "contacts": 0, "engaged_contacts": 0,
                             "deals": 0, "won": 0, "revenue": 0.0}
            return rows[key]

        for contact in self.contacts.values():
            r = row(contact.contact_source)
            r["contacts"] += 1
            if contact.touch_count > 0:
                r["engaged_contacts"] += 1
        for deal in self.deals.values():
            r = row(deal.contact_source)
            r["deals"] += 1
            if deal.status == "won":
                r["won"] += 1
                r["revenue"] += _sum([self.money(deal)])
        return [rows[k] for k in sorted(rows)]

    # -- funnel --------------------------------------------------------------------------
    def funnel(self, by: str = "channel", stage_times: dict[str, dict[str, int]] | None = None) -> list[dict[str, Any]]:
        """Per lead source: live contacts reaching lead > mql > sql > opportunity > customer.

        ``stage_times`` are the contacts' ``stage_times`` maps (what the worker records from
        lifecycle changes; names matched loosely). Opportunity is also reached at the
        creation of a deal the contact is the primary contact of, customer at the close of
        such a won deal; a later stage implies the earlier ones; every live contact is a
        lead, at the earliest of its lead/subscriber stage time, its creation and its first
        touch. Time in stage: from reaching it to reaching the next, when both are known
        and in that order; the median in days.
        """
        level = _level(by)
        stage_times = stage_times or {}
        names = {1: {"lead", "subscriber"}, 2: {"mql", "marketingqualifiedlead"}, 3: {"sql", "salesqualifiedlead"},
                 4: {"opportunity", "opp"}, 5: {"customer", "won"}}
        opened: dict[str, int] = {}
        won_at: dict[str, int] = {}
        for deal in self.deals.values():
            primary = deal.primary_contact_id
            opened[primary] = min(opened.get(primary, deal.created_at), deal.created_at)
            if deal.status == "won" and deal.closed_at is not None:
                won_at[primary] = min(won_at.get(primary, deal.closed_at), deal.closed_at)
        rows: dict[str, dict[str, Any]] = {}
        spans: dict[str, dict[int, list[float]]] = {}
        for contact in self.contacts.values():
            key = (contact.lead_channel, contact.lead_source, contact.lead_detail)[level]
            normalised: dict[int, list[int]] = {stage: [] for stage in names}
            for name, at in stage_times.get(contact.contact_id, {}).items():
                plain = "".join(ch for ch in name if ch.isascii() and ch.isalpha()).lower()
                for stage, accepted in names.items():
                    if plain in accepted:
                        normalised[stage].append(at)
            normalised[1] += [t for t in (contact.created_at, contact.first_touch_time) if t is not None]
            if contact.contact_id in opened:
                normalised[4].append(opened[contact.contact_id])
            if contact.contact_id in won_at:
                normalised[5].append(won_at[contact.contact_id])
            t = {stage: min(times) if times else None for stage, times in normalised.items()}
            reached = {5: t[5] is not None}
            for stage in (4, 3, 2):
                reached[stage] = reached[stage + 1] or t[stage] is not None
            row = rows.setdefault(key, {"lead_source": key, "leads": 0, "mql": 0, "sql": 0, "opportunity": 0,
                                        "customer": 0})
            row["leads"] += 1
            for stage, column in ((2, "mql"), (3, "sql"), (4, "opportunity"), (5, "customer")):
                row[column] += int(reached[stage])
            for stage in (1, 2, 3, 4):
                start, end = t[stage], t[stage + 1]
                if start is not None and end is not None and end >= start:
                    spans.setdefault(key, {}).setdefault(stage, []).append((end - start) / DAY_MS)
        out = []
        for key in sorted(rows):
            r = rows[key]
            ratio = [("lead_to_mql", "mql", "leads"), ("mql_to_sql", "sql", "mql"),
                     ("sql_to_opportunity", "opportunity", "sql"),
                     ("opportunity_to_customer", "customer", "opportunity")]
            for column, top, bottom in ratio:
                r[column] = r[top] / r[bottom] if r[bottom] else None
            for stage, column in ((1, "median_days_in_lead"), (2, "median_days_in_mql"), (3, "median_days_in_sql"),
                                  (4, "median_days_in_opportunity")):
                values = spans.get(key, {}).get(stage, [])
                r[column] = statistics.median(values) if values else None
            out.append(r)
        return out

    # -- quality -------------------------------------------------------------------------
    def quality(self, taxonomy_version: str, top: int = 20) -> dict[str, Any]:
        """The contacts, unclassified_pairs and taxonomy_coverage sections of ``quality``.

        Every touch counts once (by event id); a touch is classified when its channel is
        neither Unknown nor Unclassified. ``taxonomy_version`` is the one every touch carries.
        """
        contacts = list(self.contacts.values())
        unknown = sum(1 for c in contacts if c.lead_channel == "Unknown")
        direct = sum(1 for c in contacts if c.lead_channel == "Direct")
        touches = {t["event_id"]: t for t in self.batch.raw.touches}
        unclassified: dict[tuple[str, str], int] = {}
        classified = 0
        for touch in touches.values():
            if self.batch.classification(touch)[0] in ("Unknown", "Unclassified"):
                pair = (touch.get("utm_source") or "", touch.get("utm_medium") or "")
                unclassified[pair] = unclassified.get(pair, 0) + 1
            else:
                classified += 1
        pairs = sorted(unclassified.items(), key=lambda item: (-item[1], item[0]))[:top]
        return {
            "contacts": {
                "contacts": len(contacts), "unknown_lead_source": unknown, "direct_lead_source": direct,
                "unknown_or_direct_share": (unknown + direct) / len(contacts) if contacts else None,
                "contacts_without_touch": sum(1 for c in contacts if c.touch_count == 0),
            },
            "unclassified_pairs": [{"utm_source": a, "utm_medium": b, "touches": n} for (a, b), n in pairs],
            "taxonomy_coverage": [{"taxonomy_version": taxonomy_version, "touches": len(touches),
                                   "classified": classified,
                                   "coverage": classified / len(touches) if touches else None}],
        }

    # -- attribution ---------------------------------------------------------------------
    def journey(self, deal: ExpectedDeal) -> list[Record]:
        """Touches of the deal's contacts up to its close (open deals: up to ``now``)."""
        cutoff = deal.closed_at if deal.closed_at is not None else self.now
        by_id: dict[str, Record] = {}
        for contact_id in deal.contact_ids:
            for touch in self.batch.touches_of(contact_id):
                if touch["event_time"] <= cutoff:
                    by_id[touch["event_id"]] = touch
        return sorted(by_id.values(), key=lambda t: (t["event_time"], t["event_id"]))

    def positions(self, deal: ExpectedDeal, journey: Sequence[Record]) -> dict[str, str]:
        """position name -> event_id, for the positions that exist in this journey."""
        if not journey:
            return {}
        found = {"first": journey[0]["event_id"], "last": journey[-1]["event_id"]}
        lead = self.contacts[deal.primary_contact_id].lead_creation_event_id
        if lead is not None and any(t["event_id"] == lead for t in journey):
            found["lead"] = lead
        before_creation = [t for t in journey if t["event_time"] <= deal.created_at]
        if before_creation:
            found["deal"] = before_creation[-1]["event_id"]
        return found

    def credits(self, deal: ExpectedDeal, model: str, half_life_days: float = 7.0) -> dict[str, float]:
        """event_id -> credit of each journey touch under ``model``; sums to 1 (or {} when empty)."""
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
        journey = self.journey(deal)
        ids = [t["event_id"] for t in journey]
        if not journey:
            return {}
        if len(journey) == 1:
            return {ids[0]: 1.0}
        if model == "linear":
            return {event_id: 1.0 / len(ids) for event_id in ids}
        if model == "time_decay":
            cutoff = deal.closed_at if deal.closed_at is not None else self.now
            half_life_ms = half_life_days * DAY_MS
            weights = {t["event_id"]: math.pow(2.0, -(cutoff - t["event_time"]) / half_life_ms) for t in journey}
            total = sum(weights.values())
            return {event_id: w / total for event_id, w in weights.items()}

        shares = POSITION_SHARES[model]
        found = self.positions(deal, journey)
        holders = {name: event_id for name, event_id in found.items() if name in shares}
        others = [event_id for event_id in ids if event_id not in holders.values()]
        # A share whose position does not exist (or "others" with no other touch) is
        # divided among the existing ones in proportion to their shares: renormalise.
        existing = sum(shares[name] for name in holders) + (shares.get("others", 0.0) if others else 0.0)
        result = dict.fromkeys(ids, 0.0)
        for name, event_id in holders.items():
            result[event_id] += shares[name] / existing  # coincident positions add up
        if others:
            for event_id in others:
                result[event_id] += shares.get("others", 0.0) / existing / len(others)
        return result

    def attribution(
        self, model: str, by: str = "channel", half_life_days: float = 7.0, include_open_lost: bool = False,
    ) -> list[dict[str, Any]]:
        """Per channel (value at the ``by`` level): deal_credit and revenue_credit.

        Won deals by default; ``include_open_lost`` adds open and lost deals' deal credit
        (revenue credit still comes from won deals only). Rows with zero credit are omitted.
        """
        level = _level(by)
        touches = {t["event_id"]: t for t in self.batch.raw.touches}
        deal_credit: dict[str, float] = {}
        revenue_credit: dict[str, float] = {}
        for deal in self.deals.values():
            if deal.status != "won" and not include_open_lost:
                continue
            revenue = _sum([self.money(deal)]) if deal.status == "won" else 0.0
            for event_id, credit in self.credits(deal, model, half_life_days).items():
                if credit == 0.0:
                    continue
                key = self.batch.classification(touches[event_id])[level]
                deal_credit[key] = deal_credit.get(key, 0.0) + credit
                revenue_credit[key] = revenue_credit.get(key, 0.0) + credit * revenue
        return [{"channel": key, "deal_credit": deal_credit[key], "revenue_credit": revenue_credit[key]}
                for key in sorted(deal_credit)]


def _quarter_key(ms: int, by_quarter: bool) -> str:
    return quarter_of(ms) if by_quarter else ""


def roi(reports: Reports, by: str = "channel", *, since: str | date | datetime | int | None = None,
        until: str | date | datetime | int | None = None, by_quarter: bool = False) -> list[dict[str, Any]]:
    """Spend, leads, won, revenue and their ratios per lead source over [since, until) (docs/money.md)."""
    start = to_ms(since) if since is not None else None
    end = to_ms(until) if until is not None else None
    level = _level(by)

    def inside(ms: int) -> bool:
        return (start is None or ms >= start) and (end is None or ms < end)

    def day_inside(ms: int) -> bool:  # spend and first touches count by their UTC day
        day = ms - ms % DAY_MS
        return (start is None or day >= start - start % DAY_MS) and (end is None or day < end - end % DAY_MS
                                                                            + (DAY_MS if end % DAY_MS else 0))

    spend: dict[tuple[str, str], float] = {}
    for row in reports.spend:
        if not day_inside(row["day"]):
            continue
        key = (_quarter_key(row["day"], by_quarter), (row["channel"], row["source"], row["campaign"])[level])
        converted = reports.convert(row["amount"], row["currency"], row["day"] - row["day"] % DAY_MS)
        spend[key] = spend.get(key, 0.0) + (converted or 0.0)
        spend.setdefault(key, 0.0)
    leads: dict[tuple[str, str], int] = {}
    for contact in reports.contacts.values():
        if contact.first_touch_time is not None and day_inside(contact.first_touch_time):
            key = (_quarter_key(contact.first_touch_time, by_quarter), reports._contact_lead(contact, by))
            leads[key] = leads.get(key, 0) + 1
    won: dict[tuple[str, str], int] = {}
    revenue: dict[tuple[str, str], float] = {}
    for deal in reports.deals.values():
        if deal.status == "won" and deal.closed_at is not None and inside(deal.closed_at):
            key = (_quarter_key(deal.closed_at, by_quarter), reports._deal_lead(deal, by))
            won[key] = won.get(key, 0) + 1
            revenue[key] = revenue.get(key, 0.0) + _sum([reports.money(deal)])
    rows = []
    for key in set(spend) | set(leads) | set(won):
        s, n, w, r = spend.get(key, 0.0), leads.get(key, 0), won.get(key, 0), revenue.get(key, 0.0)
        if not (s or n or w):
            continue
        row = {"lead_source": key[1], "spend": s, "leads": n, "cost_per_lead": s / n if n else None, "won": w,
               "cac": s / w if w else None, "revenue": r, "roas": r / s if s else None,
               "roi": (r - s) / s if s else None}
        rows.append({"quarter": key[0], **row} if by_quarter else row)
    return sorted(rows, key=lambda x: (x.get("quarter", ""), -x["spend"], -x["revenue"], x["lead_source"]))


def diff(
    expected: Sequence[dict[str, Any]], actual: Sequence[dict[str, Any]], key: Sequence[str], *,
    rel_tol: float = 1e-9, abs_tol: float = 1e-9, zero_missing: bool = False,
) -> list[str]:
    """Differences between two row lists, matched by ``key`` fields; [] when they agree.

    Integers and strings must be equal; floats within rel_tol / abs_tol; None only equals
    None. Rows must have the same keys. With ``zero_missing`` a row present on one side only
    is fine when all its numbers are 0 (attribution rows of channels with no credit).
    """
    problems: list[str] = []

    def index(rows: Sequence[dict[str, Any]], side: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in rows:
            k = tuple(r[f] for f in key)
            if k in out:
                problems.append(f"{side}: duplicate row {k}")
            out[k] = r
        return out

    want, got = index(expected, "expected"), index(actual, "actual")
    for k in sorted(set(want) | set(got), key=repr):
        if k not in got or k not in want:
            present = want.get(k) or got[k]
            numbers = [v for f, v in present.items() if f not in key]
            if zero_missing and all(isinstance(v, int | float) and abs(v) <= abs_tol for v in numbers):
                continue
            problems.append(f"{k}: only in {'expected' if k in want else 'actual'}: {present}")
            continue
        w, g = want[k], got[k]
        if set(w) != set(g):
            problems.append(f"{k}: keys differ: expected {sorted(w)}, actual {sorted(g)}")
            continue
        for field_name, w_value in w.items():
            g_value = g[field_name]
            if isinstance(w_value, float) or isinstance(g_value, float):
                ok = (w_value is not None and g_value is not None
                      and math.isclose(float(w_value), float(g_value), rel_tol=rel_tol, abs_tol=abs_tol))
            else:
                ok = w_value == g_value
            if not ok:
                problems.append(f"{k}.{field_name}: expected {w_value!r}, actual {g_value!r}")
    return problems
