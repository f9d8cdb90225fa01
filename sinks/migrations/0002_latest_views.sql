-- Latest-state views. They are right before any background merge: duplicates of a
-- touch collapse on event_id, versions of a contact / deal / identity link resolve
-- to the highest version with argMax (over a tuple, because argMax skips NULL
-- arguments and a NULL merged_into must win when it is the latest). No FINAL.

CREATE VIEW IF NOT EXISTS {db}.touches_dedup {on_cluster} AS
SELECT
    event_id,
    s.1 AS event_time, s.2 AS anonymous_id, s.3 AS contact_id, s.4 AS touch_type,
    s.5 AS utm_source, s.6 AS utm_medium, s.7 AS utm_campaign,
    s.8 AS channel, s.9 AS source, s.10 AS detail, s.11 AS rule, s.12 AS taxonomy_version, s.13 AS is_bot
FROM
(
    SELECT event_id,
           argMax((event_time, anonymous_id, contact_id, touch_type, utm_source, utm_medium, utm_campaign,
                   channel, source, detail, rule, taxonomy_version, is_bot), processed_at) AS s
    FROM {db}.touches
    GROUP BY event_id
);

CREATE VIEW IF NOT EXISTS {db}.contacts_latest {on_cluster} AS
SELECT
    contact_id,
    s.1 AS version, s.2 AS merged_into, s.3 AS merged_contact_ids, s.4 AS anonymous_ids, s.5 AS created_at,
    s.6 AS first_touch_event_id, s.7 AS first_touch_time, s.8 AS lead_channel, s.9 AS lead_source,
    s.10 AS lead_detail, s.11 AS contact_source, s.12 AS owner, s.13 AS lifecycle_stage, s.14 AS stage_times,
    s.15 AS lead_method, s.16 AS touch_count, s.17 AS engagement_score, s.18 AS last_channel
FROM
(
    SELECT contact_id,
           argMax((version, merged_into, merged_contact_ids, anonymous_ids, created_at, first_touch_event_id,
                   first_touch_time, lead_channel, lead_source, lead_detail, contact_source, owner,
                   lifecycle_stage, stage_times, lead_method, touch_count, engagement_score, last_channel),
                  version) AS s
    FROM {db}.contact_versions
    GROUP BY contact_id
);

CREATE VIEW IF NOT EXISTS {db}.contacts_live {on_cluster} AS
SELECT * FROM {db}.contacts_latest WHERE merged_into IS NULL;

-- Every id a live contact answers to (itself and everything merged into it) -> that contact.
CREATE VIEW IF NOT EXISTS {db}.contact_aliases {on_cluster} AS
SELECT arrayJoin(arrayPushBack(merged_contact_ids, contact_id)) AS alias_id, contact_id AS canonical
FROM {db}.contacts_live;

-- Every anonymous id linked to a live contact -> that contact.
CREATE VIEW IF NOT EXISTS {db}.anonymous_contacts {on_cluster} AS
SELECT arrayJoin(anonymous_ids) AS anonymous_id, contact_id AS canonical
FROM {db}.contacts_live;

-- Touch -> each canonical contact it belongs to: by its contact_id (through the
-- aliases) and by its anonymous id (through the identified anonymous ids), whether
-- the identify came before or after the touch. One row per (touch, contact).
CREATE VIEW IF NOT EXISTS {db}.touch_contacts {on_cluster} AS
SELECT DISTINCT
    m.canonical AS contact_id, t.event_id AS event_id, t.event_time AS event_time,
    t.channel AS channel, t.source AS source, t.detail AS detail
FROM
(
    SELECT event_id, event_time, channel, source, detail,
           arrayJoin(['c:' || contact_id, 'a:' || anonymous_id]) AS key
    FROM {db}.touches_dedup
) AS t
INNER JOIN
(
    SELECT 'c:' || alias_id AS key, canonical FROM {db}.contact_aliases
    UNION ALL
    SELECT 'a:' || anonymous_id AS key, canonical FROM {db}.anonymous_contacts
) AS m ON t.key = m.key;

CREATE VIEW IF NOT EXISTS {db}.deals_latest {on_cluster} AS
SELECT
    deal_id,
    s.1 AS stamp_version, s.2 AS status, s.3 AS amount, s.4 AS created_at, s.5 AS closed_at,
    s.6 AS primary_contact_id, s.7 AS contact_ids, s.8 AS lead_channel, s.9 AS lead_source, s.10 AS lead_detail,
    s.11 AS contact_source, s.12 AS stage, s.13 AS owner, s.14 AS event_time
FROM
(
    SELECT deal_id,
           argMax((stamp_version, status, amount, created_at, closed_at, primary_contact_id, contact_ids,
                   lead_channel, lead_source, lead_detail, contact_source, stage, owner, event_time),
                  stamp_version) AS s
    FROM {db}.deal_versions
    GROUP BY deal_id
);

CREATE VIEW IF NOT EXISTS {db}.identity_latest {on_cluster} AS
SELECT anonymous_id, s.1 AS contact_id, s.2 AS canonical_contact_id, s.3 AS version
FROM
(
    SELECT anonymous_id, argMax((contact_id, canonical_contact_id, version), version) AS s
    FROM {db}.identity_links
    GROUP BY anonymous_id
);
