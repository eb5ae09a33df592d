package scoring

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// appendString must produce JSON that decodes back to the same string.
func TestAppendStringRoundTrips(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 日本", "\u2028\u2029", strings.Repeat("a", 1000) + "\"", "bad \xff utf8"}
	for _, s := range cases {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = strings.ToValidUTF8(s, "\ufffd")
		}
		if got != want {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\n")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

// BenchmarkAppendJSON encodes the three output rows as the file sink does.
func BenchmarkAppendJSON(b *testing.B) {
	at := int64(1767225600) * 1e9
	s := Snapshot{AccountID: "acc-000123", Version: 42, AsOf: at, Tier: Named, TierReason: "potential 1,234,567.00 >= 1,000,000.00 (named)",
		Quadrant: "grow", CurrentValue: 123456, PotentialValue: 9900000, WeightedPipeline: 45000, GoalMetric: "absolute_sales",
		GoalTarget: 50000, GoalStatus: "on_track", CoverageModel: "field", OwnerID: "rep-17", LastTouchAt: at - 86400e9, OpenOpportunities: 2}
	c := TierChange{AccountID: "acc-000123", Version: 42, ChangedAt: at, From: NonNamed, To: Named, Reason: s.TierReason,
		Current: 123456, Potential: 9900000, EventID: "ev-00000000123"}
	a := Alert{AlertID: "0123456789abcdef", AccountID: "acc-000123", Kind: KindNeglected, Status: StatusOpen, OpenedAt: at,
		Tier: Named, OwnerID: "rep-17", Potential: 9900000, LastTouchAt: at - 90*86400e9, AccountName: "Acme Industrial GmbH",
		LastTouchKind: "meeting", DaysSinceTouch: 90, Link: "https://crm.example.com/accounts/acc-000123"}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendJSON(buf[:0])
		buf = c.AppendJSON(buf)
		buf = a.AppendJSON(buf)
	}
	b.SetBytes(int64(len(buf)))
}

// appendTime agrees with the time package, across leap days, centuries and
// times before 1970.
func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const lo, hi = int64(-2208988800), int64(7258118400) // 1900 .. 2200
	cases := []int64{0, -1, 1, 951782400e9, 951868799e9, 4107542399e9, -2208988800e9, 1767225599999999999}
	for range 100000 {
		cases = append(cases, (lo+r.Int64N(hi-lo))*1e9+r.Int64N(1e9))
	}
	for _, ns := range cases {
		if got, want := string(appendTime(nil, ns)), time.Unix(0, ns).UTC().Format(TimeFormat); got != want {
			t.Fatalf("appendTime(%d) = %s, want %s", ns, got, want)
		}
	}
}
