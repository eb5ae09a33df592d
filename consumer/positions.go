package consumer

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/scoring"
)

// sourcePositions drops the copies of repartitioned events. The repartitioner
// (package repartition) commits a declared input's offset only after the
// events of the records before it were acknowledged, so a crash between
// the two writes some events again, at new offsets of the repartition
// topics: the changelog's input offsets cannot tell them apart. Each
// repartitioned record carries its source position (kafkaio.Source), and
// for every account the partition keeps, per source topic-partition, the
// highest position (offset, then the event's index within its record) it
// applied; an event at or below it is a copy. The positions are part of
// the account's changelog record, so they survive a restart with the state
// they describe. Events handled without being applied (a repeated
// event_id, a rejection) leave their position too (see handled).
//
// They are bounded: an account has at most one position per source
// topic-partition, and a position is dropped once the source partition's
// floor passes it. Every record carries the offset the repartitioner had
// committed for its source partition when it wrote it; every copy of a
// record below that offset was written before the commit, so it lies
// before, in this partition's log. Past the first record carrying a
// commit, an event from below it can only be a copy, whichever account it
// is for, and positions below it are no longer needed. In practice only
// accounts that received repartitioned events in the last commit interval
// of their source partition keep positions.
type sourcePositions struct {
	repart []bool // per input topic: a repartition topic, whose records carry source positions

	names []string         // source topics seen, by id
	ids   map[string]int32 // and their ids
	acc   map[string]*accountPositions
	tps   map[srcTP]*tpState
	// last is the source partition of the last event asked about: events
	// come in runs from one, and this spares the lookups.
	last struct {
		name []byte
		tp   srcTP
		st   *tpState
	}
}

type srcTP struct{ topic, partition int32 }

// tpState is what the partition knows of one source partition: its floor,
// the highest committed offset read (-1: none yet), and the highest
// position any account recorded from it. An event above that position is
// no account's copy: the common case costs no account lookup.
type tpState struct {
	floor   int64
	highest srcPos
}

// srcPos is the highest source position applied to an account from one
// source topic-partition.
type srcPos struct {
	tp    srcTP
	off   int64
	index int32
}

// above reports whether (off, index) is past p.
func (p *srcPos) above(off int64, index int32) bool {
	return off > p.off || off == p.off && index > p.index
}

// accountPositions are an account's positions, at most one per source
// partition; a pointer in the map, so that recording one is one lookup.
type accountPositions struct{ ps []srcPos }

func newSourcePositions(topics []string) *sourcePositions {
	s := &sourcePositions{repart: make([]bool, len(topics)), ids: map[string]int32{},
		acc: map[string]*accountPositions{}, tps: map[srcTP]*tpState{}}
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

// state returns the state of source partition tp, creating it.
func (s *sourcePositions) state(tp srcTP) *tpState {
	st := s.tps[tp]
	if st == nil {
		st = &tpState{floor: -1, highest: srcPos{tp: tp, off: -1, index: -1}}
		s.tps[tp] = st
	}
	return st
}

// lookup returns the source partition of src and its state.
func (s *sourcePositions) lookup(src *kafkaio.Source) (srcTP, *tpState) {
	l := &s.last
	if l.st != nil && int(l.tp.partition) == src.Partition && string(l.name) == string(src.Topic) {
		return l.tp, l.st
	}
	tp := srcTP{s.id(src.Topic), int32(src.Partition)}
	l.tp, l.st = tp, s.state(tp)
	l.name = append(l.name[:0], src.Topic...)
	return tp, l.st
}

// copied reports whether the event at src, for account id, is a copy of
// one the partition has applied (or read, below a floor), and learns the
// floor src carries. Events are asked in log order per input topic.
func (s *sourcePositions) copied(id string, src *kafkaio.Source) (srcTP, bool) {
	tp, st := s.lookup(src)
	st.floor = max(st.floor, src.Committed)
	if src.Offset < st.floor {
		return tp, true
	}
	if st.highest.above(src.Offset, int32(src.Index)) {
		return tp, false // past every position recorded
	}
	if ap := s.acc[id]; ap != nil {
		for _, p := range ap.ps {
			if p.tp == tp {
				return tp, !p.above(src.Offset, int32(src.Index))
			}
		}
	}
	return tp, false
}

// applied records that the event at src was applied to account id, which
// must be a string the account owns (not one aliasing a message).
func (s *sourcePositions) applied(id string, tp srcTP, src *kafkaio.Source) {
	pos := srcPos{tp: tp, off: src.Offset, index: int32(src.Index)}
	if st := s.state(tp); st.highest.above(pos.off, pos.index) {
		st.highest = pos
	}
	ap := s.acc[id]
	if ap == nil {
		ap = &accountPositions{}
		s.acc[id] = ap
	}
	for i := range ap.ps {
		if ap.ps[i].tp == tp {
			ap.ps[i] = pos
			return
		}
	}
	ap.ps = append(ap.ps, pos)
}

// restored takes the positions of an account restored from its record.
func (s *sourcePositions) restored(id string, ps []srcPos) {
	for _, p := range ps {
		if st := s.state(p.tp); st.highest.above(p.off, p.index) {
			st.highest = p
		}
	}
	s.acc[id] = &accountPositions{ps: ps}
}

// handled records the position of a repartitioned event the partition
// handled without applying it (a repeated event_id, or a rejection), so
// that a copy is dropped too: by the time the copy comes, the account's
// ring of recent event ids may have forgotten the id, and the copy of an
// event that was once a duplicate would be applied; a rejection is not
// dead-lettered twice. a is the account, nil when there is none; id is
// cloned then.
func (s *sourcePositions) handled(a *scoring.Account, id string, tp srcTP, src *kafkaio.Source) {
	if a != nil {
		id = a.ID
	} else {
		id = strings.Clone(id)
	}
	s.applied(id, tp, src)
}

// prune drops the positions below their partition's floor.
func (s *sourcePositions) prune(ps []srcPos) []srcPos {
	out := ps[:0]
	for _, p := range ps {
		if st := s.tps[p.tp]; st == nil || p.off >= st.floor {
			out = append(out, p)
		}
	}
	clear(ps[len(out):])
	return out
}

// sweep prunes every account's positions, forgetting accounts left with
// none.
func (s *sourcePositions) sweep() {
	for id, ap := range s.acc {
		if ap.ps = s.prune(ap.ps); len(ap.ps) == 0 {
			delete(s.acc, id)
		}
	}
}

// of returns the positions account id keeps, pruned.
func (s *sourcePositions) of(id string) []srcPos {
	ap := s.acc[id]
	if ap == nil {
		return nil
	}
	if ap.ps = s.prune(ap.ps); len(ap.ps) == 0 {
		delete(s.acc, id)
		return nil
	}
	return ap.ps
}

// encodedSize bounds what account id's positions add to its state record
// (appendPositions); 0 without any.
func (s *sourcePositions) encodedSize(id string) int {
	ap := s.acc[id]
	if ap == nil || len(ap.ps) == 0 {
		return 0
	}
	ps := ap.ps
	n := 2 * binary.MaxVarintLen32
	var local [8]int32
	ids := local[:0]
	for _, p := range ps {
		if !containsID(ids, p.tp.topic) {
			ids = append(ids, p.tp.topic)
			n += binary.MaxVarintLen32 + len(s.names[p.tp.topic])
		}
	}
	return n + len(ps)*(3*binary.MaxVarintLen32+binary.MaxVarintLen64)
}

// appendHeaderPositions appends the header of a changelog record that
// keeps source positions (version 3): version 2's, then the positions.
func (s *state) appendHeaderPositions(dst []byte, pos []int64, srcs []srcPos) []byte {
	dst = append(dst, headerMagic, headerVersion3)
	dst = binary.AppendUvarint(dst, s.skipped)
	dst = appendOffsets(dst, s.topics, pos)
	return s.src.appendPositions(dst, srcs)
}

// appendPositions encodes ps after a changelog record's offsets (header
// version 3): the source topics they name, then the positions.
//
//	k                             uvarint: source topics
//	k × topic                     uvarint length + bytes
//	m                             uvarint: positions
//	m × (t, partition, off, idx)  uvarints, t indexing the k topics; off as varint
func (s *sourcePositions) appendPositions(dst []byte, ps []srcPos) []byte {
	var local [8]int32 // source topic id -> index in the record, for the usual few
	ids := local[:0]
	for _, p := range ps {
		if !containsID(ids, p.tp.topic) {
			ids = append(ids, p.tp.topic)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, uint64(len(s.names[id])))
		dst = append(dst, s.names[id]...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ps)))
	for _, p := range ps {
		k := 0
		for ids[k] != p.tp.topic {
			k++
		}
		dst = binary.AppendUvarint(dst, uint64(k))
		dst = binary.AppendUvarint(dst, uint64(p.tp.partition))
		dst = binary.AppendVarint(dst, p.off)
		dst = binary.AppendUvarint(dst, uint64(p.index))
	}
	return dst
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

var errCorruptPositions = errors.New("corrupt source positions in state record header")

// parsePositions decodes what appendPositions wrote and returns the rest
// of b.
func (s *sourcePositions) parsePositions(b []byte) ([]srcPos, []byte, error) {
	k, n := binary.Uvarint(b)
	if n <= 0 || k > 1<<16 {
		return nil, nil, errCorruptPositions
	}
	b = b[n:]
	ids := make([]int32, k)
	for i := range ids {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, nil, errCorruptPositions
		}
		ids[i] = s.id(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	m, n := binary.Uvarint(b)
	if n <= 0 || m > 1<<20 {
		return nil, nil, errCorruptPositions
	}
	b = b[n:]
	ps := make([]srcPos, 0, m)
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
				return nil, nil, errCorruptPositions
			}
			b = b[n:]
		}
		if v[0] >= int64(len(ids)) {
			return nil, nil, errCorruptPositions
		}
		ps = append(ps, srcPos{tp: srcTP{ids[v[0]], int32(v[1])}, off: v[2], index: int32(v[3])})
	}
	return ps, b, nil
}
