// Package consumer is the streaming pipeline: it reads CRM events from
// Kafka, scores them with one scoring.Engine per partition number and makes
// the results durable with an exactly-once effect (SPEC §6).
//
// # Partitions and workers
//
// The input topics are co-partitioned: keyed by account_id, all with the same
// partition count. The consumer group's balancer gives partition p of every
// input topic to the same member, so one worker per partition number sees
// every event of its accounts, in log order per topic-partition.
//
// # State and delivery
//
// A worker's accounts live in memory and in the compacted changelog topic
// (partition p of the changelog for input partition p), one record per
// account: a header with, per input topic, the last offset whose effect the
// record includes, then scoring.MarshalAccount's bytes. A flush (on size, on
// interval, in the next Options.CaughtUpFlush slot once the partition has
// applied all of its input, or at shutdown) makes things durable in this
// order:
//
//  1. dead letters to the DLQ topic and the batch (newest snapshot of every
//     changed account, tier changes, alerts) to the sink;
//  2. the changelog records of the changed accounts (acks=all);
//  3. the input offsets, committed through the group generation.
//
// A crash between any two steps loses nothing: the next owner restores the
// accounts from the changelog and re-reads from the committed offset, and an
// event at or below an account's recorded offset is skipped, so nothing is
// applied twice. Rows written to the sink twice carry the same
// (account_id, version) and collapse there.
//
// # Dead letters
//
// An event that cannot be applied (SPEC §1 bad input, an occurred_at more
// than 24 h after the wall clock, or a message key other than its
// account_id) goes to the dead-letter topic with its original key and
// value and the headers pyramid-error (one line a person can act on),
// pyramid-reason (the metric label, e.g. unknown_stage) and pyramid-source
// (topic/partition/offset). An event too large for the topic keeps its
// first 64 KiB and gets pyramid-truncated (the original size).
//
// # Limits
//
// Kafka-go has no transactions, so a member that lost its membership without
// noticing (a long GC pause past the session timeout) could still write a
// stale changelog record. Commits of an ended generation are refused by the
// broker, and the next flush of the new owner supersedes the record.
//
// Partitions added to an input topic while running would send accounts to
// partition numbers whose state lives elsewhere; the pipeline checks the
// layout every Options.LayoutCheckInterval and stops with an error instead.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
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
	client *kafka.Client // metadata and topic creation
	kafka  kafkaWriter   // the flush path's produces and commits
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

	events [5][3]prometheus.Counter // [event type][applied, duplicate, rejected]
	// Per-tier children of the tier metrics, looked up once: workers
	// update them for every applied event.
	accounts, neglected [5]prometheus.Gauge
	tierChanges         [5][5]prometheus.Counter // [from][to]
}

const (
	resApplied = iota
	resDuplicate
	resRejected
)

// New checks opts and returns a pipeline ready to Run.
func New(opts Options) (*Pipeline, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	p := &Pipeline{opts: o, log: o.Logger, params: scoring.NewParams(o.Config), restoring: map[int]bool{},
		sinkReqs: make(chan *sinkReq)}
	p.client = &kafka.Client{Addr: kafka.TCP(o.Brokers...), Transport: o.Transport, Timeout: 10 * time.Second}
	p.kafka = kafkaClient{p.client}
	// The pace of the old hand-rolled loop: 100 ms doubling to 2 s, ±25%.
	kafkaRetry := retry.Options{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second, Jitter: 0.25}
	p.changelogStage = retry.New(ChangelogStage, kafkaRetry, o.Metrics, o.Logger)
	p.dlqStage = retry.New(DLQStage, kafkaRetry, o.Metrics, o.Logger)
	for t := range p.events {
		name := event.Type(t).String()
		if t == 0 {
			name = "unknown" // rejected before its type was known
		}
		for r, res := range []string{"applied", "duplicate", "rejected"} {
			p.events[t][r] = o.Metrics.Events.WithLabelValues(name, res)
		}
	}
	// Every tier and every possible change starts at zero, so dashboards
	// and rate() see the series before the first account lands there.
	for to := scoring.MassMarket; to <= scoring.Major; to++ {
		p.accounts[to] = o.Metrics.Accounts.WithLabelValues(to.String())
		p.neglected[to] = o.Metrics.Neglected.WithLabelValues(to.String())
		for from := scoring.TierNone; from <= scoring.Major; from++ {
			if from != to {
				p.tierChanges[from][to] = o.Metrics.TierChanges.WithLabelValues(from.String(), to.String())
			}
		}
	}
	return p, nil
}

// neglectedGauge and accountsGauge return the gauges' children for tier t;
// TierNone, which no account should be counted under, is looked up.
func (p *Pipeline) neglectedGauge(t scoring.Tier) prometheus.Gauge {
	return tierGauge(&p.neglected, p.opts.Metrics.Neglected, t)
}

func (p *Pipeline) accountsGauge(t scoring.Tier) prometheus.Gauge {
	return tierGauge(&p.accounts, p.opts.Metrics.Accounts, t)
}

func tierGauge(cached *[5]prometheus.Gauge, vec *prometheus.GaugeVec, t scoring.Tier) prometheus.Gauge {
	if g := cached[t]; g != nil {
		return g
	}
	return vec.WithLabelValues(t.String())
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
	for attempt := 0; ; attempt++ {
		var err error
		if !versionsOK {
			err = checkVersions(ctx, p.client, p.log)
			versionsOK = err == nil
		}
		if err == nil {
			lay, err = checkTopics(ctx, p.client, &p.opts)
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
		if !sleep(ctx, backoff(attempt+1)) {
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
	sinkDone := make(chan struct{})
	sinkQuit := make(chan struct{})
	go func() { defer close(sinkDone); p.sinkLoop(sinkQuit) }()
	defer func() { stopCancel(); close(sinkQuit); <-sinkDone }()

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: o.Group, Brokers: o.Brokers, Dialer: o.Dialer, Topics: o.Topics,
		GroupBalancers:    []kafka.GroupBalancer{copartitioned{}},
		HeartbeatInterval: o.HeartbeatInterval, SessionTimeout: o.SessionTimeout,
		RebalanceTimeout: o.RebalanceTimeout, JoinGroupBackoff: o.JoinGroupBackoff,
		StartOffset: kafka.FirstOffset, Timeout: 10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			p.log.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	p.log.Info("joining consumer group", "group", o.Group, "topics", o.Topics, "partitions", lay.partitions)

	var fatal error
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			if isConfigError(err) {
				// Retrying cannot fix these: say what to change.
				fatal = fmt.Errorf("consumer: joining group %q: %w (check the consumer group settings and the broker's group.min/max.session.timeout.ms and ACLs)", o.Group, err)
				break
			}
			p.log.Warn("joining consumer group failed; retrying", "group", o.Group, "err", err)
			continue
		}
		if fatal = p.generation(ctx, gen); fatal != nil || ctx.Err() != nil {
			break
		}
	}
	p.setStatus(false, nil)

	// Leaving the group lets the partitions move at once instead of after
	// the session timeout; bound it in case the coordinator is gone.
	left := make(chan struct{})
	go func() { cg.Close(); close(left) }()
	select {
	case <-left:
	case <-stop.Done():
		p.log.Warn("leaving the consumer group timed out")
	}
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
	parts := sortedInts(starts)
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

// sinkBurst is how many sink writes may start back to back (see sinkLoop).
const sinkBurst = 4

// sinkReq asks the sink goroutine to write a batch.
type sinkReq struct {
	b    *sink.Batch
	done chan error
}

// writeSink writes b through the sink goroutine and waits until it is
// durable.
func (p *Pipeline) writeSink(b *sink.Batch) error {
	r := &sinkReq{b: b, done: make(chan error, 1)}
	select {
	case p.sinkReqs <- r:
	case <-p.stop.Done():
		return p.stop.Err()
	}
	return <-r.done
}

// sinkLoop is the only caller of Sink.Write, since sinks need not be safe
// for concurrent use. Batches of partitions that asked while a write was
// running go into one write: one fsync or one INSERT per table for all.
// Writes start at most once per CaughtUpFlush/2 on average over any
// sinkBurst writes in a row: caught-up partitions flush at their own
// moments, and ClickHouse wants few, large inserts; the burst lets the
// flushes of partitions that catch up together go without waiting.
func (p *Pipeline) sinkLoop(quit <-chan struct{}) {
	var merged sink.Batch
	gap := max(p.opts.CaughtUpFlush, 0) / 2
	var starts [sinkBurst]time.Time // of the last writes, a ring
	next := 0                       // the oldest
	for {
		var reqs []*sinkReq
		select {
		case r := <-p.sinkReqs:
			reqs = append(reqs, r)
		case <-quit:
			return
		}
		if wait := time.Until(starts[next].Add(sinkBurst * gap)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-quit: // shutting down: write what was asked at once
				t.Stop()
			}
		}
		starts[next], next = time.Now(), (next+1)%sinkBurst
	more:
		for {
			select {
			case r := <-p.sinkReqs:
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		b := reqs[0].b
		if len(reqs) > 1 {
			merged.Reset()
			var n [3]int
			for _, r := range reqs {
				n[0], n[1], n[2] = n[0]+len(r.b.Snapshots), n[1]+len(r.b.Changes), n[2]+len(r.b.Alerts)
			}
			merged.Snapshots = slices.Grow(merged.Snapshots, n[0])
			merged.Changes = slices.Grow(merged.Changes, n[1])
			merged.Alerts = slices.Grow(merged.Alerts, n[2])
			for _, r := range reqs {
				merged.Snapshots = append(merged.Snapshots, r.b.Snapshots...)
				merged.Changes = append(merged.Changes, r.b.Changes...)
				merged.Alerts = append(merged.Alerts, r.b.Alerts...)
			}
			b = &merged
		}
		err := p.opts.Sink.Write(p.stop, b)
		for _, r := range reqs {
			r.done <- err
		}
	}
}

// isConfigError reports group errors that come from configuration, which
// no retry can heal.
func isConfigError(err error) bool {
	for _, e := range []kafka.Error{kafka.InvalidSessionTimeout, kafka.GroupAuthorizationFailed,
		kafka.InconsistentGroupProtocol, kafka.InvalidGroupId, kafka.TopicAuthorizationFailed, kafka.SASLAuthenticationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
