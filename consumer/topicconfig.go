package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// The largest records Pyramid writes to its state and dead-letter topics.
// A broker refuses a record batch larger than the topic's
// max.message.bytes, by default the broker's message.max.bytes (1 MiB), so
// Pyramid sets it when it creates these topics, reads it at start when
// they exist, and keeps every record under it.
const (
	// StateMaxMessageBytes (4 MiB) is the state topic's limit: an account
	// at the default limits (1,000 open opportunities with 128-byte ids,
	// about 200 KB) fits twenty times over, as do some 200,000 forgotten
	// opportunities (tombstones of about 20 bytes each). It stays within
	// what managed Kafka services allow per topic (8 MiB on Confluent
	// Cloud's standard clusters), and a restore reads such a record in one
	// fetch (a broker returns an oversized first batch whole).
	StateMaxMessageBytes = 4 << 20
	// DLQMaxMessageBytes (2 MiB) is the dead-letter topic's limit
	// (kafkaio.DeadLettersMaxMessageBytes).
	DLQMaxMessageBytes = kafkaio.DeadLettersMaxMessageBytes
	// defaultMaxMessageBytes is Kafka's default message.max.bytes, assumed
	// when a topic's limit cannot be read.
	defaultMaxMessageBytes = kafkaio.DefaultMaxMessageBytes
	// minStateMessageBytes is the least state topic limit Pyramid runs
	// with: below it ordinary accounts would freeze.
	minStateMessageBytes = 64 << 10
	// batchOverhead is what a record batch of one record adds to its key,
	// value and headers (kafkaio.BatchOverhead).
	batchOverhead = kafkaio.BatchOverhead
)

// maxMessageBytesConfig is the topic configuration Pyramid sets and reads.
const maxMessageBytesConfig = kafkaio.MaxMessageBytesConfig

// topicLimits reads max.message.bytes of topics. A topic whose limit cannot
// be read (no DescribeConfigs permission, say) gets Kafka's default, the
// limit it most likely has, and a warning. A request that fails (kafka-go
// sends it to the broker the metadata names as controller, which may be
// the one broker down) is an error for the caller to retry, or with
// assume, every topic gets Kafka's default and a warning.
func topicLimits(ctx context.Context, cl *kafka.Client, log *slog.Logger, topics []string, assume bool) (map[string]int, error) {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{maxMessageBytesConfig}})
	}
	resp, err := cl.DescribeConfigs(ctx, req)
	out := map[string]int{}
	if err != nil && assume && ctx.Err() == nil {
		log.Warn("cannot read the topics' max.message.bytes; assuming Kafka's default", "topics", topics, "assumed", defaultMaxMessageBytes, "err", err)
		for _, t := range topics {
			out[t] = defaultMaxMessageBytes
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the configuration of topics %v: %w", topics, err)
	}
	for _, r := range resp.Resources {
		var why error = r.Error
		if why == nil {
			why = errors.New("the broker did not say")
			for _, e := range r.ConfigEntries {
				if e.ConfigName != maxMessageBytesConfig {
					continue
				}
				if n, err := strconv.Atoi(e.ConfigValue); err == nil && n > 0 {
					out[r.ResourceName], why = n, nil
				} else {
					why = fmt.Errorf("unreadable value %q", e.ConfigValue)
				}
			}
		}
		if why != nil {
			log.Warn("cannot read a topic's max.message.bytes; assuming Kafka's default (grant DescribeConfigs on the topic to check it)",
				"topic", r.ResourceName, "assumed", defaultMaxMessageBytes, "err", why)
			out[r.ResourceName] = defaultMaxMessageBytes
		}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("reading the configuration of topic %s: no answer for it", t)
		}
	}
	return out, nil
}

// checkLimits reads the limits of the state and dead-letter topics into
// lay (assume: see topicLimits). A state topic with a lower limit than Pyramid gives it runs, with a
// warning that says how to raise it: accounts whose state would not fit
// freeze (see freeze.go). One too small for ordinary accounts is refused.
func checkLimits(ctx context.Context, cl *kafka.Client, opts *Options, lay *topicLayout, assume bool) error {
	lim, err := topicLimits(ctx, cl, opts.Logger, []string{opts.Changelog, opts.DLQ}, assume)
	if err != nil {
		return err
	}
	lay.stateMax, lay.dlqMax = lim[opts.Changelog], lim[opts.DLQ]
	raise := func(topic string, want int) string {
		return fmt.Sprintf("kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name %s --add-config %s=%d", topic, maxMessageBytesConfig, want)
	}
	if lay.stateMax < minStateMessageBytes {
		return layoutErrorf("state topic %s has max.message.bytes=%d, too small for an ordinary account's state (at least %d); raise it to %d: %s",
			opts.Changelog, lay.stateMax, minStateMessageBytes, StateMaxMessageBytes, raise(opts.Changelog, StateMaxMessageBytes))
	}
	if lay.stateMax < StateMaxMessageBytes {
		opts.Logger.Warn("the state topic takes smaller records than Pyramid creates it with; an account whose state outgrows them is frozen (pyramid_accounts_frozen). Raise the limit with: "+raise(opts.Changelog, StateMaxMessageBytes),
			"topic", opts.Changelog, "max_message_bytes", lay.stateMax, "want", StateMaxMessageBytes)
	}
	if lay.dlqMax < DLQMaxMessageBytes {
		opts.Logger.Info("the dead-letter topic takes smaller records than Pyramid creates it with; larger dead letters keep only their beginning. Raise the limit with: "+raise(opts.DLQ, DLQMaxMessageBytes),
			"topic", opts.DLQ, "max_message_bytes", lay.dlqMax, "want", DLQMaxMessageBytes)
	}
	return nil
}
