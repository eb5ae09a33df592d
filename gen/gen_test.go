package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/replay"
)

func mustNew(tb testing.TB, opts Options) *Generator {
	tb.Helper()
	g, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func generate(tb testing.TB, opts Options) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := mustNew(tb, opts).WriteJSONL(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	opts := Options{Accounts: 300, Events: 30_000, Seed: 42, BadRatio: 0.02}
	a := generate(t, opts)
	b := generate(t, opts)
	if !bytes.Equal(a, b) {
		t.Fatal("the same options gave different bytes")
	}
	opts.Seed = 43
	c := generate(t, opts)
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same bytes")
	}
	// Next and WriteJSONL give the same stream.
	g := mustNew(t, Options{Accounts: 300, Events: 30_000, Seed: 42, BadRatio: 0.02})
	h := sha256.New()
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		h.Write(rec.Line)
		h.Write([]byte{'\n'})
	}
	if sum := sha256.Sum256(a); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("Next and WriteJSONL differ")
	}
}

// checked is what TestDecode learns about a stream, for the realism checks.
type checked struct {
	events  []event.Event
	records int
	bad     int
	dups    int
}

func decodeAll(t *testing.T, opts Options, cfg *config.Config) checked {
	t.Helper()
	dec := event.NewDecoder(cfg)
	g := mustNew(t, opts)
	var c checked
	var lastGood, lastSlot int64
	var prev []byte
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		c.records++
		if rec.Time < lastSlot {
			t.Fatalf("record %d: time %d before %d", c.records, rec.Time, lastSlot)
		}
		lastSlot = rec.Time
		if rec.Duplicate {
			c.dups++
			if !bytes.Equal(rec.Line, prev) {
				t.Fatalf("record %d: duplicate differs from the event before:\n%s\n%s", c.records, rec.Line, prev)
			}
		}
		prev = append(prev[:0], rec.Line...)
		// Decoded strings may alias the line, which Next reuses.
		ev, err := dec.Decode(bytes.Clone(rec.Line))
		if rec.Bad {
			c.bad++
			if err == nil {
				t.Fatalf("record %d: bad event accepted: %s", c.records, rec.Line)
			}
			continue
		}
		if err != nil {
			t.Fatalf("record %d: %v: %s", c.records, err, rec.Line)
		}
		if ev.Type.String() != rec.Type || ev.AccountID != rec.AccountID || ev.OccurredAt != rec.Time*1e9 {
			t.Fatalf("record %d: Record{%s %s %d} does not match the line %s", c.records, rec.Type, rec.AccountID, rec.Time, rec.Line)
		}
		if ev.OccurredAt < lastGood {
			t.Fatalf("record %d: occurred_at goes back in time: %s", c.records, rec.Line)
		}
		lastGood = ev.OccurredAt
		for _, m := range amountRE.FindAllSubmatch(rec.Line, -1) {
			if len(m[1]) > 3 {
				t.Fatalf("record %d: amount with more than 2 decimals: %s", c.records, rec.Line)
			}
		}
		c.events = append(c.events, ev)
	}
	if st := g.Stats(); st.Events != c.records || st.Bad != c.bad || st.Duplicates != c.dups {
		t.Errorf("Stats %+v, counted %d events, %d bad, %d duplicates", st, c.records, c.bad, c.dups)
	}
	return c
}

var amountRE = regexp.MustCompile(`"(?:amount|wallet|probability)":-?[0-9]+(\.[0-9]*)?`)

func TestDecode(t *testing.T) {
	opts := Options{Accounts: 500, Events: 60_000, Seed: 7, BadRatio: 0.05}
	c := decodeAll(t, opts, config.Default())
	if c.records != opts.Events {
		t.Fatalf("%d events, want exactly %d", c.records, opts.Events)
	}
	if r := float64(c.bad) / float64(c.records); r < 0.045 || r > 0.056 {
		t.Errorf("bad ratio %.4f, want about 0.05", r)
	}
	if c.dups == 0 || c.dups > c.records/100 {
		t.Errorf("%d duplicates in %d events, want a few (about 0.2%%)", c.dups, c.records)
	}

	// Every account exists, and its first good event is its account event.
	first := map[string]event.Type{}
	for _, ev := range c.events {
		if _, ok := first[ev.AccountID]; !ok {
			first[ev.AccountID] = ev.Type
		}
	}
	if len(first) != opts.Accounts {
		t.Errorf("%d accounts, want %d", len(first), opts.Accounts)
	}
	for id, typ := range first {
		if typ != event.Account {
			t.Errorf("account %s starts with a %s event", id, typ)
		}
		if !regexp.MustCompile(`^acc-\d{6}$`).MatchString(id) {
			t.Errorf("account id %q", id)
		}
	}

	// The span is 13 months from the start.
	span := time.Unix(0, c.events[len(c.events)-1].OccurredAt).Sub(time.Unix(0, c.events[0].OccurredAt))
	if span < 360*24*time.Hour || span > 400*24*time.Hour {
		t.Errorf("stream spans %v, want about 13 months", span)
	}
}

func TestEveryBadKindRejected(t *testing.T) {
	g := mustNew(t, Options{Accounts: 10, Events: 100})
	for range 5 {
		g.Next()
	}
	dec := event.NewDecoder(config.Default())
	reasons := map[string]int{}
	for i := range 3000 {
		rec := g.bad(g.lastT)
		_, err := dec.Decode(rec.Line)
		if err == nil {
			t.Fatalf("bad event %d accepted: %s", i, rec.Line)
		}
		reasons[event.ReasonOf(err)]++
		if rec.Type != "" {
			if !strings.Contains(string(rec.Line), `"type":"`+rec.Type+`"`) {
				t.Fatalf("Type %q not in %s", rec.Type, rec.Line)
			}
		}
	}
	for _, r := range []string{event.ReasonNotJSON, event.ReasonMissingField, event.ReasonInvalidField,
		event.ReasonUnknownType, event.ReasonUnknownStage, event.ReasonUnknownCurrency} {
		if reasons[r] == 0 {
			t.Errorf("no bad event rejected for %s (got %v)", r, reasons)
		}
	}
}

func TestForeignCurrencies(t *testing.T) {
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.08, "GBP": 1.27}
	opts := Options{Accounts: 200, Events: 20_000, Seed: 3, BadRatio: 0.03, Currencies: cfg.FXRates, ForeignShare: 0.3}
	c := decodeAll(t, opts, cfg)
	if c.records != opts.Events {
		t.Fatalf("%d events", c.records)
	}
	// And the same stream is bad input without the rates.
	g := mustNew(t, opts)
	dec := event.NewDecoder(config.Default())
	foreign := 0
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		if !rec.Bad && bytes.Contains(rec.Line, []byte(`"currency":"EUR"`)) {
			foreign++
			if _, err := dec.Decode(rec.Line); event.ReasonOf(err) != event.ReasonUnknownCurrency {
				t.Fatalf("EUR without a rate: %v", err)
			}
		}
	}
	if foreign == 0 {
		t.Fatal("no EUR events")
	}
	// Without Currencies nothing carries a currency.
	for _, ev := range generateLines(t, Options{Accounts: 100, Events: 5000}) {
		if strings.Contains(ev, `"currency"`) {
			t.Fatalf("currency without Currencies: %s", ev)
		}
	}
}

func generateLines(t *testing.T, opts Options) []string {
	return strings.Split(strings.TrimSuffix(string(generate(t, opts)), "\n"), "\n")
}

func TestRealism(t *testing.T) {
	opts := Options{Accounts: 500, Events: 60_000, Seed: 11}
	lines := generateLines(t, opts)
	type opp struct{ wonAt, firstOrderAt int }
	opps := map[string]*opp{}
	count := map[string]int{}
	kinds := map[string]int{}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		typ := m["type"].(string)
		count[typ]++
		switch typ {
		case "opportunity":
			count["stage "+m["stage"].(string)]++
			if _, ok := m["probability"]; ok {
				count["probability"]++
			}
			if m["stage"] == "closed_won" {
				id := m["opportunity_id"].(string)
				if opps[id] == nil {
					opps[id] = &opp{}
				}
				opps[id].wonAt = i
			}
		case "order":
			if m["amount"].(float64) < 0 {
				count["return"]++
			}
			if id, ok := m["opportunity_id"].(string); ok {
				count["invoice"]++
				if opps[id] == nil {
					opps[id] = &opp{}
				}
				if opps[id].firstOrderAt == 0 {
					opps[id].firstOrderAt = i
				}
			}
		case "activity":
			kinds[m["kind"].(string)]++
			if _, ok := m["owner_id"]; ok {
				count["activity owner"]++
			}
		case "account":
			if v, ok := m["tier_override"]; ok {
				if v == nil {
					count["override cleared"]++
				} else {
					count["override set"]++
				}
			}
			if _, ok := m["snooze_alerts_until"]; ok {
				count["snooze"]++
			}
			if _, ok := m["wallet"]; ok {
				count["wallet"]++
			}
			if _, ok := m["name"]; ok {
				count["named"]++
			}
		}
	}
	for id, o := range opps {
		if o.firstOrderAt > 0 && o.wonAt > o.firstOrderAt {
			count["invoiced before won"]++
		}
		if o.wonAt > 0 && o.firstOrderAt == 0 {
			count["won not invoiced"]++
		}
		_ = id
	}
	t.Logf("counts %v, activity kinds %v", count, kinds)
	for _, k := range []string{"stage prospecting", "stage qualification", "stage proposal", "stage negotiation",
		"stage closed_won", "stage closed_lost", "probability", "return", "invoice", "invoiced before won",
		"won not invoiced", "override set", "override cleared", "snooze", "wallet"} {
		if count[k] == 0 {
			t.Errorf("no %s", k)
		}
	}
	for _, k := range []string{"call", "meeting", "email", "visit"} {
		if kinds[k] == 0 {
			t.Errorf("no %s activity", k)
		}
	}
	n := float64(len(lines))
	for typ, want := range map[string][2]float64{
		"activity": {0.35, 0.5}, "opportunity": {0.2, 0.32}, "order": {0.2, 0.35}, "account": {0.01, 0.06},
	} {
		if r := float64(count[typ]) / n; r < want[0] || r > want[1] {
			t.Errorf("%s share %.3f, want %v", typ, r, want)
		}
	}
	if count["stage closed_won"] < count["invoice"]/4 || count["return"] > count["order"]/10 {
		t.Errorf("odd order mix: %v", count)
	}
}

// TestPyramid scores a generated stream and checks the tier mix is a
// pyramid under the default configuration, with some neglect alerts.
func TestPyramid(t *testing.T) {
	if testing.Short() {
		t.Skip("scores 150,000 events")
	}
	data := generate(t, Options{Accounts: 2000, Events: 150_000, Seed: 5})
	var snaps, alerts bytes.Buffer
	sum, _, err := replay.Run(replay.Options{Config: config.Default(), Input: bytes.NewReader(data), Output: &snaps, Alerts: &alerts})
	if err != nil {
		t.Fatal(err)
	}
	if sum.RejectedTotal() != 0 || sum.Accounts != 2000 {
		t.Fatalf("replay: %s", sum)
	}
	tiers := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(snaps.String()), "\n") {
		var s struct{ Tier string }
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		tiers[s.Tier]++
	}
	t.Logf("tiers %v, %d alert lines", tiers, strings.Count(alerts.String(), "\n"))
	if !(tiers["major"] > 0 && tiers["major"] < tiers["named"] && tiers["named"] < tiers["non_named"] && tiers["named"] < tiers["mass_market"]) {
		t.Errorf("tier mix is no pyramid: %v", tiers)
	}
	if m := float64(tiers["major"]) / 2000; m < 0.01 || m > 0.08 {
		t.Errorf("major share %.3f, want a few percent", m)
	}
	if alerts.Len() == 0 {
		t.Error("no neglect alerts")
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Accounts: 10, Events: 5},
		{Accounts: -1},
		{BadRatio: 1},
		{BadRatio: -0.1},
		{Months: -1},
		{Currencies: map[string]float64{"EUR": 0}},
		{Start: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	// Events == Accounts: only account events.
	lines := generateLines(t, Options{Accounts: 50, Events: 50, BadRatio: 0.5})
	for _, l := range lines {
		if !strings.Contains(l, `"type":"account"`) {
			t.Fatalf("with events == accounts: %s", l)
		}
	}
	if len(lines) != 50 {
		t.Fatalf("%d lines", len(lines))
	}
	g := mustNew(t, Options{})
	if o := g.Options(); o.Accounts != 1000 || o.Events != 100_000 || !o.Start.Equal(DefaultStart) {
		t.Errorf("defaults %+v", o)
	}
}

func BenchmarkGenerate(b *testing.B) {
	g := mustNew(b, Options{Accounts: max(b.N/100, 1), Events: max(b.N, 1), Seed: 1, BadRatio: 0.01})
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		n += len(rec.Line)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}
