-- alerts, source_silent: touches per lead source (at the level) in the baseline window and
-- in the recent window after it; sources with enough baseline touches and none recently.
SELECT multiIf({level:String} = 'channel', channel, {level:String} = 'detail', detail, source) AS lead_source,
       countIf(event_time < fromUnixTimestamp64Milli({recent_from:Int64})) AS baseline,
       countIf(event_time >= fromUnixTimestamp64Milli({recent_from:Int64})) AS recent
FROM {db}.touches_dedup
WHERE event_time >= fromUnixTimestamp64Milli({baseline_from:Int64}) AND event_time < fromUnixTimestamp64Milli({now:Int64})
GROUP BY lead_source
HAVING baseline >= {min_baseline:UInt64} AND recent = 0
ORDER BY baseline DESC, lead_source
