package consumer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/scoring"
)

// src is a source position as the header of a repartitioned record gives it.
func src(topic string, partition int, off int64, index int) *kafkaio.Source {
	return &kafkaio.Source{Topic: []byte(topic), Partition: partition, Offset: off, Index: index}
}

// An event at or below the highest position read from its source
// partition is a copy, whatever its account; one above is not, and becomes
// the highest.
func TestSourcePositions(t *testing.T) {
	s := newSourcePositions([]string{repartition.TopicPrefix + "order", "crm.orders"})
	if !s.repart[0] || s.repart[1] {
		t.Fatalf("repartition topics %v", s.repart)
	}
	for _, c := range []struct {
		x      *kafkaio.Source
		copied bool
	}{
		{src("t", 0, 10, 0), false},
		{src("t", 0, 10, 1), false}, // the record's second event
		{src("t", 0, 10, 1), true},
		{src("t", 0, 10, 0), true},
		{src("t", 0, 9, 0), true},
		{src("t", 1, 9, 0), false}, // another source partition
		{src("u", 0, 9, 0), false}, // another source topic
		{src("t", 0, 11, 0), false},
		{src("t", 1, 5, 0), true},
	} {
		if got := s.copied(0, c.x, 0); got != c.copied {
			t.Errorf("%s/%d/%d#%d: copied = %v, want %v", c.x.Topic, c.x.Partition, c.x.Offset, c.x.Index, got, c.copied)
		}
	}
}

// Each source partition's backlog is the one its latest record gave, copy
// or not, counted in the repartition topic it was read from, until it
// sends nothing for upstreamQuiet.
func TestSourceBacklog(t *testing.T) {
	s := newSourcePositions([]string{repartition.TopicPrefix + "order", repartition.TopicPrefix + "activity"})
	const sec = int64(time.Second)
	read := func(ti int, x *kafkaio.Source, backlog int64, wall int64) {
		t.Helper()
		x.Backlog = backlog
		s.copied(ti, x, wall)
	}
	check := func(what string, order, activity int64) {
		t.Helper()
		if s.upstream[0] != order || s.upstream[1] != activity {
			t.Errorf("%s: upstream %v, want [%d %d]", what, s.upstream, order, activity)
		}
	}
	read(0, src("o", 0, 10, 0), 5000, 0)
	read(0, src("o", 1, 3, 0), 200, 0)
	read(1, src("a", 0, 7, 0), 40, 0)
	check("three source partitions", 5200, 40)
	read(0, src("o", 0, 11, 0), 4000, sec)
	check("a newer record of one", 4200, 40)
	read(0, src("o", 0, 5, 0), 3000, 2*sec) // a copy, written again later
	check("a copy", 3200, 40)
	read(1, src("a", 0, 8, 0), 0, 2*sec)
	check("one caught up", 3200, 0)
	s.expire(int64(upstreamQuiet))
	check("nothing quiet yet", 3200, 0)
	s.expire(int64(upstreamQuiet) + sec/2)
	check("o/1 quiet for longer than upstreamQuiet", 3000, 0)
	s.expire(int64(upstreamQuiet) + 3*sec)
	check("all quiet", 0, 0)
	if len(s.behind) != 0 {
		t.Errorf("%d source partitions still listed as behind", len(s.behind))
	}
	read(0, src("o", 0, 12, 0), 100, 10*sec)
	check("o/0 again", 100, 0)
}

// The sources record gives the highest positions back, and is written only
// when they moved; one cut short is refused, not misread.
func TestSourcesRecord(t *testing.T) {
	topics := []string{repartition.TopicPrefix + "order"}
	s := newState(scoring.NewParams(config.Default()), topics, "t.state", 0, newSizeGuard(StateMaxMessageBytes, 20, topics))
	for _, x := range []*kafkaio.Source{src("crmdb.public.orders", 4, 77, 1), src("crmdb.public.opportunities", 0, 5, 0), src("crmdb.public.orders", 1, 3, 0)} {
		if s.src.copied(0, x, 0) {
			t.Fatal("a first position is a copy")
		}
	}
	rec, ok := s.src.record()
	if !ok || string(rec.Key) != sourcesKey {
		t.Fatalf("record %q, %v", rec.Key, ok)
	}
	if _, again := s.src.record(); again {
		t.Error("a sources record again without a new position")
	}
	a := account(t, s, "acc-1")
	buf, mid := s.appendRecord(nil, a, []int64{3}, make([]int64, 1))
	r := newState(scoring.NewParams(config.Default()), topics, "t.state", 0, newSizeGuard(StateMaxMessageBytes, 20, topics))
	var restored []string
	if err := r.restore(map[string][]byte{sourcesKey: rec.Value, "acc-1": buf[mid:]}, func(a *scoring.Account) { restored = append(restored, a.ID) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restored, []string{"acc-1"}) {
		t.Errorf("restored accounts %v: the sources record is no account", restored)
	}
	for _, c := range []struct {
		x      *kafkaio.Source
		copied bool
	}{
		{src("crmdb.public.orders", 4, 77, 1), true},
		{src("crmdb.public.orders", 4, 78, 0), false},
		{src("crmdb.public.opportunities", 0, 5, 0), true},
		{src("crmdb.public.orders", 1, 2, 0), true},
		{src("crmdb.public.accounts", 0, 0, 0), false},
	} {
		if got := r.src.copied(0, c.x, 0); got != c.copied {
			t.Errorf("restored: %s/%d/%d#%d copied = %v, want %v", c.x.Topic, c.x.Partition, c.x.Offset, c.x.Index, got, c.copied)
		}
	}
	if err := r.restore(map[string][]byte{sourcesKey: rec.Value[:len(rec.Value)-2]}, func(*scoring.Account) {}); err == nil {
		t.Error("a cut sources record was accepted")
	}
}

// repartitioned is an event as the repartitioner writes it.
type repartitioned struct {
	partition int // of the repartition topic
	account   string
	value     string
	src       *kafkaio.Source
}

func produceRepartitioned(tb testing.TB, addrs []string, topic string, recs []repartitioned) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	byPart := map[int][]kafka.Record{}
	for _, r := range recs {
		hs, _ := kafkaio.AppendSourceHeader(nil, nil, string(r.src.Topic), r.src.Partition, r.src.Offset, r.src.Index, r.src.Backlog)
		byPart[r.partition] = append(byPart[r.partition], kafka.Record{Key: kafka.NewBytes([]byte(r.account)), Value: kafka.NewBytes([]byte(r.value)), Headers: hs})
	}
	for p, batch := range byPart {
		resp, err := cl.Produce(context.Background(), &kafka.ProduceRequest{Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll,
			Records: kafka.NewRecordReader(batch...)})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// Copies of repartitioned events written after a crash of the
// repartitioner are dropped by their source positions, which the state
// topic keeps across a restart of the pipeline (the sources record): with
// 40 orders per account, the 16-entry event_id ring alone would apply most
// copies again. New events after the copies still count.
func TestRepartitionedCopiesDropped(t *testing.T) {
	topic := repartition.TopicPrefix + "order"
	c := newCluster(t, 2, []string{topic})
	addrs := c.ListenAddrs()
	const source = "crmdb.public.orders"
	at := testNow.Add(-24 * time.Hour).Format(time.RFC3339)
	var all []repartitioned
	off := map[int]int64{}
	for i := range 240 {
		acc := fmt.Sprintf("acc-%d", i%6)
		sp := (i / 6) % 3 // source partition: every account has events from each
		r := repartitioned{partition: partitionOf(acc, 2), account: acc,
			value: fmt.Sprintf(`{"event_id":"o-%d","type":"order","account_id":%q,"occurred_at":%q,"order_id":"o-%d","amount":%d}`, i, acc, at, i, 100+i),
			src:   src(source, sp, off[sp], 0)}
		off[sp]++
		all = append(all, r)
	}
	golden := func(evs []repartitioned) map[string]scoring.Snapshot {
		dec := event.NewDecoder(config.Default())
		eng := scoring.NewEngine(scoring.NewParams(config.Default()))
		var out scoring.Output
		for _, r := range evs {
			ev, err := dec.Decode([]byte(r.value))
			if err != nil {
				t.Fatal(err)
			}
			eng.Apply(&ev, testNow.UnixNano(), &out)
		}
		g := map[string]scoring.Snapshot{}
		for _, id := range eng.IDs() {
			g[id] = eng.Snapshot(eng.Account(id), testNow.UnixNano())
		}
		return g
	}
	ends := func() map[string]map[int]int64 {
		cl := &kafka.Client{Addr: kafka.TCP(addrs...)}
		resp, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1)}}})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]map[int]int64{topic: {}}
		for _, p := range resp.Topics[topic] {
			m[topic][p.Partition] = p.LastOffset
		}
		return m
	}
	s := newMemSink() // the newest snapshot of every account over all runs
	run := func() *metrics.Metrics {
		t.Helper()
		opts := testOptions(addrs, s)
		opts.Topics = []string{topic}
		opts.Metrics = metrics.New(nil)
		r := start(t, opts)
		waitCommitted(t, addrs, "pyramid", ends(), 60*time.Second)
		r.Stop(t)
		return opts.Metrics
	}

	produceRepartitioned(t, addrs, topic, all)
	run()
	compare(t, s.latest(), golden(all), true)

	// The repartitioner died before committing: it writes everything again.
	produceRepartitioned(t, addrs, topic, all)
	m := run()
	compare(t, s.latest(), golden(all), true)
	if n := testutil.ToFloat64(m.Events.WithLabelValues("order", "duplicate")); n != float64(len(all)) {
		t.Errorf("%v duplicates counted, want the %d copies", n, len(all))
	}

	// New events, then copies of old ones again.
	var next []repartitioned
	for sp := range 3 {
		acc := fmt.Sprintf("acc-%d", sp)
		next = append(next, repartitioned{partition: partitionOf(acc, 2), account: acc,
			value: fmt.Sprintf(`{"event_id":"n-%d","type":"order","account_id":%q,"occurred_at":%q,"order_id":"n-%d","amount":1}`, sp, acc, at, sp),
			src:   src(source, sp, off[sp], 0)})
	}
	produceRepartitioned(t, addrs, topic, next)
	produceRepartitioned(t, addrs, topic, all[:60])
	m = run()
	compare(t, s.latest(), golden(append(slices.Clone(all), next...)), true)
	if n := testutil.ToFloat64(m.Events.WithLabelValues("order", "duplicate")); n != 60 {
		t.Errorf("%v duplicates counted, want the 60 copies", n)
	}
	// One sources record per partition of the state topic, the newest
	// naming every source partition.
	srcs := 0
	for _, rec := range testenv.ReadTopic(t, addrs, kafkaio.State, 2) {
		if string(rec.Key) == sourcesKey {
			srcs++
		}
	}
	if srcs == 0 {
		t.Error("no sources record in the state topic")
	}
}

// An event whose event_id repeats one the account applied (a connector
// re-emitting a change) leaves its source position too: when a copy of it
// comes after more than 16 other events (here from another source
// partition), the ring of event ids has forgotten the id, and only the
// position keeps it from counting.
func TestCopyOfRepeatedEventIDDropped(t *testing.T) {
	topic := repartition.TopicPrefix + "order"
	c := newCluster(t, 1, []string{topic})
	addrs := c.ListenAddrs()
	const acc, source = "acc-1", "crmdb.public.orders"
	at := testNow.Add(-24 * time.Hour).Format(time.RFC3339)
	order := func(id string, sp int, off int64) repartitioned {
		return repartitioned{account: acc, src: src(source, sp, off, 0),
			value: fmt.Sprintf(`{"event_id":%q,"type":"order","account_id":%q,"occurred_at":%q,"order_id":%q,"amount":100}`, id, acc, at, id)}
	}
	recs := []repartitioned{order("o-0", 0, 0), order("o-0", 0, 1)} // the change, and its re-emission
	for i := range 20 {
		recs = append(recs, order(fmt.Sprint("o-", i+1), 1, int64(i)))
	}
	recs = append(recs, order("o-0", 0, 1)) // the re-emission, written again by the repartitioner
	produceRepartitioned(t, addrs, topic, recs)
	s := newMemSink()
	opts := testOptions(addrs, s)
	opts.Topics = []string{topic}
	opts.Metrics = metrics.New(nil)
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", map[string]map[int]int64{topic: {0: int64(len(recs))}}, 60*time.Second)
	r.Stop(t)
	if got := s.latest()[acc].CurrentValue.String(); got != "2100.00" {
		t.Errorf("current value %s, want 2100.00: the 21 orders once each", got)
	}
	if n := testutil.ToFloat64(opts.Metrics.Events.WithLabelValues("order", "duplicate")); n != 2 {
		t.Errorf("%v duplicates, want 2 (the re-emission, and its copy)", n)
	}
}
