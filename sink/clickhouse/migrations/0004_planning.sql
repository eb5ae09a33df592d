-- Planning views: goals by tier and the coverage plan, the same figures as
-- GET /v1/goals and GET /v1/coverage over every account (docs/planning.md).
-- They read account_latest, one row per account, so they follow wherever
-- that view reads the current state from.

-- How many accounts one rep carries under each coverage model, as
-- configured (coverage_capacity); 0 is unlimited (a call centre: a real
-- capacity is above 0). Not Nullable: aggregates treat NULL differently on
-- 18.16 and current releases. pyramid run writes every model at its first
-- write after start-up; the row written last (highest row_version, the
-- write time in nanoseconds) wins.
CREATE TABLE IF NOT EXISTS {db}.coverage_capacity
(
    coverage_model String,
    capacity       Float64,
    updated_at     DateTime('UTC'),
    row_version    UInt64
)
ENGINE = ReplacingMergeTree(row_version)
ORDER BY coverage_model;

-- Per tier: the goal, accounts met / behind / wallet unknown, sales summed
-- (absolute_sales tiers), the median and distribution of attainment, and
-- the ten accounts furthest behind (lowest attainment; ties: bigger wallet,
-- then smaller current value, then account id). The inner query names its
-- columns apart from the table's, as 18.16 wants when an aggregate reads a
-- column another alias would shadow.
CREATE VIEW IF NOT EXISTS {db}.goal_summary AS
SELECT
    tier,
    metric AS goal_metric,
    target AS goal_target,
    accounts,
    met,
    behind,
    wallet_unknown,
    if(metric = 'absolute_sales', toNullable(actual_sum), NULL) AS actual_total,
    if(metric = 'absolute_sales', toNullable(round(target * accounts, 2)), NULL) AS target_total,
    if(known = 0, NULL, toNullable(if(known % 2 = 1, sorted[intDiv(known, 2) + 1],
        (sorted[intDiv(known, 2)] + sorted[intDiv(known, 2) + 1]) / 2))) AS median_attainment,
    under_25,
    from_25_to_50,
    from_50_to_75,
    from_75_to_100,
    at_least_100,
    arrayMap(b -> b.4, arraySlice(arraySort(behind_list), 1, 10)) AS furthest_behind,
    arrayMap(b -> b.1, arraySlice(arraySort(behind_list), 1, 10)) AS furthest_behind_attainment
FROM
(
    SELECT
        tier,
        argMax(goal_metric, as_of) AS metric,
        argMax(goal_target, as_of) AS target,
        count() AS accounts,
        countIf(goal_status = 'met') AS met,
        countIf(goal_status = 'behind') AS behind,
        countIf(goal_status = 'wallet_unknown') AS wallet_unknown,
        sumIf(current_value, goal_metric = 'absolute_sales') AS actual_sum,
        arraySort(groupArrayIf(assumeNotNull(goal_attainment), isNotNull(goal_attainment))) AS sorted,
        length(sorted) AS known,
        countIf(isNotNull(goal_attainment) AND assumeNotNull(goal_attainment) < 0.25) AS under_25,
        countIf(isNotNull(goal_attainment) AND assumeNotNull(goal_attainment) >= 0.25 AND assumeNotNull(goal_attainment) < 0.5) AS from_25_to_50,
        countIf(isNotNull(goal_attainment) AND assumeNotNull(goal_attainment) >= 0.5 AND assumeNotNull(goal_attainment) < 0.75) AS from_50_to_75,
        countIf(isNotNull(goal_attainment) AND assumeNotNull(goal_attainment) >= 0.75 AND assumeNotNull(goal_attainment) < 1) AS from_75_to_100,
        countIf(isNotNull(goal_attainment) AND assumeNotNull(goal_attainment) >= 1) AS at_least_100,
        groupArrayIf((assumeNotNull(goal_attainment), -toFloat64(ifNull(wallet, toDecimal64(0, 2))), toFloat64(current_value), account_id),
            goal_status = 'behind') AS behind_list
    FROM {db}.account_latest
    GROUP BY tier
)
ORDER BY tier DESC;

-- Per tier and coverage model: the reps the accounts need
-- (ceil(accounts / capacity); none when unlimited, capacity NULL; a model
-- missing from coverage_capacity has configured = 0) against the distinct
-- owners holding them, accounts without an owner, owners over capacity
-- (Σ coverage_load > 1, the rep_coverage rule) and the watch list count
-- (high current, low potential, on dedicated coverage: capacity <= 1). A
-- tier shows more than one row only while snapshots taken before a change
-- of its coverage model remain.
CREATE VIEW IF NOT EXISTS {db}.coverage_plan AS
SELECT
    tier,
    coverage_model,
    if(cap = 0, NULL, toNullable(cap)) AS capacity,
    configured,
    accounts,
    toUInt64(if(cap = 0, 0, ceil(accounts / cap - 1e-9))) AS reps_needed,
    owners,
    toUInt64(greatest(toInt64(reps_needed) - toInt64(owners), 0)) AS shortfall,
    unowned,
    overloaded_owners,
    watch_list_accounts
FROM
(
    SELECT
        tier,
        coverage_model,
        any(model_cap) AS cap,
        any(model_configured) AS configured,
        count() AS accounts,
        uniqExactIf(owner_id, owner_id != '') AS owners,
        countIf(owner_id = '') AS unowned,
        uniqExactIf(owner_id, owner_id IN
        (
            SELECT owner_id
            FROM {db}.account_latest
            WHERE owner_id != ''
            GROUP BY owner_id
            HAVING round(sum(coverage_load), 6) > 1
        )) AS overloaded_owners,
        countIf(quadrant = 'high_current_low_potential' AND model_cap > 0 AND model_cap <= 1) AS watch_list_accounts
    FROM {db}.account_latest
    ANY LEFT JOIN
    (
        SELECT coverage_model, argMax(capacity, row_version) AS model_cap, toUInt8(1) AS model_configured
        FROM {db}.coverage_capacity
        GROUP BY coverage_model
    ) USING (coverage_model)
    GROUP BY tier, coverage_model
)
ORDER BY tier DESC, coverage_model;

-- Reps whose load exceeds one rep (Σ coverage_load > 1), heaviest first,
-- with their accounts per tier and their 20 biggest accounts by value.
CREATE VIEW IF NOT EXISTS {db}.coverage_overloaded_reps AS
SELECT
    owner_id,
    load,
    accounts,
    major_accounts,
    named_accounts,
    non_named_accounts,
    mass_market_accounts,
    arrayMap(a -> a.2, arraySlice(arraySort(ranked), 1, 20)) AS account_ids
FROM
(
    SELECT
        owner_id,
        round(sum(coverage_load), 6) AS load,
        count() AS accounts,
        countIf(tier = 'major') AS major_accounts,
        countIf(tier = 'named') AS named_accounts,
        countIf(tier = 'non_named') AS non_named_accounts,
        countIf(tier = 'mass_market') AS mass_market_accounts,
        groupArray((-toFloat64(current_value + potential_value), account_id)) AS ranked
    FROM {db}.account_latest
    WHERE owner_id != ''
    GROUP BY owner_id
    HAVING load > 1
)
ORDER BY load DESC, owner_id;

-- The watch list: high-current, low-potential accounts held on dedicated
-- coverage (capacity at most 1: 1:1 or a team), least potential first —
-- effort spent where there is no future.
CREATE VIEW IF NOT EXISTS {db}.coverage_watch_list AS
SELECT
    account_id,
    account_name,
    tier,
    coverage_model,
    owner_id,
    current_value,
    potential_value
FROM {db}.account_latest
ANY LEFT JOIN
(
    SELECT coverage_model, argMax(capacity, row_version) AS model_cap
    FROM {db}.coverage_capacity
    GROUP BY coverage_model
) USING (coverage_model)
WHERE quadrant = 'high_current_low_potential' AND model_cap > 0 AND model_cap <= 1
ORDER BY potential_value, current_value DESC, account_id;
