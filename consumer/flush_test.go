package consumer

import (
	"testing"
	"time"
)

// While a partition backfills, its interval flushes come every
// backfillFlushes intervals; otherwise every interval.
func TestIntervalFlushWhileBackfilling(t *testing.T) {
	w := &worker{p: &Pipeline{opts: Options{FlushInterval: time.Second}}}
	w.fl.sealedAt = time.Unix(1000, 0)
	tick := func(s float64) time.Time { return w.fl.sealedAt.Add(time.Duration(s * float64(time.Second))) }
	if !w.intervalDue(tick(1)) {
		t.Error("caught up: a tick after the last flush is not due")
	}
	w.clk.backfill = true
	for _, s := range []float64{1, 2, 3, 4} {
		if w.intervalDue(tick(s)) {
			t.Errorf("backfilling: due %v s after the last flush", s)
		}
	}
	if !w.intervalDue(tick(backfillFlushes)) {
		t.Errorf("backfilling: not due %d s after the last flush", backfillFlushes)
	}
}
