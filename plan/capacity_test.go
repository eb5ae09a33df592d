package plan

import (
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

func TestCapacitySentences(t *testing.T) {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 2
	cfg.Tiers.Named.MaxAccounts = 1
	p := scoring.NewParams(cfg)
	cand := func(id string, units int64) scoring.Candidate {
		return scoring.Candidate{ID: id, Value: money.FromUnits(units), Qualified: scoring.Major, Tier: scoring.Named}
	}
	tests := []struct {
		name   string
		r      *scoring.Ranking
		major  string
		named  string
		majCut bool
	}{
		{"not ranked", nil, "Major: 2 places, not ranked yet", "Named: 1 place, not ranked yet", false},
		{"full", scoring.Rank(p, &scoring.Candidates{List: []scoring.Candidate{cand("a", 3_000_000), cand("b", 2_000_000), cand("c", 1_500_000), cand("d", 1_200_000)}}),
			"Major: 2 of 2 places held, 4 accounts qualify; a newcomer needs a value above 2,000,000 USD",
			// c and d hold named already: c counts as 1,500,000 ÷ 0.9.
			"Named: 1 of 1 place held, 2 accounts qualify; a newcomer needs a value above 1,666,666.66 USD", true},
		{"room", scoring.Rank(p, &scoring.Candidates{List: []scoring.Candidate{cand("a", 3_000_000)}}),
			"Major: 1 of 2 places held, 1 account qualifies; every one has a place", "Named: 0 of 1 place held, 0 accounts qualify; every one has a place", false},
		{"pinned", scoring.Rank(p, &scoring.Candidates{Pinned: [5]int{scoring.Major: 2}, List: []scoring.Candidate{cand("a", 3_000_000)}}),
			"Major: 2 of 2 places held (2 pinned by tier_override), 3 accounts qualify; tier_override pins every place",
			"Named: 1 of 1 place held, 1 account qualifies; every one has a place", false},
	}
	for _, tt := range tests {
		got := Capacity(p, tt.r, "USD")
		if len(got) != 2 || got[0].Summary != tt.major || got[1].Summary != tt.named || (got[0].Cut != nil) != tt.majCut {
			t.Errorf("%s: %+v", tt.name, got)
		}
	}
	if got := Capacity(scoring.NewParams(config.Default()), nil, "USD"); got != nil {
		t.Errorf("without caps: %+v", got)
	}
}
