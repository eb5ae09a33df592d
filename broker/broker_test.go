package broker_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/internal/testenv"
)

// start starts a broker emulating testenv.KafkaRelease() unless opts names
// a release.
func start(t testing.TB, opts broker.Options) *broker.Broker {
	t.Helper()
	return testenv.StartBroker(t, opts)
}

func client(t testing.TB, b *broker.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation()}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func partitions(t testing.TB, cl *kgo.Client, topic string) int {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.AllowAutoTopicCreation = true
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %+v", topic, resp.Topics)
	}
	return len(resp.Topics[0].Partitions)
}

func TestDefaults(t *testing.T) {
	b := start(t, broker.Options{Topics: []string{"seeded"}})
	addrs := b.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs = %v, want one", addrs)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addrs = %v, want 127.0.0.1 on a chosen port", addrs)
	}
	cl := client(t, b)
	if n := partitions(t, cl, "seeded"); n != broker.DefaultPartitions {
		t.Errorf("seeded topic has %d partitions, want %d", n, broker.DefaultPartitions)
	}
	// Producing to an unknown topic creates it.
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "auto", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to auto-created topic: %v", err)
	}
	if n := partitions(t, cl, "auto"); n != broker.DefaultPartitions {
		t.Errorf("auto-created topic has %d partitions, want %d", n, broker.DefaultPartitions)
	}
}

func TestPartitionsOption(t *testing.T) {
	b := start(t, broker.Options{Partitions: 3, Topics: []string{"a"}})
	cl := client(t, b)
	if n := partitions(t, cl, "a"); n != 3 {
		t.Errorf("seeded topic has %d partitions, want 3", n)
	}
	if n := partitions(t, cl, "b"); n != 3 {
		t.Errorf("auto-created topic has %d partitions, want 3", n)
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []broker.Options{
		{Listen: "nonsense"},
		{Partitions: -1},
	} {
		if b, err := broker.Start(opts); err == nil {
			b.Close()
			t.Errorf("Start(%+v) succeeded, want an error", opts)
		}
	}
	// A port already taken is an error, not a silent second port.
	b := start(t, broker.Options{})
	if b2, err := broker.Start(broker.Options{Listen: b.Addrs()[0]}); err == nil {
		b2.Close()
		t.Errorf("Start on a busy address %s succeeded", b.Addrs()[0])
	} else if !strings.Contains(err.Error(), b.Addrs()[0]) {
		t.Errorf("error %q does not name the address", err)
	}
}

type rec struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Headers   []kgo.RecordHeader
	Timestamp int64
}

func consumeAll(t testing.TB, b *broker.Broker, topic string, want int) []rec {
	t.Helper()
	cl := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	c := ctx(t)
	var got []rec
	for len(got) < want {
		fs := cl.PollFetches(c)
		if err := c.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), want, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, rec{r.Topic, r.Partition, r.Offset, string(r.Key), string(r.Value), r.Headers, r.Timestamp.UnixMilli()})
		})
	}
	return got
}

func sortRecs(rs []rec) map[int32][]rec {
	m := map[int32][]rec{}
	for _, r := range rs {
		m[r.Partition] = append(m[r.Partition], r)
	}
	return m
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := start(t, broker.Options{DataDir: dir, Partitions: 4})
	cl := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))

	const n = 200
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var records []*kgo.Record
	for i := range n {
		records = append(records, &kgo.Record{
			Topic:     "events",
			Partition: int32(i % 4),
			Key:       []byte(fmt.Sprintf("acct-%d", i%7)),
			Value:     []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	if err := cl.ProduceSync(ctx(t), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	before := consumeAll(t, b, "events", n)

	// Commit a group offset the way kafka-go's CommitOffsets does.
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group = "pyramid"
	commit.Generation = -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "events"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition = 2
	cp.Offset = 17
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	// Before v10 the request names topics rather than topic IDs, as
	// kafka-go's does.
	old := client(t, b, kgo.MaxVersions(kversion.V3_7_0()))
	cresp, err := commit.RequestWith(ctx(t), old)
	if err != nil {
		t.Fatalf("offset commit: %v", err)
	}
	if code := cresp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("offset commit error code %d", code)
	}
	cl.Close()
	old.Close()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b2 := start(t, broker.Options{DataDir: dir, Partitions: 4, Topics: []string{"events", "new"}})
	after := consumeAll(t, b2, "events", n)
	if !reflect.DeepEqual(sortRecs(before), sortRecs(after)) {
		t.Errorf("records differ after restart:\nbefore %v\nafter  %v", before[:3], after[:3])
	}
	cl2 := client(t, b2)
	if got := partitions(t, cl2, "new"); got != 4 {
		t.Errorf("topic seeded on a reloaded broker has %d partitions, want 4", got)
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Group = "pyramid"
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic = "events"
	ft.Partitions = []int32{2}
	fetch.Topics = append(fetch.Topics, ft)
	fresp, err := fetch.RequestWith(ctx(t), client(t, b2, kgo.MaxVersions(kversion.V3_7_0())))
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 || fresp.Topics[0].Partitions[0].Offset != 17 {
		t.Errorf("committed offset after restart: %+v, want 17", fresp.Topics)
	}

	// New records continue the old offsets.
	cl3 := client(t, b2, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: "events", Partition: 1, Value: []byte("more")}
	if err := cl3.ProduceSync(ctx(t), r).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	if r.Offset != n/4 {
		t.Errorf("first offset after restart on partition 1 = %d, want %d", r.Offset, n/4)
	}
}

func TestCloseTwice(t *testing.T) {
	b, err := broker.Start(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a directory tree as it is at this moment: what a machine
// that lost power, or a killed process, would leave behind.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAutoCreatedTopicSurvivesCrash: kfake saves its topic list only on
// Close, except through our checkpointer; a copy of the data directory
// taken while the broker runs must hold an auto-created topic and its
// records.
func TestAutoCreatedTopicSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	b := start(t, broker.Options{DataDir: dir, Partitions: 2})
	cl := client(t, b)
	var records []*kgo.Record
	for i := range 10 {
		records = append(records, &kgo.Record{Topic: "auto", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := cl.ProduceSync(ctx(t), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before := consumeAll(t, b, "auto", len(records))
	// The checkpointer saves the topic list within an interval or so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "topics.json")); err == nil && strings.Contains(string(b), `"auto"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the topic list saved in the data directory never held the auto-created topic")
		}
		time.Sleep(20 * time.Millisecond)
	}

	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	b2 := start(t, broker.Options{DataDir: crashed, Partitions: 2})
	after := consumeAll(t, b2, "auto", len(records))
	if !reflect.DeepEqual(sortRecs(before), sortRecs(after)) {
		t.Errorf("records differ after a crash:\nbefore %v\nafter  %v", before, after)
	}
}

func TestCloseReportsSaveFailure(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(broker.Options{DataDir: dir, Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	// A directory where kfake writes its temporary topic list.
	if err := os.Mkdir(filepath.Join(dir, "topics.json.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = b.Close()
	if err == nil || !strings.Contains(err.Error(), "topics.json.tmp") {
		t.Errorf("Close = %v, want the failure to save topics", err)
	}
	if err2 := b.Close(); err2 != err {
		t.Errorf("second Close = %v, want the same error", err2)
	}
}
