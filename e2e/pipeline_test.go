package e2e

import (
	"context"
	"testing"
	"time"
)

// TestPipelineMatchesReplay runs generated events through the pipeline
// into ClickHouse and compares account_latest, column by column, with the
// replay of the same events at the same clock (Options.Now = --as-of).
//
// one_topic puts every event in one input topic, so the pipeline applies
// each account's events in the replay's order: every column must be equal,
// version, as_of and tier_reason included. per_type_topics is the real
// layout (orders, opportunities, activities and accounts each in their own
// topic): the final state must still be equal in every column, but
// tier_reason and version, which record the path (see pathColumns), need
// only explain the tier and the applied events.
func TestPipelineMatchesReplay(t *testing.T) {
	t.Parallel()
	serverDSN := testDSN(t)
	w := newWorkload(t, 300, 4000, 1)
	golden := w.golden(t)

	run := func(t *testing.T, ins []string, produce func(addrs []string) error, mode compareMode) {
		dsn, conn := freshDB(t, serverDSN)
		b := newBroker(t, partitions, ins...)
		addrs := b.ListenAddrs()
		if err := produce(addrs); err != nil {
			t.Fatal(err)
		}
		ends := endOffsets(t, addrs, ins, partitions)
		t.Logf("produced %d events into %v, %d partitions each", ends.total(), ins, partitions)

		s := newSink(t, dsn)
		const group = "e2e-straight"
		t0 := time.Now()
		r := start(t, pipelineOptions(addrs, ins, group, s))
		waitCommitted(t, addrs, group, ends, 90*time.Second)
		t.Logf("every offset committed after %v", time.Since(t0).Round(time.Millisecond))
		if err := r.p.Ready(); err != nil {
			t.Errorf("Ready: %v", err)
		}
		if err := s.Healthy(); err != nil {
			t.Errorf("sink Healthy: %v", err)
		}
		r.Stop(t)

		checkCollapsed(t, conn, len(golden.snaps))
		compareLatest(t, conn, golden, mode, 3)
	}
	t.Run("one_topic", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"crm.events"}, func(addrs []string) error {
			return w.produceOne(context.Background(), addrs, "crm.events")
		}, exact)
	})
	t.Run("per_type_topics", func(t *testing.T) {
		t.Parallel()
		run(t, topics, func(addrs []string) error {
			_, err := w.produce(context.Background(), addrs, 0)
			return err
		}, interleaved)
	})
}
