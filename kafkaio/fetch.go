package kafkaio

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
)

// Fetched is one fetch response of a topic-partition.
type Fetched struct {
	Msgs []kafka.Message
	HWM  int64 // the partition's high-water mark as the response gave it
	// Start is, in the first delivery of a connection, the offset reading
	// starts from (kafka.FirstOffset and offsets before the log's start
	// resolved); -1 in the others.
	Start int64
}

// Fetcher reads one topic-partition from an offset and hands whole fetch
// responses to its caller, reconnecting (with backoff) until its context
// ends. The caller's deliver blocks while it is busy, which stops the
// fetching: memory stays bounded by what the caller holds plus MaxBytes.
type Fetcher struct {
	Dialer    *kafka.Dialer
	Brokers   []string
	Topic     string
	Partition int
	MaxWait   time.Duration // long-poll wait of a fetch
	MaxBytes  int           // bytes per fetch
	Log       *slog.Logger
	// Spare, when set, takes back slices of messages the caller is done
	// with (their keys and values stay the caller's): a response is read
	// into one when one waits, saving a large allocation per response.
	Spare chan []kafka.Message
}

// Run fetches from offset (absolute, or kafka.FirstOffset) until ctx ends
// or deliver returns false. The first delivery of every connection carries
// no messages, only the partition's high-water mark, before the first
// (long-polled) fetch answers: a caller that waits until it has read every
// input to its end needs it even from an empty partition. Every later one
// carries messages, each response in its own slice: the caller may keep
// them, or hand the slice back through Spare.
func (f *Fetcher) Run(ctx context.Context, offset int64, deliver func(Fetched) bool) {
	bo := ReconnectBackOff()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 && !Sleep(ctx, bo.NextBackOff()) {
			return
		}
		conn, err := DialLeader(ctx, f.Dialer, f.Brokers, f.Topic, f.Partition)
		if err != nil {
			if attempt%10 == 1 {
				f.Log.Warn("cannot reach partition leader; retrying", "topic", f.Topic, "partition", f.Partition, "err", err)
			}
			continue
		}
		next, stop, err := f.session(ctx, conn, offset, deliver)
		conn.Close()
		if stop {
			return
		}
		if next > offset || (offset < 0 && next >= 0) {
			offset = next
			attempt = 0
			bo.Reset()
		}
		if err != nil && ctx.Err() == nil {
			var kerr kafka.Error
			if errors.As(err, &kerr) && !kerr.Temporary() && !errors.Is(err, kafka.OffsetOutOfRange) &&
				!errors.Is(err, kafka.NotLeaderForPartition) && !errors.Is(err, kafka.UnknownTopicOrPartition) {
				f.Log.Error("fetch failed", "topic", f.Topic, "partition", f.Partition, "offset", offset, "err", err)
			} else {
				f.Log.Debug("fetch interrupted; reconnecting", "topic", f.Topic, "partition", f.Partition, "offset", offset, "err", err)
			}
		}
	}
}

// session fetches over one connection until an error; it returns the next
// offset to read, and whether deliver asked to stop.
func (f *Fetcher) session(ctx context.Context, conn *kafka.Conn, offset int64, deliver func(Fetched) bool) (int64, bool, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return offset, false, err
	}
	switch {
	case offset == kafka.FirstOffset || offset < first:
		offset = first
	case offset == kafka.LastOffset:
		offset = last
	}
	if !deliver(Fetched{HWM: last, Start: offset}) {
		return offset, true, nil
	}
	prev := 0 // messages in the previous response: the next one's likely size
	for {
		if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return offset, false, err
		}
		conn.SetReadDeadline(time.Now().Add(f.MaxWait + 10*time.Second))
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.MaxBytes, MaxWait: f.MaxWait})
		hwm := batch.HighWaterMark()
		var msgs []kafka.Message
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if msgs == nil {
				select {
				case msgs = <-f.Spare:
					msgs = msgs[:0]
				default:
					msgs = make([]kafka.Message, 0, max(prev, 16))
				}
			}
			msgs = append(msgs, m)
		}
		prev = len(msgs)
		err := batch.Close()
		if len(msgs) > 0 {
			if !deliver(Fetched{Msgs: msgs, HWM: hwm, Start: -1}) {
				return offset, true, nil
			}
			offset = msgs[len(msgs)-1].Offset + 1
		}
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, kafka.RequestTimedOut):
		case errors.Is(err, kafka.OffsetOutOfRange):
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			first, last, oerr := conn.ReadOffsets()
			if oerr != nil {
				return offset, false, oerr
			}
			if offset < first {
				f.Log.Warn("offset no longer in the log; skipping to the first offset", "topic", f.Topic, "partition", f.Partition, "offset", offset, "first", first)
				offset = first
			} else if offset > last {
				return offset, false, err
			}
		default:
			return offset, false, err
		}
		if ctx.Err() != nil {
			return offset, false, ctx.Err()
		}
	}
}

// DialLeader connects to the leader of a topic-partition through the
// first broker that answers.
func DialLeader(ctx context.Context, d *kafka.Dialer, brokers []string, topic string, partition int) (*kafka.Conn, error) {
	var err error
	for _, b := range brokers {
		var c *kafka.Conn
		if c, err = d.DialLeader(ctx, "tcp", b, topic, partition); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// ReconnectBackOff paces the loops that read from Kafka while a broker
// cannot be reached: 100 ms doubling to 2 s, ±25%, until their context
// ends.
func ReconnectBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithRandomizationFactor(0.25),
		backoff.WithMaxElapsedTime(0),
	)
}

// Sleep waits d or until ctx ends, and reports whether it waited d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
