// Package kafkaio holds what every part of Pyramid that talks to Kafka
// shares, so that each fact has one home: which write errors can heal by
// themselves.
package kafkaio

import (
	"context"
	"errors"
	"io"

	"github.com/segmentio/kafka-go"
)

// Retryable reports whether a Kafka write error can go away by itself:
// broker-side retriable codes (leader moves, timeouts, not enough
// replicas), network trouble and timeouts. Records too large,
// authorization and configuration errors, and a closed writer need someone
// to fix something.
func Retryable(err error) bool {
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	if errors.Is(err, io.ErrClosedPipe) || errors.Is(err, context.Canceled) {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	// The rest are mostly I/O (net.Error, EOF, reset connections): retry
	// them rather than fail a flush that would succeed a moment later.
	return true
}
