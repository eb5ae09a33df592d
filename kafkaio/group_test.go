package kafkaio_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

func member(addrs []string, session time.Duration, leaving *atomic.Int32) *kafkaio.Member {
	return &kafkaio.Member{Who: "test", Group: "g", Brokers: addrs, Dialer: kafkaio.Dialer(), Topics: []string{"in"},
		Balancer: kafka.RoundRobinGroupBalancer{}, HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: session,
		RebalanceTimeout: time.Second, JoinGroupBackoff: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		Leaving: func() { leaving.Add(1) }}
}

// A member runs its generation until its context ends, then says it is
// leaving and leaves: the generation is given the partitions, and Run
// returns nothing to report.
func TestMemberRunsGenerationsAndLeaves(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(3, "in"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	var leaving atomic.Int32
	m := member(c.ListenAddrs(), 2*time.Second, &leaving)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var parts atomic.Int32
	err := m.Run(ctx, context.Background(), func(ctx context.Context, gen *kafka.Generation) error {
		parts.Store(int32(len(gen.Assignments["in"])))
		cancel() // shutdown
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if parts.Load() != 3 || leaving.Load() != 1 {
		t.Errorf("the generation had %d partitions (want 3); Leaving was called %d times (want 1)", parts.Load(), leaving.Load())
	}
}

// A generation's error ends Run, and is returned as it is.
func TestMemberReturnsTheGenerationsError(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "in"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	var leaving atomic.Int32
	boom := errors.New("boom")
	err := member(c.ListenAddrs(), 2*time.Second, &leaving).Run(context.Background(), context.Background(),
		func(context.Context, *kafka.Generation) error { return boom })
	if err != boom || leaving.Load() != 1 {
		t.Errorf("Run = %v (want boom as it is); Leaving called %d times", err, leaving.Load())
	}
}

// A join the broker refuses for a reason only a person can fix (here a
// session timeout below the broker's group.min.session.timeout.ms) ends
// Run at once with an error that says what to check, instead of retrying
// forever.
func TestMemberStopsOnConfigError(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "in"), kfake.GroupMinSessionTimeout(10*time.Second))
	var leaving atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := member(c.ListenAddrs(), time.Second, &leaving).Run(ctx, context.Background(),
		func(context.Context, *kafka.Generation) error {
			t.Error("a generation started with a session timeout the broker refuses")
			return nil
		})
	if ctx.Err() != nil {
		t.Fatal("Run retried until the deadline")
	}
	if !errors.Is(err, kafka.InvalidSessionTimeout) || !strings.Contains(err.Error(), `test: joining group "g"`) ||
		!strings.Contains(err.Error(), "group.min/max.session.timeout.ms") {
		t.Errorf("Run = %v", err)
	}
}

func TestConfigError(t *testing.T) {
	for err, want := range map[error]bool{
		kafka.InvalidSessionTimeout: true, kafka.GroupAuthorizationFailed: true, kafka.SASLAuthenticationFailed: true,
		kafka.TopicAuthorizationFailed: true, kafka.RebalanceInProgress: false, kafka.GroupCoordinatorNotAvailable: false,
		context.DeadlineExceeded: false,
	} {
		if got := kafkaio.ConfigError(err); got != want {
			t.Errorf("ConfigError(%v) = %v, want %v", err, got, want)
		}
	}
}
