// Package repartition brings the declared inputs (the `inputs:` section of
// the configuration: Debezium change streams and Kafka Connect topics,
// keyed by their own primary keys, with any partition count) to the
// pipeline: it maps every record onto Pyramid's events (package inputs)
// and writes them, keyed by account_id, to the internal topics
// pyramid.repartition.<type>, which the pipeline then consumes like native
// input topics. It is Kafka Streams' repartition step: a sub-topology of
// its own, with its own consumer group (the pipeline's group +
// ".repartition") and internal topics with the partition count of the
// native inputs, so that an account's mapped events meet its native ones
// in one partition number.
//
// # Order and delivery
//
// Each assigned source partition is repartitioned by one task (task.go):
// fetch, map and write run at once, but writes go in rounds, one at a
// time, so each source partition's events keep their order in every
// repartition partition. A source offset is committed only after every
// event (and dead letter) of the records before it was acknowledged with
// acks=all. A crash between the two writes those records again when the
// next owner re-reads them; every repartitioned record carries its source
// position (kafkaio.Source), and since each source partition's events are
// written in order, the pipeline drops an event at or below the highest
// position it read from that source partition. The same holds across
// rebalances: an owner stops writing before the group moves its
// partitions, and what it wrote without committing is written again and
// dropped downstream.
//
// The tasks' records meet in lanes (lane.go), one per repartition
// partition, which write them in event-time order across the source
// partitions of an input, each source partition's in its order: one
// account's events come from many source partitions, and the pipeline
// applies a topic in log order. Every record also says how many records
// its source partition still held (the pipeline backfills at the events'
// own clocks while any is left).
//
// # Bad records
//
// A record that cannot be mapped is dead-lettered to pyramid.dlq with the
// headers of every dead letter (kafkaio.DeadLetter), in the same round as
// the events around it, so its offset is committed only once it is there.
//
// # Partitioning
//
// An account's events go to the partition the configuration's partitioner:
// picks for its account_id (murmur2 by default, the Java client's), which
// the producers of the native topics must use too (docs/events.md).
package repartition
