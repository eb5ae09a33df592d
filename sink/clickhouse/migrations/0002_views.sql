-- Views for BI tools. Table names are qualified with {db} because ClickHouse
-- 18.16 resolves unqualified names in a view against the querying session's
-- database.

-- The newest snapshot of every account: exactly one row per account.
-- (A subquery picks the newest version; 18.16 rejects max(version) AS
-- version next to argMax(x, version).)
CREATE VIEW IF NOT EXISTS {db}.account_latest AS
SELECT
    account_id, version, as_of, tier, tier_reason, quadrant,
    current_value, potential_value, weighted_pipeline, wallet, share_of_wallet,
    goal_metric, goal_target, goal_actual, goal_attainment, goal_status,
    coverage_model, owner_id, last_touch_at, neglected, open_opportunities,
    overridden, coverage_load, account_name
FROM {db}.account_snapshots FINAL
WHERE (account_id, version) IN
(
    SELECT account_id, max(version)
    FROM {db}.account_snapshots
    GROUP BY account_id
);

-- Accounts and value per tier now.
CREATE VIEW IF NOT EXISTS {db}.tier_distribution AS
SELECT
    tier,
    count() AS accounts,
    count() / (SELECT count() FROM {db}.account_latest) AS account_share,
    sum(current_value) AS total_current_value,
    sum(potential_value) AS total_potential_value,
    sum(neglected) AS neglected_accounts,
    countIf(goal_status = 'met') AS goal_met,
    countIf(goal_status = 'behind') AS goal_behind,
    countIf(goal_status = 'wallet_unknown') AS goal_wallet_unknown
FROM {db}.account_latest
GROUP BY tier
ORDER BY tier DESC;

-- Coverage per rep (owner_id; '' = accounts without an owner): accounts per
-- tier and the summed load. A rep whose load exceeds 1.0 is overloaded.
-- coverage_load is written per snapshot from the configured load weights.
CREATE VIEW IF NOT EXISTS {db}.rep_coverage AS
SELECT
    owner_id,
    count() AS accounts,
    countIf(tier = 'major') AS major_accounts,
    countIf(tier = 'named') AS named_accounts,
    countIf(tier = 'non_named') AS non_named_accounts,
    countIf(tier = 'mass_market') AS mass_market_accounts,
    round(sum(coverage_load), 6) AS load,
    toUInt8(round(sum(coverage_load), 6) > 1) AS overloaded
FROM {db}.account_latest
GROUP BY owner_id
ORDER BY load DESC, owner_id;

-- High-potential accounts nobody touched for longer than their tier allows
-- (as of each account's latest snapshot), biggest potential first.
CREATE VIEW IF NOT EXISTS {db}.neglected_accounts AS
SELECT
    account_id,
    account_name,
    tier,
    owner_id,
    potential_value,
    current_value,
    last_touch_at,
    intDiv(toUInt32(as_of) - toUInt32(last_touch_at), 86400) AS days_since_touch,
    as_of,
    version
FROM {db}.account_latest
WHERE neglected = 1
ORDER BY potential_value DESC, account_id;
