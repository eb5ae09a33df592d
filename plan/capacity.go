package plan

import (
	"fmt"

	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// CapacityTier is how one capped tier (max_accounts) stands after a
// capacity ranking: the places, who holds them, how many accounts want
// one, and what a newcomer must be worth to take one.
type CapacityTier struct {
	Tier        string `json:"tier"`
	Label       string `json:"label"`
	MaxAccounts int    `json:"max_accounts"`
	// Ranked is false until a ranking ran; the counts are then zero.
	Ranked bool `json:"ranked"`
	Held   int  `json:"held"`   // places taken, pinned and ranked
	Pinned int  `json:"pinned"` // by tier_override
	// Qualified counts the accounts that want a place: the pinned ones and
	// those ranked for it (qualifying for the tier, and not taken by a
	// higher capped tier).
	Qualified int `json:"qualified"`
	// Cut is the value a newcomer must exceed to take a place, or null
	// while places are free.
	Cut     *Amount `json:"cut"`
	Summary string  `json:"summary"`
}

// Capacity summarises r, the latest ranking (nil before the first), for
// every capped tier of p, top tier first; nil when no tier is capped.
func Capacity(p *scoring.Params, r *scoring.Ranking, currency string) []CapacityTier {
	var out []CapacityTier
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		if !p.Capped(t) {
			continue
		}
		c := CapacityTier{Tier: t.String(), Label: Label(t), MaxAccounts: p.MaxAccounts(t)}
		if r != nil {
			tr := r.Tier(t)
			c.Ranked, c.Held, c.Pinned, c.Qualified = true, tr.Pinned+tr.Placed, tr.Pinned, tr.Pinned+tr.Pool
			if tr.Cut > 0 {
				a := Amount(tr.Cut)
				c.Cut = &a
			}
		}
		c.Summary = capacitySentence(&c, currency)
		out = append(out, c)
	}
	return out
}

// capacitySentence: "Major: 50 of 50 places held, 57 accounts qualify; a
// newcomer needs a value above 1,234,567.89 USD".
func capacitySentence(c *CapacityTier, currency string) string {
	places := "places"
	if c.MaxAccounts == 1 {
		places = "place"
	}
	head := fmt.Sprintf("%s: ", c.Label)
	if !c.Ranked {
		return head + fmt.Sprintf("%d %s, not ranked yet", c.MaxAccounts, places)
	}
	s := head + fmt.Sprintf("%d of %d %s held", c.Held, c.MaxAccounts, places)
	if c.Pinned > 0 {
		s += fmt.Sprintf(" (%d pinned by tier_override)", c.Pinned)
	}
	if c.Qualified == 1 {
		s += ", 1 account qualifies"
	} else {
		s += fmt.Sprintf(", %d accounts qualify", c.Qualified)
	}
	switch {
	case c.Qualified <= c.Held:
		return s + "; every one has a place"
	case c.Cut == nil:
		return s + "; tier_override pins every place"
	}
	return s + "; a newcomer needs a value above " + Money(money.Cents(*c.Cut)) + " " + currency
}
