// The events a generator makes, and the queue of follow-ups.

package gen

import (
	"math"
	"sort"
	"strconv"
)

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
