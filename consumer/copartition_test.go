package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// With declared inputs, a native event in another partition than the
// configured partitioner gives its account is dead-lettered (bad_key):
// its account's mapped events are elsewhere. Without declared inputs any
// partitioner is accepted.
func TestNativePartitionChecked(t *testing.T) {
	for _, declared := range []bool{true, false} {
		t.Run(fmt.Sprintf("inputs_declared=%v", declared), func(t *testing.T) {
			c := newCluster(t, 4, testTopics)
			addrs := c.ListenAddrs()
			cfg := config.Default()
			if declared {
				cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
			}
			murmur := kafkaio.NewPartitioner(config.PartitionerMurmur2, 4)
			at := testNow.Add(-time.Hour).Format(time.RFC3339)
			var msgs []msg
			misplaced := 0
			for i := range 40 {
				acc := fmt.Sprintf("acc-%d", i)
				p := murmur.Partition([]byte(acc))
				if i%4 == 0 {
					p = (p + 1) % 4 // a producer with another partitioner
					misplaced++
				}
				msgs = append(msgs, msg{topic: testTopics[2], partition: p, key: acc,
					value: []byte(fmt.Sprintf(`{"event_id":"e-%d","type":"activity","kind":"call","account_id":%q,"occurred_at":%q}`, i, acc, at))})
			}
			produceAll(t, addrs, msgs)
			s := newMemSink()
			opts := testOptions(addrs, s)
			opts.Config = cfg
			r := start(t, opts)
			waitCommitted(t, addrs, "pyramid", endOffsets(msgs), 60*time.Second)
			r.Stop(t)

			dl := testenv.ReadTopic(t, addrs, kafkaio.DeadLetters, 4)
			if !declared {
				if len(dl) != 0 || len(s.latest()) != 40 {
					t.Fatalf("without declared inputs: %d dead letters, %d accounts; want 0 and 40", len(dl), len(s.latest()))
				}
				return
			}
			if len(dl) != misplaced || len(s.latest()) != 40-misplaced {
				t.Fatalf("%d dead letters and %d accounts, want %d and %d", len(dl), len(s.latest()), misplaced, 40-misplaced)
			}
			for _, d := range dl {
				if testenv.Header(d, kafkaio.HeaderReason) != event.ReasonBadKey || !strings.Contains(testenv.Header(d, kafkaio.HeaderError), "murmur2 partitioner puts it in partition") {
					t.Errorf("dead letter %s: %s / %s", d.Key, testenv.Header(d, kafkaio.HeaderReason), testenv.Header(d, kafkaio.HeaderError))
				}
			}
		})
	}
}
