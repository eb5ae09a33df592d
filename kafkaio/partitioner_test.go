package kafkaio

import (
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

// The partitions of known keys under the Java client's murmur2 and
// librdkafka's CRC32 partitioners, computed outside Go with each client's
// formula: (murmur2(key) & 0x7fffffff) % n, a port of Kafka's
// Utils.murmur2, and zlib.crc32(key) % n.
func TestPartitioner(t *testing.T) {
	m, c := NewPartitioner(config.PartitionerMurmur2, 12), NewPartitioner(config.PartitionerCRC32, 12)
	for _, tc := range []struct {
		key         string
		murmur, crc int
	}{
		{"acc-000001", 2, 6},
		{"A-1", 3, 4},
		{"x", 10, 3},
	} {
		if got := m.Partition([]byte(tc.key)); got != tc.murmur {
			t.Errorf("murmur2 %q = %d, want %d", tc.key, got, tc.murmur)
		}
		if got := c.Partition([]byte(tc.key)); got != tc.crc {
			t.Errorf("crc32 %q = %d, want %d", tc.key, got, tc.crc)
		}
	}
}
