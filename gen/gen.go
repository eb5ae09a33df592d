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
