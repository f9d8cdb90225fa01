-- lead-scores, the win rate: won and lost deals per stamped lead source closed in the
-- trailing window.
SELECT lead_channel, lead_source, lead_detail, countIf(status = 'won') AS won, countIf(status = 'lost') AS lost
FROM {db}.deals_latest
WHERE status IN ('won', 'lost') AND closed_at >= fromUnixTimestamp64Milli({from_ms:Int64})
  AND closed_at < fromUnixTimestamp64Milli({now_ms:Int64})
GROUP BY lead_channel, lead_source, lead_detail
