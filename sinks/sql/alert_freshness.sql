-- alerts, freshness_lag: when the newest touch stored was received, and how many there are.
SELECT toUnixTimestamp64Milli(max(received_at)) AS newest, count() AS touches FROM {db}.touches
