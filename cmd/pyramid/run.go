package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/pyramid-crm/pyramid/alert"
	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/httpapi"
	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/metrics"
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
	fs.DurationVar(&s.shutdownWait, "shutdown-timeout", 10*time.Second, "bound on the final flush, commit and group leave")
	s.kafka.register(fs)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", os.Getenv("PYRAMID_BROKERS"), "Kafka bootstrap brokers HOST:PORT[,...] [PYRAMID_BROKERS]")
	topics := fs.String("topics", envOr("PYRAMID_TOPICS", "crm.orders,crm.opportunities,crm.activities,crm.accounts"), "input topics [PYRAMID_TOPICS]")
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
	svc, err := startService(ctx, &sf, splitList(*brokers), log)
	if err != nil {
		return err
	}
	defer svc.close()
	return svc.run(ctx, consumer.Options{Topics: splitList(*topics), Group: *group}, nil)
}

// service is the wired pipeline: sinks, pipeline, view and HTTP server.
type service struct {
	log      *slog.Logger
	cfg      *config.Config
	reg      *prometheus.Registry
	metrics  *metrics.Metrics
	store    *view.Store
	sink     sink.Fanout
	sinkDesc string
	brokers  []string
	dialer   *kafka.Dialer
	flags    *serviceFlags
}

func startService(ctx context.Context, sf *serviceFlags, brokers []string, log *slog.Logger) (*service, error) {
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
	s := &service{log: log, cfg: cfg, reg: reg, metrics: m, store: view.New(), brokers: brokers, dialer: dialer, flags: sf}
	params := scoring.NewParams(cfg)
	switch {
	case sf.clickhouse != "":
		ch, err := clickhouse.New(ctx, clickhouse.Options{DSN: sf.clickhouse, Migrate: !sf.noMigrate, LoadWeight: params.LoadWeight, Capacity: cfg.CoverageCapacity}, m, log.With("component", "clickhouse"))
		if err != nil {
			return nil, err
		}
		s.sink = append(s.sink, ch)
		s.sinkDesc = "ClickHouse " + logging.Redact(sf.clickhouse)
	default:
		files, err := sink.NewFiles(sf.sinkDir, m, log.With("component", "files"))
		if err != nil {
			return nil, err
		}
		s.sink = append(s.sink, files)
		s.sinkDesc = "JSONL files in " + sf.sinkDir
	}
	tr := transport(dialer)
	s.sink = append(s.sink, alert.NewTopic(brokers, alert.DefaultTopic, tr, m, log.With("component", "alerts")))
	if sf.webhook != "" {
		secretValue, err := secret("PYRAMID_ALERT_WEBHOOK_SECRET")
		if err != nil {
			s.close()
			return nil, err
		}
		wh, err := alert.NewWebhook(alert.Options{URL: sf.webhook, Secret: secretValue, DLQ: alert.NewWriter(brokers, alert.DefaultDLQTopic, tr)}, m, log.With("component", "webhook"))
		if err != nil {
			s.close()
			return nil, err
		}
		s.sink = append(s.sink, wh)
	}
	return s, nil
}

func (s *service) close() {
	if err := s.sink.Close(); err != nil {
		s.log.Warn("closing sinks", "err", err)
	}
}

// run runs the pipeline and the HTTP server until ctx ends. extra runs
// beside them under the same errgroup (the demo's generator).
func (s *service) run(ctx context.Context, opts consumer.Options, extra func(context.Context) error) error {
	token, err := secret("PYRAMID_API_TOKEN")
	if err != nil {
		return err
	}
	opts.Brokers = s.brokers
	opts.Config = s.cfg
	opts.Sink = s.sink
	opts.Metrics = s.metrics
	opts.Logger = s.log
	opts.Observe = s.store.Observe
	opts.OnRevoke = s.store.DropPartition
	opts.Dialer = s.dialer
	opts.Transport = transport(s.dialer)
	opts.FlushInterval = s.flags.flushEvery
	opts.ReevalInterval = s.flags.reevalEvery
	opts.ShutdownTimeout = s.flags.shutdownWait
	p, err := consumer.New(opts)
	if err != nil {
		return err
	}
	ready := func() error {
		if err := p.Ready(); err != nil {
			return err
		}
		return s.sink.Healthy()
	}
	s.log.Info("starting", "brokers", s.brokers, "sink", s.sinkDesc, "http", s.flags.http)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(gctx) })
	if s.flags.http != "" {
		h := httpapi.New(httpapi.Options{Store: s.store, Gatherer: s.reg, Ready: ready, Token: token,
			Params: scoring.NewParams(s.cfg), Logger: s.log.With("component", "http")})
		g.Go(func() error { return httpapi.ListenAndServe(gctx, s.flags.http, h, s.log.With("component", "http")) })
	}
	if extra != nil {
		g.Go(func() error { return extra(gctx) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}
