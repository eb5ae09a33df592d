package scoring

import (
	"sort"
	"strings"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
)

// opp is an opportunity: the last upsert's state plus the sum of orders that
// invoice it. at == 0 marks a placeholder known only from orders; an empty
// stage with at != 0 a deletion in the source system (held only until it is
// buried, as a lost one is).
type opp struct {
	id       string
	stage    string
	amount   money.Cents
	invoiced money.Cents
	at       int64
	ppm      int64
}

func (o *opp) won() bool { return o.at != 0 && o.stage == config.ClosedWon }

// lost: closed_lost or deleted; either way it counts in no figure.
func (o *opp) lost() bool { return o.at != 0 && (o.stage == config.ClosedLost || o.stage == "") }

// open reports whether o counts against limits.max_open_opportunities: a
// known stage that is not closed, or a placeholder that may still open.
func (o *opp) open() bool { return !o.won() && !o.lost() }

// tombstone is what an account keeps of an opportunity it forgot: enough
// for last-writer-wins (an upsert older than at still loses) and for the
// backlog should a newer upsert reopen it (orders carrying its id keep
// adding to invoiced). The id is kept as its hash: 8 bytes whatever its
// length. A collision needs two ids of one account with the same 64-bit
// FNV-1a hash; it would make the newer one's older upserts lose.
type tombstone struct {
	hash     uint64
	at       int64
	invoiced money.Cents
}

// graveyard holds an account's tombstones sorted by hash. Accounts that
// never closed an opportunity do not allocate it.
type graveyard struct {
	list []tombstone
}

// heldOpp returns the held opportunity with id, or nil.
func (a *Account) heldOpp(id string) *opp {
	for i := range a.opps {
		if a.opps[i].id == id {
			return &a.opps[i]
		}
	}
	return nil
}

// grave returns the tombstone of the opportunity with hash h, or nil.
func (a *Account) grave(h uint64) *tombstone {
	if a.gone == nil {
		return nil
	}
	l := a.gone.list
	i := sort.Search(len(l), func(i int) bool { return l[i].hash >= h })
	if i < len(l) && l[i].hash == h {
		return &l[i]
	}
	return nil
}

// oppTarget is where an event about one opportunity lands: a held
// opportunity, a tombstone, or neither (a new entry).
type oppTarget struct {
	held *opp
	tomb *tombstone
	hash uint64 // hashID of the id, set when held is nil
}

func (a *Account) target(id string) oppTarget {
	if o := a.heldOpp(id); o != nil {
		return oppTarget{held: o}
	}
	h := hashID(id)
	return oppTarget{tomb: a.grave(h), hash: h}
}

// invoice adds an order amount to the opportunity it carries the id of.
func (a *Account) invoice(id string, c money.Cents) {
	t := a.target(id)
	switch {
	case t.held != nil:
		t.held.invoiced += c
	case t.tomb != nil:
		t.tomb.invoiced += c
	default:
		a.opps = append(a.opps, opp{id: strings.Clone(id), invoiced: c})
	}
}

// upsert applies an opportunity's new state when it is at least as new as
// what the account holds (last-writer-wins; ties go to the later event),
// and forgets the opportunity at once when it is closed_lost or deleted
// (stage ""): it counts in no figure.
func (a *Account) upsert(id, stage string, amount money.Cents, ppm, at int64, intern func(string) string) {
	t := a.target(id)
	o := t.held
	if o == nil {
		if t.tomb != nil && at < t.tomb.at {
			return
		}
		n := opp{id: strings.Clone(id)}
		if t.tomb != nil {
			n.invoiced = t.tomb.invoiced
			a.unbury(t.hash)
		}
		a.opps = append(a.opps, n)
		o = &a.opps[len(a.opps)-1]
	}
	if at < o.at {
		return
	}
	if o.stage != stage {
		o.stage = intern(stage)
	}
	o.at, o.amount, o.ppm = at, amount, ppm
	if o.lost() {
		a.bury(a.indexOf(o))
	}
}

func (a *Account) indexOf(o *opp) int {
	for i := range a.opps {
		if &a.opps[i] == o {
			return i
		}
	}
	panic("scoring: opportunity not held")
}

// bury replaces held opportunity i by its tombstone.
func (a *Account) bury(i int) {
	o := a.opps[i]
	a.opps = append(a.opps[:i], a.opps[i+1:]...)
	a.opps[len(a.opps):cap(a.opps)][0] = opp{} // let the id be collected
	if len(a.opps) == 0 {
		a.opps = nil
	}
	if a.gone == nil {
		a.gone = &graveyard{}
	}
	h := hashID(o.id)
	l := a.gone.list
	j := sort.Search(len(l), func(j int) bool { return l[j].hash >= h })
	if j < len(l) && l[j].hash == h { // a colliding id: keep the newer close
		l[j] = tombstone{h, max(l[j].at, o.at), l[j].invoiced + o.invoiced}
		return
	}
	l = append(l, tombstone{})
	copy(l[j+1:], l[j:])
	l[j] = tombstone{h, o.at, o.invoiced}
	a.gone.list = l
}

func (a *Account) unbury(h uint64) {
	l := a.gone.list
	j := sort.Search(len(l), func(j int) bool { return l[j].hash >= h })
	a.gone.list = append(l[:j], l[j+1:]...)
	if len(a.gone.list) == 0 {
		a.gone = nil
	}
}

// forgetClosed buries every held opportunity that can no longer affect a
// figure at asOf or later: a lost one (held only by state written before
// lost ones were forgotten at once), and a won one whose month lies more
// than one month before the window. The extra month covers a clock that
// steps back a little: the stream judges an account at its own latest
// event (up to 24 h ahead of the wall clock) while it backfills, and at the
// wall clock afterwards.
func (a *Account) forgetClosed(p *Params, asOf int64) {
	lo := monthOf(asOf) - int32(p.windowMonths) + 1
	for i := 0; i < len(a.opps); {
		o := &a.opps[i]
		if o.lost() || o.won() && monthOf(o.at) < lo-1 {
			a.bury(i)
			continue
		}
		i++
	}
}

// openOpps counts the held opportunities that count against
// limits.max_open_opportunities.
func (a *Account) openOpps() int {
	n := 0
	for i := range a.opps {
		if a.opps[i].open() {
			n++
		}
	}
	return n
}

// Forgotten returns how many closed opportunities the account remembers
// only as tombstones.
func (a *Account) Forgotten() int {
	if a.gone == nil {
		return 0
	}
	return len(a.gone.list)
}
