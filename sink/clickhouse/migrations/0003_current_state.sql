-- The current state: one row per account, kept by a materialized view, so
-- the BI views read 100,000 rows however long the history in
-- account_snapshots grows (docs/clickhouse.md, "Layout").

-- The newest snapshot of every account. Each insert into account_snapshots
-- is copied here (account_current_mv); merges, and FINAL on reads, keep
-- the highest version per account whatever order the copies arrive in.
CREATE TABLE IF NOT EXISTS {db}.account_current
(
    account_id         String,
    version            UInt64,
    as_of              DateTime('UTC'),
    tier               Enum8('none' = 0, 'mass_market' = 1, 'non_named' = 2, 'named' = 3, 'major' = 4),
    tier_reason        String,
    quadrant           Enum8('low_current_low_potential' = 1, 'high_current_low_potential' = 2, 'low_current_high_potential' = 3, 'high_current_high_potential' = 4),
    current_value      Decimal(18, 2),
    potential_value    Decimal(18, 2),
    weighted_pipeline  Decimal(18, 2),
    wallet             Nullable(Decimal(18, 2)),
    share_of_wallet    Nullable(Float64),
    goal_metric        Enum8('absolute_sales' = 1, 'share_of_wallet' = 2),
    goal_target        Float64,
    goal_actual        Nullable(Float64),
    goal_attainment    Nullable(Float64),
    goal_status        Enum8('met' = 1, 'behind' = 2, 'wallet_unknown' = 3),
    coverage_model     String,
    owner_id           String,
    last_touch_at      DateTime('UTC'),
    neglected          UInt8,
    open_opportunities UInt32,
    overridden         UInt8,
    coverage_load      Float64,
    account_name       String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY account_id;

-- Every block inserted into account_snapshots, copied as it is. The column
-- list is explicit: ClickHouse 18.16 wants the view's columns to be exactly
-- the target's.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_current_mv TO {db}.account_current AS
SELECT
    account_id, version, as_of, tier, tier_reason, quadrant,
    current_value, potential_value, weighted_pipeline, wallet, share_of_wallet,
    goal_metric, goal_target, goal_actual, goal_attainment, goal_status,
    coverage_model, owner_id, last_touch_at, neglected, open_opportunities,
    overridden, coverage_load, account_name
FROM {db}.account_snapshots;

-- Backfill: the newest version of every account already in the history.
-- It runs after the materialized view exists, so a row written meanwhile
-- reaches account_current through one or the other (or both: copies
-- collapse). Running it again adds only copies.
INSERT INTO {db}.account_current
(
    account_id, version, as_of, tier, tier_reason, quadrant,
    current_value, potential_value, weighted_pipeline, wallet, share_of_wallet,
    goal_metric, goal_target, goal_actual, goal_attainment, goal_status,
    coverage_model, owner_id, last_touch_at, neglected, open_opportunities,
    overridden, coverage_load, account_name
)
SELECT
    account_id, version, as_of, tier, tier_reason, quadrant,
    current_value, potential_value, weighted_pipeline, wallet, share_of_wallet,
    goal_metric, goal_target, goal_actual, goal_attainment, goal_status,
    coverage_model, owner_id, last_touch_at, neglected, open_opportunities,
    overridden, coverage_load, account_name
FROM {db}.account_snapshots
WHERE (account_id, version) IN
(
    SELECT account_id, max(version)
    FROM {db}.account_snapshots
    GROUP BY account_id
);

-- The BI views now read account_current. DROP TABLE also drops views
-- (ClickHouse 18.16 has no DROP VIEW).
DROP TABLE IF EXISTS {db}.account_latest;

-- One row per account, its highest version. FINAL collapses copies not yet
-- merged; a filter on this view stays a WHERE, applied after FINAL.
CREATE VIEW IF NOT EXISTS {db}.account_latest AS
SELECT
    account_id, version, as_of, tier, tier_reason, quadrant,
    current_value, potential_value, weighted_pipeline, wallet, share_of_wallet,
    goal_metric, goal_target, goal_actual, goal_attainment, goal_status,
    coverage_model, owner_id, last_touch_at, neglected, open_opportunities,
    overridden, coverage_load, account_name
FROM {db}.account_current FINAL;
