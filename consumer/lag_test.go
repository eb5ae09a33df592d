package consumer

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyramid-crm/pyramid/metrics"
)

// gaugeSum returns the sum of every series of the gauge family name in reg,
// and how many series it has.
func gaugeSum(tb testing.TB, reg *prometheus.Registry, name string) (sum float64, series int) {
	tb.Helper()
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue()
			series++
		}
	}
	return sum, series
}

// The lag gauges follow Kafka whatever the sink does: while every sink
// write fails nothing is committed, so pyramid_consumer_lag shows every
// message produced (the lag alerts can fire during the outage), while
// pyramid_consumer_fetch_lag shows that they were all read: the sink is
// what is slow. Once the sink is back and the offsets are committed both
// go to 0, and a worker that stops takes its series away.
func TestLagGaugesDuringSinkOutage(t *testing.T) {
	const parts = 2
	w := makeWorkload(40, 300, parts, 0, 3)
	c := newCluster(t, parts, testTopics)
	addrs := c.ListenAddrs()
	produceAll(t, addrs, w.msgs)

	var healed atomic.Bool
	var failed atomic.Int64
	s := newMemSink()
	s.fail = func() error {
		if healed.Load() {
			return nil
		}
		failed.Add(1)
		return errors.New("sink down")
	}
	reg := prometheus.NewRegistry()
	opts := testOptions(addrs, s)
	opts.Metrics = metrics.New(reg)
	opts.LagInterval = 20 * time.Millisecond
	r := start(t, opts)

	total := float64(len(w.msgs))
	waitUntil(t, "the lag to show every message while the sink is down", func() bool {
		lag, _ := gaugeSum(t, reg, "pyramid_consumer_lag")
		fetchLag, n := gaugeSum(t, reg, "pyramid_consumer_fetch_lag")
		return lag == total && fetchLag == 0 && n > 0
	})
	if failed.Load() == 0 {
		t.Fatal("the sink was never asked to write: the outage did not happen")
	}
	if got, _ := committedTotal(t, addrs, "pyramid", endOffsets(w.msgs)); got != 0 {
		t.Fatalf("%d offsets committed while the sink was down", got)
	}

	healed.Store(true)
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 30*time.Second)
	waitUntil(t, "the lag to fall to 0 once committed", func() bool {
		lag, _ := gaugeSum(t, reg, "pyramid_consumer_lag")
		return lag == 0
	})
	r.Stop(t)
	for _, name := range []string{"pyramid_consumer_lag", "pyramid_consumer_fetch_lag"} {
		if _, n := gaugeSum(t, reg, name); n != 0 {
			t.Errorf("%s: %d series left after the pipeline stopped", name, n)
		}
	}
}
