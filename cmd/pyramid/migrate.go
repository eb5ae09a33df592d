package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

func init() {
	register("migrate", "create, upgrade or repair the ClickHouse schema (tables and BI views)", runMigrate)
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The default is not shown from the environment: -h must not print a password.
	dsn := fs.String("clickhouse", "", "ClickHouse DSN, native protocol: clickhouse://user:password@host:9000/database (default $PYRAMID_CLICKHOUSE_DSN)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting for the server (errors that can heal are retried) or for another migration's lock after this long; a running backfill is not cut short")
	createDB := fs.Bool("create-database", true, "create the DSN's database when it does not exist")
	dryRun := fs.Bool("dry-run", false, "print the statements a run would execute, and the differences it would stop at, without changing anything")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: pyramid migrate [--clickhouse DSN] [--dry-run]

Compares the database's tables and views with Pyramid's schema, adds missing
columns, applies the embedded migrations the database lacks in order (recording
them in pyramid_schema_migrations) and re-creates missing views. A difference it
cannot repair safely (a column of another type, another engine or sorting key)
stops it before any change, naming each. Concurrent runs take turns under a
lock. Running it again changes nothing.

flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dsn == "" {
		*dsn = os.Getenv("PYRAMID_CLICKHOUSE_DSN")
	}
	if *dsn == "" {
		fmt.Fprintln(stderr, "pyramid migrate: --clickhouse or PYRAMID_CLICKHOUSE_DSN is required")
		return errUsage
	}
	shown := logging.Redact(*dsn)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	deadline := time.Now().Add(*timeout)

	var res *clickhouse.MigrateResult
	missingDB := false
	attempt := func() error {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		if *dryRun {
			exists, err := clickhouse.DatabaseExists(wctx, *dsn)
			if err != nil {
				return err
			}
			if !exists {
				missingDB = true
				res, err = clickhouse.PlanEmpty(clickhouse.DatabaseName(*dsn))
				return err
			}
		} else if *createDB {
			if err := clickhouse.CreateDatabase(wctx, *dsn); err != nil {
				return err
			}
		}
		conn, err := clickhouse.OpenMigrate(*dsn)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := conn.Ping(wctx); err != nil {
			return err
		}
		// The deadline bounds waiting for the server, not the work: a
		// backfill of a long history may take minutes.
		res, err = clickhouse.Migrate(ctx, conn, clickhouse.MigrateOptions{DryRun: *dryRun, LockWait: time.Until(deadline), Log: log})
		return err
	}
	for {
		err := attempt()
		if err == nil {
			break
		}
		if !clickhouse.Retryable(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", shown, err)
		}
		fmt.Fprintf(stderr, "pyramid migrate: %s: %v; retrying\n", shown, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "pyramid migrate: note: %s\n", n)
	}
	if *dryRun {
		if len(res.Statements) == 0 {
			fmt.Fprintf(stdout, "-- %s: schema up to date; nothing to do\n", shown)
			return nil
		}
		if missingDB {
			fmt.Fprintf(stdout, "-- %s: the database does not exist; a run would create it (unless --create-database=false)\n", shown)
		}
		fmt.Fprintf(stdout, "-- %s: a run would execute these statements, then record migrations %v\n", shown, res.Applied)
		for _, s := range res.Statements {
			fmt.Fprintf(stdout, "%s;\n\n", s)
		}
		return nil
	}
	if len(res.Statements) == 0 {
		fmt.Fprintf(stdout, "%s: schema up to date\n", shown)
		return nil
	}
	fmt.Fprintf(stdout, "%s: applied migrations %v (%d statements)\n", shown, res.Applied, len(res.Statements))
	return nil
}
