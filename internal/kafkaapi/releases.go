package kafkaapi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kversion"
)

// Removal is a run of old versions of one API that a Kafka release stopped
// accepting.
type Removal struct {
	Key int16
	// Below: versions below it are refused.
	Below int16
	// In is the release that dropped them; Restored, if set, the first
	// release that accepts them again.
	In, Restored string
	// Why cites the decision.
	Why string
}

// Removals is every removal of a client API version up to Kafka 4.3: the
// versions KIP-896 took out of Kafka 4.0.0 (the lower bound of
// "validVersions" in clients/src/main/resources/common/message/*.json at
// the 4.0 tag, as franz-go's kversion tables record them), of which
// KAFKA-19444 gave JoinGroup v0-1 back in 4.0.1 and 4.1.0. Kafka 4.1, 4.2
// and 4.3 removed nothing more. Broker-to-controller APIs are left out: no
// client sends them.
var Removals = []Removal{
	{Key: Produce, Below: 3, In: "4.0.0", Why: "KIP-896; 4.x still advertises v0-2 and refuses them (KAFKA-18659)"},
	{Key: Fetch, Below: 4, In: "4.0.0", Why: "KIP-896"},
	{Key: ListOffsets, Below: 1, In: "4.0.0", Why: "KIP-896"},
	{Key: OffsetCommit, Below: 2, In: "4.0.0", Why: "KIP-896"},
	{Key: OffsetFetch, Below: 1, In: "4.0.0", Why: "KIP-896"},
	{Key: JoinGroup, Below: 2, In: "4.0.0", Restored: "4.0.1", Why: "KIP-896; given back by KAFKA-19444"},
	{Key: CreateTopics, Below: 2, In: "4.0.0", Why: "KIP-896"},
	{Key: 20, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DeleteTopics
	{Key: 23, Below: 2, In: "4.0.0", Why: "KIP-896"}, // OffsetForLeaderEpoch
	{Key: 27, Below: 1, In: "4.0.0", Why: "KIP-896"}, // WriteTxnMarkers
	{Key: 29, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DescribeAcls
	{Key: 30, Below: 1, In: "4.0.0", Why: "KIP-896"}, // CreateAcls
	{Key: 31, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DeleteAcls
	{Key: 32, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DescribeConfigs
	{Key: 34, Below: 1, In: "4.0.0", Why: "KIP-896"}, // AlterReplicaLogDirs
	{Key: 35, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DescribeLogDirs
	{Key: 38, Below: 1, In: "4.0.0", Why: "KIP-896"}, // CreateDelegationToken
	{Key: 39, Below: 1, In: "4.0.0", Why: "KIP-896"}, // RenewDelegationToken
	{Key: 40, Below: 1, In: "4.0.0", Why: "KIP-896"}, // ExpireDelegationToken
	{Key: 41, Below: 1, In: "4.0.0", Why: "KIP-896"}, // DescribeDelegationToken
}

// Releases are the Kafka releases Pyramid is checked against, oldest
// first: the test broker can emulate each (broker.Emulation), and
// docs/operations.md gives the verdict for each.
var Releases = []string{"3.9", "4.0.0", "4.0.1", "4.1", "4.2", "4.3"}

// releaseMax is each release's highest version per API, from franz-go's
// kversion tables (built from real brokers' ApiVersions answers). 4.0.1
// only gave JoinGroup v0-1 back, so its maxima are 4.0.0's.
var releaseMax = map[string]func() *kversion.Versions{
	"3.9":   kversion.V3_9_0,
	"4.0.0": kversion.V4_0_0,
	"4.0.1": kversion.V4_0_0,
	"4.1":   kversion.V4_1_0,
	"4.2":   kversion.V4_2_0,
	"4.3":   kversion.V4_3_0,
}

// MaxVersions returns release rel's highest version of every API it has,
// false for a release not in Releases.
func MaxVersions(rel string) (*kversion.Versions, bool) {
	f, ok := releaseMax[rel]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Advertised returns what a broker of release rel advertises in
// ApiVersions: its maxima, and the minima after Removals.
func Advertised(rel string) Versions {
	bv := Versions{}
	if mv, ok := MaxVersions(rel); ok {
		mv.EachMaxKeyVersion(func(k, v int16) {
			_, adv := MinVersion(k, rel)
			bv[k] = Range{Min: adv, Max: v}
		})
	}
	return bv
}

// MinVersion returns the lowest version of key that release rel accepts,
// as far as Removals knows (0 when nothing was removed), and the lowest it
// advertises in ApiVersions, which is lower for Produce on 4.x.
func MinVersion(key int16, rel string) (accepted, advertised int16) {
	for _, r := range Removals {
		if r.Key == key && r.active(rel) {
			accepted = r.Below
			if key != Produce {
				advertised = r.Below
			}
		}
	}
	return accepted, advertised
}

// active reports whether r applies to release rel.
func (r Removal) active(rel string) bool {
	return compareRelease(rel, r.In) >= 0 && (r.Restored == "" || compareRelease(rel, r.Restored) < 0)
}

// removalOf returns the removal that makes version v of key refused, if
// some release did.
func removalOf(key, v int16) (Removal, bool) {
	for _, r := range Removals {
		if r.Key == key && v < r.Below {
			return r, true
		}
	}
	return Removal{}, false
}

func (r Removal) String() string {
	s := fmt.Sprintf("Kafka %s dropped %s v0-%d (%s)", r.In, Name(r.Key), r.Below-1, r.Why)
	if r.Below == 1 {
		s = fmt.Sprintf("Kafka %s dropped %s v0 (%s)", r.In, Name(r.Key), r.Why)
	}
	if r.Restored != "" {
		s += fmt.Sprintf("; Kafka %s and later accept them again", r.Restored)
	}
	return s
}

// compareRelease compares dotted release numbers; a missing part is 0.
func compareRelease(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
