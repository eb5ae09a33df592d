// Package httpapi serves the operational and read endpoints of one Pyramid
// instance: Prometheus metrics, liveness and readiness probes, the account
// API (an account's snapshot with an explanation of its tier), the
// planning API (goals by tier, the coverage plan; package plan), and for
// people a status page, account pages and an account search.
//
// Everything it shows comes from a view.Store, which holds only what this
// instance owns and has made durable; an account owned by another instance
// is a 404, so a load balancer or the caller has to ask the right one.
//
// The pages are plain server-rendered HTML with inline SVG and CSS:
// nothing is fetched (no scripts, fonts or other assets), so they work
// behind any proxy and in an air-gapped cluster. The status page refreshes
// itself every five seconds with its one inline script, which holds the
// refresh while someone types in the search box; the Content-Security-
// Policy allows that script by its hash and nothing else.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pyramid-crm/pyramid/plan"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/view"
)

// Options configures the handler. Only Store is required.
type Options struct {
	Store *view.Store
	// Gatherer backs GET /metrics; nil leaves the route out.
	Gatherer prometheus.Gatherer
	// Ready backs GET /readyz: nil error when partitions are restored and
	// the sink is healthy, else why not. nil means always ready.
	Ready func() error
	// Token, when set, is required on /v1/* as "Authorization: Bearer TOKEN"
	// and on the status page as that or as a basic-auth password.
	Token string
	// Params supplies the thresholds the explanation quotes; nil means the
	// built-in defaults.
	Params *scoring.Params
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Title names the instance on the status page.
	Title string
	// Now is the clock of the status page; nil means time.Now.
	Now func() time.Time
}

type server struct {
	Options
	tokenSum [32]byte
}

// New returns the handler for every route.
func New(opts Options) http.Handler {
	if opts.Store == nil {
		opts.Store = view.New()
	}
	if opts.Params == nil {
		opts.Params = scoring.DefaultParams()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Title == "" {
		opts.Title = "Pyramid"
	}
	s := &server{Options: opts, tokenSum: sha256.Sum256([]byte(opts.Token))}
	mux := http.NewServeMux()
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{opts.Logger}}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /{$}", s.pageAuth(http.HandlerFunc(s.status)))
	mux.Handle("GET /accounts/{id}", s.pageAuth(http.HandlerFunc(s.accountHTML)))
	mux.Handle("GET /accounts", s.pageAuth(http.HandlerFunc(s.search)))
	mux.Handle("GET /v1/accounts/{id}", s.auth(http.HandlerFunc(s.account)))
	mux.Handle("GET /v1/goals", s.auth(http.HandlerFunc(s.goals)))
	mux.Handle("GET /v1/coverage", s.auth(http.HandlerFunc(s.coverage)))
	mux.Handle("GET /v1/tiers", s.auth(http.HandlerFunc(s.tiers)))
	mux.Handle("GET /v1/changes", s.auth(http.HandlerFunc(s.changes)))
	mux.Handle("GET /v1/neglected", s.auth(http.HandlerFunc(s.neglected)))
	// The catch-all would answer 404 for any other method on a known
	// path; tell the client the path exists and which methods it takes.
	mux.Handle("/v1/", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			probe := r.Clone(r.Context())
			probe.Method = http.MethodGet
			if _, pattern := mux.Handler(probe); pattern != "/v1/" {
				w.Header().Set("Allow", "GET, HEAD")
				jsonError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+" is not allowed; use GET")
				return
			}
		}
		jsonError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})))
	return mux
}

// auth requires the bearer token when one is configured.
func (s *server) auth(next http.Handler) http.Handler {
	if s.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokenOK(bearer(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pyramid"`)
			jsonError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// tokenOK compares tok with the configured token; both sides are hashed
// first so the comparison takes the same time whatever tok's length. An
// empty tok never matches.
func (s *server) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return tok != "" && subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// pageAuth guards the status page, which shows accounts, owners and
// values, with the same token. A browser cannot send a bearer token, so the
// page also takes it as the password of HTTP basic authentication (any user
// name) and asks for it with a basic challenge.
func (s *server) pageAuth(next http.Handler) http.Handler {
	if s.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if _, pass, ok := r.BasicAuth(); ok {
			tok = pass
		}
		if !s.tokenOK(tok) {
			w.Header().Set("WWW-Authenticate", `Basic realm="pyramid", charset="UTF-8"`)
			text(w, http.StatusUnauthorized, "this page needs the API token (PYRAMID_API_TOKEN) as the password")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	text(w, http.StatusOK, "ready")
}

func (s *server) account(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.Store.Account(id)
	if !ok {
		jsonError(w, http.StatusNotFound, "account "+strconv.Quote(id)+" is not owned by this instance")
		return
	}
	b, err := accountJSON(&d, s.Params)
	if err != nil {
		s.Logger.Error("encode account", "account_id", id, "err", err)
		jsonError(w, http.StatusInternalServerError, "cannot encode account")
		return
	}
	writeJSON(w, http.StatusOK, b)
}

type tiersBody struct {
	view.Counts
	Partitions []int `json:"partitions"`
	// Capacity is how each capped tier stands in the whole deployment,
	// after the latest ranking; absent without max_accounts.
	Capacity []plan.CapacityTier `json:"capacity,omitempty"`
}

func (s *server) tiers(w http.ResponseWriter, _ *http.Request) {
	b, _ := marshal(tiersBody{s.Store.Tiers(), s.Store.Partitions(), s.capacity()})
	writeJSON(w, http.StatusOK, b)
}

// capacity summarises the latest capacity ranking for every capped tier.
func (s *server) capacity() []plan.CapacityTier {
	return plan.Capacity(s.Params, s.Store.Ranking(), s.Params.Config().Currency)
}

func (s *server) changes(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(w, r, view.RecentOverall)
	if !ok {
		return
	}
	cs := s.Store.RecentChanges(n)
	b := []byte(`{"changes":[`)
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = cs[i].AppendJSON(b)
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (s *server) neglected(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(w, r, 1000)
	if !ok {
		return
	}
	ss := s.Store.Neglected(n)
	b := []byte(`{"accounts":[`)
	for i := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = ss[i].AppendJSON(b)
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

// limit reads the optional ?n= query parameter, 1..max, default 20.
func limit(w http.ResponseWriter, r *http.Request, max int) (int, bool) {
	v := r.URL.Query().Get("n")
	if v == "" {
		return min(20, max), true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		jsonError(w, http.StatusBadRequest, "n must be an integer from 1 to "+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

func text(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

func writeJSON(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	b, _ := marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, code, b)
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.l.Error("metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}

// ShutdownTimeout bounds how long ListenAndServe waits for requests in
// flight once its context ends.
const ShutdownTimeout = 5 * time.Second

// ListenAndServe serves h on addr until ctx ends, then shuts down
// gracefully. It returns nil after a clean shutdown, and at once when addr
// cannot be bound.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, h, logger)
}

// Serve is ListenAndServe on a listener the caller opened (":0" in tests).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		logger.Warn("http shutdown", "err", err)
		_ = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
