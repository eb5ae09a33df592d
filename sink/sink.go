// Package sink is where scored output leaves Pyramid: snapshots, tier
// changes and alerts are handed over in batches and made durable.
//
// Sink is the port the pipeline writes to (modelled on Benthos's
// BatchOutput). Implementations: Files (JSONL files, fsynced) in this
// package and ClickHouse in sink/clickhouse. The pipeline commits input
// offsets only after Write returned nil, so Write must not return before
// every row is durable, and writing the same batch twice must be harmless
// (rows carry (account_id, version) and collapse downstream).
package sink

import (
	"context"

	"github.com/pyramid-crm/pyramid/scoring"
)

// Batch is what one flush hands to a sink. Snapshots hold only the newest
// snapshot of each account that changed since the last flush.
type Batch struct {
	Snapshots []scoring.Snapshot
	Changes   []scoring.TierChange
	Alerts    []scoring.Alert
}

// Len returns the number of rows in the batch.
func (b *Batch) Len() int { return len(b.Snapshots) + len(b.Changes) + len(b.Alerts) }

// Reset empties the batch, keeping capacity.
func (b *Batch) Reset() {
	b.Snapshots = b.Snapshots[:0]
	b.Changes = b.Changes[:0]
	b.Alerts = b.Alerts[:0]
}

// Sink makes batches durable.
type Sink interface {
	// Write returns nil only once every row of b is durable. It retries
	// errors that can heal until ctx is done, and returns at once with a
	// descriptive error for those that cannot.
	Write(ctx context.Context, b *Batch) error
	// Healthy returns nil when the last write succeeded, else why not; it
	// feeds readiness.
	Healthy() error
	// Close releases the sink once the pipeline has stopped. It returns
	// by the time ctx ends: a service stopping within a bound passes it
	// here.
	Close(ctx context.Context) error
}
