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
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/scoring"
)

// src is a source position as the headers of a repartitioned record give it.
func src(topic string, partition int, off int64, index int, committed int64) *kafkaio.Source {
	return &kafkaio.Source{Topic: []byte(topic), Partition: partition, Offset: off, Index: index, Committed: committed}
}

// The positions an account applied mark its copies: at or below the
// highest (offset, index) per source partition, not above, not another
// partition's, not another account's. A committed offset read from any
// record marks every lower offset of its source partition as a copy, and
// lets the positions below it go.
func TestPositionsCopiesAndFloors(t *testing.T) {
	s := newSourcePositions([]string{repartition.TopicPrefix + "order", "crm.orders"})
	if !s.repart[0] || s.repart[1] {
		t.Fatalf("repartition topics %v", s.repart)
	}
	apply := func(id string, x *kafkaio.Source) bool {
		tp, copied := s.copied(id, x)
		if !copied {
			s.applied(id, tp, x)
		}
		return copied
	}
	for _, c := range []struct {
		id     string
		x      *kafkaio.Source
		copied bool
	}{
		{"a", src("t", 0, 10, 0, 0), false},
		{"a", src("t", 0, 10, 1, 0), false}, // the record's second event
		{"a", src("t", 0, 10, 1, 0), true},
		{"a", src("t", 0, 10, 0, 0), true},
		{"a", src("t", 0, 9, 0, 0), true},
		{"a", src("t", 1, 9, 0, 0), false}, // another source partition
		{"b", src("t", 0, 9, 0, 0), false}, // another account
		{"a", src("u", 0, 9, 0, 0), false}, // another source topic
		{"a", src("t", 0, 11, 0, 0), false},
		{"b", src("t", 0, 5, 0, 0), true},
	} {
		if got := apply(c.id, c.x); got != c.copied {
			t.Errorf("%s at %s/%d/%d#%d: copied = %v, want %v", c.id, c.x.Topic, c.x.Partition, c.x.Offset, c.x.Index, got, c.copied)
		}
	}
	if n := len(s.of("a")); n != 3 {
		t.Errorf("a keeps %d positions, want one per source partition (3)", n)
	}
	// The repartitioner committed t/0 up to 12: every copy below is behind.
	if apply("c", src("t", 0, 12, 0, 12)) {
		t.Error("the event at the committed offset is not a copy")
	}
	if !apply("d", src("t", 0, 11, 0, 0)) {
		t.Error("an event below the committed offset of its partition is a copy, whichever account")
	}
	s.sweep()
	if ps := s.of("a"); len(ps) != 2 || slices.ContainsFunc(ps, func(p srcPos) bool { return s.names[p.tp.topic] == "t" && p.tp.partition == 0 }) {
		t.Errorf("after the floor passed t/0, a keeps %v", ps)
	}
	if _, ok := s.acc["b"]; ok {
		t.Errorf("b keeps %v, all below the floor", s.acc["b"])
	}
}

// A state record carries its account's source positions (header version
// 3) and gives them back; an account without any is written as version 2,
// which releases without declared inputs read.
func TestStateRecordsPositions(t *testing.T) {
	topics := []string{repartition.TopicPrefix + "order", "a"}
	s := newState(scoring.NewParams(config.Default()), topics, "t.state", 0, newSizeGuard(StateMaxMessageBytes, 20, topics))
	a, b := account(t, s, "acc-1"), account(t, s, "acc-2")
	x := src("crmdb.public.orders", 4, 77, 1, 0)
	tp, _ := s.src.copied("acc-1", x)
	s.src.applied("acc-1", tp, x)
	y := src("crmdb.public.opportunities", 0, 5, 0, 0)
	tp, _ = s.src.copied("acc-1", y)
	s.src.applied("acc-1", tp, y)

	buf, mid := s.appendRecord(nil, a, []int64{3, 4}, make([]int64, 2))
	if buf[mid+1] != headerVersion3 {
		t.Fatalf("header version %d with positions", buf[mid+1])
	}
	plain, pmid := s.appendRecord(nil, b, []int64{3, 4}, make([]int64, 2))
	if plain[pmid+1] != headerVersion2 {
		t.Fatalf("header version %d without positions", plain[pmid+1])
	}

	r := newState(scoring.NewParams(config.Default()), topics, "t.state", 0, newSizeGuard(StateMaxMessageBytes, 20, topics))
	if err := r.restore(map[string][]byte{"acc-1": buf[mid:], "acc-2": plain[pmid:]}, func(*scoring.Account) {}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		x      *kafkaio.Source
		copied bool
	}{
		{src("crmdb.public.orders", 4, 77, 1, 0), true},
		{src("crmdb.public.orders", 4, 78, 0, 0), false},
		{src("crmdb.public.opportunities", 0, 5, 0, 0), true},
	} {
		if _, got := r.src.copied("acc-1", c.x); got != c.copied {
			t.Errorf("restored: %s/%d/%d#%d copied = %v, want %v", c.x.Topic, c.x.Partition, c.x.Offset, c.x.Index, got, c.copied)
		}
	}
	if _, got := r.src.copied("acc-2", src("crmdb.public.orders", 4, 1, 0, 0)); got {
		t.Error("acc-2 restored positions it never had")
	}
	if r.eng.Account("acc-1") == nil || r.eng.Account("acc-2") == nil || !slices.Equal(r.floor["acc-1"], []int64{3, 4}) {
		t.Errorf("restored accounts %v, floors %v", r.eng.IDs(), r.floor)
	}
	// A truncated position list is refused, not misread.
	cut := buf[mid : mid+len(buf[mid:])-len(scoring.MarshalAccount(nil, a))-2]
	if err := r.restore(map[string][]byte{"acc-1": cut}, func(*scoring.Account) {}); err == nil {
		t.Error("a record with cut positions was accepted")
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
		hs, _ := kafkaio.AppendSourceHeader(nil, nil, string(r.src.Topic), r.src.Partition, r.src.Offset, r.src.Index, r.src.Committed)
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
// repartitioner are dropped by their source positions, which the
// changelog keeps across a restart of the pipeline: with 40 orders per
// account, the 16-entry event_id ring alone would apply most copies again.
// Once a record says the repartitioner committed past them, the positions
// go from the state records, and copies below are still dropped.
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
			src:   src(source, sp, off[sp], 0, 0)}
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

	// New events carrying the commit of everything before, from each
	// source partition into each partition of the repartition topic (a
	// partition learns a source partition's commit from its own records);
	// then copies of old events again.
	var next []repartitioned
	newSourcePositions := map[string]int{}
	for sp := range 3 {
		for q := range 2 {
			acc := ""
			for i := 0; acc == ""; i++ { // the accounts of partition q in turn
				if a := fmt.Sprintf("acc-%d", (sp+i)%6); partitionOf(a, 2) == q {
					acc = a
				}
			}
			newSourcePositions[acc]++
			next = append(next, repartitioned{partition: q, account: acc,
				value: fmt.Sprintf(`{"event_id":"n-%d-%d","type":"order","account_id":%q,"occurred_at":%q,"order_id":"n-%d-%d","amount":1}`, sp, q, acc, at, sp, q),
				src:   src(source, sp, off[sp]+int64(q), 0, off[sp])})
		}
	}
	produceRepartitioned(t, addrs, topic, next)
	produceRepartitioned(t, addrs, topic, all[:60])
	positions := func() map[string]int { // per account, in its newest state record
		out := map[string]int{}
		for _, rec := range readTopic(t, addrs, kafkaio.State, 2) {
			st := newState(scoring.NewParams(config.Default()), []string{topic}, kafkaio.State, rec.Partition, newSizeGuard(StateMaxMessageBytes, 20, []string{topic}))
			if string(rec.Key) == markerKey {
				continue
			}
			_, _, ps, _, err := parseRecord(rec.Value, st.topics, st.src)
			if err != nil {
				t.Fatal(err)
			}
			out[string(rec.Key)] = len(ps) // in log order: the newest wins
		}
		return out
	}
	if before := positions(); before["acc-0"] != 3 {
		t.Fatalf("positions per account before the commit: %v; want 3 (one per source partition)", before)
	}
	run()
	compare(t, s.latest(), golden(append(slices.Clone(all), next...)), true)
	// The state records written since no longer carry positions below the
	// commit: the accounts that got new events keep theirs only.
	after := positions()
	for acc, n := range newSourcePositions {
		if after[acc] != n {
			t.Errorf("%s keeps %d positions after the commit passed all but its %d newest: %v", acc, after[acc], n, after)
		}
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
		return repartitioned{account: acc, src: src(source, sp, off, 0, 0),
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

// The state record's size guard (freeze.go) counts the source positions
// an account keeps, at no less than what they take in its record.
func TestSizeGuardCountsPositions(t *testing.T) {
	topics := []string{repartition.TopicPrefix + "order"}
	s := newState(scoring.NewParams(config.Default()), topics, "t.state", 0, newSizeGuard(StateMaxMessageBytes, 20, topics))
	a := account(t, s, "acc-1")
	before, _ := s.appendRecord(nil, a, []int64{1}, make([]int64, 1))
	bound := s.size.size(a)
	for p := range 50 {
		x := src(fmt.Sprintf("crmdb.public.table%d", p%3), p, int64(1000+p), 0, 0)
		tp, _ := s.src.copied("acc-1", x)
		s.src.applied("acc-1", tp, x)
	}
	after, _ := s.appendRecord(nil, a, []int64{1}, make([]int64, 1))
	grown := len(after) - len(before)
	if got := s.size.size(a) - bound; got < grown {
		t.Errorf("the guard's bound grew by %d bytes, the record by %d", got, grown)
	}
}
