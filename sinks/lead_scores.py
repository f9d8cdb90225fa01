"""The ``lead-scores`` report: open leads ranked by what their lead source has historically been worth.

Reps argue about which leads to call first; the source history answers part of it. A
lead's score multiplies its source's lead → deal rate ``q`` and win rate ``p`` (deals
closed in the trailing 4 quarters) by an engagement multiplier ``m``. A source with few
leads or closed deals would get an extreme rate from a handful of outcomes, so each rate
is smoothed toward its parent in the taxonomy (detail → source → channel → all leads)
with ``k = 15`` pseudo-observations: ``p_s = (won + k·p_parent) / (won + lost + k)``.
Every part is in the output, so that a rep can read why a lead ranks where it does.
The definition is docs/lead-scores.md; the SQL only counts, the smoothing is here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from ground.settings import get_settings
from sinks.clickhouse import Database
from sinks.report_params import ReportParams
from sinks.sql_files import report_sql

__all__ = ["LEAD_SCORE_KEYS", "TRAILING_QUARTERS", "K", "lead_scores", "quarter_start", "trailing_start"]

K = 15.0
TRAILING_QUARTERS = 4
LEAD_SCORE_KEYS = ("contact_id", "lead_source", "score", "q_s", "p_s", "leads", "contacts_with_deal", "won", "lost",
                   "engagement", "m")
_DEPTH = {"channel": 1, "source": 2, "detail": 3}


def quarter_start(ms: int, back: int = 0) -> int:
    """The start (epoch ms) of the UTC quarter ``back`` quarters before the one holding ``ms``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    index = moment.year * 4 + (moment.month - 1) // 3 - back
    year, quarter = divmod(index, 4)
    return int(datetime(year, quarter * 3 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def trailing_start(now_ms: int, quarters: int = TRAILING_QUARTERS) -> int:
    """Where the score's window starts: the trailing 4 quarters and the current one so far."""
    return quarter_start(now_ms, quarters)


def _rows(db: Database, name: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    columns, rows = db.query(report_sql(name, db.database), parameters=values)
    return [dict(zip(columns, row, strict=True)) for row in rows]


class _Rates:
    """Smoothed rates per taxonomy node: () is all leads, then (channel,), (channel, source), ..."""

    def __init__(self, leads: list[dict[str, Any]], deals: list[dict[str, Any]]) -> None:
        self.counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(
            lambda: {"leads": 0, "with_deal": 0, "won": 0, "lost": 0})
        for rows, keys in ((leads, ("leads", "with_deal")), (deals, ("won", "lost"))):
            for r in rows:
                path = (str(r["lead_channel"]), str(r["lead_source"]), str(r["lead_detail"]))
                for depth in range(4):
                    for key in keys:
                        self.counts[path[:depth]][key] += int(r[key])
        self._p: dict[tuple[str, ...], float] = {}
        self._q: dict[tuple[str, ...], float] = {}

    def p(self, node: tuple[str, ...]) -> float:
        if node not in self._p:
            c = self.counts[node]
            if not node:
                closed = c["won"] + c["lost"]
                self._p[node] = c["won"] / closed if closed else 0.0
            else:
                self._p[node] = (c["won"] + K * self.p(node[:-1])) / (c["won"] + c["lost"] + K)
        return self._p[node]

    def q(self, node: tuple[str, ...]) -> float:
        if node not in self._q:
            c = self.counts[node]
            if not node:
                self._q[node] = c["with_deal"] / c["leads"] if c["leads"] else 0.0
            else:
                self._q[node] = (c["with_deal"] + K * self.q(node[:-1])) / (c["leads"] + K)
        return self._q[node]


def _percentiles(values: list[float]) -> list[float]:
    """Each value's percentile among ``values`` in [0, 1] (ties share their mean rank; one value: 0.5)."""
    n = len(values)
    if n == 1:
        return [0.5]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return [r / (n - 1) for r in ranks]


def lead_scores(db: Database, params: ReportParams, *, now_ms: int | None = None,
                half_life_days: float | None = None) -> list[dict[str, Any]]:
    """The ``top`` open leads by score, at the ``by`` level of the lead source."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    half_life = half_life_days if half_life_days is not None else get_settings().engagement_half_life_days
    window = {"from_ms": trailing_start(now), "now_ms": now}
    rates = _Rates(_rows(db, "lead_score_leads", window), _rows(db, "lead_score_deals", window))
    leads = _rows(db, "lead_score_open", {})
    if not leads:
        return []
    decayed = []
    for lead in leads:
        seen = lead["last_seen_ms"]
        age = max(0, now - int(seen)) if seen else 0
        decayed.append(float(lead["engagement_score"] or 0.0) * 2 ** (-age / (half_life * 86_400_000)))
    multipliers = [0.5 + p for p in _percentiles(decayed)]
    depth = _DEPTH[params.by]
    out = []
    for lead, engagement, m in zip(leads, decayed, multipliers, strict=True):
        node = (str(lead["lead_channel"]), str(lead["lead_source"]), str(lead["lead_detail"]))[:depth]
        c = rates.counts[node]
        q, p = rates.q(node), rates.p(node)
        out.append({"contact_id": lead["contact_id"], "lead_source": node[-1], "raw": q * p * m, "q_s": q,
                    "p_s": p, "leads": c["leads"], "contacts_with_deal": c["with_deal"], "won": c["won"],
                    "lost": c["lost"], "engagement": engagement, "m": m})
    best = max(r["raw"] for r in out)
    for r in out:
        r["score"] = 100 * (r.pop("raw") / best) if best > 0 else 0.0  # the best is exactly 100
    out.sort(key=lambda r: (-r["score"], r["contact_id"]))
    return [{k: r[k] for k in LEAD_SCORE_KEYS} for r in out[: params.top]]
