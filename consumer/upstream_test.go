package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/sink"
)

// A backlog is dropped when the repartitioner has committed its source
// partition to the end, if it was read before the question was asked; a
// backlog read after it, or of a partition not read to its end, stays.
func TestSettle(t *testing.T) {
	s := newSourcePositions([]string{repartition.TopicPrefix + "order"})
	const sec = int64(time.Second)
	read := func(x *kafkaio.Source, backlog, wall int64) {
		x.Backlog = backlog
		s.copied(0, x, wall)
	}
	read(src("o", 0, 10, 0), 5000, 1*sec) // stale: its partition is read to its end
	read(src("o", 1, 10, 0), 300, 1*sec)  // still behind
	read(src("o", 2, 10, 0), 70, 5*sec)   // read after the question
	read(src("x", 0, 10, 0), 9, 1*sec)    // a topic the answer does not know
	u := &upstreamEnds{at: 3 * sec, caught: map[string][]bool{"o": {true, false, true}}}
	s.settle(u)
	if got, want := s.upstream[0], int64(300+70+9); got != want {
		t.Errorf("upstream %d after settling, want %d", got, want)
	}
	if len(s.behind) != 3 {
		t.Errorf("%d source partitions behind, want 3", len(s.behind))
	}
	s.settle(&upstreamEnds{at: 6 * sec, caught: map[string][]bool{"o": {true, true, true}, "x": {true}}})
	if s.upstream[0] != 0 || len(s.behind) != 0 {
		t.Errorf("all read to their end: upstream %d, %d behind", s.upstream[0], len(s.behind))
	}
}

// The backfill of a repartitioned history ends as soon as the
// repartitioner has committed its source to the end, although the last
// records to reach a partition said their source partition had more: the
// partition re-emits its accounts at the wall clock within a few lag
// intervals, not after upstreamQuiet (a minute). Without a commit, it ends
// once the source partition has been quiet for upstreamQuiet (on a clock
// run 200 times faster here). Either way no new message comes to say so.
// A commit short of the end ends nothing.
func TestUpstreamEndsStaleBacklog(t *testing.T) {
	const lag = 200 * time.Millisecond
	t.Run("the repartitioner committed the source's end", func(t *testing.T) { testStaleBacklog(t, 3, 1, lag) })
	t.Run("the source partition went quiet", func(t *testing.T) { testStaleBacklog(t, -1, 200, lag) })
	t.Run("a commit short of the end, then the end", func(t *testing.T) { testStaleBacklog(t, 2, 1, lag) })
	// A worker that has applied everything but the stale backlog asks:
	// the answer does not wait for the next refresh, a minute away (the
	// first, when the worker starts, comes before it has applied its
	// partition, and cannot settle).
	t.Run("asked for, not waited for", func(t *testing.T) { testStaleBacklog(t, 3, 1, time.Minute) })
}

// The worker settles with an answer only once it has applied its
// repartition partitions to the ends the answer read after the commits.
func TestSettledWaitsForWhatWasWritten(t *testing.T) {
	const topic = repartition.TopicPrefix + "order"
	w := &worker{topics: []string{topic, "crm.orders"}, part: 1, pos: []int64{4, 100},
		lagPos: &positions{assigned: []bool{true, true}}}
	for _, c := range []struct {
		ends map[string][]int64
		want bool
	}{
		{map[string][]int64{topic: {10, 5}}, true},   // applied through offset 4: the end is 5
		{map[string][]int64{topic: {10, 6}}, false},  // offset 5 is still on its way
		{map[string][]int64{topic: {10, -1}}, false}, // its end is unknown
		{map[string][]int64{topic: {10}}, false},     // the partition is unknown
		{map[string][]int64{}, true},                 // a topic the answer does not cover
	} {
		if got := w.settled(&upstreamEnds{written: c.ends}); got != c.want {
			t.Errorf("ends %v: settled = %v, want %v", c.ends, got, c.want)
		}
	}
}

func TestReadToEnd(t *testing.T) {
	for _, c := range []struct {
		first, last, committed int64
		want                   bool
	}{
		{0, 0, -1, true},     // empty, never committed
		{100, 100, -1, true}, // emptied by retention
		{0, 3, -1, false},    // never committed
		{0, 3, 2, false},     // short of the end
		{0, 3, 3, true},
		{100, 150, 50, false}, // committed before the log start
		{0, 3, 5, false},      // beyond the end: the topic was made anew
	} {
		if got := readToEnd(c.first, c.last, c.committed); got != c.want {
			t.Errorf("readToEnd(%d, %d, %d) = %v, want %v", c.first, c.last, c.committed, got, c.want)
		}
	}
}

// testStaleBacklog commits offset commit (-1: none) of the source's three
// records for the repartitioner, runs the clock speed times faster and
// refreshes the lag every lag. Short of the end, it waits a while to see
// the backfill hold, then commits the end.
func testStaleBacklog(t *testing.T, commit int64, speed, lag time.Duration) {
	topic := repartition.TopicPrefix + "order"
	source := gen.DefaultDebeziumPrefix + "orders"
	c := newCluster(t, 4, []string{topic, source})
	addrs := c.ListenAddrs()
	cfg := config.Default()
	cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)

	// The source holds three records, all repartitioned (and, with
	// commit, committed by the repartitioner's group)...
	var srcMsgs []kafka.Message
	for i := range 3 {
		srcMsgs = append(srcMsgs, kafka.Message{Topic: source, Partition: 0, Key: []byte(fmt.Sprint(i)), Value: []byte("{}")})
	}
	produceMessages(t, addrs, srcMsgs)
	if commit >= 0 {
		commitRepartitioner(t, addrs, source, commit)
	}
	// ...but the three orders that reached this partition came from an
	// early fetch, when 5,000 records were still to read.
	const account = "acc-1"
	part := partitionOf(account, 4)
	var recs []repartitioned
	for i := range 3 {
		x := src(source, 0, int64(i), 0)
		x.Backlog = 5000
		recs = append(recs, repartitioned{partition: part, account: account, src: x,
			value: fmt.Sprintf(`{"event_id":"o-%d","type":"order","account_id":%q,"order_id":"o-%d","amount":1000,"occurred_at":"2025-03-0%dT00:00:00Z"}`, i, account, i, i+1)})
	}
	produceRepartitioned(t, addrs, topic, recs)

	wall := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	began := time.Now()
	dir := t.TempDir()
	files, err := sink.NewFiles(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close(context.Background())
	opts := testOptions(addrs, files)
	opts.Topics = []string{topic}
	opts.Config = cfg
	opts.BackfillLag = 0 // the default: the orders are a year old
	opts.LagInterval = lag
	opts.Now = func() time.Time { return wall.Add(speed * time.Since(began)) }
	r := start(t, opts)
	defer r.Stop(t)

	if commit >= 0 && commit < 3 {
		// Ten lag intervals (or questions), and the merge tick's checks
		// in between.
		held := time.Now().Add(10 * max(opts.LagInterval, upstreamAskEvery))
		for time.Now().Before(held) {
			if asOf := latestAsOf(t, filepath.Join(dir, sink.SnapshotsFile), account); !asOf.Before(wall) {
				t.Fatalf("the backfill ended with the source committed to %d of 3", commit)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if latestAsOf(t, filepath.Join(dir, sink.SnapshotsFile), account).IsZero() {
			t.Fatal("nothing was applied while the backfill held")
		}
		commitRepartitioner(t, addrs, source, 3)
	}
	// The end of the backfill writes the account again, judged at the
	// wall clock.
	deadline := time.Now().Add(20 * time.Second) // upstreamQuiet is a minute
	for {
		if asOf := latestAsOf(t, filepath.Join(dir, sink.SnapshotsFile), account); !asOf.Before(wall) {
			t.Logf("judged at the wall clock after %v", time.Since(began).Round(10*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still judged at stream time after %v: the stale backlog held the backfill", account, time.Since(began).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// commitRepartitioner commits offset for partition 0 of source in the
// repartitioner's group, as a member that has left would have.
func commitRepartitioner(t *testing.T, addrs []string, source string, offset int64) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	resp, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "pyramid" + repartition.GroupSuffix,
		GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{source: {{Partition: 0, Offset: offset}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatal(p.Error)
			}
		}
	}
}

// latestAsOf is the as_of of the account's last snapshot in path; zero
// when it has none yet.
func latestAsOf(t *testing.T, path, account string) time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return time.Time{}
		}
		t.Fatal(err)
	}
	var last time.Time
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var s struct {
			Account string    `json:"account_id"`
			AsOf    time.Time `json:"as_of"`
		}
		if l == "" || json.Unmarshal([]byte(l), &s) != nil || s.Account != account {
			continue
		}
		last = s.AsOf
	}
	return last
}
