package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/pyramid-crm/pyramid/money"
)

// State records are the changelog's values: one per account. The format is
// versioned by its first two bytes; every later release must keep a reader
// for every version ever written (testdata/state_vN.bin pins version N).
// Only the latest version is written.
//
// Version 3 layout, all integers varint-encoded unless noted:
//
//	'P' 3                        magic and format version
//	id, version, tier, qualified tier, reason kind, reason from, reason value
//	override, flags (bit0 wallet known)
//	name, owner, wallet, snooze, at[5]
//	firstAt, lastAt, lastTouch, touchKind
//	n months, then (month, cents) each
//	n opps, then (id, stage, amount, invoiced, at, ppm) each
//	n tombstones, then (hash (fixed 8 bytes), at, invoiced) each
//	n seen (fixed 8 bytes each), seenNext
//	alertMoment, alertTouch, digest (fixed 8 bytes)
//
// Version 2 is version 3 without the qualified tier, which was the tier:
// it was written before tiers could be capped. Version 1 is version 2
// without the tombstones: it was written before closed opportunities were
// forgotten.
const (
	stateMagic    = 'P'
	stateVersion1 = 1
	stateVersion2 = 2
	stateVersion3 = 3
	stateLatest   = stateVersion3
)

// MarshalAccount appends the encoded state of a to dst, in the latest
// format version.
func MarshalAccount(dst []byte, a *Account) []byte {
	w := enc{dst}
	w.b = append(w.b, stateMagic, stateLatest)
	w.str(a.ID)
	w.uvar(a.Version)
	w.b = append(w.b, byte(a.Tier), byte(a.qual), a.reasonKind, byte(a.reasonFrom))
	w.svar(int64(a.reasonValue))
	var flags byte
	if a.hasWallet {
		flags |= 1
	}
	w.b = append(w.b, byte(a.override), flags)
	w.str(a.name)
	w.str(a.owner)
	w.svar(int64(a.wallet))
	w.svar(a.snooze)
	for _, t := range a.at {
		w.svar(t)
	}
	w.svar(a.firstAt)
	w.svar(a.lastAt)
	w.svar(a.lastTouch)
	w.str(a.touchKind)
	w.uvar(uint64(len(a.months)))
	for _, m := range a.months {
		w.svar(int64(m.month))
		w.svar(int64(m.cents))
	}
	w.uvar(uint64(len(a.opps)))
	for i := range a.opps {
		o := &a.opps[i]
		w.str(o.id)
		w.str(o.stage)
		w.svar(int64(o.amount))
		w.svar(int64(o.invoiced))
		w.svar(o.at)
		w.svar(o.ppm)
	}
	var gone []tombstone
	if a.gone != nil {
		gone = a.gone.list
	}
	w.uvar(uint64(len(gone)))
	for _, t := range gone {
		w.b = binary.LittleEndian.AppendUint64(w.b, t.hash)
		w.svar(t.at)
		w.svar(int64(t.invoiced))
	}
	w.uvar(uint64(len(a.seen)))
	for _, h := range a.seen {
		w.b = binary.LittleEndian.AppendUint64(w.b, h)
	}
	w.b = append(w.b, a.seenNext)
	w.svar(a.alertMoment)
	w.svar(a.alertTouch)
	w.b = binary.LittleEndian.AppendUint64(w.b, a.digest)
	return w.b
}

// UnmarshalAccount decodes a state record written by any released version.
func UnmarshalAccount(b []byte) (*Account, error) {
	if len(b) < 2 || b[0] != stateMagic {
		return nil, errors.New("state record: not a Pyramid state record (bad magic)")
	}
	switch v := b[1]; {
	case v >= stateVersion1 && v <= stateVersion3:
		return decode(b[2:], v)
	case v > stateLatest:
		return nil, fmt.Errorf("state record: format version %d is newer than this release understands (1 to %d); upgrade Pyramid", v, stateLatest)
	default:
		return nil, fmt.Errorf("state record: format version %d was never written by Pyramid", v)
	}
}

func decode(b []byte, version byte) (*Account, error) {
	r := dec{b: b}
	a := &Account{}
	a.ID = r.str()
	a.Version = r.uvar()
	a.Tier = Tier(r.byte())
	a.qual = a.Tier
	if version >= stateVersion3 {
		a.qual = Tier(r.byte())
	}
	a.reasonKind = r.byte()
	a.reasonFrom = Tier(r.byte())
	a.reasonValue = money.Cents(r.svar())
	a.override = Tier(r.byte())
	flags := r.byte()
	a.hasWallet = flags&1 != 0
	a.name = r.str()
	a.owner = r.str()
	a.wallet = money.Cents(r.svar())
	a.snooze = r.svar()
	for i := range a.at {
		a.at[i] = r.svar()
	}
	a.firstAt = r.svar()
	a.lastAt = r.svar()
	a.lastTouch = r.svar()
	a.touchKind = r.str()
	if n := r.count(2); n > 0 {
		a.months = make([]monthSum, n)
		for i := range a.months {
			a.months[i] = monthSum{int32(r.svar()), money.Cents(r.svar())}
		}
	}
	if n := r.count(6); n > 0 {
		a.opps = make([]opp, n)
		for i := range a.opps {
			o := &a.opps[i]
			o.id, o.stage = r.str(), r.str()
			o.amount, o.invoiced = money.Cents(r.svar()), money.Cents(r.svar())
			o.at, o.ppm = r.svar(), r.svar()
		}
	}
	if version >= stateVersion2 {
		if n := r.count(10); n > 0 {
			a.gone = &graveyard{list: make([]tombstone, n)}
			for i := range a.gone.list {
				t := &a.gone.list[i]
				t.hash, t.at, t.invoiced = r.u64(), r.svar(), money.Cents(r.svar())
				if i > 0 && t.hash <= a.gone.list[i-1].hash {
					r.fail("tombstones out of order")
				}
			}
		}
	}
	if n := r.count(8); n > 0 {
		if n > dedupDepth {
			r.fail("too many remembered event ids")
		}
		a.seen = make([]uint64, n, max(n, 4))
		for i := range a.seen {
			a.seen[i] = r.u64()
		}
	}
	a.seenNext = r.byte()
	a.alertMoment = r.svar()
	a.alertTouch = r.svar()
	a.digest = r.u64()
	if r.err == nil && r.i != len(r.b) {
		r.fail("trailing bytes")
	}
	if r.err == nil && (a.Tier > Major || a.qual > Major || a.override > Major || a.reasonKind > reasonQualifies || a.reasonFrom > Major || int(a.seenNext) >= dedupDepth) {
		r.fail("field out of range")
	}
	if r.err != nil {
		return nil, r.err
	}
	return a, nil
}

// EncodedSize returns len(MarshalAccount(nil, a)) without encoding: the
// size of a's state record before the key and the record overhead, to
// compare with the state topic's max.message.bytes.
func EncodedSize(a *Account) int {
	n := 2 + strLen(a.ID) + uvarLen(a.Version) + 4 + svarLen(int64(a.reasonValue)) + 2
	n += strLen(a.name) + strLen(a.owner) + svarLen(int64(a.wallet)) + svarLen(a.snooze)
	for _, t := range a.at {
		n += svarLen(t)
	}
	n += svarLen(a.firstAt) + svarLen(a.lastAt) + svarLen(a.lastTouch) + strLen(a.touchKind)
	n += uvarLen(uint64(len(a.months)))
	for _, m := range a.months {
		n += svarLen(int64(m.month)) + svarLen(int64(m.cents))
	}
	n += uvarLen(uint64(len(a.opps)))
	for i := range a.opps {
		o := &a.opps[i]
		n += strLen(o.id) + strLen(o.stage) + svarLen(int64(o.amount)) + svarLen(int64(o.invoiced)) + svarLen(o.at) + svarLen(o.ppm)
	}
	var gone []tombstone
	if a.gone != nil {
		gone = a.gone.list
	}
	n += uvarLen(uint64(len(gone)))
	for _, t := range gone {
		n += 8 + svarLen(t.at) + svarLen(int64(t.invoiced))
	}
	n += uvarLen(uint64(len(a.seen))) + 8*len(a.seen) + 1
	return n + svarLen(a.alertMoment) + svarLen(a.alertTouch) + 8
}

func uvarLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func svarLen(v int64) int { return uvarLen(uint64(v<<1) ^ uint64(v>>63)) }

func strLen(s string) int { return uvarLen(uint64(len(s))) + len(s) }

type enc struct{ b []byte }

func (w *enc) uvar(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *enc) svar(v int64)  { w.b = binary.AppendVarint(w.b, v) }
func (w *enc) str(s string) {
	w.uvar(uint64(len(s)))
	w.b = append(w.b, s...)
}

// dec reads with bounds checks; the first error sticks and later reads
// return zero values, so decoding garbage never panics.
type dec struct {
	b   []byte
	i   int
	err error
	// what names the record in errors; default "state record".
	what string
}

func (r *dec) fail(msg string) {
	if r.err == nil {
		what := r.what
		if what == "" {
			what = "state record"
		}
		r.err = fmt.Errorf("%s: %s at byte %d", what, msg, r.i+2)
	}
}

func (r *dec) uvar() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.i += n
	return v
}

func (r *dec) svar() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.i += n
	return v
}

func (r *dec) byte() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *dec) u64() uint64 {
	if r.err != nil || len(r.b)-r.i < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.i:])
	r.i += 8
	return v
}

func (r *dec) str() string {
	n := r.uvar()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)-r.i) {
		r.fail("truncated string")
		return ""
	}
	s := string(r.b[r.i : r.i+int(n)])
	r.i += int(n)
	return s
}

// count reads a collection length and checks it against the bytes left,
// given the minimum encoded size of one element.
func (r *dec) count(minSize int) int {
	n := r.uvar()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)-r.i)/uint64(minSize) || n > math.MaxInt32 {
		r.fail("collection length exceeds record")
		return 0
	}
	return int(n)
}
