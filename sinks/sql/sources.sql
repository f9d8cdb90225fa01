-- sources: per lead source (at the --by level) — leads (live contacts), deals by
-- their stamped lead source, won/lost/open, win rate, average won deal size,
-- revenue, open pipeline and median days from creation to won.
-- Parameters: level ('channel'|'source'|'detail'), ranged (0|1), since_ms, until_ms
-- (half-open [since, until); contacts by first-touch day, deals by created_at), since_day, until_day.
WITH
    leads AS
    (
        -- live contacts per lead source from the sign-weighted aggregates: lead_totals when
        -- the report is not ranged (migration 0008), lead_counts by first-touch day when it is
        -- (0003); the branch whose condition is false reads nothing
        SELECT multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail,
                       lead_channel) AS lead_source,
               sum(leads) AS leads
        FROM
        (
            SELECT lead_channel, lead_source, lead_detail, leads FROM {db}.lead_totals WHERE {ranged:UInt8} = 0
            UNION ALL
            SELECT lead_channel, lead_source, lead_detail, leads FROM {db}.lead_counts
            WHERE {ranged:UInt8} = 1 AND has_touch = 1 AND toInt32(first_touch_day) >= {since_day:Int32}
              AND toInt32(first_touch_day) < {until_day:Int32}
        )
        GROUP BY lead_source
        HAVING leads != 0
    ),
    deals AS
    (
        SELECT lead_source,
               count() AS deals,
               countIf(status = 'won') AS won,
               countIf(status = 'lost') AS lost,
               countIf(status NOT IN ('won', 'lost')) AS open,
               ifNull(sumIf(amount, status = 'won'), 0.) AS revenue,
               countIf(status = 'won' AND amount IS NOT NULL) AS won_converted,
               ifNull(sumIf(amount, status NOT IN ('won', 'lost')), 0.) AS pipeline,
               if(countIf(status = 'won' AND created_ms >= 0 AND closed_ms >= 0) = 0, NULL,
                  quantileExactInclusiveIf(0.5)((closed_ms - created_ms) / 86400000.,
                                                status = 'won' AND created_ms >= 0 AND closed_ms >= 0))
                   AS median_days_to_close
        FROM
        (
            -- the latest version per deal, its amount in the reporting currency (NULL: no rate)
            SELECT deal_id,
                   multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail,
                           lead_channel) AS lead_source,
                   status, money AS amount,
                   ifNull(toUnixTimestamp64Milli(created_at), -1) AS created_ms,
                   ifNull(toUnixTimestamp64Milli(closed_at), -1) AS closed_ms
            FROM {money_deals}
        )
        WHERE {ranged:UInt8} = 0
           OR (created_ms >= 0 AND created_ms >= {since_ms:Int64} AND created_ms < {until_ms:Int64})
        GROUP BY lead_source
    ),
    visited AS
    (
        -- every source that brought touches (anonymous visits included), so a source
        -- shows up with zeros before its first lead or deal (migrations 0004 and 0008)
        SELECT DISTINCT multiIf({level:String} = 'source', source, {level:String} = 'detail', detail,
                                channel) AS lead_source
        FROM
        (
            SELECT channel, source, detail FROM {db}.touch_source_totals WHERE {ranged:UInt8} = 0
            UNION ALL
            SELECT channel, source, detail FROM {db}.touch_sources
            WHERE {ranged:UInt8} = 1 AND toInt32(day) >= {since_day:Int32} AND toInt32(day) < {until_day:Int32}
        )
    ),
    counted AS
    (
        -- lead_source, leads, then the deal columns in the order named above
        SELECT * FROM leads FULL OUTER JOIN deals USING (lead_source)
    )
SELECT
    lead_source,
    counted.leads AS leads,
    counted.deals AS deals,
    counted.won AS won,
    counted.lost AS lost,
    counted.open AS open,
    if(counted.won + counted.lost = 0, NULL, counted.won / (counted.won + counted.lost)) AS win_rate,
    if(counted.won_converted = 0, NULL, counted.revenue / counted.won_converted) AS avg_deal_size,
    counted.revenue AS revenue,
    counted.pipeline AS pipeline,
    counted.median_days_to_close AS median_days_to_close
FROM counted
FULL OUTER JOIN visited USING (lead_source)
ORDER BY revenue DESC, leads DESC, lead_source
SETTINGS optimize_aggregation_in_order = 1
