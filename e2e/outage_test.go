package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

// TestClickHouseOutage stops ClickHouse for 20 s while events flow. The
// pipeline keeps retrying the pending write and commits no offset while
// the server is down (an offset is committed only after the sink has what
// it produced), the sink's health (and so the service's readiness, which
// is Ready() then Healthy()) reports the outage, and once the server is
// back the pipeline catches up with nothing lost: account_latest equals
// the replay.
func TestClickHouseOutage(t *testing.T) {
	t.Parallel()
	serverDSN, dir := testenv.PrivateClickHouse(t)
	dsn, _ := freshDB(t, serverDSN)
	w := newWorkload(t, 300, 6000, 3)
	gold := w.golden(t)
	b := newBroker(t, partitions, topics...)
	addrs := b.ListenAddrs()
	const group = "e2e-outage"

	// Events flow for about 30 s.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		_, err := w.produce(ctx, addrs, 200)
		produced <- err
	}()

	m := metrics.New(nil)
	s := &countingSink{Sink: newSinkMetrics(t, dsn, m)}
	opts := pipelineOptions(addrs, topics, group, s)
	// Observe sees each partition's batch once its flush is over: sink,
	// changelog, offsets.
	var flushed atomic.Int64
	opts.Observe = func(_ int, b *sink.Batch) { flushed.Add(int64(b.Len())) }
	r := start(t, opts)
	ready := func() error {
		if err := r.p.Ready(); err != nil {
			return err
		}
		return s.Healthy()
	}
	layout := endOffsets(t, addrs, topics, partitions)
	commits := func() int64 {
		t.Helper()
		c, err := committed(addrs, group, layout)
		if err != nil {
			t.Fatalf("committed offsets: %v", err)
		}
		return c.total()
	}
	deadline := time.Now().Add(30 * time.Second)
	for ready() != nil || commits() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready with 500 offsets committed within 30 s: ready %v, %d committed", ready(), commits())
		}
		time.Sleep(50 * time.Millisecond)
	}

	t0 := time.Now()
	testenv.ClickHouseScript(t, "stop", dir)
	stoppedAt := time.Now()
	before := endOffsets(t, addrs, topics, partitions)
	restarted := false
	defer func() {
		if !restarted {
			testenv.ClickHouseScript(t, "start", dir)
		}
	}()
	t.Logf("ClickHouse stopped with %d offsets committed (stopping took %v)", commits(), stoppedAt.Sub(t0).Round(time.Millisecond))
	deadline = time.Now().Add(10 * time.Second)
	for s.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the sink still reports healthy 10 s into the outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("readiness during the outage: %v", ready())
	// A flush whose rows reached ClickHouse just before the stop may still
	// be committing; once every row ClickHouse took has been through its
	// flush's commit, nothing more may be.
	deadline = time.Now().Add(10 * time.Second)
	for flushed.Load() != s.rows.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("flushes not over 10 s into the outage: %d rows written, %d through their commit", s.rows.Load(), flushed.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	held := commits()
	var checks int
	for time.Since(stoppedAt) < 20*time.Second {
		if err := ready(); err == nil {
			t.Fatal("readiness reports nil while ClickHouse is down")
		}
		if c := commits(); c != held {
			t.Fatalf("offsets committed while ClickHouse is down: %d, then %d", held, c)
		}
		checks++
		time.Sleep(200 * time.Millisecond)
	}
	after := endOffsets(t, addrs, topics, partitions)
	if after.total() <= before.total() {
		t.Fatal("no event was produced during the outage")
	}
	t.Logf("outage of %v: %d offsets held in %d checks while %d events were produced", time.Since(stoppedAt).Round(time.Millisecond), held, checks, after.total()-before.total())

	if got := testenv.ClickHouseScript(t, "start", dir); got != serverDSN {
		t.Errorf("restart gave DSN %s, want the same %s", got, serverDSN)
	}
	restarted = true
	restartedAt := time.Now()
	deadline = time.Now().Add(30 * time.Second)
	for commits() == held {
		if time.Now().After(deadline) {
			t.Fatal("no offset committed within 30 s of the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("first commit %v after the restart", time.Since(restartedAt).Round(time.Millisecond))

	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	ends := endOffsets(t, addrs, topics, partitions)
	waitCommitted(t, addrs, group, ends, 90*time.Second)
	t.Logf("caught up: all %d events committed %v after the restart", ends.total(), time.Since(restartedAt).Round(time.Millisecond))
	if err := ready(); err != nil {
		t.Errorf("readiness after recovery: %v", err)
	}
	// The outage went through the retry stage: failed attempts, retries,
	// the sink down, then up again.
	errs, retries := testutil.ToFloat64(m.SinkErrors.WithLabelValues(clickhouse.StageName)), testutil.ToFloat64(m.SinkRetries.WithLabelValues(clickhouse.StageName))
	if errs == 0 || retries == 0 || testutil.ToFloat64(m.SinkUp.WithLabelValues(clickhouse.StageName)) != 1 {
		t.Errorf("pyramid_sink_errors_total %v, pyramid_sink_retries_total %v, pyramid_sink_up %v for clickhouse: want >0, >0, 1",
			errs, retries, testutil.ToFloat64(m.SinkUp.WithLabelValues(clickhouse.StageName)))
	}
	t.Logf("%v failed attempts, %v retries", errs, retries)
	r.Stop(t)

	conn := newSink(t, dsn).Conn()
	checkCollapsed(t, conn, len(gold.snaps))
	compareLatest(t, conn, gold, interleaved, unbounded)
}

// countingSink counts the rows its sink acknowledged.
type countingSink struct {
	sink.Sink
	rows atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, b *sink.Batch) error {
	err := c.Sink.Write(ctx, b)
	if err == nil {
		c.rows.Add(int64(b.Len()))
	}
	return err
}
