package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Member is one member's life in a consumer group, as the pipeline and
// the repartitioner both live it: join, run every generation, leave.
type Member struct {
	Who      string // names the member in its errors: "consumer", "repartition"
	Group    string
	Brokers  []string
	Dialer   *kafka.Dialer
	Topics   []string
	Balancer kafka.GroupBalancer
	// WatchPartitionChanges ends the generation when a topic gains
	// partitions, so that the next one assigns them.
	WatchPartitionChanges bool
	// Consumer group timing; zero: kafka-go's defaults (3s, 30s, 30s, 5s).
	HeartbeatInterval, SessionTimeout, RebalanceTimeout, JoinGroupBackoff time.Duration
	Log                                                                   *slog.Logger
	// Leaving, when set, is called once the member stops taking part, just
	// before it leaves the group.
	Leaving func()
}

// Run joins the group and calls generation for every generation it is
// given, until ctx ends, generation returns an error, or joining fails in
// a way retrying cannot fix (ConfigError); other join failures are
// retried. Then it leaves the group, which lets the partitions move at
// once instead of after the session timeout, waiting for that until stop
// ends (the coordinator may be gone). It returns generation's error as it
// is, or the join failure.
func (m *Member) Run(ctx, stop context.Context, generation func(context.Context, *kafka.Generation) error) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: m.Group, Brokers: m.Brokers, Dialer: m.Dialer, Topics: m.Topics,
		GroupBalancers: []kafka.GroupBalancer{m.Balancer}, WatchPartitionChanges: m.WatchPartitionChanges,
		HeartbeatInterval: m.HeartbeatInterval, SessionTimeout: m.SessionTimeout,
		RebalanceTimeout: m.RebalanceTimeout, JoinGroupBackoff: m.JoinGroupBackoff,
		StartOffset: kafka.FirstOffset, Timeout: 10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			m.Log.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", m.Who, err)
	}
	var fatal error
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			if ConfigError(err) {
				// Retrying cannot fix these: say what to change.
				fatal = fmt.Errorf("%s: joining group %q: %w (check the consumer group settings and the broker's group.min/max.session.timeout.ms and ACLs)", m.Who, m.Group, err)
				break
			}
			m.Log.Warn("joining consumer group failed; retrying", "group", m.Group, "err", err)
			continue
		}
		if fatal = generation(ctx, gen); fatal != nil || ctx.Err() != nil {
			break
		}
	}
	if m.Leaving != nil {
		m.Leaving()
	}
	left := make(chan struct{})
	go func() { cg.Close(); close(left) }()
	select {
	case <-left:
	case <-stop.Done():
		m.Log.Warn("leaving the consumer group timed out")
	}
	return fatal
}

// ConfigError reports whether joining a group failed for a reason that
// someone must fix (a session timeout the broker refuses, a missing ACL,
// bad credentials), not one that heals by itself.
func ConfigError(err error) bool {
	for _, e := range []kafka.Error{kafka.InvalidSessionTimeout, kafka.GroupAuthorizationFailed,
		kafka.InconsistentGroupProtocol, kafka.InvalidGroupId, kafka.TopicAuthorizationFailed, kafka.SASLAuthenticationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
