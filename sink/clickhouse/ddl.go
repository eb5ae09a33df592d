package clickhouse

import (
	"fmt"
	"regexp"
	"strings"
)

// The statements a migration may hold, parsed far enough to fold them into
// the schema they build (expectedSchema) and to know which are backfills.

// stmtKind is what one migration statement does.
type stmtKind int

const (
	stmtCreateTable stmtKind = iota
	stmtCreateView
	stmtCreateMV
	stmtDrop
	stmtAddColumn
	stmtBackfill
)

// stmt is one parsed migration statement.
type stmt struct {
	kind     stmtKind
	text     string // as written, {db} in place
	name     string // the relation it creates, drops, alters or fills
	source   string // backfill: the table it reads; MV: the table it watches
	target   string // MV: the table it writes to
	column   column // ADD COLUMN
	columns  []column
	engine   string // CREATE TABLE, normalized
	orderBy  string // CREATE TABLE, normalized
	migIndex int    // position of its migration in Migrations()
}

type column struct {
	name string
	typ  string // the type alone, normalized
	def  string // the definition after the name, as written (type, DEFAULT …)
}

var (
	reCreateTable = regexp.MustCompile(`(?is)^CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)\s*\((.*)\)\s*ENGINE\s*=\s*(.+)$`)
	reCreateView  = regexp.MustCompile(`(?is)^CREATE VIEW IF NOT EXISTS \{db\}\.(\w+)\s+AS\s`)
	reCreateMV    = regexp.MustCompile(`(?is)^CREATE MATERIALIZED VIEW IF NOT EXISTS \{db\}\.(\w+)\s+TO\s+\{db\}\.(\w+)\s+AS\s.*\bFROM\s+\{db\}\.(\w+)`)
	reDrop        = regexp.MustCompile(`(?is)^DROP TABLE IF EXISTS \{db\}\.(\w+)$`)
	reAddColumn   = regexp.MustCompile(`(?is)^ALTER TABLE \{db\}\.(\w+)\s+ADD COLUMN\s+(\w+)\s+(.+?)(\s+AFTER\s+\w+)?$`)
	reBackfill    = regexp.MustCompile(`(?is)^INSERT INTO \{db\}\.(\w+)\s*\(.*?\)\s*SELECT\s.*?\bFROM\s+\{db\}\.(\w+)`)
	// Engine clauses after the engine itself.
	reClause = regexp.MustCompile(`(?i)\s+(ORDER BY|PARTITION BY|PRIMARY KEY|SAMPLE BY|SETTINGS|TTL)\s+`)
	// Column definition keywords that end the type.
	reTypeEnd = regexp.MustCompile(`(?i)\s+(DEFAULT|MATERIALIZED|ALIAS|CODEC|COMMENT)\b`)
)

// parseStmt classifies a migration statement. Every statement must be
// safe to run again: CREATE … IF NOT EXISTS, DROP TABLE IF EXISTS, ALTER
// TABLE … ADD COLUMN (a column already there counts as done) or a
// backfill INSERT … SELECT into a ReplacingMergeTree (copies collapse).
func parseStmt(s string) (stmt, error) {
	t := strings.TrimSpace(s)
	if m := reCreateTable.FindStringSubmatch(t); m != nil {
		cols, err := parseColumns(m[2])
		if err != nil {
			return stmt{}, fmt.Errorf("table %s: %w", m[1], err)
		}
		engine, orderBy := splitEngine(m[3])
		return stmt{kind: stmtCreateTable, text: t, name: m[1], columns: cols, engine: engine, orderBy: orderBy}, nil
	}
	if m := reCreateMV.FindStringSubmatch(t); m != nil {
		return stmt{kind: stmtCreateMV, text: t, name: m[1], target: m[2], source: m[3]}, nil
	}
	if m := reCreateView.FindStringSubmatch(t); m != nil {
		return stmt{kind: stmtCreateView, text: t, name: m[1]}, nil
	}
	if m := reDrop.FindStringSubmatch(t); m != nil {
		return stmt{kind: stmtDrop, text: t, name: m[1]}, nil
	}
	if m := reAddColumn.FindStringSubmatch(t); m != nil {
		return stmt{kind: stmtAddColumn, text: t, name: m[1], column: newColumn(m[2], m[3])}, nil
	}
	if m := reBackfill.FindStringSubmatch(t); m != nil {
		return stmt{kind: stmtBackfill, text: t, name: m[1], source: m[2]}, nil
	}
	first := t
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	return stmt{}, fmt.Errorf("statement %q is none of the forms migrate can run again safely: "+
		"CREATE TABLE|VIEW|MATERIALIZED VIEW IF NOT EXISTS {db}.name, DROP TABLE IF EXISTS {db}.name, "+
		"ALTER TABLE {db}.name ADD COLUMN, INSERT INTO {db}.name (columns) SELECT … FROM {db}.table", first)
}

// parseColumns splits a CREATE TABLE column list on the commas outside
// parentheses and quotes.
func parseColumns(list string) ([]column, error) {
	defs, ok := splitTopLevel(list)
	if !ok {
		return nil, fmt.Errorf("unbalanced parentheses or quotes in the column list")
	}
	var out []column
	for _, def := range defs {
		def = strings.TrimSpace(def)
		if def == "" {
			continue
		}
		name, rest, ok := strings.Cut(def, " ")
		if !ok {
			return nil, fmt.Errorf("column %q has no type", def)
		}
		out = append(out, newColumn(strings.Trim(name, "`"), rest))
	}
	return out, nil
}

func newColumn(name, def string) column {
	def = strings.TrimSpace(def)
	typ := def
	if loc := reTypeEnd.FindStringIndex(def); loc != nil {
		typ = def[:loc[0]]
	}
	return column{name: name, typ: normType(typ), def: def}
}

// splitEngine splits "ReplacingMergeTree(version) ORDER BY (a, b) SETTINGS
// …" into the engine and its sorting key, both normalized.
func splitEngine(clause string) (engine, orderBy string) {
	clause = strings.TrimSpace(clause)
	locs := reClause.FindAllStringSubmatchIndex(clause, -1)
	engine = clause
	if len(locs) > 0 {
		engine = clause[:locs[0][0]]
	}
	for i, l := range locs {
		if strings.EqualFold(clause[l[2]:l[3]], "ORDER BY") {
			end := len(clause)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			orderBy = clause[l[1]:end]
		}
	}
	return normEngine(engine), normKey(orderBy)
}

// normType removes the spaces ClickHouse may or may not print inside a
// type: Decimal(18, 2) and Decimal(18,2) are the same type.
func normType(t string) string { return strings.Join(strings.Fields(t), "") }

// normEngine drops an empty parameter list ("ReplacingMergeTree()") and
// the replication parameters (zookeeper path and replica name) of
// Replicated and Shared engines, so a replicated table of the same family
// and version column is what Pyramid expects.
func normEngine(e string) string {
	e = normType(e)
	e = strings.TrimSuffix(e, "()")
	for _, p := range []string{"Replicated", "Shared"} {
		if rest, ok := strings.CutPrefix(e, p); ok && strings.Contains(rest, "MergeTree") {
			name, args, _ := strings.Cut(rest, "(")
			args = strings.TrimSuffix(args, ")")
			parts, _ := splitTopLevel(args)
			if len(parts) >= 2 {
				parts = parts[2:]
			}
			e = name
			if len(parts) > 0 {
				e += "(" + strings.Join(parts, ",") + ")"
			}
		}
	}
	return e
}

// normKey writes a sorting key as system.tables.sorting_key does, without
// spaces: "(account_id, version)" → "account_id,version".
func normKey(k string) string {
	k = normType(k)
	if strings.HasPrefix(k, "(") && strings.HasSuffix(k, ")") {
		if parts, _ := splitTopLevel(k[1 : len(k)-1]); len(parts) > 1 {
			k = k[1 : len(k)-1]
		}
	}
	return k
}

// splitTopLevel splits on commas outside parentheses and quotes; balanced
// is false when a parenthesis or quote is left open.
func splitTopLevel(s string) (parts []string, balanced bool) {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if s != "" {
		out = append(out, s[start:])
	}
	return out, depth == 0 && !quoted
}
