package consumer

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// maxMessageBytes reads a topic's max.message.bytes.
func maxMessageBytes(tb testing.TB, addrs []string, topic string) int {
	tb.Helper()
	lim, err := topicLimits(context.Background(), &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second},
		slog.New(slog.DiscardHandler), []string{topic}, false)
	if err != nil {
		tb.Fatal(err)
	}
	return lim[topic]
}

// Pyramid creates the state and dead-letter topics with the record sizes
// it needs, and checks existing ones at start: a smaller state topic runs
// with a warning that says how to raise it, one too small for ordinary
// accounts is refused with the same advice.
func TestTopicLimits(t *testing.T) {
	t.Run("created", func(t *testing.T) {
		addrs := newCluster(t, 2, testTopics).ListenAddrs()
		r := start(t, testOptions(addrs, newMemSink()))
		waitUntil(t, "the internal topics", func() bool { return r.p.Ready() == nil })
		r.Stop(t)
		if got := maxMessageBytes(t, addrs, kafkaio.State); got != StateMaxMessageBytes {
			t.Errorf("%s created with max.message.bytes %d, want %d", kafkaio.State, got, StateMaxMessageBytes)
		}
		if got := maxMessageBytes(t, addrs, kafkaio.DeadLetters); got != DLQMaxMessageBytes {
			t.Errorf("%s created with max.message.bytes %d, want %d", kafkaio.DeadLetters, got, DLQMaxMessageBytes)
		}
	})
	t.Run("smaller", func(t *testing.T) {
		addrs := newCluster(t, 2, testTopics).ListenAddrs()
		createTopic(t, addrs, kafkaio.State, 2, map[string]string{"cleanup.policy": "compact", "max.message.bytes": "1048588"})
		var log testenv.Buffer
		opts := testOptions(addrs, newMemSink())
		opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
		r := start(t, opts)
		waitUntil(t, "the start", func() bool { return r.p.Ready() == nil })
		r.Stop(t)
		for _, want := range []string{"max_message_bytes=1048588", "kafka-configs.sh", "--entity-name " + kafkaio.State, "max.message.bytes=" + strconv.Itoa(StateMaxMessageBytes)} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("the log does not say %q:\n%s", want, log.String())
			}
		}
	})
	t.Run("too small", func(t *testing.T) {
		addrs := newCluster(t, 2, testTopics).ListenAddrs()
		createTopic(t, addrs, kafkaio.State, 2, map[string]string{"cleanup.policy": "compact", "max.message.bytes": "32768"})
		p, err := New(testOptions(addrs, newMemSink()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = p.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "max.message.bytes=32768") || !strings.Contains(err.Error(), "kafka-configs.sh") {
			t.Fatalf("Run = %v; want a refusal naming the limit and how to raise it", err)
		}
	})
}
