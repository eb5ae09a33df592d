package gen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// ProduceOptions configures Produce.
type ProduceOptions struct {
	Brokers     []string // host:port of one or more brokers (required)
	TopicPrefix string   // default kafkaio.DefaultInputPrefix
	// Rate is the target number of events per second; 0 produces as fast as
	// the broker takes them.
	Rate float64
	// Progress, when set, is called after every acknowledged chunk with the
	// number of events produced so far.
	Progress func(produced int64)
	// Transport carries TLS and SASL settings; nil uses
	// kafka.DefaultTransport.
	Transport kafka.RoundTripper
	// Stamp, when set, replaces every event's occurred_at with its time
	// when the event is produced: a live stream after generated history,
	// as the demo runs.
	Stamp func() time.Time
	// Debezium writes the events as Debezium change records of a CRM
	// database instead (see Debezium), keyed by primary key, to
	// DebeziumTopics(TopicPrefix); TopicPrefix defaults to
	// DefaultDebeziumPrefix.
	Debezium bool
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
	switch {
	case prefix != "":
	case opts.Debezium:
		prefix = DefaultDebeziumPrefix
	default:
		prefix = kafkaio.DefaultInputPrefix
	}
	dbz := &Debezium{Prefix: prefix}
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
		now := ""
		if opts.Stamp != nil {
			now = opts.Stamp().UTC().Format(time.RFC3339)
		}
		for len(msgs) < chunk {
			rec, ok := g.Next()
			if !ok {
				break
			}
			if opts.Debezium {
				t, k, v := dbz.Record(rec)
				msgs = append(msgs, kafka.Message{Topic: t, Key: k, Value: v})
				continue
			}
			value := append([]byte(nil), rec.Line...)
			if now != "" {
				value = restamp(rec.Line, now)
			}
			msgs = append(msgs, kafka.Message{
				Topic: kafkaio.InputTopicFor(prefix, rec.Type),
				Key:   []byte(rec.AccountID),
				Value: value,
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

// restamp returns a copy of an event line with occurred_at replaced by now
// (RFC 3339).
func restamp(line []byte, now string) []byte {
	const key = `"occurred_at":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return append([]byte(nil), line...)
	}
	start := i + len(key)
	end := bytes.IndexByte(line[start:], '"')
	if end < 0 {
		return append([]byte(nil), line...)
	}
	out := make([]byte, 0, len(line)+len(now))
	out = append(out, line[:start]...)
	out = append(out, now...)
	return append(out, line[start+end:]...)
}
