package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
)

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

func TestWriteAllResendsOnlyFailedRecords(t *testing.T) {
	w := &scriptedWriter{errs: []func(int) error{
		func(int) error { return kafka.WriteErrors{nil, kafka.NotLeaderForPartition, nil} },
	}}
	if err := writeAll(context.Background(), retry.New("test", fastRetry, nil, nil), w, msgs("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(w.calls) != "[[a b c] [b]]" {
		t.Errorf("calls %v, want [[a b c] [b]]", w.calls)
	}
}

func TestWriteAllStopsOnPermanentError(t *testing.T) {
	w := &scriptedWriter{errs: []func(int) error{
		func(int) error { return kafka.WriteErrors{nil, kafka.TopicAuthorizationFailed} },
	}}
	err := writeAll(context.Background(), retry.New("test", fastRetry, nil, nil), w, msgs("a", "b"))
	if !errors.Is(err, kafka.TopicAuthorizationFailed) || len(w.calls) != 1 {
		t.Errorf("err %v after %d calls, want TopicAuthorizationFailed after 1", err, len(w.calls))
	}
}

func TestWriteAllReportsLastErrorWhenTimeRunsOut(t *testing.T) {
	always := func(int) error { return kafka.NotEnoughReplicas }
	w := &scriptedWriter{errs: []func(int) error{always, always, always, always, always, always, always, always}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := writeAll(ctx, retry.New("test", fastRetry, nil, nil), w, msgs("a"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), kafka.NotEnoughReplicas.Error()) {
		t.Errorf("err = %v, want the deadline and the last Kafka error", err)
	}
}
