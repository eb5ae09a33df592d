package plan

import (
	"math"
	"sort"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Lengths of the lists a summary carries; totals are always complete.
const (
	FurthestBehind = 10 // accounts furthest behind, per tier
	ListLength     = 50 // unowned accounts, overloaded reps, watch list
	RepAccounts    = 20 // accounts shown per overloaded rep, biggest first
)

// AttainmentBounds split attainment into the buckets of the distribution:
// under 25% of target, 25–50%, 50–75%, 75–100%, met.
var AttainmentBounds = [...]float64{0.25, 0.5, 0.75, 1}

// Summariser accumulates snapshots. The zero value is not usable; call New.
type Summariser struct {
	p        *scoring.Params
	accounts int
	tiers    [scoring.Major + 1]tierAcc // indexed by scoring.Tier
	owners   map[string]*ownerAcc
	unowned  top[AccountRef]
	watch    top[AccountRef]
}

type tierAcc struct {
	accounts, met, behind, unknown int
	actual                         money.Cents // Σ current value (absolute_sales tiers)
	attainments                    []float64
	buckets                        [len(AttainmentBounds) + 1]int
	behindList                     top[Behind]
	owners                         map[string]struct{}
	unowned                        int
}

type ownerAcc struct {
	perTier  [scoring.Major + 1]int
	accounts top[AccountRef]
}

// New returns an empty Summariser judging by p.
func New(p *scoring.Params) *Summariser {
	s := &Summariser{
		p:       p,
		owners:  map[string]*ownerAcc{},
		unowned: top[AccountRef]{k: ListLength, less: biggerFirst},
		watch:   top[AccountRef]{k: ListLength, less: leastFutureFirst},
	}
	for _, t := range scoring.AllTiers {
		s.tiers[t] = tierAcc{
			behindList: top[Behind]{k: FurthestBehind, less: furtherBehind},
			owners:     map[string]struct{}{},
		}
	}
	return s
}

// Add counts one account's newest snapshot. Snapshots of accounts without
// a tier yet are ignored. Add keeps strings of sn but not sn itself.
func (s *Summariser) Add(sn *scoring.Snapshot) {
	if sn.Tier < scoring.MassMarket || sn.Tier > scoring.Major {
		return
	}
	s.accounts++
	ta := &s.tiers[sn.Tier]
	ta.accounts++
	ref := refOf(sn)

	switch sn.GoalStatus {
	case scoring.GoalMet:
		ta.met++
	case scoring.GoalBehind:
		ta.behind++
		ta.behindList.add(Behind{AccountRef: ref, attainment: sn.GoalAttainment, actual: sn.GoalActual, wallet: walletOf(sn)})
	default:
		ta.unknown++
	}
	if sn.GoalMetric == config.AbsoluteSales {
		ta.actual += sn.CurrentValue
	}
	if sn.HasGoalActual {
		ta.attainments = append(ta.attainments, sn.GoalAttainment)
		ta.buckets[bucket(sn.GoalAttainment)]++
	}

	capy, known := s.p.Config().Capacity(sn.CoverageModel)
	if sn.OwnerID == "" {
		ta.unowned++
		if known && !capy.IsUnlimited() {
			s.unowned.add(ref)
		}
	} else {
		ta.owners[sn.OwnerID] = struct{}{}
		o := s.owners[sn.OwnerID]
		if o == nil {
			o = &ownerAcc{accounts: top[AccountRef]{k: RepAccounts, less: biggerFirst}}
			s.owners[sn.OwnerID] = o
		}
		o.perTier[sn.Tier]++
		o.accounts.add(ref)
	}
	if sn.Quadrant == scoring.HighCurrentLowPotential && known && capy <= 1 {
		s.watch.add(ref)
	}
}

func refOf(sn *scoring.Snapshot) AccountRef {
	return AccountRef{
		AccountID: sn.AccountID, Name: sn.Name, Tier: sn.Tier.String(), OwnerID: sn.OwnerID,
		CurrentValue: Amount(sn.CurrentValue), PotentialValue: Amount(sn.PotentialValue),
		CoverageModel: sn.CoverageModel,
	}
}

func walletOf(sn *scoring.Snapshot) money.Cents {
	if sn.HasWallet {
		return sn.Wallet
	}
	return 0
}

func bucket(attainment float64) int {
	for i, b := range AttainmentBounds {
		if attainment < b {
			return i
		}
	}
	return len(AttainmentBounds)
}

// median returns the median of vs (which it sorts), and false when vs is
// empty.
func median(vs []float64) (float64, bool) {
	n := len(vs)
	if n == 0 {
		return 0, false
	}
	sort.Float64s(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// Orders of the lists. Each ends on the account id, so a list is the same
// whatever order snapshots were added in.

func biggerFirst(a, b AccountRef) bool {
	va, vb := a.CurrentValue+a.PotentialValue, b.CurrentValue+b.PotentialValue
	if va != vb {
		return va > vb
	}
	return a.AccountID < b.AccountID
}

func leastFutureFirst(a, b AccountRef) bool {
	if a.PotentialValue != b.PotentialValue {
		return a.PotentialValue < b.PotentialValue
	}
	if a.CurrentValue != b.CurrentValue {
		return a.CurrentValue > b.CurrentValue
	}
	return a.AccountID < b.AccountID
}

func furtherBehind(a, b Behind) bool {
	if a.attainment != b.attainment {
		return a.attainment < b.attainment
	}
	if a.wallet != b.wallet {
		return a.wallet > b.wallet
	}
	if a.CurrentValue != b.CurrentValue {
		return a.CurrentValue < b.CurrentValue
	}
	return a.AccountID < b.AccountID
}

// top keeps the k first items under less, best first. less takes values:
// a pointer to the candidate would make every candidate escape to the heap.
type top[T any] struct {
	k     int
	less  func(a, b T) bool
	total int
	items []T
}

func (t *top[T]) add(v T) {
	t.total++
	n := len(t.items)
	if n == t.k && !t.less(v, t.items[n-1]) {
		return
	}
	i, j := 0, n // the first item v goes before
	for i < j {
		h := int(uint(i+j) >> 1)
		if t.less(v, t.items[h]) {
			j = h
		} else {
			i = h + 1
		}
	}
	if n < t.k {
		var zero T
		t.items = append(t.items, zero)
	}
	copy(t.items[i+1:], t.items[i:])
	t.items[i] = v
}

// list returns a copy of the kept items, never nil.
func (t *top[T]) list() []T { return append(make([]T, 0, len(t.items)), t.items...) }

func units(v float64) money.Cents { return money.Cents(math.Round(v * 100)) }
