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

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
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

	run := func(s *memSink, tweak func(*Options)) (*running, *prometheus.Registry, *metrics.Metrics) {
		reg := prometheus.NewRegistry()
		opts := testOptions(addrs, s)
		opts.Metrics = metrics.New(reg)
		if tweak != nil {
			tweak(&opts)
		}
		return start(t, opts), reg, opts.Metrics
	}
	s := newMemSink()
	r, _, m := run(s, nil)
	ends := map[string]map[int]int64{testTopics[0]: {home: 300}, testTopics[1]: {home: 900}}
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	if got := testutil.ToFloat64(m.AccountsFrozen); got != 1 {
		t.Errorf("pyramid_accounts_frozen = %v, want 1", got)
	}
	r.Stop(t)

	dl := testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, parts)
	if len(dl) < 100 || len(dl) > 600 {
		t.Fatalf("%d dead letters; want the opportunities from the one that would not fit on", len(dl))
	}
	for _, d := range dl {
		e := testenv.Header(d, "pyramid-error")
		if string(d.Key) != acc || testenv.Header(d, "pyramid-reason") != event.ReasonLimit ||
			!strings.Contains(e, "frozen") || !strings.Contains(e, "max.message.bytes") || !strings.Contains(e, strconv.Itoa(stateMax)) {
			t.Fatalf("dead letter of %s: reason %q, error %q; want limit naming the state topic's max.message.bytes", d.Key, testenv.Header(d, "pyramid-reason"), e)
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
	for _, rec := range testenv.ReadTopic(t, addrs, kafkaio.State, parts) {
		largest = max(largest, len(rec.Key)+len(rec.Value))
	}
	if largest == 0 || largest > stateMax {
		t.Errorf("largest state record %d bytes; the topic takes %d", largest, stateMax)
	}
	t.Logf("%d opportunities applied, %d dead-lettered; largest state record %d bytes of %d", 900-len(dl), len(dl), largest, stateMax)

	// A restart restores the account and finds it frozen: its next event
	// is refused too.
	produceMessages(t, addrs, []kafka.Message{opp(900)})
	r2, _, m2 := run(newMemSink(), nil)
	ends[testTopics[1]][home] = 901
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	if got := testutil.ToFloat64(m2.AccountsFrozen); got != 1 {
		t.Errorf("after the restart pyramid_accounts_frozen = %v, want 1", got)
	}
	r2.Stop(t)
	if n := len(testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, parts)); n != len(dl)+1 {
		t.Errorf("after the restart %d dead letters, want %d", n, len(dl)+1)
	}
	if got := testutil.ToFloat64(m2.AccountsFrozen); got != 0 {
		t.Errorf("pyramid_accounts_frozen = %v after the pipeline stopped, want 0", got)
	}

	// The topic's limit lowered below the account's record: it cannot be
	// written at all, so not even the clock changes the account (the end
	// of the backfill re-emits every other one), and nothing stops.
	setStateMax := func(n int) {
		cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
		resp, err := cl.IncrementalAlterConfigs(context.Background(), &kafka.IncrementalAlterConfigsRequest{
			Resources: []kafka.IncrementalAlterConfigsRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: kafkaio.State,
				Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(n), ConfigOperation: kafka.ConfigOperationSet}}}}})
		if err == nil && resp.Resources[0].Error != nil {
			err = resp.Resources[0].Error
		}
		if err != nil {
			t.Fatalf("setting max.message.bytes of %s to %d: %v", kafkaio.State, n, err)
		}
	}
	setStateMax(minStateMessageBytes)
	produceMessages(t, addrs, []kafka.Message{opp(901), order(901)})
	s3 := newMemSink()
	r3, _, _ := run(s3, func(o *Options) { o.BackfillLag = 0 })
	ends[testTopics[0]][home], ends[testTopics[1]][home] = 301, 902
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	r3.Stop(t)
	if _, ok := s3.latest()[acc]; ok {
		t.Errorf("%s, whose record no longer fits, was emitted", acc)
	}
	if n := s3.latest()[neighbour]; n.Version <= 301 {
		t.Errorf("%s: version %d; want its order applied and the end of the backfill re-emitting it", neighbour, n.Version)
	}
	if n := len(testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, parts)); n != len(dl)+2 {
		t.Errorf("with the lower limit %d dead letters, want %d", n, len(dl)+2)
	}

	// Raised again past the account's record: it thaws, and its next
	// event is applied.
	setStateMax(StateMaxMessageBytes)
	produceMessages(t, addrs, []kafka.Message{opp(902)})
	s4 := newMemSink()
	r4, _, m4 := run(s4, nil)
	ends[testTopics[1]][home] = 903
	waitCommitted(t, addrs, "pyramid", ends, 60*time.Second)
	if got := testutil.ToFloat64(m4.AccountsFrozen); got != 0 {
		t.Errorf("with the limit raised pyramid_accounts_frozen = %v, want 0", got)
	}
	r4.Stop(t)
	if got, want := s4.latest()[acc].OpenOpportunities, 900-len(dl)+1; got != want {
		t.Errorf("with the limit raised %s has %d open opportunities, want %d", acc, got, want)
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

	dl := testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, parts)
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want the 3 opportunities with 400 KB ids", len(dl))
	}
	for _, d := range dl {
		if testenv.Header(d, "pyramid-reason") != event.ReasonInvalidField || !strings.Contains(testenv.Header(d, "pyramid-error"), "opportunity_id must be 1 to 128 bytes") {
			t.Errorf("dead letter: reason %q, error %q", testenv.Header(d, "pyramid-reason"), testenv.Header(d, "pyramid-error"))
		}
	}
	if v := s.latest()["acc-many-lost"].Version; v != 25_000 {
		t.Errorf("acc-many-lost: version %d, want the 25,000 applied", v)
	}
	for _, rec := range testenv.ReadTopic(t, addrs, kafkaio.State, parts) {
		if string(rec.Key) == "acc-many-lost" && len(rec.Value) > 1<<20 {
			t.Errorf("state record of acc-many-lost takes %d bytes", len(rec.Value))
		}
	}
}

// growth bounds what one event, or the clock, adds to an account's state:
// the events that add the most (a new opportunity with the longest id and
// stage, an order opening a month and a placeholder, the longest name,
// owner and activity kind) applied to a fresh account and to one that
// already holds much, then the clock moving on.
func TestGrowthBound(t *testing.T) {
	cfg := config.Default()
	limit := growth(maxStage(cfg))
	longest := ""
	for s := range cfg.Stages {
		if len(s) > len(longest) {
			longest = s
		}
	}
	dec := event.NewDecoder(cfg)
	eng := scoring.NewEngine(scoring.NewParams(cfg))
	var out scoring.Output
	worst := 0
	n := 0
	apply := func(acc, body string, day int) {
		t.Helper()
		n++
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, day).Format(time.RFC3339)
		line := fmt.Sprintf(`{"event_id":"e-%d-%s","account_id":%q,"occurred_at":%q,%s}`, n, strings.Repeat("e", 100), acc, at, body)
		ev, err := dec.Decode([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		before := 0
		if a := eng.Account(acc); a != nil {
			before = scoring.EncodedSize(a)
		}
		out.Reset()
		a, res := eng.Apply(&ev, scoring.EventTime, &out)
		if res != scoring.Applied {
			t.Fatalf("%s: %v", line, out.Err)
		}
		d := scoring.EncodedSize(a) - before
		if before == 0 {
			d -= scoring.EncodedSize(&scoring.Account{ID: acc}) // a new account: what the event added
		}
		worst = max(worst, d)
		if d > limit {
			t.Errorf("%.100s… added %d bytes; growth() allows %d", line, d, limit)
		}
	}
	id := func(c string, i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat(c, event.MaxIDLen-3) }
	for _, acc := range []string{"fresh", id("a", 0)} {
		for i := range 50 {
			day := i * 9
			apply(acc, fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"stage":%q,"amount":99999999.99,"probability":0.123457`, id("o", i), longest), day)
			apply(acc, fmt.Sprintf(`"type":"order","order_id":%q,"amount":9999999999.99,"opportunity_id":%q`, id("r", i), id("p", i)), day+1)
			apply(acc, fmt.Sprintf(`"type":"account","name":%q,"owner_id":%q,"wallet":99999999999.99,"snooze_alerts_until":"2199-01-01T00:00:00Z"`, strings.Repeat("n", event.MaxNameLen), id("w", i)), day+2)
			apply(acc, fmt.Sprintf(`"type":"activity","kind":%q,"owner_id":%q`, strings.Repeat("k", event.MaxNameLen), id("x", i)), day+3)
			apply(acc, fmt.Sprintf(`"type":"opportunity","opportunity_id":%q,"stage":"closed_won","amount":99999999.99`, id("o", i)), day+4)
		}
	}
	for _, y := range []int{2026, 2028} {
		asOf := time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		for _, acc := range eng.IDs() {
			a := eng.Account(acc)
			before := scoring.EncodedSize(a)
			out.Reset()
			eng.Evaluate(a, asOf, &out)
			if d := scoring.EncodedSize(a) - before; d > limit {
				t.Errorf("the clock added %d bytes to %s; growth() allows %d", d, acc, limit)
			}
		}
	}
	t.Logf("%d events; the most one added was %d bytes, growth() allows %d", n, worst, limit)
}
