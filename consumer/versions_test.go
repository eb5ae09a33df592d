package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// TestStartupRefusesRefusedVersions runs the pipeline against a broker
// emulating Kafka 4.0.0 whose ApiVersions answer is edited so that
// Pyramid would send a version the broker refuses. Run must stop at once,
// before joining the group, naming the broker, the API, the version and
// the release that dropped it; without the check, kafka-go would
// reconnect forever on the closed connections.
func TestStartupRefusesRefusedVersions(t *testing.T) {
	tests := []struct {
		name string
		key  int16
		r    kafkaapi.Range
		want []string
	}{
		{"JoinGroup v1 on 4.0.0 (segmentio/kafka-go#1378)", kafkaapi.JoinGroup, kafkaapi.Range{Min: 2, Max: 1},
			[]string{"broker 0 (", "refuses JoinGroup v1", "Kafka 4.0.0 dropped JoinGroup v0-1", "upgrade the brokers to Kafka 4.0.1 or later"}},
		{"Heartbeat v0 dropped by a release Pyramid does not know", kafkaapi.Heartbeat, kafkaapi.Range{Min: 1, Max: 4},
			[]string{"refuses Heartbeat v0", "newer than this Pyramid knows"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em, err := broker.NewEmulation("4.0.0")
			if err != nil {
				t.Fatal(err)
			}
			c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, testTopics...)}, em.Opts()...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := em.Attach(c); err != nil {
				t.Fatal(err)
			}
			bv := em.Versions()
			bv[tt.key] = tt.r
			c.ControlKey(kafkaapi.ApiVersions, func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
				resp.Version = req.GetVersion()
				for k, r := range bv {
					key := kmsg.NewApiVersionsResponseApiKey()
					key.ApiKey, key.MinVersion, key.MaxVersion = k, r.Min, r.Max
					resp.ApiKeys = append(resp.ApiKeys, key)
				}
				return resp, nil, true
			})

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = Run(ctx, testOptions(c.ListenAddrs(), newMemSink()))
			if ctx.Err() != nil {
				t.Fatalf("Run kept retrying for 30 s: %v", err)
			}
			if err == nil {
				t.Fatal("Run accepted a broker that refuses what Pyramid sends")
			}
			t.Logf("Run: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for r := range em.Sent() {
				if r.Key == kafkaapi.JoinGroup || r.Key == kafkaapi.FindCoordinator {
					t.Errorf("sent %s before refusing", r)
				}
			}
		})
	}
}

// TestStartupSkipsUnreachableBroker: a broker that cannot be asked for its
// versions (here every connection to broker 1 is dropped) is skipped with
// a warning; the others are checked and the pipeline goes on to join the
// group.
func TestStartupSkipsUnreachableBroker(t *testing.T) {
	// The internal topics exist: creating them needs the controller, which
	// may be broker 1.
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, testTopics...),
		kfake.SeedTopics(2, kafkaio.State, kafkaio.DeadLetters, kafkaio.Alerts, kafkaio.AlertsDeadLetters), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ControlKey(kafkaapi.ApiVersions, func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() == 1 {
			return nil, errors.New("broker 1 is down"), true
		}
		return nil, nil, false
	})
	var log testenv.Buffer
	opts := testOptions(c.ListenAddrs()[:1], newMemSink())
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	// Broker 1 refuses every connection (kafka-go opens each with
	// ApiVersions); when it is the group's coordinator, leaving the group
	// waits out the shutdown timeout, which this test is not about.
	opts.ShutdownTimeout = 2 * time.Second
	r := start(t, opts)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), "joining consumer group") {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not get to the group; log:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Stop(t)
	out := log.String()
	if !strings.Contains(out, "cannot ask a broker for its API versions") || !strings.Contains(out, "broker=1") {
		t.Errorf("no warning about broker 1; log:\n%s", out)
	}
	if !strings.Contains(out, `msg="kafka broker API versions" component=consumer broker=0`) {
		t.Errorf("broker 0's versions not logged; log:\n%s", out)
	}
}
