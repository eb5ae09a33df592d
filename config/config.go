// Package config holds every tunable of the model (docs/model.md) and the
// declared inputs (docs/events.md) in one YAML document with
// the defaults built in. Load refuses unknown keys and invalid values and
// names the offending key by its full path (tiers.major.threshold), so a
// typo is caught at start instead of silently using a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Tier names, lowest to highest. Their order is the pyramid's order.
const (
	MassMarket = "mass_market"
	NonNamed   = "non_named"
	Named      = "named"
	Major      = "major"
)

// TierNames lists the tiers from the bottom of the pyramid to the top.
var TierNames = [...]string{MassMarket, NonNamed, Named, Major}

// Goal metrics.
const (
	AbsoluteSales = "absolute_sales"
	ShareOfWallet = "share_of_wallet"
)

// Stage names with a meaning of their own.
const (
	ClosedWon  = "closed_won"
	ClosedLost = "closed_lost"
)

// Config is the whole configuration. Money is in major units of the
// reporting currency, ratios are fractions.
type Config struct {
	Currency     string             `yaml:"currency"`
	WindowMonths int                `yaml:"window_months"`
	Hysteresis   float64            `yaml:"hysteresis"`
	Quadrant     Quadrant           `yaml:"quadrant"`
	Tiers        Tiers              `yaml:"tiers"`
	Stages       map[string]float64 `yaml:"stages"`
	FXRates      map[string]float64 `yaml:"fx_rates"`
	// AlertLinkTemplate builds a link for each alert; {account_id} and
	// {owner_id} are replaced (URL-escaped).
	AlertLinkTemplate string `yaml:"alert_link_template"`
	// CoverageCapacity is how many accounts one rep carries under each
	// coverage model. Given keys are merged into the defaults.
	CoverageCapacity map[string]Capacity `yaml:"coverage_capacity"`
	// Inputs declares foreign topics and how they map onto events.
	Inputs []Input `yaml:"inputs,omitempty"`
	// Partitioner is the hash the producers of the native topics pick an
	// account's partition with; the repartition topics of the inputs use
	// the same, so that an account's events meet in one partition number.
	Partitioner string `yaml:"partitioner"`
	Limits      Limits `yaml:"limits"`
}

// Limits bound what one account's state may hold, so that no producer can
// grow it without limit. An event that would exceed one is dead-lettered
// with reason limit.
type Limits struct {
	// MaxOpenOpportunities counts the opportunities an account holds that
	// are not closed, including those known so far only from orders that
	// carry their id.
	MaxOpenOpportunities int `yaml:"max_open_opportunities"`
}

// Quadrant holds the "high" bounds of the two axes (inclusive).
type Quadrant struct {
	CurrentHigh   float64 `yaml:"current_high"`
	PotentialHigh float64 `yaml:"potential_high"`
}

// Tiers holds the per-tier parameters.
type Tiers struct {
	Major      Tier `yaml:"major"`
	Named      Tier `yaml:"named"`
	NonNamed   Tier `yaml:"non_named"`
	MassMarket Tier `yaml:"mass_market"`
}

// Tier is one tier's threshold, goal, coverage and neglect limit.
type Tier struct {
	Threshold float64 `yaml:"threshold"`
	Goal      Goal    `yaml:"goal"`
	Coverage  string  `yaml:"coverage"`
	// LoadWeight is the share of a rep one account takes; when a file does
	// not give it, it follows the coverage model's capacity (1/capacity, at
	// most 1).
	LoadWeight       float64 `yaml:"load_weight"`
	NeglectAfterDays int     `yaml:"neglect_after_days"`
	// MaxAccounts caps how many accounts the tier holds; 0 (the default)
	// is no cap. When more qualify, the highest-value ones keep the tier
	// and the rest fall to the tier below (docs/model.md, capacity).
	MaxAccounts int `yaml:"max_accounts"`
}

// Goal is what a tier's accounts are measured on.
type Goal struct {
	Metric string  `yaml:"metric"`
	Target float64 `yaml:"target"`
}

// Default returns the built-in configuration, the defaults docs/model.md
// describes.
func Default() *Config {
	return &Config{
		Currency:     "USD",
		WindowMonths: 12,
		Hysteresis:   0.10,
		Quadrant:     Quadrant{CurrentHigh: 500_000, PotentialHigh: 500_000},
		Tiers: Tiers{
			Major:      Tier{Threshold: 1_000_000, Goal: Goal{ShareOfWallet, 0.50}, Coverage: "1:1", LoadWeight: 1.0, NeglectAfterDays: 14},
			Named:      Tier{Threshold: 250_000, Goal: Goal{ShareOfWallet, 0.30}, Coverage: "1:few", LoadWeight: 0.2, NeglectAfterDays: 30},
			NonNamed:   Tier{Threshold: 25_000, Goal: Goal{AbsoluteSales, 50_000}, Coverage: "1:many", LoadWeight: 0.02, NeglectAfterDays: 45},
			MassMarket: Tier{Threshold: 0, Goal: Goal{AbsoluteSales, 5_000}, Coverage: "call_center", LoadWeight: 0, NeglectAfterDays: 60},
		},
		Stages: map[string]float64{
			"prospecting": 0.10, "qualification": 0.20, "proposal": 0.50,
			"negotiation": 0.75, ClosedWon: 1.0, ClosedLost: 0.0,
		},
		FXRates:          map[string]float64{},
		Limits:           Limits{MaxOpenOpportunities: 1000},
		CoverageCapacity: defaultCapacity(),
		Partitioner:      PartitionerMurmur2,
	}
}

// Tier returns the parameters of the named tier.
func (c *Config) Tier(name string) *Tier {
	switch name {
	case Major:
		return &c.Tiers.Major
	case Named:
		return &c.Tiers.Named
	case NonNamed:
		return &c.Tiers.NonNamed
	case MassMarket:
		return &c.Tiers.MassMarket
	}
	return nil
}

// Load reads the YAML file at path over the defaults. An empty path gives
// the defaults.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit, so that Parse can say the file is too
	// large without reading all of a huge one.
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a YAML document over the defaults. Keys that are given
// replace the default; maps (stages, fx_rates) are replaced whole so a
// configuration can remove a stage.
func Parse(b []byte) (*Config, error) {
	c := Default()
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("the file is larger than %d bytes (1 MiB); a configuration is a few kilobytes", MaxFileSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if err := checkSizes(&root, ""); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return c, nil
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return c, nil
	}
	if err := checkKeys(doc, reflect.TypeOf(*c), ""); err != nil {
		return nil, err
	}
	// Maps given in the file replace the defaults instead of merging.
	for i := 0; i+1 < len(doc.Content); i += 2 {
		switch doc.Content[i].Value {
		case "stages":
			c.Stages = nil
		case "fx_rates":
			c.FXRates = nil
		}
	}
	if err := doc.Decode(c); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if c.FXRates == nil {
		c.FXRates = map[string]float64{}
	}
	if c.CoverageCapacity == nil {
		c.CoverageCapacity = defaultCapacity()
	}
	c.deriveLoadWeights(doc)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every value and names the first bad one by its path.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, a...)...))
	}
	if !isCurrency(c.Currency) {
		bad("currency", "%q is not a three-letter ISO 4217 code", c.Currency)
	}
	if c.WindowMonths < 1 || c.WindowMonths > 120 {
		bad("window_months", "%d is outside 1..120", c.WindowMonths)
	}
	if !(c.Hysteresis >= 0 && c.Hysteresis < 1) {
		bad("hysteresis", "%v is outside 0..1 (exclusive of 1)", c.Hysteresis)
	}
	money := func(path string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1e13 {
			bad(path, "%v must be a non-negative amount <= 1e13", v)
		}
	}
	money("quadrant.current_high", c.Quadrant.CurrentHigh)
	money("quadrant.potential_high", c.Quadrant.PotentialHigh)
	prev := -1.0
	for _, name := range TierNames {
		t := c.Tier(name)
		p := "tiers." + name
		money(p+".threshold", t.Threshold)
		if name == MassMarket && t.Threshold != 0 {
			bad(p+".threshold", "must be 0: every account is at least mass_market")
		}
		if name != MassMarket && t.Threshold <= prev {
			bad(p+".threshold", "%v must be above the tier below it (%v)", t.Threshold, prev)
		}
		prev = t.Threshold
		switch t.Goal.Metric {
		case ShareOfWallet:
			if !(t.Goal.Target > 0 && t.Goal.Target <= 1) {
				bad(p+".goal.target", "%v: a share_of_wallet target must be in (0, 1]", t.Goal.Target)
			}
		case AbsoluteSales:
			if !(t.Goal.Target > 0 && t.Goal.Target <= 1e13) {
				bad(p+".goal.target", "%v: an absolute_sales target must be a positive amount", t.Goal.Target)
			}
		default:
			bad(p+".goal.metric", "%q must be absolute_sales or share_of_wallet", t.Goal.Metric)
		}
		if strings.TrimSpace(t.Coverage) == "" {
			bad(p+".coverage", "must not be empty")
		}
		if !(t.LoadWeight >= 0 && t.LoadWeight <= 1) {
			bad(p+".load_weight", "%v is outside 0..1", t.LoadWeight)
		}
		if t.NeglectAfterDays < 1 || t.NeglectAfterDays > 3650 {
			bad(p+".neglect_after_days", "%d is outside 1..3650", t.NeglectAfterDays)
		}
	}
	for _, s := range []string{ClosedWon, ClosedLost} {
		if _, ok := c.Stages[s]; !ok {
			bad("stages."+s, "is required")
		}
	}
	for _, s := range slices.Sorted(maps.Keys(c.Stages)) {
		if p := c.Stages[s]; !(p >= 0 && p <= 1) {
			bad("stages."+s, "probability %v is outside 0..1", p)
		}
		if s == "" {
			bad("stages", "a stage name must not be empty")
		}
	}
	if p, ok := c.Stages[ClosedWon]; ok && p != 1 {
		bad("stages."+ClosedWon, "probability must be 1")
	}
	if p, ok := c.Stages[ClosedLost]; ok && p != 0 {
		bad("stages."+ClosedLost, "probability must be 0")
	}
	for _, cur := range slices.Sorted(maps.Keys(c.FXRates)) {
		if cur == c.Currency {
			bad("fx_rates."+cur, "is the reporting currency (currency: %s): amounts in it need no rate; remove the entry", cur)
		}
		if !isCurrency(cur) {
			bad("fx_rates."+cur, "%q is not a three-letter ISO 4217 code", cur)
		}
		if r := c.FXRates[cur]; !(r > 0 && r < 1e6) {
			bad("fx_rates."+cur, "rate %v must be positive", r)
		}
	}
	if n := c.Limits.MaxOpenOpportunities; n < 1 || n > 100_000 {
		bad("limits.max_open_opportunities", "%d is outside 1..100000", n)
	}
	if t := c.AlertLinkTemplate; t != "" && !strings.Contains(t, "{account_id}") {
		bad("alert_link_template", "must contain {account_id}")
	}
	c.validateInputs(bad)
	if c.Partitioner != PartitionerMurmur2 && c.Partitioner != PartitionerCRC32 {
		bad("partitioner", "%q must be %s (the Java client's default) or %s (librdkafka's default)", c.Partitioner, PartitionerMurmur2, PartitionerCRC32)
	}
	c.validateCoverage(bad)
	c.validateMaxAccounts(bad)
	return errors.Join(errs...)
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// YAML renders the effective configuration, with plain decimals (1000000,
// not 1e+06) so it can be pasted back into a config file as it is.
func (c *Config) YAML() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	plainFloats(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func plainFloats(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
			n.Value, n.Tag = strconv.FormatFloat(v, 'f', -1, 64), ""
		}
	}
	for _, c := range n.Content {
		plainFloats(c)
	}
}
