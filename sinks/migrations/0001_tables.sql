-- Base tables: one row per delivered enriched record. Every table tolerates
-- duplicates (replays, retried inserts): the replacing engines collapse them at
-- merge time, and every report reads through the latest-state views of 0002,
-- which are right before any merge (argMax by version, dedup by event_id).
-- non_replicated_deduplication_window makes a retried identical insert block a
-- no-op on a plain (non-replicated) engine as well.

CREATE DATABASE IF NOT EXISTS {db} {on_cluster};

-- shard: cityHash64(event_id)
CREATE TABLE IF NOT EXISTS {db}.touches {on_cluster}
(
    event_id         String,
    event_time       DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    processed_at     DateTime64(3, 'UTC'),
    anonymous_id     String,
    contact_id       String,
    touch_type       LowCardinality(String),
    url              String,
    referrer         String,
    utm_source       String,
    utm_medium       String,
    utm_campaign     String,
    click_id_type    LowCardinality(String),
    channel          LowCardinality(String),
    source           LowCardinality(String),
    detail           String,
    rule             LowCardinality(String),
    taxonomy_version LowCardinality(String),
    is_bot           Bool,
    sequence         Int64
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (channel, source, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- shard: cityHash64(contact_id)
CREATE TABLE IF NOT EXISTS {db}.contact_versions {on_cluster}
(
    contact_id           String,
    version              Int64,
    event_time           DateTime64(3, 'UTC'),
    reason               LowCardinality(String),
    merged_into          Nullable(String),
    merged_contact_ids   Array(String),
    anonymous_ids        Array(String),
    created_at           Nullable(DateTime64(3, 'UTC')),
    first_touch_event_id Nullable(String),
    first_touch_time     Nullable(DateTime64(3, 'UTC')),
    first_touch_type     Nullable(String),
    lead_channel         LowCardinality(String),
    lead_source          LowCardinality(String),
    lead_detail          String,
    contact_source       Nullable(String),
    owner                Nullable(String),
    lifecycle_stage      Nullable(String),
    stage_times          Map(String, Int64),
    lead_method          Nullable(String),
    touch_count          Int64,
    touches_by_channel   Map(String, Int64),
    first_seen           Nullable(DateTime64(3, 'UTC')),
    last_seen            Nullable(DateTime64(3, 'UTC')),
    last_channel         Nullable(String),
    engagement_score     Float64,
    -- filled by the sink from the latest stored version when it inserts this one, so the
    -- lead_counts view can retract the state this version replaces (0003)
    prev_version         Int64,
    prev_live            Bool,
    prev_lead_channel    LowCardinality(String),
    prev_lead_source     LowCardinality(String),
    prev_lead_detail     String,
    prev_first_touch_time Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY contact_id
SETTINGS non_replicated_deduplication_window = 1000;

-- shard: cityHash64(deal_id)
CREATE TABLE IF NOT EXISTS {db}.deal_versions {on_cluster}
(
    deal_id              String,
    stamp_version        Int64,
    version              Int64,
    event_time           DateTime64(3, 'UTC'),
    change               LowCardinality(String),
    status               LowCardinality(String),
    stage                Nullable(String),
    amount               Nullable(Float64),
    currency             LowCardinality(String),
    owner                Nullable(String),
    pipeline             Nullable(String),
    close_reason         Nullable(String),
    source_system        Nullable(String),
    primary_contact_id   String,
    contact_ids          Array(String),
    created_at           Nullable(DateTime64(3, 'UTC')),
    closed_at            Nullable(DateTime64(3, 'UTC')),
    lead_channel         LowCardinality(String),
    lead_source          LowCardinality(String),
    lead_detail          String,
    contact_source       Nullable(String),
    first_touch_time     Nullable(DateTime64(3, 'UTC')),
    first_touch_event_id Nullable(String),
    prev_status          Nullable(String),
    prev_amount          Nullable(Float64),
    prev_lead_channel    Nullable(String),
    prev_lead_source     Nullable(String),
    prev_lead_detail     Nullable(String)
)
ENGINE = ReplacingMergeTree(stamp_version)
ORDER BY deal_id
SETTINGS non_replicated_deduplication_window = 1000;

-- shard: cityHash64(anonymous_id)
CREATE TABLE IF NOT EXISTS {db}.identity_links {on_cluster}
(
    anonymous_id         String,
    contact_id           String,
    canonical_contact_id String,
    version              Int64,
    event_time           DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY anonymous_id
SETTINGS non_replicated_deduplication_window = 1000;

-- shard: cityHash64(event_id)
CREATE TABLE IF NOT EXISTS {db}.dead_letters {on_cluster}
(
    event_id          String,
    failed_at         DateTime64(3, 'UTC'),
    stage             LowCardinality(String),
    reason            LowCardinality(String),
    detail            Nullable(String),
    origin            String,
    origin_topic      Nullable(String),
    origin_partition  Nullable(Int32),
    origin_offset     Nullable(Int64),
    payload           String,
    payload_truncated Bool
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (stage, reason, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
