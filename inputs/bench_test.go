package inputs_test

import (
	"testing"

	"github.com/pyramid-crm/pyramid/inputs"
)

// BenchmarkMap maps the CRM fixtures' records, with the converter's schemas
// (the largest records: the schema is most of each) and without.
func BenchmarkMap(b *testing.B) {
	for _, name := range []string{"debezium-schemas-precise.jsonl", "debezium-plain-string.jsonl"} {
		b.Run(name, func(b *testing.B) {
			recs := readDump(b, name, 1)
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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if out, err = m.Map(recs[i%len(recs)], out[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
