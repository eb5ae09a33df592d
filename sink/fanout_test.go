package sink

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// fake records calls into a shared log.
type fake struct {
	name                      string
	log                       *[]string
	writeErr, healthErr, cErr error
}

func (f *fake) Write(context.Context, *Batch) error {
	*f.log = append(*f.log, "write "+f.name)
	return f.writeErr
}
func (f *fake) Healthy() error { return f.healthErr }
func (f *fake) Close(context.Context) error {
	*f.log = append(*f.log, "close "+f.name)
	return f.cErr
}

var _ Sink = Fanout(nil)
var _ Sink = (*Files)(nil)

func TestFanoutWritesInOrder(t *testing.T) {
	var log []string
	f := Fanout{&fake{name: "a", log: &log}, &fake{name: "b", log: &log}, &fake{name: "c", log: &log}}
	if err := f.Write(context.Background(), &Batch{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Healthy(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"write a", "write b", "write c", "close a", "close b", "close c"}
	if !reflect.DeepEqual(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
}

func TestFanoutStopsAtFirstWriteError(t *testing.T) {
	var log []string
	errB := errors.New("b is down")
	f := Fanout{
		&fake{name: "a", log: &log},
		&fake{name: "b", log: &log, writeErr: errB},
		&fake{name: "c", log: &log, writeErr: errors.New("c too")},
	}
	if err := f.Write(context.Background(), &Batch{}); !errors.Is(err, errB) {
		t.Errorf("Write = %v, want %v", err, errB)
	}
	if want := []string{"write a", "write b"}; !reflect.DeepEqual(log, want) {
		t.Errorf("calls %v, want %v: a batch not durable everywhere must not go on", log, want)
	}
}

func TestFanoutHealthyAndCloseJoinErrors(t *testing.T) {
	var log []string
	ha, hc := errors.New("a unhealthy"), errors.New("c unhealthy")
	ca, cb := errors.New("a close"), errors.New("b close")
	f := Fanout{
		&fake{name: "a", log: &log, healthErr: ha, cErr: ca},
		&fake{name: "b", log: &log, cErr: cb},
		&fake{name: "c", log: &log, healthErr: hc},
	}
	h := f.Healthy()
	if !errors.Is(h, ha) || !errors.Is(h, hc) {
		t.Errorf("Healthy = %v, want both a and c", h)
	}
	err := f.Close(context.Background())
	if !errors.Is(err, ca) || !errors.Is(err, cb) {
		t.Errorf("Close = %v, want both a and b", err)
	}
	if want := []string{"close a", "close b", "close c"}; !reflect.DeepEqual(log, want) {
		t.Errorf("calls %v, want every sink closed: %v", log, want)
	}
	if err := (Fanout{}).Healthy(); err != nil {
		t.Errorf("empty Fanout Healthy = %v", err)
	}
}
