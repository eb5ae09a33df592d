package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Partitioners: how a producer picks a record's partition from its key.
const (
	PartitionerMurmur2 = "murmur2" // the Java client's default; librdkafka's murmur2_random
	PartitionerCRC32   = "crc32"   // librdkafka's default, consistent_random (kcat, confluent-kafka-go and -python)
)

// Input formats.
const (
	FormatJSON     = "json"     // one JSON object per record, fields at paths
	FormatDebezium = "debezium" // a Debezium change-event envelope
)

// Input declares a topic that does not carry Pyramid's own events: a
// Debezium change stream or a Kafka Connect source connector's topic,
// with any key and any partition count (docs/events.md, "Mapping other
// topics"). Fields maps a Pyramid field name to a dotted path in the record.
type Input struct {
	Topic  string            `yaml:"topic"`
	Format string            `yaml:"format"`
	Type   string            `yaml:"type"`
	Fields map[string]string `yaml:"fields"`
}

// InputField is a Pyramid field an input may map.
type InputField struct {
	Name     string
	Required bool
	Time     bool // a timestamp: $timestamp (the record's time) is allowed
}

// commonFields are mapped for every type.
var commonFields = []InputField{
	{Name: "account_id", Required: true},
	{Name: "occurred_at", Required: true, Time: true},
	{Name: "event_id"},
}

// InputFields lists, per event type, the fields an input of that type may
// map, common ones first. The event schema itself is described in
// docs/events.md; these are its mappable members.
var InputFields = map[string][]InputField{
	"order": append(commonFields[:len(commonFields):len(commonFields)],
		InputField{Name: "order_id", Required: true},
		InputField{Name: "amount", Required: true},
		InputField{Name: "currency"},
		InputField{Name: "opportunity_id"}),
	"opportunity": append(commonFields[:len(commonFields):len(commonFields)],
		InputField{Name: "opportunity_id", Required: true},
		InputField{Name: "stage", Required: true},
		InputField{Name: "amount", Required: true},
		InputField{Name: "probability"},
		InputField{Name: "currency"}),
	"activity": append(commonFields[:len(commonFields):len(commonFields)],
		InputField{Name: "kind", Required: true},
		InputField{Name: "owner_id"}),
	"account": append(commonFields[:len(commonFields):len(commonFields)],
		InputField{Name: "name"},
		InputField{Name: "owner_id"},
		InputField{Name: "wallet"},
		InputField{Name: "tier_override"},
		InputField{Name: "snooze_alerts_until", Time: true},
		InputField{Name: "currency"}),
}

// accountProfile are the account fields that carry something; an account
// input must map at least one.
var accountProfile = []string{"name", "owner_id", "wallet", "tier_override", "snooze_alerts_until"}

// Special paths that do not look into the record's value.
const (
	PathTimestamp = "$timestamp" // the Kafka record's timestamp
	PathKey       = "$key"       // the record key, or $key.a.b inside a JSON key
	ConstPrefix   = "="          // =text is the constant text
)

// InternalTopicPrefix starts every topic Pyramid creates for itself; an
// input may not read one.
const InternalTopicPrefix = "pyramid."

func (c *Config) validateInputs(bad func(path, format string, a ...any)) {
	seen := map[string]int{}
	for i, in := range c.Inputs {
		p := fmt.Sprintf("inputs[%d]", i)
		switch {
		case in.Topic == "":
			bad(p+".topic", "is required")
		case !validTopic(in.Topic):
			bad(p+".topic", "%q is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", in.Topic)
		case strings.HasPrefix(in.Topic, InternalTopicPrefix):
			bad(p+".topic", "%q is one of Pyramid's own topics (%s*)", in.Topic, InternalTopicPrefix)
		}
		if j, dup := seen[in.Topic]; dup && in.Topic != "" {
			bad(p+".topic", "%q is already declared by inputs[%d]", in.Topic, j)
		}
		seen[in.Topic] = i
		if in.Format != FormatJSON && in.Format != FormatDebezium {
			bad(p+".format", "%q must be %s or %s", in.Format, FormatJSON, FormatDebezium)
		}
		fields, ok := InputFields[in.Type]
		if !ok {
			bad(p+".type", "%q must be one of order, opportunity, activity, account", in.Type)
			continue
		}
		byName := map[string]InputField{}
		names := make([]string, len(fields))
		for k, f := range fields {
			byName[f.Name] = f
			names[k] = f.Name
		}
		for _, name := range slices.Sorted(maps.Keys(in.Fields)) {
			fp := p + ".fields." + name
			f, ok := byName[name]
			if !ok {
				bad(fp, "unknown field for type %s; known fields: %s", in.Type, strings.Join(names, ", "))
				continue
			}
			if err := checkPath(in.Fields[name], f.Time); err != "" {
				bad(fp, "%q %s", in.Fields[name], err)
			}
		}
		for _, f := range fields {
			if _, ok := in.Fields[f.Name]; f.Required && !ok {
				bad(p+".fields."+f.Name, "is required for type %s", in.Type)
			}
		}
		if in.Type == "account" {
			mapped := false
			for _, n := range accountProfile {
				_, ok := in.Fields[n]
				mapped = mapped || ok
			}
			if !mapped {
				bad(p+".fields", "an account input must map at least one of %s", strings.Join(accountProfile, ", "))
			}
		}
	}
}

// checkPath returns why path is not a valid field path, or "".
func checkPath(path string, isTime bool) string {
	switch {
	case path == "":
		return "is empty: give a dotted path into the record, such as amount or source.ts_ms"
	case strings.HasPrefix(path, ConstPrefix):
		if len(path) == 1 {
			return "is an empty constant"
		}
		return ""
	case path == PathTimestamp:
		if !isTime {
			return "is the record's time; only a time field can take it"
		}
		return ""
	case path == PathKey:
		return ""
	case strings.HasPrefix(path, PathKey+"."):
		path = path[len(PathKey)+1:]
	case strings.HasPrefix(path, "$"):
		return "is not a known special path ($timestamp, $key, $key.<path>)"
	}
	if len(path) > 1024 {
		return "is longer than 1024 bytes"
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return "has an empty segment (a.b, not a..b or .a)"
		}
	}
	return ""
}

func validTopic(t string) bool {
	if len(t) == 0 || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
