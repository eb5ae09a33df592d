-- Tables Pyramid writes (docs/clickhouse.md). {db} is the target database.
-- Compatible with ClickHouse 18.16 and current releases: no LowCardinality,
-- DateTime64, Map, JSON or TTL; booleans are UInt8.

-- One row per emitted snapshot version. A row written twice (after a crash)
-- has the same (account_id, version) and collapses under FINAL or a merge.
CREATE TABLE IF NOT EXISTS {db}.account_snapshots
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
ORDER BY (account_id, version);

-- One row per tier move. (account_id, version) identifies the move; a
-- re-written row collapses.
CREATE TABLE IF NOT EXISTS {db}.tier_changes
(
    account_id      String,
    version         UInt64,
    changed_at      DateTime('UTC'),
    from_tier       Enum8('none' = 0, 'mass_market' = 1, 'non_named' = 2, 'named' = 3, 'major' = 4),
    to_tier         Enum8('none' = 0, 'mass_market' = 1, 'non_named' = 2, 'named' = 3, 'major' = 4),
    reason          String,
    current_value   Decimal(18, 2),
    potential_value Decimal(18, 2),
    event_id        String
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, version, to_tier);

-- One row per alert after merging: the status record written last wins
-- (row_version is the sink's write time in nanoseconds plus the row's
-- position in its batch, so a resolve written after the open replaces it,
-- and an alert re-opened after a snooze is open again).
CREATE TABLE IF NOT EXISTS {db}.account_alerts
(
    alert_id         String,
    account_id       String,
    kind             Enum8('neglected' = 1),
    status           Enum8('open' = 1, 'resolved' = 2),
    opened_at        DateTime('UTC'),
    resolved_at      Nullable(DateTime('UTC')),
    tier             Enum8('none' = 0, 'mass_market' = 1, 'non_named' = 2, 'named' = 3, 'major' = 4),
    owner_id         String,
    potential_value  Decimal(18, 2),
    last_touch_at    DateTime('UTC'),
    account_name     String,
    last_touch_kind  String,
    days_since_touch Int32,
    link             String,
    row_version      UInt64
)
ENGINE = ReplacingMergeTree(row_version)
ORDER BY alert_id;
