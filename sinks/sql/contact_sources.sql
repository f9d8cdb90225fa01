-- contact-sources: per contact source ("Unknown" when none) — live contacts,
-- engaged contacts (live contacts whose latest version counts at least one touch:
-- the worker resolves every touch to its contacts, late identifies and merges included), deals whose primary contact has that contact source (the
-- deal's stamp), won deals and their revenue.
-- Parameters: ranged, since_ms, until_ms (contacts by first-touch time, deals by created_at).
WITH
    contacts AS
    (
        SELECT ifNull(contact_source, 'Unknown') AS contact_source,
               count() AS contacts,
               countIf(touch_count > 0) AS engaged_contacts
        FROM {db}.contacts_live
        WHERE {ranged:UInt8} = 0
           OR (first_touch_time IS NOT NULL
               AND toUnixTimestamp64Milli(assumeNotNull(first_touch_time)) >= {since_ms:Int64}
               AND toUnixTimestamp64Milli(assumeNotNull(first_touch_time)) < {until_ms:Int64})
        GROUP BY contact_source
    ),
    deals AS
    (
        SELECT ifNull(contact_source, 'Unknown') AS contact_source,
               count() AS deals,
               countIf(status = 'won') AS won,
               ifNull(sumIf(money, status = 'won'), 0.) AS revenue
        FROM {money_deals}
        WHERE {ranged:UInt8} = 0
           OR (created_at IS NOT NULL AND toUnixTimestamp64Milli(assumeNotNull(created_at)) >= {since_ms:Int64}
               AND toUnixTimestamp64Milli(assumeNotNull(created_at)) < {until_ms:Int64})
        GROUP BY contact_source
    )
-- the key once, then each side's columns as named above: contact_source, contacts,
-- engaged_contacts, deals, won, revenue (0 where a side has no row for the source)
SELECT *
FROM contacts
FULL OUTER JOIN deals USING (contact_source)
ORDER BY revenue DESC, contacts DESC, contact_source
