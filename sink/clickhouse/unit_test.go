package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{context.DeadlineExceeded, true},
		{ch.ErrAcquireConnTimeout, true},
		{errors.New("write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"), true},
		{&ch.Exception{Code: 202, Message: "Too many simultaneous queries"}, true},
		{&ch.Exception{Code: 252, Message: "Too many parts"}, true},
		{&ch.Exception{Code: 16, Message: "No such column quadrant in table account_snapshots"}, false},
		{&ch.Exception{Code: 60, Message: "Table x doesn't exist."}, false},
		{&ch.Exception{Code: 53, Message: "Type mismatch"}, false},
		{&ch.Exception{Code: 516, Message: "Authentication failed"}, false},
		{context.Canceled, false},
		{errors.New("clickhouse [AppendRow]: converting string to UInt64 is unsupported"), false},
		{nil, false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestViewChangingRetryable: an insert that fails because a materialized
// view on its table is being created (18.16 lists it before it exists) is
// retried; a missing table itself is not.
func TestViewChangingRetryable(t *testing.T) {
	view := describe("account_snapshots", &ch.Exception{Code: 60, Message: "Table db.account_current_mv doesn't exist."})
	if !Retryable(view) || !strings.Contains(view.Error(), "materialized view") {
		t.Errorf("missing dependent view: Retryable = false or unclear message: %v", view)
	}
	table := describe("account_snapshots", &ch.Exception{Code: 60, Message: "Table db.account_snapshots doesn't exist."})
	if Retryable(table) || !strings.Contains(table.Error(), "pyramid migrate") {
		t.Errorf("missing table: Retryable = true or no advice: %v", table)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment; here\nCREATE TABLE a\n(\n  x UInt8\n);\n\n-- two\nCREATE VIEW b AS\nSELECT 1;\n")
	want := []string{"CREATE TABLE a\n(\n  x UInt8\n)", "CREATE VIEW b AS\nSELECT 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

var mapType = regexp.MustCompile(`\bMap\(`)

func TestMigrationsEmbedded(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[0].Version != 1 || ms[1].Version != 2 {
		t.Fatalf("migrations %+v", ms)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			// docs/clickhouse.md: SQL that ClickHouse 18.16 and current releases both accept.
			for _, bad := range []string{"LowCardinality", "DateTime64", "JSON", " TTL ", "PREWHERE", "DROP VIEW"} {
				if strings.Contains(s, bad) {
					t.Errorf("migration %d uses %s", m.Version, bad)
				}
			}
			if mapType.MatchString(s) { // the type, not arrayMap
				t.Errorf("migration %d uses Map", m.Version)
			}
			if strings.HasPrefix(s, "CREATE") && !strings.Contains(s, "IF NOT EXISTS") {
				t.Errorf("migration %d: %q is not idempotent", m.Version, s[:40])
			}
		}
	}
}

// Errors that quote the DSN do not show its password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	if _, err := Open("clickhouse://u:hunter2@h:notaport/db", 0); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open error %v leaks the password or is nil", err)
	}
}
