// Package clickhouse is the ClickHouse sink: it writes snapshots, tier
// changes and alerts over the native protocol (clickhouse-go v2) and owns
// the BI schema those rows land in.
//
// The schema is a list of versioned SQL migrations embedded in the binary
// (migrations/NNNN_name.sql). Migrate compares the live database with the
// schema they build (system.tables, system.columns), adds missing columns,
// applies the migrations a database lacks (recording each in
// pyramid_schema_migrations), re-creates missing views, and stops, naming
// each, at differences it cannot repair safely; concurrent runs take turns
// under a lock table. The BI views read account_current, one row per
// account, which a materialized view keeps from account_snapshots, the
// history, and which the sink compacts in the background every few
// minutes so that reads merge few copies. All SQL works on ClickHouse 18.16 (Debian's package, used in
// CI) and on current releases; docs/clickhouse.md describes every table
// and view, and why the layout is correct.
//
// Writes are idempotent: every row carries (account_id, version) or
// alert_id as the ReplacingMergeTree key, so a batch written twice after a
// crash collapses under FINAL or the next merge. Sink.Write retries errors
// that can heal (connection refused, timeouts, EOF, an overloaded server)
// with exponential backoff and jitter until its context ends, and returns
// at once, naming table and column, for errors that need a person (a
// missing table or column, a type mismatch).
package clickhouse
