package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pyramid-crm/pyramid/event"
)

// gathered registers every metric, gives each vector a child (vectors
// only appear once they have one) and returns the families.
func gathered(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Events.WithLabelValues("order", "applied")
	m.DLQ.WithLabelValues("not_json")
	m.Accounts.WithLabelValues("major")
	m.TierChanges.WithLabelValues("none", "major")
	m.Neglected.WithLabelValues("major")
	m.AlertsOpened.WithLabelValues("major")
	m.AlertsResolved.WithLabelValues("major")
	m.SinkFlushes.WithLabelValues("size")
	m.SinkRows.WithLabelValues("account_snapshots")
	m.ConsumerLag.WithLabelValues("crm.orders", "0")
	m.FetchLag.WithLabelValues("crm.orders", "0")
	m.SinkErrors.WithLabelValues("files")
	m.SinkRetries.WithLabelValues("files")
	m.SinkUp.WithLabelValues("files")
	m.CapacityHeld.WithLabelValues("major")
	m.RepartitionRecords.WithLabelValues("crmdb.public.orders")
	m.RepartitionEvents.WithLabelValues("order")
	m.RepartitionErrors.WithLabelValues("crmdb.public.orders", "not_json")
	m.RepartitionLag.WithLabelValues("crmdb.public.orders", "0")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// Every name in Names is registered, and every registered family is in
// Names, so documentation and rules checked against Names are complete.
func TestNamesMatchRegistered(t *testing.T) {
	got := map[string]bool{}
	for _, f := range gathered(t) {
		got[f.GetName()] = true
	}
	want := map[string]bool{}
	for _, n := range Names {
		want[n] = true
		if !got[n] {
			t.Errorf("%s is in Names but not registered", n)
		}
	}
	for n := range got {
		if !want[n] {
			t.Errorf("%s is registered but missing from Names", n)
		}
	}
}

// Counters with known label values exist at 0 before anything happened,
// so rate() and the alert rules work from the start.
func TestKnownSeriesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			series[key] = m.GetCounter().GetValue()
		}
	}
	want := []string{
		"pyramid_events_total result=rejected type=unknown",
		"pyramid_alerts_opened_total tier=major",
		"pyramid_alerts_resolved_total tier=mass_market",
		"pyramid_capacity_demotions_total tier=major",
		"pyramid_capacity_demotions_total tier=non_named",
	}
	for _, r := range event.Reasons {
		want = append(want, "pyramid_dlq_total reason="+r)
	}
	for _, typ := range event.Types {
		for _, r := range EventResults {
			want = append(want, "pyramid_events_total result="+r+" type="+typ.String())
		}
	}
	for _, k := range want {
		if v, ok := series[k]; !ok || v != 0 {
			t.Errorf("%s: present %v, value %v; want present at 0", k, ok, v)
		}
	}
}

// The README's metrics table lists every metric with its labels.
func TestREADMEListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// | `name` | label, label | meaning |
	row := regexp.MustCompile("(?m)^\\| `(pyramid_[a-z_]+)` \\|([a-z_, ]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	for _, f := range gathered(t) {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		want := strings.Join(labels, ", ")
		got, ok := documented[f.GetName()]
		switch {
		case !ok:
			t.Errorf("README.md does not document %s", f.GetName())
		case !sameSet(got, want):
			t.Errorf("README.md gives %s the labels %q, the code %q", f.GetName(), got, want)
		}
	}
}

func sameSet(a, b string) bool {
	split := func(s string) []string {
		var out []string
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(split(a), split(b))
}
