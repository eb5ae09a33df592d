package testenv

import (
	"context"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/broker"
)

// KafkaEnv names the Kafka release the tests' brokers emulate, e.g. "4.1"
// (see broker.Emulation); unset, they are kfake as it is. scripts/test.sh
// runs the Kafka-facing packages once each way.
const KafkaEnv = "PYRAMID_TEST_KAFKA"

// KafkaRelease returns the release of KafkaEnv, "" for kfake as it is.
func KafkaRelease() string { return os.Getenv(KafkaEnv) }

// Kafka starts an in-process kfake broker with opts, closed at cleanup.
// Under KafkaEnv it accepts only that release's protocol versions, and the
// test fails at cleanup naming every request the broker refused: Kafka
// refuses by closing the connection, which a client reports as EOF and
// retries, so without this a refused version looks like a hang.
func Kafka(tb testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	em := emulation(tb)
	if em != nil {
		opts = append(slices.Clone(opts), em.Opts()...)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	if em != nil {
		if err := em.Attach(c); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { CheckRefused(tb, em) })
	}
	return c
}

// StartBroker is broker.Start for tests: Release defaults to KafkaEnv's,
// the broker closes at cleanup, and refused requests fail the test as in
// Kafka.
func StartBroker(tb testing.TB, opts broker.Options) *broker.Broker {
	tb.Helper()
	if opts.Release == "" {
		opts.Release = KafkaRelease()
	}
	b, err := broker.Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	if em := b.Emulation(); em != nil {
		tb.Cleanup(func() { CheckRefused(tb, em) })
	}
	return b
}

// CheckRefused fails tb once for every request em refused.
func CheckRefused(tb testing.TB, em *broker.Emulation) {
	tb.Helper()
	refused := em.Refused()
	reqs := make([]broker.Request, 0, len(refused))
	for r := range refused {
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool {
		return reqs[i].Key < reqs[j].Key || reqs[i].Key == reqs[j].Key && reqs[i].Version < reqs[j].Version
	})
	name := "Kafka " + em.Release()
	if em.Release() == "" {
		name = "kfake"
	}
	for _, r := range reqs {
		tb.Errorf("the broker emulating %s refused %s: %s", name, r, refused[r])
	}
}

func emulation(tb testing.TB) *broker.Emulation {
	tb.Helper()
	rel := KafkaRelease()
	if rel == "" {
		return nil
	}
	em, err := broker.NewEmulation(rel)
	if err != nil {
		tb.Fatalf("%s: %v", KafkaEnv, err)
	}
	return em
}

// ReadTopic reads every record of partitions 0 to partitions-1 of topic,
// up to their ends as of the call.
func ReadTopic(tb testing.TB, addrs []string, topic string, partitions int) []kafka.Message {
	tb.Helper()
	var all []kafka.Message
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	for p := 0; p < partitions; p++ {
		conn, err := d.DialLeader(context.Background(), "tcp", addrs[0], topic, p)
		if err != nil {
			tb.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		if err != nil {
			tb.Fatal(err)
		}
		for off := first; off < last; {
			conn.Seek(off, kafka.SeekAbsolute|kafka.SeekDontCheck)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
			for {
				m, err := b.ReadMessage()
				if err != nil {
					break
				}
				all = append(all, m)
				off = m.Offset + 1
			}
			b.Close()
		}
		conn.Close()
	}
	return all
}

// Header returns the value of m's header key, "" when it has none.
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
