"""Repairing the view-fed aggregates after the sink process died in the middle of an insert.

Where it sits: run once by the sink before it starts consuming, in embedded mode only.
An insert into a table with a materialized view stores the table's part first and the
view's part after it, not atomically. With the embedded engine inside the sink process,
a crash between the two leaves contact versions stored without their ``lead_counts``
deltas (and touches without their ``touch_sources`` rows), and the replay cannot fix it:
a re-delivered version finds itself already stored and adds nothing (migration 0003).
So, while nothing else writes (the engine directory belongs to this one process),
``lead_counts`` is compared with the live contacts it must count and corrected by the
difference, and ``touch_sources`` gets the classifications of stored touches it lacks.
A server runs an insert and its views to the end whatever happens to the client, so
server mode needs none of this.
"""

from __future__ import annotations

import logging

from sinks.clickhouse import Database

__all__ = ["repair_aggregates"]

log = logging.getLogger("leadstream.sink")

_LEAD_KEY = "lead_channel, lead_source, lead_detail, has_touch, first_touch_day"

# Live contacts per lead_counts key, minus what lead_counts holds: the correction rows.
_LEAD_CORRECTIONS = f"""
SELECT {_LEAD_KEY}, toInt64(live.n) - toInt64(counted.n) AS leads
FROM
(
    SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, lead_detail,
           toUInt8(first_touch_time IS NOT NULL) AS has_touch,
           toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC') AS first_touch_day, count() AS n
    FROM {{db}}.contacts_live
    GROUP BY {_LEAD_KEY}
) AS live
FULL OUTER JOIN
(
    SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, lead_detail, has_touch,
           first_touch_day, sum(leads) AS n
    FROM {{db}}.lead_counts
    GROUP BY {_LEAD_KEY}
) AS counted USING ({_LEAD_KEY})
WHERE leads != 0
"""

_MISSING_TOUCH_SOURCES = """
SELECT channel, source, detail, toDate(event_time, 'UTC') AS day, count() AS touches
FROM {db}.touches
WHERE (channel, source, detail, day) NOT IN (SELECT channel, source, detail, day FROM {db}.touch_sources)
GROUP BY channel, source, detail, day
"""


def repair_aggregates(db: Database) -> tuple[int, int]:
    """Correct ``lead_counts`` and ``touch_sources``; returns (leads corrected, sources re-added)."""
    sql = _LEAD_CORRECTIONS.replace("{db}", db.database)
    _, corrections = db.query(f"SELECT count(), sum(abs(leads)) FROM ({sql})")
    keys, leads = corrections[0][0], int(corrections[0][1] or 0)
    if keys:
        db.command(f"INSERT INTO {db.database}.lead_counts ({_LEAD_KEY}, leads) {sql}")
        log.warning("lead_counts missed %d contact state changes (a crash during an insert); corrected", leads)
    missing = _MISSING_TOUCH_SOURCES.replace("{db}", db.database)
    _, absent = db.query(f"SELECT count() FROM ({missing})")
    sources = int(absent[0][0])
    if sources:
        db.command(f"INSERT INTO {db.database}.touch_sources (channel, source, detail, day, touches) {missing}")
        log.warning("touch_sources missed %d classifications (a crash during an insert); re-added", sources)
    return leads, sources
