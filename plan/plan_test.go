package plan_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
)

var params = scoring.NewParams(config.Default())

// acct builds a snapshot the way scoring does for the default goals:
// share-of-wallet for major and named (wallet in units, < 0 = unknown),
// absolute sales below.
func acct(id string, tier scoring.Tier, owner string, cur, pot, wallet int64) scoring.Snapshot {
	cfg := config.Default()
	g := cfg.Tier(tier.String()).Goal
	s := scoring.Snapshot{
		AccountID: id, Name: "Name of " + id, Version: 1, Tier: tier, OwnerID: owner,
		CurrentValue: money.FromUnits(cur), PotentialValue: money.FromUnits(pot),
		GoalMetric: g.Metric, GoalTarget: g.Target, CoverageModel: cfg.Tier(tier.String()).Coverage,
		Quadrant: scoring.LowCurrentLowPotential,
	}
	if cur >= 500_000 && pot < 500_000 {
		s.Quadrant = scoring.HighCurrentLowPotential
	}
	if wallet >= 0 {
		s.Wallet, s.HasWallet = money.FromUnits(wallet), true
	}
	switch {
	case g.Metric == config.AbsoluteSales:
		s.GoalActual, s.GoalAttainment, s.HasGoalActual = float64(cur), float64(cur)/g.Target, true
	case wallet > 0:
		s.ShareOfWallet, s.HasShare = float64(cur)/float64(wallet), true
		s.GoalActual, s.GoalAttainment, s.HasGoalActual = s.ShareOfWallet, s.ShareOfWallet/g.Target, true
	}
	switch {
	case !s.HasGoalActual:
		s.GoalStatus = scoring.GoalWalletUnknown
	case s.GoalAttainment >= 1:
		s.GoalStatus = scoring.GoalMet
	default:
		s.GoalStatus = scoring.GoalBehind
	}
	return s
}

// fixture:
//
//	major (share of wallet, target 50%), 1:1:
//	  maj-met    600k of 1M wallet      attainment 1.2  met      rep-a
//	  maj-half   250k of 1M             0.5             behind   rep-b
//	  maj-zero   0 of 2M                0               behind   (no owner)
//	  maj-zero2  0 of 1M                0               behind   rep-a
//	  maj-nowal  900k, no wallet        -               unknown  rep-c
//	named (share 30%), 1:few: 5 accounts of rep-b, attainment 0.1..0.5, plus
//	  nam-met 100k of 200k = 0.5 share, attainment 1.667, rep-d
//	non_named (absolute 50,000), 1:many: 3 accounts of rep-e: 10k, 50k, 70k
//	mass_market (absolute 5,000), call_center: 2 accounts, no owner: 1k, 6k
func fixture() []scoring.Snapshot {
	s := []scoring.Snapshot{
		acct("maj-met", scoring.Major, "rep-a", 600_000, 400_000, 1_000_000),
		acct("maj-half", scoring.Major, "rep-b", 250_000, 750_000, 1_000_000),
		acct("maj-zero", scoring.Major, "", 0, 2_000_000, 2_000_000),
		acct("maj-zero2", scoring.Major, "rep-a", 0, 1_000_000, 1_000_000),
		acct("maj-nowal", scoring.Major, "rep-c", 900_000, 200_000, -1),
		acct("nam-met", scoring.Named, "rep-d", 100_000, 200_000, 200_000),
	}
	for i := 1; i <= 5; i++ {
		// share 0.03·i of a 1M wallet: attainment 0.1·i
		s = append(s, acct(fmt.Sprintf("nam-%d", i), scoring.Named, "rep-b", int64(30_000*i), 300_000, 1_000_000))
	}
	s = append(s,
		acct("non-10k", scoring.NonNamed, "rep-e", 10_000, 20_000, -1),
		acct("non-50k", scoring.NonNamed, "rep-e", 50_000, 0, -1),
		acct("non-70k", scoring.NonNamed, "rep-e", 70_000, 0, -1),
		acct("mm-1k", scoring.MassMarket, "", 1_000, 0, -1),
		acct("mm-6k", scoring.MassMarket, "", 6_000, 0, -1),
	)
	return s
}

func summarise(snaps []scoring.Snapshot) *plan.Summariser {
	s := plan.New(params)
	for i := range snaps {
		s.Add(&snaps[i])
	}
	return s
}

func tierGoal(t *testing.T, g plan.Goals, tier string) plan.TierGoal {
	t.Helper()
	for _, tg := range g.Tiers {
		if tg.Tier == tier {
			return tg
		}
	}
	t.Fatalf("no tier %s in %+v", tier, g)
	return plan.TierGoal{}
}

func ids[T any](xs []T, id func(*T) string) []string {
	out := []string{}
	for i := range xs {
		out = append(out, id(&xs[i]))
	}
	return out
}

func TestGoals(t *testing.T) {
	g := summarise(fixture()).Goals()
	if g.Accounts != 16 || g.Currency != "USD" {
		t.Errorf("accounts %d currency %s", g.Accounts, g.Currency)
	}
	if got := ids(g.Tiers, func(t *plan.TierGoal) string { return t.Tier }); !reflect.DeepEqual(got, []string{"major", "named", "non_named", "mass_market"}) {
		t.Errorf("tier order %v, want major first", got)
	}

	maj := tierGoal(t, g, "major")
	if maj.Accounts != 5 || maj.Met != 1 || maj.Behind != 3 || maj.WalletUnknown != 1 {
		t.Errorf("major counts %+v", maj)
	}
	if maj.ActualTotal != nil || maj.TargetTotal != nil {
		t.Errorf("a share-of-wallet tier has no summed actual: %+v", maj)
	}
	// attainments 0, 0, 0.5, 1.2: median (0 + 0.5) / 2
	if maj.MedianAttainment == nil || *maj.MedianAttainment != 0.25 {
		t.Errorf("major median %v, want 0.25", maj.MedianAttainment)
	}
	if got := counts(maj.Attainment); !reflect.DeepEqual(got, []int{2, 0, 1, 0, 1}) {
		t.Errorf("major distribution %v", got)
	}
	// 0-attainment ties: the bigger wallet first.
	if got := ids(maj.FurthestBehind, func(b *plan.Behind) string { return b.AccountID }); !reflect.DeepEqual(got, []string{"maj-zero", "maj-zero2", "maj-half"}) {
		t.Errorf("major furthest behind %v", got)
	}
	if b := maj.FurthestBehind[0]; b.ToTarget != plan.Amount(money.FromUnits(1_000_000)) || b.Attainment != 0 {
		t.Errorf("maj-zero needs 50%% of 2M: %+v", b)
	}
	if b := maj.FurthestBehind[2]; b.ToTarget != plan.Amount(money.FromUnits(250_000)) || b.Actual.Value != 0.25 || !b.Actual.Share {
		t.Errorf("maj-half: %+v", b)
	}
	if want := "Major: share of wallet, target 50%: 1 of 5 met"; maj.Summary != want {
		t.Errorf("summary %q, want %q", maj.Summary, want)
	}
	if want := "3 behind, 1 without a known wallet; median attainment 25% of target"; maj.Detail != want {
		t.Errorf("detail %q, want %q", maj.Detail, want)
	}

	nam := tierGoal(t, g, "named")
	// attainments 0.1 .. 0.5 and 1.667: median (0.3 + 0.4) / 2
	if nam.MedianAttainment == nil || float64(*nam.MedianAttainment) < 0.35-1e-9 || float64(*nam.MedianAttainment) > 0.35+1e-9 {
		t.Errorf("named median %v, want 0.35", nam.MedianAttainment)
	}
	if got := counts(nam.Attainment); !reflect.DeepEqual(got, []int{2, 2, 1, 0, 1}) {
		t.Errorf("named distribution %v", got)
	}
	if len(nam.FurthestBehind) != 5 || nam.FurthestBehind[0].AccountID != "nam-1" {
		t.Errorf("named behind %+v", nam.FurthestBehind)
	}

	non := tierGoal(t, g, "non_named")
	if non.ActualTotal == nil || *non.ActualTotal != plan.Amount(money.FromUnits(130_000)) ||
		*non.TargetTotal != plan.Amount(money.FromUnits(150_000)) || non.Met != 2 || non.Behind != 1 {
		t.Errorf("non_named %+v", non)
	}
	if b := non.FurthestBehind; len(b) != 1 || b[0].AccountID != "non-10k" || b[0].ToTarget != plan.Amount(money.FromUnits(40_000)) {
		t.Errorf("non_named behind %+v", b)
	}
	if want := "Non-named: absolute sales, target 50,000 USD: 2 of 3 met"; non.Summary != want {
		t.Errorf("summary %q, want %q", non.Summary, want)
	}
	if want := "1 behind; sold 130,000 USD, against 150,000 if every account met its target; median attainment 100% of target"; non.Detail != want {
		t.Errorf("detail %q, want %q", non.Detail, want)
	}
}

func counts(bs []plan.Bucket) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = b.Accounts
	}
	return out
}

func TestFurthestBehindIsBounded(t *testing.T) {
	var snaps []scoring.Snapshot
	for i := 0; i < 40; i++ {
		snaps = append(snaps, acct(fmt.Sprintf("n-%02d", i), scoring.NonNamed, "rep", int64(1000*(40-i)), 0, -1))
	}
	nn := tierGoal(t, summarise(snaps).Goals(), "non_named")
	if nn.Behind != 40 || len(nn.FurthestBehind) != plan.FurthestBehind {
		t.Fatalf("behind %d, listed %d", nn.Behind, len(nn.FurthestBehind))
	}
	if nn.FurthestBehind[0].AccountID != "n-39" || nn.FurthestBehind[9].AccountID != "n-30" {
		t.Errorf("furthest behind %v", ids(nn.FurthestBehind, func(b *plan.Behind) string { return b.AccountID }))
	}
}

func TestCoverage(t *testing.T) {
	c := summarise(fixture()).Coverage()
	if c.Accounts != 16 || c.Reps != 5 {
		t.Errorf("accounts %d reps %d", c.Accounts, c.Reps)
	}
	type row struct {
		tier                                   string
		accounts, need, owners, short, unowned int
		unlimited                              bool
	}
	var got []row
	for _, tc := range c.Tiers {
		got = append(got, row{tc.Tier, tc.Accounts, tc.RepsNeeded, tc.Owners, tc.Shortfall, tc.Unowned, tc.Capacity == nil})
	}
	want := []row{
		{"major", 5, 5, 3, 2, 1, false},      // 1:1; rep-a, rep-b, rep-c
		{"named", 6, 2, 2, 0, 0, false},      // ceil(6/5); rep-b, rep-d
		{"non_named", 3, 1, 1, 0, 0, false},  // ceil(3/50)
		{"mass_market", 2, 0, 0, 0, 2, true}, // call centre
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tiers\n got %+v\nwant %+v", got, want)
	}
	if want := "Major, 1:1 (1 account per rep): 5 accounts need 5 reps; 3 reps hold them, 2 short; 1 without an owner"; c.Tiers[0].Summary != want {
		t.Errorf("summary %q\n     want %q", c.Tiers[0].Summary, want)
	}
	if want := "Mass-market, call_center (no rep of their own): 2 accounts need no dedicated reps"; c.Tiers[3].Summary != want {
		t.Errorf("summary %q\n     want %q", c.Tiers[3].Summary, want)
	}
	// The call centre's unowned accounts are not a gap.
	if got := ids(c.Unowned.Accounts, func(a *plan.AccountRef) string { return a.AccountID }); c.Unowned.Total != 1 || !reflect.DeepEqual(got, []string{"maj-zero"}) {
		t.Errorf("unowned %d %v", c.Unowned.Total, got)
	}
	// rep-b: 1 major + 5 named = 1 + 5 × 0.2 = 2; rep-a: 2 majors = 2.
	// rep-c (1 major) and rep-e (3 non_named = 0.06) are within capacity.
	var reps []string
	for _, r := range c.Overloaded.Reps {
		reps = append(reps, fmt.Sprintf("%s %v %d %v", r.OwnerID, r.Load, r.Accounts, r.ByTier))
	}
	if want := []string{"rep-a 2 2 map[major:2]", "rep-b 2 6 map[major:1 named:5]"}; !reflect.DeepEqual(reps, want) || c.Overloaded.Total != 2 {
		t.Errorf("overloaded %q, want %q", reps, want)
	}
	if r := c.Overloaded.Reps[1]; r.AccountsList[0].AccountID != "maj-half" || len(r.AccountsList) != 6 {
		t.Errorf("rep-b's accounts, biggest first: %+v", r.AccountsList)
	}
	if want := "rep-b: load 2 (1 major, 5 named), 100% over capacity"; c.Overloaded.Reps[1].Summary != want {
		t.Errorf("rep summary %q, want %q", c.Overloaded.Reps[1].Summary, want)
	}
	// High current, low potential, on 1:1: maj-met (600k/400k) and
	// maj-nowal (900k/200k), least potential first.
	if got := ids(c.WatchList.Accounts, func(a *plan.AccountRef) string { return a.AccountID }); !reflect.DeepEqual(got, []string{"maj-nowal", "maj-met"}) {
		t.Errorf("watch list %v", got)
	}
}

func TestCapacityFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte("coverage_capacity: {team: 0.25, \"1:few\": 8}\ntiers: {major: {coverage: team}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := scoring.NewParams(cfg)
	s := plan.New(p)
	for i := 0; i < 3; i++ {
		sn := acct(fmt.Sprintf("m%d", i), scoring.Major, "lead", 100, 0, 1000)
		sn.CoverageModel = "team"
		s.Add(&sn)
	}
	c := s.Coverage()
	maj := c.Tiers[0]
	if maj.RepsNeeded != 12 || maj.Owners != 1 || maj.Shortfall != 11 || *maj.Capacity != 0.25 {
		t.Errorf("major on teams of four: %+v", maj)
	}
	if want := "Major, team (a team of 4 reps per account): 3 accounts need 12 reps; 1 rep holds them, 11 short"; maj.Summary != want {
		t.Errorf("summary %q\n     want %q", maj.Summary, want)
	}
	// A team account fills its owner: three of them are load 3.
	if c.Overloaded.Total != 1 || c.Overloaded.Reps[0].Load != 3 {
		t.Errorf("overloaded %+v", c.Overloaded)
	}
}

func TestRepsNeeded(t *testing.T) {
	for _, tt := range []struct {
		accounts int
		capacity config.Capacity
		want     int
	}{
		{0, 1, 0}, {53, 1, 53}, {53, 5, 11}, {50, 5, 10}, {51, 50, 2},
		{3, 0.3, 10}, {10, 0.25, 40}, {7, 2.5, 3}, {1000, config.Unlimited, 0},
	} {
		if got := plan.RepsNeeded(tt.accounts, tt.capacity); got != tt.want {
			t.Errorf("RepsNeeded(%d, %v) = %d, want %d", tt.accounts, tt.capacity, got, tt.want)
		}
	}
}

func TestListsAreBounded(t *testing.T) {
	var snaps []scoring.Snapshot
	for i := 0; i < 3*plan.ListLength; i++ {
		snaps = append(snaps, acct(fmt.Sprintf("u-%03d", i), scoring.Named, "", int64(1000+i), 0, -1))
		snaps = append(snaps, acct(fmt.Sprintf("w-%03d", i), scoring.Major, fmt.Sprintf("rep-%03d", i%60), 600_000+int64(i), 10, 1_000_000))
	}
	c := summarise(snaps).Coverage()
	if c.Unowned.Total != 150 || len(c.Unowned.Accounts) != plan.ListLength || c.Unowned.Accounts[0].AccountID != "u-149" {
		t.Errorf("unowned total %d, listed %d, first %s", c.Unowned.Total, len(c.Unowned.Accounts), c.Unowned.Accounts[0].AccountID)
	}
	if c.WatchList.Total != 150 || len(c.WatchList.Accounts) != plan.ListLength || c.WatchList.Accounts[0].AccountID != "w-149" {
		t.Errorf("watch list total %d, listed %d", c.WatchList.Total, len(c.WatchList.Accounts))
	}
	if c.Overloaded.Total != 60 || len(c.Overloaded.Reps) != plan.ListLength {
		t.Errorf("overloaded total %d, listed %d", c.Overloaded.Total, len(c.Overloaded.Reps))
	}
}

// The summaries do not depend on the order accounts come in.
func TestOrderIndependent(t *testing.T) {
	snaps := fixture()
	for i := 0; i < 40; i++ {
		snaps = append(snaps, acct(fmt.Sprintf("x-%02d", i), scoring.AllTiers[i%4], fmt.Sprintf("rep-%d", i%7), int64(i*7919%90_000), int64(i*104729%700_000), int64(i%3*400_000)))
	}
	want := encode(t, summarise(snaps))
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(snaps), func(i, j int) { snaps[i], snaps[j] = snaps[j], snaps[i] })
		if got := encode(t, summarise(snaps)); got != want {
			t.Fatalf("order changed the summary:\n%s\nvs\n%s", got, want)
		}
	}
}

func encode(t *testing.T, s *plan.Summariser) string {
	t.Helper()
	b, err := json.Marshal(struct {
		G plan.Goals
		C plan.Coverage
	}{s.Goals(), s.Coverage()})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSON(t *testing.T) {
	s := summarise(fixture())
	b, err := json.Marshal(s.Goals())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"tier":"major","label":"Major","goal_metric":"share_of_wallet","goal_target":0.5000,`,
		`"tier":"non_named","label":"Non-named","goal_metric":"absolute_sales","goal_target":50000.00,`,
		`"actual_total":130000.00,"target_total":150000.00,"median_attainment":1.0000,`,
		`{"from":0.0000,"to":0.2500,"label":"under 25%","accounts":2}`,
		`{"from":1.0000,"to":null,"label":"met (100% or more)","accounts":1}`,
		`"goal_actual":0.0000,"goal_attainment":0.0000,"to_target":1000000.00`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("goals JSON lacks %s:\n%s", want, b)
		}
	}
	b, err = json.Marshal(s.Coverage())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"coverage_model":"1:few","capacity":5,"accounts":6,"reps_needed":2,"owners":2,"shortfall":0,"unowned":0,`,
		`"coverage_model":"call_center","capacity":null,`,
		`"overloaded_reps":{"total":2,"reps":[{"owner_id":"rep-a","load":2,"accounts":2,"by_tier":{"major":2},`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("coverage JSON lacks %s:\n%s", want, b)
		}
	}
}

// BenchmarkSummarise: goals and coverage of 100,000 accounts, what the
// status page and /v1/goals do per request.
func BenchmarkSummarise(b *testing.B) {
	var snaps []scoring.Snapshot
	for i := range 100_000 {
		snaps = append(snaps, acct(fmt.Sprintf("acc-%06d", i), scoring.AllTiers[i%4], fmt.Sprintf("rep-%03d", i%300),
			int64(i*7919%900_000), int64(i*104729%1_700_000), int64(i%3*400_000)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := plan.New(params)
		for i := range snaps {
			s.Add(&snaps[i])
		}
		_, _ = s.Goals(), s.Coverage()
	}
}
