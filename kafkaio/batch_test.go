package kafkaio_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/internal/testenv"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// batchRecords are records of every shape a record batch must carry:
// null and empty keys and values, headers with null and empty values,
// times out of order, a zero time, and values past one varint byte.
func batchRecords() []kafkaio.Record {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return []kafkaio.Record{
		{Key: []byte("acct-1"), Value: []byte(`{"type":"order"}`), Time: at},
		{Key: nil, Value: []byte("no key"), Time: at.Add(-time.Hour)},
		{Key: []byte{}, Value: nil, Time: at.Add(time.Minute)}, // a tombstone
		{Key: []byte("h"), Value: []byte(strings.Repeat("x", 300)), Headers: []kafka.Header{
			{Key: "pyramid-source", Value: []byte("crm.orders/3/42/0/7")}, {Key: "empty", Value: []byte{}}, {Key: "null", Value: nil},
		}, Time: at.Add(48 * time.Hour)},
		{Key: []byte("zero time"), Value: []byte("now")},
	}
}

// TestProduceRecordBatch produces every shape of record through the
// Writer and reads it back with kafka-go: the broker takes the batch and
// every field survives.
func TestProduceRecordBatch(t *testing.T) {
	c := testenv.Kafka(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	cl := kafkaio.Client{Client: &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}}
	recs := batchRecords()
	before := time.Now().Add(-time.Second)
	for range 2 { // the second from a reused buffer
		if err := cl.Produce(context.Background(), "t", 0, recs); err != nil {
			t.Fatal(err)
		}
	}
	got := testenv.ReadTopic(t, c.ListenAddrs(), "t", 1)
	if len(got) != 2*len(recs) {
		t.Fatalf("read %d records, want %d", len(got), 2*len(recs))
	}
	for i, m := range got {
		want := recs[i%len(recs)]
		if m.Offset != int64(i) {
			t.Errorf("record %d: offset %d", i, m.Offset)
		}
		if !bytes.Equal(m.Key, want.Key) || !bytes.Equal(m.Value, want.Value) {
			t.Errorf("record %d: key %q value %q, want %q %q", i, m.Key, m.Value, want.Key, want.Value)
		}
		if want.Time.IsZero() {
			if m.Time.Before(before) || m.Time.After(time.Now().Add(time.Second)) {
				t.Errorf("record %d: time %v, want about now", i, m.Time)
			}
		} else if !m.Time.Equal(want.Time) {
			t.Errorf("record %d: time %v, want %v", i, m.Time, want.Time)
		}
		if fmt.Sprint(headers(m.Headers)) != fmt.Sprint(headers(want.Headers)) {
			t.Errorf("record %d: headers %v, want %v", i, headers(m.Headers), headers(want.Headers))
		}
	}
}

func headers(hs []kafka.Header) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s=%q", h.Key, h.Value))
	}
	return out
}

// TestRecordBatchMatchesKafkaGo encodes records with set times and
// compares the bytes with kafka-go's own encoder, the one Client.Produce
// used before.
func TestRecordBatchMatchesKafkaGo(t *testing.T) {
	recs := batchRecords()
	recs = recs[:len(recs)-1] // kafka-go gives a zero time its own clock
	krecs := make([]kafka.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kafka.Record{Time: r.Time, Headers: r.Headers}
		if r.Key != nil {
			krecs[i].Key = kafka.NewBytes(r.Key)
		}
		if r.Value != nil {
			krecs[i].Value = kafka.NewBytes(r.Value)
		}
	}
	rs := protocol.RecordSet{Version: 2, Records: kafka.NewRecordReader(krecs...)}
	var want bytes.Buffer
	if _, err := rs.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	got := kafkaio.AppendBatch(nil, recs, 0)
	if !bytes.Equal(got, want.Bytes()[4:]) { // kafka-go's starts with the size
		t.Errorf("batch differs from kafka-go's:\n got %x\nwant %x", got, want.Bytes()[4:])
	}
}

// TestRecordBatchFields decodes an encoded batch with franz-go's decoder:
// the batch length, the first and largest timestamps (a zero time is
// now), the count and each record's framing.
func TestRecordBatchFields(t *testing.T) {
	recs := batchRecords()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	raw := kafkaio.AppendBatch(nil, recs, now)
	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	if int(b.Length)+12 != len(raw) {
		t.Errorf("batch length %d, encoded %d bytes", b.Length, len(raw))
	}
	if b.Magic != 2 || b.Attributes != 0 || b.ProducerID != -1 || b.ProducerEpoch != -1 || b.FirstSequence != -1 || b.PartitionLeaderEpoch != -1 {
		t.Errorf("header %+v", b)
	}
	first := recs[0].Time.UnixMilli()
	if b.FirstTimestamp != first || b.MaxTimestamp != now || b.NumRecords != int32(len(recs)) || b.LastOffsetDelta != int32(len(recs)-1) {
		t.Errorf("first %d max %d records %d last delta %d", b.FirstTimestamp, b.MaxTimestamp, b.NumRecords, b.LastOffsetDelta)
	}
	rest := b.Records
	for i := range recs {
		var r kmsg.Record
		if err := r.ReadFrom(rest); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		n := int(r.Length) + varintSize(int64(r.Length))
		rest = rest[n:]
		if int(r.OffsetDelta) != i {
			t.Errorf("record %d: offset delta %d", i, r.OffsetDelta)
		}
		wantTS := now
		if !recs[i].Time.IsZero() {
			wantTS = recs[i].Time.UnixMilli()
		}
		if first+r.TimestampDelta64 != wantTS {
			t.Errorf("record %d: time %d, want %d", i, first+r.TimestampDelta64, wantTS)
		}
		if (r.Key == nil) != (recs[i].Key == nil) || (r.Value == nil) != (recs[i].Value == nil) {
			t.Errorf("record %d: null key or value lost", i)
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the last record", len(rest))
	}
}

func varintSize(v int64) int {
	u, n := uint64(v<<1)^uint64(v>>63), 1
	for ; u >= 0x80; u >>= 7 {
		n++
	}
	return n
}
