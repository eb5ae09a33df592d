#!/usr/bin/env bash
# Runs every test. When PYRAMID_TEST_CLICKHOUSE_DSN is not set and a
# clickhouse-server binary is installed, starts a private server for the
# run (scripts/clickhouse.sh) and stops it afterwards. promtool unit-tests
# the alert rules when it is installed; under CI=true it must be. The
# Kafka-facing packages run a second time against test brokers that accept
# only Kafka 4.1's protocol versions (PYRAMID_TEST_KAFKA, see
# docs/operations.md); TestKafkaRequests covers every release in one pass.
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
cleanup() { [ -n "$started" ] && bash scripts/clickhouse.sh stop "$started" >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ -z "${PYRAMID_TEST_CLICKHOUSE_DSN:-}" ] && [ -f scripts/clickhouse.sh ] &&
   { command -v clickhouse-server || [ -x /usr/bin/clickhouse ]; } >/dev/null 2>&1; then
  started=$(mktemp -d /tmp/pyramid-ch.XXXXXX)
  PYRAMID_TEST_CLICKHOUSE_DSN=$(bash scripts/clickhouse.sh start "$started")
  export PYRAMID_TEST_CLICKHOUSE_DSN
  export PYRAMID_TEST_CLICKHOUSE_DIR="$started"
  echo "test.sh: ClickHouse started for this run: $PYRAMID_TEST_CLICKHOUSE_DSN"
fi

if [ -f deploy/prometheus/rules_test.yml ]; then
  if command -v promtool >/dev/null 2>&1; then
    echo "test.sh: promtool check + test rules"
    promtool check rules deploy/prometheus/rules.yml
    (cd deploy/prometheus && promtool test rules rules_test.yml)
  elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: promtool is required under CI=true (apt-get install prometheus)" >&2
    exit 1
  else
    echo "test.sh: promtool not installed; skipping rule unit tests (apt-get install prometheus)"
  fi
fi

go vet ./...
go test -count=1 -timeout 30m ./...
echo "test.sh: Kafka-facing packages again, against brokers emulating Kafka 4.1"
PYRAMID_TEST_KAFKA=4.1 go test -count=1 -timeout 30m -skip TestKafkaRequests \
  ./consumer ./repartition ./e2e ./cmd/pyramid ./alert ./gen ./broker
