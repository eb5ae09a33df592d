// Package broker runs an in-process Kafka broker for tests, the demo and
// `pyramid broker`. It is a thin wrapper over franz-go's kfake, which speaks
// the real Kafka wire protocol on loopback, so kafka-go, franz-go and
// librdkafka clients such as kcat work against it unchanged. Production runs
// on a real Kafka cluster; nothing in Pyramid depends on this package but the
// tests and the demo.
//
// The broker is a single node. Topics are created on first use (a metadata
// request that allows auto-creation, which producers send) with
// Options.Partitions partitions, or up front from Options.Topics.
//
// kfake accepts nearly every protocol version ever released. With
// Options.Release the broker accepts only what that Kafka release accepts
// and refuses the rest as Kafka does (Emulation): the tests run against
// Kafka 4.1's rules this way, since no JVM broker runs here.
//
// With Options.DataDir set, kfake's own persistence is used: record
// batches are appended to segment files under the directory as they are
// produced, group state (committed offsets) to an append log, and
// everything is synced when the broker closes. Starting again on the same
// directory reloads topics, records (with their offsets) and committed
// offsets. Segment writes are not fsynced per batch, as in Kafka's default:
// a process crash loses nothing the OS accepted, a machine crash may lose
// the tail.
//
// kfake writes its topic list when topics are created by CreateTopics or
// changed by config requests, but not when a metadata request auto-creates
// one; such a topic is only saved by a clean Close, and after a crash its
// records would be orphaned. So while a DataDir is set, Broker polls the
// topic list every checkpointEvery and makes kfake save it (an empty
// IncrementalAlterConfigs, which changes nothing) when a topic appeared. A
// crash within that interval of an auto-creation can still lose the topic;
// topics named in Options.Topics are saved before Start returns.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Defaults used when Options leaves a field zero.
const (
	DefaultListen     = "127.0.0.1:0"
	DefaultPartitions = 12
)

// Options configures Start. The zero value is a memory-only broker on a
// random loopback port with 12 partitions per auto-created topic.
type Options struct {
	// Listen is the host:port to listen on; the default 127.0.0.1:0 picks
	// a free port. Clients are told to reconnect to this same address, so
	// it must be one they can reach.
	Listen string
	// Partitions is the partition count of auto-created and seeded topics;
	// topics reloaded from DataDir keep the count they were created with.
	Partitions int
	// DataDir, if set, persists topics, records and committed offsets
	// there and reloads them on the next Start.
	DataDir string
	// Topics are created at start if they do not exist yet.
	Topics []string
	// Logger receives kfake's log (its per-request lines at debug); nil
	// discards it.
	Logger *slog.Logger
	// Release, if set, makes the broker accept only the protocol versions
	// of that Kafka release (one of kafkaapi.Releases, e.g. "4.1"); see
	// Emulation.
	Release string
}

// checkpointEvery is how often a persistent broker looks for auto-created
// topics that kfake has not saved yet.
const checkpointEvery = 250 * time.Millisecond

// Broker is a running in-process Kafka broker.
type Broker struct {
	c    *kfake.Cluster
	em   *Emulation // nil without Options.Release
	once sync.Once
	log  *logger
	err  error // from Close

	// Persistent brokers only: the topic checkpointer.
	cl     *kgo.Client
	saved  map[string]bool
	cancel context.CancelFunc
	done   chan struct{}
}

// Start listens and returns a running broker.
func Start(opts Options) (*Broker, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Partitions == 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Partitions < 1 {
		return nil, fmt.Errorf("broker: partitions must be at least 1, not %d", opts.Partitions)
	}
	if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
		return nil, fmt.Errorf("broker: listen address %q is not host:port: %w", opts.Listen, err)
	}
	var em *Emulation
	if opts.Release != "" {
		var err error
		if em, err = NewEmulation(opts.Release); err != nil {
			return nil, err
		}
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake always asks for 127.0.0.1:<port>; we listen where we were
		// told instead, and kfake advertises whatever we bound.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, opts.Listen)
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.ClusterID("pyramid"),
	}
	log := &logger{l: opts.Logger}
	if log.l == nil {
		log.l = slog.New(slog.DiscardHandler)
	}
	kopts = append(kopts, kfake.WithLogger(log))
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if em != nil {
		kopts = append(kopts, em.Opts()...)
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("broker: start on %s: %w", opts.Listen, err)
	}
	b := &Broker{c: c, em: em, log: log}
	if em != nil {
		if err := em.Attach(c); err != nil {
			return nil, errors.Join(err, b.Close())
		}
	}
	// Seeded topics (kfake.SeedTopics) are ignored when state is reloaded
	// from DataDir, so create missing ones here in both cases.
	for _, t := range opts.Topics {
		if c.TopicInfo(t) != nil {
			continue
		}
		if err := c.CreateTopic(t, int32(opts.Partitions), nil); err != nil {
			return nil, errors.Join(fmt.Errorf("broker: create topic %q: %w", t, err), b.Close())
		}
	}
	if opts.DataDir != "" {
		if err := b.startCheckpoints(); err != nil {
			return nil, errors.Join(fmt.Errorf("broker: %w", err), b.Close())
		}
	}
	return b, nil
}

// Addrs returns the host:port the broker listens on, for clients' seed
// brokers.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster returns the underlying kfake cluster, for tests that inject
// faults, trigger compaction or inspect groups.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Emulation returns the release emulation of Options.Release, nil
// without one.
func (b *Broker) Emulation() *Emulation { return b.em }

// Close stops listening and, with a DataDir, writes the remaining state to
// disk. It is safe to call more than once. An error means state may not
// have been saved.
func (b *Broker) Close() error {
	b.once.Do(func() {
		if b.cancel != nil {
			b.cancel()
			<-b.done
			b.cl.Close()
		}
		b.log.capture(true)
		b.c.Close()
		if errs := b.log.capture(false); len(errs) > 0 {
			b.err = fmt.Errorf("broker: close: %w", errors.Join(errs...))
		}
	})
	return b.err
}

func (b *Broker) startCheckpoints() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return err
	}
	b.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	// Everything that exists now was loaded from disk or created by
	// CreateTopic, both of which are saved.
	names, err := b.topics(ctx)
	if err != nil {
		cancel()
		cl.Close()
		b.cancel = nil
		return fmt.Errorf("list topics: %w", err)
	}
	b.saved = make(map[string]bool, len(names))
	for _, n := range names {
		b.saved[n] = true
	}
	go b.checkpoints(ctx)
	return nil
}

func (b *Broker) checkpoints(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := b.checkpoint(ctx); err != nil && ctx.Err() == nil {
			b.log.l.Warn("saving the topic list failed; retrying", "err", err)
		}
	}
}

// checkpoint makes kfake save its topic list if a topic appeared since the
// last save.
func (b *Broker) checkpoint(ctx context.Context) error {
	names, err := b.topics(ctx)
	if err != nil {
		return err
	}
	var fresh string
	for _, n := range names {
		if !b.saved[n] {
			fresh = n
			break
		}
	}
	if fresh == "" {
		return nil
	}
	// Altering no config of a topic saves every topic.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = fresh
	req.Resources = append(req.Resources, r)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, b.cl)
	if err != nil {
		return err
	}
	for _, rr := range resp.Resources {
		if rr.ErrorCode != 0 {
			return fmt.Errorf("save topics via %s: error code %d", fresh, rr.ErrorCode)
		}
	}
	for _, n := range names {
		b.saved[n] = true
	}
	return nil
}

// topics lists the topics the broker knows.
func (b *Broker) topics(ctx context.Context) ([]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(rctx, b.cl)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 && t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	return names, nil
}

// logger adapts slog to kfake's Logger. While capturing, it also keeps
// error-level messages: kfake logs failures to save state on Close rather
// than returning them.
type logger struct {
	l    *slog.Logger
	mu   sync.Mutex
	on   bool
	errs []error
}

// capture starts (on) or stops keeping errors, returning those kept.
func (l *logger) capture(on bool) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs
	l.on, l.errs = on, nil
	return errs
}

func (l *logger) Logf(level kfake.LogLevel, format string, args ...any) {
	if level == kfake.LogLevelError {
		l.mu.Lock()
		if l.on {
			l.errs = append(l.errs, fmt.Errorf(format, args...))
		}
		l.mu.Unlock()
	}
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		// kfake logs every request at info: that is debug for us.
		lv = slog.LevelDebug
	default:
		lv = slog.LevelDebug - 4
	}
	ctx := context.Background()
	if !l.l.Enabled(ctx, lv) {
		return
	}
	l.l.Log(ctx, lv, fmt.Sprintf(format, args...))
}
