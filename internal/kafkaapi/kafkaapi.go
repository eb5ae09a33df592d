// Package kafkaapi is what Pyramid knows about Kafka protocol API versions:
// every request it sends to a user's cluster, the version kafka-go picks
// for it against a broker's advertised ranges, and the versions Kafka
// releases stopped accepting.
//
// Kafka 4.0 removed the API versions older than Kafka 2.1 (KIP-896). A
// broker refuses a removed version by closing the connection, so a client
// that sends one sees an EOF, not an error it can explain. Three places use
// this package so that never happens silently: `pyramid run` checks every
// broker's ApiVersions against Requests at start and refuses with the API,
// the version and the release that dropped it (Check); the test broker
// emulates a release's accepted versions (broker.Emulation); and the
// "Kafka compatibility" table in docs/operations.md is checked against
// Requests by this package's tests.
//
// Requests describes kafka-go v0.4.51. Its Conn (consumer group, fetches,
// offsets) sends fixed versions or picks among a few; its Transport (Client,
// Writer) negotiates from the broker's range. cmd/pyramid's
// TestKafkaRequests records what a real run sends and fails when kafka-go
// sends anything Requests does not predict, so a kafka-go upgrade that
// changes a version is caught there.
package kafkaapi

import (
	"fmt"
	"strconv"
	"strings"

	// kafka-go registers its request types with package protocol, whose
	// version ranges Request.Version reads, when it is imported.
	_ "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// API keys of the requests Pyramid sends.
const (
	Produce          int16 = 0
	Fetch            int16 = 1
	ListOffsets      int16 = 2
	Metadata         int16 = 3
	OffsetCommit     int16 = 8
	OffsetFetch      int16 = 9
	FindCoordinator  int16 = 10
	JoinGroup        int16 = 11
	Heartbeat        int16 = 12
	LeaveGroup       int16 = 13
	SyncGroup        int16 = 14
	SaslHandshake    int16 = 17
	ApiVersions      int16 = 18
	CreateTopics     int16 = 19
	DescribeConfigs  int16 = 32
	SaslAuthenticate int16 = 36
)

// Name returns the protocol name of API key k, e.g. "JoinGroup".
func Name(k int16) string { return protocol.ApiKey(k).String() }

// Range is the versions of one API a broker accepts, both ends included.
type Range struct{ Min, Max int16 }

// Has reports whether v lies in r.
func (r Range) Has(v int16) bool { return r.Min <= v && v <= r.Max }

func (r Range) String() string {
	if r.Min > r.Max {
		return "no version"
	}
	if r.Min == r.Max {
		return "v" + strconv.Itoa(int(r.Min))
	}
	return fmt.Sprintf("v%d-%d", r.Min, r.Max)
}

// Versions is a broker's ApiVersions answer: the range of every API key it
// advertises.
type Versions map[int16]Range

// How kafka-go chooses the version of a request.
type choice uint8

const (
	// fixed: kafka-go's Conn sends one version whatever the broker says.
	fixed choice = iota
	// highest: Conn sends the highest of its versions that the broker's
	// maximum reaches; it does not look at the broker's minimum.
	highest
	// negotiated: the Transport (Client, Writer) takes the broker's range
	// and kafka-go's own (protocol.ApiKey.SelectVersion).
	negotiated
)

// Where the request is sent from.
const (
	viaConn      = "kafka-go Conn"
	viaTransport = "kafka-go Transport"
)

// Request is one kind of request Pyramid sends.
type Request struct {
	Key int16
	// Via is the kafka-go code that sends it: Conn or Transport.
	Via string
	// For says what Pyramid sends it for.
	For      string
	how      choice
	versions []int16 // fixed: the one; highest: ascending
}

// Requests is every request Pyramid sends to a user's Kafka cluster, all
// through kafka-go. Pyramid sends nothing through franz-go to a user's
// cluster: kfake is the in-process broker of the demo and the tests, and
// franz-go's client talks to that broker alone.
var Requests = []Request{
	{Key: ApiVersions, Via: viaConn, For: "first request on every connection", how: fixed, versions: []int16{0}},
	{Key: ApiVersions, Via: viaTransport, For: "first request on every connection", how: fixed, versions: []int16{0}},
	{Key: ApiVersions, Via: viaTransport, For: "the start-up version check", how: negotiated},
	{Key: SaslHandshake, Via: viaConn, For: "SASL login (with --kafka-sasl)", how: highest, versions: []int16{0, 1}},
	{Key: SaslAuthenticate, Via: viaConn, For: "SASL login (with --kafka-sasl)", how: fixed, versions: []int16{0}},
	{Key: SaslHandshake, Via: viaTransport, For: "SASL login (with --kafka-sasl)", how: negotiated},
	{Key: SaslAuthenticate, Via: viaTransport, For: "SASL login (with --kafka-sasl)", how: negotiated},
	{Key: Metadata, Via: viaConn, For: "partition leaders; the group's topic partitions", how: highest, versions: []int16{1, 6}},
	{Key: Metadata, Via: viaTransport, For: "start-up and periodic topic checks; producers' partition lookup", how: negotiated},
	{Key: CreateTopics, Via: viaTransport, For: "creating missing internal topics (state, dead letters, alerts, capacity, repartition) at start", how: negotiated},
	{Key: DescribeConfigs, Via: viaTransport, For: "checking the state and dead-letter topics' max.message.bytes at start", how: negotiated},
	{Key: Produce, Via: viaTransport, For: "state changelog, repartition topics, dead letters, alert topics, capacity candidates, `gen --brokers`", how: negotiated},
	{Key: ListOffsets, Via: viaConn, For: "first and last offsets of input and state partitions", how: fixed, versions: []int16{1}},
	{Key: ListOffsets, Via: viaTransport, For: "partition ends for the lag gauges, every few seconds", how: negotiated},
	{Key: Fetch, Via: viaConn, For: "reading input and declared input partitions; restoring state; tailing the capacity topic", how: highest, versions: []int16{2, 5, 10}},
	{Key: FindCoordinator, Via: viaConn, For: "consumer group: finding the coordinator", how: fixed, versions: []int16{0}},
	{Key: JoinGroup, Via: viaConn, For: "consumer group: join", how: highest, versions: []int16{1, 2}},
	{Key: SyncGroup, Via: viaConn, For: "consumer group: assignments", how: fixed, versions: []int16{0}},
	{Key: Heartbeat, Via: viaConn, For: "consumer group: heartbeats", how: fixed, versions: []int16{0}},
	{Key: OffsetFetch, Via: viaConn, For: "consumer group: committed offsets", how: fixed, versions: []int16{1}},
	{Key: OffsetCommit, Via: viaConn, For: "consumer group: committing offsets", how: fixed, versions: []int16{2}},
	{Key: LeaveGroup, Via: viaConn, For: "consumer group: leaving at shutdown", how: fixed, versions: []int16{0}},
	{Key: FindCoordinator, Via: viaTransport, For: "the repartitioner group's coordinator, with the lag refresh (with inputs:)", how: negotiated},
	{Key: OffsetFetch, Via: viaTransport, For: "how far the repartitioner has committed the declared inputs, with the lag refresh (with inputs:)", how: negotiated},
}

// Version returns the version kafka-go sends r at to a broker advertising
// bv, and false when it sends none (kafka-go finds no version in common,
// or a negotiating Transport sees the API missing).
func (r Request) Version(bv Versions) (int16, bool) {
	br, ok := bv[r.Key]
	switch r.how {
	case fixed:
		return r.versions[0], true
	case highest:
		if !ok {
			return -1, false
		}
		for i := len(r.versions) - 1; i >= 0; i-- {
			if r.versions[i] <= br.Max {
				return r.versions[i], true
			}
		}
		return -1, false
	default:
		if !ok {
			return -1, false
		}
		return protocol.ApiKey(r.Key).SelectVersion(br.Min, br.Max), true
	}
}

// Sends describes the versions r can be sent at, for the docs: "v0",
// "v1 or v2 (the highest the broker allows)", "negotiated within
// kafka-go's v0-8".
func (r Request) Sends() string {
	switch r.how {
	case fixed:
		return "v" + strconv.Itoa(int(r.versions[0]))
	case highest:
		vs := make([]string, len(r.versions))
		for i, v := range r.versions {
			vs[i] = "v" + strconv.Itoa(int(v))
		}
		return strings.Join(vs, " or ") + " (the highest the broker allows)"
	default:
		k := protocol.ApiKey(r.Key)
		return fmt.Sprintf("negotiated within kafka-go's %s", Range{k.MinVersion(), k.MaxVersion()})
	}
}

// Accepted is the range of key that a broker advertising bv takes. It is
// the advertised range, except that a broker without Fetch v0-3 (KIP-896
// applied: Kafka 4.0 or later) refuses Produce v0-2 although it still
// advertises them for librdkafka's sake (KAFKA-18659).
func Accepted(bv Versions, key int16) (Range, bool) {
	r, ok := bv[key]
	if ok && key == Produce && r.Min < 3 {
		if f, ok := bv[Fetch]; ok && f.Min >= 4 {
			r.Min = 3
		}
	}
	return r, ok
}
