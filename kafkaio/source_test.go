package kafkaio

import (
	"errors"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
)

func TestSourceHeadersRoundTrip(t *testing.T) {
	hs, arena := AppendSourceHeaders(nil, nil, "crmdb.public.orders", 3, 1234, 1, 1200)
	hs, _ = AppendSourceHeaders(hs, arena, "a.b", 0, 0, 0, 0)
	s, ok := ParseSource(hs[:3])
	if !ok || string(s.Topic) != "crmdb.public.orders" || s.Partition != 3 || s.Offset != 1234 || s.Index != 1 || s.Committed != 1200 {
		t.Fatalf("ParseSource = %+v, %v", s, ok)
	}
	if got := string(hs[0].Value); got != "crmdb.public.orders/3/1234" {
		t.Errorf("pyramid-source = %q", got)
	}
	if s, ok := ParseSource(hs[3:]); !ok || string(s.Topic) != "a.b" || s.Offset != 0 {
		t.Errorf("second record: %+v, %v", s, ok)
	}
	for _, bad := range [][]kafka.Header{
		nil,
		hs[:2], // no committed offset
		{{Key: HeaderSource, Value: []byte("t/1")}, hs[1], hs[2]},
		{{Key: HeaderSource, Value: []byte("t/x/1")}, hs[1], hs[2]},
		{hs[0], {Key: HeaderSourceIndex, Value: []byte("-1")}, hs[2]},
	} {
		if s, ok := ParseSource(bad); ok {
			t.Errorf("ParseSource(%v) = %+v, want not ok", bad, s)
		}
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
