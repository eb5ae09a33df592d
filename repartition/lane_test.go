package repartition

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// laneReqOf is a request of records named name/i at the times ats.
func laneReqOf(name string, ats ...int64) *laneReq {
	q := &laneReq{}
	for i, at := range ats {
		q.recs = append(q.recs, timed{at: at, Record: kafkaio.Record{Value: []byte(fmt.Sprintf("%s%d", name, i))}})
	}
	return q
}

func values(recs []kafkaio.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, string(r.Value))
	}
	return strings.Join(s, " ")
}

// A lane writes the records handed to it oldest first, each request's in
// its own order (even when its times go back), up to the watermark; the
// rest waits for the next write.
func TestMergeUpTo(t *testing.T) {
	a := laneReqOf("a", 10, 20, 30, 40)
	b := laneReqOf("b", 15, 5, 35) // one source partition's order is kept: b1 after b0
	c := laneReqOf("c", 50)
	reqs := []*laneReq{a, b, c}
	recs, sent := mergeUpTo(nil, nil, reqs, 30)
	if got, want := values(recs), "a0 b0 b1 a1 a2"; got != want {
		t.Errorf("up to 30: %s, want %s", got, want)
	}
	if len(sent) != 2 || sent[0] != a || sent[1] != b {
		t.Errorf("sent %d requests, want a and b", len(sent))
	}
	recs, sent = mergeUpTo(recs[:0], sent[:0], reqs, math.MaxInt64)
	if got, want := values(recs), "b2 a3 c0"; got != want {
		t.Errorf("the rest: %s, want %s", got, want)
	}
	if len(sent) != 3 {
		t.Errorf("sent %d requests, want 3", len(sent))
	}
	if recs, _ := mergeUpTo(recs[:0], nil, reqs, math.MaxInt64); len(recs) != 0 {
		t.Errorf("written twice: %s", values(recs))
	}
}

// The heap merge gives exactly what the plain k-way merge it replaced
// gives (the least next time first, ties to the request handed over
// first), for many requests with many equal times, at any watermark.
func TestMergeUpToMatchesLinearMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	for round := range 200 {
		n := 1 + rng.IntN(40)
		var a, b []*laneReq
		for i := range n {
			ats := make([]int64, rng.IntN(30))
			for j := range ats {
				ats[j] = rng.Int64N(20) // many ties; a request's times go back too
			}
			a = append(a, laneReqOf(fmt.Sprint(i, "/"), ats...))
			b = append(b, laneReqOf(fmt.Sprint(i, "/"), ats...))
		}
		for _, w := range []int64{-1, 5, 12, math.MaxInt64} {
			got, gotSent := mergeUpTo(nil, nil, a, w)
			want, wantSent := linearMerge(b, w)
			if values(got) != values(want) {
				t.Fatalf("round %d, watermark %d:\n got %s\nwant %s", round, w, values(got), values(want))
			}
			if len(gotSent) != len(wantSent) {
				t.Fatalf("round %d, watermark %d: %d requests gave records, want %d", round, w, len(gotSent), len(wantSent))
			}
			for i := range gotSent {
				if gotSent[i].recs[0].Value == nil || string(gotSent[i].recs[0].Value) != string(wantSent[i].recs[0].Value) {
					t.Fatalf("round %d, watermark %d: request %d of those that gave differs", round, w, i)
				}
			}
		}
	}
}

// linearMerge is the merge by a scan of every request per record.
func linearMerge(reqs []*laneReq, w int64) (recs []kafkaio.Record, sent []*laneReq) {
	gave := make([]bool, len(reqs))
	for {
		best := -1
		for i, q := range reqs {
			if q.next < len(q.recs) && (best < 0 || q.recs[q.next].at < reqs[best].recs[reqs[best].next].at) {
				best = i
			}
		}
		if best < 0 || reqs[best].recs[reqs[best].next].at > w {
			break
		}
		q := reqs[best]
		recs = append(recs, q.recs[q.next].Record)
		q.next++
		gave[best] = true
	}
	for i, q := range reqs {
		if gave[i] {
			sent = append(sent, q)
		}
	}
	return recs, sent
}

// Source partitions read at different speeds (topics of 5, 3, 7 and 1
// partitions, read in small rounds) still fill each repartition partition
// in event-time order, so that the pipeline, which applies a topic in log
// order, sees each account's events in time order although its orders
// come from many source partitions. Nothing is lost on the way.
func TestRepartitionInEventTimeOrder(t *testing.T) {
	addrs, cfg, counts, pos := mixedSources(t, 200, 6000, 3)
	want, _ := expected(t, cfg, pos, 4)

	opts := testOptions(addrs, cfg)
	opts.FetchMaxBytes = 16 << 10
	opts.OrderWait = time.Minute // no write before its time, however slow the machine
	r := start(t, opts)
	waitCommitted(t, addrs, "pyramid"+GroupSuffix, ends(pos, counts), 60*time.Second)
	r.Stop(t)

	applied, _ := downstream(t, addrs, 4)
	checkExactlyOnce(t, applied, want)
	n := 0
	for _, typ := range []string{"account", "activity", "opportunity", "order"} {
		last := map[int]time.Time{}
		for _, m := range testenv.ReadTopic(t, addrs, TopicPrefix+typ, 4) {
			var ev struct {
				At time.Time `json:"occurred_at"`
			}
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			if prev := last[m.Partition]; ev.At.Before(prev) {
				t.Errorf("%s/%d/%d: occurred_at %s after %s", m.Topic, m.Partition, m.Offset, ev.At.Format(time.RFC3339), prev.Format(time.RFC3339))
				if n++; n > 5 {
					t.FailNow()
				}
			}
			last[m.Partition] = ev.At
		}
	}
}
