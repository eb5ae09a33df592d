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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *input == "" {
		fmt.Fprintln(stderr, "replay: --input is required (a file, or - for stdin)")
		return errUsage
	}
	cfg, err := config.Load(*cfgPath)
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
	if isTerminal(stderr) {
		start := time.Now()
		opts.Progress = func(lines int64) {
			rate := float64(lines) / time.Since(start).Seconds()
			fmt.Fprintf(stderr, "\rreplay: %d lines, %.0f lines/s ", lines, rate)
		}
	}
	sum, _, err := replay.Run(opts)
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
	cfg, err := config.Load(*cfgPath)
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
