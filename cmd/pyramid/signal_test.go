package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as the pyramid command: with
// PYRAMID_TEST_AS_MAIN=1 the process is `pyramid <args>`.
func TestMain(m *testing.M) {
	if os.Getenv("PYRAMID_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The first SIGTERM stops commands that wait on their input: replay
// reading a FIFO that never ends, and config print reading a config file
// that is a FIFO. Opening the FIFO's write end returns only once the
// command has opened it for reading, so the signal handler is installed by
// then and one signal must be enough.
func TestFirstSignalStopsReadingCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(fifo string) []string
		want string
	}{
		{"replay", func(f string) []string { return []string{"replay", "--input", f, "--output", os.DevNull} }, "interrupted; the outputs are incomplete"},
		{"config print", func(f string) []string { return []string{"config", "print", "--config", f} }, "interrupted while reading the configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], tc.args(fifo)...)
			cmd.Env = append(os.Environ(), "PYRAMID_TEST_AS_MAIN=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the reader
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if tc.name == "replay" {
				// Some input, so the replay is past its start and reading.
				if _, err := w.WriteString(`{"event_id":"e","type":"activity","account_id":"a","occurred_at":"2026-01-01T00:00:00Z","kind":"call"}` + "\n"); err != nil {
					t.Fatal(err)
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), tc.want) {
					t.Fatalf("exit %d (%v), stderr %q; want 1 and %q", code, err, stderr.String(), tc.want)
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("still running 10 s after SIGTERM; stderr %q", stderr.String())
			}
		})
	}
}
