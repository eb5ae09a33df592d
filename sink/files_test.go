package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	_ = g.Write(&m)
	return m.GetGauge().GetValue()
}

func histCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleCount()
}

const t0 = int64(1767225600) * 1e9 // 2026-01-01T00:00:00Z

func snap(acc string, v uint64) scoring.Snapshot {
	return scoring.Snapshot{
		AccountID: acc, Version: v, AsOf: t0, Tier: scoring.Named, TierReason: "potential",
		Quadrant: "grow", CurrentValue: money.Cents(123456), PotentialValue: money.Cents(9900000),
		GoalMetric: "absolute_sales", GoalStatus: "on_track", CoverageModel: "field", OwnerID: "rep-1",
		LastTouchAt: t0 - 86400e9,
	}
}

func testBatch() *Batch {
	return &Batch{
		Snapshots: []scoring.Snapshot{snap("acc-1", 1), snap("acc-2", 7)},
		Changes: []scoring.TierChange{{
			AccountID: "acc-1", Version: 1, ChangedAt: t0, From: scoring.TierNone, To: scoring.Named,
			Reason: "potential", Current: 123456, Potential: 9900000, EventID: "ev-1",
		}},
		Alerts: []scoring.Alert{{
			AlertID: "al-1", AccountID: "acc-2", Kind: scoring.KindNeglected, Status: scoring.StatusOpen,
			OpenedAt: t0, Tier: scoring.Major, OwnerID: "rep-2", Potential: 5000000, LastTouchAt: t0 - 90*86400e9,
		}},
	}
}

// lines renders what Files must have written for b, per file.
func lines(b *Batch) map[string]string {
	var s, c, a []byte
	for i := range b.Snapshots {
		s = append(b.Snapshots[i].AppendJSON(s), '\n')
	}
	for i := range b.Changes {
		c = append(b.Changes[i].AppendJSON(c), '\n')
	}
	for i := range b.Alerts {
		a = append(b.Alerts[i].AppendJSON(a), '\n')
	}
	return map[string]string{SnapshotsFile: string(s), ChangesFile: string(c), AlertsFile: string(a)}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newFiles(t testing.TB, dir string, m *metrics.Metrics) *Files {
	t.Helper()
	s, err := NewFiles(dir, m, nil)
	if err != nil {
		t.Fatalf("NewFiles: %v", err)
	}
	s.stage = retry.New(StageName, retry.Options{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}, s.m, nil)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestFilesWriteAndReadBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "nested") // created by NewFiles
	m := metrics.New(prometheus.NewRegistry())
	s := newFiles(t, dir, m)
	b := testBatch()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after a good write: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := lines(b)
	for name, w := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != w {
			t.Errorf("%s:\ngot  %q\nwant %q", name, got, w)
		}
	}
	rows, err := ReadJSONL(filepath.Join(dir, SnapshotsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1]["account_id"] != "acc-2" || rows[1]["version"].(fmt.Stringer).String() != "7" {
		t.Errorf("ReadJSONL: %v", rows)
	}

	for table, n := range map[string]float64{"account_snapshots": 2, "tier_changes": 1, "account_alerts": 1} {
		if got := counterValue(m.SinkRows.WithLabelValues(table)); got != n {
			t.Errorf("SinkRows{table=%q} = %v, want %v", table, got, n)
		}
	}
	if n := histCount(m.SinkFlush); n != 1 {
		t.Errorf("SinkFlush observations = %d, want 1", n)
	}

	// A second sink on the same directory appends; it never truncates.
	s2 := newFiles(t, dir, nil)
	if err := s2.Write(context.Background(), &Batch{Snapshots: []scoring.Snapshot{snap("acc-3", 1)}}); err != nil {
		t.Fatal(err)
	}
	s2.Close(context.Background())
	if rows, err := ReadJSONL(filepath.Join(dir, SnapshotsFile)); err != nil || len(rows) != 3 {
		t.Errorf("after reopening: %d rows, %v; want 3", len(rows), err)
	}
	if got := readFile(t, filepath.Join(dir, ChangesFile)); got != want[ChangesFile] {
		t.Errorf("an empty part of a batch touched %s: %q", ChangesFile, got)
	}
}

func TestFilesEmptyBatch(t *testing.T) {
	dir := t.TempDir()
	s := newFiles(t, dir, nil)
	if err := s.Write(context.Background(), &Batch{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{SnapshotsFile, ChangesFile, AlertsFile} {
		if got := readFile(t, filepath.Join(dir, name)); got != "" {
			t.Errorf("%s = %q, want empty", name, got)
		}
	}
}

func TestFilesConcurrentWritesKeepWholeLines(t *testing.T) {
	dir := t.TempDir()
	s := newFiles(t, dir, nil)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				acc := fmt.Sprintf("acc-%d-%s", w, strings.Repeat("x", 500))
				b := &Batch{Snapshots: []scoring.Snapshot{snap(acc, uint64(i+1))}}
				b.Changes = []scoring.TierChange{{AccountID: acc, Version: uint64(i + 1), To: scoring.Major}}
				if err := s.Write(context.Background(), b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, name := range []string{SnapshotsFile, ChangesFile} {
		rows, err := ReadJSONL(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s has a torn line: %v", name, err)
		}
		seen := map[string]bool{}
		for _, r := range rows {
			k := fmt.Sprint(r["account_id"], "/", r["version"])
			if seen[k] {
				t.Errorf("%s: %s twice", name, k[:8])
			}
			seen[k] = true
		}
		if len(seen) != writers*each {
			t.Errorf("%s: %d distinct rows, want %d", name, len(seen), writers*each)
		}
	}
}

func TestFilesWriteErrorIsReportedAndHeals(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full to simulate a full disk")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, SnapshotsFile)
	// Every write to /dev/full fails with ENOSPC: a full disk.
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(nil)
	s := newFiles(t, dir, m)
	b := testBatch()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, b)
	if err == nil {
		t.Fatal("Write to a full disk succeeded")
	}
	for _, want := range []string{path, "no space left", "free disk space"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Write error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write error %q: want it to wrap the context's end (it retried a healable error)", err)
	}
	if h := s.Healthy(); h == nil || !strings.Contains(h.Error(), path) || !errors.Is(h, syscall.ENOSPC) {
		t.Errorf("Healthy = %v, want ENOSPC naming %s", h, path)
	}
	if gaugeValue(m.SinkUp.WithLabelValues(StageName)) != 0 || counterValue(m.SinkErrors.WithLabelValues(StageName)) == 0 || counterValue(m.SinkRetries.WithLabelValues(StageName)) == 0 {
		t.Errorf("up %v, errors %v, retries %v: want 0, >0, >0",
			gaugeValue(m.SinkUp.WithLabelValues(StageName)), counterValue(m.SinkErrors.WithLabelValues(StageName)), counterValue(m.SinkRetries.WithLabelValues(StageName)))
	}

	// A directory in the way cannot heal by waiting: Write returns at once.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Write(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Write with a directory in the way = %v, want EISDIR naming %s", err, path)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a permanent error took %v to report", d)
	}
	if h := s.Healthy(); h == nil || !errors.Is(h, syscall.EISDIR) {
		t.Errorf("Healthy = %v, want EISDIR", h)
	}

	// Fixed: the next Write reopens the path and succeeds.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write after the fix: %v", err)
	}
	if h := s.Healthy(); h != nil {
		t.Errorf("Healthy after the fix = %v", h)
	}
	if gaugeValue(m.SinkUp.WithLabelValues(StageName)) != 1 {
		t.Errorf("SinkUp = %v after the fix, want 1", gaugeValue(m.SinkUp.WithLabelValues(StageName)))
	}
	if got, want := readFile(t, path), lines(b)[SnapshotsFile]; got != want {
		t.Errorf("%s after the fix:\ngot  %q\nwant %q", path, got, want)
	}
}

func TestFilesNeverGlueOntoATornLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SnapshotsFile)
	torn := `{"account_id":"acc-0","ver`
	if err := os.WriteFile(path, []byte(torn), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newFiles(t, dir, nil)
	b := &Batch{Snapshots: []scoring.Snapshot{snap("acc-1", 1)}}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	one := lines(b)[SnapshotsFile]
	if got, want := readFile(t, path), torn+"\n"+one+one; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestNewFilesErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFiles(notDir, nil, nil); err == nil || !strings.Contains(err.Error(), notDir) {
		t.Errorf("NewFiles on a regular file = %v, want an error naming it", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	inTheWay := filepath.Join(dir, "d", AlertsFile)
	if err := os.Mkdir(inTheWay, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFiles(filepath.Join(dir, "d"), nil, nil); err == nil || !strings.Contains(err.Error(), inTheWay) {
		t.Errorf("NewFiles with a directory in the way = %v, want an error naming %s", err, inTheWay)
	}
}

func TestFilesWriteAfterClose(t *testing.T) {
	s := newFiles(t, t.TempDir(), nil)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Write(context.Background(), testBatch()); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// A flush larger than the write chunk goes out in several writes; one that
// fails part-way leaves nothing of the batch behind, and the retry writes
// it whole.
func TestFilesWriteInChunks(t *testing.T) {
	dir := t.TempDir()
	m := metrics.New(nil)
	s := newFiles(t, dir, m)
	s.chunk = 2000 // a few rows per write
	first := testBatch()
	if err := s.Write(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	b := &Batch{}
	for i := range 300 {
		b.Snapshots = append(b.Snapshots, snap(fmt.Sprintf("acc-%03d", i), uint64(i+1)))
	}
	var writes atomic.Int32
	s.failWrite = func() error {
		if writes.Add(1) == 5 {
			return syscall.ENOSPC // healable: retried
		}
		return nil
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	want := lines(first)[SnapshotsFile] + lines(b)[SnapshotsFile]
	if got := readFile(t, filepath.Join(dir, SnapshotsFile)); got != want {
		t.Errorf("snapshots after a failed chunk and its retry: %d bytes, want %d", len(got), len(want))
	}
	if n := len(want) / s.chunk; int(writes.Load()) < n {
		t.Errorf("%d chunk writes for %d bytes, want at least %d", writes.Load(), len(want), n)
	}
	if counterValue(m.SinkRetries.WithLabelValues(StageName)) != 1 {
		t.Errorf("retries = %v, want 1", counterValue(m.SinkRetries.WithLabelValues(StageName)))
	}
}

// A full disk is retried, and every failed write is logged with the wait
// before the next attempt.
func TestFilesLogEveryFailedWrite(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s, err := NewFiles(t.TempDir(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var fails atomic.Int32
	s.failWrite = func() error {
		if fails.Add(1) <= 4 { // the first table's write, four times over
			return syscall.ENOSPC
		}
		return nil
	}
	if err := s.Write(context.Background(), testBatch()); err != nil {
		t.Fatal(err)
	}
	var lines int
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "write failed; retrying" && m["sink"] == StageName && strings.Contains(fmt.Sprint(m["err"]), "no space left on device") && m["retry_in"] != nil {
			lines++
		}
	}
	if lines != 4 {
		t.Fatalf("%d log lines for 4 failed writes:\n%s", lines, logs.String())
	}
}
