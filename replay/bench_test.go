package replay

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/gen"
)

// benchInput builds the replay benchmark input once: by default 1,000,000
// events for 100,000 accounts (PYRAMID_BENCH_EVENTS and
// PYRAMID_BENCH_ACCOUNTS shrink it).
func benchInput(tb testing.TB) ([]byte, int) {
	tb.Helper()
	n, accounts := envInt("PYRAMID_BENCH_EVENTS", 1_000_000), envInt("PYRAMID_BENCH_ACCOUNTS", 100_000)
	g, err := gen.New(gen.Options{Accounts: accounts, Events: n, Seed: 42})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := g.WriteJSONL(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), n
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkReplay reports replay throughput (events/s on one core) and heap
// bytes per account retained after the replay.
func BenchmarkReplay(b *testing.B) {
	in, n := benchInput(b)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	var accounts int
	var heapPerAccount float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		sum, res, err := Run(Options{Config: config.Default(), Input: bytes.NewReader(in), Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		accounts = sum.Accounts
		heapPerAccount = float64(after.HeapAlloc-before.HeapAlloc) / float64(accounts)
		runtime.KeepAlive(res)
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(heapPerAccount, "heap-B/account")
	b.ReportMetric(float64(accounts), "accounts")
}
