package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// Table names.
const (
	TableSnapshots = "account_snapshots"
	TableChanges   = "tier_changes"
	TableAlerts    = "account_alerts"
)

// Column lists, in the order rows are appended. INSERTs always name their
// columns so a column added by a later migration does not break old writers.
const (
	snapshotColumns = "account_id, version, as_of, tier, tier_reason, quadrant, current_value, potential_value, " +
		"weighted_pipeline, wallet, share_of_wallet, goal_metric, goal_target, goal_actual, goal_attainment, " +
		"goal_status, coverage_model, owner_id, last_touch_at, neglected, open_opportunities, overridden, " +
		"coverage_load, account_name"
	changeColumns = "account_id, version, changed_at, from_tier, to_tier, reason, current_value, potential_value, event_id"
	alertColumns  = "alert_id, account_id, kind, status, opened_at, resolved_at, tier, owner_id, potential_value, " +
		"last_touch_at, account_name, last_touch_kind, days_since_touch, link, row_version"
)

// Options configures a Sink.
type Options struct {
	// DSN is clickhouse://user:password@host:9000/database?dial_timeout=5s
	// (the native protocol; see clickhouse-go's ParseDSN for parameters).
	DSN string
	// AttemptTimeout bounds one insert attempt: connect, send, and wait for
	// the server's acknowledgement. Default 30 s.
	AttemptTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts.
	// Defaults 200 ms and 30 s.
	RetryInitial, RetryMax time.Duration
	// LoadWeight gives the rep load one account of a tier carries; it is
	// written into account_snapshots.coverage_load, which rep_coverage
	// sums. Pass (*scoring.Params).LoadWeight. Nil: the built-in defaults.
	LoadWeight func(scoring.Tier) float64
	// Migrate applies the schema migrations in New, retrying errors that
	// can heal until ctx ends. A backfill of more than MaxBackfillRows
	// rows (default StartBackfillRows) is refused with a *BackfillError,
	// before any change: it could outlast AttemptTimeout, and belongs to
	// `pyramid migrate`.
	Migrate         bool
	MaxBackfillRows uint64
	// MigrateStatus, when set, hears the outcome of every migration
	// attempt (nil once applied): a service can tell what it waits for.
	MigrateStatus func(err error)
	// CompactEvery is how often, at most, the sink folds account_current
	// into one row per account (OPTIMIZE TABLE account_current FINAL, in
	// the background after a write; see compacter). Default 5 minutes;
	// negative: never.
	CompactEvery time.Duration
	// Capacity, when set, is written to coverage_capacity after the first
	// batch, for the coverage_plan view. Pass config.CoverageCapacity.
	Capacity map[string]config.Capacity
	// TierCaps, when set, is written to tier_caps after the first batch,
	// for the tier_capacity view: max_accounts per tier name (absent or 0:
	// no cap). Pass config.Config.MaxAccounts().
	TierCaps map[string]int
}

// StartBackfillRows is the largest backfill New runs when Options.Migrate
// is set (a few seconds of work on a small server).
const StartBackfillRows = 1_000_000

// Sink writes batches to ClickHouse. It implements sink.Sink and is safe
// for concurrent use.
type Sink struct {
	conn  driver.Conn
	opt   Options
	m     *metrics.Metrics
	log   *slog.Logger
	stage *retry.Stage // retries, health and the sink="clickhouse" metrics

	settings []*setting // written once (capacity.go)
	compact  compacter
}

// StageName labels the ClickHouse sink's metrics (sink="clickhouse").
const StageName = "clickhouse"

var _ sink.Sink = (*Sink)(nil)

// New opens a connection pool to opts.DSN (connections are made lazily, so
// New succeeds while the server is down unless opts.Migrate is set). m and
// log may be nil.
func New(ctx context.Context, opts Options, m *metrics.Metrics, log *slog.Logger) (*Sink, error) {
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 30 * time.Second
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = 200 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.MaxBackfillRows == 0 {
		opts.MaxBackfillRows = StartBackfillRows
	}
	if opts.CompactEvery == 0 {
		opts.CompactEvery = 5 * time.Minute
	}
	if opts.LoadWeight == nil {
		opts.LoadWeight = scoring.DefaultParams().LoadWeight
	}
	if m == nil {
		m = metrics.New(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := Open(opts.DSN, opts.AttemptTimeout)
	if err != nil {
		return nil, err
	}
	s := &Sink{conn: conn, opt: opts, m: m, log: log.With("component", "clickhouse", "dsn", logging.Redact(opts.DSN)), settings: settings(&opts)}
	s.compact.every = opts.CompactEvery
	s.compact.ctx, s.compact.cancel = context.WithCancel(context.Background())
	backoff := retry.Options{Initial: opts.RetryInitial, Max: opts.RetryMax}
	s.stage = retry.New(StageName, backoff, m, s.log)
	if opts.Migrate {
		// Waiting for a server that is still starting is not a failed
		// write: the migration's retries stay out of the sink's metrics.
		start := retry.New(StageName, backoff, nil, s.log)
		err := start.Do(ctx, "migrate", s.attempt("migrate", func(ctx context.Context) error {
			res, err := Migrate(ctx, conn, MigrateOptions{MaxBackfillRows: opts.MaxBackfillRows, Log: s.log})
			if err == nil && len(res.Statements) > 0 {
				s.log.Info("schema migrated", "applied", res.Applied, "statements", len(res.Statements))
			}
			if opts.MigrateStatus != nil && ctx.Err() == nil {
				opts.MigrateStatus(err)
			}
			return err
		}))
		if err != nil {
			s.compact.cancel()
			conn.Close()
			return nil, err
		}
	}
	return s, nil
}

// Open returns a native-protocol connection pool for dsn. Connections are
// made on first use; dialTimeout bounds each dial (0: the DSN's or the
// driver's default).
func Open(dsn string, dialTimeout time.Duration) (driver.Conn, error) {
	return open(dsn, dialTimeout, 0)
}

// OpenMigrate returns a connection pool for Migrate, on which a statement
// may run as long as a backfill of a long history takes (the driver's
// default read timeout is 5 minutes per statement), unless the DSN sets
// read_timeout.
func OpenMigrate(dsn string) (driver.Conn, error) {
	return open(dsn, 10*time.Second, 24*time.Hour)
}

func open(dsn string, dialTimeout, readTimeout time.Duration) (driver.Conn, error) {
	o, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: invalid DSN %s: %s", logging.Redact(dsn), logging.RedactIn(err.Error(), dsn))
	}
	if dialTimeout > 0 && !strings.Contains(dsn, "dial_timeout") {
		o.DialTimeout = min(dialTimeout, 10*time.Second)
	}
	if readTimeout > 0 && !strings.Contains(dsn, "read_timeout") {
		o.ReadTimeout = readTimeout
	}
	if !strings.Contains(dsn, "max_open_conns") {
		o.MaxOpenConns = 4
	}
	conn, err := ch.Open(o)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %s", logging.Redact(dsn), logging.RedactIn(err.Error(), dsn))
	}
	return conn, nil
}

// CreateDatabase creates the DSN's database if it does not exist, connecting
// to the server's default database to do so.
func CreateDatabase(ctx context.Context, dsn string) error {
	return onDefault(ctx, dsn, func(conn driver.Conn, db string) error {
		if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
			return fmt.Errorf("clickhouse: create database %s: %w", db, err)
		}
		return nil
	})
}

// DatabaseExists reports whether the DSN's database exists, asking the
// server's default database.
func DatabaseExists(ctx context.Context, dsn string) (bool, error) {
	var n uint64
	err := onDefault(ctx, dsn, func(conn driver.Conn, db string) error {
		return conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n)
	})
	return n > 0, err
}

// DatabaseName is the DSN's database ("default" when it names none).
func DatabaseName(dsn string) string {
	o, err := ch.ParseDSN(dsn)
	if err != nil || o.Auth.Database == "" {
		return "default"
	}
	return o.Auth.Database
}

// onDefault runs f on a connection to the server's default database, with
// the DSN's database name; a DSN naming the default database needs nothing.
func onDefault(ctx context.Context, dsn string, f func(conn driver.Conn, db string) error) error {
	o, err := ch.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("clickhouse: invalid DSN %s: %s", logging.Redact(dsn), logging.RedactIn(err.Error(), dsn))
	}
	db := DatabaseName(dsn)
	o.Auth.Database = "default"
	conn, err := ch.Open(o)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(conn, db)
}

// Write inserts the batch, one INSERT per table, and returns once the
// server acknowledged every row. Errors that can heal are retried with
// exponential backoff and jitter until ctx ends; a table already written in
// this call is not written again. Other errors return at once.
func (s *Sink) Write(ctx context.Context, b *sink.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	start := time.Now()
	steps := []struct {
		table string
		n     int
		send  func(context.Context) error
	}{
		{TableSnapshots, len(b.Snapshots), func(ctx context.Context) error { return s.insertSnapshots(ctx, b.Snapshots) }},
		{TableChanges, len(b.Changes), func(ctx context.Context) error { return s.insertChanges(ctx, b.Changes) }},
		{TableAlerts, len(b.Alerts), func(ctx context.Context) error { return s.insertAlerts(ctx, b.Alerts) }},
	}
	for _, st := range steps {
		if st.n == 0 {
			continue
		}
		if err := s.stage.Do(ctx, st.table, s.attempt(st.table, st.send)); err != nil {
			return err
		}
		s.m.SinkRows.WithLabelValues(st.table).Add(float64(st.n))
	}
	s.m.SinkFlush.Observe(time.Since(start).Seconds())
	s.writeSettings(ctx)
	s.compactIfDue()
	return nil
}

// attempt makes op one attempt of the retry stage, bounded by
// AttemptTimeout; what names the table, for the error.
func (s *Sink) attempt(what string, op func(context.Context) error) retry.Op {
	return func(ctx context.Context) (bool, error) {
		actx, cancel := context.WithTimeout(ctx, s.opt.AttemptTimeout)
		defer cancel()
		if err := op(actx); err != nil {
			err = describe(what, err)
			return Retryable(err), err
		}
		return false, nil
	}
}

// describe names the table and says what to do.
func describe(table string, err error) error {
	if table == "migrate" {
		return fmt.Errorf("clickhouse sink: migrating the schema: %w", err)
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		if ex.Code == 60 && !strings.Contains(ex.Message, "."+table+" ") {
			return &viewChanging{table: table, err: err}
		}
		switch ex.Code {
		case 16, 47, 60, 81: // no such column, unknown identifier, unknown table, unknown database
			return fmt.Errorf("clickhouse sink: table %s: %w (the schema is missing or old: run `pyramid migrate`)", table, err)
		case 53, 70, 386: // type mismatch, cannot convert, no common type
			return fmt.Errorf("clickhouse sink: table %s: %w (a column has the wrong type: compare with docs/clickhouse.md)", table, err)
		}
	}
	return fmt.Errorf("clickhouse sink: table %s: %w", table, err)
}

// viewChanging is an insert that failed because a materialized view on its
// table is being created or dropped (pyramid migrate is running):
// ClickHouse 18.16 lists a new view among the table's dependents a moment
// before the view exists, and an insert in that moment fails with
// UNKNOWN_TABLE naming the view, having written nothing. It heals once
// the migration's statement completes.
type viewChanging struct {
	table string
	err   error
}

func (e *viewChanging) Error() string {
	return fmt.Sprintf("clickhouse sink: table %s: %v (a materialized view on it is being created or dropped; retrying)", e.table, e.err)
}

func (e *viewChanging) Unwrap() error { return e.err }

// Healthy returns nil when the last write attempt to every table
// succeeded, else the error of a failing one.
func (s *Sink) Healthy() error { return s.stage.Healthy() }

// Close closes the connection pool.
func (s *Sink) Close(context.Context) error {
	s.stopCompacting()
	return s.conn.Close()
}

// Conn returns the underlying connection pool, for migrations and queries.
func (s *Sink) Conn() driver.Conn { return s.conn }

func (s *Sink) insertSnapshots(ctx context.Context, rows []scoring.Snapshot) error {
	return insert(ctx, s.conn, TableSnapshots, snapshotColumns, len(rows), func(i int) []any {
		r := &rows[i]
		var wallet *decimal.Decimal
		if r.HasWallet {
			d := dec(r.Wallet)
			wallet = &d
		}
		return []any{
			r.AccountID, r.Version, ts(r.AsOf), r.Tier.String(), r.TierReason, r.Quadrant,
			dec(r.CurrentValue), dec(r.PotentialValue), dec(r.WeightedPipeline), wallet,
			opt(r.ShareOfWallet, r.HasShare), r.GoalMetric, r.GoalTarget,
			opt(r.GoalActual, r.HasGoalActual), opt(r.GoalAttainment, r.HasGoalActual), r.GoalStatus,
			r.CoverageModel, r.OwnerID, ts(r.LastTouchAt), flag(r.Neglected), uint32(r.OpenOpportunities),
			flag(r.Overridden), s.opt.LoadWeight(r.Tier), r.Name,
		}
	})
}

func (s *Sink) insertChanges(ctx context.Context, rows []scoring.TierChange) error {
	return insert(ctx, s.conn, TableChanges, changeColumns, len(rows), func(i int) []any {
		r := &rows[i]
		return []any{
			r.AccountID, r.Version, ts(r.ChangedAt), r.From.String(), r.To.String(), r.Reason,
			dec(r.Current), dec(r.Potential), r.EventID,
		}
	})
}

func (s *Sink) insertAlerts(ctx context.Context, rows []scoring.Alert) error {
	return insert(ctx, s.conn, TableAlerts, alertColumns, len(rows), func(i int) []any {
		r := &rows[i]
		var resolved *time.Time
		if r.ResolvedAt != 0 {
			t := ts(r.ResolvedAt)
			resolved = &t
		}
		return []any{
			r.AlertID, r.AccountID, r.Kind, r.Status, ts(r.OpenedAt), resolved, r.Tier.String(),
			r.OwnerID, dec(r.Potential), ts(r.LastTouchAt), r.AccountName, r.LastTouchKind,
			int32(r.DaysSinceTouch), r.Link, r.Version,
		}
	})
}

func insert(ctx context.Context, conn driver.Conn, table, columns string, n int, row func(int) []any) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := b.Append(row(i)...); err != nil {
			_ = b.Abort()
			return err
		}
	}
	return b.Send()
}

func dec(c money.Cents) decimal.Decimal { return decimal.New(int64(c), -2) }

// ts converts Unix ns to a UTC time; DateTime keeps whole seconds.
func ts(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func opt(v float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	return &v
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
