package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
)

// emulated starts a broker emulating release; unlike start, refused
// requests do not fail the test.
func emulated(t *testing.T, release string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{Release: release})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// roundTrip sends req at its set version on a fresh connection, as an old
// client would, and reads the answer, decoded at version answer. A broker
// that refuses the version closes the connection: roundTrip then returns
// io.EOF (or a reset).
func roundTrip(t *testing.T, addr string, req kmsg.Request, answer int16) (kmsg.Response, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test"))
	if _, err := conn.Write(f.AppendRequest(nil, req, 7)); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(answer)
	body = body[4:] // correlation id
	if resp.IsFlexible() && req.Key() != kafkaapi.ApiVersions {
		body = body[1:] // empty tagged fields of the response header
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decoding %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

func joinGroup(version int16) kmsg.Request {
	req := kmsg.NewPtrJoinGroupRequest()
	req.SetVersion(version)
	req.Group = "g"
	req.SessionTimeoutMillis = 30000
	req.RebalanceTimeoutMillis = 30000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	req.Protocols = append(req.Protocols, p)
	return req
}

// TestEmulationRefusesRemovedVersions sends versions Kafka 4.0 removed:
// the emulated release closes the connection, as Kafka does, and records
// the refusal; a release that accepts the version answers it.
func TestEmulationRefusesRemovedVersions(t *testing.T) {
	produce := func(version int16) kmsg.Request {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(version)
		req.Acks = 1
		req.TimeoutMillis = 1000
		return req
	}
	offsetCommit := func(version int16) kmsg.Request {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.SetVersion(version)
		req.Group = "g"
		return req
	}
	tests := []struct {
		release string
		req     kmsg.Request
		refused bool
	}{
		{"4.0.0", joinGroup(1), true}, // segmentio/kafka-go#1378
		{"4.0.0", joinGroup(2), false},
		{"4.0.1", joinGroup(1), false}, // KAFKA-19444
		{"4.1", joinGroup(0), false},
		{"3.9", offsetCommit(1), false},
		{"4.1", offsetCommit(1), true},
		{"4.1", offsetCommit(2), false},
		{"4.1", produce(2), true}, // advertised, still refused (KAFKA-18659)
		{"4.1", produce(3), false},
	}
	for _, tt := range tests {
		b := emulated(t, tt.release)
		name := kmsg.NameForKey(tt.req.Key())
		_, err := roundTrip(t, b.Addrs()[0], tt.req, tt.req.GetVersion())
		refused := b.Emulation().Refused()
		r := broker.Request{Key: tt.req.Key(), Version: tt.req.GetVersion()}
		switch {
		case tt.refused && err == nil:
			t.Errorf("Kafka %s answered %s v%d, which it refuses", tt.release, name, r.Version)
		case tt.refused && refused[r] == "":
			t.Errorf("Kafka %s: %s v%d refusal not recorded: %v", tt.release, name, r.Version, refused)
		case !tt.refused && err != nil:
			t.Errorf("Kafka %s refused %s v%d: %v (%v)", tt.release, name, r.Version, err, refused)
		}
		if tt.refused && !errors.Is(err, io.EOF) {
			var op *net.OpError
			if !errors.As(err, &op) {
				t.Errorf("Kafka %s, %s v%d: got %v, want the connection closed", tt.release, name, r.Version, err)
			}
		}
		b.Close()
	}
}

// TestEmulationAdvertisesRelease checks the ApiVersions answer of each
// emulated release: the release's minima (Produce from v0, as Kafka 4.x
// advertises it), its maxima capped to what kfake implements, and the v0
// UNSUPPORTED_VERSION answer to a too-new ApiVersions request.
func TestEmulationAdvertisesRelease(t *testing.T) {
	versions := func(b *broker.Broker) kafkaapi.Versions {
		t.Helper()
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(3)
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
		resp, err := roundTrip(t, b.Addrs()[0], req, 3)
		if err != nil {
			t.Fatal(err)
		}
		bv := kafkaapi.Versions{}
		for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
			bv[k.ApiKey] = kafkaapi.Range{Min: k.MinVersion, Max: k.MaxVersion}
		}
		return bv
	}
	kfake := versions(emulated(t, ""))
	for _, rel := range kafkaapi.Releases {
		b := emulated(t, rel)
		got := versions(b)
		want := kafkaapi.Advertised(rel)
		for _, key := range []int16{kafkaapi.Produce, kafkaapi.Fetch, kafkaapi.ListOffsets, kafkaapi.Metadata,
			kafkaapi.OffsetCommit, kafkaapi.OffsetFetch, kafkaapi.JoinGroup, kafkaapi.CreateTopics, kafkaapi.ApiVersions} {
			w := want[key]
			w.Max = min(w.Max, kfake[key].Max) // kfake may implement less than the release
			if got[key] != w {
				t.Errorf("Kafka %s advertises %s %s, want %s", rel, kafkaapi.Name(key), got[key], w)
			}
		}
		if rel != "3.9" && got[32].Min != 1 { // DescribeConfigs v0: KIP-896 too
			t.Errorf("Kafka %s advertises DescribeConfigs %s, want from v1", rel, got[32])
		}
		if mv, _ := kafkaapi.MaxVersions(rel); mv != nil {
			mv.EachMaxKeyVersion(func(k, v int16) {
				if r, ok := got[k]; ok && r.Max > v {
					t.Errorf("Kafka %s advertises %s up to v%d, beyond its v%d", rel, kafkaapi.Name(k), r.Max, v)
				}
			})
		}

		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(9)
		resp, err := roundTrip(t, b.Addrs()[0], req, 0) // answered at v0 (KIP-511)
		if err != nil {
			t.Fatalf("%s: ApiVersions v9: %v", rel, err)
		}
		av := resp.(*kmsg.ApiVersionsResponse)
		if av.ErrorCode != kerr.UnsupportedVersion.Code || len(av.ApiKeys) != 1 || av.ApiKeys[0].ApiKey != kafkaapi.ApiVersions {
			t.Errorf("Kafka %s answered ApiVersions v9 with %+v, want UNSUPPORTED_VERSION and its own range", rel, av)
		}
	}
}

func TestEmulationUnknownRelease(t *testing.T) {
	if _, err := broker.Start(broker.Options{Release: "5.0"}); err == nil {
		t.Error("Start emulated Kafka 5.0, which nothing describes")
	}
}
