-- quality (contacts): live contacts, how many have the Unknown or Direct lead
-- channel, and how many have no touch at all (their latest version counts none: the
-- worker resolves every touch to its contacts, late identifies and merges included).
SELECT
    count() AS contacts,
    countIf(lead_channel = 'Unknown') AS unknown_lead_source,
    countIf(lead_channel = 'Direct') AS direct_lead_source,
    if(contacts = 0, NULL, (unknown_lead_source + direct_lead_source) / contacts) AS unknown_or_direct_share,
    countIf(touch_count = 0) AS contacts_without_touch
FROM {db}.contacts_live
