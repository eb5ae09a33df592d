package clickhouse

import (
	"context"
	"sync"
	"time"
)

// TableCurrent is the current-state table: one row per account once
// merged, filled by the materialized view account_current_mv.
const TableCurrent = "account_current"

// compacter keeps account_current close to one row per account. Every
// insert into the history leaves a part of copies in it until background
// merges fold them, and every BI read merges those copies again (FINAL):
// at 100,000 accounts the table settles at 2–3 rows per account, and
// dashboard queries take 2–5 times what they take on one row per account
// (docs/clickhouse.md). OPTIMIZE … FINAL folds it in a fraction of a
// second, so the sink runs it in the background, at most once per
// CompactEvery, after a write.
type compacter struct {
	every  time.Duration
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	last    time.Time
	running bool
}

// compactIfDue starts a compaction when the last one began CompactEvery
// ago and none runs.
func (s *Sink) compactIfDue() {
	c := &s.compact
	if c.every <= 0 {
		return
	}
	c.mu.Lock()
	if c.running || time.Since(c.last) < c.every {
		c.mu.Unlock()
		return
	}
	c.running, c.last = true, time.Now()
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		start := time.Now()
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Minute)
		folded, err := s.compactNow(ctx)
		cancel()
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
		switch {
		case err != nil && c.ctx.Err() == nil:
			s.log.Warn("compacting "+TableCurrent+" failed; BI reads stay correct, only slower", "err", err)
		case folded:
			s.log.Debug("compacted "+TableCurrent, "took", time.Since(start).Round(time.Millisecond))
		}
	}()
}

// compactNow folds account_current into one part unless it is one already.
func (s *Sink) compactNow(ctx context.Context) (bool, error) {
	var parts uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = ? AND active", TableCurrent).Scan(&parts)
	if err != nil || parts <= 1 {
		return false, err
	}
	return true, s.conn.Exec(ctx, "OPTIMIZE TABLE "+TableCurrent+" FINAL")
}

// stopCompacting cancels a running compaction and waits for it.
func (s *Sink) stopCompacting() {
	s.compact.cancel()
	s.compact.wg.Wait()
}
