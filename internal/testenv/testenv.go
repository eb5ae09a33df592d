// Package testenv holds what the integration tests and benchmarks of
// several packages share: the ClickHouse server they test against, a
// private server a test may stop, and process measurements. A missing
// dependency skips a test on a developer's machine and fails it under
// CI=true, where a skipped integration test would hide a broken build.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require skips the test with msg, or fails it under CI=true.
func Require(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// ClickHouseDSN returns the shared test server, PYRAMID_TEST_CLICKHOUSE_DSN
// (scripts/test.sh starts one).
func ClickHouseDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("PYRAMID_TEST_CLICKHOUSE_DSN")
	if dsn == "" {
		Require(tb, "PYRAMID_TEST_CLICKHOUSE_DSN is not set; run scripts/test.sh, or: "+
			"DIR=$(mktemp -d); export PYRAMID_TEST_CLICKHOUSE_DSN=$(bash scripts/clickhouse.sh start $DIR)")
	}
	return dsn
}

// HasClickHouseServer reports whether a clickhouse-server binary is installed.
func HasClickHouseServer() bool {
	if _, err := exec.LookPath("clickhouse-server"); err == nil {
		return true
	}
	_, err := os.Stat("/usr/sbin/clickhouse-server")
	return err == nil
}

// ClickHouseScript runs scripts/clickhouse.sh cmd dir and returns its stdout.
func ClickHouseScript(tb testing.TB, cmd, dir string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "clickhouse.sh")
	var stderr strings.Builder
	c := exec.Command("bash", script, cmd, dir)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		tb.Fatalf("clickhouse.sh %s %s: %v\n%s", cmd, dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// PrivateClickHouse starts a ClickHouse server of the test's own, which it
// may stop and start (ClickHouseScript) without disturbing tests of other
// packages that share PYRAMID_TEST_CLICKHOUSE_DSN. It is stopped at cleanup.
func PrivateClickHouse(t testing.TB) (dsn, dir string) {
	t.Helper()
	if !HasClickHouseServer() {
		Require(t, "no clickhouse-server binary (apt-get install clickhouse-server): cannot run a private server to stop")
	}
	dir = filepath.Join(t.TempDir(), "ch")
	dsn = ClickHouseScript(t, "start", dir)
	t.Cleanup(func() { ClickHouseScript(t, "stop", dir) })
	return dsn, dir
}

// PeakRSSMB reads the process's peak resident set (VmHWM) in MiB.
func PeakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// CPUTime returns the process's user + system CPU time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Background is a service run in a goroutine for a test, like a pipeline's
// Run: it returns when its context ends.
type Background struct {
	cancel context.CancelFunc
	// Done receives what the run returned; a reader that takes it must put
	// a value back if the test's cleanup is to find it.
	Done chan error
}

// Go starts run. The test's cleanup cancels it and waits for it up to 15 s.
func Go(tb testing.TB, run func(context.Context) error) *Background {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Background{cancel: cancel, Done: make(chan error, 1)}
	go func() { b.Done <- run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-b.Done:
		case <-time.After(15 * time.Second):
		}
	})
	return b
}

// Cancel cancels the run's context without waiting.
func (b *Background) Cancel() { b.cancel() }

// Stop cancels the run and fails the test unless it returns nil within
// 10 s (the graceful-stop bound of docs/operations.md runs: flush, commit, leave).
func (b *Background) Stop(tb testing.TB) {
	tb.Helper()
	t0 := time.Now()
	b.cancel()
	select {
	case err := <-b.Done:
		if err != nil {
			tb.Fatalf("Run returned %v", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			tb.Fatalf("stopping took %v", d)
		}
	case <-time.After(15 * time.Second):
		tb.Fatal("Run did not return within 15 s of cancel")
	}
	b.Done <- nil
}

var nonIdent = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// DatabaseDSN names a ClickHouse database of the test's own (prefix, the
// test's name and a random suffix) and returns serverDSN pointing at it.
// The caller creates and drops it.
func DatabaseDSN(tb testing.TB, serverDSN, prefix string) (dsn, db string) {
	tb.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(nonIdent.ReplaceAllString(tb.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	db = prefix + name + "_" + hex.EncodeToString(b[:])
	u, err := url.Parse(serverDSN)
	if err != nil {
		tb.Fatalf("bad DSN: %v", err)
	}
	u.Path = "/" + db
	return u.String(), db
}

// Buffer collects output written by another goroutine or process, safe to
// read while it is written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
