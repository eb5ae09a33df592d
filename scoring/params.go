package scoring

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
)

// Tier is a level of the pyramid; higher is bigger. TierNone is an account
// that has not been classified yet.
type Tier uint8

// Tiers, bottom to top.
const (
	TierNone Tier = iota
	MassMarket
	NonNamed
	Named
	Major
)

var tierNames = [...]string{"none", config.MassMarket, config.NonNamed, config.Named, config.Major}

func (t Tier) String() string {
	if int(t) < len(tierNames) {
		return tierNames[t]
	}
	return "invalid"
}

// ParseTier maps a tier name to its Tier; unknown names give TierNone.
func ParseTier(s string) Tier {
	for i, n := range tierNames {
		if i > 0 && n == s {
			return Tier(i)
		}
	}
	return TierNone
}

// AllTiers lists the real tiers bottom to top.
var AllTiers = []Tier{MassMarket, NonNamed, Named, Major}

// Quadrant names.
const (
	LowCurrentLowPotential   = "low_current_low_potential"
	HighCurrentLowPotential  = "high_current_low_potential"
	LowCurrentHighPotential  = "low_current_high_potential"
	HighCurrentHighPotential = "high_current_high_potential"
)

// Quadrants lists the four quadrants.
var Quadrants = []string{LowCurrentLowPotential, HighCurrentLowPotential, LowCurrentHighPotential, HighCurrentHighPotential}

// Goal statuses.
const (
	GoalMet           = "met"
	GoalBehind        = "behind"
	GoalWalletUnknown = "wallet_unknown"
)

// tierParams is one tier's configuration in exact units.
type tierParams struct {
	threshold money.Cents
	// floor is threshold × (1 − hysteresis): below it an account leaves the tier.
	floor       money.Cents
	shareGoal   bool
	target      float64
	targetCents money.Cents
	coverage    string
	loadWeight  float64
	neglect     int64 // nanoseconds without a touch before neglect
	// maxAccounts is the tier's cap (0: none); see capacity.go.
	maxAccounts int
	// The fixed ends of the reasons that name this tier's threshold (see
	// reason), rendered once.
	upText, belowText, downText string
}

// Params is a configuration compiled for scoring: money in cents, durations
// in nanoseconds. It is immutable and shared by all accounts.
type Params struct {
	cfg           *config.Config
	windowMonths  int
	hysteresisPct string
	currentHigh   money.Cents
	potentialHigh money.Cents
	tiers         [5]tierParams // indexed by Tier; [0] unused
	stageProb     map[string]int64
	maxOpen       int // limits.max_open_opportunities
	// capped: some tier has max_accounts. holderBoost is the ranking key
	// multiplier of an account that holds the tier it is ranked for:
	// 2^32 / (1 − hysteresis), rounded up (see capacity.go).
	capped      bool
	holderBoost uint64
}

// DefaultParams compiles the built-in defaults (config.Default), for the
// parts that work without a configuration file.
func DefaultParams() *Params { return NewParams(config.Default()) }

// NewParams compiles cfg, which must already be valid.
func NewParams(cfg *config.Config) *Params {
	p := &Params{
		cfg:           cfg,
		windowMonths:  cfg.WindowMonths,
		hysteresisPct: trimPct(cfg.Hysteresis * 100),
		currentHigh:   units(cfg.Quadrant.CurrentHigh),
		potentialHigh: units(cfg.Quadrant.PotentialHigh),
		stageProb:     map[string]int64{},
		maxOpen:       cfg.Limits.MaxOpenOpportunities,
	}
	for _, t := range AllTiers {
		c := cfg.Tier(t.String())
		th := units(c.Threshold)
		p.tiers[t] = tierParams{
			threshold:   th,
			floor:       money.Cents(math.Round(float64(th) * (1 - cfg.Hysteresis))),
			shareGoal:   c.Goal.Metric == config.ShareOfWallet,
			target:      c.Goal.Target,
			targetCents: units(c.Goal.Target),
			coverage:    c.Coverage,
			loadWeight:  c.LoadWeight,
			neglect:     int64(c.NeglectAfterDays) * int64(24*time.Hour),
			maxAccounts: c.MaxAccounts,
		}
		p.capped = p.capped || c.MaxAccounts > 0
	}
	p.holderBoost = holderBoost(cfg.Hysteresis)
	for _, t := range AllTiers {
		tp := &p.tiers[t]
		th := string(tp.threshold.AppendGrouped(nil))
		tp.upText = " >= " + t.String() + " threshold " + th
		tp.belowText = " < " + t.String() + " threshold " + th
		tp.downText = tp.belowText + " less " + p.hysteresisPct + " hysteresis = " + string(tp.floor.AppendGrouped(nil))
	}
	return p
}

// Config returns the configuration the parameters were compiled from.
func (p *Params) Config() *config.Config { return p.cfg }

// NeglectLimit returns how long an account of tier t may go untouched.
func (p *Params) NeglectLimit(t Tier) time.Duration { return time.Duration(p.tiers[t].neglect) }

// Threshold returns tier t's entry threshold.
func (p *Params) Threshold(t Tier) money.Cents { return p.tiers[t].threshold }

// Floor returns threshold × (1 − hysteresis) of tier t: an account of that
// tier leaves it only when its value falls below the floor.
func (p *Params) Floor(t Tier) money.Cents { return p.tiers[t].floor }

// LoadWeight returns the rep load one account of tier t adds.
func (p *Params) LoadWeight(t Tier) float64 { return p.tiers[t].loadWeight }

// Coverage returns tier t's coverage model.
func (p *Params) Coverage(t Tier) string { return p.tiers[t].coverage }

func units(v float64) money.Cents { return money.Cents(math.Round(v * 100)) }

func trimPct(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s + "%"
}

// qualify returns the highest tier whose threshold value reaches.
func (p *Params) qualify(value money.Cents) Tier {
	for t := Major; t > MassMarket; t-- {
		if value >= p.tiers[t].threshold {
			return t
		}
	}
	return MassMarket
}

// Reason kinds: why an account holds its tier. The text is rebuilt from
// the kind and the value so state stays small.
const (
	reasonNone     uint8 = iota
	reasonUp             // value reached the tier's threshold
	reasonBelow          // value below the next tier up (initial mass_market etc.)
	reasonDown           // value fell below the old tier's floor
	reasonOverride       // pinned by tier_override
	// Capacity (capacity.go). For reasonCapacity the reason's value is
	// the rank, not money, and from is the capped tier ranked for.
	reasonCapacity  // no place in the capped tier from
	reasonPlaced    // given a place in the capped tier by a ranking
	reasonWait      // qualifies for a capped tier (from) it holds no place in yet
	reasonQualifies // qualifies for the tier (a cap was lifted)
)

// reason renders a tier change explanation, e.g.
// "value 1,120,000.00 >= major threshold 1,000,000.00".
func (p *Params) reason(kind uint8, value money.Cents, from, to Tier) string {
	var suffix string
	switch kind {
	case reasonUp:
		suffix = p.tiers[to].upText
	case reasonBelow:
		if to >= Major { // only from a corrupt state record
			return ""
		}
		suffix = p.tiers[to+1].belowText
	case reasonDown:
		suffix = p.tiers[from].downText
	case reasonOverride:
		return "tier_override set to " + to.String()
	case reasonCapacity:
		return p.capacityReason(from, int(value))
	case reasonPlaced:
		if n := p.tiers[to].maxAccounts; n == 1 {
			suffix = " has " + to.String() + "'s one place"
		} else {
			suffix = " has one of " + to.String() + "'s " + strconv.Itoa(n) + " places"
		}
		var a [96]byte
		return string(append(value.AppendGrouped(append(a[:0], "capacity: value "...)), suffix...))
	case reasonWait:
		suffix = " qualifies for " + from.String() + "; " + p.holds(from) + ": waits for the capacity ranking"
	case reasonQualifies:
		suffix = " qualifies for " + to.String() + ", which is not capped"
	default:
		return ""
	}
	var a [96]byte
	return string(append(value.AppendGrouped(append(a[:0], "value "...)), suffix...))
}

// nextTier applies the hysteresis rule of docs/model.md to the qualified
// tier cur and returns the new qualified tier and why, or cur and
// reasonNone when nothing moves.
func (p *Params) nextTier(cur, override Tier, value money.Cents) (Tier, uint8) {
	if override != TierNone {
		if override != cur {
			return override, reasonOverride
		}
		return cur, reasonNone
	}
	q := p.qualify(value)
	switch {
	case cur == TierNone:
		if q == MassMarket {
			return q, reasonBelow
		}
		return q, reasonUp
	case q > cur:
		return q, reasonUp
	case q < cur && value < p.tiers[cur].floor:
		return q, reasonDown
	}
	return cur, reasonNone
}
