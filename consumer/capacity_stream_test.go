package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// capStream is a generated history on one input topic of four partitions,
// and its replay at the pipelines' wall clock.
type capStream struct {
	topic string
	cfg   *config.Config
	wall  time.Time
	msgs  []kafka.Message
	snaps map[string]string // replay's snapshot per account
	hist  map[string]string // replay's tier changes per account
}

func newCapStream(t *testing.T, cfg *config.Config) *capStream {
	t.Helper()
	g, err := gen.New(gen.Options{Accounts: 600, Events: 12000, Seed: 17, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 13})
	if err != nil {
		t.Fatal(err)
	}
	s := &capStream{topic: "crm.events", cfg: cfg, wall: time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)}
	var lines bytes.Buffer
	for {
		r, ok := g.Next()
		if !ok {
			break
		}
		lines.Write(r.Line)
		lines.WriteByte('\n')
		s.msgs = append(s.msgs, kafka.Message{Topic: s.topic, Key: []byte(r.AccountID), Value: append([]byte(nil), r.Line...)})
	}
	var snaps, changes bytes.Buffer
	if _, _, err := replay.Run(replay.Options{Config: cfg, AsOf: s.wall, Input: &lines, Output: &snaps, Changes: &changes}); err != nil {
		t.Fatal(err)
	}
	s.snaps = newestBy(t, writeTemp(t, snaps.Bytes()), "account_id", "version")
	s.hist = byAccount(t, writeTemp(t, changes.Bytes()))
	held, fell := map[string]int{}, 0
	for _, l := range s.snaps {
		for _, tier := range config.TierNames {
			if strings.Contains(l, `"tier":"`+tier+`"`) {
				held[tier]++
			}
		}
		if strings.Contains(l, `"tier_reason":"capacity: rank`) {
			fell++
		}
	}
	if fell == 0 || held[config.Major] != cfg.Tiers.Major.MaxAccounts {
		t.Fatalf("the workload should fill major and leave accounts without a place: %v, %d without", held, fell)
	}
	t.Logf("replay: %v, %d accounts without a place", held, fell)
	return s
}

// produce writes the history into a new cluster.
func (s *capStream) produce(t *testing.T) []string {
	t.Helper()
	c := newCluster(t, 4, []string{s.topic})
	addrs := c.ListenAddrs()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), s.msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return addrs
}

// capInstance is one `pyramid run` of the test, with its own file sink
// and the latest capacity ranking it applied.
type capInstance struct {
	*running
	dir     string
	files   *sink.Files
	mu      sync.Mutex
	last    *scoring.Ranking
	count   int
	metrics *metrics.Metrics
}

func (s *capStream) start(t *testing.T, addrs []string) *capInstance {
	t.Helper()
	in := &capInstance{dir: t.TempDir(), metrics: metrics.New(nil)}
	files, err := sink.NewFiles(in.dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in.files = files
	opts := testOptions(addrs, files)
	opts.Topics = []string{s.topic}
	opts.Config = s.cfg
	opts.Now = func() time.Time { return s.wall }
	opts.BackfillLag = 0 // the default: the backfill clock, as in replay
	opts.ReevalInterval = 200 * time.Millisecond
	opts.MergeWait = 5 * time.Second
	opts.Metrics = in.metrics
	opts.OnRanking = func(r *scoring.Ranking) {
		in.mu.Lock()
		in.last, in.count = r, in.count+1
		in.mu.Unlock()
	}
	in.running = start(t, opts)
	return in
}

func (in *capInstance) ranking() (*scoring.Ranking, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.last, in.count
}

// newest merges the instances' sink files: the newest snapshot of each
// account, and each account's tier changes by version, each once (a
// partition that moved may have written one twice, and the instances'
// files interleave nothing).
func newest(t *testing.T, ins ...*capInstance) (snaps, hist map[string]string) {
	t.Helper()
	var all bytes.Buffer
	type change struct {
		version int
		line    string
	}
	byAcc := map[string][]change{}
	seen := map[string]bool{}
	for _, in := range ins {
		all.Write(readFile(t, filepath.Join(in.dir, sink.SnapshotsFile)))
		for _, l := range strings.Split(string(readFile(t, filepath.Join(in.dir, sink.ChangesFile))), "\n") {
			if l == "" || seen[l] {
				continue
			}
			seen[l] = true
			var c struct {
				AccountID string `json:"account_id"`
				Version   int    `json:"version"`
			}
			if err := json.Unmarshal([]byte(l), &c); err != nil {
				t.Fatal(err)
			}
			byAcc[c.AccountID] = append(byAcc[c.AccountID], change{c.Version, l})
		}
	}
	snaps = map[string]string{}
	if all.Len() > 0 {
		snaps = newestBy(t, writeTemp(t, all.Bytes()), "account_id", "version")
	}
	hist = map[string]string{}
	for id, cs := range byAcc {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].version < cs[j].version })
		for _, c := range cs {
			hist[id] += c.line + "\n"
		}
	}
	return snaps, hist
}

// TestCapacityTwoInstancesMatchReplay: two `pyramid run` instances in one
// group share the four partitions of a year of history, each ranking its
// partitions with the other's candidates from the capacity topic; the
// snapshots and tier histories they write together are replay's with the
// same caps, and both instances end on the same ranking.
func TestCapacityTwoInstancesMatchReplay(t *testing.T) {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 8
	cfg.Tiers.Named.MaxAccounts = 15
	s := newCapStream(t, cfg)
	addrs := s.produce(t)
	a := s.start(t, addrs)
	b := s.start(t, addrs)
	waitUntil(t, "the instances share the partitions", func() bool {
		return len(a.p.Partitions()) == 2 && len(b.p.Partitions()) == 2
	})
	// Both instances end on the same ranking (their latest, as each
	// re-ranks when the other's candidates change), and what they wrote is
	// replay's.
	agree := func() (bool, string) {
		ra, na := a.ranking()
		rb, nb := b.ranking()
		if na == 0 || nb == 0 {
			return false, fmt.Sprintf("rankings applied: %d and %d", na, nb)
		}
		for _, tier := range []scoring.Tier{scoring.Major, scoring.Named} {
			if ra.Tier(tier) != rb.Tier(tier) {
				return false, fmt.Sprintf("%v: %+v and %+v", tier, ra.Tier(tier), rb.Tier(tier))
			}
		}
		return true, ""
	}
	deadline := time.Now().Add(90 * time.Second)
	var snaps, hist map[string]string
	for {
		snaps, hist = newest(t, a, b)
		ok, why := agree()
		if ok && equalMaps(snaps, s.snaps) && equalMaps(hist, s.hist) {
			break
		}
		if time.Now().After(deadline) {
			diff(t, "snapshot", snaps, s.snaps)
			diff(t, "tier history", hist, s.hist)
			t.Fatalf("the instances did not reach replay's result; rankings: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ra, _ := a.ranking()
	a.Stop(t)
	b.Stop(t)
	t.Logf("%d accounts as replay; major %+v, named %+v", len(snaps), ra.Tier(scoring.Major), ra.Tier(scoring.Named))
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// readFile returns the complete lines of a file the sink may be writing;
// a file not written yet is empty.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

// tiersOf extracts the tier of every account from snapshot lines.
func tiersOf(snaps map[string]string) map[string]string {
	out := map[string]string{}
	for id, l := range snaps {
		i := strings.Index(l, `"tier":"`)
		out[id] = l[i+8 : i+8+strings.IndexByte(l[i+8:], '"')]
	}
	return out
}

// TestCapacityCapChangeReranks: restarted with a larger cap, the pipeline
// gives the new places at once, to the accounts replay gives them to.
func TestCapacityCapChangeReranks(t *testing.T) {
	cfg := config.Default()
	cfg.Tiers.Major.MaxAccounts = 6
	s := newCapStream(t, cfg)
	addrs := s.produce(t)
	// Each run writes only the accounts it changed; together they hold
	// every account's newest snapshot.
	var runs []*capInstance
	run := func(s *capStream, want map[string]string) {
		t.Helper()
		in := s.start(t, addrs)
		runs = append(runs, in)
		waitUntil(t, "the tiers of replay", func() bool {
			snaps, _ := newest(t, runs...)
			return equalMaps(tiersOf(snaps), want)
		})
		in.Stop(t)
	}
	run(s, tiersOf(s.snaps))

	wider := config.Default()
	wider.Tiers.Major.MaxAccounts = 9
	s2 := newCapStream(t, wider)
	if m := tiersOf(s2.snaps); equalMaps(m, tiersOf(s.snaps)) {
		t.Fatal("the wider cap should place more accounts")
	}
	run(s2, tiersOf(s2.snaps))
}

// TestCapacityWaitsForOneConfiguration: instances whose caps differ never
// rank with each other's candidates: every partition waits and says so in
// pyramid_capacity_waiting_partitions.
func TestCapacityWaitsForOneConfiguration(t *testing.T) {
	six, seven := config.Default(), config.Default()
	six.Tiers.Major.MaxAccounts, seven.Tiers.Major.MaxAccounts = 6, 7
	s := newCapStream(t, six)
	addrs := s.produce(t)
	a := s.start(t, addrs)
	s7 := *s
	s7.cfg = seven
	b := s7.start(t, addrs)
	waitUntil(t, "every partition waiting", func() bool {
		return len(a.p.Partitions()) == 2 && len(b.p.Partitions()) == 2 &&
			testutil.ToFloat64(a.metrics.CapacityWaiting)+testutil.ToFloat64(b.metrics.CapacityWaiting) == 4
	})
	a.Stop(t)
	b.Stop(t)
}
