package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/sink"
)

// errCrashed is what a write gets from a dead process.
var errCrashed = errors.New("crashed (test)")

// crasher plays a process that dies at one point of a flush. It stands
// where the pipeline meets the outside: it wraps the pipeline's Kafka
// writes (kafkaio.Writer) and its sink. The at-th call of point does what it
// names and the process dies: that call and every later write, produce and
// commit fail without effect, and the pipeline's context is cancelled (with
// a ShutdownTimeout of 1 ns nothing more gets out). Points:
//
//	before-sink      a sink write, before anything of it is written
//	sink             a sink write, once it is durable
//	changelog-half   a changelog produce, after half of its records
//	changelog        a changelog produce, once it is acknowledged
//	commit           an offset commit, once it is done
type crasher struct {
	kafkaio.Writer
	sink.Sink
	point     string
	at        int32
	changelog string // the state topic's name

	calls atomic.Int32  // of point so far
	down  atomic.Bool   // the process is dead
	dead  chan struct{} // closed at the crash
	crash func()        // cancels the pipeline
}

// startCrashing starts a pipeline whose Kafka writes and sink go through
// c (opts.Sink must be c).
func startCrashing(tb testing.TB, opts Options, c *crasher) *running {
	tb.Helper()
	p, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	c.Writer, p.kafka = p.kafka, c
	c.dead = make(chan struct{})
	crashed, crash := context.WithCancel(context.Background())
	tb.Cleanup(crash)
	c.crash = crash
	return &running{p: p, Background: testenv.Go(tb, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(crashed, cancel)()
		return p.Run(ctx)
	})}
}

// hit counts a call of point and reports whether it is the fatal one.
func (c *crasher) hit(point string) bool {
	return point == c.point && c.calls.Add(1) == c.at
}

func (c *crasher) die() error {
	if c.down.CompareAndSwap(false, true) {
		close(c.dead)
		c.crash()
	}
	return errCrashed
}

func (c *crasher) Write(ctx context.Context, b *sink.Batch) error {
	if c.down.Load() || c.hit("before-sink") {
		return c.die()
	}
	err := c.Sink.Write(ctx, b)
	if err == nil && c.hit("sink") {
		return c.die()
	}
	return err
}

func (c *crasher) Produce(ctx context.Context, topic string, partition int, recs []kafkaio.Record) error {
	if c.down.Load() {
		return errCrashed
	}
	// The partition markers written at restore and hand-over are not a
	// flush's records.
	flush := topic == c.changelog && !(len(recs) == 1 && string(recs[0].Key) == markerKey)
	if flush && c.hit("changelog-half") {
		c.Writer.Produce(ctx, topic, partition, recs[:len(recs)/2])
		return c.die()
	}
	err := c.Writer.Produce(ctx, topic, partition, recs)
	if err == nil && flush && c.hit("changelog") {
		return c.die()
	}
	return err
}

func (c *crasher) Commit(gen *kafka.Generation, offsets map[string]map[int]int64) error {
	if c.down.Load() {
		return errCrashed
	}
	err := c.Writer.Commit(gen, offsets)
	if err == nil && c.hit("commit") {
		return c.die()
	}
	return err
}
