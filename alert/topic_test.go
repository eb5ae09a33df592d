package alert

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
)

func newCluster(t testing.TB, topics ...string) *kfake.Cluster {
	t.Helper()
	return testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
}

func newTestTopic(t testing.TB, c *kfake.Cluster, m *metrics.Metrics) *Topic {
	t.Helper()
	tp := NewTopic(c.ListenAddrs(), kafkaio.Alerts, nil, m, slog.New(slog.DiscardHandler))
	tp.stage = retry.New(TopicStage, fastRetry, tp.m, nil)
	t.Cleanup(func() { tp.Close(context.Background()) })
	return tp
}

// readBack reads n records of topic from the start of partition 0.
func readBack(t testing.TB, c *kfake.Cluster, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.ListenAddrs(),
		Topic:   topic,
		MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s after %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func TestTopicWritesAlerts(t *testing.T) {
	c := newCluster(t, kafkaio.Alerts)
	m := metrics.New(nil)
	tp := newTestTopic(t, c, m)

	alerts := []scoring.Alert{testAlert(1, scoring.StatusOpen), testAlert(2, scoring.StatusOpen), testAlert(1, scoring.StatusResolved)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Write(ctx, batchOf(alerts...)); err != nil {
		t.Fatal(err)
	}
	if err := tp.Healthy(); err != nil {
		t.Errorf("Healthy = %v after a good write", err)
	}
	got := readBack(t, c, kafkaio.Alerts, len(alerts))
	for i, a := range alerts {
		g := got[i]
		if want := a.AppendJSON(nil); string(g.Value) != string(want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, g.Value, want)
		}
		if string(g.Key) != a.AccountID {
			t.Errorf("record %d key %q, want %q", i, g.Key, a.AccountID)
		}
		if testenv.Header(g, HeaderAlertStatus) != a.Status || testenv.Header(g, HeaderAlertID) != a.AlertID || testenv.Header(g, HeaderAlertKind) != a.Kind {
			t.Errorf("record %d headers %+v", i, g.Headers)
		}
	}
	tier := scoring.Major.String()
	if o, r := count(m.AlertsOpened.WithLabelValues(tier)), count(m.AlertsResolved.WithLabelValues(tier)); o != 2 || r != 1 {
		t.Errorf("opened %v resolved %v, want 2 and 1", o, r)
	}
}

// The broker fails the first produce requests with a retriable error; Write
// retries and succeeds, and each alert is in the topic once.
func TestTopicRetriesProduceErrors(t *testing.T) {
	c := newCluster(t, kafkaio.Alerts)
	const failures = 3
	var produces atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if produces.Add(1) > failures {
			return nil, nil, false // let the broker handle it from now on
		}
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = int16(kafka.NotLeaderForPartition)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	tp := newTestTopic(t, c, nil)

	alerts := []scoring.Alert{testAlert(1, scoring.StatusOpen), testAlert(2, scoring.StatusOpen)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := tp.Write(ctx, batchOf(alerts...)); err != nil {
		t.Fatal(err)
	}
	if n := produces.Load(); n <= failures {
		t.Fatalf("%d produce requests, want more than %d", n, failures)
	}
	got := readBack(t, c, kafkaio.Alerts, len(alerts))
	for i, a := range alerts {
		if string(got[i].Value) != string(a.AppendJSON(nil)) {
			t.Errorf("record %d: %s", i, got[i].Value)
		}
	}
	// Nothing beyond the two alerts: a retry must not duplicate them.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.ListenAddrs(), Topic: kafkaio.Alerts, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	r.SetOffset(int64(len(alerts)))
	if m, err := r.ReadMessage(short); err == nil {
		t.Errorf("extra record at offset %d: %s", m.Offset, m.Value)
	}
}

// A write that cannot succeed returns when ctx ends, saying why, and the
// sink reports itself unhealthy.
func TestTopicWriteGivesUpWithContext(t *testing.T) {
	c := newCluster(t, kafkaio.Alerts)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errDown, true // close the connection every time
	})
	tp := newTestTopic(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := tp.Write(ctx, batchOf(testAlert(1, scoring.StatusOpen)))
	if err == nil {
		t.Fatal("Write succeeded against a broker that drops every produce")
	}
	if tp.Healthy() == nil {
		t.Error("Healthy = nil after a failed write")
	}
}

type downError struct{}

func (downError) Error() string { return "broker down (test)" }

var errDown error = downError{}

// End to end through Kafka: a receiver that stays down sends the alert to a
// real pyramid.alerts.dlq topic, headers and all.
func TestWebhookDLQOnKafka(t *testing.T) {
	c := newCluster(t, kafkaio.AlertsDeadLetters)
	r := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	dlq := NewWriter(c.ListenAddrs(), kafkaio.AlertsDeadLetters, nil)
	// Long enough for an answer to come back on a loaded machine: an
	// attempt cut short by MaxElapsed is not counted as a failure.
	w, m := newTestWebhook(t, r.srv.URL, dlq, func(o *Options) { o.MaxElapsed = 3 * time.Second })

	a := testAlert(7, scoring.StatusOpen)
	if err := w.Write(context.Background(), batchOf(a)); err != nil {
		t.Fatal(err)
	}
	got := readBack(t, c, kafkaio.AlertsDeadLetters, 1)[0]
	if string(got.Value) != string(a.AppendJSON(nil)) || string(got.Key) != a.AccountID {
		t.Errorf("dead letter %q: %s", got.Key, got.Value)
	}
	if testenv.Header(got, HeaderDLQReason) != ReasonGaveUp || testenv.Header(got, HeaderAlertID) != a.AlertID {
		t.Errorf("dead letter headers %+v", got.Headers)
	}
	eventually(t, "AlertDLQ", func() bool { return count(m.AlertDLQ) == 1 })
	if count(m.SinkErrors.WithLabelValues(WebhookStage)) < 1 {
		t.Error("no webhook failure counted")
	}
}
