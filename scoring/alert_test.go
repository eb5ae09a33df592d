package scoring_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/scoring"
)

const day = 24 * time.Hour

// bigAccount makes a major, high-potential account last touched at t0.
func bigAccount(w *world, t0 string) {
	w.account("a", t0, `"wallet":5000000,"owner_id":"rep-1","name":"Acme"`)
	w.touch("a", t0)
}

func at(s string, d time.Duration) string {
	return time.Unix(0, ts(s)).Add(d).UTC().Format(time.RFC3339)
}

func TestAlertLifecycle(t *testing.T) {
	const t0 = "2026-01-01T00:00:00Z"
	limit := 14 * day // major
	moment := ts(t0) + int64(limit)

	t.Run("touch exactly at the limit is not neglected", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		if s := w.eval("a", at(t0, limit)); s.Neglected || len(w.alerts) != 0 {
			t.Fatalf("neglected at exactly the limit: %+v", w.alerts)
		}
		if s := w.eval("a", at(t0, limit+time.Second)); !s.Neglected || len(w.alerts) != 1 {
			t.Fatalf("not neglected one second past the limit")
		}
		a := w.alerts[0]
		if a.Status != scoring.StatusOpen || a.OpenedAt != moment || a.AlertID != scoring.AlertID("a", "neglected", moment) || a.Tier != scoring.Major || a.OwnerID != "rep-1" || a.AccountName != "Acme" || a.LastTouchKind != "call" {
			t.Fatalf("open alert = %+v", a)
		}
	})

	t.Run("opened once, at a moment independent of when we look", func(t *testing.T) {
		early, late := newWorld(t, nil), newWorld(t, nil)
		bigAccount(early, t0)
		bigAccount(late, t0)
		early.eval("a", at(t0, 15*day))
		early.eval("a", at(t0, 16*day))
		early.eval("a", at(t0, 40*day))
		late.eval("a", at(t0, 40*day))
		if len(early.alerts) != 1 || len(late.alerts) != 1 || early.alerts[0].AlertID != late.alerts[0].AlertID || early.alerts[0].OpenedAt != moment {
			t.Fatalf("early %+v\nlate %+v", early.alerts, late.alerts)
		}
	})

	t.Run("a touch resolves; re-opening gets a new id", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.eval("a", at(t0, 20*day))
		w.touch("a", at(t0, 21*day))
		if len(w.alerts) != 2 || w.alerts[1].Status != scoring.StatusResolved || w.alerts[1].ResolvedAt != ts(at(t0, 21*day)) || w.alerts[1].AlertID != w.alerts[0].AlertID {
			t.Fatalf("resolve on touch: %+v", w.alerts)
		}
		w.eval("a", at(t0, 40*day))
		if len(w.alerts) != 3 || w.alerts[2].Status != scoring.StatusOpen || w.alerts[2].AlertID == w.alerts[0].AlertID || w.alerts[2].OpenedAt != ts(at(t0, 35*day)) {
			t.Fatalf("re-open: %+v", w.alerts)
		}
	})

	t.Run("a neglect nobody watched is recorded when the touch arrives", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.touch("a", at(t0, 30*day)) // no evaluation in between
		if len(w.alerts) != 2 || w.alerts[0].Status != scoring.StatusOpen || w.alerts[0].OpenedAt != moment || w.alerts[1].Status != scoring.StatusResolved {
			t.Fatalf("unwatched episode: %+v", w.alerts)
		}
	})

	t.Run("snooze resolves and holds; expiry opens a new episode at its end", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.eval("a", at(t0, 20*day))
		w.apply("a", at(t0, 21*day), "", `"type":"account","snooze_alerts_until":"`+at(t0, 30*day)+`"`)
		if len(w.alerts) != 2 || w.alerts[1].Status != scoring.StatusResolved {
			t.Fatalf("snooze did not resolve: %+v", w.alerts)
		}
		if s := w.eval("a", at(t0, 29*day)); s.Neglected || len(w.alerts) != 2 {
			t.Fatalf("alert while snoozed")
		}
		w.eval("a", at(t0, 31*day))
		end := ts(at(t0, 30*day))
		if len(w.alerts) != 3 || w.alerts[2].Status != scoring.StatusOpen || w.alerts[2].OpenedAt != end ||
			w.alerts[2].AlertID != scoring.AlertID("a", "neglected", end) || w.alerts[2].AlertID == w.alerts[0].AlertID {
			t.Fatalf("after snooze: %+v", w.alerts)
		}
	})

	t.Run("potential dropping resolves", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.eval("a", at(t0, 20*day))
		w.apply("a", at(t0, 20*day), at(t0, 21*day), `"type":"account","wallet":100000`) // not a touch
		if len(w.alerts) != 2 || w.alerts[1].Status != scoring.StatusResolved {
			t.Fatalf("potential drop: %+v", w.alerts)
		}
	})

	t.Run("tier change while open: stays open if still neglected, resolves if the new limit is not exceeded", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.eval("a", at(t0, 20*day))
		// Override to named (limit 30 days): 20 days untouched is fine there.
		w.apply("a", at(t0, 20*day), at(t0, 20*day), `"type":"account","tier_override":"named"`)
		if len(w.alerts) != 2 || w.alerts[1].Status != scoring.StatusResolved {
			t.Fatalf("override to a longer limit should resolve: %+v", w.alerts)
		}
		w2 := newWorld(t, nil)
		bigAccount(w2, t0)
		w2.eval("a", at(t0, 40*day))
		w2.apply("a", at(t0, 40*day), at(t0, 40*day), `"type":"account","tier_override":"named"`)
		if len(w2.alerts) != 1 || w2.alerts[0].Status != scoring.StatusOpen {
			t.Fatalf("still neglected under named: %+v", w2.alerts)
		}
	})

	t.Run("low potential is never neglected", func(t *testing.T) {
		w := newWorld(t, nil)
		w.order("a", t0, "2000000", "") // major, but no potential
		if s := w.eval("a", at(t0, 100*day)); s.Neglected || len(w.alerts) != 0 {
			t.Fatalf("low-potential account alerted")
		}
	})
}

// The alert moment is the latest of last touch + limit and the end of a
// snooze covering that time: no alert ever opens inside a snooze, and an
// alert re-opened after a snooze is a new episode with its own id.
func TestAlertMomentAfterSnooze(t *testing.T) {
	const t0 = "2026-01-01T00:00:00Z"
	limitEnd := at(t0, 14*day) // major
	tests := []struct {
		name   string
		snooze string // snooze_alerts_until, set at t0 + 1 day
		look   []time.Duration
		opened string
	}{
		{"snooze covers the neglect moment", at(t0, 30*day), []time.Duration{20 * day, 31 * day}, at(t0, 30*day)},
		{"looked at only after the snooze", at(t0, 30*day), []time.Duration{45 * day}, at(t0, 30*day)},
		{"snooze ends before the neglect moment", at(t0, 10*day), []time.Duration{15 * day}, limitEnd},
		{"snooze ends exactly at the neglect moment", limitEnd, []time.Duration{15 * day}, limitEnd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			bigAccount(w, t0)
			w.apply("a", at(t0, day), "", `"type":"account","snooze_alerts_until":"`+tt.snooze+`"`)
			for _, d := range tt.look {
				w.eval("a", at(t0, d))
			}
			if len(w.alerts) != 1 || w.alerts[0].Status != scoring.StatusOpen {
				t.Fatalf("alerts: %+v", w.alerts)
			}
			if a := w.alerts[0]; a.OpenedAt != ts(tt.opened) || a.AlertID != scoring.AlertID("a", "neglected", ts(tt.opened)) {
				t.Errorf("opened_at %s, want %s", scoring.FormatTime(a.OpenedAt), tt.opened)
			}
		})
	}
	t.Run("an episode nobody watched, recorded by the touch that ends it", func(t *testing.T) {
		w := newWorld(t, nil)
		bigAccount(w, t0)
		w.apply("a", at(t0, day), "", `"type":"account","snooze_alerts_until":"`+at(t0, 30*day)+`"`)
		w.touch("a", at(t0, 40*day))
		if len(w.alerts) != 2 || w.alerts[0].OpenedAt != ts(at(t0, 30*day)) || w.alerts[1].Status != scoring.StatusResolved {
			t.Fatalf("alerts: %+v", w.alerts)
		}
	})
}

func TestAlertCarriesLinkAndContext(t *testing.T) {
	cfg := config.Default()
	cfg.AlertLinkTemplate = "https://crm.example.com/accounts/{account_id}?owner={owner_id}"
	w := newWorld(t, cfg)
	w.account("a b/1", "2026-01-01T00:00:00Z", `"wallet":5000000,"owner_id":"rep 7","name":"Acme"`)
	w.apply("a b/1", "2026-01-01T00:00:00Z", "", `"type":"activity","kind":"visit"`)
	w.eval("a b/1", "2026-01-20T00:00:00Z")
	if len(w.alerts) != 1 {
		t.Fatalf("alerts: %+v", w.alerts)
	}
	a := w.alerts[0]
	if a.Link != "https://crm.example.com/accounts/a%20b%2F1?owner=rep%207" {
		t.Errorf("link = %q", a.Link)
	}
	if a.AccountName != "Acme" || a.OwnerID != "rep 7" || a.LastTouchKind != "visit" || a.DaysSinceTouch != 19 || a.Potential != cents(5000000) {
		t.Errorf("alert context = %+v", a)
	}
}

// AlertID follows docs/model.md: the first 128 bits of SHA-256 over the account
// id, a zero byte, the kind, a zero byte and the moment (Unix ns,
// big-endian), in hex; long account ids included.
func TestAlertIDDefinition(t *testing.T) {
	for _, id := range []string{"acc-1", "", strings.Repeat("x", 300)} {
		moment := int64(1767225600123456789)
		var m [8]byte
		binary.BigEndian.PutUint64(m[:], uint64(moment))
		sum := sha256.Sum256([]byte(id + "\x00neglected\x00" + string(m[:])))
		if got, want := scoring.AlertID(id, "neglected", moment), hex.EncodeToString(sum[:16]); got != want {
			t.Errorf("AlertID(%.10q…) = %s, want %s", id, got, want)
		}
	}
}
