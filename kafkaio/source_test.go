package kafkaio

import (
	"errors"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
)

func TestSourceHeaderRoundTrip(t *testing.T) {
	hs, arena := AppendSourceHeader(nil, nil, "crmdb.public.orders", 3, 1234, 1, 5000)
	hs, _ = AppendSourceHeader(hs, arena, "a.b", 0, 0, 0, -1)
	if got := string(hs[0].Value); hs[0].Key != HeaderSource || got != "crmdb.public.orders/3/1234/1/5000" {
		t.Errorf("header %s: %q", hs[0].Key, got)
	}
	s, ok := ParseSource(hs[:1])
	if !ok || string(s.Topic) != "crmdb.public.orders" || s.Partition != 3 || s.Offset != 1234 || s.Index != 1 || s.Backlog != 5000 {
		t.Fatalf("ParseSource = %+v, %v", s, ok)
	}
	if s, ok := ParseSource(hs[1:]); !ok || string(s.Topic) != "a.b" || s.Offset != 0 || s.Backlog != 0 {
		t.Errorf("second record: %+v, %v", s, ok)
	}
	for _, bad := range []string{"", "t/1/2", "t/1/2/3", "t/1/2/3/x", "/1/2/3/4", "t/1/-2/3/4", "t/1/2/3/-4"} {
		if s, ok := ParseSource([]kafka.Header{{Key: HeaderSource, Value: []byte(bad)}}); ok {
			t.Errorf("ParseSource(%q) = %+v, want not ok", bad, s)
		}
	}
	if _, ok := ParseSource([]kafka.Header{{Key: "other", Value: hs[0].Value}}); ok {
		t.Error("ParseSource took another header")
	}
}

func TestDeadLetter(t *testing.T) {
	err := &event.Error{Reason: event.ReasonUnknownStage, Msg: "stage \"x\"\n is not configured"}
	r := DeadLetter([]byte("k"), []byte("v"), err, AppendSource(nil, "t", 2, 7), DefaultMaxMessageBytes)
	want := map[string]string{HeaderError: `stage "x" is not configured`, HeaderReason: event.ReasonUnknownStage, HeaderSource: "t/2/7"}
	for _, h := range r.Headers {
		if want[h.Key] != string(h.Value) {
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, want[h.Key])
		}
		delete(want, h.Key)
	}
	if len(want) > 0 {
		t.Errorf("missing headers %v", want)
	}
	if r := DeadLetter(nil, nil, errors.New("x"), nil, DefaultMaxMessageBytes); string(r.Headers[1].Value) != event.ReasonInvalidField {
		t.Errorf("a plain error's reason: %q", r.Headers[1].Value)
	}
	big := DeadLetter([]byte("k"), []byte(strings.Repeat("x", 1<<20)), err, nil, DefaultMaxMessageBytes)
	if len(big.Value) != TruncatedDeadLetter || big.Headers[3].Key != HeaderTruncated || string(big.Headers[3].Value) != "1048576" {
		t.Errorf("an oversized dead letter keeps %d bytes, headers %v", len(big.Value), big.Headers[3:])
	}
}
