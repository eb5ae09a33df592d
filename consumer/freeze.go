package consumer

import (
	"fmt"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
)

// An account's changelog record must fit the state topic's
// max.message.bytes, or the broker refuses the flush and, at every restart,
// the same flush again. The limits of docs/operations.md keep ordinary
// accounts far below it; this is the last line of defence. An account
// whose record comes within one event's growth of the limit is frozen:
// its events are dead-lettered with reason limit, naming the state topic's
// limit, while its record (which still fits) is kept and written, and
// every other account of the partition goes on. The clock still
// re-evaluates it; it thaws when it shrinks (closed-won opportunities
// leaving the window are forgotten) or when a restart finds the topic's
// limit raised. Whether an account is frozen is a function of its state,
// so a restart from the changelog decides as the run before it did.
//
// Growth is bounded, so a frozen account's record always fits: it is at
// most room before an event and grows by at most growth. Only a record
// restored from a time the topic took larger ones (its limit was lowered)
// can be too large to write at all; such an account is not even
// re-evaluated by the clock, so it changes and emits nothing until the
// limit is raised again.

// sizeGuard keeps a partition's records within the state topic's limit.
type sizeGuard struct {
	// room is the largest record that may take one more event: the
	// topic's limit less the batch overhead and the most one event can
	// add (growth).
	room, max int // max: the largest record that can be written
	// header bounds what a record holds besides its account id and state:
	// the changelog header at its longest (headerBound).
	header   int
	maxStage int
	// exact holds restored accounts that scoring.SizeBound may
	// underestimate (ids longer than today's limit); frozen the frozen
	// accounts, with their record size.
	exact  map[*scoring.Account]struct{}
	frozen map[string]int
}

// growth bounds what one event adds to a record: a new opportunity with
// the longest id and stage, a month of orders, a tombstone, the name,
// owner and activity kind replaced by the longest allowed, and every
// integer grown to its longest varint, with room to spare.
func growth(maxStage int) int {
	opp := 2 + event.MaxIDLen + 5 + maxStage + 40
	return 2 * (opp + 15 + 28 + 2*(2+event.MaxNameLen) + 2 + event.MaxIDLen + 300)
}

func newSizeGuard(stateMax, maxStage int, topics []string) sizeGuard {
	mx := stateMax - batchOverhead
	header := headerBound(topics)
	return sizeGuard{room: mx - growth(maxStage), max: mx, header: header, maxStage: maxStage,
		exact: map[*scoring.Account]struct{}{}, frozen: map[string]int{}}
}

// size returns a's record size, or an upper bound of it when that is
// well within room: exact sizes cost a walk through the whole state.
func (g *sizeGuard) size(a *scoring.Account) int {
	fixed := len(a.ID) + g.header
	inexact := false
	if len(g.exact) > 0 {
		_, inexact = g.exact[a]
	}
	if !inexact {
		if b := fixed + scoring.SizeBound(a, g.maxStage); b <= g.room {
			return b
		}
	}
	return fixed + scoring.EncodedSize(a)
}

// unwritable reports whether a's record no longer fits the topic at all.
func (g *sizeGuard) unwritable(a *scoring.Account) bool {
	if len(g.frozen) == 0 {
		return false
	}
	n, ok := g.frozen[a.ID]
	return ok && n > g.max
}

// restored checks an account restored from a record of size bytes.
func (g *sizeGuard) restored(a *scoring.Account, size int) {
	if size > len(a.ID)+g.header+scoring.SizeBound(a, g.maxStage) {
		g.exact[a] = struct{}{}
	}
}

// checkSize freezes or thaws a after its state changed, and logs a change.
func (w *worker) checkSize(a *scoring.Account) {
	g := &w.st.size
	n := g.size(a)
	if n <= g.room && len(g.frozen) == 0 {
		return // the common case: nothing frozen, and a is far from it
	}
	_, was := g.frozen[a.ID]
	switch {
	case n > g.room && !was:
		g.frozen[a.ID] = n
		w.p.opts.Metrics.AccountsFrozen.Inc()
		w.p.log.Error("account frozen: its state record nearly fills what the state topic takes; its events are dead-lettered (reason limit) until it shrinks or the topic's max.message.bytes is raised and Pyramid restarted",
			"account", a.ID, "partition", w.part, "record_bytes", n, "max_message_bytes", w.p.layout.stateMax, "topic", w.p.opts.Changelog)
	case n > g.room:
		g.frozen[a.ID] = n
	case was:
		delete(g.frozen, a.ID)
		w.p.opts.Metrics.AccountsFrozen.Dec()
		w.p.log.Info("account thawed: its state record shrank", "account", a.ID, "partition", w.part, "record_bytes", n)
	}
}

// frozenErr returns the error an event for a frozen account is
// dead-lettered with, or nil when the account with id takes events.
func (w *worker) frozenErr(id string) error {
	g := &w.st.size
	if len(g.frozen) == 0 {
		return nil
	}
	if _, ok := g.frozen[id]; !ok {
		return nil
	}
	w.checkSize(w.st.eng.Account(id)) // the clock may have shrunk it
	n, ok := g.frozen[id]
	if !ok {
		return nil
	}
	return &event.Error{Reason: event.ReasonLimit, Msg: fmt.Sprintf(
		"account %q is frozen: its state record takes %d bytes and the state topic %s takes at most %d (max.message.bytes); it takes no event until it shrinks or the limit is raised and Pyramid restarted (then replay this dead letter)",
		trunc(id), n, w.p.opts.Changelog, w.p.layout.stateMax)}
}

// maxStage is the length of the longest configured stage name.
func maxStage(cfg *config.Config) int {
	n := 0
	for s := range cfg.Stages {
		n = max(n, len(s))
	}
	return n
}

// releaseFrozen takes the partition's frozen accounts out of the gauge.
func (w *worker) releaseFrozen() {
	w.p.opts.Metrics.AccountsFrozen.Sub(float64(len(w.st.size.frozen)))
}
