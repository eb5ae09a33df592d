package consumer

import (
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
)

// Between two seals an account gains at most one version from the clock:
// a second clock pass waits for the next seal (and then runs). That bound
// is what state.restoreVersions relies on after a crash.
func TestOneClockPassPerFlush(t *testing.T) {
	now := time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)
	p, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Sink: newMemSink(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorker(p, nil, 0)
	dec := event.NewDecoder(config.Default())
	for _, l := range []string{
		`{"event_id":"o1","type":"order","account_id":"a","occurred_at":"2025-01-15T00:00:00Z","order_id":"1","amount":100000}`,
		`{"event_id":"o2","type":"order","account_id":"a","occurred_at":"2025-02-15T00:00:00Z","order_id":"2","amount":100000}`,
	} {
		ev, err := dec.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		w.st.eng.Apply(&ev, now.UnixNano(), &w.out)
	}
	a := w.st.eng.Account("a")
	version := func(want uint64, what string) {
		t.Helper()
		if a.Version != want {
			t.Fatalf("%s: version %d, want %d", what, a.Version, want)
		}
	}
	version(2, "two orders")

	now = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC) // the first order left the window
	w.reevaluate(false)
	version(3, "a clock pass that changed the figures")
	now = time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC) // the second one too
	w.reevaluate(false)
	version(3, "a second clock pass before the seal")
	if !w.clk.waiting {
		t.Fatal("the second pass is not waiting for the seal")
	}
	w.gathering() // what seal does once it handed the flush over
	version(4, "the waiting pass, after the seal")

	// The end of a backfill emits every account again, with a new version
	// even when nothing but the clock changed; it waits too.
	w.reevaluate(true)
	version(4, "a catch-up pass in the flush that already had one")
	w.gathering()
	version(5, "the waiting catch-up pass, after the seal")
	if got := w.st.take(); len(got) != 1 || got[0] != a {
		t.Errorf("changed after the catch-up pass: %v, want the account", got)
	}
}
