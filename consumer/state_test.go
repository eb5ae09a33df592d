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
	return newState(scoring.NewParams(config.Default()), []string{"a", "b"}, "t.state", 3, newSizeGuard(StateMaxMessageBytes, 20, []string{"a", "b"}))
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

// restored returns a state restored from recs (key to value).
func restored(tb testing.TB, recs map[string][]byte) *state {
	tb.Helper()
	s := testState(tb)
	if err := s.restore(recs, func(*scoring.Account) {}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// record returns a's changelog record as s would write it.
func record(s *state, a *scoring.Account) (key string, value []byte) {
	buf, mid := s.appendRecord(nil, a, []int64{5, 9}, make([]int64, 2))
	return string(buf[:mid]), buf[mid:]
}

// A partition is clean when its last owner's last act was a clean marker,
// or when it has no state at all; then versions go on where they were.
// After a crash every version skips what there is to redo plus two, new
// accounts start after the skip, and skips add up over crashes: an account
// restored from an older record skips everything since.
func TestStateVersionsAfterCrash(t *testing.T) {
	s := testState(t)
	a := account(t, s, "acc-1")
	if a.Version != 1 {
		t.Fatalf("version %d", a.Version)
	}
	k, v := record(s, a)
	old := map[string][]byte{k: v} // no marker: written by a release before markers

	if r := restored(t, nil); !r.clean() {
		t.Error("a partition without state or marker is not clean")
	}
	r := restored(t, old)
	if r.clean() {
		t.Error("state without a marker is clean: the owner that wrote it may have crashed")
	}
	r.restoreVersions(false, 10)
	if got := r.eng.Account("acc-1").Version; got != 13 {
		t.Errorf("after a crash with 10 events to redo: version %d, want 1+10+2", got)
	}
	if b := account(t, r, "acc-new"); b.Version != 13 {
		t.Errorf("a new account after the crash starts at version %d, want 12+1", b.Version)
	}
	k2, v2 := record(r, r.eng.Account("acc-1"))
	dirty := r.markerRecord(false)

	// A clean hand-over skips nothing, and records from this owner carry
	// its base.
	c := restored(t, map[string][]byte{k2: v2, markerKey: r.markerRecord(true).Value})
	if !c.clean() {
		t.Fatal("a clean marker is not clean")
	}
	c.restoreVersions(true, 1000)
	if got := c.eng.Account("acc-1").Version; got != 13 {
		t.Errorf("after a clean hand-over: version %d, want 13", got)
	}
	if b := account(t, c, "acc-2"); b.Version != 13 {
		t.Errorf("a new account after a clean hand-over starts at version %d, want 13", b.Version)
	}

	// A second crash, the account's newest record still the old one (its
	// record from the first crash's owner never written): it skips both.
	d := restored(t, map[string][]byte{k: v, markerKey: dirty.Value})
	if d.clean() {
		t.Fatal("an in-use marker is clean")
	}
	d.restoreVersions(false, 5)
	if got := d.eng.Account("acc-1").Version; got != 1+12+7 {
		t.Errorf("after two crashes: version %d, want 1+12+7", got)
	}
	// The record of the first crash's owner skips only the second skip.
	e := restored(t, map[string][]byte{k2: v2, markerKey: dirty.Value})
	e.restoreVersions(false, 5)
	if got := e.eng.Account("acc-1").Version; got != 13+7 {
		t.Errorf("after two crashes from the newer record: version %d, want 13+7", got)
	}
}

// Records of header version 1, written before version skips existed, are
// still read, with nothing skipped.
func TestStateReadsHeaderVersion1(t *testing.T) {
	s := testState(t)
	a := account(t, s, "acc-1")
	v1 := append([]byte{headerMagic, headerVersion1}, appendOffsets(nil, s.topics, []int64{4, -1})...)
	v1 = scoring.MarshalAccount(v1, a)
	pos, base, got, err := parseRecord(v1, s.topics)
	if err != nil || base != 0 || !slices.Equal(pos, []int64{4, -1}) || got.ID != "acc-1" || got.Version != 1 {
		t.Fatalf("parseRecord(v1) = %v, %d, %+v, %v", pos, base, got, err)
	}
	if _, err := parseMarker([]byte("M\x09\x00\x00")); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a marker of a newer version: %v", err)
	}
}

// With capped tiers a flush can also hold one capacity ranking that moved
// accounts, so a crash skips one version more.
func TestStateVersionsAfterCrashWithCaps(t *testing.T) {
	s := testState(t)
	a := account(t, s, "acc-1")
	k, v := record(s, a)
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 5
	r := newState(scoring.NewParams(cfg), []string{"a", "b"}, "t.state", 3, newSizeGuard(StateMaxMessageBytes, 20, []string{"a", "b"}))
	if err := r.restore(map[string][]byte{k: v}, func(*scoring.Account) {}); err != nil {
		t.Fatal(err)
	}
	r.restoreVersions(false, 10)
	if got := r.eng.Account("acc-1").Version; got != 1+10+3 {
		t.Errorf("after a crash with 10 events to redo and caps: version %d, want 1+10+3", got)
	}
}
