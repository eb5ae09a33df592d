package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Capacity is how many accounts one rep can carry under a coverage model.
// Below 1 it is a team: 0.25 means one account takes four reps. Unlimited
// is a call centre, where accounts take no rep of their own.
type Capacity float64

// Unlimited is the capacity of a model that needs no dedicated rep.
var Unlimited = Capacity(math.Inf(1))

// IsUnlimited reports whether c is Unlimited.
func (c Capacity) IsUnlimited() bool { return math.IsInf(float64(c), 1) }

// unlimitedWord is how Unlimited is written in YAML.
const unlimitedWord = "unlimited"

// UnmarshalYAML reads a number or the word "unlimited".
func (c *Capacity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && strings.EqualFold(n.Value, unlimitedWord) {
		*c = Unlimited
		return nil
	}
	var f float64
	if n.Kind != yaml.ScalarNode || n.Decode(&f) != nil {
		return fmt.Errorf("%q is neither a number of accounts nor %q", n.Value, unlimitedWord)
	}
	*c = Capacity(f)
	return nil
}

// MarshalYAML writes Unlimited as the word, so the effective configuration
// can be pasted back.
func (c Capacity) MarshalYAML() (any, error) {
	if c.IsUnlimited() {
		return unlimitedWord, nil
	}
	return float64(c), nil
}

func (c Capacity) String() string {
	if c.IsUnlimited() {
		return unlimitedWord
	}
	return strconv.FormatFloat(float64(c), 'f', -1, 64)
}

// LoadWeight is the share of one rep that an account under c takes:
// 1/c, at most 1. A team account (c < 1) fills its owner's whole load; the
// rest of the team does not appear in owner_id, so the plan counts it in
// the reps the tier needs instead.
func (c Capacity) LoadWeight() float64 {
	if c.IsUnlimited() || !(c > 0) {
		return 0
	}
	return min(1, 1/float64(c))
}

func defaultCapacity() map[string]Capacity {
	return map[string]Capacity{"1:1": 1, "1:few": 5, "1:many": 50, "call_center": Unlimited}
}

// Capacity returns the capacity of a coverage model and whether one is
// configured.
func (c *Config) Capacity(model string) (Capacity, bool) {
	v, ok := c.CoverageCapacity[model]
	return v, ok
}

// deriveLoadWeights sets load_weight from the tier's coverage capacity for
// every tier whose load_weight the document does not give, so a tier moved
// to another coverage model loads its reps accordingly. An explicit
// load_weight still wins, as it always has.
func (c *Config) deriveLoadWeights(doc *yaml.Node) {
	for _, name := range TierNames {
		if lookup(doc, "tiers", name, "load_weight") != nil {
			continue
		}
		t := c.Tier(name)
		if capy, ok := c.Capacity(t.Coverage); ok {
			t.LoadWeight = capy.LoadWeight()
		}
	}
}

// lookup follows keys through nested mappings and returns the value node,
// or nil.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next != nil && next.Kind == yaml.AliasNode {
			next = next.Alias
		}
		n = next
	}
	return n
}

// validateCoverage checks the capacities and that every tier's coverage
// model has one.
func (c *Config) validateCoverage(bad func(path, format string, a ...any)) {
	models := slices.Sorted(maps.Keys(c.CoverageCapacity))
	for _, m := range models {
		v := c.CoverageCapacity[m]
		if strings.TrimSpace(m) == "" {
			bad("coverage_capacity", "a coverage model name must not be empty")
		}
		if !v.IsUnlimited() && !(v > 0 && v <= 1e9) {
			bad("coverage_capacity."+m, "%v must be a positive number of accounts per rep (0.25: a team of four per account) or %q", float64(v), unlimitedWord)
		}
	}
	for _, name := range TierNames {
		t := c.Tier(name)
		if strings.TrimSpace(t.Coverage) == "" {
			continue // reported by Validate
		}
		if _, ok := c.CoverageCapacity[t.Coverage]; !ok {
			bad("tiers."+name+".coverage", "coverage model %q has no entry in coverage_capacity (configured: %s); add how many accounts one rep carries under it",
				t.Coverage, strings.Join(models, ", "))
		}
	}
}

// MaxCappedAccounts bounds the sum of every tier's max_accounts. Each
// partition publishes its best candidates for the capped tiers (at most
// four times this many), and that record must stay well under Kafka's
// default 1 MB message size even with 128-byte account ids.
const MaxCappedAccounts = 1000

// validateMaxAccounts checks the tier caps: whole, non-negative, none on
// the bottom tier (nothing is below it to fall to), and bounded in sum.
func (c *Config) validateMaxAccounts(bad func(path, format string, a ...any)) {
	sum := 0
	for _, name := range TierNames {
		n := c.Tier(name).MaxAccounts
		p := "tiers." + name + ".max_accounts"
		switch {
		case n < 0:
			bad(p, "%d must be a positive number of accounts, or 0 for no cap", n)
		case n > 0 && name == MassMarket:
			bad(p, "the bottom tier cannot be capped: there is no tier below it for the rest to fall to")
		case n > MaxCappedAccounts:
			bad(p, "%d is above %d", n, MaxCappedAccounts)
		default:
			sum += n
		}
	}
	if sum > MaxCappedAccounts {
		bad("tiers", "max_accounts add up to %d over all tiers; at most %d are supported (every partition publishes its best candidates for the capped tiers, and that record must fit one Kafka message)", sum, MaxCappedAccounts)
	}
}

// Capped reports whether any tier has max_accounts.
func (c *Config) Capped() bool {
	for _, name := range TierNames {
		if c.Tier(name).MaxAccounts > 0 {
			return true
		}
	}
	return false
}

// MaxAccounts returns every tier's max_accounts by tier name.
func (c *Config) MaxAccounts() map[string]int {
	m := make(map[string]int, len(TierNames))
	for _, name := range TierNames {
		m[name] = c.Tier(name).MaxAccounts
	}
	return m
}
