-- Day-less companions of lead_counts (0003) and touch_sources (0004), for the reports
-- that are not restricted to a date range. Those tables hold a row per source and day,
-- about one per contact at 1M contacts spread over two years; these hold one per
-- source, so the unranged `sources` reads a few thousand rows instead of a million.
-- Same rules: lead_totals is sign-weighted by the same materialized-view logic as
-- lead_counts (a version not newer than the stored one adds nothing) and de-duplicates a
-- retried insert block (0005); touch_source_totals counts deliveries, for presence only.

-- shard: cityHash64(lead_channel, lead_source, lead_detail)
CREATE TABLE IF NOT EXISTS {db}.lead_totals {on_cluster}
(
    lead_channel LowCardinality(String),
    lead_source  LowCardinality(String),
    lead_detail  String,
    leads        Int64
)
ENGINE = SummingMergeTree(leads)
ORDER BY (lead_channel, lead_source, lead_detail)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.lead_totals_mv {on_cluster} TO {db}.lead_totals AS
SELECT d.2 AS lead_channel, d.3 AS lead_source, d.4 AS lead_detail, d.1 AS leads
FROM
(
    SELECT arrayJoin([
        (toInt64(1), merged_into IS NULL, lead_channel, lead_source, lead_detail),
        (toInt64(-1), prev_live, prev_lead_channel, prev_lead_source, prev_lead_detail)
    ]) AS t,
    (t.1, t.3, t.4, t.5) AS d,
    t.2 AS counted
    FROM {db}.contact_versions
    WHERE version > prev_version
)
WHERE counted;

-- Backfill (emptied first: a migration interrupted after it and run again must not count
-- twice). Run migrations while no sink writes, as for 0003 and 0004.
TRUNCATE TABLE {db}.lead_totals {on_cluster};

INSERT INTO {db}.lead_totals
SELECT lead_channel, lead_source, lead_detail, sum(leads) AS leads
FROM {db}.lead_counts
GROUP BY lead_channel, lead_source, lead_detail
HAVING leads != 0;

-- shard: cityHash64(channel, source, detail)
CREATE TABLE IF NOT EXISTS {db}.touch_source_totals {on_cluster}
(
    channel LowCardinality(String),
    source  LowCardinality(String),
    detail  String,
    touches Int64
)
ENGINE = SummingMergeTree(touches)
ORDER BY (channel, source, detail);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.touch_source_totals_mv {on_cluster} TO {db}.touch_source_totals AS
SELECT channel, source, detail, toInt64(1) AS touches
FROM {db}.touches;

TRUNCATE TABLE {db}.touch_source_totals {on_cluster};

INSERT INTO {db}.touch_source_totals
SELECT channel, source, detail, sum(touches) AS touches
FROM {db}.touch_sources
GROUP BY channel, source, detail;
