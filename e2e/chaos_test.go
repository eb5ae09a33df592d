package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// hostile is one message of the chaos test's fixed hostile set: where it
// goes, and the reason it must be dead-lettered with ("" for one that must
// be applied, or ignored as a duplicate).
type hostile struct {
	what      string
	topic     string
	partition int    // -1: the key's partition, as producers partition
	key       []byte // nil: no key
	value     []byte
	reason    string
}

// hostileSet builds the fixed hostile set. victim is an account of the
// generated stream: the events aimed at it must all be refused, or its
// figures would differ from the replay's.
func hostileSet(victim string) []hostile {
	var hs []hostile
	at := func(day int) string { return time.Date(2025, 1, 1+day, 9, 0, 0, 0, time.UTC).Format(time.RFC3339) }
	ev := func(id, acc, occurred, body string) []byte {
		return []byte(fmt.Sprintf(`{"event_id":%q,"account_id":%q,"occurred_at":%q,%s}`, id, acc, occurred, body))
	}
	add := func(what, topic string, key []byte, value []byte, reason string) {
		hs = append(hs, hostile{what: what, topic: topic, partition: -1, key: key, value: value, reason: reason})
	}
	orders, opps, acts, accts := topics[0], topics[1], topics[2], topics[3]
	call := `"type":"activity","kind":"call"`

	// Junk at the head of every topic: a year 2199, two days ahead of the
	// wall clock, not JSON, invalid UTF-8.
	for i, tp := range topics {
		acc := fmt.Sprint("chaos-junk-", i)
		add("occurred_at in 2199", tp, []byte(acc), ev(acc+"-2199", acc, "2199-01-01T00:00:00Z", call), event.ReasonFuture)
		add("two days ahead", tp, []byte(acc), ev(acc+"-ahead", acc, testNow.Add(48*time.Hour).Format(time.RFC3339), call), event.ReasonFuture)
		add("not JSON", tp, []byte(acc), []byte(`{"event_id":"`+acc+`","type":"order", oops`), event.ReasonNotJSON)
		add("invalid UTF-8", tp, []byte(acc), ev(acc+"-utf8\xff", acc, at(1), call), event.ReasonNotJSON)
	}
	// Oversized ids and names.
	add("129-byte opportunity_id", opps, []byte("chaos-ids"), ev("ids-1", "chaos-ids", at(2),
		`"type":"opportunity","stage":"proposal","amount":10,"opportunity_id":"`+strings.Repeat("o", 129)+`"`), event.ReasonInvalidField)
	big := strings.Repeat("a", 400_000)
	add("400 KB account_id", acts, []byte(big), ev("ids-2", big, at(2), call), event.ReasonInvalidField)
	add("200-byte owner_id", acts, []byte("chaos-ids"), ev("ids-3", "chaos-ids", at(2), call+`,"owner_id":"`+strings.Repeat("r", 200)+`"`), event.ReasonInvalidField)
	add("300-byte name", accts, []byte("chaos-ids"), ev("ids-4", "chaos-ids", at(2), `"type":"account","name":"`+strings.Repeat("n", 300)+`"`), event.ReasonInvalidField)
	add("1.2 MB event", acts, []byte("chaos-ids"), ev("ids-5", "chaos-ids", at(2), `"type":"activity","kind":"`+strings.Repeat("k", 1200<<10)+`"`), event.ReasonTooLarge)
	// Junk timestamps on an account of the stream.
	for i, ts := range []struct{ at, reason string }{
		{"2199-06-01T00:00:00Z", event.ReasonFuture},
		{testNow.Add(30 * time.Hour).Format(time.RFC3339), event.ReasonFuture},
		{"1990-01-01T00:00:00Z", event.ReasonInvalidField},
		{"last tuesday", event.ReasonInvalidField},
	} {
		add("occurred_at "+ts.at, orders, []byte(victim), ev(fmt.Sprint("ts-", i), victim, ts.at, `"type":"order","order_id":"chaos-ts","amount":99999`), ts.reason)
	}
	// Messages not keyed by their account: none, another one, a rep.
	order := ev("key-1", victim, at(3), `"type":"order","order_id":"chaos-key","amount":50000`)
	hs = append(hs, hostile{what: "no key", topic: orders, partition: -2, value: order, reason: event.ReasonBadKey})
	add("keyed by a rep", orders, []byte("rep-07"), ev("key-2", victim, at(3), `"type":"order","order_id":"chaos-key-2","amount":50000`), event.ReasonBadKey)
	add("keyed by another account", orders, []byte("chaos-ids"), ev("key-3", victim, at(3), `"type":"order","order_id":"chaos-key-3","amount":50000`), event.ReasonBadKey)
	// Sums that would wrap: a hundred orders of 1e13 reach the bound of
	// 1e15 exactly, the next one would pass it; 2e13 is over the amount
	// limit of one order.
	for i := range 101 {
		reason := ""
		if i == 100 {
			reason = event.ReasonOutOfRange
		}
		add("order of 1e13", orders, []byte("chaos-overflow"), ev(fmt.Sprint("big-", i), "chaos-overflow", at(4), fmt.Sprintf(`"type":"order","order_id":"big-%d","amount":10000000000000`, i)), reason)
	}
	add("order of 2e13", orders, []byte("chaos-overflow"), ev("big-x", "chaos-overflow", at(4), `"type":"order","order_id":"big-x","amount":20000000000000`), event.ReasonInvalidField)
	// Duplicates: every event twice in a row; the second is ignored.
	for i := range 10 {
		dup := ev(fmt.Sprint("dup-", i), "chaos-dup", at(5+i), call)
		add("event", acts, []byte("chaos-dup"), dup, "")
		add("its duplicate", acts, []byte("chaos-dup"), dup, "")
	}
	// limits.max_open_opportunities (1,000): the 1,001st open one is
	// refused; the account goes on with updates and closings.
	for i := range 1001 {
		reason := ""
		if i == 1000 {
			reason = event.ReasonLimit
		}
		add("open opportunity", opps, []byte("chaos-open"), ev(fmt.Sprint("open-", i), "chaos-open", at(20), fmt.Sprintf(`"type":"opportunity","opportunity_id":"opp-%d","stage":"proposal","amount":100`, i)), reason)
	}
	add("update of one held", opps, []byte("chaos-open"), ev("open-upd", "chaos-open", at(21), `"type":"opportunity","opportunity_id":"opp-7","stage":"negotiation","amount":900`), "")
	add("closing one", opps, []byte("chaos-open"), ev("open-won", "chaos-open", at(22), `"type":"opportunity","opportunity_id":"opp-8","stage":"closed_won","amount":700`), "")
	return hs
}

// produceHostile writes the hostile set in order, each message to its
// topic and to its key's partition (murmur2, as gen.Produce does); a
// message without a key goes to another partition than victim's.
func produceHostile(tb testing.TB, addrs []string, hs []hostile, victim string) {
	tb.Helper()
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	home := func(key []byte) int { return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, parts...) }
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	for i := range hs {
		h := &hs[i]
		switch h.partition {
		case -1:
			h.partition = home(h.key)
		case -2:
			h.partition = (home([]byte(victim)) + 1) % partitions
		}
	}
	for len(hs) > 0 {
		n, size := 1, len(hs[0].value)
		for n < len(hs) && hs[n].topic == hs[0].topic && hs[n].partition == hs[0].partition && size+len(hs[n].value) < 512<<10 {
			size += len(hs[n].value)
			n++
		}
		recs := make([]kafka.Record, n)
		for i, h := range hs[:n] {
			recs[i] = kafka.Record{Value: kafka.NewBytes(h.value)}
			if h.key != nil {
				recs[i].Key = kafka.NewBytes(h.key)
			}
		}
		resp, err := cl.Produce(context.Background(), &kafka.ProduceRequest{Topic: hs[0].topic, Partition: hs[0].partition,
			RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...)})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			tb.Fatalf("produce %s to %s/%d: %v", hs[0].what, hs[0].topic, hs[0].partition, err)
		}
		hs = hs[n:]
	}
}

// readPartition returns every record of one partition of topic.
func readPartition(tb testing.TB, addrs []string, topic string, partition int) []kafka.Message {
	tb.Helper()
	conn, err := (&kafka.Dialer{Timeout: 5 * time.Second}).DialLeader(context.Background(), "tcp", addrs[0], topic, partition)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		tb.Fatal(err)
	}
	var out []kafka.Message
	for off := first; off < last; {
		if _, err := conn.Seek(off, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			tb.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
		before := off
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			out = append(out, m)
			off = m.Offset + 1
		}
		b.Close()
		if off == before {
			tb.Fatalf("reading %s/%d stopped at offset %d of %d", topic, partition, off, last)
		}
	}
	return out
}

// startChild runs the pipeline as a child process of the test binary (see
// runChild), which the test may kill.
func startChild(t *testing.T, addrs []string, dsn, group string) (*exec.Cmd, *testenv.Buffer) {
	t.Helper()
	out := &testenv.Buffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childBrokersEnv+"="+strings.Join(addrs, ","),
		childDSNEnv+"="+dsn, childGroupEnv+"="+group)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // in case the test stopped before killing it
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child output:\n%s", out.String())
		}
	})
	return cmd, out
}

// killChild kills the child with SIGKILL and checks that it was running
// until then.
func killChild(t *testing.T, cmd *exec.Cmd, out *testenv.Buffer) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v before it was killed:\n%s", err, out.String())
	}
}

// TestChaos streams a generated year (with its 1% of bad events and its
// resends) mixed with a fixed hostile set: junk at the head of every
// topic (occurred_at in 2199 or two days ahead, not JSON, invalid UTF-8),
// oversized ids, names and events, junk timestamps, messages without a key
// or keyed by another account, orders whose sums would wrap, duplicates,
// and an account past limits.max_open_opportunities. The pipeline is
// killed with SIGKILL once while events flow and restarted. Then every
// account's row in account_latest must equal what `pyramid replay` gives
// for the well-formed events alone (compareLatest; no other account has a
// row), and every hostile message must be in pyramid.dlq with its reason,
// and only those and the generator's bad events: a duplicate is ignored,
// not dead-lettered.
func TestChaos(t *testing.T) {
	t.Parallel()
	dsn, conn := freshDB(t, testDSN(t))
	w := newWorkload(t, 300, 4000, 4)
	dec := event.NewDecoder(config.Default())
	var victim string
	for _, line := range bytes.Split(w.jsonl, []byte("\n")) {
		if ev, err := dec.Decode(line); err == nil {
			victim = ev.AccountID
			break
		}
	}
	hs := hostileSet(victim)

	// The golden: the replay of the well-formed events alone.
	var wellFormed bytes.Buffer
	genBad := map[string]string{} // a generated bad line: its reason
	for _, line := range bytes.Split(w.jsonl, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if _, err := dec.Decode(line); err != nil {
			genBad[string(line)] = event.ReasonOf(err)
			continue
		}
		wellFormed.Write(line)
		wellFormed.WriteByte('\n')
	}
	for _, h := range hs {
		if h.reason == "" {
			wellFormed.Write(h.value)
			wellFormed.WriteByte('\n')
		}
	}
	gold := goldenOf(t, wellFormed.Bytes())

	// One event of 1.2 MB must reach the pipeline (and be refused there).
	b := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4000000"}))
	addrs := b.ListenAddrs()
	produceHostile(t, addrs, hs, victim)
	const group = "e2e-chaos"

	// The stream flows while the pipeline runs and is killed: 4,000 events
	// at 400 per second.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		_, err := w.produce(ctx, addrs, 400)
		produced <- err
	}()
	layout := endOffsets(t, addrs, topics, partitions)
	// Killed once it is past the hostile set and into the stream.
	cmd, out := startChild(t, addrs, dsn, group)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := committed(addrs, group, layout)
		if err == nil && c.total() > int64(len(hs))+500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child committed %d offsets within 60 s (%v):\n%s", c.total(), err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	killChild(t, cmd, out)
	c, _ := committed(addrs, group, layout)
	flowing := "while events flow"
	select {
	case err := <-produced:
		produced <- err
		flowing = "after the stream was produced"
	default:
	}
	t.Logf("killed the pipeline %s, with %d offsets committed", flowing, c.total())

	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	ends := endOffsets(t, addrs, topics, partitions)
	s := newSink(t, dsn)
	r := start(t, pipelineOptions(addrs, topics, group, s))
	waitCommitted(t, addrs, group, ends, 120*time.Second)
	r.Stop(t)

	checkCollapsed(t, conn, len(gold.snaps))
	compareLatest(t, conn, gold, interleaved, unbounded)

	// The dead letters: every hostile message that must be refused, with
	// its reason, and nothing else but the generator's bad events. After
	// the kill some may be there twice: a flush whose offsets were not
	// committed is read and dead-lettered again.
	type letter struct{ key, value string }
	want := map[letter]hostile{}
	for _, h := range hs {
		want[letter{string(h.key), string(h.value)}] = h
	}
	found := map[letter]bool{}
	dead := 0
	for p := range partitions {
		for _, d := range readPartition(t, addrs, kafkaio.DeadLetters, p) {
			dead++
			l, reason := letter{string(d.Key), string(d.Value)}, testenv.Header(d, "pyramid-reason")
			if h, ok := want[l]; ok {
				found[l] = true
				if h.reason != reason {
					t.Errorf("%s (%.80s): dead-lettered with reason %q (%s), want %q", h.what, h.value, reason, testenv.Header(d, "pyramid-error"), h.reason)
				}
				continue
			}
			if r, ok := genBad[l.value]; ok && r == reason {
				continue
			}
			t.Errorf("unexpected dead letter %.120q with reason %q: %s", l.value, reason, testenv.Header(d, "pyramid-error"))
		}
	}
	refused := 0
	for l, h := range want {
		if h.reason != "" {
			refused++
		}
		if found[l] != (h.reason != "") {
			t.Errorf("%s (%.80s): dead-lettered %v, want %v", h.what, h.value, found[l], h.reason != "")
		}
	}
	t.Logf("%d hostile messages, %d of them refused; %d dead letters in all (the generator's bad events, and repeats after the kill)", len(hs), refused, dead)
}
