package scoring

import (
	"slices"

	"github.com/pyramid-crm/pyramid/money"
)

// The ranking itself (see capacity.go for the rules): a pure function of
// every partition's candidates.

// Ranking is the result of ranking the candidates of every partition: who
// has a place in each capped tier, and the ranks known (those within the
// tier's depth).
type Ranking struct {
	p *Params
	// placed[t] maps the accounts given a place in capped tier t to their
	// rank; ranked[t] maps every account ranked within t's depth.
	placed, ranked [Major + 1]map[string]int
	tiers          [Major + 1]TierRanking
}

// TierRanking summarises one capped tier's ranking.
type TierRanking struct {
	Cap    int // max_accounts
	Pinned int // accounts tier_override pins to the tier
	Placed int // accounts the ranking gave a place
	// Pool counts the accounts ranked for the tier: those that qualify for
	// it (or higher, through capped tiers only), are not pinned, and no
	// higher tier took.
	Pool int
	// Cut is the value a newcomer must exceed to take a place: the last
	// placed account's value, ÷ (1 − hysteresis) when it held the tier; 0
	// while places are free.
	Cut money.Cents
}

// Rank ranks the candidates of every partition of a layout (in partition
// order; an account listed twice counts once, as first listed).
func Rank(p *Params, sets ...*Candidates) *Ranking {
	r := &Ranking{p: p}
	if !p.capped {
		return r
	}
	seen := map[string]bool{}
	var all []Candidate
	var pinned, counted [Major + 1]int
	for _, s := range sets {
		if s == nil {
			continue
		}
		for t := range pinned {
			pinned[t] += s.Pinned[t]
			counted[t] += s.Pool[t]
		}
		for _, c := range s.List {
			if !seen[c.ID] {
				seen[c.ID] = true
				all = append(all, c)
			}
		}
	}
	taken := map[string]bool{} // placed in a higher capped tier
	pool := make([]Candidate, 0, len(all))
	for t := Major; t > MassMarket; t-- {
		if !p.Capped(t) {
			continue
		}
		pool = pool[:0]
		gone := 0 // of the tier's pool, taken by a higher tier
		for i := range all {
			switch {
			case !p.inPool(all[i].Qualified, t):
			case taken[all[i].ID]:
				gone++
			default:
				pool = append(pool, all[i])
			}
		}
		slices.SortFunc(pool, func(a, b Candidate) int { return p.before(t)(&a, &b) })
		capN := p.tiers[t].maxAccounts
		places := max(0, capN-pinned[t])
		r.placed[t], r.ranked[t] = map[string]int{}, map[string]int{}
		tr := TierRanking{Cap: capN, Pinned: pinned[t], Pool: max(counted[t]-gone, len(pool))}
		for i := range pool {
			rank := pinned[t] + i + 1
			if i < places {
				r.placed[t][pool[i].ID] = rank
				taken[pool[i].ID] = true
				tr.Placed++
			}
			if rank > p.depth(t) {
				break
			}
			r.ranked[t][pool[i].ID] = rank
		}
		if places > 0 && tr.Placed == places {
			k := p.key(&pool[places-1], t)
			tr.Cut = money.Cents(k.hi<<32 | k.lo>>32)
		}
		r.tiers[t] = tr
	}
	return r
}

// Tier returns the summary of capped tier t's ranking.
func (r *Ranking) Tier(t Tier) TierRanking {
	if t > Major {
		return TierRanking{}
	}
	return r.tiers[t]
}

// Placement is where a ranking puts one account.
type Placement struct {
	Tier Tier
	// OutOf is the capped tier whose ranking decided: Tier when the
	// account has a place in its qualified tier, else the tier above the
	// one it fell to. Rank is its rank there, 0 when beyond the depth.
	OutOf Tier
	Rank  int
}

// Place returns where the ranking puts account id, qualified for q; ok is
// false when q is not capped, so no ranking concerns the account.
func (r *Ranking) Place(id string, q Tier) (pl Placement, ok bool) {
	if r == nil || !r.p.Capped(q) {
		return Placement{}, false
	}
	t := q
	for ; t > MassMarket && r.p.Capped(t); t-- {
		if rank, in := r.placed[t][id]; in {
			if t == q {
				return Placement{Tier: t, OutOf: t, Rank: rank}, true
			}
			break
		}
	}
	return Placement{Tier: t, OutOf: t + 1, Rank: r.ranked[t+1][id]}, true
}
