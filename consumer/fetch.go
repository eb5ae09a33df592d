package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// fetched is one fetch response of one input topic-partition.
type fetched struct {
	topic int // index into Options.Topics
	msgs  []kafka.Message
	hwm   int64
}

// fetcher reads one topic-partition from an offset and hands whole fetch
// responses to its worker. The worker's channel is small, so a worker that
// is blocked on a slow sink stops the fetching: memory stays bounded by
// channel capacity × FetchMaxBytes.
type fetcher struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	index     int
	partition int
	maxWait   time.Duration
	maxBytes  int
	log       *slog.Logger
	out       chan<- fetched
}

// run fetches from offset (absolute, or kafka.FirstOffset) until ctx ends.
func (f *fetcher) run(ctx context.Context, offset int64) {
	bo := reconnectBackOff()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 && !sleep(ctx, bo.NextBackOff()) {
			return
		}
		conn, err := dialLeader(ctx, f.dialer, f.brokers, f.topic, f.partition)
		if err != nil {
			if attempt%10 == 1 {
				f.log.Warn("cannot reach partition leader; retrying", "topic", f.topic, "partition", f.partition, "err", err)
			}
			continue
		}
		next, err := f.session(ctx, conn, offset)
		conn.Close()
		if next > offset || (offset < 0 && next >= 0) {
			offset = next
			attempt = 0
			bo.Reset()
		}
		if err != nil && ctx.Err() == nil {
			var kerr kafka.Error
			if errors.As(err, &kerr) && !kerr.Temporary() && !errors.Is(err, kafka.OffsetOutOfRange) &&
				!errors.Is(err, kafka.NotLeaderForPartition) && !errors.Is(err, kafka.UnknownTopicOrPartition) {
				f.log.Error("fetch failed", "topic", f.topic, "partition", f.partition, "offset", offset, "err", err)
			} else {
				f.log.Debug("fetch interrupted; reconnecting", "topic", f.topic, "partition", f.partition, "offset", offset, "err", err)
			}
		}
	}
}

// session fetches over one connection until an error; it returns the next
// offset to read.
func (f *fetcher) session(ctx context.Context, conn *kafka.Conn, offset int64) (int64, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return offset, err
	}
	switch {
	case offset == kafka.FirstOffset || offset < first:
		offset = first
	case offset == kafka.LastOffset:
		offset = last
	}
	// Tell the worker where this input ends before the first (long-polled)
	// fetch answers: it needs every input's high-water mark to know when it
	// has caught up, and an empty partition would otherwise say nothing.
	select {
	case f.out <- fetched{topic: f.index, hwm: last}:
	case <-ctx.Done():
		return offset, ctx.Err()
	}
	prev := 0 // messages in the previous response: the next one's likely size
	for {
		if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return offset, err
		}
		conn.SetReadDeadline(time.Now().Add(f.maxWait + 10*time.Second))
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: f.maxWait})
		hwm := batch.HighWaterMark()
		// The worker keeps pointers into msgs until it applied them, so
		// each response gets its own slice, sized like the last one.
		var msgs []kafka.Message
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if msgs == nil {
				msgs = make([]kafka.Message, 0, max(prev, 16))
			}
			msgs = append(msgs, m)
		}
		prev = len(msgs)
		err := batch.Close()
		// The first response is passed on even when empty: the worker needs
		// every input's high-water mark to know when it has caught up.
		if len(msgs) > 0 {
			select {
			case f.out <- fetched{topic: f.index, msgs: msgs, hwm: hwm}:
			case <-ctx.Done():
				return offset, ctx.Err()
			}
			offset = msgs[len(msgs)-1].Offset + 1
		}
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, kafka.RequestTimedOut):
		case errors.Is(err, kafka.OffsetOutOfRange):
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			first, last, oerr := conn.ReadOffsets()
			if oerr != nil {
				return offset, oerr
			}
			if offset < first {
				f.log.Warn("offset no longer in the log; skipping to the first offset", "topic", f.topic, "partition", f.partition, "offset", offset, "first", first)
				offset = first
			} else if offset > last {
				return offset, err
			}
		default:
			return offset, err
		}
		if ctx.Err() != nil {
			return offset, ctx.Err()
		}
	}
}
