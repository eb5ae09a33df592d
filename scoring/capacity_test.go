package scoring_test

// Identifiers in this file carry a cap prefix: other test files of this
// package are written concurrently and must not collide with them.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/scoring"
)

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
