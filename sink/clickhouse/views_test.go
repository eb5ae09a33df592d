package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// viewFixture: reps with known loads, older versions that must not count.
//
//	rep-over:  1 major + 1 named            load 1.2  overloaded
//	rep-five:  5 named                      load 1.0  not overloaded (not > 1)
//	rep-fifty: 50 non_named                 load 1.0  not overloaded
//	rep-six:   6 named (one was major in v1) load 1.2 overloaded
//	"":        3 mass_market                load 0
func viewFixture() sink.Batch {
	var b sink.Batch
	add := func(id string, v uint64, tier scoring.Tier, owner string) *scoring.Snapshot {
		b.Snapshots = append(b.Snapshots, snap(id, v, tier, owner))
		return &b.Snapshots[len(b.Snapshots)-1]
	}
	add("over-major", 3, scoring.Major, "rep-over")
	add("over-named", 1, scoring.Named, "rep-over")
	for i := 0; i < 5; i++ {
		add(fmt.Sprintf("five-%d", i), 2, scoring.Named, "rep-five")
	}
	for i := 0; i < 50; i++ {
		add(fmt.Sprintf("fifty-%02d", i), 1, scoring.NonNamed, "rep-fifty")
	}
	for i := 0; i < 6; i++ {
		add(fmt.Sprintf("six-%d", i), 2, scoring.Named, "rep-six")
	}
	for i := 0; i < 3; i++ {
		add(fmt.Sprintf("mass-%d", i), 1, scoring.MassMarket, "")
	}
	// Neglected now: a high-potential major untouched for 20 days.
	n := add("neglected-now", 5, scoring.Major, "rep-n")
	n.Neglected, n.PotentialValue, n.LastTouchAt, n.AsOf = true, 2_000_000_00, t0-20*day, t0
	// Was neglected in version 1, touched since: must not be listed.
	old := add("neglected-before", 1, scoring.Named, "rep-n")
	old.Neglected = true
	add("neglected-before", 2, scoring.Named, "rep-n")
	return b
}

// older versions written in a separate batch, as the pipeline would.
func olderVersions() sink.Batch {
	var b sink.Batch
	b.Snapshots = append(b.Snapshots,
		snap("six-0", 1, scoring.Major, "rep-six"),      // was major, now named
		snap("over-major", 2, scoring.Named, "rep-old"), // other owner before
		snap("over-major", 1, scoring.NonNamed, "rep-old"),
	)
	return b
}

func TestViews(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{})
	ctx := context.Background()
	older, fx := olderVersions(), viewFixture()
	for _, b := range []*sink.Batch{&older, &fx} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("rep_coverage", func(t *testing.T) {
		type row struct {
			Owner                        string
			Accounts                     uint64
			Major, Named, NonNamed, Mass uint64
			Load                         float64
			Overloaded                   uint8
		}
		rows, err := conn.Query(ctx, "SELECT owner_id, accounts, major_accounts, named_accounts, non_named_accounts, mass_market_accounts, load, overloaded FROM rep_coverage ORDER BY owner_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.Owner, &r.Accounts, &r.Major, &r.Named, &r.NonNamed, &r.Mass, &r.Load, &r.Overloaded); err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		want := []row{
			{"", 3, 0, 0, 0, 3, 0, 0},
			{"rep-fifty", 50, 0, 0, 50, 0, 1, 0},
			{"rep-five", 5, 0, 5, 0, 0, 1, 0},
			{"rep-n", 2, 1, 1, 0, 0, 1.2, 1},
			{"rep-over", 2, 1, 1, 0, 0, 1.2, 1},
			{"rep-six", 6, 0, 6, 0, 0, 1.2, 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rep_coverage:\n got %+v\nwant %+v", got, want)
		}
	})

	t.Run("neglected_accounts", func(t *testing.T) {
		rows, err := conn.Query(ctx, "SELECT account_id, tier, owner_id, potential_value, days_since_touch, version FROM neglected_accounts")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id, tier, owner string
			var pot decimal.Decimal
			var days int64
			var v uint64
			if err := rows.Scan(&id, &tier, &owner, &pot, &days, &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %s %s %s %dd v%d", id, tier, owner, pot.StringFixed(2), days, v))
		}
		want := []string{"neglected-now major rep-n 2000000.00 20d v5"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("neglected_accounts = %q, want %q", got, want)
		}
	})

	t.Run("tier_distribution", func(t *testing.T) {
		rows, err := conn.Query(ctx, "SELECT tier, accounts, account_share, total_current_value, total_potential_value, neglected_accounts FROM tier_distribution")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var tier string
			var n, neg uint64
			var share float64
			var cur, pot decimal.Decimal
			if err := rows.Scan(&tier, &n, &share, &cur, &pot, &neg); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %d %.4f %s %s %d", tier, n, share, cur.StringFixed(2), pot.StringFixed(2), neg))
		}
		// 68 accounts. Current value is 20,000.00 each; potential is
		// 10,000.00 + version cents, except neglected-now (2,000,000.00).
		want := []string{
			"major 2 0.0294 40000.00 2010000.03 1",       // over-major v3; neglected-now
			"named 13 0.1912 260000.00 130000.25 0",      // over-named v1, five ×v2, six ×v2, neglected-before v2
			"non_named 50 0.7353 1000000.00 500000.50 0", // fifty ×v1
			"mass_market 3 0.0441 60000.00 30000.03 0",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("tier_distribution:\n got %q\nwant %q", got, want)
		}
	})
}

// TestBIQueries runs every example query of docs/clickhouse.md.
func TestBIQueries(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{Capacity: config.Default().CoverageCapacity, TierCaps: map[string]int{config.Major: 2}})
	ctx := context.Background()
	fx := viewFixture()
	// A high-current, low-potential major account on 1:1: the watch list.
	retain := snap("retain-major", 1, scoring.Major, "rep-r")
	retain.Quadrant, retain.CoverageModel, retain.CurrentValue = scoring.HighCurrentLowPotential, "1:1", 900_000_00
	fx.Snapshots = append(fx.Snapshots, retain)
	fx.Changes = []scoring.TierChange{{AccountID: "over-major", Version: 3, ChangedAt: time.Now().UnixNano(), From: scoring.Named, To: scoring.Major, Reason: "r"}}
	fx.Alerts = []scoring.Alert{{AlertID: "al-1", AccountID: "neglected-now", Kind: scoring.KindNeglected, Status: scoring.StatusOpen,
		OpenedAt: t0 - 6*day, Tier: scoring.Major, OwnerID: "rep-n", Potential: 2_000_000_00, LastTouchAt: t0 - 20*day, DaysSinceTouch: 20}}
	unowned := snap("unowned-major", 1, scoring.Major, "")
	fx.Snapshots = append(fx.Snapshots, unowned, snap("acc-000042", 1, scoring.Named, "rep-1")) // the docs' example id
	if err := s.Write(ctx, &fx); err != nil {
		t.Fatal(err)
	}
	queries, err := docQueries("../../docs/clickhouse.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 5 {
		t.Fatalf("found %d example queries in docs/clickhouse.md, want at least 5", len(queries))
	}
	for _, q := range queries {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Errorf("example query failed: %v\n%s", err, q)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("example query failed: %v\n%s", err, q)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("example query returned no rows on the fixture:\n%s", q)
		}
	}
}
