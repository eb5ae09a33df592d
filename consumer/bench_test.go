package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/sink"
)

// BenchmarkPipeline pre-produces PYRAMID_BENCH_EVENTS events (default
// 1,000,000 for 100,000 accounts on 12 partitions) into an in-process kfake
// broker, then measures:
//
//   - the bare kafka-go consume rate of those messages (one kafka.Reader per
//     topic-partition, nothing done with them);
//   - the whole pipeline (decode, score, file sink with fsync, changelog,
//     commit) until every offset is committed;
//   - latency from Kafka append to durable sink write, on a live phase where
//     events are produced at a steady rate while the pipeline keeps up;
//   - the process's peak RSS (VmHWM; it includes the in-process broker and
//     the generated input).
//
// Run it once: go test ./consumer -run '^$' -bench Pipeline -benchtime 1x
func BenchmarkPipeline(b *testing.B) {
	events := 1_000_000
	if v := os.Getenv("PYRAMID_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PYRAMID_BENCH_EVENTS=%q", v)
		}
		events = n
	}
	accounts := max(events/10, 10)
	const partitions = 12
	for i := 0; i < b.N; i++ {
		benchOnce(b, events, accounts, partitions)
	}
}

func benchOnce(b *testing.B, events, accounts, partitions int) {
	c := newCluster(b, int32(partitions), testTopics)
	addrs := c.ListenAddrs()

	// Pre-produce in chunks so the generated input does not all sit in
	// memory beside the broker's copy.
	t0 := time.Now()
	ends := map[string]map[int]int64{}
	const chunk = 100_000
	for done, k := 0, 0; done < events; k++ {
		n := min(chunk, events-done)
		w := makeWorkloadIDs(fmt.Sprintf("b%d-", k), accounts, n, partitions, 0.001, int64(100+k))
		produceAll(b, addrs, w.msgs)
		for t, ps := range endOffsets(w.msgs) {
			if ends[t] == nil {
				ends[t] = map[int]int64{}
			}
			for p, e := range ps {
				ends[t][p] += e
			}
		}
		done += n
	}
	b.Logf("produced %d events for %d accounts in %v", events, accounts, time.Since(t0).Round(time.Millisecond))

	bare := bareConsume(b, addrs, ends, events)

	fs, err := sink.NewFiles(b.TempDir(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close(context.Background())
	opts := testOptions(addrs, fs)
	opts.FlushInterval = time.Second
	opts.FlushSize = 0 // default
	opts.FetchMaxWait = 0
	// Production group timings: the tests' fast heartbeats would put ten
	// requests a second on the coordinator connection.
	opts.HeartbeatInterval, opts.SessionTimeout, opts.RebalanceTimeout = 0, 0, 0
	// Latencies are what the pipeline observes in
	// pyramid_event_latency_seconds, kept exactly during the live phase.
	opts.Metrics = metrics.New(nil)
	lat := &latencies{Histogram: opts.Metrics.EventLatency}
	opts.Metrics.EventLatency = lat
	if path := os.Getenv("PYRAMID_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
	}
	b.ResetTimer()
	cpu0 := testenv.CPUTime()
	t1 := time.Now()
	r := start(b, opts)
	waitCommitted(b, addrs, "pyramid", ends, 30*time.Minute)
	elapsed := time.Since(t1)
	cpuUsed := (testenv.CPUTime() - cpu0).Seconds() / elapsed.Seconds()
	pprof.StopCPUProfile()
	b.StopTimer()
	rate := float64(events) / elapsed.Seconds()

	// Live phase: a steady 20,000 events/s for 3 s. Everything produced
	// before is durable: only live events are observed from now on.
	lat.live.Store(true)
	liveEvents := min(60_000, events)
	w := makeWorkloadIDs("live-", accounts, liveEvents, partitions, 0, 999)
	const steps = 60
	for k := 0; k < steps; k++ {
		tick := time.Now()
		produceAll(b, addrs, w.msgs[k*len(w.msgs)/steps:(k+1)*len(w.msgs)/steps])
		time.Sleep(time.Until(tick.Add(50 * time.Millisecond)))
	}
	for t, ps := range endOffsets(w.msgs) {
		for p, e := range ps {
			ends[t][p] += e
		}
	}
	waitCommitted(b, addrs, "pyramid", ends, 5*time.Minute)
	r.Stop(b)

	lat.mu.Lock()
	slices.Sort(lat.seconds)
	pct := func(q float64) float64 {
		if len(lat.seconds) == 0 {
			return 0
		}
		return lat.seconds[int(q*float64(len(lat.seconds)-1))] * 1e3
	}
	p50, p99 := pct(0.50), pct(0.99)
	observed := len(lat.seconds)
	lat.mu.Unlock()
	rss := testenv.PeakRSSMB()

	b.ReportMetric(rate, "events/s")
	b.ReportMetric(bare, "bare_events/s")
	b.ReportMetric(rate/bare, "ratio")
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
	b.ReportMetric(rss, "peak_rss_MB")
	line, _ := json.Marshal(map[string]any{
		"benchmark": "pipeline", "events": events, "accounts": accounts, "partitions": partitions,
		"seconds": elapsed.Seconds(), "events_per_s": int(rate), "bare_events_per_s": int(bare),
		"ratio": float64(int(rate/bare*1000)) / 1000, "latency_p50_ms": p50, "latency_p99_ms": p99,
		"latency_events": observed, "peak_rss_mb": rss, "cpu_cores_used": float64(int(cpuUsed*100)) / 100,
	})
	fmt.Println(string(line))
}

// latencies is the pipeline's event latency histogram that also keeps
// every value observed while live is set.
type latencies struct {
	prometheus.Histogram
	live    atomic.Bool
	mu      sync.Mutex
	seconds []float64
}

func (l *latencies) Observe(v float64) {
	l.Histogram.Observe(v)
	if l.live.Load() {
		l.mu.Lock()
		l.seconds = append(l.seconds, v)
		l.mu.Unlock()
	}
}

// bareConsume reads every message once with plain kafka-go Readers, one
// per topic-partition, and returns messages per second.
func bareConsume(tb testing.TB, addrs []string, ends map[string]map[int]int64, total int) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for t, ps := range ends {
		for p, end := range ps {
			wg.Add(1)
			go func(t string, p int, end int64) {
				defer wg.Done()
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: t, Partition: p,
					MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
				defer r.Close()
				for {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						tb.Errorf("bare read %s/%d: %v", t, p, err)
						return
					}
					n.Add(1)
					if m.Offset+1 >= end {
						return
					}
				}
			}(t, p, end)
		}
	}
	wg.Wait()
	d := time.Since(t0)
	if int(n.Load()) != total {
		tb.Errorf("bare consume read %d of %d messages", n.Load(), total)
	}
	return float64(n.Load()) / d.Seconds()
}
