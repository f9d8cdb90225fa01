-- Touches per classification and day, kept incrementally, so that `sources` can list
-- every source that brought visits (anonymous visitors included) with zeros where no
-- lead or deal counts yet, without scanning the touch table. Counts are of delivered
-- rows (a replayed touch adds again): they are used for presence only, never reported.

-- shard: cityHash64(channel, source, detail)
CREATE TABLE IF NOT EXISTS {db}.touch_sources {on_cluster}
(
    channel LowCardinality(String),
    source  LowCardinality(String),
    detail  String,
    day     Date,
    touches Int64
)
ENGINE = SummingMergeTree(touches)
ORDER BY (channel, source, detail, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.touch_sources_mv {on_cluster} TO {db}.touch_sources AS
SELECT channel, source, detail, toDate(event_time, 'UTC') AS day, toInt64(1) AS touches
FROM {db}.touches;

-- Backfill what the touch table held before this migration.
INSERT INTO {db}.touch_sources
SELECT channel, source, detail, toDate(event_time, 'UTC') AS day, count() AS touches
FROM {db}.touches
GROUP BY channel, source, detail, day;
