package scoring_test

// Identifiers in this file carry a cap prefix: other test files of this
// package are written concurrently and must not collide with them.

import (
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// capConfig is the default configuration with the given caps (major,
// named, non_named; 0 = none) and hysteresis.
func capConfig(major, named, nonNamed int, hysteresis float64) *config.Config {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = major
	cfg.Tiers.Named.MaxAccounts = named
	cfg.Tiers.NonNamed.MaxAccounts = nonNamed
	cfg.Hysteresis = hysteresis
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// capCand is a candidate with a value in whole units.
func capCand(id string, units int64, qualified, holds scoring.Tier) scoring.Candidate {
	return scoring.Candidate{ID: id, Value: money.FromUnits(units), Qualified: qualified, Tier: holds}
}

const (
	capMajor = scoring.Major
	capNamed = scoring.Named
	capNN    = scoring.NonNamed
	capMM    = scoring.MassMarket
)

// TestRank is the table of the ranking function: who gets a place, where
// the others fall, and the rank each one's reason names.
func TestRank(t *testing.T) {
	type want struct {
		id    string
		q     scoring.Tier // the qualified tier Place is asked with
		tier  scoring.Tier
		outOf scoring.Tier
		rank  int
	}
	tests := []struct {
		name   string
		cfg    *config.Config
		cands  []scoring.Candidate
		pinned map[scoring.Tier]int
		want   []want
		tiers  map[scoring.Tier]scoring.TierRanking
	}{{
		name: "the highest values keep the tier, the rest fall to the next",
		cfg:  capConfig(2, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 3_000_000, capMajor, capNamed), capCand("b", 2_000_000, capMajor, capNamed),
			capCand("c", 1_500_000, capMajor, capNamed), capCand("d", 1_200_000, capMajor, capNamed),
			capCand("e", 1_100_000, capMajor, capNamed),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capMajor, capMajor, 2},
			{"c", capMajor, capNamed, capMajor, 3}, {"d", capMajor, capNamed, capMajor, 4},
			{"e", capMajor, capNamed, capMajor, 0}, // beyond twice the cap: "rank over 4"
			{"unknown", capMajor, capNamed, capMajor, 0},
		},
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 2, Placed: 2, Pool: 5, Cut: money.FromUnits(2_000_000)}},
	}, {
		name: "a holder keeps its place until a newcomer is worth more than its value ÷ (1 − hysteresis)",
		cfg:  capConfig(1, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("holder", 1_000_000, capMajor, capMajor), capCand("newcomer", 1_111_111, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capMajor, capMajor, 1}, {"newcomer", capMajor, capNamed, capMajor, 2}},
		// The cut is the holder's value ÷ 0.9, rounded down to the cent.
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 1, Placed: 1, Pool: 2, Cut: 111_111_111}},
	}, {
		name: "a newcomer above the holder's value ÷ (1 − hysteresis) takes the place",
		cfg:  capConfig(1, 0, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("holder", 1_000_000, capMajor, capMajor), capCand("newcomer", 1_111_112, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capNamed, capMajor, 2}, {"newcomer", capMajor, capMajor, capMajor, 1}},
	}, {
		name: "a holder at exactly (1 − hysteresis) × the newcomer's value stays",
		cfg:  capConfig(1, 0, 0, 0.2),
		cands: []scoring.Candidate{
			capCand("holder", 800_000, capMajor, capMajor), capCand("newcomer", 1_000_000, capMajor, capNamed),
		},
		want: []want{{"holder", capMajor, capMajor, capMajor, 1}, {"newcomer", capMajor, capNamed, capMajor, 2}},
	}, {
		name: "without hysteresis equal values are ordered by account id",
		cfg:  capConfig(1, 0, 0, 0),
		cands: []scoring.Candidate{
			capCand("b", 1_000_000, capMajor, capMajor), capCand("a", 1_000_000, capMajor, capNamed),
		},
		want: []want{{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2}},
	}, {
		name: "those major has no place for compete for named's places",
		cfg:  capConfig(1, 2, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 5_000_000, capMajor, capNN), capCand("b", 4_000_000, capMajor, capNN),
			capCand("c", 3_000_000, capNamed, capNN), capCand("d", 2_000_000, capNamed, capNN),
			capCand("e", 1_000_000, capNamed, capNN), capCand("f", 900_000, capNamed, capNN),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2},
			{"c", capNamed, capNamed, capNamed, 2}, {"d", capNamed, capNN, capNamed, 3},
			{"e", capNamed, capNN, capNamed, 4}, {"f", capNamed, capNN, capNamed, 0},
		},
		tiers: map[scoring.Tier]scoring.TierRanking{
			capMajor: {Cap: 1, Placed: 1, Pool: 2, Cut: money.FromUnits(5_000_000)},
			capNamed: {Cap: 2, Placed: 2, Pool: 5, Cut: money.FromUnits(3_000_000)},
		},
	}, {
		name: "an account that holds major counts as a holder in named's pool",
		cfg:  capConfig(1, 1, 0, 0.1),
		cands: []scoring.Candidate{
			capCand("new-top", 5_000_000, capMajor, capNamed), capCand("old-major", 2_000_000, capMajor, capMajor),
			capCand("new-named", 2_100_000, capNamed, capNN),
		},
		want: []want{
			{"new-top", capMajor, capMajor, capMajor, 1}, {"old-major", capMajor, capNamed, capMajor, 2},
			{"new-named", capNamed, capNN, capNamed, 2},
		},
	}, {
		name:   "accounts pinned by tier_override take the first places",
		cfg:    capConfig(3, 0, 0, 0.1),
		pinned: map[scoring.Tier]int{capMajor: 2},
		cands:  []scoring.Candidate{capCand("a", 2_000_000, capMajor, capNamed), capCand("b", 1_500_000, capMajor, capNamed)},
		want:   []want{{"a", capMajor, capMajor, capMajor, 3}, {"b", capMajor, capNamed, capMajor, 4}},
		tiers:  map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 3, Pinned: 2, Placed: 1, Pool: 2, Cut: money.FromUnits(2_000_000)}},
	}, {
		name:   "more pinned accounts than places leave none",
		cfg:    capConfig(1, 0, 0, 0.1),
		pinned: map[scoring.Tier]int{capMajor: 2},
		cands:  []scoring.Candidate{capCand("a", 2_000_000, capMajor, capMajor)},
		want:   []want{{"a", capMajor, capNamed, capMajor, 0}},
		tiers:  map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 1, Pinned: 2, Pool: 1}},
	}, {
		name: "an uncapped tier between two capped ones stops the fall",
		cfg:  capConfig(1, 0, 1, 0.1),
		cands: []scoring.Candidate{
			capCand("a", 3_000_000, capMajor, capNamed), capCand("b", 2_000_000, capMajor, capNamed),
			capCand("c", 200_000, capNN, capMM), capCand("d", 100_000, capNN, capMM),
		},
		want: []want{
			{"a", capMajor, capMajor, capMajor, 1}, {"b", capMajor, capNamed, capMajor, 2},
			{"c", capNN, capNN, capNN, 1}, {"d", capNN, capMM, capNN, 2},
		},
	}, {
		name:  "places left free",
		cfg:   capConfig(5, 0, 0, 0.1),
		cands: []scoring.Candidate{capCand("a", 2_000_000, capMajor, capNamed)},
		want:  []want{{"a", capMajor, capMajor, capMajor, 1}},
		tiers: map[scoring.Tier]scoring.TierRanking{capMajor: {Cap: 5, Placed: 1, Pool: 1}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := scoring.NewParams(tt.cfg)
			c := &scoring.Candidates{List: tt.cands}
			for tier, n := range tt.pinned {
				c.Pinned[tier] = n
			}
			r := scoring.Rank(p, c)
			for _, w := range tt.want {
				pl, ok := r.Place(w.id, w.q)
				if got := (scoring.Placement{Tier: w.tier, OutOf: w.outOf, Rank: w.rank}); !ok || pl != got {
					t.Errorf("Place(%s, %v) = %+v, %v; want %+v", w.id, w.q, pl, ok, got)
				}
			}
			for tier, w := range tt.tiers {
				if got := r.Tier(tier); got != w {
					t.Errorf("Tier(%v) = %+v, want %+v", tier, got, w)
				}
			}
			// The ranking does not depend on the order candidates come in,
			// or on how they are split into partitions.
			rev := &scoring.Candidates{Pinned: c.Pinned}
			split := &scoring.Candidates{}
			for i := len(tt.cands) - 1; i >= 0; i-- {
				if i%2 == 0 {
					rev.List = append(rev.List, tt.cands[i])
				} else {
					split.List = append(split.List, tt.cands[i])
				}
			}
			r2 := scoring.Rank(p, rev, split)
			for _, w := range tt.want {
				a, _ := r.Place(w.id, w.q)
				b, _ := r2.Place(w.id, w.q)
				if a != b {
					t.Errorf("Place(%s) in another order: %+v, want %+v", w.id, b, a)
				}
			}
		})
	}
	// No ranking concerns an account whose qualified tier has no cap.
	r := scoring.Rank(scoring.NewParams(capConfig(1, 0, 0, 0.1)), &scoring.Candidates{})
	if pl, ok := r.Place("x", capNamed); ok {
		t.Errorf("Place of an uncapped tier = %+v, true", pl)
	}
	if pl, ok := scoring.Rank(scoring.NewParams(config.Default())).Place("x", capMajor); ok {
		t.Errorf("Place without caps = %+v, true", pl)
	}
}
