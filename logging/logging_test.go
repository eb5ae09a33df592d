package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	for _, tc := range []struct {
		format string
		json   bool
	}{
		{"json", true},
		{"JSON", true},
		{"text", false},
		{"auto", true}, // a buffer is not a terminal
		{"", true},
	} {
		var buf bytes.Buffer
		l, err := New(&buf, "info", tc.format)
		if err != nil {
			t.Fatalf("format %q: %v", tc.format, err)
		}
		l.Info("hello", "k", "v")
		line := strings.TrimSpace(buf.String())
		var m map[string]any
		isJSON := json.Unmarshal([]byte(line), &m) == nil
		if isJSON != tc.json {
			t.Errorf("format %q: got %q, want JSON=%v", tc.format, line, tc.json)
		}
		if !strings.Contains(line, "hello") {
			t.Errorf("format %q: message missing in %q", tc.format, line)
		}
	}
}

func TestNewLevels(t *testing.T) {
	for _, tc := range []struct {
		level     string
		debug, in bool
	}{
		{"debug", true, true},
		{"info", false, true},
		{"", false, true},
		{"warn", false, false},
		{"WARNING", false, false},
		{"error", false, false},
	} {
		var buf bytes.Buffer
		l, err := New(&buf, tc.level, "text")
		if err != nil {
			t.Fatalf("level %q: %v", tc.level, err)
		}
		l.Debug("dbg")
		l.Info("inf")
		out := buf.String()
		if got := strings.Contains(out, "dbg"); got != tc.debug {
			t.Errorf("level %q: debug logged=%v, want %v", tc.level, got, tc.debug)
		}
		if got := strings.Contains(out, "inf"); got != tc.in {
			t.Errorf("level %q: info logged=%v, want %v", tc.level, got, tc.in)
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "verbose", "json"); err == nil || !strings.Contains(err.Error(), `"verbose"`) {
		t.Errorf("bad level: err = %v, want one naming \"verbose\"", err)
	}
	if _, err := New(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("bad format: err = %v, want one naming \"xml\"", err)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	var nilFile *os.File
	if IsTerminal(nilFile) {
		t.Error("a nil file is not a terminal")
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"clickhouse://user:secret@host:9000/db", "clickhouse://user:***@host:9000/db"},
		{"clickhouse://user@host:9000/db", "clickhouse://user@host:9000/db"},
		{"clickhouse://default:@127.0.0.1:9000/default", "clickhouse://default:@127.0.0.1:9000/default"}, // no password to hide
		{"clickhouse://host:9000/db?dial_timeout=5s", "clickhouse://host:9000/db?dial_timeout=5s"},
		{"clickhouse://host:9000/db?password=s3cr3t&debug=1", "clickhouse://host:9000/db?debug=1&password=***"},
		{"https://u:p%40ss@example.com/x", "https://u:***@example.com/x"},
		{"clickhouse://user:pa%ss#w@host/db", "clickhouse://user:***@host/db"}, // not a valid URL
		{"user:secret@tcp(localhost:3306)/db", "user:***@tcp(localhost:3306)/db"},
		{"host=db user=app password=hunter2 sslmode=off", "host=db user=app password=*** sslmode=off"},
		{"host=db password='two words'", "host=db password=***"},
		{"localhost:9000", "localhost:9000"},
		{"just-text", "just-text"},
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "hunter2") || strings.Contains(got, "s3cr3t") {
			t.Errorf("Redact(%q) leaks the secret: %q", tc.in, got)
		}
	}
}

// An error that quotes the DSN, or its password alone, shows neither.
func TestRedactIn(t *testing.T) {
	dsn := "clickhouse://u:hunter2@h:9000/db?password=s3cr3t"
	got := RedactIn("open "+dsn+": login failed for u:hunter2 (s3cr3t)", dsn)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "s3cr3t") || !strings.Contains(got, "clickhouse://u:***@h:9000/db") {
		t.Errorf("RedactIn = %q", got)
	}
	if got := RedactIn("plain text", ""); got != "plain text" {
		t.Errorf("RedactIn without a DSN = %q", got)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("clickhouse://user:secret@host:9000/db")
	f.Add("user:secret@tcp(x)/y")
	f.Fuzz(func(t *testing.T, s string) {
		_ = Redact(s) // must not panic
	})
}

// A component named by the wiring and again by the part itself appears
// once per line, the part's own name winning; other attributes and groups
// are kept.
func TestComponentOnce(t *testing.T) {
	for _, format := range []string{FormatJSON, FormatText} {
		var buf bytes.Buffer
		log, err := New(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log = log.With("component", "webhook").With("component", "alert.webhook", "url", "u")
		log.Info("first", "k", 1)
		log.WithGroup("g").Info("second", "k", 2)
		out := buf.String()
		if n := strings.Count(out, "component"); n != 2 {
			t.Errorf("%s: %d component keys in two lines:\n%s", format, n, out)
		}
		if strings.Contains(out, "webhook\"") && !strings.Contains(out, "alert.webhook") || strings.Count(out, "alert.webhook") != 2 {
			t.Errorf("%s: the innermost component should win:\n%s", format, out)
		}
		if format == FormatJSON {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				keys := map[string]int{}
				dec := json.NewDecoder(strings.NewReader(line))
				if _, err := dec.Token(); err != nil { // {
					t.Fatal(err)
				}
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						t.Fatal(err)
					}
					keys[k.(string)]++
					var value json.RawMessage
					if err := dec.Decode(&value); err != nil {
						t.Fatal(err)
					}
				}
				for k, n := range keys {
					if n > 1 {
						t.Errorf("key %q %d times in %s", k, n, line)
					}
				}
				if keys["component"] != 1 || keys["url"] != 1 {
					t.Errorf("line %s: keys %v", line, keys)
				}
			}
		}
	}
}
