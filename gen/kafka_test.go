package gen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

func TestProduce(t *testing.T) {
	const prefix = "crm."
	topics := kafkaio.InputTopics(prefix)
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(12, topics...))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	opts := Options{Accounts: 150, Events: 6000, Seed: 9, BadRatio: 0.05}
	g := mustNew(t, opts)
	n, err := Produce(ctx, g, ProduceOptions{Brokers: c.ListenAddrs(), TopicPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(opts.Events) {
		t.Fatalf("produced %d, want %d", n, opts.Events)
	}

	// Read everything back and check the keying.
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
	partOf := map[string]int{}
	perTopic := map[string]int{}
	total := 0
	for _, topic := range topics {
		for p := range 12 {
			offset := int64(0)
			for {
				res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: offset, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if res.Error != nil {
					t.Fatalf("%s/%d: %v", topic, p, res.Error)
				}
				for {
					r, err := res.Records.ReadRecord()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if r.Offset < offset {
						continue
					}
					offset = r.Offset + 1
					key, _ := io.ReadAll(r.Key)
					val, _ := io.ReadAll(r.Value)
					total++
					perTopic[topic]++
					if q, ok := partOf[string(key)]; ok && q != p {
						t.Fatalf("account %s in partition %d and %d", key, q, p)
					}
					partOf[string(key)] = p
					var m struct {
						Type      string `json:"type"`
						AccountID string `json:"account_id"`
					}
					if json.Unmarshal(val, &m) == nil && m.AccountID == string(key) {
						if want := kafkaio.InputTopicFor(prefix, m.Type); want != topic {
							t.Fatalf("%s event in %s: %s", m.Type, topic, val)
						}
					}
				}
				if offset >= res.HighWatermark {
					break
				}
			}
		}
	}
	if total != opts.Events {
		t.Fatalf("read back %d events, want %d (per topic %v)", total, opts.Events, perTopic)
	}
	if len(partOf) != opts.Accounts {
		t.Errorf("%d keys, want %d accounts", len(partOf), opts.Accounts)
	}
	used := map[int]bool{}
	for _, p := range partOf {
		used[p] = true
	}
	if len(used) < 8 {
		t.Errorf("accounts spread over only %d of 12 partitions", len(used))
	}
	for _, topic := range topics {
		if perTopic[topic] == 0 {
			t.Errorf("nothing in %s", topic)
		}
	}
	t.Logf("per topic %v", perTopic)
}

func TestProduceRateAndCancel(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(3, kafkaio.InputTopics("t.")...))
	g := mustNew(t, Options{Accounts: 10, Events: 100_000})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	n, err := Produce(ctx, g, ProduceOptions{Brokers: c.ListenAddrs(), TopicPrefix: "t.", Rate: 1000})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("stopping took %v", el)
	}
	// 1000/s for 0.7 s: about 700, allowing for a slow first metadata round.
	if n < 100 || n > 1000 {
		t.Errorf("produced %d at 1000/s in 0.7 s", n)
	}
}

// With Stamp, every event carries the time it was produced at as its
// occurred_at: the live part of the demo.
func TestProduceStamp(t *testing.T) {
	topics := kafkaio.InputTopics("t.")
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stamp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	n, err := Produce(ctx, mustNew(t, Options{Accounts: 20, Events: 200, Seed: 3}),
		ProduceOptions{Brokers: c.ListenAddrs(), TopicPrefix: "t.", Stamp: func() time.Time { return stamp }})
	if err != nil || n != 200 {
		t.Fatalf("produced %d: %v", n, err)
	}
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
	read := 0
	for _, topic := range topics {
		res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
		if err != nil || res.Error != nil {
			t.Fatalf("fetch %s: %v %v", topic, err, res.Error)
		}
		for {
			r, err := res.Records.ReadRecord()
			if err != nil {
				break
			}
			val, _ := io.ReadAll(r.Value)
			var ev struct {
				OccurredAt string `json:"occurred_at"`
			}
			if err := json.Unmarshal(val, &ev); err != nil || ev.OccurredAt != "2030-01-02T03:04:05Z" {
				t.Fatalf("event not stamped: %s", val)
			}
			read++
		}
	}
	if read != 200 {
		t.Errorf("read back %d of 200 events", read)
	}
}
