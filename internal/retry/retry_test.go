package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pyramid-crm/pyramid/metrics"
)

var (
	errHeals = errors.New("connection refused")
	errFinal = errors.New("table missing")
)

func fast(m *metrics.Metrics) *Stage {
	return New("test", Options{Initial: time.Millisecond, Max: 2 * time.Millisecond}, m, nil)
}

// script answers attempt i with results[i]; past the end, success.
func script(results ...error) (Op, *int) {
	n := 0
	return func(context.Context) (bool, error) {
		i := n
		n++
		if i < len(results) && results[i] != nil {
			return results[i] == errHeals, results[i]
		}
		return false, nil
	}, &n
}

func TestDo(t *testing.T) {
	for _, tc := range []struct {
		name                string
		results             []error
		wantErr             error
		attempts            int
		errors, retries, up float64
		healthy             bool
	}{
		{"first attempt", nil, nil, 1, 0, 0, 1, true},
		{"heals", []error{errHeals, errHeals}, nil, 3, 2, 2, 1, true},
		{"permanent at once", []error{errFinal}, errFinal, 1, 1, 0, 0, false},
		{"permanent after retries", []error{errHeals, errFinal}, errFinal, 2, 2, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(nil)
			s := fast(m)
			op, n := script(tc.results...)
			err := s.Do(context.Background(), "", op)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Do = %v, want %v", err, tc.wantErr)
			}
			if *n != tc.attempts {
				t.Errorf("%d attempts, want %d", *n, tc.attempts)
			}
			got := [3]float64{testutil.ToFloat64(m.SinkErrors.WithLabelValues("test")),
				testutil.ToFloat64(m.SinkRetries.WithLabelValues("test")), testutil.ToFloat64(m.SinkUp.WithLabelValues("test"))}
			if want := [3]float64{tc.errors, tc.retries, tc.up}; got != want {
				t.Errorf("errors, retries, up = %v, want %v", got, want)
			}
			if (s.Healthy() == nil) != tc.healthy {
				t.Errorf("Healthy = %v, want healthy %v", s.Healthy(), tc.healthy)
			}
		})
	}
}

// When the context ends while a write keeps failing, the error says both
// that time ran out and what kept failing.
func TestDoGivesUpWithTheLastError(t *testing.T) {
	s := fast(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := s.Do(ctx, "", func(context.Context) (bool, error) { return true, errHeals })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errHeals) || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("Do = %v, want the deadline and the last error", err)
	}
	if !errors.Is(s.Healthy(), errHeals) {
		t.Errorf("Healthy = %v, want the last error", s.Healthy())
	}
}

// Nothing is attempted once the context has ended, and an attempt cut short
// by the context is not the destination's failure.
func TestDoAfterTheEnd(t *testing.T) {
	m := metrics.New(nil)
	s := fast(m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	op, n := script()
	if err := s.Do(ctx, "", op); !errors.Is(err, context.Canceled) || *n != 0 {
		t.Errorf("Do after cancel = %v with %d attempts, want Canceled and none", err, *n)
	}
	ctx, cancel = context.WithCancel(context.Background())
	err := s.Do(ctx, "", func(context.Context) (bool, error) {
		cancel()
		return true, context.Canceled
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want Canceled", err)
	}
	if e := testutil.ToFloat64(m.SinkErrors.WithLabelValues("test")); e != 0 || s.Healthy() != nil {
		t.Errorf("an attempt cut short by the caller counted: errors %v, health %v", e, s.Healthy())
	}
}

// A part that keeps failing keeps the destination unhealthy however well
// the other parts go.
func TestHealthByPart(t *testing.T) {
	m := metrics.New(nil)
	s := fast(m)
	ctx := context.Background()
	fail := func(context.Context) (bool, error) { return false, errFinal }
	ok := func(context.Context) (bool, error) { return false, nil }
	s.Do(ctx, "snapshots", fail)
	s.Do(ctx, "alerts", ok)
	if !errors.Is(s.Healthy(), errFinal) || testutil.ToFloat64(m.SinkUp.WithLabelValues("test")) != 0 {
		t.Fatalf("Healthy = %v with one part failing", s.Healthy())
	}
	s.Do(ctx, "snapshots", ok)
	if s.Healthy() != nil || testutil.ToFloat64(m.SinkUp.WithLabelValues("test")) != 1 {
		t.Errorf("Healthy = %v once every part succeeded", s.Healthy())
	}
}

// After makes the next wait at least as long as the failure asked.
func TestAfter(t *testing.T) {
	s := fast(nil)
	op, _ := script()
	first := true
	start := time.Now()
	err := s.Do(context.Background(), "", func(ctx context.Context) (bool, error) {
		if first {
			first = false
			return true, After(80*time.Millisecond, errHeals)
		}
		return op(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("retried after %v, want at least the 80ms asked for", d)
	}
	if e := After(time.Second, errHeals); !errors.Is(e, errHeals) || e.Error() != errHeals.Error() {
		t.Errorf("After hides the error: %v", e)
	}
}
