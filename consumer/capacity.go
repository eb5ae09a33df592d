package consumer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Capacity-capped tiers are ranked across every partition of the layout
// (docs/operations.md, "Capacity ranking across instances"). Each
// partition publishes its candidates (scoring.Engine.Candidates) to the
// compacted one-partition topic Options.CapacityTopic, keyed by its
// partition number; every instance tails the topic into a capacityBoard,
// and a worker ranks once the board holds an entry of the current group
// generation, under the same capacity configuration, from every partition.
// The topic is derived: each generation's workers publish anew, and
// entries of older generations are ignored.

// CapacityStage is the metric label (sink=...) of the candidates' writes.
const CapacityStage = "capacity"

// capacityEntry is one partition's record on the capacity topic.
type capacityEntry struct {
	partitions int    // of the layout the publisher worked in
	generation int32  // the consumer group generation it published in
	digest     uint64 // scoring.Params.CapacityDigest of its configuration
	cands      *scoring.Candidates
	raw        []byte // the encoded record, to tell a change
}

// Record layout, integers varint-encoded unless noted:
//
//	'Q' 1                          magic and format version
//	partitions, generation, digest (fixed 8 bytes)
//	scoring.AppendCandidates
const (
	capacityMagic   = 'Q'
	capacityVersion = 1
)

func marshalCapacity(partitions int, generation int32, digest uint64, c *scoring.Candidates) []byte {
	b := []byte{capacityMagic, capacityVersion}
	b = binary.AppendUvarint(b, uint64(partitions))
	b = binary.AppendVarint(b, int64(generation))
	b = binary.LittleEndian.AppendUint64(b, digest)
	return scoring.AppendCandidates(b, c)
}

func parseCapacity(b []byte) (capacityEntry, error) {
	e := capacityEntry{raw: b}
	if len(b) < 2 || b[0] != capacityMagic || b[1] != capacityVersion {
		return e, errors.New("not a capacity record of this Pyramid release")
	}
	rest := b[2:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n == 0 || n > 1<<20 {
		return e, errors.New("bad partition count")
	}
	rest = rest[k:]
	g, k := binary.Varint(rest)
	if k <= 0 || g < 0 || g > 1<<31-1 {
		return e, errors.New("bad generation")
	}
	rest = rest[k:]
	if len(rest) < 8 {
		return e, errors.New("truncated")
	}
	e.partitions, e.generation, e.digest = int(n), int32(g), binary.LittleEndian.Uint64(rest)
	c, err := scoring.ParseCandidates(rest[8:])
	if err != nil {
		return e, err
	}
	e.cands = c
	return e, nil
}

// capacityBoard is what an instance knows of every partition's candidates:
// the newest entry per partition number read from the capacity topic. It
// is safe for concurrent use; entries are never changed once stored.
type capacityBoard struct {
	mu      sync.Mutex
	seq     uint64 // bumped on every change
	entries map[int]capacityEntry
	bad     map[string]bool // keys whose bad record was logged
}

func newCapacityBoard() *capacityBoard {
	return &capacityBoard{entries: map[int]capacityEntry{}, bad: map[string]bool{}}
}

// apply stores one record of the topic. An entry of an older generation
// than the one held never replaces it: a member whose generation ended may
// still publish. A record that cannot be read is logged once and dropped;
// its partition's owner publishes again (see worker.publishCapacity).
func (b *capacityBoard) apply(log *slog.Logger, m *kafka.Message) {
	key := string(m.Key)
	part, err := strconv.Atoi(key)
	if err != nil || part < 0 {
		b.logBad(log, key, fmt.Errorf("key %q is not a partition number", key))
		return
	}
	if m.Value == nil {
		return // a tombstone: nothing to forget that newer entries do not replace
	}
	e, err := parseCapacity(bytes.Clone(m.Value))
	if err != nil {
		b.logBad(log, key, err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.entries[part]; ok && old.generation > e.generation {
		return
	}
	b.entries[part] = e
	b.seq++
}

func (b *capacityBoard) logBad(log *slog.Logger, key string, err error) {
	b.mu.Lock()
	first := !b.bad[key]
	b.bad[key] = true
	b.mu.Unlock()
	if first {
		log.Warn("ignoring an unreadable record on the capacity topic", "key", key, "err", err)
	}
}

// view returns the board's version and its entries.
func (b *capacityBoard) view() (uint64, map[int]capacityEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int]capacityEntry, len(b.entries))
	for k, v := range b.entries {
		out[k] = v
	}
	return b.seq, out
}

// entry returns partition part's entry.
func (b *capacityBoard) entry(part int) (capacityEntry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[part]
	return e, ok
}

// tail reads the capacity topic from its start into b until ctx ends.
func (b *capacityBoard) tail(ctx context.Context, p *Pipeline) {
	o := &p.opts
	f := &kafkaio.Fetcher{Dialer: o.Dialer, Brokers: o.Brokers, Topic: o.CapacityTopic, Partition: 0,
		MaxWait: o.FetchMaxWait, MaxBytes: 4 << 20, Log: p.log}
	f.Run(ctx, kafka.FirstOffset, func(fr kafkaio.Fetched) bool {
		for i := range fr.Msgs {
			b.apply(p.log, &fr.Msgs[i])
		}
		return ctx.Err() == nil
	})
}

// capacityRanking is what the board says a partition may rank with.
type capacityRanking struct {
	sets []*scoring.Candidates // by partition number; the caller's own is nil
	// waiting names what is missing, when sets is nil.
	waiting string
}

// rankable returns the other partitions' candidates when the board holds
// an entry of generation gen, of a layout of n partitions, under the
// configuration digest, from every partition but own.
func rankable(entries map[int]capacityEntry, n int, gen int32, digest uint64, own int) capacityRanking {
	sets := make([]*scoring.Candidates, n)
	var missing, foreign []int
	for q := range n {
		if q == own {
			continue
		}
		e, ok := entries[q]
		switch {
		case !ok || e.generation != gen || e.partitions != n:
			missing = append(missing, q)
		case e.digest != digest:
			foreign = append(foreign, q)
		default:
			sets[q] = e.cands
		}
	}
	switch {
	case len(foreign) > 0:
		return capacityRanking{waiting: fmt.Sprintf("partitions %v publish under another capacity configuration (max_accounts or hysteresis differ): run one configuration in a group", foreign)}
	case len(missing) > 0:
		return capacityRanking{waiting: fmt.Sprintf("waiting for the candidates of partitions %v in generation %d", missing, gen)}
	}
	return capacityRanking{sets: sets}
}

// capacityPublisher writes the partitions' records to the capacity topic
// from one goroutine. Only the newest record of each partition waits, so
// a slow broker costs no memory.
type capacityPublisher struct {
	mu      sync.Mutex
	pending map[int][]byte
	wake    chan struct{}
}

func newCapacityPublisher() *capacityPublisher {
	return &capacityPublisher{pending: map[int][]byte{}, wake: make(chan struct{}, 1)}
}

// publish queues part's record, replacing one still waiting.
func (c *capacityPublisher) publish(part int, value []byte) {
	c.mu.Lock()
	c.pending[part] = value
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run writes what is queued until ctx ends, through stage; a write that
// fails for good is logged and dropped (its partition publishes again at
// its next re-evaluation).
func (c *capacityPublisher) run(ctx context.Context, p *Pipeline, stage *retry.Stage) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		parts := slices.Sorted(maps.Keys(c.pending))
		recs := make([]kafkaio.Record, 0, len(parts))
		for _, n := range parts {
			recs = append(recs, kafkaio.Record{Key: []byte(strconv.Itoa(n)), Value: c.pending[n]})
		}
		c.pending = map[int][]byte{}
		c.mu.Unlock()
		if err := kafkaio.Produce(ctx, stage, p.kafka, p.opts.CapacityTopic, 0, recs, defaultMaxMessageBytes); err != nil && ctx.Err() == nil {
			p.log.Error("publishing capacity candidates failed; partitions publish again at their next re-evaluation", "partitions", parts, "err", err)
		}
	}
}

// ranked reports a ranking a worker applied: in pyramid_capacity_held,
// and to Options.OnRanking.
func (p *Pipeline) ranked(r *scoring.Ranking) {
	for _, t := range scoring.AllTiers {
		if p.params.Capped(t) {
			tr := r.Tier(t)
			p.opts.Metrics.CapacityHeld.WithLabelValues(t.String()).Set(float64(tr.Pinned + tr.Placed))
		}
	}
	if p.opts.OnRanking != nil {
		p.opts.OnRanking(r)
	}
}
