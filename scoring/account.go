package scoring

import (
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
)

// Profile fields, each last-writer-wins on its own timestamp.
const (
	fName = iota
	fOwner
	fWallet
	fOverride
	fSnooze
	nFields
)

// dedupDepth is how many recent event ids an account remembers (docs/events.md).
const dedupDepth = 16

// Account is the whole state of one account. It is small on purpose: the
// reason text, the figures and the snapshot are all derived on demand.
type Account struct {
	ID      string
	Version uint64 // snapshots emitted so far
	// Tier is the tier the account holds: what snapshots show. It is qual,
	// the tier its value qualifies for, unless a capped tier has no place
	// for it (capacity.go).
	Tier Tier
	qual Tier

	reasonKind uint8
	reasonFrom Tier

	reasonValue money.Cents

	override  Tier
	hasWallet bool
	name      string
	owner     string
	wallet    money.Cents
	snooze    int64
	at        [nFields]int64 // occurred_at of the value each field holds

	firstAt   int64 // earliest event time seen
	lastAt    int64 // latest event time seen (the replay clock of this account)
	lastTouch int64 // latest touch time; 0 before any touch
	touchKind string

	months []monthSum // order sums per calendar month, sorted
	opps   []opp      // every opportunity not forgotten, in order of arrival
	gone   *graveyard // forgotten closed opportunities; nil when none

	seen     []uint64 // hashes of recent event ids, a ring once full
	seenNext uint8

	alertMoment int64 // when the open alert's neglect began; 0 = none open
	alertTouch  int64 // last_touch_at the open alert was computed from

	digest uint64 // hash of the last emitted snapshot's content
}

type monthSum struct {
	month int32 // year*12 + month-1
	cents money.Cents
}

// Name, Owner and the other accessors expose profile fields read-only.
func (a *Account) Name() string { return a.name }

// Owner returns the account's rep.
func (a *Account) Owner() string { return a.owner }

// Wallet returns the customer's yearly category spend, if known.
func (a *Account) Wallet() (money.Cents, bool) { return a.wallet, a.hasWallet }

// Qualified returns the tier the account's value qualifies for, by the
// thresholds, their hysteresis and tier_override. It is above Tier while a
// capped tier has no place for the account.
func (a *Account) Qualified() Tier { return a.qual }

// Override returns the pinned tier, or TierNone.
func (a *Account) Override() Tier { return a.override }

// SnoozeUntil returns the snooze deadline (Unix ns), or 0.
func (a *Account) SnoozeUntil() int64 { return a.snooze }

// LastTouchAt returns the latest touch, or the first event's time before any.
func (a *Account) LastTouchAt() int64 {
	if a.lastTouch != 0 {
		return a.lastTouch
	}
	return a.firstAt
}

// LastAt returns the latest occurred_at of any event applied to the account:
// its own clock in replay and while a stream backfills.
func (a *Account) LastAt() int64 { return a.lastAt }

// LastTouchKind is the activity kind of the last touch, or the event type.
func (a *Account) LastTouchKind() string { return a.touchKind }

// AlertOpen reports whether a neglect alert is open and since when.
func (a *Account) AlertOpen() (moment int64, open bool) { return a.alertMoment, a.alertMoment != 0 }

// Opportunity is a read-only view of one opportunity.
type Opportunity struct {
	ID          string
	Stage       string
	Amount      money.Cents
	Invoiced    money.Cents
	Probability float64
	UpdatedAt   int64
}

// Opportunities lists the account's opportunities with a known stage.
func (a *Account) Opportunities() []Opportunity {
	out := make([]Opportunity, 0, len(a.opps))
	for _, o := range a.opps {
		if o.at == 0 || o.stage == "" {
			continue
		}
		out = append(out, Opportunity{o.id, o.stage, o.amount, o.invoiced, float64(o.ppm) / 1e6, o.at})
	}
	return out
}

// monthOf returns year*12 + month-1 of a Unix-ns time in UTC: it runs for
// every event.
func monthOf(ns int64) int32 {
	y, m, _ := civilDate(floorDiv(ns, int64(24*time.Hour)))
	return int32(y*12 + m - 1)
}

// civilDate returns the proleptic Gregorian date of a count of days since
// 1970-01-01, with integer arithmetic (Howard Hinnant's civil_from_days).
func civilDate(days int64) (year, month, day int64) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func hashID(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// seenBefore reports whether the event id is among the last 16 applied.
func (a *Account) seenBefore(h uint64) bool {
	for _, s := range a.seen {
		if s == h {
			return true
		}
	}
	return false
}

func (a *Account) remember(h uint64) {
	if len(a.seen) < dedupDepth {
		if a.seen == nil {
			a.seen = make([]uint64, 0, 4)
		}
		a.seen = append(a.seen, h)
		return
	}
	a.seen[a.seenNext] = h
	a.seenNext = (a.seenNext + 1) % dedupDepth
}

func (a *Account) addMonth(m int32, c money.Cents) {
	i := len(a.months)
	for i > 0 && a.months[i-1].month > m {
		i--
	}
	if i > 0 && a.months[i-1].month == m {
		a.months[i-1].cents += c
		return
	}
	a.months = append(a.months, monthSum{})
	copy(a.months[i+1:], a.months[i:])
	a.months[i] = monthSum{m, c}
}

// isTouch reports whether an event counts as a touch (docs/model.md): an
// account update is bookkeeping, and so is deleting an opportunity.
func isTouch(ev *event.Event) bool { return ev.Type != event.Account && !ev.Deleted }

// mutate applies ev's facts to the state. intern dedups repeated strings.
func (a *Account) mutate(ev *event.Event, intern func(string) string) {
	t := ev.OccurredAt
	if a.firstAt == 0 || t < a.firstAt {
		a.firstAt = t
	}
	a.lastAt = max(a.lastAt, t)
	if isTouch(ev) && t > a.lastTouch {
		a.lastTouch = t
		if ev.Type == event.Activity {
			if a.touchKind != ev.Kind {
				a.touchKind = intern(ev.Kind)
			}
		} else {
			a.touchKind = ev.Type.String()
		}
	}
	switch ev.Type {
	case event.Order:
		a.addMonth(monthOf(t), ev.Amount)
		if ev.OpportunityID != "" {
			a.invoice(ev.OpportunityID, ev.Amount)
		}
	case event.Opportunity:
		if ev.Deleted {
			a.upsert(ev.OpportunityID, "", 0, 0, t, intern)
		} else {
			a.upsert(ev.OpportunityID, ev.Stage, ev.Amount, ev.ProbPPM, t, intern)
		}
	case event.Account:
		lww(a, fName, t, ev.Name.Set, func() { a.name = strings.Clone(ev.Name.V) })
		lww(a, fOwner, t, ev.Owner.Set, func() {
			if a.owner != ev.Owner.V {
				a.owner = intern(ev.Owner.V)
			}
		})
		lww(a, fWallet, t, ev.Wallet.Set, func() { a.wallet, a.hasWallet = ev.Wallet.V, !ev.Wallet.Null })
		lww(a, fOverride, t, ev.TierOverride.Set, func() { a.override = ParseTier(ev.TierOverride.V) })
		lww(a, fSnooze, t, ev.SnoozeUntil.Set, func() { a.snooze = ev.SnoozeUntil.V })
	}
}

// lww applies one profile field when the event is at least as new as the
// value held; ties go to the later event in the log.
func lww(a *Account, f int, t int64, set bool, apply func()) {
	if set && t >= a.at[f] {
		a.at[f] = t
		apply()
	}
}

// Figures are an account's derived values at one evaluation time.
type Figures struct {
	OrdersInWindow   money.Cents
	Backlog          money.Cents
	Current          money.Cents
	WeightedPipeline money.Cents
	WalletHeadroom   money.Cents
	Potential        money.Cents
	OpenOpps         int

	// stale: the account holds a closed opportunity it can forget at
	// this evaluation time (see forgetClosed).
	stale bool
}

// Value is the tiering value: current plus potential.
func (f *Figures) Value() money.Cents { return f.Current + f.Potential }

// Figures computes the figures of docs/model.md at asOf (Unix ns).
func (a *Account) Figures(p *Params, asOf int64) Figures {
	var f Figures
	hi := monthOf(asOf)
	lo := hi - int32(p.windowMonths) + 1
	for _, m := range a.months {
		if m.month >= lo && m.month <= hi {
			f.OrdersInWindow += m.cents
		}
	}
	for i := range a.opps {
		o := &a.opps[i]
		switch {
		case o.at == 0: // known only from orders
		case o.stage == config.ClosedWon:
			m := monthOf(o.at)
			if m >= lo && m <= hi && o.amount > o.invoiced {
				f.Backlog += o.amount - o.invoiced
			}
			f.stale = f.stale || m < lo-1
		case o.stage == config.ClosedLost, o.stage == "": // lost or deleted
			f.stale = true
		default:
			f.OpenOpps++
			f.WeightedPipeline += money.MulPPMSmall(o.amount, o.ppm)
		}
	}
	f.Current = max(0, f.OrdersInWindow+f.Backlog)
	if a.hasWallet {
		f.WalletHeadroom = max(0, a.wallet-f.Current)
	}
	f.Potential = max(f.WeightedPipeline, f.WalletHeadroom)
	return f
}

// neglected applies the neglect rule of docs/model.md at asOf.
func (a *Account) neglected(p *Params, f *Figures, asOf int64) bool {
	return f.Potential >= p.potentialHigh &&
		asOf-a.LastTouchAt() > p.tiers[a.Tier].neglect &&
		a.snooze <= asOf
}
