package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
)

func TestHealable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{kafka.NotLeaderForPartition, true},
		{kafka.RequestTimedOut, true},
		{fmt.Errorf("wrapped: %w", kafka.LeaderNotAvailable), true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{kafka.TopicAuthorizationFailed, false},
		{kafka.MessageSizeTooLarge, false},
		{kafka.MessageTooLargeError{}, false},
		{io.ErrClosedPipe, false},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := healable(tt.err); got != tt.want {
			t.Errorf("healable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// scriptedWriter answers each WriteMessages call with the next error and
// records what it was asked to write.
type scriptedWriter struct {
	errs  []func(n int) error // by call; nil or missing: success
	calls [][]string          // keys per call
}

func (s *scriptedWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = string(m.Key)
	}
	s.calls = append(s.calls, keys)
	if i := len(s.calls) - 1; i < len(s.errs) && s.errs[i] != nil {
		return s.errs[i](len(msgs))
	}
	return nil
}

func msgs(keys ...string) []kafka.Message {
	out := make([]kafka.Message, len(keys))
	for i, k := range keys {
		out[i] = kafka.Message{Key: []byte(k)}
	}
	return out
}

func TestWriteRetryingResendsOnlyFailedRecords(t *testing.T) {
	w := &scriptedWriter{errs: []func(int) error{
		func(int) error { return kafka.WriteErrors{nil, kafka.NotLeaderForPartition, nil} },
	}}
	if err := writeRetrying(context.Background(), w, msgs("a", "b", "c"), fastBackOff(), nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(w.calls) != "[[a b c] [b]]" {
		t.Errorf("calls %v, want [[a b c] [b]]", w.calls)
	}
}

func TestWriteRetryingStopsOnPermanentError(t *testing.T) {
	w := &scriptedWriter{errs: []func(int) error{
		func(int) error { return kafka.WriteErrors{nil, kafka.TopicAuthorizationFailed} },
	}}
	err := writeRetrying(context.Background(), w, msgs("a", "b"), fastBackOff(), nil)
	if !errors.Is(err, kafka.TopicAuthorizationFailed) || len(w.calls) != 1 {
		t.Errorf("err %v after %d calls, want TopicAuthorizationFailed after 1", err, len(w.calls))
	}
}

func TestWriteRetryingReportsLastErrorWhenTimeRunsOut(t *testing.T) {
	always := func(int) error { return kafka.NotEnoughReplicas }
	w := &scriptedWriter{errs: []func(int) error{always, always, always, always, always, always, always, always}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := writeRetrying(ctx, w, msgs("a"), backoff.NewConstantBackOff(5*time.Millisecond), nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), kafka.NotEnoughReplicas.Error()) {
		t.Errorf("err = %v, want the deadline and the last Kafka error", err)
	}
}

func TestRetryAfterHint(t *testing.T) {
	b := &retryAfter{BackOff: backoff.NewConstantBackOff(10 * time.Millisecond)}
	b.hint = 2 * time.Second
	if got := b.NextBackOff(); got != 2*time.Second {
		t.Errorf("with hint: %v, want 2s", got)
	}
	if got := b.NextBackOff(); got != 10*time.Millisecond {
		t.Errorf("hint not cleared: %v", got)
	}
	b.hint = time.Millisecond // shorter than the schedule: the schedule wins
	if got := b.NextBackOff(); got != 10*time.Millisecond {
		t.Errorf("short hint: %v", got)
	}
}
