package httpapi

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
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
	out, _ := browse(t, bin, url, args...)
	return out
}

// browse is runChromium that also returns what the page wrote to the
// browser console, which includes every script error and every request
// the page's security policy blocked.
func browse(t *testing.T, bin string, url string, args ...string) ([]byte, []string) {
	t.Helper()
	args = append([]string{"--enable-logging=stderr", "--v=0"}, args...)
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
	return out, stderr.console
}

// limitedBuffer keeps the first 16 KiB of Chromium's chatty stderr, and
// every console line.
type limitedBuffer struct {
	b       []byte
	line    []byte
	console []string
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 16<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	for _, c := range p {
		if c != '\n' {
			if len(l.line) < 4096 {
				l.line = append(l.line, c)
			}
			continue
		}
		if s := string(l.line); strings.Contains(s, ":CONSOLE") {
			l.console = append(l.console, s)
		}
		l.line = l.line[:0]
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

	out, console := browse(t, bin, srv.URL+"/", "--dump-dom")
	dom := string(out)
	if len(console) > 0 {
		t.Errorf("the status page wrote to the console:\n%s", strings.Join(console, "\n"))
	}
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

var (
	accountLinkRE = regexp.MustCompile(`href="(/accounts/[^"]+)"`)
	accountRE     = regexp.MustCompile(`<section class="wide" id="account" data-account-id="([^"]*)"`)
	chartRE       = regexp.MustCompile(`<svg id="value-chart" data-points="(\d+)"[\s\S]*?<polyline id="line-current" class="chart-line" stroke="[^"]*" points="([^"]*)"`)
)

// TestAccountPagesInBrowser follows every account link of the status page
// in a real browser: each lands on that account's page, which renders its
// explanation and chart without a console message; the search box finds
// accounts by name and by id.
func TestAccountPagesInBrowser(t *testing.T) {
	bin := chromium(t)
	st := fixture(t)
	// An id that needs escaping in a link, and some history for a chart.
	odd := mkSnap("odd/id ?#%", 2, scoring.Named, scoring.LowCurrentHighPotential, 100_000, 600_000)
	odd.Neglected, odd.LastTouchAt, odd.Name = true, at-50*day, "Odd & Sons"
	st.Observe(1, &sink.Batch{Snapshots: []scoring.Snapshot{odd}})
	for v := uint64(3); v <= 8; v++ {
		sn := mkSnap("maj-1", v, scoring.Major, scoring.HighCurrentHighPotential, 100_000*int64(v), 700_000)
		sn.AsOf = at + int64(v)*day
		st.Observe(0, &sink.Batch{Snapshots: []scoring.Snapshot{sn}})
	}
	srv := httptest.NewServer(New(Options{Store: st, Title: "pyramid-test"}))
	defer srv.Close()

	status, console := browse(t, bin, srv.URL+"/", "--dump-dom")
	if len(console) > 0 {
		t.Errorf("status page console:\n%s", strings.Join(console, "\n"))
	}
	links := map[string]bool{}
	for _, m := range accountLinkRE.FindAllStringSubmatch(string(status), -1) {
		links[html.UnescapeString(m[1])] = true
	}
	// Every account of the fixture is linked from a panel or a table.
	for _, id := range []string{"maj-1", "maj-2", "maj-3", "nam-1", "nam-2", "non-1", "odd/id ?#%"} {
		if !links[accountPath(id)] {
			t.Errorf("no link to %q (%s) on the status page; links: %v", id, accountPath(id), links)
		}
	}
	// Every link lands on its account's page, as the browser resolves it.
	base, _ := url.Parse(srv.URL + "/")
	for link := range links {
		ref, err := url.Parse(link)
		if err != nil {
			t.Fatalf("link %s: %v", link, err)
		}
		id, _ := url.PathUnescape(strings.TrimPrefix(ref.EscapedPath(), "/accounts/"))
		resp, err := http.Get(base.ResolveReference(ref).String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := accountRE.FindStringSubmatch(string(body)); resp.StatusCode != 200 || m == nil || html.UnescapeString(m[1]) != id {
			t.Errorf("link %s did not land on the page of %q: %d", link, id, resp.StatusCode)
		}
	}
	// Two of them rendered in the browser: the one with a chart, and the
	// one whose id needs escaping.
	for _, id := range []string{"maj-1", "odd/id ?#%"} {
		dom, console := browse(t, bin, srv.URL+accountPath(id), "--dump-dom")
		if m := accountRE.FindStringSubmatch(string(dom)); m == nil || html.UnescapeString(m[1]) != id {
			t.Errorf("the page of %q did not render:\n%.2000s", id, dom)
			continue
		}
		if len(console) > 0 {
			t.Errorf("page of %q wrote to the console:\n%s", id, strings.Join(console, "\n"))
		}
		if !strings.Contains(string(dom), `<ul class="sentences" id="explanation">`) || !strings.Contains(string(dom), `<table id="figures">`) {
			t.Errorf("page of %q lacks its explanation or figures", id)
		}
		if id == "maj-1" {
			c := chartRE.FindStringSubmatch(string(dom))
			if c == nil || c[1] != "7" || len(strings.Fields(c[2])) != 7 {
				t.Errorf("maj-1's chart: %q", c)
			}
		}
	}

	// The search box: a name lists matches, an id opens the account.
	dom, console := browse(t, bin, srv.URL+"/accounts?q=sons", "--dump-dom")
	if !strings.Contains(string(dom), `href="`+accountPath("odd/id ?#%")+`"`) || len(console) > 0 {
		t.Errorf("search by name:\n%.3000s\nconsole: %v", dom, console)
	}
	dom, _ = browse(t, bin, srv.URL+"/accounts?q=nam-1", "--dump-dom")
	if m := accountRE.FindStringSubmatch(string(dom)); m == nil || m[1] != "nam-1" {
		t.Errorf("search by id did not open the account:\n%.2000s", dom)
	}
}
