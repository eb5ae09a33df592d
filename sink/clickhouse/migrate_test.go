package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// schemaDump lists the database's relations with their definitions.
func schemaDump(t testing.TB, conn driver.Conn) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, engine, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var n, e, q string
		if err := rows.Scan(&n, &e, &q); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", n, e, q)
	}
	return b.String()
}

// checkSchema fails unless the live database is exactly Pyramid's schema.
func checkSchema(t testing.TB, conn driver.Conn) {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	want, err := expectedSchema(ms)
	if err != nil {
		t.Fatal(err)
	}
	l, err := readLive(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if d := compare(want, l); !d.empty() || len(d.notes) > 0 {
		t.Errorf("live schema differs from the expected one: %+v", d)
	}
	if _, ok := l.kind[LockTable]; ok {
		t.Errorf("the migration lock %s is still there", LockTable)
	}
}

// atVersion migrates a fresh database up to and including migration n
// (1-based), as an older Pyramid would have left it.
func atVersion(t testing.TB, n int) (string, driver.Conn) {
	t.Helper()
	dsn, conn := freshDB(t, testDSN(t))
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(context.Background(), conn, ms[:n], MigrateOptions{}); err != nil {
		t.Fatalf("migrate to %d: %v", n, err)
	}
	return dsn, conn
}

func TestMigrateTwiceChangesNothing(t *testing.T) {
	_, conn := freshDB(t, testDSN(t))
	ctx := context.Background()
	all, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Migrate(ctx, conn, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != len(all) {
		t.Fatalf("first run applied %v, want all %d migrations", res.Applied, len(all))
	}
	checkSchema(t, conn)
	before := schemaDump(t, conn)
	res, err = Migrate(ctx, conn, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || len(res.Statements) != 0 {
		t.Errorf("second run applied %v, ran %q; want nothing", res.Applied, res.Statements)
	}
	if after := schemaDump(t, conn); after != before {
		t.Errorf("second run changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := queryUint(t, conn, "SELECT count() FROM "+MigrationsTable); n != uint64(len(all)) {
		t.Errorf("%s has %d rows, want %d", MigrationsTable, n, len(all))
	}
}

// TestMigrateResumesAddColumn: a migration interrupted after its ALTER ...
// ADD COLUMN (18.16 has no IF NOT EXISTS there) is simply run again.
func TestMigrateResumesAddColumn(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, Migration{Version: 9999, Name: "add_note", Statements: []string{"ALTER TABLE {db}.tier_changes ADD COLUMN note String"}})
	// The interrupted run: the column is there, the migration not recorded.
	if err := conn.Exec(ctx, "ALTER TABLE tier_changes ADD COLUMN note String"); err != nil {
		t.Fatal(err)
	}
	res, err := migrate(ctx, conn, ms, MigrateOptions{})
	if err != nil || fmt.Sprint(res.Applied) != "[9999]" {
		t.Fatalf("migrate = %+v, %v; want [9999]", res, err)
	}
	if res, err = migrate(ctx, conn, ms, MigrateOptions{}); err != nil || len(res.Applied)+len(res.Statements) != 0 {
		t.Fatalf("second migrate = %+v, %v; want nothing", res, err)
	}
}

// oldSnapshotsTable is account_snapshots as a Pyramid without the
// coverage_load and account_name columns created it.
func oldSnapshotsTable(t testing.TB) string {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ms[0].Statements {
		if strings.Contains(s, ".account_snapshots") {
			var keep []string
			for _, line := range strings.Split(s, "\n") {
				if !strings.Contains(line, "coverage_load") && !strings.Contains(line, "account_name") {
					keep = append(keep, line)
				}
			}
			return strings.Replace(strings.Join(keep, "\n"), "overridden         UInt8,", "overridden         UInt8", 1)
		}
	}
	t.Fatal("no account_snapshots in the first migration")
	return ""
}

// TestMigrateUpgradesMissingColumns: an account_snapshots table an older
// Pyramid created without two columns, with rows in it, and no migration
// recorded. CREATE TABLE IF NOT EXISTS alone would keep it and the views
// would fail on the missing columns; migrate adds them, by name, and the
// old rows show the columns' defaults.
func TestMigrateUpgradesMissingColumns(t *testing.T) {
	_, conn := freshDB(t, testDSN(t))
	ctx := context.Background()
	if err := conn.Exec(ctx, strings.ReplaceAll(oldSnapshotsTable(t), "{db}.", "")); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO account_snapshots (account_id, version, tier, owner_id) SELECT 'old-1', 3, 'named', 'rep-1'"); err != nil {
		t.Fatal(err)
	}
	dry, err := Migrate(ctx, conn, MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(dry.Statements, "\n")
	for _, w := range []string{"ADD COLUMN coverage_load Float64 AFTER overridden", "ADD COLUMN account_name String AFTER coverage_load"} {
		if !strings.Contains(plan, w) {
			t.Errorf("dry run does not plan %q:\n%s", w, plan)
		}
	}
	res, err := Migrate(ctx, conn, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Statements) != len(dry.Statements) {
		t.Errorf("ran %d statements, the dry run planned %d", len(res.Statements), len(dry.Statements))
	}
	checkSchema(t, conn)
	var id, name string
	var load float64
	if err := conn.QueryRow(ctx, "SELECT account_id, account_name, coverage_load FROM account_latest").Scan(&id, &name, &load); err != nil || id != "old-1" || name != "" || load != 0 {
		t.Errorf("account_latest = %q %q %v, %v; want the old row (backfilled) with defaults", id, name, load, err)
	}
	if n := queryUint(t, conn, "SELECT accounts FROM rep_coverage WHERE owner_id = 'rep-1'"); n != 1 {
		t.Errorf("rep_coverage counts %d accounts for rep-1, want 1", n)
	}
}

// TestMigrateRefusesByName: differences migrate must not repair stop it
// before any change, each named.
func TestMigrateRefusesByName(t *testing.T) {
	_, conn := freshDB(t, testDSN(t))
	ctx := context.Background()
	for _, q := range []string{
		strings.ReplaceAll(strings.Replace(oldSnapshotsTable(t), "owner_id           String", "owner_id           UInt64", 1), "{db}.", ""),
		"CREATE TABLE tier_changes (account_id String, version UInt64) ENGINE = MergeTree ORDER BY account_id",
		"CREATE TABLE account_latest (account_id String) ENGINE = Log",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	before := schemaDump(t, conn)
	for _, dry := range []bool{true, false} {
		_, err := Migrate(ctx, conn, MigrateOptions{DryRun: dry})
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Fatalf("dry run %v: err = %v, want a *SchemaError", dry, err)
		}
		t.Logf("dry run %v: %v", dry, err)
		for _, w := range []string{
			"column account_snapshots.owner_id: type UInt64, want String",
			"table tier_changes: engine MergeTree, want ReplacingMergeTree",
			"table tier_changes: sorting key (account_id), want (account_id,version,to_tier)",
			"account_latest is a table, want a view",
		} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error does not say %q:\n%v", w, err)
			}
		}
		if strings.Contains(err.Error(), "coverage_load") {
			t.Errorf("a missing column is repaired, not refused: %v", err)
		}
		if Retryable(err) {
			t.Error("a schema difference is retryable")
		}
	}
	if after := schemaDump(t, conn); after != before {
		t.Errorf("a refused migration changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestMigrateRepairsMissingRelations: views and the materialized view of
// applied migrations that someone dropped are re-created; rows written
// while the materialized view was missing reach the current state through
// its backfill.
func TestMigrateRepairsMissingRelations(t *testing.T) {
	dsn, conn := migrated(t)
	ctx := context.Background()
	s := newSink(t, dsn, Options{})
	write := func(b sink.Batch) {
		t.Helper()
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	write(sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Named, "r"), snap("b", 1, scoring.Named, "r")}})
	for _, q := range []string{"DROP TABLE account_current_mv", "DROP TABLE account_latest", "DROP TABLE rep_coverage"} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	write(sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 2, scoring.Major, "r"), snap("c", 1, scoring.MassMarket, "")}})
	res, err := Migrate(ctx, conn, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || len(res.Statements) != 4 {
		t.Errorf("repair applied %v and ran %d statements, want none and 4 (MV, backfill, two views):\n%s", res.Applied, len(res.Statements), strings.Join(res.Statements, "\n"))
	}
	checkSchema(t, conn)
	if m, err := CurrentMismatches(ctx, conn); err != nil || len(m) > 0 {
		t.Errorf("account_latest differs from the history after the repair: %v %q", err, m)
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_latest WHERE tier = 'major'"); n != 1 {
		t.Errorf("%d major accounts, want 1 (a, version 2, written while the MV was missing)", n)
	}
}

// TestMigrateBackfillLimit: pyramid run refuses a backfill larger than
// its limit before changing anything, naming tables, rows and the command
// to run; pyramid migrate (no limit) runs it.
func TestMigrateBackfillLimit(t *testing.T) {
	dsn, conn := atVersion(t, 2)
	ctx := context.Background()
	s := newSink(t, dsn, Options{})
	var b sink.Batch
	for i := 0; i < 20; i++ {
		b.Snapshots = append(b.Snapshots, snap(fmt.Sprintf("acc-%02d", i), uint64(1+i%3), scoring.NonNamed, "rep"))
	}
	if err := s.Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	before := schemaDump(t, conn)
	_, err := Migrate(ctx, conn, MigrateOptions{MaxBackfillRows: 10})
	var be *BackfillError
	if !errors.As(err, &be) || be.Rows != 20 || be.Target != "account_current" || be.Source != "account_snapshots" {
		t.Fatalf("err = %v, want a *BackfillError for 20 rows of account_snapshots into account_current", err)
	}
	for _, w := range []string{"pyramid migrate", "account_current", "20 rows of account_snapshots", "0003_current_state"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if Retryable(err) {
		t.Error("a refused backfill is retryable")
	}
	if after := schemaDump(t, conn); after != before {
		t.Errorf("a refused backfill changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The sink's own migration at start (pyramid run) refuses the same
	// way, at once: the error is not retried.
	start := time.Now()
	_, err = New(ctx, Options{DSN: dsn, Migrate: true, MaxBackfillRows: 10, AttemptTimeout: 5 * time.Second, RetryInitial: 10 * time.Millisecond}, nil, nil)
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "pyramid migrate") {
		t.Errorf("New with Migrate: err = %v, want a *BackfillError saying to run pyramid migrate", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("New took %v to refuse; a refused backfill must not be retried", d)
	}
	res, err := Migrate(ctx, conn, MigrateOptions{MaxBackfillRows: 20})
	if err != nil || len(res.Applied) == 0 || res.Applied[0] != 3 {
		t.Fatalf("migrate = %+v, %v", res, err)
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_latest"); n != 20 {
		t.Errorf("account_latest has %d rows after the backfill, want 20", n)
	}
}

// TestMigrateConcurrent: four migrations at once, on a database an older
// Pyramid left (two migrations, rows in the history) while a sink keeps
// writing, end in one correct schema: each migration applied once, the
// lock gone, and the current state equal to the history's newest rows.
func TestMigrateConcurrent(t *testing.T) {
	dsn, conn := atVersion(t, 2)
	ctx := context.Background()
	s := newSink(t, dsn, Options{})
	batch := func(v uint64) *sink.Batch {
		var b sink.Batch
		for i := 0; i < 200; i++ {
			b.Snapshots = append(b.Snapshots, snap(fmt.Sprintf("acc-%03d", i), v, scoring.Tier(1+int(v+uint64(i))%4), fmt.Sprintf("rep-%d", i%7)))
		}
		return &b
	}
	if err := s.Write(ctx, batch(1)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	writes := make(chan error, 1)
	go func() {
		for v := uint64(2); ; v++ {
			select {
			case <-stop:
				writes <- nil
				return
			default:
			}
			if err := s.Write(ctx, batch(v)); err != nil {
				writes <- err
				return
			}
		}
	}()
	const runs = 4
	var wg sync.WaitGroup
	errs := make([]error, runs)
	results := make([]*MigrateResult, runs)
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := Open(dsn, 5*time.Second)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			results[i], errs[i] = Migrate(ctx, c, MigrateOptions{})
		}(i)
	}
	wg.Wait()
	close(stop)
	if err := <-writes; err != nil {
		t.Fatalf("write during the migrations: %v", err)
	}
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migration %d: %v", i, err)
		}
		applied += len(results[i].Applied)
	}
	if ms, _ := Migrations(); applied != len(ms)-2 {
		t.Errorf("%d migrations applied in all, want each of the %d missing ones once (the other runs found them done)", applied, len(ms)-2)
	}
	checkSchema(t, conn)
	if n := queryUint(t, conn, "SELECT count() FROM "+MigrationsTable+" WHERE version = 3"); n != 1 {
		t.Errorf("migration 3 recorded %d times", n)
	}
	if m, err := CurrentMismatches(ctx, conn); err != nil || len(m) > 0 {
		t.Errorf("account_latest differs from the history: %v\n%s", err, strings.Join(m, "\n"))
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_latest"); n != 200 {
		t.Errorf("account_latest has %d rows, want 200", n)
	}
}

// TestMigrateLock: a live lock makes a migration wait and then give up
// naming the holder; a lock whose holder stopped sending heartbeats is
// taken over.
func TestMigrateLock(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE "+LockTable+" (holder String, heartbeat DateTime('UTC')) ENGINE = Log"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO "+LockTable+" (holder, heartbeat) SELECT 'host-a pid 7 (test)', now()"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Migrate(ctx, conn, MigrateOptions{LockWait: time.Second, LockStale: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "host-a pid 7") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a lock timeout naming host-a pid 7", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("gave up after %v, before LockWait", d)
	}
	if !Retryable(err) {
		t.Error("a busy lock is not retryable; pyramid run would stop instead of waiting")
	}
	// The same lock, an hour without a heartbeat: taken over.
	if err := conn.Exec(ctx, "TRUNCATE TABLE "+LockTable); err != nil {
		// 18.16 has no TRUNCATE for Log tables: re-create it.
		_ = conn.Exec(ctx, "DROP TABLE "+LockTable)
		if err := conn.Exec(ctx, "CREATE TABLE "+LockTable+" (holder String, heartbeat DateTime('UTC')) ENGINE = Log"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Exec(ctx, "INSERT INTO "+LockTable+" (holder, heartbeat) SELECT 'host-a pid 7 (test)', now() - 3600"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, conn, MigrateOptions{LockWait: 10 * time.Second, LockStale: time.Minute}); err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	checkSchema(t, conn)
}

// TestMigrateDryRun: a dry run on an empty database lists every statement
// and changes nothing, not even the lock or the migrations table.
func TestMigrateDryRun(t *testing.T) {
	_, conn := freshDB(t, testDSN(t))
	ctx := context.Background()
	res, err := Migrate(ctx, conn, MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := Migrations()
	n := 0
	for _, m := range ms {
		n += len(m.Statements)
	}
	if len(res.Statements) != n || len(res.Applied) != len(ms) {
		t.Errorf("dry run lists %d statements and %v, want %d and all %d migrations", len(res.Statements), res.Applied, n, len(ms))
	}
	for _, s := range res.Statements {
		if strings.Contains(s, "{db}") {
			t.Errorf("statement with {db} left in:\n%s", s)
		}
	}
	if d := schemaDump(t, conn); d != "" {
		t.Errorf("dry run changed the database:\n%s", d)
	}
}
