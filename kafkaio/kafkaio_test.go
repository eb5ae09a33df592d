package kafkaio

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{kafka.NotLeaderForPartition, true},
		{kafka.RequestTimedOut, true},
		{kafka.NotEnoughReplicas, true},
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
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestInputTopics(t *testing.T) {
	topics := InputTopics(DefaultInputPrefix)
	if fmt.Sprint(topics) != "[crm.orders crm.opportunities crm.activities crm.accounts]" {
		t.Errorf("InputTopics = %v", topics)
	}
	for typ, want := range map[string]string{"order": topics[0], "opportunity": topics[1], "activity": topics[2], "account": topics[3], "fax": topics[2]} {
		if got := InputTopicFor(DefaultInputPrefix, typ); got != want {
			t.Errorf("InputTopicFor(%q) = %s, want %s", typ, got, want)
		}
	}
}
