package scoring

import "github.com/pyramid-crm/pyramid/event"

// SizeBound returns an upper bound of EncodedSize(a) in constant time,
// from the counts of what a holds: every opportunity id at the longest the
// decoder accepts (event.MaxIDLen), every stage at maxStage bytes and
// every integer at its longest varint. The streaming pipeline asks it after
// every event, where EncodedSize, which walks the whole state, would cost
// as much as applying the event; only when the bound comes near the state
// topic's limit does it need the exact size. The bound holds for an
// account whose opportunities all came through the decoder with a stage
// of at most maxStage bytes; one restored from a record written before ids
// were bounded, or under a configuration with longer stage names, may hold
// more (compare with EncodedSize once).
func SizeBound(a *Account, maxStage int) int {
	const v = 10                          // the longest varint
	n := 2 + strLen(a.ID) + v + 3 + v + 2 // magic, id, version, tier, reason, override, flags
	n += strLen(a.name) + strLen(a.owner) + 2*v + nFields*v
	n += 3*v + strLen(a.touchKind)
	n += v + len(a.months)*(5+v)
	n += v + len(a.opps)*(uvarLen(event.MaxIDLen)+event.MaxIDLen+uvarLen(uint64(maxStage))+maxStage+4*v)
	if a.gone != nil {
		n += len(a.gone.list) * (8 + 2*v)
	}
	n += v + v + 8*len(a.seen) + 1
	return n + 2*v + 8
}
