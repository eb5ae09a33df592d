package clickhouse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// TestTierCapacityAgreesWithPlan: over the final snapshots of a replay
// with capped tiers, tier_capacity shows each capped tier's cap and the
// places held and pinned that the replay's plan (what /v1/tiers and the
// status page show) gives, and counts the accounts left without a place.
func TestTierCapacityAgreesWithPlan(t *testing.T) {
	dsn, conn := migrated(t)
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 12
	cfg.Tiers.Named.MaxAccounts = 30
	g, err := gen.New(gen.Options{Accounts: 600, Events: 30_000, Seed: 14})
	if err != nil {
		t.Fatal(err)
	}
	var in, planOut bytes.Buffer
	if err := g.WriteJSONL(&in); err != nil {
		t.Fatal(err)
	}
	_, res, err := replay.Run(replay.Options{Config: cfg, Input: &in, Plan: &planOut})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Capacity []struct {
			Tier         string
			MaxAccounts  int `json:"max_accounts"`
			Held, Pinned int
		}
	}
	if err := json.Unmarshal(planOut.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var b sink.Batch
	without := map[string]int{}
	for _, id := range res.Engine.IDs() {
		sn := res.Engine.Snapshot(res.Engine.Account(id), res.AsOf)
		b.Snapshots = append(b.Snapshots, sn)
		if r := sn.TierReason; strings.HasPrefix(r, "capacity: rank ") {
			without[r[strings.LastIndex(r, ", ")+2:strings.Index(r, " holds ")]]++
		}
	}
	// An account that qualifies for major and waits for a first ranking
	// (as a stream's do before it caught up).
	waiting := b.Snapshots[0]
	waiting.AccountID, waiting.Tier = "waiting-1", scoring.MassMarket
	waiting.TierReason = "value 1,350,000.00 qualifies for major; major holds 12: waits for the capacity ranking"
	b.Snapshots = append(b.Snapshots, waiting)
	s := newSink(t, dsn, Options{TierCaps: cfg.MaxAccounts()})
	if err := s.Write(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(context.Background(), "SELECT tier, max_accounts, held, pinned, places_left, without_place, waiting FROM tier_capacity")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tier string
		var maxAccounts uint32
		var held, pinned, left, none, waiting uint64
		if err := rows.Scan(&tier, &maxAccounts, &held, &pinned, &left, &none, &waiting); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d/%d pinned %d left %d without %d waiting %d", tier, held, maxAccounts, pinned, left, none, waiting))
	}
	var want []string
	for _, c := range doc.Capacity {
		waits := 0
		if c.Tier == "major" {
			waits = 1
		}
		want = append(want, fmt.Sprintf("%s %d/%d pinned %d left %d without %d waiting %d", c.Tier, c.Held, c.MaxAccounts, c.Pinned, max(0, c.MaxAccounts-c.Held), without[c.Tier], waits))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tier_capacity:\n got %q\nwant %q (the plan)", got, want)
	}
	if len(want) != 2 || without["major"] == 0 {
		t.Fatalf("the workload should fill major and leave accounts without a place: %q, %v", want, without)
	}
}
