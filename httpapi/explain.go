package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/view"
)

// amount marshals money with two decimals and ratio a fraction with four,
// as the snapshot itself does.
type (
	amount = plan.Amount
	ratio  = plan.Ratio
)

type explanation struct {
	Figures    figures `json:"figures"`
	Tier       string  `json:"tier"`
	TierReason string  `json:"tier_reason"`
	// QualifiedTier is the tier the value qualifies for, above Tier while
	// a capped tier has no place for the account; only when a tier is
	// capped.
	QualifiedTier     string            `json:"qualified_tier,omitempty"`
	Overridden        bool              `json:"overridden"`
	Hysteresis        ratio             `json:"hysteresis"`
	Tiers             []tierRule        `json:"tiers"`
	NextTier          *nextTier         `json:"next_tier"`
	DemotionBelow     *amount           `json:"demotion_below"`
	Quadrant          quadrantRule      `json:"quadrant"`
	Goal              goal              `json:"goal"`
	OpenOpportunities int               `json:"open_opportunities"`
	Neglect           neglect           `json:"neglect"`
	RecentTierChanges []json.RawMessage `json:"recent_tier_changes"`
}

type figures struct {
	CurrentValue     amount  `json:"current_value"`
	PotentialValue   amount  `json:"potential_value"`
	Value            amount  `json:"value"` // current + potential, what the tier is judged on
	WeightedPipeline amount  `json:"weighted_pipeline"`
	Wallet           *amount `json:"wallet"`
	WalletHeadroom   amount  `json:"wallet_headroom"`
	ShareOfWallet    *ratio  `json:"share_of_wallet"`
}

type tierRule struct {
	Tier      string `json:"tier"`
	Threshold amount `json:"threshold"`
	// Floor is threshold × (1 − hysteresis): an account of this tier leaves
	// it only when its value falls below.
	Floor    amount `json:"hysteresis_floor"`
	Coverage string `json:"coverage_model"`
	Current  bool   `json:"current"`
	// MaxAccounts is the tier's cap, when it has one.
	MaxAccounts int `json:"max_accounts,omitempty"`
}

type nextTier struct {
	Tier      string `json:"tier"`
	Threshold amount `json:"threshold"`
	Gap       amount `json:"gap"`
}

type quadrantRule struct {
	Name            string `json:"name"`
	CurrentHigh     amount `json:"current_high"`
	PotentialHigh   amount `json:"potential_high"`
	CurrentIsHigh   bool   `json:"current_is_high"`
	PotentialIsHigh bool   `json:"potential_is_high"`
}

type goal struct {
	Metric     string          `json:"metric"`
	Target     json.RawMessage `json:"target"`
	Actual     json.RawMessage `json:"actual"`
	Attainment *ratio          `json:"attainment"`
	Status     string          `json:"status"`
}

type neglect struct {
	Neglected      bool            `json:"neglected"`
	HighPotential  bool            `json:"high_potential"`
	AfterDays      int             `json:"after_days"`
	LastTouchAt    string          `json:"last_touch_at"`
	DaysSinceTouch int64           `json:"days_since_touch"`
	OpenAlert      json.RawMessage `json:"open_alert"`
}

func units(v float64) money.Cents { return money.Cents(math.Round(v * 100)) }

// explain says why the account sits where it does, quoting the
// configuration it was judged by.
func explain(d *view.Detail, p *scoring.Params) explanation {
	s := &d.Snapshot
	cfg := p.Config()
	value := s.CurrentValue + s.PotentialValue
	e := explanation{
		Figures: figures{
			CurrentValue: amount(s.CurrentValue), PotentialValue: amount(s.PotentialValue),
			Value: amount(value), WeightedPipeline: amount(s.WeightedPipeline),
		},
		Tier: s.Tier.String(), TierReason: s.TierReason, Overridden: s.Overridden,
		Hysteresis:        ratio(cfg.Hysteresis),
		OpenOpportunities: s.OpenOpportunities,
		RecentTierChanges: make([]json.RawMessage, 0, len(d.Changes)),
	}
	if s.HasWallet {
		w := amount(s.Wallet)
		e.Figures.Wallet = &w
		e.Figures.WalletHeadroom = amount(max(0, s.Wallet-s.CurrentValue))
	}
	if s.HasShare {
		r := ratio(s.ShareOfWallet)
		e.Figures.ShareOfWallet = &r
	}
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		th := p.Threshold(t)
		e.Tiers = append(e.Tiers, tierRule{
			Tier: t.String(), Threshold: amount(th), Floor: amount(p.Floor(t)),
			Coverage: p.Coverage(t), Current: t == s.Tier, MaxAccounts: p.MaxAccounts(t),
		})
	}
	if p.AnyCapped() {
		q := s.Qualified
		if q == scoring.TierNone {
			q = s.Tier // a snapshot that does not say
		}
		e.QualifiedTier = q.String()
	}
	if s.Tier >= scoring.MassMarket && s.Tier < scoring.Major {
		up := s.Tier + 1
		th := p.Threshold(up)
		e.NextTier = &nextTier{Tier: up.String(), Threshold: amount(th), Gap: amount(max(0, th-value))}
	}
	if s.Tier > scoring.MassMarket {
		f := amount(p.Floor(s.Tier))
		e.DemotionBelow = &f
	}
	ch, ph := units(cfg.Quadrant.CurrentHigh), units(cfg.Quadrant.PotentialHigh)
	e.Quadrant = quadrantRule{
		Name: s.Quadrant, CurrentHigh: amount(ch), PotentialHigh: amount(ph),
		CurrentIsHigh: s.CurrentValue >= ch, PotentialIsHigh: s.PotentialValue >= ph,
	}
	e.Goal = goal{Metric: s.GoalMetric, Status: s.GoalStatus, Actual: json.RawMessage("null")}
	if s.GoalMetric == "absolute_sales" {
		e.Goal.Target = money.Cents(s.GoalTarget*100 + 0.5).Append(nil)
		if s.HasGoalActual {
			e.Goal.Actual = s.CurrentValue.Append(nil)
		}
	} else {
		e.Goal.Target, _ = ratio(s.GoalTarget).MarshalJSON()
		if s.HasGoalActual {
			e.Goal.Actual, _ = ratio(s.GoalActual).MarshalJSON()
		}
	}
	if s.HasGoalActual {
		r := ratio(s.GoalAttainment)
		e.Goal.Attainment = &r
	}
	e.Neglect = neglect{
		Neglected: s.Neglected, HighPotential: s.PotentialValue >= ph,
		LastTouchAt:    scoring.FormatTime(s.LastTouchAt),
		DaysSinceTouch: (s.AsOf - s.LastTouchAt) / int64(24*time.Hour),
		OpenAlert:      json.RawMessage("null"),
	}
	if s.Tier != scoring.TierNone {
		e.Neglect.AfterDays = int(p.NeglectLimit(s.Tier) / (24 * time.Hour))
	}
	if d.Alert != nil {
		e.Neglect.OpenAlert = d.Alert.AppendJSON(nil)
	}
	for i := range d.Changes {
		e.RecentTierChanges = append(e.RecentTierChanges, d.Changes[i].AppendJSON(nil))
	}
	return e
}

// accountJSON renders the snapshot with the names of docs/model.md, then the
// account's name, partition and the explanation.
func accountJSON(d *view.Detail, p *scoring.Params) ([]byte, error) {
	ex, err := marshal(explain(d, p))
	if err != nil {
		return nil, err
	}
	name, _ := marshal(d.Snapshot.Name)
	b := d.Snapshot.AppendJSON(make([]byte, 0, 1024+len(ex)))
	b = b[:len(b)-1] // reopen the object
	b = append(b, `,"name":`...)
	b = append(b, name...)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(d.Partition), 10)
	b = append(b, `,"explanation":`...)
	b = append(b, ex...)
	return append(b, '}'), nil
}

// marshal is json.Marshal without HTML escaping, matching the snapshot
// writer: API clients get "<" rather than "\u003c".
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
