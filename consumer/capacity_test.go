package consumer

import (
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

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
