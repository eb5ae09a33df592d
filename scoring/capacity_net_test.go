package scoring_test

// Identifiers in this file carry a cap prefix: other test files of this
// package are written concurrently and must not collide with them.

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/pyramid-crm/pyramid/scoring"
)

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
