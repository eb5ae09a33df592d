package consumer

import (
	"github.com/pyramid-crm/pyramid/scoring"
)

// clock is the evaluation clock of a partition: the wall clock once the
// partition has caught up with its input, the accounts' own clocks while
// it backfills (see backfilling).
type clock struct {
	last int64 // the last as_of used
	// topicTime is the largest occurred_at read per input topic.
	topicTime []int64
	// backfill is set while events are judged at their accounts' own
	// clocks; caughtUpOnce once every input was read to its end since the
	// assignment.
	backfill, caughtUpOnce bool
	// passed is set once a clock pass ran since the last seal; waiting
	// (waitingAll: one of them emits every account) once another was
	// asked for meanwhile.
	passed, waiting, waitingAll bool
}

// backfillBacklog is the unread message count that starts a backfill.
const backfillBacklog = 1000

// backfilling reports whether the partition is backfilling: input still
// unread (the message being applied, offset off of topic ti, counts as
// unread) on a topic whose newest event read so far lies more than
// Options.BackfillLag behind the wall clock. While it backfills, each event
// is judged at its own account's clock (scoring.EventTime), as replay does,
// and periodic re-evaluation waits: judging a year of history at today's
// date would call every account neglected between two of its historical
// touches, on the strength of events not read yet. Topics are read
// independently, so one topic can be read to today while another is still
// in last year; the slowest unread topic decides. A repartition topic's
// unread input includes what its source partitions still hold (see
// sourcePositions). When the backfill ends,
// drain re-evaluates every account at the wall clock.
func (w *worker) backfilling(wall int64, ti int, off int64) bool {
	lag := w.p.opts.BackfillLag
	if lag < 0 {
		return false
	}
	c := &w.clk
	behind, backlog := false, int64(0)
	for i, hwm := range w.in.hwm {
		read := w.pos[i]
		if i == ti && off >= 0 {
			read = off - 1
		}
		if hwm < 0 {
			behind, backlog = true, backlog+backfillBacklog // not fetched yet
			continue
		}
		// A repartition topic's records still unread at their source
		// count as its own (see sourcePositions).
		if unread := max(hwm-1-read, 0) + w.st.src.upstream[i]; unread > 0 {
			backlog += unread
			behind = behind || wall-c.topicTime[i] > int64(lag)
		}
	}
	if backlog == 0 {
		c.caughtUpOnce = true
	}
	// The first catch-up after an assignment may always backfill; later,
	// entering takes a real backlog and leaving takes none, so a trickle of
	// old events does not flip the clock back and forth on every message.
	if !c.backfill && c.caughtUpOnce && backlog < backfillBacklog {
		return false
	}
	return behind
}

// reevaluate moves every account to the current clock (tiers can fall as
// orders leave the window; accounts become neglected without any event).
// With all (the end of a backfill), every account is emitted again at the
// wall clock, under a new version (scoring.Engine.Reemit).
//
// A flush gathers at most one such pass: another one asked for before the
// next seal waits for it (see gathering). That bounds how many versions an
// account can gain from the clock between two flushes, which is what lets
// the next owner of a crashed partition skip past every version this one
// may have emitted (see state.restoreVersions).
func (w *worker) reevaluate(all bool) {
	if w.clk.backfill {
		return // at the end of the backfill, with the wall clock
	}
	if w.clk.passed {
		w.clk.waiting = true
		w.clk.waitingAll = w.clk.waitingAll || all
		return
	}
	w.clk.passed = true
	asOf := w.p.opts.Now().UnixNano()
	w.clk.last = asOf
	eng := w.st.eng
	for _, id := range eng.IDs() {
		a := eng.Account(id)
		if w.st.size.unwritable(a) {
			continue
		}
		c0, a0 := len(w.out.Changes), len(w.out.Alerts)
		if all {
			eng.Reemit(a, asOf, &w.out)
			w.st.changed(a)
			w.checkSize(a)
		} else if eng.Evaluate(a, asOf, &w.out) {
			w.checkSize(a)
			w.st.changed(a)
		}
		w.gauges.collect(&w.out, c0, a0)
	}
}

// gathering starts a new flush's gathering: a clock pass, or a capacity
// ranking, that waited for it runs now.
func (w *worker) gathering() {
	w.clk.passed = false
	if w.clk.waiting {
		all := w.clk.waitingAll
		w.clk.waiting, w.clk.waitingAll = false, false
		w.reevaluate(all)
	}
	w.rk.passed = false
	if w.rk.due {
		w.rk.due = false
		w.rank(true)
	}
}

// snapshotClock is the as_of of a's snapshot: the wall clock, or while
// backfilling, the account's own clock it was last judged at.
func (w *worker) snapshotClock(a *scoring.Account) int64 {
	if w.clk.backfill {
		return a.LastAt()
	}
	return w.clk.last
}
