package kafkaio

import (
	"bytes"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// A record Pyramid repartitions (a declared input's record mapped onto an
// event and re-keyed by account) carries where it came from, so that the
// consumer can drop a second copy written after a crash between the write
// and the commit of the source offset. One header holds it, as few bytes
// and allocations per record as it can be:
//
//	pyramid-source: topic/partition/offset/index/backlog
//
// topic/partition/offset name the source record, as in a dead letter;
// index is which of the record's events it is (0, 1, ...); backlog is how
// many records of the source partition were still unread when the
// repartitioner had fetched the response holding this one, plus the
// events of that response that follow it in its repartition partition
// (which may be written later): the consumer counts them as its own input
// still to come, so that it judges a history being repartitioned at the
// events' own clocks, as it judges a native backlog (see consumer's
// backfilling), even though it keeps up with the repartition topics
// themselves.

// Source is the position of a repartitioned record's origin.
type Source struct {
	Topic     []byte // aliases the header; valid while the message is
	Partition int
	Offset    int64
	Index     int   // the event's number within its source record
	Backlog   int64 // source records unread after the fetch response holding it, and its events after this one
}

// AppendSourceHeader appends the source header to hs, its value to arena,
// and returns both. The header value aliases arena's array as it is after
// the call; callers size arena so that it does not move, or keep every
// version alive (the old arrays stay valid).
func AppendSourceHeader(hs []kafka.Header, arena []byte, topic string, partition int, offset int64, index int, backlog int64) ([]kafka.Header, []byte) {
	s := len(arena)
	arena = AppendSource(arena, topic, partition, offset)
	arena = append(arena, '/')
	arena = strconv.AppendInt(arena, int64(index), 10)
	arena = append(arena, '/')
	arena = strconv.AppendInt(arena, max(backlog, 0), 10)
	return append(hs, kafka.Header{Key: HeaderSource, Value: arena[s:len(arena):len(arena)]}), arena
}

// ParseSource reads the source header of a repartitioned record; ok is
// false when it has none or it is malformed (a dead letter's, with three
// fields, included).
func ParseSource(hs []kafka.Header) (s Source, ok bool) {
	for _, h := range hs {
		if h.Key != HeaderSource {
			continue
		}
		v := h.Value
		var n [4]int64
		for i := 3; i >= 0; i-- {
			j := bytes.LastIndexByte(v, '/')
			if j <= 0 {
				return s, false
			}
			if n[i], ok = atoi(v[j+1:]); !ok {
				return s, false
			}
			v = v[:j]
		}
		s.Topic, s.Partition, s.Offset, s.Index, s.Backlog = v, int(n[0]), n[1], int(n[2]), n[3]
		return s, true
	}
	return s, false
}

// atoi parses a non-negative decimal without allocating.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
