package metrics

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every name in Names is registered, and every registered family is in
// Names, so documentation and rules checked against Names are complete.
func TestNamesMatchRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	// Vectors only appear once they have a child.
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
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
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

// The README's metrics table lists every metric.
func TestREADMEListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Names {
		if !strings.Contains(string(b), "`"+n+"`") {
			t.Errorf("README.md does not document %s", n)
		}
	}
}
