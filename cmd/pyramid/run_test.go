package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/pyramid-crm/pyramid/alert"
	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// TestRunCommand runs `pyramid run` as a user would, against an in-process
// broker: it restores, scores the produced events, writes the file sink,
// serves readiness and the API, and stops cleanly on cancel.
func TestRunCommand(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Partitions: 2, Topics: kafkaio.InputTopics(kafkaio.DefaultInputPrefix)})
	g, err := gen.New(gen.Options{Accounts: 20, Events: 400, Seed: 3, Start: time.Now().AddDate(0, -13, 0), Months: 12})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := gen.Produce(ctx, g, gen.ProduceOptions{Brokers: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP", "PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK"} {
		t.Setenv(k, "")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- cmdRun(runCtx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--sink-dir", dir, "--http", addr,
			"--flush-interval", "100ms", "--log-level", "warn"}, &bytes.Buffer{}, &stderr)
	}()

	var tiers struct {
		Accounts int            `json:"accounts"`
		Tiers    map[string]int `json:"tiers"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("never ready with 20 accounts (last %+v); stderr:\n%s", tiers, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		resp, err = http.Get("http://" + addr + "/v1/tiers")
		if err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&tiers)
		resp.Body.Close()
		if err == nil && tiers.Accounts == 20 {
			break
		}
	}
	resp, err := http.Get("http://" + addr + "/v1/accounts/acc-000001")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("account API: %v %v", err, resp)
	}
	resp.Body.Close()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop within 15 s of cancel")
	}
	snaps, err := os.ReadFile(filepath.Join(dir, "snapshots.jsonl"))
	if err != nil || !bytes.Contains(snaps, []byte(`"account_id":"acc-000001"`)) {
		t.Fatalf("snapshots file: %v\n%.300s", err, snaps)
	}
}

// neglectedAccount starts a broker holding the events of acc-1, a
// high-potential account of rep-1 untouched for 40 days: neglected, so
// the pipeline raises an alert.
func neglectedAccount(ctx context.Context, t *testing.T) *broker.Broker {
	t.Helper()
	b := testenv.StartBroker(t, broker.Options{Partitions: 1, Topics: kafkaio.InputTopics(kafkaio.DefaultInputPrefix)})
	old := time.Now().UTC().Add(-40 * 24 * time.Hour).Format(time.RFC3339)
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx,
		kafka.Message{Topic: "crm.accounts", Key: []byte("acc-1"), Value: []byte(`{"event_id":"e1","type":"account","account_id":"acc-1","occurred_at":"` + old + `","name":"Acme","owner_id":"rep-1","wallet":5000000}`)},
		kafka.Message{Topic: "crm.activities", Key: []byte("acc-1"), Value: []byte(`{"event_id":"e2","type":"activity","account_id":"acc-1","occurred_at":"` + old + `","kind":"call"}`)},
	); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRunAlertWebhook checks the wiring of --alert-webhook: a neglected
// high-potential account raises an alert that reaches the receiver signed
// with PYRAMID_ALERT_WEBHOOK_SECRET.
func TestRunAlertWebhook(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := neglectedAccount(ctx, t)

	const secret = "s3cret"
	got := make(chan []byte, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !alert.Verify([]byte(secret), body, r.Header.Get(alert.HeaderSignature)) {
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		got <- body
	}))
	defer recv.Close()
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP", "PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK"} {
		t.Setenv(k, "")
	}
	t.Setenv("PYRAMID_ALERT_WEBHOOK_SECRET", secret)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- cmdRun(runCtx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--sink-dir", t.TempDir(), "--http", "",
			"--alert-webhook", recv.URL, "--flush-interval", "100ms", "--log-level", "warn"}, &bytes.Buffer{}, &stderr)
	}()
	select {
	case body := <-got:
		var a struct {
			AccountID string `json:"account_id"`
			Status    string `json:"status"`
			Tier      string `json:"tier"`
			OwnerID   string `json:"owner_id"`
		}
		if err := json.Unmarshal(body, &a); err != nil || a.AccountID != "acc-1" || a.Status != "open" || a.Tier != "major" || a.OwnerID != "rep-1" {
			t.Errorf("webhook body %s (%v)", body, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no signed alert reached the webhook; stderr:\n%s", stderr.String())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// The whole stop keeps within --shutdown-timeout, the webhook's close
// included: an alert stuck in a delivery the receiver never answers is
// dead-lettered (reason shutdown) and run returns in time, though the
// webhook's own close timeout is longer.
func TestRunStopsWithinShutdownTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := neglectedAccount(ctx, t)

	arrived := make(chan struct{}, 1)
	hang := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // never answers while the test runs
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer recv.Close()
	defer close(hang)
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP", "PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK", "PYRAMID_ALERT_WEBHOOK_SECRET"} {
		t.Setenv(k, "")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var stderr syncBuffer
	const bound = 2 * time.Second
	go func() {
		done <- cmdRun(runCtx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--sink-dir", t.TempDir(), "--http", "",
			"--alert-webhook", recv.URL, "--flush-interval", "100ms", "--log-level", "warn", "--shutdown-timeout", bound.String()}, &bytes.Buffer{}, &stderr)
	}()
	select {
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatalf("no alert reached the webhook; stderr:\n%s", stderr.String())
	}
	stop()
	t0 := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(bound + 3*time.Second):
		t.Fatalf("run did not stop within %v of cancel (--shutdown-timeout %v); stderr:\n%s", bound+3*time.Second, bound, stderr.String())
	}
	t.Logf("stopped %v after cancel", time.Since(t0).Round(time.Millisecond))

	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs(), Topic: kafkaio.AlertsDeadLetters, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	r, err := rd.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("no dead letter for the undelivered alert: %v; stderr:\n%s", err, stderr.String())
	}
	for _, h := range r.Headers {
		if h.Key == alert.HeaderDLQReason && string(h.Value) != alert.ReasonShutdown {
			t.Errorf("dead letter reason %q, want %q", h.Value, alert.ReasonShutdown)
		}
	}
}

// With ClickHouse unreachable at start, `pyramid run` serves HTTP at once:
// /healthz answers (a Kubernetes startup probe keeps the pod), and /readyz
// says what start-up waits for, naming ClickHouse and the last error.
func TestRunServesHTTPWhileClickHouseIsUnreachable(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Partitions: 1, Topics: kafkaio.InputTopics(kafkaio.DefaultInputPrefix)})
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, nobody := free(), free() // nothing listens on nobody once closed
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP", "PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK"} {
		t.Setenv(k, "")
	}
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- cmdRun(ctx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--clickhouse", "clickhouse://" + nobody + "/default",
			"--http", addr, "--log-level", "warn"}, &bytes.Buffer{}, &stderr)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(15 * time.Second)
	var code int
	var body string
	for {
		code, body = get("/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "ClickHouse") && strings.Contains(body, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("/readyz: %d %q; stderr:\n%s", code, body, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz while ClickHouse is unreachable: %s", body)
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, `pyramid_dlq_total{reason="limit"} 0`) {
		t.Errorf("/metrics: %d, no zero dead-letter series", code)
	}
	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop within 15 s of cancel")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
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

// TestRunDeclaredInputsOnly runs `pyramid run --topics ”` with declared
// inputs only: Debezium records (pyramid gen --format debezium) on topics
// of 3 partitions are repartitioned onto topics Pyramid creates, scored,
// and served.
func TestRunDeclaredInputsOnly(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Partitions: 3, Topics: gen.DebeziumTopics(gen.DefaultDebeziumPrefix)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now().UTC().AddDate(0, -13, 0).Format(time.RFC3339)
	var genErr bytes.Buffer
	if err := cmdGen(ctx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--format", "debezium", "--accounts", "20", "--events", "400",
		"--months", "12", "--start", start, "--seed", "3"}, &bytes.Buffer{}, &genErr); err != nil {
		t.Fatalf("gen: %v\n%s", err, genErr.String())
	}
	cfg, err := yaml.Marshal(map[string]any{"inputs": gen.DebeziumInputs(gen.DefaultDebeziumPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "pyramid.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP", "PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK", "PYRAMID_TOPICS"} {
		t.Setenv(k, "")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	var stderr testenv.Buffer
	go func() {
		done <- cmdRun(runCtx, []string{"--brokers", strings.Join(b.Addrs(), ","), "--topics", "", "--config", cfgPath,
			"--sink-dir", t.TempDir(), "--http", addr, "--flush-interval", "100ms", "--log-level", "warn"}, &bytes.Buffer{}, &stderr)
	}()
	var tiers struct {
		Accounts int `json:"accounts"`
	}
	for {
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("never ready with 20 accounts (last %+v); stderr:\n%s", tiers, stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		if resp, err = http.Get("http://" + addr + "/v1/tiers"); err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&tiers)
		resp.Body.Close()
		if err == nil && tiers.Accounts == 20 {
			break
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`pyramid_repartition_events_total{type="order"}`)) {
		t.Errorf("/metrics has no repartitioned orders:\n%s", body)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
}

// `pyramid run --topics ”` without declared inputs has nothing to read.
func TestRunNothingToRead(t *testing.T) {
	for _, k := range []string{"PYRAMID_CONFIG", "PYRAMID_TOPICS"} {
		t.Setenv(k, "")
	}
	var stderr bytes.Buffer
	err := cmdRun(context.Background(), []string{"--brokers", "127.0.0.1:1", "--topics", "", "--sink-dir", t.TempDir()}, &bytes.Buffer{}, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "nothing to read") {
		t.Fatalf("run = %v, stderr %q", err, stderr.String())
	}
}
