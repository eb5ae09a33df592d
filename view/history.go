package view

import (
	"sort"

	"github.com/pyramid-crm/pyramid/scoring"
)

// Bounds of the value history kept for the account page's chart. A
// producer may send any number of events for one account, or create any
// number of accounts, so both the points per account and the points in
// total are capped.
const (
	PointsPerAccount = 64
	// DefaultHistoryBudget caps the points of all accounts: 16 bytes each,
	// 32 MiB in all.
	DefaultHistoryBudget = 2 << 20
)

// Point is an account's current and potential value at one snapshot, in
// major units of the reporting currency (float32 is plenty for a chart).
type Point struct {
	At                 int64 // as_of, Unix ns
	Current, Potential float32
}

// history is the bounded set of points of all accounts. When an account
// reaches PointsPerAccount its history is thinned to half, dropping the
// points closest in time to their neighbours, so a burst of snapshots does
// not push out the months before it. When the total reaches the budget,
// other accounts' histories are thinned in turn (round robin), so a flood
// of new accounts costs everyone a little resolution rather than growing
// memory.
type history struct {
	budget int
	points int
	owners []*entry // entries with a non-empty history
	cursor int
}

// add records sn's values in e's history.
func (h *history) add(e *entry, sn *scoring.Snapshot) {
	p := Point{At: sn.AsOf, Current: float32(sn.CurrentValue.Float()), Potential: float32(sn.PotentialValue.Float())}
	n := len(e.hist)
	i := n // the usual case: later than every point
	if n > 0 && e.hist[n-1].At >= p.At {
		i = sort.Search(n, func(i int) bool { return e.hist[i].At >= p.At })
	}
	if i < n && e.hist[i].At == p.At {
		e.hist[i] = p // same moment: the newer version wins
		return
	}
	if n >= PointsPerAccount {
		h.thin(e, PointsPerAccount/2)
		n = len(e.hist)
		i = sort.Search(n, func(i int) bool { return e.hist[i].At >= p.At })
	}
	if n == 0 {
		e.histIdx = len(h.owners)
		h.owners = append(h.owners, e)
	}
	e.hist = append(e.hist, Point{})
	copy(e.hist[i+1:], e.hist[i:])
	e.hist[i] = p
	h.points++
	for h.points > h.budget && len(h.owners) > 1 {
		h.cursor %= len(h.owners)
		v := h.owners[h.cursor]
		h.cursor++
		if v == e {
			continue
		}
		if len(v.hist) <= 2 {
			h.forget(v)
			continue
		}
		h.thin(v, len(v.hist)/2)
		// Give the memory back too: the budget is meant in bytes.
		v.hist = append([]Point(nil), v.hist...)
	}
}

// thin keeps at most keep points of e's history, spread evenly in time:
// the first, the last, and the first point at or after each of keep-2
// equally spaced moments between them. A burst of snapshots collapses to
// a point or two; quiet months keep theirs. It runs in one pass.
func (h *history) thin(e *entry, keep int) {
	ps := e.hist
	n := len(ps)
	keep = max(keep, 2)
	if n <= keep {
		return
	}
	t0 := ps[0].At
	step := (ps[n-1].At - t0) / int64(keep-1)
	out, j := 1, 1
	for k := int64(1); k < int64(keep-1); k++ {
		target := t0 + k*step
		for j < n-1 && ps[j].At < target {
			j++
		}
		if j >= n-1 {
			break
		}
		ps[out] = ps[j]
		out++
		j++
	}
	ps[out] = ps[n-1]
	out++
	h.points -= n - out
	e.hist = ps[:out]
}

// forget drops e's whole history.
func (h *history) forget(e *entry) {
	if len(e.hist) == 0 {
		return
	}
	h.points -= len(e.hist)
	e.hist = nil
	last := h.owners[len(h.owners)-1]
	h.owners[e.histIdx] = last
	last.histIdx = e.histIdx
	h.owners[len(h.owners)-1] = nil
	h.owners = h.owners[:len(h.owners)-1]
}
