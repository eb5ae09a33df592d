package gen

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/inputs"
	"github.com/pyramid-crm/pyramid/replay"
)

// Debezium's rendering of a generated history, mapped back through
// DebeziumInputs, replays to the same snapshots as the history itself:
// every good event comes back with its fields (and a new id), a duplicate
// comes back with the id of its original, and a bad event is refused.
func TestDebeziumRoundTrip(t *testing.T) {
	opts := Options{Accounts: 200, Events: 20_000, Seed: 5, BadRatio: 0.01, DuplicateRatio: 0.01,
		Currencies: map[string]float64{"EUR": 1.1}}
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.1}
	cfg.Inputs = DebeziumInputs(DefaultDebeziumPrefix)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := inputs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := mustNew(t, opts)
	var native, mapped bytes.Buffer
	var d Debezium
	var evs []inputs.Event
	topics := map[string]bool{}
	var bad, dups, refused, offset int
	prevID := ""
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		native.Write(rec.Line)
		native.WriteByte('\n')
		topic, key, value := d.Record(rec)
		topics[topic] = true
		offset++
		evs, err = m.Map(inputs.Record{Topic: topic, Offset: int64(offset), Key: key, Value: value}, evs[:0])
		if rec.Bad {
			bad++
			if err == nil {
				t.Fatalf("bad event %s mapped to %d events", rec.Line, len(evs))
			}
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("%s\n-> %s: %v", rec.Line, value, err)
		}
		if len(evs) != 1 {
			t.Fatalf("%s mapped to %d events", rec.Line, len(evs))
		}
		var id struct {
			ID string `json:"event_id"`
		}
		json.Unmarshal(evs[0].JSON, &id)
		if rec.Duplicate {
			dups++
			if id.ID != prevID {
				t.Fatalf("duplicate of %s got id %s, its original %s", rec.Line, id.ID, prevID)
			}
		}
		prevID = id.ID
		mapped.Write(evs[0].JSON)
		mapped.WriteByte('\n')
	}
	if bad == 0 || dups == 0 || len(topics) != 4 {
		t.Fatalf("the history should have bad events (%d), duplicates (%d) and all four tables (%v)", bad, dups, topics)
	}
	asOf := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	replayed := func(in []byte) (string, *replay.Summary) {
		var out bytes.Buffer
		sum, _, err := replay.Run(replay.Options{Config: cfg, Input: bytes.NewReader(in), Output: &out, AsOf: asOf})
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), sum
	}
	want, ws := replayed(native.Bytes())
	got, gs := replayed(mapped.Bytes())
	if got != want {
		t.Fatal("the mapped Debezium rendering replays to other snapshots than the history")
	}
	if gs.Applied != ws.Applied || gs.Duplicates != ws.Duplicates || ws.RejectedTotal() != int64(refused) {
		t.Fatalf("native: %+v; mapped: %+v; %d refused by the mapping", ws, gs, refused)
	}
	t.Logf("%d events, %d bad (refused by the mapping), %d duplicates; %d accounts equal", opts.Events, bad, dups, ws.Accounts)
}
