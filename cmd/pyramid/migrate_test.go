package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

// TestMigrateCommand: --dry-run prints the statements and creates
// nothing (not even the database); a run applies them; a second run has
// nothing to do.
func TestMigrateCommand(t *testing.T) {
	dsn, db := testenv.DatabaseDSN(t, testenv.ClickHouseDSN(t), "pyramid_cmd_")
	t.Cleanup(func() {
		conn, err := clickhouse.Open(testenv.ClickHouseDSN(t), 5*time.Second)
		if err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
			conn.Close()
		}
	})
	t.Setenv("PYRAMID_CLICKHOUSE_DSN", "")
	ms, err := clickhouse.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint32
	for _, m := range ms {
		versions = append(versions, m.Version)
	}
	all := fmt.Sprint(versions)

	code, out, errOut := pyramid(t, "", "migrate", "--clickhouse", dsn, "--dry-run")
	if code != 0 || !strings.Contains(out, "the database does not exist") || !strings.Contains(out, "record migrations "+all) {
		t.Fatalf("dry run on a missing database: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if exists, err := clickhouse.DatabaseExists(context.Background(), dsn); err != nil || exists {
		t.Fatalf("after a dry run the database exists = %v (%v)", exists, err)
	}

	conn, err := clickhouse.Open(dsn, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := clickhouse.CreateDatabase(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = pyramid(t, "", "migrate", "--clickhouse", dsn, "--dry-run")
	if code != 0 || !strings.Contains(out, "a run would execute these statements, then record migrations "+all) ||
		!strings.Contains(out, "CREATE MATERIALIZED VIEW IF NOT EXISTS `"+db+"`.account_current_mv") || strings.Contains(out, "{db}") {
		t.Fatalf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = currentDatabase()").Scan(&n); err != nil || n != 0 {
		t.Fatalf("dry run left %d tables (%v)", n, err)
	}

	if code, out, errOut = pyramid(t, "", "migrate", "--clickhouse", dsn); code != 0 || !strings.Contains(out, "applied migrations "+all) {
		t.Fatalf("migrate: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, _ = pyramid(t, "", "migrate", "--clickhouse", dsn); code != 0 || !strings.Contains(out, "schema up to date") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
	if code, out, _ = pyramid(t, "", "migrate", "--clickhouse", dsn, "--dry-run"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("dry run after migrate: exit %d\n%s", code, out)
	}
}
