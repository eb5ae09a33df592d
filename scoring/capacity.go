package scoring

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/pyramid-crm/pyramid/money"
)

// Capacity-capped tiers (tiers.<tier>.max_accounts, docs/model.md).
//
// An account has two tiers: qual, what its value qualifies for (thresholds,
// their hysteresis, tier_override), and Tier, what it holds. They differ
// only where a capped tier has no place for the account. A ranking places
// accounts: for each capped tier T from the top down, the pool is every
// account that qualifies for T or higher, for which every tier from T up
// to its qualified tier is capped, and which no higher tier took; it is
// ordered by value, an account that already holds T or higher counting at
// value ÷ (1 − hysteresis), ties by account id; the first max_accounts,
// less the accounts tier_override pins to T, keep T and the others fall to
// T's pool below, or to the uncapped tier below. Between rankings an
// account can fall at once, rise through uncapped tiers, and rise into a
// capped tier only by a ranking.
//
// Ranking is one pure function of the candidates, so it gives the same
// places wherever it runs. A partition contributes only its best
// candidates per pool (Engine.Candidates); the union of every partition's
// candidates ranks exactly as all accounts would, down to the depth that
// reasons name (see Candidates).

// Candidate is an account as the capacity ranking sees it.
type Candidate struct {
	ID        string
	Value     money.Cents // current + potential value
	Qualified Tier
	Tier      Tier // the tier it holds
}

// Candidates is what one partition contributes to a ranking: its best
// candidates for the capped tiers, sorted by account id, how many of its
// accounts tier_override pins to each tier, and how many it has in each
// capped tier's pool before higher tiers take theirs (List holds only the
// best of them).
type Candidates struct {
	List   []Candidate
	Pinned [Major + 1]int
	Pool   [Major + 1]int
}

// Capped reports whether tier t has max_accounts.
func (p *Params) Capped(t Tier) bool { return t <= Major && p.tiers[t].maxAccounts > 0 }

// AnyCapped reports whether some tier has max_accounts.
func (p *Params) AnyCapped() bool { return p.capped }

// MaxAccounts returns tier t's cap, 0 when it has none.
func (p *Params) MaxAccounts(t Tier) int {
	if t > Major {
		return 0
	}
	return p.tiers[t].maxAccounts
}

// depth is how far down tier t's ranking ranks are known exactly, and
// named in reasons: twice the cap. Further down a reason says "over".
func (p *Params) depth(t Tier) int { return 2 * p.tiers[t].maxAccounts }

// listLen is how many candidates of tier t's pool a partition publishes:
// the depth, plus every place of the capped tiers above t that t's pool
// reaches, since accounts those take leave t's pool.
func (p *Params) listLen(t Tier) int {
	n := p.depth(t)
	for u := t + 1; u <= Major && p.Capped(u); u++ {
		n += p.tiers[u].maxAccounts
	}
	return n
}

// holderBoost is 2^32 ÷ (1 − h), rounded up so that a holder at exactly
// (1 − h) × a newcomer's value keeps its place, and bounded so that a key
// (value × boost) fits 128 bits.
func holderBoost(h float64) uint64 {
	b := math.Ceil(float64(uint64(1)<<32) / (1 - h))
	if !(b < 1<<62) {
		return 1 << 62
	}
	return uint64(b)
}

// rankKey is a candidate's 128-bit ranking key in tier t's pool: exact, so
// every instance orders the same way.
type rankKey struct{ hi, lo uint64 }

func (p *Params) key(c *Candidate, t Tier) rankKey {
	m := uint64(1) << 32
	if c.Tier >= t {
		m = p.holderBoost
	}
	hi, lo := bits.Mul64(uint64(max(c.Value, 0)), m)
	return rankKey{hi, lo}
}

// before orders tier t's pool: higher key first, then lower account id.
func (p *Params) before(t Tier) func(a, b *Candidate) int {
	return func(a, b *Candidate) int {
		ka, kb := p.key(a, t), p.key(b, t)
		switch {
		case ka.hi != kb.hi:
			return cmpDesc(ka.hi, kb.hi)
		case ka.lo != kb.lo:
			return cmpDesc(ka.lo, kb.lo)
		}
		return strings.Compare(a.ID, b.ID)
	}
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

// inPool reports whether an account qualified for q belongs to tier t's
// pool when no higher tier took it: t ≤ q and every tier from t to q is
// capped.
func (p *Params) inPool(q, t Tier) bool {
	if t > q || !p.Capped(t) {
		return false
	}
	for u := t; u <= q; u++ {
		if !p.Capped(u) {
			return false
		}
	}
	return true
}

// Candidates returns the engine's contribution to a ranking at asOf: for
// every capped tier t, the first listLen(t) accounts of its pool by t's
// order (taking no account out for higher tiers, which only a ranking of
// every partition knows). Whatever the other partitions hold, the union
// contains every account a ranking places in a capped tier and every one
// ranked within the depth: an account among the first m of its
// partition's pool once higher tiers took theirs is among the first
// m + (places above) of the pool before. It is empty when no tier is
// capped. The engine's accounts must have been evaluated at asOf.
func (e *Engine) Candidates(asOf int64) *Candidates {
	p := e.p
	c := &Candidates{}
	if !p.capped {
		return c
	}
	var all []Candidate
	for _, a := range e.accounts {
		switch {
		case a.override != TierNone:
			c.Pinned[a.Tier]++
		case p.Capped(a.qual):
			f := a.Figures(p, asOf)
			all = append(all, Candidate{ID: a.ID, Value: f.Value(), Qualified: a.qual, Tier: a.Tier})
		}
	}
	keep := make(map[string]bool)
	pool := make([]Candidate, 0, len(all))
	for t := Major; t > MassMarket; t-- {
		if !p.Capped(t) {
			continue
		}
		pool = pool[:0]
		for i := range all {
			if p.inPool(all[i].Qualified, t) {
				pool = append(pool, all[i])
			}
		}
		c.Pool[t] = len(pool)
		slices.SortFunc(pool, func(a, b Candidate) int { return p.before(t)(&a, &b) })
		for i := range pool[:min(len(pool), p.listLen(t))] {
			keep[pool[i].ID] = true
		}
	}
	for i := range all {
		if keep[all[i].ID] {
			c.List = append(c.List, all[i])
		}
	}
	slices.SortFunc(c.List, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
	return c
}

// ApplyRanking places the engine's accounts as r says, evaluating each at
// asOf (when the candidates were taken), and appends to changed every
// account whose snapshot changed; each of those gains a version. Accounts
// are visited in id order, so the output is deterministic.
func (e *Engine) ApplyRanking(r *Ranking, asOf int64, out *Output, changed []*Account) []*Account {
	if !e.p.capped {
		return changed
	}
	// Only accounts whose qualified tier is capped can be concerned: the
	// others are not sorted, which keeps a ranking cheap in a partition of
	// many accounts and few capped ones.
	var ranked []*Account
	for _, a := range e.accounts {
		if a.Tier != TierNone && a.override == TierNone && e.p.Capped(a.qual) {
			ranked = append(ranked, a)
		}
	}
	slices.SortFunc(ranked, func(a, b *Account) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range ranked {
		if e.judge(a, asOf, nil, r, out) {
			a.Version++
			changed = append(changed, a)
		}
	}
	return changed
}

// capacityReason renders a place given or refused by tier t's ranking,
// e.g. "capacity: rank 57 by value, major holds 50".
func (p *Params) capacityReason(t Tier, rank int) string {
	b := append(make([]byte, 0, 64), "capacity: rank "...)
	if rank > 0 {
		b = strconv.AppendInt(b, int64(rank), 10)
	} else {
		b = strconv.AppendInt(append(b, "over "...), int64(p.depth(t)), 10)
	}
	b = append(b, " by value, "...)
	return string(append(b, p.holds(t)...))
}

// holds renders tier t's cap, e.g. "major holds 50".
func (p *Params) holds(t Tier) string {
	return t.String() + " holds " + strconv.Itoa(p.tiers[t].maxAccounts)
}

// fit returns the tier an account qualified for q may hold between
// rankings when it holds cur: q, or below it the highest tier that is not
// capped or that it holds already (an account enters a capped tier only
// by a ranking).
func (p *Params) fit(q, cur Tier) Tier {
	t := q
	for t > cur && p.Capped(t) {
		t--
	}
	return t
}

// hold decides the tier account a holds once its qualified tier is q
// (kind says why q moved; reasonNone when it did not), with the ranking r
// or, when r is nil or does not concern a, by fit. It returns the reason to
// record (kind, from tier, value), or reasonNone to keep the current one.
// Without caps it returns q and the qualified tier's own reason, exactly
// as before capacity existed.
func (p *Params) hold(a *Account, q Tier, kind uint8, value money.Cents, r *Ranking) (t Tier, why uint8, from Tier, rv money.Cents) {
	moved := kind != reasonNone
	if a.override != TierNone {
		if moved || q != a.Tier {
			return q, reasonOverride, a.qual, value
		}
		return q, reasonNone, 0, 0
	}
	if pl, ok := r.Place(a.ID, q); ok {
		switch {
		case pl.Tier == q && q > a.Tier: // given a place
			return q, reasonPlaced, q, value
		case pl.Tier == q && moved:
			return q, kind, a.qual, value
		case pl.Tier == q:
			return q, reasonNone, 0, 0
		case pl.Tier != a.Tier || moved || a.reasonKind != reasonCapacity || a.reasonFrom != pl.OutOf:
			return pl.Tier, reasonCapacity, pl.OutOf, money.Cents(pl.Rank)
		}
		return pl.Tier, reasonNone, 0, 0
	}
	t = p.fit(q, a.Tier)
	switch {
	case t == q && moved:
		return t, kind, a.qual, value
	case t == q && t != a.Tier:
		return t, reasonQualifies, 0, value
	case t < q && (moved || t != a.Tier):
		return t, reasonWait, q, value
	}
	return t, reasonNone, 0, 0
}

// CapacityDigest identifies what a ranking depends on in the
// configuration: the caps and the hysteresis. Partitions rank together
// only with candidates published under the same digest, so instances
// running different configurations during a rolling change never mix
// their rankings.
func (p *Params) CapacityDigest() uint64 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		h = (h ^ v) * 0x9E3779B97F4A7C15
		h ^= h >> 29
	}
	for _, t := range AllTiers {
		mix(uint64(p.tiers[t].maxAccounts))
	}
	mix(p.holderBoost)
	return h
}
