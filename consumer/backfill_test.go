package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/replay"
	"github.com/pyramid-crm/pyramid/sink"
)

// TestBackfillMatchesReplay streams a year of generated history, in time
// order on one input topic, through the pipeline with the wall clock well
// after it: the backfill clock must make streaming give exactly what
// `pyramid replay --as-of <wall clock>` gives — every snapshot field
// including version, every account's tier-change history, and every alert
// with its final status. Without it, every high-potential account would
// flap between neglected and touched on each historical event.
func TestBackfillMatchesReplay(t *testing.T) {
	t.Run("one topic", func(t *testing.T) { testBackfill(t, false, false, false) })
	// The four per-type topics are read independently; the worker merges
	// them by occurred_at, so the result is the same.
	t.Run("four topics", func(t *testing.T) { testBackfill(t, true, false, false) })
	// The same stream behind junk at the head of every partition of one
	// topic: occurred_at in 2199 and two days ahead of the wall clock,
	// undecodable messages, events without a key or keyed by another
	// account. They are dead-lettered before they take part in the merge,
	// so they hold back no topic and move no clock: every account's
	// snapshot, tier history and alerts are still byte for byte the
	// replay's of the clean stream, which the subtest above streams too.
	t.Run("four topics, junk at the head of one", func(t *testing.T) { testBackfill(t, true, true, false) })
	// The same history repartitioned from a declared input while the
	// pipeline runs: it reaches the repartition topic a few hundred
	// events at a time, so the pipeline is always caught up with the
	// topic itself; what the repartitioner had still to read at the
	// source, which every record carries, keeps the backfill clock on.
	// Judged at the wall clock as it trickled in, the history would lose
	// every tier change.
	t.Run("repartitioned while running", func(t *testing.T) { testBackfill(t, false, false, true) })
}

// trickleRepartitioned writes msgs to topic as the repartitioner would
// have written them from a source topic of as many partitions, each
// account's events in the partition of its key, with their source
// positions: a few hundred at a time, each request's records carrying
// the backlog its source partition still has after them.
func trickleRepartitioned(tb testing.TB, addrs []string, topic string, msgs []kafka.Message, partitions int) {
	tb.Helper()
	const source, chunk = "crmdb.public.events", 300
	left := make([]int64, partitions) // per source partition, records not written yet
	parts := make([]int, len(msgs))
	for i, m := range msgs {
		parts[i] = partitionOf(string(m.Key), partitions)
		left[parts[i]]++
	}
	next := make([]int64, partitions)
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		for _, p := range parts[:n] {
			left[p]--
		}
		recs := make([]repartitioned, n)
		for i, m := range msgs[:n] {
			p := parts[i]
			x := src(source, p, next[p], 0)
			x.Backlog = left[p]
			next[p]++
			recs[i] = repartitioned{partition: p, account: string(m.Key), value: string(m.Value), src: x}
		}
		produceRepartitioned(tb, addrs, topic, recs)
		msgs, parts = msgs[n:], parts[n:]
	}
}

// junkAtHead returns the hostile messages testBackfill puts at the head
// of every partition of topic, each with the reason it must be
// dead-lettered with. account names an account of the stream.
func junkAtHead(topic, account string, wall time.Time, partitions int) (msgs []kafka.Message, reasons []string) {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	for p := range partitions {
		id := fmt.Sprintf("junk-%d", p)
		activity := func(key, acc, occurred string) []byte {
			return []byte(fmt.Sprintf(`{"event_id":"%s-%s","type":"activity","kind":"call","account_id":%q,"occurred_at":%q}`, id, occurred, acc, occurred))
		}
		add := func(key []byte, value []byte, reason string) {
			msgs = append(msgs, kafka.Message{Topic: topic, Partition: p, Key: key, Value: value})
			reasons = append(reasons, reason)
		}
		add([]byte(id), activity(id, id, "2199-01-01T00:00:00Z"), event.ReasonFuture)
		add([]byte(id), activity(id, id, at(wall.Add(48*time.Hour))), event.ReasonFuture)
		add([]byte(id), []byte(`{"event_id":"`+id+`","type":"activity", not json`), event.ReasonNotJSON)
		// An old touch of a real account, which would change it if applied.
		add(nil, activity("", account, "2025-01-02T00:00:00Z"), event.ReasonBadKey)
		add([]byte(id), activity(id, account, "2025-01-03T00:00:00Z"), event.ReasonBadKey)
	}
	return msgs, reasons
}

func testBackfill(t *testing.T, perType, junk, repartitioned bool) {
	const topic = "crm.events"
	g, err := gen.New(gen.Options{Accounts: 1000, Events: 40000, Seed: 11, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 13})
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	var msgs []kafka.Message
	for {
		r, ok := g.Next()
		if !ok {
			break
		}
		lines.Write(r.Line)
		lines.WriteByte('\n')
		m := kafka.Message{Topic: topic, Key: []byte(r.AccountID), Value: append([]byte(nil), r.Line...)}
		if perType {
			m.Topic = kafkaio.InputTopicFor(kafkaio.DefaultInputPrefix, r.Type)
		}
		msgs = append(msgs, m)
	}
	wall := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC) // the stream ends on 2026-02-01

	topics := []string{topic}
	if perType {
		topics = kafkaio.InputTopics(kafkaio.DefaultInputPrefix)
	}
	if repartitioned {
		topics = []string{repartition.TopicPrefix + "events"}
	}
	c := newCluster(t, 4, topics)
	addrs := c.ListenAddrs()
	opts := func(s sink.Sink) Options {
		opts := testOptions(addrs, s)
		opts.Topics = topics
		opts.Now = func() time.Time { return wall }
		opts.BackfillLag = 0 // the default
		opts.ReevalInterval = time.Hour
		// Equality with replay needs the merge to wait for every topic's
		// first fetch; the default 200 ms is too short under the race
		// detector.
		opts.MergeWait = 5 * time.Second
		return opts
	}
	dir := t.TempDir()
	files, err := sink.NewFiles(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r *running
	if repartitioned {
		r = start(t, opts(files))
		waitUntil(t, "the pipeline is ready", func() bool { return r.p.Ready() == nil })
		trickleRepartitioned(t, addrs, topics[0], msgs, 4)
	}
	var junkReasons []string
	if junk {
		var jm []kafka.Message
		jm, junkReasons = junkAtHead(kafkaio.InputTopicFor(kafkaio.DefaultInputPrefix, event.Activity.String()), string(msgs[0].Key), wall, 4)
		produceMessages(t, addrs, jm)
	}
	if !repartitioned {
		w := &kafka.Writer{Addr: kafka.TCP(addrs...), Balancer: &kafka.Murmur2Balancer{},
			BatchTimeout: time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
		r = start(t, opts(files))
	}
	ends := map[string]map[int]int64{}
	cl := &kafka.Client{Addr: kafka.TCP(addrs...)}
	for _, tp := range topics {
		ends[tp] = map[int]int64{}
		for p := 0; p < 4; p++ {
			resp, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{tp: {kafka.LastOffsetOf(p)}}})
			if err != nil {
				t.Fatal(err)
			}
			if off := resp.Topics[tp][0].LastOffset; off > 0 {
				ends[tp][p] = off
			}
		}
	}
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	r.Stop(t)
	files.Close(context.Background())

	var snaps, changes, alerts bytes.Buffer
	if _, _, err := replay.Run(replay.Options{Config: config.Default(), AsOf: wall, Input: &lines, Output: &snaps, Changes: &changes, Alerts: &alerts}); err != nil {
		t.Fatal(err)
	}

	// Every (account, version) streamed has one content, the end of the
	// backfill writing every account again included.
	oneContentPerVersion(t, filepath.Join(dir, sink.SnapshotsFile))

	// Snapshots: the newest streamed snapshot of each account, byte for byte.
	gotSnaps := newestBy(t, filepath.Join(dir, sink.SnapshotsFile), "account_id", "version")
	wantSnaps := newestBy(t, writeTemp(t, snaps.Bytes()), "account_id", "version")
	diff(t, "snapshot", gotSnaps, wantSnaps)

	// Tier changes: each account's history in order.
	diff(t, "tier history", byAccount(t, filepath.Join(dir, sink.ChangesFile)), byAccount(t, writeTemp(t, changes.Bytes())))

	// Alerts: the final record of every alert id.
	gotAlerts := newestBy(t, filepath.Join(dir, sink.AlertsFile), "alert_id", "")
	wantAlerts := newestBy(t, writeTemp(t, alerts.Bytes()), "alert_id", "")
	diff(t, "alert", gotAlerts, wantAlerts)
	if junk {
		var got []string
		for _, d := range testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, 4) {
			got = append(got, testenv.Header(d, "pyramid-reason"))
		}
		sort.Strings(got)
		sort.Strings(junkReasons)
		if strings.Join(got, " ") != strings.Join(junkReasons, " ") {
			t.Errorf("dead letters by reason:\n got %v\nwant %v", got, junkReasons)
		}
	}
	if len(wantAlerts) < 5 || len(wantSnaps) != 1000 {
		t.Fatalf("the workload should produce alerts and 1000 accounts: %d alerts, %d accounts", len(wantAlerts), len(wantSnaps))
	}
	t.Logf("%d accounts, %d alerts, identical", len(wantSnaps), len(wantAlerts))
}

func writeTemp(t *testing.T, b []byte) string {
	f := filepath.Join(t.TempDir(), "x.jsonl")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// newestBy keeps, per value of key, the last line (or the one with the
// highest numeric field order, when given).
// oneContentPerVersion fails for every (account_id, version) a snapshot
// file holds with two different contents.
func oneContentPerVersion(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen, bad, n := map[string]string{}, 0, 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			ID      string `json:"account_id"`
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		k := m.ID + "/" + strconv.FormatUint(m.Version, 10)
		if old, ok := seen[k]; !ok {
			seen[k] = l
		} else if old != l {
			if bad++; bad <= 3 {
				t.Errorf("%s written as\n%s\nand as\n%s", k, old, l)
			}
		}
		n++
	}
	if bad > 0 {
		t.Fatalf("%d of %d snapshot rows repeat an (account_id, version) with another content", bad, n)
	}
}

func newestBy(t *testing.T, path, key, order string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, rank := map[string]string{}, map[string]float64{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		k := m[key].(string)
		v := 0.0
		if order != "" {
			v = m[order].(float64)
		}
		if _, seen := out[k]; !seen || order == "" || v >= rank[k] {
			out[k], rank[k] = l, v
		}
	}
	return out
}

func byAccount(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			AccountID string `json:"account_id"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[m.AccountID] += l + "\n"
	}
	return out
}

func diff(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := 0
	for _, k := range keys {
		if got[k] != want[k] {
			if bad < 3 {
				t.Errorf("%s %s differs:\n got %s\nwant %s", what, k, got[k], want[k])
			}
			bad++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s streamed but not in replay: %s", what, k, got[k])
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d %ss differ", bad, what)
	}
}
