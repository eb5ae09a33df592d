package inputs

import (
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
)

// conv is how a field's value is read.
type conv uint8

const (
	convText    conv = iota // a string; a number stands for its decimal text (ids are often integers)
	convDecimal             // an amount or ratio: a JSON number, decimal text, or a Connect decimal
	convTime                // a time: text, or an epoch count
)

// special says where a path looks.
type special uint8

const (
	inValue     special = iota // the record's value (row first, then the envelope)
	inKey                      // the record key
	inTimestamp                // the record's timestamp
	inConst                    // a constant
)

// field is one compiled mapping: Pyramid field <- path.
type field struct {
	name     string
	src      string // the path as configured, for messages
	conv     conv
	required bool
	nullable bool // account profile fields: null clears the value
	where    special
	idx      int      // the position in input.fields; -1 for event_id
	names    []string // path segments
	segs     []string // the same, escaped for gjson
	konst    string
}

func newField(def config.InputField, src string) (field, error) {
	name := def.Name
	f := field{name: name, src: src, required: def.Required}
	switch name {
	case "amount", "wallet", "probability":
		f.conv = convDecimal
	case "occurred_at", "snooze_alerts_until":
		f.conv = convTime
	}
	switch name {
	case "name", "owner_id", "wallet", "tier_override", "snooze_alerts_until":
		f.nullable = true
	}
	path := src
	switch {
	case strings.HasPrefix(src, config.ConstPrefix):
		f.where, f.konst = inConst, src[len(config.ConstPrefix):]
		return f, nil
	case src == config.PathTimestamp:
		f.where = inTimestamp
		return f, nil
	case src == config.PathKey:
		f.where = inKey
		return f, nil
	case strings.HasPrefix(src, config.PathKey+"."):
		f.where, path = inKey, src[len(config.PathKey)+1:]
	}
	for _, s := range strings.Split(path, ".") {
		if s == "" {
			return f, fmt.Errorf("fields.%s: %q has an empty segment", name, src)
		}
		f.names = append(f.names, s)
		f.segs = append(f.segs, gjson.Escape(s))
	}
	return f, nil
}

// side is which image of a row a view reads.
type side uint8

const (
	sideRow    side = iota // a plain JSON record: the value is the row
	sideAfter              // Debezium: the row after the change
	sideBefore             // Debezium: the row before the change
)

var sideNames = [...]string{"", "after", "before"}

// view is one record being mapped.
type view struct {
	in        *input
	rec       Record
	doc       *doc
	body      node // the value, unwrapped from the converter's envelope
	hasSchema bool // the converter's schema came with it (in.schemas)
	key       gjson.Result
	row       node // the image fields are read from
	side      side
	op        string
	src       source // where the envelope's source block is, once srcRead
	srcRead   bool
}

// value is one field's value, comparable so that two images can be told
// apart.
type value struct {
	kind valueKind
	text string // vText: the string; vNumber: the JSON number text
	ns   int64  // vTime
}

type valueKind uint8

const (
	vAbsent valueKind = iota
	vNull
	vText
	vNumber
	vTime
)

// seg looks up path segment i of f in n.
func (v *view) seg(n node, f *field, i int) node {
	return v.doc.get(n, f.names[i], f.segs[i])
}

// where names a field's path as read in this view, for messages.
func (v *view) where(f *field) string {
	if f.where == inValue && v.side != sideRow && v.seg(v.row, f, 0).exists() {
		return sideNames[v.side] + "." + f.src
	}
	if f.where == inValue && v.side != sideRow && !v.seg(v.body, f, 0).exists() {
		return sideNames[v.side] + "." + f.src // found nowhere: say where it was expected
	}
	return f.src
}

// lookup finds a field's raw value. A path is read in the row image first
// and, for Debezium, in the envelope when the row has no such column
// (source.ts_ms, ts_ms, op); inRow tells which.
func (v *view) lookup(f *field) (r gjson.Result, inRow bool) {
	switch f.where {
	case inConst:
		return gjson.Result{Type: gjson.String, Str: f.konst, Raw: f.konst}, false
	case inKey:
		r = v.key
		for _, s := range f.segs {
			r = r.Get(s)
		}
		return r, false
	case inTimestamp:
		return gjson.Result{}, false // read by read, not here
	}
	n, inRow := v.seg(v.row, f, 0), true
	if v.side != sideRow && !n.exists() {
		n, inRow = v.seg(v.body, f, 0), false
	}
	for i := 1; i < len(f.names); i++ {
		n = v.seg(n, f, i)
	}
	return n.result(), inRow
}

// logical returns what the converter's schema says about a field's value.
func (v *view) logical(f *field, inRow bool) logical {
	if f.where != inValue || !v.hasSchema {
		return logical{}
	}
	return v.in.schemas.get(v.side, inRow, f)
}

// read converts one field of the current view. Absent and null values of
// required fields are errors; the error names the field and its path.
func (b *builder) read(f *field) (value, error) {
	v := b.v
	if f.where == inTimestamp {
		if v.rec.TimeMs <= 0 {
			return value{}, b.fieldErr(event.ReasonMissingField, f, "the record has no timestamp")
		}
		ns, err := epoch(v.rec.TimeMs, unitMilli)
		if err != "" {
			return value{}, b.fieldErr(event.ReasonInvalidField, f, "the record's timestamp %d %s", v.rec.TimeMs, err)
		}
		return value{kind: vTime, ns: ns}, nil
	}
	r, inRow := v.lookup(f)
	switch {
	case !r.Exists() || r.Type == gjson.Null:
		if f.required {
			hint := ""
			if v.side == sideBefore && v.in.debezium {
				hint = " (a before image holds every column only when the table has REPLICA IDENTITY FULL on Postgres, or binlog_row_image=FULL on MySQL)"
			}
			return value{}, b.fieldErr(event.ReasonMissingField, f, "is %s%s", describe(r), hint)
		}
		if r.Exists() && f.nullable {
			return value{kind: vNull}, nil
		}
		return value{}, nil
	}
	switch f.conv {
	case convDecimal:
		text, err := decimal(r, v.logical(f, inRow))
		if err != "" {
			return value{}, b.fieldErr(event.ReasonInvalidField, f, "%s", err)
		}
		return value{kind: vNumber, text: text}, nil
	case convTime:
		ns, err := timestamp(r, v.logical(f, inRow))
		if err != "" {
			return value{}, b.fieldErr(event.ReasonInvalidField, f, "%s", err)
		}
		return value{kind: vTime, ns: ns}, nil
	}
	switch r.Type {
	case gjson.String:
		return value{kind: vText, text: r.Str}, nil
	case gjson.Number:
		return value{kind: vText, text: r.Raw}, nil
	}
	return value{}, b.fieldErr(event.ReasonInvalidField, f, "must be a string or a number, not %s", describe(r))
}

// fieldErr is a rejection that names the field and the path it came from.
func (b *builder) fieldErr(reason string, f *field, format string, a ...any) error {
	return b.v.in.errorf(reason, "%s <- %s: %s", f.name, b.v.where(f), fmt.Sprintf(format, a...))
}

// newVals returns room for the values of every mapped field, valid until
// the next record.
func (b *builder) newVals() []value {
	n, m := len(b.v.in.fields), b.m
	if cap(m.vals)-len(m.vals) < n {
		m.vals = make([]value, 0, 4*n) // what is handed out stays valid
	}
	vals := m.vals[len(m.vals) : len(m.vals)+n]
	m.vals = m.vals[:len(m.vals)+n]
	clear(vals)
	return vals
}

// fields reads every mapped field of the current view, in order.
func (b *builder) fields() ([]value, error) {
	in := b.v.in
	vals := b.newVals()
	for i := range in.fields {
		val, err := b.read(&in.fields[i])
		if err != nil {
			return nil, err
		}
		vals[i] = val
	}
	return vals, nil
}

// appendValue writes one value as JSON.
func appendValue(dst []byte, val value, negate bool) []byte {
	switch val.kind {
	case vNull:
		return append(dst, "null"...)
	case vText:
		return gjson.AppendJSONString(dst, val.text)
	case vNumber:
		if negate {
			return appendNegated(dst, val.text)
		}
		return append(dst, val.text...)
	case vTime:
		dst = append(dst, '"')
		dst = time.Unix(0, val.ns).UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	return dst
}

// appendNegated writes the negation of a JSON number.
func appendNegated(dst []byte, num string) []byte {
	if strings.HasPrefix(num, "-") {
		return append(dst, num[1:]...)
	}
	dst = append(dst, '-') // -0 is a valid amount
	return append(dst, num...)
}
