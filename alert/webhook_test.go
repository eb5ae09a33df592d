package alert

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/money"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

const testSecret = "test-secret"

func testAlert(i int, status string) scoring.Alert {
	a := scoring.Alert{
		AlertID:        fmt.Sprintf("alert-%03d", i),
		AccountID:      fmt.Sprintf("acc-%03d", i),
		Kind:           scoring.KindNeglected,
		Status:         status,
		OpenedAt:       time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano(),
		Tier:           scoring.Major,
		OwnerID:        "rep-7",
		Potential:      money.Cents(1234567),
		LastTouchAt:    time.Date(2026, 1, 30, 9, 0, 0, 0, time.UTC).UnixNano(),
		AccountName:    "Acme \"Corp\"",
		LastTouchKind:  "meeting",
		DaysSinceTouch: 30,
		Link:           "https://crm.example/accounts/" + strconv.Itoa(i),
	}
	if status == scoring.StatusResolved {
		a.ResolvedAt = a.OpenedAt + int64(48*time.Hour)
	}
	return a
}

func batchOf(alerts ...scoring.Alert) *sink.Batch { return &sink.Batch{Alerts: alerts} }

// receiver is an in-process webhook endpoint that checks every request as a
// real receiver would and records what it accepted.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	status func(n int) int // answer for the n-th request (1-based)

	mu       sync.Mutex
	requests int
	accepted [][]byte
	attempts []string
}

func newReceiver(t testing.TB, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{t: t, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("read body: %v", err)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("got %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	}
	if !Verify([]byte(testSecret), body, req.Header.Get(HeaderSignature)) {
		r.t.Errorf("bad signature %q for %s", req.Header.Get(HeaderSignature), body)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if req.Header.Get(HeaderID) == "" {
		r.t.Errorf("no %s header", HeaderID)
	}
	r.mu.Lock()
	r.requests++
	n := r.requests
	r.mu.Unlock()
	code := http.StatusOK
	if r.status != nil {
		code = r.status(n)
	}
	if code >= 200 && code < 300 {
		r.mu.Lock()
		r.accepted = append(r.accepted, body)
		r.attempts = append(r.attempts, req.Header.Get(HeaderAttempt))
		r.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (r *receiver) got() (requests int, accepted [][]byte, attempts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([][]byte(nil), r.accepted...), append([]string(nil), r.attempts...)
}

// fakeDLQ records dead letters in memory.
type fakeDLQ struct {
	mu     sync.Mutex
	msgs   []kafka.Message
	closed bool
}

func (f *fakeDLQ) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msgs...)
	return nil
}

func (f *fakeDLQ) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeDLQ) messages() []kafka.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]kafka.Message(nil), f.msgs...)
}

// fastRetry shortens the backoff of the tests' stages.
var fastRetry = retry.Options{Initial: 2 * time.Millisecond, Max: 20 * time.Millisecond}

func newTestWebhook(t testing.TB, url string, dlq MessageWriter, tweak func(*Options)) (*Webhook, *metrics.Metrics) {
	t.Helper()
	o := Options{
		URL:          url,
		Secret:       testSecret,
		Timeout:      time.Second,
		MaxElapsed:   5 * time.Second,
		CloseTimeout: 5 * time.Second,
		DLQTimeout:   5 * time.Second,
		DLQ:          dlq,
		Retry:        fastRetry,
	}
	if tweak != nil {
		tweak(&o)
	}
	m := metrics.New(nil)
	w, err := NewWebhook(o, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w, m
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustReturn runs f and fails the test if it does not return: Write must
// never wait for the receiver.
func mustReturn(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

func TestWebhookDelivers(t *testing.T) {
	r := newReceiver(t, nil)
	dlq := &fakeDLQ{}
	w, m := newTestWebhook(t, r.srv.URL, dlq, nil)

	alerts := []scoring.Alert{testAlert(1, scoring.StatusOpen), testAlert(2, scoring.StatusOpen), testAlert(1, scoring.StatusResolved)}
	if err := w.Write(context.Background(), batchOf(alerts...)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(context.Background()); err != nil { // drains the queue
		t.Fatal(err)
	}
	_, accepted, _ := r.got()
	if len(accepted) != len(alerts) {
		t.Fatalf("receiver accepted %d alerts, want %d", len(accepted), len(alerts))
	}
	for i := range alerts {
		if want := alerts[i].AppendJSON(nil); string(accepted[i]) != string(want) {
			t.Errorf("alert %d:\n got %s\nwant %s", i, accepted[i], want)
		}
	}
	if n := len(dlq.messages()); n != 0 {
		t.Errorf("%d alerts in the DLQ, want none", n)
	}
	if !dlq.closed {
		t.Error("Close did not close the DLQ writer")
	}
	if got := count(m.SinkErrors.WithLabelValues(WebhookStage)); got != 0 {
		t.Errorf("webhook errors = %v, want 0", got)
	}
	if err := w.Write(context.Background(), batchOf(testAlert(3, scoring.StatusOpen))); err != ErrClosed {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestWebhookRetriesUntilReceiverRecovers(t *testing.T) {
	r := newReceiver(t, func(n int) int {
		switch {
		case n <= 3:
			return http.StatusInternalServerError
		case n == 4:
			return http.StatusTooManyRequests
		default:
			return http.StatusOK
		}
	})
	dlq := &fakeDLQ{}
	w, m := newTestWebhook(t, r.srv.URL, dlq, nil)

	a := testAlert(1, scoring.StatusOpen)
	if err := w.Write(context.Background(), batchOf(a)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery", func() bool { _, acc, _ := r.got(); return len(acc) == 1 })
	requests, accepted, attempts := r.got()
	if requests != 5 || attempts[0] != "5" {
		t.Errorf("delivered on request %d (attempt header %q), want the 5th", requests, attempts[0])
	}
	if string(accepted[0]) != string(a.AppendJSON(nil)) {
		t.Errorf("body %s", accepted[0])
	}
	if got := count(m.SinkErrors.WithLabelValues(WebhookStage)); got != 4 {
		t.Errorf("webhook errors = %v, want 4", got)
	}
	if n := len(dlq.messages()); n != 0 {
		t.Errorf("%d alerts in the DLQ, want none", n)
	}
}

func TestWebhookRejectedGoesToDLQAtOnce(t *testing.T) {
	r := newReceiver(t, func(int) int { return http.StatusUnprocessableEntity })
	dlq := &fakeDLQ{}
	w, m := newTestWebhook(t, r.srv.URL, dlq, func(o *Options) { o.MaxElapsed = time.Minute })

	a := testAlert(1, scoring.StatusOpen)
	if err := w.Write(context.Background(), batchOf(a)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dead letter", func() bool { return count(m.AlertDLQ) == 1 })
	msgs := dlq.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(msgs))
	}
	dl := msgs[0]
	if got := testenv.Header(dl, HeaderDLQReason); got != ReasonRejected {
		t.Errorf("reason %q, want %q", got, ReasonRejected)
	}
	if got := testenv.Header(dl, HeaderDLQAttempts); got != "1" {
		t.Errorf("attempts %q, want 1", got)
	}
	if testenv.Header(dl, HeaderDLQError) == "" || testenv.Header(dl, HeaderAlertID) != a.AlertID || string(dl.Key) != a.AccountID {
		t.Errorf("dead letter headers/key: %+v key %q", dl.Headers, dl.Key)
	}
	if string(dl.Value) != string(a.AppendJSON(nil)) {
		t.Errorf("dead letter value %s", dl.Value)
	}
	if requests, _, _ := r.got(); requests != 1 {
		t.Errorf("receiver got %d requests, want 1 (4xx is permanent)", requests)
	}
	if got := count(m.SinkErrors.WithLabelValues(WebhookStage)); got != 1 {
		t.Errorf("webhook errors = %v, want 1", got)
	}
}

// A receiver that stays down: Write keeps returning at once even with the
// queue full, every alert ends in the DLQ, each once, saying why.
func TestWebhookReceiverDownNeverStallsWrite(t *testing.T) {
	var hits atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	dlq := &fakeDLQ{}
	w, m := newTestWebhook(t, down.URL, dlq, func(o *Options) {
		o.MaxElapsed = 100 * time.Millisecond
		o.QueueSize = 2
	})

	const n = 40 // far more than the queue and the dead-letter buffer hold
	want := map[string]bool{}
	for i := range n {
		a := testAlert(i, scoring.StatusOpen)
		want[a.AlertID] = true
		mustReturn(t, "Write", func() {
			if err := w.Write(context.Background(), batchOf(a)); err != nil {
				t.Error(err)
			}
		})
	}
	eventually(t, "all alerts dead-lettered", func() bool { return count(m.AlertDLQ) == n })

	reasons := map[string]int{}
	for _, dl := range dlq.messages() {
		id := testenv.Header(dl, HeaderAlertID)
		if !want[id] {
			t.Errorf("unexpected or repeated dead letter %q", id)
		}
		delete(want, id)
		reasons[testenv.Header(dl, HeaderDLQReason)]++
	}
	if len(want) != 0 {
		t.Errorf("alerts missing from the DLQ: %v", want)
	}
	if reasons[ReasonGaveUp] == 0 || reasons[ReasonQueueFull] == 0 || reasons[ReasonGaveUp]+reasons[ReasonQueueFull] != n {
		t.Errorf("reasons %v, want both %s and %s", reasons, ReasonGaveUp, ReasonQueueFull)
	}
	if got := count(m.SinkErrors.WithLabelValues(WebhookStage)); got < 2 || got > float64(hits.Load()) {
		t.Errorf("webhook errors = %v, receiver hits %d", got, hits.Load())
	}
}

// Close gives a stuck delivery CloseTimeout, then dead-letters what is left.
func TestWebhookCloseIsBounded(t *testing.T) {
	r := newReceiver(t, func(int) int { return http.StatusBadGateway })
	dlq := &fakeDLQ{}
	w, m := newTestWebhook(t, r.srv.URL, dlq, func(o *Options) {
		o.MaxElapsed = time.Hour
		o.CloseTimeout = 100 * time.Millisecond
	})
	for i := range 3 {
		if err := w.Write(context.Background(), batchOf(testAlert(i, scoring.StatusOpen))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "first attempt", func() bool { n, _, _ := r.got(); return n > 0 })
	mustReturn(t, "Close", func() {
		if err := w.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	msgs := dlq.messages()
	if len(msgs) != 3 || count(m.AlertDLQ) != 3 {
		t.Fatalf("%d dead letters (counter %v), want 3", len(msgs), count(m.AlertDLQ))
	}
	for _, dl := range msgs {
		if got := testenv.Header(dl, HeaderDLQReason); got != ReasonShutdown {
			t.Errorf("%s: reason %q, want %q", testenv.Header(dl, HeaderAlertID), got, ReasonShutdown)
		}
	}
}

// Close keeps to its context whatever CloseTimeout and DLQTimeout say: half
// of the time left for the queue, the rest for dead letters, which a stuck
// dead-letter topic does not stretch.
func TestWebhookCloseKeepsToItsContext(t *testing.T) {
	for _, stuck := range []bool{false, true} {
		t.Run(fmt.Sprintf("stuck dead-letter topic %v", stuck), func(t *testing.T) {
			r := newReceiver(t, func(int) int { return http.StatusBadGateway })
			var dlq MessageWriter = &fakeDLQ{}
			if stuck {
				g := &gatedDLQ{entered: make(chan struct{}), release: make(chan struct{})} // released after the test
				t.Cleanup(func() { close(g.release) })
				dlq = g
			}
			w, m := newTestWebhook(t, r.srv.URL, dlq, func(o *Options) {
				o.MaxElapsed, o.CloseTimeout, o.DLQTimeout = time.Hour, time.Hour, time.Hour
			})
			for i := range 3 {
				if err := w.Write(context.Background(), batchOf(testAlert(i, scoring.StatusOpen))); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, "first attempt", func() bool { n, _, _ := r.got(); return n > 0 })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			mustReturn(t, "Close with an hour of timeouts and a 2 s context", func() {
				if err := w.Close(ctx); err != nil {
					t.Error(err)
				}
			})
			if stuck {
				return // the alerts are lost, and logged as such
			}
			if got := count(m.AlertDLQ); got != 3 {
				t.Errorf("%v alerts dead-lettered at close, want 3", got)
			}
		})
	}
}

func TestNewWebhookRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no URL", Options{DLQ: &fakeDLQ{}}},
		{"relative URL", Options{URL: "/hook", DLQ: &fakeDLQ{}}},
		{"ftp", Options{URL: "ftp://example.com/hook", DLQ: &fakeDLQ{}}},
		{"no DLQ", Options{URL: "https://example.com/hook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, err := NewWebhook(tt.o, nil, nil); err == nil {
				w.Close(context.Background())
				t.Error("NewWebhook accepted bad options")
			}
		})
	}
}

// count reads a counter; prometheus/testutil would pull a dependency the
// module does not carry.
func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// gatedDLQ holds its first write until released.
type gatedDLQ struct {
	fakeDLQ
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (g *gatedDLQ) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		<-g.release
	}
	return g.fakeDLQ.WriteMessages(ctx, msgs...)
}

// A burst larger than both queues while the dead-letter goroutine is busy:
// Write dead-letters the overflow itself, and no alert is lost.
func TestWebhookBurstLosesNothing(t *testing.T) {
	r := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	dlq := &gatedDLQ{entered: make(chan struct{}), release: make(chan struct{})}
	w, m := newTestWebhook(t, r.srv.URL, dlq, func(o *Options) {
		o.MaxElapsed = time.Hour
		o.QueueSize = 2
		o.CloseTimeout = 50 * time.Millisecond
	})
	var all []scoring.Alert
	for i := range 24 {
		all = append(all, testAlert(i, scoring.StatusOpen))
	}
	// Four alerts overflow a queue of two plus the one in flight: the
	// dead-letter goroutine gets one and blocks on the gate.
	if err := w.Write(context.Background(), batchOf(all[:4]...)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dlq.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the dead-letter goroutine never wrote")
	}
	mustReturn(t, "Write of a burst", func() {
		if err := w.Write(context.Background(), batchOf(all[4:]...)); err != nil {
			t.Error(err)
		}
	})
	close(dlq.release)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, dl := range dlq.messages() {
		seen[testenv.Header(dl, HeaderAlertID)]++
	}
	for _, a := range all {
		if seen[a.AlertID] != 1 {
			t.Errorf("%s dead-lettered %d times, want once", a.AlertID, seen[a.AlertID])
		}
	}
	if got := count(m.AlertDLQ); got != float64(len(all)) {
		t.Errorf("AlertDLQ = %v, want %d", got, len(all))
	}
}

// A redirect is a failed delivery: never followed (a 302 would become a
// body-less GET counted as delivered, a 307 would re-POST the signed body
// to another host), retried, logged with its Location, and dead-lettered
// when it persists.
func TestWebhookRedirectIsAFailure(t *testing.T) {
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var elsewhere atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				elsewhere.Add(1)
			}))
			t.Cleanup(other.Close)
			var hits atomic.Int64
			moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Redirect(w, r, other.URL+"/new-hook", code)
			}))
			t.Cleanup(moved.Close)
			var logs syncBuffer
			dlq := &fakeDLQ{}
			o := Options{URL: moved.URL, Secret: testSecret, Timeout: time.Second, MaxElapsed: 200 * time.Millisecond,
				CloseTimeout: 5 * time.Second, DLQTimeout: 5 * time.Second, DLQ: dlq, Retry: fastRetry,
				Client: &http.Client{}}
			m := metrics.New(nil)
			w, err := NewWebhook(o, m, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close(context.Background()) })
			if o.Client.CheckRedirect != nil {
				t.Error("the caller's client was changed")
			}
			a := testAlert(1, scoring.StatusOpen)
			if err := w.Write(context.Background(), batchOf(a)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "dead letter", func() bool { return count(m.AlertDLQ) == 1 })
			dl := dlq.messages()[0]
			if got := testenv.Header(dl, HeaderDLQReason); got != ReasonGaveUp {
				t.Errorf("reason %q, want %q", got, ReasonGaveUp)
			}
			if e := testenv.Header(dl, HeaderDLQError); !strings.Contains(e, other.URL+"/new-hook") || !strings.Contains(e, strconv.Itoa(code)) {
				t.Errorf("dead letter error %q lacks the status and the Location", e)
			}
			if hits.Load() < 2 {
				t.Errorf("%d attempts; a redirect should be retried", hits.Load())
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("the redirect target got %d requests", n)
			}
			if !strings.Contains(logs.String(), "new-hook") {
				t.Errorf("the Location is not logged:\n%s", logs.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the webhook's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
