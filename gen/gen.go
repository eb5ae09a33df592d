// Package gen generates deterministic, realistic CRM event streams for tests,
// benchmarks and the demo.
//
// The same Options give the same bytes: all randomness comes from one PCG
// source seeded from Options.Seed, and time comes from Options.Start, never
// from the wall clock.
//
// The stream is built slot by slot in time order, so it needs memory only for
// the accounts' state, not for the events: event k of n happens at a time
// that grows with k (denser in business hours than at night and at weekends),
// and each slot is filled, in this order of priority, by the creation of the
// next account, by a scheduled follow-up that has fallen due (invoices of a
// won deal, the won upsert of a deal invoiced early, a tier override being
// cleared, a snooze), or by a random action of an account picked in
// proportion to its size: an activity, an opportunity created or moved one
// stage on, an order or a return, or a profile update.
//
// Account sizes are Pareto-distributed and amounts are scaled so that the
// yearly business of an account does not depend on how many events it gets;
// under the default thresholds the tiers form a pyramid (a few major accounts,
// more named ones, many non-named and mass-market ones). A share of accounts
// goes quiet for months, so neglect alerts occur, and a share of events can be
// replaced by deliberately bad ones (Options.BadRatio) that event.Decoder
// rejects.
package gen

import (
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Options configures a generator. Zero values mean the defaults.
type Options struct {
	Accounts int       // number of accounts (default 1000)
	Events   int       // exact number of events (default 100000); at least Accounts
	Seed     uint64    // the same seed gives the same stream
	Start    time.Time // time of the first event (default 2025-01-01T00:00:00Z)
	Months   int       // span of the stream in calendar months (default 13)

	// BadRatio is the share of events replaced by deliberately bad ones
	// (0 ≤ BadRatio < 1).
	BadRatio float64
	// DuplicateRatio is the share of events that are an exact resend of the
	// event before (same event_id), as a retrying producer would send.
	// 0 means the default 0.002; a negative value disables duplicates.
	DuplicateRatio float64

	// Currencies maps foreign currency codes to their rate into the
	// reporting currency, as in the fx_rates of the configuration. When set,
	// ForeignShare of the accounts trade in one of them. Without it every
	// amount is in the reporting currency and carries no currency field.
	Currencies map[string]float64
	// ForeignShare is the share of accounts trading in a foreign currency
	// (default 0.1 when Currencies is set).
	ForeignShare float64
}

// Record is one generated event.
type Record struct {
	// Line is one JSON object without a newline. It is valid until the next
	// call of Next.
	Line []byte
	// Type is the event type as written: order, opportunity, activity or
	// account; "" for a bad event whose type cannot be read.
	Type string
	// AccountID is the account the event is about, also for bad events (whose
	// account_id field may be missing or mangled); use it as the Kafka key.
	AccountID string
	// Time is occurred_at in Unix seconds (that of the slot for bad events).
	Time int64
	// Bad marks a deliberately invalid event; Duplicate an exact resend.
	Bad, Duplicate bool
}

// Stats counts what a generator has produced so far.
type Stats struct {
	Events        int
	Bad           int
	Duplicates    int
	Accounts      int // account events (creations and updates)
	Orders        int // including returns
	Returns       int
	Opportunities int
	Activities    int
}

const (
	day  = 24 * 3600
	hour = 3600
)

// Stage indexes, in the order a deal moves.
const (
	stProspecting = iota
	stQualification
	stProposal
	stNegotiation
	stWon
	stLost
)

var stageNames = [...]string{"prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"}

// defaultProb is each stage's default probability in hundredths.
var defaultProb = [...]int{10, 20, 50, 75, 100, 0}

// numOwners is the size of the sales team, rep-01 … rep-50.
const numOwners = 50

type opp struct {
	id     int64
	stage  uint8
	amount int64 // cents, in the account's currency
}

type account struct {
	id        string
	idx       int32
	owner     int // 1..numOwners
	size      float64
	hasWallet bool
	wallet    int64 // whole units of the reporting currency
	wallet0   int64 // the first estimate; later ones scatter around it
	cur       int   // index into g.curs; 0 = reporting currency
	dealMean  float64
	strategic float64 // chance that a new opportunity is a strategic deal
	current   float64 // target yearly business, whole reporting units
	orderMean float64
	opps      []opp
	lastOrder int64 // cents, the last plain order, for returns
	maxOpen   int
	quietFrom int64 // no touches in [quietFrom, quietTo)
	quietTo   int64
	created   bool
}

func (a *account) quiet(t int64) bool { return t >= a.quietFrom && t < a.quietTo }

// Kinds of scheduled follow-ups.
const (
	jobInvoice  = iota // order carrying opportunity_id
	jobWon             // closed_won upsert after an early invoice
	jobOverride        // tier_override set
	jobClear           // tier_override cleared
	jobSnooze          // snooze_alerts_until set
	jobOwner           // owner changed
)

type job struct {
	at     int64
	seq    uint64
	kind   uint8
	acct   int32
	opp    int64
	amount int64  // cents, or the snooze end in Unix seconds
	tier   string // for jobOverride
}

// Generator produces the stream one event at a time. It is not safe for
// concurrent use.
type Generator struct {
	opts  Options
	rng   *rand.Rand
	start int64
	end   int64

	accts   []account
	cum     []float64 // prefix sums of pick weights, in account order
	created int
	createT []int64 // planned creation time per account (increasing)

	jobs   []job // min-heap by (at, seq)
	jobSeq uint64

	// Slot times: hour weights and their prefix sums over the span.
	hourW   []float64
	hourCum []float64
	hourIdx int
	lastT   int64

	n       int // events emitted
	oppSeq  int64
	ordSeq  int64
	idPref  string
	curs    []currency
	badCurs []string

	buf, prev, out []byte
	prevType       string
	prevAcct       string
	prevTime       int64
	prevBad        bool
	havePrev       bool
	dupRatio       float64
	dayCache       int64
	dayStr         []byte
	stats          Stats
}

type currency struct {
	code string
	rate float64 // reporting units per unit
}

// DefaultStart is the default time of the first event.
var DefaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// New validates opts, fills in defaults and lays out the accounts.
func New(opts Options) (*Generator, error) {
	if opts.Accounts == 0 {
		opts.Accounts = 1000
	}
	if opts.Events == 0 {
		opts.Events = 100_000
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	if opts.Months == 0 {
		opts.Months = 13
	}
	switch {
	case opts.Accounts < 0 || opts.Accounts > 99_999_999:
		return nil, fmt.Errorf("accounts must be 1 to 99,999,999, not %d", opts.Accounts)
	case opts.Events < opts.Accounts:
		return nil, fmt.Errorf("events (%d) must be at least accounts (%d): every account starts with an account event", opts.Events, opts.Accounts)
	case opts.Months < 1 || opts.Months > 120:
		return nil, fmt.Errorf("months must be 1 to 120, not %d", opts.Months)
	case !(opts.BadRatio >= 0 && opts.BadRatio < 1):
		return nil, fmt.Errorf("bad ratio must be in [0, 1), not %v", opts.BadRatio)
	case opts.DuplicateRatio >= 0.5 || math.IsNaN(opts.DuplicateRatio):
		return nil, fmt.Errorf("duplicate ratio must be below 0.5, not %v", opts.DuplicateRatio)
	case opts.ForeignShare < 0 || opts.ForeignShare > 1 || math.IsNaN(opts.ForeignShare):
		return nil, fmt.Errorf("foreign share must be in [0, 1], not %v", opts.ForeignShare)
	case opts.Start.Year() < 2000 || opts.Start.Year() > 2150:
		return nil, fmt.Errorf("start %s must be between the years 2000 and 2150", opts.Start.Format(time.RFC3339))
	}
	g := &Generator{
		opts:     opts,
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		start:    opts.Start.Unix(),
		end:      opts.Start.AddDate(0, opts.Months, 0).Unix(),
		idPref:   "ev-" + strconv.FormatUint(opts.Seed, 36) + "-",
		dupRatio: opts.DuplicateRatio,
		dayCache: math.MinInt64,
		buf:      make([]byte, 0, 512),
		prev:     make([]byte, 0, 512),
	}
	if g.dupRatio == 0 {
		g.dupRatio = 0.002
	}
	if g.dupRatio < 0 {
		g.dupRatio = 0
	}
	g.curs = []currency{{}}
	for _, c := range slices.Sorted(maps.Keys(opts.Currencies)) {
		r := opts.Currencies[c]
		if !(r > 0) || math.IsInf(r, 0) || len(c) == 0 {
			return nil, fmt.Errorf("currency %q: rate must be a positive number, not %v", c, r)
		}
		g.curs = append(g.curs, currency{code: c, rate: r})
	}
	if len(opts.Currencies) > 0 && opts.ForeignShare == 0 {
		g.opts.ForeignShare = 0.1
	}
	for _, c := range []string{"XTS", "ZZZ", "BTC", "XXX"} {
		if _, ok := opts.Currencies[c]; !ok {
			g.badCurs = append(g.badCurs, c)
		}
	}
	g.initHours()
	g.initAccounts()
	return g, nil
}

// Options returns the options in effect, defaults filled in.
func (g *Generator) Options() Options { return g.opts }

// Stats returns the counts so far.
func (g *Generator) Stats() Stats { return g.stats }

// Remaining returns how many events are still to come.
func (g *Generator) Remaining() int { return g.opts.Events - g.n }

// initHours weights every hour of the span: business hours on weekdays are
// busy, nights quieter, weekends quieter still.
func (g *Generator) initHours() {
	h := int((g.end-g.start+hour-1)/hour) + 1
	g.hourW = make([]float64, h)
	g.hourCum = make([]float64, h+1)
	for i := range h {
		t := time.Unix(g.start+int64(i)*hour, 0).UTC()
		w := 1.0
		switch wd := t.Weekday(); {
		case wd == time.Saturday || wd == time.Sunday:
			w = 0.25
		case t.Hour() >= 8 && t.Hour() < 18:
			w = 10
		case t.Hour() >= 6 && t.Hour() < 21:
			w = 3
		}
		g.hourW[i] = w
		g.hourCum[i+1] = g.hourCum[i] + w
	}
}

// slotTime maps slot k to a time; it never decreases with k.
func (g *Generator) slotTime(k int) int64 {
	total := g.hourCum[len(g.hourCum)-2] // the last hour is only a guard
	target := (float64(k) + g.rng.Float64()) / float64(g.opts.Events) * total
	for g.hourIdx < len(g.hourW)-2 && g.hourCum[g.hourIdx+1] <= target {
		g.hourIdx++
	}
	frac := (target - g.hourCum[g.hourIdx]) / g.hourW[g.hourIdx]
	if frac < 0 {
		frac = 0
	}
	if frac > 0.9999 {
		frac = 0.9999
	}
	t := g.start + int64(g.hourIdx)*hour + int64(frac*hour)
	if t < g.lastT {
		t = g.lastT
	}
	g.lastT = t
	return t
}

// Pareto shape and bounds of the account sizes (a yearly value in whole
// units of the reporting currency). About 2% of accounts are drawn above
// 1,000,000, 6% above 250,000 and 42% above 25,000; wallets, pipelines and
// strategic deals lift the scored values a little, to about 3% major, 6%
// named, 40% non-named and 50% mass-market under the default thresholds.
const (
	paretoShape = 0.85
	paretoMin   = 9_000.0
	paretoMax   = 60_000_000.0
)

func (g *Generator) initAccounts() {
	n := g.opts.Accounts
	r := g.rng
	g.accts = make([]account, n)
	g.cum = make([]float64, n)
	g.createT = make([]int64, n)
	span := g.end - g.start
	// Nine in ten accounts are the existing base, loaded in the first three
	// weeks; the rest are new customers arriving through the year.
	base := max(1, n*9/10)
	baseSpan := min(int64(21*day), span/4)
	for i := range n {
		var t int64
		if i < base {
			t = g.start + baseSpan*int64(i)/int64(base)
		} else {
			t = g.start + baseSpan + (span-baseSpan-30*day)*int64(i-base)/int64(n-base)
		}
		g.createT[i] = t
	}

	// Expected random events per account and year, to scale amounts.
	expected := float64(g.opts.Events)*(1-g.opts.BadRatio-g.dupRatio)*0.97 - float64(n)
	if expected < 0 {
		expected = 0
	}
	years := float64(span) / (365.25 * day)
	lo := math.Pow(paretoMin/paretoMax, paretoShape)
	var sum float64
	for i := range n {
		a := &g.accts[i]
		a.id = accountID(i + 1)
		a.idx = int32(i)
		u := r.Float64()
		a.size = paretoMin * math.Pow(1-u*(1-lo), -1/paretoShape)
		sum += math.Pow(a.size, 0.55)
		g.cum[i] = sum
	}
	// Owners: key-account reps 01-15 cover the biggest accounts, the rest
	// share the long tail.
	for i := range n {
		a := &g.accts[i]
		if a.size >= 600_000 {
			a.owner = 1 + r.IntN(15)
		} else {
			a.owner = 16 + r.IntN(numOwners-15)
		}
		a.cur = 0
		if len(g.curs) > 1 && r.Float64() < g.opts.ForeignShare {
			a.cur = 1 + r.IntN(len(g.curs)-1)
		}
		// current is the yearly business we do; the wallet, when known, is
		// the whole yearly category spend.
		current := a.size * (0.75 + 0.2*r.Float64())
		if r.Float64() < 0.6 {
			a.hasWallet = true
			a.wallet = roundTo(a.size*(0.9+0.4*r.Float64()), 1000)
			a.wallet0 = a.wallet
			share := 0.03 + 0.67*math.Pow(r.Float64(), 1.5)
			current = float64(a.wallet) * share
		}
		lambda := expected * math.Pow(a.size, 0.55) / sum / years
		wonPerYear := max(lambda*0.26/4.3*0.4, 1)
		ordersPerYear := max(lambda*0.26, 1)
		rate := g.curs[a.cur].rate
		if rate == 0 {
			rate = 1
		}
		a.current = current
		a.dealMean = 0.5 * current / wonPerYear / rate * 100 // cents
		// About one strategic deal every three years per account.
		a.strategic = min(0.3/max(lambda*0.26/4.3, 0.1), 0.2)
		a.orderMean = 0.5 * current / ordersPerYear / rate * 100
		a.maxOpen = 1 + r.IntN(3)
		if a.size >= 250_000 {
			a.maxOpen += 2
		}
		a.quietFrom, a.quietTo = math.MaxInt64, math.MaxInt64
	}
	// Quiet spells: no touches for one to five months; two in five last to
	// the end, so some accounts are neglected when the stream stops.
	for i := range n {
		a := &g.accts[i]
		p := 0.06
		if a.size >= 250_000 {
			p = 0.3
		}
		if r.Float64() >= p {
			continue
		}
		from := g.createT[i] + 30*day + r.Int64N(max(span-90*day, day))
		if from >= g.end-30*day {
			continue
		}
		a.quietFrom = from
		if r.Float64() < 0.4 {
			a.quietTo = math.MaxInt64
		} else {
			a.quietTo = from + (35+r.Int64N(115))*day
		}
		if r.Float64() < 0.2 {
			// The rep knows: snooze the alerts over the spell.
			until := min(a.quietTo, from+120*day)
			g.schedule(job{at: from - day, kind: jobSnooze, acct: int32(i), amount: midnight(until + 7*day)})
		}
	}
	// Make sure a few big accounts with headroom in their wallet are silent
	// at the end, so neglect alerts are open when the stream stops.
	want := max(n/250, 1)
	for i, off := 0, r.IntN(n); i < n && want > 0; i++ {
		k := (i + off) % n
		a := &g.accts[k]
		if a.size < 400_000 || !a.hasWallet || g.createT[k] > g.start+60*day {
			continue
		}
		if a.quietFrom != math.MaxInt64 {
			if a.quietTo == math.MaxInt64 {
				want-- // already silent to the end
			}
			continue
		}
		a.quietFrom, a.quietTo = g.end-(30+r.Int64N(90))*day, math.MaxInt64
		want--
	}
	// A few tier overrides, most of them cleared again later, and a few
	// snoozes and owner changes unrelated to quiet spells.
	nOver := max(n*15/1000, min(n/5, 2))
	for k := range nOver {
		i := r.IntN(n)
		at := g.createT[i] + 7*day + r.Int64N(max(span/2, day))
		g.schedule(job{at: at, kind: jobOverride, acct: int32(i), tier: tierNames[r.IntN(len(tierNames))]})
		if k == 0 || r.Float64() < 0.7 {
			g.schedule(job{at: at + (20+r.Int64N(100))*day, kind: jobClear, acct: int32(i)})
		}
	}
	for range max(n*2/100, 1) {
		i := r.IntN(n)
		at := g.createT[i] + 10*day + r.Int64N(max(span-40*day, day))
		g.schedule(job{at: at, kind: jobSnooze, acct: int32(i), amount: midnight(at + (14+r.Int64N(76))*day)})
	}
	for range n * 3 / 100 {
		i := r.IntN(n)
		at := g.createT[i] + 30*day + r.Int64N(max(span-40*day, day))
		g.schedule(job{at: at, kind: jobOwner, acct: int32(i)})
	}
}

var tierNames = [...]string{"major", "named", "non_named", "mass_market"}

// Next returns the next event, or false after the last one.
func (g *Generator) Next() (Record, bool) {
	if g.n >= g.opts.Events {
		return Record{}, false
	}
	k := g.n
	g.n++
	t := g.slotTime(k)
	left := g.opts.Events - k // slots left including this one
	mustCreate := left <= g.opts.Accounts-g.created || g.created == 0
	var rec Record
	switch u := g.rng.Float64(); {
	case !mustCreate && g.havePrev && u < g.dupRatio:
		g.stats.Duplicates++
		if g.prevBad {
			g.stats.Bad++
		}
		g.buf = append(g.buf[:0], g.prev...)
		rec = Record{Line: g.buf, Type: g.prevType, AccountID: g.prevAcct, Time: g.prevTime, Bad: g.prevBad, Duplicate: true}
	case !mustCreate && u < g.dupRatio+g.opts.BadRatio:
		rec = g.bad(t)
		g.stats.Bad++
	default:
		rec = g.good(t, mustCreate)
	}
	g.stats.Events++
	g.prev = append(g.prev[:0], rec.Line...)
	g.prevType, g.prevAcct, g.prevTime, g.prevBad = rec.Type, rec.AccountID, rec.Time, rec.Bad
	g.havePrev = true
	return rec, true
}

// WriteJSONL writes the remaining events to w, one per line.
func (g *Generator) WriteJSONL(w io.Writer) error { return g.WriteN(w, g.Remaining()) }

// WriteN writes the next n events (fewer at the end of the stream) to w, one
// per line.
func (g *Generator) WriteN(w io.Writer, n int) error {
	out := g.out[:0]
	for range n {
		rec, ok := g.Next()
		if !ok {
			break
		}
		out = append(out, rec.Line...)
		out = append(out, '\n')
		if len(out) >= 64<<10 {
			if _, err := w.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	g.out = out[:0]
	if len(out) > 0 {
		_, err := w.Write(out)
		return err
	}
	return nil
}

func (g *Generator) good(t int64, mustCreate bool) Record {
	if g.created < len(g.accts) && (mustCreate || g.createT[g.created] <= t) {
		return g.create(t)
	}
	for len(g.jobs) > 0 && g.jobs[0].at <= t {
		j := g.pop()
		a := &g.accts[j.acct]
		if !a.created {
			j.at = g.createT[j.acct] + day
			g.schedule(j)
			continue
		}
		if (j.kind == jobInvoice || j.kind == jobWon) && a.quiet(t) {
			if a.quietTo == math.MaxInt64 {
				continue // the account went silent: the follow-up never comes
			}
			j.at = a.quietTo + g.rng.Int64N(5*day)
			g.schedule(j)
			continue
		}
		return g.runJob(&j, a, t)
	}
	a := g.pick(t)
	switch u := g.rng.Float64(); {
	case u < 0.44:
		return g.activity(a, t)
	case u < 0.70:
		return g.opportunity(a, t)
	case u < 0.975:
		return g.order(a, t)
	default:
		return g.profile(a, t)
	}
}

// pick chooses a created account in proportion to its size, avoiding
// accounts in a quiet spell.
func (g *Generator) pick(t int64) *account {
	cum := g.cum[:g.created]
	total := cum[len(cum)-1]
	var a *account
	for range 12 {
		i := sort.SearchFloat64s(cum, g.rng.Float64()*total)
		if i >= len(cum) {
			i = len(cum) - 1
		}
		a = &g.accts[i]
		if !a.quiet(t) {
			break
		}
	}
	return a
}

func (g *Generator) create(t int64) Record {
	i := g.created
	g.created++
	a := &g.accts[i]
	a.created = true
	b := g.begin("account", a.id, t)
	b = append(b, `,"name":`...)
	b = appendName(b, uint64(i)*0x9e3779b97f4a7c15^g.opts.Seed)
	b = append(b, `,"owner_id":"`...)
	b = appendOwner(b, a.owner)
	b = append(b, '"')
	if a.hasWallet {
		b = append(b, `,"wallet":`...)
		b = strconv.AppendInt(b, a.wallet, 10)
	}
	return g.finish(b, "account", a, t)
}

func (g *Generator) runJob(j *job, a *account, t int64) Record {
	switch j.kind {
	case jobInvoice:
		return g.orderLine(a, t, "ord-", j.amount, j.opp)
	case jobWon:
		return g.oppLine(a, t, opp{id: j.opp, stage: stWon, amount: j.amount}, -1)
	}
	b := g.begin("account", a.id, t)
	switch j.kind {
	case jobOverride:
		b = append(b, `,"tier_override":"`...)
		b = append(b, j.tier...)
		b = append(b, '"')
	case jobClear:
		b = append(b, `,"tier_override":null`...)
	case jobSnooze:
		b = append(b, `,"snooze_alerts_until":"`...)
		b = g.appendTime(b, j.amount)
		b = append(b, '"')
	case jobOwner:
		o := a.owner
		for o == a.owner {
			o = 16 + g.rng.IntN(numOwners-15)
			if a.size >= 600_000 {
				o = 1 + g.rng.IntN(15)
			}
		}
		a.owner = o
		b = append(b, `,"owner_id":"`...)
		b = appendOwner(b, o)
		b = append(b, '"')
	}
	return g.finish(b, "account", a, t)
}

var activityKinds = [...]string{"email", "email", "email", "email", "call", "call", "call", "meeting", "meeting", "visit"}

func (g *Generator) activity(a *account, t int64) Record {
	b := g.begin("activity", a.id, t)
	b = append(b, `,"kind":"`...)
	b = append(b, activityKinds[g.rng.IntN(len(activityKinds))]...)
	b = append(b, '"')
	switch u := g.rng.Float64(); {
	case u < 0.85:
		b = append(b, `,"owner_id":"`...)
		b = appendOwner(b, a.owner)
		b = append(b, '"')
	case u < 0.97:
		b = append(b, `,"owner_id":"`...)
		b = appendOwner(b, 1+g.rng.IntN(numOwners))
		b = append(b, '"')
	}
	g.stats.Activities++
	return g.finish(b, "activity", a, t)
}

// lognormal returns a positive factor with mean 1.
func (g *Generator) lognormal(sigma float64) float64 {
	return math.Exp(g.rng.NormFloat64()*sigma - sigma*sigma/2)
}

func (g *Generator) opportunity(a *account, t int64) Record {
	r := g.rng
	if len(a.opps) == 0 || (len(a.opps) < a.maxOpen && r.Float64() < 0.3) {
		g.oppSeq++
		amt := a.dealMean * g.lognormal(0.6)
		if r.Float64() < a.strategic {
			// A strategic deal, the size of the account's whole business.
			amt = a.size * (0.5 + r.Float64()) * 100 / g.rate(a)
		}
		o := opp{id: g.oppSeq, stage: stProspecting, amount: roundCents(amt, 100)}
		a.opps = append(a.opps, o)
		return g.oppLine(a, t, o, g.customProb(stProspecting))
	}
	i := r.IntN(len(a.opps))
	o := &a.opps[i]
	switch {
	case o.stage < stNegotiation && r.Float64() < 0.12:
		o.stage = stLost
	case o.stage < stNegotiation:
		o.stage++
		if o.stage == stProposal && r.Float64() < 0.5 {
			// The proposal prices the deal anew.
			o.amount = roundCents(float64(o.amount)*(0.8+0.4*r.Float64()), 100)
		}
	case r.Float64() < 0.55:
		o.stage = stWon
	default:
		o.stage = stLost
	}
	cur := *o
	if cur.stage >= stWon {
		a.opps[i] = a.opps[len(a.opps)-1]
		a.opps = a.opps[:len(a.opps)-1]
	}
	if cur.stage != stWon {
		return g.oppLine(a, t, cur, g.customProb(int(cur.stage)))
	}
	// Won: schedule the invoices. Now and then finance is faster than the
	// CRM and the first order arrives before the won upsert.
	switch u := r.Float64(); {
	case u < 0.08:
		g.schedule(job{at: t + r.Int64N(3*day), kind: jobWon, acct: g.index(a), opp: cur.id, amount: cur.amount})
		return g.orderLine(a, t, "ord-", cur.amount, cur.id)
	case u < 0.18:
		// Invoiced much later, or not within the stream: backlog.
		g.schedule(job{at: t + (60+r.Int64N(200))*day, kind: jobInvoice, acct: g.index(a), opp: cur.id, amount: cur.amount})
	case u < 0.45:
		parts := 2 + r.IntN(3)
		left := cur.amount
		at := t
		for p := range parts {
			amt := left
			if p < parts-1 {
				amt = cur.amount / int64(parts)
				amt -= amt % 100
			}
			left -= amt
			at += (7 + r.Int64N(40)) * day
			g.schedule(job{at: at, kind: jobInvoice, acct: g.index(a), opp: cur.id, amount: amt})
		}
	default:
		g.schedule(job{at: t + (2+r.Int64N(40))*day, kind: jobInvoice, acct: g.index(a), opp: cur.id, amount: cur.amount})
	}
	return g.oppLine(a, t, cur, -1)
}

// customProb returns an explicit probability in hundredths for about one
// upsert in five, else -1 (the stage default applies).
func (g *Generator) customProb(stage int) int {
	if stage >= stWon || g.rng.Float64() >= 0.2 {
		return -1
	}
	p := defaultProb[stage] + g.rng.IntN(21) - 10
	return min(max(p, 5), 95)
}

func (g *Generator) order(a *account, t int64) Record {
	if a.lastOrder > 0 && g.rng.Float64() < 0.05 {
		// A return or credit note for part of the last order.
		amt := -roundCents(float64(a.lastOrder)*(0.05+0.95*g.rng.Float64()), 1)
		a.lastOrder = 0
		g.stats.Returns++
		return g.orderLine(a, t, "cn-", amt, 0)
	}
	amt := roundCents(a.orderMean*g.lognormal(0.7), 1)
	if amt < 100 {
		amt = 100 + g.rng.Int64N(5000)
	}
	a.lastOrder = amt
	return g.orderLine(a, t, "ord-", amt, 0)
}

// profile is a spontaneous account update: a new wallet estimate, a first
// wallet estimate, or a renamed account.
func (g *Generator) profile(a *account, t int64) Record {
	b := g.begin("account", a.id, t)
	switch u := g.rng.Float64(); {
	case a.hasWallet && u < 0.8:
		a.wallet = roundTo(float64(a.wallet0)*(0.85+0.35*g.rng.Float64()), 1000)
		b = append(b, `,"wallet":`...)
		b = strconv.AppendInt(b, a.wallet, 10)
	case !a.hasWallet && u < 0.2:
		// The rep learns the customer's category spend.
		a.hasWallet = true
		a.wallet = roundTo(a.current/(0.1+0.7*g.rng.Float64()), 1000)
		a.wallet0 = a.wallet
		b = append(b, `,"wallet":`...)
		b = strconv.AppendInt(b, a.wallet, 10)
	default:
		b = append(b, `,"name":`...)
		b = appendName(b, g.rng.Uint64())
	}
	return g.finish(b, "account", a, t)
}

func (g *Generator) orderLine(a *account, t int64, prefix string, cents, oppID int64) Record {
	g.ordSeq++
	b := g.begin("order", a.id, t)
	b = append(b, `,"order_id":"`...)
	b = append(b, prefix...)
	b = appendPad(b, g.ordSeq, 7)
	b = append(b, `","amount":`...)
	b = appendCents(b, cents)
	b = g.appendCurrency(b, a)
	if oppID != 0 {
		b = append(b, `,"opportunity_id":"opp-`...)
		b = appendPad(b, oppID, 7)
		b = append(b, '"')
	}
	g.stats.Orders++
	return g.finish(b, "order", a, t)
}

func (g *Generator) oppLine(a *account, t int64, o opp, prob int) Record {
	b := g.begin("opportunity", a.id, t)
	b = append(b, `,"opportunity_id":"opp-`...)
	b = appendPad(b, o.id, 7)
	b = append(b, `","stage":"`...)
	b = append(b, stageNames[o.stage]...)
	b = append(b, `","amount":`...)
	b = appendCents(b, o.amount)
	if prob >= 0 {
		b = append(b, `,"probability":0.`...)
		b = append(b, byte('0'+prob/10), byte('0'+prob%10))
	}
	b = g.appendCurrency(b, a)
	g.stats.Opportunities++
	return g.finish(b, "opportunity", a, t)
}

func (g *Generator) appendCurrency(b []byte, a *account) []byte {
	if a.cur == 0 {
		return b
	}
	b = append(b, `,"currency":"`...)
	b = append(b, g.curs[a.cur].code...)
	return append(b, '"')
}

func (g *Generator) rate(a *account) float64 {
	if a.cur == 0 {
		return 1
	}
	return g.curs[a.cur].rate
}

func (g *Generator) index(a *account) int32 { return a.idx }

// begin starts a line with the common fields.
func (g *Generator) begin(typ, accountID string, t int64) []byte {
	b := append(g.buf[:0], `{"event_id":"`...)
	b = append(b, g.idPref...)
	b = strconv.AppendInt(b, int64(g.n), 10)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","account_id":"`...)
	b = append(b, accountID...)
	b = append(b, `","occurred_at":"`...)
	b = g.appendTime(b, t)
	return append(b, '"')
}

func (g *Generator) finish(b []byte, typ string, a *account, t int64) Record {
	b = append(b, '}')
	g.buf = b
	if typ == "account" {
		g.stats.Accounts++
	}
	return Record{Line: b, Type: typ, AccountID: a.id, Time: t}
}

// schedule and pop keep g.jobs a min-heap by (at, seq).
func (g *Generator) schedule(j job) {
	g.jobSeq++
	j.seq = g.jobSeq
	g.jobs = append(g.jobs, j)
	i := len(g.jobs) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !jobLess(&g.jobs[i], &g.jobs[p]) {
			break
		}
		g.jobs[i], g.jobs[p] = g.jobs[p], g.jobs[i]
		i = p
	}
}

func (g *Generator) pop() job {
	h := g.jobs
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && jobLess(&h[r], &h[l]) {
			m = r
		}
		if !jobLess(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	g.jobs = h
	return top
}

func jobLess(a, b *job) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}
