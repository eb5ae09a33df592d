package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pyramid-crm/pyramid/logging"
	"github.com/pyramid-crm/pyramid/sink/clickhouse"
)

func init() {
	register("migrate", "create or upgrade the ClickHouse schema (tables and BI views)", runMigrate)
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The default is not shown from the environment: -h must not print a password.
	dsn := fs.String("clickhouse", "", "ClickHouse DSN, native protocol: clickhouse://user:password@host:9000/database (default $PYRAMID_CLICKHOUSE_DSN)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long; errors that can heal (server starting, connection refused) are retried until then")
	createDB := fs.Bool("create-database", true, "create the DSN's database when it does not exist")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pyramid migrate [--clickhouse DSN]\n\nApplies the embedded schema migrations that the database lacks, in order,\nand records them in pyramid_schema_migrations. Running it again changes nothing.\n\nflags:")
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
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	shown := logging.Redact(*dsn)

	var applied []uint32
	attempt := func() error {
		if *createDB {
			if err := clickhouse.CreateDatabase(ctx, *dsn); err != nil {
				return err
			}
		}
		conn, err := clickhouse.Open(*dsn, 10*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		applied, err = clickhouse.Migrate(ctx, conn)
		return err
	}
	var last error
	for {
		err := attempt()
		if err == nil {
			break
		}
		if ctx.Err() != nil && last != nil {
			return fmt.Errorf("%s: gave up after %v; last error: %w", shown, *timeout, last)
		}
		if !clickhouse.Retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", shown, err)
		}
		last = err
		fmt.Fprintf(stderr, "pyramid migrate: %s: %v; retrying\n", shown, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "%s: schema up to date\n", shown)
		return nil
	}
	fmt.Fprintf(stdout, "%s: applied migrations %v\n", shown, applied)
	return nil
}
