package consumer

import (
	"maps"
	"slices"
	"sort"

	"github.com/segmentio/kafka-go"
)

// copartitioned assigns partition numbers, not topic-partitions: a member
// gets partition p of every input topic, so one worker sees all events of
// an account whatever topic carries them. It is kafka-go's range strategy
// with the partitions sorted: kafka-go's RangeGroupBalancer ranges over the
// partitions in metadata order, which differs between topics, and so can
// give p of one topic and q of another to the same member.
type copartitioned struct{}

// ProtocolName names the strategy in the group protocol; every member of a
// Pyramid group must offer it.
func (copartitioned) ProtocolName() string { return "pyramid-copartitioned" }

func (copartitioned) UserData() ([]byte, error) { return nil, nil }

func (copartitioned) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	ms := append([]kafka.GroupMember(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	byTopic := map[string]map[int]bool{}
	numbers := map[int]bool{}
	for _, p := range partitions {
		if byTopic[p.Topic] == nil {
			byTopic[p.Topic] = map[int]bool{}
		}
		byTopic[p.Topic][p.ID] = true
		numbers[p.ID] = true
	}
	ids := slices.Sorted(maps.Keys(numbers))
	out := kafka.GroupMemberAssignments{}
	for i, m := range ms {
		a := map[string][]int{}
		lo, hi := i*len(ids)/len(ms), (i+1)*len(ids)/len(ms)
		for _, t := range m.Topics {
			for _, id := range ids[lo:hi] {
				if byTopic[t][id] {
					a[t] = append(a[t], id)
				}
			}
		}
		out[m.ID] = a
	}
	return out
}
