package scoring_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// world is a test harness: an engine plus a decoder, fed JSON lines.
type world struct {
	t   testing.TB
	eng *scoring.Engine
	dec *event.Decoder
	out scoring.Output
	// everything emitted, in order
	changes []scoring.TierChange
	alerts  []scoring.Alert
	n       int
}

func newWorld(t testing.TB, cfg *config.Config) *world {
	t.Helper()
	if cfg == nil {
		cfg = config.Default()
	}
	return &world{t: t, eng: scoring.NewEngine(scoring.NewParams(cfg)), dec: event.NewDecoder(cfg)}
}

func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

// apply decodes fields (a JSON object body without braces) into an event of
// account acc at time at, and applies it with the clock at asOf ("" = at).
func (w *world) apply(acc, at, asOf, body string) scoring.Result {
	w.t.Helper()
	w.n++
	line := fmt.Sprintf(`{"event_id":"e%d","account_id":%q,"occurred_at":%q,%s}`, w.n, acc, at, body)
	ev, err := w.dec.Decode([]byte(line))
	if err != nil {
		w.t.Fatalf("decode %s: %v", line, err)
	}
	if asOf == "" {
		asOf = at
	}
	w.out.Reset()
	_, res := w.eng.Apply(&ev, ts(asOf), &w.out)
	w.changes = append(w.changes, w.out.Changes...)
	w.alerts = append(w.alerts, w.out.Alerts...)
	return res
}

func (w *world) order(acc, at string, amount string, opp string) {
	w.t.Helper()
	body := fmt.Sprintf(`"type":"order","order_id":"o%d","amount":%s`, w.n, amount)
	if opp != "" {
		body += fmt.Sprintf(`,"opportunity_id":%q`, opp)
	}
	w.apply(acc, at, "", body)
}

func (w *world) opp(acc, at, id, stage, amount string) {
	w.t.Helper()
	w.apply(acc, at, "", fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"stage":%q,"amount":%s`, id, stage, amount))
}

func (w *world) account(acc, at, body string) {
	w.t.Helper()
	w.apply(acc, at, "", `"type":"account",`+body)
}

func (w *world) touch(acc, at string) {
	w.t.Helper()
	w.apply(acc, at, "", `"type":"activity","kind":"call"`)
}

func (w *world) eval(acc, asOf string) scoring.Snapshot {
	w.t.Helper()
	a := w.eng.Account(acc)
	if a == nil {
		w.t.Fatalf("no account %s", acc)
	}
	w.out.Reset()
	w.eng.Evaluate(a, ts(asOf), &w.out)
	w.changes = append(w.changes, w.out.Changes...)
	w.alerts = append(w.alerts, w.out.Alerts...)
	return w.eng.Snapshot(a, ts(asOf))
}

func cents(units float64) money.Cents { return money.Cents(units*100 + 0.5) }

func TestFigures(t *testing.T) {
	tests := []struct {
		name                                   string
		build                                  func(w *world)
		asOf                                   string
		current, potential, weighted, wallet   float64
		hasWallet                              bool
		share                                  float64
		hasShare                               bool
		tier, quadrant, goalStatus, goalMetric string
		attainment                             float64
	}{
		{
			// docs/model.md's worked example: 200k sold to a Non-named customer buying ~200k a year is a success.
			name: "non_named 200k of 200k wallet meets its goal",
			build: func(w *world) {
				w.account("a", "2026-01-02T00:00:00Z", `"wallet":200000`)
				w.order("a", "2026-02-01T00:00:00Z", "200000", "")
			},
			asOf: "2026-03-01T00:00:00Z", current: 200000, potential: 0, wallet: 200000, hasWallet: true,
			share: 1, hasShare: true, tier: "non_named", quadrant: scoring.LowCurrentLowPotential,
			goalStatus: "met", goalMetric: "absolute_sales", attainment: 4,
		},
		{
			// docs/model.md's worked example: 600k sold to a Major customer buying 30M is a failure (2% share).
			name: "major 600k of 30M wallet is behind at 2%",
			build: func(w *world) {
				w.account("a", "2026-01-02T00:00:00Z", `"wallet":30000000`)
				w.order("a", "2026-02-01T00:00:00Z", "600000", "")
			},
			asOf: "2026-03-01T00:00:00Z", current: 600000, potential: 29400000, wallet: 30000000, hasWallet: true,
			share: 0.02, hasShare: true, tier: "major", quadrant: scoring.HighCurrentHighPotential,
			goalStatus: "behind", goalMetric: "share_of_wallet", attainment: 0.04,
		},
		{
			name: "weighted pipeline beats wallet headroom; stage default and explicit probability",
			build: func(w *world) {
				w.opp("a", "2026-01-02T00:00:00Z", "p1", "proposal", "100000")                                                                                 // 0.5
				w.apply("a", "2026-01-03T00:00:00Z", "", `"type":"opportunity","opportunity_id":"p2","stage":"negotiation","amount":100000,"probability":0.9`) // 0.9
				w.opp("a", "2026-01-04T00:00:00Z", "p3", "closed_lost", "500000")
			},
			asOf: "2026-03-01T00:00:00Z", current: 0, potential: 140000, weighted: 140000,
			tier: "non_named", quadrant: scoring.LowCurrentLowPotential, goalStatus: "behind", goalMetric: "absolute_sales",
		},
		{
			name: "named without wallet: share goal unknown",
			build: func(w *world) {
				w.order("a", "2026-02-01T00:00:00Z", "300000", "")
			},
			asOf: "2026-03-01T00:00:00Z", current: 300000, tier: "named", quadrant: scoring.LowCurrentLowPotential,
			goalStatus: "wallet_unknown", goalMetric: "share_of_wallet",
		},
		{
			name: "returns reduce current, which never goes below zero",
			build: func(w *world) {
				w.order("a", "2026-02-01T00:00:00Z", "1000", "")
				w.order("a", "2026-02-02T00:00:00Z", "-3000.50", "")
			},
			asOf: "2026-03-01T00:00:00Z", current: 0, tier: "mass_market", quadrant: scoring.LowCurrentLowPotential,
			goalStatus: "behind", goalMetric: "absolute_sales",
		},
		{
			name: "won deal counts as backlog until invoiced",
			build: func(w *world) {
				w.opp("a", "2026-01-10T00:00:00Z", "w1", "closed_won", "400000")
				w.order("a", "2026-02-01T00:00:00Z", "150000", "w1")
			},
			asOf: "2026-03-01T00:00:00Z", current: 400000, tier: "named", quadrant: scoring.LowCurrentLowPotential,
			goalStatus: "wallet_unknown", goalMetric: "share_of_wallet",
		},
		{
			name: "over-invoiced deal adds no negative backlog",
			build: func(w *world) {
				w.opp("a", "2026-01-10T00:00:00Z", "w1", "closed_won", "100000")
				w.order("a", "2026-02-01T00:00:00Z", "120000", "w1")
			},
			asOf: "2026-03-01T00:00:00Z", current: 120000, tier: "non_named", quadrant: scoring.LowCurrentLowPotential,
			goalStatus: "met", goalMetric: "absolute_sales", attainment: 2.4,
		},
		{
			name: "quadrant bounds are inclusive",
			build: func(w *world) {
				w.order("a", "2026-02-01T00:00:00Z", "500000", "")
				w.opp("a", "2026-02-01T00:00:00Z", "p", "closed_won", "0")
				w.apply("a", "2026-02-02T00:00:00Z", "", `"type":"opportunity","opportunity_id":"q","stage":"proposal","amount":1000000,"probability":0.5`)
			},
			asOf: "2026-03-01T00:00:00Z", current: 500000, potential: 500000, weighted: 500000,
			tier: "major", quadrant: scoring.HighCurrentHighPotential, goalStatus: "wallet_unknown", goalMetric: "share_of_wallet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			tt.build(w)
			s := w.eval("a", tt.asOf)
			if s.CurrentValue != cents(tt.current) || s.PotentialValue != cents(tt.potential) || s.WeightedPipeline != cents(tt.weighted) {
				t.Errorf("current/potential/weighted = %s/%s/%s, want %.2f/%.2f/%.2f", s.CurrentValue, s.PotentialValue, s.WeightedPipeline, tt.current, tt.potential, tt.weighted)
			}
			if s.HasWallet != tt.hasWallet || (tt.hasWallet && s.Wallet != cents(tt.wallet)) {
				t.Errorf("wallet = %s (%v), want %.2f (%v)", s.Wallet, s.HasWallet, tt.wallet, tt.hasWallet)
			}
			if s.HasShare != tt.hasShare || s.ShareOfWallet != tt.share {
				t.Errorf("share = %v (%v), want %v (%v)", s.ShareOfWallet, s.HasShare, tt.share, tt.hasShare)
			}
			if s.Tier.String() != tt.tier || s.Quadrant != tt.quadrant {
				t.Errorf("tier/quadrant = %s/%s, want %s/%s", s.Tier, s.Quadrant, tt.tier, tt.quadrant)
			}
			if s.GoalStatus != tt.goalStatus || s.GoalMetric != tt.goalMetric {
				t.Errorf("goal = %s/%s, want %s/%s", s.GoalMetric, s.GoalStatus, tt.goalMetric, tt.goalStatus)
			}
			if tt.attainment != 0 && s.GoalAttainment != tt.attainment {
				t.Errorf("attainment = %v, want %v", s.GoalAttainment, tt.attainment)
			}
		})
	}
}

func TestWindowMonthEdges(t *testing.T) {
	// Default window: 12 calendar months including as_of's month.
	tests := []struct {
		orderAt, asOf string
		counts        bool
	}{
		{"2025-04-01T00:00:00Z", "2026-03-15T00:00:00Z", true},  // first instant of the oldest month
		{"2025-03-31T23:59:59Z", "2026-03-15T00:00:00Z", false}, // last instant before the window
		{"2026-03-31T23:59:59Z", "2026-03-01T00:00:00Z", true},  // later in as_of's own month
		{"2026-04-01T00:00:00Z", "2026-03-31T23:59:59Z", false}, // next month is outside
		{"2025-01-31T00:00:00Z", "2025-12-31T23:59:59Z", true},
		{"2024-12-31T23:59:59Z", "2025-12-31T23:59:59Z", false},
	}
	for _, tt := range tests {
		w := newWorld(t, nil)
		w.order("a", tt.orderAt, "100", "")
		s := w.eval("a", tt.asOf)
		if got := s.CurrentValue == cents(100); got != tt.counts {
			t.Errorf("order at %s, as_of %s: counted=%v, want %v (current %s)", tt.orderAt, tt.asOf, got, tt.counts, s.CurrentValue)
		}
	}
	// A won deal's backlog follows the same window, by the time it was won.
	w := newWorld(t, nil)
	w.opp("a", "2025-02-28T00:00:00Z", "w", "closed_won", "1000")
	if s := w.eval("a", "2026-01-01T00:00:00Z"); s.CurrentValue != cents(1000) {
		t.Errorf("backlog inside window = %s", s.CurrentValue)
	}
	if s := w.eval("a", "2026-02-01T00:00:00Z"); s.CurrentValue != 0 {
		t.Errorf("backlog outside window = %s, want 0", s.CurrentValue)
	}
}

func TestWonDealAndInvoiceInEitherOrder(t *testing.T) {
	won := func(w *world) { w.opp("a", "2026-01-10T00:00:00Z", "d", "closed_won", "250000") }
	invoices := func(w *world) {
		w.order("a", "2026-01-20T00:00:00Z", "100000", "d")
		w.order("a", "2026-02-20T00:00:00Z", "150000", "d")
	}
	a := newWorld(t, nil)
	won(a)
	invoices(a)
	b := newWorld(t, nil)
	invoices(b)
	won(b)
	sa, sb := a.eval("a", "2026-03-01T00:00:00Z"), b.eval("a", "2026-03-01T00:00:00Z")
	if sa.CurrentValue != cents(250000) || sb.CurrentValue != sa.CurrentValue {
		t.Fatalf("current = %s (won first) vs %s (invoices first), want 250000.00 both", sa.CurrentValue, sb.CurrentValue)
	}
	// Partially invoiced before the win arrives.
	c := newWorld(t, nil)
	c.order("a", "2026-01-20T00:00:00Z", "100000", "d")
	won(c)
	if s := c.eval("a", "2026-03-01T00:00:00Z"); s.CurrentValue != cents(250000) {
		t.Fatalf("partial invoice then win: current = %s", s.CurrentValue)
	}
}

func TestOutOfOrderOpportunityUpserts(t *testing.T) {
	// The newest occurred_at wins whatever the arrival order.
	w := newWorld(t, nil)
	w.opp("a", "2026-02-01T00:00:00Z", "p", "negotiation", "200000") // newest
	w.opp("a", "2026-01-01T00:00:00Z", "p", "prospecting", "100000") // older, arrives late
	s := w.eval("a", "2026-03-01T00:00:00Z")
	if s.WeightedPipeline != cents(150000) || s.OpenOpportunities != 1 {
		t.Fatalf("weighted = %s, open = %d; want 150000.00 from negotiation", s.WeightedPipeline, s.OpenOpportunities)
	}
	// Ties: the later one in the log wins.
	w.opp("a", "2026-02-01T00:00:00Z", "p", "closed_lost", "200000")
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.WeightedPipeline != 0 || s.OpenOpportunities != 0 {
		t.Fatalf("tie should go to the later event: weighted = %s", s.WeightedPipeline)
	}
}

func TestOpportunityDeletion(t *testing.T) {
	del := func(w *world, at, id string) {
		w.t.Helper()
		w.apply("a", at, "", fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"deleted":true`, id))
	}
	w := newWorld(t, nil)
	w.touch("a", "2026-01-01T00:00:00Z")
	w.opp("a", "2026-01-05T00:00:00Z", "p", "negotiation", "200000")
	w.opp("a", "2026-01-05T00:00:00Z", "q", "proposal", "100000")
	del(w, "2026-02-01T00:00:00Z", "p")
	s := w.eval("a", "2026-03-01T00:00:00Z")
	if s.WeightedPipeline != cents(50000) || s.OpenOpportunities != 1 {
		t.Fatalf("after deleting p: weighted = %s, open = %d; want 50000.00 from q alone", s.WeightedPipeline, s.OpenOpportunities)
	}
	if got := len(w.eng.Account("a").Opportunities()); got != 1 {
		t.Fatalf("Opportunities() lists %d, want only q", got)
	}
	// Deleting is bookkeeping, not a touch of the customer.
	if s.LastTouchAt != ts("2026-01-05T00:00:00Z") {
		t.Fatalf("last_touch_at = %v, want the last upsert's time", time.Unix(0, s.LastTouchAt).UTC())
	}
	// An older upsert arriving after the deletion does not resurrect it;
	// a newer one does (the deal was re-opened in the CRM).
	w.opp("a", "2026-01-20T00:00:00Z", "p", "negotiation", "200000")
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.OpenOpportunities != 1 {
		t.Fatalf("an upsert older than the deletion brought p back")
	}
	w.opp("a", "2026-02-10T00:00:00Z", "p", "proposal", "40000")
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.OpenOpportunities != 2 || s.WeightedPipeline != cents(70000) {
		t.Fatalf("newer upsert after deletion: open = %d, weighted = %s", s.OpenOpportunities, s.WeightedPipeline)
	}
	// A won deal deleted stops counting as backlog; its invoices stay.
	w2 := newWorld(t, nil)
	w2.opp("a", "2026-01-10T00:00:00Z", "d", "closed_won", "300000")
	w2.order("a", "2026-01-20T00:00:00Z", "100000", "d")
	del(w2, "2026-01-25T00:00:00Z", "d")
	if s := w2.eval("a", "2026-03-01T00:00:00Z"); s.CurrentValue != cents(100000) {
		t.Fatalf("deleted won deal: current = %s, want 100000.00 (the invoice only)", s.CurrentValue)
	}
	// The deletion survives the state codec.
	a := w.eng.Account("a")
	back, err := scoring.UnmarshalAccount(scoring.MarshalAccount(nil, a))
	if err != nil {
		t.Fatal(err)
	}
	w.eng.Put(back)
	w.opp("a", "2026-01-21T00:00:00Z", "p", "negotiation", "999999") // older than the re-open: ignored
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.WeightedPipeline != cents(70000) {
		t.Fatalf("after a codec round trip: weighted = %s", s.WeightedPipeline)
	}
}

func TestAccountFieldsLastWriterWinsPerField(t *testing.T) {
	w := newWorld(t, nil)
	w.account("a", "2026-02-01T00:00:00Z", `"owner_id":"rep-new","wallet":1000`)
	w.account("a", "2026-01-01T00:00:00Z", `"owner_id":"rep-old","name":"Old name"`) // owner older: ignored; name applies
	s := w.eval("a", "2026-03-01T00:00:00Z")
	if s.OwnerID != "rep-new" || s.Name != "Old name" {
		t.Fatalf("owner/name = %q/%q", s.OwnerID, s.Name)
	}
	w.account("a", "2026-02-02T00:00:00Z", `"wallet":null`)
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.HasWallet {
		t.Fatalf("explicit null must clear the wallet")
	}
	w.account("a", "2026-02-03T00:00:00Z", `"name":"Acme"`) // absent fields are untouched
	if s := w.eval("a", "2026-03-01T00:00:00Z"); s.OwnerID != "rep-new" {
		t.Fatalf("absent owner_id changed the owner")
	}
}

func TestHysteresisEdges(t *testing.T) {
	// named threshold 250,000; floor with 10% hysteresis is 225,000.
	tests := []struct {
		name      string
		second    string // amount of a second order applied after reaching named with 250,000
		wantTier  string
		wantMoves int
	}{
		{"exactly at the threshold moves up", "0", "named", 1},
		{"just above the floor stays", "-25000", "named", 1}, // value 225,000.00 == floor: stays
		{"one cent below the floor moves down", "-25000.01", "non_named", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.order("a", "2026-01-01T00:00:00Z", "250000", "")
			w.order("a", "2026-01-02T00:00:00Z", tt.second, "")
			s := w.eval("a", "2026-01-03T00:00:00Z")
			if s.Tier.String() != tt.wantTier || len(w.changes) != tt.wantMoves {
				t.Fatalf("tier %s after %d changes, want %s after %d: %+v", s.Tier, len(w.changes), tt.wantTier, tt.wantMoves, w.changes)
			}
		})
	}
	// One cent below the threshold never enters the tier.
	w := newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "249999.99", "")
	if s := w.eval("a", "2026-01-02T00:00:00Z"); s.Tier != scoring.NonNamed {
		t.Fatalf("249,999.99 gave %s", s.Tier)
	}
	// Moving down lands on the tier the value qualifies for, skipping tiers.
	w = newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "1000000", "")
	w.order("a", "2026-01-02T00:00:00Z", "-990000", "")
	s := w.eval("a", "2026-01-03T00:00:00Z")
	last := w.changes[len(w.changes)-1]
	if s.Tier != scoring.MassMarket || last.From != scoring.Major {
		t.Fatalf("fall from major with 10,000 left: %s (from %s)", s.Tier, last.From)
	}
	want := "value 10,000.00 < major threshold 1,000,000.00 less 10% hysteresis = 900,000.00"
	if last.Reason != want || s.TierReason != want {
		t.Fatalf("reason = %q / %q, want %q", last.Reason, s.TierReason, want)
	}
}

func TestTierChangeReasonsAndEvents(t *testing.T) {
	w := newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "1120000", "")
	c := w.changes[0]
	if c.From != scoring.TierNone || c.To != scoring.Major || c.Reason != "value 1,120,000.00 >= major threshold 1,000,000.00" || c.EventID != "e1" || c.Version != 1 {
		t.Fatalf("first change = %+v", c)
	}
	w.order("b", "2026-01-01T00:00:00Z", "10", "")
	if c := w.changes[1]; c.To != scoring.MassMarket || c.Reason != "value 10.00 < non_named threshold 25,000.00" {
		t.Fatalf("mass-market entry = %+v", c)
	}
	// A clock-caused change (the order leaves the window) has no event id.
	w.eval("a", "2027-02-01T00:00:00Z")
	c = w.changes[len(w.changes)-1]
	if c.EventID != "" || c.To != scoring.MassMarket || c.ChangedAt != ts("2027-02-01T00:00:00Z") || c.Version != 2 {
		t.Fatalf("clock change = %+v", c)
	}
}

func TestOverride(t *testing.T) {
	w := newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "300000", "") // named
	w.account("a", "2026-01-02T00:00:00Z", `"tier_override":"major"`)
	s := w.eval("a", "2026-01-03T00:00:00Z")
	if s.Tier != scoring.Major || !s.Overridden || s.TierReason != "tier_override set to major" {
		t.Fatalf("override: %s overridden=%v reason=%q", s.Tier, s.Overridden, s.TierReason)
	}
	// Value changes do not move a pinned tier.
	w.order("a", "2026-01-04T00:00:00Z", "-299000", "")
	if s := w.eval("a", "2026-01-05T00:00:00Z"); s.Tier != scoring.Major {
		t.Fatalf("pinned tier moved to %s", s.Tier)
	}
	// Cleared: moves from the pinned tier by the hysteresis rule.
	w.account("a", "2026-01-06T00:00:00Z", `"tier_override":null`)
	if s := w.eval("a", "2026-01-07T00:00:00Z"); s.Tier != scoring.MassMarket || s.Overridden {
		t.Fatalf("after clearing: %s overridden=%v", s.Tier, s.Overridden)
	}
	// Cleared while the value is within the pinned tier's hysteresis band: stays.
	w = newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "240000", "") // non_named
	w.account("a", "2026-01-02T00:00:00Z", `"tier_override":"named"`)
	w.account("a", "2026-01-03T00:00:00Z", `"tier_override":null`)
	if s := w.eval("a", "2026-01-04T00:00:00Z"); s.Tier != scoring.Named {
		t.Fatalf("240,000 is above named's floor 225,000: got %s", s.Tier)
	}
}

func TestDuplicatesIgnored(t *testing.T) {
	w := newWorld(t, nil)
	line := `{"event_id":"dup","type":"order","account_id":"a","occurred_at":"2026-01-01T00:00:00Z","order_id":"o","amount":100}`
	ev, err := w.dec.Decode([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if _, r := w.eng.Apply(&ev, ev.OccurredAt, &w.out); r != scoring.Applied {
		t.Fatal("first apply not applied")
	}
	if _, r := w.eng.Apply(&ev, ev.OccurredAt, &w.out); r != scoring.Duplicate {
		t.Fatal("repeat not detected")
	}
	// 16 other events later the id is forgotten (docs/events.md: the last 16).
	for i := 0; i < 15; i++ {
		w.touch("a", "2026-01-02T00:00:00Z")
	}
	if _, r := w.eng.Apply(&ev, ev.OccurredAt, &w.out); r != scoring.Duplicate {
		t.Fatal("repeat within the last 16 not detected")
	}
	w.touch("a", "2026-01-02T00:00:00Z")
	if _, r := w.eng.Apply(&ev, ev.OccurredAt, &w.out); r != scoring.Applied {
		t.Fatal("17th-oldest id should be forgotten")
	}
	if s := w.eval("a", "2026-01-03T00:00:00Z"); s.CurrentValue != cents(200) {
		t.Fatalf("current = %s", s.CurrentValue)
	}
	// The same event id on another account is a different event.
	ev.AccountID = "b"
	if _, r := w.eng.Apply(&ev, ev.OccurredAt, &w.out); r != scoring.Applied {
		t.Fatal("same id on another account must apply")
	}
}

func TestCurrencyConversion(t *testing.T) {
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.1, "JPY": 0.0067}
	w := newWorld(t, cfg)
	w.apply("a", "2026-01-01T00:00:00Z", "", `"type":"order","order_id":"o1","amount":100.05,"currency":"EUR"`) // 110.055 -> 110.06 (half-even: 11005.5 -> 11006)
	w.apply("a", "2026-01-01T00:00:00Z", "", `"type":"order","order_id":"o2","amount":1000,"currency":"JPY"`)   // 6.70
	w.apply("a", "2026-01-01T00:00:00Z", "", `"type":"order","order_id":"o3","amount":1,"currency":"USD"`)
	if s := w.eval("a", "2026-01-02T00:00:00Z"); s.CurrentValue != money.Cents(11006+670+100) {
		t.Fatalf("current = %s, want 117.76", s.CurrentValue)
	}
}

func TestSnapshotVersionCountsEmissions(t *testing.T) {
	w := newWorld(t, nil)
	w.order("a", "2026-01-01T00:00:00Z", "100", "")
	w.order("a", "2026-01-02T00:00:00Z", "100", "")
	a := w.eng.Account("a")
	if a.Version != 2 {
		t.Fatalf("version after two events = %d", a.Version)
	}
	// Re-evaluating at the same month changes nothing but as_of: no new version.
	if w.eng.Evaluate(a, ts("2026-01-20T00:00:00Z"), &w.out) || a.Version != 2 {
		t.Fatalf("no-op evaluation bumped the version to %d", a.Version)
	}
	// The window rolling past the orders changes the content: new version.
	if !w.eng.Evaluate(a, ts("2027-06-01T00:00:00Z"), &w.out) || a.Version != 3 {
		t.Fatalf("window roll: version %d", a.Version)
	}
	// Emitting the account again at a new clock always makes a new
	// version, changed or not, so one version never has two contents.
	w.eng.Reemit(a, ts("2027-06-02T00:00:00Z"), &w.out)
	if a.Version != 4 {
		t.Fatalf("re-emission with only as_of changed: version %d, want 4", a.Version)
	}
	w.eng.Reemit(a, ts("2028-06-02T00:00:00Z"), &w.out)
	if a.Version != 5 {
		t.Fatalf("re-emission with a change: version %d, want 5 (one version, not two)", a.Version)
	}
	// After a crash a stream processor skips versions, and new accounts
	// start after the skip.
	a.SkipVersions(10)
	w.eng.StartVersionsAt(7)
	w.order("b", "2026-01-01T00:00:00Z", "100", "")
	if a.Version != 15 || w.eng.Account("b").Version != 8 {
		t.Fatalf("skip: versions %d and %d, want 15 and 8", a.Version, w.eng.Account("b").Version)
	}
}

func TestJSONGolden(t *testing.T) {
	w := newWorld(t, nil)
	w.account("a\"1", "2026-01-02T00:00:00Z", `"wallet":30000000,"owner_id":"rep-1","name":"Acme"`)
	w.order("a\"1", "2026-02-01T00:00:00Z", "600000", "")
	s := w.eval("a\"1", "2026-03-01T00:00:00Z")
	got := string(s.AppendJSON(nil))
	want := `{"account_id":"a\"1","version":3,"as_of":"2026-03-01T00:00:00Z","tier":"major","tier_reason":"value 30,000,000.00 >= major threshold 1,000,000.00","quadrant":"high_current_high_potential","current_value":600000.00,"potential_value":29400000.00,"weighted_pipeline":0.00,"wallet":30000000.00,"share_of_wallet":0.0200,"goal_metric":"share_of_wallet","goal_target":0.5000,"goal_actual":0.0200,"goal_attainment":0.0400,"goal_status":"behind","coverage_model":"1:1","owner_id":"rep-1","last_touch_at":"2026-02-01T00:00:00Z","neglected":true,"open_opportunities":0,"overridden":false}`
	if got != want {
		t.Fatalf("snapshot JSON\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(w.changes[0].AppendJSON(nil)), `"from_tier":"none","to_tier":"major"`) {
		t.Fatalf("tier change JSON: %s", w.changes[0].AppendJSON(nil))
	}
}

func TestMonthArithmeticMatchesTime(t *testing.T) {
	// Every day boundary over 2000..2199 and a few instants around midnight.
	for d := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2200; d = d.Add(24 * time.Hour) {
		for _, off := range []time.Duration{0, time.Nanosecond, -time.Nanosecond, 12 * time.Hour} {
			at := d.Add(off)
			want := int32(at.Year()*12 + int(at.Month()) - 1)
			if got := scoring.MonthOf(at.UnixNano()); got != want {
				t.Fatalf("MonthOf(%s) = %d, want %d", at, got, want)
			}
			if got, want := scoring.FormatTime(at.UnixNano()), at.Format(scoring.TimeFormat); got != want {
				t.Fatalf("FormatTime(%s) = %s, want %s", at, got, want)
			}
		}
	}
}
