package kafkaio

import (
	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
)

// Partitioner computes the partition a producer using a given hash puts a
// key in: the partitioner: of the configuration.
type Partitioner struct {
	bal   kafka.Balancer
	parts []int // 0 ... n-1
}

// NewPartitioner returns the partitioner named (config.PartitionerMurmur2
// or config.PartitionerCRC32) over n partitions.
func NewPartitioner(name string, n int) *Partitioner {
	p := &Partitioner{parts: make([]int, n)}
	for i := range p.parts {
		p.parts[i] = i
	}
	switch name {
	case config.PartitionerCRC32:
		p.bal = kafka.CRC32Balancer{Consistent: true}
	default:
		p.bal = kafka.Murmur2Balancer{Consistent: true}
	}
	return p
}

// Partition returns key's partition.
func (p *Partitioner) Partition(key []byte) int {
	return p.bal.Balance(kafka.Message{Key: key}, p.parts...)
}
