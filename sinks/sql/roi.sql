-- roi: per lead source (at the --by level; the spend rows' channel › source › campaign)
-- over [since, until): spend dated in the window, leads whose first touch falls in it
-- (lead_counts), won deals closed in it and their revenue, all money in the reporting
-- currency (docs/money.md); cost per lead, CAC, ROAS and ROI (NULL when the divisor is 0).
-- With by_quarter = 1 each UTC quarter is computed alone (spend by its day, leads by
-- first touch, won deals by close).
WITH
    spent AS
    (
        SELECT if({by_quarter:UInt8} = 1, concat(toString(toYear(day)), '-Q', toString(toQuarter(day))), '')
                   AS quarter,
               multiIf({level:String} = 'source', source, {level:String} = 'detail', campaign, channel) AS lead_source,
               ifNull(sum(money), 0.) AS spend
        FROM {money_spend}
        WHERE {ranged:UInt8} = 0 OR (toInt32(day) >= {since_day:Int32} AND toInt32(day) < {until_day:Int32})
        GROUP BY quarter, lead_source
    ),
    came AS
    (
        SELECT if({by_quarter:UInt8} = 1,
                  concat(toString(toYear(first_touch_day)), '-Q', toString(toQuarter(first_touch_day))), '') AS quarter,
               multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail,
                       lead_channel) AS lead_source,
               sum(leads) AS leads
        FROM {db}.lead_counts
        WHERE has_touch = 1
          AND ({ranged:UInt8} = 0
               OR (toInt32(first_touch_day) >= {since_day:Int32} AND toInt32(first_touch_day) < {until_day:Int32}))
        GROUP BY quarter, lead_source
    ),
    wins AS
    (
        SELECT if({by_quarter:UInt8} = 1, concat(toString(toYear(closed)), '-Q', toString(toQuarter(closed))), '')
                   AS quarter,
               lead_source, count() AS won, ifNull(sum(money), 0.) AS revenue
        FROM
        (
            SELECT multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail,
                           lead_channel) AS lead_source,
                   toDate(assumeNotNull(closed_at), 'UTC') AS closed, money,
                   toUnixTimestamp64Milli(assumeNotNull(closed_at)) AS ts
            FROM {money_deals}
            WHERE status = 'won' AND closed_at IS NOT NULL
        )
        WHERE {ranged:UInt8} = 0 OR (ts >= {since_ms:Int64} AND ts < {until_ms:Int64})
        GROUP BY quarter, lead_source
    ),
    keys AS
    (
        SELECT quarter, lead_source FROM spent UNION DISTINCT SELECT quarter, lead_source FROM came
        UNION DISTINCT SELECT quarter, lead_source FROM wins
    )
SELECT
    k.quarter AS quarter,
    k.lead_source AS lead_source,
    ifNull(s.spend, 0.) AS spend,
    toInt64(ifNull(c.leads, 0)) AS leads,
    if(leads = 0, NULL, spend / leads) AS cost_per_lead,
    toUInt64(ifNull(w.won, 0)) AS won,
    if(won = 0, NULL, spend / won) AS cac,
    ifNull(w.revenue, 0.) AS revenue,
    if(spend = 0, NULL, revenue / spend) AS roas,
    if(spend = 0, NULL, (revenue - spend) / spend) AS roi
FROM keys AS k
LEFT JOIN spent AS s ON s.quarter = k.quarter AND s.lead_source = k.lead_source
LEFT JOIN came AS c ON c.quarter = k.quarter AND c.lead_source = k.lead_source
LEFT JOIN wins AS w ON w.quarter = k.quarter AND w.lead_source = k.lead_source
WHERE spend != 0 OR leads != 0 OR won != 0
ORDER BY quarter, spend DESC, revenue DESC, lead_source
SETTINGS join_use_nulls = 1
