// Package view is the read model behind the HTTP API and the status page:
// an in-memory copy of the newest snapshot, recent tier changes and open
// alert of every account this instance owns.
//
// The pipeline feeds it with Observe after each durable flush, so it never
// shows what a crash could take back. It is keyed by partition because
// ownership is: when a rebalance revokes a partition, DropPartition forgets
// its accounts and the API answers 404 for them, pointing the caller at the
// instance that owns them now.
//
// Observe runs on the hot path with batches of thousands of snapshots, so
// the counts the status page shows are kept up to date incrementally rather
// than recomputed per request, and neglected accounts are indexed apart.
package view

import (
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// Limits on the history kept.
const (
	ChangesPerAccount = 20  // tier changes kept per account
	RecentOverall     = 100 // tier changes kept across all accounts
	AlertsPerAccount  = 10  // alerts kept per account, newest first
)

// Detail is everything the store knows about one account.
type Detail struct {
	Partition int
	Snapshot  scoring.Snapshot
	// Changes are the account's most recent tier changes, newest first.
	Changes []scoring.TierChange
	// Alert is the open neglect alert, or nil.
	Alert *scoring.Alert
	// Alerts are the account's latest alerts with their latest status,
	// newest first.
	Alerts []scoring.Alert
	// History is the account's value over time since this instance took
	// its partition, oldest first, thinned to a bounded number of points.
	History []Point
}

// Counts are accounts per tier and per quadrant.
type Counts struct {
	Accounts  int            `json:"accounts"`
	Neglected int            `json:"neglected"`
	Tiers     map[string]int `json:"tiers"`     // every tier of scoring.AllTiers, zero included
	Quadrants map[string]int `json:"quadrants"` // every quadrant of scoring.Quadrants, zero included
}

// Store is the read model. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	parts  map[int]*partition
	tiers  [5]int // indexed by scoring.Tier
	quads  [4]int // indexed like scoring.Quadrants
	total  int
	recent []tagged // newest RecentOverall changes, oldest first
	hist   history
	// ranking is the latest capacity ranking the instance applied: it
	// covers every partition, not only the owned ones.
	ranking *scoring.Ranking
}

type partition struct {
	accounts  map[string]*entry
	neglected map[string]*entry
}

type entry struct {
	snap     scoring.Snapshot // Version 0: no snapshot yet
	changes  []scoring.TierChange
	alert    *scoring.Alert
	resolved int64 // OpenedAt of the newest resolved episode
	alerts   []scoring.Alert
	hist     []Point
	histIdx  int // position in Store.hist.owners while hist is not empty
}

type tagged struct {
	partition int
	scoring.TierChange
}

// New returns an empty store.
func New() *Store { return NewWithHistory(DefaultHistoryBudget) }

// NewWithHistory returns an empty store that keeps at most budget points
// of value history in all (at least PointsPerAccount).
func NewWithHistory(budget int) *Store {
	return &Store{parts: map[int]*partition{}, hist: history{budget: max(budget, PointsPerAccount)}}
}

// Observe records a batch that the sink made durable for partition. It keeps
// the highest version of each snapshot, so batches may arrive out of order
// or twice.
func (s *Store) Observe(partitionID int, b *sink.Batch) {
	if b == nil || b.Len() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[partitionID]
	if p == nil {
		p = &partition{accounts: make(map[string]*entry, len(b.Snapshots)), neglected: map[string]*entry{}}
		s.parts[partitionID] = p
	}
	for i := range b.Snapshots {
		sn := &b.Snapshots[i]
		e := p.accounts[sn.AccountID]
		if e == nil {
			e = &entry{}
			p.accounts[sn.AccountID] = e
		}
		if sn.Version <= e.snap.Version {
			continue
		}
		if e.snap.Version != 0 {
			s.count(&e.snap, -1)
		}
		e.snap = *sn
		s.count(&e.snap, +1)
		s.hist.add(e, sn)
		if sn.Neglected {
			p.neglected[sn.AccountID] = e
		} else {
			delete(p.neglected, sn.AccountID)
		}
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		e := p.accounts[c.AccountID]
		if e == nil {
			e = &entry{}
			p.accounts[c.AccountID] = e
		}
		if e.addChange(c) {
			s.addRecent(partitionID, c)
		}
	}
	for i := range b.Alerts {
		a := &b.Alerts[i]
		e := p.accounts[a.AccountID]
		if e == nil {
			e = &entry{}
			p.accounts[a.AccountID] = e
		}
		e.addAlert(a)
		e.keepAlert(a)
	}
}

// count adds d to the counters sn falls in.
func (s *Store) count(sn *scoring.Snapshot, d int) {
	s.total += d
	if int(sn.Tier) < len(s.tiers) {
		s.tiers[sn.Tier] += d
	}
	if q := quadrantIndex(sn.Quadrant); q >= 0 {
		s.quads[q] += d
	}
}

func quadrantIndex(q string) int {
	for i, n := range scoring.Quadrants {
		if n == q {
			return i
		}
	}
	return -1
}

// addChange inserts c in version order and reports whether it is new.
func (e *entry) addChange(c *scoring.TierChange) bool {
	n := len(e.changes)
	i := sort.Search(n, func(i int) bool { return e.changes[i].Version >= c.Version })
	if i < n && e.changes[i].Version == c.Version {
		return false // seen already
	}
	if n >= ChangesPerAccount {
		if i == 0 {
			return false // older than everything kept
		}
		copy(e.changes, e.changes[1:i])
		e.changes[i-1] = *c
		return true
	}
	e.changes = append(e.changes, scoring.TierChange{})
	copy(e.changes[i+1:], e.changes[i:])
	e.changes[i] = *c
	return true
}

// newer orders tier changes by time, then account and version, so the
// overall list is the same whatever order partitions flushed in.
func newer(a, b *scoring.TierChange) bool {
	if a.ChangedAt != b.ChangedAt {
		return a.ChangedAt > b.ChangedAt
	}
	if a.AccountID != b.AccountID {
		return a.AccountID > b.AccountID
	}
	return a.Version > b.Version
}

func (s *Store) addRecent(partitionID int, c *scoring.TierChange) {
	n := len(s.recent)
	i := sort.Search(n, func(i int) bool { return newer(&s.recent[i].TierChange, c) })
	t := tagged{partitionID, *c}
	if n >= RecentOverall {
		if i == 0 {
			return
		}
		copy(s.recent, s.recent[1:i])
		s.recent[i-1] = t
		return
	}
	s.recent = append(s.recent, tagged{})
	copy(s.recent[i+1:], s.recent[i:])
	s.recent[i] = t
}

// addAlert tracks the open alert. Episodes of one account follow each
// other in time, so a resolution closes its own episode and every earlier
// one even when records arrive out of order.
func (e *entry) addAlert(a *scoring.Alert) {
	switch a.Status {
	case scoring.StatusResolved:
		if a.OpenedAt > e.resolved {
			e.resolved = a.OpenedAt
		}
		if e.alert != nil && e.alert.OpenedAt <= e.resolved {
			e.alert = nil
		}
	case scoring.StatusOpen:
		if a.OpenedAt <= e.resolved || e.alert != nil && e.alert.OpenedAt > a.OpenedAt {
			return
		}
		cp := *a
		e.alert = &cp
	}
}

// keepAlert records a in the account's recent alerts: one entry per alert
// id, the record with the highest version, newest episode first.
func (e *entry) keepAlert(a *scoring.Alert) {
	for i := range e.alerts {
		if e.alerts[i].AlertID == a.AlertID {
			if a.Version >= e.alerts[i].Version {
				e.alerts[i] = *a
			}
			return
		}
	}
	n := len(e.alerts)
	i := sort.Search(n, func(i int) bool { return e.alerts[i].OpenedAt < a.OpenedAt })
	if n >= AlertsPerAccount {
		if i == n {
			return // older than everything kept
		}
		n--
		e.alerts = e.alerts[:n]
	}
	e.alerts = append(e.alerts, scoring.Alert{})
	copy(e.alerts[i+1:], e.alerts[i:])
	e.alerts[i] = *a
}

// DropPartition forgets every account of a partition this instance no
// longer owns.
func (s *Store) DropPartition(partitionID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[partitionID]
	if p == nil {
		return
	}
	for _, e := range p.accounts {
		if e.snap.Version != 0 {
			s.count(&e.snap, -1)
		}
		s.hist.forget(e)
	}
	delete(s.parts, partitionID)
	kept := s.recent[:0]
	for _, t := range s.recent {
		if t.partition != partitionID {
			kept = append(kept, t)
		}
	}
	clear(s.recent[len(kept):])
	s.recent = kept
}

// Partitions returns the partitions the store holds accounts of, sorted.
func (s *Store) Partitions() []int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.parts))
}

// Account returns what is known of the account with id, and false when
// this instance does not own it or has no snapshot of it yet.
func (s *Store) Account(id string) (Detail, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for pid, p := range s.parts {
		e := p.accounts[id]
		if e == nil || e.snap.Version == 0 {
			continue
		}
		d := Detail{Partition: pid, Snapshot: e.snap, Changes: make([]scoring.TierChange, len(e.changes))}
		for i, c := range e.changes {
			d.Changes[len(e.changes)-1-i] = c
		}
		if e.alert != nil {
			a := *e.alert
			d.Alert = &a
		}
		d.Alerts = append([]scoring.Alert(nil), e.alerts...)
		d.History = append([]Point(nil), e.hist...)
		return d, true
	}
	return Detail{}, false
}

// SetRanking records the latest capacity ranking (consumer.Options.OnRanking).
func (s *Store) SetRanking(r *scoring.Ranking) {
	s.mu.Lock()
	s.ranking = r
	s.mu.Unlock()
}

// Ranking returns the latest capacity ranking, or nil before the first.
// A ranking does not change once made.
func (s *Store) Ranking() *scoring.Ranking {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ranking
}

// Tiers returns the number of accounts per tier and quadrant.
func (s *Store) Tiers() Counts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := Counts{
		Accounts:  s.total,
		Tiers:     make(map[string]int, len(scoring.AllTiers)),
		Quadrants: make(map[string]int, len(scoring.Quadrants)),
	}
	for _, t := range scoring.AllTiers {
		c.Tiers[t.String()] = s.tiers[t]
	}
	for i, q := range scoring.Quadrants {
		c.Quadrants[q] = s.quads[i]
	}
	for _, p := range s.parts {
		c.Neglected += len(p.neglected)
	}
	return c
}

// RecentChanges returns up to n of the latest tier changes across all
// accounts, newest first.
func (s *Store) RecentChanges(n int) []scoring.TierChange {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n = min(max(n, 0), len(s.recent))
	out := make([]scoring.TierChange, n)
	for i := range out {
		out[i] = s.recent[len(s.recent)-1-i].TierChange
	}
	return out
}

// Neglected returns up to n neglected accounts, highest potential first.
func (s *Store) Neglected(n int) []scoring.Snapshot {
	if n <= 0 {
		return nil
	}
	s.mu.RLock()
	var out []scoring.Snapshot
	for _, p := range s.parts {
		for _, e := range p.neglected {
			out = append(out, e.snap)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].PotentialValue != out[j].PotentialValue {
			return out[i].PotentialValue > out[j].PotentialValue
		}
		return out[i].AccountID < out[j].AccountID
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
