package consumer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// maxQueued bounds the messages a worker holds decoded but not applied
// while it waits for a starved input topic (see drain): about 600 bytes
// each.
const maxQueued = 50_000

// notAssigned marks an input topic whose partition this member does not own.
const notAssigned = -100

// Dead letters larger than maxDeadLetter bytes keep only their first
// truncatedDeadLetter bytes.
const (
	maxDeadLetter       = 900 << 10
	truncatedDeadLetter = 64 << 10
)

// worker owns one partition number: its accounts, the input
// topic-partitions with that number and the changelog partition.
type worker struct {
	p      *Pipeline
	commit *committer // the generation's offset commits
	part   int
	topics []string
	eng    *scoring.Engine
	dec    *event.Decoder

	// floor holds, for accounts restored from the changelog, the offsets
	// their state already includes; maxFloor is the largest per topic. It is
	// dropped once reading has passed every floor.
	floor    map[string][]int64
	maxFloor []int64

	pos    []int64 // last offset processed, per topic
	sealed []int64 // pos as of the last seal
	hwm    []int64

	// order lists the accounts changed since the last seal, in the order
	// they changed; an account is in it when its Mark is flushGen.
	order    []*scoring.Account
	flushGen uint32
	out      scoring.Output // the changes and alerts since the last seal
	dlq      []rec
	times    []int64 // Kafka append times of the events in this flush
	pending  int     // events read since the last flush
	clock    int64   // the last as_of used
	// topicTime is the largest occurred_at read per input topic; backfill
	// is set while events are judged at their accounts' own clocks (see
	// backfilling).
	topicTime    []int64
	backfill     bool
	caughtUpOnce bool // read every input to its end since the assignment
	// read is the last offset fetched per topic; queue holds what was read
	// but not applied yet (see drain).
	read      []int64
	queue     []topicQueue
	queued    int
	waitSince time.Time
	tiers     [5]int // accounts per tier
	// neglected maps accounts with an open alert to the tier the gauge
	// counts them under.
	neglected map[string]scoring.Tier

	spare    *job       // the job to fill; being written while busy
	busy     bool       // a job is being written
	sealedAt time.Time  // when the last job was sealed
	done     chan error // the result of writing it
}

func newWorker(p *Pipeline, commit *committer, part int) *worker {
	n := len(p.opts.Topics)
	w := &worker{
		p: p, commit: commit, part: part, topics: p.opts.Topics,
		eng: scoring.NewEngine(p.params), dec: event.NewDecoder(p.opts.Config),
		floor: map[string][]int64{}, maxFloor: make([]int64, n),
		pos: make([]int64, n), sealed: make([]int64, n), hwm: make([]int64, n), topicTime: make([]int64, n),
		read: make([]int64, n), queue: make([]topicQueue, n),
		flushGen: 1, neglected: map[string]scoring.Tier{},
		spare: &job{}, done: make(chan error, 1),
	}
	for i := range w.hwm {
		w.hwm[i] = -1 // unknown until the first fetch answers
	}
	for i := range w.maxFloor {
		w.maxFloor[i] = -1
	}
	return w
}

// run restores the partition's state, then processes its events until the
// generation ends or ctx is cancelled, and flushes once more.
func (w *worker) run(ctx, gctx context.Context, starts []int64) error {
	o := &w.p.opts
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(gctx, cancel)
	defer stop()

	t0 := time.Now()
	if err := w.restore(wctx); err != nil {
		if wctx.Err() != nil {
			return nil
		}
		return err
	}
	o.Metrics.Restore.Observe(time.Since(t0).Seconds())
	w.p.restored(w.part)
	w.p.log.Info("partition restored", "partition", w.part, "accounts", w.eng.Len(), "seconds", time.Since(t0).Seconds())
	defer w.release()

	for ti, s := range starts {
		w.pos[ti] = -1
		if s >= 0 {
			w.pos[ti] = s - 1
		}
	}
	copy(w.sealed, w.pos)
	copy(w.read, w.pos)

	ch := make(chan fetched, len(w.topics))
	fctx, fcancel := context.WithCancel(wctx)
	var fwg sync.WaitGroup
	for ti, t := range w.topics {
		if starts[ti] == notAssigned {
			continue
		}
		f := &fetcher{dialer: o.Dialer, brokers: o.Brokers, topic: t, index: ti, partition: w.part,
			maxWait: o.FetchMaxWait, maxBytes: o.FetchMaxBytes, log: w.p.log, out: ch}
		fwg.Add(1)
		go func(start int64) {
			defer fwg.Done()
			f.run(fctx, start)
		}(starts[ti])
	}
	stopFetchers := func() {
		fcancel()
		fwg.Wait()
	}

	// due is the reason of a flush asked for while one was being written.
	due := ""
	flush := func(reason string) error {
		if w.busy {
			if due == "" || reason == "size" {
				due = reason
			}
			return nil
		}
		return w.seal(reason)
	}
	// caughtUp flushes a partition that has applied all of its input (see
	// Options.CaughtUpFlush); it is asked whenever that may have become true.
	caughtUp := func() error {
		if w.busy || w.pending == 0 || o.CaughtUpFlush < 0 || !w.sealedAt.Before(time.Now().Truncate(o.CaughtUpFlush)) || !w.drained() {
			return nil
		}
		return w.seal("caught_up")
	}
	wait := func() error {
		if !w.busy {
			return nil
		}
		w.busy = false
		return <-w.done
	}

	flushT := time.NewTicker(o.FlushInterval)
	defer flushT.Stop()
	reevalT := time.NewTicker(o.ReevalInterval)
	defer reevalT.Stop()
	mergeT := time.NewTicker(max(o.MergeWait/2, time.Millisecond))
	defer mergeT.Stop()
	for {
		var err error
		select {
		case <-wctx.Done():
			stopFetchers()
			if err = wait(); err == nil {
				if err = w.seal("shutdown"); err == nil {
					err = wait()
				}
			}
			return err
		case f := <-ch:
			err = w.process(f)
			if err == nil && w.pending >= o.FlushSize {
				err = flush("size")
			}
			if err == nil {
				err = caughtUp()
			}
			// Bound memory while the sink is slow: stop reading.
			if err == nil && w.busy && w.pending >= 4*o.FlushSize {
				if err = wait(); err == nil {
					due = ""
					err = w.seal("size")
				}
			}
		case <-flushT.C:
			err = flush("interval")
		case <-reevalT.C:
			w.reevaluate(false)
		case <-mergeT.C:
			if w.queued > 0 {
				err = w.drain(false)
			}
			if err == nil {
				err = caughtUp()
			}
		case err = <-w.done:
			w.busy = false
			if err == nil && due != "" {
				r := due
				due = ""
				err = w.seal(r)
			}
			if err == nil {
				err = caughtUp()
			}
		}
		if err != nil {
			stopFetchers()
			wait()
			return err
		}
	}
}

// release forgets the partition's accounts in the gauges.
func (w *worker) release() {
	for t, n := range w.tiers {
		if n != 0 && t != int(scoring.TierNone) {
			w.p.accountsGauge(scoring.Tier(t)).Sub(float64(n))
		}
	}
	for _, t := range w.neglected {
		w.p.neglectedGauge(t).Dec()
	}
	for _, t := range w.topics {
		w.p.opts.Metrics.ConsumerLag.DeleteLabelValues(t, strconv.Itoa(w.part))
	}
}

func (w *worker) restore(ctx context.Context) error {
	o := &w.p.opts
	latest, err := readChangelog(ctx, w.p.log, o.Dialer, o.Brokers, o.Changelog, w.part)
	if err != nil {
		return err
	}
	for key, val := range latest {
		pos, a, err := parseRecord(val, w.topics)
		if err != nil {
			return fmt.Errorf("state topic %s partition %d, account %q: %w", o.Changelog, w.part, key, err)
		}
		if a.ID != key {
			return fmt.Errorf("state topic %s partition %d: record key %q holds account %q", o.Changelog, w.part, key, a.ID)
		}
		w.eng.Put(a)
		w.floor[a.ID] = pos
		for i, x := range pos {
			w.maxFloor[i] = max(w.maxFloor[i], x)
		}
		w.tiers[a.Tier]++
		if _, open := a.AlertOpen(); open {
			// The gauge counts an open alert under the tier it opened in.
			w.neglected[a.ID] = a.Tier
			w.p.neglectedGauge(a.Tier).Inc()
		}
	}
	for t, n := range w.tiers {
		if n != 0 && t != int(scoring.TierNone) {
			w.p.accountsGauge(scoring.Tier(t)).Add(float64(n))
		}
	}
	return nil
}

// queued is a message read but not applied yet, decoded so the worker can
// apply its topics in event-time order.
type queued struct {
	m   *kafka.Message // into its fetch response, which it keeps alive
	ev  event.Event
	err error
	at  int64 // occurred_at; undecodable messages sort first
}

// topicQueue is one topic's queued messages; head indexes the next one, so
// applying a message moves nothing.
type topicQueue struct {
	items []queued
	head  int
}

func (q *topicQueue) len() int { return len(q.items) - q.head }

// process queues one fetch response and applies what can be applied.
func (w *worker) process(f fetched) error {
	ti := f.topic
	if f.hwm > w.hwm[ti] {
		w.hwm[ti] = f.hwm // fetches can answer out of order with the start-up announcement
	}
	tq := &w.queue[ti]
	for i := range f.msgs {
		m := &f.msgs[i]
		if m.Offset <= w.read[ti] {
			continue // re-fetched after a reconnect
		}
		w.read[ti] = m.Offset
		tq.items = append(tq.items, queued{m: m, at: math.MinInt64})
		q := &tq.items[len(tq.items)-1]
		// Decode's strings alias m.Value, which this message owns.
		if q.err = w.dec.DecodeTo(m.Value, &q.ev); q.err == nil {
			q.at = q.ev.OccurredAt
		}
		w.queued++
	}
	return w.drain(false)
}

// drain applies queued messages across the partition's input topics in
// occurred_at order, as Kafka Streams merges co-partitioned inputs by
// timestamp: each topic is in log order, and among the topics' heads the
// oldest goes first. A topic with input still unread on the broker but
// nothing queued is waited for up to Options.MergeWait (its next event may be
// older than every queued head); past that, or when the queue is full, or
// with force, the worker goes on without it. Without this, a small topic
// read to its end first (account updates from today) would run an account's
// clock ahead of its own touches still queued in another topic.
func (w *worker) drain(force bool) error {
	for {
		best, bestAt := -1, int64(0)
		for i := range w.queue {
			if q := &w.queue[i]; q.len() > 0 && (best < 0 || q.items[q.head].at < bestAt) {
				best, bestAt = i, q.items[q.head].at
			}
		}
		if best < 0 {
			w.waitSince = time.Time{}
			break
		}
		if !force && w.queued < maxQueued && w.starved() {
			if w.waitSince.IsZero() {
				w.waitSince = time.Now()
			}
			if time.Since(w.waitSince) < w.p.opts.MergeWait {
				break
			}
		}
		w.waitSince = time.Time{}
		tq := &w.queue[best]
		q := &tq.items[tq.head]
		tq.head++
		w.queued--
		err := w.apply(best, q)
		if tq.head == len(tq.items) {
			// Reuse the array; stale entries are overwritten as it refills.
			tq.items, tq.head = tq.items[:0], 0
		}
		if err != nil {
			return err
		}
	}
	if w.backfill && !w.backfilling(w.p.opts.Now().UnixNano(), -1, -1) {
		// Caught up: bring every account, changed or not, to the wall clock.
		w.backfill = false
		w.reevaluate(true)
	}
	if len(w.floor) > 0 {
		passed := true
		for i, x := range w.maxFloor {
			if w.pos[i] < x {
				passed = false
			}
		}
		if passed {
			w.floor = map[string][]int64{}
		}
	}
	return nil
}

// drained reports whether every input was read to its high-water mark as
// of the last fetch and everything read was applied.
func (w *worker) drained() bool {
	if w.queued > 0 {
		return false
	}
	for i := range w.hwm {
		if w.hwm[i] < 0 || w.read[i] < w.hwm[i]-1 {
			return false
		}
	}
	return true
}

// starved reports whether some input has nothing queued but more to read.
func (w *worker) starved() bool {
	for i := range w.queue {
		if w.queue[i].len() == 0 && (w.hwm[i] < 0 || w.read[i] < w.hwm[i]-1) {
			return true
		}
	}
	return false
}

// apply applies one message of topic ti in log order.
func (w *worker) apply(ti int, q *queued) error {
	m := q.m
	w.pos[ti] = m.Offset
	w.pending++
	var appended int64
	if !m.Time.IsZero() {
		appended = m.Time.UnixNano()
	}
	w.times = append(w.times, appended)
	wall := w.p.opts.Now().UnixNano()
	ev, err := &q.ev, q.err
	if err == nil {
		err = w.check(m, ev, wall)
	}
	if err != nil {
		w.reject(m, ti, ev, err)
		return nil
	}
	w.topicTime[ti] = max(w.topicTime[ti], ev.OccurredAt)
	asOf := wall
	if w.backfilling(wall, ti, m.Offset) {
		asOf, w.backfill = scoring.EventTime, true
	}
	w.clock = wall
	if m.Offset <= w.maxFloor[ti] {
		if fl := w.floor[ev.AccountID]; fl != nil && m.Offset <= fl[ti] {
			w.p.events[ev.Type][resDuplicate].Inc()
			return nil
		}
	}
	c0, a0 := len(w.out.Changes), len(w.out.Alerts)
	a, res := w.eng.Apply(ev, asOf, &w.out)
	switch res {
	case scoring.Duplicate:
		w.p.events[ev.Type][resDuplicate].Inc()
		return nil
	case scoring.Rejected: // a limit or the figure bound; nothing changed
		w.reject(m, ti, ev, w.out.Err)
		w.out.Err = nil
		return nil
	}
	w.p.events[ev.Type][resApplied].Inc()
	w.markDirty(a)
	w.collect(c0, a0)
	return nil
}

// check applies the rules the decoder cannot: the wall clock and the key.
func (w *worker) check(m *kafka.Message, ev *event.Event, asOf int64) error {
	if err := event.CheckFuture(ev, asOf); err != nil {
		return err
	}
	if len(m.Key) > 0 && string(m.Key) != ev.AccountID {
		return &event.Error{Reason: event.ReasonInvalidField, Msg: fmt.Sprintf(
			"message key %q differs from account_id %q; input topics must be keyed by account_id", trunc(string(m.Key)), trunc(ev.AccountID))}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// reject queues a dead letter.
func (w *worker) reject(m *kafka.Message, ti int, ev *event.Event, err error) {
	reason := event.ReasonOf(err)
	if reason == "" {
		reason = event.ReasonInvalidField
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	t := ev.Type
	if int(t) >= len(w.p.events) {
		t = 0
	}
	w.p.events[t][resRejected].Inc()
	w.p.opts.Metrics.DLQ.WithLabelValues(reason).Inc()
	r := rec{key: m.Key, value: m.Value, headers: []kafka.Header{
		{Key: "pyramid-error", Value: []byte(msg)},
		{Key: "pyramid-reason", Value: []byte(reason)},
		{Key: "pyramid-source", Value: []byte(w.topics[ti] + "/" + strconv.Itoa(w.part) + "/" + strconv.FormatInt(m.Offset, 10))},
	}}
	// An oversized event would not fit the dead-letter topic's default
	// 1 MB limit: keep its beginning, say so, and point at the source.
	if len(r.value)+len(r.key) > maxDeadLetter {
		r.headers = append(r.headers, kafka.Header{Key: "pyramid-truncated", Value: []byte(strconv.Itoa(len(r.value)))})
		r.value = r.value[:min(len(r.value), truncatedDeadLetter)]
		if len(r.key) > truncatedDeadLetter {
			r.key = r.key[:truncatedDeadLetter]
		}
	}
	w.dlq = append(w.dlq, r)
}

// markDirty adds a to the accounts the next seal snapshots.
func (w *worker) markDirty(a *scoring.Account) {
	if a.Mark != w.flushGen {
		a.Mark = w.flushGen
		w.order = append(w.order, a)
	}
}

// collect counts in the metrics what the engine added to the pending
// changes and alerts from index c0 and a0 on.
func (w *worker) collect(c0, a0 int) {
	p := w.p
	for _, c := range w.out.Changes[c0:] {
		if tc := p.tierChanges[c.From][c.To]; tc != nil {
			tc.Inc()
		} else {
			p.opts.Metrics.TierChanges.WithLabelValues(c.From.String(), c.To.String()).Inc()
		}
		if c.From != scoring.TierNone {
			w.tiers[c.From]--
			p.accountsGauge(c.From).Dec()
		}
		w.tiers[c.To]++
		p.accountsGauge(c.To).Inc()
	}
	for i := a0; i < len(w.out.Alerts); i++ {
		al := &w.out.Alerts[i]
		if al.Status == scoring.StatusOpen {
			w.neglected[al.AccountID] = al.Tier
			p.neglectedGauge(al.Tier).Inc()
		} else if t, ok := w.neglected[al.AccountID]; ok {
			delete(w.neglected, al.AccountID)
			p.neglectedGauge(t).Dec()
		}
	}
}

// backfilling reports whether the partition is backfilling: input still
// unread (the message being applied, offset off of topic ti, counts as
// unread) on a topic whose newest event read so far lies more than
// Options.BackfillLag behind the wall clock. While it backfills, each event
// is judged at its own account's clock (scoring.EventTime), as replay does,
// and periodic re-evaluation waits: judging a year of history at today's
// date would call every account neglected between two of its historical
// touches, on the strength of events not read yet. Topics are read
// independently, so one topic can be read to today while another is still
// in last year; the slowest unread topic decides. When the backfill ends,
// process re-evaluates every account at the wall clock.
func (w *worker) backfilling(wall int64, ti int, off int64) bool {
	lag := w.p.opts.BackfillLag
	if lag < 0 {
		return false
	}
	behind, backlog := false, int64(0)
	for i := range w.hwm {
		read := w.pos[i]
		if i == ti && off >= 0 {
			read = off - 1
		}
		if w.hwm[i] < 0 {
			behind, backlog = true, backlog+backfillBacklog // not fetched yet
			continue
		}
		if unread := w.hwm[i] - 1 - read; unread > 0 {
			backlog += unread
			behind = behind || wall-w.topicTime[i] > int64(lag)
		}
	}
	if backlog == 0 {
		w.caughtUpOnce = true
	}
	// The first catch-up after an assignment may always backfill; later,
	// entering takes a real backlog and leaving takes none, so a trickle of
	// old events does not flip the clock back and forth on every message.
	if !w.backfill && w.caughtUpOnce && backlog < backfillBacklog {
		return false
	}
	return behind
}

// backfillBacklog is the unread message count that starts a backfill.
const backfillBacklog = 1000

// reevaluate moves every account to the current clock (tiers can fall as
// orders leave the window; accounts become neglected without any event).
func (w *worker) reevaluate(all bool) {
	if w.backfill {
		return // at the end of the backfill, with the wall clock
	}
	asOf := w.p.opts.Now().UnixNano()
	w.clock = asOf
	for _, id := range w.eng.IDs() {
		a := w.eng.Account(id)
		c0, a0 := len(w.out.Changes), len(w.out.Alerts)
		if w.eng.Evaluate(a, asOf, &w.out) || all {
			w.markDirty(a)
		}
		w.collect(c0, a0)
	}
}

// A flush is split in two so that scoring goes on while the previous
// flush is written: seal, on the worker's goroutine, freezes what is to be
// made durable (snapshots, changelog records, offsets) into a job, and a
// goroutine writes it in SPEC §6 order. One job per worker is written at a
// time; flushes asked for meanwhile wait and then take everything since,
// and past 4 × FlushSize pending events the worker stops reading, so a
// slow sink stops the fetchers and memory stays bounded.
type job struct {
	reason string
	batch  sink.Batch
	dlq    []rec
	recs   []rec
	buf    []byte
	commit map[string]map[int]int64
	hwm    []int64
	times  []int64
	events int
}

// seal hands everything since the last seal to the flusher. It returns
// an error the flusher reported, if any.
func (w *worker) seal(reason string) error {
	moved := false
	for i := range w.pos {
		if w.pos[i] != w.sealed[i] {
			moved = true
		}
	}
	if !moved && len(w.order) == 0 && len(w.out.Changes)+len(w.out.Alerts) == 0 && len(w.dlq) == 0 {
		return nil
	}
	j := w.spare
	j.reason, j.events = reason, w.pending
	j.batch.Changes, w.out.Changes = w.out.Changes, j.batch.Changes[:0]
	j.batch.Alerts, w.out.Alerts = w.out.Alerts, j.batch.Alerts[:0]
	j.dlq, w.dlq = w.dlq, j.dlq[:0]
	j.times, w.times = w.times, j.times[:0]
	// Sized up front: snapshots are large, and the arena holds each
	// account's key and ~300 bytes of state.
	j.batch.Snapshots = slices.Grow(j.batch.Snapshots[:0], len(w.order))
	j.buf = slices.Grow(j.buf[:0], 340*len(w.order))
	j.recs = slices.Grow(j.recs[:0], len(w.order))
	hdr := make([]int64, len(w.pos))
	for _, a := range w.order {
		j.batch.Snapshots = append(j.batch.Snapshots, w.eng.Snapshot(a, w.snapshotClock(a)))
		copy(hdr, w.pos)
		if fl := w.floor[a.ID]; fl != nil {
			for i, x := range fl {
				hdr[i] = max(hdr[i], x)
			}
		}
		s := len(j.buf)
		j.buf = append(j.buf, a.ID...)
		mid := len(j.buf)
		j.buf = appendHeader(j.buf, w.topics, hdr)
		j.buf = scoring.MarshalAccount(j.buf, a)
		j.recs = append(j.recs, rec{off: s, mid: mid, end: len(j.buf)})
	}
	// Keys and values point into the arena only now that it stopped growing.
	for i := range j.recs {
		r := &j.recs[i]
		r.key, r.value = j.buf[r.off:r.mid:r.mid], j.buf[r.mid:r.end:r.end]
	}
	j.commit = map[string]map[int]int64{}
	for i, t := range w.topics {
		if w.pos[i] >= 0 {
			j.commit[t] = map[int]int64{w.part: w.pos[i] + 1}
		}
	}
	j.hwm = append(j.hwm[:0], w.hwm...)
	copy(w.sealed, w.pos)
	if w.flushGen++; w.flushGen == 0 { // after 2^32 seals: clear stale marks
		for _, id := range w.eng.IDs() {
			w.eng.Account(id).Mark = 0
		}
		w.flushGen = 1
	}
	w.order = w.order[:0]
	w.pending = 0
	w.busy = true
	w.sealedAt = time.Now()
	go func() { w.done <- w.write(j) }()
	return nil
}

// write makes one job durable: dead letters and the sink batch, then the
// changelog, then the offsets.
func (w *worker) write(j *job) error {
	p, o := w.p, &w.p.opts
	ctx := p.stop
	t0 := time.Now()

	// 1. Dead letters and the sink.
	if len(j.dlq) > 0 {
		if err := produce(ctx, p.dlqStage, p.kafka, o.DLQ, w.part%p.layout.dlqPartitions, j.dlq); err != nil {
			return w.flushErr("dead-letter topic", err)
		}
	}
	if j.batch.Len() > 0 {
		if err := p.writeSink(&j.batch); err != nil {
			return w.flushErr("sink", err)
		}
	}
	durable := time.Now()

	// 2. The changelog.
	if len(j.recs) > 0 {
		if err := produce(ctx, p.changelogStage, p.kafka, o.Changelog, w.part, j.recs); err != nil {
			return w.flushErr("state topic", err)
		}
		o.Metrics.ChangelogWrites.Add(float64(len(j.recs)))
	}
	tChangelog := time.Now()

	// 3. The offsets. A refused commit (the generation ended) is harmless:
	// the changelog already says which events each account includes.
	if len(j.commit) > 0 {
		if err := w.commit.Commit(j.commit); err != nil {
			p.log.Warn("committing offsets failed; the next flush retries", "partition", w.part, "err", err)
		} else {
			for i, t := range w.topics {
				if c, ok := j.commit[t]; ok && j.hwm[i] > 0 {
					o.Metrics.ConsumerLag.WithLabelValues(t, strconv.Itoa(w.part)).Set(float64(max(0, j.hwm[i]-c[w.part])))
				}
			}
		}
	}

	p.log.Debug("flushed", "partition", w.part, "reason", j.reason, "events", j.events, "accounts", len(j.recs),
		"rows", j.batch.Len(), "dead_letters", len(j.dlq), "sink_s", durable.Sub(t0).Seconds(),
		"changelog_s", tChangelog.Sub(durable).Seconds(), "commit_s", time.Since(tChangelog).Seconds())
	if o.Observe != nil && j.batch.Len() > 0 {
		o.Observe(w.part, &j.batch)
	}
	o.Metrics.SinkFlushes.WithLabelValues(j.reason).Inc()
	dn := durable.UnixNano()
	for _, t := range j.times {
		if t > 0 {
			o.Metrics.EventLatency.Observe(float64(dn-t) / 1e9)
		}
	}
	return nil
}

func (w *worker) flushErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("partition %d: flush to the %s did not finish within the shutdown timeout: %w", w.part, what, err)
	}
	return fmt.Errorf("partition %d: writing to the %s: %w", w.part, what, err)
}

// snapshotClock is the as_of of a's snapshot: the wall clock, or while
// backfilling, the account's own clock it was last judged at.
func (w *worker) snapshotClock(a *scoring.Account) int64 {
	if w.backfill {
		return a.LastAt()
	}
	return w.clock
}
