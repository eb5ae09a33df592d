package repartition_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
	"github.com/pyramid-crm/pyramid/sink"
)

// BenchmarkRepartition streams one generated history through the
// pipeline twice, in the same run, and reports both end-to-end rates:
//
//   - native: the events on the four native topics (12 partitions,
//     keyed by account_id), read by the pipeline;
//   - repartitioned: the same events as Debezium wrote them (gen.Debezium:
//     the JSON converter without schemas, decimals as text) on four
//     source topics of 12 partitions keyed by primary key, declared as
//     inputs: read, mapped and re-keyed by the repartitioner onto
//     pyramid.repartition.<type>, then read by the pipeline.
//
// Both write the file sink (fsync) and the changelog as `pyramid run`
// does. A rate is the history's events over the time from the start
// until the pipeline has committed every event: on the native topics, or
// on the repartition topics once they hold every mapped event (the
// repartitioner's own commit of the source offsets, at its next
// CommitInterval tick, is on no event's way to the sink: it is waited
// for after the clock stops). Each run has a broker of its own, closed
// before the next starts. PYRAMID_BENCH_EVENTS (default 1,000,000, for a
// tenth as many accounts) sizes the history; PYRAMID_BENCH_CPUPROFILE
// profiles the repartitioned run, or the native one with
// PYRAMID_BENCH_PROFILE_NATIVE=1. PYRAMID_BENCH_SPLIT=1 runs the two
// stages of the repartitioned run one after the other, and reports each
// one's seconds: the repartitioner until the repartition topics hold every
// event, then the pipeline, started only then, until it has committed
// them. The ratio is then of the two stages' sum, which tells what each
// stage costs, and how much running them at once adds.
//
// Run it once: go test ./repartition -run '^$' -bench Repartition -benchtime 1x
func BenchmarkRepartition(b *testing.B) {
	events := 1_000_000
	if v := os.Getenv("PYRAMID_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PYRAMID_BENCH_EVENTS=%q", v)
		}
		events = n
	}
	opts := gen.Options{Accounts: max(events/10, 10), Events: events, Seed: 11,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Months: 12}
	split := os.Getenv("PYRAMID_BENCH_SPLIT") == "1"
	for range b.N {
		native, _ := benchRun(b, opts, false, false)
		repartitioned, stages := benchRun(b, opts, true, split)
		b.ReportMetric(native, "native_events/s")
		b.ReportMetric(repartitioned, "repartitioned_events/s")
		b.ReportMetric(repartitioned/native, "ratio")
		fields := map[string]any{
			"benchmark": "repartition", "events": events, "accounts": opts.Accounts, "partitions": benchPartitions,
			"native_events_per_s": int(native), "repartitioned_events_per_s": int(repartitioned),
			"ratio": float64(int(repartitioned/native*1000)) / 1000,
		}
		if split {
			b.ReportMetric(stages[0], "repartitioner_s")
			b.ReportMetric(stages[1], "pipeline_s")
			fields["split"] = true
			fields["native_s"] = float64(events) / native
			fields["repartitioner_s"], fields["pipeline_s"] = stages[0], stages[1]
		}
		line, _ := json.Marshal(fields)
		fmt.Println(string(line))
	}
}

const benchPartitions = 12

// benchRun produces the history (as Debezium records when debezium is
// set) into a fresh broker, then runs the pipeline (and the repartitioner)
// until everything is committed, and returns events per second. With
// split, the pipeline starts once the repartitioner has written
// everything; stages are then the seconds of each.
func benchRun(b *testing.B, opts gen.Options, debezium, split bool) (rate float64, stages [2]float64) {
	b.StopTimer()
	native := kafkaio.InputTopics(kafkaio.DefaultInputPrefix)
	sources := gen.DebeziumTopics(gen.DefaultDebeziumPrefix)
	c := testenv.Kafka(b, kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, append(append([]string{}, native...), sources...)...))
	addrs := c.ListenAddrs()
	g, err := gen.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := gen.Produce(context.Background(), g, gen.ProduceOptions{Brokers: addrs, Debezium: debezium}); err != nil {
		b.Fatal(err)
	}
	b.Logf("produced %d events (debezium %v) in %v", opts.Events, debezium, time.Since(t0).Round(time.Millisecond))

	cfg := config.Default()
	if debezium {
		cfg.Inputs = gen.DebeziumInputs(gen.DefaultDebeziumPrefix)
	}
	fs, err := sink.NewFiles(b.TempDir(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close(context.Background())
	popts := consumer.Options{Brokers: addrs, Topics: native, Group: "bench", Config: cfg, Sink: fs}
	ropts := repartition.Options{Brokers: addrs, Config: cfg, Group: "bench", NativeTopics: native}
	if path := os.Getenv("PYRAMID_BENCH_CPUPROFILE"); path != "" && debezium == (os.Getenv("PYRAMID_BENCH_PROFILE_NATIVE") == "") {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	b.StartTimer()
	cpu0 := testenv.CPUTime()
	t1 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	eg, ectx := errgroup.WithContext(ctx)
	if debezium {
		rep, err := repartition.New(ropts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rep.Prepare(ectx); err != nil {
			b.Fatal(err)
		}
		popts.Topics = append(popts.Topics, repartition.Topics(cfg)...)
		eg.Go(func() error { return rep.Run(ectx) })
	}
	p, err := consumer.New(popts)
	if err != nil {
		b.Fatal(err)
	}
	if !split {
		eg.Go(func() error { return p.Run(ectx) })
	}
	if debezium {
		// Every event of the history maps to one record (none is bad).
		st := g.Stats()
		waitRecords(b, addrs, repartition.Topics(cfg), int64(st.Events-st.Bad))
		stages[0] = time.Since(t1).Seconds()
		b.Logf("repartitioned in %.3fs", stages[0])
		if split {
			eg.Go(func() error { return p.Run(ectx) })
		}
		waitAllCommitted(b, addrs, "bench", repartition.Topics(cfg))
		stages[1] = time.Since(t1).Seconds() - stages[0]
	} else {
		waitAllCommitted(b, addrs, "bench", native)
	}
	elapsed := time.Since(t1)
	cores := (testenv.CPUTime() - cpu0).Seconds() / elapsed.Seconds()
	b.StopTimer()
	if debezium {
		waitAllCommitted(b, addrs, "bench"+repartition.GroupSuffix, sources)
	}
	cancel()
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	if path := os.Getenv("PYRAMID_BENCH_MEMPROFILE"); path != "" && debezium {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	c.Close() // its records are garbage for the next run's collector
	rate = float64(opts.Events) / elapsed.Seconds()
	b.Logf("debezium %v: %d events end to end in %v: %.0f events/s, %.2f cores busy", debezium, opts.Events, elapsed.Round(time.Millisecond), rate, cores)
	return rate, stages
}

// waitRecords waits until topics hold n records.
func waitRecords(tb testing.TB, addrs []string, topics []string, n int64) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		for p := range benchPartitions {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		resp, err := cl.ListOffsets(context.Background(), req)
		if err == nil {
			var got int64
			for _, ps := range resp.Topics {
				for _, p := range ps {
					got += max(p.LastOffset, 0)
				}
			}
			if got >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("topics %v do not hold %d records within 30 minutes", topics, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAllCommitted waits until group has committed the end of every
// partition of topics that holds records.
func waitAllCommitted(tb testing.TB, addrs []string, group string, topics []string) {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	fetch := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, t := range topics {
		for p := range benchPartitions {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
			fetch.Topics[t] = append(fetch.Topics[t], p)
		}
	}
	resp, err := cl.ListOffsets(context.Background(), req)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		got, err := cl.OffsetFetch(context.Background(), fetch)
		if err == nil && got.Error == nil {
			done := true
			for t, ps := range resp.Topics {
				for _, p := range ps {
					for _, c := range got.Topics[t] {
						if c.Partition == p.Partition && p.LastOffset > 0 && c.CommittedOffset < p.LastOffset {
							done = false
						}
					}
				}
			}
			if done {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not commit everything within 30 minutes", group)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
