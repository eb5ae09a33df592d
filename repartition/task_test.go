package repartition

import (
	"testing"
	"time"

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
	if task.perRecord == 0 {
		t.Fatal("the first batch left no size for the next")
	}
	// A fresh batch now takes one arena, one header array and one array
	// per partition; growing them as records come would take dozens.
	fresh := make([]*batch, 6)
	for i := range fresh {
		fresh[i] = &batch{parts: make([][]timed, parts)}
	}
	n := 0
	allocs := testing.AllocsPerRun(len(fresh)-1, func() {
		task.fill(fresh[n], msgs, int64(len(msgs)))
		n++
	})
	if got := content(fresh[0]); got != first {
		t.Error("a batch filled into reserved memory differs from the first")
	}
	if max := float64(2 + parts); allocs > max {
		t.Errorf("filling a fresh batch took %.0f allocations, want at most %.0f", allocs, max)
	}
}
