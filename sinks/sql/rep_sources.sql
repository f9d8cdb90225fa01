-- rep-sources: contact sources per rep. Per rep (the live contact's owner; "Unassigned"
-- when none) and contact source ("Unknown" when none): live contacts, deals whose primary
-- contact (canonicalised) it is, won deals and their revenue (reporting currency; a deal
-- without a rate is counted but adds no revenue, docs/money.md).
WITH
    people AS
    (
        SELECT contact_id, ifNull(owner, 'Unassigned') AS owner, ifNull(contact_source, 'Unknown') AS contact_source
        FROM {db}.contacts_live
    ),
    owned AS
    (
        SELECT p.owner AS owner, p.contact_source AS contact_source, count() AS deals,
               countIf(d.status = 'won') AS won, ifNull(sumIf(d.money, d.status = 'won'), 0.) AS revenue
        FROM {money_deals} AS d
        INNER JOIN {db}.contact_aliases AS a ON a.alias_id = d.primary_contact_id
        INNER JOIN people AS p ON p.contact_id = a.canonical
        GROUP BY owner, contact_source
    )
SELECT c.owner AS owner, c.contact_source AS contact_source, c.contacts AS contacts,
       ifNull(o.deals, 0) AS deals, ifNull(o.won, 0) AS won, ifNull(o.revenue, 0.) AS revenue
FROM (SELECT owner, contact_source, count() AS contacts FROM people GROUP BY owner, contact_source) AS c
LEFT JOIN owned AS o ON o.owner = c.owner AND o.contact_source = c.contact_source
ORDER BY owner, contacts DESC, contact_source
SETTINGS join_use_nulls = 1
