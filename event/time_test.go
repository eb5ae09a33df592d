package event

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"
)

// fastForm is what parseTimeFast must take on its own when the date is real.
var fastForm = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$`)

// parseTimeFast agrees with time.Parse on every string of its form it
// accepts, including impossible dates it must leave to the general path.
func TestParseTimeFastMatchesTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []string{"2000-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2024-02-29T23:59:59Z", "2023-02-29T12:00:00Z",
		"2026-04-31T00:00:00Z", "2026-12-31T23:59:59Z", "2199-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z"}
	cases = append(cases, "2026-03-01T12:00:00.Z", "2026-03-01T12:00:00.1234567891Z", "2026-03-01T12:00:00,5Z", "2026-03-01T12:00:00.5z",
		"2026-03-01T12:00:00.-5Z", "2026-03-01T12:00:00.1a3Z", "2026-03-01T12:00:00.000000000Z", "2199-12-31T23:59:59.999999999Z")
	fracs := []string{"", ".1", ".25", ".123456", ".000001", ".999999999", ".12345678", ".1234567890", "."}
	for range 100000 {
		cases = append(cases, fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d%sZ",
			1999+r.IntN(202), r.IntN(14), r.IntN(33), r.IntN(25), r.IntN(61), r.IntN(61), fracs[r.IntN(len(fracs))]))
	}
	accepted := 0
	for _, s := range cases {
		got, ok := parseTimeFast(s)
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok {
			accepted++
			if err != nil || got != want.UnixNano() {
				t.Fatalf("parseTimeFast(%q) = %d; time.Parse gives %v, %v", s, got, want, err)
			}
		} else if err == nil && want.Year() >= 2000 && want.Year() < 2200 && fastForm.MatchString(s) {
			t.Fatalf("parseTimeFast(%q) declined a valid time", s)
		}
	}
	if accepted < len(cases)/4 {
		t.Errorf("only %d of %d accepted: the generator is off", accepted, len(cases))
	}
}

// FuzzParseTimeFast: whatever it accepts, time.Parse reads the same way.
func FuzzParseTimeFast(f *testing.F) {
	for _, s := range []string{"2026-03-01T12:00:00Z", "2026-03-01T12:00:00.123456Z", "2024-02-29T23:59:59.999999999Z", "2026-03-01T12:00:00.Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimeFast(s)
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || got != want.UnixNano() {
			t.Fatalf("parseTimeFast(%q) = %d; time.Parse gives %v, %v", s, got, want, err)
		}
	})
}
