package repartition

import (
	"context"
	"sync"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// lane writes, for one generation, the records that every task sends to
// one partition of one repartition topic: one request at a time, carrying
// all that the tasks handed it meanwhile, so that many source partitions
// share few, large requests instead of each sending its own small ones.
// A task hands each lane its round's records and waits for every lane
// before its next round, and a lane writes what it was handed in order,
// so each source partition's events keep their order in the partition.
type lane struct {
	topic string
	part  int

	mu      sync.Mutex
	queue   []*laneReq
	stopped error // set once the lane stopped: later requests fail with it
	wake    chan struct{}
}

// laneReq is one task's records for a lane, and where the result goes.
type laneReq struct {
	recs []kafkaio.Record
	done chan error // buffered: the lane never waits for the task
}

func newLane(topic string, part int) *lane {
	return &lane{topic: topic, part: part, wake: make(chan struct{}, 1)}
}

// submit hands recs to the lane; the result comes on req.done once they
// are acknowledged (or failed). The lane reads recs until then.
func (l *lane) submit(req *laneReq) {
	l.mu.Lock()
	if l.stopped != nil {
		l.mu.Unlock()
		req.done <- l.stopped
		return
	}
	l.queue = append(l.queue, req)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run writes what is handed to the lane until ctx ends; then every request
// waiting, and every later one, fails with ctx's error.
func (l *lane) run(ctx context.Context, r *Repartitioner) {
	var recs []kafkaio.Record
	var reqs []*laneReq
	for {
		select {
		case <-l.wake:
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
		reqs, l.queue = l.queue, reqs[:0]
		l.mu.Unlock()
		if len(reqs) == 0 {
			continue
		}
		recs = recs[:0]
		for _, q := range reqs {
			recs = append(recs, q.recs...)
		}
		err := kafkaio.Produce(ctx, r.stage, r.kafka, l.topic, l.part, recs, kafkaio.DefaultMaxMessageBytes)
		for _, q := range reqs {
			q.done <- err
		}
		clear(recs)
		clear(reqs)
	}
}
