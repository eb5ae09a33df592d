// Package kafkaio holds what every part of Pyramid that talks to Kafka
// shares, so that each fact has one home: the names of the topics, the
// producer transport built from the connection settings, and which write
// errors can heal by themselves (Retryable); the one interface writes and
// commits go through, which tests wrap to inject faults (Writer), and
// bounded, retried, ordered produces over it (Produce); reading a
// partition by whole fetch responses (Fetcher); the dead-letter record and
// its headers (DeadLetter); and the source position a repartitioned record
// carries (Source).
package kafkaio

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic names. The input topics are the defaults of `pyramid run --topics`
// and what `pyramid gen` and the demo produce to; the others are created by
// the pipeline when missing.
const (
	// DefaultInputPrefix prefixes the four per-type input topics.
	DefaultInputPrefix = "crm."
	// State is the compacted changelog of every account's state.
	State = "pyramid.state"
	// DeadLetters receives input events that cannot be applied.
	DeadLetters = "pyramid.dlq"
	// Alerts receives every neglect alert, keyed by account_id.
	Alerts = "pyramid.alerts"
	// AlertsDeadLetters receives alerts the webhook could not deliver.
	AlertsDeadLetters = "pyramid.alerts.dlq"
	// Capacity carries every partition's candidates for the capped tiers.
	Capacity = "pyramid.capacity"
)

// InputTopics returns the four per-type input topics under prefix, in the
// order orders, opportunities, activities, accounts.
func InputTopics(prefix string) []string {
	return []string{prefix + "orders", prefix + "opportunities", prefix + "activities", prefix + "accounts"}
}

// InputTopicFor returns the input topic under prefix for an event of type
// typ; events whose type cannot be read go to the activities topic.
func InputTopicFor(prefix, typ string) string {
	switch typ {
	case "order":
		return prefix + "orders"
	case "opportunity":
		return prefix + "opportunities"
	case "account":
		return prefix + "accounts"
	}
	return prefix + "activities"
}

// Dialer returns Pyramid's dialer without TLS or SASL: a 10 s timeout,
// both IP families, client id "pyramid".
func Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, ClientID: "pyramid"}
}

// The fetch bounds of the pipeline and the repartitioner, unless set: the
// long-poll wait of a fetch, and the bytes one fetch of one partition
// brings.
const (
	DefaultFetchMaxWait  = 250 * time.Millisecond
	DefaultFetchMaxBytes = 512 << 10
)

// Transport returns the producer and admin transport matching d's TLS,
// SASL and client id. Metadata is cached for a second only, so a topic the
// pipeline has just created is seen by the next produce.
func Transport(d *kafka.Dialer) *kafka.Transport {
	return &kafka.Transport{TLS: d.TLS, SASL: d.SASLMechanism, ClientID: d.ClientID, MetadataTTL: time.Second}
}

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
