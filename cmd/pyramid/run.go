package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/pyramid-crm/pyramid/alert"
	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/httpapi"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
	"github.com/pyramid-crm/pyramid/view"
)

func init() {
	register("run", "the streaming service: Kafka in, tiers out to ClickHouse or files", cmdRun)
}

// serviceFlags are what `run` and `demo` share.
type serviceFlags struct {
	configPath   string
	sinkDir      string
	clickhouse   string
	noMigrate    bool
	http         string
	logLevel     string
	logFormat    string
	webhook      string
	flushEvery   time.Duration
	reevalEvery  time.Duration
	kafka        kafkaFlags
	shutdownWait time.Duration
}

func (s *serviceFlags) register(fs *flag.FlagSet, httpDefault, logFormat string) {
	fs.StringVar(&s.configPath, "config", os.Getenv("PYRAMID_CONFIG"), "YAML config file (default: built-in defaults) [PYRAMID_CONFIG]")
	fs.StringVar(&s.sinkDir, "sink-dir", os.Getenv("PYRAMID_SINK_DIR"), "write snapshots, tier changes and alerts as JSONL files in DIR [PYRAMID_SINK_DIR]")
	fs.StringVar(&s.clickhouse, "clickhouse", os.Getenv("PYRAMID_CLICKHOUSE_DSN"), "ClickHouse DSN, e.g. clickhouse://user:pass@127.0.0.1:9000/pyramid; prefer the env var for passwords [PYRAMID_CLICKHOUSE_DSN]")
	fs.BoolVar(&s.noMigrate, "no-migrate", envBool("PYRAMID_NO_MIGRATE"), "do not apply ClickHouse migrations at start [PYRAMID_NO_MIGRATE]")
	fs.StringVar(&s.http, "http", envOr("PYRAMID_HTTP", httpDefault), "HTTP listen address for the API, status page and /metrics; empty disables [PYRAMID_HTTP]")
	fs.StringVar(&s.logLevel, "log-level", envOr("PYRAMID_LOG_LEVEL", "info"), "debug, info, warn or error [PYRAMID_LOG_LEVEL]")
	fs.StringVar(&s.logFormat, "log-format", envOr("PYRAMID_LOG_FORMAT", logFormat), "json, text or auto (text on a terminal) [PYRAMID_LOG_FORMAT]")
	fs.StringVar(&s.webhook, "alert-webhook", os.Getenv("PYRAMID_ALERT_WEBHOOK"), "POST every alert as JSON to this URL; signed with HMAC-SHA256 when PYRAMID_ALERT_WEBHOOK_SECRET (or _FILE) is set [PYRAMID_ALERT_WEBHOOK]")
	fs.DurationVar(&s.flushEvery, "flush-interval", time.Second, "flush to the sink at least this often")
	fs.DurationVar(&s.reevalEvery, "reeval-interval", time.Minute, "re-evaluate every owned account at the wall clock this often")
	fs.DurationVar(&s.shutdownWait, "shutdown-timeout", 10*time.Second, "bound on the whole stop after SIGTERM: final flush, commit, group leave and closing the sinks (the webhook's queue included); keep it below the orchestrator's grace period")
	s.kafka.register(fs)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", os.Getenv("PYRAMID_BROKERS"), "Kafka bootstrap brokers HOST:PORT[,...] [PYRAMID_BROKERS]")
	topics := fs.String("topics", envOr("PYRAMID_TOPICS", strings.Join(kafkaio.InputTopics(kafkaio.DefaultInputPrefix), ",")), "native input topics; '' for none (declared inputs only) [PYRAMID_TOPICS]")
	group := fs.String("group", envOr("PYRAMID_GROUP", consumer.DefaultGroup), "consumer group [PYRAMID_GROUP]")
	var sf serviceFlags
	sf.register(fs, "127.0.0.1:8080", "json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *brokers == "" {
		fmt.Fprintln(stderr, "run: --brokers (or PYRAMID_BROKERS) is required")
		return errUsage
	}
	if (sf.sinkDir == "") == (sf.clickhouse == "") {
		fmt.Fprintln(stderr, "run: choose exactly one sink: --sink-dir DIR or --clickhouse DSN")
		return errUsage
	}
	log, err := logging.New(stderr, sf.logLevel, sf.logFormat)
	if err != nil {
		return err
	}
	svc, err := startService(&sf, splitList(*brokers), log)
	if err != nil {
		return err
	}
	native := splitList(*topics)
	if len(native) == 0 && len(svc.cfg.Inputs) == 0 {
		fmt.Fprintln(stderr, "run: nothing to read: --topics is empty and the configuration declares no inputs:")
		return errUsage
	}
	return svc.run(ctx, consumer.Options{Topics: native, Group: *group}, nil)
}

// service is the wired pipeline: sinks, pipeline, view and HTTP server.
// The HTTP server comes first, so that liveness answers at once and
// readiness can say what start-up is waiting for (ClickHouse, the group,
// the state restore); the sinks and the pipeline follow.
type service struct {
	log      *slog.Logger
	cfg      *config.Config
	params   *scoring.Params // cfg compiled, once for every part
	reg      *prometheus.Registry
	metrics  *metrics.Metrics
	store    *view.Store
	sinkDesc string
	brokers  []string
	dialer   *kafka.Dialer
	flags    *serviceFlags
	secret   string // of the alert webhook

	mu      sync.Mutex
	sink    sink.Fanout                // what is open so far
	pipe    *consumer.Pipeline         // nil until the sinks are open
	rep     *repartition.Repartitioner // with declared inputs, once prepared
	waiting error                      // what start-up waits for while pipe is nil
}

// startService loads the configuration and builds what needs no outside
// system; the sinks are opened by run.
func startService(sf *serviceFlags, brokers []string, log *slog.Logger) (*service, error) {
	cfg, err := config.Load(sf.configPath)
	if err != nil {
		return nil, err
	}
	dialer, err := sf.kafka.dialer()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	s := &service{log: log, cfg: cfg, params: scoring.NewParams(cfg), reg: reg, metrics: m, store: view.New(), brokers: brokers, dialer: dialer, flags: sf,
		waiting: errors.New("starting: opening the sinks")}
	s.sinkDesc = "JSONL files in " + sf.sinkDir
	if sf.clickhouse != "" {
		s.sinkDesc = "ClickHouse " + logging.Redact(sf.clickhouse)
	}
	if sf.webhook != "" {
		if s.secret, err = secret("PYRAMID_ALERT_WEBHOOK_SECRET"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// wait records what start-up waits for, for /readyz.
func (s *service) wait(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = err
}

// openSinks opens the sink, the alerts topic and the webhook; with
// ClickHouse it waits, retrying, until the schema migrations are applied.
func (s *service) openSinks(ctx context.Context) error {
	sf, m, log := s.flags, s.metrics, s.log
	add := func(k sink.Sink) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sink = append(s.sink, k)
	}
	switch {
	case sf.clickhouse != "":
		if !sf.noMigrate {
			s.wait(errors.New("waiting for ClickHouse: applying the schema migrations"))
		}
		status := func(err error) {
			if err != nil {
				s.wait(fmt.Errorf("waiting for ClickHouse to apply the schema migrations; the last attempt failed: %w", err))
			}
		}
		ch, err := clickhouse.New(ctx, clickhouse.Options{DSN: sf.clickhouse, Migrate: !sf.noMigrate, MigrateStatus: status,
			LoadWeight: s.params.LoadWeight, Capacity: s.cfg.CoverageCapacity, TierCaps: s.cfg.MaxAccounts()}, m, log.With("component", "clickhouse"))
		if err != nil {
			return err
		}
		add(ch)
	default:
		files, err := sink.NewFiles(sf.sinkDir, m, log.With("component", "files"))
		if err != nil {
			return err
		}
		add(files)
	}
	tr := kafkaio.Transport(s.dialer)
	add(alert.NewTopic(s.brokers, kafkaio.Alerts, tr, m, log.With("component", "alerts")))
	if sf.webhook != "" {
		wh, err := alert.NewWebhook(alert.Options{URL: sf.webhook, Secret: s.secret, DLQ: alert.NewWriter(s.brokers, kafkaio.AlertsDeadLetters, tr)}, m, log.With("component", "webhook"))
		if err != nil {
			return err
		}
		add(wh)
	}
	return nil
}

// close closes the sinks, returning by the time ctx ends.
func (s *service) close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sink.Close(ctx); err != nil {
		s.log.Warn("closing sinks", "err", err)
	}
}

// ready backs /readyz: nil once the pipeline has joined its group and
// restored its partitions and the sinks are healthy, else what it waits
// for.
func (s *service) ready() error {
	s.mu.Lock()
	p, rep, waiting, sinks := s.pipe, s.rep, s.waiting, s.sink
	s.mu.Unlock()
	if p == nil {
		return waiting
	}
	if err := p.Ready(); err != nil {
		return err
	}
	if rep != nil {
		if err := rep.Ready(); err != nil {
			return err
		}
	}
	return sinks.Healthy()
}

// run serves HTTP, opens the sinks, and runs the pipeline until ctx ends;
// with declared inputs, the repartitioner too, whose topics it prepares
// first (they are inputs of the pipeline); then it closes the sinks.
// opts.Topics are the native input topics, none when empty. The whole
// stop keeps within --shutdown-timeout from the moment ctx ends: the
// pipeline's last flush, commit and group leave take what they need of it
// (consumer.Options.ShutdownTimeout), and the sinks close in the rest (the
// webhook's queue, dead letters included). extra runs beside them under
// the same errgroup (the demo's generator).
func (s *service) run(ctx context.Context, opts consumer.Options, extra func(context.Context) error) error {
	token, err := secret("PYRAMID_API_TOKEN")
	if err != nil {
		return err
	}
	var stopped atomic.Int64 // when ctx ended, Unix ns
	defer context.AfterFunc(ctx, func() { stopped.Store(time.Now().UnixNano()) })()
	defer func() {
		from := time.Now()
		if t := stopped.Load(); t != 0 {
			from = time.Unix(0, t)
		}
		cctx, cancel := context.WithDeadline(context.Background(), from.Add(s.flags.shutdownWait))
		defer cancel()
		s.close(cctx)
	}()
	s.log.Info("starting", "brokers", s.brokers, "sink", s.sinkDesc, "http", s.flags.http)
	g, gctx := errgroup.WithContext(ctx)
	if s.flags.http != "" {
		ln, err := net.Listen("tcp", s.flags.http)
		if err != nil {
			return err // at once, before anything else starts
		}
		h := httpapi.New(httpapi.Options{Store: s.store, Gatherer: s.reg, Ready: s.ready, Token: token,
			Params: s.params, Logger: s.log.With("component", "http")})
		g.Go(func() error { return httpapi.Serve(gctx, ln, h, s.log.With("component", "http")) })
	}
	g.Go(func() error {
		if err := s.openSinks(gctx); err != nil {
			return err
		}
		s.mu.Lock()
		opts.Sink = s.sink
		s.mu.Unlock()
		opts.Brokers = s.brokers
		opts.Config = s.cfg
		opts.Params = s.params
		opts.Metrics = s.metrics
		opts.Logger = s.log
		opts.Observe = s.store.Observe
		opts.OnRevoke = s.store.DropPartition
		opts.OnRanking = s.store.SetRanking
		opts.Dialer = s.dialer
		opts.Transport = kafkaio.Transport(s.dialer)
		opts.FlushInterval = s.flags.flushEvery
		opts.ReevalInterval = s.flags.reevalEvery
		opts.ShutdownTimeout = s.flags.shutdownWait
		if len(s.cfg.Inputs) > 0 {
			rep, err := s.repartitioner(gctx, opts)
			if err != nil {
				return err
			}
			opts.Topics = append(slices.Clone(opts.Topics), repartition.Topics(s.cfg)...)
			g.Go(func() error { return rep.Run(gctx) })
		}
		p, err := consumer.New(opts)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.pipe = p
		s.mu.Unlock()
		return p.Run(gctx)
	})
	if extra != nil {
		g.Go(func() error { return extra(gctx) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// repartitioner builds the repartitioner of the declared inputs and
// prepares its topics, with the pipeline's connection settings.
func (s *service) repartitioner(ctx context.Context, opts consumer.Options) (*repartition.Repartitioner, error) {
	s.wait(errors.New("starting: checking the declared inputs and creating the repartition topics"))
	group := opts.Group
	if group == "" {
		group = consumer.DefaultGroup
	}
	rep, err := repartition.New(repartition.Options{
		Brokers: s.brokers, Config: s.cfg, Group: group, NativeTopics: opts.Topics,
		Metrics: s.metrics, Logger: s.log, Dialer: opts.Dialer, Transport: opts.Transport,
		ShutdownTimeout: opts.ShutdownTimeout,
	})
	if err != nil {
		return nil, err
	}
	if _, err := rep.Prepare(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.rep = rep
	s.mu.Unlock()
	return rep, nil
}
