package scoring_test

import (
	"bytes"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/scoring"
)

// BenchmarkRankingPass measures what a streaming partition does at every
// re-evaluation and whenever another partition's candidates arrive, in
// the steady state (the places are taken): its candidates, the ranking of
// its own and seven other partitions' candidates, and applying it. One
// op is one such pass over a partition of 20,000 accounts, with major
// capped at 200 and named at 500.
func BenchmarkRankingPass(b *testing.B) {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 200
	cfg.Tiers.Named.MaxAccounts = 500
	g, err := gen.New(gen.Options{Accounts: 20_000, Events: 200_000, Seed: 42})
	if err != nil {
		b.Fatal(err)
	}
	var in bytes.Buffer
	if err := g.WriteJSONL(&in); err != nil {
		b.Fatal(err)
	}
	_, res, err := replay.Run(replay.Options{Config: cfg, Input: &in})
	if err != nil {
		b.Fatal(err)
	}
	eng, p := res.Engine, res.Engine.Params()
	own := eng.Candidates(res.AsOf)
	// Seven more partitions like this one, under other ids.
	sets := []*scoring.Candidates{own}
	for k := range 7 {
		c := &scoring.Candidates{Pinned: own.Pinned, Pool: own.Pool}
		for _, x := range own.List {
			x.ID = string(rune('a'+k)) + x.ID
			c.List = append(c.List, x)
		}
		sets = append(sets, c)
	}
	var out scoring.Output
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sets[0] = eng.Candidates(res.AsOf)
		out.Reset()
		eng.ApplyRanking(scoring.Rank(p, sets...), res.AsOf, &out, nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(len(own.List)), "candidates/partition")
}
