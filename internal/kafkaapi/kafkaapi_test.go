package kafkaapi

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// kafka40 is what Kafka 4.0.0 advertises for the APIs Pyramid uses.
func kafka40() Versions {
	return Versions{
		Produce: {0, 12}, Fetch: {4, 17}, ListOffsets: {1, 10}, Metadata: {0, 13},
		OffsetCommit: {2, 9}, OffsetFetch: {1, 9}, FindCoordinator: {0, 6}, JoinGroup: {2, 9},
		Heartbeat: {0, 4}, LeaveGroup: {0, 5}, SyncGroup: {0, 5}, SaslHandshake: {0, 1},
		ApiVersions: {0, 4}, CreateTopics: {2, 7}, SaslAuthenticate: {0, 2}, DescribeConfigs: {1, 4},
	}
}

func TestVersionFollowsKafkaGo(t *testing.T) {
	find := func(key int16, via string) Request {
		for _, r := range Requests {
			if r.Key == key && r.Via == via {
				return r
			}
		}
		t.Fatalf("no %s request via %s", Name(key), via)
		return Request{}
	}
	tests := []struct {
		name  string
		r     Request
		bv    Versions
		want  int16
		sends bool
	}{
		{"fixed whatever the broker says", find(Heartbeat, viaConn), Versions{Heartbeat: {3, 4}}, 0, true},
		{"fixed, API not advertised", find(OffsetCommit, viaConn), Versions{}, 2, true},
		{"highest the maximum reaches", find(JoinGroup, viaConn), Versions{JoinGroup: {2, 9}}, 2, true},
		{"highest, old broker", find(JoinGroup, viaConn), Versions{JoinGroup: {0, 1}}, 1, true},
		{"highest ignores the minimum", find(Fetch, viaConn), Versions{Fetch: {11, 18}}, 10, true},
		{"highest, nothing in reach", find(Fetch, viaConn), Versions{Fetch: {0, 1}}, -1, false},
		{"negotiated: kafka-go's maximum", find(Produce, viaTransport), Versions{Produce: {0, 13}}, 8, true},
		{"negotiated: the broker's maximum", find(Produce, viaTransport), Versions{Produce: {0, 5}}, 5, true},
		{"negotiated, not advertised", find(CreateTopics, viaTransport), Versions{}, -1, false},
	}
	for _, tt := range tests {
		got, sends := tt.r.Version(tt.bv)
		if got != tt.want || sends != tt.sends {
			t.Errorf("%s: Version = %d, %v; want %d, %v", tt.name, got, sends, tt.want, tt.sends)
		}
	}
}

func TestCheck(t *testing.T) {
	if p := Check(kafka40()); len(p) > 0 {
		t.Errorf("Kafka 4.0.0's ranges: %v", p)
	}
	tests := []struct {
		name string
		edit func(Versions)
		want []string // in the one problem's message
	}{
		{"a broker that makes kafka-go send JoinGroup v1 to 4.0.0", func(bv Versions) { bv[JoinGroup] = Range{2, 1} },
			[]string{"refuses JoinGroup v1", "consumer group: join", "Kafka 4.0.0 dropped JoinGroup v0-1 (KIP-896", "upgrade the brokers to Kafka 4.0.1 or later"}},
		{"a removal no release made", func(bv Versions) { bv[Heartbeat] = Range{1, 4} },
			[]string{"refuses Heartbeat v0", "(it accepts v1-4)", "no Kafka release up to 4.3 dropped that version"}},
		{"an API missing", func(bv Versions) { delete(bv, CreateTopics) },
			[]string{"does not offer CreateTopics", "creating missing internal topics"}},
		{"a broker too old", func(bv Versions) { bv[OffsetFetch] = Range{0, 0} },
			[]string{"refuses OffsetFetch v1", "older than any Kafka release Pyramid supports"}},
		{"Produce v0-2 are advertised but refused on 4.x", func(bv Versions) { bv[Produce] = Range{0, 2} },
			[]string{"refuses Produce v2", "(it accepts no version)", "Kafka 4.0.0 dropped Produce v0-2"}},
		{"kafka-go has no version in reach", func(bv Versions) { bv[Fetch] = Range{0, 1} },
			[]string{"accepts Fetch v0-1", "kafka-go can send none of those (v2 or v5 or v10"}},
	}
	for _, tt := range tests {
		bv := kafka40()
		tt.edit(bv)
		p := Check(bv)
		if len(p) != 1 {
			t.Errorf("%s: %d problems, want 1: %v", tt.name, len(p), p)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(p[0].Error(), w) {
				t.Errorf("%s: %q does not say %q", tt.name, p[0].Error(), w)
			}
		}
	}
}

func TestMinVersion(t *testing.T) {
	tests := []struct {
		key                  int16
		rel                  string
		accepted, advertised int16
	}{
		{JoinGroup, "3.9", 0, 0},
		{JoinGroup, "4.0.0", 2, 2},
		{JoinGroup, "4.0.1", 0, 0},
		{JoinGroup, "4.1", 0, 0},
		{OffsetCommit, "3.9", 0, 0},
		{OffsetCommit, "4.0.0", 2, 2},
		{OffsetCommit, "4.3", 2, 2},
		{Fetch, "4.2", 4, 4},
		{Produce, "3.9", 0, 0},
		{Produce, "4.1", 3, 0},
		{Heartbeat, "4.3", 0, 0},
	}
	for _, tt := range tests {
		acc, adv := MinVersion(tt.key, tt.rel)
		if acc != tt.accepted || adv != tt.advertised {
			t.Errorf("MinVersion(%s, %s) = %d, %d; want %d, %d", Name(tt.key), tt.rel, acc, adv, tt.accepted, tt.advertised)
		}
	}
}

func TestEra(t *testing.T) {
	bv := kafka40()
	if got := Era(bv); got != "4.0.0" {
		t.Errorf("Era(4.0.0) = %q", got)
	}
	bv[JoinGroup] = Range{0, 9}
	if got := Era(bv); got != "4.0.1 or later" {
		t.Errorf("Era(4.0.1) = %q", got)
	}
	bv[Fetch] = Range{0, 17}
	if got := Era(bv); got != "before 4.0" {
		t.Errorf("Era(3.9) = %q", got)
	}
}

var update = flag.Bool("update", false, "rewrite the request table in docs/operations.md")

const (
	docsPath   = "../../docs/operations.md"
	tableBegin = "<!-- kafka-requests:begin (generated: go test ./internal/kafkaapi -update) -->\n"
	tableEnd   = "<!-- kafka-requests:end -->\n"
)

// TestDocsTable checks the request inventory in docs/operations.md: the
// table between the markers must be what Requests, Removals and the
// releases' maxima give. -update rewrites it. TestKafkaRequests in
// cmd/pyramid proves that Requests is what a run sends.
func TestDocsTable(t *testing.T) {
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/operations.md has no table between %q and %q", tableBegin, tableEnd)
	}
	want := requestTable()
	got := doc[i+len(tableBegin) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(doc[:i+len(tableBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the request table in docs/operations.md is out of date (go test ./internal/kafkaapi -update); want:\n%s", want)
}

// requestTable renders Requests with, per release, the version kafka-go
// sends, whether the release accepts it, and the range it accepts.
func requestTable() string {
	var b strings.Builder
	b.WriteString("| key | API | kafka-go | sent for | kafka-go sends |")
	for _, rel := range Releases {
		b.WriteString(" Kafka " + rel + " |")
	}
	b.WriteString("\n|---:|---|---|---|---|" + strings.Repeat("---|", len(Releases)) + "\n")
	for _, r := range Requests {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |", r.Key, Name(r.Key), strings.TrimPrefix(r.Via, "kafka-go "), r.For, r.Sends())
		for _, rel := range Releases {
			bv := Advertised(rel)
			acc, _ := Accepted(bv, r.Key)
			v, ok := r.Version(bv)
			switch {
			case !ok:
				b.WriteString(" none ✗ |")
			case r.Key == ApiVersions || acc.Has(v):
				fmt.Fprintf(&b, " v%d ✓ (%s) |", v, acc)
			default:
				fmt.Fprintf(&b, " v%d ✗ (%s) |", v, acc)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
