package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

var (
	t0  = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC).UnixNano()
	day = int64(24 * time.Hour)
)

// snap builds a plausible snapshot; tests adjust fields.
func snap(id string, v uint64, tier scoring.Tier, owner string) scoring.Snapshot {
	s := scoring.Snapshot{
		AccountID: id, Version: v, AsOf: t0 + int64(v)*int64(time.Second),
		Tier: tier, TierReason: "value 30,000.00 >= non_named threshold 25,000.00",
		Quadrant:     scoring.LowCurrentLowPotential,
		CurrentValue: 20_000_00, PotentialValue: 10_000_00 + money.Cents(v), WeightedPipeline: 10_000_00,
		GoalMetric: "absolute_sales", GoalTarget: 50_000, GoalActual: 20_000, GoalAttainment: 0.4, HasGoalActual: true,
		GoalStatus: scoring.GoalBehind, CoverageModel: "1:many", OwnerID: owner,
		LastTouchAt: t0 - 3*day, OpenOpportunities: int(v % 7), Name: "Account " + id,
	}
	return s
}

type latestRow struct {
	scoring.Snapshot
	Load float64
}

func cents(t testing.TB, d decimal.Decimal) money.Cents {
	t.Helper()
	c := d.Shift(2)
	if !c.IsInteger() {
		t.Fatalf("decimal %s has more than 2 places", d)
	}
	return money.Cents(c.IntPart())
}

// readSnapshots reads rows of account_latest (or any query with the same
// columns) back into snapshots.
func readSnapshots(t testing.TB, conn driver.Conn, from string) []latestRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT "+snapshotColumns+" FROM "+from+" ORDER BY account_id, version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []latestRow
	for rows.Next() {
		var (
			r                             latestRow
			asOf, touch                   time.Time
			tier                          string
			cur, pot, wp                  decimal.Decimal
			wallet                        *decimal.Decimal
			share, goalActual, attainment *float64
			neglected, overridden         uint8
			openOpps                      uint32
		)
		s := &r.Snapshot
		if err := rows.Scan(&s.AccountID, &s.Version, &asOf, &tier, &s.TierReason, &s.Quadrant, &cur, &pot, &wp,
			&wallet, &share, &s.GoalMetric, &s.GoalTarget, &goalActual, &attainment, &s.GoalStatus,
			&s.CoverageModel, &s.OwnerID, &touch, &neglected, &openOpps, &overridden, &r.Load, &s.Name); err != nil {
			t.Fatal(err)
		}
		s.AsOf, s.LastTouchAt = asOf.UnixNano(), touch.UnixNano()
		s.Tier = scoring.ParseTier(tier)
		s.CurrentValue, s.PotentialValue, s.WeightedPipeline = cents(t, cur), cents(t, pot), cents(t, wp)
		if wallet != nil {
			s.Wallet, s.HasWallet = cents(t, *wallet), true
		}
		if share != nil {
			s.ShareOfWallet, s.HasShare = *share, true
		}
		if goalActual != nil {
			s.GoalActual, s.HasGoalActual = *goalActual, true
		}
		if attainment != nil {
			s.GoalAttainment = *attainment
		}
		s.Neglected, s.Overridden, s.OpenOpportunities = neglected == 1, overridden == 1, int(openOpps)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteRoundTripLatest(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{})
	ctx := context.Background()

	// Version 1 of three accounts, then newer versions of two of them.
	a1, b1, c1 := snap("acc-a", 1, scoring.NonNamed, "rep-1"), snap("acc-b", 1, scoring.MassMarket, ""), snap("acc-c", 1, scoring.Named, "rep-2")
	a2 := snap("acc-a", 2, scoring.Major, "rep-1")
	a2.Quadrant, a2.CurrentValue, a2.PotentialValue = scoring.HighCurrentHighPotential, 1_234_567_89, 98_765_432_10
	a2.Wallet, a2.HasWallet = 30_000_000_00, true
	a2.ShareOfWallet, a2.HasShare = 0.0412, true
	a2.GoalMetric, a2.GoalTarget, a2.GoalActual, a2.GoalAttainment, a2.GoalStatus = "share_of_wallet", 0.5, 0.0412, 0.0823, scoring.GoalBehind
	a2.CoverageModel, a2.Neglected, a2.Overridden, a2.TierReason = "1:1", true, true, `pinned by tier_override "major"`
	a2.Name = "Ünïcode, \"quoted\"\ttab"
	b7 := snap("acc-b", 7, scoring.Named, "rep-3")
	b7.Wallet, b7.HasWallet = 0, true // wallet known but zero: share null
	b7.GoalMetric, b7.GoalTarget, b7.HasGoalActual, b7.GoalActual, b7.GoalAttainment, b7.GoalStatus = "share_of_wallet", 0.3, false, 0, 0, scoring.GoalWalletUnknown
	b7.CurrentValue = -5_00 // negative money survives
	c1.WeightedPipeline = 1 // one cent

	ch1 := scoring.TierChange{AccountID: "acc-a", Version: 1, ChangedAt: t0, From: scoring.TierNone, To: scoring.NonNamed,
		Reason: "value 30,000.00 >= non_named threshold 25,000.00", Current: 20_000_00, Potential: 10_000_00, EventID: "ev-1"}
	ch2 := scoring.TierChange{AccountID: "acc-a", Version: 2, ChangedAt: t0 + day, From: scoring.NonNamed, To: scoring.Major,
		Reason: "value 1,000,000.00 >= major threshold 1,000,000.00", Current: 1_234_567_89, Potential: 98_765_432_10}
	al := scoring.Alert{AlertID: scoring.AlertID("acc-a", scoring.KindNeglected, t0), AccountID: "acc-a", Kind: scoring.KindNeglected,
		Status: scoring.StatusOpen, OpenedAt: t0, Tier: scoring.Major, OwnerID: "rep-1", Potential: 98_765_432_10,
		LastTouchAt: t0 - 14*day, AccountName: "A", LastTouchKind: "call", DaysSinceTouch: 14, Link: "https://crm.example/a", Version: 7<<2 | 2}

	if err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{a1, b1, c1}, Changes: []scoring.TierChange{ch1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{a2, b7}, Changes: []scoring.TierChange{ch2}, Alerts: []scoring.Alert{al}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy after success: %v", err)
	}

	got := readSnapshots(t, conn, "account_latest")
	want := []scoring.Snapshot{a2, b7, c1}
	if len(got) != len(want) {
		t.Fatalf("account_latest has %d rows, want %d: %+v", len(got), len(want), got)
	}
	weights := map[scoring.Tier]float64{scoring.Major: 1, scoring.Named: 0.2, scoring.NonNamed: 0.02, scoring.MassMarket: 0}
	for i, w := range want {
		if !reflect.DeepEqual(got[i].Snapshot, w) {
			t.Errorf("account_latest row %d:\n got %+v\nwant %+v", i, got[i].Snapshot, w)
		}
		if got[i].Load != weights[w.Tier] {
			t.Errorf("%s coverage_load = %v, want %v", w.AccountID, got[i].Load, weights[w.Tier])
		}
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_snapshots"); n != 5 {
		t.Errorf("account_snapshots has %d rows, want all 5 versions", n)
	}

	// Tier changes and alerts round-trip too.
	rows, err := conn.Query(ctx, "SELECT "+changeColumns+" FROM tier_changes FINAL ORDER BY account_id, version")
	if err != nil {
		t.Fatal(err)
	}
	var changes []scoring.TierChange
	for rows.Next() {
		var c scoring.TierChange
		var at time.Time
		var from, to string
		var cur, pot decimal.Decimal
		if err := rows.Scan(&c.AccountID, &c.Version, &at, &from, &to, &c.Reason, &cur, &pot, &c.EventID); err != nil {
			t.Fatal(err)
		}
		c.ChangedAt, c.From, c.To, c.Current, c.Potential = at.UnixNano(), scoring.ParseTier(from), scoring.ParseTier(to), cents(t, cur), cents(t, pot)
		changes = append(changes, c)
	}
	rows.Close()
	if !reflect.DeepEqual(changes, []scoring.TierChange{ch1, ch2}) {
		t.Errorf("tier_changes:\n got %+v\nwant %+v", changes, []scoring.TierChange{ch1, ch2})
	}
	if got := readAlerts(t, conn); !reflect.DeepEqual(got, []scoring.Alert{al}) {
		t.Errorf("account_alerts:\n got %+v\nwant %+v", got, []scoring.Alert{al})
	}
}

func readAlerts(t testing.TB, conn driver.Conn) []scoring.Alert {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT "+alertColumns+" FROM account_alerts FINAL ORDER BY alert_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []scoring.Alert
	for rows.Next() {
		var a scoring.Alert
		var opened, touch time.Time
		var resolved *time.Time
		var tier string
		var pot decimal.Decimal
		var days int32
		if err := rows.Scan(&a.AlertID, &a.AccountID, &a.Kind, &a.Status, &opened, &resolved, &tier, &a.OwnerID, &pot,
			&touch, &a.AccountName, &a.LastTouchKind, &days, &a.Link, &a.Version); err != nil {
			t.Fatal(err)
		}
		a.OpenedAt, a.LastTouchAt, a.Tier, a.Potential, a.DaysSinceTouch = opened.UnixNano(), touch.UnixNano(), scoring.ParseTier(tier), cents(t, pot), int(days)
		if resolved != nil {
			a.ResolvedAt = resolved.UnixNano()
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEngineSnapshotsRoundTrip writes what the real scoring engine emits.
func TestEngineSnapshotsRoundTrip(t *testing.T) {
	dsn, conn := migrated(t)
	params := scoring.NewParams(config.Default())
	s := newSink(t, dsn, Options{LoadWeight: params.LoadWeight})
	e := scoring.NewEngine(params)
	var out scoring.Output
	var b sink.Batch
	evs := []event.Event{
		{ID: "e1", Type: event.Account, AccountID: "x", OccurredAt: t0, Owner: event.Field[string]{Set: true, V: "rep-9"},
			Wallet: event.Field[money.Cents]{Set: true, V: 4_000_000_00}, Name: event.Field[string]{Set: true, V: "X Corp"}},
		{ID: "e2", Type: event.Order, AccountID: "x", OccurredAt: t0 + day, OrderID: "o1", Amount: 600_000_10},
		{ID: "e3", Type: event.Opportunity, AccountID: "x", OccurredAt: t0 + 2*day, OpportunityID: "op1", Stage: "proposal", Amount: 900_000_00, ProbPPM: 500_000},
		{ID: "e4", Type: event.Order, AccountID: "y", OccurredAt: t0 + 2*day, OrderID: "o2", Amount: 30_000_00},
	}
	latest := map[string]scoring.Snapshot{}
	for i := range evs {
		asOf := evs[i].OccurredAt
		a, _ := e.Apply(&evs[i], asOf, &out)
		latest[a.ID] = e.Snapshot(a, asOf)
	}
	b.Changes, b.Alerts = out.Changes, out.Alerts
	for _, id := range e.IDs() {
		b.Snapshots = append(b.Snapshots, latest[id])
	}
	if err := s.Write(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	got := readSnapshots(t, conn, "account_latest")
	if len(got) != len(b.Snapshots) {
		t.Fatalf("got %d rows, want %d", len(got), len(b.Snapshots))
	}
	for i, w := range b.Snapshots {
		w.AsOf, w.LastTouchAt = w.AsOf/1e9*1e9, w.LastTouchAt/1e9*1e9 // DateTime keeps seconds
		w.Qualified = scoring.TierNone                                // not a column
		if !reflect.DeepEqual(got[i].Snapshot, w) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i].Snapshot, w)
		}
		if got[i].Load != params.LoadWeight(w.Tier) {
			t.Errorf("%s load %v, want %v", w.AccountID, got[i].Load, params.LoadWeight(w.Tier))
		}
	}
	if n := queryUint(t, conn, "SELECT count() FROM tier_changes FINAL"); n != uint64(len(b.Changes)) || n == 0 {
		t.Errorf("tier_changes has %d rows, want %d (> 0)", n, len(b.Changes))
	}
}

func TestWriteTwiceCollapses(t *testing.T) {
	dsn, conn := migrated(t)
	s := newSink(t, dsn, Options{})
	ctx := context.Background()
	var b sink.Batch
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("acc-%02d", i)
		b.Snapshots = append(b.Snapshots, snap(id, uint64(i+1), scoring.NonNamed, "rep"))
		b.Changes = append(b.Changes, scoring.TierChange{AccountID: id, Version: uint64(i + 1), ChangedAt: t0, From: scoring.TierNone, To: scoring.NonNamed, Reason: "r"})
	}
	moment := t0 - day
	open := scoring.Alert{AlertID: scoring.AlertID("acc-01", scoring.KindNeglected, moment), AccountID: "acc-01", Kind: scoring.KindNeglected,
		Status: scoring.StatusOpen, OpenedAt: moment, Tier: scoring.NonNamed, LastTouchAt: moment - 45*day, DaysSinceTouch: 46, Version: 4<<2 | 2}
	b.Alerts = []scoring.Alert{open}
	for i := 0; i < 2; i++ {
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_snapshots"); n != 100 {
		t.Errorf("raw account_snapshots rows = %d, want 100 before merging", n)
	}
	for _, q := range []string{
		"SELECT count() FROM account_snapshots FINAL",
		"SELECT uniqExact(account_id, version) FROM account_snapshots FINAL",
		"SELECT count() FROM account_latest",
		"SELECT count() FROM tier_changes FINAL",
	} {
		if n := queryUint(t, conn, q); n != 50 {
			t.Errorf("%s = %d, want 50", q, n)
		}
	}
	// After OPTIMIZE ... FINAL the duplicates are gone from disk too.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE account_snapshots FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, conn, "SELECT count() FROM account_snapshots"); n != 50 {
		t.Errorf("after OPTIMIZE FINAL account_snapshots has %d rows, want 50", n)
	}

	// The alert's newest record (highest version) wins: resolved, even when
	// the older open record is written again after it (a redelivery)...
	resolved := open
	resolved.Status, resolved.ResolvedAt, resolved.Version = scoring.StatusResolved, t0, 5<<2|1
	if err := s.Write(ctx, &sink.Batch{Alerts: []scoring.Alert{resolved}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &sink.Batch{Alerts: []scoring.Alert{resolved, open}}); err != nil {
		t.Fatal(err)
	}
	if got := readAlerts(t, conn); len(got) != 1 || got[0].Status != scoring.StatusResolved || got[0].ResolvedAt != t0 {
		t.Errorf("after resolve: %+v, want one resolved alert", got)
	}
	// ...and the same alert re-opened later (after a snooze) is open again.
	reopened := open
	reopened.Version = 9<<2 | 2
	if err := s.Write(ctx, &sink.Batch{Alerts: []scoring.Alert{reopened}}); err != nil {
		t.Fatal(err)
	}
	if got := readAlerts(t, conn); len(got) != 1 || got[0].Status != scoring.StatusOpen {
		t.Errorf("after re-open: %+v, want one open alert", got)
	}
}

func TestPermanentErrorNamesTableAndColumn(t *testing.T) {
	dsn, conn := migrated(t)
	ctx := context.Background()
	s := newSink(t, dsn, Options{})
	m := s.m

	if err := conn.Exec(ctx, "ALTER TABLE account_snapshots DROP COLUMN quadrant"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Write(ctx, &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Named, "r")}})
	if err == nil {
		t.Fatal("Write succeeded against a table without column quadrant")
	}
	t.Logf("missing column: %v", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a permanent error took %v; it must not be retried", d)
	}
	for _, w := range []string{"account_snapshots", "quadrant", "pyramid migrate"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}
	if s.Healthy() == nil {
		t.Error("Healthy() = nil after a failed write")
	}
	if v := gaugeValue(m.SinkUp.WithLabelValues(StageName)); v != 0 {
		t.Errorf("pyramid_sink_up = %v after a failed write", v)
	}
	if n := counterValue(m.SinkRetries.WithLabelValues(StageName)); n != 0 {
		t.Errorf("permanent error retried %v times", n)
	}

	// A column of the wrong type.
	if err := conn.Exec(ctx, "ALTER TABLE tier_changes MODIFY COLUMN event_id UInt64"); err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, &sink.Batch{Changes: []scoring.TierChange{{AccountID: "a", Version: 1, ChangedAt: t0, To: scoring.Named, EventID: "ev-1"}}})
	if err == nil {
		t.Fatal("Write succeeded with event_id UInt64")
	}
	t.Logf("wrong type: %v", err)
	for _, w := range []string{"tier_changes", "event_id"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}

	// A missing table.
	if err := conn.Exec(ctx, "DROP TABLE account_alerts"); err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, &sink.Batch{Alerts: []scoring.Alert{{AlertID: "x", AccountID: "a", Kind: "neglected", Status: "open", Tier: scoring.Major}}})
	if err == nil || !strings.Contains(err.Error(), "account_alerts") || Retryable(err) {
		t.Errorf("missing table: err = %v, want a permanent error naming account_alerts", err)
	}
}
