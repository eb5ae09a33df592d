package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// testNow is the fixed wall clock of the tests.
var testNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

var testTopics = []string{"t.orders", "t.opportunities", "t.activities", "t.accounts"}

// newCluster starts an in-process broker with the input topics, emulating
// testenv.KafkaRelease().
func newCluster(tb testing.TB, partitions int32, topics []string, extra ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	opts := append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, extra...)
	return testenv.Kafka(tb, opts...)
}

// msg is one input message.
type msg struct {
	topic     string
	partition int
	key       string
	value     []byte
	bad       string // expected rejection reason, "" for a valid event
}

// workload is a deterministic set of input messages, each account's events
// on one topic-partition so that "log order" per account is well defined.
type workload struct {
	msgs       []msg
	partitions int
}

func partitionOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// makeWorkload generates events for accounts; badRate of them malformed.
func makeWorkload(accounts, events, partitions int, badRate float64, seed int64) *workload {
	return makeWorkloadIDs("ev-", accounts, events, partitions, badRate, seed)
}

// makeWorkloadIDs is makeWorkload with event ids prefixed by prefix.
func makeWorkloadIDs(prefix string, accounts, events, partitions int, badRate float64, seed int64) *workload {
	r := rand.New(rand.NewSource(seed))
	w := &workload{partitions: partitions}
	stages := []string{"prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"}
	day := 24 * time.Hour
	for i := 0; i < events; i++ {
		a := r.Intn(accounts)
		acc := fmt.Sprintf("acc-%05d", a)
		at := testNow.Add(-time.Duration(r.Int63n(int64(330 * day)))).Format(time.RFC3339)
		id := prefix + strconv.Itoa(i)
		if i > 0 && r.Intn(100) == 0 {
			id = prefix + strconv.Itoa(i-1) // a producer retry: duplicate id
		}
		big := a%7 == 0
		var body string
		switch k := r.Intn(10); {
		case k < 4:
			amt := float64(r.Intn(2000000)) / 100
			if big {
				amt *= 40
			}
			if r.Intn(15) == 0 {
				amt = -amt / 3
			}
			body = fmt.Sprintf(`"type":"order","order_id":"o-%d","amount":%.2f`, i, amt)
			if r.Intn(5) == 0 {
				body += fmt.Sprintf(`,"opportunity_id":"op-%d-%d"`, a, r.Intn(4))
			}
		case k < 6:
			amt := float64(r.Intn(5000000)) / 100
			if big {
				amt *= 30
			}
			body = fmt.Sprintf(`"type":"opportunity","opportunity_id":"op-%d-%d","stage":"%s","amount":%.2f`, a, r.Intn(4), stages[r.Intn(len(stages))], amt)
		case k < 9:
			body = fmt.Sprintf(`"type":"activity","kind":"call","owner_id":"rep-%d"`, r.Intn(20))
		default:
			body = fmt.Sprintf(`"type":"account","name":"Account %d","owner_id":"rep-%d","wallet":%d`, a, a%20, r.Intn(5000000))
		}
		value := fmt.Sprintf(`{"event_id":"%s","account_id":"%s","occurred_at":"%s",%s}`, id, acc, at, body)
		m := msg{key: acc, value: []byte(value)}
		if r.Float64() < badRate {
			switch r.Intn(5) {
			case 0:
				m.value, m.bad = []byte(`{"event_id": "x", broken`), event.ReasonNotJSON
			case 1:
				m.value, m.bad = []byte(fmt.Sprintf(`{"event_id":"%s","type":"activity","account_id":"%s","occurred_at":"%s"}`, id, acc, at)), event.ReasonMissingField
			case 2:
				m.value, m.bad = []byte(fmt.Sprintf(`{"event_id":"%s","type":"opportunity","account_id":"%s","occurred_at":"%s","opportunity_id":"x","stage":"dreaming","amount":5}`, id, acc, at)), event.ReasonUnknownStage
			case 3:
				fut := testNow.Add(48 * time.Hour).Format(time.RFC3339)
				m.value, m.bad = []byte(fmt.Sprintf(`{"event_id":"%s","type":"activity","kind":"call","account_id":"%s","occurred_at":"%s"}`, id, acc, fut)), event.ReasonFuture
			case 4:
				m.value, m.bad = []byte(fmt.Sprintf(`{"event_id":"%s","type":"fax","account_id":"%s","occurred_at":"%s"}`, id, acc, at)), event.ReasonUnknownType
			}
		}
		hash := fnv.New32a()
		hash.Write([]byte(acc))
		m.topic = testTopics[hash.Sum32()%uint32(len(testTopics))]
		m.partition = partitionOf(acc, partitions)
		w.msgs = append(w.msgs, m)
	}
	return w
}

// golden applies every valid event per account in log order at testNow.
func (w *workload) golden(tb testing.TB) map[string]scoring.Snapshot {
	tb.Helper()
	cfg := config.Default()
	dec := event.NewDecoder(cfg)
	eng := scoring.NewEngine(scoring.NewParams(cfg))
	asOf := testNow.UnixNano()
	var out scoring.Output
	for _, m := range w.msgs {
		if m.bad != "" {
			continue
		}
		ev, err := dec.Decode(m.value)
		if err != nil {
			tb.Fatalf("golden: %v", err)
		}
		out.Reset()
		eng.Apply(&ev, asOf, &out)
	}
	g := map[string]scoring.Snapshot{}
	for _, id := range eng.IDs() {
		g[id] = eng.Snapshot(eng.Account(id), asOf)
	}
	return g
}

// produceAll writes messages in order, batched per topic-partition.
func produceAll(tb testing.TB, addrs []string, msgs []msg) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	type tp struct {
		t string
		p int
	}
	var order []tp
	groups := map[tp][]msg{}
	for _, m := range msgs {
		k := tp{m.topic, m.partition}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	for _, k := range order {
		ms := groups[k]
		for len(ms) > 0 {
			n := min(len(ms), 1000)
			var err error
			for attempt := 0; attempt < 100; attempt++ {
				batch := make([]kafka.Record, n)
				for i := range batch {
					batch[i] = kafka.Record{Key: kafka.NewBytes([]byte(ms[i].key)), Value: kafka.NewBytes(ms[i].value), Time: time.Now()}
				}
				var resp *kafka.ProduceResponse
				resp, err = cl.Produce(context.Background(), &kafka.ProduceRequest{Topic: k.t, Partition: k.p,
					RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(batch...)})
				if err == nil && resp.Error != nil {
					err = resp.Error
				}
				if err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				tb.Fatalf("produce %s/%d: %v", k.t, k.p, err)
			}
			ms = ms[n:]
		}
	}
}

// memSink records every row; it is safe for concurrent use.
type memSink struct {
	mu     sync.Mutex
	snaps  map[string]scoring.Snapshot // newest version per account
	rows   int
	writes int
	alerts []scoring.Alert
	fail   func() error // optional: fail a write
	// contents holds the JSON of every (account, version) written, and
	// conflicts each one written again with another content.
	contents  map[string]string
	conflicts []string
}

func newMemSink() *memSink {
	return &memSink{snaps: map[string]scoring.Snapshot{}, contents: map[string]string{}}
}

// oneContent fails the test for every (account, version) the sink got
// with more than one content.
func (s *memSink) oneContent(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.conflicts {
		if i == 5 {
			tb.Errorf("... and %d more", len(s.conflicts)-5)
			break
		}
		tb.Error(c)
	}
	if len(s.conflicts) > 0 {
		tb.Fatalf("%d of %d (account, version) pairs written with more than one content", len(s.conflicts), len(s.contents))
	}
}

func (s *memSink) Write(ctx context.Context, b *sink.Batch) error {
	if s.fail != nil {
		for {
			err := s.fail()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.rows += b.Len()
	s.alerts = append(s.alerts, b.Alerts...)
	for _, sn := range b.Snapshots {
		k, c := sn.AccountID+"/"+strconv.FormatUint(sn.Version, 10), string(sn.AppendJSON(nil))
		if old, ok := s.contents[k]; !ok {
			s.contents[k] = c
		} else if old != c {
			s.conflicts = append(s.conflicts, fmt.Sprintf("%s written as\n%s\nand as\n%s", k, old, c))
		}
		if old, ok := s.snaps[sn.AccountID]; !ok || sn.Version >= old.Version {
			s.snaps[sn.AccountID] = sn
		}
	}
	return nil
}

func (s *memSink) Healthy() error              { return nil }
func (s *memSink) Close(context.Context) error { return nil }

func (s *memSink) latest() map[string]scoring.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]scoring.Snapshot, len(s.snaps))
	for k, v := range s.snaps {
		m[k] = v
	}
	return m
}

// testOptions returns options with fast group timings for kfake.
func testOptions(addrs []string, s sink.Sink) Options {
	level := slog.LevelWarn
	if os.Getenv("PYRAMID_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return Options{
		Brokers: addrs, Topics: testTopics, Sink: s,
		Now:               func() time.Time { return testNow },
		FlushInterval:     100 * time.Millisecond,
		FlushSize:         500,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    1500 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		FetchMaxWait:      100 * time.Millisecond,
		// The golden evaluates every event at testNow; these tests are
		// about delivery, so the pipeline does too (no backfill clock).
		// TestBackfillMatchesReplay covers the backfill clock.
		BackfillLag: -1,
	}
}

// running is a pipeline run in the background.
type running struct {
	p *Pipeline
	*testenv.Background
}

func start(tb testing.TB, opts Options) *running {
	tb.Helper()
	p, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return &running{p: p, Background: testenv.Go(tb, p.Run)}
}

// endOffsets returns the end offset of every topic-partition.
func endOffsets(msgs []msg) map[string]map[int]int64 {
	m := map[string]map[int]int64{}
	for _, x := range msgs {
		if m[x.topic] == nil {
			m[x.topic] = map[int]int64{}
		}
		m[x.topic][x.partition]++
	}
	return m
}

// waitCommitted waits until the group committed every message.
func waitCommitted(tb testing.TB, addrs []string, group string, want map[string]map[int]int64, timeout time.Duration) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	topics := map[string][]int{}
	for t, ps := range want {
		for p := range ps {
			topics[t] = append(topics[t], p)
		}
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: topics})
		if err == nil && resp.Error == nil {
			behind := 0
			var lag []string
			for t, ps := range want {
				for p, end := range ps {
					got := int64(-1)
					for _, pr := range resp.Topics[t] {
						if pr.Partition == p {
							got = pr.CommittedOffset
						}
					}
					if got < end {
						behind++
						lag = append(lag, fmt.Sprintf("%s/%d %d<%d", t, p, got, end))
					}
				}
			}
			if behind == 0 {
				return
			}
			sort.Strings(lag)
			last = strings.Join(lag, ", ")
		} else {
			last = fmt.Sprint(err, resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("offsets not all committed after %v: %s", timeout, last)
}

// compare checks the newest snapshot of every account against the golden.
func compare(tb testing.TB, got, want map[string]scoring.Snapshot, checkVersion bool) {
	tb.Helper()
	bad := 0
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			bad++
			if bad <= 5 {
				tb.Errorf("account %s: no snapshot in the sink", id)
			}
			continue
		}
		gv, wv := g.Version, w.Version
		g.Version, w.Version = 0, 0
		if g != w {
			bad++
			if bad <= 5 {
				tb.Errorf("account %s differs:\n got %+v\nwant %+v", id, g, w)
			}
		} else if checkVersion && gv != wv {
			bad++
			if bad <= 5 {
				tb.Errorf("account %s: version %d, want %d (an event applied twice or lost)", id, gv, wv)
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			bad++
			tb.Errorf("account %s in the sink but not in the golden", id)
		}
	}
	if bad > 0 {
		tb.Fatalf("%d of %d accounts differ", bad, len(want))
	}
}

var errInjected = errors.New("injected")

// waitUntil waits up to 30 s for cond, polling.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sources returns "topic/partition/offset" of every message, as produced
// into a fresh cluster.
func sources(msgs []msg) []string {
	next := map[string]int{}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		k := fmt.Sprintf("%s/%d", m.topic, m.partition)
		out[i] = fmt.Sprintf("%s/%d", k, next[k])
		next[k]++
	}
	return out
}

// committedTotal sums the group's committed offsets over want's partitions.
func committedTotal(tb testing.TB, addrs []string, group string, want map[string]map[int]int64) (got, total int64) {
	tb.Helper()
	for t, ps := range want {
		for _, end := range ps {
			total += end
		}
		for _, c := range committedOffsets(tb, addrs, group, want)[t] {
			got += c
		}
	}
	return got, total
}

// committedOffsets returns the group's committed offsets of want's
// partitions (0 where none is committed).
func committedOffsets(tb testing.TB, addrs []string, group string, want map[string]map[int]int64) map[string]map[int]int64 {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	topics := map[string][]int{}
	for t, ps := range want {
		for p := range ps {
			topics[t] = append(topics[t], p)
		}
	}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: topics})
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]map[int]int64{}
	for t, ps := range resp.Topics {
		got[t] = map[int]int64{}
		for _, p := range ps {
			got[t][p.Partition] = max(p.CommittedOffset, 0)
		}
	}
	return got
}
