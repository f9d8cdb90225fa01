-- alerts, win_rate_drop: won and lost deals per lead source (at the level) closed in the
-- current quarter and in the trailing quarters before it.
SELECT multiIf({level:String} = 'channel', lead_channel, {level:String} = 'detail', lead_detail, lead_source)
           AS lead_source,
       countIf(status = 'won' AND closed_at >= fromUnixTimestamp64Milli({quarter_from:Int64})) AS won_now,
       countIf(status = 'lost' AND closed_at >= fromUnixTimestamp64Milli({quarter_from:Int64})) AS lost_now,
       countIf(status = 'won' AND closed_at < fromUnixTimestamp64Milli({quarter_from:Int64})) AS won_before,
       countIf(status = 'lost' AND closed_at < fromUnixTimestamp64Milli({quarter_from:Int64})) AS lost_before
FROM {db}.deals_latest
WHERE status IN ('won', 'lost') AND closed_at >= fromUnixTimestamp64Milli({trailing_from:Int64})
  AND closed_at < fromUnixTimestamp64Milli({now:Int64})
GROUP BY lead_source
ORDER BY lead_source
