package httpapi

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium. Under CI=true a missing
// browser fails the test: a test that silently skips in CI is no test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; CI must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium not installed (apt-get install -y chromium); skipping the browser test")
	return ""
}

// runChromium runs headless Chromium with extra arguments against url and
// returns its standard output.
func runChromium(t *testing.T, bin string, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("chromium timed out after 60s; stderr:\n%s", stderr.b)
	}
	if err != nil {
		t.Fatalf("chromium: %v; stderr:\n%s", err, stderr.b)
	}
	return out
}

// limitedBuffer keeps the first 16 KiB of Chromium's chatty stderr.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 16<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

var (
	tierRE = regexp.MustCompile(`<g class="tier" id="tier-([a-z_]+)" data-tier="([a-z_]+)" data-count="(\d+)">[\s\S]*?<text class="tier-count"[^>]*>(\d+)</text>`)
	quadRE = regexp.MustCompile(`data-quadrant="([a-z_]+)" data-count="(\d+)"`)
)

// TestStatusPageInBrowser renders the status page in a real browser and
// reads the pyramid back from the DOM it built.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	srv := httptest.NewServer(New(Options{Store: fixture(t), Title: "pyramid-test"}))
	defer srv.Close()

	dom := string(runChromium(t, bin, srv.URL+"/", "--dump-dom"))
	got := map[string]int{}
	var order []string
	for _, m := range tierRE.FindAllStringSubmatch(dom, -1) {
		if m[1] != m[2] || m[3] != m[4] {
			t.Errorf("tier element disagrees with itself: %q", m[0])
		}
		n, _ := strconv.Atoi(m[3])
		got[m[2]] = n
		order = append(order, m[2])
	}
	want := map[string]int{"major": 3, "named": 2, "non_named": 1, "mass_market": 4}
	if len(got) != len(want) {
		t.Fatalf("found tiers %v in the rendered DOM, want %v; DOM:\n%s", got, want, dom)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tier %s shows %d accounts, want %d", k, got[k], v)
		}
	}
	if order[0] != "major" || order[3] != "mass_market" {
		t.Errorf("pyramid drawn %v, want major on top", order)
	}
	quads := map[string]string{}
	for _, m := range quadRE.FindAllStringSubmatch(dom, -1) {
		quads[m[1]] = m[2]
	}
	if quads["low_current_low_potential"] != "6" || quads["high_current_high_potential"] != "2" || len(quads) != 4 {
		t.Errorf("quadrants in the DOM = %v", quads)
	}

	// PYRAMID_SCREENSHOT=/path/status.png also saves a picture for people.
	if path := os.Getenv("PYRAMID_SCREENSHOT"); path != "" {
		runChromium(t, bin, srv.URL+"/", "--hide-scrollbars", "--window-size=1280,1100", "--screenshot="+path)
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s not written: %v", path, err)
		}
	}
}
