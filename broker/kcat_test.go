package broker_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/broker"
)

// TestKcat checks that librdkafka, through kcat, can produce to and consume
// from the broker: the demo's instructions use it. Without kcat the test
// skips, except under CI=true, where a skipped test would hide a gap.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; CI must install it (apt-get install kcat)")
		}
		t.Skip("kcat is not installed")
	}
	b := start(t, broker.Options{})
	addr := b.Addrs()[0]
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}

	in := "acct-1:{\"n\":1}\nacct-2:{\"n\":2}\nacct-1:{\"n\":3}\n"
	run(in, "-P", "-t", "crm.orders", "-K:")
	out := run("", "-C", "-t", "crm.orders", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n")
	got := strings.Split(strings.TrimSpace(out), "\n")
	want := strings.Split(strings.TrimSpace(in), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kcat consumed\n%s\nwant\n%s", out, in)
	}
	meta := run("", "-L", "-t", "crm.orders")
	if !strings.Contains(meta, `topic "crm.orders" with 12 partitions`) {
		t.Errorf("kcat -L:\n%s", meta)
	}
}
