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

// Dead letters larger than maxDeadLetter bytes keep only their first
// truncatedDeadLetter bytes: the dead-letter topic takes 1 MB records.
const (
	maxDeadLetter       = 900 << 10
	truncatedDeadLetter = 64 << 10
)

// DeadLetter returns the dead-letter record of a record that could not be
// applied: its key and value, the reason and message of err, and where it
// came from (topic, partition, offset). An event too large for the topic
// keeps its beginning and says its size.
func DeadLetter(key, value []byte, err error, topic string, partition int, offset int64) Record {
	reason := Reason(err)
	msg := strings.Join(strings.Fields(err.Error()), " ")
	r := Record{Key: key, Value: value, Headers: []kafka.Header{
		{Key: HeaderError, Value: []byte(msg)},
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderSource, Value: AppendSource(nil, topic, partition, offset)},
	}}
	if len(r.Value)+len(r.Key) > maxDeadLetter {
		r.Headers = append(r.Headers, kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(r.Value)))})
		r.Value = r.Value[:min(len(r.Value), truncatedDeadLetter)]
		if len(r.Key) > truncatedDeadLetter {
			r.Key = r.Key[:truncatedDeadLetter]
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
