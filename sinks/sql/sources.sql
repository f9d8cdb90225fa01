-- sources: per lead source (at the --by level) — leads (live contacts), deals by
-- their stamped lead source, won/lost/open, win rate, average won deal size,
-- revenue, open pipeline and median days from creation to won.
-- Parameters: level ('channel'|'source'|'detail'), ranged (0|1), since_ms, until_ms
-- (half-open [since, until); contacts by first-touch time, deals by created_at).
WITH
    leads AS
    (
        SELECT multiIf({level:String} = 'source', s.2, {level:String} = 'detail', s.3, s.1) AS lead_source,
               count() AS leads
        FROM
        (
            SELECT argMax((lead_channel, lead_source, lead_detail, merged_into, first_touch_time), version) AS s
            FROM {db}.contact_versions
            GROUP BY contact_id
        )
        WHERE s.4 IS NULL
          AND ({ranged:UInt8} = 0
               OR (s.5 IS NOT NULL AND toUnixTimestamp64Milli(assumeNotNull(s.5)) >= {since_ms:Int64}
                   AND toUnixTimestamp64Milli(assumeNotNull(s.5)) < {until_ms:Int64}))
        GROUP BY lead_source
    ),
    deals AS
    (
        SELECT multiIf({level:String} = 'source', lead_source, {level:String} = 'detail', lead_detail, lead_channel)
                   AS lead_source,
               count() AS deals,
               countIf(status = 'won') AS won,
               countIf(status = 'lost') AS lost,
               countIf(status NOT IN ('won', 'lost')) AS open,
               sumIf(ifNull(amount, 0.), status = 'won') AS revenue,
               sumIf(ifNull(amount, 0.), status NOT IN ('won', 'lost')) AS pipeline,
               if(countIf(status = 'won' AND created_at IS NOT NULL AND closed_at IS NOT NULL) = 0, NULL,
                  quantileExactInclusiveIf(0.5)(
                      (toUnixTimestamp64Milli(assumeNotNull(closed_at))
                       - toUnixTimestamp64Milli(assumeNotNull(created_at))) / 86400000.,
                      status = 'won' AND created_at IS NOT NULL AND closed_at IS NOT NULL)) AS median_days_to_close
        FROM {db}.deals_latest
        WHERE {ranged:UInt8} = 0
           OR (created_at IS NOT NULL AND toUnixTimestamp64Milli(assumeNotNull(created_at)) >= {since_ms:Int64}
               AND toUnixTimestamp64Milli(assumeNotNull(created_at)) < {until_ms:Int64})
        GROUP BY lead_source
    )
SELECT
    lead_source,
    leads.leads AS leads,
    deals.deals AS deals,
    deals.won AS won,
    deals.lost AS lost,
    deals.open AS open,
    if(deals.won + deals.lost = 0, NULL, deals.won / (deals.won + deals.lost)) AS win_rate,
    if(deals.won = 0, NULL, deals.revenue / deals.won) AS avg_deal_size,
    deals.revenue AS revenue,
    deals.pipeline AS pipeline,
    deals.median_days_to_close AS median_days_to_close
FROM leads
FULL OUTER JOIN deals USING (lead_source)
ORDER BY revenue DESC, leads DESC, lead_source
