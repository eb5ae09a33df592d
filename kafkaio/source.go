package kafkaio

import (
	"bytes"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// A record Pyramid repartitions (a declared input's record mapped onto an
// event and re-keyed by account) carries where it came from, so that the
// consumer can drop a second copy written after a crash between the write
// and the commit of the source offset:
//
//	pyramid-source            topic/partition/offset of the source record
//	pyramid-source-index      which of the record's events it is (0, 1, ...)
//	pyramid-source-committed  the source partition's offset the repartitioner
//	                          had committed when it wrote the record
//
// Every record of the source partition below the committed offset was
// acknowledged before that commit, so in each repartition partition every
// copy of such a record comes before the first record carrying the commit.
const (
	HeaderSourceIndex     = "pyramid-source-index"
	HeaderSourceCommitted = "pyramid-source-committed"
)

// Source is the position of a repartitioned record's origin.
type Source struct {
	Topic     []byte // aliases the header; valid while the message is
	Partition int
	Offset    int64
	Index     int   // the event's number within its source record
	Committed int64 // the repartitioner's committed offset of the source partition
}

// AppendSourceHeaders appends the three source headers to hs, their values
// to arena, and returns both. The header values alias arena's array as it
// is after the call; callers size arena so that it does not move, or keep
// every version alive (the old arrays stay valid).
func AppendSourceHeaders(hs []kafka.Header, arena []byte, topic string, partition int, offset int64, index int, committed int64) ([]kafka.Header, []byte) {
	s := len(arena)
	arena = AppendSource(arena, topic, partition, offset)
	m := len(arena)
	arena = strconv.AppendInt(arena, int64(index), 10)
	e := len(arena)
	arena = strconv.AppendInt(arena, committed, 10)
	return append(hs,
		kafka.Header{Key: HeaderSource, Value: arena[s:m:m]},
		kafka.Header{Key: HeaderSourceIndex, Value: arena[m:e:e]},
		kafka.Header{Key: HeaderSourceCommitted, Value: arena[e:len(arena):len(arena)]},
	), arena
}

// ParseSource reads the source headers of a repartitioned record; ok is
// false when it has none or they are malformed.
func ParseSource(hs []kafka.Header) (s Source, ok bool) {
	var have int
	for _, h := range hs {
		switch h.Key {
		case HeaderSource:
			i := bytes.LastIndexByte(h.Value, '/')
			if i <= 0 {
				return s, false
			}
			j := bytes.LastIndexByte(h.Value[:i], '/')
			if j <= 0 {
				return s, false
			}
			p, err1 := atoi(h.Value[j+1 : i])
			off, err2 := atoi(h.Value[i+1:])
			if !err1 || !err2 {
				return s, false
			}
			s.Topic, s.Partition, s.Offset = h.Value[:j], int(p), off
			have |= 1
		case HeaderSourceIndex:
			n, ok := atoi(h.Value)
			if !ok {
				return s, false
			}
			s.Index = int(n)
			have |= 2
		case HeaderSourceCommitted:
			n, ok := atoi(h.Value)
			if !ok {
				return s, false
			}
			s.Committed = n
			have |= 4
		}
	}
	return s, have == 7
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
