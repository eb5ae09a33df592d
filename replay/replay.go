// Package replay runs the scoring core over a JSONL file of events, offline:
// the backtest a revenue-operations team runs before switching a tier
// configuration on. It applies events in file order with the evaluation
// clock of docs/operations.md (the largest occurred_at seen so far), evaluates every
// account once more at the end at --as-of, and writes one snapshot per
// account sorted by account_id, every tier change, and every alert with its
// final status. Capped tiers (max_accounts) are ranked once, after that
// final evaluation.
//
// The clock while reading is the largest occurred_at seen so far for the
// event's own account (scoring.EventTime), not across all accounts: tier
// hysteresis is path-dependent, and a global clock would let one account's
// events change another account's history. The final evaluation uses one
// clock for all: --as-of, or the largest occurred_at in the whole input;
// each final snapshot is a new version (scoring.Engine.Reemit), as when a
// stream ends its backfill. Bad lines are reported with their line number
// and skipped.
package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Options configures a replay. Nil writers discard that output.
type Options struct {
	Config  *config.Config
	AsOf    time.Time // zero: the largest occurred_at in the input
	Input   io.Reader
	Output  io.Writer // snapshots, JSONL
	Changes io.Writer // tier changes, JSONL
	Alerts  io.Writer // alerts with their final status, JSONL
	// Plan receives the goal and coverage summaries of the final
	// snapshots as one JSON document (see package plan).
	Plan   io.Writer
	Errors io.Writer // bad lines and the summary
	// Progress, when set, is called about once a second with lines read.
	Progress func(lines int64)
	// Now is the wall clock: read once at the start, it is the time the
	// replay runs, and an event more than 24 h after it is rejected, as
	// in streaming. It also paces progress reports. Default time.Now.
	Now func() time.Time
}

// Summary counts what a replay did.
type Summary struct {
	Read       int64
	Applied    int64
	Duplicates int64
	Rejected   map[string]int64
	Accounts   int
	AsOf       time.Time
}

// RejectedTotal sums rejections over reasons.
func (s *Summary) RejectedTotal() int64 {
	var n int64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// String renders the summary line printed at the end of stderr.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replay summary: read %d, applied %d, duplicates %d, rejected %d", s.Read, s.Applied, s.Duplicates, s.RejectedTotal())
	if len(s.Rejected) > 0 {
		reasons := slices.Sorted(maps.Keys(s.Rejected))
		b.WriteString(" (")
		for i, r := range reasons {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", r, s.Rejected[r])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", accounts %d, as_of %s", s.Accounts, s.AsOf.UTC().Format(time.RFC3339))
	return b.String()
}

// Result is what a replay leaves behind for callers that want more than the
// files: the engine with every account, and the clock it ended at.
type Result struct {
	Engine *scoring.Engine
	AsOf   int64
}

// Run is RunContext without cancellation.
func Run(opts Options) (*Summary, *Result, error) { return RunContext(context.Background(), opts) }

// RunContext replays opts.Input. It returns an error only when reading or
// writing fails, or when ctx ends (then wrapping ctx's error); bad events
// are reported and counted.
func RunContext(ctx context.Context, opts Options) (*Summary, *Result, error) {
	if opts.Config == nil {
		opts.Config = config.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dec := event.NewDecoder(opts.Config)
	eng := scoring.NewEngine(scoring.NewParams(opts.Config))
	sum := &Summary{Rejected: map[string]int64{}}
	out := writers{snap: bufio.NewWriterSize(orDiscard(opts.Output), 1<<16),
		chg: bufio.NewWriterSize(orDiscard(opts.Changes), 1<<16), errs: orDiscard(opts.Errors)}
	alerts := newAlertLog()

	// clock is the largest occurred_at of the events applied: rejected
	// ones never move it, so one bad line cannot move the default as-of.
	var clock int64
	var o scoring.Output
	var buf []byte
	lines := newLineReader(opts.Input)
	lastProgress := opts.Now()
	wall := lastProgress.UnixNano()
	done := ctx.Done()
	for {
		if lines.n%1024 == 0 {
			select {
			case <-done:
				return sum, nil, fmt.Errorf("replay stopped after %d lines: %w", lines.n, ctx.Err())
			default:
			}
		}
		line, tooLong, err := lines.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, nil, fmt.Errorf("reading input: %w", err)
		}
		n := lines.n
		if opts.Progress != nil && n%65536 == 0 {
			if now := opts.Now(); now.Sub(lastProgress) >= time.Second {
				opts.Progress(n)
				lastProgress = now
			}
		}
		if !tooLong && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		sum.Read++
		var ev event.Event
		if tooLong {
			err = &event.Error{Reason: event.ReasonTooLarge, Msg: fmt.Sprintf("event is larger than %d bytes (1 MiB)", event.MaxSize)}
		} else if err = dec.DecodeTo(line, &ev); err == nil {
			err = event.CheckFuture(&ev, wall)
		}
		if err == nil {
			o.Reset()
			switch _, res := eng.Apply(&ev, scoring.EventTime, &o); res {
			case scoring.Duplicate:
				sum.Duplicates++
				continue
			case scoring.Rejected:
				err = o.Err
			}
		}
		if err != nil {
			sum.Rejected[event.ReasonOf(err)]++
			fmt.Fprintf(out.errs, "line %d: %v\n", n, err)
			continue
		}
		clock = max(clock, ev.OccurredAt)
		sum.Applied++
		if buf, err = out.emit(&o, alerts, buf); err != nil {
			return sum, nil, err
		}
	}

	asOf := clock
	if !opts.AsOf.IsZero() {
		asOf = opts.AsOf.UnixNano()
	}
	if asOf == 0 {
		asOf = opts.Now().UnixNano() // empty input: nothing depends on it
	}
	var summary *plan.Summariser
	if opts.Plan != nil {
		summary = plan.New(eng.Params())
	}
	ids := eng.IDs()
	for _, id := range ids {
		o.Reset()
		eng.Reemit(eng.Account(id), asOf, &o)
		var err error
		if buf, err = out.emit(&o, alerts, buf); err != nil {
			return sum, nil, err
		}
	}
	// Capped tiers are ranked once, over every account at the final clock:
	// the result does not depend on how the input interleaves accounts.
	var ranking *scoring.Ranking
	if eng.Params().AnyCapped() {
		o.Reset()
		ranking = scoring.Rank(eng.Params(), eng.Candidates(asOf))
		eng.ApplyRanking(ranking, asOf, &o, nil)
		var err error
		if buf, err = out.emit(&o, alerts, buf); err != nil {
			return sum, nil, err
		}
	}
	for _, id := range ids {
		s := eng.Snapshot(eng.Account(id), asOf)
		if summary != nil {
			summary.Add(&s)
		}
		buf = append(s.AppendJSON(buf[:0]), '\n')
		if _, err := out.snap.Write(buf); err != nil {
			return sum, nil, fmt.Errorf("writing snapshots: %w", err)
		}
	}
	if opts.Alerts != nil {
		w := bufio.NewWriter(opts.Alerts)
		for _, a := range alerts.list {
			buf = append(a.AppendJSON(buf[:0]), '\n')
			if _, err := w.Write(buf); err != nil {
				return sum, nil, fmt.Errorf("writing alerts: %w", err)
			}
		}
		if err := w.Flush(); err != nil {
			return sum, nil, fmt.Errorf("writing alerts: %w", err)
		}
	}
	if err := out.snap.Flush(); err != nil {
		return sum, nil, fmt.Errorf("writing snapshots: %w", err)
	}
	if err := out.chg.Flush(); err != nil {
		return sum, nil, fmt.Errorf("writing tier changes: %w", err)
	}
	sum.Accounts = len(ids)
	sum.AsOf = time.Unix(0, asOf).UTC()
	if summary != nil {
		capy := plan.Capacity(eng.Params(), ranking, opts.Config.Currency)
		if err := writePlan(opts.Plan, summary, capy, sum.AsOf); err != nil {
			return sum, nil, fmt.Errorf("writing the plan: %w", err)
		}
	}
	return sum, &Result{Engine: eng, AsOf: asOf}, nil
}

// writePlan writes the goal and coverage summaries, and the capped tiers
// when there are any, as one indented JSON document, for people and
// spreadsheets.
func writePlan(w io.Writer, s *plan.Summariser, capy []plan.CapacityTier, asOf time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		AsOf     string              `json:"as_of"`
		Goals    plan.Goals          `json:"goals"`
		Coverage plan.Coverage       `json:"coverage"`
		Capacity []plan.CapacityTier `json:"capacity,omitempty"`
	}{asOf.Format(time.RFC3339), s.Goals(), s.Coverage(), capy})
}

type writers struct {
	snap, chg *bufio.Writer
	errs      io.Writer
}

func (w *writers) emit(o *scoring.Output, alerts *alertLog, buf []byte) ([]byte, error) {
	for i := range o.Changes {
		buf = append(o.Changes[i].AppendJSON(buf[:0]), '\n')
		if _, err := w.chg.Write(buf); err != nil {
			return buf, fmt.Errorf("writing tier changes: %w", err)
		}
	}
	for i := range o.Alerts {
		alerts.put(o.Alerts[i])
	}
	return buf, nil
}

// alertLog keeps every alert once, in order of first appearance, with the
// latest status it reached.
type alertLog struct {
	list  []scoring.Alert
	index map[string]int
}

func newAlertLog() *alertLog { return &alertLog{index: map[string]int{}} }

func (l *alertLog) put(a scoring.Alert) {
	if i, ok := l.index[a.AlertID]; ok {
		l.list[i] = a
		return
	}
	l.index[a.AlertID] = len(l.list)
	l.list = append(l.list, a)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// lineReader yields lines without their newline. A line longer than the
// event size limit is reported once as tooLong and skipped to its end, so
// one huge line costs no more than a buffer.
type lineReader struct {
	r *bufio.Reader
	n int64 // current line number, 1-based
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<20)}
}

func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	line, err = l.r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(line) > 0) {
		l.n++
		return trimEOL(line), false, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, false, err
	}
	// Longer than the buffer (1 MiB): collect up to the limit, then skip.
	l.n++
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = l.r.ReadSlice('\n')
		if len(long) <= event.MaxSize+1 {
			long = append(long, line...)
		}
	}
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	long = trimEOL(long)
	if len(long) > event.MaxSize {
		return nil, true, nil
	}
	return long, false, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}
