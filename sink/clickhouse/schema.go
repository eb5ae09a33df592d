package clickhouse

import (
	"context"
	"fmt"
	"sort"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The schema Pyramid expects is not written down a second time: it is
// what the embedded migrations build, folded statement by statement
// (expectedSchema). Migrate compares it with the live database to repair
// what is safe to repair and to name what is not.

// Relation kinds, as system.tables.engine names them for views.
const (
	kindTable = "table"
	kindView  = "View"
	kindMV    = "MaterializedView"
)

// relation is a table or view as the migrations leave it.
type relation struct {
	name    string
	kind    string
	columns []column // tables
	engine  string   // tables
	orderBy string   // tables
	target  string   // materialized views
	// create is the statement that created the relation last, and
	// created the columns that statement made (a table's later columns
	// come from ADD COLUMN).
	create  stmt
	created map[string]bool
	// backfills are the INSERTs that follow a materialized view's creation
	// in its migration and fill its target.
	backfills []stmt
}

// schema is a database's relations by name.
type schema map[string]*relation

// expectedSchema folds the migrations' statements into the schema they
// leave behind.
func expectedSchema(ms []Migration) (schema, error) {
	out := schema{}
	for i, m := range ms {
		stmts, err := m.parsed(i)
		if err != nil {
			return nil, err
		}
		var lastMV *relation
		for _, s := range stmts {
			switch s.kind {
			case stmtCreateTable:
				r := &relation{name: s.name, kind: kindTable, columns: s.columns, engine: s.engine, orderBy: s.orderBy, create: s, created: map[string]bool{}}
				for _, c := range s.columns {
					r.created[c.name] = true
				}
				out[s.name] = r
			case stmtCreateView:
				out[s.name] = &relation{name: s.name, kind: kindView, create: s}
			case stmtCreateMV:
				lastMV = &relation{name: s.name, kind: kindMV, target: s.target, create: s}
				out[s.name] = lastMV
			case stmtDrop:
				delete(out, s.name)
			case stmtAddColumn:
				r := out[s.name]
				if r == nil || r.kind != kindTable {
					return nil, fmt.Errorf("migration %s: ADD COLUMN to %s, which is no table at that point", m.File(), s.name)
				}
				r.columns = append(r.columns, s.column)
			case stmtBackfill:
				if lastMV != nil && lastMV.target == s.name {
					lastMV.backfills = append(lastMV.backfills, s)
				}
			}
		}
	}
	return out, nil
}

// live is what a database holds now.
type live struct {
	kind    map[string]string // relation → kindTable, kindView, kindMV (or another engine's name)
	engine  map[string]string // tables: normalized engine
	orderBy map[string]string // tables: normalized sorting key
	columns map[string]map[string]string
}

func readLive(ctx context.Context, conn driver.Conn) (*live, error) {
	l := &live{kind: map[string]string{}, engine: map[string]string{}, orderBy: map[string]string{}, columns: map[string]map[string]string{}}
	rows, err := conn.Query(ctx, "SELECT name, engine, engine_full, sorting_key FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		return nil, fmt.Errorf("migrate: reading system.tables: %w", err)
	}
	for rows.Next() {
		var name, engine, full, key string
		if err := rows.Scan(&name, &engine, &full, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: reading system.tables: %w", err)
		}
		switch engine {
		case kindView, kindMV:
			l.kind[name] = engine
		default:
			l.kind[name] = kindTable
			e, _ := splitEngine(full)
			if e == "" {
				e = engine
			}
			l.engine[name], l.orderBy[name] = e, normKey(key)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()")
	if err != nil {
		return nil, fmt.Errorf("migrate: reading system.columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			return nil, fmt.Errorf("migrate: reading system.columns: %w", err)
		}
		if l.columns[table] == nil {
			l.columns[table] = map[string]string{}
		}
		l.columns[table][name] = normType(typ)
	}
	return l, rows.Err()
}

// diff is what separates a live database from the expected schema.
type diff struct {
	// fatal names differences migrate must not touch: a column of another
	// type, another engine or sorting key, a view where a table belongs.
	fatal []string
	// addColumns are the ADD COLUMN statements that add what is missing.
	addColumns []string
	// missing are expected relations that do not exist.
	missing map[string]bool
	// staleMVs are materialized views created for an older shape of their
	// target (which may get its missing columns now): they are re-created.
	staleMVs map[string]bool
	// notes are harmless differences: columns Pyramid does not know.
	notes []string
}

func (d *diff) empty() bool {
	return len(d.fatal) == 0 && len(d.addColumns) == 0 && len(d.missing) == 0 && len(d.staleMVs) == 0
}

// compare diffs the live database against want. Relations that do not
// exist yet are only listed as missing.
func compare(want schema, l *live) *diff {
	d := &diff{missing: map[string]bool{}, staleMVs: map[string]bool{}}
	for _, name := range want.names() {
		r := want[name]
		kind, ok := l.kind[name]
		if !ok {
			d.missing[name] = true
			continue
		}
		if kind != r.kind {
			d.fatal = append(d.fatal, fmt.Sprintf("%s is a %s, want a %s", name, kindName(kind), kindName(r.kind)))
			continue
		}
		if r.kind != kindTable {
			continue
		}
		if l.engine[name] != r.engine {
			d.fatal = append(d.fatal, fmt.Sprintf("table %s: engine %s, want %s (the engine cannot be changed in place: rename the table and run pyramid migrate to create it anew)", name, l.engine[name], r.engine))
		}
		if l.orderBy[name] != r.orderBy {
			d.fatal = append(d.fatal, fmt.Sprintf("table %s: sorting key (%s), want (%s) (the sorting key cannot be changed in place: rename the table and run pyramid migrate to create it anew)", name, l.orderBy[name], r.orderBy))
		}
		have := l.columns[name]
		known := map[string]bool{}
		prev := ""
		for _, c := range r.columns {
			known[c.name] = true
			typ, ok := have[c.name]
			switch {
			case !ok:
				stmt := "ALTER TABLE {db}." + name + " ADD COLUMN " + c.name + " " + c.def
				if prev != "" {
					stmt += " AFTER " + prev
				}
				d.addColumns = append(d.addColumns, stmt)
			case typ != c.typ:
				d.fatal = append(d.fatal, fmt.Sprintf("column %s.%s: type %s, want %s (change or drop it by hand; migrate does not convert data)", name, c.name, typ, c.typ))
			}
			prev = c.name
		}
		var extra []string
		for c := range have {
			if !known[c] {
				extra = append(extra, c)
			}
		}
		sort.Strings(extra)
		for _, c := range extra {
			note := fmt.Sprintf("column %s.%s is not Pyramid's; it is left as it is", name, c)
			for _, mv := range want.writersOf(name) {
				note += fmt.Sprintf(" (ClickHouse 18.16 refuses inserts through materialized view %s while the table has it)", mv)
			}
			d.notes = append(d.notes, note)
		}
	}
	// A materialized view must write exactly its target's columns (18.16
	// refuses an insert otherwise), so one created for an older shape of
	// its target is created anew.
	for _, name := range want.names() {
		r := want[name]
		if r.kind != kindMV || d.missing[name] || l.kind[name] != kindMV || want[r.target] == nil {
			continue
		}
		if !sameColumns(l.columns[name], want[r.target].columns) {
			d.staleMVs[name] = true
		}
	}
	return d
}

func sameColumns(have map[string]string, want []column) bool {
	if len(have) != len(want) {
		return false
	}
	for _, c := range want {
		if have[c.name] != c.typ {
			return false
		}
	}
	return true
}

func kindName(k string) string {
	switch k {
	case kindView:
		return "view"
	case kindMV:
		return "materialized view"
	case kindTable:
		return "table"
	}
	return k
}

// writersOf names the materialized views that write to table.
func (s schema) writersOf(table string) []string {
	var out []string
	for _, n := range s.names() {
		if s[n].kind == kindMV && s[n].target == table {
			out = append(out, n)
		}
	}
	return out
}

func (s schema) names() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
