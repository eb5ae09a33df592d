package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

// The sentences below are what the status page shows; they are built here
// so the JSON summaries carry the same words.

var labels = map[scoring.Tier]string{
	scoring.Major: "Major", scoring.Named: "Named", scoring.NonNamed: "Non-named", scoring.MassMarket: "Mass-market",
}

// Label is a tier's name as a sales leader writes it.
func Label(t scoring.Tier) string {
	if l, ok := labels[t]; ok {
		return l
	}
	return t.String()
}

// Percent writes a fraction as a percentage with at most one decimal:
// 0.5 → "50%", 0.3333 → "33.3%".
func Percent(f float64) string {
	s := strconv.FormatFloat(f*100, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}

// Money writes an amount grouped, without ".00" when whole: 50,000 or
// 1,234.50.
func Money(c money.Cents) string {
	return strings.TrimSuffix(c.Grouped(), ".00")
}

func bucketLabel(b int) string {
	if b == len(AttainmentBounds) {
		return "met (" + Percent(AttainmentBounds[b-1]) + " or more)"
	}
	if b == 0 {
		return "under " + Percent(AttainmentBounds[0])
	}
	return Percent(AttainmentBounds[b-1]) + "–" + Percent(AttainmentBounds[b])
}

func metricWords(metric string) string { return strings.ReplaceAll(metric, "_", " ") }

// goalSentence: "Major: share of wallet, target 50%: 12 of 53 met".
func goalSentence(g *TierGoal, currency string) string {
	target := Percent(g.GoalTarget.Value)
	if !g.GoalTarget.Share {
		target = Money(units(g.GoalTarget.Value)) + " " + currency
	}
	head := fmt.Sprintf("%s: %s, target %s: ", g.Label, metricWords(g.GoalMetric), target)
	if g.Accounts == 0 {
		return head + "no accounts"
	}
	return head + fmt.Sprintf("%d of %d met", g.Met, g.Accounts)
}

// goalDetail says the rest of a tier's goal figures in words: "30
// behind, 11 without a known wallet; median attainment 64% of target".
func goalDetail(g *TierGoal, currency string) string {
	if g.Accounts == 0 {
		return ""
	}
	parts := []string{fmt.Sprintf("%d behind", g.Behind)}
	if g.WalletUnknown > 0 {
		parts = append(parts, fmt.Sprintf("%d without a known wallet", g.WalletUnknown))
	}
	s := strings.Join(parts, ", ")
	if g.ActualTotal != nil {
		s += fmt.Sprintf("; sold %s %s, against %s if every account met its target",
			Money(money.Cents(*g.ActualTotal)), currency, Money(money.Cents(*g.TargetTotal)))
	}
	if g.MedianAttainment != nil {
		s += "; median attainment " + Percent(float64(*g.MedianAttainment)) + " of target"
	}
	return s
}

// CapacityWords: "1 account per rep", "5 accounts per rep", "a team of 4
// reps per account", "no rep of their own".
func CapacityWords(c config.Capacity) string {
	switch {
	case c.IsUnlimited():
		return "no rep of their own"
	case c < 1:
		return "a team of " + config.Capacity(1/float64(c)).String() + " reps per account"
	case c == 1:
		return "1 account per rep"
	}
	return c.String() + " accounts per rep"
}

// coverageSentence: "Major, 1:1 (1 account per rep): 53 accounts need 53
// reps; 40 reps hold them, 13 short; 5 without an owner".
func coverageSentence(t *TierCoverage) string {
	capy := config.Unlimited
	if t.Capacity != nil {
		capy = config.Capacity(*t.Capacity)
	}
	s := fmt.Sprintf("%s, %s (%s): ", t.Label, t.CoverageModel, CapacityWords(capy))
	switch {
	case t.Accounts == 0:
		return s + "no accounts"
	case t.Capacity == nil:
		return s + fmt.Sprintf("%s %s no dedicated reps", count(t.Accounts, "account"), verb(t.Accounts, "need"))
	}
	s += fmt.Sprintf("%s %s %s; %s %s them", count(t.Accounts, "account"), verb(t.Accounts, "need"),
		count(t.RepsNeeded, "rep"), count(t.Owners, "rep"), verb(t.Owners, "hold"))
	if t.Shortfall > 0 {
		s += fmt.Sprintf(", %d short", t.Shortfall)
	}
	if t.Unowned > 0 {
		s += fmt.Sprintf("; %d without an owner", t.Unowned)
	}
	return s
}

// repSentence: "rep-7: load 1.4 (1 major, 2 named), 40% over capacity".
func repSentence(r *RepLoad) string {
	var parts []string
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i].String()
		if n := r.ByTier[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(t, "_", " ")))
		}
	}
	return fmt.Sprintf("%s: load %s (%s), %s over capacity", r.OwnerID,
		strconv.FormatFloat(r.Load, 'f', -1, 64), strings.Join(parts, ", "), Percent(r.Load-1))
}

// verb agrees a present-tense verb with a count.
func verb(n int, v string) string {
	if n == 1 {
		return v + "s"
	}
	return v
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
