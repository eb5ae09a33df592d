package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

// The test binary runs as a pipeline child process when childEnv is set:
// a process the crash test can kill -9 in the middle of a flush, which no
// in-process stop can imitate exactly.
const (
	childEnv        = "PYRAMID_E2E_CHILD"
	childBrokersEnv = "PYRAMID_E2E_BROKERS"
	childDSNEnv     = "PYRAMID_E2E_DSN"
	childGroupEnv   = "PYRAMID_E2E_GROUP"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs the pipeline with the ClickHouse sink until SIGTERM (or
// until it is killed).
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s, err := clickhouse.New(ctx, clickhouse.Options{DSN: os.Getenv(childDSNEnv),
		AttemptTimeout: 5 * time.Second, RetryInitial: 50 * time.Millisecond, RetryMax: time.Second}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer s.Close(context.Background())
	addrs, group := strings.Split(os.Getenv(childBrokersEnv), ","), os.Getenv(childGroupEnv)
	if os.Getenv(childInputsEnv) != "" {
		err = runChildInputs(ctx, addrs, group, s)
	} else {
		err = consumer.Run(ctx, pipelineOptions(addrs, topics, group, s))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestCrashRestart kills the pipeline while events flow and it writes to
// ClickHouse: three times as a process (SIGKILL: nothing more is flushed,
// committed or closed), once in-process with no time to flush (the context
// cancelled with a ShutdownTimeout of 1 ns). Each time the next run
// restores the state from the changelog and re-reads from the committed
// offsets, so some rows reach ClickHouse twice. At the end those rows have
// collapsed (count() FINAL = uniqExact(account_id, version)) and
// account_latest matches the replay of the same events (compareLatest,
// interleaved): nothing missing, nothing applied twice.
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	dsn, conn := freshDB(t, testDSN(t))
	w := newWorkload(t, 300, 4000, 2)
	gold := w.golden(t)
	b := newBroker(t, partitions, topics...)
	addrs := b.ListenAddrs()
	const group = "e2e-crash"

	// Events flow during the crashes: 4,000 at 250 per second.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	t0 := time.Now()
	go func() {
		_, err := w.produce(ctx, addrs, 250)
		produced <- err
	}()
	flowing := func() string {
		select {
		case err := <-produced:
			produced <- err
			return "after the producer finished"
		default:
			return "while events flow"
		}
	}

	// progress waits until the group committed more than last.
	all := endOffsets(t, addrs, topics, partitions) // only the layout is used
	var last int64
	progress := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			c, err := committed(addrs, group, all)
			if err == nil && c.total() > last {
				last = c.total()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no offset committed within 60 s (last %d, err %v)", what, last, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 1; i <= 3; i++ {
		cmd, out := startChild(t, addrs, dsn, group)
		progress(fmt.Sprintf("child %d", i))
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		killChild(t, cmd, out)
		c, _ := committed(addrs, group, all)
		last = c.total()
		t.Logf("killed child %d %s, %v in, %d offsets committed", i, flowing(), time.Since(t0).Round(time.Millisecond), c.total())
	}

	// In-process: cancel with no time for the final flush, commit or leave.
	s := newSink(t, dsn)
	opts := pipelineOptions(addrs, topics, group, s)
	opts.ShutdownTimeout = time.Nanosecond
	r := start(t, opts)
	progress("in-process run")
	time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	r.Cancel()
	select {
	case err := <-r.Done:
		c, _ := committed(addrs, group, all)
		last = c.total()
		t.Logf("stopped in-process run without time to flush %s (Run: %v), %d offsets committed", flowing(), err, c.total())
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of cancel with ShutdownTimeout 1ns")
	}
	r.Done <- nil

	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	ends := endOffsets(t, addrs, topics, partitions)
	s2 := newSink(t, dsn)
	r2 := start(t, pipelineOptions(addrs, topics, group, s2))
	waitCommitted(t, addrs, group, ends, 90*time.Second)
	r2.Stop(t)
	t.Logf("%d events, all committed %v after the start", ends.total(), time.Since(t0).Round(time.Millisecond))

	checkCollapsed(t, conn, len(gold.snaps))
	// Versions: see versionFits; events flowed during the runs.
	compareLatest(t, conn, gold, interleaved, unbounded)
}
