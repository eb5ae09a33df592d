package event_test

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
)

// kv is one member of a test event, with its value as raw JSON text.
type kv struct{ k, v string }

// obj renders members in order as a JSON object.
func obj(m []kv) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + p.k + `":` + p.v)
	}
	b.WriteByte('}')
	return b.String()
}

// with returns m with member k set to v (appended when absent); v == ""
// removes it.
func with(m []kv, k, v string) []kv {
	out := make([]kv, 0, len(m)+1)
	found := false
	for _, p := range m {
		if p.k == k {
			found = true
			if v == "" {
				continue
			}
			p.v = v
		}
		out = append(out, p)
	}
	if !found && v != "" {
		out = append(out, kv{k, v})
	}
	return out
}

func common(typ string) []kv {
	return []kv{
		{"event_id", `"e-1"`},
		{"type", `"` + typ + `"`},
		{"account_id", `"acc-1"`},
		{"occurred_at", `"2026-03-01T12:00:00Z"`},
	}
}

func order(amount string) []kv {
	return append(common("order"), kv{"order_id", `"ord-1"`}, kv{"amount", amount})
}

func opportunity(stage, amount string) []kv {
	return append(common("opportunity"), kv{"opportunity_id", `"o-9"`}, kv{"stage", `"` + stage + `"`}, kv{"amount", amount})
}

func activity() []kv { return append(common("activity"), kv{"kind", `"call"`}) }

func account(m ...kv) []kv { return append(common("account"), m...) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

// fxConfig is the default configuration plus EUR at 1.1 reporting units.
func fxConfig(tb testing.TB) *config.Config {
	tb.Helper()
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.1}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func decode(tb testing.TB, in string) (event.Event, error) {
	tb.Helper()
	return event.NewDecoder(fxConfig(tb)).Decode([]byte(in))
}

// mustDecode decodes in and fails the test on a rejection.
func mustDecode(tb testing.TB, in string) event.Event {
	tb.Helper()
	ev, err := decode(tb, in)
	if err != nil {
		tb.Fatalf("Decode(%s): %v", in, err)
	}
	return ev
}

// wantReject checks the rejection reason and that every fragment of the
// message is present.
func wantReject(tb testing.TB, in string, reason string, msg ...string) {
	tb.Helper()
	_, err := decode(tb, in)
	if err == nil {
		tb.Fatalf("Decode(%.200s) accepted, want %s", in, reason)
	}
	var e *event.Error
	if !errors.As(err, &e) {
		tb.Fatalf("Decode(%.200s): error %T %v is no *event.Error", in, err, err)
	}
	if e.Reason != reason {
		tb.Errorf("Decode(%.200s): reason %q (%s), want %q", in, e.Reason, e.Msg, reason)
	}
	if event.ReasonOf(err) != e.Reason {
		tb.Errorf("ReasonOf = %q, want %q", event.ReasonOf(err), e.Reason)
	}
	if strings.ContainsAny(e.Msg, "\n\r") {
		tb.Errorf("message is not one line: %q", e.Msg)
	}
	for _, m := range msg {
		if !strings.Contains(e.Msg, m) {
			tb.Errorf("Decode(%.200s): message %q does not contain %q", in, e.Msg, m)
		}
	}
}

func TestValidEvents(t *testing.T) {
	type tc struct {
		name string
		in   []kv
		want event.Event
	}
	base := event.Event{ID: "e-1", AccountID: "acc-1", OccurredAt: t0}
	mk := func(f func(e *event.Event)) event.Event {
		e := base
		f(&e)
		return e
	}
	tests := []tc{
		{"order", order("12.34"), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount = event.Order, "ord-1", 1234
		})},
		{"order with opportunity", with(order("5"), "opportunity_id", `"o-1"`), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount, e.OpportunityID = event.Order, "ord-1", 500, "o-1"
		})},
		{"order null opportunity_id", with(order("5"), "opportunity_id", `null`), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount = event.Order, "ord-1", 500
		})},
		{"order negative amount (a return)", order("-99.95"), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount = event.Order, "ord-1", -9995
		})},
		{"order amount 1e13", order("1e13"), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount = event.Order, "ord-1", money.MaxAbs
		})},
		{"order amount -1e13", order("-10000000000000.00"), mk(func(e *event.Event) {
			e.Type, e.OrderID, e.Amount = event.Order, "ord-1", -money.MaxAbs
		})},
		{"opportunity default probability", opportunity("proposal", "1000"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "proposal", 100000, 500_000
		})},
		{"opportunity null probability is the default", with(opportunity("negotiation", "1000"), "probability", "null"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "negotiation", 100000, 750_000
		})},
		{"opportunity probability 0", with(opportunity("proposal", "1000"), "probability", "0"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "proposal", 100000, 0
		})},
		{"opportunity probability 1", with(opportunity("proposal", "1000"), "probability", "1"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "proposal", 100000, 1_000_000
		})},
		{"opportunity probability 1.0e0", with(opportunity("proposal", "1000"), "probability", "1.0e0"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "proposal", 100000, 1_000_000
		})},
		{"opportunity probability 0.333", with(opportunity("proposal", "1000"), "probability", "0.333"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "proposal", 100000, 333_000
		})},
		{"opportunity amount 0", opportunity("closed_lost", "0"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "closed_lost", 0, 0
		})},
		{"opportunity closed_won", opportunity("closed_won", "7.5"), mk(func(e *event.Event) {
			e.Type, e.OpportunityID, e.Stage, e.Amount, e.ProbPPM = event.Opportunity, "o-9", "closed_won", 750, 1_000_000
		})},
		{"activity", activity(), mk(func(e *event.Event) { e.Type, e.Kind = event.Activity, "call" })},
		{"activity with owner", with(activity(), "owner_id", `"rep-7"`), mk(func(e *event.Event) {
			e.Type, e.Kind, e.OwnerID = event.Activity, "call", "rep-7"
		})},
		{"activity free-text kind", with(activity(), "kind", `"site visit"`), mk(func(e *event.Event) {
			e.Type, e.Kind = event.Activity, "site visit"
		})},
		{"account with nothing", account(), mk(func(e *event.Event) { e.Type = event.Account })},
		{"account with values", account(
			kv{"name", `"ACME"`}, kv{"owner_id", `"rep-1"`}, kv{"wallet", `200000.5`},
			kv{"tier_override", `"named"`}, kv{"snooze_alerts_until", `"2026-04-01T00:00:00+02:00"`}),
			mk(func(e *event.Event) {
				e.Type = event.Account
				e.Name = event.Field[string]{Set: true, V: "ACME"}
				e.Owner = event.Field[string]{Set: true, V: "rep-1"}
				e.Wallet = event.Field[money.Cents]{Set: true, V: 20000050}
				e.TierOverride = event.Field[string]{Set: true, V: "named"}
				e.SnoozeUntil = event.Field[int64]{Set: true, V: time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC).UnixNano()}
			})},
		{"account with nulls", account(
			kv{"name", `null`}, kv{"owner_id", `null`}, kv{"wallet", `null`},
			kv{"tier_override", `null`}, kv{"snooze_alerts_until", `null`}),
			mk(func(e *event.Event) {
				e.Type = event.Account
				e.Name = event.Field[string]{Set: true, Null: true}
				e.Owner = event.Field[string]{Set: true, Null: true}
				e.Wallet = event.Field[money.Cents]{Set: true, Null: true}
				e.TierOverride = event.Field[string]{Set: true, Null: true}
				e.SnoozeUntil = event.Field[int64]{Set: true, Null: true}
			})},
		{"account wallet 0 and empty name", account(kv{"wallet", `0`}, kv{"name", `""`}), mk(func(e *event.Event) {
			e.Type = event.Account
			e.Wallet = event.Field[money.Cents]{Set: true}
			e.Name = event.Field[string]{Set: true}
		})},
		{"account each tier_override", account(kv{"tier_override", `"mass_market"`}), mk(func(e *event.Event) {
			e.Type = event.Account
			e.TierOverride = event.Field[string]{Set: true, V: "mass_market"}
		})},
		{"account wallet in EUR", account(kv{"wallet", `10.05`}, kv{"currency", `"EUR"`}), mk(func(e *event.Event) {
			e.Type = event.Account
			e.Wallet = event.Field[money.Cents]{Set: true, V: 1106}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := obj(tt.in)
			got := mustDecode(t, in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%s)\n got %+v\nwant %+v", in, got, tt.want)
			}
		})
	}
}

func TestCommonFields(t *testing.T) {
	for _, field := range []string{"event_id", "type", "account_id", "occurred_at"} {
		t.Run(field, func(t *testing.T) {
			wantReject(t, obj(with(activity(), field, "")), event.ReasonMissingField, field, "required")
			wantReject(t, obj(with(activity(), field, "null")), event.ReasonMissingField, field, "required")
			for _, v := range []string{`1`, `true`, `{"a":"b"}`, `["x"]`, `1.5`} {
				wantReject(t, obj(with(activity(), field, v)), event.ReasonInvalidField, field, "must be a string")
			}
		})
	}
}

func TestCommonFieldRules(t *testing.T) {
	long := strings.Repeat("x", 128)
	tests := []struct {
		name   string
		in     []kv
		reason string // "" = accepted
		msg    []string
	}{
		{"event_id empty", with(activity(), "event_id", `""`), event.ReasonInvalidField, []string{"event_id", "1 to 128 bytes", "not 0"}},
		{"event_id 128 bytes", with(activity(), "event_id", `"`+long+`"`), "", nil},
		{"event_id 129 bytes", with(activity(), "event_id", `"`+long+`y"`), event.ReasonInvalidField, []string{"event_id", "not 129"}},
		{"event_id 128 bytes of multibyte runes", with(activity(), "event_id", `"`+strings.Repeat("é", 64)+`"`), "", nil},
		{"event_id 130 bytes of multibyte runes", with(activity(), "event_id", `"`+strings.Repeat("é", 65)+`"`), event.ReasonInvalidField, []string{"event_id", "not 130"}},
		{"account_id empty", with(activity(), "account_id", `""`), event.ReasonInvalidField, []string{"account_id", "not 0"}},
		{"account_id 128 bytes", with(activity(), "account_id", `"`+long+`"`), "", nil},
		{"account_id 129 bytes", with(activity(), "account_id", `"`+long+`y"`), event.ReasonInvalidField, []string{"account_id", "not 129"}},
		{"account_id \\u0001", with(activity(), "account_id", `"a\u0001b"`), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id \\u007f", with(activity(), "account_id", `"a\u007fb"`), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id raw DEL byte", with(activity(), "account_id", "\"a\x7fb\""), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id \\n", with(activity(), "account_id", `"a\nb"`), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id \\t", with(activity(), "account_id", `"a\tb"`), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id C1 \\u0085", with(activity(), "account_id", `"a\u0085b"`), event.ReasonInvalidField, []string{"account_id", "control character"}},
		{"account_id unicode ok", with(activity(), "account_id", `"Société-Générale ☃"`), "", nil},
		{"type unknown", with(activity(), "type", `"invoice"`), event.ReasonUnknownType, []string{`type "invoice"`, "order, opportunity, activity, account"}},
		{"type wrong case", with(activity(), "type", `"Order"`), event.ReasonUnknownType, []string{`"Order"`}},
		{"type empty", with(activity(), "type", `""`), event.ReasonUnknownType, []string{`type ""`}},
		{"occurred_at date only", with(activity(), "occurred_at", `"2026-03-01"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at no zone", with(activity(), "occurred_at", `"2026-03-01T12:00:00"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at space separator", with(activity(), "occurred_at", `"2026-03-01 12:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at unix seconds string", with(activity(), "occurred_at", `"1772366400"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at as a number", with(activity(), "occurred_at", `1772366400`), event.ReasonInvalidField, []string{"occurred_at", "must be a string"}},
		{"occurred_at month 13", with(activity(), "occurred_at", `"2026-13-01T12:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at year 1999", with(activity(), "occurred_at", `"1999-12-31T23:59:59Z"`), event.ReasonInvalidField, []string{"occurred_at", "2000"}},
		{"occurred_at 2000 by offset only", with(activity(), "occurred_at", `"2000-01-01T00:30:00+01:00"`), event.ReasonInvalidField, []string{"occurred_at", "2000"}},
		{"occurred_at 2000-01-01Z", with(activity(), "occurred_at", `"2000-01-01T00:00:00Z"`), "", nil},
		{"occurred_at Feb 29 of a common year", with(activity(), "occurred_at", `"2026-02-29T00:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at", "RFC 3339"}},
		{"occurred_at Feb 29 of a leap year", with(activity(), "occurred_at", `"2024-02-29T00:00:00Z"`), "", nil},
		{"occurred_at April 31", with(activity(), "occurred_at", `"2026-04-31T00:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at day 0", with(activity(), "occurred_at", `"2026-04-00T00:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at hour 24", with(activity(), "occurred_at", `"2026-03-01T24:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at minute 60", with(activity(), "occurred_at", `"2026-03-01T12:60:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at second 60", with(activity(), "occurred_at", `"2026-03-01T12:00:60Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at signed field", with(activity(), "occurred_at", `"2026-03-01T12:-1:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at one-digit month", with(activity(), "occurred_at", `"2026-3-01T12:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at lowercase t", with(activity(), "occurred_at", `"2026-03-01t12:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at trailing space", with(activity(), "occurred_at", `"2026-03-01T12:00:00Z "`), event.ReasonInvalidField, []string{"occurred_at"}},
		{"occurred_at 2199", with(activity(), "occurred_at", `"2199-12-31T23:59:59Z"`), "", nil},
		{"occurred_at 2200", with(activity(), "occurred_at", `"2200-01-01T00:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at", "2200"}},
		{"occurred_at year 9999", with(activity(), "occurred_at", `"9999-01-01T00:00:00Z"`), event.ReasonInvalidField, []string{"occurred_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := obj(tt.in)
			if tt.reason == "" {
				mustDecode(t, in)
				return
			}
			wantReject(t, in, tt.reason, tt.msg...)
		})
	}
}

// Every string id is 1..128 bytes and every name at most 256, so that no
// field can make an account's state grow without bound.
func TestStringBounds(t *testing.T) {
	id := func(n int) string { return `"` + strings.Repeat("i", n) + `"` }
	orderWith := func(k, v string) []kv { return with(order("1"), k, v) }
	tests := []struct {
		name  string
		in    []kv
		field string // "" = accepted
		bound string
	}{
		{"order_id 128", orderWith("order_id", id(128)), "", ""},
		{"order_id 129", orderWith("order_id", id(129)), "order_id", "1 to 128 bytes, not 129"},
		{"order_id empty", orderWith("order_id", `""`), "order_id", "1 to 128 bytes, not 0"},
		{"order opportunity_id 128", orderWith("opportunity_id", id(128)), "", ""},
		{"order opportunity_id 400 KB", orderWith("opportunity_id", id(400<<10)), "opportunity_id", "not 409600"},
		{"order opportunity_id empty", orderWith("opportunity_id", `""`), "opportunity_id", "not 0"},
		{"order opportunity_id null", orderWith("opportunity_id", `null`), "", ""},
		{"opportunity_id 128", with(opportunity("proposal", "1"), "opportunity_id", id(128)), "", ""},
		{"opportunity_id 129", with(opportunity("proposal", "1"), "opportunity_id", id(129)), "opportunity_id", "not 129"},
		{"opportunity_id empty", with(opportunity("proposal", "1"), "opportunity_id", `""`), "opportunity_id", "not 0"},
		{"activity owner_id 128", with(activity(), "owner_id", id(128)), "", ""},
		{"activity owner_id 129", with(activity(), "owner_id", id(129)), "owner_id", "not 129"},
		{"activity kind 256", with(activity(), "kind", id(256)), "", ""},
		{"activity kind 257", with(activity(), "kind", id(257)), "kind", "at most 256 bytes, not 257"},
		{"account owner_id 128", account(kv{"owner_id", id(128)}), "", ""},
		{"account owner_id 129", account(kv{"owner_id", id(129)}), "owner_id", "not 129"},
		{"account owner_id empty", account(kv{"owner_id", `""`}), "owner_id", "not 0"},
		{"account owner_id null", account(kv{"owner_id", `null`}), "", ""},
		{"account name 256", account(kv{"name", id(256)}), "", ""},
		{"account name 257", account(kv{"name", id(257)}), "name", "at most 256 bytes, not 257"},
		{"account name of 86 three-byte runes", account(kv{"name", `"` + strings.Repeat("€", 86) + `"`}), "name", "not 258"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.field == "" {
				mustDecode(t, obj(tt.in))
				return
			}
			wantReject(t, obj(tt.in), event.ReasonInvalidField, tt.field, tt.bound)
		})
	}
}

func TestOccurredAt(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-03-01T12:00:00Z", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"2026-03-01T12:00:00+02:00", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-03-01T00:30:00+02:00", time.Date(2026, 2, 28, 22, 30, 0, 0, time.UTC)},
		{"2026-03-01T12:00:00-05:30", time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)},
		{"2026-03-01T12:00:00.5Z", time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)},
		{"2026-03-01T12:00:00.123456789Z", time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)},
		{"2026-03-01T12:00:00.123+01:00", time.Date(2026, 3, 1, 11, 0, 0, 123_000_000, time.UTC)},
		{"2024-02-29T23:59:59Z", time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)},
		{"2000-01-01T00:00:00Z", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-12-31T23:59:59Z", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"2026-03-01T12:00:00+00:00", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		ev := mustDecode(t, obj(with(activity(), "occurred_at", `"`+tt.in+`"`)))
		if ev.OccurredAt != tt.want.UnixNano() {
			t.Errorf("occurred_at %s = %v, want %v", tt.in, ev.Time(), tt.want)
		}
		if ev.Time().Location() != time.UTC || !ev.Time().Equal(tt.want) {
			t.Errorf("Time() = %v, want %v in UTC", ev.Time(), tt.want)
		}
	}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name   string
		in     []kv
		reason string
		msg    []string
		want   money.Cents
	}{
		{"no order_id", with(order("1"), "order_id", ""), event.ReasonMissingField, []string{"order_id is required"}, 0},
		{"null order_id", with(order("1"), "order_id", "null"), event.ReasonMissingField, []string{"order_id is required"}, 0},
		{"numeric order_id", with(order("1"), "order_id", "17"), event.ReasonInvalidField, []string{"order_id must be a string"}, 0},
		{"no amount", with(order("1"), "amount", ""), event.ReasonMissingField, []string{`order "ord-1"`, "amount is required"}, 0},
		{"null amount", order("null"), event.ReasonMissingField, []string{"amount is required"}, 0},
		{"amount as string", order(`"12.50"`), event.ReasonInvalidField, []string{`order "ord-1"`, "amount must be a number, not a string"}, 0},
		{"amount as bool", order(`true`), event.ReasonInvalidField, []string{"amount must be a number"}, 0},
		{"amount as object", order(`{"value":1}`), event.ReasonInvalidField, []string{"amount must be a number"}, 0},
		{"amount 1e13", order("1e13"), "", nil, 1e15},
		{"amount 10000000000000.00", order("10000000000000.00"), "", nil, 1e15},
		{"amount 1e13+0.01", order("10000000000000.01"), event.ReasonInvalidField, []string{"amount 10000000000000.01", "1e13"}, 0},
		{"amount -1e13-0.01", order("-10000000000000.01"), event.ReasonInvalidField, []string{"amount"}, 0},
		{"amount 1e14", order("1e14"), event.ReasonInvalidField, []string{"amount 1e14"}, 0},
		{"amount 1e400", order("1e400"), event.ReasonInvalidField, []string{"amount"}, 0},
		{"amount rounds below limit", order("10000000000000.004"), "", nil, 1e15},
		{"amount rounds over limit", order("10000000000000.006"), event.ReasonInvalidField, []string{"amount"}, 0},
		{"1.005 half-even down", order("1.005"), "", nil, 100},
		{"1.015 half-even up", order("1.015"), "", nil, 102},
		{"1.025 half-even down", order("1.025"), "", nil, 102},
		{"1.0051 above half", order("1.0051"), "", nil, 101},
		{"-1.015 negative", order("-1.015"), "", nil, -102},
		{"-250 return", order("-250"), "", nil, -25000},
		{"exponent", order("1.2345e3"), "", nil, 123450},
		{"negative exponent", order("12345e-2"), "", nil, 12345},
		{"tiny", order("1e-300"), "", nil, 0},
		{"zero", order("0"), "", nil, 0},
		{"negative zero", order("-0"), "", nil, 0},
		{"currency absent", order("10.05"), "", nil, 1005},
		{"currency null", with(order("10.05"), "currency", "null"), "", nil, 1005},
		{"currency reporting", with(order("10.05"), "currency", `"USD"`), "", nil, 1005},
		// 1005 × 1.1 = 1105.5 → 1106 (half to even); 1015 × 1.1 = 1116.5 → 1116.
		{"currency EUR rounds half-even up", with(order("10.05"), "currency", `"EUR"`), "", nil, 1106},
		{"currency EUR rounds half-even down", with(order("10.15"), "currency", `"EUR"`), "", nil, 1116},
		{"currency EUR negative", with(order("-10.15"), "currency", `"EUR"`), "", nil, -1116},
		{"currency EUR exact", with(order("100"), "currency", `"EUR"`), "", nil, 11000},
		{"currency EUR over limit once converted", with(order("1e13"), "currency", `"EUR"`), event.ReasonInvalidField, []string{"too large once converted"}, 0},
		{"currency without rate", with(order("1"), "currency", `"GBP"`), event.ReasonUnknownCurrency, []string{`currency "GBP"`, "fx_rates"}, 0},
		{"currency lowercase", with(order("1"), "currency", `"eur"`), event.ReasonUnknownCurrency, []string{`currency "eur"`}, 0},
		{"currency as number", with(order("1"), "currency", `978`), event.ReasonInvalidField, []string{"currency must be a string"}, 0},
		{"opportunity_id as number", with(order("1"), "opportunity_id", `5`), event.ReasonInvalidField, []string{"opportunity_id must be a string"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := obj(tt.in)
			if tt.reason != "" {
				wantReject(t, in, tt.reason, tt.msg...)
				return
			}
			ev := mustDecode(t, in)
			if ev.Amount != tt.want {
				t.Errorf("amount = %d cents, want %d", ev.Amount, tt.want)
			}
		})
	}
}

func TestOpportunity(t *testing.T) {
	tests := []struct {
		name   string
		in     []kv
		reason string
		msg    []string
	}{
		{"no opportunity_id", with(opportunity("proposal", "1"), "opportunity_id", ""), event.ReasonMissingField, []string{"opportunity_id is required"}},
		{"null opportunity_id", with(opportunity("proposal", "1"), "opportunity_id", "null"), event.ReasonMissingField, []string{"opportunity_id is required"}},
		{"no stage", with(opportunity("proposal", "1"), "stage", ""), event.ReasonMissingField, []string{`opportunity "o-9": stage is required`}},
		{"stage number", with(opportunity("proposal", "1"), "stage", "3"), event.ReasonInvalidField, []string{"stage must be a string"}},
		{"stage unknown", opportunity("won", "1"), event.ReasonUnknownStage, []string{
			`opportunity "o-9": stage "won" is not a configured stage`,
			"closed_lost, closed_won, negotiation, proposal, prospecting, qualification"}},
		{"stage wrong case", opportunity("Proposal", "1"), event.ReasonUnknownStage, []string{`"Proposal"`}},
		{"no amount", with(opportunity("proposal", "1"), "amount", ""), event.ReasonMissingField, []string{"amount is required"}},
		{"amount string", opportunity("proposal", `"1"`), event.ReasonInvalidField, []string{"amount must be a number"}},
		{"amount negative", opportunity("proposal", "-1"), event.ReasonInvalidField, []string{`opportunity "o-9"`, "amount -1 must be >= 0"}},
		{"amount rounds to -0", opportunity("proposal", "-0.001"), "", nil},
		{"amount too large", opportunity("proposal", "2e13"), event.ReasonInvalidField, []string{"amount 2e13"}},
		{"probability 1.4", with(opportunity("proposal", "1"), "probability", "1.4"), event.ReasonInvalidField, []string{`opportunity "o-9": probability 1.4 is outside 0..1`}},
		{"probability -0.1", with(opportunity("proposal", "1"), "probability", "-0.1"), event.ReasonInvalidField, []string{"probability -0.1 is outside 0..1"}},
		{"probability 1.0000001", with(opportunity("proposal", "1"), "probability", "1.000001"), event.ReasonInvalidField, []string{"probability 1.000001 is outside 0..1"}},
		{"probability 1e400", with(opportunity("proposal", "1"), "probability", "1e400"), event.ReasonInvalidField, []string{"probability 1e400"}},
		{"probability string", with(opportunity("proposal", "1"), "probability", `"0.5"`), event.ReasonInvalidField, []string{"probability must be a number, not a string"}},
		{"currency without rate", with(opportunity("proposal", "1"), "currency", `"JPY"`), event.ReasonUnknownCurrency, []string{`opportunity "o-9"`, `currency "JPY"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := obj(tt.in)
			if tt.reason == "" {
				mustDecode(t, in)
				return
			}
			wantReject(t, in, tt.reason, tt.msg...)
		})
	}

	// The exact message of docs/events.md and the package doc.
	_, err := decode(t, obj(with(opportunity("proposal", "1"), "probability", "1.4")))
	if err == nil || err.Error() != `opportunity "o-9": probability 1.4 is outside 0..1` {
		t.Errorf("probability 1.4: %v", err)
	}

	// Amount in EUR converts; probability stays.
	ev := mustDecode(t, obj(with(with(opportunity("proposal", "10.05"), "currency", `"EUR"`), "probability", "0.25")))
	if ev.Amount != 1106 || ev.ProbPPM != 250_000 {
		t.Errorf("EUR opportunity: amount %d ppm %d, want 1106 and 250000", ev.Amount, ev.ProbPPM)
	}
}

func TestOpportunityDeletion(t *testing.T) {
	// A deletion needs only the opportunity's id: stage and amount may be
	// absent, and are ignored when present.
	del := with(with(with(opportunity("proposal", "1"), "stage", ""), "amount", ""), "deleted", "true")
	ev := mustDecode(t, obj(del))
	if !ev.Deleted || ev.OpportunityID != "o-9" || ev.Stage != "" || ev.Amount != 0 {
		t.Errorf("deletion decoded as %+v", ev)
	}
	if ev := mustDecode(t, obj(with(opportunity("nonsense", "-5"), "deleted", "true"))); !ev.Deleted {
		t.Error("a deletion with a stale stage and amount is still a deletion")
	}
	for _, v := range []string{"false", "null"} {
		if ev := mustDecode(t, obj(with(opportunity("proposal", "1"), "deleted", v))); ev.Deleted || ev.Stage != "proposal" {
			t.Errorf("deleted %s: %+v", v, ev)
		}
	}
	wantReject(t, obj(with(opportunity("proposal", "1"), "deleted", `"yes"`)), event.ReasonInvalidField, `opportunity "o-9": deleted must be true or false, not a string`)
	wantReject(t, obj(with(with(opportunity("proposal", "1"), "deleted", "true"), "opportunity_id", "")), event.ReasonMissingField, "opportunity_id is required")
	// Only opportunities can be deleted: on other types the field is unknown, so ignored.
	if ev := mustDecode(t, obj(with(order("5"), "deleted", "true"))); ev.Deleted {
		t.Error("an order cannot be deleted by a flag")
	}
}

func TestStageDefaults(t *testing.T) {
	want := map[string]int64{"prospecting": 100_000, "qualification": 200_000, "proposal": 500_000,
		"negotiation": 750_000, "closed_won": 1_000_000, "closed_lost": 0}
	for stage, ppm := range want {
		ev := mustDecode(t, obj(opportunity(stage, "1")))
		if ev.ProbPPM != ppm {
			t.Errorf("stage %s default = %d ppm, want %d", stage, ev.ProbPPM, ppm)
		}
	}
}

func TestConfiguredStages(t *testing.T) {
	cfg := config.Default()
	cfg.Stages = map[string]float64{"lead": 0.05, "third": 1.0 / 3, config.ClosedWon: 1, config.ClosedLost: 0}
	d := event.NewDecoder(cfg)
	ev, err := d.Decode([]byte(obj(opportunity("lead", "1"))))
	if err != nil || ev.ProbPPM != 50_000 {
		t.Errorf("custom stage lead: %v, ppm %d", err, ev.ProbPPM)
	}
	ev, err = d.Decode([]byte(obj(opportunity("third", "1"))))
	if err != nil || ev.ProbPPM != 333_333 {
		t.Errorf("custom stage third: %v, ppm %d", err, ev.ProbPPM)
	}
	_, err = d.Decode([]byte(obj(opportunity("proposal", "1"))))
	if event.ReasonOf(err) != event.ReasonUnknownStage || !strings.Contains(err.Error(), "(closed_lost, closed_won, lead, third)") {
		t.Errorf("removed default stage: %v", err)
	}
}

func TestActivity(t *testing.T) {
	wantReject(t, obj(with(activity(), "kind", "")), event.ReasonMissingField, "kind is required")
	wantReject(t, obj(with(activity(), "kind", "null")), event.ReasonMissingField, "kind is required")
	wantReject(t, obj(with(activity(), "kind", "1")), event.ReasonInvalidField, "kind must be a string")
	wantReject(t, obj(with(activity(), "owner_id", "1")), event.ReasonInvalidField, "owner_id must be a string")
	ev := mustDecode(t, obj(with(activity(), "owner_id", "null")))
	if ev.OwnerID != "" {
		t.Errorf("null owner_id = %q", ev.OwnerID)
	}
}

func TestAccount(t *testing.T) {
	tests := []struct {
		name   string
		in     []kv
		reason string
		msg    []string
	}{
		{"name number", account(kv{"name", "1"}), event.ReasonInvalidField, []string{`account "acc-1"`, "name must be a string or null"}},
		{"owner_id bool", account(kv{"owner_id", "false"}), event.ReasonInvalidField, []string{"owner_id must be a string or null"}},
		{"wallet string", account(kv{"wallet", `"5"`}), event.ReasonInvalidField, []string{"wallet must be a number or null, not a string"}},
		{"wallet negative", account(kv{"wallet", `-5`}), event.ReasonInvalidField, []string{"wallet -5 must be >= 0"}},
		{"wallet too large", account(kv{"wallet", `1e14`}), event.ReasonInvalidField, []string{"wallet 1e14"}},
		{"wallet unknown currency", account(kv{"wallet", `5`}, kv{"currency", `"CHF"`}), event.ReasonUnknownCurrency, []string{`currency "CHF"`}},
		{"tier_override invalid", account(kv{"tier_override", `"gold"`}), event.ReasonInvalidField, []string{`tier_override "gold"`, "major, named, non_named, mass_market"}},
		{"tier_override empty", account(kv{"tier_override", `""`}), event.ReasonInvalidField, []string{`tier_override ""`}},
		{"tier_override wrong case", account(kv{"tier_override", `"Major"`}), event.ReasonInvalidField, []string{`tier_override "Major"`}},
		{"tier_override number", account(kv{"tier_override", `1`}), event.ReasonInvalidField, []string{"tier_override must be a string or null"}},
		{"snooze not RFC 3339", account(kv{"snooze_alerts_until", `"next week"`}), event.ReasonInvalidField, []string{`snooze_alerts_until "next week"`, "RFC 3339"}},
		{"snooze before 2000", account(kv{"snooze_alerts_until", `"1990-01-01T00:00:00Z"`}), event.ReasonInvalidField, []string{"snooze_alerts_until", "2000"}},
		{"snooze number", account(kv{"snooze_alerts_until", `1`}), event.ReasonInvalidField, []string{"snooze_alerts_until must be an RFC 3339 string or null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantReject(t, obj(tt.in), tt.reason, tt.msg...)
		})
	}
	for _, tier := range []string{"major", "named", "non_named", "mass_market"} {
		ev := mustDecode(t, obj(account(kv{"tier_override", `"` + tier + `"`})))
		if ev.TierOverride != (event.Field[string]{Set: true, V: tier}) {
			t.Errorf("tier_override %s: %+v", tier, ev.TierOverride)
		}
	}
	// Fields of other event types are ignored on an account event and vice versa.
	ev := mustDecode(t, obj(account(kv{"amount", `"not checked"`}, kv{"stage", "1"})))
	if ev.Amount != 0 || ev.Stage != "" {
		t.Errorf("account event picked up %+v", ev)
	}
	ev = mustDecode(t, obj(with(activity(), "wallet", `"x"`)))
	if ev.Wallet.Set {
		t.Errorf("activity event set wallet: %+v", ev.Wallet)
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	for _, extra := range []string{
		`"x":1`,
		`"source":{"system":"sf","ids":[1,2,{"deep":[null,true,false,"s\u00e9"]}],"e":{}}`,
		`"list":[]`,
		`"nested":[[[[[]]]]]`,
		`"n":-0.5e-3`,
		`"EVENT_ID":"other"`,
		`"":""`,
	} {
		in := obj(activity())
		in = in[:len(in)-1] + "," + extra + "}"
		ev := mustDecode(t, in)
		if ev.ID != "e-1" || ev.Kind != "call" {
			t.Errorf("%s: %+v", extra, ev)
		}
		in = "{" + extra + "," + obj(activity())[1:]
		mustDecode(t, in)
	}
}

func TestNotJSON(t *testing.T) {
	good := obj(activity())
	tests := map[string]string{
		"empty input":             ``,
		"only spaces":             "  \n\t ",
		"trailing garbage":        good + `x`,
		"two objects":             good + good,
		"trailing comma":          good[:len(good)-1] + `,}`,
		"unterminated string":     `{"event_id":"e-1`,
		"unterminated object":     good[:len(good)-1],
		"invalid escape":          `{"event_id":"e\x-1","type":"activity"}`,
		"invalid \\u escape":      `{"event_id":"e\u00g1"}`,
		"invalid UTF-8 in value":  "{\"event_id\":\"e\xff1\",\"type\":\"activity\"}",
		"invalid UTF-8 in key":    "{\"ev\xc3\":1," + good[1:],
		"invalid UTF-8 unknown":   "{\"x\":[\"\xed\xa0\x80\"]," + good[1:],
		"bare array":              `[` + good + `]`,
		"bare string":             `"event"`,
		"bare number":             `1`,
		"null":                    `null`,
		"single quotes":           `{'event_id':'e-1'}`,
		"unquoted key":            `{event_id:"e-1"}`,
		"missing colon":           `{"event_id" "e-1"}`,
		"missing value":           `{"event_id":}`,
		"leading zero":            `{"x":01,` + good[1:],
		"plus sign":               `{"x":+1,` + good[1:],
		"hex number":              `{"x":0x10,` + good[1:],
		"NaN":                     `{"x":NaN,` + good[1:],
		"bad literal":             `{"x":tru,` + good[1:],
		"truncated true":          `{"x":t`,
		"truncated false":         `{"x":f`,
		"truncated null":          `{"x":n`,
		"raw control char":        "{\"event_id\":\"e\x01\"," + good[1:],
		"raw newline in string":   "{\"event_id\":\"e\n\"," + good[1:],
		"unbalanced nested":       `{"x":[1,2},` + good[1:],
		"nested trailing comma":   `{"x":[1,],` + good[1:],
		"nested object no value":  `{"x":{"a"},` + good[1:],
		"comment":                 `{/*c*/` + good[1:],
		"byte order mark":         "\xef\xbb\xbf" + good,
		"NUL after object":        good + "\x00",
		"fraction without digits": `{"x":1.,` + good[1:],
		"exponent without digits": `{"x":1e,` + good[1:],
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			// JSON that is not an object, and invalid UTF-8 (which json.Valid
			// tolerates), are the only valid-JSON inputs here.
			notObject := strings.HasPrefix(name, "bare") || name == "null"
			if json.Valid([]byte(in)) && !notObject && !strings.Contains(name, "UTF-8") {
				t.Fatalf("test input is valid JSON: %q", in)
			}
			wantReject(t, in, event.ReasonNotJSON, "not a JSON object")
		})
	}
}

func TestDeepNesting(t *testing.T) {
	good := obj(activity())
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	_, err := decode(t, `{"x":`+deep+`,`+good[1:])
	if event.ReasonOf(err) != event.ReasonNotJSON {
		t.Errorf("deep nesting: %v", err)
	}
	ok := strings.Repeat("[", 32) + strings.Repeat("]", 32)
	mustDecode(t, `{"x":`+ok+`,`+good[1:])
}

func TestTooLarge(t *testing.T) {
	good := obj(activity())
	pad := func(n int) string {
		// pad good to exactly n bytes with an unknown string field.
		filler := n - len(good) - len(`,"pad":""`)
		return good[:len(good)-1] + `,"pad":"` + strings.Repeat("p", filler) + `"}`
	}
	exact := pad(event.MaxSize)
	if len(exact) != event.MaxSize {
		t.Fatalf("pad: %d", len(exact))
	}
	mustDecode(t, exact)
	over := pad(event.MaxSize + 1)
	wantReject(t, over, event.ReasonTooLarge, "1048577 bytes", "1 MiB")
	// Size is checked before syntax.
	wantReject(t, strings.Repeat("x", event.MaxSize+1), event.ReasonTooLarge)
}

func TestWhitespace(t *testing.T) {
	in := " \t\r\n{ \"event_id\" : \"e-1\" ,\n\"type\":\"activity\", \"account_id\":\"acc-1\",\"occurred_at\":\"2026-03-01T12:00:00Z\",\"kind\":\"call\" } \n"
	mustDecode(t, in)
}

func TestDuplicateKeys(t *testing.T) {
	// The last occurrence wins, as with encoding/json.
	in := obj(append(order("1"), kv{"amount", "2"}, kv{"event_id", `"e-2"`}))
	ev := mustDecode(t, in)
	if ev.Amount != 200 || ev.ID != "e-2" {
		t.Errorf("duplicates: amount %d id %q, want 200 and e-2", ev.Amount, ev.ID)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(in), &m); err != nil || m["event_id"] != "e-2" || m["amount"] != 2.0 {
		t.Fatalf("encoding/json disagrees: %v %v", m, err)
	}
	// A later invalid value also wins: the event is rejected.
	wantReject(t, obj(append(order("1"), kv{"amount", `"2"`})), event.ReasonInvalidField, "amount must be a number")
	// A later valid value replaces an earlier invalid one.
	mustDecode(t, obj(append(with(order("1"), "amount", `"x"`), kv{"amount", "3"})))
	// Keys that only differ after unescaping are the same key.
	ev = mustDecode(t, obj(append(order("1"), kv{`amou\u006et`, "4"})))
	if ev.Amount != 400 {
		t.Errorf("escaped duplicate key: amount %d, want 400", ev.Amount)
	}
}

func TestStringEscapes(t *testing.T) {
	for _, lit := range []string{
		`"a\"b"`,
		`"a\\b"`,
		`"\/"`,
		`"caf\u00e9"`,
		`"café"`,
		`"\ud83d\ude00 smile"`,
		`"😀"`,
		`"\u2028\u2029"`,
		`"lone \ud800 surrogate"`,
		`"lone \udc00 low"`,
		`"\b\f\n\r\t"`,
		`"\u0000"`,
		`"A\u0042C"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		in := obj(with(with(account(kv{"name", lit}), "event_id", lit), "type", `"acc\u006funt"`))
		ev := mustDecode(t, in)
		if ev.Name.V != want || ev.ID != want {
			t.Errorf("%s: name %q id %q, want %q", lit, ev.Name.V, ev.ID, want)
		}
		if ev.Type != event.Account {
			t.Errorf("%s: escaped type gave %v", lit, ev.Type)
		}
	}
	// Escaped field names match.
	ev := mustDecode(t, `{"event\u005fid":"e-1","\u0074ype":"activity","account_id":"a\u0062c","occurred_at":"2026-03-01T12:00:00\u005a","kind":"call"}`)
	if ev.ID != "e-1" || ev.AccountID != "abc" || ev.OccurredAt != t0 {
		t.Errorf("escaped names: %+v", ev)
	}
}

func TestSubjectInMessages(t *testing.T) {
	// Before event_id is known the message says "event"; after, it names it.
	_, err := decode(t, obj(with(activity(), "event_id", "")))
	if err == nil || !strings.HasPrefix(err.Error(), "event: ") {
		t.Errorf("no event_id: %v", err)
	}
	_, err = decode(t, obj(with(activity(), "type", `"x"`)))
	if err == nil || !strings.HasPrefix(err.Error(), `event "e-1": `) {
		t.Errorf("named event: %v", err)
	}
	// Long echoed values are cut to keep a header short, on a rune boundary.
	long := strings.Repeat("é", 100)
	_, err = decode(t, obj(with(activity(), "type", `"`+long+`"`)))
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "…") {
		t.Errorf("long value: %v", err)
	}
	if err != nil && !utf8.ValidString(err.Error()) {
		t.Errorf("cut inside a rune: %q", err)
	}
}

func TestTypeString(t *testing.T) {
	for i, want := range []string{"order", "opportunity", "activity", "account"} {
		if got := event.Types[i].String(); got != want {
			t.Errorf("Types[%d] = %q, want %q", i, got, want)
		}
	}
	if event.Type(0).String() != "" || event.Type(99).String() != "unknown" {
		t.Errorf("odd types: %q %q", event.Type(0), event.Type(99))
	}
	seen := map[string]bool{}
	for _, r := range event.Reasons {
		if seen[r] || r == "" {
			t.Errorf("Reasons = %v: %q is empty or listed twice", event.Reasons, r)
		}
		seen[r] = true
	}
	for _, r := range []string{event.ReasonTooLarge, event.ReasonNotJSON, event.ReasonMissingField, event.ReasonInvalidField,
		event.ReasonUnknownType, event.ReasonUnknownStage, event.ReasonUnknownCurrency, event.ReasonFuture,
		event.ReasonBadKey, event.ReasonLimit, event.ReasonOutOfRange} {
		if !seen[r] {
			t.Errorf("Reasons lacks %q", r)
		}
	}
	if event.ReasonOf(errors.New("x")) != "" || event.ReasonOf(nil) != "" {
		t.Error("ReasonOf of a plain error")
	}
}

// TestNoPanicOnPrefixes decodes every prefix of some events: truncation at
// any byte must be a clean rejection.
func TestNoPanicOnPrefixes(t *testing.T) {
	for _, in := range []string{
		obj(order("1.5")),
		obj(account(kv{"wallet", "1"}, kv{"name", `"\u00e9\ud83d\ude00"`}, kv{"x", `[true,false,null,{"a":-1e5}]`})),
	} {
		for i := range len(in) {
			b := make([]byte, i) // exact capacity: reading past it must not happen
			copy(b, in)
			if _, err := decode(t, string(b)); err == nil {
				t.Errorf("prefix %q accepted", b)
			}
			_, _ = event.NewDecoder(config.Default()).Decode(b)
		}
	}
}

func TestFXConversionExact(t *testing.T) {
	cfg := config.Default()
	cfg.Currency = "LBP"
	cfg.FXRates = map[string]float64{"USD": 89500, "VND": 0.0000393, "XAU": 1e-7, "CHF": 1.23456789}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := event.NewDecoder(cfg)
	tests := []struct {
		amount, currency string
		want             money.Cents
		reason           string
	}{
		{"1", "USD", 8950000, ""},
		{"-0.01", "USD", -89500, ""},
		// Rates below a millionth keep their precision: 1,000,000 VND × 0.0000393.
		{"1000000", "VND", 3930, ""},
		{"1000000000", "XAU", 10000, ""},
		{"0.05", "XAU", 0, ""},
		// 100.00 × 1.23456789 = 123.456789 → 123.46
		{"100", "CHF", 12346, ""},
		{"-100", "CHF", -12346, ""},
		// The limit applies after conversion: 1e15 cents / 89500 = 11173184357.54.
		{"111731843.57", "USD", 999999999951500, ""},
		{"111731843.58", "USD", 0, event.ReasonInvalidField},
		// 2,061,088,723,319.50 USD × 89500 overflows int64 cents; it once
		// wrapped around to -266.16 and was accepted.
		{"2061088723319.50", "USD", 0, event.ReasonInvalidField},
		{"1e13", "USD", 0, event.ReasonInvalidField},
	}
	for _, tt := range tests {
		in := obj(with(with(order(tt.amount), "currency", `"`+tt.currency+`"`), "account_id", `"a"`))
		ev, err := d.Decode([]byte(in))
		if tt.reason != "" {
			if event.ReasonOf(err) != tt.reason {
				t.Errorf("%s %s: got %v (%v), want %s", tt.amount, tt.currency, ev.Amount, err, tt.reason)
			}
			continue
		}
		if err != nil || ev.Amount != tt.want {
			t.Errorf("%s %s = %d cents (%v), want %d", tt.amount, tt.currency, ev.Amount, err, tt.want)
		}
	}
}

// BenchmarkDecode decodes one event of each type, as the pipeline does.
func BenchmarkDecode(b *testing.B) {
	d := event.NewDecoder(config.Default())
	evs := [][]byte{
		[]byte(`{"event_id":"b0-000123","account_id":"acc-00042","occurred_at":"2026-03-01T10:00:00Z","type":"order","order_id":"o-123","amount":1234.50,"opportunity_id":"op-42-1"}`),
		[]byte(`{"event_id":"b0-000124","account_id":"acc-00042","occurred_at":"2026-03-01T10:05:00Z","type":"opportunity","opportunity_id":"op-42-1","stage":"negotiation","amount":50000.00}`),
		[]byte(`{"event_id":"b0-000125","account_id":"acc-00042","occurred_at":"2026-03-01T10:06:00Z","type":"activity","kind":"call","owner_id":"rep-7"}`),
		[]byte(`{"event_id":"b0-000126","account_id":"acc-00042","occurred_at":"2026-03-01T10:07:00Z","type":"account","name":"Account 42","owner_id":"rep-2","wallet":2500000}`),
	}
	var ev event.Event
	n := 0
	for _, e := range evs {
		n += len(e)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range evs {
			if err := d.DecodeTo(e, &ev); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// Every reason a message can be dead-lettered with is explained in the
// reference (docs/events.md) and named in the README.
func TestDocsListEveryReason(t *testing.T) {
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	events, readme := read("../docs/events.md"), read("../README.md")
	for _, r := range event.Reasons {
		if !strings.Contains(events, "| `"+r+"` |") {
			t.Errorf("docs/events.md has no row for dead-letter reason %s", r)
		}
		if !strings.Contains(readme, "`"+r+"`") {
			t.Errorf("README.md does not name dead-letter reason %s", r)
		}
	}
}
