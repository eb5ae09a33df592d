package scoring_test

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/scoring"
)

// BenchmarkApply measures the scoring core alone: decoded events of a
// generated stream applied to a fresh engine, at each account's own clock
// as replay does. One op is one event.
func BenchmarkApply(b *testing.B) {
	g, err := gen.New(gen.Options{Accounts: 10_000, Events: 200_000, Seed: 42})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := g.WriteJSONL(&buf); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	dec := event.NewDecoder(cfg)
	var evs []event.Event
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ev, err := dec.Decode(bytes.Clone(sc.Bytes()))
		if err == nil {
			evs = append(evs, ev)
		}
	}
	p := scoring.NewParams(cfg)
	var out scoring.Output
	b.ResetTimer()
	for i := 0; i < b.N; {
		eng := scoring.NewEngine(p)
		for j := range evs {
			if i == b.N {
				break
			}
			out.Reset()
			eng.Apply(&evs[j], scoring.EventTime, &out)
			i++
		}
	}
}
