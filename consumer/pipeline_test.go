package consumer

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/sink"
)

func TestEndToEnd(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(300, 4000, 4, 0, 1)
	produceAll(t, addrs, w.msgs)
	s := newMemSink()
	r := start(t, testOptions(addrs, s))
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 60*time.Second)
	if err := r.p.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	r.Stop(t)
	g := w.golden(t)
	t.Logf("%d accounts, %d sink writes, %d rows", len(g), s.writes, s.rows)
	compare(t, s.latest(), g, true)
}

// TestCrash kills the pipeline at several points of a flush, at the
// boundary where it writes to Kafka and the sink (see crasher), then
// restarts it a second later with as many events again to apply on the
// restored state, and expects exactly the golden state: nothing lost,
// nothing applied twice. Versions count applied events, and after the crash
// every account of a partition skips exactly the events there were to redo
// plus two (state.restoreVersions), so they must match too. No (account,
// version) reaches the sink with two contents, although the restarted
// pipeline re-applies events at another wall clock.
func TestCrash(t *testing.T) {
	for _, tc := range []struct {
		point string
		at    int32
	}{
		// The counts are such that every run reaches them: the sink loop
		// and the committer merge the flushes of partitions that come
		// together, so a loaded machine may make one sink write and one
		// commit of all the input; each partition produces its own
		// changelog records.
		//
		// Events applied, nothing of the flush written.
		{"before-sink", 1},
		// The sink has the flush, the changelog and the offsets do not.
		{"sink", 1},
		// Half of the flush's state records written.
		{"changelog-half", 3},
		// Sink and changelog written, the offsets not committed.
		{"changelog", 3},
		// Everything of the flush durable, later flushes not.
		{"commit", 1},
	} {
		t.Run(tc.point, func(t *testing.T) {
			c := newCluster(t, 4, testTopics)
			addrs := c.ListenAddrs()
			// 60 accounts: each has more events in a flush than the 16
			// event ids scoring remembers, so only the changelog's
			// offsets keep a redelivered event from being applied again.
			w := makeWorkload(60, 4000, 4, 0.02, 2)
			first := w.msgs[:2000]
			produceAll(t, addrs, first)
			s := newMemSink()
			cr := &crasher{Sink: s, point: tc.point, at: tc.at, changelog: kafkaio.State}
			opts := testOptions(addrs, cr)
			opts.FetchMaxBytes = 16 << 10
			opts.FlushSize = 200
			opts.ShutdownTimeout = time.Nanosecond // a dead process flushes nothing more
			r := startCrashing(t, opts, cr)
			select {
			case <-cr.dead:
			case err := <-r.Done:
				t.Fatalf("the pipeline returned %v before the crash at %s #%d", err, tc.point, tc.at)
			case <-time.After(30 * time.Second):
				t.Fatalf("no crash: %d calls reached %s", cr.calls.Load(), tc.point)
			}
			select {
			case err := <-r.Done:
				t.Logf("crashed at %s #%d; Run returned %v", tc.point, tc.at, err)
				r.Done <- nil
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return within 15 s of the crash")
			}
			got, total := committedTotal(t, addrs, "pyramid", endOffsets(first))
			if tc.point == "commit" && got == 0 || tc.point != "commit" && got >= total {
				t.Fatalf("%d of %d offsets committed at the crash", got, total)
			}
			t.Logf("crashed with %d of %d offsets committed", got, total)
			atCrash := committedOffsets(t, addrs, "pyramid", endOffsets(first))

			produceAll(t, addrs, w.msgs[len(first):])
			opts = testOptions(addrs, s)
			opts.FetchMaxBytes = 16 << 10
			later := testNow.Add(time.Second)
			opts.Now = func() time.Time { return later }
			r2 := start(t, opts)
			ends := endOffsets(w.msgs)
			waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
			r2.Stop(t)
			s.oneContent(t)

			// The versions of a partition skip what there was to redo,
			// plus two, unless its owner had handed it over cleanly before
			// the crash (a rebalance) and emitted nothing since. The clock
			// moved a second, which changes no figure of this workload.
			skip := map[int]uint64{}
			for tp, ps := range ends {
				for p, end := range ps {
					skip[p] += uint64(end - atCrash[tp][p])
				}
			}
			gold := w.golden(t)
			snaps := s.latest()
			skipped := map[int]uint64{}
			for id, sn := range snaps {
				p := partitionOf(id, 4)
				d := sn.Version - gold[id].Version
				if d != 0 && d != skip[p]+2 {
					t.Errorf("account %s (partition %d): version %d, golden %d: skipped %d, want 0 or %d", id, p, sn.Version, gold[id].Version, d, skip[p]+2)
				}
				if prev, ok := skipped[p]; ok && prev != d {
					t.Errorf("partition %d: accounts skipped %d and %d versions", p, prev, d)
				}
				skipped[p] = d
				sn.Version -= d
				if sn.AsOf == later.UnixNano() {
					sn.AsOf = testNow.UnixNano()
				}
				snaps[id] = sn
			}
			t.Logf("versions skipped per partition: %v", skipped)
			compare(t, snaps, gold, true)
		})
	}
}

// TestPoison sends 5% malformed events: each goes to the dead-letter topic
// with its reason and source, every other event is applied.
func TestPoison(t *testing.T) {
	c := newCluster(t, 4, testTopics, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4000000"}))
	addrs := c.ListenAddrs()
	w := makeWorkload(200, 3000, 4, 0.05, 3)
	// One event over the 1 MiB limit of events and the 2 MiB of the
	// dead-letter topic: its dead letter keeps 64 KiB.
	huge := msg{key: "acc-00001", value: []byte(`{"event_id":"huge","type":"activity","kind":"` + strings.Repeat("x", 2200<<10) + `"}`), bad: event.ReasonTooLarge}
	huge.topic, huge.partition = testTopics[2], partitionOf(huge.key, 4)
	w.msgs = append(w.msgs, huge)
	produceAll(t, addrs, w.msgs)
	s := newMemSink()
	r := start(t, testOptions(addrs, s))
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 60*time.Second)
	r.Stop(t)
	compare(t, s.latest(), w.golden(t), true)

	dlq := map[string]kafka.Message{}
	for _, m := range testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, 4) {
		dlq[testenv.Header(m, "pyramid-source")] = m
	}
	src := sources(w.msgs)
	bad := 0
	for i, m := range w.msgs {
		d, ok := dlq[src[i]]
		if m.bad == "" {
			if ok {
				t.Errorf("valid event %s in the DLQ: %s", src[i], testenv.Header(d, "pyramid-error"))
			}
			continue
		}
		bad++
		switch {
		case !ok:
			t.Errorf("malformed event %s (%s) not in the DLQ", src[i], m.bad)
		case testenv.Header(d, "pyramid-reason") != m.bad:
			t.Errorf("event %s: reason %q, want %q", src[i], testenv.Header(d, "pyramid-reason"), m.bad)
		case testenv.Header(d, "pyramid-error") == "" || strings.Contains(testenv.Header(d, "pyramid-error"), "\n"):
			t.Errorf("event %s: pyramid-error %q is not one line", src[i], testenv.Header(d, "pyramid-error"))
		case m.bad == event.ReasonTooLarge:
			if len(d.Value) != kafkaio.TruncatedDeadLetter || testenv.Header(d, "pyramid-truncated") != strconv.Itoa(len(m.value)) {
				t.Errorf("too large event %s: dead letter of %d bytes, truncated header %q", src[i], len(d.Value), testenv.Header(d, "pyramid-truncated"))
			}
		case string(d.Value) != string(m.value) || string(d.Key) != m.key:
			t.Errorf("event %s: DLQ record does not carry the original key and value", src[i])
		}
	}
	if bad < 100 {
		t.Fatalf("only %d malformed events generated", bad)
	}
	t.Logf("%d malformed events, all in the DLQ", bad)
}

// produceSlowly writes msgs in chunks, one chunk every pause.
func produceSlowly(t *testing.T, addrs []string, msgs []msg, chunks int, pause time.Duration) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < chunks; i++ {
			lo, hi := i*len(msgs)/chunks, (i+1)*len(msgs)/chunks
			produceAll(t, addrs, msgs[lo:hi])
			time.Sleep(pause)
		}
	}()
	return done
}

// TestRebalance runs one member, then two, then one while events flow.
func TestRebalance(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(300, 6000, 4, 0.01, 4)
	produceAll(t, addrs, w.msgs[:2000])
	s := newMemSink()
	var revoked atomic.Int32
	// flushes counts each member's durable flushes.
	member := func(flushes *atomic.Int32) Options {
		opts := testOptions(addrs, s)
		opts.FetchMaxBytes = 16 << 10
		opts.OnRevoke = func(int) { revoked.Add(1) }
		opts.Observe = func(int, *sink.Batch) { flushes.Add(1) }
		return opts
	}
	var aFlushes, bFlushes atomic.Int32
	a := start(t, member(&aFlushes))
	done := produceSlowly(t, addrs, w.msgs[2000:], 20, 100*time.Millisecond)
	waitUntil(t, "a owns every partition and flushed", func() bool { return len(a.p.Partitions()) == 4 && aFlushes.Load() > 0 })
	b := start(t, member(&bFlushes))
	waitUntil(t, "the partitions shared", func() bool { return len(a.p.Partitions()) == 2 && len(b.p.Partitions()) == 2 })
	// Both work on their halves before a leaves.
	from := aFlushes.Load()
	waitUntil(t, "both members flushed", func() bool { return bFlushes.Load() > 1 && aFlushes.Load() > from })
	a.Stop(t)
	<-done
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 60*time.Second)
	if got := b.p.Partitions(); len(got) != 4 {
		t.Errorf("after a left, b owns %v", got)
	}
	b.Stop(t)
	if revoked.Load() < 4 {
		t.Errorf("OnRevoke called %d times", revoked.Load())
	}
	compare(t, s.latest(), w.golden(t), true)
}

// TestBrokerFaults fails fetches, produces and commits, and then the sink,
// while events flow; every fault must actually hit, and nothing may be lost
// or doubled.
func TestBrokerFaults(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(300, 5000, 4, 0.02, 5)
	produceAll(t, addrs, w.msgs[:2500])
	s := newMemSink()
	var sinkDown atomic.Bool
	var sinkFailed atomic.Int32
	s.fail = func() error {
		if sinkDown.Load() {
			sinkFailed.Add(1)
			return errInjected
		}
		return nil
	}
	opts := testOptions(addrs, s)
	opts.FetchMaxBytes = 16 << 10
	opts.FlushSize = 200
	r := start(t, opts)
	// inject fails every request of key until n of them have failed.
	inject := func(key kmsg.Key, n int32) {
		var hits atomic.Int32
		enough := make(chan struct{})
		c.ControlKey(key.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
			if hits.Load() >= n {
				c.DropControl()
				return nil, nil, false
			}
			c.KeepControl()
			if hits.Add(1) == n {
				close(enough)
			}
			return nil, errInjected, true
		})
		select {
		case <-enough:
			t.Logf("%s: %d requests failed", key.Name(), n)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: %d of %d injected faults hit within 30 s", key.Name(), hits.Load(), n)
		}
	}
	done := produceSlowly(t, addrs, w.msgs[2500:], 25, 150*time.Millisecond)
	waitUntil(t, "first commits", func() bool { got, _ := committedTotal(t, addrs, "pyramid", endOffsets(w.msgs)); return got > 0 })
	inject(kmsg.Fetch, 10)
	inject(kmsg.OffsetCommit, 5)
	inject(kmsg.Produce, 5)
	sinkDown.Store(true)
	waitUntil(t, "the sink failing", func() bool { return sinkFailed.Load() >= 20 })
	sinkDown.Store(false)
	<-done
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 90*time.Second)
	r.Stop(t)
	compare(t, s.latest(), w.golden(t), true)
}

// TestStartupRefusesUnequalPartitions names every topic and its count.
func TestStartupRefusesUnequalPartitions(t *testing.T) {
	cl := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(4, "t.orders", "t.opportunities"),
		kfake.SeedTopics(2, "t.activities", "t.accounts"))
	opts := testOptions(cl.ListenAddrs(), newMemSink())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, opts)
	if err == nil {
		t.Fatal("Run accepted input topics with different partition counts")
	}
	for _, want := range []string{"t.orders has 4", "t.opportunities has 4", "t.activities has 2", "t.accounts has 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	opts.Topics = []string{"t.orders", "t.missing"}
	err = Run(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "t.missing") {
		t.Errorf("missing input topic: got %v", err)
	}
}

// TestReevaluate moves the clock: an account nobody touches becomes
// neglected without any event, and the alert and the new snapshot reach
// the sink.
func TestReevaluate(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	at := testNow.Add(-24 * time.Hour).Format(time.RFC3339)
	msgs := []msg{
		{key: "acc-big", value: []byte(`{"event_id":"e1","type":"opportunity","account_id":"acc-big","occurred_at":"` + at + `","opportunity_id":"o1","stage":"negotiation","amount":2000000}`)},
		{key: "acc-big", value: []byte(`{"event_id":"e2","type":"account","account_id":"acc-big","occurred_at":"` + at + `","owner_id":"rep-1"}`)},
	}
	for i := range msgs {
		msgs[i].topic, msgs[i].partition = testTopics[0], partitionOf("acc-big", 4)
	}
	produceAll(t, addrs, msgs)
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	s := newMemSink()
	reg := prometheus.NewRegistry()
	opts := testOptions(addrs, s)
	opts.Metrics = metrics.New(reg)
	opts.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	opts.ReevalInterval = 100 * time.Millisecond
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", endOffsets(msgs), 30*time.Second)
	first := s.latest()["acc-big"]
	if first.Neglected || first.Tier.String() != "major" {
		t.Fatalf("before the clock moved: %+v", first)
	}
	if got := metricValue(opts.Metrics.Accounts.WithLabelValues("major")); got != 1 {
		t.Errorf("pyramid_accounts{tier=major} = %v, want 1", got)
	}
	if got := metricValue(opts.Metrics.TierChanges.WithLabelValues("none", "major")); got != 1 {
		t.Errorf("pyramid_tier_changes_total{from=none,to=major} = %v, want 1", got)
	}
	// Every tier and possible change is exported from the start, at zero.
	if n := testutil.CollectAndCount(opts.Metrics.TierChanges); n != 16 {
		t.Errorf("pyramid_tier_changes_total has %d series, want 16 (from none or another tier, to each tier)", n)
	}
	if n := testutil.CollectAndCount(opts.Metrics.Neglected); n != 4 {
		t.Errorf("pyramid_neglected_accounts has %d series, want one per tier", n)
	}
	if got := metricValue(opts.Metrics.PartitionsOwned); got != 4 {
		t.Errorf("pyramid_partitions_owned = %v, want 4", got)
	}
	if got := metricValue(opts.Metrics.Neglected.WithLabelValues("major")); got != 0 {
		t.Errorf("pyramid_neglected_accounts{tier=major} = %v before the clock moved, want 0", got)
	}
	now.Store(testNow.Add(20 * 24 * time.Hour).UnixNano())
	deadline := time.Now().Add(10 * time.Second)
	for !s.latest()["acc-big"].Neglected {
		if time.Now().After(deadline) {
			t.Fatal("the account never became neglected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metricValue(opts.Metrics.Neglected.WithLabelValues("major")); got != 1 {
		t.Errorf("pyramid_neglected_accounts{tier=major} = %v once neglected, want 1", got)
	}
	r.Stop(t)
	last := s.latest()["acc-big"]
	if last.Version != first.Version+1 {
		t.Errorf("version %d after re-evaluation, want %d", last.Version, first.Version+1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.alerts) != 1 || s.alerts[0].Status != "open" || s.alerts[0].AccountID != "acc-big" {
		t.Errorf("alerts %+v, want one open alert for acc-big", s.alerts)
	}
	if got := metricValue(opts.Metrics.Accounts.WithLabelValues("major")); got != 0 {
		t.Errorf("after stop pyramid_accounts{tier=major} = %v, want 0", got)
	}
	if got := metricValue(opts.Metrics.Neglected.WithLabelValues("major")); got != 0 {
		t.Errorf("after stop pyramid_neglected_accounts{tier=major} = %v, want 0", got)
	}
}

func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	return -1
}

// TestRestart stops gracefully and starts again with more events: the
// state comes back from the changelog and nothing is applied twice.
func TestRestart(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(300, 4000, 4, 0.01, 6)
	produceAll(t, addrs, w.msgs[:2000])
	s := newMemSink()
	r := start(t, testOptions(addrs, s))
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs[:2000]), 30*time.Second)
	r.Stop(t)
	produceAll(t, addrs, w.msgs[2000:])
	r = start(t, testOptions(addrs, s))
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 30*time.Second)
	if err := r.p.Ready(); err != nil {
		t.Errorf("Ready after restore: %v", err)
	}
	r.Stop(t)
	compare(t, s.latest(), w.golden(t), true)
}

// TestCaughtUpFlush: a partition that has applied all of its input flushes
// without waiting for the (here hour-long) interval; a trickle of later
// events is flushed at most once per CaughtUpFlush per partition, not once
// per event, and the sink is written at most once per CaughtUpFlush/2 (in
// bursts of at most sinkBurst).
func TestCaughtUpFlush(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(50, 400, 4, 0, 7)
	produceAll(t, addrs, w.msgs)
	s := newMemSink()
	opts := testOptions(addrs, s)
	opts.FlushInterval = time.Hour
	opts.FlushSize = 1_000_000
	opts.CaughtUpFlush = 300 * time.Millisecond
	opts.Metrics = metrics.New(prometheus.NewRegistry())
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 30*time.Second)
	caughtUp := opts.Metrics.SinkFlushes.WithLabelValues("caught_up")
	if got := metricValue(caughtUp); got < 1 {
		t.Errorf("pyramid_sink_flushes_total{reason=caught_up} = %v, want at least 1", got)
	}

	// A trickle: one event every 10 ms for 3 s, spread over the partitions.
	before := metricValue(caughtUp)
	s.mu.Lock()
	writesBefore := s.writes
	s.mu.Unlock()
	ends := endOffsets(w.msgs)
	live := makeWorkloadIDs("live-", 8, 300, 4, 0, 8)
	trickle := time.Now()
	for i := range live.msgs {
		produceAll(t, addrs, live.msgs[i:i+1])
		time.Sleep(10 * time.Millisecond)
	}
	for tp, ps := range endOffsets(live.msgs) {
		for p, n := range ps {
			ends[tp][p] += n
		}
	}
	waitCommitted(t, addrs, "pyramid", ends, 30*time.Second)
	took := time.Since(trickle)
	flushes := metricValue(caughtUp) - before
	if most := 4 * float64(took/opts.CaughtUpFlush+2); flushes < 2 || flushes > most {
		t.Errorf("%v caught-up flushes of 4 partitions over %v, want 2 to %v (one per partition per 300 ms at most)", flushes, took, most)
	}
	s.mu.Lock()
	writes := s.writes - writesBefore
	s.mu.Unlock()
	if most := int(took/(opts.CaughtUpFlush/2)) + sinkBurst; writes > most {
		t.Errorf("%d sink writes over %v, want at most %d (one per 150 ms, bursts of %d)", writes, took, most, sinkBurst)
	}
	t.Logf("%v: %v caught-up flushes, %d sink writes", took, flushes, writes)
	r.Stop(t)
}

// TestPartitionsAddedStop: partitions added to an input topic while the
// pipeline runs would split accounts from their state; it stops with an
// error that names the topic and says how to rebuild, after committing what
// it had read.
func TestPartitionsAddedStop(t *testing.T) {
	c := newCluster(t, 4, testTopics)
	addrs := c.ListenAddrs()
	w := makeWorkload(50, 400, 4, 0, 9)
	produceAll(t, addrs, w.msgs)
	opts := testOptions(addrs, newMemSink())
	opts.LayoutCheckInterval = 100 * time.Millisecond
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", endOffsets(w.msgs), 30*time.Second)

	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	resp, err := cl.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: testTopics[1], Count: 6}}})
	if err != nil || resp.Errors[testTopics[1]] != nil {
		t.Fatalf("adding partitions: %v %v", err, resp)
	}
	select {
	case err := <-r.Done:
		r.Done <- nil
		for _, want := range []string{testTopics[1] + " now has 6", "4 at start", "earliest", "pyramid.state"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Run returned %v, want an error mentioning %q", err, want)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the pipeline kept running after partitions were added")
	}
	if got, total := committedTotal(t, addrs, "pyramid", endOffsets(w.msgs)); got != total {
		t.Errorf("%d of %d offsets committed after the stop", got, total)
	}
}
