package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// dashboardQueries are the six questions a BI dashboard asks all day, as
// docs/clickhouse.md lists them with their latency (TestDashboardQueries
// keeps the two equal), and the last one asked through the view, which
// 18.16 cannot narrow by the primary index. The ids exist in
// BenchmarkDashboards' data.
var dashboardQueries = []struct{ name, sql string }{
	{"tier counts", "SELECT tier, accounts, total_current_value, total_potential_value FROM tier_distribution"},
	{"one tier by potential", "SELECT account_id, account_name, owner_id, current_value, potential_value FROM account_latest WHERE tier = 'major' ORDER BY potential_value DESC LIMIT 100"},
	{"one rep's accounts", "SELECT account_id, account_name, tier, current_value, potential_value, last_touch_at FROM account_latest WHERE owner_id = 'rep-042' ORDER BY potential_value DESC"},
	{"rep coverage", "SELECT owner_id, accounts, major_accounts, named_accounts, load, overloaded FROM rep_coverage"},
	{"neglected list", "SELECT account_id, account_name, tier, owner_id, potential_value, days_since_touch FROM neglected_accounts LIMIT 100"},
	{"one account now", "SELECT * FROM account_current FINAL WHERE account_id = 'acc-054321'"},
	{"one account now, through account_latest", "SELECT * FROM account_latest WHERE account_id = 'acc-054321'"},
}

// TestDashboardQueries: the measured queries are the documented ones, and
// they run on the test fixture.
func TestDashboardQueries(t *testing.T) {
	doc, err := os.ReadFile("../../docs/clickhouse.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range dashboardQueries {
		if !strings.Contains(string(doc), "`"+q.sql+"`") {
			t.Errorf("docs/clickhouse.md does not list the %s query `%s`", q.name, q.sql)
		}
	}
	dsn, conn := migrated(t)
	fx := viewFixture()
	if err := newSink(t, dsn, Options{}).Write(context.Background(), &fx); err != nil {
		t.Fatal(err)
	}
	for _, q := range dashboardQueries {
		if _, err := timeQuery(conn, q.sql); err != nil {
			t.Errorf("%s: %v", q.name, err)
		}
	}
}

// timeQuery runs q and reads every row, returning the wall time.
func timeQuery(conn driver.Conn, q string) (time.Duration, error) {
	start := time.Now()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
	}
	err = rows.Err()
	rows.Close()
	return time.Since(start), err
}

// generateRound inserts one flush round of the BI benchmark's history,
// server-side, shaped like the pipeline's output: round r carries the next
// version of every tenth account (accounts spread over the key range, as a
// flush carries the accounts that changed), so after 10·k rounds every
// account has k versions. An account keeps its size, rep and name; its
// value drifts with the version and its tier follows from the value.
const generateRound = `INSERT INTO account_snapshots (` + snapshotColumns + `)
SELECT
    concat('acc-', substring(toString(1000000 + a), 2)) AS account_id,
    toUInt64(intDiv({r}, 10) + 1) AS version,
    toDateTime(1767225600 + {r} * 31536 + a % 3600, 'UTC') AS as_of,
    CAST(t AS Enum8('none' = 0, 'mass_market' = 1, 'non_named' = 2, 'named' = 3, 'major' = 4)) AS tier,
    concat('value ', toString(toDecimal64(value / 100, 2)), ' >= ', ['mass_market', 'non_named', 'named', 'major'][t], ' threshold ', ['0.00', '25,000.00', '250,000.00', '1,000,000.00'][t]) AS tier_reason,
    CAST(1 + (cur >= 50000000) + 2 * (pot >= 50000000) AS Enum8('low_current_low_potential' = 1, 'high_current_low_potential' = 2, 'low_current_high_potential' = 3, 'high_current_high_potential' = 4)) AS quadrant,
    toDecimal64(cur / 100, 2) AS current_value,
    toDecimal64(pot / 100, 2) AS potential_value,
    toDecimal64(pot / 200, 2) AS weighted_pipeline,
    if(h % 3 = 0, NULL, toDecimal64(cur / 25, 2)) AS wallet,
    if(h % 3 = 0, NULL, 0.25) AS share_of_wallet,
    CAST(if(t >= 3, 2, 1) AS Enum8('absolute_sales' = 1, 'share_of_wallet' = 2)) AS goal_metric,
    [5000., 50000., 0.3, 0.5][t] AS goal_target,
    if(h % 3 = 0 AND t >= 3, NULL, 0.8) AS goal_actual,
    if(h % 3 = 0 AND t >= 3, NULL, 0.8) AS goal_attainment,
    CAST(if(h % 3 = 0 AND t >= 3, 3, 1 + h % 2) AS Enum8('met' = 1, 'behind' = 2, 'wallet_unknown' = 3)) AS goal_status,
    ['call_center', '1:many', '1:few', '1:1'][t] AS coverage_model,
    if(h % 10 = 0, '', concat('rep-', substring(toString(1000 + h % 500), 2))) AS owner_id,
    toDateTime(1767225600 + {r} * 31536 - (h + {r}) % 90 * 86400, 'UTC') AS last_touch_at,
    toUInt8(pot >= 50000000 AND (h + {r}) % 90 > 60) AS neglected,
    toUInt32(h % 7) AS open_opportunities,
    toUInt8(h % 200 = 0) AS overridden,
    [0., 0.02, 0.2, 1.][t] AS coverage_load,
    concat('Customer ', toString(a)) AS account_name
FROM
(
    SELECT a, h, cur, pot, cur + pot AS value,
        multiIf(value >= 100000000, 4, value >= 25000000, 3, value >= 2500000, 2, 1) AS t
    FROM
    (
        SELECT a, h,
            -- sizes spread over four decades, most accounts small
            toUInt64(pow(10, 5 + 4 * pow((h % 10000) / 10000, 2)) * (1 + ({r} % 10) / 100)) AS cur,
            toUInt64(cur * ((intHash32(a) % 100) / 50)) AS pot
        FROM
        (
            SELECT number * 10 + (10 - {r} % 10) % 10 AS a, intHash64(a) AS h
            FROM numbers(intDiv({accounts}, 10))
        )
    )
)`

// BenchmarkDashboards is the BI benchmark of make bench: the six dashboard
// queries against histories of 1, 10 and 30 million snapshot rows
// (100,000 accounts × 10, 100 and 300 versions, one database each),
// median of several runs each, after the background merges that follow
// the load have settled. The machine is noisy, so the databases are
// measured in turns, run by run: a burst of load slows every size alike
// and the curve stays comparable. It prints one JSON line per size.
// PYRAMID_BENCH_BI_ACCOUNTS, PYRAMID_BENCH_BI_VERSIONS (e.g. "10,100,300")
// and PYRAMID_BENCH_BI_RUNS change the shape; PYRAMID_BENCH_BI_HISTORY=1
// also times the same questions answered from the history alone, as
// before the current-state table, and PYRAMID_BENCH_BI_OPTIMIZE=1 times
// them again after OPTIMIZE TABLE account_current FINAL.
func BenchmarkDashboards(b *testing.B) {
	accounts := benchEnv(b, "PYRAMID_BENCH_BI_ACCOUNTS", "100000")[0]
	versions := benchEnv(b, "PYRAMID_BENCH_BI_VERSIONS", "10,100,300")
	runs := benchEnv(b, "PYRAMID_BENCH_BI_RUNS", "7")[0]
	history := os.Getenv("PYRAMID_BENCH_BI_HISTORY") == "1"
	optimize := os.Getenv("PYRAMID_BENCH_BI_OPTIMIZE") == "1"
	if accounts%10 != 0 {
		b.Fatalf("PYRAMID_BENCH_BI_ACCOUNTS=%d: want a multiple of 10", accounts)
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		var conns []driver.Conn
		res := make([]map[string]any, len(versions))
		for k, v := range versions {
			dsn, _ := migrated(b)
			// A history scan at 30 million rows can outlast the driver's
			// default 5-minute read timeout on a busy machine.
			conn, err := OpenMigrate(dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			conns = append(conns, conn)
			if history {
				createHistoryViews(b, conn)
			}
			start := time.Now()
			for round := 0; round < v*10; round++ {
				q := strings.NewReplacer("{r}", strconv.Itoa(round), "{accounts}", strconv.Itoa(accounts)).Replace(generateRound)
				if err := conn.Exec(ctx, q); err != nil {
					b.Fatalf("round %d: %v", round, err)
				}
			}
			res[k] = map[string]any{"benchmark": "bi", "runs": runs, "load_s": time.Since(start).Seconds()}
		}
		for k, conn := range conns {
			res[k]["settle_s"] = awaitMerges(b, conn).Seconds()
			res[k]["history_rows"] = queryUint(b, conn, "SELECT count() FROM account_snapshots")
			res[k]["accounts"] = queryUint(b, conn, "SELECT count() FROM account_latest")
			res[k]["current_rows"] = queryUint(b, conn, "SELECT count() FROM account_current")
			res[k]["current_parts"] = queryUint(b, conn, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'account_current' AND active")
		}
		put := func(key string, per []map[string]float64) {
			for k := range res {
				res[k][key] = per[k]
			}
		}
		put("ms", timeQueries(b, conns, dashboardQueries, "", runs))
		put("final_ms", timeQueries(b, conns, finalQueries(), "", 3))
		if history {
			// Seconds each: one run, after one that warms the caches.
			put("history_ms", timeQueries(b, conns, dashboardQueries, "_history", 1))
		}
		if optimize {
			for k, conn := range conns {
				start := time.Now()
				if err := conn.Exec(ctx, "OPTIMIZE TABLE account_current FINAL"); err != nil {
					b.Fatal(err)
				}
				res[k]["optimize_s"] = time.Since(start).Seconds()
			}
			put("optimized_ms", timeQueries(b, conns, dashboardQueries, "", runs))
		}
		for _, r := range res {
			line, _ := json.Marshal(r)
			fmt.Println(string(line))
		}
	}
}

// timeQueries returns, per database, the median milliseconds of each query
// over runs runs, after one unmeasured run. Runs go round the databases
// and queries in turn. suffix renames the BI views read (_history: the
// views that scan the history).
func timeQueries(b *testing.B, conns []driver.Conn, qs []struct{ name, sql string }, suffix string, runs int) []map[string]float64 {
	ms := make([]map[string][]float64, len(conns))
	for k := range ms {
		ms[k] = map[string][]float64{}
	}
	for i := 0; i <= runs; i++ {
		for k, conn := range conns {
			for _, q := range qs {
				if suffix != "" && strings.HasSuffix(q.name, "through account_latest") {
					continue // the history has one way to read an account
				}
				sql := q.sql
				if suffix != "" {
					// Before the current-state table, one account's row
					// came from the history's view too.
					sql = strings.ReplaceAll(sql, "FROM account_current FINAL", "FROM account_latest")
				}
				sql = biView.ReplaceAllString(sql, "${1}"+suffix)
				d, err := timeQuery(conn, sql)
				if err != nil {
					b.Fatalf("%s: %v", q.name, err)
				}
				if i > 0 {
					ms[k][q.name] = append(ms[k][q.name], float64(d.Microseconds())/1000)
				}
			}
		}
	}
	out := make([]map[string]float64, len(conns))
	for k := range ms {
		out[k] = map[string]float64{}
		for name, v := range ms[k] {
			sort.Float64s(v)
			out[k][name] = v[len(v)/2]
		}
	}
	return out
}

// finalQueries read two columns of each snapshot table with and without
// FINAL, for docs/clickhouse.md's account of what FINAL costs.
func finalQueries() []struct{ name, sql string } {
	var out []struct{ name, sql string }
	for _, table := range []string{"account_current", "account_snapshots"} {
		for _, final := range []string{"", " FINAL"} {
			out = append(out, struct{ name, sql string }{table + final, "SELECT tier, count() FROM " + table + final + " GROUP BY tier"})
		}
	}
	return out
}

// biView matches a BI view where a query reads it.
var biView = regexp.MustCompile(`((?:FROM|\{db\}\.) ?(?:account_latest|tier_distribution|rep_coverage|neglected_accounts))\b`)

// createHistoryViews creates the BI views as they were before the current
// state table (migration 0002: every read scans the history), with the
// suffix _history, for comparison.
func createHistoryViews(b *testing.B, conn driver.Conn) {
	ms, err := Migrations()
	if err != nil {
		b.Fatal(err)
	}
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT currentDatabase()").Scan(&db); err != nil {
		b.Fatal(err)
	}
	for _, s := range ms[1].Statements {
		s = biView.ReplaceAllString(s, "${1}_history")
		if err := conn.Exec(context.Background(), strings.ReplaceAll(s, "{db}", quoteIdent(db))); err != nil {
			b.Fatalf("%v\n%s", err, s)
		}
	}
}

// awaitMerges waits until no merge has run in the database for a second
// (at most two minutes): the state a dashboard meets between loads.
func awaitMerges(b *testing.B, conn driver.Conn) time.Duration {
	start := time.Now()
	quiet := time.Time{}
	for time.Since(start) < 2*time.Minute {
		n := queryUint(b, conn, "SELECT count() FROM system.merges WHERE database = currentDatabase()")
		switch {
		case n > 0:
			quiet = time.Time{}
		case quiet.IsZero():
			quiet = time.Now()
		case time.Since(quiet) >= time.Second:
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// benchEnv reads a comma-separated list of positive integers.
func benchEnv(b *testing.B, name, def string) []int {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}
