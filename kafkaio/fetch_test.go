package kafkaio_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// TestFetcherReusesSpareSlices fetches a partition in many small
// responses, handing each response's slice back through Spare: every
// record arrives once, in order, and later responses are read into the
// slices handed back instead of new ones.
func TestFetcherReusesSpareSlices(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	addrs := c.ListenAddrs()
	cl := kafkaio.Client{Client: &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}}
	const n = 2000
	for i := 0; i < n; i += 100 {
		var recs []kafkaio.Record
		for j := i; j < i+100; j++ {
			recs = append(recs, kafkaio.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "value %04d", j)})
		}
		if err := cl.Produce(context.Background(), "t", 0, recs); err != nil {
			t.Fatal(err)
		}
	}
	f := &kafkaio.Fetcher{Dialer: kafkaio.Dialer(), Brokers: addrs, Topic: "t", Partition: 0,
		MaxWait: 50 * time.Millisecond, MaxBytes: 4 << 10, Log: slog.Default(), Spare: make(chan []kafka.Message, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next, responses, reused := int64(0), 0, 0
	arrays := map[*kafka.Message]bool{}
	f.Run(ctx, kafka.FirstOffset, func(fr kafkaio.Fetched) bool {
		if len(fr.Msgs) == 0 {
			return true
		}
		responses++
		if arrays[&fr.Msgs[:1][0]] {
			reused++
		}
		for _, m := range fr.Msgs {
			if want := fmt.Sprintf("value %04d", next); m.Offset != next || string(m.Value) != want {
				t.Fatalf("offset %d %q, want %d %q", m.Offset, m.Value, next, want)
			}
			next++
		}
		arrays[&fr.Msgs[:1][0]] = true
		f.Spare <- fr.Msgs
		return next < n
	})
	if next != n {
		t.Fatalf("read %d records, want %d", next, n)
	}
	if responses < 5 || reused < responses-2 {
		t.Errorf("%d responses, %d of them read into a slice handed back", responses, reused)
	}
}
