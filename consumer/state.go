package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/scoring"
)

// state is one partition number's accounts, as goka's PartitionTable is a
// partition's table: the scoring engine that holds them, how they are
// restored from the changelog and encoded into it, which input offsets the
// restored state already includes, and which accounts changed since the
// last flush. The partition's worker feeds it events; the flush makes it
// durable.
type state struct {
	part      int
	topics    []string
	changelog string // the state topic, for errors
	eng       *scoring.Engine

	// floor holds, for accounts restored from the changelog, the offsets
	// their state already includes; maxFloor is the largest per topic. They
	// are dropped once reading has passed every floor.
	floor    map[string][]int64
	maxFloor []int64

	// order lists the accounts changed since the last seal, in the order
	// they changed; dirty holds the same accounts.
	order []*scoring.Account
	dirty map[*scoring.Account]struct{}

	// skipped is how far this owner moved versions on (see restoreVersions);
	// every record it writes carries it as its base. marker is the
	// partition's marker as restored, nil if there was none; bases holds
	// the restored accounts' bases until restoreVersions.
	skipped uint64
	marker  *marker
	bases   map[*scoring.Account]uint64
	size    sizeGuard // the records' size against the topic's limit (freeze.go)

	// src keeps the highest source position read per source partition of
	// the repartitioned events (positions.go).
	src *sourcePositions
}

func newState(params *scoring.Params, topics []string, changelog string, part int, size sizeGuard) *state {
	s := &state{part: part, topics: topics, changelog: changelog, eng: scoring.NewEngine(params),
		floor: map[string][]int64{}, maxFloor: make([]int64, len(topics)), dirty: map[*scoring.Account]struct{}{}, size: size,
		src: newSourcePositions(topics)}
	for i := range s.maxFloor {
		s.maxFloor[i] = -1
	}
	return s
}

// restore loads the newest changelog record of each of the partition's
// accounts, latest mapping record keys to values (see readChangelog), and
// calls each with every account it restored. The partition's marker
// record, if any, goes to s.marker.
func (s *state) restore(latest map[string][]byte, each func(*scoring.Account)) error {
	s.bases = make(map[*scoring.Account]uint64, len(latest))
	for key, val := range latest {
		if key == markerKey {
			m, err := parseMarker(val)
			if err != nil {
				return fmt.Errorf("state topic %s partition %d, partition marker: %w", s.changelog, s.part, err)
			}
			s.marker = m
			continue
		}
		if key == sourcesKey {
			if err := s.src.restore(val); err != nil {
				return fmt.Errorf("state topic %s partition %d, source positions: %w", s.changelog, s.part, err)
			}
			continue
		}
		pos, base, a, err := parseRecord(val, s.topics)
		if err != nil {
			return fmt.Errorf("state topic %s partition %d, account %q: %w", s.changelog, s.part, key, err)
		}
		if a.ID != key {
			return fmt.Errorf("state topic %s partition %d: record key %q holds account %q", s.changelog, s.part, key, a.ID)
		}
		s.eng.Put(a)
		s.bases[a] = base
		s.size.restored(a, len(key)+len(val))
		s.floor[a.ID] = pos
		for i, x := range pos {
			s.maxFloor[i] = max(s.maxFloor[i], x)
		}
		each(a)
	}
	return nil
}

// clean reports whether the previous owner of the partition handed it over
// cleanly: its last act was a marker saying that everything it emitted is
// recorded in the changelog. Offsets it did not get to commit do not
// matter: the redelivered events are in the records' offsets, and skipped.
// With no marker at all the partition is clean only when it has no state
// yet.
func (s *state) clean() bool {
	if s.marker == nil {
		return len(s.bases) == 0
	}
	return s.marker.clean
}

// restoreVersions makes sure no (account, version) this owner emits was
// emitted before with another content. A previous owner that crashed may
// have written snapshots to the sink whose changelog records it never
// wrote; this owner re-applies those events at another wall clock, so the
// same versions would show other figures. After a crash (clean false),
// every account's versions therefore skip ahead by more than the previous
// owner can have emitted unrecorded: its one unrecorded flush held at most
// one version per event it read past the committed offsets (redo, an upper
// bound: the events between the committed offsets and the partition ends
// now) plus one clock pass (see worker.reevaluate) and, with capped tiers,
// one capacity ranking that moved accounts (see worker.rank), plus one to
// spare.
// Skips add up over successive crashes: each record carries the total
// skipped by the owner that wrote it (its base), and an account restored
// from an older record skips the difference. New accounts start counting
// after the total.
func (s *state) restoreVersions(clean bool, redo int64) {
	if s.marker != nil {
		s.skipped = s.marker.skipped
	}
	if !clean {
		passes := uint64(1)
		if s.eng.Params().AnyCapped() {
			passes++
		}
		s.skipped += uint64(max(redo, 0)) + passes + 1
	}
	for a, base := range s.bases {
		if s.skipped > base {
			a.SkipVersions(s.skipped - base)
		}
	}
	s.bases = nil
	s.eng.StartVersionsAt(s.skipped)
}

// applied reports whether the event at offset off of topic ti, for account
// id, is part of the restored state already: it was redelivered after a
// crash or a rebalance, and applying it again would count it twice.
func (s *state) applied(ti int, off int64, id string) bool {
	if off > s.maxFloor[ti] {
		return false
	}
	fl := s.floor[id]
	return fl != nil && off <= fl[ti]
}

// passed forgets the floors once pos, the last offset applied per topic,
// is past every one of them.
func (s *state) passed(pos []int64) {
	if len(s.floor) == 0 {
		return
	}
	for i, x := range s.maxFloor {
		if pos[i] < x {
			return
		}
	}
	s.floor = map[string][]int64{}
}

// changed adds a to the accounts the next seal makes durable.
func (s *state) changed(a *scoring.Account) {
	if _, ok := s.dirty[a]; !ok {
		s.dirty[a] = struct{}{}
		s.order = append(s.order, a)
	}
}

// take returns the accounts changed since the last take, in the order they
// changed, and starts a new set. The slice is valid until the next
// changed.
func (s *state) take() []*scoring.Account {
	out := s.order
	s.order = s.order[:0]
	clear(s.dirty)
	return out
}

// appendRecord appends a's changelog record to buf: its key (the account
// id), ending at mid, then its value, whose header names per input topic
// the last offset a's state includes: pos, or a's restored floor where that
// is higher. hdr is scratch space as long as pos.
func (s *state) appendRecord(buf []byte, a *scoring.Account, pos, hdr []int64) (out []byte, mid int) {
	copy(hdr, pos)
	if fl := s.floor[a.ID]; fl != nil {
		for i, x := range fl {
			hdr[i] = max(hdr[i], x)
		}
	}
	buf = append(buf, a.ID...)
	mid = len(buf)
	buf = appendHeader(buf, s.topics, hdr, s.skipped)
	return scoring.MarshalAccount(buf, a), mid
}

// A changelog record is keyed by account_id. Its value is a header naming,
// for every input topic, the last offset of that topic's partition (the
// record's partition number) whose effect the state includes, followed by
// scoring.MarshalAccount's bytes:
//
//	'C' 2                        magic and header version
//	base                         uvarint: versions skipped by the writer (see state.restoreVersions)
//	n                            uvarint: number of topics
//	n × (topic, offset)          topic as uvarint length + bytes, offset as varint (-1: none)
//	account state                scoring.MarshalAccount
//
// Header version 1 has no base (0).
const (
	headerMagic    = 'C'
	headerVersion1 = 1
	headerVersion2 = 2
)

func appendHeader(dst []byte, topics []string, pos []int64, base uint64) []byte {
	dst = append(dst, headerMagic, headerVersion2)
	dst = binary.AppendUvarint(dst, base)
	return appendOffsets(dst, topics, pos)
}

// headerBound is the longest header appendHeader writes for topics: what
// the size guard (freeze.go) adds to an account's state.
func headerBound(topics []string) int {
	n := 2 + binary.MaxVarintLen64 + binary.MaxVarintLen64
	for _, t := range topics {
		n += binary.MaxVarintLen64 + len(t) + binary.MaxVarintLen64
	}
	return n
}

// appendOffsets appends n, then n × (topic, offset).
func appendOffsets(dst []byte, topics []string, pos []int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(topics)))
	for i, t := range topics {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
		dst = binary.AppendVarint(dst, pos[i])
	}
	return dst
}

var errCorruptHeader = errors.New("corrupt state record header")

// parseRecord splits a changelog value into the offsets it covers, indexed
// like topics (-1 for topics it does not name), its base and the account.
func parseRecord(b []byte, topics []string) ([]int64, uint64, *scoring.Account, error) {
	if len(b) < 2 || b[0] != headerMagic {
		return nil, 0, nil, errors.New("not a Pyramid state record")
	}
	var base uint64
	switch b[1] {
	case headerVersion1:
		b = b[2:]
	case headerVersion2:
		var k int
		if base, k = binary.Uvarint(b[2:]); k <= 0 {
			return nil, 0, nil, errCorruptHeader
		}
		b = b[2+k:]
	default:
		return nil, 0, nil, fmt.Errorf("state record header version %d is newer than this Pyramid understands", b[1])
	}
	pos, b, err := parseOffsets(b, topics)
	if err != nil {
		return nil, 0, nil, err
	}
	a, err := scoring.UnmarshalAccount(b)
	if err != nil {
		return nil, 0, nil, err
	}
	return pos, base, a, nil
}

// parseOffsets reads what appendOffsets wrote, indexed like topics (-1 for
// topics it does not name), and returns the rest of b.
func parseOffsets(b []byte, topics []string) ([]int64, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1024 {
		return nil, nil, errCorruptHeader
	}
	b = b[k:]
	pos := make([]int64, len(topics))
	for i := range pos {
		pos[i] = -1
	}
	for ; n > 0; n-- {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, nil, errCorruptHeader
		}
		name := string(b[k : k+int(l)])
		b = b[k+int(l):]
		off, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errCorruptHeader
		}
		b = b[k:]
		for i, t := range topics {
			if t == name {
				pos[i] = off
			}
		}
	}
	return pos, b, nil
}

// markerKey keys the partition's marker record in the changelog. It
// starts with a control character, which no account id may hold, so it
// never names an account.
const markerKey = "\x00pyramid.partition"

// A marker record says how the partition's last owner left it:
//
//	'M' 1                        magic and version
//	flags                        bit 0: clean (everything the owner emitted is in the changelog)
//	skipped                      uvarint: versions skipped so far (see state.restoreVersions)
//
// An owner writes one marking the partition in use before it emits
// anything, and one marking it clean as the last thing it does when it
// hands the partition over in order.
type marker struct {
	clean   bool
	skipped uint64
}

const (
	markerMagic    = 'M'
	markerVersion1 = 1
)

func appendMarker(dst []byte, m *marker) []byte {
	var flags byte
	if m.clean {
		flags = 1
	}
	dst = append(dst, markerMagic, markerVersion1, flags)
	return binary.AppendUvarint(dst, m.skipped)
}

func parseMarker(b []byte) (*marker, error) {
	if len(b) < 3 || b[0] != markerMagic {
		return nil, errors.New("not a Pyramid partition marker")
	}
	if b[1] != markerVersion1 {
		return nil, fmt.Errorf("partition marker version %d is newer than this Pyramid understands", b[1])
	}
	m := &marker{clean: b[2]&1 != 0}
	var k int
	if m.skipped, k = binary.Uvarint(b[3:]); k <= 0 {
		return nil, errors.New("corrupt partition marker")
	}
	return m, nil
}

// markerRecord returns the record of a marker for the partition.
func (s *state) markerRecord(clean bool) kafkaio.Record {
	return kafkaio.Record{Key: []byte(markerKey), Value: appendMarker(nil, &marker{clean: clean, skipped: s.skipped})}
}
