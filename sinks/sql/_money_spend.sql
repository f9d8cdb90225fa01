(
    -- every spend row (the latest import of it) with its amount in the reporting currency,
    -- at its currency's rate on its day; NULL money: no rate on or before that day.
    SELECT s.event_id AS event_id, s.day AS day, s.channel AS channel, s.source AS source, s.campaign AS campaign,
           s.amount AS amount, s.currency AS currency,
           multiIf(s.currency = {reporting_currency:String}, s.amount, r.found = 1, s.amount * r.rate, NULL) AS money
    FROM
    (
        SELECT event_id, argMax(day, received_at) AS day, argMax(channel, received_at) AS channel,
               argMax(source, received_at) AS source, argMax(campaign, received_at) AS campaign,
               argMax(amount, received_at) AS amount, argMax(currency, received_at) AS currency
        FROM {db}.spend
        GROUP BY event_id
    ) AS s
    ASOF LEFT JOIN
    (
        SELECT currency, day, argMax(rate, received_at) AS rate, toUInt8(1) AS found
        FROM {db}.fx_rates
        GROUP BY currency, day
    ) AS r
    ON s.currency = r.currency AND s.day >= r.day
)
