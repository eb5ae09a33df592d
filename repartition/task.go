package repartition

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/inputs"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// task repartitions one source partition for one generation. Three stages
// run at once, joined by small channels so that memory stays bounded: the
// fetcher reads whole fetch responses; the mapping goroutine maps each
// into a batch of records per repartition partition; the task's own
// goroutine writes batches in produce rounds, one round at a time, and
// records the offset after the round's last source record as acknowledged
// (the committer commits it). A round takes every batch mapped while the
// previous one was being written, so that a busy partition writes large
// requests. Rounds never overlap: a round's records are appended before
// the next round's, which keeps each source partition's events in order
// in every repartition partition.
type task struct {
	r        *Repartitioner
	topic    string
	part     int
	start    int64 // the assigned offset: committed, or kafka.FirstOffset
	outTopic string
	met      *topicMetrics
	mapper   *inputs.Mapper // the mapping goroutine's
	evs      []inputs.Event // the mapping goroutine's scratch

	// acked is the offset after the last source record whose events (and
	// dead letters) Kafka acknowledged; committed the last offset
	// committed. -1: none.
	acked, committed atomic.Int64
	hwm              atomic.Int64 // the partition's high-water mark, -1 until known
	from             atomic.Int64 // the offset the first fetch started from, -1 until known
	// through is the latest occurred_at the task has handed the lanes
	// (see lane); the lowest time until its first round.
	through atomic.Int64

	// The last batch filled, measured: arena bytes per KiB of its records
	// (keys, values and 64 bytes each), and events per 1024 records. The
	// next batch's memory is reserved from them (reserve).
	arenaPerKiB, eventsPerK int
	merged                  [][]timed // a round's records per partition, when it has several batches
	dlq                     []kafkaio.Record
	errs                    []error
	lanes                   []*lane   // of outTopic, by partition: the generation's
	reqs                    []laneReq // the requests handed to them, by partition
}

// batch is one fetch response mapped: records to write per repartition
// partition, and dead letters. Batches are reused, with their arrays.
type batch struct {
	next    int64 // offset after the last source record in the batch
	parts   [][]timed
	last    int64 // the latest occurred_at of its events
	dlq     []kafkaio.Record
	arena   []byte         // keys and header values
	headers []kafka.Header // the records' headers, one each
	records int            // source records
	events  int
	reasons map[string]int // dead letters by reason
}

func newTask(r *Repartitioner, topic string, part int, start int64, lanes map[string][]*lane) *task {
	m, _ := inputs.New(r.opts.Config) // compiled once already in New: cannot fail
	typ, _ := m.Type(topic)
	t := &task{r: r, topic: topic, part: part, start: start, outTopic: Topic(typ), met: r.perTopic[topic], mapper: m,
		merged: make([][]timed, r.lay.partitions), errs: make([]error, r.lay.partitions+1),
		reqs: make([]laneReq, r.lay.partitions)}
	t.lanes = lanes[t.outTopic]
	for q := range t.reqs {
		t.reqs[q].done = make(chan error, 1)
	}
	t.acked.Store(-1)
	t.committed.Store(-1)
	if start >= 0 {
		t.acked.Store(start)
		t.committed.Store(start)
	}
	t.hwm.Store(-1)
	t.from.Store(-1)
	t.through.Store(math.MinInt64)
	return t
}

// run repartitions the source partition until the generation ends or ctx
// is cancelled. On cancellation the round being written is finished
// (within the shutdown timeout) and acknowledged; what was fetched or
// mapped beyond it is read again by the next owner. It returns an error
// only for a write Kafka refused.
func (t *task) run(ctx, gctx context.Context) error {
	o := &t.r.opts
	defer o.Metrics.RepartitionLag.DeleteLabelValues(t.topic, strconv.Itoa(t.part))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(gctx, cancel)()
	// Writes go on after ctx ends, until the shutdown deadline; they stop
	// at once when the generation ends, since the partition is someone
	// else's now (its copies of what is cut short are dropped downstream).
	pctx, pcancel := context.WithCancel(t.r.stop)
	defer pcancel()
	defer context.AfterFunc(gctx, pcancel)()

	fetched := make(chan kafkaio.Fetched, 1)
	mapped := make(chan *batch, 2)
	free := make(chan *batch, 4)
	for range cap(free) {
		free <- &batch{parts: make([][]timed, t.r.lay.partitions)}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	f := &kafkaio.Fetcher{Dialer: o.Dialer, Brokers: o.Brokers, Topic: t.topic, Partition: t.part,
		MaxWait: o.FetchMaxWait, MaxBytes: o.FetchMaxBytes, Log: t.r.log, Spare: make(chan []kafka.Message, 1)}
	wg.Add(2)
	go func() {
		defer wg.Done()
		f.Run(wctx, t.start, func(fr kafkaio.Fetched) bool {
			select {
			case fetched <- fr:
				return true
			case <-wctx.Done():
				return false
			}
		})
	}()
	go func() {
		defer wg.Done()
		defer close(mapped)
		for {
			var fr kafkaio.Fetched
			select {
			case fr = <-fetched:
			case <-wctx.Done():
				return
			}
			if fr.Start >= 0 && t.from.Load() < 0 {
				// The first connection's start only: a reconnection starts
				// where fetching stopped, before what was fetched is
				// written.
				t.from.Store(fr.Start)
			}
			if fr.HWM > t.hwm.Load() {
				t.hwm.Store(fr.HWM)
			}
			if len(fr.Msgs) == 0 {
				continue
			}
			var b *batch
			select {
			case b = <-free:
			case <-wctx.Done():
				return
			}
			t.fill(b, fr.Msgs, fr.HWM)
			select { // the batch holds copies of what it needs
			case f.Spare <- fr.Msgs:
			default:
			}
			select {
			case mapped <- b:
			case <-wctx.Done():
				return
			}
		}
	}()

	var round []*batch
	for {
		round = round[:0]
		select {
		case b, ok := <-mapped:
			if !ok {
				return nil
			}
			round = append(round, b)
		case <-wctx.Done():
			return nil
		}
	more:
		for len(round) < cap(free) {
			select {
			case b, ok := <-mapped:
				if !ok {
					break more
				}
				round = append(round, b)
			default:
				break more
			}
		}
		if err := t.write(pctx, round); err != nil {
			// The generation ended, or the shutdown deadline passed: for
			// this task, or for the lanes first.
			if pctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		t.acknowledged(round)
		for _, b := range round {
			free <- b
		}
	}
}

// fill maps msgs, a fetch response of the partition whose high-water
// mark was hwm, into b. Every record carries the source backlog after the
// response (kafkaio.Source), plus the response's events after it in its
// repartition partition: not the backlog after its own record, so that
// records at the end of the response that map to no event (tombstones,
// dead letters) cannot leave the consumer believing more is to come.
func (t *task) fill(b *batch, msgs []kafka.Message, hwm int64) {
	for q := range b.parts {
		clear(b.parts[q])
		b.parts[q] = b.parts[q][:0]
	}
	clear(b.dlq)
	b.dlq, b.arena, b.headers = b.dlq[:0], b.arena[:0], b.headers[:0]
	b.records, b.events = len(msgs), 0
	b.last = math.MinInt64
	clear(b.reasons)
	in := t.reserve(b, msgs)
	hash := t.r.hash
	backlog := max(hwm-(msgs[len(msgs)-1].Offset+1), 0)
	for i := range msgs {
		m := &msgs[i]
		rec := inputs.Record{Topic: t.topic, Partition: t.part, Offset: m.Offset, Key: m.Key, Value: m.Value}
		if !m.Time.IsZero() {
			rec.TimeMs = m.Time.UnixMilli()
		}
		evs, err := t.mapper.Map(rec, t.evs[:0])
		t.evs = evs
		if err != nil {
			b.dlq = append(b.dlq, kafkaio.DeadLetter(m.Key, m.Value, err, kafkaio.AppendSource(nil, t.topic, t.part, m.Offset), kafkaio.DefaultMaxMessageBytes))
			if b.reasons == nil {
				b.reasons = map[string]int{}
			}
			b.reasons[kafkaio.Reason(err)]++
			continue
		}
		for k := range evs {
			e := &evs[k]
			b.last = max(b.last, e.OccurredAt)
			s := len(b.arena)
			b.arena = append(b.arena, e.AccountID...)
			key := b.arena[s:len(b.arena):len(b.arena)]
			q := hash.Partition(key)
			s = len(b.arena)
			b.arena = append(b.arena, e.JSON...) // the mapper's until its next record
			value := b.arena[s:len(b.arena):len(b.arena)]
			b.parts[q] = append(b.parts[q], timed{at: e.OccurredAt, src: m.Offset, index: int32(k),
				Record: kafkaio.Record{Key: key, Value: value, Time: m.Time}})
		}
		b.events += len(evs)
	}
	// A partition's events of the response each count the ones after them
	// as still to come: a lane may write the first before the rest (it
	// holds events newer than other tasks have reached), and the consumer
	// must not take the source partition as read before the last one.
	for q := range b.parts {
		recs := b.parts[q]
		for i := range recs {
			r := &recs[i]
			h := len(b.headers)
			b.headers, b.arena = kafkaio.AppendSourceHeader(b.headers, b.arena, t.topic, t.part, r.src, int(r.index), backlog+int64(len(recs)-1-i))
			r.Headers = b.headers[h:len(b.headers):len(b.headers)]
		}
	}
	b.next = msgs[len(msgs)-1].Offset + 1
	t.arenaPerKiB = max(len(b.arena)*1024/in, 1)
	t.eventsPerK = max(b.events*1024/len(msgs), 1)
}

// reserve makes room in b for msgs at the rates the last batch had, with
// an eighth to spare, and returns msgs' size as the rates count it. The
// arena is replaced rather than grown, since what was filled before is
// not kept. Sizing by bytes, not records, keeps a response of many
// tombstones after one of large records from reserving much: what is
// reserved stays within the rates times the response's size (bounded by
// the fetch size).
func (t *task) reserve(b *batch, msgs []kafka.Message) int {
	in := 0
	for i := range msgs {
		in += len(msgs[i].Key) + len(msgs[i].Value) + 64
	}
	if t.arenaPerKiB == 0 {
		return in // the first batch grows as it must
	}
	if need := in * t.arenaPerKiB / 1024 * 9 / 8; cap(b.arena) < need {
		b.arena = make([]byte, 0, need)
	}
	events := len(msgs) * t.eventsPerK / 1024 * 9 / 8
	if cap(b.headers) < events {
		b.headers = make([]kafka.Header, 0, events)
	}
	per := events*5/4/len(b.parts) + 1
	for q := range b.parts {
		if cap(b.parts[q]) < per {
			b.parts[q] = make([]timed, 0, per)
		}
	}
	return in
}

// write writes a round: each partition's records through its lane, and
// the dead letters; it returns when all are acknowledged, or the first
// refusal.
func (t *task) write(ctx context.Context, round []*batch) error {
	parts := round[0].parts
	t.dlq = t.dlq[:0]
	for _, b := range round {
		t.dlq = append(t.dlq, b.dlq...)
	}
	if len(round) > 1 {
		for q := range t.merged {
			t.merged[q] = t.merged[q][:0]
			for _, b := range round {
				t.merged[q] = append(t.merged[q], b.parts[q]...)
			}
		}
		parts = t.merged
	}
	r := t.r
	clear(t.errs)
	for q, recs := range parts {
		if len(recs) > 0 {
			t.reqs[q].recs = recs
			t.lanes[q].submit(&t.reqs[q])
		}
	}
	// Only once every lane holds the round may the watermark pass it: a
	// lane that saw the new mark first would write newer records of
	// other tasks before this round's.
	for _, b := range round {
		if b.last > t.through.Load() {
			t.through.Store(b.last)
		}
	}
	var wg sync.WaitGroup
	if len(t.dlq) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.errs[len(parts)] = kafkaio.Produce(ctx, r.stage, r.kafka, r.opts.DLQ, t.part%r.lay.dlqPartitions, t.dlq, kafkaio.DefaultMaxMessageBytes)
		}()
	}
	// Every lane answers, also when its context ends, and reads the
	// records until it does: wait for all before the batches are reused.
	for q, recs := range parts {
		if len(recs) > 0 {
			t.errs[q] = <-t.reqs[q].done
			t.reqs[q].recs = nil
		}
	}
	wg.Wait()
	if len(round) > 1 {
		for q := range t.merged {
			clear(t.merged[q])
		}
	}
	clear(t.dlq)
	return errors.Join(t.errs...)
}

// readToEnd reports whether the task has written everything its source
// partition held as of its last fetch.
func (t *task) readToEnd() bool {
	hwm := t.hwm.Load()
	return hwm >= 0 && max(t.acked.Load(), t.from.Load()) >= hwm
}

// acknowledged records a written round: its source offsets may be
// committed, and it counts in the metrics.
func (t *task) acknowledged(round []*batch) {
	m := t.r.opts.Metrics
	for _, b := range round {
		t.met.records.Add(float64(b.records))
		t.met.events.Add(float64(b.events))
		for reason, n := range b.reasons {
			m.RepartitionErrors.WithLabelValues(t.topic, reason).Add(float64(n))
			m.DLQ.WithLabelValues(reason).Add(float64(n))
		}
	}
	t.acked.Store(round[len(round)-1].next)
}
