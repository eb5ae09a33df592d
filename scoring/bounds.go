package scoring

import (
	"fmt"
	"math/bits"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
)

// MaxFigure bounds every figure of an account, at any evaluation time:
// 1e15 in major units of the reporting currency. Events that would take a
// figure beyond ±MaxFigure are refused, so sums never wrap and every
// figure fits ClickHouse's Decimal(18,2).
const MaxFigure money.Cents = 1e17

// admit checks, before anything changes, that applying ev to a keeps the
// account within its limits (limits.max_open_opportunities) and every
// figure within ±MaxFigure. It returns nil or an *event.Error with reason
// limit or out_of_range.
func (a *Account) admit(p *Params, ev *event.Event) error {
	switch ev.Type {
	case event.Order:
		return a.admitOrder(p, ev)
	case event.Opportunity:
		return a.admitUpsert(p, ev)
	}
	// Activities change no figure; a wallet is bounded by the decoder
	// (1e13), so its headroom is too.
	return nil
}

func (a *Account) admitOrder(p *Params, ev *event.Event) error {
	c := ev.Amount
	var t oppTarget
	if id := ev.OpportunityID; id != "" {
		t = a.target(id)
		inv := money.Cents(0)
		switch {
		case t.held != nil:
			inv = t.held.invoiced
		case t.tomb != nil:
			inv = t.tomb.invoiced
		default:
			if err := a.admitOpen(p, ev); err != nil {
				return err
			}
		}
		if s := inv + c; !within(s) {
			return outOfRange(ev, "the orders invoicing opportunity "+quote(id), wideOf(s))
		}
	}
	if a.mass()+2*abs(c) <= MaxFigure {
		return nil // no figure can reach the bound (see mass)
	}
	m := monthOf(ev.OccurredAt)
	if s := a.monthSum(m) + c; !within(s) {
		return outOfRange(ev, "the orders of "+monthName(m), wideOf(s))
	}
	ch := change{month: m, cents: c}
	if t.held != nil {
		ch.opp = t.held
		n := *t.held
		n.invoiced += c
		ch.next = &n
	}
	return a.admitWindows(p, ev, &ch)
}

func (a *Account) admitUpsert(p *Params, ev *event.Event) error {
	t := a.target(ev.OpportunityID)
	n := opp{id: ev.OpportunityID, stage: ev.Stage, amount: ev.Amount, at: ev.OccurredAt, ppm: ev.ProbPPM}
	switch {
	case t.held != nil:
		if ev.OccurredAt < t.held.at {
			return nil // loses to the state held: changes nothing
		}
		n.invoiced = t.held.invoiced
		if !t.held.open() && n.open() {
			if err := a.admitOpen(p, ev); err != nil {
				return err
			}
		}
	case t.tomb != nil && ev.OccurredAt < t.tomb.at:
		return nil
	default:
		if t.tomb != nil {
			n.invoiced = t.tomb.invoiced
		}
		if n.open() {
			if err := a.admitOpen(p, ev); err != nil {
				return err
			}
		}
	}
	if a.mass()+n.amount+abs(n.invoiced) <= MaxFigure {
		return nil // no figure can reach the bound (see mass)
	}
	if n.open() {
		// Every term is >= 0: stop as soon as the sum passes the bound.
		wp := money.MulPPMSmall(n.amount, n.ppm)
		for i := 0; i < len(a.opps) && wp <= MaxFigure; i++ {
			if o := &a.opps[i]; o != t.held && o.at != 0 && o.open() {
				wp += money.MulPPMSmall(o.amount, o.ppm)
			}
		}
		if wp > MaxFigure {
			return outOfRange(ev, "weighted_pipeline", wide{lo: uint64(wp)})
		}
	}
	if !n.won() {
		return nil // backlog only shrinks
	}
	return a.admitWindows(p, ev, &change{opp: t.held, next: &n, month: monthOf(n.at)})
}

// admitOpen checks that one more open opportunity stays within the limit.
func (a *Account) admitOpen(p *Params, ev *event.Event) error {
	if n := a.openOpps(); n >= p.maxOpen {
		return &event.Error{Reason: event.ReasonLimit, Msg: fmt.Sprintf(
			"%s: account %s already holds %d open opportunities, the limit (limits.max_open_opportunities); close some (closed_won or closed_lost) or raise the limit",
			subject(ev), quote(ev.AccountID), n)}
	}
	return nil
}

// change is an event's effect on the windowed figures: cents added to one
// month's orders, and an opportunity replaced by next (opp nil: added).
type change struct {
	month int32
	cents money.Cents
	opp   *opp
	next  *opp
}

// admitWindows checks orders in the window, backlog and current value for
// every window the change touches: those ending in the W months from the
// changed order month and from the month the changed opportunity was won.
// Windows it does not touch keep their values. This runs only for
// accounts near the bound, so it favours plainness over speed; sums are
// 128-bit so that even legacy state cannot make them wrap.
func (a *Account) admitWindows(p *Params, ev *event.Event, ch *change) error {
	w := int32(p.windowMonths)
	ends := []int32{ch.month}
	if ch.next != nil && ch.next.won() {
		ends = append(ends, monthOf(ch.next.at))
	}
	for _, first := range ends {
		for h := first; h < first+w; h++ {
			lo := h - w + 1
			in := func(m int32) bool { return m >= lo && m <= h }
			var orders, backlog wide
			for _, m := range a.months {
				if in(m.month) {
					orders.add(m.cents)
				}
			}
			if in(ch.month) {
				orders.add(ch.cents)
			}
			for i := range a.opps {
				if o := &a.opps[i]; o != ch.opp {
					backlog.add(backlogOf(o, in))
				}
			}
			if ch.next != nil {
				backlog.add(backlogOf(ch.next, in))
			}
			current := orders
			current.addWide(backlog)
			for _, f := range []struct {
				name string
				v    wide
			}{{"orders_in_window", orders}, {"backlog", backlog}, {"current_value", current}} {
				if v, ok := f.v.int64(); !ok || !within(money.Cents(v)) {
					return outOfRange(ev, f.name+" (window ending "+monthName(h)+")", f.v)
				}
			}
		}
	}
	return nil
}

// backlogOf is o's part of the backlog in a window (in tells whether a
// month lies in it).
func backlogOf(o *opp, in func(int32) bool) money.Cents {
	if o.won() && in(monthOf(o.at)) && o.amount > o.invoiced {
		return o.amount - o.invoiced
	}
	return 0
}

// mass is an upper bound of every figure of a at any evaluation time: the
// sum of every month's orders and of every held opportunity's amount and
// invoices, all absolute. An event changes it by at most twice its amount
// (an order counts in its month and in its opportunity's invoices), or by
// the amount and invoices of the opportunity it upserts. It saturates just
// above MaxFigure.
func (a *Account) mass() money.Cents {
	var s money.Cents
	for _, m := range a.months {
		if s += abs(m.cents); s > MaxFigure {
			return MaxFigure + 1
		}
	}
	for i := range a.opps {
		o := &a.opps[i]
		if s += o.amount + abs(o.invoiced); s > MaxFigure {
			return MaxFigure + 1
		}
	}
	return s
}

func (a *Account) monthSum(m int32) money.Cents {
	for _, x := range a.months {
		if x.month == m {
			return x.cents
		}
	}
	return 0
}

func within(c money.Cents) bool { return c >= -MaxFigure && c <= MaxFigure }

func abs(c money.Cents) money.Cents {
	if c < 0 {
		return -c
	}
	return c
}

func outOfRange(ev *event.Event, figure string, v wide) error {
	to := "beyond the int64 range"
	if c, ok := v.int64(); ok {
		to = money.Cents(c).Grouped()
	}
	return &event.Error{Reason: event.ReasonOutOfRange, Msg: fmt.Sprintf(
		"%s: would take %s of account %s to %s, beyond ±%s (the bound of every figure); check the amount and its currency",
		subject(ev), figure, quote(ev.AccountID), to, MaxFigure.Grouped())}
}

// subject names an event in messages, like the decoder's.
func subject(ev *event.Event) string {
	switch ev.Type {
	case event.Order:
		return "order " + quote(ev.OrderID)
	case event.Opportunity:
		return "opportunity " + quote(ev.OpportunityID)
	}
	return "event " + quote(ev.ID)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func monthName(m int32) string {
	return fmt.Sprintf("%04d-%02d", m/12, m%12+1)
}

// wide is a 128-bit two's complement sum.
type wide struct {
	hi int64
	lo uint64
}

func wideOf(c money.Cents) wide { return wide{int64(c) >> 63, uint64(c)} }

func (x *wide) add(c money.Cents) { x.addWide(wideOf(c)) }

func (x *wide) addWide(y wide) {
	var carry uint64
	x.lo, carry = bits.Add64(x.lo, y.lo, 0)
	x.hi += y.hi + int64(carry)
}

// int64 returns x when it fits in an int64.
func (x wide) int64() (int64, bool) {
	v := int64(x.lo)
	return v, x.hi == v>>63
}
