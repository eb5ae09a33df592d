package e2e

import (
	"fmt"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// The comparison helpers decide what counts as equal to the golden, so
// they are tested on their own: a helper that accepts too much would let
// the end-to-end tests pass on wrong output.

func TestReasonFits(t *testing.T) {
	for _, tc := range []struct {
		reason, tier string
		ok           bool
	}{
		{"value 25,474.29 >= non_named threshold 25,000.00", "non_named", true},
		{"value 25,474.29 >= non_named threshold 25,000.00", "named", false},
		{"value 24,474.29 >= non_named threshold 25,000.00", "non_named", false},
		{"value 650.30 < non_named threshold 25,000.00", "mass_market", true},
		{"value 650.30 < non_named threshold 25,000.00", "non_named", false},
		{"value 30,650.30 < non_named threshold 25,000.00", "mass_market", false},
		{"value 736,780.86 < major threshold 1,000,000.00 less 10% hysteresis = 900,000.00", "named", true},
		{"value 736,780.86 < major threshold 1,000,000.00 less 10% hysteresis = 900,000.00", "major", false},
		{"value 936,780.86 < major threshold 1,000,000.00 less 10% hysteresis = 900,000.00", "named", false},
		{"tier_override set to major", "major", true},
		{"tier_override set to major", "named", false},
		{"", "named", false},
	} {
		if err := reasonFits(tc.reason, tc.tier); (err == nil) != tc.ok {
			t.Errorf("reasonFits(%q, %s) = %v, want ok %v", tc.reason, tc.tier, err, tc.ok)
		}
	}
}

func TestHolds(t *testing.T) {
	p := scoring.NewParams(config.Default())
	for _, tc := range []struct {
		tier  scoring.Tier
		value money.Cents
		ok    bool
	}{
		{scoring.MassMarket, 2_483_129, true},
		{scoring.NonNamed, 2_483_129, true}, // 24,831.29 >= floor 22,500
		{scoring.NonNamed, 2_249_999, false},
		{scoring.Named, 2_483_129, false},
		{scoring.MassMarket, 2_500_000, false}, // qualifies for non_named
		{scoring.Major, 90_000_000, true},
		{scoring.Major, 89_999_999, false},
	} {
		if got := holds(p, tc.tier, tc.value); got != tc.ok {
			t.Errorf("holds(%s, %d) = %v, want %v", tc.tier, tc.value, got, tc.ok)
		}
	}
}

// TestRetier builds the case found in TestCrashRestart: an account whose
// order is applied before or after an opportunity is lost ends at the same
// value in two tiers. retier of one must give the other's snapshot.
func TestRetier(t *testing.T) {
	cfg := config.Default()
	p := scoring.NewParams(cfg)
	dec := event.NewDecoder(cfg)
	const (
		create = `{"event_id":"e1","type":"account","account_id":"a","occurred_at":"2025-01-03T06:58:56Z","name":"A","owner_id":"rep-1","wallet":%s}`
		opp    = `{"event_id":"e2","type":"opportunity","account_id":"a","occurred_at":"2025-08-08T11:10:26Z","opportunity_id":"o1","stage":"prospecting","amount":%s}`
		lost   = `{"event_id":"e3","type":"opportunity","account_id":"a","occurred_at":"2025-09-29T14:02:28Z","opportunity_id":"o1","stage":"closed_lost","amount":%[1]s}`
		order  = `{"event_id":"e4","type":"order","account_id":"a","occurred_at":"2025-11-25T12:54:16Z","order_id":"x","amount":%s}`
	)
	for _, tc := range []struct {
		wallet, opp, order string
		low, high          scoring.Tier
	}{
		{"null", "6430", "24831.29", scoring.MassMarket, scoring.NonNamed},
		{"24900", "6430", "24831.29", scoring.MassMarket, scoring.NonNamed},
		// named has a share-of-wallet goal.
		{"249000", "64300", "248312.90", scoring.NonNamed, scoring.Named},
		{"null", "64300", "248312.90", scoring.NonNamed, scoring.Named},
	} {
		wallet := tc.wallet
		opp, lost, order := fmt.Sprintf(opp, tc.opp), fmt.Sprintf(lost, tc.opp), fmt.Sprintf(order, tc.order)
		run := func(lines ...string) scoring.Snapshot {
			eng := scoring.NewEngine(p)
			var out scoring.Output
			for _, l := range lines {
				ev, err := dec.Decode([]byte(l))
				if err != nil {
					t.Fatalf("%s: %v", l, err)
				}
				out.Reset()
				eng.Apply(&ev, testNow.UnixNano(), &out)
			}
			return eng.Snapshot(eng.Account("a"), testNow.UnixNano())
		}
		c := fmt.Sprintf(create, wallet)
		low := run(c, opp, lost, order)  // never reaches 25,000
		high := run(c, opp, order, lost) // 25,474.29 on the way
		if low.Tier != tc.low || high.Tier != tc.high {
			t.Fatalf("wallet %s: tiers %s and %s, want %s and %s", wallet, low.Tier, high.Tier, tc.low, tc.high)
		}
		got, undecided := retier(p, low, high.Tier)
		if undecided != "" {
			t.Errorf("wallet %s: retier left %s undecided", wallet, undecided)
		}
		lw := p.LoadWeight
		gf, wf := snapshotFields(&got, lw), snapshotFields(&high, lw)
		for i, col := range snapshotColumns {
			if col != "tier_reason" && gf[i] != wf[i] {
				t.Errorf("wallet %s: retier: %s = %q, want %q", wallet, col, gf[i], wf[i])
			}
		}
		back, _ := retier(p, high, low.Tier)
		gf, wf = snapshotFields(&back, lw), snapshotFields(&low, lw)
		for i, col := range snapshotColumns {
			if col != "tier_reason" && gf[i] != wf[i] {
				t.Errorf("wallet %s: retier back: %s = %q, want %q", wallet, col, gf[i], wf[i])
			}
		}
	}
}
