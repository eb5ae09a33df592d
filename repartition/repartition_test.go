package repartition

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// The CRM history as Debezium wrote it, on source topics of 3 partitions
// keyed by primary key, is repartitioned by account onto 4 partitions (the
// native topic's count): every event once, in the partition murmur2 gives
// its account, carrying its source position, in source order; every
// source offset committed.
func TestRepartition(t *testing.T) {
	recs := crmRecords(t, "debezium-schemas-precise.jsonl")
	counts := sourceCounts(recs, 3)
	c := newCluster(t, 4, counts)
	addrs := c.ListenAddrs()
	cfg := crmConfig(t)
	pos := produceSources(t, addrs, counts, recs)
	want, rejected := expected(t, cfg, pos, 4)
	if len(rejected) != 0 || len(want) < 20 {
		t.Fatalf("the fixture maps to %d events with %d rejected", len(want), len(rejected))
	}

	opts := testOptions(addrs, cfg)
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid"+GroupSuffix, ends(pos, counts), 30*time.Second)
	if err := r.r.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	r.Stop(t)

	applied, dropped := downstream(t, addrs, 4)
	if dropped != 0 {
		t.Errorf("%d copies in the repartition topics without a crash", dropped)
	}
	checkExactlyOnce(t, applied, want)
	total := 0.0
	for topic := range counts {
		total += testutil.ToFloat64(opts.Metrics.RepartitionRecords.WithLabelValues(topic))
	}
	if int(total) != len(recs) {
		t.Errorf("pyramid_repartition_records_total = %v, want %d", total, len(recs))
	}
	if n := testutil.ToFloat64(opts.Metrics.RepartitionEvents.WithLabelValues("order")); n == 0 {
		t.Error("pyramid_repartition_events_total{type=order} = 0")
	}
}

// A record that cannot be mapped goes to the dead-letter topic, with its
// reason, the field and path in the message, and its source position; its
// offset is committed, and the records after it are repartitioned.
func TestDeadLetters(t *testing.T) {
	recs := crmRecords(t, "debezium-plain-string.jsonl")
	const opps = "crmdb.public.opportunities"
	bad := []source{
		{opps, []byte(`{"id":900}`), []byte(`{"op":"c","after":{"id":900,"account_id":"A-1","stage":"dreaming","amount":"1.00","updated_at":"2026-01-10T10:00:00Z"},"source":{"lsn":1}}`)},
		{opps, []byte(`{"id":901}`), []byte(`not json`)},
		{opps, []byte(`{"id":902}`), []byte(`{"op":"c","after":{"id":902,"stage":"proposal","amount":"1.00","updated_at":"2026-01-10T10:00:00Z"},"source":{"lsn":2}}`)},
	}
	recs = append(bad, recs...)
	counts := sourceCounts(recs, 1)
	c := newCluster(t, 2, counts)
	addrs := c.ListenAddrs()
	cfg := crmConfig(t)
	pos := produceSources(t, addrs, counts, recs)
	want, rejected := expected(t, cfg, pos, 2)
	if len(rejected) != len(bad) {
		t.Fatalf("%d records rejected by the mapper, want %d", len(rejected), len(bad))
	}
	opts := testOptions(addrs, cfg)
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid"+GroupSuffix, ends(pos, counts), 30*time.Second)
	r.Stop(t)

	applied, _ := downstream(t, addrs, 2)
	checkExactlyOnce(t, applied, want)
	dl := testenv.ReadTopic(t, addrs, "pyramid.dlq", 2)
	if len(dl) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(bad))
	}
	wantReasons := map[string]string{
		"900": event.ReasonUnknownStage + `|stage "dreaming"|stage <- after.stage`,
		"901": event.ReasonNotJSON + "|not JSON",
		"902": event.ReasonMissingField + "|account_id",
	}
	for i, d := range dl {
		id := strings.Trim(strings.TrimPrefix(string(d.Key), `{"id":`), "}")
		parts := strings.Split(wantReasons[id], "|")
		if testenv.Header(d, kafkaio.HeaderReason) != parts[0] {
			t.Errorf("dead letter %s: reason %q, want %q (error %q)", d.Key, testenv.Header(d, kafkaio.HeaderReason), parts[0], testenv.Header(d, kafkaio.HeaderError))
		}
		for _, p := range parts[1:] {
			if !strings.Contains(testenv.Header(d, kafkaio.HeaderError), p) {
				t.Errorf("dead letter %s: error %q does not say %q", d.Key, testenv.Header(d, kafkaio.HeaderError), p)
			}
		}
		if src := testenv.Header(d, kafkaio.HeaderSource); src != opps+"/0/"+itoa(i) {
			t.Errorf("dead letter %s: source %q, want %s/0/%d", d.Key, src, opps, i)
		}
		if string(d.Value) != string(bad[i].value) {
			t.Errorf("dead letter %s: value %q, want the record's", d.Key, d.Value)
		}
	}
	for reason, n := range map[string]float64{event.ReasonUnknownStage: 1, event.ReasonNotJSON: 1, event.ReasonMissingField: 1} {
		if got := testutil.ToFloat64(opts.Metrics.RepartitionErrors.WithLabelValues(opps, reason)); got != n {
			t.Errorf("pyramid_repartition_errors_total{topic=%s,reason=%s} = %v, want %v", opps, reason, got, n)
		}
		if got := testutil.ToFloat64(opts.Metrics.DLQ.WithLabelValues(reason)); got != n {
			t.Errorf("pyramid_dlq_total{reason=%s} = %v, want %v", reason, got, n)
		}
	}
}

func itoa(i int) string { return string(kafkaio.AppendSource(nil, "", 0, int64(i))[3:]) }

// A process that dies between writing repartitioned records and committing
// their source offsets writes them again after the restart; the copies
// carry the same source positions, so the pipeline's rule (drop what an
// account has applied from that source partition) keeps every event once,
// in order. The test kills the repartitioner after each of several produce
// counts and checks the fault hit: copies are in the topics.
func TestCrashWritesAgain(t *testing.T) {
	addrs, cfg, counts, pos := mixedSources(t, 300, 6000, 1)
	want, rejected := expected(t, cfg, pos, 4)
	if len(rejected) == 0 {
		t.Fatal("the history should have records the mapper refuses")
	}
	for _, after := range []int{3, 10, 25} {
		opts := testOptions(addrs, cfg)
		opts.CommitInterval = 300 * time.Millisecond
		opts.ShutdownTimeout = 200 * time.Millisecond
		// Small rounds: the lanes join what many source partitions
		// hand them into few requests, and with whole fetch responses
		// the history left after the first kills could take fewer than
		// 25 produces, which would never kill the last run.
		opts.FetchMaxBytes = 16 << 10
		r, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		r.kafka = &faultyWriter{Writer: r.kafka, produces: after, die: cancel}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("killed run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatalf("the repartitioner did not write %d times within 30 s", after)
		}
	}
	r := start(t, testOptions(addrs, cfg))
	waitCommitted(t, addrs, "pyramid"+GroupSuffix, ends(pos, counts), 60*time.Second)
	r.Stop(t)

	applied, dropped := downstream(t, addrs, 4)
	if dropped == 0 {
		t.Fatal("no copies in the repartition topics: the kills did not fall between a write and its commit")
	}
	t.Logf("%d events, %d copies written again after the kills and dropped", len(want), dropped)
	checkExactlyOnce(t, applied, want)
	if dl := testenv.ReadTopic(t, addrs, "pyramid.dlq", 4); len(dl) < len(rejected) {
		t.Errorf("%d dead letters, want at least the %d refused records", len(dl), len(rejected))
	}
}

// Members joining and leaving the repartitioner's group while records
// flow move source partitions between them; each source partition's events
// stay in order in every repartition partition, and none is lost.
func TestRebalanceKeepsOrder(t *testing.T) {
	recs, cfg := generated(t, 400, 12_000, 2)
	counts := sourceCounts(recs, 6)
	c := newCluster(t, 4, counts)
	addrs := c.ListenAddrs()
	var pos []positioned
	third := len(recs) / 3
	pos = append(pos, produceSources(t, addrs, counts, recs[:third])...)

	opts := testOptions(addrs, cfg)
	opts.FetchMaxBytes = 16 << 10 // small rounds: partitions move in the middle of the stream
	first := start(t, opts)
	waitRecords(t, opts, third/2)
	second := start(t, opts)
	pos = append(pos, produceSources(t, addrs, counts, recs[third:2*third])...)
	waitRecords(t, opts, third+third/2)
	first.Stop(t)
	third2 := start(t, opts)
	pos = append(pos, produceSources(t, addrs, counts, recs[2*third:])...)
	waitCommitted(t, addrs, "pyramid"+GroupSuffix, ends(pos, counts), 60*time.Second)
	second.Stop(t)
	third2.Stop(t)

	want, _ := expected(t, cfg, pos, 4)
	applied, dropped := downstream(t, addrs, 4)
	t.Logf("%d events; %d copies written again by a partition's next owner and dropped", len(want), dropped)
	checkExactlyOnce(t, applied, want)
}

// waitRecords waits until the repartitioners counting in opts' metrics
// handled n records.
func waitRecords(tb testing.TB, opts Options, n int) {
	tb.Helper()
	total := func() float64 {
		n := 0.0
		for _, in := range opts.Config.Inputs {
			n += testutil.ToFloat64(opts.Metrics.RepartitionRecords.WithLabelValues(in.Topic))
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for total() < float64(n) {
		if time.Now().After(deadline) {
			tb.Fatalf("no progress within 30 s (%v records)", total())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Prepare sizes the repartition topics like the native inputs, or without
// them like the state topic or the largest declared input, and refuses a
// layout it cannot run on.
func TestPrepare(t *testing.T) {
	cfg := crmConfig(t)
	sources := map[string]int32{}
	for _, in := range cfg.Inputs {
		sources[in.Topic] = 3
	}
	sources["crmdb.public.orders"] = 5
	for _, tc := range []struct {
		name   string
		native int32
		extra  map[string]int32
		drop   string // a declared input that does not exist
		want   int
		err    string
	}{
		{name: "native count", native: 4, want: 4},
		{name: "largest input without native topics", want: 5},
		{name: "state topic without native topics", extra: map[string]int32{"pyramid.state": 2}, want: 2},
		{name: "existing repartition topic", extra: map[string]int32{"pyramid.repartition.order": 6}, want: 6},
		{name: "repartition topic of another count", native: 4, extra: map[string]int32{"pyramid.repartition.order": 6},
			err: "repartition topic pyramid.repartition.order has 6 partitions, but it must have as many as the native input topic crm.orders (4)"},
		{name: "missing input", native: 4, drop: "crmdb.public.accounts", err: "declared input topic(s) crmdb.public.accounts do not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topics := map[string]int32{}
			for k, v := range sources {
				if k != tc.drop {
					topics[k] = v
				}
			}
			for k, v := range tc.extra {
				topics[k] = v
			}
			c := newCluster(t, tc.native, topics)
			opts := testOptions(c.ListenAddrs(), cfg)
			r, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			n, err := r.Prepare(t.Context())
			if tc.err != "" {
				var le *LayoutError
				if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Prepare: %v, want a layout error saying %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("Prepare = %d, %v; want %d", n, err, tc.want)
			}
			cl := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
			md, err := cl.Metadata(t.Context(), &kafka.MetadataRequest{Topics: append(Topics(cfg), "pyramid.dlq")})
			if err != nil {
				t.Fatal(err)
			}
			for _, tp := range md.Topics {
				if tp.Error != nil || len(tp.Partitions) != tc.want && tp.Name != "pyramid.dlq" {
					t.Errorf("%s: %d partitions (%v), want %d", tp.Name, len(tp.Partitions), tp.Error, tc.want)
				}
			}
			if len(md.Topics) != 5 {
				t.Errorf("metadata has %d topics, want the four repartition topics and the dead-letter topic", len(md.Topics))
			}
		})
	}
}
