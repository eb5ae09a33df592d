package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/retry"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// HTTP headers on webhook requests.
const (
	HeaderSignature = "X-Pyramid-Signature"    // Sign(secret, body), only with a secret
	HeaderID        = "X-Pyramid-Alert-Id"     // alert_id, for deduplication
	HeaderStatus    = "X-Pyramid-Alert-Status" // open | resolved
	HeaderAttempt   = "X-Pyramid-Delivery-Attempt"
)

// Kafka record headers on dead letters, besides the alert headers.
const (
	HeaderDLQReason   = "pyramid-dlq-reason"   // one of the Reason constants
	HeaderDLQError    = "pyramid-dlq-error"    // the last delivery error, if any
	HeaderDLQAttempts = "pyramid-dlq-attempts" // delivery attempts made
)

// Why an alert went to the dead-letter topic.
const (
	ReasonGaveUp    = "gave_up"    // still failing after Options.MaxElapsed
	ReasonRejected  = "rejected"   // the receiver answered 4xx other than 429
	ReasonQueueFull = "queue_full" // the delivery queue was full at Write
	ReasonShutdown  = "shutdown"   // still queued or in flight when Close ran out of time
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("alert: webhook closed")

// Options configure a Webhook. Zero durations and sizes take the defaults
// named on each field.
type Options struct {
	URL    string // http or https; required
	Secret string // HMAC-SHA256 key for X-Pyramid-Signature; empty: unsigned

	Timeout      time.Duration // per HTTP attempt; default 10s
	MaxElapsed   time.Duration // per alert, before it is dead-lettered; default 5m
	QueueSize    int           // alerts waiting for delivery; default 1024
	CloseTimeout time.Duration // Close waits this long for the queue to drain (less when its context ends sooner); default 10s
	DLQTimeout   time.Duration // per dead-letter write, retries included (Close: no later than its context); default 30s

	// DLQ receives alerts the webhook gives up on, normally
	// NewWriter(brokers, kafkaio.AlertsDeadLetters, transport); required. The webhook
	// owns it: Close closes it when it is an io.Closer.
	DLQ MessageWriter

	Client *http.Client // default: a new http.Client; Timeout applies per attempt; redirects are never followed
	// Retry paces the attempts at one alert; default from 1s, doubling, up
	// to 1m between attempts, ±50% jitter. MaxElapsed bounds them all.
	Retry retry.Options
}

func (o *Options) defaults() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("alert: webhook URL %q: want an absolute http or https URL", o.URL)
	}
	if o.DLQ == nil {
		return errors.New("alert: webhook needs a DLQ writer (pyramid.alerts.dlq)")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.MaxElapsed, 5*time.Minute)
	def(&o.CloseTimeout, 10*time.Second)
	def(&o.DLQTimeout, 30*time.Second)
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	// Never follow a redirect: Go's client would turn a 302 into a
	// body-less GET (the alert lost, yet "delivered") and re-POST the
	// signed body to whatever host a 307 names. A copy, so a client the
	// caller shares is left as it is.
	c := &http.Client{}
	if o.Client != nil {
		*c = *o.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = c
	if o.Retry == (retry.Options{}) {
		o.Retry = retry.Options{Initial: time.Second, Multiplier: 2, Max: time.Minute}
	}
	return nil
}

// Webhook is the sink that POSTs each alert as JSON to a URL. Write only
// enqueues and never waits for the receiver; one goroutine delivers in order, so an
// account's open precedes its resolve. A receiver that is down costs each
// alert at most MaxElapsed, after which it goes to the DLQ topic; once the
// queue is full, further alerts go there straight away.
type Webhook struct {
	o   Options
	m   *metrics.Metrics
	log *slog.Logger
	// Deliveries and dead letters retry through their own stages
	// (sink="webhook" and sink="alerts_dlq").
	stage, dlqStage *retry.Stage

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	queue  chan delivery
	dead   chan deadLetter // to the DLQ goroutine; closed by the worker

	runCtx    context.Context // cancelled when Close runs out of time
	cancelRun context.CancelFunc
	dlqCtx    context.Context // cancelled when dead-lettering runs out of time
	cancelDLQ context.CancelFunc

	workerDone chan struct{}
	dlqDone    chan struct{}
}

var _ sink.Sink = (*Webhook)(nil)

type delivery struct {
	alertID, accountID, status string
	body                       []byte
}

type deadLetter struct {
	delivery
	reason   string
	err      error
	attempts int
}

// NewWebhook validates o and starts the delivery goroutines; Close stops
// them. m and log may be nil.
func NewWebhook(o Options, m *metrics.Metrics, log *slog.Logger) (*Webhook, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if m == nil {
		m = metrics.New(nil)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "alert.webhook")
	w := &Webhook{
		o:          o,
		m:          m,
		log:        log,
		stage:      retry.New(WebhookStage, o.Retry, m, log),
		dlqStage:   retry.New(DLQStage, kafkaRetry, m, log),
		queue:      make(chan delivery, o.QueueSize),
		dead:       make(chan deadLetter, o.QueueSize),
		workerDone: make(chan struct{}),
		dlqDone:    make(chan struct{}),
	}
	w.runCtx, w.cancelRun = context.WithCancel(context.Background())
	w.dlqCtx, w.cancelDLQ = context.WithCancel(context.Background())
	go w.run()
	go w.runDLQ()
	return w, nil
}

// Write enqueues the alerts of b for delivery and returns without waiting
// for the receiver. Alerts that find the queue full are dead-lettered with
// reason "queue_full" by the background goroutine; only when its queue is
// full too does Write write them to the DLQ topic itself, so a burst is
// never dropped. That wait is on Kafka, like the alerts topic's, never on
// the receiver, and at most DLQTimeout; Write then logs the alerts as lost
// (the alerts topic still holds them) and returns nil all the same.
func (w *Webhook) Write(ctx context.Context, b *sink.Batch) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	var overflow []deadLetter
	for i := range b.Alerts {
		d := newDelivery(&b.Alerts[i])
		select {
		case w.queue <- d:
			continue
		default:
		}
		dl := deadLetter{delivery: d, reason: ReasonQueueFull}
		select {
		case w.dead <- dl:
		default:
			overflow = append(overflow, dl)
		}
	}
	if len(overflow) > 0 {
		w.log.Warn("webhook queues full, dead-lettering in the flush", "alerts", len(overflow))
		w.writeDLQ(ctx, overflow)
	}
	return nil
}

// Healthy returns nil until Close. A failing receiver is deliberately not
// unhealthy: it does not stop scoring, and taking the instance out of
// service would not bring the receiver back. Watch
// pyramid_sink_up{sink="webhook"} and pyramid_alert_dlq_total instead.
func (w *Webhook) Healthy() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	return nil
}

// Close stops accepting alerts and waits for the queue to be delivered,
// for CloseTimeout at most and, when ctx has a deadline, for half the time
// left at most. What is still queued or in flight then goes to the DLQ
// with reason "shutdown", until ctx ends (DLQTimeout at most); past that,
// the rest is logged as lost. Close finally closes the DLQ writer. So a
// service stopping within a bound (pyramid run --shutdown-timeout) passes
// it in ctx, and Close keeps to it.
func (w *Webhook) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	defer w.cancelRun()
	defer w.cancelDLQ()

	drainFor := w.o.CloseTimeout
	if d, ok := ctx.Deadline(); ok {
		drainFor = min(drainFor, time.Until(d)/2)
	}
	drain := time.NewTimer(drainFor)
	defer drain.Stop()
	select {
	case <-w.workerDone:
	case <-drain.C:
		w.log.Warn("webhook queue not delivered in time, dead-lettering the rest",
			"queued", len(w.queue), "waited", drainFor)
		w.cancelRun()
	}
	dlq := time.NewTimer(w.o.DLQTimeout)
	defer dlq.Stop()
	giveUp := func() {
		w.log.Error("dead-letter writes not finished in time, dropping the rest")
		w.cancelRun()
		w.cancelDLQ()
	}
wait:
	for done := 0; done < 2; {
		select {
		case <-w.workerDone:
			w.workerDone = nil
			done++
		case <-w.dlqDone:
			w.dlqDone = nil
			done++
		case <-dlq.C:
			giveUp()
		case <-ctx.Done():
			// The goroutines stop on their own, their contexts cancelled;
			// Close does not wait past its bound for a write that does not.
			giveUp()
			break wait
		}
	}
	if c, ok := w.o.DLQ.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func newDelivery(a *scoring.Alert) delivery {
	return delivery{alertID: a.AlertID, accountID: a.AccountID, status: a.Status, body: a.AppendJSON(nil)}
}

// run delivers queued alerts one at a time, in order.
func (w *Webhook) run() {
	defer close(w.workerDone)
	defer close(w.dead)
	for d := range w.queue {
		if err := w.runCtx.Err(); err != nil {
			w.deadLetter(deadLetter{delivery: d, reason: ReasonShutdown, err: err})
			continue
		}
		w.deliver(d)
	}
}

// deliver posts d until it is accepted, rejected, or MaxElapsed passed.
func (w *Webhook) deliver(d delivery) {
	ctx, cancel := context.WithTimeout(w.runCtx, w.o.MaxElapsed)
	defer cancel()
	attempts, rejected := 0, false
	var last error // the receiver's last answer, not the end of ctx
	err := w.stage.Do(ctx, "", func(ctx context.Context) (bool, error) {
		attempts++
		retry, err := w.post(ctx, d, attempts)
		if err != nil && ctx.Err() == nil {
			last, rejected = err, !retry
		}
		return retry, err
	})
	if err == nil {
		return
	}
	reason := ReasonGaveUp
	switch {
	case rejected:
		reason = ReasonRejected
	case w.runCtx.Err() != nil:
		reason = ReasonShutdown
	}
	w.deadLetter(deadLetter{delivery: d, reason: reason, err: last, attempts: attempts})
}

// post makes one attempt. Network errors, 5xx and 429 can heal (a
// Retry-After header sets the least wait before the next attempt); any
// other non-2xx answer is final.
func (w *Webhook) post(ctx context.Context, d delivery, attempt int) (retryable bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pyramid/"+metrics.Version)
	req.Header.Set(HeaderID, d.alertID)
	req.Header.Set(HeaderStatus, d.status)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	if w.o.Secret != "" {
		req.Header.Set(HeaderSignature, Sign([]byte(w.o.Secret), d.body))
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return true, err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return false, nil
	case code >= 300 && code < 400:
		// Retried like an outage: a receiver being moved may come back.
		return true, fmt.Errorf("alert: webhook answered %s redirecting to %q; redirects are not followed: set the webhook URL to where the receiver is now",
			resp.Status, resp.Header.Get("Location"))
	case code == http.StatusTooManyRequests || code >= 500:
		err := fmt.Errorf("alert: webhook answered %s", resp.Status)
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			err = retry.After(time.Duration(s)*time.Second, err)
		}
		return true, err
	default:
		return false, fmt.Errorf("alert: webhook rejected the alert: %s", resp.Status)
	}
}

// deadLetter hands dl to the DLQ goroutine, unless dead-lettering ran out
// of time at shutdown.
func (w *Webhook) deadLetter(dl deadLetter) {
	w.log.Warn("alert webhook gave up", "alert_id", dl.alertID, "reason", dl.reason, "attempts", dl.attempts, "err", dl.err)
	select {
	case w.dead <- dl:
	case <-w.dlqCtx.Done():
		w.log.Error("alert lost: dead-letter topic unavailable at shutdown", "alert_id", dl.alertID, "reason", dl.reason)
	}
}

// runDLQ writes dead letters in small batches.
func (w *Webhook) runDLQ() {
	defer close(w.dlqDone)
	for dl := range w.dead {
		batch := []deadLetter{dl}
	gather:
		for len(batch) < 100 {
			select {
			case x, ok := <-w.dead:
				if !ok {
					break gather
				}
				batch = append(batch, x)
			default:
				break gather
			}
		}
		w.writeDLQ(w.dlqCtx, batch)
	}
}

// writeDLQ writes batch to the DLQ topic, retrying for up to DLQTimeout.
func (w *Webhook) writeDLQ(ctx context.Context, batch []deadLetter) {
	msgs := make([]kafka.Message, len(batch))
	for i, dl := range batch {
		h := []kafka.Header{
			{Key: HeaderAlertID, Value: []byte(dl.alertID)},
			{Key: HeaderAlertStatus, Value: []byte(dl.status)},
			{Key: HeaderDLQReason, Value: []byte(dl.reason)},
			{Key: HeaderDLQAttempts, Value: []byte(strconv.Itoa(dl.attempts))},
		}
		if dl.err != nil {
			h = append(h, kafka.Header{Key: HeaderDLQError, Value: []byte(dl.err.Error())})
		}
		msgs[i] = kafka.Message{Key: []byte(dl.accountID), Value: dl.body, Headers: h}
	}
	ctx, cancel := context.WithTimeout(ctx, w.o.DLQTimeout)
	defer cancel()
	if err := writeAll(ctx, w.dlqStage, w.o.DLQ, msgs); err != nil {
		for _, dl := range batch {
			w.log.Error("alert lost: dead-letter write failed", "alert_id", dl.alertID, "reason", dl.reason, "err", err)
		}
		return
	}
	w.m.AlertDLQ.Add(float64(len(batch)))
}
