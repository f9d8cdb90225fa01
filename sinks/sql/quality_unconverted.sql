-- quality, unconverted_deals: deals whose currency has no rate on or before the day that
-- converts them (docs/money.md); they are left out of every money sum, still counted.
SELECT deal_id, currency, status, amount, rate_day AS rate_date
FROM {money_deals}
WHERE money IS NULL
ORDER BY deal_id
LIMIT {top:UInt32}
