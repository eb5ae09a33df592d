package inputs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

// mapBothWays maps r validating the events from their values (as Map
// does) and again decoding their text, and fails unless both give the
// same events and the same rejection.
func mapBothWays(t *testing.T, fast, slow *Mapper, r Record) {
	t.Helper()
	describe := func(evs []Event, err error) string {
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "%s %d %s\n", e.AccountID, e.OccurredAt, e.JSON)
		}
		if err != nil {
			fmt.Fprintf(&b, "error: %v", err)
		}
		return b.String()
	}
	got := describe(fast.Map(r, nil))
	forceDecode = true
	want := describe(slow.Map(r, nil))
	forceDecode = false
	if got != want {
		t.Fatalf("%s %s:\nfrom values: %s\ndecoded:     %s", r.Topic, r.Value, got, want)
	}
}

// TestEmitAgreesWithDecode: the mapper's events and rejections are the
// same whether it validates an event from the values it writes or decodes
// the text it wrote, on the CRM fixtures and on plain JSON rows of every
// event type whose columns hold odd values: text that is not UTF-8,
// decimal text outside JSON's number grammar, control characters,
// escapes, out-of-range and missing values.
func TestEmitAgreesWithDecode(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "crm", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fast, _ := New(cfg)
	slow, _ := New(cfg)
	files, _ := filepath.Glob(filepath.Join("testdata", "crm", "debezium-*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	records := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for off := int64(0); sc.Scan(); off++ {
			var d struct {
				Topic string          `json:"topic"`
				Ts    int64           `json:"ts"`
				Key   json.RawMessage `json:"key"`
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			mapBothWays(t, fast, slow, Record{Topic: d.Topic, Offset: off, Key: d.Key, Value: d.Value, TimeMs: d.Ts})
			records++
		}
		f.Close()
	}

	plain, err := config.Parse([]byte(`stages: {discovery: 0.15, proposal: 0.5, closed_won: 1, closed_lost: 0}
fx_rates: {EUR: 1.1}
inputs:
  - {topic: p.order, format: json, type: order, fields: {account_id: a, order_id: id, amount: x, currency: c, opportunity_id: o, occurred_at: t}}
  - {topic: p.opp, format: json, type: opportunity, fields: {account_id: a, opportunity_id: id, stage: s, amount: x, probability: p, occurred_at: t}}
  - {topic: p.acc, format: json, type: account, fields: {account_id: a, name: n, owner_id: o, wallet: x, occurred_at: t}}
  - {topic: p.act, format: json, type: activity, fields: {account_id: a, kind: n, owner_id: o, occurred_at: t}}
`))
	if err != nil {
		t.Fatal(err)
	}
	fast, _ = New(plain)
	slow, _ = New(plain)
	texts := []string{`"acc-1"`, `"o-1"`, `""`, `"proposal"`, `"closed_won"`, `"Proposal"`, `"EUR"`, `"USD"`, `"eur"`,
		`"bad \xff byte"`, `"\xc3\x28"`, `"Zürich ✓"`, `"tab\there"`, `"ctl\u0001"`, `"quote\"s"`, `"` + strings.Repeat("x", 129) + `"`,
		`"12.50"`, `"007"`, `"-0"`, `"1e3"`, `"1.2.3"`, `"0.4"`, `"1.5"`, `"-12"`, `"99999999999999999999"`,
		`12`, `12.5`, `-3`, `0.4`, `1e2`, `7`, `null`, `true`, `{"v":1}`, `[1]`,
		`"2026-03-01T12:00:00Z"`, `"2026-02-30T12:00:00Z"`, `"2026-03-01"`, `1772366400000`, `"soon"`}
	r := rand.New(rand.NewPCG(3, 5))
	topics := []string{"p.order", "p.opp", "p.acc", "p.act"}
	cols := []string{"a", "id", "x", "c", "o", "s", "p", "n", "t"}
	for i := range 20000 {
		var b strings.Builder
		b.WriteByte('{')
		for k, c := range cols {
			if k > 0 {
				b.WriteByte(',')
			}
			v := texts[r.IntN(len(texts))]
			// Mostly sensible rows, so that validation goes deep.
			switch {
			case c == "a" && r.IntN(4) > 0:
				v = `"acc-1"`
			case c == "t" && r.IntN(4) > 0:
				v = `"2026-03-01T12:00:00Z"`
			case c == "id" && r.IntN(4) > 0:
				v = `"id-1"`
			}
			b.WriteString(`"` + c + `":` + v)
		}
		b.WriteByte('}')
		topic := topics[r.IntN(len(topics))]
		mapBothWays(t, fast, slow, Record{Topic: topic, Offset: int64(i), Key: []byte("k"), Value: []byte(b.String()), TimeMs: 1772366400000})
		records++
	}
	t.Logf("%d records mapped both ways", records)
}
