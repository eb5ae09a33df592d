package docs_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Markdown links: inline [text](target "title"), images ![alt](target),
// reference definitions [id]: target, and HTML href/src attributes.
var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	htmlLink   = regexp.MustCompile(`(?i)(?:href|src)\s*=\s*"([^"]+)"`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// repoRoot is the module root, one level up from docs/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", root, err)
	}
	return root
}

// markdownFiles lists every Markdown file of the repository.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "var") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(strings.ToLower(d.Name()), ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

type link struct {
	line   int
	target string
}

// links extracts the link targets of a Markdown file, outside code.
func links(t *testing.T, path string) []link {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []link
	fenced := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = stripCodeSpans(line)
		for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				out = append(out, link{n, m[1]})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stripCodeSpans blanks `inline code`, where brackets are not links.
func stripCodeSpans(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		if r == '`' {
			in = !in
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the GitHub-style heading ids of a Markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		id := slug(text)
		if n := seen[id]; n > 0 {
			out[id+"-"+strconv.Itoa(n)] = true
		} else {
			out[id] = true
		}
		seen[id]++
	}
	return out
}

// slug is GitHub's heading id: lower case, punctuation other than - and _
// dropped, spaces as hyphens.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// problems lists every link of the Markdown files under root that is not
// relative, does not resolve to a file or folder inside root, or names a
// heading that a Markdown file does not have.
func problems(t *testing.T, root string) (out []string, checked int) {
	t.Helper()
	for _, f := range markdownFiles(t, root) {
		rel, _ := filepath.Rel(root, f)
		for _, l := range links(t, f) {
			where := rel + ":" + strconv.Itoa(l.line) + ": " + l.target
			target := l.target
			switch {
			case scheme.MatchString(target):
				out = append(out, where+" leaves the repository; link to a file in it instead")
				continue
			case strings.HasPrefix(target, "/"):
				out = append(out, where+" is an absolute path; use a path relative to "+rel)
				continue
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			dest := f
			if file != "" {
				dest = filepath.Join(filepath.Dir(f), filepath.FromSlash(file))
				inside, err := filepath.Rel(root, dest)
				if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
					out = append(out, where+" points outside the repository")
					continue
				}
				if _, err := os.Stat(dest); err != nil {
					out = append(out, where+" does not exist")
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(strings.ToLower(dest), ".md") && !anchors(t, dest)[anchor] {
				out = append(out, where+" names no heading of "+filepath.Base(dest))
			}
		}
	}
	return out, checked
}

// TestMarkdownLinksStayInside: a user who clones the project must find
// everything its documentation points at, in the repository.
func TestMarkdownLinksStayInside(t *testing.T) {
	root := repoRoot(t)
	if n := len(markdownFiles(t, root)); n < 4 {
		t.Fatalf("found %d Markdown files under %s; the walk is broken", n, root)
	}
	bad, checked := problems(t, root)
	for _, p := range bad {
		t.Error(p)
	}
	if checked < 10 {
		t.Errorf("only %d relative links checked; the extraction is broken", checked)
	}
}

// The checker itself: every kind of bad link in a made-up repository is
// found, and the good ones pass.
func TestLinkChecker(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("docs/a.md", "# Title\n\n## Mapping other topics: `inputs:`\n\n## Repeat\n\n## Repeat\n")
	write("README.md", strings.Join([]string{
		"[ok](docs/a.md) [ok](docs/a.md#title) [ok](docs/a.md#mapping-other-topics-inputs) [ok](docs/a.md#repeat-1) [ok](docs) [ok](#top)",
		"# Top",
		"[spec](../shared/SPEC.md)",
		"[web](https://example.com/x)",
		"[abs](/etc/passwd)",
		"[gone](docs/b.md)",
		"[anchor](docs/a.md#nope)",
		"![img](docs/none.png)",
		"[ref]: ../outside.md",
		`<a href="mailto:x@example.com">mail</a>`,
		"`[code](not/a/link.md)`",
		"```",
		"[fenced](not/a/link.md)",
		"```",
	}, "\n"))
	bad, checked := problems(t, root)
	want := []string{
		"README.md:3: ../shared/SPEC.md points outside the repository",
		"README.md:4: https://example.com/x leaves the repository",
		"README.md:5: /etc/passwd is an absolute path",
		"README.md:6: docs/b.md does not exist",
		"README.md:7: docs/a.md#nope names no heading of a.md",
		"README.md:8: docs/none.png does not exist",
		"README.md:9: ../outside.md points outside the repository",
		"README.md:10: mailto:x@example.com leaves the repository",
	}
	if len(bad) != len(want) {
		t.Errorf("found %d problems, want %d:\n%s", len(bad), len(want), strings.Join(bad, "\n"))
	}
	for i := range min(len(bad), len(want)) {
		if !strings.HasPrefix(bad[i], want[i]) {
			t.Errorf("problem %d = %q, want %q...", i, bad[i], want[i])
		}
	}
	if checked != 11 {
		t.Errorf("checked %d relative links, want 11", checked)
	}
}
