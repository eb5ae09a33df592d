package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"

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
}

func newState(params *scoring.Params, topics []string, changelog string, part int) *state {
	s := &state{part: part, topics: topics, changelog: changelog, eng: scoring.NewEngine(params),
		floor: map[string][]int64{}, maxFloor: make([]int64, len(topics)), dirty: map[*scoring.Account]struct{}{}}
	for i := range s.maxFloor {
		s.maxFloor[i] = -1
	}
	return s
}

// restore loads the newest changelog record of each of the partition's
// accounts, latest mapping record keys to values (see readChangelog), and
// calls each with every account it restored.
func (s *state) restore(latest map[string][]byte, each func(*scoring.Account)) error {
	for key, val := range latest {
		pos, a, err := parseRecord(val, s.topics)
		if err != nil {
			return fmt.Errorf("state topic %s partition %d, account %q: %w", s.changelog, s.part, key, err)
		}
		if a.ID != key {
			return fmt.Errorf("state topic %s partition %d: record key %q holds account %q", s.changelog, s.part, key, a.ID)
		}
		s.eng.Put(a)
		s.floor[a.ID] = pos
		for i, x := range pos {
			s.maxFloor[i] = max(s.maxFloor[i], x)
		}
		each(a)
	}
	return nil
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
	buf = appendHeader(buf, s.topics, hdr)
	return scoring.MarshalAccount(buf, a), mid
}

// A changelog record is keyed by account_id. Its value is a header naming,
// for every input topic, the last offset of that topic's partition (the
// record's partition number) whose effect the state includes, followed by
// scoring.MarshalAccount's bytes:
//
//	'C' 1                        magic and header version
//	n                            uvarint: number of topics
//	n × (topic, offset)          topic as uvarint length + bytes, offset as varint (-1: none)
//	account state                scoring.MarshalAccount
const (
	headerMagic    = 'C'
	headerVersion1 = 1
)

func appendHeader(dst []byte, topics []string, pos []int64) []byte {
	dst = append(dst, headerMagic, headerVersion1)
	dst = binary.AppendUvarint(dst, uint64(len(topics)))
	for i, t := range topics {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
		dst = binary.AppendVarint(dst, pos[i])
	}
	return dst
}

// parseRecord splits a changelog value into the offsets it covers, indexed
// like topics (-1 for topics it does not name), and the account.
func parseRecord(b []byte, topics []string) ([]int64, *scoring.Account, error) {
	if len(b) < 2 || b[0] != headerMagic {
		return nil, nil, errors.New("not a Pyramid state record")
	}
	if b[1] != headerVersion1 {
		return nil, nil, fmt.Errorf("state record header version %d is newer than this Pyramid understands", b[1])
	}
	b = b[2:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1024 {
		return nil, nil, errors.New("corrupt state record header")
	}
	b = b[k:]
	pos := make([]int64, len(topics))
	for i := range pos {
		pos[i] = -1
	}
	for ; n > 0; n-- {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, nil, errors.New("corrupt state record header")
		}
		name := string(b[k : k+int(l)])
		b = b[k+int(l):]
		off, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errors.New("corrupt state record header")
		}
		b = b[k:]
		for i, t := range topics {
			if t == name {
				pos[i] = off
			}
		}
	}
	a, err := scoring.UnmarshalAccount(b)
	if err != nil {
		return nil, nil, err
	}
	return pos, a, nil
}
