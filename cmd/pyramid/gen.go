package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

func init() {
	register("gen", "generate a deterministic, realistic CRM event stream (JSONL or to Kafka)", cmdGen)
}

func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	accounts := fs.Int("accounts", 1000, "number of accounts")
	events := fs.Int("events", 100_000, "exact number of events (at least --accounts)")
	seed := fs.Uint64("seed", 1, "random seed; the same flags give the same bytes")
	start := fs.String("start", gen.DefaultStart.Format(time.RFC3339), "RFC 3339 time of the first event (a streaming consumer rejects events more than 24 h in its future)")
	months := fs.Int("months", 13, "calendar months the stream spans")
	badRatio := fs.Float64("bad-ratio", 0, "share of events replaced by deliberately bad ones, 0 to <1")
	dupRatio := fs.Float64("dup-ratio", 0.002, "share of events resent with the same event_id (0 for none)")
	currencies := fs.String("currencies", "", "foreign currencies with their rates, e.g. EUR=1.08,GBP=1.27 (must match fx_rates of the config that reads the stream)")
	foreignShare := fs.Float64("foreign-share", 0.1, "share of accounts trading in one of --currencies")
	output := fs.String("output", "-", "JSONL file to write, or - for stdout (ignored with --brokers)")
	brokers := fs.String("brokers", "", "produce to Kafka instead: HOST:PORT[,HOST:PORT...]")
	rate := fs.Float64("rate", 0, "with --brokers: events per second (0 = as fast as possible)")
	prefix := fs.String("topic-prefix", "", "with --brokers: prefix of the topics orders, opportunities, activities, accounts (default "+kafkaio.DefaultInputPrefix+", with --format debezium "+gen.DefaultDebeziumPrefix+")")
	format := fs.String("format", "native", "native: Pyramid's events; debezium: the same facts as Debezium change records of a CRM database, keyed by primary key (JSON lines of topic, key and value without --brokers; read them with the inputs: of docs/events.md)")
	var kf kafkaFlags
	kf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := gen.Options{
		Accounts:       *accounts,
		Events:         *events,
		Seed:           *seed,
		Months:         *months,
		BadRatio:       *badRatio,
		DuplicateRatio: *dupRatio,
	}
	if *format != "native" && *format != "debezium" {
		return fmt.Errorf("--format %q: must be native or debezium", *format)
	}
	debezium := *format == "debezium"
	if *dupRatio == 0 {
		opts.DuplicateRatio = -1
	}
	var err error
	if opts.Start, err = time.Parse(time.RFC3339Nano, *start); err != nil {
		return fmt.Errorf("--start %q is not an RFC 3339 time (e.g. 2025-01-01T00:00:00Z)", *start)
	}
	if *currencies != "" {
		opts.Currencies = map[string]float64{}
		for _, kv := range strings.Split(*currencies, ",") {
			code, r, ok := strings.Cut(strings.TrimSpace(kv), "=")
			rate, perr := strconv.ParseFloat(r, 64)
			if !ok || code == "" || perr != nil || !(rate > 0) {
				return fmt.Errorf("--currencies: %q is not CODE=RATE with a positive rate (e.g. EUR=1.08)", kv)
			}
			opts.Currencies[code] = rate
		}
		opts.ForeignShare = *foreignShare
	}
	g, err := gen.New(opts)
	if err != nil {
		return err
	}
	began := time.Now()
	if *brokers != "" {
		d, err := kf.dialer()
		if err != nil {
			return err
		}
		popts := gen.ProduceOptions{Brokers: splitList(*brokers), TopicPrefix: *prefix, Rate: *rate, Transport: kafkaio.Transport(d), Debezium: debezium}
		return genProduce(ctx, g, popts, began, stderr)
	}
	var w io.Writer = stdout
	var f *os.File
	if *output != "-" {
		if f, err = os.Create(*output); err != nil {
			return err
		}
		w = f
	}
	if debezium {
		err = writeDebezium(ctx, g, *prefix, w)
	} else {
		err = writeCancelable(ctx, g, w)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	st := g.Stats()
	fmt.Fprintf(stderr, "gen: %d events (%d bad, %d duplicates) for %d accounts in %s\n",
		st.Events, st.Bad, st.Duplicates, opts.Accounts, time.Since(began).Round(time.Millisecond))
	return nil
}

// writeCancelable is WriteJSONL that stops when ctx is cancelled.
func writeCancelable(ctx context.Context, g *gen.Generator, w io.Writer) error {
	const chunk = 4096
	for g.Remaining() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := g.WriteN(w, chunk); err != nil {
			return err
		}
	}
	return nil
}

// writeDebezium writes the generator's events as Debezium change records,
// one JSON line each: {"topic": ..., "key": ..., "value": ...}.
func writeDebezium(ctx context.Context, g *gen.Generator, prefix string, w io.Writer) error {
	d := &gen.Debezium{Prefix: prefix}
	bw := bufio.NewWriterSize(w, 1<<16)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, ok := g.Next()
		if !ok {
			break
		}
		topic, key, value := d.Record(rec)
		fmt.Fprintf(bw, "{\"topic\":%q,\"key\":%s,\"value\":%s}\n", topic, key, value)
	}
	return bw.Flush()
}

func genProduce(ctx context.Context, g *gen.Generator, opts gen.ProduceOptions, began time.Time, stderr io.Writer) error {
	if isTerminal(stderr) {
		opts.Progress = func(n int64) {
			fmt.Fprintf(stderr, "\rgen: %d events produced, %.0f/s ", n, float64(n)/time.Since(began).Seconds())
		}
	}
	n, err := gen.Produce(ctx, g, opts)
	if opts.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	st := g.Stats()
	prefix := opts.TopicPrefix
	if prefix == "" {
		prefix = map[bool]string{false: kafkaio.DefaultInputPrefix, true: gen.DefaultDebeziumPrefix}[opts.Debezium]
	}
	fmt.Fprintf(stderr, "gen: produced %d events (%d bad, %d duplicates) to %s* in %s\n",
		n, st.Bad, st.Duplicates, prefix, time.Since(began).Round(time.Millisecond))
	if errors.Is(err, context.Canceled) {
		return nil // stopped by a signal: not a failure
	}
	return err
}
