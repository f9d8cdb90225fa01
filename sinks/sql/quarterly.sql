-- quarterly: per UTC calendar quarter and lead source — leads by first-touch
-- quarter (contacts without touches excluded), deals by creation quarter, and
-- won/lost/win_rate/avg_deal_size/revenue by close quarter (the event time of the
-- latest won/lost change). A row exists when any of its numbers is non-zero.
-- Parameters: level, ranged, since_ms, until_ms (each measure filtered on the time
-- that places it in its quarter).
WITH
    facts AS
    (
        SELECT concat(toString(toYear(first_touch_day)), '-Q', toString(toQuarter(first_touch_day))) AS quarter,
               multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail,
                       lead_channel) AS lead_source,
               leads AS n_leads, 0 AS n_deals, 0 AS n_won, 0 AS n_lost, 0 AS n_won_money,
               toNullable(0.) AS amount
        FROM {db}.lead_counts
        WHERE has_touch = 1
          AND ({ranged:UInt8} = 0
               OR (toInt32(first_touch_day) >= {since_day:Int32} AND toInt32(first_touch_day) < {until_day:Int32}))
        UNION ALL
        SELECT concat(toString(toYear(fromUnixTimestamp64Milli(ts, 'UTC'))), '-Q', toString(toQuarter(fromUnixTimestamp64Milli(ts, 'UTC')))), lead_source, 0, 1, 0, 0, 0, toNullable(0.)
        FROM
        (
            SELECT multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail, lead_channel)
                       AS lead_source,
                   toUnixTimestamp64Milli(assumeNotNull(created_at)) AS ts
            FROM {db}.deals_latest
            WHERE created_at IS NOT NULL
        )
        WHERE ({ranged:UInt8} = 0 OR (ts >= {since_ms:Int64} AND ts < {until_ms:Int64}))
        UNION ALL
        SELECT concat(toString(toYear(fromUnixTimestamp64Milli(ts, 'UTC'))), '-Q', toString(toQuarter(fromUnixTimestamp64Milli(ts, 'UTC')))), lead_source, 0, 0, status = 'won', status = 'lost',
               status = 'won' AND amt IS NOT NULL, if(status = 'won', amt, 0.)
        FROM
        (
            SELECT multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail, lead_channel)
                       AS lead_source,
                   status, money AS amt,
                   toUnixTimestamp64Milli(assumeNotNull(closed_at)) AS ts
            FROM {money_deals}
            WHERE status IN ('won', 'lost') AND closed_at IS NOT NULL
        )
        WHERE ({ranged:UInt8} = 0 OR (ts >= {since_ms:Int64} AND ts < {until_ms:Int64}))
    )
SELECT
    quarter,
    lead_source,
    toUInt64(sum(n_leads)) AS leads,
    toUInt64(sum(n_deals)) AS deals,
    toUInt64(sum(n_won)) AS won,
    toUInt64(sum(n_lost)) AS lost,
    if(won + lost = 0, NULL, won / (won + lost)) AS win_rate,
    if(sum(n_won_money) = 0, NULL, ifNull(sum(amount), 0.) / sum(n_won_money)) AS avg_deal_size,
    ifNull(sum(amount), 0.) AS revenue
FROM facts
GROUP BY quarter, lead_source
HAVING leads + deals + won + lost > 0 OR revenue != 0
ORDER BY quarter, lead_source
