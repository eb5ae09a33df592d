package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/repartition"
)

// The backlog a repartitioned record carries (sourcePositions) is news
// from the moment the repartitioner fetched it. A repartition partition
// that got no record from a source partition's last fetches keeps the
// backlog of an earlier one: when a backfill ends, most partitions are
// told of the source's end only by chance. Without fresher news such a
// backlog would count until the source partition had been quiet for
// upstreamQuiet, a minute of judging at stream time after everything was
// read.
//
// The fresher news is the repartitioner's own commits: the lag goroutine,
// every LagInterval, asks Kafka for the end of every partition of the
// declared inputs and for the offsets the repartitioner's group committed
// on them. A source partition whose committed offset has reached its end
// has nothing left to read, so the backlog that its records read before
// the question said is history: the workers drop it (settle). A record
// read after the question started may carry news the answer does not
// know of, and keeps its backlog until the next answer.

// upstreamEnds is one answer: as of at (the wall clock when the question
// was asked, ns), the partitions of each declared input that the
// repartitioner has committed to their end.
type upstreamEnds struct {
	at     int64
	caught map[string][]bool // source topic -> by partition
}

// caughtUp reports whether partition of topic was read to its end.
func (u *upstreamEnds) caughtUp(topic string, partition int32) bool {
	parts := u.caught[topic]
	return int(partition) < len(parts) && parts[partition]
}

// sourceTopics are the declared inputs, which the repartitioner reads.
func (p *Pipeline) sourceTopics() []string {
	var ts []string
	for _, in := range p.opts.Config.Inputs {
		ts = append(ts, in.Topic)
	}
	return ts
}

// refreshUpstream asks Kafka how far the repartitioner has read the
// declared inputs and publishes the answer to the workers.
func (p *Pipeline) refreshUpstream(ctx context.Context) error {
	topics := p.sourceTopics()
	if len(topics) == 0 {
		return nil
	}
	at := p.opts.Now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return err
	}
	ends := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	commits := &kafka.OffsetFetchRequest{GroupID: p.opts.Group + repartition.GroupSuffix, Topics: map[string][]int{}}
	counts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue // not created yet: nothing to settle
		}
		counts[t.Name] = len(t.Partitions)
		for _, part := range t.Partitions {
			ends.Topics[t.Name] = append(ends.Topics[t.Name], kafka.FirstOffsetOf(part.ID), kafka.LastOffsetOf(part.ID))
			commits.Topics[t.Name] = append(commits.Topics[t.Name], part.ID)
		}
	}
	if len(counts) == 0 {
		return nil
	}
	offs, err := p.client.ListOffsets(ctx, ends)
	if err != nil {
		return err
	}
	committed, err := p.client.OffsetFetch(ctx, commits)
	if err == nil && committed.Error != nil {
		err = committed.Error
	}
	if err != nil {
		return err
	}
	type bounds struct{ first, last int64 }
	logs := map[string]map[int]bounds{}
	for t, parts := range offs.Topics {
		logs[t] = map[int]bounds{}
		for _, po := range parts {
			if po.Error != nil {
				err = errors.Join(err, po.Error)
				continue
			}
			logs[t][po.Partition] = bounds{po.FirstOffset, po.LastOffset}
		}
	}
	u := &upstreamEnds{at: at, caught: map[string][]bool{}}
	for t, parts := range committed.Topics {
		caught := make([]bool, counts[t])
		for _, c := range parts {
			b, ok := logs[t][c.Partition]
			if c.Error != nil || !ok || c.Partition >= len(caught) {
				continue
			}
			// An empty log (first == last) has nothing to read whatever
			// was committed; otherwise the commit must have reached the end.
			caught[c.Partition] = b.first == b.last || c.CommittedOffset >= b.last
		}
		u.caught[t] = caught
	}
	p.upstream.Store(u)
	return err
}

// settle drops the backlog of every source partition that u says was read
// to its end, unless its latest record was read after u's question.
func (s *sourcePositions) settle(u *upstreamEnds) {
	for i := 0; i < len(s.behind); {
		p := s.behind[i]
		if p.at >= u.at || !u.caughtUp(s.names[p.tp.topic], p.tp.partition) {
			i++
			continue
		}
		s.setBacklog(p, p.ti, 0) // removes p from behind
	}
}
