package consumer

import (
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
)

func TestCapacityRecordRoundTrip(t *testing.T) {
	c := &scoring.Candidates{List: []scoring.Candidate{{ID: "a", Value: 12345, Qualified: scoring.Major, Tier: scoring.Named}}}
	c.Pinned[scoring.Major] = 2
	b := marshalCapacity(12, 7, 0xdeadbeef, c)
	e, err := parseCapacity(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.partitions != 12 || e.generation != 7 || e.digest != 0xdeadbeef || !reflect.DeepEqual(e.cands, c) {
		t.Errorf("round trip: %+v", e)
	}
	for _, bad := range [][]byte{nil, {'Q'}, {'Q', 2}, {'Q', 1, 0}, {'Q', 1, 1, 1}, b[:len(b)-1]} {
		if _, err := parseCapacity(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

// The board keeps the newest generation per partition, ignores what it
// cannot read, and rankable says what a ranking waits for.
func TestCapacityBoard(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := newCapacityBoard()
	put := func(key string, n int, gen int32, digest uint64) {
		v := marshalCapacity(n, gen, digest, &scoring.Candidates{List: []scoring.Candidate{{ID: "acc-" + key, Value: 1, Qualified: scoring.Major}}})
		b.apply(log, &kafka.Message{Key: []byte(key), Value: v})
	}
	put("0", 3, 5, 1)
	put("1", 3, 5, 1)
	put("1", 3, 4, 1) // a late record of an ended generation
	b.apply(log, &kafka.Message{Key: []byte("2"), Value: []byte("garbage")})
	b.apply(log, &kafka.Message{Key: []byte("x"), Value: []byte("garbage")})
	seq, entries := b.view()
	if e := entries[1]; e.generation != 5 || len(entries) != 2 || seq != 2 {
		t.Fatalf("seq %d, entries %+v", seq, entries)
	}
	if r := rankable(entries, 3, 5, 1, 2); r.sets == nil || r.sets[0].List[0].ID != "acc-0" || r.sets[1].List[0].ID != "acc-1" || r.sets[2] != nil {
		t.Errorf("partition 2 with both others: %+v", r)
	}
	if r := rankable(entries, 3, 5, 1, 0); r.sets != nil || !strings.Contains(r.waiting, "partitions [2] in generation 5") {
		t.Errorf("partition 0 without 2: %+v", r)
	}
	if r := rankable(entries, 3, 6, 1, 2); r.sets != nil || !strings.Contains(r.waiting, "partitions [0 1] in generation 6") {
		t.Errorf("a newer generation: %+v", r)
	}
	put("2", 3, 5, 9)
	_, entries = b.view()
	if r := rankable(entries, 3, 5, 1, 0); r.sets != nil || !strings.Contains(r.waiting, "partitions [2] publish under another capacity configuration") {
		t.Errorf("another configuration: %+v", r)
	}
}

// A flush holds at most one capacity ranking that moved accounts, as it
// holds one clock pass: another waits for the next seal, then runs.
func TestOneRankingPassPerFlush(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 1
	p, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Sink: newMemSink(), Config: cfg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p.layout.partitions = 1
	w := newWorker(p, nil, 0)
	w.clk.caughtUpOnce = true
	dec := event.NewDecoder(cfg)
	wallet := func(id, at string, units int) *scoring.Account {
		t.Helper()
		ev, err := dec.Decode([]byte(`{"event_id":"e-` + id + at + `","type":"account","account_id":"` + id + `","occurred_at":"` + at + `","wallet":` + strconv.Itoa(units) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		a, _ := w.st.eng.Apply(&ev, now.UnixNano(), &w.out)
		w.clk.last = now.UnixNano()
		return a
	}
	a := wallet("a", "2026-02-01T00:00:00Z", 2_000_000)
	if a.Tier != scoring.Named {
		t.Fatalf("before a ranking a holds %v", a.Tier)
	}
	w.rank(true)
	if a.Tier != scoring.Major || a.Version != 2 || !w.rk.passed {
		t.Fatalf("the first ranking: a holds %v at version %d", a.Tier, a.Version)
	}
	b := wallet("b", "2026-02-02T00:00:00Z", 3_000_000)
	w.rank(true)
	if a.Tier != scoring.Major || b.Tier != scoring.Named || !w.rk.due {
		t.Fatalf("a second ranking before the seal ran: a %v, b %v", a.Tier, b.Tier)
	}
	w.gathering()
	if a.Tier != scoring.Named || b.Tier != scoring.Major || a.Version != 3 || b.Version != 2 {
		t.Fatalf("the waiting ranking, after the seal: a %v v%d, b %v v%d", a.Tier, a.Version, b.Tier, b.Version)
	}
	if pend := p.capPub.pending[0]; pend == nil {
		t.Error("the partition's candidates were not queued for the capacity topic")
	}
}
