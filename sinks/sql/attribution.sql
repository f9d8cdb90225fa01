-- attribution: deal and revenue credit per channel (at the --by level) for one
-- multi-touch model. Deals: won (plus open and lost with include_open_lost); revenue
-- credit only from won deals, in the reporting currency (amount NULL -> 0; a deal whose
-- currency has no rate gives deal credit but no revenue credit, docs/money.md).
-- Journey of a deal: the touches of its contacts (contact_ids and the primary,
-- canonicalised; touches de-duplicated by event_id) with event_time <= closed_at
-- (no bound for open deals), ordered by (event_time, event_id).
-- Positions: first = journey[1]; closing = journey[n]; lead creation = the primary
-- contact's last touch at or before its created_at (else its first touch after it),
-- when that touch is in the journey; deal creation = the last journey touch at or
-- before the deal's created_at. A touch's position share is the sum of the shares
-- of the positions on it (s_first, s_lead, s_deal, s_close); the others share
-- (s_other) is spread evenly over the touches holding no share. The share of a
-- missing position, and the others share when there are no others, is divided
-- among what exists in proportion to its shares: the existing shares are
-- renormalised to 1 (the reading tests/oracle takes). time_decay: weight
-- 2^(-(t_last - t)/half_life), normalised (the reference time cancels out).
-- Channels with no credit at all are left out.
-- Parameters: level, ranged, since_ms, until_ms (deals by created_at), include_open_lost,
-- s_first, s_lead, s_deal, s_close, s_other, time_decay, half_life_ms.
WITH
    deals AS
    (
        SELECT deal_id, status, money AS amount,
               if(created_at IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(created_at))) AS created_ms,
               if(closed_at IS NULL OR status NOT IN ('won', 'lost'), NULL,
                  toUnixTimestamp64Milli(assumeNotNull(closed_at))) AS closed_ms,
               primary_contact_id, contact_ids
        FROM {money_deals}
        WHERE (status = 'won' OR {include_open_lost:UInt8} = 1)
          AND ({ranged:UInt8} = 0
               OR (created_at IS NOT NULL AND toUnixTimestamp64Milli(assumeNotNull(created_at)) >= {since_ms:Int64}
                   AND toUnixTimestamp64Milli(assumeNotNull(created_at)) < {until_ms:Int64}))
    ),
    touches AS
    (
        SELECT contact_id, event_id, toUnixTimestamp64Milli(event_time) AS ts,
               multiIf({level:String} = 'source', toString(source), {level:String} = 'detail', detail,
                       toString(channel)) AS value
        FROM {db}.touch_contacts
    ),
    deal_contacts AS
    (
        SELECT DISTINCT d.deal_id AS deal_id, a.canonical AS contact_id
        FROM (SELECT deal_id, arrayJoin(arrayPushBack(contact_ids, primary_contact_id)) AS raw_id FROM deals) AS d
        INNER JOIN {db}.contact_aliases AS a ON d.raw_id = a.alias_id
    ),
    journeys AS
    (
        SELECT dc.deal_id AS deal_id, arraySort(groupUniqArray((t.ts, t.event_id, t.value))) AS journey
        FROM deal_contacts AS dc
        INNER JOIN touches AS t ON dc.contact_id = t.contact_id
        INNER JOIN deals AS d ON d.deal_id = dc.deal_id
        WHERE d.closed_ms IS NULL OR t.ts <= assumeNotNull(d.closed_ms)
        GROUP BY dc.deal_id
    ),
    lead_creation AS
    (
        SELECT t.contact_id AS contact_id,
               if(countIf(t.ts <= c.created_ms) > 0,
                  argMaxIf(t.event_id, (t.ts, t.event_id), t.ts <= c.created_ms),
                  argMinIf(t.event_id, (t.ts, t.event_id), t.ts > c.created_ms)) AS lead_touch
        FROM touches AS t
        INNER JOIN
        (
            SELECT contact_id, toUnixTimestamp64Milli(assumeNotNull(created_at)) AS created_ms
            FROM {db}.contacts_live
            WHERE created_at IS NOT NULL
        ) AS c ON t.contact_id = c.contact_id
        GROUP BY t.contact_id
    ),
    positioned AS
    (
        SELECT d.deal_id AS deal_id, d.status AS status, d.amount AS amount, j.journey AS journey,
               length(j.journey) AS n,
               indexOf(arrayMap(x -> x.2, j.journey), ifNull(lc.lead_touch, '')) AS lc,
               if(d.created_ms IS NULL, 0,
                  arrayLastIndex(x -> x.1 <= assumeNotNull(d.created_ms), j.journey)) AS dc
        FROM deals AS d
        INNER JOIN journeys AS j ON j.deal_id = d.deal_id
        LEFT JOIN {db}.contact_aliases AS pa ON pa.alias_id = d.primary_contact_id
        LEFT JOIN lead_creation AS lc ON lc.contact_id = pa.canonical
        SETTINGS join_use_nulls = 1
    ),
    shared AS
    (
        SELECT deal_id, status, amount, journey,
               arrayMap(i -> {s_first:Float64} * (i = 1) + {s_lead:Float64} * (i = lc)
                             + {s_deal:Float64} * (i = dc) + {s_close:Float64} * (i = n),
                        arrayEnumerate(journey)) AS pos,
               {s_first:Float64} + {s_lead:Float64} * (lc > 0) + {s_deal:Float64} * (dc > 0)
                   + {s_close:Float64} AS total,
               arrayCount(p -> p = 0, pos) AS others,
               arrayMap(x -> pow(2., -(journey[n].1 - x.1) / {half_life_ms:Float64}), journey) AS decay
        FROM positioned
    ),
    credited AS
    (
        SELECT deal_id, status, amount, journey,
               if({time_decay:UInt8} = 1,
                  arrayMap(w -> w / arraySum(decay), decay),
                  arrayMap(p -> (p + if(p = 0 AND others > 0, {s_other:Float64} / others, 0.))
                                / (total + if(others > 0, {s_other:Float64}, 0.)), pos)) AS credit
        FROM shared
    )
SELECT
    touch.3 AS channel,
    sum(w) AS deal_credit,
    ifNull(sum(if(status = 'won', w * amount, 0.)), 0.) AS revenue_credit
FROM credited
ARRAY JOIN journey AS touch, credit AS w
GROUP BY channel
HAVING deal_credit != 0 OR revenue_credit != 0
ORDER BY revenue_credit DESC, deal_credit DESC, channel
