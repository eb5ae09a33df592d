package gen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultTopicPrefix prefixes the per-type input topics.
const DefaultTopicPrefix = "crm."

// Topics returns the four per-type input topics under prefix.
func Topics(prefix string) []string {
	return []string{prefix + "orders", prefix + "opportunities", prefix + "activities", prefix + "accounts"}
}

// TopicFor returns the topic an event of type typ goes to; events whose type
// cannot be read go to the activities topic.
func TopicFor(prefix, typ string) string {
	switch typ {
	case "order":
		return prefix + "orders"
	case "opportunity":
		return prefix + "opportunities"
	case "account":
		return prefix + "accounts"
	}
	return prefix + "activities"
}

// ProduceOptions configures Produce.
type ProduceOptions struct {
	Brokers     []string // host:port of one or more brokers (required)
	TopicPrefix string   // default DefaultTopicPrefix
	// Rate is the target number of events per second; 0 produces as fast as
	// the broker takes them.
	Rate float64
	// Progress, when set, is called after every acknowledged chunk with the
	// number of events produced so far.
	Progress func(produced int64)
	// Transport carries TLS and SASL settings; nil uses
	// kafka.DefaultTransport.
	Transport kafka.RoundTripper
}

// Produce writes the generator's remaining events to the per-type topics,
// keyed by account_id and partitioned with the murmur2 hash Java clients use,
// so that one account's events land in the same partition number of every
// topic (given equal partition counts). It returns the number of events the
// broker acknowledged; on context cancellation it stops and returns
// ctx.Err() with what was written so far.
func Produce(ctx context.Context, g *Generator, opts ProduceOptions) (int64, error) {
	if len(opts.Brokers) == 0 {
		return 0, errors.New("produce: no brokers given")
	}
	if opts.Rate < 0 {
		return 0, fmt.Errorf("produce: rate must be >= 0, not %v", opts.Rate)
	}
	prefix := opts.TopicPrefix
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	chunk := 2000
	if opts.Rate > 0 {
		// About twenty chunks a second keeps the pace smooth.
		chunk = min(max(int(opts.Rate/20), 1), 2000)
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(opts.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		BatchSize:              chunk,
		BatchBytes:             4 << 20,
		BatchTimeout:           5 * time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Transport:              opts.Transport,
	}
	var produced int64
	started := time.Now()
	msgs := make([]kafka.Message, 0, chunk)
	for {
		msgs = msgs[:0]
		for len(msgs) < chunk {
			rec, ok := g.Next()
			if !ok {
				break
			}
			msgs = append(msgs, kafka.Message{
				Topic: TopicFor(prefix, rec.Type),
				Key:   []byte(rec.AccountID),
				Value: append([]byte(nil), rec.Line...),
			})
		}
		if len(msgs) == 0 {
			break
		}
		if opts.Rate > 0 {
			due := started.Add(time.Duration(float64(produced) / opts.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					w.Close()
					return produced, ctx.Err()
				case <-time.After(d):
				}
			}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			w.Close()
			if ctx.Err() != nil {
				return produced, ctx.Err()
			}
			return produced, fmt.Errorf("produce to %v: %w", opts.Brokers, err)
		}
		produced += int64(len(msgs))
		if opts.Progress != nil {
			opts.Progress(produced)
		}
	}
	if err := w.Close(); err != nil {
		return produced, fmt.Errorf("produce: close writer: %w", err)
	}
	return produced, nil
}
