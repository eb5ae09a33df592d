package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
)

// TestKafkaFollowsEnv checks the switch scripts/test.sh flips: with
// PYRAMID_TEST_KAFKA=4.0.0 the test broker advertises Kafka 4.0.0's
// JoinGroup v2-9, without it kfake's own v0-9.
func TestKafkaFollowsEnv(t *testing.T) {
	for _, tt := range []struct {
		env string
		min int16
	}{{"4.0.0", 2}, {"", 0}} {
		t.Run("release="+tt.env, func(t *testing.T) {
			t.Setenv(KafkaEnv, tt.env)
			c := Kafka(t, kfake.NumBrokers(1))
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range resp.ApiKeys {
				if k.ApiKey == kafkaapi.JoinGroup && k.MinVersion != tt.min {
					t.Errorf("JoinGroup advertised from v%d, want v%d", k.MinVersion, tt.min)
				}
			}
		})
	}
}
