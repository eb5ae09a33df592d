package inputs_test

import (
	"encoding/json"
	"testing"

	"github.com/pyramid-crm/pyramid/inputs"
)

// BenchmarkMap maps the CRM fixtures' records, with the converter's schemas
// (the largest records: the schema is most of each) and without.
func BenchmarkMap(b *testing.B) {
	for _, name := range []string{"debezium-schemas-precise.jsonl", "debezium-plain-string.jsonl"} {
		b.Run(name, func(b *testing.B) {
			benchMap(b, readDump(b, name, 1))
		})
	}
}

// BenchmarkMapShapes maps one record of each shape a CRM's change stream
// is made of, again and again: a create, an update carrying the row before
// and after (an order's update maps to a reversal and the new amount) and
// a delete, with the converter's schemas and precise decimals, and without
// schemas, decimals as strings or doubles.
func BenchmarkMapShapes(b *testing.B) {
	for _, s := range []struct{ name, fixture, table, op string }{
		{"create/schemas-precise", "debezium-schemas-precise.jsonl", "opportunities", "c"},
		{"create/plain-string", "debezium-plain-string.jsonl", "opportunities", "c"},
		{"create/plain-double", "debezium-plain-double.jsonl", "opportunities", "c"},
		{"update/schemas-precise", "debezium-schemas-precise.jsonl", "orders", "u"},
		{"update/plain-string", "debezium-plain-string.jsonl", "orders", "u"},
		{"delete/schemas-precise", "debezium-schemas-precise.jsonl", "opportunities", "d"},
		{"delete/plain-string", "debezium-plain-string.jsonl", "opportunities", "d"},
	} {
		b.Run(s.name, func(b *testing.B) {
			benchMap(b, []inputs.Record{pick(b, s.fixture, "crmdb.public."+s.table, s.op)})
		})
	}
}

func benchMap(b *testing.B, recs []inputs.Record) {
	m, err := inputs.New(loadCRMConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, r := range recs {
		bytes += int64(len(r.Value))
	}
	b.SetBytes(bytes / int64(len(recs)))
	b.ReportAllocs()
	var out []inputs.Event
	events := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err = m.Map(recs[i%len(recs)], out[:0]); err != nil {
			b.Fatal(err)
		}
		events += len(out)
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
}

// pick returns the first record of a fixture that is a change of op to
// table.
func pick(b *testing.B, fixture, topic, op string) inputs.Record {
	for _, r := range readDump(b, fixture, 1) {
		var v struct {
			Op      string
			Payload struct{ Op string }
		}
		if r.Topic != topic || json.Unmarshal(r.Value, &v) != nil {
			continue
		}
		if v.Op == op || v.Payload.Op == op {
			return r
		}
	}
	b.Fatalf("%s has no op %q change of %s", fixture, op, topic)
	return inputs.Record{}
}
