// Package e2e holds the end-to-end tests of the whole pipeline with the
// ClickHouse sink: generated events (package gen) go into an in-process
// Kafka broker (kfake, as package broker runs it), the streaming pipeline
// (package consumer) scores them and writes to a real ClickHouse server
// (package sink/clickhouse), and the BI view account_latest is compared,
// account by account and column by column, with the offline replay of the
// same events (package replay), which is the golden. The pipeline's wall
// clock (consumer.Options.Now) is fixed and is the replay's --as-of, so
// both make their final evaluation at the same moment.
//
// The package has no code of its own besides this comment; everything is
// in its tests:
//
//   - TestPipelineMatchesReplay: straight runs. With every event in one
//     input topic the pipeline applies each account's events in the
//     replay's order, and every column must be equal. With the real layout
//     (a topic per event type) the figures must be equal, while the
//     columns that record the path (tier_reason; the tier inside a
//     hysteresis band; version) must be explained instead (see
//     compareLatest).
//   - TestCrashRestart: the pipeline is killed while events flow, three
//     times as a child process (SIGKILL) and once in-process with no time
//     to flush; rows written twice collapse and nothing is missing.
//   - TestChaos: a generated stream mixed with a fixed hostile set (junk
//     at the head of every topic, oversized ids, junk timestamps, messages
//     without a key or keyed by another account, sums that would wrap,
//     duplicates, an account past its open-opportunity limit) and one
//     SIGKILL: every account equals the replay of the well-formed events
//     alone, and every hostile message is dead-lettered with its reason.
//   - TestClickHouseOutage: a private ClickHouse server is stopped for 20 s
//     while events flow; no offset is committed while it is down, the
//     sink's health reports the outage, and the pipeline catches up
//     afterwards with nothing lost.
//   - TestRepartitionedMatchesReplay: the CRM history of package inputs'
//     fixtures, as native events and as Debezium wrote it (three converter
//     configurations, source topics of 1, 3 and 7 partitions keyed by
//     primary key), repartitioned and scored as `pyramid run` wires it,
//     equals the replay of the native history.
//   - TestRepartitionCrashRestart: with declared inputs only, the process
//     running the repartitioner and the pipeline is killed while Debezium
//     records flow; the copies a kill leaves in the repartition topics are
//     dropped by their source position, and nothing is missing.
//   - BenchmarkPipelineClickHouse: events per second end to end with
//     ClickHouse as the sink.
//
// The tests need a server: PYRAMID_TEST_CLICKHOUSE_DSN (scripts/test.sh
// starts one). Without it they skip, except under CI=true, where they fail.
// The outage test needs the clickhouse-server binary instead, to run a
// server of its own that it may stop without disturbing other packages'
// tests. Run them with
//
//	DIR=$(mktemp -d); export PYRAMID_TEST_CLICKHOUSE_DSN=$(bash scripts/clickhouse.sh start $DIR)
//	go test ./e2e/
//	go test ./e2e/ -run '^$' -bench '^BenchmarkPipelineClickHouse$' -benchtime 1x -timeout 60m
package e2e
