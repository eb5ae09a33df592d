// Package consumer is the streaming pipeline: it reads CRM events from
// Kafka, scores them with one scoring.Engine per partition number and makes
// the results durable with an exactly-once effect (docs/operations.md,
// "Guarantees").
//
// # Partitions and workers
//
// The input topics are co-partitioned: keyed by account_id, all with the same
// partition count. The consumer group's balancer gives partition p of every
// input topic to the same member, so one worker per partition number sees
// every event of its accounts, in log order per topic-partition.
//
// # Where things are
//
// The pieces follow goka's: a partition's table apart from the processor
// that feeds it, and both apart from the flush that makes results durable.
//
//   - pipeline.go: Pipeline, one member of the consumer group: start-up
//     checks, the group loop, one worker per assigned partition number.
//   - partition.go: worker, one partition number's processor: restore, the
//     event loop, applying and dead-lettering events.
//   - state.go: state, the partition's accounts: engine, restore from and
//     encoding into the changelog, offsets already applied, changed accounts.
//   - validate.go: the checks a message passes before it joins the merge.
//   - positions.go: the highest source position read per source partition
//     of the repartitioned events, which drops the copies a repartitioner
//     crash writes, and what each source partition still holds, which
//     keeps a history arriving through the repartitioner on the backfill
//     clock; copartition.go: native events in the partition the
//     configured partitioner gives their account, when inputs are declared.
//   - merge.go: merger, the event-time merge of the partition's topics.
//   - clock.go: the evaluation clock, wall clock or backfill.
//   - flush.go: sealing a flush into a job, writing it (sink, changelog,
//     offsets), and the one goroutine that writes the sink.
//   - kafka.go: the changelog read at restore. Fetching, and the flush's
//     produces and commits (through kafkaio.Writer, which tests wrap), are
//     kafkaio's.
//   - freeze.go: keeping every state record within the state topic's
//     max.message.bytes, read at start (topicconfig.go): frozen accounts.
//   - lag.go: the lag gauges, refreshed on their own schedule.
//   - capacity.go, ranking.go: capped tiers ranked across partitions
//     through the capacity topic, and a worker's part in the ranking.
//   - commit.go, topics.go, versions.go, balancer.go, gauges.go,
//     options.go: merged offset commits, the topic
//     layout, the brokers' API versions, the co-partitioning balancer, the
//     per-tier gauges, the options.
//
// # State and delivery
//
// A worker's accounts live in memory and in the compacted changelog topic
// (partition p of the changelog for input partition p), one record per
// account: a header with, per input topic, the last offset whose effect the
// record includes, then scoring.MarshalAccount's bytes. A flush (on size, on
// interval, in the next Options.CaughtUpFlush slot once the partition has
// applied all of its input, or at shutdown) makes things durable in this
// order:
//
//  1. dead letters to the DLQ topic and the batch (newest snapshot of every
//     changed account, tier changes, alerts) to the sink;
//  2. the changelog records of the changed accounts (acks=all);
//  3. the input offsets, committed through the group generation.
//
// A crash between any two steps loses nothing: the next owner restores the
// accounts from the changelog and re-reads from the committed offset, and an
// event at or below an account's recorded offset is skipped, so nothing is
// applied twice. Rows written to the sink twice carry the same
// (account_id, version) and collapse there.
//
// The repartition topics (package repartition) are inputs like the others,
// but their events can arrive twice at different offsets: the
// repartitioner commits a declared input after writing its events, and a
// crash between the two writes them again. Their records carry their
// source position; the partition keeps the highest read per source
// partition, in a record of the changelog written after the accounts'
// records of every flush, and skips any event at or below it.
//
// # Dead letters
//
// An event that cannot be applied (bad input as docs/events.md describes
// it, an occurred_at more than 24 h after the wall clock, a message without
// a key or keyed by something else than its account_id, or an event the
// engine refuses: a limit, the figure bound) goes to the dead-letter topic
// with its original key and value and the headers pyramid-error (one line a person can act on),
// pyramid-reason (the metric label, e.g. unknown_stage) and pyramid-source
// (topic/partition/offset). An event too large for the topic keeps its
// first 64 KiB and gets pyramid-truncated (the original size). The rules
// that need no account state are checked as a fetch response is queued,
// before the event-time merge (validate.go): a rejected message takes no
// part in the order or the clock.
//
// # Limits
//
// Kafka-go has no transactions, so a member that lost its membership without
// noticing (a long GC pause past the session timeout) could still write a
// stale changelog record. Commits of an ended generation are refused by the
// broker, and the next flush of the new owner supersedes the record.
//
// Partitions added to an input topic while running would send accounts to
// partition numbers whose state lives elsewhere; the pipeline checks the
// layout every Options.LayoutCheckInterval and stops with an error instead.
package consumer
