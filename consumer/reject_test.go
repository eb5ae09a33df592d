package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// An event the scoring refuses (a limit, or a figure beyond the bound) is
// dead-lettered like a malformed one, with its reason, and changes nothing:
// the account goes on with the events that follow.
func TestScoringRejectionsAreDeadLettered(t *testing.T) {
	c := newCluster(t, 2, testTopics)
	addrs := c.ListenAddrs()
	const acc = "acc-limit"
	part := partitionOf(acc, 2)
	at := testNow.Add(-time.Hour).Format(time.RFC3339)
	ev := func(id, body string) msg {
		return msg{topic: testTopics[1], partition: part, key: acc,
			value: []byte(fmt.Sprintf(`{"event_id":%q,"account_id":%q,"occurred_at":%q,%s}`, id, acc, at, body))}
	}
	msgs := []msg{
		ev("e1", `"type":"opportunity","opportunity_id":"o-1","stage":"proposal","amount":1000`),
		ev("e2", `"type":"opportunity","opportunity_id":"o-2","stage":"proposal","amount":1000`),
		ev("e3", `"type":"order","order_id":"big","amount":10000000000000`),
		ev("e4", `"type":"order","order_id":"small","amount":250`),
	}
	for range 99 {
		msgs = append(msgs, ev(fmt.Sprint("e3-", len(msgs)), `"type":"order","order_id":"big","amount":10000000000000`))
	}
	produceAll(t, addrs, msgs)
	cfg := config.Default()
	cfg.Limits.MaxOpenOpportunities = 1
	s := newMemSink()
	opts := testOptions(addrs, s)
	opts.Config = cfg
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid", endOffsets(msgs), 60*time.Second)
	r.Stop(t)

	reasons := map[string]int{}
	for _, d := range testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, 2) {
		reasons[testenv.Header(d, "pyramid-reason")]++
		if r := testenv.Header(d, "pyramid-reason"); r == event.ReasonLimit && !strings.Contains(testenv.Header(d, "pyramid-error"), "limits.max_open_opportunities") {
			t.Errorf("limit dead letter without the limit's name: %q", testenv.Header(d, "pyramid-error"))
		}
	}
	if reasons[event.ReasonLimit] != 1 || reasons[event.ReasonOutOfRange] != 1 || len(reasons) != 2 {
		t.Fatalf("dead letters by reason %v, want one limit and one out_of_range", reasons)
	}
	snap, ok := s.latest()[acc]
	if !ok {
		t.Fatal("no snapshot of the account")
	}
	// 99 orders of 1e13 and one of 250 fit; the 100th of 1e13 would pass
	// the bound of 1e15 by 250 and is refused. o-1 alone is open.
	if snap.OpenOpportunities != 1 || snap.CurrentValue.String() != "990000000000250.00" || snap.Version != uint64(len(msgs)-2) {
		t.Fatalf("snapshot: open %d, current %s, version %d", snap.OpenOpportunities, snap.CurrentValue, snap.Version)
	}
}
