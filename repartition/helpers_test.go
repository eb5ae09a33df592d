package repartition

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/inputs"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
)

const nativeTopic = "crm.orders"

// newCluster starts an in-process broker with the native topic (native
// partitions) and each source topic with its partition count.
func newCluster(tb testing.TB, native int32, sources map[string]int32) *kfake.Cluster {
	tb.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	if native > 0 {
		opts = append(opts, kfake.SeedTopics(native, nativeTopic))
	}
	for t, n := range sources {
		opts = append(opts, kfake.SeedTopics(n, t))
	}
	return testenv.Kafka(tb, opts...)
}

// testOptions are options with fast group timings for the in-process
// broker.
func testOptions(addrs []string, cfg *config.Config) Options {
	level := slog.LevelWarn
	if os.Getenv("PYRAMID_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return Options{
		Brokers: addrs, Config: cfg, Group: "pyramid", NativeTopics: []string{nativeTopic},
		Metrics:           metrics.New(nil),
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    1500 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		FetchMaxWait:      100 * time.Millisecond,
		CommitInterval:    100 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
	}
}

// running is a repartitioner run in the background.
type running struct {
	r *Repartitioner
	*testenv.Background
}

func start(tb testing.TB, opts Options) *running {
	tb.Helper()
	r, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return &running{r: r, Background: testenv.Go(tb, r.Run)}
}

// source is a record of a declared input, before it has an offset.
type source struct {
	topic      string
	key, value []byte
}

// crmRecords reads a fixture of package inputs: the CRM history as
// Debezium wrote it.
func crmRecords(tb testing.TB, name string) []source {
	tb.Helper()
	f, err := os.Open(filepath.Join("..", "inputs", "testdata", "crm", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []source
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d struct {
			Topic string          `json:"topic"`
			Key   json.RawMessage `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			tb.Fatal(err)
		}
		s := source{topic: d.Topic, key: d.Key}
		if string(d.Value) != "null" {
			s.value = d.Value
		}
		out = append(out, s)
	}
	return out
}

func crmConfig(tb testing.TB) *config.Config {
	tb.Helper()
	cfg, err := config.Load(filepath.Join("..", "inputs", "testdata", "crm", "config.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// generated renders a generated history as Debezium records (gen.Debezium)
// and returns them with the configuration that maps them.
func generated(tb testing.TB, accounts, events int, seed uint64) ([]source, *config.Config) {
	tb.Helper()
	g, err := gen.New(gen.Options{Accounts: accounts, Events: events, Seed: seed, BadRatio: 0.005,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 12})
	if err != nil {
		tb.Fatal(err)
	}
	var d gen.Debezium
	var out []source
	for {
		rec, ok := g.Next()
		if !ok {
			break
		}
		t, k, v := d.Record(rec)
		out = append(out, source{t, k, v})
	}
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
	return out, cfg
}

// mixedSources produces a generated history (see generated) into a new
// cluster of 4 native partitions, on source topics of 5, 3, 7 and 1
// partitions.
func mixedSources(tb testing.TB, accounts, events int, seed uint64) ([]string, *config.Config, map[string]int32, []positioned) {
	tb.Helper()
	recs, cfg := generated(tb, accounts, events, seed)
	counts := map[string]int32{}
	for i, topic := range []string{"crmdb.public.orders", "crmdb.public.opportunities", "crmdb.public.activities", "crmdb.public.accounts"} {
		counts[topic] = []int32{5, 3, 7, 1}[i]
	}
	addrs := newCluster(tb, 4, counts).ListenAddrs()
	return addrs, cfg, counts, produceSources(tb, addrs, counts, recs)
}

// sourceCounts gives every topic of recs n partitions.
func sourceCounts(recs []source, n int32) map[string]int32 {
	m := map[string]int32{}
	for _, r := range recs {
		m[r.topic] = n
	}
	return m
}

// positioned is a source record where it was produced.
type positioned struct {
	source
	partition int
	offset    int64
}

// produceSources writes recs keyed by their primary key, partitioned with
// murmur2 over each topic's partition count as a Java connector does, in
// order, and returns them with their positions.
func produceSources(tb testing.TB, addrs []string, counts map[string]int32, recs []source) []positioned {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	type tp struct {
		t string
		p int
	}
	bal := &kafka.Murmur2Balancer{}
	groups := map[tp][]int{}
	var order []tp
	out := make([]positioned, len(recs))
	for i, r := range recs {
		parts := make([]int, counts[r.topic])
		for p := range parts {
			parts[p] = p
		}
		k := tp{r.topic, bal.Balance(kafka.Message{Key: r.key}, parts...)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
		out[i] = positioned{source: r, partition: k.p}
	}
	for _, k := range order {
		// The next offset of the partition, for the positions.
		ends, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{k.t: {kafka.LastOffsetOf(k.p)}}})
		if err != nil {
			tb.Fatal(err)
		}
		next := ends.Topics[k.t][0].LastOffset
		idx := groups[k]
		for len(idx) > 0 {
			n := min(len(idx), 500)
			batch := make([]kafka.Record, n)
			for j, i := range idx[:n] {
				batch[j] = kafka.Record{Key: kafka.NewBytes(recs[i].key), Value: kafka.NewBytes(recs[i].value), Time: time.Now()}
				out[i].offset = next
				next++
			}
			resp, err := cl.Produce(context.Background(), &kafka.ProduceRequest{Topic: k.t, Partition: k.p,
				RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(batch...)})
			if err == nil && resp.Error != nil {
				err = resp.Error
			}
			if err != nil {
				tb.Fatalf("produce %s/%d: %v", k.t, k.p, err)
			}
			idx = idx[n:]
		}
	}
	return out
}

// ends returns the end offset of every partition of the positioned
// records' topics.
func ends(recs []positioned, counts map[string]int32) map[string]map[int]int64 {
	out := map[string]map[int]int64{}
	for t, n := range counts {
		out[t] = map[int]int64{}
		for p := 0; p < int(n); p++ {
			out[t][p] = 0
		}
	}
	for _, r := range recs {
		out[r.topic][r.partition] = max(out[r.topic][r.partition], r.offset+1)
	}
	return out
}

// waitCommitted waits until group has committed want.
func waitCommitted(tb testing.TB, addrs []string, group string, want map[string]map[int]int64, timeout time.Duration) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
		for t, ps := range want {
			for p := range ps {
				req.Topics[t] = append(req.Topics[t], p)
			}
		}
		resp, err := cl.OffsetFetch(context.Background(), req)
		if err == nil && resp.Error == nil {
			var lag []string
			for t, ps := range resp.Topics {
				for _, p := range ps {
					if w := want[t][p.Partition]; w > 0 && p.CommittedOffset < w {
						lag = append(lag, fmt.Sprintf("%s/%d %d<%d", t, p.Partition, p.CommittedOffset, want[t][p.Partition]))
					}
				}
			}
			if len(lag) == 0 {
				return
			}
			sort.Strings(lag)
			last = strings.Join(lag, ", ")
		} else {
			last = fmt.Sprint(err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s has not committed everything after %v: %s", group, timeout, last)
}

// mappedEvent is one event the mapper makes of a source record, where it
// must land.
type mappedEvent struct {
	src       string // topic/partition/offset
	index     int
	account   string
	json      string
	partition int // of the repartition topic
}

// expected maps recs as the repartitioner must: every event, in source
// order, with the repartition partition of its account, and the records
// that cannot be mapped.
func expected(tb testing.TB, cfg *config.Config, recs []positioned, partitions int) (events []mappedEvent, rejected []positioned) {
	tb.Helper()
	m, err := inputs.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	bal := &kafka.Murmur2Balancer{}
	var evs []inputs.Event
	for _, r := range recs {
		evs, err = m.Map(inputs.Record{Topic: r.topic, Partition: r.partition, Offset: r.offset, Key: r.key, Value: r.value}, evs[:0])
		if err != nil {
			rejected = append(rejected, r)
			continue
		}
		for i, e := range evs {
			events = append(events, mappedEvent{src: fmt.Sprintf("%s/%d/%d", r.topic, r.partition, r.offset), index: i,
				account: strings.Clone(e.AccountID), json: string(e.JSON), partition: bal.Balance(kafka.Message{Key: []byte(e.AccountID)}, parts...)})
		}
	}
	return events, rejected
}

// downstream reads the repartition topics as the pipeline does: in each
// partition, in log order, an event at or below the highest source
// position read from its source topic-partition (offset, then index) is
// dropped. It checks every record's partition and key, and returns the
// events applied, per account and source topic-partition, and how many
// copies were dropped.
func downstream(tb testing.TB, addrs []string, partitions int) (applied map[string][]mappedEvent, dropped int) {
	tb.Helper()
	applied = map[string][]mappedEvent{}
	type pos struct {
		off int64
		idx int
	}
	high := map[string]pos{}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	bal := &kafka.Murmur2Balancer{}
	for _, typ := range []string{"account", "activity", "opportunity", "order"} {
		for _, m := range testenv.ReadTopic(tb, addrs, TopicPrefix+typ, partitions) {
			s, ok := kafkaio.ParseSource(m.Headers)
			if !ok {
				tb.Fatalf("%s/%d/%d: no source headers: %v", m.Topic, m.Partition, m.Offset, m.Headers)
			}
			var ev struct {
				Account string `json:"account_id"`
			}
			if err := json.Unmarshal(m.Value, &ev); err != nil || ev.Account != string(m.Key) {
				tb.Fatalf("%s/%d/%d: key %q, value %s", m.Topic, m.Partition, m.Offset, m.Key, m.Value)
			}
			if want := bal.Balance(kafka.Message{Key: m.Key}, parts...); m.Partition != want {
				tb.Fatalf("account %s is in partition %d, murmur2 says %d", m.Key, m.Partition, want)
			}
			tp := fmt.Sprintf("%s/%d", s.Topic, s.Partition)
			k := fmt.Sprintf("%s/%d %s", m.Topic, m.Partition, tp) // the dedup is per partition
			if h, ok := high[k]; ok && (s.Offset < h.off || s.Offset == h.off && s.Index <= h.idx) {
				dropped++
				continue
			}
			high[k] = pos{s.Offset, s.Index}
			ka := string(m.Key) + " " + tp
			applied[ka] = append(applied[ka], mappedEvent{src: fmt.Sprintf("%s/%d", tp, s.Offset), index: s.Index,
				account: string(m.Key), json: string(m.Value), partition: m.Partition})
		}
	}
	return applied, dropped
}

// checkExactlyOnce compares what downstream applied with the expected
// events: each exactly once, in source order per account and source
// topic-partition.
func checkExactlyOnce(tb testing.TB, applied map[string][]mappedEvent, want []mappedEvent) {
	tb.Helper()
	exp := map[string][]mappedEvent{}
	for _, e := range want {
		tp := e.src[:strings.LastIndexByte(e.src, '/')]
		k := e.account + " " + tp
		exp[k] = append(exp[k], e)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for k := range exp {
			seen[k] = true
			if !yield(k) {
				return
			}
		}
		for k := range applied {
			if !seen[k] && !yield(k) {
				return
			}
		}
	})
	bad := 0
	for _, k := range keys {
		g, w := applied[k], exp[k]
		if !slices.Equal(g, w) {
			bad++
			if bad <= 5 {
				tb.Errorf("%s: applied %d events, want %d in source order\n got: %v\nwant: %v", k, len(g), len(w), g, w)
			}
		}
	}
	if bad > 0 {
		tb.Fatalf("%d of %d (account, source partition) pairs differ", bad, len(keys))
	}
}

// faultyWriter is the Kafka writer of a process that dies: after
// Produces successful writes to the repartition topics it calls die and
// fails every later write and commit, as a killed process sends nothing.
type faultyWriter struct {
	kafkaio.Writer
	mu       sync.Mutex
	produces int
	dead     bool
	die      func()
}

var errKilled = fmt.Errorf("killed")

func (w *faultyWriter) Produce(ctx context.Context, topic string, partition int, recs []kafkaio.Record) error {
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return errKilled
	}
	w.mu.Unlock()
	err := w.Writer.Produce(ctx, topic, partition, recs)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && strings.HasPrefix(topic, TopicPrefix) {
		if w.produces--; w.produces == 0 {
			w.dead = true
			w.die()
		}
	}
	return err
}

func (w *faultyWriter) Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead {
		return errKilled
	}
	return w.Writer.Commit(gen, offsets)
}
