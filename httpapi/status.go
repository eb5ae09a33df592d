package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
)

//go:embed layout.html status.html account.html search.html
var pages embed.FS

// page parses one page with the shared layout.
func page(name string) *template.Template {
	return template.Must(template.New(name).Funcs(template.FuncMap{"acct": accountPath}).ParseFS(pages, "layout.html", name))
}

var statusTmpl = page("status.html")

// refreshScript reloads the status page every five seconds, but not while
// someone is typing in the search box (a meta refresh would wipe what they
// typed). Without scripts, a <noscript> meta refresh does the reloading.
const refreshScript = `(function(){function tick(){var q=document.getElementById("q");` +
	`if(q&&(q===document.activeElement||q.value!=="")){setTimeout(tick,5000);return}location.reload()}setTimeout(tick,5000)})();`

// statusCSP allows nothing to be fetched, and of scripts only the refresh
// script, by its hash.
var statusCSP = func() string {
	sum := sha256.Sum256([]byte(refreshScript))
	return "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// pageCSP is the policy of pages without a script.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"

// Rows shown in the status page tables.
const (
	statusChanges   = 15
	statusNeglected = 15
)

type pageData struct {
	Title      string
	Generated  string
	Ready      bool
	ReadyError string
	Currency   string
	Accounts   int
	Neglected  int
	Partitions string
	Pyramid    []tierShape
	Quadrants  []quadCell
	Changes    []changeRow
	Accts      []neglectRow
	Goals      []goalPanel
	Coverage   coveragePanel
	Capacity   []plan.CapacityTier
	Script     template.JS
}

// tierShape is one trapezoid of the pyramid, geometry precomputed here so
// the template stays declarative.
type tierShape struct {
	Tier, Label, Points, Fill, Threshold string
	Count                                int
	Share                                string
	CX, NameY, CountY, RuleY             float64
}

type quadCell struct {
	Quadrant, Label, Hint, Fill string
	Count                       int
	X, Y, CX, CY                float64
}

type changeRow struct {
	At, AccountID, From, To, Reason string
	Up                              bool
}

type neglectRow struct {
	AccountID, Name, Tier, Potential, Owner, LastTouch string
	Days                                               int64
}

var tierFill = map[scoring.Tier]string{
	scoring.Major: "#6d28d9", scoring.Named: "#2563eb", scoring.NonNamed: "#0e7490", scoring.MassMarket: "#475569",
}

// Pyramid geometry, in SVG user units.
const (
	pyrCX     = 200.0 // centre line
	pyrHalf   = 190.0 // half-width of the base
	pyrLevel  = 66.0  // height of one tier
	pyrGap    = 6.0
	pyrApexUp = 44.0 // the apex sits this far above the top so major is a trapezoid
)

// pyramid draws the tiers; a capped tier's rule names its places held,
// in the whole deployment, against its cap ("8/8 places").
func pyramid(counts map[string]int, total int, p *scoring.Params, capy []plan.CapacityTier) []tierShape {
	height := 4*pyrLevel + 3*pyrGap
	half := func(y float64) float64 { return pyrHalf * (y + pyrApexUp) / (height + pyrApexUp) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	var out []tierShape
	for i := len(scoring.AllTiers) - 1; i >= 0; i-- {
		t := scoring.AllTiers[i]
		level := float64(len(scoring.AllTiers) - 1 - i)
		y0 := level * (pyrLevel + pyrGap)
		y1 := y0 + pyrLevel
		h0, h1 := half(y0), half(y1)
		n := counts[t.String()]
		share := "0%"
		if total > 0 {
			share = strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64) + "%"
		}
		th := "≥ " + p.Threshold(t).Grouped()
		if t == scoring.MassMarket {
			th = "< " + p.Threshold(scoring.NonNamed).Grouped()
		}
		for _, c := range capy {
			if c.Tier == t.String() {
				th += " · " + strconv.Itoa(c.Held) + "/" + strconv.Itoa(c.MaxAccounts) + " places"
			}
		}
		out = append(out, tierShape{
			Tier: t.String(), Label: strings.ReplaceAll(t.String(), "_", " "), Count: n, Share: share,
			Points: f(pyrCX-h0) + "," + f(y0) + " " + f(pyrCX+h0) + "," + f(y0) + " " +
				f(pyrCX+h1) + "," + f(y1) + " " + f(pyrCX-h1) + "," + f(y1),
			Fill: tierFill[t], Threshold: th, CX: pyrCX,
			NameY: y0 + pyrLevel/2 - 6, CountY: y0 + pyrLevel/2 + 16, RuleY: y0 + pyrLevel/2 + 5,
		})
	}
	return out
}

// Quadrant matrix geometry.
const (
	quadX0 = 72.0
	quadW  = 170.0
	quadH  = 105.0
)

func quadrants(counts map[string]int) []quadCell {
	const x0, y0, w, h = quadX0, 10.0, quadW, quadH
	cell := func(q, fill string, col, row float64) quadCell {
		x, y := x0+col*w, y0+row*h
		return quadCell{Quadrant: q, Label: quadrantWords[q][0], Hint: quadrantWords[q][1], Fill: fill, Count: counts[q],
			X: x, Y: y, CX: x + w/2, CY: y + h/2}
	}
	return []quadCell{
		cell(scoring.LowCurrentHighPotential, "#fef3c7", 0, 0),
		cell(scoring.HighCurrentHighPotential, "#dcfce7", 1, 0),
		cell(scoring.LowCurrentLowPotential, "#f1f5f9", 0, 1),
		cell(scoring.HighCurrentLowPotential, "#dbeafe", 1, 1),
	}
}

// quadrantWords names each quadrant and what to do with its accounts.
var quadrantWords = map[string][2]string{
	scoring.LowCurrentHighPotential:  {"low current · high potential", "develop"},
	scoring.HighCurrentHighPotential: {"high current · high potential", "grow"},
	scoring.LowCurrentLowPotential:   {"low current · low potential", "serve efficiently"},
	scoring.HighCurrentLowPotential:  {"high current · low potential", "retain"},
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	now := s.Now()
	c := s.Store.Tiers()
	capy := s.capacity()
	d := pageData{
		Title: s.Title, Generated: now.UTC().Format(scoring.TimeFormat), Ready: true,
		Currency: s.Params.Config().Currency, Accounts: c.Accounts, Neglected: c.Neglected,
		Pyramid: pyramid(c.Tiers, c.Accounts, s.Params, capy), Quadrants: quadrants(c.Quadrants),
		Capacity: capy,
		Script:   template.JS(refreshScript),
	}
	sum := s.summarise()
	d.Goals, d.Coverage = goalPanels(sum.Goals()), coverageOf(sum.Coverage())
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			d.Ready, d.ReadyError = false, err.Error()
		}
	}
	ps := s.Store.Partitions()
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(p)
	}
	d.Partitions = strings.Join(parts, ", ")
	for _, ch := range s.Store.RecentChanges(statusChanges) {
		d.Changes = append(d.Changes, changeRow{
			At: scoring.FormatTime(ch.ChangedAt), AccountID: ch.AccountID,
			From: ch.From.String(), To: ch.To.String(), Reason: ch.Reason, Up: ch.To > ch.From,
		})
	}
	for _, sn := range s.Store.Neglected(statusNeglected) {
		d.Accts = append(d.Accts, neglectRow{
			AccountID: sn.AccountID, Name: sn.Name, Tier: sn.Tier.String(),
			Potential: sn.PotentialValue.Grouped(), Owner: sn.OwnerID,
			LastTouch: scoring.FormatTime(sn.LastTouchAt),
			Days:      (sn.AsOf - sn.LastTouchAt) / int64(24*time.Hour),
		})
	}
	s.render(w, http.StatusOK, statusTmpl, statusCSP, d)
}

// render writes a page. The policy says nothing is fetched and only the
// page's own script (if any) runs, so a stray injection could not load or
// run anything either.
func (s *server) render(w http.ResponseWriter, code int, t *template.Template, csp string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, t.Name(), data); err != nil {
		s.Logger.Error("render page", "page", t.Name(), "err", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
