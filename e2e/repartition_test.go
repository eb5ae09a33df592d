package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/sink"
)

// childInputsEnv makes the child process (see runChild) read gen's
// Debezium topics through a repartitioner, and no native topic.
const childInputsEnv = "PYRAMID_E2E_INPUTS"

// crmNow is the clock of the CRM history of package inputs' fixtures: two
// weeks after its last change.
var crmNow = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)

// repartitionOptions returns repartitioner options with the fast group
// timings of pipelineOptions.
func repartitionOptions(addrs []string, cfg *config.Config, group string, native []string) repartition.Options {
	return repartition.Options{
		Brokers: addrs, Config: cfg, Group: group, NativeTopics: native,
		Logger:            testLogger(os.Stderr),
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    1500 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		FetchMaxWait:      100 * time.Millisecond,
		ShutdownTimeout:   10 * time.Second,
	}
}

// runInputs runs what `pyramid run` runs with declared inputs: it
// prepares the repartition topics, then runs the repartitioner and a
// pipeline reading popts.Topics (the native ones) and the repartition
// topics, until ctx ends or either fails.
func runInputs(ctx context.Context, ropts repartition.Options, popts consumer.Options) error {
	rep, err := repartition.New(ropts)
	if err != nil {
		return err
	}
	if _, err := rep.Prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	popts.Topics = append(slices.Clone(popts.Topics), repartition.Topics(ropts.Config)...)
	p, err := consumer.New(popts)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rep.Run(gctx) })
	g.Go(func() error { return p.Run(gctx) })
	return g.Wait()
}

// runChildInputs is runChild with declared inputs: gen's Debezium
// rendering, repartitioned, and no native topic. The repartitioner commits
// every 3 s, so that a kill leaves many events written but not committed.
func runChildInputs(ctx context.Context, addrs []string, group string, s sink.Sink) error {
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
	ropts := repartitionOptions(addrs, cfg, group, nil)
	ropts.CommitInterval = 3 * time.Second
	popts := pipelineOptions(addrs, nil, group, s)
	popts.Config = cfg
	return runInputs(ctx, ropts, popts)
}

// crmFixture is one of package inputs' recordings of the CRM history.
type crmRecord struct {
	Topic string          `json:"topic"`
	TS    int64           `json:"ts"`
	Key   json.RawMessage `json:"key"`
	Value json.RawMessage `json:"value"`
}

func readCRM(tb testing.TB, name string) []crmRecord {
	tb.Helper()
	f, err := os.Open(filepath.Join("..", "inputs", "testdata", "crm", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []crmRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r crmRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestRepartitionedMatchesReplay streams the CRM history of package
// inputs' fixtures through the pipeline twice: as native events on the
// native topics, and as Debezium wrote it (with and without schemas,
// precise, string and double decimals, deletes, tombstones, a connector
// restart re-emitting a stretch of changes) on source topics of 1, 3 and 7
// partitions keyed by primary key, repartitioned beside empty native
// topics. Every run's account_latest must equal the replay of the native
// history.
func TestRepartitionedMatchesReplay(t *testing.T) {
	t.Parallel()
	serverDSN := testDSN(t)
	dir := filepath.Join("..", "inputs", "testdata", "crm")
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	native, err := os.ReadFile(filepath.Join(dir, "native.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	gold := goldenWith(t, cfg, native, crmNow)
	if len(gold.snaps) != 3 {
		t.Fatalf("the CRM history has %d accounts, want 3", len(gold.snaps))
	}

	run := func(t *testing.T, parts int32, records []kafka.Message) {
		dsn, conn := freshDB(t, serverDSN)
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
		if parts > 0 {
			for _, in := range cfg.Inputs {
				opts = append(opts, kfake.SeedTopics(parts, in.Topic))
			}
		}
		b := testenv.Kafka(t, opts...)
		addrs := b.ListenAddrs()
		w := &kafka.Writer{Addr: kafka.TCP(addrs...), Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		if err := w.WriteMessages(context.Background(), records...); err != nil {
			t.Fatal(err)
		}
		w.Close()

		const group = "e2e-crm"
		s := newSink(t, dsn)
		popts := pipelineOptions(addrs, topics, group, s)
		popts.Config = cfg
		popts.Now = func() time.Time { return crmNow }
		bg := testenv.Go(t, func(ctx context.Context) error {
			if parts == 0 {
				p, err := consumer.New(popts)
				if err != nil {
					return err
				}
				return p.Run(ctx)
			}
			return runInputs(ctx, repartitionOptions(addrs, cfg, group, topics), popts)
		})
		want := endOffsets(t, addrs, topics, partitions)
		if parts > 0 {
			var sources []string
			for _, in := range cfg.Inputs {
				sources = append(sources, in.Topic)
			}
			waitCommitted(t, addrs, group+repartition.GroupSuffix, written(endOffsets(t, addrs, sources, int(parts))), 60*time.Second)
			for t2, ps := range endOffsets(t, addrs, repartition.Topics(cfg), partitions) {
				want[t2] = ps
			}
		}
		waitCommitted(t, addrs, group, written(want), 60*time.Second)
		bg.Stop(t)

		checkCollapsed(t, conn, len(gold.snaps))
		compareLatest(t, conn, gold, interleaved, 3)
	}

	t.Run("native", func(t *testing.T) {
		t.Parallel()
		var msgs []kafka.Message
		for _, line := range strings.Split(strings.TrimSpace(string(native)), "\n") {
			var ev struct{ Type, AccountID string }
			var raw map[string]any
			json.Unmarshal([]byte(line), &raw)
			ev.Type, ev.AccountID = raw["type"].(string), raw["account_id"].(string)
			msgs = append(msgs, kafka.Message{Topic: kafkaio.InputTopicFor(topicPrefix, ev.Type), Key: []byte(ev.AccountID), Value: []byte(line)})
		}
		run(t, 0, msgs)
	})
	for _, name := range []string{"debezium-schemas-precise.jsonl", "debezium-plain-string.jsonl", "debezium-plain-double.jsonl"} {
		recs := readCRM(t, name)
		for _, parts := range []int32{1, 3, 7} {
			t.Run(fmt.Sprintf("%s/%d_partitions", strings.TrimSuffix(name, ".jsonl"), parts), func(t *testing.T) {
				t.Parallel()
				msgs := make([]kafka.Message, len(recs))
				for i, r := range recs {
					msgs[i] = kafka.Message{Topic: r.Topic, Key: r.Key, Time: time.UnixMilli(r.TS)}
					if string(r.Value) != "null" {
						msgs[i].Value = r.Value
					}
				}
				run(t, parts, msgs)
			})
		}
	}
}

// TestRepartitionCrashRestart is TestCrashRestart with declared inputs
// only (pyramid run --topics ”): a generated history flows in as Debezium
// records on topics of 5, 3, 7 and 1 partitions, while the process running
// the repartitioner and the pipeline is killed three times (SIGKILL) and
// stopped once in-process without time to flush. The repartitioner
// commits every 3 s, so every kill leaves repartitioned events whose
// source offsets were not committed, and the next run writes them again:
// the test checks those copies are in the repartition topics, more per
// account than the 16 event ids an account remembers. Still nothing is
// missing and nothing counts twice: account_latest equals the replay of
// the native history. The records that cannot be mapped are dead-lettered
// with their reason and source.
func TestRepartitionCrashRestart(t *testing.T) {
	t.Parallel()
	dsn, conn := freshDB(t, testDSN(t))
	w := newWorkload(t, 20, 4000, 6)
	gold := w.golden(t)
	counts := map[string]int32{"orders": 5, "opportunities": 3, "activities": 7, "accounts": 1}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	for table, n := range counts {
		opts = append(opts, kfake.SeedTopics(n, gen.DefaultDebeziumPrefix+table))
	}
	b := testenv.Kafka(t, opts...)
	addrs := b.ListenAddrs()
	const group = "e2e-inputs-crash"
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	g, err := gen.New(w.opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := gen.Produce(ctx, g, gen.ProduceOptions{Brokers: addrs, Rate: 250, Debezium: true})
		produced <- err
	}()

	// The repartition topics exist once the first run prepared them; the
	// pipeline's progress is its commits on them.
	var layout offsets
	var last int64
	progress := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if layout == nil {
				if l, ok := topicLayout(addrs, repartition.Topics(cfg)); ok {
					layout = l
				}
			}
			if layout != nil {
				if c, err := committed(addrs, group, layout); err == nil && c.total() > last {
					last = c.total()
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no offset of the repartition topics committed within 60 s (last %d)", what, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for i := 1; i <= 3; i++ {
		var out testenv.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", childInputsEnv+"=1", childBrokersEnv+"="+strings.Join(addrs, ","),
			childDSNEnv+"="+dsn, childGroupEnv+"="+group)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("child %d output:\n%s", i, out.String())
			}
		})
		progress(fmt.Sprintf("child %d", i))
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child %d ended with %v before it was killed:\n%s", i, err, out.String())
		}
		c, _ := committed(addrs, group, layout)
		last = c.total()
		t.Logf("killed child %d, %d repartition offsets committed", i, c.total())
	}

	// In-process: cancelled with no time for a last write, flush or commit.
	s := newSink(t, dsn)
	ropts := repartitionOptions(addrs, cfg, group, nil)
	ropts.CommitInterval, ropts.ShutdownTimeout = 3*time.Second, time.Nanosecond
	popts := pipelineOptions(addrs, nil, group, s)
	popts.Config, popts.ShutdownTimeout = cfg, time.Nanosecond
	bg := testenv.Go(t, func(ctx context.Context) error { return runInputs(ctx, ropts, popts) })
	progress("in-process run")
	time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	bg.Cancel()
	select {
	case <-bg.Done:
		bg.Done <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("the in-process run did not return within 15 s of cancel with ShutdownTimeout 1ns")
	}

	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	s2 := newSink(t, dsn)
	popts = pipelineOptions(addrs, nil, group, s2)
	popts.Config = cfg
	final := testenv.Go(t, func(ctx context.Context) error {
		return runInputs(ctx, repartitionOptions(addrs, cfg, group, nil), popts)
	})
	sourceEnds := offsets{}
	for table, n := range counts {
		for t2, ps := range endOffsets(t, addrs, []string{gen.DefaultDebeziumPrefix + table}, int(n)) {
			sourceEnds[t2] = ps
		}
	}
	waitCommitted(t, addrs, group+repartition.GroupSuffix, written(sourceEnds), 90*time.Second)
	ends := endOffsets(t, addrs, repartition.Topics(cfg), len(layout[repartition.Topics(cfg)[0]]))
	waitCommitted(t, addrs, group, written(ends), 90*time.Second)
	final.Stop(t)

	// Copies: each good event of the history is one repartitioned record;
	// the repartition topics hold more.
	st := g.Stats()
	good := int64(st.Events - st.Bad)
	copies := map[string]int{} // per account: records minus events
	for _, line := range strings.Split(strings.TrimSpace(string(w.jsonl)), "\n") {
		var ev struct {
			Account string `json:"account_id"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Account != "" {
			copies[ev.Account]--
		}
	}
	total := int64(0)
	for _, topic := range repartition.Topics(cfg) {
		for _, m := range testenv.ReadTopic(t, addrs, topic, len(layout[topic])) {
			copies[string(m.Key)]++
			total++
		}
	}
	if total <= good {
		t.Fatalf("the repartition topics hold %d records for %d events: no copies, the kills did not fall between a write and its commit", total, good)
	}
	most := 0
	for _, n := range copies {
		most = max(most, n)
	}
	t.Logf("%d events of %d accounts repartitioned as %d records: %d copies written again after the kills, up to %d for one account", good, len(gold.snaps), total, total-good, most)
	if most <= 16 {
		t.Errorf("no account got more than 16 copies (%d at most): the event_id ring alone could have dropped them all, so this run does not show the source positions at work", most)
	}

	checkCollapsed(t, conn, len(gold.snaps))
	compareLatest(t, conn, gold, interleaved, unbounded)

	dlq, ok := topicLayout(addrs, []string{kafkaio.DeadLetters})
	if !ok {
		t.Fatal("no dead-letter topic")
	}
	dead := 0
	for _, d := range testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, len(dlq[kafkaio.DeadLetters])) {
		src := testenv.Header(d, kafkaio.HeaderSource)
		if !strings.HasPrefix(src, gen.DefaultDebeziumPrefix) || testenv.Header(d, kafkaio.HeaderReason) == "" {
			t.Errorf("dead letter from %q with reason %q: want a declared input's record and its reason", src, testenv.Header(d, kafkaio.HeaderReason))
		}
		dead++
	}
	if dead < st.Bad {
		t.Errorf("%d dead letters, want at least the %d records that cannot be mapped", dead, st.Bad)
	}
}

// written keeps the partitions of ends that hold records: nothing is
// committed for an empty one.
func written(ends offsets) offsets {
	out := offsets{}
	for t, ps := range ends {
		for p, end := range ps {
			if end > 0 {
				if out[t] == nil {
					out[t] = map[int]int64{}
				}
				out[t][p] = end
			}
		}
	}
	return out
}

// topicLayout returns an offsets map naming every partition of topics, and
// false until they all exist.
func topicLayout(addrs []string, topics []string) (offsets, bool) {
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, false
	}
	out := offsets{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return nil, false
		}
		out[t.Name] = map[int]int64{}
		for _, p := range t.Partitions {
			out[t.Name][p.ID] = 0
		}
	}
	return out, len(out) == len(topics)
}
