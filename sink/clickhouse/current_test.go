package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// biViews are the views BI tools read, each with an order that makes its
// output comparable.
var biViews = []string{
	"SELECT * FROM account_latest ORDER BY account_id",
	"SELECT * FROM tier_distribution",
	"SELECT * FROM rep_coverage",
	"SELECT * FROM neglected_accounts",
}

// viewsDump returns every BI view's rows, one line per row.
func viewsDump(t testing.TB, conn driver.Conn) string {
	t.Helper()
	var b strings.Builder
	for _, q := range biViews {
		fmt.Fprintf(&b, "%s:\n", q)
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		types := rows.ColumnTypes()
		for rows.Next() {
			vals := make([]any, len(types))
			for i, c := range types {
				vals[i] = reflect.New(c.ScanType()).Interface()
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteByte('\t')
				}
				e := reflect.ValueOf(v).Elem()
				if e.Kind() == reflect.Pointer && !e.IsNil() {
					e = e.Elem()
				}
				fmt.Fprint(&b, e.Interface())
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		rows.Close()
	}
	return b.String()
}

// TestDuplicateInsertsChangeNoView: the same rows written again, and older
// versions written after newer ones, all before any merge, leave every BI
// view exactly as it was; so does merging them away afterwards. The
// current state always equals the newest version in the history.
func TestDuplicateInsertsChangeNoView(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{})
	ctx := context.Background()
	for _, table := range []string{"account_current", "account_snapshots"} {
		if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+table); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Exec(context.Background(), "SYSTEM START MERGES "+table) })
	}
	write := func(b sink.Batch) {
		t.Helper()
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	older, fx := olderVersions(), viewFixture()
	// One insert carrying two versions of one account, the older last.
	both := sink.Batch{Snapshots: []scoring.Snapshot{snap("one-block", 5, scoring.Major, "rep-b"), snap("one-block", 4, scoring.Named, "rep-b")}}
	write(older)
	write(fx)
	write(both)
	before := viewsDump(t, conn)
	if !strings.Contains(before, "one-block\t5\t") || strings.Contains(before, "one-block\t4\t") {
		t.Errorf("account_latest shows another version than 5 of one-block:\n%s", before)
	}
	accounts := queryUint(t, conn, "SELECT count() FROM account_latest")

	write(fx)    // a crash re-sends the newest rows
	write(older) // an older version arrives after a newer one
	write(both)
	write(fx)
	raw := queryUint(t, conn, "SELECT count() FROM account_current")
	parts := queryUint(t, conn, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'account_current' AND active")
	t.Logf("account_current: %d rows in %d parts for %d accounts", raw, parts, accounts)
	if raw <= accounts || parts < 2 {
		t.Fatalf("account_current has %d rows in %d parts: the copies are not there unmerged, so the test proves nothing", raw, parts)
	}
	if after := viewsDump(t, conn); after != before {
		t.Errorf("views changed by duplicate inserts:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	checkConsistent(t, conn)

	for _, table := range []string{"account_current", "account_snapshots"} {
		if err := conn.Exec(ctx, "SYSTEM START MERGES "+table); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_current"); n != accounts {
		t.Errorf("after OPTIMIZE FINAL account_current has %d rows, want one per account (%d)", n, accounts)
	}
	if after := viewsDump(t, conn); after != before {
		t.Errorf("views changed by merging:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// checkConsistent fails when the current state differs from the history's
// newest versions, or when a (account_id, version) has two contents.
func checkConsistent(t testing.TB, conn driver.Conn) {
	t.Helper()
	ctx := context.Background()
	if m, err := CurrentMismatches(ctx, conn); err != nil || len(m) > 0 {
		t.Errorf("account_latest differs from the history (%v):\n%s", err, strings.Join(m, "\n"))
	}
	if n, ex, err := ConflictingVersions(ctx, conn, 5); err != nil || n > 0 {
		t.Errorf("%d (account_id, version) pairs with more than one content (%v), e.g.:\n%s", n, err, strings.Join(ex, "\n"))
	}
}

// TestConsistencyChecksFindFaults: the checks the tests rely on do see a
// version written twice with different contents, and a current state that
// lost an account or kept an old version.
func TestConsistencyChecksFindFaults(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{})
	ctx := context.Background()
	a1, b1, c1 := snap("a", 1, scoring.Named, "r"), snap("b", 1, scoring.Named, "r"), snap("c", 1, scoring.Named, "r")
	if err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{a1, b1, c1}}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, conn)

	a1.AsOf += 1e9 // the same version with another as_of
	if err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{a1}}); err != nil {
		t.Fatal(err)
	}
	n, ex, err := ConflictingVersions(ctx, conn, 5)
	if err != nil || n != 1 || len(ex) != 1 || ex[0] != "a v1: 2 rows, differing in as_of" {
		t.Errorf("ConflictingVersions = %d, %q, %v; want 1 pair, a v1 differing in as_of", n, ex, err)
	}

	// The current state loses b and misses c's version 2.
	if err := conn.Exec(ctx, "DROP TABLE account_current_mv"); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{snap("c", 2, scoring.Major, "r"), snap("d", 1, scoring.Major, "r")}}); err != nil {
		t.Fatal(err)
	}
	m, err := CurrentMismatches(ctx, conn)
	want := []string{
		"account c: account_latest has version 1, the history 2, 2 different contents",
		"account d: not in account_latest (history version 1)",
	}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Errorf("CurrentMismatches = %q, %v\nwant %q", m, err, want)
	}
}

// TestViewsReadCurrentState: no BI view scans the history, and none uses
// PREWHERE (which 18.16 applies before FINAL, returning stale rows).
func TestViewsReadCurrentState(t *testing.T) {
	_, conn := migrated(t)
	rows, err := conn.Query(context.Background(), "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() AND engine = 'View'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(q, "account_snapshots") {
			t.Errorf("view %s reads account_snapshots:\n%s", name, q)
		}
		if strings.Contains(strings.ToUpper(q), "PREWHERE") {
			t.Errorf("view %s uses PREWHERE:\n%s", name, q)
		}
		if name == "account_latest" && !strings.Contains(q, "account_current FINAL") {
			t.Errorf("account_latest does not read account_current FINAL:\n%s", q)
		}
	}
	views := 0
	for _, r := range embeddedSchema(t) {
		if r.kind == kindView {
			views++
		}
	}
	if n != views || n < 4 {
		t.Errorf("%d views, want the %d of the migrations", n, views)
	}
}

// TestSinkCompactsCurrentState: after writes, the sink folds
// account_current into one row per account in the background, and the
// views read the same before and after.
func TestSinkCompactsCurrentState(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{CompactEvery: -1})
	ctx := context.Background()
	for v := uint64(1); v <= 4; v++ {
		var b sink.Batch
		for i := 0; i < 30; i++ {
			b.Snapshots = append(b.Snapshots, snap(fmt.Sprintf("acc-%02d", i), v, scoring.Tier(1+(int(v)+i)%4), "rep"))
		}
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	parts := func() uint64 {
		return queryUint(t, conn, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'account_current' AND active")
	}
	before := viewsDump(t, conn)

	// Its write adds a part; the compaction that follows folds them all.
	var logs lockedLog
	c, err := New(ctx, Options{DSN: dsn, CompactEvery: time.Millisecond}, nil,
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{snap("acc-00", 4, scoring.Tier(1), "rep")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "compacted account_current") || parts() > 1 || queryUint(t, conn, "SELECT count() FROM account_current") != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("account_current still has %d parts, %d rows 30 s after a write; sink log:\n%s", parts(), queryUint(t, conn, "SELECT count() FROM account_current"), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := viewsDump(t, conn); after != before {
		t.Errorf("views changed by compaction:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// lockedLog collects a logger's output across goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
