-- alerts, unknown_direct_share: new leads (live contacts by their first touch, else their
-- creation) in the recent window and in the baseline window before it, and how many of
-- them have lead channel Unknown or Direct.
SELECT countIf(t >= fromUnixTimestamp64Milli({recent_from:Int64}) AND t < fromUnixTimestamp64Milli({now:Int64}))
           AS recent,
       countIf(t >= fromUnixTimestamp64Milli({recent_from:Int64}) AND t < fromUnixTimestamp64Milli({now:Int64})
               AND lead_channel IN ('Unknown', 'Direct')) AS recent_unknown_direct,
       countIf(t >= fromUnixTimestamp64Milli({baseline_from:Int64}) AND t < fromUnixTimestamp64Milli({recent_from:Int64}))
           AS baseline,
       countIf(t >= fromUnixTimestamp64Milli({baseline_from:Int64}) AND t < fromUnixTimestamp64Milli({recent_from:Int64})
               AND lead_channel IN ('Unknown', 'Direct')) AS baseline_unknown_direct
FROM (SELECT coalesce(first_touch_time, created_at) AS t, lead_channel FROM {db}.contacts_live WHERE t IS NOT NULL)
