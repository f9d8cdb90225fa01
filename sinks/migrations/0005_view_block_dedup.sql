-- A retried insert block the engine already stored must feed the sign-weighted
-- lead_counts view nothing. The engine drops the repeated block from contact_versions
-- by insert de-duplication (0001), but it still pushes the block into the materialized
-- view, whose target then de-duplicates on its own: only a target with a
-- de-duplication window recognises it (a source block's repeat, not a distinct block
-- that happens to aggregate to the same rows). Without this a lost acknowledgement
-- during an engine outage counted each contact of that block once more.
-- The sink's inserts also ask for deduplicate_blocks_in_dependent_materialized_views,
-- which older servers need for the same effect.
-- touch_sources is left as it is: its counts are of deliveries, used for presence only.

ALTER TABLE {db}.lead_counts {on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;

-- Rebuild the counts from the contacts' latest versions, which a doubled block never
-- changed (contact_versions de-duplicated it): one live contact, one lead.
TRUNCATE TABLE {db}.lead_counts {on_cluster};

INSERT INTO {db}.lead_counts
SELECT lead_channel, lead_source, lead_detail, toUInt8(first_touch_time IS NOT NULL) AS has_touch,
       toDate(ifNull(first_touch_time, toDateTime64(0, 3, 'UTC')), 'UTC') AS first_touch_day, count() AS leads
FROM
(
    SELECT contact_id, argMax(merged_into IS NULL, version) AS live, argMax(lead_channel, version) AS lead_channel,
           argMax(lead_source, version) AS lead_source, argMax(lead_detail, version) AS lead_detail,
           argMax(tuple(first_touch_time), version).1 AS first_touch_time
    FROM {db}.contact_versions
    GROUP BY contact_id
)
WHERE live
GROUP BY lead_channel, lead_source, lead_detail, has_touch, first_touch_day;
