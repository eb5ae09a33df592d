package consumer

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fetchOf is a fetch response of topic ti: one message per event time in
// ats, from offset first on ("x" for a message that does not decode).
func fetchOf(ti int, first int64, hwm int64, ats ...string) fetched {
	f := fetched{topic: ti, hwm: hwm}
	for i, at := range ats {
		f.msgs = append(f.msgs, kafka.Message{Offset: first + int64(i), Value: []byte(at)})
	}
	return f
}

// decodeAt reads a test message's event time from its value.
func decodeAt(q *queued) {
	at, err := strconv.ParseInt(string(q.m.Value), 10, 64)
	if err != nil {
		q.err = errors.New("does not decode")
		return
	}
	q.at = at
}

// drainAll hands out everything next lets go, as "topic:value".
func drainAll(g *merger, force bool) []string {
	var out []string
	for {
		ti, q := g.next(force)
		if q == nil {
			return out
		}
		out = append(out, fmt.Sprintf("%d:%s", ti, q.m.Value))
	}
}

// testMerger starts every topic at offset 0 with a clock the test moves.
func testMerger(topics int) (*merger, *time.Time) {
	now := time.Unix(1000, 0)
	g := newMerger(topics, 200*time.Millisecond, func() time.Time { return now })
	for i := range g.read {
		g.read[i] = -1
	}
	return g, &now
}

// Each topic stays in log order; among the heads the oldest goes first; a
// message that does not decode goes at once.
func TestMergeOrdersByEventTime(t *testing.T) {
	g, _ := testMerger(3)
	g.add(fetchOf(0, 0, 3, "10", "40", "20"), decodeAt)
	g.add(fetchOf(1, 0, 2, "30", "x"), decodeAt)
	g.add(fetchOf(2, 0, 0), decodeAt) // an empty topic
	got := fmt.Sprint(drainAll(g, false))
	if want := "[0:10 1:30 1:x 0:40 0:20]"; got != want {
		t.Errorf("merged %s, want %s", got, want)
	}
	if !g.drained() {
		t.Error("not drained after every input was read to its end and handed out")
	}
}

// A topic with more to read but nothing queued holds the merge back for
// the merge wait, since its next event may be older than every head.
func TestMergeWaitsForAStarvedTopic(t *testing.T) {
	g, now := testMerger(2)
	g.add(fetchOf(0, 0, 2, "50", "60"), decodeAt)
	g.add(fetchOf(1, 0, 5), decodeAt) // five messages on the broker, none fetched
	if got := drainAll(g, false); len(got) != 0 {
		t.Fatalf("handed out %v while topic 1 was starved", got)
	}
	if g.drained() {
		t.Error("drained with topic 1 unread")
	}
	*now = now.Add(100 * time.Millisecond)
	if got := drainAll(g, false); len(got) != 0 {
		t.Fatalf("handed out %v before the merge wait passed", got)
	}
	// Topic 1's fetch arrives in time: its older event goes first.
	g.add(fetchOf(1, 0, 5, "55"), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:50 1:55]"; got != want {
		t.Fatalf("merged %s, want %s (then wait for topic 1 again)", got, want)
	}
	*now = now.Add(199 * time.Millisecond)
	if got := drainAll(g, false); len(got) != 0 {
		t.Fatalf("handed out %v before the wait, counted from the new starvation, passed", got)
	}
	*now = now.Add(time.Millisecond)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:60]"; got != want {
		t.Errorf("after the wait: %s, want %s", got, want)
	}
}

// A repartition topic read to its end whose source partitions still hold
// records (upstream) is starved too: the merge waits for it as for a
// topic with records unread on the broker.
func TestMergeWaitsForUpstream(t *testing.T) {
	g, now := testMerger(2)
	g.upstream = make([]int64, 2)
	g.add(fetchOf(0, 0, 1, "50"), decodeAt)
	g.add(fetchOf(1, 0, 0), decodeAt) // empty on the broker
	g.upstream[1] = 300
	if got := drainAll(g, false); len(got) != 0 {
		t.Fatalf("handed out %v while topic 1's source had records unread", got)
	}
	g.add(fetchOf(1, 0, 1, "40"), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, false)), "[1:40]"; got != want {
		t.Fatalf("merged %s, want %s", got, want)
	}
	g.upstream[1] = 0 // read to its end at the source too
	*now = now.Add(time.Millisecond)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:50]"; got != want {
		t.Errorf("with nothing left upstream: %s, want %s", got, want)
	}
}

// A topic that stays starved (here: its source partitions' backlog never
// reaches it) holds the merge back once, for the merge wait: then the
// other topics go on, message after message and fetch after fetch, until
// it brings something; running dry again, it is waited for anew.
func TestMergeWaitsOncePerStarvation(t *testing.T) {
	g, now := testMerger(2)
	g.upstream = []int64{0, 500}
	g.add(fetchOf(1, 0, 0), decodeAt) // read to its end, but its sources hold more
	g.add(fetchOf(0, 0, 2, "10", "20"), decodeAt)
	if got := drainAll(g, false); len(got) != 0 {
		t.Fatalf("handed out %v before the merge wait passed", got)
	}
	*now = now.Add(200 * time.Millisecond)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:10 0:20]"; got != want {
		t.Fatalf("after the wait: %s, want %s", got, want)
	}
	*now = now.Add(time.Millisecond)
	g.add(fetchOf(0, 2, 4, "30", "40"), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:30 0:40]"; got != want {
		t.Fatalf("a later fetch of the other topic, topic 1 still starved: %s, want %s", got, want)
	}
	g.add(fetchOf(1, 0, 1, "35"), decodeAt)
	g.add(fetchOf(0, 4, 5, "50"), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, false)), "[1:35]"; got != want {
		t.Fatalf("topic 1 brought an event and ran dry again: %s, want %s (then wait for it anew)", got, want)
	}
	*now = now.Add(200 * time.Millisecond)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:50]"; got != want {
		t.Errorf("after the second wait: %s, want %s", got, want)
	}
}

// Force and a full queue do not wait for a starved topic.
func TestMergeGoesOnWhenForcedOrFull(t *testing.T) {
	g, _ := testMerger(2)
	g.add(fetchOf(0, 0, 3, "1", "2", "3"), decodeAt)
	g.add(fetchOf(1, 0, 9), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, true)), "[0:1 0:2 0:3]"; got != want {
		t.Errorf("forced: %s, want %s", got, want)
	}
	g.max = 2
	g.add(fetchOf(0, 3, 6, "4", "5", "6"), decodeAt)
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:4 0:5]"; got != want {
		t.Errorf("with the queue over its bound: %s, want %s (then wait again)", got, want)
	}
}

// A fetch repeated after a reconnect queues nothing twice, and a late
// answer does not move the high-water mark back.
func TestMergeSkipsRefetchedMessages(t *testing.T) {
	g, _ := testMerger(1)
	g.add(fetchOf(0, 0, 3, "1", "2"), decodeAt)
	g.add(fetchOf(0, 1, 2, "2", "3"), decodeAt)
	if g.hwm[0] != 3 {
		t.Errorf("hwm %d after an older answer, want 3", g.hwm[0])
	}
	if got, want := fmt.Sprint(drainAll(g, false)), "[0:1 0:2 0:3]"; got != want {
		t.Errorf("merged %s, want %s", got, want)
	}
	if g.queued != 0 || !g.drained() {
		t.Errorf("%d still queued, drained %v", g.queued, g.drained())
	}
}

// A topic whose queue never empties, because the merge keeps waiting on
// another that runs dry, holds an array the size of what is queued, not
// of everything it ever read, and no longer refers to the messages it
// handed out (they keep their fetch responses alive).
func TestMergeQueueStaysBounded(t *testing.T) {
	g, _ := testMerger(2)
	const rounds, per = 1000, 100
	times := func(from int) []string {
		ats := make([]string, per)
		for i := range ats {
			ats[i] = strconv.Itoa(from + i)
		}
		return ats
	}
	for r := range rounds {
		// Topic 0 runs half a response ahead of topic 1: the merge hands
		// out all of topic 1's, then waits for more of it with half of
		// topic 0's response still queued.
		off := int64(r * per)
		g.add(fetchOf(0, off, off+per+1, times(r*per+per/2)...), decodeAt)
		g.add(fetchOf(1, off, off+per+1, times(r*per)...), decodeAt)
		drainAll(g, false)
		if got := g.queue[0].len(); got != per/2 {
			t.Fatalf("round %d: topic 0 has %d messages queued, want %d", r, got, per/2)
		}
	}
	q := &g.queue[0]
	if c := cap(q.items); c > 4*per {
		t.Fatalf("topic 0's queue array has room for %d messages with %d queued: it grows with everything read", c, q.len())
	}
	for _, it := range q.items[len(q.items):cap(q.items)] {
		if it.m != nil {
			t.Fatal("a message handed out is still referenced by the queue")
		}
	}
}
