package event_test

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
)

// FuzzDecode checks the hand-written scanner against encoding/json: it never
// panics, accepts only valid JSON, and reads the same strings the standard
// library reads.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		obj(order("12.34")),
		obj(with(with(order("-1.015"), "currency", `"EUR"`), "opportunity_id", `"o-1"`)),
		obj(with(opportunity("proposal", "1e3"), "probability", "0.25")),
		obj(opportunity("closed_won", "0")),
		obj(with(activity(), "owner_id", `"rep-1"`)),
		obj(account(kv{"name", `"caf\u00e9 \ud83d\ude00"`}, kv{"owner_id", "null"}, kv{"wallet", "5e5"},
			kv{"tier_override", `"major"`}, kv{"snooze_alerts_until", `"2026-04-01T00:00:00+02:00"`})),
		obj(append(activity(), kv{"x", `{"a":[1,-2.5e-3,true,false,null,"s\"\\"]}`})),
		obj(append(activity(), kv{"event_id", `"dup"`})),
		`{"event\u005fid":"e","type":"activity","account_id":"a","occurred_at":"2026-03-01T12:00:00.5-01:00","kind":"k"}`,
		`{"event_id":"e","type":"activity","account_id":"a","occurred_at":"2024-02-29T23:59:59Z","kind":"k"}`,
		`{}`, ``, `[]`, `null`, `{"x":t`, `{"x":f`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}",
		`{"event_id":"e","type":"order","account_id":"a","occurred_at":"2026-03-01T12:00:00Z","order_id":"o","amount":1e13}`,
		`{"event_id":"e","type":"order","account_id":"a","occurred_at":"2026-03-01T12:00:00Z","order_id":"o","amount":2061088723319.50,"currency":"USD"}`,
		`{"event_id":"e","type":"account","account_id":"a","occurred_at":"2026-03-01T12:00:00Z","wallet":111731843.58,"currency":"USD"}`,
	} {
		f.Add([]byte(seed))
	}
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.1}
	d := event.NewDecoder(cfg)
	// A second decoder with a large rate, to push conversions to the limit.
	big := config.Default()
	big.Currency = "LBP"
	big.FXRates = map[string]float64{"USD": 89500, "EUR": 97000.5}
	dBig := event.NewDecoder(big)
	f.Fuzz(func(t *testing.T, b []byte) {
		if ev, err := dBig.Decode(b); err == nil {
			checkMoney(t, &ev)
		}
		ev, err := d.Decode(b)
		valid := json.Valid(b)
		if err != nil {
			if event.ReasonOf(err) == "" {
				t.Fatalf("error %T %v is no *event.Error", err, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message is not UTF-8: %q", err)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", b, err)
		}
		for k, got := range map[string]string{"event_id": ev.ID, "type": ev.Type.String(), "account_id": ev.AccountID} {
			if want, _ := m[k].(string); want != got {
				t.Fatalf("%s: Decode read %q, encoding/json %q, input %q", k, got, want, b)
			}
		}
		if n := len(ev.AccountID); n == 0 || n > 128 || len(ev.ID) == 0 || len(ev.ID) > 128 {
			t.Fatalf("accepted bad id lengths: %+v", ev)
		}
		checkMoney(t, &ev)
		// Whatever path parsed occurred_at, it agrees with the standard parser.
		if at, ok := m["occurred_at"].(string); !ok {
			t.Fatalf("accepted without occurred_at: %q", b)
		} else if want, err := time.Parse(time.RFC3339Nano, at); err != nil || want.UnixNano() != ev.OccurredAt {
			t.Fatalf("occurred_at %q read as %v, time.Parse gives %v (%v)", at, ev.Time(), want, err)
		}
		if ev.Time().Year() < 2000 {
			t.Fatalf("accepted time %v", ev.Time())
		}
	})
}

func checkMoney(t *testing.T, ev *event.Event) {
	t.Helper()
	for _, c := range []money.Cents{ev.Amount, ev.Wallet.V} {
		if c > money.MaxAbs || c < -money.MaxAbs {
			t.Fatalf("accepted amount %v beyond 1e13: %+v", c, ev)
		}
	}
	if ev.Wallet.V < 0 || (ev.Type == event.Opportunity && ev.Amount < 0) {
		t.Fatalf("accepted a negative wallet or opportunity amount: %+v", ev)
	}
	if ev.ProbPPM < 0 || ev.ProbPPM > 1_000_000 {
		t.Fatalf("accepted probability %d ppm", ev.ProbPPM)
	}
}
