package consumer

import (
	"context"
	"errors"
	"slices"
	"strings"
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

// A worker that has applied everything it fetched but still backfills on
// a source backlog alone asks for an answer at once (lagBoard.askUpstream)
// rather than at the next LagInterval: the end of a backfill is then a
// question away, not up to a LagInterval late. Questions go at most every
// upstreamAskEvery, however many workers ask.
const upstreamAskEvery = 250 * time.Millisecond

// upstreamEnds is one answer: as of at (the wall clock when the question
// was asked, ns), the partitions of each declared input that the
// repartitioner has committed to their end, and the ends of the
// repartition topics read after the commits. A worker settles only once
// it has applied its repartition partitions to those ends: what the
// repartitioner wrote before committing may still be on its way to the
// worker, and its backlog would otherwise end the backfill before the
// events it holds are applied.
type upstreamEnds struct {
	at      int64
	caught  map[string][]bool  // source topic -> by partition
	written map[string][]int64 // repartition topic -> end by partition
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
	var repart []string
	for _, t := range p.opts.Topics {
		if strings.HasPrefix(t, repartition.TopicPrefix) {
			repart = append(repart, t)
		}
	}
	at := p.opts.Now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: append(slices.Clone(topics), repart...)})
	if err != nil {
		return err
	}
	ends := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	written := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	commits := &kafka.OffsetFetchRequest{GroupID: p.opts.Group + repartition.GroupSuffix, Topics: map[string][]int{}}
	counts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue // not created yet: nothing to settle
		}
		counts[t.Name] = len(t.Partitions)
		for _, part := range t.Partitions {
			if slices.Contains(repart, t.Name) {
				written.Topics[t.Name] = append(written.Topics[t.Name], kafka.LastOffsetOf(part.ID))
				continue
			}
			ends.Topics[t.Name] = append(ends.Topics[t.Name], kafka.FirstOffsetOf(part.ID), kafka.LastOffsetOf(part.ID))
			commits.Topics[t.Name] = append(commits.Topics[t.Name], part.ID)
		}
	}
	if len(ends.Topics) == 0 || len(written.Topics) == 0 {
		return nil
	}
	offs, err := p.client.ListOffsets(ctx, ends)
	if err != nil {
		return err
	}
	committed, err := p.client.OffsetFetch(ctx, commits)
	if err == nil && committed.Error != nil && !errors.Is(committed.Error, kafka.GroupIdNotFound) {
		err = committed.Error // a group that never committed has nothing committed
	}
	if err != nil {
		return err
	}
	// After the commits: every record they cover is below these ends.
	wrote, err := p.client.ListOffsets(ctx, written)
	if err != nil {
		return err
	}
	u := &upstreamEnds{at: at, caught: map[string][]bool{}, written: map[string][]int64{}}
	for t, parts := range wrote.Topics {
		ends := make([]int64, counts[t])
		for i := range ends {
			ends[i] = -1 // unknown: no settling on it
		}
		for _, po := range parts {
			if po.Error != nil || po.Partition >= len(ends) {
				err = errors.Join(err, po.Error)
				continue
			}
			ends[po.Partition] = po.LastOffset
		}
		u.written[t] = ends
	}
	done := map[string]map[int]int64{}
	for t, parts := range committed.Topics {
		done[t] = map[int]int64{}
		for _, c := range parts {
			if c.Error == nil {
				done[t][c.Partition] = c.CommittedOffset
			}
		}
	}
	for t, parts := range offs.Topics {
		caught := make([]bool, counts[t])
		for _, po := range parts {
			if po.Error != nil || po.Partition >= len(caught) {
				err = errors.Join(err, po.Error)
				continue
			}
			c, ok := done[t][po.Partition]
			if !ok {
				c = -1 // nothing committed
			}
			caught[po.Partition] = readToEnd(po.FirstOffset, po.LastOffset, c)
		}
		u.caught[t] = caught
	}
	p.upstream.Store(u)
	return err
}

// readToEnd reports whether a partition whose log holds [first, last) was
// read to its end by a group that committed committed (-1: nothing): an
// empty log always was; otherwise the commit must be at the end (a commit
// beyond it means the topic was made anew, and is read again).
func readToEnd(first, last, committed int64) bool {
	return first >= last || committed == last
}

// settled reports whether the worker has applied each of its repartition
// partitions up to where u found it after the repartitioner's commits.
func (w *worker) settled(u *upstreamEnds) bool {
	for ti, t := range w.topics {
		ends, ok := u.written[t]
		if !ok || !w.lagPos.assigned[ti] {
			continue
		}
		if w.part >= len(ends) || ends[w.part] < 0 || w.pos[ti]+1 < ends[w.part] {
			return false
		}
	}
	return true
}

// settle drops the backlog of every source partition that u says was read
// to its end, unless its latest record was read after u's question.
func (s *sourcePositions) settle(u *upstreamEnds) {
	s.drop(func(p *srcPos) bool { return p.at < u.at && u.caughtUp(s.names[p.tp.topic], p.tp.partition) })
}
