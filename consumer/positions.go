package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
)

// sourcePositions drops the copies of repartitioned events. The
// repartitioner (package repartition) commits a declared input's offset
// only after the events of the records before it were acknowledged, so a
// crash between the two writes some events again, at new offsets of the
// repartition topics: the changelog's input offsets cannot tell them
// apart. Each repartitioned record carries its source position
// (kafkaio.Source): the source topic-partition, the record's offset there
// and which of its events it is.
//
// Per source partition, the partition keeps the highest position it has
// read. Every event at or below it is a copy: the repartitioner writes a
// source partition's events to each repartition partition in order, one
// request after the other, and a writer that starts again (after a crash,
// or when the partition moves to another member) starts from its last
// commit, all of which was written before. So the events of a source
// partition come in order but for copies, which repeat positions already
// read. That holds for copies written by a crashed writer's late request
// too: each of its requests follows the acknowledgement of the one before.
//
// The highest positions survive a restart in one record of the state
// topic per partition (sourcesKey), written in every flush after the
// accounts' records and before the commit: a restart reads again from the
// last commit, so the positions restored cover everything before it, and
// everything after it is read again, in order, before its copies.
// They are bounded by the source partitions of the declared inputs.
//
// Each record also says how many records of its source partition were
// still unread when the repartitioner fetched it (kafkaio.Source.Backlog).
// The latest such backlog of every source partition, summed per
// repartition topic, is input the partition has not read yet although it
// has read its repartition topics to their end: a history being
// repartitioned is backfilled at the events' own clocks as a native one
// is (see backfilling), not judged at the wall clock as it trickles in. A
// source partition that sends nothing for upstreamQuiet no longer counts:
// a backlog whose records all map to nothing, or a repartitioner gone for
// good, cannot hold the partition in a backfill.
type sourcePositions struct {
	repart []bool // per input topic: a repartition topic, whose records carry source positions

	names []string         // source topics seen, by id
	ids   map[string]int32 // and their ids
	tps   map[srcTP]*srcPos
	dirty bool // positions moved since the last record
	// upstream is, per input topic, the backlog of its source partitions
	// as their latest records gave it; behind lists the source
	// partitions counted in it.
	upstream []int64
	behind   []*srcPos
	// last is the source partition of the last event: events come in runs
	// from one, and this spares the lookups.
	last struct {
		name []byte
		pos  *srcPos
	}
}

type srcTP struct{ topic, partition int32 }

// srcPos is the highest position read from one source topic-partition,
// and its backlog as the latest of its records gave it.
type srcPos struct {
	tp    srcTP
	off   int64
	index int32

	ti      int   // the input topic it was read from
	backlog int64 // counted in upstream[ti]
	at      int64 // when it was read (wall clock, ns)
}

// upstreamQuiet is how long a source partition's backlog counts after its
// last record was read.
const upstreamQuiet = time.Minute

func newSourcePositions(topics []string) *sourcePositions {
	s := &sourcePositions{repart: make([]bool, len(topics)), ids: map[string]int32{}, tps: map[srcTP]*srcPos{},
		upstream: make([]int64, len(topics))}
	for i, t := range topics {
		s.repart[i] = strings.HasPrefix(t, repartition.TopicPrefix)
	}
	return s
}

// position reads the source position of a message of input topic ti, and
// reports false for native events (and for records of a repartition topic
// without one, which nothing can deduplicate).
func (s *sourcePositions) position(ti int, src *kafkaio.Source, headers []kafka.Header) bool {
	if !s.repart[ti] {
		return false
	}
	var ok bool
	*src, ok = kafkaio.ParseSource(headers)
	return ok
}

// id returns the id of source topic name, assigning one.
func (s *sourcePositions) id(name []byte) int32 {
	if id, ok := s.ids[string(name)]; ok {
		return id
	}
	id := int32(len(s.names))
	s.names = append(s.names, string(name))
	s.ids[s.names[id]] = id
	return id
}

// highest returns the highest position of tp, creating it.
func (s *sourcePositions) highest(tp srcTP) *srcPos {
	p := s.tps[tp]
	if p == nil {
		p = &srcPos{tp: tp, off: -1, index: -1}
		s.tps[tp] = p
	}
	return p
}

// copied reports whether the event at src, read from input topic ti at
// wall, is a copy of one the partition has read, and otherwise records it
// as the highest of its source partition. Either way its backlog becomes
// its source partition's. Events are asked in log order per input topic.
func (s *sourcePositions) copied(ti int, src *kafkaio.Source, wall int64) bool {
	l := &s.last
	if l.pos == nil || int(l.pos.tp.partition) != src.Partition || string(l.name) != string(src.Topic) {
		l.pos = s.highest(srcTP{s.id(src.Topic), int32(src.Partition)})
		l.name = append(l.name[:0], src.Topic...)
	}
	p, idx := l.pos, int32(src.Index)
	s.setBacklog(p, ti, src.Backlog)
	p.at = wall
	if src.Offset < p.off || src.Offset == p.off && idx <= p.index {
		return true
	}
	p.off, p.index = src.Offset, idx
	s.dirty = true
	return false
}

// setBacklog makes b, read from input topic ti, p's backlog.
func (s *sourcePositions) setBacklog(p *srcPos, ti int, b int64) {
	if p.backlog == b && p.ti == ti {
		return
	}
	if p.backlog > 0 {
		s.upstream[p.ti] -= p.backlog
	} else {
		s.behind = append(s.behind, p)
	}
	p.ti, p.backlog = ti, b
	if b > 0 {
		s.upstream[ti] += b
	} else {
		s.behind = slices.DeleteFunc(s.behind, func(q *srcPos) bool { return q == p })
	}
}

// expire stops counting the backlog of source partitions that sent
// nothing for upstreamQuiet before wall.
func (s *sourcePositions) expire(wall int64) {
	s.drop(func(p *srcPos) bool { return wall-p.at > int64(upstreamQuiet) })
}

// pending reports whether a source partition still counts a backlog.
func (s *sourcePositions) pending() bool { return len(s.behind) > 0 }

// drop stops counting the backlog of the source partitions behind that
// gone picks.
func (s *sourcePositions) drop(gone func(*srcPos) bool) {
	for i := 0; i < len(s.behind); {
		if p := s.behind[i]; gone(p) {
			s.setBacklog(p, p.ti, 0) // removes p from behind
			continue
		}
		i++
	}
}

// sourcesKey keys the partition's record of source positions in the state
// topic. Like markerKey it starts with a control character, which no
// account id may hold.
const sourcesKey = "\x00pyramid.sources"

// A sources record lists the highest position read per source partition:
//
//	'S' 1                         magic and version
//	k                             uvarint: source topics
//	k × topic                     uvarint length + bytes
//	m                             uvarint: positions
//	m × (t, partition, off, idx)  uvarints, t indexing the k topics; off as varint
const (
	sourcesMagic    = 'S'
	sourcesVersion1 = 1
)

// record returns the sources record when positions moved since the last
// one, else false.
func (s *sourcePositions) record() (kafkaio.Record, bool) {
	if !s.dirty {
		return kafkaio.Record{}, false
	}
	s.dirty = false
	ps := make([]*srcPos, 0, len(s.tps))
	for _, p := range s.tps {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *srcPos) int {
		if a.tp.topic != b.tp.topic {
			return int(a.tp.topic - b.tp.topic)
		}
		return int(a.tp.partition - b.tp.partition)
	})
	v := []byte{sourcesMagic, sourcesVersion1}
	v = binary.AppendUvarint(v, uint64(len(s.names)))
	for _, n := range s.names {
		v = binary.AppendUvarint(v, uint64(len(n)))
		v = append(v, n...)
	}
	v = binary.AppendUvarint(v, uint64(len(ps)))
	for _, p := range ps {
		v = binary.AppendUvarint(v, uint64(p.tp.topic))
		v = binary.AppendUvarint(v, uint64(p.tp.partition))
		v = binary.AppendVarint(v, p.off)
		v = binary.AppendUvarint(v, uint64(p.index))
	}
	return kafkaio.Record{Key: []byte(sourcesKey), Value: v}, true
}

var errCorruptSources = errors.New("corrupt source positions record")

// restore reads a sources record.
func (s *sourcePositions) restore(b []byte) error {
	if len(b) < 2 || b[0] != sourcesMagic {
		return errors.New("not a Pyramid source positions record")
	}
	if b[1] != sourcesVersion1 {
		return fmt.Errorf("source positions record version %d is newer than this Pyramid understands", b[1])
	}
	b = b[2:]
	k, n := binary.Uvarint(b)
	if n <= 0 || k > 1<<16 {
		return errCorruptSources
	}
	b = b[n:]
	ids := make([]int32, k)
	for i := range ids {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return errCorruptSources
		}
		ids[i] = s.id(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	m, n := binary.Uvarint(b)
	if n <= 0 || m > 1<<20 {
		return errCorruptSources
	}
	b = b[n:]
	for ; m > 0; m-- {
		var v [4]int64
		for i := range v {
			var n int
			if i == 2 {
				v[i], n = binary.Varint(b)
			} else {
				var u uint64
				u, n = binary.Uvarint(b)
				v[i] = int64(u)
			}
			if n <= 0 {
				return errCorruptSources
			}
			b = b[n:]
		}
		if v[0] >= int64(len(ids)) {
			return errCorruptSources
		}
		p := s.highest(srcTP{ids[v[0]], int32(v[1])})
		p.off, p.index = v[2], int32(v[3])
	}
	if len(b) != 0 {
		return errCorruptSources
	}
	return nil
}
