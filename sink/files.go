package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/metrics"
)

// StageName labels the file sink's metrics (sink="files").
const StageName = "files"

// File names Files writes in its directory, one JSON object per line in the
// field order of docs/model.md (Outputs).
const (
	SnapshotsFile = "snapshots.jsonl"
	ChangesFile   = "tier_changes.jsonl"
	AlertsFile    = "alerts.jsonl"
)

// Files appends batches to JSONL files in one directory and fsyncs them
// before Write returns. Rows are only ever appended: a reader wanting the
// current state of an account takes its highest version, as ClickHouse's
// ReplacingMergeTree does.
//
// A write that fails is cut back to where the file ended before it, so a
// retried batch never leaves a torn line. Disk full and quota errors are
// retried with backoff until the context ends; other errors are returned
// at once.
type Files struct {
	dir    string
	m      *metrics.Metrics
	mu     sync.Mutex // serialises Write and Close
	tables [3]*fileTable
	closed bool
	// Rows are encoded into a table's buf and written out whenever chunk
	// bytes have gathered: a flush of any size needs no more memory than
	// that.
	chunk int

	stage *retry.Stage // retries, health and the sink="files" metrics

	// failWrite, when set by a test, is asked before each write of a chunk
	// and fails it with the error it returns.
	failWrite func() error
}

type fileTable struct {
	table string // metric label, the ClickHouse table of the same rows
	path  string
	f     *os.File // nil after a failure, reopened by the next attempt
	// checked is set once the file is known to end in a newline (or be
	// empty) since it was opened.
	checked bool
	buf     []byte
}

// NewFiles opens (creating if needed) the three JSONL files in dir, creating
// dir too. Each failed write is logged to log with the wait before the
// next attempt (a full disk must not fail in silence). m and log may be
// nil.
func NewFiles(dir string, m *metrics.Metrics, log *slog.Logger) (*Files, error) {
	if m == nil {
		m = metrics.New(nil)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	s := &Files{
		dir:   dir,
		m:     m,
		chunk: 1 << 20,
		stage: retry.New(StageName, retry.Options{Initial: 100 * time.Millisecond, Max: 5 * time.Second}, m, log),
	}
	for i, x := range [3][2]string{
		{"account_snapshots", SnapshotsFile},
		{"tier_changes", ChangesFile},
		{"account_alerts", AlertsFile},
	} {
		t := &fileTable{table: x[0], path: filepath.Join(dir, x[1])}
		if err := t.open(); err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("file sink: %w", hint(err))
		}
		s.tables[i] = t
	}
	// The new directory entries must survive a crash too.
	if err := syncDir(dir); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("file sink: %w", hint(err))
	}
	return s, nil
}

// Dir returns the directory the files are in.
func (s *Files) Dir() string { return s.dir }

// Write appends every row of b and fsyncs each file it wrote to.
func (s *Files) Write(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("file sink: write after Close")
	}
	start := time.Now()
	tables := [3]rows{
		{len(b.Snapshots), func(dst []byte, i int) []byte { return b.Snapshots[i].AppendJSON(dst) }},
		{len(b.Changes), func(dst []byte, i int) []byte { return b.Changes[i].AppendJSON(dst) }},
		{len(b.Alerts), func(dst []byte, i int) []byte { return b.Alerts[i].AppendJSON(dst) }},
	}
	// The files are independent: encoding one overlaps another's fsync.
	var g errgroup.Group
	for i, t := range s.tables {
		r := tables[i]
		if r.n == 0 {
			continue
		}
		g.Go(func() error {
			if cap(t.buf) < s.chunk+64<<10 {
				t.buf = make([]byte, 0, s.chunk+64<<10)
			}
			err := s.stage.Do(ctx, t.table, func(context.Context) (bool, error) {
				if err := t.append(r, s.chunk, s.failWrite); err != nil {
					return healable(err), fmt.Errorf("file sink: %w", hint(err))
				}
				return false, nil
			})
			if err != nil {
				return err
			}
			s.m.SinkRows.WithLabelValues(t.table).Add(float64(r.n))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.m.SinkFlush.Observe(time.Since(start).Seconds())
	return nil
}

func (t *fileTable) open() error {
	f, err := os.OpenFile(t.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() && st.Mode()&os.ModeDevice == 0 {
		f.Close()
		return &os.PathError{Op: "open", Path: t.path, Err: errors.New("not a regular file")}
	}
	t.f = f
	t.checked = false
	return nil
}

// rows are one table's rows of a batch: n of them, row appends the i-th's
// JSON.
type rows struct {
	n   int
	row func(dst []byte, i int) []byte
}

// append writes r's rows, one per line, in writes of about chunk bytes
// encoded into t.buf, then fsyncs. On failure it cuts the file back to its
// old end, so no partial line stays behind, and drops the handle so the
// next attempt reopens the path (which may have been fixed meanwhile).
func (t *fileTable) append(r rows, chunk int, failWrite func() error) error {
	if t.f == nil {
		if err := t.open(); err != nil {
			return err
		}
		// The path may have been recreated: make its entry durable too.
		if err := syncDir(filepath.Dir(t.path)); err != nil {
			return t.fail(-1, err)
		}
	}
	st, err := t.f.Stat()
	if err != nil {
		return t.fail(-1, err)
	}
	end := st.Size()
	p := t.buf[:0]
	if !t.checked && end > 0 && st.Mode().IsRegular() {
		// A crash or a failed cut can leave a torn last line; never glue
		// our first row onto it.
		var last [1]byte
		if _, err := t.f.ReadAt(last[:], end-1); err != nil {
			return t.fail(-1, err)
		}
		if last[0] != '\n' {
			p = append(p, '\n')
		}
	}
	t.checked = true
	for i := 0; i < r.n; i++ {
		p = append(r.row(p, i), '\n')
		if len(p) >= chunk || i == r.n-1 {
			if failWrite != nil {
				if err := failWrite(); err != nil {
					return t.fail(end, err)
				}
			}
			if _, err := t.f.Write(p); err != nil {
				return t.fail(end, err)
			}
			p = p[:0]
		}
	}
	if err := t.f.Sync(); err != nil {
		return t.fail(end, err)
	}
	return nil
}

func (t *fileTable) fail(end int64, err error) error {
	if end >= 0 && t.f != nil {
		// Best effort: if the cut fails too, the torn line stays, and the
		// next append after reopening starts on a fresh line.
		if t.f.Truncate(end) == nil {
			t.f.Sync()
		}
	}
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	return err
}

// healable reports errors that an operator can fix while Pyramid waits.
func healable(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// hint adds what to do to errors people can act on; os errors already name
// the path.
func hint(err error) error {
	switch {
	case healable(err):
		return fmt.Errorf("%w (free disk space; writes are retried until they succeed)", err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (make the sink directory writable by this user)", err)
	case errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%w (remove the directory in the way of the output file)", err)
	}
	return err
}

// Healthy returns nil when the last write attempt succeeded, else its error.
func (s *Files) Healthy() error { return s.stage.Healthy() }

// Close closes the files. Every successful Write is already durable.
func (s *Files) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *Files) closeFiles() error {
	var errs []error
	for _, t := range s.tables {
		if t != nil && t.f != nil {
			if err := t.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("file sink: %w", err))
			}
			t.f = nil
		}
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// ReadJSONL reads a file written by Files: one object per line, numbers
// kept exact as json.Number. It is for tests, tools and the demo; a blank
// line is skipped, any other line that does not parse is an error naming
// the line.
func ReadJSONL(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			return out, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, row)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
