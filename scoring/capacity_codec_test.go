package scoring_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/scoring"
)

func TestCandidatesRoundTrip(t *testing.T) {
	w := newCapWorld(t, capConfig(2, 3, 4, 0.1), 1)
	for i, v := range []int64{5_000_000, 4_000_000, 3_000_000, 900_000, 800_000, 700_000, 600_000, 60_000, 50_000, 40_000, 30_000} {
		w.set(strings.Repeat("x", i%3)+"acc-"+string(rune('a'+i)), v, "")
	}
	w.set("pinned", 10, `,"tier_override":"named"`)
	w.rank()
	c := w.parts[0].eng.Candidates(w.clock)
	if len(c.List) != 11 || c.Pinned[scoring.Named] != 1 || c.Pool[scoring.NonNamed] != 11 {
		t.Fatalf("candidates %+v", c)
	}
	b := scoring.AppendCandidates([]byte("prefix"), c)
	got, err := scoring.ParseCandidates(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, c)
	}
	empty, err := scoring.ParseCandidates(scoring.AppendCandidates(nil, &scoring.Candidates{}))
	if err != nil || len(empty.List) != 0 {
		t.Errorf("empty: %+v, %v", empty, err)
	}
}

// TestCandidatesRecordSize: the largest record a partition can publish
// under the largest caps config allows, with 128-byte ids, stays well
// under Kafka's default 1 MB message size.
func TestCandidatesRecordSize(t *testing.T) {
	worst := 0
	var worstCfg *config.Config
	for _, caps := range [][3]int{{config.MaxCappedAccounts, 0, 0}, {config.MaxCappedAccounts - 2, 1, 1}, {333, 333, 334}, {0, 500, 500}} {
		cfg := capConfig(caps[0], caps[1], caps[2], 0.1)
		p := scoring.NewParams(cfg)
		n := 0
		for _, tier := range scoring.AllTiers {
			if p.Capped(tier) {
				n += 2 * p.MaxAccounts(tier)
				for u := tier + 1; u <= scoring.Major && p.Capped(u); u++ {
					n += p.MaxAccounts(u)
				}
			}
		}
		if n > worst {
			worst, worstCfg = n, cfg
		}
	}
	if worst > 4*config.MaxCappedAccounts {
		t.Fatalf("%d candidates, more than 4 × the cap sum", worst)
	}
	c := &scoring.Candidates{Pinned: [5]int{0, 1 << 30, 1 << 30, 1 << 30, 1 << 30}}
	for i := range worst {
		id := strings.Repeat("z", 120) + string(rune('a'+i/(26*26)%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26)) + "-----"
		c.List = append(c.List, scoring.Candidate{ID: id[:128], Value: 2 * scoring.MaxFigure, Qualified: scoring.Major, Tier: scoring.Major})
	}
	b := scoring.AppendCandidates(nil, c)
	if len(b) > 600_000 {
		t.Errorf("worst record %d bytes for %d candidates (caps %+v)", len(b), worst, worstCfg.Tiers)
	}
	if _, err := scoring.ParseCandidates(b); err != nil {
		t.Fatal(err)
	}
	t.Logf("worst record: %d candidates, %d bytes", worst, len(b))
}

func TestCandidatesBadRecords(t *testing.T) {
	good := scoring.AppendCandidates(nil, &scoring.Candidates{List: []scoring.Candidate{
		{ID: "a", Value: 1, Qualified: scoring.Major, Tier: scoring.Named},
		{ID: "b", Value: 2, Qualified: scoring.Major, Tier: scoring.Major},
	}})
	for n := range len(good) {
		if c, err := scoring.ParseCandidates(good[:n]); err == nil {
			t.Errorf("cut to %d bytes: accepted %+v", n, c)
		}
	}
	patch := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	// 'C' 1, four pinned counts, four pool sizes, n = 2, then "a" (len 1),
	// value 1, tiers.
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"state record", []byte{'P', 3}, "bad magic"},
		{"another version", patch(1, 2), "format version 2"},
		{"tier out of range", patch(14, 0x54), "tier out of range"},
		{"out of order", patch(12, 'c'), "out of order"},
		{"empty id", append([]byte{'C', 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 1, 0x44), "empty account id"},
		{"trailing", append(bytes.Clone(good), 0), "trailing bytes"},
		{"huge count", []byte{'C', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds record"},
		{"value out of range", append([]byte{'C', 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'a'}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x44), "value out of range"},
	}
	for _, tt := range tests {
		c, err := scoring.ParseCandidates(tt.in)
		if err == nil || c != nil || !strings.HasPrefix(err.Error(), "capacity candidates: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want an error about %q", tt.name, c, err, tt.want)
		}
	}
}

// FuzzParseCandidates: the decoder of records other instances publish
// never panics, and what it accepts re-encodes to a record that decodes
// the same (varints may arrive longer than needed).
func FuzzParseCandidates(f *testing.F) {
	f.Add(scoring.AppendCandidates(nil, &scoring.Candidates{List: []scoring.Candidate{{ID: "a", Value: 5, Qualified: scoring.Major, Tier: scoring.Named}}}))
	f.Add([]byte{'C', 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := scoring.ParseCandidates(b)
		if err != nil {
			if c != nil || !strings.HasPrefix(err.Error(), "capacity candidates: ") {
				t.Fatalf("%+v, %v", c, err)
			}
			return
		}
		again, err := scoring.ParseCandidates(scoring.AppendCandidates(nil, c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoded record: %+v, %v; want %+v", again, err, c)
		}
		scoring.Rank(scoring.NewParams(capConfig(1, 1, 1, 0.1)), c)
	})
}
