"""Repairing the view-fed aggregates after the sink process died in the middle of an insert.

Where it sits: run once by the sink before it starts consuming, in embedded mode only.
An insert into a table with a materialized view stores the table's part first and the
view's part after it, not atomically. With the embedded engine inside the sink process,
a crash between the two leaves contact versions stored without their ``lead_counts`` /
``lead_totals`` deltas (and touches without their ``touch_sources`` / ``touch_source_totals``
rows), and the replay cannot fix it:
a re-delivered version finds itself already stored and adds nothing (migration 0003).
So, while nothing else writes (the engine directory belongs to this one process),
each lead aggregate is compared with the live contacts it must count and corrected by
the difference, and each touch aggregate gets the classifications of stored touches it lacks.
A server runs an insert and its views to the end whatever happens to the client, so
server mode needs none of this.
"""

from __future__ import annotations

import logging

from sinks.clickhouse import Database

__all__ = ["repair_aggregates"]

log = logging.getLogger("leadstream.sink")

_LEAD = "lead_channel, lead_source, lead_detail"
#: A correction can equal an earlier one byte for byte (the same key off by the same count):
#: the tables' insert de-duplication window must not drop it.
_NO_DEDUP = {"insert_deduplicate": 0}
#: Each sign-weighted lead aggregate: its extra key columns and how a live contact gives them.
_LEAD_AGGREGATES = {
    "lead_counts": (("has_touch", "toUInt8(first_touch_time IS NOT NULL)"),
                    ("first_touch_day", "toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC')")),
    "lead_totals": (),
}
#: Each touch-presence aggregate: its extra key columns and how a touch gives them.
_TOUCH_AGGREGATES = {
    "touch_sources": (("day", "toDate(event_time, 'UTC')"),),
    "touch_source_totals": (),
}


def _lead_corrections(db: str, table: str) -> tuple[str, str]:
    """(key columns, the rows that bring ``table`` to the live contacts it must count)."""
    extra = _LEAD_AGGREGATES[table]
    key = ", ".join([_LEAD, *(name for name, _ in extra)])
    live = "".join(f", {expr} AS {name}" for name, expr in extra)
    return key, f"""
SELECT {key}, toInt64(live.n) - toInt64(counted.n) AS leads
FROM
(
    SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, lead_detail{live},
           count() AS n
    FROM {db}.contacts_live
    GROUP BY {key}
) AS live
FULL OUTER JOIN
(
    SELECT toString(lead_channel) AS lead_channel, toString(lead_source) AS lead_source, lead_detail
           {"".join(f", {name}" for name, _ in extra)}, sum(leads) AS n
    FROM {db}.{table}
    GROUP BY {key}
) AS counted USING ({key})
WHERE leads != 0
"""


def _missing_touches(db: str, table: str) -> tuple[str, str]:
    """(columns, the classifications of stored touches that ``table`` lacks, counted)."""
    extra = _TOUCH_AGGREGATES[table]
    key = ", ".join(["channel, source, detail", *(name for name, _ in extra)])
    given = "".join(f", {expr} AS {name}" for name, expr in extra)
    return f"{key}, touches", f"""
SELECT channel, source, detail{given}, count() AS touches
FROM {db}.touches
WHERE ({key}) NOT IN (SELECT {key} FROM {db}.{table})
GROUP BY {key}
"""


# Deliveries of touches that touch_quality (migration 0009) lacks: its view's part of an insert.
_MISSING_QUALITY = """
SELECT event_id, processed_at, taxonomy_version, channel NOT IN ('Unknown', 'Unclassified') AS classified,
       if(classified, '', utm_source) AS utm_source, if(classified, '', utm_medium) AS utm_medium
FROM {db}.touches
WHERE (event_id, processed_at) NOT IN (SELECT event_id, processed_at FROM {db}.touch_quality)
"""


def repair_aggregates(db: Database) -> tuple[int, int]:
    """Correct the lead and touch aggregates; returns (leads corrected, touch rows re-added), over all tables."""
    leads = sources = 0
    for table in _LEAD_AGGREGATES:
        key, sql = _lead_corrections(db.database, table)
        _, corrections = db.query(f"SELECT count(), sum(abs(leads)) FROM ({sql})")
        if corrections[0][0]:
            missed = int(corrections[0][1] or 0)
            db.command(f"INSERT INTO {db.database}.{table} ({key}, leads) {sql}", settings=_NO_DEDUP)
            log.warning("%s missed %d contact state changes (a crash during an insert); corrected", table, missed)
            leads += missed
    for table in _TOUCH_AGGREGATES:
        columns, missing = _missing_touches(db.database, table)
        _, absent = db.query(f"SELECT count() FROM ({missing})")
        if absent[0][0]:
            count = int(absent[0][0])
            db.command(f"INSERT INTO {db.database}.{table} ({columns}) {missing}", settings=_NO_DEDUP)
            log.warning("%s missed %d classifications (a crash during an insert); re-added", table, count)
            sources += count
    missing = _MISSING_QUALITY.replace("{db}", db.database)
    _, absent = db.query(f"SELECT count() FROM ({missing})")
    if absent[0][0]:
        count = int(absent[0][0])
        db.command(f"INSERT INTO {db.database}.touch_quality {missing}", settings=_NO_DEDUP)
        log.warning("touch_quality missed %d touch deliveries (a crash during an insert); re-added", count)
        sources += count
    return leads, sources
