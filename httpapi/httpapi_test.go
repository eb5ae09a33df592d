package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/view"
)

var day = int64(24 * time.Hour)

// at is a fixed moment so outputs are deterministic.
var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func mkSnap(id string, v uint64, t scoring.Tier, q string, cur, pot int64) scoring.Snapshot {
	return scoring.Snapshot{
		AccountID: id, Version: v, AsOf: at, Tier: t, Quadrant: q,
		TierReason:   "value " + money.FromUnits(cur+pot).Grouped() + " >= " + t.String() + " threshold",
		CurrentValue: money.FromUnits(cur), PotentialValue: money.FromUnits(pot),
		GoalMetric: "absolute_sales", GoalTarget: 50000, HasGoalActual: true, GoalActual: float64(cur),
		GoalAttainment: float64(cur) / 50000, GoalStatus: scoring.GoalBehind,
		CoverageModel: "1:many", OwnerID: "rep-1", LastTouchAt: at - 3*day, Name: "Acme <GmbH>",
	}
}

// fixture is a store with 3 major, 2 named, 1 non_named and 4 mass_market
// accounts on partitions 0 and 1.
func fixture(t testing.TB) *view.Store {
	t.Helper()
	st := view.New()
	b0, b1 := &sink.Batch{}, &sink.Batch{}
	add := func(b *sink.Batch, id string, tier scoring.Tier, q string, cur, pot int64) {
		b.Snapshots = append(b.Snapshots, mkSnap(id, 2, tier, q, cur, pot))
		b.Changes = append(b.Changes, scoring.TierChange{AccountID: id, Version: 2, ChangedAt: at - int64(len(b.Changes))*day,
			From: tier - 1, To: tier, Reason: "value up", Current: money.FromUnits(cur), Potential: money.FromUnits(pot), EventID: "ev-" + id})
	}
	add(b0, "maj-1", scoring.Major, scoring.HighCurrentHighPotential, 800_000, 700_000)
	add(b0, "maj-2", scoring.Major, scoring.HighCurrentLowPotential, 900_000, 200_000)
	add(b1, "maj-3", scoring.Major, scoring.HighCurrentHighPotential, 600_000, 900_000)
	add(b0, "nam-1", scoring.Named, scoring.LowCurrentLowPotential, 200_000, 100_000)
	add(b1, "nam-2", scoring.Named, scoring.LowCurrentHighPotential, 100_000, 550_000)
	add(b0, "non-1", scoring.NonNamed, scoring.LowCurrentLowPotential, 20_000, 20_000)
	for _, id := range []string{"mm-1", "mm-2", "mm-3", "mm-4"} {
		add(b1, id, scoring.MassMarket, scoring.LowCurrentLowPotential, 1_000, 0)
	}
	// nam-2 is neglected with an open alert.
	for i := range b1.Snapshots {
		if b1.Snapshots[i].AccountID == "nam-2" {
			b1.Snapshots[i].Neglected = true
			b1.Snapshots[i].LastTouchAt = at - 40*day
		}
	}
	b1.Alerts = append(b1.Alerts, scoring.Alert{AlertID: "al-1", AccountID: "nam-2", Kind: scoring.KindNeglected,
		Status: scoring.StatusOpen, OpenedAt: at - 10*day, Tier: scoring.Named, OwnerID: "rep-1",
		Potential: money.FromUnits(550_000), LastTouchAt: at - 40*day})
	st.Observe(0, b0)
	st.Observe(1, b1)
	return st
}

func get(t testing.TB, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, w.Body)
	}
	return m
}

func TestHealthz(t *testing.T) {
	w := get(t, New(Options{}), "/healthz")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "ok" {
		t.Errorf("healthz = %d %q", w.Code, w.Body)
	}
}

func TestReadyz(t *testing.T) {
	var ready error = errors.New("partition 3 restoring")
	h := New(Options{Ready: func() error { return ready }})
	w := get(t, h, "/readyz")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "partition 3 restoring") {
		t.Errorf("readyz while restoring = %d %q, want 503 with the reason", w.Code, w.Body)
	}
	ready = nil
	if w := get(t, h, "/readyz"); w.Code != 200 {
		t.Errorf("readyz when ready = %d %q", w.Code, w.Body)
	}
	if w := get(t, New(Options{}), "/readyz"); w.Code != 200 {
		t.Errorf("readyz without a check = %d", w.Code)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pyramid_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(7)
	w := get(t, New(Options{Gatherer: reg}), "/metrics")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "pyramid_test_total 7") {
		t.Errorf("metrics = %d\n%s", w.Code, w.Body)
	}
	if w := get(t, New(Options{}), "/metrics"); w.Code != 404 {
		t.Errorf("metrics without a gatherer = %d, want 404", w.Code)
	}
}

func TestAccount(t *testing.T) {
	h := New(Options{Store: fixture(t)})
	w := get(t, h, "/v1/accounts/nam-2")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	body := w.Body.String()
	// Snapshot fields keep their docs/model.md names and money has two decimals.
	for _, want := range []string{`"account_id":"nam-2"`, `"version":2`, `"tier":"named"`, `"quadrant":"low_current_high_potential"`,
		`"current_value":100000.00`, `"potential_value":550000.00`, `"neglected":true`, `"goal_target":50000.00`,
		`"name":"Acme <GmbH>"`, `"partition":1`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
	m := decode(t, w)
	ex := m["explanation"].(map[string]any)
	fig := ex["figures"].(map[string]any)
	if fig["value"].(float64) != 650000 {
		t.Errorf("figures.value = %v", fig["value"])
	}
	tiers := ex["tiers"].([]any)
	if len(tiers) != 4 {
		t.Fatalf("tiers = %v", tiers)
	}
	top := tiers[0].(map[string]any)
	if top["tier"] != "major" || top["threshold"].(float64) != 1_000_000 || top["hysteresis_floor"].(float64) != 900_000 {
		t.Errorf("top tier rule = %v", top)
	}
	if nt := ex["next_tier"].(map[string]any); nt["tier"] != "major" || nt["gap"].(float64) != 350_000 {
		t.Errorf("next_tier = %v", nt)
	}
	if ex["demotion_below"].(float64) != 225_000 {
		t.Errorf("demotion_below = %v", ex["demotion_below"])
	}
	if ex["tier_reason"] == "" || ex["hysteresis"].(float64) != 0.1 {
		t.Errorf("tier_reason/hysteresis = %v/%v", ex["tier_reason"], ex["hysteresis"])
	}
	q := ex["quadrant"].(map[string]any)
	if q["current_high"].(float64) != 500_000 || q["potential_is_high"] != true || q["current_is_high"] != false {
		t.Errorf("quadrant = %v", q)
	}
	if g := ex["goal"].(map[string]any); g["metric"] != "absolute_sales" || g["status"] != "behind" {
		t.Errorf("goal = %v", g)
	}
	if _, ok := ex["open_opportunities"]; !ok {
		t.Error("open_opportunities missing")
	}
	ng := ex["neglect"].(map[string]any)
	if ng["days_since_touch"].(float64) != 40 || ng["after_days"].(float64) != 30 {
		t.Errorf("neglect = %v", ng)
	}
	if al, _ := ng["open_alert"].(map[string]any); al["alert_id"] != "al-1" {
		t.Errorf("open alert = %v", ng["open_alert"])
	}
	rc := ex["recent_tier_changes"].([]any)
	if len(rc) != 1 || rc[0].(map[string]any)["to_tier"] != "named" {
		t.Errorf("recent_tier_changes = %v", rc)
	}
}

func TestAccountNotOwned(t *testing.T) {
	st := fixture(t)
	h := New(Options{Store: st})
	w := get(t, h, "/v1/accounts/nobody")
	if w.Code != 404 {
		t.Fatalf("unknown account: %d", w.Code)
	}
	if m := decode(t, w); !strings.Contains(m["error"].(string), "nobody") {
		t.Errorf("error = %v", m)
	}
	// After a rebalance revokes partition 0 its accounts are another
	// instance's business.
	if w := get(t, h, "/v1/accounts/maj-1"); w.Code != 200 {
		t.Fatalf("maj-1 before drop: %d", w.Code)
	}
	st.DropPartition(0)
	if w := get(t, h, "/v1/accounts/maj-1"); w.Code != 404 {
		t.Errorf("maj-1 after drop: %d, want 404", w.Code)
	}
	if w := get(t, h, "/v1/accounts/maj-3"); w.Code != 200 {
		t.Errorf("maj-3 on the kept partition: %d", w.Code)
	}
	m := decode(t, get(t, h, "/v1/tiers"))
	if got := m["tiers"].(map[string]any)["major"].(float64); got != 1 {
		t.Errorf("major after drop = %v, want 1", got)
	}
}

func TestTiers(t *testing.T) {
	h := New(Options{Store: fixture(t)})
	w := get(t, h, "/v1/tiers")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	m := decode(t, w)
	want := map[string]float64{"major": 3, "named": 2, "non_named": 1, "mass_market": 4}
	tiers := m["tiers"].(map[string]any)
	for k, v := range want {
		if tiers[k].(float64) != v {
			t.Errorf("tiers[%s] = %v, want %v", k, tiers[k], v)
		}
	}
	quads := m["quadrants"].(map[string]any)
	if quads[scoring.LowCurrentLowPotential].(float64) != 6 || quads[scoring.HighCurrentHighPotential].(float64) != 2 {
		t.Errorf("quadrants = %v", quads)
	}
	if m["accounts"].(float64) != 10 || m["neglected"].(float64) != 1 {
		t.Errorf("accounts/neglected = %v/%v", m["accounts"], m["neglected"])
	}
}

func TestChangesAndNeglected(t *testing.T) {
	h := New(Options{Store: fixture(t)})
	m := decode(t, get(t, h, "/v1/changes?n=3"))
	if cs := m["changes"].([]any); len(cs) != 3 {
		t.Errorf("changes = %d, want 3", len(cs))
	}
	if w := get(t, h, "/v1/changes?n=zero"); w.Code != 400 {
		t.Errorf("bad n: %d", w.Code)
	}
	m = decode(t, get(t, h, "/v1/neglected"))
	if as := m["accounts"].([]any); len(as) != 1 || as[0].(map[string]any)["account_id"] != "nam-2" {
		t.Errorf("neglected = %v", as)
	}
	if w := get(t, h, "/v1/nothing"); w.Code != 404 {
		t.Errorf("unknown /v1 path: %d", w.Code)
	}
}

func TestAuth(t *testing.T) {
	h := New(Options{Store: fixture(t), Token: "s3cret"})
	for _, tc := range []struct {
		name, header string
		code         int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"prefix of the token", "Bearer s3c", 401},
		{"wrong scheme", "Basic s3cret", 401},
		{"no scheme", "s3cret", 401},
		{"right", "Bearer s3cret", 200},
		{"scheme case", "bearer s3cret", 200},
	} {
		for _, path := range []string{"/v1/tiers", "/v1/accounts/maj-1", "/v1/nothing"} {
			var w *httptest.ResponseRecorder
			if tc.header == "" {
				w = get(t, h, path)
			} else {
				w = get(t, h, path, "Authorization", tc.header)
			}
			want := tc.code
			if want == 200 && path == "/v1/nothing" {
				want = 404
			}
			if w.Code != want {
				t.Errorf("%s token on %s: %d, want %d", tc.name, path, w.Code, want)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
			}
		}
	}
	// The status page takes the token as a bearer token or as a basic-auth
	// password, and challenges a browser for the latter.
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, tc := range []struct {
		name, header string
		code         int
	}{
		{"missing", "", 401},
		{"wrong password", basic("ops", "nope"), 401},
		{"token as user name", basic("s3cret", ""), 401},
		{"password", basic("ops", "s3cret"), 200},
		{"bearer", "Bearer s3cret", 200},
	} {
		var w *httptest.ResponseRecorder
		if tc.header == "" {
			w = get(t, h, "/")
		} else {
			w = get(t, h, "/", "Authorization", tc.header)
		}
		if w.Code != tc.code {
			t.Errorf("status page, %s: %d, want %d", tc.name, w.Code, tc.code)
		}
		if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("status page, %s: challenge %q, want Basic", tc.name, w.Header().Get("WWW-Authenticate"))
		}
		if w.Code == 200 && !strings.Contains(w.Body.String(), "<svg") {
			t.Errorf("status page, %s: body does not look like the page", tc.name)
		}
	}
	// Probes stay open for the orchestrator.
	for _, path := range []string{"/healthz", "/readyz"} {
		if w := get(t, h, path); w.Code != 200 {
			t.Errorf("%s with a token set: %d", path, w.Code)
		}
	}
	// Without a token /v1 is open.
	if w := get(t, New(Options{Store: fixture(t)}), "/v1/tiers"); w.Code != 200 {
		t.Errorf("no token configured: %d", w.Code)
	}
}

func TestStatusPage(t *testing.T) {
	st := fixture(t)
	// A hostile account id and reason must be escaped.
	st.Observe(2, &sink.Batch{Changes: []scoring.TierChange{{AccountID: `<script>alert(1)</script>`, Version: 1,
		ChangedAt: at + day, From: scoring.TierNone, To: scoring.Major, Reason: `"><img src=x>`}}})
	h := New(Options{Store: st, Title: "pyramid-0", Ready: func() error { return errors.New("sink down") },
		Now: func() time.Time { return time.Unix(0, at) }})
	w := get(t, h, "/")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status page: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	for _, want := range []string{
		`data-tier="major" data-count="3"`, `data-tier="named" data-count="2"`,
		`data-tier="non_named" data-count="1"`, `data-tier="mass_market" data-count="4"`,
		`data-quadrant="low_current_low_potential" data-count="6"`,
		`not ready: sink down`, `nam-2`, `Acme &lt;GmbH&gt;`, `&lt;script&gt;`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
	for _, bad := range []string{"<img", "http://", "https://", "<link"} {
		if strings.Contains(body, bad) {
			t.Errorf("status page contains %q", bad)
		}
	}
	// One script, the refresh, and the policy lets only it run.
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("status page has %d scripts, want the refresh script only", n)
	}
	script := body[strings.Index(body, "<script>")+len("<script>"):]
	script = script[:strings.Index(script, "</script>")]
	sum := sha256.Sum256([]byte(script))
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") ||
		!strings.Contains(csp, "default-src 'none'") {
		t.Errorf("policy %q does not pin the page's script", csp)
	}
	if !strings.Contains(body, `<noscript><meta http-equiv="refresh" content="5"></noscript>`) {
		t.Error("no refresh without scripts")
	}
	if i, j := strings.Index(body, `data-tier="major"`), strings.Index(body, `data-tier="mass_market"`); i < 0 || i > j {
		t.Error("major is not drawn first (top of the pyramid)")
	}
	if w := get(t, h, "/nope"); w.Code != 404 {
		t.Errorf("unknown page: %d", w.Code)
	}
}

func TestServeShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(Options{}), nil) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "ok" {
		t.Errorf("healthz over TCP = %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := ListenAndServe(context.Background(), "127.0.0.1:-1", nil, nil); err == nil {
		t.Error("ListenAndServe on a bad address returned nil")
	}
}

// Other methods than GET on an API path answer 405 with Allow, not 404;
// unknown paths stay 404 whatever the method.
func TestMethodNotAllowed(t *testing.T) {
	h := New(Options{Store: fixture(t)})
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/tiers", 405},
		{http.MethodDelete, "/v1/accounts/maj-1", 405},
		{http.MethodPut, "/v1/changes", 405},
		{http.MethodPatch, "/v1/neglected", 405},
		{http.MethodPost, "/v1/nothing", 404},
		{http.MethodHead, "/v1/tiers", 200},
		{http.MethodPost, "/healthz", 405},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}"))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
		if tc.code == 405 && !strings.Contains(w.Header().Get("Allow"), "GET") {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, w.Header().Get("Allow"))
		}
	}
}
