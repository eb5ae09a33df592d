package clickhouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationsTable records which migrations a database has.
const MigrationsTable = "pyramid_schema_migrations"

// Migration is one embedded schema step.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string // with {db} still in place
}

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, path := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", path)
		}
		if len(out) > 0 && out[len(out)-1].Version == uint32(v) {
			return nil, fmt.Errorf("migration %s: version %d used twice", path, v)
		}
		b, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: uint32(v), Name: name, Statements: splitStatements(string(b))})
	}
	return out, nil
}

// splitStatements splits a script on semicolons that end a line, dropping
// comment lines: ClickHouse runs one statement per query.
func splitStatements(script string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, s)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// Migrate brings the connection's database to the newest schema. It applies
// each missing migration in order and records it; every statement is
// idempotent (IF NOT EXISTS), so a migration interrupted half way is simply
// run again. It returns the versions it applied.
func Migrate(ctx context.Context, conn driver.Conn) ([]uint32, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return migrate(ctx, conn, ms)
}

func migrate(ctx context.Context, conn driver.Conn, ms []Migration) ([]uint32, error) {
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		return nil, fmt.Errorf("migrate: reading current database: %w", err)
	}
	qdb := quoteIdent(db)
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+qdb+`.`+MigrationsTable+` (
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return nil, fmt.Errorf("migrate: creating %s: %w", MigrationsTable, err)
	}
	done, err := appliedVersions(ctx, conn, qdb)
	if err != nil {
		return nil, err
	}
	var applied []uint32
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		for i, s := range m.Statements {
			if err := conn.Exec(ctx, strings.ReplaceAll(s, "{db}", qdb)); err != nil && !alreadyDone(s, err) {
				return applied, fmt.Errorf("migrate: %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := record(ctx, conn, qdb, m); err != nil {
			return applied, fmt.Errorf("migrate: recording %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

func record(ctx context.Context, conn driver.Conn, qdb string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, `INSERT INTO `+qdb+`.`+MigrationsTable+` (version, name, applied_at)`)
	if err != nil {
		return err
	}
	if err := b.Append(m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}

func appliedVersions(ctx context.Context, conn driver.Conn, qdb string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT version FROM `+qdb+`.`+MigrationsTable)
	if err != nil {
		return nil, fmt.Errorf("migrate: reading %s: %w", MigrationsTable, err)
	}
	defer rows.Close()
	done := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: reading %s: %w", MigrationsTable, err)
		}
		done[v] = true
	}
	return done, rows.Err()
}

// alreadyDone tells an ALTER ... ADD COLUMN that failed because an earlier,
// interrupted run of the same migration added the column: ClickHouse 18.16
// has no ADD COLUMN IF NOT EXISTS.
func alreadyDone(stmt string, err error) bool {
	var ex *ch.Exception
	if !errors.As(err, &ex) || !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt)), "ALTER") {
		return false
	}
	// 15 DUPLICATE_COLUMN on current releases; 18.16 says 44 ILLEGAL_COLUMN.
	return ex.Code == 15 || ex.Code == 44 && strings.Contains(ex.Message, "already exists")
}

// quoteIdent quotes a database or table name for ClickHouse SQL.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}
