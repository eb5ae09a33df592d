package clickhouse

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pyramid-crm/pyramid/config"
)

// Settings tables hold configuration the planning views join: settings,
// not history, so a changed value changes the views at once instead of
// waiting for every account's next snapshot.
const (
	// TableCapacity holds the configured capacity of each coverage model,
	// which coverage_plan and coverage_watch_list join.
	TableCapacity = "coverage_capacity"
	// TableTierCaps holds each tier's max_accounts (0: no cap), which
	// tier_capacity joins.
	TableTierCaps = "tier_caps"
)

const (
	capacityColumns = "coverage_model, capacity, updated_at, row_version"
	tierCapsColumns = "tier, max_accounts, updated_at, row_version"
)

// setting is one settings table and the rows a Sink writes to it: once,
// right after a batch was written, when the server is known to answer. It
// is a setting for the views, not data the pipeline must not lose: one
// attempt per batch, outside the retry stage, so a schema without the
// table (not yet migrated) costs the views the setting, never the pipeline
// a write or its health. An error that can heal is tried again after the
// next batch; any other is logged once.
type setting struct {
	table, columns string
	rows           [][]any // without updated_at and row_version
	done           atomic.Bool
}

// settings returns the settings tables opts configures.
func settings(opts *Options) []*setting {
	var out []*setting
	if opts.Capacity != nil {
		st := &setting{table: TableCapacity, columns: capacityColumns}
		models := make([]string, 0, len(opts.Capacity))
		for m := range opts.Capacity {
			models = append(models, m)
		}
		sort.Strings(models)
		for _, m := range models {
			st.rows = append(st.rows, []any{m, capacityValue(opts.Capacity[m])})
		}
		out = append(out, st)
	}
	if opts.TierCaps != nil {
		st := &setting{table: TableTierCaps, columns: tierCapsColumns}
		for _, t := range config.TierNames {
			st.rows = append(st.rows, []any{t, uint32(max(opts.TierCaps[t], 0))})
		}
		out = append(out, st)
	}
	return out
}

// writeSettings writes each settings table not written yet (see setting).
func (s *Sink) writeSettings(ctx context.Context) {
	for _, st := range s.settings {
		if st.done.Load() {
			continue
		}
		now := time.Now().UTC()
		retry, err := s.attempt(st.table, func(ctx context.Context) error {
			return insert(ctx, s.conn, st.table, st.columns, len(st.rows), func(i int) []any {
				return append(append([]any(nil), st.rows[i]...), now.Truncate(time.Second), uint64(now.UnixNano()))
			})
		})(ctx)
		switch {
		case err == nil:
			st.done.Store(true)
		case retry:
			s.log.Debug("settings not written yet; trying again after the next batch", "table", st.table, "err", err)
		default:
			st.done.Store(true)
			s.log.Warn("settings not written: the views that join them lack them until the next start", "table", st.table, "err", err)
		}
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
