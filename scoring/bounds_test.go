package scoring_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
)

// wantRejected applies body to acc and checks that it is refused with
// reason and a message containing every fragment, and that the account
// did not change at all: same encoded state, same snapshot.
func (w *world) wantRejected(acc, at, body, reason string, msg ...string) {
	w.t.Helper()
	a := w.eng.Account(acc)
	var before []byte
	if a != nil {
		before = scoring.MarshalAccount(nil, a)
	}
	if res := w.apply(acc, at, "", body); res != scoring.Rejected {
		w.t.Fatalf("%s at %s: result %v, want Rejected (%s)", body, at, res, reason)
	}
	if got := event.ReasonOf(w.out.Err); got != reason {
		w.t.Errorf("reason %q (%v), want %q", got, w.out.Err, reason)
	}
	for _, m := range msg {
		if !strings.Contains(w.out.Err.Error(), m) {
			w.t.Errorf("message %q lacks %q", w.out.Err, m)
		}
	}
	if len(w.out.Changes)+len(w.out.Alerts) != 0 {
		w.t.Errorf("a rejected event produced records: %+v %+v", w.out.Changes, w.out.Alerts)
	}
	if a := w.eng.Account(acc); a == nil && before != nil || a != nil && !bytes.Equal(scoring.MarshalAccount(nil, a), before) {
		w.t.Errorf("a rejected event changed the account's state")
	}
}

func (w *world) wantApplied(acc, at, body string) {
	w.t.Helper()
	if res := w.apply(acc, at, "", body); res != scoring.Applied {
		w.t.Fatalf("%s at %s: result %v (%v), want Applied", body, at, res, w.out.Err)
	}
}

func orderOf(amount, opp string) string {
	s := `"type":"order","order_id":"o","amount":` + amount
	if opp != "" {
		s += `,"opportunity_id":"` + opp + `"`
	}
	return s
}

func upsertOf(id, stage, amount string) string {
	return fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"stage":%q,"amount":%s`, id, stage, amount)
}

// 9,224 orders of 1e13 used to wrap one month's sum to about zero (the
// account fell from major to mass_market). Figures now stop at ±1e15: the
// order that would pass the bound is refused and changes nothing, and the
// account keeps working.
func TestOrdersStopAtTheFigureBound(t *testing.T) {
	w := newWorld(t, nil)
	const t0 = "2026-03-01T00:00:00Z"
	for i := range 9224 {
		res := w.apply("a", t0, "", orderOf("10000000000000", ""))
		if i < 100 && res != scoring.Applied || i >= 100 && res != scoring.Rejected {
			t.Fatalf("order %d of 1e13: %v (%v)", i+1, res, w.out.Err)
		}
	}
	if got := event.ReasonOf(w.out.Err); got != event.ReasonOutOfRange {
		t.Fatalf("reason %q", got)
	}
	for _, m := range []string{"order \"o\"", "account \"a\"", "the orders of 2026-03", "to 1,010,000,000,000,000.00", "beyond ±1,000,000,000,000,000.00"} {
		if !strings.Contains(w.out.Err.Error(), m) {
			t.Errorf("message %q lacks %q", w.out.Err, m)
		}
	}
	s := w.eval("a", t0)
	if s.CurrentValue != scoring.MaxFigure || s.Tier != scoring.Major || s.Version != 100 {
		t.Fatalf("after 9,224 orders: current %s, tier %s, version %d", s.CurrentValue, s.Tier, s.Version)
	}
	// The account keeps working: a return brings room for a small order.
	w.wantApplied("a", t0, orderOf("-1", ""))
	w.wantApplied("a", t0, orderOf("0.5", ""))
	w.wantRejected("a", t0, orderOf("1", ""), event.ReasonOutOfRange)
	// The bound holds downwards too.
	w.wantApplied("b", t0, orderOf("-10000000000000", ""))
	for range 99 {
		w.wantApplied("b", t0, orderOf("-10000000000000", ""))
	}
	w.wantRejected("b", t0, orderOf("-0.01", ""), event.ReasonOutOfRange, "-1,000,000,000,000,000.01")
}

// Every figure is bounded at every evaluation time, not only at the
// event's: two months that are fine alone are refused together when one
// window holds both, and allowed when no window does.
func TestFigureBoundCoversEveryWindow(t *testing.T) {
	const e13 = "10000000000000"
	fill := func(w *world, acc, at string) {
		for range 100 {
			w.wantApplied(acc, at, orderOf(e13, ""))
		}
	}
	t.Run("orders in one window", func(t *testing.T) {
		w := newWorld(t, nil)
		fill(w, "a", "2026-01-15T00:00:00Z")
		w.wantRejected("a", "2026-12-15T00:00:00Z", orderOf("1", ""), event.ReasonOutOfRange, "orders_in_window (window ending 2026-12)")
		// An order dated before the filled month: the windows ending in
		// 2026-01 hold both.
		w.wantRejected("a", "2025-02-15T00:00:00Z", orderOf("1", ""), event.ReasonOutOfRange, "window ending 2026-01")
		// Twelve months apart no window of 12 months holds both.
		w.wantApplied("a", "2027-01-15T00:00:00Z", orderOf(e13, ""))
		w.wantApplied("a", "2025-01-15T00:00:00Z", orderOf(e13, ""))
	})
	t.Run("backlog", func(t *testing.T) {
		w := newWorld(t, nil)
		for i := range 100 {
			w.wantApplied("a", "2026-01-15T00:00:00Z", upsertOf(fmt.Sprint("w-", i), "closed_won", e13))
		}
		w.wantRejected("a", "2026-06-15T00:00:00Z", upsertOf("w-x", "closed_won", "1"), event.ReasonOutOfRange, "backlog (window ending 2026-06)")
		// A return invoicing a won deal raises its backlog above its amount.
		w.wantRejected("a", "2026-06-15T00:00:00Z", orderOf("-1", "w-1"), event.ReasonOutOfRange, "backlog (window ending 2026-06)")
	})
	t.Run("current value: orders plus backlog", func(t *testing.T) {
		w := newWorld(t, nil)
		for i := range 60 {
			w.wantApplied("a", "2026-01-15T00:00:00Z", upsertOf(fmt.Sprint("w-", i), "closed_won", e13))
		}
		for range 40 {
			w.wantApplied("a", "2026-02-15T00:00:00Z", orderOf(e13, ""))
		}
		w.wantRejected("a", "2026-03-15T00:00:00Z", orderOf("1", ""), event.ReasonOutOfRange, "current_value (window ending 2026-03)")
		w.wantRejected("a", "2026-03-15T00:00:00Z", upsertOf("w-new", "closed_won", "1"), event.ReasonOutOfRange, "current_value (window ending 2026-03)")
	})
	t.Run("weighted pipeline", func(t *testing.T) {
		w := newWorld(t, nil)
		for i := range 100 {
			w.wantApplied("a", "2026-01-15T00:00:00Z", upsertOf(fmt.Sprint("p-", i), "negotiation", e13)+`,"probability":1`)
		}
		w.wantRejected("a", "2026-01-16T00:00:00Z", upsertOf("p-x", "proposal", "1")+`,"probability":1`, event.ReasonOutOfRange, "weighted_pipeline")
		// Replacing an opportunity's amount by a smaller one is fine.
		w.wantApplied("a", "2026-01-16T00:00:00Z", upsertOf("p-1", "negotiation", "1")+`,"probability":1`)
	})
	t.Run("orders invoicing one opportunity, years apart", func(t *testing.T) {
		w := newWorld(t, nil)
		for y := range 3 {
			for range 50 {
				res := w.apply("a", fmt.Sprintf("%d-01-15T00:00:00Z", 2020+2*y), "", orderOf(e13, "o-1"))
				if y < 2 && res != scoring.Applied {
					t.Fatalf("year %d: %v %v", y, res, w.out.Err)
				}
			}
		}
		if event.ReasonOf(w.out.Err) != event.ReasonOutOfRange || !strings.Contains(w.out.Err.Error(), `the orders invoicing opportunity "o-1"`) {
			t.Fatalf("last order: %v", w.out.Err)
		}
	})
}

// An account holds at most limits.max_open_opportunities open
// opportunities, placeholders known only from orders included; what would
// pass the limit is refused with reason limit and the account goes on.
func TestOpenOpportunityLimit(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.MaxOpenOpportunities = 3
	w := newWorld(t, cfg)
	const t0 = "2026-03-01T00:00:00Z"
	w.wantApplied("a", t0, upsertOf("o-1", "proposal", "100"))
	w.wantApplied("a", t0, upsertOf("o-2", "proposal", "100"))
	w.wantApplied("a", t0, orderOf("5", "o-3")) // a placeholder counts
	w.wantRejected("a", t0, upsertOf("o-4", "proposal", "100"), event.ReasonLimit,
		`opportunity "o-4"`, `account "a" already holds 3 open opportunities`, "limits.max_open_opportunities")
	w.wantRejected("a", t0, orderOf("5", "o-5"), event.ReasonLimit, "limits.max_open_opportunities")
	// Held opportunities still change, and everything else applies.
	w.wantApplied("a", t0, upsertOf("o-1", "negotiation", "200"))
	w.wantApplied("a", t0, upsertOf("o-3", "qualification", "300"))
	w.wantApplied("a", t0, orderOf("5", "o-2"))
	w.wantApplied("a", t0, orderOf("5", ""))
	w.wantApplied("a", t0, `"type":"activity","kind":"call"`)
	// Closing one makes room; reopening a closed one needs room.
	w.wantApplied("a", t0, upsertOf("o-1", "closed_won", "200"))
	w.wantApplied("a", t0, upsertOf("o-4", "proposal", "100"))
	w.wantRejected("a", t0, upsertOf("o-1", "negotiation", "200"), event.ReasonLimit)
	w.wantApplied("a", t0, upsertOf("o-2", "closed_lost", "100"))
	w.wantApplied("a", t0, upsertOf("o-1", "negotiation", "200"))
	// A closed opportunity arriving new takes no room.
	w.wantApplied("a", t0, upsertOf("o-6", "closed_won", "1"))
	if s := w.eval("a", t0); s.OpenOpportunities != 3 {
		t.Errorf("open opportunities %d, want 3", s.OpenOpportunities)
	}
}

// A closed_lost opportunity is forgotten at once; what is left of it keeps
// last-writer-wins exact, and ~25,000 of them no longer make a state
// record of a megabyte.
func TestLostOpportunitiesAreForgotten(t *testing.T) {
	w := newWorld(t, nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339) }
	const n = 30000
	for i := range n {
		w.wantApplied("a", at(time.Duration(i)*time.Second), upsertOf(fmt.Sprintf("opportunity-%06d", i), "closed_lost", "1000"))
	}
	a := w.eng.Account("a")
	if size := scoring.EncodedSize(a); size > 20*n || len(a.Opportunities()) != 0 {
		t.Fatalf("%d lost opportunities: state record %d bytes, %d held", n, size, len(a.Opportunities()))
	}
	// An older upsert of a lost opportunity still loses...
	w.wantApplied("a", at(-time.Hour), upsertOf("opportunity-000007", "negotiation", "500000"))
	if s := w.eval("a", at(n*time.Second)); s.WeightedPipeline != 0 || s.OpenOpportunities != 0 {
		t.Fatalf("an older upsert reopened a lost opportunity: %+v", s)
	}
	// ...a newer one reopens it, and orders invoicing it meanwhile count
	// against its backlog once it is won.
	w.wantApplied("a", at(n*time.Second), orderOf("300", "opportunity-000008"))
	w.wantApplied("a", at(n*time.Second+time.Minute), upsertOf("opportunity-000008", "closed_won", "1000"))
	s := w.eval("a", at(n*time.Second+time.Hour))
	if want := cents(300 + 700); s.CurrentValue != want {
		t.Fatalf("current value %s, want orders 300 + backlog 700", s.CurrentValue)
	}
	w.wantApplied("a", at(n*time.Second+2*time.Minute), upsertOf("opportunity-000009", "negotiation", "100"))
	if s := w.eval("a", at(n*time.Second+time.Hour)); s.OpenOpportunities != 1 {
		t.Fatalf("a newer upsert did not reopen: %+v", s)
	}
}

// A won opportunity counts in the backlog while its month is in the
// window, and is forgotten once it has left it; orders carrying its id
// after that neither revive it nor hold a place among the open ones.
func TestWonOpportunitiesAreForgottenAfterTheWindow(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.MaxOpenOpportunities = 1
	w := newWorld(t, cfg)
	w.wantApplied("a", "2025-01-10T00:00:00Z", upsertOf("w-1", "closed_won", "1000"))
	w.wantApplied("a", "2025-01-11T00:00:00Z", orderOf("400", "w-1"))
	// In the window: backlog 600 beside the order of 400.
	if s := w.eval("a", "2025-12-31T00:00:00Z"); s.CurrentValue != cents(1000) {
		t.Fatalf("in the window: current %s", s.CurrentValue)
	}
	for m := 2; m <= 30; m++ {
		at := time.Date(2025, time.Month(m), 15, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		w.wantApplied("a", at, upsertOf(fmt.Sprint("won-", m), "closed_won", "1"))
	}
	a := w.eng.Account("a")
	if len(a.Opportunities()) > cfg.WindowMonths+2 {
		t.Fatalf("%d won opportunities held; those out of the window should be forgotten", len(a.Opportunities()))
	}
	// An order for a forgotten deal counts as an order, takes no place
	// among the open opportunities, and an older upsert does not revive it.
	w.wantApplied("a", "2027-06-16T00:00:00Z", orderOf("50", "w-1"))
	w.wantApplied("a", "2024-12-16T00:00:00Z", upsertOf("w-1", "negotiation", "99999"))
	w.wantApplied("a", "2027-06-17T00:00:00Z", upsertOf("fresh", "proposal", "10"))
	s := w.eval("a", "2027-06-30T00:00:00Z")
	if s.OpenOpportunities != 1 || s.WeightedPipeline != cents(5) {
		t.Fatalf("after the window: %d open, pipeline %s", s.OpenOpportunities, s.WeightedPipeline)
	}
}

// Rejected events leave no trace, a new account included, and a rejected
// event id is not remembered: the corrected event applies.
func TestRejectedEventLeavesNoTrace(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.MaxOpenOpportunities = 1
	w := newWorld(t, cfg)
	w.wantApplied("a", "2026-01-01T00:00:00Z", upsertOf("o-1", "proposal", "1"))
	line := `{"event_id":"same","account_id":"a","occurred_at":"2026-01-02T00:00:00Z",` + upsertOf("o-2", "proposal", "1") + `}`
	ev, err := w.dec.Decode([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	var out scoring.Output
	if _, res := w.eng.Apply(&ev, scoring.EventTime, &out); res != scoring.Rejected {
		t.Fatalf("over the limit: %v", res)
	}
	w.wantApplied("a", "2026-01-02T00:00:00Z", upsertOf("o-1", "closed_won", "1"))
	out.Reset()
	if _, res := w.eng.Apply(&ev, scoring.EventTime, &out); res != scoring.Applied {
		t.Fatalf("the same event id after room was made: %v %v", res, out.Err)
	}
}
