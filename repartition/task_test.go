package repartition

import (
	"testing"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// Once a task has filled one batch, it sizes the next from it: a batch's
// keys, headers and values go into memory reserved once per fetch, not
// grown (and copied) record by record, and what was filled is the same.
func TestFillReservesFromTheLastBatch(t *testing.T) {
	const parts = 4
	task, msgs := orderTask(t, parts, 3, 400)
	content := func(b *batch) string {
		var s []byte
		for q, recs := range b.parts {
			for _, rec := range recs {
				s = append(s, byte('0'+q))
				s = append(s, rec.Key...)
				s = append(s, rec.Value...)
				s = append(s, rec.Headers[0].Value...)
			}
		}
		return string(s)
	}
	b := &batch{parts: make([][]timed, parts)}
	task.fill(b, msgs, int64(len(msgs)))
	first := content(b)
	if task.arenaPerKiB == 0 {
		t.Fatal("the first batch left no rates for the next")
	}
	// A fresh batch gets its memory once, before the first record: filling
	// it moves none of its arrays (growing would).
	fresh := &batch{parts: make([][]timed, parts)}
	task.reserve(fresh, msgs)
	arena, headers := unsafe.SliceData(fresh.arena), unsafe.SliceData(fresh.headers)
	partArrays := make([]*timed, parts)
	for q := range parts {
		partArrays[q] = unsafe.SliceData(fresh.parts[q])
	}
	if arena == nil || headers == nil {
		t.Fatal("nothing was reserved")
	}
	task.fill(fresh, msgs, int64(len(msgs)))
	if unsafe.SliceData(fresh.arena) != arena || unsafe.SliceData(fresh.headers) != headers {
		t.Error("the arena or the headers grew while the batch was filled")
	}
	for q := range parts {
		if unsafe.SliceData(fresh.parts[q]) != partArrays[q] {
			t.Errorf("partition %d's records grew while the batch was filled", q)
		}
	}
	if got := content(fresh); got != first {
		t.Error("a batch filled into reserved memory differs from the first")
	}

	// A response of tombstones after it reserves little: the rates go by
	// bytes, and the keys are all there is.
	tombs := make([]kafka.Message, 5000)
	for i := range tombs {
		tombs[i] = kafka.Message{Offset: int64(i), Key: []byte(`{"id":"o-1"}`)}
	}
	small := &batch{parts: make([][]timed, parts)}
	task.reserve(small, tombs)
	if max := 2 * 5000 * (12 + 64); cap(small.arena) > max { // twice their bytes, with framing
		t.Errorf("reserved %d bytes for 5,000 tombstones, want at most %d", cap(small.arena), max)
	}
}

// Each of a response's events counts the response's events after it in
// its repartition partition as still to come, on top of the source
// backlog: a lane may write the first ones while it holds the rest, and
// the consumer must not take the source partition as read before the
// last one, which alone carries the source backlog itself (0 for the
// partition's last response).
func TestFillCountsTheEventsStillToCome(t *testing.T) {
	const parts = 3
	task, msgs := orderTask(t, parts, 5, 60)
	for _, backlog := range []int64{0, 100} {
		b := &batch{parts: make([][]timed, parts)}
		task.fill(b, msgs, int64(len(msgs))+backlog)
		events := 0
		for q, recs := range b.parts {
			events += len(recs)
			prev := kafkaio.Source{Offset: -1}
			for i, rec := range recs {
				src, ok := kafkaio.ParseSource(rec.Headers)
				if !ok {
					t.Fatalf("partition %d record %d: no source header", q, i)
				}
				if want := backlog + int64(len(recs)-1-i); src.Backlog != want {
					t.Errorf("backlog %d, partition %d, record %d of %d: header says %d, want %d", backlog, q, i, len(recs), src.Backlog, want)
				}
				if src.Offset < prev.Offset || src.Offset == prev.Offset && src.Index <= prev.Index {
					t.Errorf("partition %d record %d: %d/%d after %d/%d", q, i, src.Offset, src.Index, prev.Offset, prev.Index)
				}
				prev = src
			}
		}
		if events < 2*parts {
			t.Fatalf("%d events over %d partitions: too few to tell", events, parts)
		}
	}
}

// orderTask is a task of a repartitioner with parts repartition
// partitions for the generated history's orders (seed), and n of its
// records as Debezium wrote them.
func orderTask(t *testing.T, parts, seed, n int) (*task, []kafka.Message) {
	t.Helper()
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
	r, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Config: cfg, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	r.lay = &layout{partitions: parts}
	r.hash = kafkaio.NewPartitioner(cfg.Partitioner, parts)
	g, err := gen.New(gen.Options{Accounts: 300, Events: 3000, Seed: uint64(seed),
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 2})
	if err != nil {
		t.Fatal(err)
	}
	const topic = gen.DefaultDebeziumPrefix + "orders"
	var d gen.Debezium
	var msgs []kafka.Message
	for len(msgs) < n {
		rec, ok := g.Next()
		if !ok {
			t.Fatal("the history ran out")
		}
		if tp, key, value := d.Record(rec); tp == topic {
			msgs = append(msgs, kafka.Message{Offset: int64(len(msgs)), Key: key, Value: value, Time: time.Unix(0, rec.Time)})
		}
	}
	return newTask(r, topic, 0, -1, map[string][]*lane{}), msgs
}
