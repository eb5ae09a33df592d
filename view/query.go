package view

import (
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pyramid-crm/pyramid/scoring"
)

// Scan calls fn with the newest snapshot of every account the store holds.
// It holds the read lock one partition at a time, so a long scan does not
// stall the pipeline's Observe for long; an account moved or dropped
// meanwhile may be seen in its old state or not at all. fn must not keep
// the pointer.
func (s *Store) Scan(fn func(*scoring.Snapshot)) {
	for _, pid := range s.Partitions() {
		s.mu.RLock()
		if p := s.parts[pid]; p != nil {
			for _, e := range p.accounts {
				if e.snap.Version != 0 {
					fn(&e.snap)
				}
			}
		}
		s.mu.RUnlock()
	}
}

// MaxQuery bounds a search text, in bytes.
const MaxQuery = 256

// Search returns up to n accounts whose id or name contains q, ignoring
// case: an exact id first, then the others by value (current + potential),
// biggest first. q is trimmed and cut to MaxQuery bytes; an empty q finds
// nothing.
func (s *Store) Search(q string, n int) []scoring.Snapshot {
	q = strings.TrimSpace(q)
	if len(q) > MaxQuery {
		q = q[:MaxQuery]
		for !utf8.ValidString(q) {
			q = q[:len(q)-1]
		}
	}
	if q == "" || n <= 0 {
		return nil
	}
	m := newMatcher(q)
	var out []scoring.Snapshot
	s.Scan(func(sn *scoring.Snapshot) {
		if !m.match(sn.AccountID) && !m.match(sn.Name) {
			return
		}
		if len(out) == n && !ranksBefore(sn, &out[n-1], q) {
			return
		}
		i := sort.Search(len(out), func(i int) bool { return ranksBefore(sn, &out[i], q) })
		if len(out) < n {
			out = append(out, scoring.Snapshot{})
		}
		copy(out[i+1:], out[i:])
		out[i] = *sn
	})
	return out
}

// ranksBefore orders search results: the exact id, then value, then id.
func ranksBefore(a, b *scoring.Snapshot, q string) bool {
	if ea, eb := a.AccountID == q, b.AccountID == q; ea != eb {
		return ea
	}
	va, vb := a.CurrentValue+a.PotentialValue, b.CurrentValue+b.PotentialValue
	if va != vb {
		return va > vb
	}
	return a.AccountID < b.AccountID
}

// matcher finds q in a text ignoring case, without allocating for ASCII
// queries.
type matcher struct {
	lower string
	ascii bool
}

func newMatcher(q string) matcher {
	ascii := true
	for i := 0; i < len(q); i++ {
		if q[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	return matcher{lower: strings.ToLower(q), ascii: ascii}
}

func (m matcher) match(s string) bool {
	if !m.ascii {
		return strings.Contains(strings.ToLower(s), m.lower)
	}
	q := m.lower
	for i := 0; i+len(q) <= len(s); i++ {
		j := 0
		for j < len(q) && lowerASCII(s[i+j]) == q[j] {
			j++
		}
		if j == len(q) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
