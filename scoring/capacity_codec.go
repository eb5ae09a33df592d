package scoring

import (
	"errors"
	"fmt"
	"math"

	"github.com/pyramid-crm/pyramid/money"
)

// Candidates travel between instances (the streaming pipeline publishes
// each partition's to a compacted topic), so they have a versioned
// encoding of their own, integers varint-encoded:
//
//	'C' 1                              magic and format version
//	pinned count of tiers 1 to 4, pool size of tiers 1 to 4
//	n, then n × (id, value, qualified tier << 4 | tier)
//
// Candidates are sorted by id, without repeats. A record holds at most
// 4 × config.MaxCappedAccounts candidates, about 560 KB with 128-byte ids.
const (
	candidatesMagic   = 'C'
	candidatesVersion = 1
)

// AppendCandidates appends the encoding of c to dst.
func AppendCandidates(dst []byte, c *Candidates) []byte {
	w := enc{dst}
	w.b = append(w.b, candidatesMagic, candidatesVersion)
	for t := MassMarket; t <= Major; t++ {
		w.uvar(uint64(max(c.Pinned[t], 0)))
	}
	for t := MassMarket; t <= Major; t++ {
		w.uvar(uint64(max(c.Pool[t], 0)))
	}
	w.uvar(uint64(len(c.List)))
	for i := range c.List {
		x := &c.List[i]
		w.str(x.ID)
		w.uvar(uint64(max(x.Value, 0)))
		w.b = append(w.b, byte(x.Qualified)<<4|byte(x.Tier))
	}
	return w.b
}

// ParseCandidates decodes what AppendCandidates wrote. It refuses anything
// else with an error that says what is wrong, and never panics.
func ParseCandidates(b []byte) (*Candidates, error) {
	if len(b) < 2 || b[0] != candidatesMagic {
		return nil, errors.New("capacity candidates: not a Pyramid candidates record (bad magic)")
	}
	if b[1] != candidatesVersion {
		return nil, fmt.Errorf("capacity candidates: format version %d is not understood by this release (1); run one release of Pyramid in a group", b[1])
	}
	r := dec{b: b[2:], what: "capacity candidates"}
	c := &Candidates{}
	for _, counts := range []*[Major + 1]int{&c.Pinned, &c.Pool} {
		for t := MassMarket; t <= Major; t++ {
			n := r.uvar()
			if n > math.MaxInt32 {
				r.fail("count out of range")
			}
			counts[t] = int(n)
		}
	}
	if n := r.count(3); n > 0 {
		c.List = make([]Candidate, n)
		for i := range c.List {
			x := &c.List[i]
			x.ID = r.str()
			v := r.uvar()
			tiers := r.byte()
			x.Qualified, x.Tier = Tier(tiers>>4), Tier(tiers&0xf)
			switch {
			case r.err != nil:
			case x.ID == "":
				r.fail("empty account id")
			case v > 2*uint64(MaxFigure):
				r.fail("value out of range")
			case x.Qualified > Major || x.Tier > Major:
				r.fail("tier out of range")
			case i > 0 && x.ID <= c.List[i-1].ID:
				r.fail("candidates out of order")
			}
			x.Value = money.Cents(v)
		}
	}
	if r.err == nil && r.i != len(r.b) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}
