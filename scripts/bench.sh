#!/usr/bin/env bash
# make bench: the replay benchmark (one core) and the end-to-end pipeline
# benchmark (files sink; plus ClickHouse when a server is available), each on
# the sizes the issues set: 1,000,000 events for 100,000 accounts.
# PYRAMID_BENCH_EVENTS / PYRAMID_BENCH_ACCOUNTS shrink the inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${BENCH_COUNT:-3}"
out=$(mktemp -d)

echo "== replay (GOMAXPROCS=1, $count runs) =="
GOMAXPROCS=1 go test ./replay/ -run '^$' -bench '^BenchmarkReplay$' -benchtime 1x -count "$count" -benchmem | tee "$out/replay.txt"

echo
echo "== end to end: kfake broker -> pipeline -> changelog + sink =="
started=""
cleanup() { [ -n "$started" ] && bash scripts/clickhouse.sh stop "$started" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ -z "${PYRAMID_TEST_CLICKHOUSE_DSN:-}" ] && { command -v clickhouse-server || [ -x /usr/bin/clickhouse ]; } >/dev/null 2>&1; then
  started=$(mktemp -d /tmp/pyramid-ch.XXXXXX)
  PYRAMID_TEST_CLICKHOUSE_DSN=$(bash scripts/clickhouse.sh start "$started")
  export PYRAMID_TEST_CLICKHOUSE_DSN
fi
go test ./consumer/ -run '^$' -bench '^BenchmarkPipeline' -benchtime 1x -count 1 -timeout 60m | tee "$out/e2e.txt"

echo
echo "== summary (medians) =="
python3 - "$out/replay.txt" <<'PY'
import re, statistics, sys
vals = {}
for line in open(sys.argv[1]):
    if line.startswith("BenchmarkReplay"):
        for v, unit in re.findall(r"([\d.]+) ([\w/-]+)", line):
            vals.setdefault(unit, []).append(float(v))
if vals:
    print(f"replay: {statistics.median(vals['events/s']):,.0f} events/s (median of {len(vals['events/s'])}), "
          f"{statistics.median(vals['heap-B/account']):,.0f} heap bytes/account")
PY
