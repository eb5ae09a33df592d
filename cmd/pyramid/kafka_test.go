package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"gopkg.in/yaml.v3"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/gen"
	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
)

// TestKafkaRequests records every request `pyramid gen --brokers` and
// `pyramid run` send to a broker emulating each supported Kafka release
// (and to kfake as it is), over SASL/SCRAM: producing input, creating the
// internal topics, joining the group, restoring, fetching, writing state,
// dead letters and alerts, committing and leaving. It fails when the
// broker refuses anything, when kafka-go sends a request or version
// kafkaapi.Requests does not predict (a kafka-go upgrade changed what goes
// on the wire: update Requests and docs/operations.md), or when a row of
// Requests was never sent.
func TestKafkaRequests(t *testing.T) {
	for _, k := range []string{"PYRAMID_BROKERS", "PYRAMID_SINK_DIR", "PYRAMID_CLICKHOUSE_DSN", "PYRAMID_HTTP",
		"PYRAMID_CONFIG", "PYRAMID_ALERT_WEBHOOK", "PYRAMID_KAFKA_TLS", "PYRAMID_KAFKA_SASL_PASSWORD_FILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("PYRAMID_KAFKA_SASL", "scram-sha-512")
	t.Setenv("PYRAMID_KAFKA_SASL_USER", "pyramid")
	t.Setenv("PYRAMID_KAFKA_SASL_PASSWORD", "secret")
	for _, rel := range append([]string{""}, kafkaapi.Releases...) {
		name := rel
		if name == "" {
			name = "kfake"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			em, err := broker.NewEmulation(rel)
			if err != nil {
				t.Fatal(err)
			}
			c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, kafkaio.InputTopics(kafkaio.DefaultInputPrefix)...),
				kfake.SeedTopics(3, gen.DebeziumTopics(gen.DefaultDebeziumPrefix)...),
				kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "pyramid", "secret")}, em.Opts()...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := em.Attach(c); err != nil {
				t.Fatal(err)
			}
			// A member heartbeats every 3 s: wait for one.
			stderr := runPyramidOnce(t, c, func() bool { return em.Sent()[broker.Request{Key: kafkaapi.Heartbeat}] > 0 })

			bv := em.Versions()
			if probs := kafkaapi.Check(bv); len(probs) > 0 {
				t.Errorf("the start-up check refuses %s: %v", name, probs)
			}
			for r, why := range em.Refused() {
				t.Errorf("%s refused %s: %s", name, r, why)
			}
			era := map[string]string{"3.9": "before 4.0", "4.0.0": "4.0.0"}[rel]
			if era == "" {
				era = "4.0.1 or later"
			}
			if !strings.Contains(stderr, `"msg":"kafka broker API versions"`) || !strings.Contains(stderr, `"kafka":"`+era+`"`) {
				t.Errorf("pyramid run did not log the broker's API versions with kafka=%q; stderr:\n%s", era, stderr)
			}
			checkPredicted(t, bv, em.Sent())
		})
	}
}

// runPyramidOnce produces a small stream with `pyramid gen --brokers`, and
// another as Debezium records (--format debezium) declared in inputs:, runs
// `pyramid run` until every input offset is committed (the native ones by
// the pipeline, the declared ones by the repartitioner, and the
// repartition topics' by the pipeline), the state, dead-letter and alert
// topics have records and more is true, stops it and returns its log.
func runPyramidOnce(t *testing.T, c *kfake.Cluster, more func() bool) string {
	t.Helper()
	brokers := strings.Join(c.ListenAddrs(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Ending a month ago, the stream leaves high-potential accounts
	// untouched past their tier's limit: alerts.
	start := time.Now().UTC().AddDate(0, -13, 0).Format(time.RFC3339)
	var genErr bytes.Buffer
	if err := cmdGen(ctx, []string{"--brokers", brokers, "--accounts", "300", "--events", "3000", "--months", "12",
		"--start", start, "--bad-ratio", "0.05", "--seed", "5"}, &bytes.Buffer{}, &genErr); err != nil {
		t.Fatalf("gen --brokers: %v\n%s", err, genErr.String())
	}
	if err := cmdGen(ctx, []string{"--brokers", brokers, "--format", "debezium", "--accounts", "100", "--events", "1000", "--months", "12",
		"--start", start, "--bad-ratio", "0.05", "--seed", "6"}, &bytes.Buffer{}, &genErr); err != nil {
		t.Fatalf("gen --brokers --format debezium: %v\n%s", err, genErr.String())
	}
	cfg, err := yaml.Marshal(map[string]any{"inputs": gen.DebeziumInputs(gen.DefaultDebeziumPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "pyramid.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	inputs, declared := 0, 0
	for _, tp := range kafkaio.InputTopics(kafkaio.DefaultInputPrefix) {
		inputs += int(sumHWM(c, tp))
	}
	for _, tp := range gen.DebeziumTopics(gen.DefaultDebeziumPrefix) {
		declared += int(sumHWM(c, tp))
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var stderr testenv.Buffer
	go func() {
		done <- cmdRun(runCtx, []string{"--brokers", brokers, "--config", cfgPath, "--sink-dir", t.TempDir(), "--http", "",
			"--flush-interval", "100ms", "--log-level", "info", "--log-format", "json"}, &bytes.Buffer{}, &stderr)
	}()
	for {
		committed := groupCommits(c, consumer.DefaultGroup)
		repartitioned := groupCommits(c, consumer.DefaultGroup+repartition.GroupSuffix)
		// Once the repartitioner committed every declared input, the
		// pipeline must also read the repartition topics to their ends.
		want := int64(inputs)
		if repartitioned >= int64(declared) {
			for _, tp := range repartition.Topics(&config.Config{Inputs: gen.DebeziumInputs(gen.DefaultDebeziumPrefix)}) {
				want += sumHWM(c, tp)
			}
		}
		if committed >= want && repartitioned >= int64(declared) && sumHWM(c, kafkaio.State) > 0 &&
			sumHWM(c, kafkaio.DeadLetters) > 0 && sumHWM(c, kafkaio.Alerts) > 0 && more() {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("pyramid run stopped early: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			stop()
			t.Fatalf("committed %d of %d offsets (declared inputs: %d of %d), state %d, dead letters %d, alerts %d records; stderr:\n%s", committed, inputs, repartitioned, declared,
				sumHWM(c, kafkaio.State), sumHWM(c, kafkaio.DeadLetters), sumHWM(c, kafkaio.Alerts), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pyramid run: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}

// groupCommits sums the offsets group committed.
func groupCommits(c *kfake.Cluster, group string) int64 {
	var n int64
	if g := c.GroupInfo(group); g != nil {
		for _, ps := range g.Commits {
			for _, pc := range ps {
				n += pc.Offset
			}
		}
	}
	return n
}

// sumHWM is the number of records ever written to topic.
func sumHWM(c *kfake.Cluster, topic string) int64 {
	var n int64
	for _, p := range c.PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
}

// checkPredicted fails for every request sent that kafkaapi.Requests does
// not predict against a broker advertising bv, and for every row of
// Requests that was not sent. It logs the inventory.
func checkPredicted(t *testing.T, bv kafkaapi.Versions, sent map[broker.Request]int) {
	t.Helper()
	predicted := map[broker.Request][]kafkaapi.Request{}
	for _, r := range kafkaapi.Requests {
		v, ok := r.Version(bv)
		if !ok {
			t.Errorf("%s (%s): kafka-go sends no version against %s", kafkaapi.Name(r.Key), r.For, bv[r.Key])
			continue
		}
		k := broker.Request{Key: r.Key, Version: v}
		predicted[k] = append(predicted[k], r)
	}
	var lines []string
	for r, n := range sent {
		if _, ok := predicted[r]; !ok {
			t.Errorf("sent %s (%d times), which kafkaapi.Requests does not predict against %s", r, n, bv[r.Key])
		}
		lines = append(lines, fmt.Sprintf("%-22s ×%d (broker advertises %s)", r, n, bv[r.Key]))
	}
	for r, rows := range predicted {
		if sent[r] == 0 {
			t.Errorf("kafkaapi.Requests predicts %s (%s), which was never sent", r, rows[0].For)
		}
	}
	sort.Strings(lines)
	t.Logf("requests sent:\n%s", strings.Join(lines, "\n"))
}
