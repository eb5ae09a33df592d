package consumer

import (
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/repartition"
)

// With declared inputs, an account's mapped events reach the partition
// number the configured partitioner gives its account_id (package
// repartition). Its native events must be in the same one, or a worker
// would see only part of the account, and both parts would be scored
// apart, each wrong. Without declared inputs any partitioner works, as
// long as all native producers use the same one.

// newCopartition returns the partitioner native events must follow, or nil
// when nothing is repartitioned.
func newCopartition(o *Options, partitions int) *kafkaio.Partitioner {
	if len(o.Config.Inputs) == 0 {
		return nil
	}
	return kafkaio.NewPartitioner(o.Config.Partitioner, partitions)
}

// checkPartition refuses a native event whose key the configured
// partitioner puts in another partition than the one it is in. It is one
// of the checks a message passes before it joins the merge (validate.go).
// The repartition topics' events are where the same partitioner put them.
func (w *worker) checkPartition(m *kafka.Message) error {
	if w.hash == nil || len(m.Key) == 0 || strings.HasPrefix(m.Topic, repartition.TopicPrefix) {
		return nil
	}
	if q := w.hash.Partition(m.Key); q != w.part {
		name := w.p.opts.Config.Partitioner
		return &event.Error{Reason: event.ReasonBadKey, Msg: fmt.Sprintf(
			"message key %q is in partition %d of %s, but the %s partitioner puts it in partition %d, where its mapped events go: "+
				"with declared inputs, the producers of native topics must partition by account_id with the hash of partitioner: "+
				"(murmur2: the Java client's default, librdkafka's murmur2_random; crc32: librdkafka's default)",
			trunc(string(m.Key)), w.part, m.Topic, name, q)}
	}
	return nil
}
