package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/pyramid-crm/pyramid/internal/testenv"
)

// freshDB creates a database of its own for the test, dropped at the end,
// and returns a DSN for it and a connection to it.
func freshDB(t testing.TB, dsn string) (string, driver.Conn) {
	t.Helper()
	dbDSN, db := testenv.DatabaseDSN(t, dsn, "pyramid_test_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateDatabase(ctx, dbDSN); err != nil {
		t.Fatalf("create database: %v", err)
	}
	conn, err := Open(dbDSN, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !t.Failed() {
			_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(db))
		} else {
			t.Logf("kept database %s for inspection", db)
		}
		conn.Close()
	})
	return dbDSN, conn
}

// migrated returns a fresh, migrated database.
func migrated(t testing.TB) (string, driver.Conn) {
	t.Helper()
	dsn, conn := freshDB(t, testDSN(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Migrate(ctx, conn, MigrateOptions{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return dsn, conn
}

// newSink returns a sink on dsn with short retry intervals.
func newSink(t testing.TB, dsn string, opts Options) *Sink {
	t.Helper()
	opts.DSN = dsn
	if opts.RetryInitial == 0 {
		opts.RetryInitial = 50 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 500 * time.Millisecond
	}
	if opts.AttemptTimeout == 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	s, err := New(context.Background(), opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func queryUint(t testing.TB, conn driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func testDSN(tb testing.TB) string { return testenv.ClickHouseDSN(tb) }
