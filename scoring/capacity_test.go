package scoring_test

// Identifiers in this file carry a cap prefix: other test files of this
// package are written concurrently and must not collide with them.

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// capConfig is the default configuration with the given caps (major,
// named, non_named; 0 = none) and hysteresis.
func capConfig(major, named, nonNamed int, hysteresis float64) *config.Config {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = major
	cfg.Tiers.Named.MaxAccounts = named
	cfg.Tiers.NonNamed.MaxAccounts = nonNamed
	cfg.Hysteresis = hysteresis
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// capCand is a candidate with a value in whole units.
func capCand(id string, units int64, qualified, holds scoring.Tier) scoring.Candidate {
	return scoring.Candidate{ID: id, Value: money.FromUnits(units), Qualified: qualified, Tier: holds}
}

const (
	capMajor = scoring.Major
	capNamed = scoring.Named
	capNN    = scoring.NonNamed
	capMM    = scoring.MassMarket
)

// TestRank is the table of the ranking function: who gets a place, where
// the others fall, and the rank each one's reason names.
func TestRank(t *testing.T) {
	type want struct {
		id    string
		q     scoring.Tier // the qualified tier Place is asked with
		tier  scoring.Tier
		outOf scoring.Tier
		rank  int
	}
	tests := []struct {
		name   string
		cfg    *config.Config
		cands  []scoring.Candidate
		pinned map[scoring.Tier]int
		want   []want
		tiers  map[scoring.Tier]scoring.TierRanking
	}{{
		name: "the highest values keep the tier, the rest fall to the next",
		cfg:  capConfig(2, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 3_000_000, capMajor, capNamed), capCand("b", 2_000_000, capMajor, capNamed),
			capCand("c", 1_500_000, capMajor, capNamed), capCand("d", 1_200_000, capMajor, capNamed),
			capCand("e", 1_100_000, capMajor, capNamed),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capMajor, capMajor, 2},
			{"c", capMajor, capNamed, capMajor, 3}, {"d", capMajor, capNamed, capMajor, 4},
			{"e", capMajor, capNamed, capMajor, 0}, // beyond twice the cap: "rank over 4"
			{"unknown", capMajor, capNamed, capMajor, 0},
		},
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 2, Placed: 2, Pool: 5, Cut: money.FromUnits(2_000_000)}},
	}, {
		name: "a holder keeps its place until a newcomer is worth more than its value ÷ (1 − hysteresis)",
		cfg:  capConfig(1, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("holder", 1_000_000, capMajor, capMajor), capCand("newcomer", 1_111_111, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capMajor, capMajor, 1}, {"newcomer", capMajor, capNamed, capMajor, 2}},
		// The cut is the holder's value ÷ 0.9, rounded down to the cent.
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 1, Placed: 1, Pool: 2, Cut: 111_111_111}},
	}, {
		name: "a newcomer above the holder's value ÷ (1 − hysteresis) takes the place",
		cfg:  capConfig(1, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("holder", 1_000_000, capMajor, capMajor), capCand("newcomer", 1_111_112, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capNamed, capMajor, 2}, {"newcomer", capMajor, capMajor, capMajor, 1}},
	}, {
		name: "a holder at exactly (1 − hysteresis) × the newcomer's value stays",
		cfg:  capConfig(1, 0, 0, 0.2),
		cands: []scoring.Candidate{
			capCand("holder", 800_000, capMajor, capMajor), capCand("newcomer", 1_000_000, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capMajor, capMajor, 1}, {"newcomer", capMajor, capNamed, capMajor, 2}},
	}, {
		name: "without hysteresis equal values are ordered by account id",
		cfg:  capConfig(1, 0, 0, 0),
		cands: []scoring.Candidate{
			capCand("b", 1_000_000, capMajor, capMajor), capCand("a", 1_000_000, capMajor, capNamed),
		},
		want: []want{{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2}},
	}, {
		name: "those major has no place for compete for named's places",
		cfg:  capConfig(1, 2, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 5_000_000, capMajor, capNN), capCand("b", 4_000_000, capMajor, capNN),
			capCand("c", 3_000_000, capNamed, capNN), capCand("d", 2_000_000, capNamed, capNN),
			capCand("e", 1_000_000, capNamed, capNN), capCand("f", 900_000, capNamed, capNN),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2},
			{"c", capNamed, capNamed, capNamed, 2}, {"d", capNamed, capNN, capNamed, 3},
			{"e", capNamed, capNN, capNamed, 4}, {"f", capNamed, capNN, capNamed, 0},
		},
		tiers: map[scoring.Tier]scoring.TierRanking{
			capMajor: {Cap: 1, Placed: 1, Pool: 2, Cut: money.FromUnits(5_000_000)},
			capNamed: {Cap: 2, Placed: 2, Pool: 5, Cut: money.FromUnits(3_000_000)},
		},
	}, {
		name: "an account that holds major counts as a holder in named's pool",
		cfg:  capConfig(1, 1, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("new-top", 5_000_000, capMajor, capNamed), capCand("old-major", 2_000_000, capMajor, capMajor),
			capCand("new-named", 2_100_000, capNamed, capNN),
		},
		want: []want{
			{"new-top", capMajor, capMajor, capMajor, 1}, {"old-major", capMajor, capNamed, capMajor, 2},
			{"new-named", capNamed, capNN, capNamed, 2},
		},
	}, {
		name:   "accounts pinned by tier_override take the first places",
		cfg:    capConfig(3, 0, 0, 0.1),
		pinned: map[scoring.Tier]int{capMajor: 2},
		cands:  []scoring.Candidate{capCand("a", 2_000_000, capMajor, capNamed), capCand("b", 1_500_000, capMajor, capNamed)},
		want:   []want{{"a", capMajor, capMajor, capMajor, 3}, {"b", capMajor, capNamed, capMajor, 4}},
		tiers:  map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 3, Pinned: 2, Placed: 1, Pool: 2, Cut: money.FromUnits(2_000_000)}},
	}, {
		name:   "more pinned accounts than places leave none",
		cfg:    capConfig(1, 0, 0, 0.1),
		pinned: map[scoring.Tier]int{capMajor: 2},
		cands:  []scoring.Candidate{capCand("a", 2_000_000, capMajor, capMajor)},
		want:   []want{{"a", capMajor, capNamed, capMajor, 0}},
		tiers:  map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 1, Pinned: 2, Pool: 1}},
	}, {
		name: "an uncapped tier between two capped ones stops the fall",
		cfg:  capConfig(1, 0, 1, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 3_000_000, capMajor, capNamed), capCand("b", 2_000_000, capMajor, capNamed),
			capCand("c", 200_000, capNN, capMM), capCand("d", 100_000, capNN, capMM),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2},
			{"c", capNN, capNN, capNN, 1}, {"d", capNN, capMM, capNN, 2},
		},
	}, {
		name:  "places left free",
		cfg:   capConfig(5, 0, 0, 0.1),
		cands: []scoring.Candidate{capCand("a", 2_000_000, capMajor, capNamed)},
		want:  []want{{"a", capMajor, capMajor, capMajor, 1}},
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 5, Placed: 1, Pool: 1}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := scoring.NewParams(tt.cfg)
			c := &scoring.Candidates{List: tt.cands}
			for tier, n := range tt.pinned {
				c.Pinned[tier] = n
			}
			r := scoring.Rank(p, c)
			for _, w := range tt.want {
				pl, ok := r.Place(w.id, w.q)
				if got := (scoring.Placement{Tier: w.tier, OutOf: w.outOf, Rank: w.rank}); !ok || pl != got {
					t.Errorf("Place(%s, %v) = %+v, %v; want %+v", w.id, w.q, pl, ok, got)
				}
			}
			for tier, w := range tt.tiers {
				if got := r.Tier(tier); got != w {
					t.Errorf("Tier(%v) = %+v, want %+v", tier, got, w)
				}
			}
			// The ranking does not depend on the order candidates come in,
			// or on how they are split into partitions.
			rev := &scoring.Candidates{Pinned: c.Pinned}
			split := &scoring.Candidates{}
			for i := len(tt.cands) - 1; i >= 0; i-- {
				if i%2 == 0 {
					rev.List = append(rev.List, tt.cands[i])
				} else {
					split.List = append(split.List, tt.cands[i])
				}
			}
			r2 := scoring.Rank(p, rev, split)
			for _, w := range tt.want {
				a, _ := r.Place(w.id, w.q)
				b, _ := r2.Place(w.id, w.q)
				if a != b {
					t.Errorf("Place(%s) in another order: %+v, want %+v", w.id, b, a)
				}
			}
		})
	}
	// No ranking concerns an account whose qualified tier has no cap.
	r := scoring.Rank(scoring.NewParams(capConfig(1, 0, 0, 0.1)), &scoring.Candidates{})
	if pl, ok := r.Place("x", capNamed); ok {
		t.Errorf("Place of an uncapped tier = %+v, true", pl)
	}
	if pl, ok := scoring.Rank(scoring.NewParams(config.Default())).Place("x", capMajor); ok {
		t.Errorf("Place without caps = %+v, true", pl)
	}
}

// capWorld is a set of engines standing for the partitions of one layout,
// fed account events that set each account's wallet (its value, as it has
// no orders) and its override.
type capWorld struct {
	tb    testing.TB
	cfg   *config.Config
	parts []*world
	clock int64 // the time of the latest event
	n     int
}

func newCapWorld(tb testing.TB, cfg *config.Config, partitions int) *capWorld {
	w := &capWorld{tb: tb, cfg: cfg}
	for range partitions {
		w.parts = append(w.parts, newWorld(tb, cfg))
	}
	return w
}

// part returns the engine owning account id.
func (w *capWorld) part(id string) *world {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return w.parts[int(h%uint32(len(w.parts)))]
}

// set gives account id a wallet of units (its value) one minute after
// the previous event, and evaluates it then.
func (w *capWorld) set(id string, units int64, extra string) {
	w.tb.Helper()
	w.n++
	at := fmt.Sprintf("2026-03-01T%02d:%02d:00Z", w.n/60%24, w.n%60)
	if w.n >= 24*60 {
		w.tb.Fatal("capWorld holds one day of events")
	}
	w.clock = ts(at)
	w.part(id).account(id, at, fmt.Sprintf(`"wallet":%d%s`, units, extra))
}

// rank evaluates every account at the clock, ranks the candidates of
// every partition and applies the ranking to each.
func (w *capWorld) rank() *scoring.Ranking {
	w.tb.Helper()
	var sets []*scoring.Candidates
	for _, p := range w.parts {
		for _, id := range p.eng.IDs() {
			p.out.Reset()
			p.eng.Evaluate(p.eng.Account(id), w.clock, &p.out)
			p.changes = append(p.changes, p.out.Changes...)
		}
		sets = append(sets, p.eng.Candidates(w.clock))
	}
	r := scoring.Rank(w.parts[0].eng.Params(), sets...)
	for _, p := range w.parts {
		p.out.Reset()
		p.eng.ApplyRanking(r, w.clock, &p.out, nil)
		p.changes = append(p.changes, p.out.Changes...)
	}
	return r
}

// state renders every account's tier, qualified tier and reason.
func (w *capWorld) state() map[string]string {
	out := map[string]string{}
	for _, p := range w.parts {
		for _, id := range p.eng.IDs() {
			a := p.eng.Account(id)
			pinned := ""
			if a.Override() != scoring.TierNone {
				pinned = ", pinned"
			}
			out[id] = fmt.Sprintf("%v (qualifies for %v%s): %s", a.Tier, a.Qualified(), pinned, p.eng.TierReason(a))
		}
	}
	return out
}

func (w *capWorld) tier(id string) scoring.Tier { return w.part(id).eng.Account(id).Tier }

// changes returns every tier change of every partition, as text.
func (w *capWorld) changes() []string {
	var out []string
	for _, p := range w.parts {
		for _, c := range p.changes {
			out = append(out, fmt.Sprintf("%s %v->%v %s", c.AccountID, c.From, c.To, c.Reason))
		}
	}
	return out
}

// TestCapacityEntersOnlyByRanking: between rankings an account rises into
// a capped tier only through a ranking, falls at once, and says why.
func TestCapacityEntersOnlyByRanking(t *testing.T) {
	w := newCapWorld(t, capConfig(1, 0, 0, 0.1), 1)
	w.set("a", 2_000_000, "")
	if got, want := w.state()["a"], "named (qualifies for major): value 2,000,000.00 qualifies for major; major holds 1: waits for the capacity ranking"; got != want {
		t.Fatalf("before a ranking: %s, want %s", got, want)
	}
	w.rank()
	if got, want := w.state()["a"], "major (qualifies for major): capacity: value 2,000,000.00 has major's one place"; got != want {
		t.Fatalf("after the ranking: %s, want %s", got, want)
	}
	w.set("b", 3_000_000, "")
	if w.tier("b") != capNamed {
		t.Fatalf("b entered major without a ranking: %v", w.tier("b"))
	}
	w.rank()
	if s := w.state(); s["a"] != "named (qualifies for major): capacity: rank 2 by value, major holds 1" ||
		s["b"] != "major (qualifies for major): capacity: value 3,000,000.00 has major's one place" {
		t.Fatalf("after b came: %q", s)
	}
	// A fall by value needs no ranking; the place is free at the next.
	w.set("b", 100_000, "")
	if got, want := w.state()["b"], "non_named (qualifies for non_named): value 100,000.00 < major threshold 1,000,000.00 less 10% hysteresis = 900,000.00"; got != want {
		t.Fatalf("b after its fall: %s, want %s", got, want)
	}
	w.rank()
	if w.tier("a") != capMajor {
		t.Fatalf("a did not get the free place: %q", w.state())
	}
	// tier_override wins over the cap and takes a place.
	w.set("c", 10, `,"tier_override":"major"`)
	if got, want := w.state()["c"], "major (qualifies for major, pinned): tier_override set to major"; got != want {
		t.Fatalf("pinned c: %s, want %s", got, want)
	}
	w.rank()
	if got, want := w.state()["a"], "named (qualifies for major): capacity: rank 2 by value, major holds 1"; got != want {
		t.Fatalf("a once c is pinned: %s, want %s", got, want)
	}
}

// TestCapacityNoFlap: two accounts at the edge whose values swing by less
// than the hysteresis keep their tiers through any number of rankings; a
// real overtake swaps them once.
func TestCapacityNoFlap(t *testing.T) {
	w := newCapWorld(t, capConfig(1, 0, 0, 0.1), 2)
	w.set("a", 2_000_000, "")
	w.set("b", 1_900_000, "")
	w.rank()
	if w.tier("a") != capMajor || w.tier("b") != capNamed {
		t.Fatalf("first ranking: %q", w.state())
	}
	before := len(w.changes())
	// b overtakes a by up to 10.5% and falls back, again and again: a
	// holder leaves only for a newcomer worth more than its value ÷ 0.9.
	for i := range 20 {
		if i%2 == 0 {
			w.set("a", 2_000_000, "")
			w.set("b", 2_210_000, "")
		} else {
			w.set("a", 2_100_000, "")
			w.set("b", 1_950_000, "")
		}
		w.rank()
		if w.tier("a") != capMajor || w.tier("b") != capNamed {
			t.Fatalf("round %d flapped: %q", i, w.state())
		}
	}
	if got := w.changes()[before:]; len(got) != 0 {
		t.Fatalf("tier changes while the values swung within the hysteresis: %q", got)
	}
	w.set("a", 2_000_000, "")
	w.set("b", 2_230_000, "")
	w.rank()
	if got := w.changes()[before:]; len(got) != 2 || w.tier("b") != capMajor || w.tier("a") != capNamed {
		t.Fatalf("a real overtake: changes %q, state %q", got, w.state())
	}
	// Now b holds the place and a needs more than 2,230,000 ÷ 0.9.
	w.set("a", 2_400_000, "")
	w.rank()
	if w.tier("b") != capMajor {
		t.Fatalf("a took the place back within the hysteresis: %q", w.state())
	}
}

// TestCapacityCapChange: a restart with another cap ranks again under it,
// and lifting the cap lets the waiting accounts up.
func TestCapacityCapChange(t *testing.T) {
	w := newCapWorld(t, capConfig(1, 0, 0, 0.1), 1)
	for i, v := range []int64{5_000_000, 4_000_000, 3_000_000} {
		w.set(fmt.Sprintf("acc-%d", i), v, "")
	}
	w.rank()
	restart := func(cfg *config.Config) {
		t.Helper()
		old := w.parts[0]
		w.cfg, w.parts = cfg, []*world{newWorld(t, cfg)}
		for _, id := range old.eng.IDs() {
			a, err := scoring.UnmarshalAccount(scoring.MarshalAccount(nil, old.eng.Account(id)))
			if err != nil {
				t.Fatal(err)
			}
			w.parts[0].eng.Put(a)
		}
	}
	tiers := func() string {
		return fmt.Sprint(w.tier("acc-0"), " ", w.tier("acc-1"), " ", w.tier("acc-2"))
	}
	if got := tiers(); got != "major named named" {
		t.Fatalf("cap 1: %s", got)
	}
	restart(capConfig(2, 0, 0, 0.1))
	w.rank()
	if got := tiers(); got != "major major named" {
		t.Fatalf("cap 2: %s", got)
	}
	if got, want := w.state()["acc-1"], "major (qualifies for major): capacity: value 4,000,000.00 has one of major's 2 places"; got != want {
		t.Errorf("acc-1: %s, want %s", got, want)
	}
	restart(capConfig(1, 0, 0, 0.1))
	w.rank()
	if got := tiers(); got != "major named named" {
		t.Fatalf("back to cap 1: %s", got)
	}
	restart(config.Default())
	w.rank() // evaluates at the clock; the ranking itself does nothing
	if got := tiers(); got != "major major major" {
		t.Fatalf("cap lifted: %s", got)
	}
	if got, want := w.state()["acc-2"], "major (qualifies for major): value 3,000,000.00 qualifies for major, which is not capped"; got != want {
		t.Errorf("acc-2: %s, want %s", got, want)
	}
}

// TestCapacityNoCapsIsInert: without caps there are no candidates, and
// applying a ranking changes nothing.
func TestCapacityNoCapsIsInert(t *testing.T) {
	w := newCapWorld(t, config.Default(), 1)
	w.set("a", 2_000_000, "")
	w.set("b", 10, `,"tier_override":"major"`)
	p := w.parts[0]
	if c := p.eng.Candidates(w.clock); len(c.List) != 0 || c.Pinned != [5]int{} {
		t.Errorf("candidates without caps: %+v", c)
	}
	before := w.state()
	var out scoring.Output
	if changed := p.eng.ApplyRanking(scoring.Rank(p.eng.Params()), w.clock, &out, nil); len(changed) != 0 || len(out.Changes) != 0 {
		t.Errorf("a ranking without caps changed %d accounts: %+v", len(changed), out.Changes)
	}
	if after := w.state(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("state changed: %q, was %q", after, before)
	}
}

// TestCapacityPartitionsRankAsOne: the candidates partitions publish
// (their best per pool, not every account) rank exactly as all accounts
// in one engine do, for several cap layouts, before and after values move
// (when holders exist), with pinned accounts.
func TestCapacityPartitionsRankAsOne(t *testing.T) {
	layouts := map[string]*config.Config{
		"major":                    capConfig(5, 0, 0, 0.1),
		"major and named":          capConfig(4, 7, 0, 0.1),
		"every tier":               capConfig(3, 5, 9, 0.25),
		"major and non_named only": capConfig(4, 0, 6, 0.1),
	}
	for name, cfg := range layouts {
		t.Run(name, func(t *testing.T) {
			one, many := newCapWorld(t, cfg, 1), newCapWorld(t, cfg, 5)
			seen := ""
			rnd := uint64(7)
			next := func(n uint64) uint64 {
				rnd = rnd*6364136223846793005 + 1442695040888963407
				return (rnd >> 33) % n
			}
			set := func(id string, v int64, extra string) {
				one.set(id, v, extra)
				many.set(id, v, extra)
			}
			for round := range 4 {
				for i := range 60 {
					extra := ""
					switch next(60) {
					case 0:
						extra = `,"tier_override":"major"`
					case 1:
						extra = `,"tier_override":null`
					}
					// Values cluster near the thresholds and each other, so
					// holders, hysteresis and ties all matter.
					v := []int64{20_000, 250_000, 1_000_000, 2_000_000}[next(4)] + int64(next(50))*10_000
					if round > 0 && next(3) != 0 {
						continue
					}
					set(fmt.Sprintf("acc-%03d", i), v, extra)
				}
				r1, r5 := one.rank(), many.rank()
				for _, tier := range scoring.AllTiers {
					if a, b := r1.Tier(tier), r5.Tier(tier); a != b {
						t.Errorf("round %d, %v: one engine %+v, five partitions %+v", round, tier, a, b)
					}
				}
				s1, s5 := one.state(), many.state()
				// Major's pool is every account that qualifies for it,
				// pinned ones aside, though partitions publish only their
				// best.
				qualifying := 0
				for _, v := range s1 {
					if strings.Contains(v, "(qualifies for major)") {
						qualifying++
					}
				}
				if got := r5.Tier(capMajor).Pool; got != qualifying {
					t.Errorf("round %d: major's pool %d, %d accounts qualify", round, got, qualifying)
				}
				diffs := 0
				for id, v := range s1 {
					if s5[id] != v && diffs < 5 {
						t.Errorf("round %d, %s: one engine %s, five partitions %s", round, id, v, s5[id])
						diffs++
					}
				}
				capCheckHolds(t, cfg, s1)
				for _, v := range s1 {
					seen += v + "\n"
				}
			}
			placed := false
			for _, m := range capReason.FindAllStringSubmatch(seen, -1) {
				placed = placed || m[1] == m[2] || cfg.Tier(m[1]).MaxAccounts > 0
			}
			if !strings.Contains(seen, "capacity: rank over") || !placed {
				t.Errorf("the workload should give places and refuse some beyond the depth:\n%s", seen)
			}
		})
	}
}

// capReason matches a state line with a capacity reason: the tier held
// and the tier qualified for.
var capReason = regexp.MustCompile(`(?m)^(\w+) \(qualifies for (\w+)\): capacity: (?:rank \d|value)`)

// capCheckHolds checks that no capped tier holds more than its cap, or
// than the accounts tier_override pins to it.
func capCheckHolds(t *testing.T, cfg *config.Config, state map[string]string) {
	t.Helper()
	for _, name := range config.TierNames {
		limit := cfg.Tier(name).MaxAccounts
		held, pinned := 0, 0
		for _, s := range state {
			if strings.HasPrefix(s, name+" ") {
				held++
				if strings.Contains(s, ", pinned)") {
					pinned++
				}
			}
		}
		if limit > 0 && held > max(limit, pinned) {
			t.Errorf("%s holds %d accounts (%d pinned), cap %d", name, held, pinned, limit)
		}
	}
}

// capNet simulates the streaming protocol over a capWorld's partitions: a
// log stands for the compacted capacity topic; each partition reads it at
// its own pace (so its view of the others can be stale), and on a tick
// ranks its fresh candidates with the others' latest it has read,
// applies the ranking, and publishes its candidates when they changed.
type capNet struct {
	w         *capWorld
	log       []capRecord
	pos       []int                   // records read, per partition
	view      [][]*scoring.Candidates // latest read, per partition and publisher
	published []*scoring.Candidates   // last published, per partition
	next      func(n uint64) uint64
}

type capRecord struct {
	part int
	c    *scoring.Candidates
}

func newCapNet(w *capWorld, seed uint64) *capNet {
	n := &capNet{w: w, pos: make([]int, len(w.parts)), published: make([]*scoring.Candidates, len(w.parts))}
	for range w.parts {
		n.view = append(n.view, make([]*scoring.Candidates, len(w.parts)))
	}
	rnd := seed
	n.next = func(k uint64) uint64 {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return (rnd >> 33) % k
	}
	return n
}

// read lets partition p read one more record, if any.
func (n *capNet) read(p int) {
	if n.pos[p] < len(n.log) {
		r := n.log[n.pos[p]]
		n.view[p][r.part] = r.c
		n.pos[p]++
	}
}

// tick is one re-evaluation of partition p; it returns whether p changed
// an account or published.
func (n *capNet) tick(p int) bool {
	w := n.w
	part := w.parts[p]
	changed := false
	for _, id := range part.eng.IDs() {
		part.out.Reset()
		changed = part.eng.Evaluate(part.eng.Account(id), w.clock, &part.out) || changed
		part.changes = append(part.changes, part.out.Changes...)
	}
	sets := make([]*scoring.Candidates, len(w.parts))
	copy(sets, n.view[p])
	sets[p] = part.eng.Candidates(w.clock)
	complete := true
	for _, s := range sets {
		complete = complete && s != nil
	}
	if complete {
		part.out.Reset()
		r := scoring.Rank(part.eng.Params(), sets...)
		changed = len(part.eng.ApplyRanking(r, w.clock, &part.out, nil)) > 0 || changed
		part.changes = append(part.changes, part.out.Changes...)
	}
	if c := part.eng.Candidates(w.clock); !reflect.DeepEqual(c, n.published[p]) {
		n.published[p] = c
		n.log = append(n.log, capRecord{p, c})
		changed = true
	}
	return changed
}

// settle runs random reads and ticks until every partition has read the
// whole log and a round of ticks changes nothing; it fails after limit
// steps.
func (n *capNet) settle(t *testing.T, limit int) int {
	t.Helper()
	for step := 0; step < limit; step++ {
		p := int(n.next(uint64(len(n.pos))))
		if n.next(3) == 0 {
			n.tick(p)
		} else {
			n.read(p)
		}
		quiet := true
		for q := range n.pos {
			quiet = quiet && n.pos[q] == len(n.log)
		}
		if !quiet {
			continue
		}
		for q := range n.pos {
			if n.tick(q) {
				quiet = false
			}
		}
		if quiet {
			return step
		}
	}
	t.Fatalf("no quiescence after %d steps; log of %d records", limit, len(n.log))
	return 0
}

// TestCapacityStreamingConverges: partitions that rank on stale views of
// each other still end, once values stop moving, in one consistent
// placement: no capped tier over its cap, and every partition placed as
// the ranking of everybody's latest candidates says. After a backfill (no
// ranking until every partition has published) the result is the single
// ranking replay does.
func TestCapacityStreamingConverges(t *testing.T) {
	cfg := capConfig(3, 5, 0, 0.1)
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			w, one := newCapWorld(t, cfg, 4), newCapWorld(t, cfg, 1)
			net := newCapNet(w, seed)
			value := func() int64 { return []int64{300_000, 1_000_000}[net.next(2)] + int64(net.next(40))*25_000 }
			// A backfill: every event first, no partition ranks alone.
			for i := range 40 {
				v := value()
				w.set(fmt.Sprintf("acc-%02d", i), v, "")
				one.set(fmt.Sprintf("acc-%02d", i), v, "")
			}
			net.settle(t, 20_000)
			one.rank()
			if got, want := w.state(), one.state(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after the backfill\n got %q\nwant %q", got, want)
			}
			// Then values and overrides move while partitions rank on
			// stale views.
			for range 200 {
				switch net.next(4) {
				case 0:
					extra := ""
					switch net.next(10) {
					case 0:
						extra = `,"tier_override":"major"`
					case 1:
						extra = `,"tier_override":null`
					}
					w.set(fmt.Sprintf("acc-%02d", net.next(50)), value(), extra)
				case 1:
					net.tick(int(net.next(4)))
				default:
					net.read(int(net.next(4)))
				}
			}
			net.settle(t, 20_000)
			capCheckHolds(t, cfg, w.state())
			var sets []*scoring.Candidates
			for _, p := range w.parts {
				sets = append(sets, p.eng.Candidates(w.clock))
			}
			r := scoring.Rank(w.parts[0].eng.Params(), sets...)
			for i, p := range w.parts {
				var out scoring.Output
				if changed := p.eng.ApplyRanking(r, w.clock, &out, nil); len(changed) > 0 {
					t.Errorf("partition %d is not placed as the common ranking says: %d accounts would change: %+v", i, len(changed), out.Changes)
				}
			}
		})
	}
}
