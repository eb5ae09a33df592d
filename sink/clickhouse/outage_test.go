package clickhouse

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	_ = g.Write(&m)
	return m.GetGauge().GetValue()
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// outageServer returns a server the test may stop and start, and its DIR.
// It prefers a private server (so stopping it cannot disturb other test
// packages running at the same time) and falls back to the shared one named
// by PYRAMID_TEST_CLICKHOUSE_DIR.
func outageServer(t *testing.T) (dsn, dir string) {
	t.Helper()
	if testenv.HasClickHouseServer() {
		return testenv.PrivateClickHouse(t)
	}
	dsn = testDSN(t)
	if dir = os.Getenv("PYRAMID_TEST_CLICKHOUSE_DIR"); dir == "" {
		testenv.Require(t, "no clickhouse-server binary and PYRAMID_TEST_CLICKHOUSE_DIR is not set: cannot stop the server for the outage test")
	}
	return dsn, dir
}

// TestOutage stops ClickHouse while a write is pending: Write keeps
// retrying, Healthy reports the outage, and once the server is back the
// write completes and nothing is lost.
func TestOutage(t *testing.T) {
	serverDSN, dir := outageServer(t)
	dsn, conn := freshDB(t, serverDSN)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, dsn, Options{AttemptTimeout: 3 * time.Second})
	m := s.m

	batch := func(from, n int) *sink.Batch {
		var b sink.Batch
		for i := from; i < from+n; i++ {
			id := fmt.Sprintf("acc-%03d", i)
			b.Snapshots = append(b.Snapshots, snap(id, 1, scoring.Named, "rep"))
			b.Changes = append(b.Changes, scoring.TierChange{AccountID: id, Version: 1, ChangedAt: t0, To: scoring.Named, Reason: "r"})
		}
		return &b
	}
	if err := s.Write(ctx, batch(0, 100)); err != nil {
		t.Fatal(err)
	}

	stoppedAt := time.Now()
	testenv.ClickHouseScript(t, "stop", dir)
	t.Logf("server stopped in %v", time.Since(stoppedAt).Round(time.Millisecond))
	restarted := false
	defer func() {
		if !restarted {
			testenv.ClickHouseScript(t, "start", dir)
		}
	}()

	done := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	go func() { done <- s.Write(wctx, batch(100, 100)) }()

	deadline := time.Now().Add(10 * time.Second)
	for s.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Healthy() still nil 10 s into the outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Healthy during outage: %v", s.Healthy())
	if !Retryable(s.Healthy()) {
		t.Errorf("outage error %v is not retryable", s.Healthy())
	}
	// Let it retry a few times.
	retries := m.SinkRetries.WithLabelValues(StageName)
	for counterValue(retries) < 3 {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("%v retries 30 s into the outage, want 3", counterValue(retries))
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Write returned during the outage: %v", err)
	default:
	}
	if gaugeValue(m.SinkUp.WithLabelValues(StageName)) != 0 {
		t.Error("pyramid_sink_up is not 0 during the outage")
	}

	if got := testenv.ClickHouseScript(t, "start", dir); got != serverDSN {
		t.Errorf("restart gave DSN %s, want the same %s", got, serverDSN)
	}
	restarted = true
	restartedAt := time.Now()
	t.Logf("server restarted %v into the outage", restartedAt.Sub(stoppedAt).Round(time.Millisecond))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Write after restart: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Write did not complete within 60 s of the restart")
	}
	t.Logf("write completed %v after the restart", time.Since(restartedAt).Round(time.Millisecond))
	t.Logf("outage %v: %v errors, %v retries", time.Since(stoppedAt).Round(time.Millisecond), counterValue(m.SinkErrors.WithLabelValues(StageName)), counterValue(m.SinkRetries.WithLabelValues(StageName)))
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after recovery: %v", err)
	}
	if gaugeValue(m.SinkUp.WithLabelValues(StageName)) != 1 {
		t.Error("pyramid_sink_up is not 1 after recovery")
	}
	if counterValue(m.SinkRetries.WithLabelValues(StageName)) == 0 || counterValue(m.SinkErrors.WithLabelValues(StageName)) == 0 {
		t.Errorf("retries %v, errors %v: want both > 0", counterValue(m.SinkRetries.WithLabelValues(StageName)), counterValue(m.SinkErrors.WithLabelValues(StageName)))
	}
	if n := counterValue(m.SinkRows.WithLabelValues(TableSnapshots)); n != 200 {
		t.Errorf("pyramid_sink_rows_total{table=account_snapshots} = %v, want 200", n)
	}
	for _, q := range []string{
		"SELECT count() FROM account_snapshots FINAL",
		"SELECT count() FROM account_latest",
		"SELECT count() FROM tier_changes FINAL",
	} {
		if n := queryUint(t, conn, q); n != 200 {
			t.Errorf("%s = %d, want 200: rows lost", q, n)
		}
	}
}

// TestWriteStopsOnCancel: with the server unreachable, Write gives up when
// its context ends and says why.
func TestWriteStopsOnCancel(t *testing.T) {
	s := newSink(t, "clickhouse://default:secret@127.0.0.1:1/default", Options{AttemptTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Named, "r")}})
	if err == nil || ctx.Err() == nil {
		t.Fatalf("Write = %v, want an error after the context ended", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Write took %v after cancel", d)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if s.Healthy() == nil {
		t.Error("Healthy() = nil while the server is unreachable")
	}
	t.Logf("%v", err)
}

// docQueries returns the ```sql blocks of a markdown file.
func docQueries(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sql":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			q := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmt := q
			for strings.HasPrefix(stmt, "--") { // leading comment lines
				_, stmt, _ = strings.Cut(stmt, "\n")
			}
			if !strings.HasPrefix(strings.ToUpper(stmt), "CREATE") {
				out = append(out, q)
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	return out, sc.Err()
}
