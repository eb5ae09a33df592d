package repartition

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/inputs"
	"github.com/pyramid-crm/pyramid/kafkaio"
)

// TopicPrefix starts the name of every repartition topic:
// pyramid.repartition.<type> carries the mapped events of one event type.
const TopicPrefix = config.InternalTopicPrefix + "repartition."

// Topic names the repartition topic of events of type t.
func Topic(t event.Type) string { return TopicPrefix + t.String() }

// Topics returns the repartition topics of cfg's declared inputs, one per
// event type they map to, sorted; none without declared inputs.
func Topics(cfg *config.Config) []string {
	seen := map[string]bool{}
	for _, in := range cfg.Inputs {
		seen[TopicPrefix+in.Type] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// layout is what Prepare learned about the topics.
type layout struct {
	partitions    int            // of the repartition topics
	dlqPartitions int            // of the dead-letter topic
	sources       map[string]int // partition count of each declared input
}

// LayoutError is a topic layout the repartitioner refuses to run with:
// retrying does not help, someone must change the topics.
type LayoutError struct{ msg string }

func (e *LayoutError) Error() string { return e.msg }

func layoutErrorf(format string, args ...any) error {
	return &LayoutError{fmt.Sprintf(format, args...)}
}

// checkTopics checks the declared inputs exist, chooses the partition count
// of the repartition topics and creates those that are missing, with the
// dead-letter topic when it is missing too.
//
// The count is the native input topics' (they must be co-partitioned with
// the repartition topics); without native topics, that of existing
// repartition topics, else of the state topic, else the largest count of
// the declared inputs, as Kafka Streams sizes its repartition topics.
func checkTopics(ctx context.Context, cl *kafka.Client, o *Options, m *inputs.Mapper) (layout, error) {
	lay := layout{sources: map[string]int{}}
	sources := m.Topics()
	slices.Sort(sources)
	internal := Topics(o.Config)
	all := slices.Concat(o.NativeTopics, sources, internal, []string{o.StateTopic, o.DLQ})
	resp, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: all})
	if err != nil {
		return lay, fmt.Errorf("reading topic metadata from %s: %w", cl.Addr, err)
	}
	counts := map[string]int{}
	for _, t := range resp.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				continue
			}
			return lay, fmt.Errorf("reading metadata of topic %s: %w", t.Name, t.Error)
		}
		counts[t.Name] = len(t.Partitions)
	}
	var missing []string
	for _, t := range sources {
		n, ok := counts[t]
		if !ok {
			missing = append(missing, t)
		}
		lay.sources[t] = n
	}
	if len(missing) > 0 {
		return lay, layoutErrorf("declared input topic(s) %s do not exist: start their connector (or create them) before Pyramid, or remove them from inputs:", strings.Join(missing, ", "))
	}

	why := ""
	for _, t := range o.NativeTopics {
		if n, ok := counts[t]; ok {
			lay.partitions, why = n, "the native input topic "+t
			break
		}
	}
	for _, t := range append(slices.Clone(internal), o.StateTopic) {
		if n, ok := counts[t]; ok && lay.partitions == 0 {
			lay.partitions, why = n, "the existing topic "+t
		}
	}
	if lay.partitions == 0 {
		for _, t := range sources {
			if n := counts[t]; n > lay.partitions {
				lay.partitions, why = n, "the declared input "+t+", the largest"
			}
		}
	}
	for _, t := range internal {
		if n, ok := counts[t]; ok && n != lay.partitions {
			return lay, layoutErrorf("repartition topic %s has %d partitions, but it must have as many as %s (%d), so that an account's mapped events meet its native ones in one partition number. Stop Pyramid, let it finish what %s holds (or accept re-reading the declared inputs: reset group %q to the earliest offsets), delete %s and start again; Pyramid recreates it",
				t, n, why, lay.partitions, t, o.Group+GroupSuffix, t)
		}
	}

	rf := min(max(len(resp.Brokers), 1), 3)
	var create []kafka.TopicConfig
	for _, t := range append(slices.Clone(internal), o.DLQ) {
		if _, ok := counts[t]; !ok {
			tc := kafka.TopicConfig{Topic: t, NumPartitions: lay.partitions, ReplicationFactor: rf}
			if t == o.DLQ { // as the pipeline creates it
				tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: kafkaio.MaxMessageBytesConfig, ConfigValue: strconv.Itoa(kafkaio.DeadLettersMaxMessageBytes)}}
			}
			create = append(create, tc)
		}
	}
	if len(create) > 0 {
		cr, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
		if err != nil {
			return lay, fmt.Errorf("creating topics: %w", err)
		}
		names := make([]string, len(create))
		for i, c := range create {
			names[i] = c.Topic
			if err := cr.Errors[c.Topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
				return lay, fmt.Errorf("creating topic %s: %w", c.Topic, err)
			}
		}
		o.Logger.Info("created internal topics", "topics", names, "partitions", lay.partitions, "because", why)
		if err := waitTopics(ctx, cl, names); err != nil {
			return lay, err
		}
		for _, t := range names {
			counts[t] = lay.partitions
		}
	}
	lay.dlqPartitions = counts[o.DLQ]
	return lay, nil
}

// waitTopics waits until topics show in metadata, so that the first
// produce does not race their creation.
func waitTopics(ctx context.Context, cl *kafka.Client, topics []string) error {
	for i := 0; i < 50; i++ {
		resp, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err == nil {
			ok := 0
			for _, t := range resp.Topics {
				if t.Error == nil && len(t.Partitions) > 0 {
					ok++
				}
			}
			if ok == len(topics) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("topics %s do not show in the metadata 5 s after their creation", strings.Join(topics, ", "))
}
