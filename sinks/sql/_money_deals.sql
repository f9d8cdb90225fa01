(
    -- every deal's latest state with its amount in the reporting currency (docs/money.md):
    -- converted at its currency's rate on the day it closed (won/lost), open deals at the
    -- latest rate (a far day: the Date type ends in 2149); an amount of NULL counts as 0;
    -- NULL money: no rate on or before that day.
    SELECT d.*,
           multiIf(d.currency = {reporting_currency:String}, ifNull(d.amount, 0.),
                   r.found = 1, ifNull(d.amount, 0.) * r.rate, NULL) AS money,
           d.rate_day AS rate_day
    FROM
    (
        SELECT *,
               toDate(if(status IN ('won', 'lost') AND closed_at IS NOT NULL, closed_at,
                         toDateTime64('2149-01-01 00:00:00', 3, 'UTC')), 'UTC') AS rate_day
        FROM {db}.deals_latest
    ) AS d
    ASOF LEFT JOIN
    (
        SELECT currency, day, argMax(rate, received_at) AS rate, toUInt8(1) AS found
        FROM {db}.fx_rates
        GROUP BY currency, day
    ) AS r
    ON d.currency = r.currency AND d.rate_day >= r.day
)
