package clickhouse

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/pyramid-crm/pyramid/config"
)

// TableCapacity holds the configured capacity of each coverage model, which
// the coverage_plan and coverage_watch_list views join: a setting, not
// history, so a changed capacity changes the plan at once instead of
// waiting for every account's next snapshot.
const TableCapacity = "coverage_capacity"

const capacityColumns = "coverage_model, capacity, updated_at, row_version"

// writeCapacity records s.opt.Capacity once per Sink, right after a batch
// was written, when the server is known to answer. It is a setting for the
// planning views, not data the pipeline must not lose: one attempt per
// batch, outside the retry stage, so a schema without the table (not yet
// migrated) costs the coverage plan its capacities, never the pipeline a
// write or its health. An error that can heal is tried again after the
// next batch; any other is logged once.
func (s *Sink) writeCapacity(ctx context.Context) {
	if s.opt.Capacity == nil || s.capacityDone.Load() {
		return
	}
	models := slices.Sorted(maps.Keys(s.opt.Capacity))
	now := time.Now().UTC()
	retry, err := s.attempt(TableCapacity, func(ctx context.Context) error {
		return insert(ctx, s.conn, TableCapacity, capacityColumns, len(models), func(i int) []any {
			return []any{models[i], capacityValue(s.opt.Capacity[models[i]]), now.Truncate(time.Second), uint64(now.UnixNano())}
		})
	})(ctx)
	switch {
	case err == nil:
		s.capacityDone.Store(true)
	case retry:
		s.log.Debug("coverage capacities not written yet; trying again after the next batch", "err", err)
	default:
		s.capacityDone.Store(true)
		s.log.Warn("coverage capacities not written: the coverage_plan view lacks them until the next start", "err", err)
	}
}

// capacityValue is the column value: 0 stands for unlimited, which no
// real capacity is.
func capacityValue(c config.Capacity) float64 {
	if c.IsUnlimited() {
		return 0
	}
	return float64(c)
}
