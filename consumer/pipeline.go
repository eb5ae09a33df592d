package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Stage names: the metric label (sink=...) of the flush path's writes to
// Kafka.
const (
	ChangelogStage = "changelog"
	DLQStage       = "dlq"
)

// Pipeline is one member of the consumer group.
type Pipeline struct {
	opts   Options
	log    *slog.Logger
	params *scoring.Params
	client *kafka.Client  // metadata and topic creation
	kafka  kafkaio.Writer // the flush path's produces and commits
	layout topicLayout
	// The flush path's writes to Kafka retry through these stages
	// (sink="changelog" and sink="dlq").
	changelogStage, dlqStage *retry.Stage

	sinkReqs chan *sinkReq   // to the one goroutine that writes the sink
	stop     context.Context // ends ShutdownTimeout after Run's context

	statusMu  sync.Mutex
	inGroup   bool
	owned     []int
	restoring map[int]bool

	counters *counters // the per-event metrics, looked up once

	// Capacity-capped tiers (capacity.go); nil without max_accounts.
	board    *capacityBoard
	capPub   *capacityPublisher
	capStage *retry.Stage
	lag      *lagBoard // the workers' positions, for the lag gauges (lag.go)
	// upstream is how far the repartitioner had read the declared inputs
	// at the lag goroutine's last look (upstream.go); nil before.
	upstream atomic.Pointer[upstreamEnds]
}

// New checks opts and returns a pipeline ready to Run.
func New(opts Options) (*Pipeline, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	if o.Params == nil {
		o.Params = scoring.NewParams(o.Config)
	}
	p := &Pipeline{opts: o, log: o.Logger, params: o.Params, restoring: map[int]bool{},
		sinkReqs: make(chan *sinkReq), counters: newCounters(o.Metrics), lag: newLagBoard(),
		// Until Run reads the topics: the limits Pyramid creates them with.
		layout: topicLayout{stateMax: StateMaxMessageBytes, dlqMax: DLQMaxMessageBytes}}
	p.client = &kafka.Client{Addr: kafka.TCP(o.Brokers...), Transport: o.Transport, Timeout: 10 * time.Second}
	p.kafka = kafkaio.Client{Client: p.client}
	// The pace of the old hand-rolled loop: 100 ms doubling to 2 s, ±25%.
	kafkaRetry := retry.Options{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second, Jitter: 0.25}
	p.changelogStage = retry.New(ChangelogStage, kafkaRetry, o.Metrics, o.Logger)
	p.dlqStage = retry.New(DLQStage, kafkaRetry, o.Metrics, o.Logger)
	if p.params.AnyCapped() {
		p.board, p.capPub = newCapacityBoard(), newCapacityPublisher()
		p.capStage = retry.New(CapacityStage, kafkaRetry, o.Metrics, o.Logger)
	}
	return p, nil
}

// Run runs the pipeline with opts until ctx is cancelled.
func Run(ctx context.Context, opts Options) error {
	p, err := New(opts)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// Ready returns nil when the pipeline is in the consumer group and has
// restored the state of every partition it owns, else why not.
func (p *Pipeline) Ready() error {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	if !p.inGroup {
		return errors.New("not yet a member of consumer group " + p.opts.Group)
	}
	if n := len(p.restoring); n > 0 {
		return fmt.Errorf("restoring state of %d of %d partitions", n, len(p.owned))
	}
	return nil
}

// Partitions returns the partition numbers this instance owns now.
func (p *Pipeline) Partitions() []int {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	return append([]int(nil), p.owned...)
}

// Run checks the topics, joins the consumer group and processes events
// until ctx is cancelled; then it flushes, commits and leaves the group
// within Options.ShutdownTimeout and returns nil. It refuses at once a
// wrong topic layout (missing input topics, unequal partition counts) and
// retries while Kafka cannot be reached. A pipeline runs once.
func (p *Pipeline) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	o := &p.opts
	stop, stopCancel := context.WithCancel(context.Background())
	defer stopCancel()
	p.stop = stop
	go func() {
		<-ctx.Done()
		t := time.NewTimer(p.opts.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stopCancel()
		case <-stop.Done():
		}
	}()

	// Kafka may come up after Pyramid (compose, rolling restarts): retry
	// while it cannot be reached, but refuse at once protocol versions it
	// does not accept or a wrong topic layout.
	var lay topicLayout
	versionsOK := false
	bo := kafkaio.ReconnectBackOff()
	for attempt := 0; ; attempt++ {
		var err error
		if !versionsOK {
			err = checkVersions(ctx, p.client, p.log)
			versionsOK = err == nil
		}
		if err == nil {
			// A few seconds of failures to read the topics' limits is not
			// worth waiting on: Kafka's default is assumed, with a warning.
			lay, err = checkTopics(ctx, p.client, &p.opts, attempt >= 5)
		}
		if err == nil {
			break
		}
		if parent.Err() != nil {
			return nil
		}
		var le *layoutError
		var ve *versionError
		if errors.As(err, &le) || errors.As(err, &ve) {
			return fmt.Errorf("consumer: %w", err)
		}
		if attempt%5 == 0 {
			p.log.Warn("cannot reach Kafka; retrying", "brokers", o.Brokers, "err", err)
		}
		if !kafkaio.Sleep(ctx, bo.NextBackOff()) {
			return nil
		}
	}
	p.layout = lay
	// A changed partition layout stops the pipeline, gracefully: what was
	// read so far is still correct.
	var layoutErr error
	layoutDone := make(chan struct{})
	go func() {
		defer close(layoutDone)
		if layoutErr = p.watchLayout(ctx, lay); layoutErr != nil {
			cancel()
		}
	}()
	defer func() { cancel(); <-layoutDone }()
	if p.board != nil {
		go p.board.tail(ctx, p)
		go p.capPub.run(ctx, p, p.capStage)
	}
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); p.lagLoop(ctx) }()
	defer func() { cancel(); <-lagDone }()
	sinkDone := make(chan struct{})
	sinkQuit := make(chan struct{})
	go func() { defer close(sinkDone); p.sinkLoop(sinkQuit) }()
	defer func() { stopCancel(); close(sinkQuit); <-sinkDone }()

	p.log.Info("joining consumer group", "group", o.Group, "topics", o.Topics, "partitions", lay.partitions)
	m := &kafkaio.Member{Who: "consumer", Group: o.Group, Brokers: o.Brokers, Dialer: o.Dialer, Topics: o.Topics,
		Balancer:          copartitioned{},
		HeartbeatInterval: o.HeartbeatInterval, SessionTimeout: o.SessionTimeout,
		RebalanceTimeout: o.RebalanceTimeout, JoinGroupBackoff: o.JoinGroupBackoff,
		Log: p.log, Leaving: func() { p.setStatus(false, nil) }}
	fatal := m.Run(ctx, stop, p.generation)
	cancel()
	<-layoutDone
	switch {
	case fatal != nil:
		return fatal
	case layoutErr != nil:
		return layoutErr
	}
	p.log.Info("stopped")
	return nil
}

func (p *Pipeline) setStatus(in bool, owned []int) {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	p.inGroup, p.owned = in, owned
	p.restoring = map[int]bool{}
	for _, n := range owned {
		p.restoring[n] = true
	}
}

func (p *Pipeline) restored(part int) {
	p.statusMu.Lock()
	delete(p.restoring, part)
	p.statusMu.Unlock()
}

// generation runs one worker per assigned partition number until the
// generation ends or ctx is cancelled, and returns a fatal error, if any.
func (p *Pipeline) generation(ctx context.Context, gen *kafka.Generation) error {
	o := &p.opts
	o.Metrics.Rebalances.Inc()
	starts := map[int][]int64{}
	for ti, t := range o.Topics {
		for _, pa := range gen.Assignments[t] {
			s := starts[pa.ID]
			if s == nil {
				s = make([]int64, len(o.Topics))
				for i := range s {
					s[i] = notAssigned
				}
				starts[pa.ID] = s
			}
			s[ti] = pa.Offset
		}
	}
	parts := slices.Sorted(maps.Keys(starts))
	for _, n := range parts {
		for ti, s := range starts[n] {
			if s == notAssigned {
				p.log.Error("partition assigned for some input topics only; the topics are not co-partitioned",
					"partition", n, "missing", o.Topics[ti])
			}
		}
	}
	p.log.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", parts)
	p.setStatus(true, parts)
	o.Metrics.PartitionsOwned.Set(float64(len(parts)))

	var (
		wg      sync.WaitGroup
		fatalMu sync.Mutex
		fatal   error
	)
	hold := func(gctx context.Context, err error) {
		if err != nil {
			fatalMu.Lock()
			if fatal == nil {
				fatal = err
			}
			fatalMu.Unlock()
		}
		wg.Done()
		// On shutdown keep the generation open until the group is closed,
		// so that kafka-go leaves the group rather than joining anew.
		if err == nil && ctx.Err() != nil {
			<-gctx.Done()
		}
	}
	if len(parts) == 0 {
		wg.Add(1)
		gen.Start(func(gctx context.Context) {
			select {
			case <-gctx.Done():
			case <-ctx.Done():
			}
			hold(gctx, nil)
		})
	}
	commit := &committer{commit: func(offsets map[string]map[int]int64) error {
		return p.kafka.Commit(gen, offsets)
	}}
	for _, n := range parts {
		w := newWorker(p, commit, n)
		w.rk.gen = gen.ID
		st := starts[n]
		wg.Add(1)
		gen.Start(func(gctx context.Context) {
			err := w.run(ctx, gctx, st)
			if err != nil {
				p.log.Error("partition worker failed", "partition", n, "err", err)
			}
			if o.OnRevoke != nil {
				o.OnRevoke(n)
			}
			hold(gctx, err)
		})
	}
	wg.Wait()
	o.Metrics.PartitionsOwned.Set(0)
	p.log.Info("generation ended", "generation", gen.ID)
	return fatal
}

// watchLayout checks the topic layout every LayoutCheckInterval until ctx
// ends, and returns the first change it finds.
func (p *Pipeline) watchLayout(ctx context.Context, lay topicLayout) error {
	t := time.NewTicker(p.opts.LayoutCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := checkLayout(ctx, p.client, &p.opts, lay); err != nil {
			p.log.Error("stopping: the topic layout changed", "err", err)
			return fmt.Errorf("consumer: %w", err)
		}
	}
}
