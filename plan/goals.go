package plan

import (
	"math"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Goals is the goal summary: one entry per tier, Major first.
type Goals struct {
	Accounts int        `json:"accounts"`
	Currency string     `json:"currency"`
	Tiers    []TierGoal `json:"tiers"`
}

// TierGoal is how one tier does against its goal.
type TierGoal struct {
	Tier       string    `json:"tier"`
	Label      string    `json:"label"`
	GoalMetric string    `json:"goal_metric"`
	GoalTarget GoalValue `json:"goal_target"`
	Accounts   int       `json:"accounts"`
	Met        int       `json:"met"`
	Behind     int       `json:"behind"`
	// WalletUnknown counts accounts of a share-of-wallet tier without a
	// wallet: their share, and so their attainment, is unknown.
	WalletUnknown int `json:"wallet_unknown"`
	// ActualTotal is the sales of the tier's accounts, and TargetTotal
	// accounts × target; absolute_sales tiers only (shares do not add up).
	ActualTotal *Amount `json:"actual_total"`
	TargetTotal *Amount `json:"target_total"`
	// MedianAttainment is over the accounts with a known attainment; nil
	// when there are none.
	MedianAttainment *Ratio   `json:"median_attainment"`
	Attainment       []Bucket `json:"attainment"`
	FurthestBehind   []Behind `json:"furthest_behind"`
	// Summary and Detail say the above in words, as the status page shows
	// them.
	Summary string `json:"summary"`
	Detail  string `json:"detail"`
}

// Bucket counts accounts whose attainment is in [From, To); To is nil for
// the last, open bucket (met).
type Bucket struct {
	From     Ratio  `json:"from"`
	To       *Ratio `json:"to"`
	Label    string `json:"label"`
	Accounts int    `json:"accounts"`
}

// AccountRef names an account in a list.
type AccountRef struct {
	AccountID      string `json:"account_id"`
	Name           string `json:"name"`
	Tier           string `json:"tier"`
	OwnerID        string `json:"owner_id"`
	CoverageModel  string `json:"coverage_model"`
	CurrentValue   Amount `json:"current_value"`
	PotentialValue Amount `json:"potential_value"`
}

// Behind is an account behind its goal.
type Behind struct {
	AccountRef
	Actual     GoalValue `json:"goal_actual"`
	Attainment Ratio     `json:"goal_attainment"`
	// ToTarget is how much more current value would meet the goal.
	ToTarget Amount `json:"to_target"`

	attainment, actual float64
	wallet             money.Cents
}

// Goals returns the goal summary of everything added.
func (s *Summariser) Goals() Goals {
	cfg := s.p.Config()
	g := Goals{Accounts: s.accounts, Currency: cfg.Currency}
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		ta := &s.tiers[t]
		goal := cfg.Tier(t.String()).Goal
		share := goal.Metric == config.ShareOfWallet
		tg := TierGoal{
			Tier: t.String(), Label: Label(t), GoalMetric: goal.Metric,
			GoalTarget: GoalValue{Share: share, Value: goal.Target},
			Accounts:   ta.accounts, Met: ta.met, Behind: ta.behind, WalletUnknown: ta.unknown,
		}
		if !share {
			actual := Amount(ta.actual)
			total := Amount(units(goal.Target) * money.Cents(ta.accounts))
			tg.ActualTotal, tg.TargetTotal = &actual, &total
		}
		if m, ok := median(ta.attainments); ok {
			r := Ratio(m)
			tg.MedianAttainment = &r
		}
		from := 0.0
		for b, n := range ta.buckets {
			bk := Bucket{From: Ratio(from), Accounts: n, Label: bucketLabel(b)}
			if b < len(AttainmentBounds) {
				to := Ratio(AttainmentBounds[b])
				bk.To = &to
				from = AttainmentBounds[b]
			}
			tg.Attainment = append(tg.Attainment, bk)
		}
		tg.FurthestBehind = ta.behindList.list()
		for j := range tg.FurthestBehind {
			b := &tg.FurthestBehind[j]
			b.Attainment = Ratio(b.attainment)
			b.Actual = GoalValue{Share: share, Value: b.actual}
			b.ToTarget = toTarget(b, share, goal.Target)
		}
		tg.Summary = goalSentence(&tg, cfg.Currency)
		tg.Detail = goalDetail(&tg, cfg.Currency)
		g.Tiers = append(g.Tiers, tg)
	}
	return g
}

// toTarget returns how much more current value would meet target.
func toTarget(b *Behind, share bool, target float64) Amount {
	cur := money.Cents(b.CurrentValue)
	need := units(target)
	if share {
		// The smallest current value whose share reaches target, rounded
		// up to the cent (the epsilon keeps 0.3 × 1000 from becoming
		// 300.01).
		need = money.Cents(math.Ceil(target*float64(b.wallet) - 1e-6))
	}
	return Amount(max(0, need-cur))
}
