package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

func TestDefaultsAreSpec(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("currency", c.Currency, "USD")
	check("window_months", c.WindowMonths, 12)
	check("hysteresis", c.Hysteresis, 0.10)
	check("quadrant.current_high", c.Quadrant.CurrentHigh, 500_000.0)
	check("quadrant.potential_high", c.Quadrant.PotentialHigh, 500_000.0)
	want := map[string]config.Tier{
		config.Major:      {Threshold: 1_000_000, Goal: config.Goal{Metric: config.ShareOfWallet, Target: 0.50}, Coverage: "1:1", LoadWeight: 1.0, NeglectAfterDays: 14},
		config.Named:      {Threshold: 250_000, Goal: config.Goal{Metric: config.ShareOfWallet, Target: 0.30}, Coverage: "1:few", LoadWeight: 0.2, NeglectAfterDays: 30},
		config.NonNamed:   {Threshold: 25_000, Goal: config.Goal{Metric: config.AbsoluteSales, Target: 50_000}, Coverage: "1:many", LoadWeight: 0.02, NeglectAfterDays: 45},
		config.MassMarket: {Threshold: 0, Goal: config.Goal{Metric: config.AbsoluteSales, Target: 5_000}, Coverage: "call_center", LoadWeight: 0, NeglectAfterDays: 60},
	}
	for name, w := range want {
		check("tiers."+name, *c.Tier(name), w)
	}
	check("stages", c.Stages, map[string]float64{
		"prospecting": 0.10, "qualification": 0.20, "proposal": 0.50,
		"negotiation": 0.75, "closed_won": 1.0, "closed_lost": 0.0,
	})
	check("fx_rates", c.FXRates, map[string]float64{})
	check("alert_link_template", c.AlertLinkTemplate, "")
	check("coverage_capacity", c.CoverageCapacity, map[string]config.Capacity{"1:1": 1, "1:few": 5, "1:many": 50, "call_center": config.Unlimited})
	if c.Tier("gold") != nil {
		t.Error("Tier(gold) is not nil")
	}
	check("TierNames", config.TierNames, [...]string{"mass_market", "non_named", "named", "major"})
	// Default returns a fresh copy each time.
	c.Stages["x"] = 1
	c.FXRates["EUR"] = 1
	if d := config.Default(); len(d.Stages) != 6 || len(d.FXRates) != 0 {
		t.Error("Default shares its maps between calls")
	}
}

func mustParse(tb testing.TB, y string) *config.Config {
	tb.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		tb.Fatalf("Parse(%q): %v", y, err)
	}
	return c
}

func TestParseEmpty(t *testing.T) {
	for _, y := range []string{"", "   \n\n", "# only a comment\n", "---\n", "~\n", "null\n"} {
		if c := mustParse(t, y); !reflect.DeepEqual(c, config.Default()) {
			t.Errorf("Parse(%q) = %+v, want defaults", y, c)
		}
	}
}

func TestParsePartialKeepsDefaults(t *testing.T) {
	c := mustParse(t, `
currency: EUR
window_months: 6
tiers:
  named:
    threshold: 300000
    goal:
      target: 0.4
quadrant:
  potential_high: 750000
`)
	want := config.Default()
	want.Currency = "EUR"
	want.WindowMonths = 6
	want.Tiers.Named.Threshold = 300_000
	want.Tiers.Named.Goal.Target = 0.4
	want.Quadrant.PotentialHigh = 750_000
	if !reflect.DeepEqual(c, want) {
		t.Errorf("partial config\n got %+v\nwant %+v", c, want)
	}
	if c.Tiers.Named.Goal.Metric != config.ShareOfWallet || c.Tiers.Named.Coverage != "1:few" {
		t.Errorf("sibling keys lost their defaults: %+v", c.Tiers.Named)
	}
}

func TestMapsReplaceDefaults(t *testing.T) {
	c := mustParse(t, `
stages:
  lead: 0.05
  demo: 0.3
  closed_won: 1
  closed_lost: 0
fx_rates:
  EUR: 1.1
  GBP: 1.27
`)
	if want := map[string]float64{"lead": 0.05, "demo": 0.3, "closed_won": 1, "closed_lost": 0}; !reflect.DeepEqual(c.Stages, want) {
		t.Errorf("stages = %v, want %v (replaced, not merged)", c.Stages, want)
	}
	if want := map[string]float64{"EUR": 1.1, "GBP": 1.27}; !reflect.DeepEqual(c.FXRates, want) {
		t.Errorf("fx_rates = %v", c.FXRates)
	}
	// An explicit empty fx_rates is an empty map, never nil.
	if c := mustParse(t, "fx_rates: {}\n"); c.FXRates == nil || len(c.FXRates) != 0 {
		t.Errorf("fx_rates {} = %#v", c.FXRates)
	}
	if c := mustParse(t, "fx_rates:\n"); c.FXRates == nil {
		t.Errorf("fx_rates null = %#v", c.FXRates)
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // fragments of the error; the first is the key path
	}{
		{"unknown top-level key", "windw_months: 6\n", []string{"windw_months: unknown key", "line 1", "window_months"}},
		{"unknown nested key", "tiers:\n  major:\n    thresold: 5\n", []string{"tiers.major.thresold: unknown key", "line 3", "threshold"}},
		{"unknown tier", "tiers:\n  gold:\n    threshold: 5\n", []string{"tiers.gold: unknown key"}},
		{"unknown goal key", "tiers:\n  named:\n    goal:\n      metrc: x\n", []string{"tiers.named.goal.metrc: unknown key"}},
		{"unknown quadrant key", "quadrant: {current: 1}\n", []string{"quadrant.current: unknown key"}},
		{"window_months abc", "window_months: abc\n", []string{"window_months:", `"abc"`, "not a valid int"}},
		{"window_months quoted", "window_months: \"12\"\n", []string{"window_months:", "not a valid int"}},
		{"window_months 1.5", "window_months: 1.5\n", []string{"window_months:", `"1.5"`, "whole number"}},
		{"neglect_after_days 7.9", "tiers:\n  major:\n    neglect_after_days: 7.9\n", []string{"tiers.major.neglect_after_days:", "whole number"}},
		{"hysteresis text", "hysteresis: ten percent\n", []string{"hysteresis:", "not a valid float64"}},
		{"threshold list", "tiers:\n  major:\n    threshold: [1]\n", []string{"tiers.major.threshold: must be a single value"}},
		{"tier scalar", "tiers:\n  major: 5\n", []string{"tiers.major: must be a mapping"}},
		{"stages list", "stages: [proposal]\n", []string{"stages: must be a mapping"}},
		{"stage probability text", "stages: {closed_won: 1, closed_lost: 0, lead: high}\n", []string{"stages.lead:", "not a valid float64"}},
		{"root list", "- a\n- b\n", []string{"config: must be a mapping"}},
		{"root scalar", "hello\n", []string{"config: must be a mapping"}},
		{"not YAML", "a: [\n", []string{"not valid YAML"}},
		{"duplicate key", "currency: EUR\ncurrency: USD\n", []string{"currency", "already defined"}},
		{"null stage name", "stages: {~: 0.5, closed_won: 1, closed_lost: 0}\n", []string{"stages:", "not a valid key"}},
		{"empty stage name", "stages: {'': 0.5, closed_won: 1, closed_lost: 0}\n", []string{"stages", "must not be empty"}},
		{"currency lowercase", "currency: usd\n", []string{"currency:", `"usd"`, "ISO 4217"}},
		{"currency long", "currency: EURO\n", []string{"currency:", "ISO 4217"}},
		{"window_months 0", "window_months: 0\n", []string{"window_months:", "outside 1..120"}},
		{"window_months 121", "window_months: 121\n", []string{"window_months:", "outside 1..120"}},
		{"hysteresis 1.5", "hysteresis: 1.5\n", []string{"hysteresis:", "1.5", "outside 0..1"}},
		{"hysteresis 1", "hysteresis: 1\n", []string{"hysteresis:", "outside 0..1"}},
		{"hysteresis negative", "hysteresis: -0.1\n", []string{"hysteresis:"}},
		{"hysteresis NaN", "hysteresis: .nan\n", []string{"hysteresis:", "NaN"}},
		{"quadrant negative", "quadrant: {current_high: -1}\n", []string{"quadrant.current_high:", "non-negative"}},
		{"quadrant infinite", "quadrant: {potential_high: .inf}\n", []string{"quadrant.potential_high:"}},
		{"negative threshold", "tiers:\n  non_named:\n    threshold: -5\n", []string{"tiers.non_named.threshold:", "-5", "non-negative"}},
		{"threshold too large", "tiers:\n  major:\n    threshold: 1e14\n", []string{"tiers.major.threshold:"}},
		{"thresholds not increasing", "tiers:\n  named:\n    threshold: 2000000\n", []string{"tiers.major.threshold:", "above the tier below"}},
		{"thresholds equal", "tiers:\n  named:\n    threshold: 25000\n", []string{"tiers.named.threshold:", "above the tier below"}},
		{"mass_market threshold", "tiers:\n  mass_market:\n    threshold: 10\n", []string{"tiers.mass_market.threshold:", "must be 0"}},
		{"goal metric unknown", "tiers:\n  named:\n    goal:\n      metric: revenue\n", []string{"tiers.named.goal.metric:", `"revenue"`, "absolute_sales or share_of_wallet"}},
		{"share target > 1", "tiers:\n  major:\n    goal:\n      target: 1.5\n", []string{"tiers.major.goal.target:", "1.5", "share_of_wallet"}},
		{"share target 0", "tiers:\n  major:\n    goal:\n      target: 0\n", []string{"tiers.major.goal.target:"}},
		{"absolute target negative", "tiers:\n  mass_market:\n    goal:\n      target: -1\n", []string{"tiers.mass_market.goal.target:", "absolute_sales"}},
		{"coverage empty", "tiers:\n  major:\n    coverage: ' '\n", []string{"tiers.major.coverage:", "empty"}},
		{"load weight > 1", "tiers:\n  major:\n    load_weight: 2\n", []string{"tiers.major.load_weight:", "outside 0..1"}},
		{"neglect 0 days", "tiers:\n  named:\n    neglect_after_days: 0\n", []string{"tiers.named.neglect_after_days:", "outside 1..3650"}},
		{"stages missing closed_won", "stages:\n  lead: 0.1\n  closed_lost: 0\n", []string{"stages.closed_won:", "required"}},
		{"stages missing closed_lost", "stages:\n  closed_won: 1\n", []string{"stages.closed_lost:", "required"}},
		{"stages null", "stages:\n", []string{"stages.closed_won:", "required"}},
		{"stage probability > 1", "stages: {closed_won: 1, closed_lost: 0, lead: 1.2}\n", []string{"stages.lead:", "1.2", "outside 0..1"}},
		{"stage probability negative", "stages: {closed_won: 1, closed_lost: 0, lead: -0.2}\n", []string{"stages.lead:", "outside 0..1"}},
		{"closed_won not 1", "stages: {closed_won: 0.9, closed_lost: 0}\n", []string{"stages.closed_won:", "must be 1"}},
		{"closed_lost not 0", "stages: {closed_won: 1, closed_lost: 0.1}\n", []string{"stages.closed_lost:", "must be 0"}},
		{"fx currency lowercase", "fx_rates:\n  eur: 1.1\n", []string{"fx_rates.eur:", `"eur"`, "ISO 4217"}},
		{"fx rate 0", "fx_rates: {EUR: 0}\n", []string{"fx_rates.EUR:", "positive"}},
		{"fx rate negative", "fx_rates: {EUR: -1.1}\n", []string{"fx_rates.EUR:", "positive"}},
		{"fx rate text", "fx_rates: {EUR: high}\n", []string{"fx_rates.EUR:", "not a valid float64"}},
		{"capacity text", "coverage_capacity: {\"1:few\": lots}\n", []string{"coverage_capacity.1:few:", `"lots"`, "unlimited", "line 1"}},
		{"capacity 0", "coverage_capacity: {\"1:few\": 0}\n", []string{"coverage_capacity.1:few:", "positive number"}},
		{"capacity negative", "coverage_capacity: {\"1:1\": -1}\n", []string{"coverage_capacity.1:1:", "positive number"}},
		{"capacity NaN", "coverage_capacity: {\"1:1\": .nan}\n", []string{"coverage_capacity.1:1:", "NaN"}},
		{"capacity list", "coverage_capacity: [1]\n", []string{"coverage_capacity: must be a mapping"}},
		{"coverage without capacity", "tiers: {named: {coverage: team}}\n", []string{"tiers.named.coverage:", `"team"`, "coverage_capacity", "1:few"}},
		{"fx rate of the reporting currency", "currency: EUR\nfx_rates: {EUR: 1, USD: 0.9}\n", []string{"fx_rates.EUR:", "reporting currency", "remove the entry"}},
		{"fx rate of the default reporting currency", "fx_rates: {USD: 1.0}\n", []string{"fx_rates.USD:", "reporting currency (currency: USD)"}},
		{"too many fx rates", "fx_rates:\n" + manyKeys(config.MaxEntries+1), []string{"fx_rates: 1001 keys", "at most 1000", "line 2"}},
		{"too many stages", "stages:\n" + manyKeys(config.MaxEntries+1), []string{"stages: 1001 keys"}},
		{"too large", "# " + strings.Repeat("x", 1<<20) + "\nwindow_months: 3\n", []string{"larger than 1048576 bytes"}},
		{"max_accounts negative", "tiers: {major: {max_accounts: -1}}\n", []string{"tiers.major.max_accounts:", "-1", "0 for no cap"}},
		{"max_accounts fraction", "tiers: {major: {max_accounts: 2.5}}\n", []string{"tiers.major.max_accounts:", "whole number"}},
		{"max_accounts on mass_market", "tiers: {mass_market: {max_accounts: 10}}\n", []string{"tiers.mass_market.max_accounts:", "no tier below"}},
		{"max_accounts too large", "tiers: {named: {max_accounts: 1001}}\n", []string{"tiers.named.max_accounts:", "1001", "above 1000"}},
		{"max_accounts sum too large", "tiers: {major: {max_accounts: 400}, named: {max_accounts: 400}, non_named: {max_accounts: 201}}\n", []string{"tiers:", "add up to 1001", "at most 1000", "Kafka message"}},
		{"alert_link_template without {account_id}", "alert_link_template: https://crm.example/accounts/{owner_id}\n", []string{"alert_link_template:", "{account_id}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse(%q) accepted: %+v", tt.yaml, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with the error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q): error %q does not contain %q", tt.yaml, err, w)
				}
			}
		})
	}
}

// manyKeys renders n mapping entries of three-letter keys, indented.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  %c%c%c: 1.5\n", 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
	}
	return b.String()
}

// A configuration at the bounds is fine; a file over the size bound is
// refused by Load before it is all read.
func TestSizeBounds(t *testing.T) {
	if _, err := config.Parse([]byte("fx_rates:\n" + manyKeys(config.MaxEntries))); err != nil {
		t.Errorf("%d fx_rates: %v", config.MaxEntries, err)
	}
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, []byte("fx_rates:\n"+manyKeys(400_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(6 MB of fx_rates) = %v", err)
	}
}

func TestAccepted(t *testing.T) {
	for _, y := range []string{
		"window_months: 1e1\n",  // a float that is a whole number
		"window_months: 0x0c\n", // YAML 1.2 integer forms
		"hysteresis: 0\n",
		"tiers: {named: {goal: {metric: absolute_sales, target: 100000}}}\n",
		"tiers: {major: {goal: {target: 1}}}\n",
		"stages: {closed_won: 1, closed_lost: 0, 1: 0.5}\n", // a numeric name is a string
		"alert_link_template: https://crm.example/a/{account_id}?rep={owner_id}\n",
		"fx_rates: {EUR: 1.1, JPY: 0.0067}\n",
		"quadrant: &q {current_high: 1}\n",    // an anchor on a known key
		"tiers: {major: {max_accounts: 0}}\n", // 0 is no cap
		"tiers: {major: {max_accounts: 400}, named: {max_accounts: 400}, non_named: {max_accounts: 200}}\n",
	} {
		c := mustParse(t, y)
		if err := c.Validate(); err != nil {
			t.Errorf("Parse(%q) gave an invalid config: %v", y, err)
		}
	}
	if c := mustParse(t, "window_months: 1e1\n"); c.WindowMonths != 10 {
		t.Errorf("window_months 1e1 = %d", c.WindowMonths)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	custom := mustParse(t, `
currency: EUR
window_months: 18
hysteresis: 0.15
quadrant: {current_high: 123456.78, potential_high: 0}
tiers:
  major: {threshold: 2000000, goal: {metric: absolute_sales, target: 3000000.5}, coverage: "team: 1:1", load_weight: 0.9, neglect_after_days: 7}
  named: {threshold: 250000.01, max_accounts: 120}
stages: {"lead: cold": 0.05, "yes": 0.333333, "null": 0.4, "~": 0.45, closed_won: 1, closed_lost: 0}
fx_rates: {USD: 0.91, CHF: 1.0000001}
alert_link_template: "https://crm.example/a/{account_id}#x"
coverage_capacity: {"team: 1:1": 0.25, "1:few": 7.5, "1:many": unlimited}
`)
	for name, c := range map[string]*config.Config{"default": config.Default(), "custom": custom} {
		y, err := c.YAML()
		if err != nil {
			t.Fatalf("%s: YAML: %v", name, err)
		}
		back, err := config.Parse(y)
		if err != nil {
			t.Fatalf("%s: re-parse of\n%s\n: %v", name, y, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v\nyaml:\n%s", name, back, c, y)
		}
		y2, _ := back.YAML()
		if string(y2) != string(y) {
			t.Errorf("%s: YAML not stable:\n%s\n---\n%s", name, y, y2)
		}
	}
	// Every key is written, so the output documents the effective config.
	y, _ := config.Default().YAML()
	for _, k := range []string{"currency:", "window_months:", "hysteresis:", "current_high:", "potential_high:",
		"major:", "named:", "non_named:", "mass_market:", "threshold:", "metric:", "target:", "coverage:",
		"load_weight:", "neglect_after_days:", "max_accounts:", "stages:", "closed_won:", "fx_rates:", "alert_link_template:",
		"coverage_capacity:", "call_center: unlimited"} {
		if !strings.Contains(string(y), k) {
			t.Errorf("YAML() lacks %s:\n%s", k, y)
		}
	}
}

func TestLoad(t *testing.T) {
	c, err := config.Load("")
	if err != nil || !reflect.DeepEqual(c, config.Default()) {
		t.Errorf("Load(\"\") = %+v, %v", c, err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("window_months: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(good); err != nil || c.WindowMonths != 3 {
		t.Errorf("Load(good) = %+v, %v", c, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tiers:\n  major:\n    thresold: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "tiers.major.thresold") {
		t.Errorf("Load(bad) = %v; want the file and the key path", err)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestTestdataExample(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Currency != "EUR" || c.FXRates["USD"] != 0.92 || c.Stages["demo"] != 0.3 {
		t.Errorf("example.yaml: %+v", c)
	}
}

func TestCoverageCapacity(t *testing.T) {
	// Given capacities merge into the defaults; the load weight of a tier
	// that does not set one follows its model's capacity.
	c := mustParse(t, `
coverage_capacity: {"1:few": 8, team: 0.25}
tiers:
  major: {coverage: team}
  non_named: {load_weight: 0.05}
`)
	want := map[string]config.Capacity{"1:1": 1, "1:few": 8, "1:many": 50, "call_center": config.Unlimited, "team": 0.25}
	if !reflect.DeepEqual(c.CoverageCapacity, want) {
		t.Errorf("coverage_capacity = %v, want %v", c.CoverageCapacity, want)
	}
	for _, tt := range []struct {
		tier string
		want float64
	}{
		{config.Major, 1},       // team: 1/0.25 capped at one whole rep
		{config.Named, 0.125},   // 1/8
		{config.NonNamed, 0.05}, // explicit load_weight wins
		{config.MassMarket, 0},  // call centre
	} {
		if got := c.Tier(tt.tier).LoadWeight; got != tt.want {
			t.Errorf("tiers.%s.load_weight = %v, want %v", tt.tier, got, tt.want)
		}
	}
	// The defaults' load weights are the defaults' capacities.
	d := config.Default()
	for _, name := range config.TierNames {
		capy, ok := d.Capacity(d.Tier(name).Coverage)
		if !ok || capy.LoadWeight() != d.Tier(name).LoadWeight {
			t.Errorf("default %s: load_weight %v, capacity %v gives %v", name, d.Tier(name).LoadWeight, capy, capy.LoadWeight())
		}
	}
	// A tier moved to 1:1 without a load weight loads its rep fully.
	if c := mustParse(t, "tiers: {named: {coverage: \"1:1\"}}\n"); c.Tiers.Named.LoadWeight != 1 {
		t.Errorf("named on 1:1: load_weight %v, want 1", c.Tiers.Named.LoadWeight)
	}
	if got := config.Capacity(0.25).String() + " " + config.Unlimited.String(); got != "0.25 unlimited" {
		t.Errorf("String() = %q", got)
	}
}
