package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MigrateOptions tunes Migrate. The zero value applies everything.
type MigrateOptions struct {
	// DryRun plans without changing anything (not even taking the lock):
	// the result lists the statements a real run would execute.
	DryRun bool
	// MaxBackfillRows refuses a plan whose backfills read more rows than
	// this, with a *BackfillError, before changing anything. pyramid run
	// sets it so that a long backfill is left to pyramid migrate. 0: no
	// limit.
	MaxBackfillRows uint64
	// LockWait bounds the wait for another migration's lock. 0: until ctx
	// ends.
	LockWait time.Duration
	// LockStale is how long a migration lock may go without a heartbeat
	// before another migration takes it over. Default 30 s.
	LockStale time.Duration
	// Log receives progress: lock waits, statements as they run. Nil: none.
	Log *slog.Logger
}

// MigrateResult says what Migrate did, or with DryRun would do.
type MigrateResult struct {
	// Applied are the versions of the migrations applied.
	Applied []uint32
	// Statements are the statements executed, in order, with the
	// database name filled in. Repairs come first.
	Statements []string
	// Notes are differences left alone: columns Pyramid does not know.
	Notes []string
}

// SchemaError lists live schema differences Migrate will not repair.
type SchemaError struct {
	Database    string
	Differences []string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("migrate: database %s differs from Pyramid's schema in ways migrate does not repair; nothing was changed:\n  - %s",
		e.Database, strings.Join(e.Differences, "\n  - "))
}

// BackfillError says a plan would copy more rows than allowed.
type BackfillError struct {
	Migration      string // the migration or repair that holds the backfill
	Target, Source string
	Rows, Max      uint64
}

func (e *BackfillError) Error() string {
	return fmt.Sprintf("schema step %s fills %s from the %d rows of %s, more than the %d that pyramid run copies at start (it could outlast a write attempt); "+
		"run `pyramid migrate` with the same DSN first, then start pyramid run again", e.Migration, e.Target, e.Rows, e.Source, e.Max)
}

// step is one planned statement.
type step struct {
	sql    string // {db} in place
	origin string // the migration, or "repair"
	fill   *stmt  // a backfill
	mv     *stmt  // a materialized view's creation
	record *Migration
}

// Migrate brings the connection's database to Pyramid's schema, under a
// lock so that concurrent runs take turns. It first compares the live
// schema (system.tables, system.columns) with what the migrations build:
// a difference it cannot repair safely (a column of another type,
// another engine or sorting key) stops it before any change, with a
// *SchemaError naming each. Then it adds missing columns, applies the
// migrations the database lacks in order (recording each), re-creates
// relations of applied migrations that have gone missing, and checks the
// result. Every statement is safe to run again, so an interrupted run is
// simply run again.
func Migrate(ctx context.Context, conn driver.Conn, opts MigrateOptions) (*MigrateResult, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return migrate(ctx, conn, ms, opts)
}

func migrate(ctx context.Context, conn driver.Conn, ms []Migration, opts MigrateOptions) (*MigrateResult, error) {
	if opts.LockStale <= 0 {
		opts.LockStale = 30 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	want, err := expectedSchema(ms)
	if err != nil {
		return nil, err
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		return nil, fmt.Errorf("migrate: reading current database: %w", err)
	}
	qdb := quoteIdent(db)
	if !opts.DryRun {
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if opts.LockWait > 0 {
			lctx, cancel = context.WithTimeout(ctx, opts.LockWait)
		}
		l, err := acquireLock(lctx, conn, qdb, opts.LockStale, log)
		cancel()
		if err != nil {
			return nil, err
		}
		defer l.release(ctx)
	}
	lv, err := readLive(ctx, conn)
	if err != nil {
		return nil, err
	}
	done := map[uint32]bool{}
	if lv.kind[MigrationsTable] != "" {
		if done, err = appliedVersions(ctx, conn, qdb); err != nil {
			return nil, err
		}
	}
	d := compare(want, lv)
	if len(d.fatal) > 0 {
		return nil, &SchemaError{Database: db, Differences: d.fatal}
	}
	steps := planSteps(ms, want, d, done)
	res := &MigrateResult{Notes: d.notes}
	for _, s := range steps {
		if s.fill == nil {
			continue
		}
		rows, err := backfillRows(ctx, conn, qdb, lv, s)
		if err != nil {
			return nil, err
		}
		if opts.MaxBackfillRows > 0 && rows > opts.MaxBackfillRows {
			return nil, &BackfillError{Migration: s.origin, Target: s.fill.name, Source: s.fill.source, Rows: rows, Max: opts.MaxBackfillRows}
		}
		if rows > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: fills %s from the %d rows of %s", s.origin, s.fill.name, rows, s.fill.source))
		}
	}
	if !opts.DryRun && lv.kind[MigrationsTable] == "" {
		if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+qdb+`.`+MigrationsTable+` (
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
			return nil, fmt.Errorf("migrate: creating %s: %w", MigrationsTable, err)
		}
	}
	if opts.DryRun {
		render(res, steps, qdb)
		return res, nil
	}
	if err := execute(ctx, conn, qdb, steps, res, log); err != nil || len(steps) == 0 {
		return res, err
	}
	if lv, err = readLive(ctx, conn); err != nil {
		return res, err
	}
	if after := compare(want, lv); !after.empty() {
		var left []string
		left = append(left, after.fatal...)
		left = append(left, after.addColumns...)
		for _, n := range sortedKeys(after.missing) {
			left = append(left, "missing: "+n)
		}
		for _, n := range sortedKeys(after.staleMVs) {
			left = append(left, "materialized view does not match its target: "+n)
		}
		return res, &SchemaError{Database: db, Differences: left}
	}
	return res, nil
}

// render lists the steps as Migrate would run them, database filled in.
func render(res *MigrateResult, steps []step, qdb string) {
	for _, s := range steps {
		if s.record != nil {
			res.Applied = append(res.Applied, s.record.Version)
		} else {
			res.Statements = append(res.Statements, strings.ReplaceAll(s.sql, "{db}", qdb))
		}
	}
}

// execute runs the steps in order, recording each migration once its
// statements ran, and fills res with what it did.
func execute(ctx context.Context, conn driver.Conn, qdb string, steps []step, res *MigrateResult, log *slog.Logger) error {
	for _, s := range steps {
		if s.record != nil {
			if err := record(ctx, conn, qdb, *s.record); err != nil {
				return fmt.Errorf("migrate: recording %s: %w", s.record.File(), err)
			}
			res.Applied = append(res.Applied, s.record.Version)
			log.Info("migration applied", "migration", s.record.File())
			continue
		}
		q := strings.ReplaceAll(s.sql, "{db}", qdb)
		res.Statements = append(res.Statements, q)
		start := time.Now()
		if err := conn.Exec(ctx, q); err != nil && !alreadyDone(s.sql, err) {
			return fmt.Errorf("migrate: %s: %w\nstatement:\n%s", s.origin, err, q)
		}
		if s.mv != nil {
			if err := awaitInserts(ctx, conn, s.mv.source, log); err != nil {
				return err
			}
		}
		log.Debug("statement run", "origin", s.origin, "took", time.Since(start).Round(time.Millisecond), "sql", firstLine(q))
	}
	return nil
}

// PlanEmpty returns what Migrate would run on an empty database db (one
// that does not exist yet, for pyramid migrate --dry-run).
func PlanEmpty(db string) (*MigrateResult, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	want, err := expectedSchema(ms)
	if err != nil {
		return nil, err
	}
	res := &MigrateResult{}
	render(res, planSteps(ms, want, compare(want, &live{kind: map[string]string{}}), map[uint32]bool{}), quoteIdent(db))
	return res, nil
}

// planSteps orders what brings the database to want: missing tables of applied
// migrations; materialized views to re-create dropped before their target
// grows; missing columns; the migrations not yet applied; then missing or
// re-created views of applied migrations (a materialized view with its
// backfills).
func planSteps(ms []Migration, want schema, d *diff, done map[uint32]bool) []step {
	var steps []step
	applied := func(r *relation) bool { return done[ms[r.create.migIndex].Version] }
	names := want.names()
	for _, n := range names {
		r := want[n]
		if r.kind != kindTable || !d.missing[n] || !applied(r) {
			continue
		}
		steps = append(steps, step{sql: r.create.text, origin: "re-creating table " + n})
		prev := ""
		for _, c := range r.columns {
			if !r.created[c.name] {
				steps = append(steps, step{sql: "ALTER TABLE {db}." + n + " ADD COLUMN " + c.name + " " + c.def + " AFTER " + prev, origin: "re-creating table " + n})
			}
			prev = c.name
		}
	}
	for _, n := range sortedKeys(d.staleMVs) {
		steps = append(steps, step{sql: "DROP TABLE IF EXISTS {db}." + n, origin: "repair: materialized view " + n + " is re-created for its target's columns"})
	}
	for _, s := range d.addColumns {
		steps = append(steps, step{sql: s, origin: "repair: adding a missing column"})
	}
	for i := range ms {
		m := &ms[i]
		if done[m.Version] {
			continue
		}
		stmts, _ := m.parsed(i) // parsed once already by expectedSchema
		for j := range stmts {
			s := &stmts[j]
			st := step{sql: s.text, origin: "migration " + m.File()}
			switch s.kind {
			case stmtBackfill:
				st.fill = s
			case stmtCreateMV:
				st.mv = s
			}
			steps = append(steps, st)
		}
		steps = append(steps, step{record: m})
	}
	for _, n := range names {
		r := want[n]
		if r.kind == kindTable || !applied(r) || !d.missing[n] && !d.staleMVs[n] {
			continue
		}
		origin := "re-creating " + kindName(r.kind) + " " + n
		st := step{sql: r.create.text, origin: origin}
		if r.kind == kindMV {
			st.mv = &r.create
		}
		steps = append(steps, st)
		for i := range r.backfills {
			steps = append(steps, step{sql: r.backfills[i].text, origin: origin, fill: &r.backfills[i]})
		}
	}
	return steps
}

// awaitInserts waits until every INSERT into table that was running when
// a materialized view on it was created has finished. Such an insert may
// have looked up the table's views before the new one existed, and so not
// pass its rows on; if it commits after the backfill that follows has
// read the table, the rows would reach neither. Inserts that start later
// see the view. (system.processes is per server: on a cluster, run
// migrate where the writers write.)
func awaitInserts(ctx context.Context, conn driver.Conn, table string, log *slog.Logger) error {
	created := time.Now()
	logged := false
	for {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE positionCaseInsensitive(query, 'INSERT INTO') = 1 AND position(query, ?) > 0 AND elapsed >= ?",
			table, time.Since(created).Seconds()).Scan(&n)
		if err != nil {
			return fmt.Errorf("migrate: reading system.processes: %w", err)
		}
		if n == 0 {
			return nil
		}
		if !logged {
			log.Info("waiting for inserts that started before the materialized view", "table", table, "inserts", n)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backfillRows counts the rows a backfill reads (0 when its source does
// not exist yet).
func backfillRows(ctx context.Context, conn driver.Conn, qdb string, lv *live, s step) (uint64, error) {
	if lv.kind[s.fill.source] == "" {
		return 0, nil
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+qdb+"."+s.fill.source).Scan(&rows); err != nil {
		return 0, fmt.Errorf("migrate: counting %s for a backfill: %w", s.fill.source, err)
	}
	return rows, nil
}
