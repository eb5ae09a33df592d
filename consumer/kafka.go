package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// This file holds the partition's requests to Kafka other than fetching
// its input (fetch.go): reading the changelog at restore, and the flush
// path's produces and commits.

// readChangelog returns the newest value per key of one changelog
// partition, read up to its high-water mark as of the call.
func readChangelog(ctx context.Context, log *slog.Logger, d *kafka.Dialer, brokers []string, topic string, partition int) (map[string][]byte, error) {
	latest := map[string][]byte{}
	var offset int64 = -1
	bo := reconnectBackOff()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !sleep(ctx, bo.NextBackOff()) {
				return nil, ctx.Err()
			}
		}
		done, err := func() (bool, error) {
			conn, err := dialLeader(ctx, d, brokers, topic, partition)
			if err != nil {
				return false, err
			}
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			first, last, err := conn.ReadOffsets()
			if err != nil {
				return false, err
			}
			if offset < first {
				offset = first
			}
			for empty := 0; offset < last; {
				if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
					return false, err
				}
				before := offset
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
				for {
					m, err := batch.ReadMessage()
					if err != nil {
						break
					}
					if m.Offset >= last {
						break
					}
					if m.Value == nil {
						delete(latest, string(m.Key))
					} else {
						latest[string(m.Key)] = m.Value
					}
					offset = m.Offset + 1
				}
				if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, kafka.RequestTimedOut) {
					return false, err
				}
				// Compaction can leave the end of the range without records.
				if offset == before {
					if empty++; empty > 20 {
						log.Warn("state topic partition ends early; reading no further", "topic", topic, "partition", partition, "offset", offset, "end", last)
						break
					}
				} else {
					empty = 0
				}
			}
			return true, nil
		}()
		if done {
			return latest, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt%10 == 0 {
			log.Warn("reading the state topic failed; retrying", "topic", topic, "partition", partition, "offset", offset, "err", err)
		}
	}
}

// lastOffset returns the end offset of one partition, retrying while
// Kafka cannot be reached.
func lastOffset(ctx context.Context, log *slog.Logger, d *kafka.Dialer, brokers []string, topic string, partition int) (int64, error) {
	bo := reconnectBackOff()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(ctx, bo.NextBackOff()) {
			return 0, ctx.Err()
		}
		end, err := func() (int64, error) {
			conn, err := dialLeader(ctx, d, brokers, topic, partition)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			return conn.ReadLastOffset()
		}()
		if err == nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if attempt%10 == 0 {
			log.Warn("reading a partition's end offset failed; retrying", "topic", topic, "partition", partition, "err", err)
		}
	}
}

func dialLeader(ctx context.Context, d *kafka.Dialer, brokers []string, topic string, partition int) (*kafka.Conn, error) {
	var err error
	for _, b := range brokers {
		var c *kafka.Conn
		if c, err = d.DialLeader(ctx, "tcp", b, topic, partition); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// maxProduceBytes bounds the records of one produce request, which go in
// one record batch.
const maxProduceBytes = 768 << 10

// rec is a record to produce.
type rec struct {
	key, value []byte
	headers    []kafka.Header
	// key's and value's place in its job's arena while sealing: key is
	// [off, mid), value [mid, end).
	off, mid, end int
}

func (r *rec) size() int {
	s := 64 + len(r.key) + len(r.value)
	for _, h := range r.headers {
		s += len(h.Key) + len(h.Value)
	}
	return s
}

// kafkaWriter is all the flush path asks of Kafka: produce records to one
// partition, and commit offsets through the group generation. Each call is
// one attempt; retrying is the caller's (see produce). Tests wrap it to make
// Kafka fail, or the process die, at any call.
type kafkaWriter interface {
	// Produce writes recs to partition of topic with acks=all in one
	// request and returns once Kafka acknowledged them all, or failed.
	Produce(ctx context.Context, topic string, partition int, recs []rec) error
	// Commit commits offsets for gen's members.
	Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error
}

// kafkaClient is the kafkaWriter on kafka-go.
type kafkaClient struct{ cl *kafka.Client }

func (k kafkaClient) Produce(ctx context.Context, topic string, partition int, recs []rec) error {
	batch := make([]kafka.Record, len(recs))
	for i := range batch {
		r := &recs[i]
		batch[i] = kafka.Record{Key: kafka.NewBytes(r.key), Value: kafka.NewBytes(r.value), Headers: r.headers}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := k.cl.Produce(ctx, &kafka.ProduceRequest{
		Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(batch...),
	})
	if err == nil && resp != nil && resp.Error != nil {
		err = resp.Error
	}
	return err
}

func (kafkaClient) Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error {
	return gen.CommitOffsets(offsets)
}

// produce writes records to one partition through kw, in requests of
// bounded size, each retried by stage while its error can heal and ctx
// lasts. topicMax is the topic's max.message.bytes, which bounds a
// request's batch; a record larger than a request's share goes alone.
func produce(ctx context.Context, stage *retry.Stage, kw kafkaWriter, topic string, partition int, recs []rec, topicMax int) error {
	part := strconv.Itoa(partition)
	limit := min(maxProduceBytes, topicMax-batchOverhead)
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) {
			s := recs[n].size()
			if n > 0 && size+s > limit {
				break
			}
			size += s
			n++
		}
		err := stage.Do(ctx, part, func(ctx context.Context) (bool, error) {
			err := kw.Produce(ctx, topic, partition, recs[:n])
			if err == nil {
				return false, nil
			}
			// Retrying cannot fix a refusal such as a missing ACL or a
			// record over the topic's max.message.bytes.
			if !kafkaio.Retryable(err) {
				return false, fmt.Errorf("writing to %s partition %d was refused: %w", topic, partition, err)
			}
			return true, fmt.Errorf("writing to %s partition %d: %w", topic, partition, err)
		})
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// reconnectBackOff paces the loops that read from Kafka (the fetchers,
// the changelog restore, the start-up checks) while a broker cannot be
// reached: 100 ms doubling to 2 s, ±25%, until their context ends.
func reconnectBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithRandomizationFactor(0.25),
		backoff.WithMaxElapsedTime(0),
	)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
