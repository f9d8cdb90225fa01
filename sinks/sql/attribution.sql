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
-- Only the touches of the credited deals' contacts are resolved (one scan of the touch
-- table filtered by their keys); the small intermediate sets are materialized once
-- (enable_materialized_cte) instead of being recomputed at every reference.
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
    deal_ids AS MATERIALIZED
    (
        -- every contact id a deal names (its contacts and its primary)
        SELECT deal_id, arrayJoin(arrayPushBack(contact_ids, primary_contact_id)) AS raw_id FROM deals
    ),
    aliases AS MATERIALIZED
    (
        -- those ids -> the live contact that answers to each (itself or the one it merged into)
        SELECT alias_id, canonical
        FROM
        (
            SELECT contact_id AS canonical, arrayJoin(arrayPushBack(merged_contact_ids, contact_id)) AS alias_id
            FROM {db}.contacts_live
        )
        WHERE alias_id IN (SELECT raw_id FROM deal_ids)
    ),
    deal_contacts AS MATERIALIZED
    (
        SELECT DISTINCT d.deal_id AS deal_id, a.canonical AS contact_id
        FROM deal_ids AS d
        INNER JOIN aliases AS a ON d.raw_id = a.alias_id
    ),
    contact_keys AS MATERIALIZED
    (
        -- every key such a contact answers to: its own id and the ids merged into it ('c:'),
        -- its identified anonymous ids ('a:'); only the touches under these keys are resolved
        SELECT contact_id, if(created_at IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(created_at))) AS created_ms,
               arrayJoin(arrayConcat(arrayMap(x -> 'c:' || x, arrayPushBack(merged_contact_ids, contact_id)),
                                     arrayMap(x -> 'a:' || x, anonymous_ids))) AS key
        FROM {db}.contacts_live
        WHERE contact_id IN (SELECT contact_id FROM deal_contacts)
    ),
    latest AS
    (
        -- the touches delivered under one of those keys, de-duplicated by event id (the latest
        -- delivery wins, as in touches_dedup; every delivery of a touch resolves to the same
        -- contacts, because a contact only ever gains ids, so filtering first changes nothing)
        SELECT event_id,
               toUnixTimestamp64Milli(argMax(event_time, processed_at)) AS ts,
               argMax(anonymous_id, processed_at) AS touch_anonymous_id,
               argMax(contact_id, processed_at) AS touch_contact_id,
               argMax(multiIf({level:String} = 'source', toString(source), {level:String} = 'detail', detail,
                              toString(channel)), processed_at) AS value
        FROM {db}.touches
        WHERE anonymous_id IN (SELECT substring(key, 3) FROM contact_keys WHERE startsWith(key, 'a:'))
           OR contact_id IN (SELECT substring(key, 3) FROM contact_keys WHERE startsWith(key, 'c:'))
        GROUP BY event_id
    ),
    contact_journeys AS
    (
        -- per contact: its touches in journey order (event_time, event_id), and its lead-creation
        -- touch: the last at or before its creation, else the first after it
        SELECT contact_id, touches,
               if(created_ms IS NULL, '',
                  if(arrayExists(x -> x.1 <= assumeNotNull(created_ms), touches),
                     arrayLast(x -> x.1 <= assumeNotNull(created_ms), touches).2,
                     arrayFirst(x -> x.1 > assumeNotNull(created_ms), touches).2)) AS lead_touch
        FROM
        (
            SELECT k.contact_id AS contact_id, any(k.created_ms) AS created_ms,
                   arraySort(groupUniqArray((t.ts, t.event_id, t.value))) AS touches
            FROM (SELECT event_id, ts, value, arrayJoin(['c:' || touch_contact_id, 'a:' || touch_anonymous_id]) AS key
                  FROM latest) AS t
            INNER JOIN contact_keys AS k ON k.key = t.key
            GROUP BY k.contact_id
        )
    ),
    positioned AS
    (
        -- a deal's journey: its contacts' touches up to its close, de-duplicated, in order
        SELECT deal_id, status, amount,
               arraySort(arrayDistinct(arrayFilter(x -> closed_ms IS NULL OR x.1 <= assumeNotNull(closed_ms),
                                                   arrayFlatten(groupArray(touches))))) AS journey,
               length(journey) AS n,
               indexOf(arrayMap(x -> x.2, journey), anyIf(lead_touch, is_primary)) AS lc,
               if(created_ms IS NULL, 0, arrayLastIndex(x -> x.1 <= assumeNotNull(created_ms), journey)) AS dc
        FROM
        (
            SELECT d.deal_id AS deal_id, d.status AS status, d.amount AS amount, d.closed_ms AS closed_ms,
                   d.created_ms AS created_ms, j.touches AS touches, j.lead_touch AS lead_touch,
                   j.contact_id = pa.canonical AS is_primary
            FROM deals AS d
            INNER JOIN deal_contacts AS dc ON dc.deal_id = d.deal_id
            INNER JOIN contact_journeys AS j ON j.contact_id = dc.contact_id
            LEFT JOIN aliases AS pa ON pa.alias_id = d.primary_contact_id
        )
        GROUP BY deal_id, status, amount, closed_ms, created_ms
        HAVING n > 0
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
SETTINGS enable_materialized_cte = 1
