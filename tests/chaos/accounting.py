"""The chaos check: what ClickHouse holds against what the oracle says it must hold.

``expect`` recomputes, from the raw events that were acknowledged by the broker, the
distinct touches, every live contact's and deal's latest state and every report
(``tests/oracle``). ``read`` takes the same from a running sink's API. ``check`` compares:

* **lost**: a produced touch missing from ``touches``; a contact or deal whose latest
  state in ClickHouse is missing or differs from the oracle's; a live contact the
  sign-weighted ``lead_counts`` aggregate does not count;
* **doubled**: a touch counted twice by ``touches_dedup``; a contact or deal present twice
  in its latest-state view; a live contact ``lead_counts`` counts twice (the one table
  that adds up inserts, so the one place a replay can really double);
* **reports**: every report of the oracle, compared with ``tests.oracle.reports.diff``.

``prove_able_to_fail`` is the negative control every scenario runs: the same check on
copies of the snapshot with one touch removed, one doubled, one lead counted twice, one
contact's lead source changed and one report number changed must report exactly that.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ground.settings import Settings
from sinks.report_params import MODELS, ReportParams
from streams.taxonomy import load_taxonomy
from tests.chaos.sink_process import SinkProcess
from tests.oracle import batch as oracle
from tests.oracle.generator import Arrival
from tests.oracle.reports import Reports, diff

__all__ = [
    "CONTACT_FIELDS",
    "DEAL_FIELDS",
    "Expected",
    "Snapshot",
    "Tally",
    "check",
    "classifier",
    "expect",
    "id_tally",
    "prove_able_to_fail",
    "prove_id_tally_able_to_fail",
    "read",
]

CONTACT_FIELDS = ("lead_channel", "lead_source", "lead_detail", "first_touch_event_id", "contact_source",
                  "lead_method")
DEAL_FIELDS = ("status", "lead_channel", "lead_source", "lead_detail", "contact_source", "amount")
LeadKey = tuple[Any, ...]  # (channel, source, detail, has_touch, first-touch day)


@dataclass(frozen=True)
class ReportCheck:
    name: str
    report: str
    params: ReportParams
    key: tuple[str, ...]
    zero_missing: bool
    want: list[dict[str, Any]]


@dataclass(frozen=True)
class Expected:
    touches: frozenset[str]
    contacts: dict[str, tuple[Any, ...]]
    deals: dict[str, tuple[Any, ...]]
    reports: list[ReportCheck]

    @property
    def units(self) -> int:
        return len(self.touches) + len(self.contacts) + len(self.deals)


@dataclass
class Snapshot:
    touches: Counter[str]
    contacts: dict[str, list[tuple[Any, ...]]]
    deals: dict[str, list[tuple[Any, ...]]]
    lead_counts: dict[LeadKey, int]
    live_counts: dict[LeadKey, int]
    reports: dict[str, Any]


@dataclass
class Tally:
    produced: int
    found: int
    lost: int
    doubled: int
    unknown: int
    report_problems: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def reports_equal(self) -> bool:
        return not self.report_problems

    def summary(self) -> str:
        return (f"produced {self.produced}, found {self.found}, lost {self.lost}, doubled {self.doubled}, "
                f"unknown {self.unknown}, report differences {len(self.report_problems)}")


def classifier(settings: Settings) -> oracle.Classify:
    taxonomy = load_taxonomy(settings.taxonomy_path, settings.site_domain_list)

    def classify(touch: dict[str, Any]) -> tuple[str, str, str]:
        c = taxonomy.classify(touch)
        return (c.channel, c.source, c.detail)

    return classify


def _amount(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def expect(arrivals: Sequence[Arrival], classify: oracle.Classify) -> Expected:
    """The oracle's view of ``arrivals`` (duplicates and order do not matter to it)."""
    batch = oracle.Batch(arrivals, classify)
    contacts = {cid: tuple(getattr(c, f) for f in CONTACT_FIELDS) for cid, c in batch.contacts().items()}
    deals = {did: (d.status, d.lead_channel, d.lead_source, d.lead_detail, d.contact_source, _amount(d.amount))
             for did, d in batch.deals().items()}
    reports = Reports(arrivals, classify)
    checks = [ReportCheck(f"sources --by {by}", "sources", ReportParams(by=by), ("lead_source",), False,
                          reports.sources(by)) for by in ("channel", "source", "detail")]
    checks.append(ReportCheck("quarterly", "quarterly", ReportParams(), ("quarter", "lead_source"), False,
                              reports.quarterly("channel")))
    checks.append(ReportCheck("contact-sources", "contact-sources", ReportParams(), ("contact_source",), False,
                              reports.contact_sources()))
    checks += [ReportCheck(f"attribution --model {m}", "attribution", ReportParams(model=m), ("channel",), True,
                           reports.attribution(m, "channel")) for m in MODELS]
    touches = frozenset(r["event_id"] for topic, _, r in arrivals if topic == "touches")
    return Expected(touches, contacts, deals, checks)


def _group(rows: Iterable[list[Any]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(str(row[0]), []).append(tuple(row[1:]))
    return out


def read(sink: SinkProcess, expected: Expected) -> Snapshot:
    """Everything ``check`` needs, from the running sink's query API."""
    touches: Counter[str] = Counter()
    for event_id, n in sink.sql_all("SELECT event_id, count() FROM {db}.touches_dedup GROUP BY event_id "
                                    "ORDER BY event_id"):
        touches[str(event_id)] += int(n)
    contacts = _group(sink.sql_all(f"SELECT contact_id, {', '.join(CONTACT_FIELDS)} FROM {{db}}.contacts_live "
                                   "ORDER BY contact_id"))
    deals = _group([[*r[:-1], _amount(r[-1])] for r in sink.sql_all(
        "SELECT deal_id, status, lead_channel, lead_source, lead_detail, contact_source, amount "
        "FROM {db}.deals_latest ORDER BY deal_id")])
    counted = {tuple(r[:-1]): int(r[-1]) for r in sink.sql_all(
        "SELECT lead_channel, lead_source, lead_detail, has_touch, first_touch_day, sum(leads) FROM {db}.lead_counts "
        "GROUP BY 1, 2, 3, 4, 5 HAVING sum(leads) != 0 ORDER BY 1, 2, 3, 4, 5")}
    live = {tuple(r[:-1]): int(r[-1]) for r in sink.sql_all(
        "SELECT lead_channel, lead_source, lead_detail, toUInt8(first_touch_time IS NOT NULL), "
        "toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC'), count() FROM {db}.contacts_live "
        "GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5")}
    reports = {c.name: sink.report(c.report, c.params.to_query()) for c in expected.reports}
    return Snapshot(touches, contacts, deals, counted, live, reports)


def _entities(kind: str, want: dict[str, tuple[Any, ...]], got: dict[str, list[tuple[Any, ...]]],
              names: Sequence[str], tally: Tally) -> None:
    for key, value in want.items():
        rows = got.get(key, [])
        if not rows:
            tally.lost += 1
            tally.problems.append(f"{kind} {key}: missing")
            continue
        if len(rows) > 1:
            tally.doubled += len(rows) - 1
            tally.problems.append(f"{kind} {key}: {len(rows)} latest rows")
        if rows[0] != value:
            tally.lost += 1
            wrong = [f"{n} {g!r} != {w!r}" for n, g, w in zip(names, rows[0], value, strict=True) if g != w]
            tally.problems.append(f"{kind} {key}: {', '.join(wrong)}")
        else:
            tally.found += 1
    extra = sorted(set(got) - set(want))
    tally.unknown += len(extra)
    tally.problems += [f"{kind} {key}: not in the oracle" for key in extra[:5]]


def check(expected: Expected, snap: Snapshot) -> Tally:
    tally = Tally(produced=expected.units, found=0, lost=0, doubled=0, unknown=0)
    for event_id in expected.touches:
        n = snap.touches.get(event_id, 0)
        if n == 0:
            tally.lost += 1
            if len(tally.problems) < 20:
                tally.problems.append(f"touch {event_id}: missing")
            continue
        tally.found += 1
        if n > 1:
            tally.doubled += n - 1
            tally.problems.append(f"touch {event_id}: counted {n} times")
    unknown = set(snap.touches) - expected.touches
    tally.unknown += len(unknown)
    tally.problems += [f"touch {e}: not produced" for e in sorted(unknown)[:5]]
    _entities("contact", expected.contacts, snap.contacts, CONTACT_FIELDS, tally)
    _entities("deal", expected.deals, snap.deals, DEAL_FIELDS, tally)
    for key in sorted(set(snap.lead_counts) | set(snap.live_counts), key=repr):
        surplus = snap.lead_counts.get(key, 0) - snap.live_counts.get(key, 0)
        if surplus:
            tally.doubled += max(surplus, 0)
            tally.lost += max(-surplus, 0)
            tally.problems.append(f"lead_counts {key}: {snap.lead_counts.get(key, 0)} counted, "
                                  f"{snap.live_counts.get(key, 0)} live contacts")
    for c in expected.reports:
        got = snap.reports.get(c.name)
        if not isinstance(got, list):
            tally.report_problems.append(f"{c.name}: no rows ({got!r:.80})")
            continue
        tally.report_problems += [f"{c.name}: {p}" for p in diff(c.want, got, key=c.key,
                                                                   zero_missing=c.zero_missing)]
    return tally


def _changed_report(reports: dict[str, Any], clean: set[str]) -> tuple[str, dict[str, Any]] | None:
    """A copy of the reports with one number of one row (of a report in ``clean``) moved by one."""
    for name, rows in reports.items():
        if name not in clean:
            continue
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            for column, value in row.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    changed = copy.deepcopy(reports)
                    changed[name][i][column] = value + 1
                    return f"{name}.{column}", changed
    return None


def prove_able_to_fail(expected: Expected, snap: Snapshot) -> list[str]:
    """Run ``check`` on damaged copies of ``snap``: each damage must be reported exactly."""
    base = check(expected, snap)
    proofs: list[str] = []

    def must(what: str, damaged: Snapshot, test: Callable[[Tally], bool]) -> None:
        tally = check(expected, damaged)
        assert test(tally), f"negative control failed: {what} gave {tally.summary()}"
        proofs.append(what)

    victim = min(expected.touches & set(snap.touches))
    must("one touch removed -> lost +1", replace(snap, touches=snap.touches - Counter({victim: snap.touches[victim]})),
         lambda t: t.lost == base.lost + 1 and t.found == base.found - 1)
    must("one touch doubled -> doubled +1", replace(snap, touches=snap.touches + Counter({victim: 1})),
         lambda t: t.doubled == base.doubled + 1)
    if snap.lead_counts:
        key = min(snap.lead_counts, key=repr)
        more = {**snap.lead_counts, key: snap.lead_counts[key] + 1}
        must("one lead counted twice -> doubled +1", replace(snap, lead_counts=more),
             lambda t: t.doubled == base.doubled + 1)
    if snap.contacts:
        cid = min(set(snap.contacts) & set(expected.contacts))
        moved = dict(snap.contacts)
        moved[cid] = [("(moved)", *moved[cid][0][1:]), *moved[cid][1:]]
        must("one contact's lead channel changed -> lost +1", replace(snap, contacts=moved),
             lambda t: t.lost == base.lost + 1)
    clean = {c.name for c in expected.reports
             if not any(p.startswith(f"{c.name}: ") for p in base.report_problems)}
    changed = _changed_report(snap.reports, clean)
    if changed is not None:
        where, reports = changed
        must(f"one report number changed ({where}) -> reports differ", replace(snap, reports=reports),
             lambda t: len(t.report_problems) == len(base.report_problems) + 1)
    return proofs


def id_tally(acknowledged: Iterable[str], found: Counter[str]) -> tuple[int, int, int]:
    """(lost, doubled, unknown) of the acknowledged ids against the ids found with multiplicity."""
    wanted = set(acknowledged)
    lost = sum(1 for i in wanted if found.get(i, 0) == 0)
    doubled = sum(n - 1 for i, n in found.items() if i in wanted and n > 1)
    return lost, doubled, len(set(found) - wanted)


def prove_id_tally_able_to_fail(acknowledged: set[str], found: Counter[str]) -> list[str]:
    lost, doubled, _ = id_tally(acknowledged, found)
    victim = min(acknowledged & set(found))
    removed = found - Counter({victim: found[victim]})
    assert id_tally(acknowledged, removed)[0] == lost + 1, "negative control: a removed event must be lost"
    assert id_tally(acknowledged, found + Counter({victim: 1}))[1] == doubled + 1, \
        "negative control: a doubled event must be doubled"
    return ["one event removed -> lost +1", "one event doubled -> doubled +1"]
