package repartition

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// lane writes, for one generation, the records that every task sends to
// one partition of one repartition topic: one request at a time, carrying
// what the tasks handed it meanwhile, so that many source partitions share
// few, large requests instead of each sending its own small ones.
//
// It writes them in event-time order. A CDC topic is keyed by primary key,
// so one account's orders lie in many source partitions, and the pipeline
// applies a repartition topic in log order: written as each source
// partition was read, an account would see its orders of February before
// those of January from another source partition, and a history would
// leave other tier changes and alerts than the same history read natively.
// So a lane merges what the tasks handed it by occurred_at, each task's
// records in their order (the consumer's copy check relies on a source
// partition's order), and writes a record only once no task of its topic
// can still hand it an older one: its time is at most the watermark, the
// lowest time up to which every task that has more to read has handed its
// records (task.through; a task read to its end does not count). The task
// with the lowest mark has all its records written, so it always goes on,
// and with it the watermark. A task that cannot read (its partition has no
// leader) would hold the others: past Options.OrderWait, a lane writes what
// it holds.
// Order is per instance: the tasks of other members are not seen.
type lane struct {
	topic string
	part  int
	tasks []*task // of the generation, writing to topic; set before run

	mu      sync.Mutex
	queue   []*laneReq // handed over, not all written, in the order handed
	stopped error      // set once the lane stopped: later requests fail with it
	wake    chan struct{}
}

// holdPoll is how often a lane holding records looks at the watermark
// again.
const holdPoll = 5 * time.Millisecond

// timed is a record to write, its event's occurred_at, and where it
// comes from (its source record's offset, and which of its events it is).
type timed struct {
	at int64
	kafkaio.Record
	src   int64
	index int32
}

// laneReq is one task's records for a lane, and where the result goes.
type laneReq struct {
	recs []timed
	next int        // records written so far; the lane's
	done chan error // buffered: the lane never waits for the task
}

func newLane(topic string, part int) *lane {
	return &lane{topic: topic, part: part, wake: make(chan struct{}, 1)}
}

// submit hands req's records to the lane; the result comes on req.done
// once they are all acknowledged (or failed). The lane reads them until
// then.
func (l *lane) submit(req *laneReq) {
	l.mu.Lock()
	if l.stopped != nil {
		l.mu.Unlock()
		req.done <- l.stopped
		return
	}
	req.next = 0
	l.queue = append(l.queue, req)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// watermark is the time up to which every task of the lane's topic that
// has more to read has handed over its records.
func (l *lane) watermark() int64 {
	w := int64(math.MaxInt64)
	for _, t := range l.tasks {
		if !t.readToEnd() {
			w = min(w, t.through.Load())
		}
	}
	return w
}

// run writes what is handed to the lane until ctx ends; then every request
// waiting, and every later one, fails with ctx's error.
func (l *lane) run(ctx context.Context, r *Repartitioner) {
	var recs []kafkaio.Record
	var reqs, sent []*laneReq
	var heldSince time.Time // when the lane last wrote, or started holding
	// poll runs only while the lane holds records: an idle lane sleeps.
	poll := time.NewTimer(holdPoll)
	poll.Stop()
	defer poll.Stop()
	for {
		select {
		case <-l.wake:
		case <-poll.C:
		case <-ctx.Done():
			l.mu.Lock()
			l.stopped = ctx.Err()
			reqs, l.queue = l.queue, nil
			l.mu.Unlock()
			for _, q := range reqs {
				q.done <- ctx.Err()
			}
			return
		}
		l.mu.Lock()
		reqs = append(reqs[:0], l.queue...)
		l.mu.Unlock()
		if len(reqs) == 0 {
			continue
		}
		if heldSince.IsZero() {
			heldSince = time.Now()
		}
		w := l.watermark()
		if time.Since(heldSince) > r.opts.OrderWait {
			w = math.MaxInt64
		}
		recs, sent = mergeUpTo(recs[:0], sent[:0], reqs, w)
		if len(recs) > 0 {
			err := kafkaio.Produce(ctx, r.stage, r.kafka, l.topic, l.part, recs, kafkaio.DefaultMaxMessageBytes)
			clear(recs)
			heldSince = time.Time{}
			l.mu.Lock()
			for _, q := range sent {
				if err != nil || q.next == len(q.recs) {
					// Written, or failed: the task gets its answer and
					// takes its records back; a failed one's rest is not
					// written.
					q.done <- err
					l.remove(q)
				}
			}
			l.mu.Unlock()
			clear(sent)
		}
		clear(reqs)
		l.mu.Lock()
		holding := len(l.queue) > 0
		l.mu.Unlock()
		if holding {
			poll.Reset(holdPoll)
		}
	}
}

// remove takes q out of the queue; l.mu is held.
func (l *lane) remove(q *laneReq) {
	if i := slices.Index(l.queue, q); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	}
}

// mergeUpTo appends to recs, oldest first, the records of reqs not written
// yet whose time is at most w, each request's in its order (a k-way merge
// of the requests' next records; ties go to the request handed over
// first), moving each request's next past them; sent gets the requests
// that gave records. The requests whose next record is due wait in a
// binary heap ordered by that record's time, then by their place in reqs:
// a lane may hold a request of every task of its topic.
func mergeUpTo(recs []kafkaio.Record, sent []*laneReq, reqs []*laneReq, w int64) ([]kafkaio.Record, []*laneReq) {
	due := func(i int) bool {
		q := reqs[i]
		return q.next < len(q.recs) && q.recs[q.next].at <= w
	}
	h := mergeHeap{reqs: reqs, idx: make([]int, 0, len(reqs))}
	for i := range reqs {
		if due(i) {
			h.idx = append(h.idx, i)
		}
	}
	for i := len(h.idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	gave := make([]bool, len(reqs))
	for len(h.idx) > 0 {
		i := h.idx[0]
		q := reqs[i]
		recs = append(recs, q.recs[q.next].Record)
		q.next++
		gave[i] = true
		if !due(i) {
			last := len(h.idx) - 1
			h.idx[0] = h.idx[last]
			h.idx = h.idx[:last]
		}
		h.down(0)
	}
	for i, q := range reqs {
		if gave[i] {
			sent = append(sent, q)
		}
	}
	return recs, sent
}

// mergeHeap is a min-heap of indexes into reqs, by the time of the
// request's next record, then by index.
type mergeHeap struct {
	reqs []*laneReq
	idx  []int
}

func (h *mergeHeap) less(a, b int) bool {
	qa, qb := h.reqs[a], h.reqs[b]
	ta, tb := qa.recs[qa.next].at, qb.recs[qb.next].at
	return ta < tb || ta == tb && a < b
}

func (h *mergeHeap) down(i int) {
	n := len(h.idx)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.less(h.idx[r], h.idx[l]) {
			c = r
		}
		if !h.less(h.idx[c], h.idx[i]) {
			return
		}
		h.idx[i], h.idx[c] = h.idx[c], h.idx[i]
		i = c
	}
}
