-- Money in one currency (docs/money.md): marketing spend and exchange rates, read by the
-- sink from the spend and fx-rates topics, and the deals' currency in their latest state.
-- A re-imported spend row or rate (same day, same keys) replaces the earlier one: the
-- latest received wins (ReplacingMergeTree on received_at; the reports take argMax).

CREATE TABLE IF NOT EXISTS {db}.spend {on_cluster}
(
    event_id      String,
    day           Date,
    received_at   DateTime64(3, 'UTC'),
    channel       LowCardinality(String),
    source        LowCardinality(String),
    campaign      String,
    amount        Float64,
    currency      LowCardinality(String),
    source_system Nullable(String)
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.fx_rates {on_cluster}
(
    currency    LowCardinality(String),
    day         Date,
    rate        Float64,
    received_at DateTime64(3, 'UTC'),
    event_id    String
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (currency, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE OR REPLACE VIEW {db}.deals_latest {on_cluster} AS
SELECT
    deal_id,
    s.1 AS stamp_version, s.2 AS status, s.3 AS amount, s.4 AS created_at, s.5 AS closed_at,
    s.6 AS primary_contact_id, s.7 AS contact_ids, s.8 AS lead_channel, s.9 AS lead_source, s.10 AS lead_detail,
    s.11 AS contact_source, s.12 AS stage, s.13 AS owner, s.14 AS event_time, s.15 AS currency
FROM
(
    SELECT deal_id,
           argMax((stamp_version, status, amount, created_at, closed_at, primary_contact_id, contact_ids,
                   lead_channel, lead_source, lead_detail, contact_source, stage, owner, event_time, currency),
                  stamp_version) AS s
    FROM {db}.deal_versions
    GROUP BY deal_id
);
