-- lead-scores, the open leads: live contacts that are the primary contact of no won or
-- lost deal, with their engagement score and when it was computed (their last touch).
WITH closed AS
(
    SELECT DISTINCT a.canonical AS contact_id
    FROM {db}.deals_latest AS d INNER JOIN {db}.contact_aliases AS a ON a.alias_id = d.primary_contact_id
    WHERE d.status IN ('won', 'lost')
),
seen AS
(
    SELECT contact_id, argMax(last_seen, version) AS last_seen FROM {db}.contact_versions GROUP BY contact_id
)
SELECT c.contact_id AS contact_id, c.lead_channel AS lead_channel, c.lead_source AS lead_source,
       c.lead_detail AS lead_detail, c.engagement_score AS engagement_score,
       toUnixTimestamp64Milli(s.last_seen) AS last_seen_ms
FROM {db}.contacts_live AS c LEFT JOIN seen AS s ON s.contact_id = c.contact_id
WHERE c.contact_id NOT IN (SELECT contact_id FROM closed)
