package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// planningFixture scores a generated CRM stream and returns the final
// snapshots, with a few owners removed so unowned accounts exist.
func planningFixture(t *testing.T, cfg *config.Config) []scoring.Snapshot {
	t.Helper()
	g, err := gen.New(gen.Options{Accounts: 600, Events: 30_000, Seed: 14})
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	if err := g.WriteJSONL(&in); err != nil {
		t.Fatal(err)
	}
	_, res, err := replay.Run(replay.Options{Config: cfg, Input: &in})
	if err != nil {
		t.Fatal(err)
	}
	var out []scoring.Snapshot
	for i, id := range res.Engine.IDs() {
		sn := res.Engine.Snapshot(res.Engine.Account(id), res.AsOf)
		if i%37 == 0 {
			sn.OwnerID = ""
		}
		out = append(out, sn)
	}
	return out
}

// TestPlanningViewsAgreeWithPlan: goal_summary, coverage_plan and their
// companion views give, over the current state in ClickHouse, the figures
// package plan gives over the same snapshots (what /v1/goals, /v1/coverage
// and replay --plan show), under the default configuration and under one
// where major accounts are covered by teams of four.
func TestPlanningViewsAgreeWithPlan(t *testing.T) {
	team, err := config.Parse([]byte("coverage_capacity: {team: 0.25, \"1:few\": 3}\ntiers: {major: {coverage: team}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*config.Config{"defaults": config.Default(), "teams": team} {
		t.Run(name, func(t *testing.T) {
			params := scoring.NewParams(cfg)
			snaps := planningFixture(t, cfg)
			dsn, conn := migrated(t)
			s := newSink(t, dsn, Options{LoadWeight: params.LoadWeight, Capacity: cfg.CoverageCapacity})
			ctx := context.Background()
			// Older versions of some accounts, in another tier and with
			// another owner, must not count.
			var older sink.Batch
			for i := 0; i < len(snaps); i += 5 {
				o := snaps[i]
				o.Version, o.Tier, o.OwnerID, o.GoalStatus = max(o.Version, 2)-1, scoring.Major, "rep-old", scoring.GoalMet
				older.Snapshots = append(older.Snapshots, o)
			}
			if err := s.Write(ctx, &older); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, &sink.Batch{Snapshots: snaps}); err != nil {
				t.Fatal(err)
			}
			sum := plan.New(params)
			for i := range snaps {
				sum.Add(&snaps[i])
			}
			goals, cov := sum.Goals(), sum.Coverage()
			checkGoalSummary(t, conn, goals)
			checkCoveragePlan(t, conn, cov)
		})
	}
}

func checkGoalSummary(t *testing.T, conn driver.Conn, want plan.Goals) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT tier, goal_metric, goal_target, accounts, met, behind, wallet_unknown,
		actual_total, target_total, median_attainment, under_25, from_25_to_50, from_50_to_75, from_75_to_100, at_least_100,
		furthest_behind, furthest_behind_attainment FROM goal_summary`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tier, metric string
		var target float64
		var accounts, met, behind, unknown, b0, b1, b2, b3, b4 uint64
		var actual *decimal.Decimal
		var targetTotal, median *float64
		var ids []string
		var atts []float64
		if err := rows.Scan(&tier, &metric, &target, &accounts, &met, &behind, &unknown, &actual, &targetTotal, &median,
			&b0, &b1, &b2, &b3, &b4, &ids, &atts); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %v: %d accounts, %d met, %d behind, %d unknown; actual %s of %s; median %s; %v; %v %v",
			tier, metric, target, accounts, met, behind, unknown, decOrNull(actual), floatOrNull(targetTotal, 2), floatOrNull(median, 4),
			[]uint64{b0, b1, b2, b3, b4}, ids, atts))
	}
	var exp []string
	for _, g := range want.Tiers {
		if g.Accounts == 0 {
			continue // no row for a tier without accounts
		}
		var actual, targetTotal, median *float64
		if g.ActualTotal != nil {
			a, tt := money.Cents(*g.ActualTotal).Float(), money.Cents(*g.TargetTotal).Float()
			actual, targetTotal = &a, &tt
		}
		if g.MedianAttainment != nil {
			m := float64(*g.MedianAttainment)
			median = &m
		}
		var buckets []uint64
		for _, b := range g.Attainment {
			buckets = append(buckets, uint64(b.Accounts))
		}
		ids, atts := []string{}, []float64{}
		for _, b := range g.FurthestBehind {
			ids, atts = append(ids, b.AccountID), append(atts, float64(b.Attainment))
		}
		exp = append(exp, fmt.Sprintf("%s %s %v: %d accounts, %d met, %d behind, %d unknown; actual %s of %s; median %s; %v; %v %v",
			g.Tier, g.GoalMetric, g.GoalTarget.Value, g.Accounts, g.Met, g.Behind, g.WalletUnknown, floatOrNull(actual, 2), floatOrNull(targetTotal, 2),
			floatOrNull(median, 4), buckets, ids, atts))
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("goal_summary disagrees with plan.Goals:\n got %q\nwant %q", got, exp)
	}
}

func checkCoveragePlan(t *testing.T, conn driver.Conn, want plan.Coverage) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT tier, coverage_model, capacity, configured, accounts, reps_needed, owners, shortfall, unowned,
		overloaded_owners, watch_list_accounts FROM coverage_plan`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var tier, model string
		var capacity *float64
		var configured uint8
		var accounts, need, owners, short, unowned, over, watch uint64
		if err := rows.Scan(&tier, &model, &capacity, &configured, &accounts, &need, &owners, &short, &unowned, &over, &watch); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s cap %s (%d): %d accounts need %d, %d owners, %d short, %d unowned, %d overloaded, %d to watch",
			tier, model, floatOrNull(capacity, 2), configured, accounts, need, owners, short, unowned, over, watch))
	}
	rows.Close()
	overIn, watchIn := map[string]int{}, map[string]int{}
	for _, r := range want.Overloaded.Reps {
		for tier := range r.ByTier {
			overIn[tier]++
		}
	}
	for _, a := range want.WatchList.Accounts {
		watchIn[a.Tier]++
	}
	if want.Overloaded.Total > len(want.Overloaded.Reps) || want.WatchList.Total > len(want.WatchList.Accounts) {
		t.Fatal("the fixture's lists are longer than plan keeps; the comparison would be incomplete")
	}
	var exp []string
	for _, c := range want.Tiers {
		if c.Accounts == 0 {
			continue
		}
		exp = append(exp, fmt.Sprintf("%s %s cap %s (%d): %d accounts need %d, %d owners, %d short, %d unowned, %d overloaded, %d to watch",
			c.Tier, c.CoverageModel, floatOrNull(c.Capacity, 2), 1, c.Accounts, c.RepsNeeded, c.Owners, c.Shortfall, c.Unowned, overIn[c.Tier], watchIn[c.Tier]))
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("coverage_plan disagrees with plan.Coverage:\n got %q\nwant %q", got, exp)
	}

	rows, err = conn.Query(ctx, "SELECT owner_id, load, accounts, account_ids FROM coverage_overloaded_reps")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for rows.Next() {
		var owner string
		var load float64
		var n uint64
		var ids []string
		if err := rows.Scan(&owner, &load, &n, &ids); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v %d %v", owner, load, n, ids))
	}
	rows.Close()
	exp = exp[:0]
	for _, r := range want.Overloaded.Reps {
		var ids []string
		for _, a := range r.AccountsList {
			ids = append(ids, a.AccountID)
		}
		exp = append(exp, fmt.Sprintf("%s %v %d %v", r.OwnerID, r.Load, r.Accounts, ids))
	}
	if len(exp) == 0 || !reflect.DeepEqual(got, exp) {
		t.Errorf("coverage_overloaded_reps disagrees with plan:\n got %q\nwant %q", got, exp)
	}

	rows, err = conn.Query(ctx, "SELECT account_id FROM coverage_watch_list")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	rows.Close()
	exp = exp[:0]
	for _, a := range want.WatchList.Accounts {
		exp = append(exp, a.AccountID)
	}
	if len(exp) == 0 || !reflect.DeepEqual(got, exp) {
		t.Errorf("coverage_watch_list disagrees with plan:\n got %q\nwant %q", got, exp)
	}
}

func decOrNull(d *decimal.Decimal) string {
	if d == nil {
		return "null"
	}
	return d.StringFixed(2)
}

func floatOrNull(f *float64, places int) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprintf("%.*f", places, math.Round(*f*math.Pow10(places))/math.Pow10(places))
}

// A changed capacity changes the plan at once; a schema without the
// capacity table costs the plan its capacities, not the pipeline a write.
func TestCoverageCapacityWrites(t *testing.T) {
	dsn, conn := migrated(t)
	ctx := context.Background()
	// Two named accounts on 1:many.
	b := sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Named, "rep"), snap("b", 1, scoring.Named, "rep")}}
	for _, tt := range []struct {
		capacity config.Capacity
		want     string
	}{{5, "5.0 1"}, {0.5, "0.5 4"}, {config.Unlimited, "null 0"}, {2, "2.0 1"}} {
		s := newSink(t, dsn, Options{Capacity: map[string]config.Capacity{"1:many": tt.capacity}})
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
		var capacity *float64
		var need uint64
		if err := conn.QueryRow(ctx, "SELECT capacity, reps_needed FROM coverage_plan WHERE tier = 'named'").Scan(&capacity, &need); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%s %d", floatOrNull(capacity, 1), need); got != tt.want {
			t.Errorf("capacity %v: coverage_plan says %s, want %s", tt.capacity, got, tt.want)
		}
	}

	if err := conn.Exec(ctx, "DROP TABLE "+TableCapacity); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, dsn, Options{Capacity: map[string]config.Capacity{"1:few": 5}})
	b.Snapshots[0].Version = 2
	if err := s.Write(ctx, &b); err != nil {
		t.Fatalf("a missing capacity table failed the write: %v", err)
	}
	if n := queryUint(t, conn, "SELECT max(version) FROM account_snapshots WHERE account_id = 'a'"); n != 2 {
		t.Errorf("the batch was not written: version %d", n)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("a missing capacity table made the sink unhealthy: %v", err)
	}
}
