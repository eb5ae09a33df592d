package httpapi

import (
	"net/url"
	"strconv"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/plan"
)

// Rows shown per list in the status page's planning panels; the API gives
// more.
const statusList = 10

// accountPath is the account page of id. The ids "." and ".." cannot be a
// path segment (the router cleans them away), so they go by query.
func accountPath(id string) string {
	if id == "." || id == ".." {
		return "/accounts?id=" + url.QueryEscape(id)
	}
	return "/accounts/" + url.PathEscape(id)
}

type goalPanel struct {
	Tier, Summary, Detail         string
	Accounts, Met, Behind         int
	WalletUnknown                 int
	MetPct, BehindPct, UnknownPct string
	FurthestBehind                []behindRow
}

type behindRow struct {
	AccountID, Name, Owner, Actual, Attainment, ToTarget string
}

type coveragePanel struct {
	Tiers           []coverageRow
	Overloaded      []repRow
	OverloadedTotal int
	Watch, Unowned  []accountRow
	WatchTotal      int
	UnownedTotal    int
}

type coverageRow struct {
	plan.TierCoverage
	CapacityWords string
}

type repRow struct {
	OwnerID, Load, Summary string
	Accounts               int
	List                   []accountRow
}

type accountRow struct {
	AccountID, Name, Tier, CoverageModel, Owner, Current, Potential string
}

func pct(n, total int) string {
	if total == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 2, 64) + "%"
}

func goalPanels(g plan.Goals) []goalPanel {
	out := make([]goalPanel, 0, len(g.Tiers))
	for _, t := range g.Tiers {
		p := goalPanel{
			Tier: t.Tier, Summary: t.Summary, Detail: t.Detail,
			Accounts: t.Accounts, Met: t.Met, Behind: t.Behind, WalletUnknown: t.WalletUnknown,
			MetPct: pct(t.Met, t.Accounts), BehindPct: pct(t.Behind, t.Accounts), UnknownPct: pct(t.WalletUnknown, t.Accounts),
		}
		for _, b := range t.FurthestBehind {
			actual := plan.Percent(b.Actual.Value) + " of wallet"
			if !b.Actual.Share {
				actual = plan.Money(units(b.Actual.Value))
			}
			p.FurthestBehind = append(p.FurthestBehind, behindRow{
				AccountID: b.AccountID, Name: b.Name, Owner: b.OwnerID, Actual: actual,
				Attainment: plan.Percent(float64(b.Attainment)), ToTarget: plan.Money(money.Cents(b.ToTarget)),
			})
		}
		out = append(out, p)
	}
	return out
}

func accountRows(refs []plan.AccountRef, n int) []accountRow {
	out := make([]accountRow, 0, min(n, len(refs)))
	for _, r := range refs[:min(n, len(refs))] {
		out = append(out, accountRow{
			AccountID: r.AccountID, Name: r.Name, Tier: r.Tier, CoverageModel: r.CoverageModel, Owner: r.OwnerID,
			Current: plan.Money(money.Cents(r.CurrentValue)), Potential: plan.Money(money.Cents(r.PotentialValue)),
		})
	}
	return out
}

func coverageOf(c plan.Coverage) coveragePanel {
	p := coveragePanel{
		OverloadedTotal: c.Overloaded.Total, WatchTotal: c.WatchList.Total, UnownedTotal: c.Unowned.Total,
		Watch: accountRows(c.WatchList.Accounts, statusList), Unowned: accountRows(c.Unowned.Accounts, statusList),
	}
	for _, t := range c.Tiers {
		capy := config.Unlimited
		if t.Capacity != nil {
			capy = config.Capacity(*t.Capacity)
		}
		p.Tiers = append(p.Tiers, coverageRow{TierCoverage: t, CapacityWords: plan.CapacityWords(capy)})
	}
	for _, r := range c.Overloaded.Reps[:min(statusList, len(c.Overloaded.Reps))] {
		p.Overloaded = append(p.Overloaded, repRow{
			OwnerID: r.OwnerID, Load: strconv.FormatFloat(r.Load, 'f', -1, 64), Summary: r.Summary,
			Accounts: r.Accounts, List: accountRows(r.AccountsList, plan.RepAccounts),
		})
	}
	return p
}
