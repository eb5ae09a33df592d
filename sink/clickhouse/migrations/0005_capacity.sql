-- Capacity-capped tiers (tiers.<tier>.max_accounts, docs/model.md): each
-- tier's cap as configured, and how the capped tiers stand.

-- Each tier's max_accounts; 0 is no cap. pyramid run writes every tier at
-- its first write after start-up; the row written last (highest
-- row_version, the write time in nanoseconds) wins.
CREATE TABLE IF NOT EXISTS {db}.tier_caps
(
    tier         String,
    max_accounts UInt32,
    updated_at   DateTime('UTC'),
    row_version  UInt64
)
ENGINE = ReplacingMergeTree(row_version)
ORDER BY tier;

-- Per capped tier: its cap, the accounts holding it (pinned by
-- tier_override among them), the places left, the accounts a capacity
-- ranking left without a place in it (tier_reason "capacity: rank N by
-- value, <tier> holds M") and those qualifying for it that wait for a
-- first ranking ("... <tier> holds M: waits for the capacity ranking").
-- Every account counts once under the tier it holds and once under the
-- tier its reason names (one pass; ClickHouse 18.16 takes one JOIN per
-- SELECT).
CREATE VIEW IF NOT EXISTS {db}.tier_capacity AS
SELECT
    tier_name AS tier,
    max_accounts,
    held,
    pinned,
    toUInt64(greatest(toInt64(max_accounts) - toInt64(held), 0)) AS places_left,
    without_place,
    waiting
FROM
(
    SELECT tier AS tier_name, argMax(max_accounts, row_version) AS max_accounts
    FROM {db}.tier_caps
    GROUP BY tier
)
ANY LEFT JOIN
(
    SELECT
        tupleElement(e, 1) AS tier_name,
        countIf(tupleElement(e, 2) = 1) AS held,
        countIf(tupleElement(e, 2) = 1 AND tupleElement(e, 3) = 1) AS pinned,
        countIf(tupleElement(e, 2) = 2) AS without_place,
        countIf(tupleElement(e, 2) = 3) AS waiting
    FROM
    (
        SELECT arrayJoin([
            (toString(tier), toUInt8(1), toUInt8(overridden)),
            (extract(tier_reason, ' ([a-z_]+) holds [0-9]+'),
                toUInt8(multiIf(tier_reason LIKE 'capacity: rank %', 2, tier_reason LIKE '%: waits for the capacity ranking', 3, 0)),
                toUInt8(0))
        ]) AS e
        FROM {db}.account_latest
    )
    WHERE tupleElement(e, 2) != 0
    GROUP BY tier_name
) USING (tier_name)
WHERE max_accounts > 0
ORDER BY indexOf(['major', 'named', 'non_named', 'mass_market'], tier);
