package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/view"
)

func TestGoalsEndpoint(t *testing.T) {
	h := New(Options{Store: fixture(t)})
	w := get(t, h, "/v1/goals")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	m := decode(t, w)
	if m["accounts"].(float64) != 10 || len(m["partitions"].([]any)) != 2 {
		t.Errorf("accounts %v partitions %v", m["accounts"], m["partitions"])
	}
	tiers := m["tiers"].([]any)
	if len(tiers) != 4 {
		t.Fatalf("tiers %v", tiers)
	}
	// The fixture's snapshots all carry an absolute-sales goal of 50,000
	// that none meets; the summary quotes the configured goal of the tier.
	maj := tiers[0].(map[string]any)
	if maj["tier"] != "major" || maj["accounts"].(float64) != 3 || maj["behind"].(float64) != 3 ||
		maj["summary"] != "Major: share of wallet, target 50%: 0 of 3 met" {
		t.Errorf("major %v", maj)
	}
	if fb := maj["furthest_behind"].([]any); len(fb) != 3 || fb[0].(map[string]any)["account_id"] != "maj-3" {
		t.Errorf("furthest behind %v", fb)
	}
	if w := get(t, New(Options{Store: fixture(t), Token: "tok"}), "/v1/goals"); w.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", w.Code)
	}
}

func TestCoverageEndpoint(t *testing.T) {
	st := fixture(t)
	// rep-2 holds two major accounts: overloaded.
	b := &sink.Batch{}
	for _, id := range []string{"maj-x", "maj-y"} {
		sn := mkSnap(id, 1, scoring.Major, scoring.HighCurrentLowPotential, 900_000, 200_000)
		sn.OwnerID, sn.CoverageModel = "rep-2", "1:1"
		b.Snapshots = append(b.Snapshots, sn)
	}
	st.Observe(0, b)
	m := decode(t, get(t, New(Options{Store: st}), "/v1/coverage"))
	maj := m["tiers"].([]any)[0].(map[string]any)
	if maj["reps_needed"].(float64) != 5 || maj["owners"].(float64) != 2 || maj["shortfall"].(float64) != 3 {
		t.Errorf("major coverage %v", maj)
	}
	over := m["overloaded_reps"].(map[string]any)
	reps := over["reps"].([]any)
	if over["total"].(float64) != 2 || reps[0].(map[string]any)["owner_id"] != "rep-1" || reps[1].(map[string]any)["owner_id"] != "rep-2" {
		t.Errorf("overloaded %v", over)
	}
	watch := m["watch_list"].(map[string]any)
	if watch["total"].(float64) != 2 { // maj-x, maj-y; maj-2 is high-current/low-potential but on 1:many
		t.Errorf("watch list %v", watch)
	}
}

func TestAccountPage(t *testing.T) {
	st := fixture(t)
	// Some history for the chart.
	for v := uint64(3); v <= 6; v++ {
		sn := mkSnap("nam-2", v, scoring.Named, scoring.LowCurrentHighPotential, 100_000*int64(v), 550_000)
		sn.AsOf, sn.Neglected, sn.LastTouchAt = at+int64(v)*day, true, at-40*day
		st.Observe(1, &sink.Batch{Snapshots: []scoring.Snapshot{sn}})
	}
	h := New(Options{Store: st, Title: "pyramid-0"})
	w := get(t, h, "/accounts/nam-2")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("account page: %d %s\n%s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("policy %q", csp)
	}
	body := w.Body.String()
	for _, want := range []string{
		`data-account-id="nam-2"`, `Acme &lt;GmbH&gt;`,
		"Value 1,150,000 USD = current value 600,000 &#43; potential value 550,000.",
		"Named since its last tier change: value 1,150,000.00 &gt;= named threshold.",
		"It reaches Major at a value of 1,000,000: 0 more.",
		"Neglected: an alert is open since 2026-02-19T12:00:00Z.",
		`id="value-chart" data-points="6"`, // 5 snapshots and the tier change before them `id="line-current"`, `al-1`, `value up`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the account page has a script")
	}

	w = get(t, h, "/accounts/nobody")
	if w.Code != 404 || !strings.Contains(w.Body.String(), `id="not-found"`) || !strings.Contains(w.Body.String(), "partitions owned: 0, 1") {
		t.Errorf("unknown account: %d\n%s", w.Code, w.Body)
	}
	// Same token as the status page.
	h = New(Options{Store: st, Token: "tok"})
	if w := get(t, h, "/accounts/nam-2"); w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("account page without the token: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := get(t, h, "/accounts?q=acme"); w.Code != http.StatusUnauthorized {
		t.Errorf("search without the token: %d", w.Code)
	}
	if w := get(t, h, "/accounts/nam-2", "Authorization", "Bearer tok"); w.Code != 200 {
		t.Errorf("account page with the token: %d", w.Code)
	}
}

func TestSearchPage(t *testing.T) {
	st := fixture(t)
	odd := []string{"a/b c?d#e%f", "ü", "..", "."}
	b := &sink.Batch{}
	for _, id := range odd {
		sn := mkSnap(id, 1, scoring.MassMarket, scoring.LowCurrentLowPotential, 1, 0)
		sn.Name = "Odd " + id
		b.Snapshots = append(b.Snapshots, sn)
	}
	st.Observe(0, b)
	h := New(Options{Store: st})

	// An exact id goes to its page.
	w := get(t, h, "/accounts?q=maj-1")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/accounts/maj-1" {
		t.Errorf("exact id: %d %q", w.Code, w.Header().Get("Location"))
	}
	// A name lists the matches with links.
	w = get(t, h, "/accounts?q=ACME")
	body := w.Body.String()
	if w.Code != 200 || strings.Count(body, `<a href="/accounts/`) != 10 || !strings.Contains(body, `href="/accounts/maj-3"`) {
		t.Errorf("search acme: %d\n%s", w.Code, body)
	}
	if w := get(t, h, "/accounts?q=zzz"); !strings.Contains(w.Body.String(), "No account of this instance matches") {
		t.Errorf("no match: %s", w.Body)
	}
	// Every odd id is reachable through the link the pages give it.
	for _, id := range odd {
		path := accountPath(id)
		w := get(t, h, path)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "Odd "+id) {
			t.Errorf("%q via %s: %d", id, path, w.Code)
		}
		if w := get(t, h, "/accounts?q="+strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F", " ", "+", "/", "%2F").Replace(id)); w.Code != http.StatusSeeOther || w.Header().Get("Location") != path {
			t.Errorf("search for %q: %d %q, want %s", id, w.Code, w.Header().Get("Location"), path)
		}
	}
}

func TestStatusPagePanels(t *testing.T) {
	h := New(Options{Store: fixture(t), Now: func() time.Time { return time.Unix(0, at) }})
	body := get(t, h, "/").Body.String()
	for _, want := range []string{
		`id="goal-major" data-tier="major" data-met="0" data-accounts="3"`,
		"Major: share of wallet, target 50%: 0 of 3 met",
		`id="coverage-major" data-tier="major" data-needed="3" data-owners="1"`,
		"Major, 1:1 (1 account per rep): 3 accounts need 3 reps; 1 rep holds them, 2 short",
		`<a href="/accounts/nam-2">nam-2</a>`, // neglected and changes tables link
		`<form class="search" method="get" action="/accounts"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
}

func TestValueChart(t *testing.T) {
	if c := valueChart(nil); c.Points != 0 || c.Current != "" {
		t.Errorf("empty chart %+v", c)
	}
	h := int64(time.Hour)
	c := valueChart([]view.Point{{At: 0, Current: 0, Potential: 400}, {At: 10 * h, Current: 150, Potential: 300}, {At: 20 * h, Current: 300, Potential: 0}})
	// Axis to 500 (the next round number over 400): x from 64 to 628,
	// y from 192 (0) to 12 (500).
	if c.Current != "64.0,192.0 346.0,138.0 628.0,84.0" || c.Potential != "64.0,48.0 346.0,84.0 628.0,192.0" {
		t.Errorf("lines\n%s\n%s", c.Current, c.Potential)
	}
	if len(c.YTicks) != 3 || c.YTicks[2].Label != "500" || c.YTicks[1].Label != "250" || len(c.XTicks) != 2 || c.XTicks[1].Label != "1970-01-01 20:00" {
		t.Errorf("ticks %+v %+v", c.YTicks, c.XTicks)
	}
	one := valueChart([]view.Point{{At: 5, Current: 2_000_000, Potential: 1}})
	if len(one.Dots) != 1 || one.Dots[0].X != chartLeft+chartPlotW/2 || one.YTicks[2].Label != "2M" {
		t.Errorf("one point %+v", one)
	}
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {999, "999"}, {2500, "2.5k"}, {1e6, "1M"}, {1.5e9, "1.5bn"}} {
		if got := compact(tt.v); got != tt.want {
			t.Errorf("compact(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if niceCeil(0) != 1 || niceCeil(400) != 500 || niceCeil(1001) != 2000 || niceCeil(5e6) != 5e6 {
		t.Error("niceCeil")
	}
}

func TestChartPointsMergeTierChanges(t *testing.T) {
	d := view.Detail{
		History: []view.Point{{At: 20, Current: 2, Potential: 3}, {At: 30, Current: 4, Potential: 5}},
		Changes: []scoring.TierChange{ // newest first, as the store gives them
			{ChangedAt: 30, Current: money.FromUnits(99), Potential: money.FromUnits(99)}, // the history's own moment: the history wins
			{ChangedAt: 10, Current: money.FromUnits(1), Potential: money.FromUnits(7)},
		},
	}
	got := chartPoints(&d)
	want := []view.Point{{At: 10, Current: 1, Potential: 7}, {At: 20, Current: 2, Potential: 3}, {At: 30, Current: 4, Potential: 5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chart points %v, want %v", got, want)
	}
}
