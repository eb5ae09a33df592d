package consumer

import (
	"slices"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
)

func testState(tb testing.TB) *state {
	tb.Helper()
	return newState(scoring.NewParams(config.Default()), []string{"a", "b"}, "t.state", 3)
}

// account applies one activity to a new account of s and returns it.
func account(tb testing.TB, s *state, id string) *scoring.Account {
	tb.Helper()
	ev, err := event.NewDecoder(config.Default()).Decode([]byte(`{"event_id":"e-` + id + `","type":"activity","kind":"call","account_id":"` + id + `","occurred_at":"2026-06-01T00:00:00Z"}`))
	if err != nil {
		tb.Fatal(err)
	}
	var out scoring.Output
	a, _ := s.eng.Apply(&ev, testNow.UnixNano(), &out)
	return a
}

// A record carries, per input topic, the offsets its account includes:
// the position, or the restored floor where that is higher. Restoring it
// gives back the account, and its floors say which redelivered events are
// already applied, until reading has passed them all.
func TestStateRecordsAndFloors(t *testing.T) {
	s := testState(t)
	a := account(t, s, "acc-1")
	s.floor["acc-1"] = []int64{7, -1} // as if restored with offset 7 of topic a
	buf, mid := s.appendRecord(nil, a, []int64{5, 9}, make([]int64, 2))
	if string(buf[:mid]) != "acc-1" {
		t.Fatalf("record key %q", buf[:mid])
	}

	r := testState(t)
	var restored []string
	if err := r.restore(map[string][]byte{"acc-1": buf[mid:]}, func(a *scoring.Account) { restored = append(restored, a.ID) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restored, []string{"acc-1"}) || r.eng.Account("acc-1") == nil {
		t.Fatalf("restored %v", restored)
	}
	if got := r.floor["acc-1"]; !slices.Equal(got, []int64{7, 9}) {
		t.Errorf("floors %v, want [7 9]: the higher of position and floor per topic", got)
	}
	for _, c := range []struct {
		ti   int
		off  int64
		id   string
		want bool
	}{
		{0, 7, "acc-1", true}, {0, 8, "acc-1", false}, {1, 9, "acc-1", true}, {1, 10, "acc-1", false},
		{0, 3, "acc-2", false}, // another account's event
	} {
		if got := r.applied(c.ti, c.off, c.id); got != c.want {
			t.Errorf("applied(topic %d, offset %d, %s) = %v, want %v", c.ti, c.off, c.id, got, c.want)
		}
	}
	r.passed([]int64{7, 8})
	if len(r.floor) == 0 {
		t.Error("floors dropped before reading passed them")
	}
	r.passed([]int64{7, 9})
	if len(r.floor) != 0 {
		t.Error("floors kept after reading passed them")
	}

	if err := r.restore(map[string][]byte{"acc-2": buf[mid:]}, func(*scoring.Account) {}); err == nil || !strings.Contains(err.Error(), `key "acc-2" holds account "acc-1"`) {
		t.Errorf("a record under another key: %v", err)
	}
	if err := r.restore(map[string][]byte{"x": []byte("junk")}, func(*scoring.Account) {}); err == nil || !strings.Contains(err.Error(), "t.state partition 3") {
		t.Errorf("a record that is not Pyramid's: %v", err)
	}
}

// The changed accounts come out once each, in the order they first
// changed, and the next seal starts afresh.
func TestStateChangedOnceInOrder(t *testing.T) {
	s := testState(t)
	x, y := account(t, s, "x"), account(t, s, "y")
	for _, a := range []*scoring.Account{y, x, y, y} {
		s.changed(a)
	}
	var ids []string
	for _, a := range s.take() {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []string{"y", "x"}) {
		t.Errorf("changed %v, want [y x]", ids)
	}
	s.changed(x)
	if got := s.take(); len(got) != 1 || got[0] != x {
		t.Errorf("after a take, changed %v, want x alone", got)
	}
	if got := s.take(); len(got) != 0 {
		t.Errorf("%d changed with nothing changed", len(got))
	}
}
