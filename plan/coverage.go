package plan

import (
	"math"
	"sort"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Coverage is the coverage plan.
type Coverage struct {
	Accounts int `json:"accounts"`
	// Reps counts distinct owners over all tiers.
	Reps  int            `json:"reps"`
	Tiers []TierCoverage `json:"tiers"`
	// Unowned lists accounts without an owner in tiers whose coverage
	// needs a rep (a call centre's accounts need none), biggest first.
	Unowned AccountList `json:"unowned"`
	// Overloaded lists reps whose load exceeds 1, heaviest first.
	Overloaded RepList `json:"overloaded_reps"`
	// WatchList holds high-current/low-potential accounts on dedicated
	// coverage, least potential first.
	WatchList AccountList `json:"watch_list"`
}

// TierCoverage compares what a tier needs with what it has.
type TierCoverage struct {
	Tier          string `json:"tier"`
	Label         string `json:"label"`
	CoverageModel string `json:"coverage_model"`
	// Capacity is accounts per rep; nil when unlimited (a call centre).
	Capacity *float64 `json:"capacity"`
	Accounts int      `json:"accounts"`
	// RepsNeeded is ceil(accounts / capacity); 0 when unlimited.
	RepsNeeded int `json:"reps_needed"`
	// Owners counts distinct owners among the tier's accounts.
	Owners int `json:"owners"`
	// Shortfall is RepsNeeded − Owners when positive.
	Shortfall int    `json:"shortfall"`
	Unowned   int    `json:"unowned"`
	Summary   string `json:"summary"`
}

// AccountList is the first accounts of a list and how many there are.
type AccountList struct {
	Total    int          `json:"total"`
	Accounts []AccountRef `json:"accounts"`
}

// RepList is the first reps of a list and how many there are.
type RepList struct {
	Total int       `json:"total"`
	Reps  []RepLoad `json:"reps"`
}

// RepLoad is one rep's load.
type RepLoad struct {
	OwnerID string `json:"owner_id"`
	// Load is Σ load_weight over the rep's accounts, rounded to 6 decimals
	// as ClickHouse's rep_coverage rounds it.
	Load         float64        `json:"load"`
	Accounts     int            `json:"accounts"`
	ByTier       map[string]int `json:"by_tier"`
	AccountsList []AccountRef   `json:"account_list"` // the RepAccounts biggest
	Summary      string         `json:"summary"`
}

// Coverage returns the coverage plan of everything added.
func (s *Summariser) Coverage() Coverage {
	cfg := s.p.Config()
	c := Coverage{Accounts: s.accounts, Reps: len(s.owners)}
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		ta := &s.tiers[t]
		model := cfg.Tier(t.String()).Coverage
		tc := TierCoverage{
			Tier: t.String(), Label: Label(t), CoverageModel: model,
			Accounts: ta.accounts, Owners: len(ta.owners), Unowned: ta.unowned,
		}
		if capy, ok := cfg.Capacity(model); ok && !capy.IsUnlimited() {
			v := float64(capy)
			tc.Capacity = &v
			tc.RepsNeeded = RepsNeeded(ta.accounts, capy)
		}
		tc.Shortfall = max(0, tc.RepsNeeded-tc.Owners)
		tc.Summary = coverageSentence(&tc)
		c.Tiers = append(c.Tiers, tc)
	}
	c.Unowned = AccountList{Total: s.unowned.total, Accounts: s.unowned.list()}
	c.WatchList = AccountList{Total: s.watch.total, Accounts: s.watch.list()}

	var reps []RepLoad
	for id, o := range s.owners {
		load := s.load(o)
		if load <= 1 {
			continue
		}
		r := RepLoad{OwnerID: id, Load: load, Accounts: o.accounts.total, ByTier: map[string]int{}, AccountsList: o.accounts.list()}
		for _, t := range scoring.AllTiers {
			if n := o.perTier[t]; n > 0 {
				r.ByTier[t.String()] = n
			}
		}
		r.Summary = repSentence(&r)
		reps = append(reps, r)
	}
	sort.Slice(reps, func(i, j int) bool {
		if reps[i].Load != reps[j].Load {
			return reps[i].Load > reps[j].Load
		}
		return reps[i].OwnerID < reps[j].OwnerID
	})
	c.Overloaded = RepList{Total: len(reps), Reps: append(make([]RepLoad, 0, min(len(reps), ListLength)), reps[:min(len(reps), ListLength)]...)}
	return c
}

// load sums the rep's load weights tier by tier, so the result does not
// depend on the order accounts were added, and rounds it as rep_coverage
// does.
func (s *Summariser) load(o *ownerAcc) float64 {
	var l float64
	for _, t := range scoring.AllTiers {
		l += float64(o.perTier[t]) * s.p.LoadWeight(t)
	}
	return math.Round(l*1e6) / 1e6
}

// RepsNeeded is ceil(accounts / capacity), 0 for an unlimited capacity. The
// epsilon keeps 3 / 0.3 = 10.000000000000002 at 10 reps.
func RepsNeeded(accounts int, capacity config.Capacity) int {
	if capacity.IsUnlimited() || !(capacity > 0) {
		return 0
	}
	return int(math.Ceil(float64(accounts)/float64(capacity) - 1e-9))
}
