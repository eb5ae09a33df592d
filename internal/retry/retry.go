// Package retry is the one retry stage of Pyramid's outputs, after
// Alertmanager's notify.RetryStage: every destination (the file and
// ClickHouse sinks, the alerts topic and its dead-letter topic, the alert
// webhook, the state and dead-letter topics of the pipeline) makes single
// attempts and says only whether a failure can heal by itself; a Stage owns
// the rest. It retries with exponential backoff and jitter
// (cenkalti/backoff/v4) until the attempt succeeds, fails for good, or the
// caller's context ends, remembers the destination's health, and counts
// failures and retries in pyramid_sink_errors_total,
// pyramid_sink_retries_total and pyramid_sink_up under the label
// sink=<destination>.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyramid-crm/pyramid/metrics"
)

// Op makes one attempt. It returns retry = true when err can heal by
// itself (a network error, an overloaded or restarting server), so that
// the same attempt is worth repeating later, and false for errors that
// need a person (bad credentials, a missing table, a record too large).
type Op func(ctx context.Context) (retry bool, err error)

// Options shape the backoff between attempts. Zero values take the
// defaults named on each field.
type Options struct {
	Initial    time.Duration // first wait; default 100ms
	Max        time.Duration // longest wait; default 5s
	Multiplier float64       // growth per attempt; default 1.5
	// Jitter spreads each wait uniformly over ±Jitter of it, so that
	// partitions retrying together do not hit a recovering server in step;
	// default 0.5.
	Jitter float64
}

// Stage retries the attempts of one destination and tracks its health. It
// is safe for concurrent use.
type Stage struct {
	name string
	opts Options
	log  *slog.Logger

	errors, retries prometheus.Counter
	up              prometheus.Gauge

	mu      sync.Mutex
	failing map[string]error // the last error of each part whose last attempt failed
}

// New returns the stage of destination name, which labels its metrics and
// logs. m and log may be nil.
func New(name string, o Options, m *metrics.Metrics, log *slog.Logger) *Stage {
	if o.Initial <= 0 {
		o.Initial = 100 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 5 * time.Second
	}
	if o.Multiplier <= 1 {
		o.Multiplier = 1.5
	}
	if o.Jitter <= 0 || o.Jitter > 1 {
		o.Jitter = 0.5
	}
	if m == nil {
		m = metrics.New(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stage{
		name: name, opts: o, log: log,
		errors:  m.SinkErrors.WithLabelValues(name),
		retries: m.SinkRetries.WithLabelValues(name),
		up:      m.SinkUp.WithLabelValues(name),
		failing: map[string]error{},
	}
	s.up.Set(1)
	return s
}

// Name returns the destination's name, the value of the sink label.
func (s *Stage) Name() string { return s.name }

// Do runs op until it succeeds, fails with an error it does not call
// retryable, or ctx ends; it makes no attempt once ctx has ended. part
// names what op writes to within the destination (a table, a partition;
// "" for the whole): the destination is healthy when the last attempt at
// every part succeeded, so a part that keeps failing is not hidden by
// writes to the others. Every failed attempt counts as an error and every
// wait as a retry; an attempt that fails because ctx ended is not the
// destination's fault and counts as neither. When ctx ends after a
// failure, the error returned wraps both ctx's error and the last failure,
// so the caller can say what kept failing.
func (s *Stage) Do(ctx context.Context, part string, op Op) error {
	var last error
	attempts := 0
	bo := &hinted{BackOff: s.newBackOff()}
	err := backoff.RetryNotify(func() error {
		if err := ctx.Err(); err != nil {
			return backoff.Permanent(err) // nothing is attempted after the end
		}
		attempts++
		retry, err := op(ctx)
		if err == nil {
			s.setHealth(part, nil)
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(err) // cut short by the caller
		}
		last = err
		s.errors.Inc()
		s.setHealth(part, err)
		if !retry {
			return backoff.Permanent(err)
		}
		var a *afterError
		if errors.As(err, &a) {
			bo.hint = a.wait
		}
		return err
	}, backoff.WithContext(bo, ctx), func(err error, wait time.Duration) {
		s.retries.Inc()
		// Every failure, with the wait before the next attempt: an
		// operator watching a full disk or a down server sees each one.
		// The backoff bounds the rate (at most one line per Options.Max
		// once it has grown).
		args := []any{"sink", s.name, "attempt", attempts, "err", err, "retry_in", wait.Round(time.Millisecond)}
		if part != "" {
			args = append(args, "part", part)
		}
		s.log.Warn("write failed; retrying", args...)
	})
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("%s: gave up after %d attempts (%w); last error: %w", s.name, attempts, ctx.Err(), last)
	}
	return err
}

func (s *Stage) newBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.opts.Initial),
		backoff.WithMaxInterval(s.opts.Max),
		backoff.WithMultiplier(s.opts.Multiplier),
		backoff.WithRandomizationFactor(s.opts.Jitter),
		backoff.WithMaxElapsedTime(0), // until ctx ends: nothing may be lost
	)
}

func (s *Stage) setHealth(part string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if _, failing := s.failing[part]; !failing {
			return
		}
		delete(s.failing, part)
	} else {
		s.failing[part] = err
	}
	if len(s.failing) == 0 {
		s.up.Set(1)
	} else {
		s.up.Set(0)
	}
}

// Healthy returns nil when the last attempt at every part of the
// destination succeeded (or none was made), else the error of a failing
// part.
func (s *Stage) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range slices.Sorted(maps.Keys(s.failing)) {
		return s.failing[p]
	}
	return nil
}

// After marks err as asking for at least wait before the next attempt, as
// an HTTP Retry-After header does. Do waits the longer of wait and its own
// backoff.
func After(wait time.Duration, err error) error {
	return &afterError{wait: wait, err: err}
}

type afterError struct {
	wait time.Duration
	err  error
}

func (e *afterError) Error() string { return e.err.Error() }
func (e *afterError) Unwrap() error { return e.err }

// hinted waits at least as long as the last failure asked for.
type hinted struct {
	backoff.BackOff
	hint time.Duration
}

func (h *hinted) NextBackOff() time.Duration {
	next := h.BackOff.NextBackOff()
	if next != backoff.Stop && h.hint > next {
		next = h.hint
	}
	h.hint = 0
	return next
}
