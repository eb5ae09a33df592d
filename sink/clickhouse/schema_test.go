package clickhouse

import (
	"reflect"
	"strings"
	"testing"
)

func embeddedSchema(t *testing.T) schema {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	want, err := expectedSchema(ms)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// TestExpectedSchema: the embedded migrations fold into the documented
// layout, and the current-state table has exactly the history's columns
// (its materialized view copies rows as they are).
func TestExpectedSchema(t *testing.T) {
	want := embeddedSchema(t)
	kinds := map[string]string{}
	for n, r := range want {
		kinds[n] = r.kind
	}
	wantKinds := map[string]string{
		"account_snapshots": kindTable, "tier_changes": kindTable, "account_alerts": kindTable, "account_current": kindTable,
		"account_current_mv": kindMV,
		"account_latest":     kindView, "tier_distribution": kindView, "rep_coverage": kindView, "neglected_accounts": kindView,
		// Planning (migration 4).
		"coverage_capacity": kindTable, "goal_summary": kindView, "coverage_plan": kindView,
		"coverage_overloaded_reps": kindView, "coverage_watch_list": kindView,
		// Capacity-capped tiers (migration 5).
		"tier_caps": kindTable, "tier_capacity": kindView,
	}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("relations = %v\nwant %v", kinds, wantKinds)
	}
	cur, hist := want["account_current"], want["account_snapshots"]
	if cur.engine != "ReplacingMergeTree(version)" || cur.orderBy != "account_id" {
		t.Errorf("account_current: engine %s ORDER BY %s", cur.engine, cur.orderBy)
	}
	if hist.engine != "ReplacingMergeTree(version)" || hist.orderBy != "account_id,version" {
		t.Errorf("account_snapshots: engine %s ORDER BY %s", hist.engine, hist.orderBy)
	}
	if !reflect.DeepEqual(cur.columns, hist.columns) {
		t.Errorf("account_current columns differ from account_snapshots':\n%v\n%v", cur.columns, hist.columns)
	}
	var names []string
	for _, c := range hist.columns {
		names = append(names, c.name)
	}
	if got := strings.Join(names, ", "); got != snapshotColumns {
		t.Errorf("account_snapshots columns %q, sink writes %q", got, snapshotColumns)
	}
	mv := want["account_current_mv"]
	if mv.target != "account_current" || len(mv.backfills) != 1 || mv.backfills[0].source != "account_snapshots" {
		t.Errorf("account_current_mv: target %s, backfills %+v", mv.target, mv.backfills)
	}
	if want["account_latest"].create.migIndex != 2 {
		t.Errorf("account_latest is defined last by migration %d, want the third", want["account_latest"].create.migIndex+1)
	}
}

func TestParseStmt(t *testing.T) {
	for _, c := range []struct {
		sql  string
		kind stmtKind
		name string
	}{
		{"CREATE TABLE IF NOT EXISTS {db}.t\n(\n  a UInt8,\n  b Enum8('x, y' = 1, 'z)' = 2) DEFAULT 'z)'\n)\nENGINE = ReplacingMergeTree(a)\nORDER BY (a, b)", stmtCreateTable, "t"},
		{"CREATE VIEW IF NOT EXISTS {db}.v AS\nSELECT 1", stmtCreateView, "v"},
		{"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv TO {db}.t AS\nSELECT a FROM {db}.s", stmtCreateMV, "mv"},
		{"DROP TABLE IF EXISTS {db}.v", stmtDrop, "v"},
		{"ALTER TABLE {db}.t ADD COLUMN c String DEFAULT '' AFTER b", stmtAddColumn, "t"},
		{"INSERT INTO {db}.t (a, b)\nSELECT a, b FROM {db}.s WHERE a > 0", stmtBackfill, "t"},
	} {
		s, err := parseStmt(c.sql)
		if err != nil || s.kind != c.kind || s.name != c.name {
			t.Errorf("parseStmt(%q) = kind %d name %q, %v; want kind %d name %q", c.sql, s.kind, s.name, err, c.kind, c.name)
		}
	}
	s, _ := parseStmt("CREATE TABLE IF NOT EXISTS {db}.t\n(\n  a UInt8,\n  b Enum8('x, y' = 1, 'z)' = 2) DEFAULT 'z)'\n)\nENGINE = ReplacingMergeTree(a)\nORDER BY (a, b)")
	wantCols := []column{{"a", "UInt8", "UInt8"}, {"b", "Enum8('x,y'=1,'z)'=2)", "Enum8('x, y' = 1, 'z)' = 2) DEFAULT 'z)'"}}
	if !reflect.DeepEqual(s.columns, wantCols) || s.engine != "ReplacingMergeTree(a)" || s.orderBy != "a,b" {
		t.Errorf("parsed %+v %q %q", s.columns, s.engine, s.orderBy)
	}
	mv, _ := parseStmt("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv TO {db}.t AS\nSELECT a FROM {db}.s")
	if mv.target != "t" || mv.source != "s" {
		t.Errorf("MV target %q source %q", mv.target, mv.source)
	}

	// Statements that are not safe to run twice, or that 18.16 rejects,
	// are refused when the migrations load.
	for _, sql := range []string{
		"CREATE TABLE {db}.t (a UInt8) ENGINE = Log",
		"CREATE VIEW {db}.v AS SELECT 1",
		"DROP VIEW IF EXISTS {db}.v",
		"DROP TABLE {db}.t",
		"ALTER TABLE {db}.t MODIFY COLUMN a UInt16",
		"RENAME TABLE {db}.a TO {db}.b",
		"CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Log",
	} {
		if _, err := parseStmt(sql); err == nil {
			t.Errorf("parseStmt(%q) accepted", sql)
		}
	}
}

func TestNormEngine(t *testing.T) {
	for in, want := range map[string]string{
		"ReplacingMergeTree(version)": "ReplacingMergeTree(version)",
		"ReplacingMergeTree()":        "ReplacingMergeTree",
		"ReplacingMergeTree":          "ReplacingMergeTree",
		"ReplicatedReplacingMergeTree('/ch/{shard}/t', '{replica}', version)": "ReplacingMergeTree(version)",
		"ReplicatedReplacingMergeTree('/ch/t', '{replica}')":                  "ReplacingMergeTree",
		"SharedReplacingMergeTree('/p/{uuid}', '{replica}', row_version)":     "ReplacingMergeTree(row_version)",
		"MergeTree": "MergeTree",
	} {
		if got := normEngine(in); got != want {
			t.Errorf("normEngine(%q) = %q, want %q", in, got, want)
		}
	}
	e, k := splitEngine("ReplacingMergeTree(version) ORDER BY (account_id, version) SETTINGS index_granularity = 8192")
	if e != "ReplacingMergeTree(version)" || k != "account_id,version" {
		t.Errorf("splitEngine = %q, %q", e, k)
	}
	if _, k := splitEngine("MergeTree PARTITION BY toYYYYMM(d) ORDER BY tuple() SETTINGS x = 1"); k != "tuple()" {
		t.Errorf("sorting key %q, want tuple()", k)
	}
}

// liveOf is a live database that is exactly want, as readLive would see it.
func liveOf(want schema) *live {
	l := &live{kind: map[string]string{}, engine: map[string]string{}, orderBy: map[string]string{}, columns: map[string]map[string]string{}}
	for n, r := range want {
		l.kind[n] = r.kind
		cols := r.columns
		if r.kind == kindMV {
			cols = want[r.target].columns
		}
		if r.kind == kindTable {
			l.engine[n], l.orderBy[n] = r.engine, r.orderBy
		}
		if len(cols) > 0 {
			l.columns[n] = map[string]string{}
			for _, c := range cols {
				l.columns[n][c.name] = c.typ
			}
		}
	}
	return l
}

func TestCompare(t *testing.T) {
	want := embeddedSchema(t)
	if d := compare(want, liveOf(want)); !d.empty() || len(d.notes) > 0 {
		t.Fatalf("the expected schema differs from itself: %+v", d)
	}

	l := liveOf(want)
	delete(l.columns["account_snapshots"], "account_name")
	delete(l.columns["account_current"], "coverage_load")
	delete(l.columns["account_current_mv"], "coverage_load") // created for that older table
	l.columns["account_alerts"]["owner_id"] = "UInt64"
	l.engine["tier_changes"], l.orderBy["tier_changes"] = "MergeTree", "account_id"
	l.columns["account_current"]["note"] = "String"
	l.kind["rep_coverage"] = kindTable
	delete(l.kind, "neglected_accounts")
	d := compare(want, l)

	wantFatal := []string{
		"column account_alerts.owner_id: type UInt64, want String",
		"table tier_changes: engine MergeTree, want ReplacingMergeTree",
		"table tier_changes: sorting key (account_id), want (account_id,version,to_tier)",
		"rep_coverage is a table, want a view",
	}
	for _, w := range wantFatal {
		found := false
		for _, f := range d.fatal {
			found = found || strings.HasPrefix(f, w)
		}
		if !found {
			t.Errorf("no difference starting %q in %q", w, d.fatal)
		}
	}
	if len(d.fatal) != len(wantFatal) {
		t.Errorf("%d fatal differences, want %d: %q", len(d.fatal), len(wantFatal), d.fatal)
	}
	wantAdd := []string{
		"ALTER TABLE {db}.account_current ADD COLUMN coverage_load Float64 AFTER overridden",
		"ALTER TABLE {db}.account_snapshots ADD COLUMN account_name String AFTER coverage_load",
	}
	if !reflect.DeepEqual(d.addColumns, wantAdd) {
		t.Errorf("addColumns = %q\nwant %q", d.addColumns, wantAdd)
	}
	if !d.staleMVs["account_current_mv"] || len(d.staleMVs) != 1 {
		t.Errorf("staleMVs = %v, want account_current_mv (created for an older shape of its target)", d.staleMVs)
	}
	if !d.missing["neglected_accounts"] || len(d.missing) != 1 {
		t.Errorf("missing = %v", d.missing)
	}
	if len(d.notes) != 1 || !strings.Contains(d.notes[0], "account_current.note") || !strings.Contains(d.notes[0], "account_current_mv") {
		t.Errorf("notes = %q", d.notes)
	}
}

// TestPlan: on a database where every migration is applied, a missing
// view and a stale materialized view are re-created from the migrations
// that defined them last, the view after the columns are in place, the
// materialized view with its backfill.
func TestPlan(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	want := embeddedSchema(t)
	l := liveOf(want)
	delete(l.kind, "account_latest")
	delete(l.columns["account_current"], "account_name")
	delete(l.columns["account_current_mv"], "account_name")
	done := map[uint32]bool{}
	for _, m := range ms {
		done[m.Version] = true
	}
	var got []string
	for _, s := range planSteps(ms, want, compare(want, l), done) {
		got = append(got, firstLine(s.sql))
	}
	wantSteps := []string{
		"DROP TABLE IF EXISTS {db}.account_current_mv",
		"ALTER TABLE {db}.account_current ADD COLUMN account_name String AFTER coverage_load",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_current_mv TO {db}.account_current AS",
		"INSERT INTO {db}.account_current",
		"CREATE VIEW IF NOT EXISTS {db}.account_latest AS",
	}
	if !reflect.DeepEqual(got, wantSteps) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}

	// Nothing applied: every migration, in order, each recorded.
	var recorded []uint32
	n := 0
	for _, s := range planSteps(ms, want, compare(want, &live{kind: map[string]string{}}), map[uint32]bool{}) {
		if s.record != nil {
			recorded = append(recorded, s.record.Version)
		} else {
			n++
		}
	}
	total := 0
	var versions []uint32
	for _, m := range ms {
		total += len(m.Statements)
		versions = append(versions, m.Version)
	}
	if n != total || !reflect.DeepEqual(recorded, versions) {
		t.Errorf("fresh plan: %d statements, records %v; want %d, %v", n, recorded, total, versions)
	}
}
