package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// capParams caps major at 3 and named at 4.
func capParams() *scoring.Params {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 3
	cfg.Tiers.Named.MaxAccounts = 4
	return scoring.NewParams(cfg)
}

// capRanking ranks five accounts that qualify for major: three keep it,
// two fall into named's pool, which has room.
func capRanking(p *scoring.Params) *scoring.Ranking {
	c := &scoring.Candidates{}
	for i, v := range []int64{5_000_000, 4_000_000, 3_000_000, 2_000_000, 1_500_000} {
		c.List = append(c.List, scoring.Candidate{ID: "acc-" + string(rune('a'+i)), Value: money.FromUnits(v), Qualified: scoring.Major, Tier: scoring.Named})
	}
	return scoring.Rank(p, c)
}

// The capped tiers show their places, in /v1/tiers and on the status
// page, for the whole deployment as the latest ranking saw it; the
// account explanation names the qualified tier and the caps.
func TestCapacityShown(t *testing.T) {
	p := capParams()
	st := fixture(t)
	h := New(Options{Store: st, Params: p})

	var body struct {
		Capacity []struct {
			Tier        string `json:"tier"`
			MaxAccounts int    `json:"max_accounts"`
			Ranked      bool   `json:"ranked"`
			Held        int    `json:"held"`
			Qualified   int    `json:"qualified"`
			Summary     string `json:"summary"`
		} `json:"capacity"`
	}
	tiers := func() {
		t.Helper()
		w := get(t, h, "/v1/tiers")
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
	}
	tiers()
	if len(body.Capacity) != 2 || body.Capacity[0].Ranked || body.Capacity[0].Summary != "Major: 3 places, not ranked yet" {
		t.Fatalf("before a ranking: %+v", body.Capacity)
	}
	st.SetRanking(capRanking(p))
	tiers()
	want := []string{
		"major 3 3 5 Major: 3 of 3 places held, 5 accounts qualify; a newcomer needs a value above 3,000,000 USD",
		"named 4 2 2 Named: 2 of 4 places held, 2 accounts qualify; every one has a place",
	}
	for i, c := range body.Capacity {
		if got := strings.Join([]string{c.Tier, strconv.Itoa(c.MaxAccounts), strconv.Itoa(c.Held), strconv.Itoa(c.Qualified), c.Summary}, " "); i >= len(want) || got != want[i] {
			t.Errorf("capacity[%d] = %q", i, got)
		}
	}

	page := get(t, h, "/").Body.String()
	for _, s := range []string{`id="capacity-major" data-tier="major" data-held="3" data-max="3"`, "≥ 1,000,000.00 · 3/3 places", "a newcomer needs a value above 3,000,000 USD"} {
		if !strings.Contains(page, s) {
			t.Errorf("status page lacks %q", s)
		}
	}

	acc := decode(t, get(t, h, "/v1/accounts/maj-1"))
	ex := acc["explanation"].(map[string]any)
	if ex["qualified_tier"] != "major" {
		t.Errorf("qualified_tier %v", ex["qualified_tier"])
	}
	if r := ex["tiers"].([]any)[0].(map[string]any); r["max_accounts"] != 3.0 {
		t.Errorf("major's rule %v", r)
	}

	// An account held below the tier it qualifies for says so on its page.
	held := mkSnap("held-1", 3, scoring.Named, scoring.HighCurrentHighPotential, 900_000, 400_000)
	held.Qualified, held.TierReason = scoring.Major, "capacity: rank 4 by value, major holds 3"
	st.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{held}})
	page = get(t, h, "/accounts/held-1").Body.String()
	if !strings.Contains(page, "Its value qualifies for Major, but Major holds at most 3 accounts and has not given it a place") ||
		strings.Contains(page, "It reaches Major at") {
		t.Errorf("the page of an account held below its qualified tier does not say so")
	}

	// Without caps none of it shows.
	plain := New(Options{Store: st})
	if b := get(t, plain, "/v1/tiers").Body.String(); strings.Contains(b, "capacity") {
		t.Errorf("/v1/tiers without caps: %s", b)
	}
	if b := get(t, plain, "/v1/accounts/maj-1").Body.String(); strings.Contains(b, "qualified_tier") || strings.Contains(b, "max_accounts") {
		t.Errorf("account without caps: %s", b)
	}
	if b := get(t, plain, "/").Body.String(); strings.Contains(b, `id="capacity"`) || strings.Contains(b, " places") {
		t.Errorf("status page without caps shows capacity")
	}
}
