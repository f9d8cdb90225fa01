-- What the quality report needs of each touch, one narrow row per delivery, sorted by
-- event id so that the replacing engine's FINAL collapses a touch's deliveries to the
-- latest one (processed_at) while it reads: the taxonomy version that classified it,
-- whether it was classified (channel neither Unknown nor Unclassified) and, only when it
-- was not, its raw utm pair. `taxonomy_coverage` and `unclassified_pairs` then read three
-- small columns in sort order instead of grouping every touch by event id.

-- shard: cityHash64(event_id)
CREATE TABLE IF NOT EXISTS {db}.touch_quality {on_cluster}
(
    event_id         String,
    processed_at     DateTime64(3, 'UTC'),
    taxonomy_version LowCardinality(String),
    classified       UInt8,
    utm_source       String,
    utm_medium       String
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY event_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.touch_quality_mv {on_cluster} TO {db}.touch_quality AS
SELECT event_id, processed_at, taxonomy_version, channel NOT IN ('Unknown', 'Unclassified') AS classified,
       if(classified, '', utm_source) AS utm_source, if(classified, '', utm_medium) AS utm_medium
FROM {db}.touches;

TRUNCATE TABLE {db}.touch_quality {on_cluster};

INSERT INTO {db}.touch_quality
SELECT event_id, processed_at, taxonomy_version, channel NOT IN ('Unknown', 'Unclassified') AS classified,
       if(classified, '', utm_source) AS utm_source, if(classified, '', utm_medium) AS utm_medium
FROM {db}.touches;
