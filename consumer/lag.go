package consumer

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// The consumer lag gauges are refreshed by one goroutine per member, every
// Options.LagInterval, from the partition ends Kafka reports (ListOffsets)
// and the positions the workers publish:
//
//   - pyramid_consumer_lag: end − committed offset, the input a restart
//     would read again;
//   - pyramid_consumer_fetch_lag: end − the offset the worker has fetched
//     to, the input not read yet.
//
// Neither waits for a flush. While the sink is down nothing is committed
// and the first climbs from the first refresh on, so the lag alerts fire
// during an outage; the fetch lag stays small until the back-pressure
// limit stops the reading. A large lag with a small fetch lag is a slow
// sink; both large is slow processing or too few members.

// positions are one worker's offsets per input topic, indexed like
// Options.Topics, for the lag goroutine to read: the next offset to read
// after a restart (committed) and after what was fetched (fetched); -1 is
// unknown (nothing committed yet: the partition's first offset). Topics
// whose partition the worker does not own are left out.
type positions struct {
	part      int
	assigned  []bool
	committed []atomic.Int64
	fetched   []atomic.Int64
}

// lagBoard is the member's workers' positions by partition number.
type lagBoard struct {
	mu    sync.Mutex
	parts map[int]*positions
	kick  chan struct{} // a worker started: refresh without waiting
	ask   chan struct{} // a worker waits on news from upstream (askUpstream)
}

func newLagBoard() *lagBoard {
	return &lagBoard{parts: map[int]*positions{}, kick: make(chan struct{}, 1), ask: make(chan struct{}, 1)}
}

// askUpstream asks the lag goroutine for news of the repartitioner
// (upstream.go) sooner than the next LagInterval.
func (b *lagBoard) askUpstream() {
	select {
	case b.ask <- struct{}{}:
	default:
	}
}

// register publishes the positions of a worker starting at starts (the
// committed offsets, or notAssigned, or a negative start for none).
func (b *lagBoard) register(part int, starts []int64) *positions {
	ps := &positions{part: part, assigned: make([]bool, len(starts)),
		committed: make([]atomic.Int64, len(starts)), fetched: make([]atomic.Int64, len(starts))}
	for ti, s := range starts {
		ps.assigned[ti] = s != notAssigned
		ps.committed[ti].Store(max(s, -1))
		ps.fetched[ti].Store(max(s, -1))
	}
	b.mu.Lock()
	b.parts[part] = ps
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return ps
}

// unregister takes a worker's positions and its series off the board.
func (p *Pipeline) unregisterLag(ps *positions) {
	b := p.lag
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.parts[ps.part] != ps {
		return
	}
	delete(b.parts, ps.part)
	part := strconv.Itoa(ps.part)
	for _, t := range p.opts.Topics {
		p.opts.Metrics.ConsumerLag.DeleteLabelValues(t, part)
		p.opts.Metrics.FetchLag.DeleteLabelValues(t, part)
	}
}

// lagLoop refreshes the lag gauges every LagInterval, and when a worker
// starts, until ctx ends; with declared inputs, it also learns how far
// the repartitioner has read them (upstream.go), and again when a worker
// asks, at most every upstreamAskEvery.
func (p *Pipeline) lagLoop(ctx context.Context) {
	t := time.NewTicker(p.opts.LagInterval)
	defer t.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	var lastUp time.Time // the last question upstream
	armed := false       // soon is set for an answer asked for
	failures, upFailures := 0, 0
	for {
		gauges := true
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.lag.kick:
		case <-p.lag.ask:
			gauges = false
			if wait := upstreamAskEvery - time.Since(lastUp); wait > 0 {
				if !armed {
					soon.Reset(wait)
					armed = true
				}
				continue
			}
		case <-soon.C:
			gauges, armed = false, false
		}
		if gauges {
			if err := p.refreshLag(ctx); err != nil && ctx.Err() == nil {
				// The gauges keep their last values; say so now and then.
				if failures++; failures%10 == 1 {
					p.log.Warn("cannot read the input partitions' end offsets; the lag gauges are not refreshed", "err", err)
				}
			} else {
				failures = 0
			}
		}
		lastUp = time.Now()
		if err := p.refreshUpstream(ctx); err != nil && ctx.Err() == nil {
			// A backlog left by the repartitioner's last records then
			// ends after upstreamQuiet instead.
			if upFailures++; upFailures%10 == 1 {
				p.log.Warn("cannot read how far the repartitioner has read the declared inputs", "err", err)
			}
		} else {
			upFailures = 0
		}
	}
}

// refreshLag asks Kafka for the end of every input partition the workers
// own (and the start of those without a committed offset) and sets the
// gauges of the workers still registered.
func (p *Pipeline) refreshLag(ctx context.Context) error {
	b := p.lag
	b.mu.Lock()
	owned := make([]*positions, 0, len(b.parts))
	for _, ps := range b.parts {
		owned = append(owned, ps)
	}
	b.mu.Unlock()
	if len(owned) == 0 {
		return nil
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, ps := range owned {
		for ti, t := range p.opts.Topics {
			if !ps.assigned[ti] {
				continue
			}
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(ps.part))
			if ps.committed[ti].Load() < 0 || ps.fetched[ti].Load() < 0 {
				req.Topics[t] = append(req.Topics[t], kafka.FirstOffsetOf(ps.part))
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := p.client.ListOffsets(ctx, req)
	if err != nil {
		return err
	}
	type tp struct {
		topic string
		part  int
	}
	offs := map[tp]kafka.PartitionOffsets{}
	for t, parts := range resp.Topics {
		for _, po := range parts {
			if po.Error != nil {
				err = po.Error
				continue
			}
			offs[tp{t, po.Partition}] = po
		}
	}
	m := p.opts.Metrics
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ps := range owned {
		if b.parts[ps.part] != ps {
			continue // the worker stopped meanwhile
		}
		part := strconv.Itoa(ps.part)
		for ti, t := range p.opts.Topics {
			po, ok := offs[tp{t, ps.part}]
			if !ps.assigned[ti] || !ok {
				continue
			}
			at := func(pos int64) float64 {
				if pos < 0 {
					pos = po.FirstOffset
				}
				return float64(max(0, po.LastOffset-pos))
			}
			m.ConsumerLag.WithLabelValues(t, part).Set(at(ps.committed[ti].Load()))
			m.FetchLag.WithLabelValues(t, part).Set(at(ps.fetched[ti].Load()))
		}
	}
	return err
}
