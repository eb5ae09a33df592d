package consumer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
)

// createTopic creates a topic with configs on the cluster at addrs.
func createTopic(tb testing.TB, addrs []string, topic string, partitions int, configs map[string]string) {
	tb.Helper()
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}
	for k, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	resp, err := cl.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		tb.Fatalf("create %s: %v", topic, err)
	}
}

// sameHome returns an account id other than acc in acc's partition.
func sameHome(acc string, parts int) string {
	for i := 0; ; i++ {
		if id := fmt.Sprintf("acc-neighbour-%d", i); partitionOf(id, parts) == partitionOf(acc, parts) {
			return id
		}
	}
}

// The last line of defence behind the limits: an account whose state
// record would outgrow what the state topic takes is frozen. Here the
// topic takes 96 KiB and one account gets 900 open opportunities with
// 128-byte ids (within limits.max_open_opportunities, about 150 KB of
// state). Its events from the one that would not fit on are dead-lettered
// with reason limit, naming the topic's limit; pyramid_accounts_frozen
// counts it; its neighbour in the same partition and every later event
// of the partition are applied; nothing stops. Before, the broker refused
// the record, the pipeline stopped, and every restart stopped at the same
// record. A restart from the changelog finds the account frozen again.
func TestOversizedAccountIsFrozen(t *testing.T) {
	const parts = 2
	c := newCluster(t, parts, testTopics)
	addrs := c.ListenAddrs()
	const stateMax = 96 << 10
	createTopic(t, addrs, kafkaio.State, parts, map[string]string{"cleanup.policy": "compact", "max.message.bytes": strconv.Itoa(stateMax)})

	const acc = "acc-huge"
	neighbour := sameHome(acc, parts)
	home := partitionOf(acc, parts)
	at := testNow.Add(-time.Hour).Format(time.RFC3339)
	var msgs []kafka.Message
	opp := func(i int) kafka.Message {
		id := fmt.Sprintf("%04d-%s", i, strings.Repeat("o", event.MaxIDLen-5))
		return kafka.Message{Topic: testTopics[1], Partition: home, Key: []byte(acc), Value: []byte(fmt.Sprintf(
			`{"event_id":"opp-%d","type":"opportunity","account_id":%q,"occurred_at":%q,"opportunity_id":%q,"stage":"proposal","amount":1000}`, i, acc, at, id))}
	}
	order := func(i int) kafka.Message {
		return kafka.Message{Topic: testTopics[0], Partition: home, Key: []byte(neighbour), Value: []byte(fmt.Sprintf(
			`{"event_id":"ord-%d","type":"order","account_id":%q,"occurred_at":%q,"order_id":"o-%d","amount":10}`, i, neighbour, at, i))}
	}
	for i := range 900 {
		msgs = append(msgs, opp(i))
		if i%3 == 0 {
			msgs = append(msgs, order(i))
		}
	}
	produceMessages(t, addrs, msgs)

	run := func(s *memSink) (*running, *prometheus.Registry, *metrics.Metrics) {
		reg := prometheus.NewRegistry()
		opts := testOptions(addrs, s)
		opts.Metrics = metrics.New(reg)
		return start(t, opts), reg, opts.Metrics
	}
	s := newMemSink()
	r, _, m := run(s)
	ends := map[string]map[int]int64{testTopics[0]: {home: 300}, testTopics[1]: {home: 900}}
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	if got := testutil.ToFloat64(m.AccountsFrozen); got != 1 {
		t.Errorf("pyramid_accounts_frozen = %v, want 1", got)
	}
	r.Stop(t)

	dl := readTopic(t, addrs, kafkaio.DeadLetters, parts)
	if len(dl) < 100 || len(dl) > 600 {
		t.Fatalf("%d dead letters; want the opportunities from the one that would not fit on", len(dl))
	}
	for _, d := range dl {
		e := header(d, "pyramid-error")
		if string(d.Key) != acc || header(d, "pyramid-reason") != event.ReasonLimit ||
			!strings.Contains(e, "frozen") || !strings.Contains(e, "max.message.bytes") || !strings.Contains(e, strconv.Itoa(stateMax)) {
			t.Fatalf("dead letter of %s: reason %q, error %q; want limit naming the state topic's max.message.bytes", d.Key, header(d, "pyramid-reason"), e)
		}
	}
	snaps := s.latest()
	if got, want := snaps[acc].OpenOpportunities, 900-len(dl); got != want || snaps[acc].Version != uint64(want) {
		t.Errorf("%s: %d open opportunities, version %d; want the %d applied", acc, got, snaps[acc].Version, want)
	}
	if n := snaps[neighbour]; n.Version != 300 || n.CurrentValue.String() != "3000.00" {
		t.Errorf("%s, in the same partition: version %d, current value %s; want all 300 orders", neighbour, n.Version, n.CurrentValue)
	}
	largest := 0
	for _, rec := range readTopic(t, addrs, kafkaio.State, parts) {
		largest = max(largest, len(rec.Key)+len(rec.Value))
	}
	if largest == 0 || largest > stateMax {
		t.Errorf("largest state record %d bytes; the topic takes %d", largest, stateMax)
	}
	t.Logf("%d opportunities applied, %d dead-lettered; largest state record %d bytes of %d", 900-len(dl), len(dl), largest, stateMax)

	// A restart restores the account and finds it frozen: its next event
	// is refused too.
	produceMessages(t, addrs, []kafka.Message{opp(900)})
	r2, _, m2 := run(newMemSink())
	ends[testTopics[1]][home] = 901
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	if got := testutil.ToFloat64(m2.AccountsFrozen); got != 1 {
		t.Errorf("after the restart pyramid_accounts_frozen = %v, want 1", got)
	}
	r2.Stop(t)
	if n := len(readTopic(t, addrs, kafkaio.DeadLetters, parts)); n != len(dl)+1 {
		t.Errorf("after the restart %d dead letters, want %d", n, len(dl)+1)
	}
	if got := testutil.ToFloat64(m2.AccountsFrozen); got != 0 {
		t.Errorf("pyramid_accounts_frozen = %v after the pipeline stopped, want 0", got)
	}
}

// The reproductions of the crash loop: three opportunities of one account
// with 400 KB ids, and 25,000 closed_lost opportunities of another. The
// first are refused by the id limit, the others forgotten down to
// tombstones; the pipeline goes on and the state records fit.
func TestBigAccountsDoNotStopThePipeline(t *testing.T) {
	const parts = 2
	c := newCluster(t, parts, testTopics)
	addrs := c.ListenAddrs()
	at := testNow.Add(-time.Hour).Format(time.RFC3339)
	oppEvent := func(acc, eventID, oppID, stage string) kafka.Message {
		return kafka.Message{Topic: testTopics[1], Partition: partitionOf(acc, parts), Key: []byte(acc), Value: []byte(fmt.Sprintf(
			`{"event_id":%q,"type":"opportunity","account_id":%q,"occurred_at":%q,"opportunity_id":%q,"stage":%q,"amount":1000}`, eventID, acc, at, oppID, stage))}
	}
	for i := range 3 {
		// One request each: three would pass the topic's 1 MiB.
		produceMessages(t, addrs, []kafka.Message{oppEvent("acc-long-ids", fmt.Sprint("long-", i), strings.Repeat(strconv.Itoa(i), 400_000), "proposal")})
	}
	var lost []kafka.Message
	for i := range 25_000 {
		lost = append(lost, oppEvent("acc-many-lost", fmt.Sprint("lost-", i), fmt.Sprint("opp-", i), "closed_lost"))
	}
	produceMessages(t, addrs, lost)
	ends := map[string]map[int]int64{testTopics[1]: {}}
	ends[testTopics[1]][partitionOf("acc-long-ids", parts)] += 3
	ends[testTopics[1]][partitionOf("acc-many-lost", parts)] += 25_000

	s := newMemSink()
	opts := testOptions(addrs, s)
	opts.FlushSize = 5000
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", ends, 120*time.Second)
	r.Stop(t)

	dl := readTopic(t, addrs, kafkaio.DeadLetters, parts)
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want the 3 opportunities with 400 KB ids", len(dl))
	}
	for _, d := range dl {
		if header(d, "pyramid-reason") != event.ReasonInvalidField || !strings.Contains(header(d, "pyramid-error"), "opportunity_id must be 1 to 128 bytes") {
			t.Errorf("dead letter: reason %q, error %q", header(d, "pyramid-reason"), header(d, "pyramid-error"))
		}
	}
	if v := s.latest()["acc-many-lost"].Version; v != 25_000 {
		t.Errorf("acc-many-lost: version %d, want the 25,000 applied", v)
	}
	for _, rec := range readTopic(t, addrs, kafkaio.State, parts) {
		if string(rec.Key) == "acc-many-lost" && len(rec.Value) > 1<<20 {
			t.Errorf("state record of acc-many-lost takes %d bytes", len(rec.Value))
		}
	}
}
