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
