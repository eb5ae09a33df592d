package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

// BenchmarkPipelineClickHouse is the end-to-end figure with ClickHouse as
// the sink. It pre-produces PYRAMID_BENCH_EVENTS generated events (default
// 1,000,000) for PYRAMID_BENCH_ACCOUNTS accounts (default a tenth of the
// events) into an in-process broker with 12 partitions per topic, then runs
// the pipeline with its production settings (flush every second or 20,000
// events per partition, changelog, ClickHouse sink) until every offset is
// committed, which is when everything is durable. It reports events and
// rows per second and the latency of the sink's writes, and prints one
// JSON line. It needs PYRAMID_TEST_CLICKHOUSE_DSN.
//
// Run it once:
//
//	go test ./e2e/ -run '^$' -bench '^BenchmarkPipelineClickHouse$' -benchtime 1x -timeout 60m
func BenchmarkPipelineClickHouse(b *testing.B) {
	events := envInt(b, "PYRAMID_BENCH_EVENTS", 1_000_000)
	accounts := envInt(b, "PYRAMID_BENCH_ACCOUNTS", max(events/10, 10))
	const parts = 12
	for i := 0; i < b.N; i++ {
		benchClickHouse(b, events, accounts, parts)
	}
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// timedSink records how long each write of the wrapped sink takes and how
// many rows it carries.
type timedSink struct {
	sink.Sink
	mu   sync.Mutex
	took []time.Duration
	rows int
}

func (s *timedSink) Write(ctx context.Context, b *sink.Batch) error {
	t0 := time.Now()
	err := s.Sink.Write(ctx, b)
	if err == nil {
		s.mu.Lock()
		s.took = append(s.took, time.Since(t0))
		s.rows += b.Len()
		s.mu.Unlock()
	}
	return err
}

func benchClickHouse(b *testing.B, events, accounts, parts int) {
	b.StopTimer()
	dsn, conn := freshDB(b, testDSN(b))
	w := &workload{opts: genOptions(accounts, events, 42)} // no JSONL: nothing is replayed
	c := newBroker(b, parts, topics...)
	addrs := c.ListenAddrs()
	t0 := time.Now()
	if _, err := w.produce(context.Background(), addrs, 0); err != nil {
		b.Fatal(err)
	}
	ends := endOffsets(b, addrs, topics, parts)
	b.Logf("produced %d events for %d accounts in %v", ends.total(), accounts, time.Since(t0).Round(time.Millisecond))

	m := metrics.New(nil)
	ch, err := clickhouse.New(context.Background(), clickhouse.Options{DSN: dsn}, m, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close(context.Background())
	s := &timedSink{Sink: ch}
	const group = "e2e-bench"
	opts := pipelineOptions(addrs, topics, group, s)
	opts.Now = nil // the wall clock, as in production
	opts.FlushInterval, opts.FlushSize, opts.ReevalInterval, opts.FetchMaxWait = 0, 0, 0, 0
	// Production group timings too: fast heartbeats would put ten requests
	// a second on the coordinator connection.
	opts.HeartbeatInterval, opts.SessionTimeout, opts.RebalanceTimeout = 0, 0, 0
	opts.Metrics = m

	cpu0 := testenv.CPUTime()
	b.StartTimer()
	t1 := time.Now()
	r := start(b, opts)
	waitCommitted(b, addrs, group, ends, 30*time.Minute)
	elapsed := time.Since(t1)
	b.StopTimer()
	cores := (testenv.CPUTime() - cpu0).Seconds() / elapsed.Seconds()
	s.mu.Lock()
	took := append([]time.Duration(nil), s.took...)
	rows := s.rows
	s.mu.Unlock()
	r.Stop(b)

	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	pct := func(q float64) float64 {
		if len(took) == 0 {
			return 0
		}
		return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000
	}
	n := ends.total()
	rate := float64(n) / elapsed.Seconds()
	rowRate := float64(rows) / elapsed.Seconds()
	latest := queryUint(b, conn, "SELECT count() FROM account_latest")
	b.Logf("%d events in %v: %.0f events/s, %d rows in %d writes (%.0f rows/s), flush p50 %.1f ms p99 %.1f ms max %.1f ms; account_latest has %d accounts",
		n, elapsed.Round(time.Millisecond), rate, rows, len(took), rowRate, pct(0.5), pct(0.99), pct(1), latest)
	if latest == 0 || latest > uint64(accounts) {
		b.Errorf("account_latest has %d accounts, want 1..%d", latest, accounts)
	}

	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rowRate, "rows/s")
	b.ReportMetric(pct(0.5), "flush_p50_ms")
	b.ReportMetric(pct(0.99), "flush_p99_ms")
	line, _ := json.Marshal(map[string]any{
		"benchmark": "pipeline_clickhouse", "events": n, "accounts": accounts, "partitions": parts,
		"seconds": elapsed.Seconds(), "events_per_s": int(rate), "rows": rows, "rows_per_s": int(rowRate),
		"sink_writes": len(took), "flush_p50_ms": pct(0.5), "flush_p99_ms": pct(0.99), "flush_max_ms": pct(1),
		"cpu_cores_used": float64(int(cores*100)) / 100, "peak_rss_mb": testenv.PeakRSSMB(),
	})
	fmt.Println(string(line))
}
