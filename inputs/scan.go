package inputs

// One pass over a record's value checks that it is JSON and indexes the
// members of its outer objects (the envelope, the payload, the row images
// and the source block), so that mapping reads each of them without
// searching the record from the top again. A record is mostly the
// converter's schema, the same for every record of a table: a schema
// already seen is passed over by comparing bytes.

import (
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Limits of the scan.
const (
	maxDepth   = 64 // nesting beyond this is rejected, as by the event decoder
	indexLevel = 3  // members of objects this many levels down are indexed
	// maxTape bounds the index kept between records: a record with
	// thousands of columns indexes them, but the memory is not kept.
	maxTape = 4096
	// maxScratch bounds the other buffers kept between records.
	maxScratch = 64 << 10
)

// span is a part of the record, as byte offsets.
type span struct{ from, to int32 }

// entry is one indexed object member.
type entry struct {
	key, val span
	end      int32 // the tape index after this member's indexed descendants
	keyEsc   bool  // the key has escapes: compare it unescaped
	valEsc   bool  // the value is a string with escapes
	indexed  bool  // the value is an object whose members are on the tape
}

// Where a node sits in the index.
const (
	rootAt  = -1 // the top-level object
	noIndex = -2 // a value whose members are not indexed: read it with gjson
)

// node is a value of the record as written, and where its members are.
type node struct {
	raw string // "" when absent
	at  int32
	esc bool // a string with escapes
}

func (n node) exists() bool   { return n.raw != "" }
func (n node) isNull() bool   { return n.raw != "" && n.raw[0] == 'n' }
func (n node) isObject() bool { return n.raw != "" && n.raw[0] == '{' }
func (n node) isString() bool { return n.raw != "" && n.raw[0] == '"' }

// result is the gjson view of n, as gjson.Get would return it: Raw as
// written, Str unescaped.
func (n node) result() gjson.Result { return result(n.raw, n.esc) }

// doc is one record value, checked and indexed.
type doc struct {
	s    string // aliases the record's bytes: valid only during Map
	tape []entry
}

// alias views b as a string without copying. Nothing derived from it may
// outlive the Map call: the caller owns b.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// scan checks b and indexes it. It accepts exactly what gjson.ValidBytes
// accepts with at most maxDepth levels of nesting. knownSchema, when not
// empty, is a top-level "schema" member's value accepted before: a member
// with the same bytes is not checked again.
func (d *doc) scan(b []byte, knownSchema string) bool {
	if cap(d.tape) > maxTape {
		d.tape = nil
	}
	d.s, d.tape = alias(b), d.tape[:0]
	x := scanner{s: d.s, tape: d.tape, schema: knownSchema}
	ok := x.payload()
	d.tape = x.tape
	return ok
}

// root returns the top-level value as gjson.Parse does: an object or an
// array runs to the end of the input, a scalar is the token alone.
func (d *doc) root() node {
	raw := d.s[skipWS(d.s, 0):]
	if raw != "" && raw[0] != '{' && raw[0] != '[' {
		raw = strings.TrimRight(raw, " \t\n\r")
	}
	n := looseNode(raw)
	if n.isObject() {
		n.at = rootAt
	}
	return n
}

// node returns the value of member k.
func (d *doc) node(k int32) node {
	m := &d.tape[k]
	n := node{raw: d.s[m.val.from:m.val.to], at: noIndex, esc: m.valEsc}
	if m.indexed {
		n.at = k
	}
	return n
}

// key returns member k's key, unescaped.
func (d *doc) key(k int32) string {
	m := &d.tape[k]
	raw := d.s[m.key.from:m.key.to]
	if m.keyEsc {
		return gjson.Parse(`"` + raw + `"`).Str
	}
	return raw
}

// keyIs reports whether member k's key is name.
func (d *doc) keyIs(k int32, name string) bool {
	m := &d.tape[k]
	if !m.keyEsc {
		return d.s[m.key.from:m.key.to] == name
	}
	return d.key(k) == name
}

// members returns the tape index of an indexed node's first member and
// the end of its members; first == end when it has none. The next member
// after k is next(k).
func (d *doc) members(n node) (first, end int32) {
	if n.at == rootAt {
		return 0, int32(len(d.tape))
	}
	return n.at + 1, d.tape[n.at].end
}

// next returns the member after k among its siblings.
func (d *doc) next(k int32) int32 { return d.tape[k].end }

// get returns member name of n, the first one when the name repeats, as
// gjson's Get does; esc is name escaped for a gjson path, used when n's
// members are not indexed (n may then be anything gjson can look into).
func (d *doc) get(n node, name, esc string) node {
	if n.at == noIndex {
		return looseNode(n.result().Get(esc).Raw)
	}
	for k, end := d.members(n); k < end; k = d.next(k) {
		if d.keyIs(k, name) {
			return d.node(k)
		}
	}
	return node{at: noIndex}
}

// looseNode is a value found outside the index.
func looseNode(raw string) node {
	return node{raw: raw, at: noIndex, esc: raw != "" && raw[0] == '"' && strings.IndexByte(raw, '\\') >= 0}
}

// result is the gjson view of one well-formed JSON value; esc tells
// whether a string has escapes.
func result(raw string, esc bool) gjson.Result {
	r := gjson.Result{Raw: raw}
	if raw == "" {
		return r
	}
	switch raw[0] {
	case '"':
		r.Type = gjson.String
		if !esc {
			r.Str = raw[1 : len(raw)-1]
		} else {
			r.Str = gjson.Parse(raw).Str
		}
	case 'n':
		r.Type = gjson.Null
	case 't':
		r.Type = gjson.True
	case 'f':
		r.Type = gjson.False
	case '{', '[':
		r.Type = gjson.JSON
	default:
		// Num is left 0: nothing here reads it (see intOf).
		r.Type = gjson.Number
	}
	return r
}

func skipWS(s string, i int) int {
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// scanner checks JSON with gjson's grammar: no UTF-8 check, only JSON's
// four whitespace characters.
type scanner struct {
	s      string
	i      int
	depth  int
	tape   []entry
	schema string
	esc    bool // the last string value had escapes
}

// strPlain marks the bytes a string holds without a closer look.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// payload checks one value surrounded by whitespace, indexing the members
// of a top-level object.
func (x *scanner) payload() bool {
	x.i = skipWS(x.s, 0)
	if !x.value(1) {
		return false
	}
	return skipWS(x.s, x.i) == len(x.s)
}

// value checks the value at x.i; when it is an object and level > 0, its
// members are indexed: they are the tape entries after the member holding
// it, up to that member's end.
func (x *scanner) value(level int) bool {
	if x.i >= len(x.s) {
		return false
	}
	switch c := x.s[x.i]; c {
	case '{':
		return x.object(level)
	case '[':
		return x.array()
	case '"':
		x.i++
		esc, ok := x.str()
		x.esc = esc
		return ok
	case 't':
		return x.lit("true")
	case 'f':
		return x.lit("false")
	case 'n':
		return x.lit("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return x.number()
		}
		return false
	}
}

func (x *scanner) lit(w string) bool {
	if !strings.HasPrefix(x.s[x.i:], w) {
		return false
	}
	x.i += len(w)
	return true
}

// str checks a string whose opening quote is before x.i and moves past
// its closing quote; esc tells whether it has escapes.
func (x *scanner) str() (esc, ok bool) {
	s, i := x.s, x.i
	for {
		for i < len(s) && strPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			return esc, false
		}
		switch s[i] {
		case '"':
			x.i = i + 1
			return esc, true
		case '\\':
			esc = true
			i++
			if i >= len(s) {
				return esc, false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(s)-i < 5 {
					return esc, false
				}
				for _, h := range []byte(s[i+1 : i+5]) {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return esc, false
					}
				}
				i += 5
			default:
				return esc, false
			}
		default: // a control character
			return esc, false
		}
	}
}

func (x *scanner) digits() int {
	n := 0
	for x.i < len(x.s) && x.s[x.i] >= '0' && x.s[x.i] <= '9' {
		x.i++
		n++
	}
	return n
}

// number checks JSON's number grammar.
func (x *scanner) number() bool {
	if x.s[x.i] == '-' {
		x.i++
	}
	if x.i >= len(x.s) {
		return false
	}
	switch c := x.s[x.i]; {
	case c == '0':
		x.i++
	case c >= '1' && c <= '9':
		x.digits()
	default:
		return false
	}
	if x.i < len(x.s) && x.s[x.i] == '.' {
		x.i++
		if x.digits() == 0 {
			return false
		}
	}
	if x.i < len(x.s) && (x.s[x.i] == 'e' || x.s[x.i] == 'E') {
		x.i++
		if x.i < len(x.s) && (x.s[x.i] == '+' || x.s[x.i] == '-') {
			x.i++
		}
		if x.digits() == 0 {
			return false
		}
	}
	return true
}

func (x *scanner) array() bool {
	if x.depth++; x.depth > maxDepth {
		return false
	}
	x.i = skipWS(x.s, x.i+1)
	if x.i < len(x.s) && x.s[x.i] == ']' {
		x.i++
		x.depth--
		return true
	}
	for {
		if !x.value(0) {
			return false
		}
		if done, ok := x.sep(']'); !ok || done {
			return ok
		}
	}
}

// sep reads what follows a value inside a container that end closes: a
// comma, after which another value follows, or end, which closes it (done).
// ok is false for anything else.
func (x *scanner) sep(end byte) (done, ok bool) {
	x.i = skipWS(x.s, x.i)
	if x.i >= len(x.s) {
		return false, false
	}
	switch x.s[x.i] {
	case ',':
		x.i = skipWS(x.s, x.i+1)
		return false, true
	case end:
		x.i++
		x.depth--
		return true, true
	}
	return false, false
}

func (x *scanner) object(level int) bool {
	if x.depth++; x.depth > maxDepth {
		return false
	}
	x.i = skipWS(x.s, x.i+1)
	if x.i < len(x.s) && x.s[x.i] == '}' {
		x.i++
		x.depth--
		return true
	}
	for {
		if x.i >= len(x.s) || x.s[x.i] != '"' {
			return false
		}
		x.i++
		kfrom := x.i
		kesc, ok := x.str()
		if !ok {
			return false
		}
		kto := x.i - 1
		x.i = skipWS(x.s, x.i)
		if x.i >= len(x.s) || x.s[x.i] != ':' {
			return false
		}
		x.i = skipWS(x.s, x.i+1)
		vfrom := x.i
		k := int32(noIndex)
		if level > 0 {
			k = int32(len(x.tape))
			x.tape = append(x.tape, entry{key: span{int32(kfrom), int32(kto)}, keyEsc: kesc})
		}
		next := 0
		if level > 0 && level < indexLevel {
			next = level + 1
		}
		switch {
		case x.i < len(x.s) && x.s[x.i] == '"': // the most common value, without the detour through value
			x.i++
			if x.esc, ok = x.str(); !ok {
				return false
			}
		case level == 1 && x.schema != "" && !kesc && x.s[kfrom:kto] == "schema" && strings.HasPrefix(x.s[x.i:], x.schema):
			x.i += len(x.schema) // checked when it was first seen, in the same place
			next = 0
		default:
			if !x.value(next) {
				return false
			}
		}
		if k >= 0 {
			m := &x.tape[k]
			m.val, m.end = span{int32(vfrom), int32(x.i)}, int32(len(x.tape))
			m.indexed = next > 0 && x.s[vfrom] == '{'
			m.valEsc = x.s[vfrom] == '"' && x.esc
		}
		if done, ok := x.sep('}'); !ok || done {
			return ok
		}
	}
}
