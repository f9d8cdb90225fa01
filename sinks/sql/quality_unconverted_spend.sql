-- quality, unconverted_spend: spend rows whose currency has no rate on or before their day.
SELECT toString(day) AS date, channel, source, campaign, currency, amount
FROM {money_spend}
WHERE money IS NULL
ORDER BY day, channel, source, campaign
LIMIT {top:UInt32}
