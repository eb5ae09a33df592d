package consumer

import (
	"math"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
)

// maxQueued bounds the messages a partition holds decoded but not applied
// while it waits for a starved input topic (see merger): about 600 bytes
// each.
const maxQueued = 50_000

// queued is a message read but not applied yet, decoded so that the
// partition can apply its topics in event-time order.
type queued struct {
	m   *kafka.Message // into its fetch response, which it keeps alive
	ev  event.Event
	err error
	at  int64 // occurred_at; messages that failed to decode sort first
}

// topicQueue is one topic's queued messages; head indexes the next one, so
// handing a message out moves nothing.
type topicQueue struct {
	items []queued
	head  int
}

func (q *topicQueue) len() int { return len(q.items) - q.head }

// compact moves the messages not handed out yet to the front once they
// are at most half of the array, and lets go of those handed out: a
// topic whose queue never empties (it is always ahead of another that
// runs dry) would otherwise grow its array, and keep every fetch response
// it read alive, for as long as the backlog lasts. Each message is moved
// at most once per message handed out before it.
func (q *topicQueue) compact() {
	if q.head == 0 || q.head < len(q.items)/2 {
		return
	}
	n := copy(q.items, q.items[q.head:])
	clear(q.items[n:])
	q.items, q.head = q.items[:n], 0
}

// merger merges the input topics of one partition number in event-time
// order, as Kafka Streams merges co-partitioned inputs by timestamp: each
// topic stays in log order, and among the topics' heads the oldest goes
// first. A topic with input still unread on the broker but nothing queued
// is starved: its next event may be older than every queued head, so the
// merge waits for it, up to wait; past that (until it brings something),
// or with max messages queued, or when forced, it goes on without it.
// Without this, a small topic read to its end first (account updates from
// today) would run an account's clock ahead of its own touches still
// queued in another topic.
//
// The merger also knows how far each input has been read, which tells the
// partition whether it has caught up.
type merger struct {
	wait time.Duration
	max  int
	now  func() time.Time

	queue  []topicQueue
	queued int
	// hwm is each topic's high-water mark as of its last fetch (-1 until
	// the first answers); read is the last offset queued.
	hwm, read []int64
	// upstream, when set, is each topic's input still unread before it:
	// for a repartition topic, what its source partitions still hold
	// (sourcePositions.upstream). A topic with nothing queued but some
	// upstream is starved too.
	upstream []int64
	// since is, per topic, when it was found starved; zero while it is not.
	// A topic is waited for once per starvation: until it brings something
	// or stops being starved, the merge does not wait for it again.
	since []time.Time
}

func newMerger(topics int, wait time.Duration, now func() time.Time) *merger {
	g := &merger{wait: wait, max: maxQueued, now: now,
		queue: make([]topicQueue, topics), hwm: make([]int64, topics), read: make([]int64, topics),
		since: make([]time.Time, topics)}
	for i := range g.hwm {
		g.hwm[i] = -1
	}
	return g
}

// add queues the messages of a fetch response that were not queued
// before (a fetch after a reconnect repeats some). decode fills each
// one's event and error, and its time when it decoded: whatever decode
// does not accept sorts first and goes out at once.
func (g *merger) add(f fetched, decode func(*queued)) {
	ti := f.topic
	// Fetches can answer out of order with the start-up announcement.
	g.hwm[ti] = max(g.hwm[ti], f.hwm)
	tq := &g.queue[ti]
	tq.compact()
	before := tq.len()
	for i := range f.msgs {
		m := &f.msgs[i]
		if m.Offset <= g.read[ti] {
			continue
		}
		g.read[ti] = m.Offset
		tq.items = append(tq.items, queued{m: m, at: math.MinInt64})
		decode(&tq.items[len(tq.items)-1])
		g.queued++
	}
	if tq.len() > before {
		g.since[ti] = time.Time{} // it brought something: its next starvation is waited for anew
	}
}

// next hands out the next message in event-time order and its topic, or
// nil when none may go now: nothing is queued, or a starved topic is still
// waited for (force does not wait). The message is valid until the next
// add.
func (g *merger) next(force bool) (int, *queued) {
	best, bestAt := -1, int64(0)
	for i := range g.queue {
		if q := &g.queue[i]; q.len() > 0 && (best < 0 || q.items[q.head].at < bestAt) {
			best, bestAt = i, q.items[q.head].at
		}
	}
	if best < 0 {
		return -1, nil
	}
	if !force && g.queued < g.max && g.waiting() {
		return -1, nil
	}
	tq := &g.queue[best]
	q := &tq.items[tq.head]
	tq.head++
	g.queued--
	if tq.head == len(tq.items) {
		// Reuse the array: entries are overwritten only as it refills.
		tq.items, tq.head = tq.items[:0], 0
	}
	return best, q
}

// drained reports whether every input was read to its high-water mark as
// of the last fetch and everything read was handed out.
func (g *merger) drained() bool {
	if g.queued > 0 {
		return false
	}
	for i := range g.hwm {
		if g.hwm[i] < 0 || g.read[i] < g.hwm[i]-1 {
			return false
		}
	}
	return true
}

// waiting reports whether the merge holds back for a starved input: one
// with nothing queued but more to read, found so less than the merge wait
// ago. As Kafka Streams' max.task.idle.ms, the wait is per starvation,
// not per message: once it has passed, the other inputs go on until the
// starved one brings something. Waiting anew for every message would let
// one through per wait while a topic stays starved, such as a repartition
// topic whose source partitions' last records to reach it still count a
// backlog that went to other partitions.
func (g *merger) waiting() bool {
	var now time.Time
	wait := false
	for i := range g.queue {
		if !g.starved(i) {
			g.since[i] = time.Time{}
			continue
		}
		if now.IsZero() {
			now = g.now()
		}
		if g.since[i].IsZero() {
			g.since[i] = now
		}
		if now.Sub(g.since[i]) < g.wait {
			wait = true
		}
	}
	return wait
}

// starved reports whether input i has nothing queued but more to read.
func (g *merger) starved(i int) bool {
	return g.queue[i].len() == 0 && (g.hwm[i] < 0 || g.read[i] < g.hwm[i]-1 || g.upstream != nil && g.upstream[i] > 0)
}
