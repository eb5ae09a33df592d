package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

// FuzzParse checks that Parse never panics, that whatever it accepts is
// valid, and that the effective configuration it prints parses back to the
// same configuration.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "~", "currency: EUR\n", "window_months: 6\nhysteresis: 0.2\n",
		"tiers:\n  major:\n    threshold: 2000000\n    goal: {metric: absolute_sales, target: 1e6}\n",
		"stages: {lead: 0.1, closed_won: 1, closed_lost: 0}\nfx_rates: {EUR: 1.1}\n",
		"alert_link_template: 'https://x/{account_id}'\n",
		"quadrant: &q {current_high: 1}\n",
		"tiers: {major: {thresold: 1}}\n", "window_months: 1.5\n", "stages: {~: 1}\n",
		"a: [\n", "- 1\n", "!!binary aGk=\n",
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		f.Add(b)
	}
	if y, err := config.Default().YAML(); err == nil {
		f.Add(y)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config %q: %v", b, err)
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML of accepted %q: %v", b, err)
		}
		back, err := config.Parse(y)
		if err != nil {
			t.Fatalf("re-parse of YAML() output failed: %v\ninput %q\nyaml:\n%s", err, b, y)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip differs\n got %+v\nwant %+v\ninput %q\nyaml:\n%s", back, c, b, y)
		}
	})
}
