package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/view"
)

var (
	accountTmpl = page("account.html")
	searchTmpl  = page("search.html")
)

// searchResults is how many accounts a search lists.
const searchResults = 50

type accountPage struct {
	Title, Currency, Query string
	Found                  bool
	Partitions             string
	AccountID, Name, Tier  string
	TierLabel, AsOf        string
	Partition, Version     int
	Sentences              []string
	Figures                []figureRow
	Chart                  chart
	Changes                []changeRow
	Alerts                 []alertRow
}

type figureRow struct{ Label, Value string }

type alertRow struct {
	AlertID, Status, OpenedAt, ResolvedAt, Tier, Owner, Potential string
	Open                                                          bool
}

type searchPage struct {
	Title, Query string
	Results      []accountRow
	More         bool
}

// accountHTML is the account page: the figures and why the account sits
// where it does, its value over time, tier changes and alerts.
func (s *server) accountHTML(w http.ResponseWriter, r *http.Request) {
	s.accountPage(w, r.PathValue("id"))
}

func (s *server) accountPage(w http.ResponseWriter, id string) {
	d, ok := s.Store.Account(id)
	p := accountPage{Title: s.Title, Currency: s.Params.Config().Currency, AccountID: id, Found: ok,
		Partitions: joinInts(s.Store.Partitions())}
	if !ok {
		s.render(w, http.StatusNotFound, accountTmpl, pageCSP, p)
		return
	}
	sn := &d.Snapshot
	p.Name, p.Tier, p.TierLabel = sn.Name, sn.Tier.String(), plan.Label(sn.Tier)
	p.AsOf, p.Partition, p.Version = scoring.FormatTime(sn.AsOf), d.Partition, int(sn.Version)
	ex := explain(&d, s.Params)
	p.Sentences = sentences(&d, &ex, s.Params.Config())
	p.Figures = figureRows(&d, &ex)
	p.Chart = valueChart(chartPoints(&d))
	for _, c := range d.Changes {
		p.Changes = append(p.Changes, changeRow{At: scoring.FormatTime(c.ChangedAt), AccountID: c.AccountID,
			From: c.From.String(), To: c.To.String(), Reason: c.Reason, Up: c.To > c.From})
	}
	for _, a := range d.Alerts {
		row := alertRow{AlertID: a.AlertID, Status: a.Status, OpenedAt: scoring.FormatTime(a.OpenedAt), Tier: a.Tier.String(),
			Owner: a.OwnerID, Potential: plan.Money(a.Potential), Open: a.Status == scoring.StatusOpen}
		if a.ResolvedAt != 0 {
			row.ResolvedAt = scoring.FormatTime(a.ResolvedAt)
		}
		p.Alerts = append(p.Alerts, row)
	}
	s.render(w, http.StatusOK, accountTmpl, pageCSP, p)
}

// search finds accounts by id or name; an exact id goes straight to its
// page. ?id= shows the page of an id that cannot be a path segment.
func (s *server) search(w http.ResponseWriter, r *http.Request) {
	if id := r.URL.Query().Get("id"); id != "" {
		s.accountPage(w, id)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	found := s.Store.Search(q, searchResults+1)
	if len(found) > 0 && found[0].AccountID == q {
		http.Redirect(w, r, accountPath(q), http.StatusSeeOther)
		return
	}
	p := searchPage{Title: s.Title, Query: q, More: len(found) > searchResults}
	refs := make([]plan.AccountRef, 0, len(found))
	for i := range found[:min(len(found), searchResults)] {
		sn := &found[i]
		refs = append(refs, plan.AccountRef{AccountID: sn.AccountID, Name: sn.Name, Tier: sn.Tier.String(), OwnerID: sn.OwnerID,
			CoverageModel: sn.CoverageModel, CurrentValue: plan.Amount(sn.CurrentValue), PotentialValue: plan.Amount(sn.PotentialValue)})
	}
	p.Results = accountRows(refs, searchResults)
	s.render(w, http.StatusOK, searchTmpl, pageCSP, p)
}

// chartPoints merges the account's value history with the values its tier
// changes recorded, which reach further back than the history when the
// instance took the partition late (after a restart, or a backfill that
// flushed a year in a few writes). At the same moment the history wins.
func chartPoints(d *view.Detail) []view.Point {
	ps := append([]view.Point(nil), d.History...)
	seen := make(map[int64]bool, len(ps))
	for _, p := range ps {
		seen[p.At] = true
	}
	for _, c := range d.Changes {
		if !seen[c.ChangedAt] {
			seen[c.ChangedAt] = true
			ps = append(ps, view.Point{At: c.ChangedAt, Current: float32(c.Current.Float()), Potential: float32(c.Potential.Float())})
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].At < ps[j].At })
	return ps
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ", ")
}

// sentences says the explanation of /v1/accounts/{id} in words.
func sentences(d *view.Detail, ex *explanation, cfg *config.Config) []string {
	sn := &d.Snapshot
	m := func(a amount) string { return plan.Money(money.Cents(a)) }
	cur := cfg.Currency
	f := &ex.Figures
	out := []string{fmt.Sprintf("Value %s %s = current value %s + potential value %s.", m(f.Value), cur, m(f.CurrentValue), m(f.PotentialValue))}
	if f.Wallet != nil {
		out = append(out, fmt.Sprintf("Potential is the larger of the weighted pipeline (%s) and the wallet headroom (%s = wallet %s − current value).",
			m(f.WeightedPipeline), m(f.WalletHeadroom), m(*f.Wallet)))
	} else {
		out = append(out, fmt.Sprintf("Potential is the weighted pipeline (%s over %d open opportunities); no wallet is known, so there is no headroom to add.",
			m(f.WeightedPipeline), ex.OpenOpportunities))
	}
	if ex.Overridden {
		out = append(out, fmt.Sprintf("%s because tier_override pins it there.", plan.Label(sn.Tier)))
	} else if ex.TierReason != "" {
		out = append(out, fmt.Sprintf("%s since its last tier change: %s.", plan.Label(sn.Tier), ex.TierReason))
	}
	held := false // below the tier it qualifies for: a capped tier has no place for it
	if q := scoring.ParseTier(ex.QualifiedTier); q > sn.Tier && !ex.Overridden {
		held = true
		out = append(out, fmt.Sprintf("Its value qualifies for %s, but %s holds at most %d accounts and has not given it a place (see the reason).",
			plan.Label(q), plan.Label(q), cfg.Tier(q.String()).MaxAccounts))
	}
	if nt := ex.NextTier; nt != nil && !ex.Overridden && !held {
		out = append(out, fmt.Sprintf("It reaches %s at a value of %s: %s more.", plan.Label(scoring.ParseTier(nt.Tier)), m(nt.Threshold), m(nt.Gap)))
	}
	if ex.DemotionBelow != nil && !ex.Overridden {
		out = append(out, fmt.Sprintf("It stays %s while its value is at least %s (the threshold less %s hysteresis).",
			plan.Label(sn.Tier), m(*ex.DemotionBelow), plan.Percent(float64(ex.Hysteresis))))
	}
	q := &ex.Quadrant
	out = append(out, fmt.Sprintf("Current value is %s (%s %s), potential %s (%s %s): %s, so %s.",
		highLow(q.CurrentIsHigh), geLt(q.CurrentIsHigh), m(q.CurrentHigh), highLow(q.PotentialIsHigh), geLt(q.PotentialIsHigh), m(q.PotentialHigh),
		quadrantWords[q.Name][0], quadrantWords[q.Name][1]))
	out = append(out, goalWords(sn, cur))
	owner := "no owner"
	if sn.OwnerID != "" {
		owner = "owner " + sn.OwnerID
	}
	capWords := "no capacity configured"
	if capy, ok := cfg.Capacity(sn.CoverageModel); ok {
		capWords = plan.CapacityWords(capy)
	}
	out = append(out, fmt.Sprintf("Coverage %s (%s), %s.", sn.CoverageModel, capWords, owner))
	ng := &ex.Neglect
	touch := fmt.Sprintf("Last touched %s, %d days before %s; %s accounts count as neglected after %d days without a touch when their potential is at least %s.",
		ng.LastTouchAt, ng.DaysSinceTouch, scoring.FormatTime(sn.AsOf), plan.Label(sn.Tier), ng.AfterDays, m(q.PotentialHigh))
	switch {
	case d.Alert != nil:
		touch += " Neglected: an alert is open since " + scoring.FormatTime(d.Alert.OpenedAt) + "."
	case ng.Neglected:
		touch += " Neglected."
	default:
		touch += " Not neglected."
	}
	return append(out, touch)
}

func highLow(high bool) string {
	if high {
		return "high"
	}
	return "low"
}

func geLt(high bool) string {
	if high {
		return "≥"
	}
	return "<"
}

func goalWords(sn *scoring.Snapshot, currency string) string {
	status := strings.ReplaceAll(sn.GoalStatus, "_", " ")
	if sn.GoalMetric == config.ShareOfWallet {
		if !sn.HasGoalActual {
			return fmt.Sprintf("Goal: %s of its wallet; no wallet is known, so the share cannot be judged (wallet unknown).", plan.Percent(sn.GoalTarget))
		}
		return fmt.Sprintf("Goal: %s of its wallet; it has %s of a %s %s wallet, %s of target: %s.",
			plan.Percent(sn.GoalTarget), plan.Percent(sn.GoalActual), plan.Money(sn.Wallet), currency, plan.Percent(sn.GoalAttainment), status)
	}
	return fmt.Sprintf("Goal: %s %s of sales; current value %s is %s of target: %s.",
		plan.Money(units(sn.GoalTarget)), currency, plan.Money(sn.CurrentValue), plan.Percent(sn.GoalAttainment), status)
}

func figureRows(d *view.Detail, ex *explanation) []figureRow {
	sn := &d.Snapshot
	m := func(a amount) string { return money.Cents(a).Grouped() }
	rows := []figureRow{
		{"Current value", m(ex.Figures.CurrentValue)},
		{"Potential value", m(ex.Figures.PotentialValue)},
		{"Value (current + potential)", m(ex.Figures.Value)},
		{"Weighted pipeline", m(ex.Figures.WeightedPipeline)},
		{"Wallet", "unknown"},
		{"Wallet headroom", m(ex.Figures.WalletHeadroom)},
		{"Share of wallet", "unknown"},
		{"Open opportunities", strconv.Itoa(ex.OpenOpportunities)},
		{"Quadrant", quadrantWords[sn.Quadrant][0]},
		{"Goal", strings.ReplaceAll(sn.GoalMetric, "_", " ") + ": " + strings.ReplaceAll(sn.GoalStatus, "_", " ")},
		{"Coverage", sn.CoverageModel},
		{"Owner", sn.OwnerID},
		{"Last touch", scoring.FormatTime(sn.LastTouchAt)},
	}
	if ex.Figures.Wallet != nil {
		rows[4].Value = m(*ex.Figures.Wallet)
	}
	if ex.Figures.ShareOfWallet != nil {
		rows[6].Value = plan.Percent(float64(*ex.Figures.ShareOfWallet))
	}
	return rows
}
