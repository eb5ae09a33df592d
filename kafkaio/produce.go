package kafkaio

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/pyramid-crm/pyramid/internal/retry"
)

// MaxProduceBytes bounds the records of one produce request, which go in
// one record batch.
const MaxProduceBytes = 768 << 10

// Limits of record batches. A broker refuses a batch larger than the
// topic's max.message.bytes.
const (
	// BatchOverhead is what a record batch of one record adds to its key,
	// value and headers: the batch header (61 bytes) and the record's
	// framing, rounded up.
	BatchOverhead = 256
	// DefaultMaxMessageBytes is Kafka's default message.max.bytes, assumed
	// for a topic whose limit is not known.
	DefaultMaxMessageBytes = 1048588
	// DeadLettersMaxMessageBytes (2 MiB) is the max.message.bytes Pyramid
	// creates its dead-letter topic with: any message an input topic takes
	// at Kafka's default limit fits whole, with the headers that say why
	// it was refused.
	DeadLettersMaxMessageBytes = 2 << 20
	// MaxMessageBytesConfig is the topic configuration of that limit.
	MaxMessageBytesConfig = "max.message.bytes"
)

// Record is a record to produce.
type Record struct {
	Key, Value []byte
	Headers    []kafka.Header
	Time       time.Time // zero: the broker's time
}

// Size estimates the record's bytes in a produce request.
func (r *Record) Size() int {
	s := 64 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		s += len(h.Key) + len(h.Value)
	}
	return s
}

// Writer is all Pyramid's writing parts ask of Kafka: produce records to
// one partition, and commit offsets through a group generation. Each call
// is one attempt; retrying is the caller's (see Produce). Tests wrap it to
// make Kafka fail, or the process die, at any call.
type Writer interface {
	// Produce writes recs to partition of topic with acks=all in one
	// request and returns once Kafka acknowledged them all, or failed.
	Produce(ctx context.Context, topic string, partition int, recs []Record) error
	// Commit commits offsets for gen's members.
	Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error
}

// Client is the Writer on kafka-go.
type Client struct{ *kafka.Client }

func (k Client) Produce(ctx context.Context, topic string, partition int, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	bp := batchPool.Get().(*[]byte)
	// A raw record set is the batch after its size.
	buf := appendBatch(append((*bp)[:0], 0, 0, 0, 0), recs, time.Now().UnixMilli())
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := k.Client.RawProduce(ctx, &kafka.RawProduceRequest{
		Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll,
		RawRecords: protocol.RawRecordSet{Reader: bytes.NewReader(buf)},
	})
	if err == nil && resp != nil && resp.Error != nil {
		err = resp.Error
	}
	// A failed request may still be on its way to the broker when the
	// call returns: its buffer is not reused.
	if err == nil && cap(buf) <= 2*MaxProduceBytes {
		*bp = buf[:0]
		batchPool.Put(bp)
	}
	return err
}

func (Client) Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error {
	return gen.CommitOffsets(offsets)
}

// Produce writes records to one partition through w, in requests of
// bounded size, each retried by stage while its error can heal and ctx
// lasts. Requests go one after the other, so the records are appended in
// their order. topicMax is the topic's max.message.bytes, which bounds a
// request's batch; a record larger than a request's share goes alone.
func Produce(ctx context.Context, stage *retry.Stage, w Writer, topic string, partition int, recs []Record, topicMax int) error {
	part := topic + "/" + strconv.Itoa(partition)
	limit := min(MaxProduceBytes, topicMax-BatchOverhead)
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) {
			s := recs[n].Size()
			if n > 0 && size+s > limit {
				break
			}
			size += s
			n++
		}
		err := stage.Do(ctx, part, func(ctx context.Context) (bool, error) {
			err := w.Produce(ctx, topic, partition, recs[:n])
			if err == nil {
				return false, nil
			}
			// Retrying cannot fix a refusal such as a missing ACL or a
			// record over the topic's max.message.bytes.
			if !Retryable(err) {
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
