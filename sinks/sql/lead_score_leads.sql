-- lead-scores, the lead rate: per lead source (channel, source, detail) the live contacts
-- whose lead time (first touch, else creation) falls in the trailing window, and how many
-- of them are the primary contact of a deal.
WITH primaries AS
(
    SELECT DISTINCT a.canonical AS contact_id
    FROM {db}.deals_latest AS d INNER JOIN {db}.contact_aliases AS a ON a.alias_id = d.primary_contact_id
)
SELECT lead_channel, lead_source, lead_detail, count() AS leads,
       countIf(contact_id IN (SELECT contact_id FROM primaries)) AS with_deal
FROM {db}.contacts_live
WHERE coalesce(first_touch_time, created_at) >= fromUnixTimestamp64Milli({from_ms:Int64})
  AND coalesce(first_touch_time, created_at) < fromUnixTimestamp64Milli({now_ms:Int64})
GROUP BY lead_channel, lead_source, lead_detail
