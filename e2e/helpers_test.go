package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

// testNow is the pipeline's wall clock in the tests and the replay's
// --as-of: a little after the generated stream (2025) ends, so the window,
// neglect and the final evaluation are the same on both sides.
var testNow = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

const (
	topicPrefix = "crm."
	partitions  = 4
)

// topics are the per-type input topics gen.Produce writes to.
var topics = kafkaio.InputTopics(topicPrefix)

// freshDB creates a database of its own for the test on the server of
// serverDSN, migrated, dropped at the end unless the test failed, and
// returns a DSN for it and a connection to it.
func freshDB(tb testing.TB, serverDSN string) (string, driver.Conn) {
	tb.Helper()
	dsn, db := testenv.DatabaseDSN(tb, serverDSN, "pyramid_e2e_")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := clickhouse.CreateDatabase(ctx, dsn); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	conn, err := clickhouse.Open(dsn, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := clickhouse.Migrate(ctx, conn, clickhouse.MigrateOptions{}); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !tb.Failed() {
			_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`")
		} else {
			tb.Logf("kept database %s for inspection", db)
		}
		conn.Close()
	})
	return dsn, conn
}

// newSink returns a ClickHouse sink on dsn that retries quickly, so that a
// test notices a server come back within a second.
func newSink(tb testing.TB, dsn string) *clickhouse.Sink {
	return newSinkMetrics(tb, dsn, nil)
}

// newSinkMetrics is newSink counting in m.
func newSinkMetrics(tb testing.TB, dsn string, m *metrics.Metrics) *clickhouse.Sink {
	tb.Helper()
	s, err := clickhouse.New(context.Background(), clickhouse.Options{DSN: dsn,
		AttemptTimeout: 5 * time.Second, RetryInitial: 50 * time.Millisecond, RetryMax: time.Second}, m, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// newBroker starts an in-process broker with the input topics. It is
// kfake, as broker.Start runs it, but allowing the short session timeouts
// that let a test restart a killed member within seconds; under
// PYRAMID_TEST_KAFKA it accepts only that Kafka release's protocol
// versions (testenv.Kafka).
func newBroker(tb testing.TB, parts int, topics ...string) *kfake.Cluster {
	tb.Helper()
	return testenv.Kafka(tb, kfake.NumBrokers(1), kfake.SeedTopics(int32(parts), topics...),
		kfake.DefaultNumPartitions(parts), kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
}

// workload is a generated event stream: the same options give the same
// bytes, so it is generated once as JSONL for the replay and again for
// producing.
type workload struct {
	opts  gen.Options
	jsonl []byte
}

// genOptions describes a year of events (2025) with 1% bad ones.
func genOptions(accounts, events int, seed uint64) gen.Options {
	return gen.Options{Accounts: accounts, Events: events, Seed: seed,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 12, BadRatio: 0.01}
}

func newWorkload(tb testing.TB, accounts, events int, seed uint64) *workload {
	tb.Helper()
	o := genOptions(accounts, events, seed)
	g, err := gen.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := g.WriteJSONL(&buf); err != nil {
		tb.Fatal(err)
	}
	return &workload{opts: o, jsonl: buf.Bytes()}
}

// produce writes every event to the broker, at rate events per second
// (0: as fast as it takes them).
func (w *workload) produce(ctx context.Context, addrs []string, rate float64) (int64, error) {
	g, err := gen.New(w.opts)
	if err != nil {
		return 0, err
	}
	return gen.Produce(ctx, g, gen.ProduceOptions{Brokers: addrs, TopicPrefix: topicPrefix, Rate: rate})
}

// produceOne writes every event to one topic, keyed by account_id and
// partitioned as gen.Produce does, so every account's events are in one
// log in file order.
func (w *workload) produceOne(ctx context.Context, addrs []string, topic string) error {
	g, err := gen.New(w.opts)
	if err != nil {
		return err
	}
	kw := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		BatchSize: 2000, BatchBytes: 4 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	var msgs []kafka.Message
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		msgs = append(msgs, kafka.Message{Key: []byte(rec.AccountID), Value: append([]byte(nil), rec.Line...)})
	}
	if err := kw.WriteMessages(ctx, msgs...); err != nil {
		kw.Close()
		return err
	}
	return kw.Close()
}

// golden is what the replay of a workload leaves: the final snapshot of
// every account, and how many events were applied to each.
type golden struct {
	snaps   map[string]scoring.Snapshot
	applied map[string]uint64
}

// golden replays the workload with --as-of testNow. It also counts the
// events applied per account, with the replay's decoder and engine: a
// snapshot version is one per applied event plus one per clock-driven
// re-evaluation that changed something, and only the former is the same
// on every evaluation path.
func (w *workload) golden(tb testing.TB) *golden {
	tb.Helper()
	return goldenOf(tb, w.jsonl)
}

// goldenOf is the golden of the events of jsonl (see workload.golden).
func goldenOf(tb testing.TB, jsonl []byte) *golden {
	tb.Helper()
	return goldenWith(tb, config.Default(), jsonl, testNow)
}

// goldenWith is the golden of the events of jsonl, replayed under cfg
// with --as-of asOf.
func goldenWith(tb testing.TB, cfg *config.Config, jsonl []byte, asOf time.Time) *golden {
	tb.Helper()
	var errs bytes.Buffer
	sum, res, err := replay.Run(replay.Options{Config: cfg, Input: bytes.NewReader(jsonl), AsOf: asOf, Errors: &errs})
	if err != nil {
		tb.Fatalf("replay: %v", err)
	}
	tb.Logf("golden: %s", sum)
	g := &golden{snaps: make(map[string]scoring.Snapshot, res.Engine.Len()), applied: map[string]uint64{}}
	for _, id := range res.Engine.IDs() {
		g.snaps[id] = res.Engine.Snapshot(res.Engine.Account(id), res.AsOf)
	}
	dec := event.NewDecoder(cfg)
	eng := scoring.NewEngine(scoring.NewParams(cfg))
	var out scoring.Output
	for _, line := range bytes.Split(jsonl, []byte("\n")) {
		ev, err := dec.Decode(line)
		if err != nil {
			continue
		}
		out.Reset()
		if _, res := eng.Apply(&ev, scoring.EventTime, &out); res == scoring.Applied {
			g.applied[ev.AccountID]++
		}
	}
	return g
}

// testLogger logs warnings and errors (everything with PYRAMID_TEST_LOG
// set) to w.
func testLogger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PYRAMID_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// pipelineOptions returns options with the fixed clock and fast group
// timings for the in-process broker, as the consumer's own tests use.
func pipelineOptions(addrs []string, topics []string, group string, s sink.Sink) consumer.Options {
	return consumer.Options{
		Brokers: addrs, Topics: topics, Group: group, Sink: s,
		Now:               func() time.Time { return testNow },
		FlushInterval:     100 * time.Millisecond,
		FlushSize:         500,
		ReevalInterval:    500 * time.Millisecond,
		Logger:            testLogger(os.Stderr),
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    1500 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		FetchMaxWait:      100 * time.Millisecond,
		ShutdownTimeout:   10 * time.Second,
	}
}

// running is a pipeline run in the background.
type running struct {
	p *consumer.Pipeline
	*testenv.Background
}

func start(tb testing.TB, opts consumer.Options) *running {
	tb.Helper()
	p, err := consumer.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return &running{p: p, Background: testenv.Go(tb, p.Run)}
}

// offsets is a committed or end offset per topic and partition.
type offsets map[string]map[int]int64

func (o offsets) total() int64 {
	var n int64
	for _, ps := range o {
		for _, x := range ps {
			n += max(x, 0)
		}
	}
	return n
}

// endOffsets returns the end offset of every input topic-partition.
func endOffsets(tb testing.TB, addrs []string, topics []string, parts int) offsets {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		for p := 0; p < parts; p++ {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	resp, err := cl.ListOffsets(context.Background(), req)
	if err != nil {
		tb.Fatalf("list offsets: %v", err)
	}
	out := offsets{}
	for t, ps := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				tb.Fatalf("list offsets %s/%d: %v", t, p.Partition, p.Error)
			}
			out[t][p.Partition] = p.LastOffset
		}
	}
	return out
}

// committed returns the group's committed offsets of the topic-partitions
// of like (-1 where none is).
func committed(addrs []string, group string, like offsets) (offsets, error) {
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for t, ps := range like {
		for p := range ps {
			req.Topics[t] = append(req.Topics[t], p)
		}
	}
	resp, err := cl.OffsetFetch(context.Background(), req)
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := offsets{}
	for t, ps := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range ps {
			out[t][p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// waitCommitted waits until the group committed every offset of want.
func waitCommitted(tb testing.TB, addrs []string, group string, want offsets, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		got, err := committed(addrs, group, want)
		if err == nil {
			var lag []string
			for t, ps := range want {
				for p, end := range ps {
					if c := got[t][p]; c < end {
						lag = append(lag, fmt.Sprintf("%s/%d %d<%d", t, p, c, end))
					}
				}
			}
			if len(lag) == 0 {
				return
			}
			sort.Strings(lag)
			last = strings.Join(lag, ", ")
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("offsets not all committed after %v: %s", timeout, last)
}

// snapshotColumns are the columns of account_latest compared with the
// golden, in the order fields renders them.
var snapshotColumns = []string{
	"version", "as_of", "tier", "tier_reason", "quadrant", "current_value", "potential_value",
	"weighted_pipeline", "wallet", "share_of_wallet", "goal_metric", "goal_target", "goal_actual",
	"goal_attainment", "goal_status", "coverage_model", "owner_id", "last_touch_at", "neglected",
	"open_opportunities", "overridden", "coverage_load", "account_name",
}

// latestRow is one row of account_latest, scanned into the Go types the
// driver gives for each ClickHouse type.
type latestRow struct {
	accountID         string
	version           uint64
	asOf              time.Time
	tier, tierReason  string
	quadrant          string
	current           decimal.Decimal
	potential         decimal.Decimal
	weighted          decimal.Decimal
	wallet            *decimal.Decimal
	share             *float64
	goalMetric        string
	goalTarget        float64
	goalActual        *float64
	goalAttainment    *float64
	goalStatus        string
	coverageModel     string
	ownerID           string
	lastTouchAt       time.Time
	neglected         uint8
	openOpportunities uint32
	overridden        uint8
	coverageLoad      float64
	accountName       string
}

// fields renders the row column by column, as snapshotFields renders a
// golden snapshot.
func (r *latestRow) fields() []string {
	return []string{
		strconv.FormatUint(r.version, 10), fmtTime(r.asOf), r.tier, r.tierReason, r.quadrant,
		r.current.StringFixed(2), r.potential.StringFixed(2), r.weighted.StringFixed(2),
		fmtNullDec(r.wallet), fmtNullFloat(r.share), r.goalMetric, fmtFloat(r.goalTarget),
		fmtNullFloat(r.goalActual), fmtNullFloat(r.goalAttainment), r.goalStatus, r.coverageModel,
		r.ownerID, fmtTime(r.lastTouchAt), strconv.Itoa(int(r.neglected)),
		strconv.Itoa(int(r.openOpportunities)), strconv.Itoa(int(r.overridden)), fmtFloat(r.coverageLoad),
		r.accountName,
	}
}

// snapshotFields renders a golden snapshot as the sink writes it: money as
// Decimal(18,2), times in whole seconds, booleans as 0/1.
func snapshotFields(s *scoring.Snapshot, loadWeight func(scoring.Tier) float64) []string {
	var wallet *decimal.Decimal
	if s.HasWallet {
		d := cents(s.Wallet)
		wallet = &d
	}
	opt := func(v float64, ok bool) *float64 {
		if !ok {
			return nil
		}
		return &v
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	return []string{
		strconv.FormatUint(s.Version, 10), fmtTime(time.Unix(0, s.AsOf)), s.Tier.String(), s.TierReason,
		s.Quadrant, cents(s.CurrentValue).StringFixed(2), cents(s.PotentialValue).StringFixed(2),
		cents(s.WeightedPipeline).StringFixed(2), fmtNullDec(wallet), fmtNullFloat(opt(s.ShareOfWallet, s.HasShare)),
		s.GoalMetric, fmtFloat(s.GoalTarget), fmtNullFloat(opt(s.GoalActual, s.HasGoalActual)),
		fmtNullFloat(opt(s.GoalAttainment, s.HasGoalActual)), s.GoalStatus, s.CoverageModel, s.OwnerID,
		fmtTime(time.Unix(0, s.LastTouchAt)), flag(s.Neglected), strconv.Itoa(s.OpenOpportunities),
		flag(s.Overridden), fmtFloat(loadWeight(s.Tier)), s.Name,
	}
}

func cents(c money.Cents) decimal.Decimal { return decimal.New(int64(c), -2) }

func fmtTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func fmtNullFloat(v *float64) string {
	if v == nil {
		return "NULL"
	}
	return fmtFloat(*v)
}

func fmtNullDec(v *decimal.Decimal) string {
	if v == nil {
		return "NULL"
	}
	return v.StringFixed(2)
}

// latest reads account_latest.
func latest(tb testing.TB, conn driver.Conn) map[string]*latestRow {
	tb.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT account_id, "+strings.Join(snapshotColumns, ", ")+" FROM account_latest")
	if err != nil {
		tb.Fatalf("query account_latest: %v", err)
	}
	defer rows.Close()
	out := map[string]*latestRow{}
	for rows.Next() {
		r := &latestRow{}
		if err := rows.Scan(&r.accountID, &r.version, &r.asOf, &r.tier, &r.tierReason, &r.quadrant,
			&r.current, &r.potential, &r.weighted, &r.wallet, &r.share, &r.goalMetric, &r.goalTarget,
			&r.goalActual, &r.goalAttainment, &r.goalStatus, &r.coverageModel, &r.ownerID, &r.lastTouchAt,
			&r.neglected, &r.openOpportunities, &r.overridden, &r.coverageLoad, &r.accountName); err != nil {
			tb.Fatalf("scan account_latest: %v", err)
		}
		if _, dup := out[r.accountID]; dup {
			tb.Errorf("account_latest has two rows for %s", r.accountID)
		}
		out[r.accountID] = r
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("read account_latest: %v", err)
	}
	return out
}

// pathColumns are the columns that record history rather than state.
// With events of several input topics, the pipeline applies an account's
// events in an order of its own (each topic-partition in log order, the
// topics interleaved as fetches return), not in the replay's file order.
// The figures do not depend on that order (docs/events.md: last-writer-wins by
// occurred_at, orders commute), but tier_reason names the value at the
// moment of the account's last tier move, and that moment is on the path.
// So is the tier itself when the final value lies in a hysteresis band
// (between a tier's floor and its threshold): whether the account went up
// depends on whether the value crossed the threshold on the way, e.g. an
// order applied before or after an opportunity was lost. Restarts and a
// clock that differs from the replay's (versionFits) move the path too.
// TestPipelineMatchesReplay/one_topic shows that on the replay's path every
// column is equal.
var pathColumns = map[string]bool{"tier_reason": true}

// unbounded, as compareLatest's extra, puts no upper bound on versions.
const unbounded = ^uint64(0)

// compareMode says how strictly compareLatest compares.
type compareMode int

const (
	// exact: every column equal, tier_reason included (one input topic).
	exact compareMode = iota
	// interleaved (several input topics, or restarts, or events arriving
	// while the pipeline runs): the figures equal; tier_reason a valid
	// reason for the row's tier; version explained by versionFits; and the
	// tier, where it differs, one the value may hold under hysteresis, with
	// the goal and coverage of that tier (see holds and retier).
	interleaved
)

// versionFits checks a version of an account when the pipeline's clock
// path differs from the replay's: each applied event adds one version, and
// a re-evaluation by the clock that changed something adds one more, so
// the version is at least the number of applied events (fewer means an
// event was lost) and exceeds it by at most extra. Such re-evaluations are
// rare on a straight run over events produced beforehand (a window edge
// passed, neglect setting in at the end). They are many when last year's
// events trickle in while the pipeline runs, as in the tests where events
// flow: the pipeline judges a partition at its stream time while it is
// behind (backfill) and at the wall clock (testNow, a year later) whenever
// it has caught up, and each switch can change a snapshot. Those tests pass
// unbounded.
func versionFits(got string, applied, extra uint64) error {
	v, err := strconv.ParseUint(got, 10, 64)
	if err != nil {
		return err
	}
	if v < applied {
		return fmt.Errorf("want at least the %d applied events", applied)
	}
	if extra != unbounded && v > applied+extra {
		return fmt.Errorf("want %d applied events plus at most %d clock-driven re-evaluations", applied, extra)
	}
	return nil
}

// compareLatest checks account_latest against the golden, column by
// column, and reports every difference with account, column and both
// values. In interleaved mode extra bounds the clock-driven versions (see
// versionFits).
func compareLatest(tb testing.TB, conn driver.Conn, gold *golden, mode compareMode, extra uint64) {
	tb.Helper()
	got := latest(tb, conn)
	params := scoring.NewParams(config.Default())
	lw := params.LoadWeight
	perColumn := map[string]int{}
	var diffs, pathDiffs, hyst []string
	accounts := 0
	golden := gold.snaps
	versions := 0
	ids := make([]string, 0, len(golden))
	for id := range golden {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		w := golden[id]
		g, ok := got[id]
		if !ok {
			perColumn["(missing)"]++
			diffs = append(diffs, fmt.Sprintf("account %s: no row in account_latest", id))
			accounts++
			continue
		}
		skip := ""
		if mode == interleaved && g.tier != w.Tier.String() {
			// Hysteresis: see pathColumns and retier.
			t := scoring.ParseTier(g.tier)
			if holds(params, t, w.CurrentValue+w.PotentialValue) && holds(params, w.Tier, w.CurrentValue+w.PotentialValue) {
				hyst = append(hyst, fmt.Sprintf("account %s: tier = %q, golden %q; value %s holds either (tier_reason %q, golden %q)",
					id, g.tier, w.Tier, cents(w.CurrentValue+w.PotentialValue).StringFixed(2), g.tierReason, w.TierReason))
				w, skip = retier(params, w, t)
				if skip != "" {
					hyst[len(hyst)-1] += "; " + skip + " not compared: a snooze the snapshot does not show decides it"
				}
			}
		}
		gf, wf := g.fields(), snapshotFields(&w, lw)
		differs := false
		for i, col := range snapshotColumns {
			if gf[i] == wf[i] || col == skip {
				continue
			}
			d := fmt.Sprintf("account %s: %s = %q, golden %q", id, col, gf[i], wf[i])
			if mode == interleaved && col == "version" {
				if err := versionFits(gf[i], gold.applied[id], extra); err != nil {
					d += ": " + err.Error()
				} else {
					versions++
					continue
				}
			}
			if mode == interleaved && pathColumns[col] {
				if err := reasonFits(g.tierReason, g.tier); err != nil {
					d += ": " + err.Error()
				} else {
					pathDiffs = append(pathDiffs, d)
					continue
				}
			}
			differs = true
			perColumn[col]++
			diffs = append(diffs, d)
		}
		if differs {
			accounts++
		}
	}
	for id := range got {
		if _, ok := golden[id]; !ok {
			perColumn["(extra)"]++
			accounts++
			diffs = append(diffs, fmt.Sprintf("account %s: in account_latest but not in the golden", id))
		}
	}
	if len(pathDiffs) > 0 {
		tb.Logf("%d of %d accounts have another tier_reason than the replay (the same tier, reached on another path), e.g.:", len(pathDiffs), len(golden))
		for _, d := range pathDiffs[:min(3, len(pathDiffs))] {
			tb.Log("  " + d)
		}
	}
	if len(hyst) > 0 {
		tb.Logf("%d of %d accounts hold another tier than the replay: their value lies in a hysteresis band, where the tier depends on the path (the order in which the account's events of different topics were applied); tier, goal and coverage columns checked against that tier:", len(hyst), len(golden))
		for _, d := range hyst {
			tb.Log("  " + d)
		}
	}
	if versions > 0 {
		tb.Logf("%d of %d accounts have another version than the replay, explained by re-evaluations on another clock path", versions, len(golden))
	}
	if len(diffs) == 0 {
		how := "every column equal"
		if mode == interleaved {
			how = "every column equal or, for the path-dependent ones above, explained"
		}
		tb.Logf("account_latest matches the golden: %d accounts, %d columns, %s", len(golden), len(snapshotColumns), how)
		return
	}
	for i, d := range diffs {
		if i == 50 {
			tb.Errorf("... and %d more differences", len(diffs)-i)
			break
		}
		tb.Error(d)
	}
	tb.Fatalf("%d of %d accounts differ from the golden; differences per column: %v", accounts, len(golden), perColumn)
}

// holds reports whether an account with value may be in tier t under the
// hysteresis rule: t is the tier the value qualifies for, or a higher one
// whose floor (threshold × (1 − hysteresis)) the value has not fallen below.
func holds(p *scoring.Params, t scoring.Tier, value money.Cents) bool {
	q := scoring.MassMarket
	for _, x := range scoring.AllTiers {
		if value >= p.Threshold(x) {
			q = x
		}
	}
	return t == q || (t > q && value >= p.Floor(t))
}

// retier returns the golden snapshot s as it reads for an account of the
// same figures held in tier t: the goal and coverage of t. It also returns
// a column it cannot decide, if any: neglected when the snapshot does not
// tell whether a snooze or t's neglect limit would decide it.
func retier(p *scoring.Params, s scoring.Snapshot, t scoring.Tier) (scoring.Snapshot, string) {
	old := s.Tier
	s.Tier, s.CoverageModel = t, p.Coverage(t)
	goal := p.Config().Tier(t.String()).Goal
	s.GoalTarget = goal.Target
	s.GoalActual, s.GoalAttainment, s.HasGoalActual = 0, 0, false
	round4 := func(v float64) float64 { return math.Round(v*1e4) / 1e4 }
	if goal.Metric == "share_of_wallet" {
		s.GoalMetric = "share_of_wallet"
		if s.HasShare {
			s.GoalActual, s.HasGoalActual = s.ShareOfWallet, true
			s.GoalAttainment = round4(float64(s.CurrentValue) / float64(s.Wallet) / goal.Target)
		}
	} else {
		s.GoalMetric = "absolute_sales"
		s.GoalActual, s.HasGoalActual = s.CurrentValue.Float(), true
		s.GoalAttainment = round4(float64(s.CurrentValue) / math.Round(goal.Target*100))
	}
	switch {
	case !s.HasGoalActual:
		s.GoalStatus = "wallet_unknown"
	case s.GoalAttainment >= 1:
		s.GoalStatus = "met"
	default:
		s.GoalStatus = "behind"
	}
	// Neglect depends on the tier's limit, and on a snooze the snapshot
	// does not show.
	highPotential := s.PotentialValue >= money.Cents(math.Round(p.Config().Quadrant.PotentialHigh*100))
	idle := time.Duration(s.AsOf - s.LastTouchAt)
	overOld, overNew := idle > p.NeglectLimit(old), idle > p.NeglectLimit(t)
	switch {
	case !highPotential || overOld == overNew:
	case s.Neglected: // over the old limit and not snoozed
		s.Neglected = overNew
	case overOld: // over the old limit yet not neglected: snoozed
	default: // over the new limit only: snoozed or not, the snapshot does not say
		return s, "neglected"
	}
	return s, ""
}

var (
	reasonUp       = regexp.MustCompile(`^value ([\d,.-]+) >= (\w+) threshold ([\d,.]+)$`)
	reasonBelow    = regexp.MustCompile(`^value ([\d,.-]+) < (\w+) threshold ([\d,.]+)$`)
	reasonDown     = regexp.MustCompile(`^value ([\d,.-]+) < (\w+) threshold [\d,.]+ less \d+% hysteresis = ([\d,.]+)$`)
	reasonOverride = regexp.MustCompile(`^tier_override set to (\w+)$`)
)

// reasonFits checks that reason is one the engine could have given for
// moving an account to tier: up to it with a value at or over its
// threshold, first placed below the next tier's threshold, down from a
// higher tier with a value under that tier's hysteresis floor, or pinned.
func reasonFits(reason, tier string) error {
	t := scoring.ParseTier(tier)
	num := func(s string) float64 {
		v, _ := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
		return v
	}
	if m := reasonUp.FindStringSubmatch(reason); m != nil {
		if m[2] != tier || num(m[1]) < num(m[3]) {
			return fmt.Errorf("reason does not explain tier %s", tier)
		}
		return nil
	}
	if m := reasonDown.FindStringSubmatch(reason); m != nil {
		if scoring.ParseTier(m[2]) <= t || num(m[1]) >= num(m[3]) {
			return fmt.Errorf("reason does not explain tier %s", tier)
		}
		return nil
	}
	if m := reasonBelow.FindStringSubmatch(reason); m != nil {
		if scoring.ParseTier(m[2]) != t+1 || num(m[1]) >= num(m[3]) {
			return fmt.Errorf("reason does not explain tier %s", tier)
		}
		return nil
	}
	if m := reasonOverride.FindStringSubmatch(reason); m != nil && m[1] == tier {
		return nil
	}
	return fmt.Errorf("reason does not explain tier %s", tier)
}

// queryUint runs a query that returns one unsigned integer.
func queryUint(tb testing.TB, conn driver.Conn, q string) uint64 {
	tb.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkCollapsed checks that every (account_id, version) of
// account_snapshots is one row under FINAL, that account_latest has one
// row per account of the golden, and that it equals the history's newest
// versions, and that no (account_id, version) has two contents.
func checkCollapsed(tb testing.TB, conn driver.Conn, accounts int) {
	tb.Helper()
	raw := queryUint(tb, conn, "SELECT count() FROM account_snapshots")
	final := queryUint(tb, conn, "SELECT count() FROM account_snapshots FINAL")
	uniq := queryUint(tb, conn, "SELECT uniqExact(account_id, version) FROM account_snapshots")
	n := queryUint(tb, conn, "SELECT count() FROM account_latest")
	tb.Logf("account_snapshots: %d rows stored, %d under FINAL, %d distinct (account_id, version); account_latest: %d rows", raw, final, uniq, n)
	if final != uniq {
		tb.Errorf("count() FINAL = %d, uniqExact(account_id, version) = %d: rows written twice did not collapse", final, uniq)
	}
	if n != uint64(accounts) {
		tb.Errorf("account_latest has %d rows, want %d (one per account)", n, accounts)
	}
	// The BI views read the current-state table: it must hold exactly the
	// history's newest version of every account.
	ctx := context.Background()
	if m, err := clickhouse.CurrentMismatches(ctx, conn); err != nil || len(m) > 0 {
		tb.Errorf("account_latest (the current-state table) differs from the newest versions in account_snapshots (%v):\n%s", err, strings.Join(m[:min(len(m), 20)], "\n"))
	}
	// A row written twice is byte-identical: one content per version.
	if c, ex, err := clickhouse.ConflictingVersions(ctx, conn, 3); err != nil || c > 0 {
		tb.Errorf("account_snapshots: %d (account_id, version) pairs carry more than one content (%v), e.g. %q", c, err, ex)
	}
}

func testDSN(tb testing.TB) string { return testenv.ClickHouseDSN(tb) }
