"""Quality alerts: the rules of docs/alerts.md, evaluated on ClickHouse and the broker.

Source data "decays quietly if nobody checks it": a tag removed from a landing page, a
campaign launched with a new utm_medium, a form that stops identifying. Each rule looks
for one such decay and, when it fires, says what it measured against which threshold over
which window, so that the person reading it can check. Rules and thresholds come from a
YAML file (the shipped ``sinks/alert_rules.yaml``, or ``LEADSTREAM_ALERT_RULES``),
validated strictly: a misspelt threshold is an error, not a silent default.

Two rules need the broker as well as ClickHouse: the dead-letter rate (events accepted on
the raw topics against dead letters, from the broker's time index) and the freshness lag
(whether the raw topics still receive events while ClickHouse does not).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from confluent_kafka import Consumer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ground.errors import LeadstreamError
from ground.settings import Settings
from ground.topic_reader import messages_since
from ground.topics import DEAD_LETTER, RAW_TOPICS, Topics
from sinks.clickhouse import Database
from sinks.lead_scores import quarter_start
from sinks.sql_files import report_sql

__all__ = ["DEFAULT_RULES", "Alert", "AlertRules", "AlertRulesError", "evaluate", "load_rules", "win_drop_probability"]

DEFAULT_RULES = Path(__file__).parent / "alert_rules.yaml"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

Level = Literal["channel", "source", "detail"]


class AlertRulesError(LeadstreamError, ValueError):
    """The rules file cannot be read or does not validate."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class UnknownDirectShare(_Rule):
    window_days: float = Field(default=7, gt=0)
    baseline_days: float = Field(default=28, gt=0)
    max_share: float = Field(default=0.25, ge=0, le=1)
    max_rise: float = Field(default=0.10, ge=0, le=1)
    min_leads: int = Field(default=50, ge=1)


class UnclassifiedPair(_Rule):
    window_hours: float = Field(default=24, gt=0)
    min_touches: int = Field(default=20, ge=1)


class DeadLetterRate(_Rule):
    window_minutes: float = Field(default=15, gt=0)
    max_rate: float = Field(default=0.01, ge=0)


class SourceSilent(_Rule):
    level: Level = "source"
    baseline_days: float = Field(default=28, gt=0)
    min_daily_touches: float = Field(default=10, gt=0)
    window_hours: float = Field(default=24, gt=0)


class WinRateDrop(_Rule):
    level: Level = "source"
    trailing_quarters: int = Field(default=4, ge=1, le=20)
    max_drop: float = Field(default=0.10, ge=0, le=1)
    min_probability: float = Field(default=0.9, gt=0, lt=1)
    min_closed: int = Field(default=20, ge=1)


class FreshnessLag(_Rule):
    max_lag_minutes: float = Field(default=15, gt=0)


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    unknown_direct_share: UnknownDirectShare = UnknownDirectShare()
    unclassified_pair: UnclassifiedPair = UnclassifiedPair()
    dead_letter_rate: DeadLetterRate = DeadLetterRate()
    source_silent: SourceSilent = SourceSilent()
    win_rate_drop: WinRateDrop = WinRateDrop()
    freshness_lag: FreshnessLag = FreshnessLag()


class AlertRules(BaseModel):
    """The rules file: ``version: 1`` and one section per rule (a missing one keeps its defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    rules: _Rules = _Rules()


def load_rules(path: Path | None = None) -> AlertRules:
    """The rules of ``path`` (default: the shipped file); AlertRulesError names what is wrong."""
    path = path or DEFAULT_RULES
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return AlertRules.model_validate(data)
    except OSError as exc:
        raise AlertRulesError(f"cannot read the alert rules {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise AlertRulesError(f"{path} is not YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AlertRulesError(f"{path}: {problems}") from exc


@dataclass
class Alert:
    """One firing alert: its rule, what it concerns, the measured value, the threshold, the window."""

    rule: str
    subject: str
    value: float | None  # None: nothing to measure (no touch stored at all)
    threshold: float
    window: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def win_drop_probability(won_now: int, lost_now: int, won_before: int, lost_before: int, drop: float, *,
                         steps: int = 2000) -> float:
    """P(p_now < p_before - drop) for p ~ Beta(1 + won, 1 + lost), independent, by numeric integration.

    ∫ f_before(y) · F_now(y - drop) dy on a midpoint grid: exact enough for a threshold of
    0.9 (the error is far below 1e-3 at 2000 steps), and no statistics library needed.
    """
    def log_pdf(x: float, a: float, b: float) -> float:
        return (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + (a - 1) * math.log(x)
                + (b - 1) * math.log1p(-x))

    h = 1.0 / steps
    xs = [(i + 0.5) * h for i in range(steps)]
    a_now, b_now = 1 + won_now, 1 + lost_now
    a_before, b_before = 1 + won_before, 1 + lost_before
    cdf_now, running = [], 0.0
    for x in xs:
        running += math.exp(log_pdf(x, a_now, b_now)) * h
        cdf_now.append(running)
    total = 0.0
    for y in xs:
        j = math.floor((y - drop) / h - 0.5)  # the grid point at or below y - drop
        if j >= 0:
            total += math.exp(log_pdf(y, a_before, b_before)) * h * min(1.0, cdf_now[min(j, steps - 1)])
    return min(1.0, max(0.0, total))


def _rows(db: Database, name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = db.query(report_sql(name, db.database), parameters=values)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _unknown_direct(db: Database, rule: UnknownDirectShare, now: int) -> list[Alert]:
    recent_from = now - round(rule.window_days * DAY_MS)
    baseline_from = recent_from - round(rule.baseline_days * DAY_MS)
    [row] = _rows(db, "alert_unknown_direct", {"now": now, "recent_from": recent_from,
                                               "baseline_from": baseline_from})
    if row["recent"] < rule.min_leads:
        return []
    share = row["recent_unknown_direct"] / row["recent"]
    baseline = row["baseline_unknown_direct"] / row["baseline"] if row["baseline"] else None
    threshold = rule.max_share if baseline is None else min(rule.max_share, baseline + rule.max_rise)
    if share <= threshold:
        return []
    why = (f"above {rule.max_share:.0%}" if share > rule.max_share
           else f"{share - (baseline or 0):.1%} points above the previous {rule.baseline_days:g} days")
    return [Alert("unknown_direct_share", "all leads", share, threshold, f"{rule.window_days:g}d",
                  f"{share:.1%} of the {row['recent']} new leads of the last {rule.window_days:g} days have lead "
                  f"source Unknown or Direct ({why})",
                  {"new_leads": row["recent"], "unknown_or_direct": row["recent_unknown_direct"],
                   "baseline_leads": row["baseline"], "baseline_share": baseline})]


def _unclassified(db: Database, rule: UnclassifiedPair, now: int) -> list[Alert]:
    rows = _rows(db, "alert_unclassified", {"now": now, "since": now - round(rule.window_hours * HOUR_MS),
                                            "min_touches": rule.min_touches})
    return [Alert("unclassified_pair", f"{r['utm_source']} / {r['utm_medium']}", r["touches"], rule.min_touches,
                  f"{rule.window_hours:g}h",
                  f"{r['touches']} touches of the last {rule.window_hours:g} h with utm_source={r['utm_source']!r}, "
                  f"utm_medium={r['utm_medium']!r} are unclassified: add a rule to the taxonomy",
                  {"utm_source": r["utm_source"], "utm_medium": r["utm_medium"], "touches": r["touches"]})
            for r in rows]


def _source_silent(db: Database, rule: SourceSilent, now: int) -> list[Alert]:
    recent_from = now - round(rule.window_hours * HOUR_MS)
    baseline_from = recent_from - round(rule.baseline_days * DAY_MS)
    rows = _rows(db, "alert_source_silent", {
        "now": now, "recent_from": recent_from, "baseline_from": baseline_from, "level": rule.level,
        "min_baseline": math.ceil(rule.min_daily_touches * rule.baseline_days)})
    alerts = []
    for r in rows:
        daily = r["baseline"] / rule.baseline_days
        alerts.append(Alert("source_silent", r["lead_source"], 0, rule.min_daily_touches, f"{rule.window_hours:g}h",
                            f"{r['lead_source']} brought {daily:.1f} touches a day over the previous "
                            f"{rule.baseline_days:g} days and none in the last {rule.window_hours:g} h: "
                            "a broken tag or a stopped campaign?",
                            {"baseline_touches": r["baseline"], "baseline_daily": daily, "recent_touches": 0}))
    return alerts


def _win_rate(db: Database, rule: WinRateDrop, now: int) -> list[Alert]:
    quarter_from = quarter_start(now)
    rows = _rows(db, "alert_win_rate", {"now": now, "quarter_from": quarter_from, "level": rule.level,
                                        "trailing_from": quarter_start(now, rule.trailing_quarters)})
    alerts = []
    for r in rows:
        closed_before = r["won_before"] + r["lost_before"]
        closed_now = r["won_now"] + r["lost_now"]
        if closed_before < rule.min_closed or not closed_now:
            continue
        probability = win_drop_probability(r["won_now"], r["lost_now"], r["won_before"], r["lost_before"],
                                           rule.max_drop)
        if probability < rule.min_probability:
            continue
        now_rate, before_rate = r["won_now"] / closed_now, r["won_before"] / closed_before
        alerts.append(Alert("win_rate_drop", r["lead_source"], now_rate, before_rate - rule.max_drop,
                            f"this quarter vs the {rule.trailing_quarters} before",
                            f"{r['lead_source']} wins {now_rate:.0%} of {closed_now} deals closed this quarter "
                            f"against {before_rate:.0%} of {closed_before} in the {rule.trailing_quarters} quarters "
                            f"before (P(drop > {rule.max_drop:.0%}) = {probability:.2f})",
                            {**{k: r[k] for k in ("won_now", "lost_now", "won_before", "lost_before")},
                             "probability": probability}))
    return alerts


def _broker_counts(settings: Settings, since_ms: int, timeout: float) -> tuple[int, int]:
    """(raw events accepted, dead letters) with a timestamp at or after ``since_ms``."""
    topics = Topics(settings.topic_prefix)
    consumer = Consumer(settings.kafka_consumer_config(f"leadstream-alerts-{time.time_ns()}"))
    try:
        raw = messages_since(consumer, [topics.name(t) for t in RAW_TOPICS], since_ms, timeout)
        dead = messages_since(consumer, [topics.name(DEAD_LETTER)], since_ms, timeout)
    finally:
        consumer.close()
    return sum(raw.values()), sum(dead.values())


def _dead_letters(settings: Settings, rule: DeadLetterRate, now: int, timeout: float) -> list[Alert]:
    accepted, dead = _broker_counts(settings, now - round(rule.window_minutes * MINUTE_MS), timeout)
    if not dead:
        return []
    rate = dead / accepted if accepted else math.inf
    if rate <= rule.max_rate:
        return []
    return [Alert("dead_letter_rate", "pipeline", rate if accepted else float(dead), rule.max_rate,
                  f"{rule.window_minutes:g}min",
                  f"{dead} dead letters against {accepted} events accepted in the last {rule.window_minutes:g} "
                  "minutes: `leadstream dlq` shows their reasons",
                  {"dead_letters": dead, "accepted": accepted})]


def _freshness(db: Database, settings: Settings, rule: FreshnessLag, now: int, timeout: float) -> list[Alert]:
    window = round(rule.max_lag_minutes * MINUTE_MS)
    [row] = _rows(db, "alert_freshness", {})
    newest = int(row["newest"]) if row["touches"] else None
    if newest is not None and now - newest <= window:
        return []
    accepted, _ = _broker_counts(settings, now - window, timeout)
    if not accepted:
        return []  # nothing arrives upstream either: quiet, not stuck
    lag_minutes = (now - newest) / MINUTE_MS if newest is not None else None
    return [Alert("freshness_lag", "pipeline", lag_minutes, rule.max_lag_minutes, f"{rule.max_lag_minutes:g}min",
                  (f"the newest touch in ClickHouse was received {lag_minutes:.0f} minutes ago"
                   if lag_minutes is not None else
                   "ClickHouse holds no touch") + f" while the raw topics took {accepted} events in the last "
                  f"{rule.max_lag_minutes:g} minutes: is the stream worker or the sink stuck?",
                  {"newest_received_at_ms": newest, "raw_events_in_window": accepted})]


def evaluate(db: Database, settings: Settings, rules: AlertRules | None = None, *, now_ms: int | None = None,
             timeout: float = 10.0) -> list[Alert]:
    """Every firing alert, rule by rule in the file's order."""
    rules = rules or load_rules(settings.alert_rules_path)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    r = rules.rules
    alerts: list[Alert] = []
    if r.unknown_direct_share.enabled:
        alerts += _unknown_direct(db, r.unknown_direct_share, now)
    if r.unclassified_pair.enabled:
        alerts += _unclassified(db, r.unclassified_pair, now)
    if r.dead_letter_rate.enabled:
        alerts += _dead_letters(settings, r.dead_letter_rate, now, timeout)
    if r.source_silent.enabled:
        alerts += _source_silent(db, r.source_silent, now)
    if r.win_rate_drop.enabled:
        alerts += _win_rate(db, r.win_rate_drop, now)
    if r.freshness_lag.enabled:
        alerts += _freshness(db, settings, r.freshness_lag, now, timeout)
    return alerts
