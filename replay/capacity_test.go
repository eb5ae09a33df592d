package replay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

// capRun replays input with cfg at asOf.
func capRun(t *testing.T, cfg *config.Config, input string) (snaps, changes string) {
	t.Helper()
	var s, c bytes.Buffer
	if _, _, err := Run(Options{Config: cfg, AsOf: asOf, Input: strings.NewReader(input), Output: &s, Changes: &c}); err != nil {
		t.Fatal(err)
	}
	return s.String(), c.String()
}

type capSnap struct {
	AccountID  string `json:"account_id"`
	Version    int    `json:"version"`
	AsOf       string `json:"as_of"`
	Tier       string `json:"tier"`
	TierReason string `json:"tier_reason"`
	Overridden bool   `json:"overridden"`
}

func capSnaps(t *testing.T, jsonl string) map[string]capSnap {
	t.Helper()
	out := map[string]capSnap{}
	for _, l := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		var s capSnap
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		out[s.AccountID] = s
	}
	return out
}

// TestReplayWithCaps: a capped tier holds at most its cap after a replay
// (plus the accounts tier_override pins), the highest values keep it,
// every account that fell says why, and the result does not depend on how
// accounts interleave in the input.
func TestReplayWithCaps(t *testing.T) {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 3
	cfg.Tiers.Named.MaxAccounts = 4
	evs := events(11, 60, 6000)
	in := strings.Join(evs, "\n")
	snaps, changes := capRun(t, cfg, in)
	uncapped, _ := capRun(t, config.Default(), in)

	got, free := capSnaps(t, snaps), capSnaps(t, uncapped)
	held := map[string]int{}
	pinned := map[string]int{}
	fell := 0
	for id, s := range got {
		held[s.Tier]++
		if s.Overridden {
			pinned[s.Tier]++
			continue
		}
		if strings.HasPrefix(s.TierReason, "capacity: rank ") {
			fell++
			if !strings.HasSuffix(s.TierReason, "major holds 3") && !strings.HasSuffix(s.TierReason, "named holds 4") {
				t.Errorf("%s: reason %q names no capped tier", id, s.TierReason)
			}
		}
		if f := free[id]; tierRank(s.Tier) > tierRank(f.Tier) {
			t.Errorf("%s holds %s with caps but only %s without", id, s.Tier, f.Tier)
		}
	}
	for tier, limit := range map[string]int{"major": 3, "named": 4} {
		if held[tier] > max(limit, pinned[tier]) {
			t.Errorf("%s holds %d accounts (%d pinned), cap %d", tier, held[tier], pinned[tier], limit)
		}
	}
	if fell == 0 || held["major"] == 0 || !strings.Contains(changes, `"reason":"capacity: `) {
		t.Fatalf("the workload should fill the caps and make accounts fall: %v, %d fell", held, fell)
	}
	// The ranking is the last thing a replay does: its tier changes are
	// at as_of, and caused by no event.
	for _, l := range strings.Split(strings.TrimSpace(changes), "\n") {
		if strings.Contains(l, `"reason":"capacity: `) && (!strings.Contains(l, `"changed_at":"2025-12-31T00:00:00Z"`) || !strings.Contains(l, `"event_id":""`)) {
			t.Errorf("a capacity change not at as_of or with an event: %s", l)
		}
	}

	// The plan says how the capped tiers stand, as the snapshots do.
	var planOut bytes.Buffer
	if _, _, err := Run(Options{Config: cfg, AsOf: asOf, Input: strings.NewReader(in), Plan: &planOut}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Capacity []struct {
			Tier        string
			MaxAccounts int `json:"max_accounts"`
			Held        int
			Pinned      int
			Summary     string
		}
	}
	if err := json.Unmarshal(planOut.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Capacity) != 2 {
		t.Fatalf("plan capacity %+v", doc.Capacity)
	}
	for _, c := range doc.Capacity {
		if c.Held != held[c.Tier] || c.Pinned != pinned[c.Tier] || c.Summary == "" {
			t.Errorf("plan says %+v; the snapshots hold %d (%d pinned)", c, held[c.Tier], pinned[c.Tier])
		}
	}
	planOut.Reset()
	if _, _, err := Run(Options{Config: config.Default(), AsOf: asOf, Input: strings.NewReader(in), Plan: &planOut}); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(planOut.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	if _, ok := top["capacity"]; ok || len(top) != 3 {
		t.Errorf("the plan of a replay without caps has %d parts, capacity %s", len(top), top["capacity"])
	}

	shuffled := shuffleAccounts(t, evs)
	snaps2, changes2 := capRun(t, cfg, strings.Join(shuffled, "\n"))
	if snaps2 != snaps {
		t.Error("snapshots with caps differ after shuffling accounts")
	}
	if perAccount(changes2) != perAccount(changes) {
		t.Error("tier histories with caps differ after shuffling accounts")
	}
}

func tierRank(t string) int {
	for i, n := range config.TierNames {
		if n == t {
			return i
		}
	}
	return -1
}
