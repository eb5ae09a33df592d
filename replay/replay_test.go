package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
)

// events makes a small random but valid event stream, in time order per
// account, covering every event type.
func events(seed uint64, accounts, n int) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	stages := []string{"prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"}
	var out []string
	for i := 0; i < n; i++ {
		acc := fmt.Sprintf("acc-%03d", r.IntN(accounts))
		at := start.Add(time.Duration(i) * 37 * time.Minute).Format(time.RFC3339)
		head := fmt.Sprintf(`"event_id":"ev-%d","account_id":%q,"occurred_at":%q`, i, acc, at)
		var body string
		switch r.IntN(6) {
		case 0, 1:
			body = fmt.Sprintf(`"type":"order","order_id":"o%d","amount":%d.%02d,"opportunity_id":"op-%d"`, i, r.IntN(400000)-20000, r.IntN(100), r.IntN(5))
		case 2:
			body = fmt.Sprintf(`"type":"opportunity","opportunity_id":"op-%d","stage":%q,"amount":%d`, r.IntN(5), stages[r.IntN(len(stages))], r.IntN(2000000))
		case 3:
			body = `"type":"activity","kind":"call","owner_id":"rep-1"`
		case 4:
			body = fmt.Sprintf(`"type":"account","owner_id":"rep-%d","wallet":%d`, r.IntN(4), r.IntN(5000000))
		case 5:
			body = fmt.Sprintf(`"type":"account","tier_override":%s`, []string{"null", `"major"`, `"named"`}[r.IntN(3)])
		}
		out = append(out, "{"+head+","+body+"}")
	}
	return out
}

func run(t *testing.T, input string, asOf time.Time) (snap, changes, alerts, errs string) {
	t.Helper()
	var s, c, a, e bytes.Buffer
	_, _, err := Run(Options{Config: config.Default(), AsOf: asOf, Input: strings.NewReader(input), Output: &s, Changes: &c, Alerts: &a, Errors: &e})
	if err != nil {
		t.Fatal(err)
	}
	return s.String(), c.String(), a.String(), e.String()
}

var asOf = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)

func TestDeterministicOutput(t *testing.T) {
	in := strings.Join(events(7, 40, 3000), "\n") + "\n"
	s1, c1, a1, _ := run(t, in, asOf)
	s2, c2, a2, _ := run(t, in, asOf)
	if s1 != s2 || c1 != c2 || a1 != a2 {
		t.Fatal("the same input gave different output")
	}
	if strings.Count(s1, "\n") != 40 || c1 == "" {
		t.Fatalf("expected 40 snapshots and some tier changes, got %d snapshots", strings.Count(s1, "\n"))
	}
}

// Interleaving the accounts differently while keeping each account's own
// order must not change any snapshot or any account's tier history.
func TestShufflingAccountsChangesNoSnapshot(t *testing.T) {
	evs := events(11, 30, 3000)
	shuffled := shuffleAccounts(t, evs)
	s1, c1, a1, _ := run(t, strings.Join(evs, "\n"), asOf)
	s2, c2, a2, _ := run(t, strings.Join(shuffled, "\n"), asOf)
	if s1 != s2 {
		t.Fatal("snapshots differ after shuffling accounts")
	}
	if perAccount(c1) != perAccount(c2) || perAccount(a1) != perAccount(a2) {
		t.Fatal("per-account tier changes or alerts differ after shuffling accounts")
	}
}

// shuffleAccounts interleaves the accounts of evs differently, keeping
// each account's own order.
func shuffleAccounts(t *testing.T, evs []string) []string {
	t.Helper()
	byAcc := map[string][]string{}
	var order []string
	for _, e := range evs {
		acc := e[strings.Index(e, `"account_id":"`)+14:][:7]
		if byAcc[acc] == nil {
			order = append(order, acc)
		}
		byAcc[acc] = append(byAcc[acc], e)
	}
	r := rand.New(rand.NewPCG(3, 3))
	var shuffled []string
	for len(byAcc) > 0 {
		acc := order[r.IntN(len(order))]
		q := byAcc[acc]
		if len(q) == 0 {
			continue
		}
		shuffled = append(shuffled, q[0])
		if byAcc[acc] = q[1:]; len(byAcc[acc]) == 0 {
			delete(byAcc, acc)
			for i, o := range order {
				if o == acc {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
		}
	}
	if strings.Join(shuffled, "") == strings.Join(evs, "") {
		t.Fatal("shuffle did not change the order")
	}
	return shuffled
}

// perAccount sorts lines stably by account so histories can be compared
// regardless of interleaving.
func perAccount(jsonl string) string {
	lines := strings.Split(strings.TrimSpace(jsonl), "\n")
	groups := map[string][]string{}
	var keys []string
	for _, l := range lines {
		i := strings.Index(l, `"account_id":"`)
		if i < 0 {
			continue
		}
		acc := l[i+14:][:7]
		if groups[acc] == nil {
			keys = append(keys, acc)
		}
		groups[acc] = append(groups[acc], l)
	}
	var b strings.Builder
	for _, k := range sortStrings(keys) {
		b.WriteString(strings.Join(groups[k], "\n"))
	}
	return b.String()
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func TestBadLinesReportedAndSkipped(t *testing.T) {
	good := events(5, 3, 10)
	huge := `{"event_id":"big","type":"activity","account_id":"x","occurred_at":"2025-01-01T00:00:00Z","kind":"` + strings.Repeat("a", 1<<20) + `"}`
	lines := []string{good[0], "not json", good[1], "", `{"event_id":"b","type":"opportunity","account_id":"x","occurred_at":"2025-01-01T00:00:00Z","opportunity_id":"o-9","stage":"proposal","amount":5,"probability":1.4}`, huge, good[2], good[2]}
	var errs bytes.Buffer
	sum, _, err := Run(Options{Input: strings.NewReader(strings.Join(lines, "\n")), Errors: &errs})
	if err != nil {
		t.Fatal(err)
	}
	e := errs.String()
	for _, want := range []string{"line 2: not a JSON object", `line 5: opportunity "o-9": probability 1.4 is outside 0..1`, "line 6: event is larger than"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if sum.Read != 7 || sum.Applied != 3 || sum.Duplicates != 1 || sum.RejectedTotal() != 3 || sum.Rejected["too_large"] != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if s := sum.String(); !strings.Contains(s, "rejected 3 (invalid_field 1, not_json 1, too_large 1)") {
		t.Fatalf("summary line = %s", s)
	}
}

func TestAsOfDefaultsToLatestEvent(t *testing.T) {
	in := strings.Join(events(1, 5, 50), "\n")
	sum, _, err := Run(Options{Input: strings.NewReader(in)})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(49 * 37 * time.Minute)
	if !sum.AsOf.Equal(want) {
		t.Fatalf("as_of = %s, want %s", sum.AsOf, want)
	}
	s, _, _, _ := run(t, in, time.Time{})
	if !strings.Contains(s, `"as_of":"`+want.Format("2006-01-02T15:04:05Z")+`"`) {
		t.Fatalf("snapshots not at the latest event time:\n%s", s)
	}
}

// A line far in the future used to be applied and to become the default
// as-of, evaluating every account in 2199. Replay now applies the
// streaming rule relative to the time it runs (Options.Now), and the
// default as-of comes from applied events only, whatever else was
// rejected.
func TestFutureLinesAreRejectedAndDoNotMoveAsOf(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cfg := config.Default()
	cfg.Limits.MaxOpenOpportunities = 1
	line := func(id, at, body string) string {
		return fmt.Sprintf(`{"event_id":%q,"account_id":"acc-1","occurred_at":%q,%s}`, id, at, body)
	}
	in := strings.Join([]string{
		line("e1", "2026-05-01T00:00:00Z", `"type":"order","order_id":"o1","amount":100`),
		line("e2", "2199-12-31T00:00:00Z", `"type":"order","order_id":"o2","amount":100`),
		line("e3", now.Add(23*time.Hour).Format(time.RFC3339), `"type":"opportunity","opportunity_id":"p1","stage":"proposal","amount":5`),
		line("e4", now.Add(25*time.Hour).Format(time.RFC3339), `"type":"activity","kind":"call"`),
		// Over limits.max_open_opportunities, and later than anything applied.
		line("e5", now.Add(24*time.Hour).Format(time.RFC3339), `"type":"opportunity","opportunity_id":"p2","stage":"proposal","amount":5`),
	}, "\n")
	var snaps, errs bytes.Buffer
	sum, _, err := Run(Options{Config: cfg, Input: strings.NewReader(in), Output: &snaps, Errors: &errs, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(23 * time.Hour); !sum.AsOf.Equal(want) {
		t.Errorf("as_of %s, want the latest applied event %s", sum.AsOf, want)
	}
	if sum.Applied != 2 || sum.Rejected["future_event"] != 2 || sum.Rejected["limit"] != 1 {
		t.Errorf("summary %+v", sum)
	}
	if s := sum.String(); !strings.Contains(s, "rejected 3 (future_event 2, limit 1)") {
		t.Errorf("summary line %q does not name the rejections by reason", s)
	}
	for _, want := range []string{"line 2: occurred_at 2199-12-31T00:00:00Z is more than 24h after the wall clock 2026-06-01T12:00:00Z", "line 4: ", "line 5: opportunity \"p2\""} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs.String())
		}
	}
	if !strings.Contains(snaps.String(), `"as_of":"2026-06-02T11:00:00Z"`) {
		t.Errorf("snapshot not at the latest applied event:\n%s", snaps.String())
	}
}

// A replay stops when its context ends.
func TestReplayStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := strings.Join(events(1, 5, 5000), "\n")
	sum, _, err := RunContext(ctx, Options{Input: strings.NewReader(in)})
	if !errors.Is(err, context.Canceled) || sum.Read >= 5000 {
		t.Fatalf("err %v after %d lines", err, sum.Read)
	}
}

// The plan summarises exactly the final snapshots.
func TestPlanOutput(t *testing.T) {
	in := strings.Join(events(3, 60, 4000), "\n") + "\n"
	var snaps, planOut bytes.Buffer
	if _, _, err := Run(Options{Config: config.Default(), AsOf: asOf, Input: strings.NewReader(in), Output: &snaps, Plan: &planOut}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AsOf  string `json:"as_of"`
		Goals struct {
			Accounts int
			Tiers    []struct {
				Tier                  string
				Accounts, Met, Behind int
				WalletUnknown         int      `json:"wallet_unknown"`
				ActualTotal           *float64 `json:"actual_total"`
				Summary               string
			}
		}
		Coverage struct {
			Accounts int
			Tiers    []struct {
				Tier       string
				Accounts   int
				RepsNeeded int `json:"reps_needed"`
				Owners     int
			}
		}
	}
	if err := json.Unmarshal(planOut.Bytes(), &doc); err != nil {
		t.Fatalf("plan is not JSON: %v\n%s", err, planOut.String())
	}
	// Count the snapshots by tier and goal status, and the owners per tier.
	type tally struct {
		accounts, met, behind, unknown int
		actual                         float64
		owners                         map[string]bool
	}
	want := map[string]*tally{}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(snaps.String()), "\n") {
		var s struct {
			Tier         string  `json:"tier"`
			GoalStatus   string  `json:"goal_status"`
			GoalMetric   string  `json:"goal_metric"`
			OwnerID      string  `json:"owner_id"`
			CurrentValue float64 `json:"current_value"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		w := want[s.Tier]
		if w == nil {
			w = &tally{owners: map[string]bool{}}
			want[s.Tier] = w
		}
		n++
		w.accounts++
		switch s.GoalStatus {
		case "met":
			w.met++
		case "behind":
			w.behind++
		default:
			w.unknown++
		}
		if s.GoalMetric == "absolute_sales" {
			w.actual += s.CurrentValue
		}
		if s.OwnerID != "" {
			w.owners[s.OwnerID] = true
		}
	}
	if doc.AsOf != "2025-12-31T00:00:00Z" || doc.Goals.Accounts != n || doc.Coverage.Accounts != n || len(doc.Goals.Tiers) != 4 {
		t.Fatalf("plan as_of %s, accounts %d/%d, want %d", doc.AsOf, doc.Goals.Accounts, doc.Coverage.Accounts, n)
	}
	for i, g := range doc.Goals.Tiers {
		w := want[g.Tier]
		if w == nil {
			w = &tally{}
		}
		if g.Accounts != w.accounts || g.Met != w.met || g.Behind != w.behind || g.WalletUnknown != w.unknown {
			t.Errorf("%s: plan %+v, snapshots %+v", g.Tier, g, *w)
		}
		if g.ActualTotal != nil && (*g.ActualTotal < w.actual-0.01 || *g.ActualTotal > w.actual+0.01) {
			t.Errorf("%s: actual total %v, snapshots sum to %v", g.Tier, *g.ActualTotal, w.actual)
		}
		if c := doc.Coverage.Tiers[i]; c.Tier != g.Tier || c.Accounts != w.accounts || c.Owners != len(w.owners) {
			t.Errorf("%s coverage %+v, want %d accounts and %d owners", g.Tier, c, w.accounts, len(w.owners))
		}
	}
	if want["major"] == nil || want["major"].accounts == 0 {
		t.Error("the fixture has no major account; the test proves little")
	}
}
