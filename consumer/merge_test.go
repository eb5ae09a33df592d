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
