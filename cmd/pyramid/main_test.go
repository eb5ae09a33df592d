package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/view"
)

func pyramid(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	old := os.Stdin
	if stdin != "" {
		f := filepath.Join(t.TempDir(), "stdin")
		if err := os.WriteFile(f, []byte(stdin), 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		os.Stdin = in
		defer func() { os.Stdin = old }()
	}
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: pyramid <command>"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"replay"}, 2, "--input is required"},
		{[]string{"run", "--sink-dir", "x"}, 2, "--brokers (or PYRAMID_BROKERS) is required"},
		{[]string{"run", "--brokers", "127.0.0.1:1"}, 2, "choose exactly one sink"},
		{[]string{"replay", "--input", "-", "--as-of", "yesterday"}, 1, "--as-of \"yesterday\" is not an RFC 3339 time"},
		{[]string{"config", "print", "--config", "/does/not/exist.yaml"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Setenv("PYRAMID_BROKERS", "")
		t.Setenv("PYRAMID_SINK_DIR", "")
		t.Setenv("PYRAMID_CLICKHOUSE_DSN", "")
		code, _, stderr := pyramid(t, "", tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("pyramid %v: exit %d, stderr %q; want exit %d containing %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}

func TestConfigPrintRoundTrips(t *testing.T) {
	code, out, _ := pyramid(t, "", "config", "print")
	if code != 0 || !strings.Contains(out, "threshold: 1000000") {
		t.Fatalf("config print: %d\n%s", code, out)
	}
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := pyramid(t, "", "config", "print", "--config", f); again != out {
		t.Fatalf("config print is not a fixed point:\n%s\n---\n%s", out, again)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("tiers:\n  major:\n    thresold: 5\n"), 0o644)
	if code, _, stderr := pyramid(t, "", "config", "print", "--config", bad); code != 1 || !strings.Contains(stderr, "tiers.major.thresold: unknown key") {
		t.Fatalf("bad key: %d %s", code, stderr)
	}
}

func TestReplayCommand(t *testing.T) {
	in := `{"event_id":"e1","type":"order","account_id":"a","occurred_at":"2026-01-01T00:00:00Z","order_id":"o","amount":300000}
garbage
{"event_id":"e2","type":"activity","account_id":"b","occurred_at":"2026-01-02T00:00:00Z","kind":"call"}
`
	dir := t.TempDir()
	code, out, stderr := pyramid(t, in, "replay", "--input", "-", "--changes", filepath.Join(dir, "c.jsonl"), "--alerts", filepath.Join(dir, "a.jsonl"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(out, "\n"); n != 2 || !strings.HasPrefix(out, `{"account_id":"a"`) {
		t.Fatalf("snapshots:\n%s", out)
	}
	if !strings.Contains(stderr, "line 2: not a JSON object") || !strings.Contains(stderr, "replay summary: read 3, applied 2") {
		t.Fatalf("stderr:\n%s", stderr)
	}
	changes, _ := os.ReadFile(filepath.Join(dir, "c.jsonl"))
	if strings.Count(string(changes), "\n") != 2 {
		t.Fatalf("changes:\n%s", changes)
	}

	// --plan writes the goal and coverage summaries as JSON.
	planFile := filepath.Join(dir, "plan.json")
	if code, _, stderr := pyramid(t, in, "replay", "--input", "-", "--output", filepath.Join(dir, "s.jsonl"), "--plan", planFile); code != 0 {
		t.Fatalf("--plan: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(planFile)
	var doc struct {
		AsOf     string `json:"as_of"`
		Goals    struct{ Accounts int }
		Coverage struct{ Accounts int }
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.AsOf != "2026-01-02T00:00:00Z" || doc.Goals.Accounts != 2 || doc.Coverage.Accounts != 2 {
		t.Fatalf("plan %+v (%v):\n%s", doc, err, b)
	}
	if code, _, stderr := pyramid(t, in, "replay", "--input", "-", "--plan", "-"); code != 2 || !strings.Contains(stderr, "both write to stdout") {
		t.Fatalf("--plan - with --output -: exit %d: %s", code, stderr)
	}
}

func TestTextPyramidPutsMajorOnTop(t *testing.T) {
	s := textPyramid(view.Counts{Accounts: 10, Tiers: map[string]int{"major": 1, "named": 2, "non_named": 3, "mass_market": 4}})
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 5 || !strings.Contains(lines[1], "major 1") || !strings.Contains(lines[4], "mass market 4") {
		t.Fatalf("pyramid:\n%s", s)
	}
	if len(lines[1]) >= len(lines[4]) {
		t.Fatalf("the top row should be the narrowest:\n%s", s)
	}
}
