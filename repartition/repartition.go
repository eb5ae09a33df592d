package repartition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/inputs"
	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
)

// GroupSuffix is appended to the pipeline's consumer group to name the
// repartitioner's: pyramid.repartition for the default group pyramid.
const GroupSuffix = ".repartition"

// Stage is the destination name (the sink label of the retry metrics) of
// the repartitioner's writes: the repartition topics and its dead letters.
const Stage = "repartition"

// Options configures a Repartitioner. Zero values take the defaults named
// on each field.
type Options struct {
	Brokers []string
	Config  *config.Config // its inputs: are what is repartitioned; required
	// Group is the pipeline's consumer group (required); the
	// repartitioner's own is Group + GroupSuffix.
	Group string
	// NativeTopics are the pipeline's native input topics; the repartition
	// topics get their partition count (see checkTopics).
	NativeTopics []string
	StateTopic   string // default kafkaio.State; sizes the repartition topics when no native topic does
	DLQ          string // dead-letter topic; default kafkaio.DeadLetters

	Metrics *metrics.Metrics // default: unregistered metrics
	Logger  *slog.Logger     // default slog.Default()

	// Dialer is used for the consumer group and fetching; Transport for
	// producing and admin requests (built from Dialer when nil).
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper

	// Consumer group timing; defaults are kafka-go's (3s, 30s, 30s, 5s).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	JoinGroupBackoff  time.Duration

	FetchMaxWait  time.Duration // long-poll wait of a fetch; default 250ms
	FetchMaxBytes int           // bytes per fetch per source partition; default 512 KiB
	// CommitInterval is how often the source offsets of acknowledged
	// records are committed; default 200ms. A crash writes again at most
	// what was read in one interval, which the pipeline then drops. The
	// pipeline learns from these commits that a source partition was read
	// to its end (the end of a backfill, see consumer's upstream.go): a
	// long interval delays it.
	CommitInterval time.Duration
	// OrderWait bounds how long a repartition partition holds records for
	// a source partition that lags in event time (see lane); default 1s.
	OrderWait time.Duration
	// ShutdownTimeout bounds the last writes, commit and group leave when
	// the context is cancelled; default 10s.
	ShutdownTimeout time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if len(c.Brokers) == 0 {
		return c, errors.New("repartition: no Kafka brokers configured")
	}
	if c.Config == nil || len(c.Config.Inputs) == 0 {
		return c, errors.New("repartition: no declared inputs to repartition")
	}
	if c.Group == "" {
		return c, errors.New("repartition: no consumer group: give the pipeline's")
	}
	if c.StateTopic == "" {
		c.StateTopic = kafkaio.State
	}
	if c.DLQ == "" {
		c.DLQ = kafkaio.DeadLetters
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "repartition")
	if c.Dialer == nil {
		c.Dialer = kafkaio.Dialer()
	}
	if c.Transport == nil {
		c.Transport = kafkaio.Transport(c.Dialer)
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = kafkaio.DefaultFetchMaxWait
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = kafkaio.DefaultFetchMaxBytes
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 200 * time.Millisecond
	}
	if c.OrderWait <= 0 {
		c.OrderWait = time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	for _, t := range c.NativeTopics {
		for _, in := range c.Config.Inputs {
			if in.Topic == t {
				return c, fmt.Errorf("repartition: topic %s is both a native input topic and a declared input", t)
			}
		}
	}
	return c, nil
}

// Repartitioner is one member of the repartitioner's consumer group.
type Repartitioner struct {
	opts   Options
	log    *slog.Logger
	client *kafka.Client
	kafka  kafkaio.Writer // produces and commits; tests wrap it
	stage  *retry.Stage
	mapper *inputs.Mapper // compiled once to check the config; tasks clone it

	prepareMu sync.Mutex
	lay       *layout
	// hash picks an account's repartition partition: the configuration's
	// partitioner, which the native topics' producers use too.
	hash *kafkaio.Partitioner

	stop context.Context // ends ShutdownTimeout after Run's context

	statusMu sync.Mutex
	inGroup  bool

	perTopic map[string]*topicMetrics
}

// topicMetrics are the children of the metrics of one declared input,
// looked up once.
type topicMetrics struct {
	records prometheus.Counter
	events  prometheus.Counter // of the type the input maps to
}

// New checks opts and returns a repartitioner ready to Prepare and Run.
func New(opts Options) (*Repartitioner, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("repartition: %w", err)
	}
	m, err := inputs.New(o.Config)
	if err != nil {
		return nil, fmt.Errorf("repartition: %w", err)
	}
	r := &Repartitioner{opts: o, log: o.Logger, mapper: m, perTopic: map[string]*topicMetrics{}}
	r.client = &kafka.Client{Addr: kafka.TCP(o.Brokers...), Transport: o.Transport, Timeout: 10 * time.Second}
	r.kafka = kafkaio.Client{Client: r.client}
	// The pace of the pipeline's own Kafka writes: 100 ms doubling to 2 s.
	r.stage = retry.New(Stage, retry.Options{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second, Jitter: 0.25}, o.Metrics, o.Logger)
	for _, in := range o.Config.Inputs {
		typ, _ := m.Type(in.Topic)
		r.perTopic[in.Topic] = &topicMetrics{
			records: o.Metrics.RepartitionRecords.WithLabelValues(in.Topic),
			events:  o.Metrics.RepartitionEvents.WithLabelValues(typ.String()),
		}
		for _, reason := range event.Reasons {
			o.Metrics.RepartitionErrors.WithLabelValues(in.Topic, reason)
		}
	}
	return r, nil
}

// Prepare checks the declared inputs and creates the repartition topics
// (and the dead-letter topic) when they are missing, retrying while Kafka
// cannot be reached. The pipeline needs the repartition topics before it
// starts, since they are among its inputs. It returns their partition
// count; a wrong layout is a *LayoutError.
func (r *Repartitioner) Prepare(ctx context.Context) (int, error) {
	r.prepareMu.Lock()
	defer r.prepareMu.Unlock()
	if r.lay != nil {
		return r.lay.partitions, nil
	}
	bo := kafkaio.ReconnectBackOff()
	for attempt := 0; ; attempt++ {
		lay, err := checkTopics(ctx, r.client, &r.opts, r.mapper)
		if err == nil {
			r.lay = &lay
			r.hash = kafkaio.NewPartitioner(r.opts.Config.Partitioner, lay.partitions)
			return lay.partitions, nil
		}
		var le *LayoutError
		if errors.As(err, &le) {
			return 0, fmt.Errorf("repartition: %w", err)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if attempt%5 == 0 {
			r.log.Warn("cannot reach Kafka; retrying", "brokers", r.opts.Brokers, "err", err)
		}
		if !kafkaio.Sleep(ctx, bo.NextBackOff()) {
			return 0, ctx.Err()
		}
	}
}

// Ready returns nil once the repartitioner is a member of its group.
func (r *Repartitioner) Ready() error {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	if !r.inGroup {
		return errors.New("repartitioner: not yet a member of consumer group " + r.group())
	}
	return nil
}

func (r *Repartitioner) group() string { return r.opts.Group + GroupSuffix }

func (r *Repartitioner) setInGroup(in bool) {
	r.statusMu.Lock()
	r.inGroup = in
	r.statusMu.Unlock()
}

// Run prepares the topics (see Prepare), joins the repartitioner's group
// and repartitions the declared inputs until ctx is cancelled; then it
// writes what it read, commits and leaves the group within
// Options.ShutdownTimeout and returns nil. A refused write or a wrong
// layout ends it with an error.
func (r *Repartitioner) Run(parent context.Context) error {
	if _, err := r.Prepare(parent); err != nil {
		if parent.Err() != nil {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	o := &r.opts
	stop, stopCancel := context.WithCancel(context.Background())
	defer stopCancel()
	r.stop = stop
	go func() {
		<-ctx.Done()
		t := time.NewTimer(o.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stopCancel()
		case <-stop.Done():
		}
	}()

	sources := r.mapper.Topics()
	slices.Sort(sources)
	r.log.Info("joining consumer group", "group", r.group(), "topics", sources, "partitions", r.lay.partitions)
	m := &kafkaio.Member{Who: "repartition", Group: r.group(), Brokers: o.Brokers, Dialer: o.Dialer, Topics: sources,
		// Source topics have any partition counts: spread their partitions
		// over the members one by one.
		Balancer: kafka.RoundRobinGroupBalancer{}, WatchPartitionChanges: true,
		HeartbeatInterval: o.HeartbeatInterval, SessionTimeout: o.SessionTimeout,
		RebalanceTimeout: o.RebalanceTimeout, JoinGroupBackoff: o.JoinGroupBackoff,
		Log: r.log, Leaving: func() { r.setInGroup(false) }}
	fatal := m.Run(ctx, stop, r.generation)
	if fatal != nil {
		return fatal
	}
	r.log.Info("stopped")
	return nil
}

// generation runs one task per assigned source partition, and a committer,
// until the generation ends or ctx is cancelled. It returns a fatal error,
// if any.
func (r *Repartitioner) generation(ctx context.Context, gen *kafka.Generation) error {
	// The lanes of every repartition topic the assigned inputs map to,
	// one per partition; they stop when the generation ends or the
	// shutdown deadline passes, as the tasks' writes do.
	lctx, lcancel := context.WithCancel(r.stop)
	defer lcancel()
	lanes := map[string][]*lane{}
	var lwg sync.WaitGroup
	defer lwg.Wait()
	defer lcancel()
	var tasks []*task
	for _, t := range slices.Sorted(maps.Keys(gen.Assignments)) {
		typ, _ := r.mapper.Type(t)
		out := Topic(typ)
		if lanes[out] == nil && len(gen.Assignments[t]) > 0 {
			for q := range r.lay.partitions {
				lanes[out] = append(lanes[out], newLane(out, q))
			}
		}
		for _, pa := range gen.Assignments[t] {
			tasks = append(tasks, newTask(r, t, pa.ID, pa.Offset, lanes))
		}
	}
	for out, ls := range lanes {
		var writers []*task
		for _, t := range tasks {
			if t.outTopic == out {
				writers = append(writers, t)
			}
		}
		for _, l := range ls {
			l.tasks = writers
			lwg.Add(1)
			go func() { defer lwg.Done(); l.run(lctx, r) }()
		}
	}
	r.log.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "source_partitions", len(tasks))
	r.setInGroup(true)

	var (
		wg      sync.WaitGroup
		fatalMu sync.Mutex
		fatal   error
	)
	fail := func(err error) {
		fatalMu.Lock()
		if fatal == nil {
			fatal = err
		}
		fatalMu.Unlock()
	}
	// On shutdown a function keeps the generation open until the group
	// is closed, so that kafka-go leaves the group rather than joining
	// anew; on a fatal error it ends the generation at once.
	hold := func(gctx context.Context, err error) {
		if err == nil && ctx.Err() != nil {
			<-gctx.Done()
		}
	}
	tasksDone := make(chan struct{})
	wg.Add(len(tasks))
	for _, t := range tasks {
		gen.Start(func(gctx context.Context) {
			err := t.run(ctx, gctx)
			if err != nil {
				r.log.Error("repartitioning a source partition failed", "topic", t.topic, "partition", t.part, "err", err)
				fail(err)
			}
			wg.Done()
			hold(gctx, err)
		})
	}
	go func() { wg.Wait(); close(tasksDone) }()
	// The committer outlives the tasks: kafka-go waits for it before
	// joining the next generation, so the last offsets are committed by
	// this member.
	committed := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		// The generation's end cuts the lanes' writes short, as it does
		// the tasks' own; shutdown lets them finish until the deadline.
		stopLanes := context.AfterFunc(gctx, lcancel)
		defer stopLanes()
		r.commitLoop(ctx, gctx, gen, tasks, tasksDone)
		close(committed)
		hold(gctx, nil)
	})
	<-committed
	<-tasksDone
	r.log.Info("generation ended", "generation", gen.ID)
	return fatal
}

// commitLoop commits the offsets of every task's acknowledged records each
// CommitInterval, and once more when the tasks have stopped.
func (r *Repartitioner) commitLoop(ctx, gctx context.Context, gen *kafka.Generation, tasks []*task, done <-chan struct{}) {
	tick := time.NewTicker(r.opts.CommitInterval)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-tick.C:
			r.commit(gen, tasks)
		case <-gctx.Done():
			running = false
		case <-ctx.Done():
			running = false
		}
	}
	<-done
	r.commit(gen, tasks)
}

// commit commits what the tasks have had acknowledged since their last
// commit; a refused commit (the generation ended) is retried by the next
// owner's re-reading, whose copies the pipeline drops.
func (r *Repartitioner) commit(gen *kafka.Generation, tasks []*task) {
	offsets := map[string]map[int]int64{}
	var moved []*task
	for _, t := range tasks {
		acked := t.acked.Load()
		if acked > t.committed.Load() {
			if offsets[t.topic] == nil {
				offsets[t.topic] = map[int]int64{}
			}
			offsets[t.topic][t.part] = acked
			moved = append(moved, t)
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := r.kafka.Commit(gen, offsets); err != nil {
		r.log.Warn("committing source offsets failed; the next commit retries", "err", err)
		return
	}
	for _, t := range moved {
		c := offsets[t.topic][t.part]
		t.committed.Store(c)
		if hwm := t.hwm.Load(); hwm >= 0 {
			r.opts.Metrics.RepartitionLag.WithLabelValues(t.topic, strconv.Itoa(t.part)).Set(float64(max(0, hwm-c)))
		}
	}
}
