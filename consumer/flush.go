package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/sink"
)

// A flush is split in two so that scoring goes on while the previous
// flush is written: seal, on the worker's goroutine, freezes what is to be
// made durable (snapshots, changelog records, offsets) into a job, and a
// goroutine writes it in the order the delivery guarantee needs (see
// write). One job per worker is written at a time; flushes asked for
// meanwhile wait and then take everything since, and past 4 × FlushSize
// pending events the worker stops reading, so a slow sink stops the
// fetchers and memory stays bounded.
type job struct {
	reason  string
	batch   sink.Batch
	dlq     []kafkaio.Record
	recs    []kafkaio.Record
	sources kafkaio.Record // the source positions record, when they moved
	buf     []byte         // the arena of recs' keys and values
	spans   [][3]int       // where each rec's key [0, 1) and value [1, 2) lie in buf while it grows
	commit  map[string]map[int]int64
	times   []int64
	events  int
}

// flushing is a worker's side of the flush: the job being written and
// the flush asked for meanwhile.
type flushing struct {
	spare    *job       // the job to fill; being written while busy
	busy     bool       // a job is being written
	due      string     // the reason of a flush asked for while busy
	sealedAt time.Time  // when the last job was sealed
	done     chan error // the result of writing it
}

// backfillFlushes spaces the interval flushes of a partition that
// backfills: each snapshots every account changed since the last one,
// and while a history streams in at the events' own clocks those
// snapshots are superseded seconds later, so flushing every second would
// mostly rewrite the same accounts (a history repartitioned from declared
// inputs, which arrives at the repartitioner's pace, wrote twice the
// snapshot rows of the same history read natively). Size flushes, and the
// flush at the end of the backfill, are not delayed.
const backfillFlushes = 5

// intervalDue reports whether the interval flush of a tick at now is
// due: always, but while the partition backfills, only every
// backfillFlushes ticks (half a tick early, for a ticker's jitter).
func (w *worker) intervalDue(now time.Time) bool {
	every := w.p.opts.FlushInterval
	return !w.clk.backfill || now.Sub(w.fl.sealedAt) >= backfillFlushes*every-every/2
}

// flush seals a flush for reason now, or, while a job is being written,
// once it is done (a size flush outranks the others).
func (w *worker) flush(reason string) error {
	if w.fl.busy {
		if w.fl.due == "" || reason == "size" {
			w.fl.due = reason
		}
		return nil
	}
	return w.seal(reason)
}

// caughtUp flushes a partition that has applied all of its input (and is
// not backfilling what its repartition topics still get), at most
// once per slot of Options.CaughtUpFlush; it is asked whenever that may
// have become true.
func (w *worker) caughtUp() error {
	every := w.p.opts.CaughtUpFlush
	if w.fl.busy || w.pending == 0 || every < 0 || !w.fl.sealedAt.Before(time.Now().Truncate(every)) || !w.in.drained() || w.clk.backfill {
		return nil
	}
	return w.seal("caught_up")
}

// flushed takes the result of the job written, and seals the flush asked
// for meanwhile, if any.
func (w *worker) flushed(err error) error {
	w.fl.busy = false
	if err == nil && w.fl.due != "" {
		r := w.fl.due
		w.fl.due = ""
		err = w.seal(r)
	}
	if err == nil {
		err = w.caughtUp()
	}
	return err
}

// backpressure stops reading while the sink is slow: past 4 × FlushSize
// pending events it waits for the job being written and seals at once.
func (w *worker) backpressure() error {
	if !w.fl.busy || w.pending < 4*w.p.opts.FlushSize {
		return nil
	}
	if err := w.waitFlush(); err != nil {
		return err
	}
	w.fl.due = ""
	return w.seal("size")
}

// waitFlush waits for the job being written, if any, and returns its
// result.
func (w *worker) waitFlush() error {
	if !w.fl.busy {
		return nil
	}
	w.fl.busy = false
	return <-w.fl.done
}

// seal hands everything since the last seal to a goroutine that writes
// it, and starts gathering the next flush.
func (w *worker) seal(reason string) error {
	w.sealJob(reason)
	if reason != "shutdown" {
		w.gathering()
	}
	return nil
}

func (w *worker) sealJob(reason string) {
	changed := w.st.take()
	if !w.moved() && len(changed) == 0 && len(w.out.Changes)+len(w.out.Alerts) == 0 && len(w.dlq) == 0 {
		return
	}
	j := w.fl.spare
	j.reason, j.events = reason, w.pending
	j.sources, _ = w.st.src.record()
	j.batch.Changes, w.out.Changes = w.out.Changes, j.batch.Changes[:0]
	j.batch.Alerts, w.out.Alerts = w.out.Alerts, j.batch.Alerts[:0]
	j.dlq, w.dlq = w.dlq, j.dlq[:0]
	j.times, w.times = w.times, j.times[:0]
	// Sized up front: snapshots are large, and the arena holds each
	// account's key and ~300 bytes of state.
	j.batch.Snapshots = slices.Grow(j.batch.Snapshots[:0], len(changed))
	j.buf = slices.Grow(j.buf[:0], 340*len(changed))
	j.spans = slices.Grow(j.spans[:0], len(changed))
	hdr := make([]int64, len(w.pos))
	for _, a := range changed {
		j.batch.Snapshots = append(j.batch.Snapshots, w.st.eng.Snapshot(a, w.snapshotClock(a)))
		start := len(j.buf)
		var mid int
		j.buf, mid = w.st.appendRecord(j.buf, a, w.pos, hdr)
		j.spans = append(j.spans, [3]int{start, mid, len(j.buf)})
	}
	// Keys and values point into the arena only now that it stopped growing.
	clear(j.recs)
	j.recs = j.recs[:0]
	for _, sp := range j.spans {
		j.recs = append(j.recs, kafkaio.Record{Key: j.buf[sp[0]:sp[1]:sp[1]], Value: j.buf[sp[1]:sp[2]:sp[2]]})
	}
	j.commit = map[string]map[int]int64{}
	for i, t := range w.topics {
		if w.pos[i] >= 0 {
			j.commit[t] = map[int]int64{w.part: w.pos[i] + 1}
		}
	}
	copy(w.sealed, w.pos)
	w.pending = 0
	w.fl.busy = true
	w.fl.sealedAt = time.Now()
	go func() { w.fl.done <- w.write(j) }()
}

// moved reports whether some input was read since the last seal.
func (w *worker) moved() bool {
	return !slices.Equal(w.pos, w.sealed)
}

// write makes one job durable, in the order that makes a crash between any
// two steps harmless: dead letters and the sink batch, then the changelog,
// then the offsets. A job whose offsets were not committed is read again
// after a restart; the changelog says which of those events each account
// already includes, and rows written twice collapse in the sink.
func (w *worker) write(j *job) error {
	p, o := w.p, &w.p.opts
	ctx := p.stop
	t0 := time.Now()

	// 1. Dead letters and the sink.
	if len(j.dlq) > 0 {
		if err := kafkaio.Produce(ctx, p.dlqStage, p.kafka, o.DLQ, w.part%p.layout.dlqPartitions, j.dlq, p.layout.dlqMax); err != nil {
			return w.flushErr("dead-letter topic", err)
		}
	}
	if j.batch.Len() > 0 {
		if err := p.writeSink(&j.batch); err != nil {
			return w.flushErr("sink", err)
		}
	}
	durable := time.Now()

	// 2. The changelog: the accounts' records, then the source positions
	// read (positions.go), which must not claim more than the accounts
	// hold.
	if len(j.recs) > 0 {
		if err := kafkaio.Produce(ctx, p.changelogStage, p.kafka, o.Changelog, w.part, j.recs, p.layout.stateMax); err != nil {
			return w.flushErr("state topic", err)
		}
		o.Metrics.ChangelogWrites.Add(float64(len(j.recs)))
	}
	if j.sources.Key != nil {
		if err := kafkaio.Produce(ctx, p.changelogStage, p.kafka, o.Changelog, w.part, []kafkaio.Record{j.sources}, p.layout.stateMax); err != nil {
			return w.flushErr("state topic", err)
		}
	}
	tChangelog := time.Now()

	// 3. The offsets. A refused commit (the generation ended) is harmless:
	// the changelog already says which events each account includes.
	if len(j.commit) > 0 {
		if err := w.commit.Commit(j.commit); err != nil {
			p.log.Warn("committing offsets failed; the next flush retries", "partition", w.part, "err", err)
		} else {
			for i, t := range w.topics {
				if c, ok := j.commit[t]; ok {
					w.lagPos.committed[i].Store(c[w.part])
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

// sinkBurst is how many sink writes may start back to back (see sinkLoop).
const sinkBurst = 4

// sinkReq asks the sink goroutine to write a batch.
type sinkReq struct {
	b    *sink.Batch
	done chan error
}

// writeSink writes b through the sink goroutine and waits until it is
// durable.
func (p *Pipeline) writeSink(b *sink.Batch) error {
	r := &sinkReq{b: b, done: make(chan error, 1)}
	select {
	case p.sinkReqs <- r:
	case <-p.stop.Done():
		return p.stop.Err()
	}
	return <-r.done
}

// sinkLoop is the only caller of Sink.Write, since sinks need not be safe
// for concurrent use. Batches of partitions that asked while a write was
// running go into one write: one fsync or one INSERT per table for all.
// Writes start at most once per CaughtUpFlush/2 on average over any
// sinkBurst writes in a row: caught-up partitions flush at their own
// moments, and ClickHouse wants few, large inserts; the burst lets the
// flushes of partitions that catch up together go without waiting.
func (p *Pipeline) sinkLoop(quit <-chan struct{}) {
	var merged sink.Batch
	gap := max(p.opts.CaughtUpFlush, 0) / 2
	var starts [sinkBurst]time.Time // of the last writes, a ring
	next := 0                       // the oldest
	for {
		var reqs []*sinkReq
		select {
		case r := <-p.sinkReqs:
			reqs = append(reqs, r)
		case <-quit:
			return
		}
		if wait := time.Until(starts[next].Add(sinkBurst * gap)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-quit: // shutting down: write what was asked at once
				t.Stop()
			}
		}
		starts[next], next = time.Now(), (next+1)%sinkBurst
	more:
		for {
			select {
			case r := <-p.sinkReqs:
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		b := reqs[0].b
		if len(reqs) > 1 {
			merged.Reset()
			var n [3]int
			for _, r := range reqs {
				n[0], n[1], n[2] = n[0]+len(r.b.Snapshots), n[1]+len(r.b.Changes), n[2]+len(r.b.Alerts)
			}
			merged.Snapshots = slices.Grow(merged.Snapshots, n[0])
			merged.Changes = slices.Grow(merged.Changes, n[1])
			merged.Alerts = slices.Grow(merged.Alerts, n[2])
			for _, r := range reqs {
				merged.Snapshots = append(merged.Snapshots, r.b.Snapshots...)
				merged.Changes = append(merged.Changes, r.b.Changes...)
				merged.Alerts = append(merged.Alerts, r.b.Alerts...)
			}
			b = &merged
		}
		err := p.opts.Sink.Write(p.stop, b)
		for _, r := range reqs {
			r.done <- err
		}
	}
}
