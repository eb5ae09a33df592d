// Package inputs maps the records of declared foreign topics — Debezium
// change streams and Kafka Connect source connectors' JSON — onto
// Pyramid's own events, as the `inputs:` section of the configuration
// declares (docs/events.md, "Mapping other topics").
//
// Map turns one Kafka record into zero or more native event documents, each
// with the account_id to re-key it by: the same JSON a producer of native
// events would write, validated by the event decoder before it leaves, so
// what comes out is exactly what the native pipeline accepts. A record that
// cannot be mapped is an *event.Error whose message names the Pyramid
// field and the path it was read from; a tombstone (null value) and a
// Debezium truncate or message event map to nothing, without an error.
//
// Every mapped event gets a deterministic event_id derived from where the
// change sits in the source database's log (see appendEventID), so a connector
// that re-emits changes after a restart, at new Kafka offsets, produces the
// same ids again and each change is applied once.
package inputs

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
)

// Record is one Kafka record of a declared input.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	TimeMs    int64 // the record's timestamp in Unix milliseconds ($timestamp); 0 when unknown
}

// Event is one mapped event: a native event document and the account it
// belongs to, the key to re-partition it by.
type Event struct {
	AccountID  string
	JSON       []byte
	OccurredAt int64 // Unix nanoseconds, as event.Event has it
}

// Mapper maps the records of every declared input. It is not safe for
// concurrent use: make one per goroutine (New is cheap).
type Mapper struct {
	inputs map[string]*input
	dec    *event.Decoder
	// Scratch reused from record to record, so that mapping allocates
	// little more than the events it returns.
	ev      event.Event   // for validation
	members event.Members // the event being written, as values
	doc     doc           // the record's value
	keyDoc  doc           // the record's key
	v       view
	vals    []value // the field values of the images being compared
	id      idParts // what an event id is hashed from
	arena   []byte  // the events of the record being mapped (see newEvent)
}

// input is one compiled declaration.
type input struct {
	topic     string
	debezium  bool
	typ       event.Type
	fields    []field // in the order they are written
	eventID   *field  // the declared event_id, or nil for the default
	occurred  *field
	account   *field
	schemas   schemaCache
	keySchema string // the schema of the last key in the converter's envelope
}

// New compiles the inputs of cfg. cfg must have passed Validate.
func New(cfg *config.Config) (*Mapper, error) {
	m := &Mapper{inputs: map[string]*input{}, dec: event.NewDecoder(cfg)}
	for i, in := range cfg.Inputs {
		c, err := compile(in)
		if err != nil {
			return nil, fmt.Errorf("inputs[%d]: %w", i, err)
		}
		m.inputs[in.Topic] = c
	}
	return m, nil
}

// Topics lists the declared input topics.
func (m *Mapper) Topics() []string {
	out := make([]string, 0, len(m.inputs))
	for t := range m.inputs {
		out = append(out, t)
	}
	return out
}

// Type returns the event type a declared topic maps to, and false for a
// topic that is not declared.
func (m *Mapper) Type(topic string) (event.Type, bool) {
	in, ok := m.inputs[topic]
	if !ok {
		return 0, false
	}
	return in.typ, true
}

func compile(in config.Input) (*input, error) {
	c := &input{topic: in.Topic, debezium: in.Format == config.FormatDebezium}
	switch in.Type {
	case "order":
		c.typ = event.Order
	case "opportunity":
		c.typ = event.Opportunity
	case "activity":
		c.typ = event.Activity
	case "account":
		c.typ = event.Account
	default:
		return nil, fmt.Errorf("type %q is not an event type", in.Type)
	}
	for _, f := range config.InputFields[in.Type] {
		src, ok := in.Fields[f.Name]
		if !ok {
			continue
		}
		fd, err := newField(f, src)
		if err != nil {
			return nil, err
		}
		switch f.Name {
		case "event_id":
			fd.idx = -1
			c.eventID = &fd
			continue
		}
		fd.idx = len(c.fields)
		c.fields = append(c.fields, fd)
	}
	for i := range c.fields {
		switch c.fields[i].name {
		case "occurred_at":
			c.occurred = &c.fields[i]
		case "account_id":
			c.account = &c.fields[i]
		}
	}
	if c.occurred == nil || c.account == nil {
		return nil, fmt.Errorf("account_id and occurred_at must be mapped")
	}
	return c, nil
}

// Map maps one record of a declared input and appends the events it
// produces to out. It appends nothing for a tombstone and for changes that
// mean nothing to Pyramid; an error is an *event.Error for the dead-letter
// topic. Nothing it returns refers to r's memory; the events are the
// mapper's until its next call: copy what you keep.
func (m *Mapper) Map(r Record, out []Event) ([]Event, error) {
	in := m.inputs[r.Topic]
	if in == nil {
		return out, &event.Error{Reason: event.ReasonInvalidField, Msg: fmt.Sprintf("topic %q is not a declared input", r.Topic)}
	}
	if len(r.Value) == 0 {
		return out, nil // a tombstone: log compaction's delete marker
	}
	if len(r.Value) > event.MaxSize || len(r.Key) > event.MaxSize {
		return out, in.errorf(event.ReasonTooLarge, "record is %d bytes (key %d); the limit is %d (1 MiB)", len(r.Value), len(r.Key), event.MaxSize)
	}
	d := &m.doc
	if !d.scan(r.Value, in.schemas.known()) {
		return out, in.errorf(event.ReasonNotJSON, "record value is not JSON: %s", whyNotJSON(r.Value))
	}
	root := d.root()
	if root.isNull() {
		return out, nil
	}
	if !root.isObject() {
		return out, in.errorf(event.ReasonNotJSON, "record value is %s, not a JSON object", describe(root.result()))
	}
	v := &m.v
	*v = view{in: in, rec: r, doc: d, body: root}
	// The JSON converter with schemas.enable wraps everything in
	// {"schema": ..., "payload": ...}.
	if s, p, ok := d.envelope(root); ok {
		v.hasSchema, v.body = true, p
		in.schemas.use(s.raw, len(in.fields))
		if p.isNull() {
			return out, nil
		}
		if !p.isObject() {
			return out, in.errorf(event.ReasonNotJSON, "payload is %s, not a JSON object", describe(p.result()))
		}
	}
	v.key = m.keyDoc.parseKey(r.Key, &in.keySchema)
	m.vals = m.vals[:0]
	if cap(m.arena) > maxScratch || cap(m.id.b) > maxScratch { // one huge record does not stay in memory
		m.arena, m.id.b = nil, nil
	}
	m.arena = m.arena[:0]
	b := builder{m: m, v: v, out: out}
	if in.debezium {
		return b.debezium()
	}
	return b.plain()
}

// envelope splits the JSON converter's {"schema", "payload"} wrapping:
// an object of exactly these two members.
func (d *doc) envelope(root node) (schema, payload node, ok bool) {
	n := 0
	for k, end := d.members(root); k < end; k = d.next(k) {
		if n++; n > 2 {
			return schema, payload, false
		}
		switch d.key(k) {
		case "schema":
			schema = d.node(k)
		case "payload":
			payload = d.node(k)
		}
	}
	return schema, payload, n == 2 && schema.exists() && payload.exists()
}

// parseKey returns the record key as JSON when it is JSON (unwrapping the
// converter's schema envelope), or as a string otherwise. The key's schema
// is remembered in *schema, like the value's.
func (d *doc) parseKey(k []byte, schema *string) gjson.Result {
	if len(k) == 0 {
		return gjson.Result{}
	}
	if d.scan(k, *schema) {
		r := d.root()
		if r.isObject() {
			if s, p, ok := d.envelope(r); ok {
				if s.isObject() && s.raw != *schema {
					*schema = strings.Clone(s.raw)
				}
				return p.result()
			}
		}
		return r.result()
	}
	s := alias(k)
	return gjson.Result{Type: gjson.String, Str: s, Raw: s}
}

// errorf returns a rejection naming the input.
func (in *input) errorf(reason, format string, a ...any) *event.Error {
	return &event.Error{Reason: reason, Msg: in.topic + ": " + fmt.Sprintf(format, a...)}
}

// describe names the JSON kind of r for messages.
func describe(r gjson.Result) string {
	switch {
	case !r.Exists():
		return "absent"
	case r.Type == gjson.Null:
		return "null"
	case r.Type == gjson.String:
		return "a string"
	case r.Type == gjson.Number:
		return "a number"
	case r.Type == gjson.True, r.Type == gjson.False:
		return "a boolean"
	case r.IsArray():
		return "an array"
	}
	return "an object"
}

// trunc keeps echoed values short enough for a header.
func trunc(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
