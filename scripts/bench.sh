#!/usr/bin/env bash
# make bench: the figures the issues ask for, measured in one run.
#  1. replay: events/s on one core and heap bytes per account, on a generated
#     1,000,000-event, 100,000-account input (median of BENCH_COUNT runs);
#  2. end to end with the file sink: kfake broker -> pipeline -> changelog +
#     fsynced JSONL, against the bare kafka-go consume rate of the same
#     messages measured in the same run;
#  3. end to end, native against repartitioned: the same generated history
#     as native events and as Debezium records of declared inputs
#     (repartitioned by account, then scored), both with the file sink,
#     one after the other in the same run;
#  4. end to end with ClickHouse as the sink (when clickhouse-server is
#     installed or PYRAMID_TEST_CLICKHOUSE_DSN is set);
#  5. BI dashboards: the six dashboard queries against a history of 1, 10
#     and 30 million snapshot rows (100,000 accounts), median of 7 runs each
#     (same condition; PYRAMID_BENCH_BI_HISTORY=1 also times the old
#     history-scanning views, PYRAMID_BENCH_BI_OPTIMIZE=1 the queries after
#     OPTIMIZE TABLE account_current FINAL, PYRAMID_BENCH_BI_VERSIONS=10,100
#     skips 30M).
# PYRAMID_BENCH_EVENTS / PYRAMID_BENCH_ACCOUNTS shrink the inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${BENCH_COUNT:-3}"
out=$(mktemp -d)

echo "== replay (GOMAXPROCS=1, $count runs) =="
GOMAXPROCS=1 go test ./replay/ -run '^$' -bench '^BenchmarkReplay$' -benchtime 1x -count "$count" | tee "$out/replay.txt"

echo
echo "== end to end, file sink ($count runs) =="
go test ./consumer/ -run '^$' -bench '^BenchmarkPipeline$' -benchtime 1x -count "$count" -timeout 60m | tee "$out/files.txt"

echo
echo "== end to end, native and repartitioned (declared Debezium inputs), file sink ($count runs) =="
go test ./repartition/ -run '^$' -bench '^BenchmarkRepartition$' -benchtime 1x -count "$count" -timeout 60m | tee "$out/repartition.txt"

started=""
cleanup() { [ -n "$started" ] && bash scripts/clickhouse.sh stop "$started" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ -z "${PYRAMID_TEST_CLICKHOUSE_DSN:-}" ] && { command -v clickhouse-server || [ -x /usr/sbin/clickhouse-server ]; } >/dev/null 2>&1; then
  started=$(mktemp -d /tmp/pyramid-ch.XXXXXX)
  PYRAMID_TEST_CLICKHOUSE_DSN=$(bash scripts/clickhouse.sh start "$started")
  export PYRAMID_TEST_CLICKHOUSE_DSN
fi
if [ -n "${PYRAMID_TEST_CLICKHOUSE_DSN:-}" ] && [ -d e2e ]; then
  echo
  echo "== end to end, ClickHouse sink =="
  go test ./e2e/ -run '^$' -bench '^BenchmarkPipelineClickHouse$' -benchtime 1x -count 1 -timeout 60m | tee "$out/clickhouse.txt"
fi

if [ -n "${PYRAMID_TEST_CLICKHOUSE_DSN:-}" ]; then
  echo
  echo "== BI dashboards (ClickHouse) =="
  go test ./sink/clickhouse/ -run '^$' -bench '^BenchmarkDashboards$' -benchtime 1x -count 1 -timeout 120m | tee "$out/bi.txt"
fi

echo
echo "== summary =="
python3 - "$out" <<'PY'
import json, os, re, statistics, sys
d = sys.argv[1]
def metrics(path, name):
    vals = {}
    if not os.path.exists(path):
        return vals
    for line in open(path):
        if line.startswith(name):
            for v, unit in re.findall(r"([\d.]+) ([\w/%-]+)", line):
                vals.setdefault(unit, []).append(float(v))
    return vals
def jsonlines(path):
    if not os.path.exists(path):
        return []
    # go test prints a benchmark's name before running it, so a JSON line
    # can follow that name on the same line.
    return [json.loads(l[l.index("{"):]) for l in open(path) if "{" in l]
def jsonline(path):
    rows = jsonlines(path)
    return rows[-1] if rows else None
r = metrics(os.path.join(d, "replay.txt"), "BenchmarkReplay")
print("| benchmark | figure | target |")
print("|---|---|---|")
if r:
    print(f"| replay, one core | {statistics.median(r['events/s']):,.0f} events/s (median of {len(r['events/s'])}) | >= 400,000 |")
    print(f"| replay heap | {statistics.median(r['heap-B/account']):,.0f} bytes/account | <= 600 |")
runs = jsonlines(os.path.join(d, "files.txt"))
if runs:
    med = lambda k: statistics.median(x[k] for x in runs)
    n = f"median of {len(runs)}"
    print(f"| end to end, file sink | {med('events_per_s'):,.0f} events/s ({n}) | >= 150,000 |")
    print(f"| bare kafka-go consume, same runs | {med('bare_events_per_s'):,.0f} events/s ({n}) | |")
    each = ", ".join(f"{x['ratio']:.3f}" for x in runs)
    print(f"| ratio | {med('ratio'):.3f} ({n}; runs: {each}) | >= 0.3 |")
    print(f"| latency append -> durable | p50 {med('latency_p50_ms'):,.0f} ms, p99 {med('latency_p99_ms'):,.0f} ms ({n}) | |")
    print(f"| peak RSS | {max(x['peak_rss_mb'] for x in runs):,.0f} MB (largest) | |")
rp = [x for x in jsonlines(os.path.join(d, "repartition.txt")) if x.get("benchmark") == "repartition"]
if rp:
    med = lambda k: statistics.median(x[k] for x in rp)
    n = f"median of {len(rp)}"
    print(f"| end to end, native events, file sink | {med('native_events_per_s'):,.0f} events/s ({n}) | |")
    print(f"| end to end, the same as Debezium records of declared inputs, repartitioned | {med('repartitioned_events_per_s'):,.0f} events/s ({n}) | |")
    each = ", ".join(f"{x['ratio']:.3f}" for x in rp)
    print(f"| repartitioned / native | {med('ratio'):.3f} ({n}; runs: {each}) | >= 0.5 |")
c = jsonline(os.path.join(d, "clickhouse.txt"))
if c:
    print("| end to end, ClickHouse sink | " + ", ".join(f"{k} {v:,.0f}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in c.items() if k not in ("benchmark",)) + " | >= 100,000 events/s |")

bi = [r for r in jsonlines(os.path.join(d, "bi.txt")) if r.get("benchmark") == "bi"]
if bi:
    names = ["tier counts", "one tier by potential", "one rep's accounts", "rep coverage", "neglected list", "one account now", "one account now, through account_latest"]
    print()
    print(f"BI dashboard queries, median of {bi[0]['runs']} runs each, ms (target: each < 100 ms at 10M rows, flat from 1M to 30M):")
    print()
    print("| history rows | accounts | " + " | ".join(names) + " | account_current rows (parts) |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for r in bi:
        print(f"| {r['history_rows']:,} | {r['accounts']:,} | " + " | ".join(f"{r['ms'][n]:.0f}" for n in names) + f" | {r['current_rows']:,} ({r['current_parts']}) |")
    for r in bi:
        if "optimized_ms" in r:
            print(f"| {r['history_rows']:,}, after OPTIMIZE TABLE account_current FINAL ({r['optimize_s']:.1f} s) | {r['accounts']:,} | " + " | ".join(f"{r['optimized_ms'][n]:.0f}" for n in names) + " | |")
    for r in bi:
        if "history_ms" in r:
            print(f"| {r['history_rows']:,}, views scanning the history (one run) | {r['accounts']:,} | " + " | ".join(f"{r['history_ms'][n]:,.0f}" if n in r['history_ms'] else "" for n in names) + " | |")
    print()
    print("FINAL's cost: SELECT tier, count() FROM <table> [FINAL] GROUP BY tier, median of 3 runs, ms:")
    print()
    print("| history rows | account_current | account_current FINAL | account_snapshots | account_snapshots FINAL |")
    print("|---|---|---|---|---|")
    for r in bi:
        f = r["final_ms"]
        print(f"| {r['history_rows']:,} | {f['account_current']:.0f} | {f['account_current FINAL']:.0f} | {f['account_snapshots']:.0f} | {f['account_snapshots FINAL']:,.0f} |")
PY
