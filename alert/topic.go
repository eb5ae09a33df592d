package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// Kafka record headers on alert records.
const (
	HeaderAlertID     = "pyramid-alert-id"
	HeaderAlertStatus = "pyramid-alert-status"
	HeaderAlertKind   = "pyramid-alert-kind"
)

// MessageWriter writes Kafka records and returns once they are acknowledged
// or failed; *kafka.Writer from NewWriter is one.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// NewWriter returns a synchronous kafka-go writer for topic as the alert
// paths need it: every write waits for all in-sync replicas, records of one
// account land on one partition with the Java client's hash (Murmur2), and
// small batches leave after 5ms. It makes a single attempt per call; the
// callers retry with backoff and honour their context, which kafka-go's own
// retry loop (uninterruptible sleeps) does not. transport carries TLS and
// SASL; nil uses kafka.DefaultTransport.
func NewWriter(brokers []string, topic string, transport kafka.RoundTripper) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  1,
		Transport:    transport,
	}
}

// Topic is the sink that writes every alert of a batch to the alerts topic.
// Write returns only once Kafka acknowledged every record, so an alert is
// never lost between a flush and the offset commit that follows it.
type Topic struct {
	w     *kafka.Writer
	m     *metrics.Metrics
	stage *retry.Stage // retries, health and the sink="alerts_topic" metrics
}

// Stage names: the metric label (sink=...) of each destination here.
const (
	TopicStage   = "alerts_topic"
	WebhookStage = "webhook"
	DLQStage     = "alerts_dlq"
)

// kafkaRetry paces the retries of writes to Kafka.
var kafkaRetry = retry.Options{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

var _ sink.Sink = (*Topic)(nil)

// NewTopic returns a Topic writing to topic (normally kafkaio.Alerts) on
// brokers. transport carries TLS and SASL settings (a *kafka.Transport);
// nil uses kafka.DefaultTransport. m and log may be nil.
func NewTopic(brokers []string, topic string, transport kafka.RoundTripper, m *metrics.Metrics, log *slog.Logger) *Topic {
	if m == nil {
		m = metrics.New(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Topic{
		w:     NewWriter(brokers, topic, transport),
		m:     m,
		stage: retry.New(TopicStage, kafkaRetry, m, log.With("component", "alert.topic", "topic", topic)),
	}
}

// Write writes b.Alerts to the topic, keyed by account_id. It retries
// errors that can heal until ctx ends, resending only the records that
// failed, and returns at once on the others (records too large, topic
// authorization, a closed writer).
func (t *Topic) Write(ctx context.Context, b *sink.Batch) error {
	if len(b.Alerts) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(b.Alerts))
	for i := range b.Alerts {
		msgs[i] = Message(&b.Alerts[i])
	}
	if err := writeAll(ctx, t.stage, t.w, msgs); err != nil {
		return fmt.Errorf("alert: write %d alerts to %s: %w", len(msgs), t.w.Topic, err)
	}
	for i := range b.Alerts {
		a := &b.Alerts[i]
		switch a.Status {
		case scoring.StatusOpen:
			t.m.AlertsOpened.WithLabelValues(a.Tier.String()).Inc()
		case scoring.StatusResolved:
			t.m.AlertsResolved.WithLabelValues(a.Tier.String()).Inc()
		}
	}
	return nil
}

// Healthy returns nil when the last write attempt succeeded, else its
// error.
func (t *Topic) Healthy() error { return t.stage.Healthy() }

// Close closes the Kafka writer. Writes are synchronous, so nothing is
// pending by then: ctx is not needed.
func (t *Topic) Close(context.Context) error { return t.w.Close() }

// Message returns the Kafka record for a: the alert JSON of docs/model.md as value,
// account_id as key (one account's alerts stay in order on one partition),
// and the id, status and kind as headers so consumers can route without
// parsing.
func Message(a *scoring.Alert) kafka.Message {
	return kafka.Message{
		Key:   []byte(a.AccountID),
		Value: a.AppendJSON(nil),
		Headers: []kafka.Header{
			{Key: HeaderAlertID, Value: []byte(a.AlertID)},
			{Key: HeaderAlertStatus, Value: []byte(a.Status)},
			{Key: HeaderAlertKind, Value: []byte(a.Kind)},
		},
	}
}

// writeAll writes msgs with w through stage until all are acknowledged.
// After a partial failure only the failed records are sent again, so a
// retry adds no duplicates.
func writeAll(ctx context.Context, stage *retry.Stage, w MessageWriter, msgs []kafka.Message) error {
	pending := msgs
	return stage.Do(ctx, "", func(ctx context.Context) (bool, error) {
		err := w.WriteMessages(ctx, pending...)
		if err == nil {
			return false, nil
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			failed := make([]kafka.Message, 0, werrs.Count())
			for i, e := range werrs {
				if e == nil {
					continue
				}
				if !kafkaio.Retryable(e) {
					return false, e
				}
				failed = append(failed, pending[i])
			}
			pending = failed
			return true, err
		}
		return kafkaio.Retryable(err), err
	})
}
