package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// produceMessages writes msgs in order, each to its Topic and Partition
// (a nil Key is a message without a key), one request per run of
// messages to the same partition, up to 512 KiB.
func produceMessages(tb testing.TB, addrs []string, msgs []kafka.Message) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	for len(msgs) > 0 {
		n, size := 1, len(msgs[0].Value)
		for n < len(msgs) && msgs[n].Topic == msgs[0].Topic && msgs[n].Partition == msgs[0].Partition && size+len(msgs[n].Value) < 512<<10 {
			size += len(msgs[n].Value)
			n++
		}
		recs := make([]kafka.Record, n)
		for i, m := range msgs[:n] {
			recs[i] = kafka.Record{Value: kafka.NewBytes(m.Value)}
			if m.Key != nil {
				recs[i].Key = kafka.NewBytes(m.Key)
			}
		}
		resp, err := cl.Produce(context.Background(), &kafka.ProduceRequest{Topic: msgs[0].Topic, Partition: msgs[0].Partition,
			RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...)})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			tb.Fatalf("produce %s/%d: %v", msgs[0].Topic, msgs[0].Partition, err)
		}
		msgs = msgs[n:]
	}
}

// An account's events must all reach its partition: a message without a
// key, or keyed by something else than its account_id, is dead-lettered
// with reason bad_key instead of being applied where it landed, which
// gave the account a second state on another partition (two snapshots
// with version 1, each holding part of its orders).
func TestMessagesNotKeyedByAccountAreDeadLettered(t *testing.T) {
	const parts = 2
	c := newCluster(t, parts, testTopics)
	addrs := c.ListenAddrs()
	const acc = "acc-split"
	home := partitionOf(acc, parts)
	other := 1 - home
	at := testNow.Add(-time.Hour).Format(time.RFC3339)
	order := func(id, amount string) []byte {
		return []byte(fmt.Sprintf(`{"event_id":%q,"type":"order","order_id":%q,"account_id":%q,"occurred_at":%q,"amount":%s}`, id, id, acc, at, amount))
	}
	orders := testTopics[0]
	msgs := []kafka.Message{
		{Topic: orders, Partition: home, Key: []byte(acc), Value: order("o-1", "20")},
		// Without a key, a producer's partitioner puts it anywhere.
		{Topic: orders, Partition: other, Value: order("o-2", "5")},
		// Keyed by something else: the owner's id, say.
		{Topic: orders, Partition: other, Key: []byte("rep-7"), Value: order("o-3", "7")},
		{Topic: orders, Partition: home, Key: []byte{}, Value: order("o-4", "9")},
	}
	produceMessages(t, addrs, msgs)
	s := newMemSink()
	r := start(t, testOptions(addrs, s))
	waitCommitted(t, addrs, "pyramid", map[string]map[int]int64{orders: {home: 2, other: 2}}, 60*time.Second)
	r.Stop(t)

	dl := testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, parts)
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want the 3 messages not keyed by account_id", len(dl))
	}
	for _, d := range dl {
		if got := testenv.Header(d, "pyramid-reason"); got != event.ReasonBadKey {
			t.Errorf("dead letter %s (%s): reason %q, want %q", d.Value, testenv.Header(d, "pyramid-error"), got, event.ReasonBadKey)
		}
	}
	snap, ok := s.latest()[acc]
	if !ok || snap.CurrentValue.String() != "20.00" || snap.Version != 1 {
		t.Fatalf("snapshot of %s: %+v, want version 1 with the one keyed order (20.00)", acc, snap)
	}
	// One state: the account's changelog records are all in its partition.
	for _, rec := range testenv.ReadTopic(t, addrs, kafkaio.State, parts) {
		if string(rec.Key) == acc && rec.Partition != home {
			t.Errorf("state of %s written to partition %d, its events' partition is %d", acc, rec.Partition, home)
		}
	}
}
