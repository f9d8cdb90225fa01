-- funnel: per lead source (at the --by level), live contacts reaching each stage
-- lead -> mql -> sql -> opportunity -> customer, stage-to-stage conversion and the
-- median days spent in each stage (from reaching it to reaching the next).
-- A stage is reached when the contact's stage_times has it (names are matched
-- loosely: "mql", "marketingqualifiedlead", ...), when a later stage was reached, or
-- from the deals: opportunity when the contact is the primary contact of a deal (at
-- its created_at), customer when of a won deal (at its closed_at). Every live contact
-- is a lead (at stage_times.lead, else created_at, else its first touch).
-- Parameters: level, ranged, since_ms, until_ms (contacts by first-touch time).
WITH
    deal_stages AS
    (
        SELECT a.canonical AS contact_id,
               min(if(d.created_at IS NULL, toInt64(9223372036854775807),
                      toUnixTimestamp64Milli(assumeNotNull(d.created_at)))) AS opp_ms,
               minIf(toUnixTimestamp64Milli(assumeNotNull(d.closed_at)),
                     d.status = 'won' AND d.closed_at IS NOT NULL) AS won_ms,
               countIf(d.status = 'won' AND d.closed_at IS NOT NULL) AS won_n
        FROM {db}.deals_latest AS d
        INNER JOIN {db}.contact_aliases AS a ON a.alias_id = d.primary_contact_id
        GROUP BY a.canonical
    ),
    contacts AS
    (
        SELECT multiIf({level:String} = 'source', c.lead_source, {level:String} = 'detail', c.lead_detail,
                       c.lead_channel) AS lead_source,
               least(arrayMin(arrayConcat([toInt64(9223372036854775807)], mapValues(mapFilter(
                   (k, v) -> lower(replaceRegexpAll(k, '[^A-Za-z]', '')) IN ['lead', 'subscriber'], c.stage_times)))),
                     ifNull(toUnixTimestamp64Milli(c.created_at), toInt64(9223372036854775807)),
                     ifNull(toUnixTimestamp64Milli(c.first_touch_time), toInt64(9223372036854775807))) AS t1,
               arrayMin(arrayConcat([toInt64(9223372036854775807)], mapValues(mapFilter(
                   (k, v) -> lower(replaceRegexpAll(k, '[^A-Za-z]', '')) IN ['mql', 'marketingqualifiedlead'], c.stage_times)))) AS t2,
               arrayMin(arrayConcat([toInt64(9223372036854775807)], mapValues(mapFilter(
                   (k, v) -> lower(replaceRegexpAll(k, '[^A-Za-z]', '')) IN ['sql', 'salesqualifiedlead'], c.stage_times)))) AS t3,
               least(arrayMin(arrayConcat([toInt64(9223372036854775807)], mapValues(mapFilter(
                   (k, v) -> lower(replaceRegexpAll(k, '[^A-Za-z]', '')) IN ['opportunity', 'opp'], c.stage_times)))),
                     if(ds.contact_id = '', toInt64(9223372036854775807), ds.opp_ms)) AS t4,
               least(arrayMin(arrayConcat([toInt64(9223372036854775807)], mapValues(mapFilter(
                   (k, v) -> lower(replaceRegexpAll(k, '[^A-Za-z]', '')) IN ['customer', 'won'], c.stage_times)))),
                     if(ds.won_n = 0, toInt64(9223372036854775807), ds.won_ms)) AS t5
        FROM {db}.contacts_live AS c
        LEFT JOIN deal_stages AS ds ON ds.contact_id = c.contact_id
        WHERE {ranged:UInt8} = 0
           OR (c.first_touch_time IS NOT NULL
               AND toUnixTimestamp64Milli(assumeNotNull(c.first_touch_time)) >= {since_ms:Int64}
               AND toUnixTimestamp64Milli(assumeNotNull(c.first_touch_time)) < {until_ms:Int64})
    ),
    reached AS
    (
        -- a later stage implies the earlier ones
        SELECT lead_source,
               toInt64(9223372036854775807) AS never,
               t1, t2, t3, t4, t5,
               t5 < never AS r5,
               r5 OR t4 < never AS r4,
               r4 OR t3 < never AS r3,
               r3 OR t2 < never AS r2
        FROM contacts
    )
SELECT
    lead_source,
    count() AS leads,
    countIf(r2) AS mql,
    countIf(r3) AS sql,
    countIf(r4) AS opportunity,
    countIf(r5) AS customer,
    if(leads = 0, NULL, mql / leads) AS lead_to_mql,
    if(mql = 0, NULL, sql / mql) AS mql_to_sql,
    if(sql = 0, NULL, opportunity / sql) AS sql_to_opportunity,
    if(opportunity = 0, NULL, customer / opportunity) AS opportunity_to_customer,
    if(countIf(t1 < never AND t2 < never AND t2 >= t1) = 0, NULL,
       quantileExactInclusiveIf(0.5)((t2 - t1) / 86400000., t1 < never AND t2 < never AND t2 >= t1))
        AS median_days_in_lead,
    if(countIf(t2 < never AND t3 < never AND t3 >= t2) = 0, NULL,
       quantileExactInclusiveIf(0.5)((t3 - t2) / 86400000., t2 < never AND t3 < never AND t3 >= t2))
        AS median_days_in_mql,
    if(countIf(t3 < never AND t4 < never AND t4 >= t3) = 0, NULL,
       quantileExactInclusiveIf(0.5)((t4 - t3) / 86400000., t3 < never AND t4 < never AND t4 >= t3))
        AS median_days_in_sql,
    if(countIf(t4 < never AND t5 < never AND t5 >= t4) = 0, NULL,
       quantileExactInclusiveIf(0.5)((t5 - t4) / 86400000., t4 < never AND t5 < never AND t5 >= t4))
        AS median_days_in_opportunity
FROM reached
GROUP BY lead_source
ORDER BY leads DESC, lead_source
