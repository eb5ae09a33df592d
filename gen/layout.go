// The layout of a generated stream: its hours and its accounts.

package gen

import (
	"math"
	"time"
)

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
