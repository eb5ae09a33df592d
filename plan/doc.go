// Package plan turns account snapshots into the two summaries a sales
// leader plans with: goals by tier (how each tier does against its kind of
// goal) and the coverage plan (whether the reps on hand can carry the
// pyramid as it is).
//
// It is pure like scoring: a Summariser takes snapshots in any order and
// gives the same result, so the HTTP API (over the accounts an instance
// owns), `pyramid replay --plan` (over a whole backtest) and tests all
// share one definition. The ClickHouse views goal_summary and coverage_plan
// compute the same figures in SQL; a test compares the two.
//
// Definitions:
//
//   - Attainment is goal_actual / goal_target of the snapshot; accounts
//     whose share-of-wallet goal lacks a wallet have none and are counted as
//     wallet_unknown. The median is the usual one (the mean of the two
//     middle values for an even count).
//   - The accounts furthest behind are those behind their goal with the
//     lowest attainment; ties go to the larger wallet, then the smaller
//     current value, then the account id.
//   - A tier needs ceil(accounts / capacity) reps, where capacity is how
//     many accounts one rep carries under the tier's coverage model
//     (coverage_capacity); a capacity below 1 is a team per account and an
//     unlimited one (a call centre) needs no rep.
//   - A rep's load is the sum of load_weight over the rep's accounts, the
//     same figure ClickHouse's rep_coverage sums. load_weight defaults to
//     1/capacity of the tier's model, at most 1, so a rep's load exceeds 1
//     exactly when the accounts held need more than one rep: a rep holding
//     accounts of several models is overloaded when Σ 1/capacity > 1. A
//     team account fills its owner (weight 1); the rest of its team is
//     counted in the tier's reps needed, since owner_id names one person.
//   - The watch list holds high-current/low-potential accounts on dedicated
//     coverage (capacity at most 1): effort spent where there is no future.
package plan
