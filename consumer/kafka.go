package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// This file holds the partition's reading of the changelog at restore.
// Fetching its input, the flush path's produces and commits, and the
// backoff of both are kafkaio's (Fetcher, Writer, Produce).

// readChangelog returns the newest value per key of one changelog
// partition, read up to its high-water mark as of the call.
func readChangelog(ctx context.Context, log *slog.Logger, d *kafka.Dialer, brokers []string, topic string, partition int) (map[string][]byte, error) {
	latest := map[string][]byte{}
	var offset int64 = -1
	bo := kafkaio.ReconnectBackOff()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !kafkaio.Sleep(ctx, bo.NextBackOff()) {
				return nil, ctx.Err()
			}
		}
		done, err := func() (bool, error) {
			conn, err := kafkaio.DialLeader(ctx, d, brokers, topic, partition)
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
	bo := kafkaio.ReconnectBackOff()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !kafkaio.Sleep(ctx, bo.NextBackOff()) {
			return 0, ctx.Err()
		}
		end, err := func() (int64, error) {
			conn, err := kafkaio.DialLeader(ctx, d, brokers, topic, partition)
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
