package view

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

func snap(id string, v uint64, t scoring.Tier, q string) scoring.Snapshot {
	return scoring.Snapshot{AccountID: id, Version: v, Tier: t, Quadrant: q, AsOf: int64(v)}
}

func change(id string, v uint64, at int64, from, to scoring.Tier) scoring.TierChange {
	return scoring.TierChange{AccountID: id, Version: v, ChangedAt: at, From: from, To: to}
}

func wantCounts(t testing.TB, s *Store, total int, tiers map[string]int) {
	t.Helper()
	c := s.Tiers()
	if c.Accounts != total {
		t.Errorf("accounts = %d, want %d", c.Accounts, total)
	}
	for _, tr := range scoring.AllTiers {
		if got, want := c.Tiers[tr.String()], tiers[tr.String()]; got != want {
			t.Errorf("tier %s = %d, want %d", tr, got, want)
		}
	}
	sum := 0
	for _, n := range c.Quadrants {
		sum += n
	}
	if sum != total {
		t.Errorf("quadrant counts sum to %d, want %d", sum, total)
	}
}

func TestNewestVersionWins(t *testing.T) {
	s := New()
	newest := &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 5, scoring.Major, scoring.HighCurrentHighPotential)}}
	older := &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 3, scoring.Named, scoring.LowCurrentLowPotential)}}
	s.Observe(0, newest)
	s.Observe(0, older)  // arrives late
	s.Observe(0, newest) // and twice
	d, ok := s.Account("a")
	if !ok {
		t.Fatal("account a not found")
	}
	if d.Snapshot.Version != 5 || d.Snapshot.Tier != scoring.Major {
		t.Errorf("got version %d tier %s, want 5 major", d.Snapshot.Version, d.Snapshot.Tier)
	}
	wantCounts(t, s, 1, map[string]int{"major": 1})
	c := s.Tiers()
	if c.Quadrants[scoring.HighCurrentHighPotential] != 1 {
		t.Errorf("quadrants = %v", c.Quadrants)
	}

	// A newer version moves the account between counters.
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 6, scoring.NonNamed, scoring.LowCurrentHighPotential)}})
	wantCounts(t, s, 1, map[string]int{"non_named": 1})
	if c := s.Tiers(); c.Quadrants[scoring.LowCurrentHighPotential] != 1 || c.Quadrants[scoring.HighCurrentHighPotential] != 0 {
		t.Errorf("quadrants = %v", c.Quadrants)
	}
}

func TestDropPartition(t *testing.T) {
	s := New()
	s.Observe(1, &sink.Batch{
		Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Major, scoring.LowCurrentLowPotential), snap("b", 1, scoring.Named, scoring.LowCurrentLowPotential)},
		Changes:   []scoring.TierChange{change("a", 1, 10, scoring.TierNone, scoring.Major)},
	})
	s.Observe(2, &sink.Batch{
		Snapshots: []scoring.Snapshot{snap("c", 1, scoring.Named, scoring.LowCurrentLowPotential)},
		Changes:   []scoring.TierChange{change("c", 1, 20, scoring.TierNone, scoring.Named)},
	})
	wantCounts(t, s, 3, map[string]int{"major": 1, "named": 2})
	s.DropPartition(1)
	s.DropPartition(7) // not owned: harmless
	if _, ok := s.Account("a"); ok {
		t.Error("account a still visible after its partition was dropped")
	}
	if _, ok := s.Account("c"); !ok {
		t.Error("account c of another partition disappeared")
	}
	wantCounts(t, s, 1, map[string]int{"named": 1})
	rc := s.RecentChanges(10)
	if len(rc) != 1 || rc[0].AccountID != "c" {
		t.Errorf("recent changes after drop = %+v, want only c", rc)
	}
	if got := s.Partitions(); fmt.Sprint(got) != "[2]" {
		t.Errorf("partitions = %v, want [2]", got)
	}
}

func TestChangesHistory(t *testing.T) {
	s := New()
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 100, scoring.Major, "")}})
	// 30 changes, delivered newest batch first and one duplicated.
	for v := uint64(30); v >= 1; v-- {
		b := &sink.Batch{Changes: []scoring.TierChange{change("a", v, int64(v), scoring.Named, scoring.Major)}}
		s.Observe(0, b)
		if v == 25 {
			s.Observe(0, b)
		}
	}
	d, _ := s.Account("a")
	if len(d.Changes) != ChangesPerAccount {
		t.Fatalf("kept %d changes, want %d", len(d.Changes), ChangesPerAccount)
	}
	for i, c := range d.Changes {
		if want := uint64(30 - i); c.Version != want {
			t.Fatalf("change %d has version %d, want %d (newest first)", i, c.Version, want)
		}
	}
	rc := s.RecentChanges(1000)
	if len(rc) != ChangesPerAccount {
		t.Errorf("recent overall = %d, want %d", len(rc), ChangesPerAccount)
	}
}

func TestRecentOverallBounded(t *testing.T) {
	s := New()
	for i := range 250 {
		id := fmt.Sprintf("acc-%03d", i)
		s.Observe(i%4, &sink.Batch{
			Snapshots: []scoring.Snapshot{snap(id, 1, scoring.MassMarket, "")},
			Changes:   []scoring.TierChange{change(id, 1, int64(i), scoring.TierNone, scoring.MassMarket)},
		})
	}
	rc := s.RecentChanges(500)
	if len(rc) != RecentOverall {
		t.Fatalf("recent = %d, want %d", len(rc), RecentOverall)
	}
	if rc[0].AccountID != "acc-249" || rc[len(rc)-1].AccountID != "acc-150" {
		t.Errorf("recent spans %s..%s, want acc-249..acc-150", rc[0].AccountID, rc[len(rc)-1].AccountID)
	}
	if got := s.RecentChanges(3); len(got) != 3 || got[0].AccountID != "acc-249" {
		t.Errorf("RecentChanges(3) = %v", got)
	}
	if got := s.RecentChanges(-1); len(got) != 0 {
		t.Errorf("RecentChanges(-1) = %v", got)
	}
}

func TestNeglectedAndAlerts(t *testing.T) {
	s := New()
	mk := func(id string, v uint64, pot int64, neglected bool) scoring.Snapshot {
		sn := snap(id, v, scoring.Major, scoring.LowCurrentHighPotential)
		sn.PotentialValue, sn.Neglected = money.FromUnits(pot), neglected
		return sn
	}
	open := scoring.Alert{AlertID: "x1", AccountID: "a", Status: scoring.StatusOpen, OpenedAt: 100}
	resolved := open
	resolved.Status, resolved.ResolvedAt = scoring.StatusResolved, 200
	s.Observe(0, &sink.Batch{
		Snapshots: []scoring.Snapshot{mk("a", 1, 600_000, true), mk("b", 1, 900_000, true), mk("c", 1, 700_000, false)},
		Alerts:    []scoring.Alert{open},
	})
	got := s.Neglected(10)
	if len(got) != 2 || got[0].AccountID != "b" || got[1].AccountID != "a" {
		t.Fatalf("neglected = %v, want b then a", ids(got))
	}
	if s.Tiers().Neglected != 2 {
		t.Errorf("neglected count = %d, want 2", s.Tiers().Neglected)
	}
	if d, _ := s.Account("a"); d.Alert == nil || d.Alert.AlertID != "x1" {
		t.Errorf("open alert = %+v", d.Alert)
	}
	if got := s.Neglected(1); len(got) != 1 || got[0].AccountID != "b" {
		t.Errorf("Neglected(1) = %v", ids(got))
	}

	// a is touched: a newer snapshot and the resolution arrive; an
	// out-of-order replay of the open record must not reopen it.
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{mk("a", 2, 600_000, false)}, Alerts: []scoring.Alert{resolved}})
	s.Observe(0, &sink.Batch{Alerts: []scoring.Alert{open}})
	if d, _ := s.Account("a"); d.Alert != nil {
		t.Errorf("alert still open after resolution: %+v", d.Alert)
	}
	if got := s.Neglected(10); len(got) != 1 || got[0].AccountID != "b" {
		t.Errorf("neglected = %v, want b", ids(got))
	}
	// A later episode opens again.
	again := open
	again.AlertID, again.OpenedAt = "x2", 300
	s.Observe(0, &sink.Batch{Alerts: []scoring.Alert{again}})
	if d, _ := s.Account("a"); d.Alert == nil || d.Alert.AlertID != "x2" {
		t.Errorf("second episode not open: %+v", d.Alert)
	}
}

func ids(ss []scoring.Snapshot) []string {
	out := make([]string, len(ss))
	for i := range ss {
		out[i] = ss[i].AccountID
	}
	return out
}

func TestUnknownAndEmpty(t *testing.T) {
	s := New()
	s.Observe(0, nil)
	s.Observe(0, &sink.Batch{})
	// A change without a snapshot does not make the account visible.
	s.Observe(0, &sink.Batch{Changes: []scoring.TierChange{change("ghost", 1, 1, scoring.TierNone, scoring.Major)}})
	if _, ok := s.Account("ghost"); ok {
		t.Error("account without snapshot is visible")
	}
	if _, ok := s.Account("nope"); ok {
		t.Error("unknown account found")
	}
	wantCounts(t, s, 0, nil)
}

func TestConcurrent(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for v := uint64(1); v <= 50; v++ {
				b := &sink.Batch{}
				for i := range 20 {
					b.Snapshots = append(b.Snapshots, snap(fmt.Sprintf("p%d-%d", p, i), v, scoring.Tier(1+int(v)%4), scoring.Quadrants[int(v)%4]))
				}
				s.Observe(p, b)
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				s.Tiers()
				s.Neglected(5)
				s.RecentChanges(5)
				s.Account(fmt.Sprintf("p%d-3", p))
			}
		}()
	}
	wg.Wait()
	wantCounts(t, s, 80, map[string]int{scoring.Tier(1 + 50%4).String(): 80})
}

func BenchmarkObserve(b *testing.B) {
	s := New()
	batch := &sink.Batch{}
	for i := range 5000 {
		batch.Snapshots = append(batch.Snapshots, snap(fmt.Sprintf("acc-%06d", i), 1, scoring.Named, scoring.LowCurrentLowPotential))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		for i := range batch.Snapshots {
			batch.Snapshots[i].Version = uint64(n + 2)
			batch.Snapshots[i].AsOf = int64(n + 2) // a new point of history each time
		}
		s.Observe(0, batch)
	}
}
