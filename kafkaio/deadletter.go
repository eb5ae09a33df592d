package kafkaio

import (
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
)

// Headers of the records Pyramid writes to its dead-letter topic and its
// repartition topics (docs/events.md, "Bad input").
const (
	HeaderError     = "pyramid-error"     // one line a person can act on
	HeaderReason    = "pyramid-reason"    // the metric label, e.g. unknown_stage
	HeaderSource    = "pyramid-source"    // topic/partition/offset of the record it came from
	HeaderTruncated = "pyramid-truncated" // the original value's size, when cut
)

// Dead letters whose key and value take more than the dead-letter topic's
// max.message.bytes less DeadLetterHeaders keep only their first
// TruncatedDeadLetter bytes.
const (
	DeadLetterHeaders   = BatchOverhead + 16<<10 // the headers saying why, with room to spare
	TruncatedDeadLetter = 64 << 10
)

// DeadLetter returns the dead-letter record of a record that could not be
// applied: its key and value, the reason and message of err, and where it
// came from, source: topic/partition/offset (AppendSource). A record too
// large for the dead-letter topic, whose max.message.bytes is topicMax,
// keeps its beginning and says its size.
func DeadLetter(key, value []byte, err error, source []byte, topicMax int) Record {
	reason := Reason(err)
	msg := strings.Join(strings.Fields(err.Error()), " ")
	r := Record{Key: key, Value: value, Headers: []kafka.Header{
		{Key: HeaderError, Value: []byte(msg)},
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderSource, Value: source},
	}}
	if len(r.Value)+len(r.Key) > topicMax-DeadLetterHeaders {
		r.Headers = append(r.Headers, kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(r.Value)))})
		r.Value = r.Value[:min(len(r.Value), TruncatedDeadLetter)]
		if len(r.Key) > TruncatedDeadLetter {
			r.Key = r.Key[:TruncatedDeadLetter]
		}
	}
	return r
}

// Reason is the dead-letter reason of err: its event.Error reason, or
// invalid_field for any other error.
func Reason(err error) string {
	if r := event.ReasonOf(err); r != "" {
		return r
	}
	return event.ReasonInvalidField
}

// AppendSource appends topic/partition/offset, the value of HeaderSource.
func AppendSource(dst []byte, topic string, partition int, offset int64) []byte {
	dst = append(dst, topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, offset, 10)
}
