-- Live contacts per lead source and first-touch day, kept incrementally so that the
-- hot `sources` / `quarterly` queries read a few thousand rows instead of grouping
-- every contact version. Sign-weighted: each contact version the sink inserts adds
-- +1 for its state and -1 for the state it replaces (the prev_* columns, which the
-- sink fills from the latest stored version; a version that is not newer than what is
-- stored carries prev_version >= version and adds nothing, which makes replays and
-- re-deliveries no-ops). A retried insert block the engine already has is dropped by
-- insert de-duplication, and then the view is not fed either.

-- shard: cityHash64(lead_channel, lead_source, lead_detail)
CREATE TABLE IF NOT EXISTS {db}.lead_counts {on_cluster}
(
    lead_channel    LowCardinality(String),
    lead_source     LowCardinality(String),
    lead_detail     String,
    has_touch       UInt8,
    first_touch_day Date,
    leads           Int64
)
ENGINE = SummingMergeTree(leads)
ORDER BY (lead_channel, lead_source, lead_detail, has_touch, first_touch_day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.lead_counts_mv {on_cluster} TO {db}.lead_counts AS
SELECT d.2 AS lead_channel, d.3 AS lead_source, d.4 AS lead_detail, d.5 AS has_touch, d.6 AS first_touch_day,
       d.1 AS leads
FROM
(
    SELECT arrayJoin([
        (toInt64(1), merged_into IS NULL, lead_channel, lead_source, lead_detail,
         toUInt8(first_touch_time IS NOT NULL), toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC')),
        (toInt64(-1), prev_live, prev_lead_channel, prev_lead_source, prev_lead_detail,
         toUInt8(prev_first_touch_time IS NOT NULL),
         toDate(ifNull(prev_first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC'))
    ]) AS t,
    (t.1, t.3, t.4, t.5, t.6, t.7) AS d,
    t.2 AS counted
    FROM {db}.contact_versions
    WHERE version > prev_version
)
WHERE counted;
