-- quality (contacts): live contacts, how many have the Unknown or Direct lead
-- channel, and how many have no touch at all (resolved through the contact versions).
SELECT
    count() AS contacts,
    countIf(lead_channel = 'Unknown') AS unknown_lead_source,
    countIf(lead_channel = 'Direct') AS direct_lead_source,
    if(contacts = 0, NULL, (unknown_lead_source + direct_lead_source) / contacts) AS unknown_or_direct_share,
    countIf(contact_id NOT IN (SELECT contact_id FROM {db}.touch_contacts)) AS contacts_without_touch
FROM {db}.contacts_live
