-- alerts, unclassified_pair: utm_source/utm_medium pairs of recent touches the taxonomy
-- classified Unknown or Unclassified (touches without either parameter left out).
SELECT utm_source, utm_medium, count() AS touches
FROM {db}.touches_dedup
WHERE event_time >= fromUnixTimestamp64Milli({since:Int64}) AND event_time < fromUnixTimestamp64Milli({now:Int64})
  AND channel IN ('Unknown', 'Unclassified') AND (utm_source != '' OR utm_medium != '')
GROUP BY utm_source, utm_medium
HAVING touches >= {min_touches:UInt64}
ORDER BY touches DESC, utm_source, utm_medium
LIMIT 100
