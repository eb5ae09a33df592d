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
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
	r, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Config: cfg, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	const parts = 4
	r.lay = &layout{partitions: parts}
	r.hash = kafkaio.NewPartitioner(cfg.Partitioner, parts)

	g, err := gen.New(gen.Options{Accounts: 300, Events: 3000, Seed: 3,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 2})
	if err != nil {
		t.Fatal(err)
	}
	const topic = gen.DefaultDebeziumPrefix + "orders"
	var d gen.Debezium
	var msgs []kafka.Message
	for len(msgs) < 400 {
		rec, ok := g.Next()
		if !ok {
			t.Fatal("the history ran out")
		}
		if tp, key, value := d.Record(rec); tp == topic {
			msgs = append(msgs, kafka.Message{Offset: int64(len(msgs)), Key: key, Value: value, Time: time.Unix(0, rec.Time)})
		}
	}
	task := newTask(r, topic, 0, -1, map[string][]*lane{})
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
