package consumer

import (
	"bytes"

	"github.com/pyramid-crm/pyramid/scoring"
)

// ranking is a worker's part in the capacity ranking (capacity.go): once
// its partition has caught up, it ranks its own fresh candidates with the
// other partitions' latest from the board, applies the ranking to its
// accounts, and publishes its candidates when they changed. A ranking's
// changes are account changes like any other: snapshots, tier changes
// and changelog records, made durable by the next flush.
type ranking struct {
	gen       int32  // the consumer group generation the worker runs in
	seq       uint64 // the board's version last looked at
	published []byte // the record last published; nil before the first
	waiting   string // why the last attempt could not rank; "" after a ranking
	counted   bool   // counted in pyramid_capacity_waiting_partitions
	changed   []*scoring.Account
	// passed is set once a ranking moved accounts since the last seal; due
	// once another was asked for meanwhile. Like the clock pass, one such
	// ranking per flush bounds the versions a flush can hold (see
	// state.restoreVersions).
	passed, due bool
}

// rank takes part in the capacity ranking when some tier is capped and
// the partition is caught up: no ranking while it backfills, as no
// re-evaluation either, so that the first ranking after a backfill sees
// every partition's final state, as replay's does. It acts when the board
// changed since it last looked, the first time, and with force (every
// re-evaluation); a ranking asked for after one that moved accounts since
// the last seal waits for the next (see gathering). It ranks at the clock
// the partition last judged at, so it starts no clock of its own.
func (w *worker) rank(force bool) {
	p := w.p
	if p.board == nil || w.clk.backfill || !(w.clk.caughtUpOnce || w.in.drained()) {
		return
	}
	seq, entries := p.board.view()
	if !force && seq == w.rk.seq && w.rk.published != nil {
		return
	}
	if w.rk.passed {
		w.rk.due = true
		return
	}
	w.rk.seq = seq
	eng, params := w.st.eng, p.params
	asOf := w.clk.last
	if asOf == 0 {
		asOf = p.opts.Now().UnixNano()
		w.clk.last = asOf
	}
	own := eng.Candidates(asOf)
	digest := params.CapacityDigest()
	if r := rankable(entries, p.layout.partitions, w.rk.gen, digest, w.part); r.sets != nil {
		r.sets[w.part] = own
		result := scoring.Rank(params, r.sets...)
		c0, a0 := len(w.out.Changes), len(w.out.Alerts)
		w.rk.changed = eng.ApplyRanking(result, asOf, &w.out, w.rk.changed[:0])
		for _, a := range w.rk.changed {
			w.st.changed(a)
		}
		w.gauges.collect(&w.out, c0, a0)
		for _, ch := range w.out.Changes[c0:] {
			if ch.ByCapacity && ch.To < ch.From {
				p.opts.Metrics.CapacityDemotions.WithLabelValues(ch.From.String()).Inc()
			}
		}
		if len(w.rk.changed) > 0 {
			w.rk.passed = true
			own = eng.Candidates(asOf) // the accounts that now hold a tier count as holders
		}
		p.ranked(result)
		w.waitFor("")
	} else {
		w.waitFor(r.waiting)
	}
	rec := marshalCapacity(p.layout.partitions, w.rk.gen, digest, own)
	stale := force && !w.onBoard()
	if stale || !bytes.Equal(rec, w.rk.published) {
		w.rk.published = rec
		p.capPub.publish(w.part, rec)
	}
}

// onBoard reports whether the board holds the record last published: a
// record lost or unreadable is published again at the next re-evaluation.
func (w *worker) onBoard() bool {
	e, ok := w.p.board.entry(w.part)
	return ok && bytes.Equal(e.raw, w.rk.published)
}

// waitFor records why the partition cannot rank ("" when it could), in
// the log when that changes and in pyramid_capacity_waiting_partitions.
func (w *worker) waitFor(why string) {
	if why == w.rk.waiting {
		return
	}
	g := w.p.opts.Metrics.CapacityWaiting
	switch {
	case why != "" && !w.rk.counted:
		g.Inc()
		w.rk.counted = true
	case why == "" && w.rk.counted:
		g.Dec()
		w.rk.counted = false
	}
	if why != "" {
		w.p.log.Info("capacity ranking waits", "partition", w.part, "why", why)
	} else {
		w.p.log.Info("capacity ranking resumed", "partition", w.part)
	}
	w.rk.waiting = why
}

// leaveRanking takes the worker out of the waiting gauge when it stops.
func (w *worker) leaveRanking() {
	if w.rk.counted {
		w.p.opts.Metrics.CapacityWaiting.Dec()
		w.rk.counted = false
	}
}
