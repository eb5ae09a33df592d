package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/replay"
)

func init() {
	register("replay", "score a JSONL file of events offline (backtest a configuration)", cmdReplay)
	register("config", "print the effective configuration: pyramid config print [--config FILE]", cmdConfig)
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	input := fs.String("input", "", "JSONL events to read, or - for stdin (required)")
	cfgPath := fs.String("config", os.Getenv("PYRAMID_CONFIG"), "YAML config file (default: built-in defaults) [PYRAMID_CONFIG]")
	asOf := fs.String("as-of", "", "RFC 3339 evaluation time for the final snapshots (default: the largest occurred_at)")
	output := fs.String("output", "-", "where to write snapshots (JSONL), or - for stdout")
	changes := fs.String("changes", "", "where to write tier changes (JSONL)")
	alerts := fs.String("alerts", "", "where to write alerts with their final status (JSONL)")
	planPath := fs.String("plan", "", "where to write the goal and coverage summaries of the final snapshots, and the capped tiers' places (JSON)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *input == "" {
		fmt.Fprintln(stderr, "replay: --input is required (a file, or - for stdin)")
		return errUsage
	}
	if *planPath == "-" && *output == "-" {
		fmt.Fprintln(stderr, "replay: --plan - and --output - would both write to stdout; send one of them to a file")
		return errUsage
	}
	cfg, err := loadConfig(ctx, *cfgPath)
	if err != nil {
		return err
	}
	opts := replay.Options{Config: cfg, Errors: stderr}
	if *asOf != "" {
		if opts.AsOf, err = time.Parse(time.RFC3339Nano, *asOf); err != nil {
			return fmt.Errorf("--as-of %q is not an RFC 3339 time (e.g. 2026-06-30T00:00:00Z)", *asOf)
		}
	}
	in, closeIn, err := openInput(*input, os.Stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	opts.Input = in
	var files []*os.File
	create := func(path string) (io.Writer, error) {
		if path == "" {
			return nil, nil
		}
		if path == "-" {
			return stdout, nil
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		return f, nil
	}
	if opts.Output, err = create(*output); err != nil {
		return err
	}
	if opts.Changes, err = create(*changes); err != nil {
		return err
	}
	if opts.Alerts, err = create(*alerts); err != nil {
		return err
	}
	if opts.Plan, err = create(*planPath); err != nil {
		return err
	}
	if isTerminal(stderr) {
		start := time.Now()
		opts.Progress = func(lines int64) {
			rate := float64(lines) / time.Since(start).Seconds()
			fmt.Fprintf(stderr, "\rreplay: %d lines, %.0f lines/s ", lines, rate)
		}
	}
	var sum *replay.Summary
	err = interruptible(ctx, func() error {
		s, _, err := replay.RunContext(ctx, opts)
		sum = s
		return err
	})
	if ctx.Err() != nil {
		// The replay may still be blocked on its input: leave its outputs
		// as they are and say so.
		return fmt.Errorf("interrupted; the outputs are incomplete")
	}
	if opts.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	for _, f := range files {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if sum != nil {
		fmt.Fprintln(stderr, sum.String())
	}
	return err
}

func cmdConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: pyramid config print [--config FILE]")
		return errUsage
	}
	fs := flag.NewFlagSet("config print", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("PYRAMID_CONFIG"), "YAML config file [PYRAMID_CONFIG]")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(ctx, *cfgPath)
	if err != nil {
		return err
	}
	b, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// loadConfig is config.Load that gives up when ctx ends: the file may be a
// pipe that never ends.
func loadConfig(ctx context.Context, path string) (*config.Config, error) {
	var cfg *config.Config
	err := interruptible(ctx, func() error {
		c, err := config.Load(path)
		cfg = c
		return err
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted while reading the configuration: %w", ctx.Err())
	}
	return cfg, err
}

// interruptible runs fn and returns its error, or returns once ctx has
// ended and fn has not followed within a second: a read from a pipe, a
// FIFO or a terminal cannot be cancelled, and a signal must still stop the
// command. Only when it returned nil has fn finished; otherwise it may
// still run, and the caller must not touch what fn writes.
func interruptible(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return ctx.Err()
	}
}

func openInput(path string, stdin io.Reader) (io.Reader, func(), error) {
	if path == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
