package inputs

// What the JSON converter's schema says about a field: its logical type
// (which tells a decimal's scale and an epoch count's unit), remembered
// while a table's schema stays the same.

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Kafka Connect and Debezium logical type names (the schema's "name").
const (
	connectDecimal   = "org.apache.kafka.connect.data.Decimal"
	variableDecimal  = "io.debezium.data.VariableScaleDecimal"
	connectTimestamp = "org.apache.kafka.connect.data.Timestamp"
	connectDate      = "org.apache.kafka.connect.data.Date"
	dbzTimestamp     = "io.debezium.time.Timestamp"      // epoch milliseconds
	dbzMicroTs       = "io.debezium.time.MicroTimestamp" // epoch microseconds
	dbzNanoTs        = "io.debezium.time.NanoTimestamp"  // epoch nanoseconds
	dbzDate          = "io.debezium.time.Date"           // days since the epoch
	dbzZonedTs       = "io.debezium.time.ZonedTimestamp" // ISO-8601 text
)

// logical is what a field's schema says about its value.
type logical struct {
	name     string // the logical type name, or ""
	typ      string // the schema type: bytes, int64, string, struct...
	scale    int
	hasScale bool
}

// schemaCache remembers what the converter's schema says about each mapped
// field. A connector sends the same schema with every record of a table
// until the table changes, and walking it for every field of every record
// would cost more than all the rest of the mapping; the cache is dropped
// whenever a record brings a different schema. It keeps a copy of the
// schema: the record's bytes belong to the caller.
type schemaCache struct {
	raw    string       // the schema, as written
	schema gjson.Result // raw's gjson view
	types  []cached     // per field, side and place (slot)
}

type cached struct {
	l  logical
	ok bool
}

// known returns the schema when a record may skip checking it again: an
// object, which ends where its bytes say.
func (c *schemaCache) known() string {
	if strings.HasPrefix(c.raw, "{") {
		return c.raw
	}
	return ""
}

// use makes schema the one the cache answers for; nfields is the number
// of mapped fields.
func (c *schemaCache) use(schema string, nfields int) {
	if c.types != nil && schema == c.raw {
		return
	}
	c.raw = strings.Clone(schema)
	c.schema = looseNode(c.raw).result()
	if n := nfields * 3 * 2; cap(c.types) >= n {
		c.types = c.types[:n]
		clear(c.types)
	} else {
		c.types = make([]cached, n)
	}
}

// slot numbers the cache entry of a field read on side s, in the row
// image or in the envelope.
func slot(f *field, s side, inRow bool) int {
	i := (f.idx*3 + int(s)) * 2
	if inRow {
		i++
	}
	return i
}

// get resolves field f, read in the row image (inRow) or the envelope.
func (c *schemaCache) get(s side, inRow bool, f *field) logical {
	i := -1
	if f.idx >= 0 {
		i = slot(f, s, inRow)
		if e := c.types[i]; e.ok {
			return e.l
		}
	}
	sch := c.schema
	if s != sideRow && inRow {
		sch = member(sch, sideNames[s])
	}
	for _, n := range f.names {
		sch = member(sch, n)
	}
	l := readLogical(sch)
	if i >= 0 {
		c.types[i] = cached{l, true}
	}
	return l
}

// member returns the schema of member name of a struct schema s.
func member(s gjson.Result, name string) gjson.Result {
	if !s.IsObject() {
		return gjson.Result{}
	}
	var out gjson.Result
	s.Get("fields").ForEach(func(_, f gjson.Result) bool {
		if f.Get("field").Str == name {
			out = f
			return false
		}
		return true
	})
	return out
}

// readLogical reads a field schema's logical type.
func readLogical(s gjson.Result) logical {
	if !s.IsObject() {
		return logical{}
	}
	l := logical{name: s.Get("name").Str, typ: s.Get("type").Str}
	if sc := s.Get("parameters.scale"); sc.Exists() {
		// The JSON converter writes parameters as strings ("2").
		if n, err := strconv.Atoi(strings.TrimSpace(sc.String())); err == nil && n >= -100 && n <= 100 {
			l.scale, l.hasScale = n, true
		}
	}
	return l
}
