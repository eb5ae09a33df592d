package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/view"
)

func init() {
	register("demo", "everything in one process: embedded Kafka, a live generated CRM stream, the pipeline, the status page", cmdDemo)
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 0, "stop after this long (default: run until Ctrl-C)")
	dir := fs.String("dir", "var", "working folder for the file sink and a started ClickHouse")
	accounts := fs.Int("accounts", 2000, "accounts in the generated stream")
	events := fs.Int("events", 200_000, "events of generated history (13 months, ending now), produced before the pipeline starts")
	rate := fs.Float64("rate", 50, "live events per second after the history (stamped with the wall clock)")
	seed := fs.Uint64("seed", 1, "generator seed")
	partitions := fs.Int("partitions", 12, "partitions of the embedded broker's topics")
	var sf serviceFlags
	sf.register(fs, "127.0.0.1:8080", "auto")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sf.reevalEvery = min(sf.reevalEvery, 15*time.Second)
	log, err := logging.New(stderr, envOr("PYRAMID_LOG_LEVEL", "warn"), sf.logFormat)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	b, err := broker.Start(broker.Options{Partitions: *partitions, Topics: kafkaio.InputTopics(kafkaio.DefaultInputPrefix), Logger: log.With("component", "broker")})
	if err != nil {
		return err
	}
	defer b.Close()

	// The sink: ClickHouse when given or startable from an installed
	// binary, else JSONL files.
	if sf.clickhouse == "" && sf.sinkDir == "" {
		if dsn, stop, err := startLocalClickHouse(filepath.Join(*dir, "clickhouse")); err == nil {
			sf.clickhouse = dsn
			defer stop()
		} else {
			sf.sinkDir = filepath.Join(*dir, "sink")
			fmt.Fprintf(stderr, "demo: no ClickHouse (%v); writing JSONL files instead\n", err)
		}
	}
	svc, err := startService(&sf, b.Addrs(), log)
	if err != nil {
		return err
	}

	now := time.Now().UTC()
	history, err := gen.New(gen.Options{Accounts: *accounts, Events: *events, Seed: *seed,
		Start: now.AddDate(0, -13, 0).Add(-time.Hour), Months: 13})
	if err != nil {
		return err
	}
	url := "http://" + sf.http
	fmt.Fprintf(stdout, `Pyramid demo
  status page   %s/
  account API   %s/v1/tiers   %s/v1/accounts/acc-000001
  metrics       %s/metrics
  Kafka broker  %s  (topics %s)
  sink          %s
  stream        %d events of history for %d accounts (13 months ending now), then %.0f live events/s
Ctrl-C stops it.

`, url, url, url, url, strings.Join(b.Addrs(), ","), strings.Join(kafkaio.InputTopics(kafkaio.DefaultInputPrefix), ","), svc.sinkDesc, *events, *accounts, *rate)

	// The history goes in before the pipeline starts, as a real backfill
	// would: the pipeline judges it at its own stream time, then moves to
	// the wall clock once caught up.
	t0 := time.Now()
	if _, err := gen.Produce(ctx, history, gen.ProduceOptions{Brokers: b.Addrs()}); err != nil {
		return fmt.Errorf("demo: producing the history: %w", err)
	}
	fmt.Fprintf(stdout, "demo: %d events of history produced in %s; scoring them now\n", *events, time.Since(t0).Round(time.Millisecond))

	produce := func(ctx context.Context) error {
		live, err := gen.New(gen.Options{Accounts: *accounts, Events: 10_000_000, Seed: *seed + 1})
		if err != nil {
			return err
		}
		_, err = gen.Produce(ctx, live, gen.ProduceOptions{Brokers: b.Addrs(), Rate: *rate, Stamp: time.Now})
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("demo live stream: %w", err)
		}
		return nil
	}
	report := func(ctx context.Context) error {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				fmt.Fprint(stdout, textPyramid(svc.store.Tiers()))
			}
		}
	}
	err = svc.run(ctx, consumer.Options{}, func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- report(ctx) }()
		err := produce(ctx)
		<-done
		return err
	})
	if c := svc.store.Tiers(); c.Accounts > 0 { // empty once partitions are released
		fmt.Fprint(stdout, textPyramid(c))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return err
}

// textPyramid renders the tier counts for a terminal, major on top.
func textPyramid(c view.Counts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %d accounts, %d neglected\n", time.Now().UTC().Format(time.TimeOnly), c.Accounts, c.Neglected)
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		row := 3 - i // 0 at the top
		label := fmt.Sprintf("%s %d", strings.ReplaceAll(t.String(), "_", " "), c.Tiers[t.String()])
		width := 16 + 8*row
		left := (width - len(label)) / 2
		fmt.Fprintf(&b, "  %s/%s%s%s\\\n", strings.Repeat(" ", 12-4*row), strings.Repeat(" ", left), label, strings.Repeat(" ", width-left-len(label)))
	}
	return b.String()
}

// startLocalClickHouse starts a private ClickHouse from an installed
// binary with scripts/clickhouse.sh (run from the repository root, as
// `make demo` does) and returns its DSN.
func startLocalClickHouse(dir string) (dsn string, stop func(), err error) {
	script := filepath.Join("scripts", "clickhouse.sh")
	if _, err := os.Stat(script); err != nil {
		return "", nil, errors.New("scripts/clickhouse.sh not found (run from the repository root)")
	}
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/clickhouse-server"); err2 != nil {
			return "", nil, errors.New("clickhouse-server is not installed")
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", nil, err
	}
	out, err := exec.Command("bash", script, "start", abs).Output()
	if err != nil {
		return "", nil, fmt.Errorf("starting ClickHouse: %w", err)
	}
	return strings.TrimSpace(string(out)), func() { _ = exec.Command("bash", script, "stop", abs).Run() }, nil
}
