package event_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
)

// member is one member for both paths: its JSON text and how Members
// gets it.
type member struct {
	name, json string
	set        func(m *event.Members)
}

func strMember(name, s string) member {
	b, _ := json.Marshal(s)
	return member{name, string(b), func(m *event.Members) { m.String(name, s) }}
}

func numMember(name, text string) member {
	return member{name, text, func(m *event.Members) { m.Number(name, text) }}
}

// TestBuildAgreesWithDecode: members given as values and the JSON object
// written from them give the same event, or the same rejection, whatever
// the members (valid or not, missing, repeated, unknown), whenever Exact
// says so; Exact is false exactly for invalid UTF-8 and numbers outside
// JSON's grammar.
func TestBuildAgreesWithDecode(t *testing.T) {
	cfg := config.Default()
	cfg.FXRates = map[string]float64{"EUR": 1.1, "VND": 0.00004}
	dec := event.NewDecoder(cfg)
	names := []string{"event_id", "type", "account_id", "occurred_at", "order_id", "amount", "currency",
		"opportunity_id", "stage", "probability", "kind", "owner_id", "name", "wallet", "tier_override",
		"snooze_alerts_until", "deleted", "unknown", "Amount"}
	strs := []string{"", "e-1", "acc-000001", "order", "opportunity", "activity", "account", "payment",
		"2025-01-01T08:14:34Z", "2025-02-30T00:00:00Z", "2025-01-01T08:14:34.123456789+02:00", "yesterday",
		"proposal", "won", "lost", "qualification", "Negotiation", "USD", "EUR", "VND", "XXX", "usd",
		"named", "major", "mass_market", "gold", "call", "rep-27", "Lakestar Pharma B.V.", "Zürich AG ✓",
		"tab\there", "nl\nhere", `quote"and\backslash`, "<b>&amp;</b>", "\u2028", strings.Repeat("x", 128),
		strings.Repeat("y", 129), strings.Repeat("é", 200), "12.50"}
	nums := []string{"0", "-0", "1", "12.5", "12.50", "12.505", "-7", "1e3", "1E-2", "0.5", "1.0000001",
		"1000000000000000000000", "-1000000000000000", "99999999999999.99", "2"}
	r := rand.New(rand.NewPCG(7, 11))
	pick := func() member {
		name := names[r.IntN(len(names))]
		switch r.IntN(10) {
		case 0:
			return numMember(name, nums[r.IntN(len(nums))])
		case 1:
			return member{name, "null", func(m *event.Members) { m.Null(name) }}
		case 2:
			b := r.IntN(2) == 0
			text := map[bool]string{true: "true", false: "false"}[b]
			return member{name, text, func(m *event.Members) { m.Bool(name, b) }}
		default:
			return strMember(name, strs[r.IntN(len(strs))])
		}
	}
	// Mostly well-formed events of each type, with a few members changed,
	// added or repeated, so that validation goes deep as often as it stops
	// early.
	bases := [][]member{
		{strMember("event_id", "e1"), strMember("type", "order"), strMember("account_id", "acc-1"),
			strMember("occurred_at", "2025-03-01T10:00:00Z"), strMember("order_id", "o-1"), numMember("amount", "120.5"),
			strMember("currency", "EUR"), strMember("opportunity_id", "opp-1")},
		{strMember("event_id", "e2"), strMember("type", "opportunity"), strMember("account_id", "acc-1"),
			strMember("occurred_at", "2025-03-01T10:00:00Z"), strMember("opportunity_id", "opp-1"),
			strMember("stage", "proposal"), numMember("amount", "5000"), numMember("probability", "0.4")},
		{strMember("event_id", "e3"), strMember("type", "activity"), strMember("account_id", "acc-1"),
			strMember("occurred_at", "2025-03-01T10:00:00Z"), strMember("kind", "call"), strMember("owner_id", "rep-1")},
		{strMember("event_id", "e4"), strMember("type", "account"), strMember("account_id", "acc-1"),
			strMember("occurred_at", "2025-03-01T10:00:00Z"), strMember("name", "Acme"), strMember("owner_id", "rep-1"),
			numMember("wallet", "30000000"), strMember("tier_override", "named"), strMember("snooze_alerts_until", "2025-04-01T00:00:00Z")},
	}
	var m event.Members
	accepted, rejected := 0, 0
	for i := range 40000 {
		ms := append([]member(nil), bases[r.IntN(len(bases))]...)
		for range r.IntN(4) {
			if p := pick(); r.IntN(3) == 0 && len(ms) > 0 {
				ms[r.IntN(len(ms))] = p
			} else {
				ms = append(ms, p)
			}
		}
		var b strings.Builder
		b.WriteByte('{')
		m.Reset()
		for k, p := range ms {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + p.name + `":` + p.json)
			p.set(&m)
		}
		b.WriteByte('}')
		if !m.Exact() {
			t.Fatalf("case %d: %s: not exact", i, b.String())
		}
		var want, got event.Event
		werr := dec.DecodeTo([]byte(b.String()), &want)
		gerr := dec.Build(&m, &got)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Fatalf("case %d: %s:\nDecodeTo: %v\nBuild:    %v", i, b.String(), werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("case %d: %s:\nDecodeTo: %+v\nBuild:    %+v", i, b.String(), want, got)
		}
		if werr == nil {
			accepted++
		} else {
			rejected++
		}
	}
	t.Logf("accepted %d, rejected %d", accepted, rejected)
	// Both outcomes are well represented.
	if accepted < 4000 || rejected < 4000 {
		t.Fatalf("accepted %d, rejected %d: the cases do not cover both outcomes", accepted, rejected)
	}

	m.Reset()
	m.String("name", "ok")
	m.Number("amount", "12.5")
	if !m.Exact() {
		t.Fatal("valid members reported inexact")
	}
	for _, bad := range []func(*event.Members){
		func(m *event.Members) { m.String("name", "bad \xff byte") },
		func(m *event.Members) { m.Number("amount", "007") },
		func(m *event.Members) { m.Number("amount", "+5") },
		func(m *event.Members) { m.Number("amount", ".5") },
		func(m *event.Members) { m.Number("amount", "1.") },
		func(m *event.Members) { m.Number("amount", "") },
		func(m *event.Members) { m.Number("amount", "NaN") },
	} {
		m.Reset()
		bad(&m)
		if m.Exact() {
			t.Errorf("%+v: reported exact", m)
		}
	}
}

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "12.5": true, "1e3": true, "1E+3": true, "-1.5e-3": true,
		"": false, "-": false, "007": false, "01": false, "+1": false, ".5": false, "1.": false, "1e": false,
		"1e+": false, "0x10": false, "1 ": false, " 1": false, "Infinity": false, "12a": false,
	} {
		if got := event.IsNumber(s); got != want {
			t.Errorf("IsNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
