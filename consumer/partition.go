package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/scoring"
)

// notAssigned marks an input topic whose partition this member does not own.
const notAssigned = -100

// worker processes one partition number for one generation, as goka's
// PartitionProcessor does: it restores the partition's state, runs a
// fetcher per input topic, merges what they read in event-time order,
// applies each event to the state and flushes the results.
type worker struct {
	p      *Pipeline
	commit *committer // the generation's offset commits
	part   int
	topics []string
	dec    *event.Decoder

	hash   *kafkaio.Partitioner // native events' partitioner with declared inputs, else nil (copartition.go)
	st     *state               // the accounts (state.go)
	in     *merger              // the inputs, merged (merge.go)
	clk    clock                // the evaluation clock (clock.go)
	fl     flushing             // the job being written (flush.go)
	gauges partitionGauges      // the partition's share of the tier gauges
	rk     ranking              // its part in the capacity ranking (ranking.go)
	lagPos *positions           // published for the lag gauges (lag.go)
	// upstream is the lag goroutine's answer last settled (upstream.go).
	upstream *upstreamEnds

	wall   int64          // the wall clock as of the fetch response being queued
	src    kafkaio.Source // scratch: the source position of the message being applied
	pos    []int64        // last offset applied, per topic
	sealed []int64        // pos as of the last seal

	// What the next seal takes: the tier changes and alerts, the dead
	// letters, the Kafka append times of the events, and how many events.
	out     scoring.Output
	dlq     []kafkaio.Record
	times   []int64
	pending int
}

func newWorker(p *Pipeline, commit *committer, part int) *worker {
	o := &p.opts
	n := len(o.Topics)
	w := &worker{
		p: p, commit: commit, part: part, topics: o.Topics, dec: event.NewDecoder(o.Config),
		hash:   newCopartition(o, p.layout.partitions),
		st:     newState(p.params, o.Topics, o.Changelog, part, newSizeGuard(p.layout.stateMax, maxStage(o.Config), o.Topics)),
		in:     newMerger(n, o.MergeWait, time.Now),
		clk:    clock{topicTime: make([]int64, n)},
		fl:     flushing{spare: &job{}, done: make(chan error, 1)},
		gauges: partitionGauges{c: p.counters, neglected: map[string]scoring.Tier{}},
		pos:    make([]int64, n), sealed: make([]int64, n),
	}
	w.in.upstream = w.st.src.upstream
	return w
}

// run restores the partition's state, then processes its events until the
// generation ends or ctx is cancelled, and flushes once more.
func (w *worker) run(ctx, gctx context.Context, starts []int64) error {
	o := &w.p.opts
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(gctx, cancel)()
	w.lagPos = w.p.lag.register(w.part, starts)
	defer w.p.unregisterLag(w.lagPos)

	t0 := time.Now()
	if err := w.restore(wctx, starts); err != nil {
		if wctx.Err() != nil {
			return nil
		}
		return err
	}
	o.Metrics.Restore.Observe(time.Since(t0).Seconds())
	w.p.restored(w.part)
	w.p.log.Info("partition restored", "partition", w.part, "accounts", w.st.eng.Len(), "seconds", time.Since(t0).Seconds())
	defer w.gauges.release()
	defer w.leaveRanking()
	defer w.releaseFrozen()

	for ti, s := range starts {
		w.pos[ti] = -1
		if s >= 0 {
			w.pos[ti] = s - 1
		}
	}
	copy(w.sealed, w.pos)
	copy(w.in.read, w.pos)
	fetched, stopFetchers := w.fetch(wctx, starts)

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
			if err = w.waitFlush(); err == nil {
				if err = w.seal("shutdown"); err == nil {
					err = w.waitFlush()
				}
			}
			if err == nil {
				w.markClean()
			}
			return err
		case f := <-fetched:
			err = w.process(f)
		case <-flushT.C:
			if w.intervalDue(time.Now()) {
				err = w.flush("interval")
			}
		case <-reevalT.C:
			w.reevaluate(false)
			w.rank(true)
		case <-mergeT.C:
			w.rank(false)
			w.st.src.expire(w.p.opts.Now().UnixNano())
			if u := w.p.upstream.Load(); u != nil && u != w.upstream && w.settled(u) {
				w.st.src.settle(u)
				w.upstream = u
			}
			if w.clk.backfill && w.in.drained() && w.st.src.pending() {
				// Everything fetched is applied: only the source backlog
				// holds the backfill. Ask whether it is still true.
				w.p.lag.askUpstream()
			}
			// A starved topic may have waited long enough; a backfill
			// may have ended with the backlog upstream, with no message
			// to tell.
			if w.in.queued > 0 || w.clk.backfill {
				err = w.drain(false)
			}
			if err == nil {
				err = w.caughtUp()
			}
		case err = <-w.fl.done:
			err = w.flushed(err)
		}
		if err != nil {
			stopFetchers()
			w.waitFlush()
			return err
		}
	}
}

// fetched is one fetch response of one input topic-partition.
type fetched struct {
	topic int // index into Options.Topics
	msgs  []kafka.Message
	hwm   int64
}

// fetch starts a fetcher per assigned input topic and returns what they
// fetch, and a function that stops them and waits until they did. The
// channel is small, so a worker blocked on a slow sink stops the fetching:
// memory stays bounded by its capacity × FetchMaxBytes.
func (w *worker) fetch(ctx context.Context, starts []int64) (<-chan fetched, func()) {
	o := &w.p.opts
	ch := make(chan fetched, len(w.topics))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for ti, t := range w.topics {
		if starts[ti] == notAssigned {
			continue
		}
		f := &kafkaio.Fetcher{Dialer: o.Dialer, Brokers: o.Brokers, Topic: t, Partition: w.part,
			MaxWait: o.FetchMaxWait, MaxBytes: o.FetchMaxBytes, Log: w.p.log}
		wg.Add(1)
		go func(ti int, start int64) {
			defer wg.Done()
			f.Run(ctx, start, func(r kafkaio.Fetched) bool {
				select {
				case ch <- fetched{topic: ti, msgs: r.Msgs, hwm: r.HWM}:
					return true
				case <-ctx.Done():
					return false
				}
			})
		}(ti, starts[ti])
	}
	return ch, func() {
		cancel()
		wg.Wait()
	}
}

// restore loads the partition's accounts from the changelog, moves their
// versions past any a crashed previous owner may have emitted (see
// state.restoreVersions), and marks the partition in use before anything
// is emitted. starts are the offsets the group assigned, per input topic.
func (w *worker) restore(ctx context.Context, starts []int64) error {
	o := &w.p.opts
	latest, err := readChangelog(ctx, w.p.log, o.Dialer, o.Brokers, o.Changelog, w.part)
	if err != nil {
		return err
	}
	if err := w.st.restore(latest, func(a *scoring.Account) { w.gauges.restored(a); w.checkSize(a) }); err != nil {
		return err
	}
	clean, redo := w.st.clean(), int64(0)
	if !clean {
		for ti, t := range w.topics {
			if starts[ti] == notAssigned {
				continue
			}
			end, err := lastOffset(ctx, w.p.log, o.Dialer, o.Brokers, t, w.part)
			if err != nil {
				return err
			}
			redo += max(0, end-max(starts[ti], 0))
		}
		w.p.log.Info("partition was not handed over cleanly; versions skip ahead", "partition", w.part, "events_to_redo", redo)
	}
	w.st.restoreVersions(clean, redo)
	// Not cut short by the generation's end: the hand-over that follows
	// marks the partition clean again, as this owner will have emitted
	// nothing, and only a marker written in full can say so.
	if err := kafkaio.Produce(w.p.stop, w.p.changelogStage, w.p.kafka, o.Changelog, w.part, []kafkaio.Record{w.st.markerRecord(false)}, w.p.layout.stateMax); err != nil {
		return fmt.Errorf("partition %d: marking the state topic partition in use: %w", w.part, err)
	}
	w.gauges.added()
	return nil
}

// markClean records, as the last act of an orderly hand-over, that
// everything the partition emitted is in the changelog, so its next owner
// needs to skip no versions. A failure only costs that skip.
func (w *worker) markClean() {
	if err := kafkaio.Produce(w.p.stop, w.p.changelogStage, w.p.kafka, w.p.opts.Changelog, w.part, []kafkaio.Record{w.st.markerRecord(true)}, w.p.layout.stateMax); err != nil {
		w.p.log.Warn("could not mark the partition handed over cleanly; its next owner will skip versions", "partition", w.part, "err", err)
	}
}

// process takes one fetch response: it applies what can be applied and
// flushes when that is due.
func (w *worker) process(f fetched) error {
	w.wall = w.p.opts.Now().UnixNano()
	w.in.add(f, w.decode)
	if len(f.msgs) > 0 {
		w.lagPos.fetched[f.topic].Store(w.in.read[f.topic] + 1)
	}
	err := w.drain(false)
	if err == nil && w.pending >= w.p.opts.FlushSize {
		err = w.flush("size")
	}
	if err == nil {
		err = w.caughtUp()
	}
	if err == nil {
		err = w.backpressure()
	}
	return err
}

// decode validates a message as it is queued for the merge (see
// validate); only the messages it accepts get their place in the
// event-time order. Their strings alias the message's value, which the
// message owns.
func (w *worker) decode(q *queued) {
	if q.err = validate(w.dec, q.m, &q.ev, w.wall); q.err == nil {
		q.err = w.checkPartition(q.m)
	}
	if q.err == nil {
		q.at = q.ev.OccurredAt
	}
}

// drain applies the queued messages the merge lets go (force: all of
// them), then ends a backfill that has caught up and forgets the
// restored floors once they are passed.
func (w *worker) drain(force bool) error {
	for {
		ti, q := w.in.next(force)
		if q == nil {
			break
		}
		if err := w.apply(ti, q); err != nil {
			return err
		}
	}
	if w.clk.backfill && !w.backfilling(w.p.opts.Now().UnixNano(), -1, -1) {
		// Caught up: bring every account, changed or not, to the wall clock.
		w.clk.backfill = false
		w.reevaluate(true)
	}
	w.st.passed(w.pos)
	return nil
}

// apply applies one message of topic ti in log order.
func (w *worker) apply(ti int, q *queued) error {
	m, c := q.m, w.p.counters
	w.pos[ti] = m.Offset
	w.pending++
	var appended int64
	if !m.Time.IsZero() {
		appended = m.Time.UnixNano()
	}
	w.times = append(w.times, appended)
	wall := w.p.opts.Now().UnixNano()
	ev := &q.ev
	// A repartitioned event written again after a crash of the
	// repartitioner is dropped by its source position (positions.go).
	if w.st.src.position(ti, &w.src, m.Headers) && w.st.src.copied(ti, &w.src, wall) {
		c.event(ev.Type, resDuplicate)
		return nil
	}
	if q.err != nil {
		w.reject(m, ti, ev, q.err)
		return nil
	}
	topicTime := w.clk.topicTime[ti]
	w.clk.topicTime[ti] = max(topicTime, ev.OccurredAt)
	asOf := wall
	if w.backfilling(wall, ti, m.Offset) {
		asOf, w.clk.backfill = scoring.EventTime, true
	}
	w.clk.last = wall
	if w.st.applied(ti, m.Offset, ev.AccountID) {
		c.event(ev.Type, resDuplicate)
		return nil
	}
	if err := w.frozenErr(ev.AccountID); err != nil {
		w.clk.topicTime[ti] = topicTime
		w.reject(m, ti, ev, err)
		return nil
	}
	c0, a0 := len(w.out.Changes), len(w.out.Alerts)
	a, res := w.st.eng.Apply(ev, asOf, &w.out)
	switch res {
	case scoring.Duplicate:
		c.event(ev.Type, resDuplicate)
		return nil
	case scoring.Rejected: // a limit or the figure bound; nothing changed
		w.clk.topicTime[ti] = topicTime
		w.reject(m, ti, ev, w.out.Err)
		w.out.Err = nil
		return nil
	}
	c.event(ev.Type, resApplied)
	w.st.changed(a)
	w.checkSize(a)
	w.gauges.collect(&w.out, c0, a0)
	return nil
}

// reject queues a dead letter: the original key and value, and headers
// saying why, with what reason, and where the event came from.
func (w *worker) reject(m *kafka.Message, ti int, ev *event.Event, err error) {
	w.p.counters.event(ev.Type, resRejected)
	w.p.opts.Metrics.DLQ.WithLabelValues(kafkaio.Reason(err)).Inc()
	w.dlq = append(w.dlq, kafkaio.DeadLetter(m.Key, m.Value, err, kafkaio.AppendSource(nil, w.topics[ti], w.part, m.Offset), w.p.layout.dlqMax))
}
