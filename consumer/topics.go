package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// topicLayout is what start-up learned about the topics.
type topicLayout struct {
	partitions    int // of every input topic and of the changelog
	dlqPartitions int
	// The max.message.bytes of the state and dead-letter topics.
	stateMax, dlqMax int
}

// checkTopics verifies the start-up rules of the topic layout: every input topic exists
// and all have the same partition count. It creates the internal topics that
// are missing: the compacted changelog (as many partitions as the inputs),
// the dead-letter topic and the alert topics, and reads the record size
// limits of the state and dead-letter topics (topicconfig.go; assume: see
// topicLimits).
func checkTopics(ctx context.Context, cl *kafka.Client, opts *Options, assume bool) (topicLayout, error) {
	var lay topicLayout
	internal := []string{opts.Changelog, opts.DLQ, kafkaio.Alerts, kafkaio.AlertsDeadLetters}
	if opts.Config.Capped() {
		internal = append(internal, opts.CapacityTopic)
	}
	all := append(append([]string(nil), opts.Topics...), internal...)
	md, err := metadata(ctx, cl, all)
	if err != nil {
		return lay, err
	}
	var missing []string
	counts := map[int][]string{}
	for _, t := range opts.Topics {
		n, ok := md.partitions[t]
		if !ok {
			missing = append(missing, t)
			continue
		}
		counts[n] = append(counts[n], t)
	}
	if len(missing) > 0 {
		return lay, layoutErrorf("input topic(s) %s do not exist: create them keyed by account_id, all with the same partition count, before starting Pyramid", strings.Join(missing, ", "))
	}
	if len(counts) > 1 {
		var parts []string
		for _, t := range opts.Topics {
			parts = append(parts, fmt.Sprintf("%s has %d", t, md.partitions[t]))
		}
		return lay, layoutErrorf("input topics must have the same partition count so that one account's events meet in one partition number, but %s partitions; repartition them to one count", strings.Join(parts, ", "))
	}
	lay.partitions = md.partitions[opts.Topics[0]]
	if n, ok := md.partitions[opts.Changelog]; ok && n != lay.partitions {
		return lay, layoutErrorf("state topic %s has %d partitions but the input topics have %d: they must match (delete it to rebuild state from the inputs, or recreate it with %d partitions)", opts.Changelog, n, lay.partitions, lay.partitions)
	}

	rf := md.brokers
	if rf > 3 {
		rf = 3
	}
	if rf < 1 {
		rf = 1
	}
	var create []kafka.TopicConfig
	for _, t := range internal {
		if _, ok := md.partitions[t]; ok {
			continue
		}
		tc := kafka.TopicConfig{Topic: t, NumPartitions: lay.partitions, ReplicationFactor: rf}
		switch t {
		case opts.Changelog:
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"},
				{ConfigName: maxMessageBytesConfig, ConfigValue: strconv.Itoa(StateMaxMessageBytes)}}
		case opts.CapacityTopic:
			// One partition, so that every instance reads every entry; the
			// newest per partition number is all that matters.
			tc.NumPartitions = 1
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		case opts.DLQ:
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: maxMessageBytesConfig, ConfigValue: strconv.Itoa(DLQMaxMessageBytes)}}
		}
		create = append(create, tc)
	}
	if len(create) > 0 {
		resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
		if err != nil {
			return lay, fmt.Errorf("creating topics: %w", err)
		}
		for t, err := range resp.Errors {
			if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
				return lay, fmt.Errorf("creating topic %s: %w", t, err)
			}
		}
		names := make([]string, len(create))
		for i, c := range create {
			names[i] = c.Topic
		}
		opts.Logger.Info("created internal topics", "topics", names, "partitions", lay.partitions)
		// Wait until the new topics show in metadata, so the first produce
		// does not race their creation.
		for i := 0; i < 50; i++ {
			md, err = metadata(ctx, cl, all)
			if err == nil && len(md.partitions) == len(all) {
				break
			}
			select {
			case <-ctx.Done():
				return lay, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	lay.dlqPartitions = md.partitions[opts.DLQ]
	if lay.dlqPartitions == 0 {
		lay.dlqPartitions = lay.partitions
	}
	return lay, checkLimits(ctx, cl, opts, &lay, assume)
}

// checkLayout compares the partition counts of the input topics and the
// state topic with lay, the layout at start. Partitions added to an input
// topic send part of its accounts' events to partition numbers whose state
// lives elsewhere, so like Kafka Streams Pyramid cannot go on; the error says
// how to rebuild. An unreachable broker is not a changed layout: it
// returns nil.
func checkLayout(ctx context.Context, cl *kafka.Client, opts *Options, lay topicLayout) error {
	topics := append(append([]string(nil), opts.Topics...), opts.Changelog)
	md, err := metadata(ctx, cl, topics)
	if err != nil {
		return nil
	}
	var changed []string
	for _, t := range topics {
		if n, ok := md.partitions[t]; ok && n != lay.partitions {
			changed = append(changed, fmt.Sprintf("%s now has %d", t, n))
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return layoutErrorf("partitions changed while running: %s, %d at start. Each account's state lives in the partition number its key hashed to, so Pyramid stopped (after a last flush) instead of splitting accounts. To run on the new layout, give every input topic and %s the same count, reset group %q to the earliest offsets and delete %s; Pyramid then rebuilds state from the inputs",
		strings.Join(changed, ", "), lay.partitions, opts.Changelog, opts.Group, opts.Changelog)
}

type metadataInfo struct {
	partitions map[string]int // existing topics only
	brokers    int
}

func metadata(ctx context.Context, cl *kafka.Client, topics []string) (metadataInfo, error) {
	mi := metadataInfo{partitions: map[string]int{}}
	resp, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return mi, fmt.Errorf("reading topic metadata from %s: %w", cl.Addr, err)
	}
	mi.brokers = len(resp.Brokers)
	for _, t := range resp.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				continue
			}
			return mi, fmt.Errorf("reading metadata of topic %s: %w", t.Name, t.Error)
		}
		mi.partitions[t.Name] = len(t.Partitions)
	}
	return mi, nil
}

// layoutError is a topic layout Pyramid refuses to run with; retrying does
// not help.
type layoutError struct{ msg string }

func (e *layoutError) Error() string { return e.msg }

func layoutErrorf(format string, args ...any) error {
	return &layoutError{fmt.Sprintf(format, args...)}
}
