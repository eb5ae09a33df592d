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

// File is the migration's file name without the extension: 0003_current_state.
func (m Migration) File() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// parsed parses the statements of the migration at position i.
func (m Migration) parsed(i int) ([]stmt, error) {
	out := make([]stmt, 0, len(m.Statements))
	for n, s := range m.Statements {
		p, err := parseStmt(s)
		if err != nil {
			return nil, fmt.Errorf("migration %s statement %d: %w", m.File(), n+1, err)
		}
		p.migIndex = i
		out = append(out, p)
	}
	return out, nil
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
// interrupted run of the same migration added the column (ClickHouse 18.16
// has no ADD COLUMN IF NOT EXISTS), and a CREATE ... IF NOT EXISTS that
// lost a race with another creator.
func alreadyDone(stmt string, err error) bool {
	var ex *ch.Exception
	if !errors.As(err, &ex) {
		return false
	}
	s := strings.ToUpper(strings.TrimSpace(stmt))
	switch {
	case strings.HasPrefix(s, "ALTER"):
		// 15 DUPLICATE_COLUMN on current releases; 18.16 says 44 ILLEGAL_COLUMN.
		return ex.Code == 15 || ex.Code == 44 && strings.Contains(ex.Message, "already exists")
	case strings.HasPrefix(s, "CREATE") && strings.Contains(firstLine(s), "IF NOT EXISTS"):
		return ex.Code == 57 // TABLE_ALREADY_EXISTS
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// quoteIdent quotes a database or table name for ClickHouse SQL.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}
