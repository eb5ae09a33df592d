package testenv

import (
	"os"
	"slices"
	"sort"
	"testing"

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
