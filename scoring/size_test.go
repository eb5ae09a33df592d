package scoring_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/scoring"
)

// SizeBound never falls below EncodedSize, after any event or clock move:
// on a generated stream, and on accounts filled with the longest ids,
// names and stages the decoder accepts.
func TestSizeBoundHolds(t *testing.T) {
	cfg := config.Default()
	maxStage := 0
	for s := range cfg.Stages {
		maxStage = max(maxStage, len(s))
	}
	dec := event.NewDecoder(cfg)
	eng := scoring.NewEngine(scoring.NewParams(cfg))
	var out scoring.Output
	checked, worst := 0, 1.0
	check := func(a *scoring.Account, what string) {
		t.Helper()
		exact, bound := scoring.EncodedSize(a), scoring.SizeBound(a, maxStage)
		if bound < exact {
			t.Fatalf("%s: account %s: SizeBound %d < EncodedSize %d", what, a.ID, bound, exact)
		}
		checked++
		worst = min(worst, float64(exact)/float64(bound))
	}
	apply := func(line string) {
		t.Helper()
		ev, err := dec.Decode([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out.Reset()
		if a, res := eng.Apply(&ev, scoring.EventTime, &out); res == scoring.Applied {
			check(a, "after "+ev.ID)
		}
	}

	g, err := gen.New(gen.Options{Accounts: 200, Events: 20000, Seed: 9, BadRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := g.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		apply(sc.Text())
	}

	long := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	stages := make([]string, 0, len(cfg.Stages))
	for s := range cfg.Stages {
		stages = append(stages, s)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 600 {
		at := start.Add(time.Duration(i) * 13 * time.Hour).Format(time.RFC3339)
		acc := "big-" + long('a', 124)
		oppID := fmt.Sprintf("%05d", i) + long('o', event.MaxIDLen-5)
		head := fmt.Sprintf(`{"event_id":"e%d","account_id":%q,"occurred_at":%q,`, i, acc, at)
		switch i % 4 {
		case 0:
			apply(head + fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"stage":%q,"amount":12345678.91}`, oppID, stages[i%len(stages)]))
		case 1:
			apply(head + fmt.Sprintf(`"type":"order","order_id":"o%d","amount":99999.99,"opportunity_id":%q}`, i, oppID))
		case 2:
			apply(head + fmt.Sprintf(`"type":"activity","kind":%q,"owner_id":%q}`, long('k', event.MaxNameLen), long('r', event.MaxIDLen)))
		case 3:
			apply(head + fmt.Sprintf(`"type":"account","name":%q,"owner_id":%q,"wallet":1e9,"snooze_alerts_until":%q}`, long('n', event.MaxNameLen), long('w', event.MaxIDLen), at))
		}
	}
	// The clock moves on: won opportunities leave the window, alerts open.
	for _, d := range []time.Duration{0, 400 * 24 * time.Hour, 900 * 24 * time.Hour} {
		asOf := start.Add(600*13*time.Hour + d).UnixNano()
		for _, id := range eng.IDs() {
			a := eng.Account(id)
			out.Reset()
			eng.Evaluate(a, asOf, &out)
			check(a, "after evaluation")
		}
	}
	t.Logf("%d checks; the exact size is at least %.0f%% of the bound", checked, worst*100)
}
