package view

import (
	"fmt"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

func valued(id string, v uint64, at int64, cur int64) scoring.Snapshot {
	sn := snap(id, v, scoring.Named, scoring.LowCurrentLowPotential)
	sn.AsOf, sn.CurrentValue, sn.PotentialValue = at, money.FromUnits(cur), money.FromUnits(2*cur)
	return sn
}

func TestHistoryKeepsValuesInTimeOrder(t *testing.T) {
	s := New()
	h := int64(time.Hour)
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("a", 1, 10*h, 100)}})
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("a", 3, 30*h, 300)}})
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("a", 2, 20*h, 200)}}) // older version: ignored
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("a", 4, 25*h, 250)}}) // the clock went back
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("a", 5, 30*h, 350)}}) // same moment: replaces
	d, _ := s.Account("a")
	want := []Point{{10 * h, 100, 200}, {25 * h, 250, 500}, {30 * h, 350, 700}}
	if fmt.Sprint(d.History) != fmt.Sprint(want) {
		t.Errorf("history %v, want %v", d.History, want)
	}
}

// A producer hammering one account: the history stays bounded and still
// spans from the first snapshot to the last.
func TestHistoryBoundedPerAccount(t *testing.T) {
	s := New()
	const n = 100_000
	for v := 1; v <= n; v++ {
		// a quiet year, then a burst of snapshots in one minute
		at := int64(v) * int64(24*time.Hour)
		if v > 365 {
			at = 365*int64(24*time.Hour) + int64(v)*int64(time.Millisecond)
		}
		s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{valued("hot", uint64(v), at, int64(v))}})
	}
	d, _ := s.Account("hot")
	if len(d.History) > PointsPerAccount || len(d.History) < PointsPerAccount/2 {
		t.Fatalf("kept %d points, want %d..%d", len(d.History), PointsPerAccount/2, PointsPerAccount)
	}
	if d.History[0].Current != 1 || d.History[len(d.History)-1].Current != n {
		t.Errorf("history spans %v..%v, want 1..%d", d.History[0].Current, d.History[len(d.History)-1].Current, n)
	}
	// The year before the burst keeps at least a third of the points.
	inYear := 0
	for _, p := range d.History {
		if p.At <= 365*int64(24*time.Hour) {
			inYear++
		}
	}
	if inYear < len(d.History)/3 {
		t.Errorf("only %d of %d points cover the quiet year; the burst pushed them out", inYear, len(d.History))
	}
	if s.hist.points != len(d.History) {
		t.Errorf("point count %d, history %d", s.hist.points, len(d.History))
	}
}

// A producer creating ever more accounts: the total stays under the
// budget, and the newest accounts still get a history.
func TestHistoryBoundedInTotal(t *testing.T) {
	const budget = 1000
	s := NewWithHistory(budget)
	for v := uint64(1); v <= 20; v++ {
		for i := range 500 {
			b := &sink.Batch{Snapshots: []scoring.Snapshot{valued(fmt.Sprintf("acc-%03d", i), v, int64(v)*int64(time.Hour), int64(v))}}
			s.Observe(i%3, b)
		}
		if s.hist.points > budget {
			t.Fatalf("round %d: %d points kept, budget %d", v, s.hist.points, budget)
		}
	}
	total, empty := 0, 0
	for i := range 500 {
		d, ok := s.Account(fmt.Sprintf("acc-%03d", i))
		if !ok {
			t.Fatalf("acc-%03d missing", i)
		}
		total += len(d.History)
		if len(d.History) == 0 {
			empty++
		}
	}
	// Every account was just updated, so each has at least its newest
	// point unless the round robin took it since.
	t.Logf("%d points over 500 accounts, %d without history", total, empty)
	if empty > 250 {
		t.Errorf("%d of 500 accounts have no history", empty)
	}
	if total != s.hist.points {
		t.Errorf("accounts hold %d points, counter says %d", total, s.hist.points)
	}
	if total < budget/2 {
		t.Errorf("only %d points kept of a budget of %d", total, budget)
	}
	// Dropping partitions gives everything back.
	for p := range 3 {
		s.DropPartition(p)
	}
	if s.hist.points != 0 || len(s.hist.owners) != 0 {
		t.Errorf("after dropping every partition: %d points, %d owners", s.hist.points, len(s.hist.owners))
	}
}

func TestAlertsKept(t *testing.T) {
	s := New()
	s.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{snap("a", 1, scoring.Major, "")}})
	for i := range 15 {
		a := scoring.Alert{AlertID: fmt.Sprintf("al-%02d", i), AccountID: "a", Status: scoring.StatusOpen, OpenedAt: int64(100 * (i + 1)), Version: 1}
		s.Observe(0, &sink.Batch{Alerts: []scoring.Alert{a}})
		a.Status, a.ResolvedAt, a.Version = scoring.StatusResolved, a.OpenedAt+50, 2
		if i < 14 {
			s.Observe(0, &sink.Batch{Alerts: []scoring.Alert{a}})
		}
	}
	// A stale open record of an old alert must not undo its resolution.
	s.Observe(0, &sink.Batch{Alerts: []scoring.Alert{{AlertID: "al-13", AccountID: "a", Status: scoring.StatusOpen, OpenedAt: 1400, Version: 1}}})
	d, _ := s.Account("a")
	if len(d.Alerts) != AlertsPerAccount {
		t.Fatalf("kept %d alerts, want %d", len(d.Alerts), AlertsPerAccount)
	}
	if d.Alerts[0].AlertID != "al-14" || d.Alerts[0].Status != scoring.StatusOpen || d.Alerts[1].Status != scoring.StatusResolved ||
		d.Alerts[9].AlertID != "al-05" {
		t.Errorf("alerts %+v", d.Alerts)
	}
}

func TestSearchAndScan(t *testing.T) {
	s := New()
	b := &sink.Batch{}
	for i, name := range []string{"Acme GmbH", "ACME Corp", "Globex", "Initech", "Müller AG"} {
		sn := valued(fmt.Sprintf("acc-%d", i), 1, 1, int64(1000*(i+1)))
		sn.Name = name
		b.Snapshots = append(b.Snapshots, sn)
	}
	s.Observe(0, &sink.Batch{Snapshots: b.Snapshots[:3]})
	s.Observe(1, &sink.Batch{Snapshots: b.Snapshots[3:]})

	for _, tt := range []struct {
		q    string
		n    int
		want string
	}{
		{"acme", 10, "[acc-1 acc-0]"}, // by value, case ignored
		{"  ACME ", 1, "[acc-1]"},
		{"acc-2", 10, "[acc-2]"},
		{"acc", 10, "[acc-4 acc-3 acc-2 acc-1 acc-0]"},
		{"müller", 10, "[acc-4]"},
		{"MÜLLER", 10, "[acc-4]"},
		{"nobody", 10, "[]"},
		{"", 10, "[]"},
	} {
		if got := fmt.Sprint(ids(s.Search(tt.q, tt.n))); got != tt.want {
			t.Errorf("Search(%q, %d) = %s, want %s", tt.q, tt.n, got, tt.want)
		}
	}
	// The exact id comes first whatever its value.
	sn := valued("acc", 1, 1, 1)
	s.Observe(1, &sink.Batch{Snapshots: []scoring.Snapshot{sn}})
	if got := ids(s.Search("acc", 2)); fmt.Sprint(got) != "[acc acc-4]" {
		t.Errorf("Search(acc) = %v, want the exact id first", got)
	}
	long := string(make([]byte, 10*MaxQuery))
	if got := s.Search(long, 5); len(got) != 0 {
		t.Errorf("a long query matched %v", ids(got))
	}

	seen := map[string]bool{}
	s.Scan(func(sn *scoring.Snapshot) { seen[sn.AccountID] = true })
	if len(seen) != 6 {
		t.Errorf("Scan saw %v", seen)
	}
}
