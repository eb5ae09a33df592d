package event

import (
	"unicode/utf8"
	"unsafe"
)

// Members are an event's top-level members given as values instead of
// JSON text, for code that writes events rather than reads them (the
// inputs mapper): Build validates them as DecodeTo validates the JSON
// object that holds the same members in the same order, without reading
// that text back. Set them in the order they are written: a name given
// twice keeps the later value, as in DecodeTo.
//
// The answer is DecodeTo's only when the JSON text reads back as these
// values: every string valid UTF-8, every number in JSON's grammar, and
// the text within MaxSize. Exact reports the first two; a caller that
// cannot vouch for all three decodes the text instead.
type Members struct {
	r       raw
	inexact bool
}

// Reset forgets every member.
func (m *Members) Reset() { *m = Members{} }

// String sets a string member; s is the string itself, not JSON text.
func (m *Members) String(name, s string) {
	if !utf8.ValidString(s) {
		m.inexact = true
	}
	m.set(name, kString, s)
}

// Number sets a number member from its JSON text.
func (m *Members) Number(name, text string) {
	if !IsNumber(text) {
		m.inexact = true
	}
	m.set(name, kNumber, text)
}

// Bool sets a true or false member.
func (m *Members) Bool(name string, b bool) {
	text := "false"
	if b {
		text = "true"
	}
	m.set(name, kBool, text)
}

// Null sets a null member.
func (m *Members) Null(name string) { m.set(name, kNull, "null") }

func (m *Members) set(name string, k kind, s string) {
	if slot := m.r.field(name); slot != nil {
		*slot = value{kind: k, str: s}
	}
}

// Exact reports whether every string set is valid UTF-8 and every number
// is in JSON's grammar: whether the JSON written from the members reads
// back as them.
func (m *Members) Exact() bool { return !m.inexact }

// Build validates m into *ev, which it overwrites, as DecodeTo validates
// the JSON object of the same members (see Members for when the two
// agree). ev's strings alias the members' strings.
func (d *Decoder) Build(m *Members, ev *Event) error {
	*ev = Event{}
	return d.build(&m.r, ev)
}

// IsNumber reports whether s is a number in JSON's grammar.
func IsNumber(s string) bool {
	if s == "" {
		return false
	}
	// The scanner only reads b.
	sc := scanner{b: unsafe.Slice(unsafe.StringData(s), len(s))}
	return sc.number() == nil && sc.i == len(s)
}
