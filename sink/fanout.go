package sink

import (
	"context"
	"errors"
)

// Fanout writes every batch to several sinks in order, for example the
// file sink beside ClickHouse. A batch is durable only when every sink has
// it, so Write stops at the first error: the caller does not commit, and
// the retried batch rewrites the sinks that already had it, which is
// harmless (rows collapse on (account_id, version)).
type Fanout []Sink

// Write writes b to each sink in order and returns the first error.
func (f Fanout) Write(ctx context.Context, b *Batch) error {
	for _, s := range f {
		if err := s.Write(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// Healthy joins the sinks' health errors; nil when all are healthy.
func (f Fanout) Healthy() error {
	var errs []error
	for _, s := range f {
		if err := s.Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every sink, even after one fails, and joins the errors.
func (f Fanout) Close(ctx context.Context) error {
	var errs []error
	for _, s := range f {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
