package event

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// kind is the JSON kind of a scanned value.
type kind uint8

const (
	kNone kind = iota
	kString
	kNumber
	kBool
	kNull
	kObject
	kArray
)

func (k kind) String() string {
	return [...]string{"nothing", "a string", "a number", "a boolean", "null", "an object", "an array"}[k]
}

// value is one scanned top-level field: its kind and its text (strings
// unescaped; numbers and literals as written), aliasing the input.
type value struct {
	kind kind
	str  string
}

// scanner walks one JSON object without building a tree. Only the top
// level is decoded; nested values of unknown fields are skipped but still
// checked for well-formedness.
type scanner struct {
	b []byte
	i int
}

type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

func (s *scanner) fail(format string, a ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, a...), off: s.i}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object scans a top-level object into the fields of r it knows.
func (s *scanner) object(r *raw) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		if s.i >= len(s.b) {
			return s.fail("empty input")
		}
		return s.fail("expected a JSON object, found %q", s.b[s.i])
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected a field name")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected ':' after field name")
		}
		s.i++
		s.ws()
		v, err := s.value(true)
		if err != nil {
			return err
		}
		if dst := r.field(key); dst != nil {
			*dst = v
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return s.fail("expected ',' or '}', found %q", s.b[s.i])
		}
	}
}

func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("unexpected data after the object")
	}
	return nil
}

// value scans one value; when decode is false nested content is only checked.
func (s *scanner) value(decode bool) (value, error) {
	if s.i >= len(s.b) {
		return value{}, s.fail("unexpected end of input")
	}
	start := s.i
	switch c := s.b[s.i]; {
	case c == '"':
		str, err := s.str()
		return value{kind: kString, str: str}, err
	case c == '-' || (c >= '0' && c <= '9'):
		if err := s.number(); err != nil {
			return value{}, err
		}
		return value{kind: kNumber, str: alias(s.b[start:s.i])}, nil
	case c == 't':
		if err := s.lit("true"); err != nil {
			return value{}, err
		}
		return value{kind: kBool, str: alias(s.b[start:s.i])}, nil
	case c == 'f':
		if err := s.lit("false"); err != nil {
			return value{}, err
		}
		return value{kind: kBool, str: alias(s.b[start:s.i])}, nil
	case c == 'n':
		return value{kind: kNull}, s.lit("null")
	case c == '{':
		return value{kind: kObject}, s.skipComposite(0)
	case c == '[':
		return value{kind: kArray}, s.skipComposite(0)
	default:
		return value{}, s.fail("unexpected character %q", c)
	}
}

func (s *scanner) lit(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.fail("invalid literal")
	}
	s.i += len(w)
	return nil
}

const maxDepth = 64

func (s *scanner) skipComposite(depth int) error {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	open := s.b[s.i]
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		return nil
	}
	for {
		s.ws()
		if open == '{' {
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return s.fail("expected a field name")
			}
			if err := s.skipStr(); err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return s.fail("expected ':'")
			}
			s.i++
			s.ws()
		}
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		switch s.b[s.i] {
		case '{', '[':
			if err := s.skipComposite(depth + 1); err != nil {
				return err
			}
		case '"':
			if err := s.skipStr(); err != nil {
				return err
			}
		default:
			if _, err := s.value(false); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case close:
			s.i++
			return nil
		default:
			return s.fail("expected ',' or %q", close)
		}
	}
}

// number checks the JSON number grammar.
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return s.fail("invalid number")
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.b[s.i] >= '1' && s.b[s.i] <= '9' {
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	} else {
		return s.fail("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			return s.fail("invalid number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		d := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		if s.i == d {
			return s.fail("invalid number")
		}
	}
	return nil
}

// str scans a string and returns it unescaped. The fast path (no escapes,
// ASCII or valid UTF-8) slices the input; escapes go through encoding/json
// so their meaning matches the standard exactly.
// strPlain marks the bytes a string can hold without a closer look: not a
// quote, backslash, control character or non-ASCII byte.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) str() (string, error) {
	start := s.i
	s.i++
	escaped, ascii := false, true
	for s.i < len(s.b) {
		// Skip plain ASCII in a tight loop on locals (kept in registers);
		// most strings are nothing else.
		b, i := s.b, s.i
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		s.i = i
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			raw := s.b[start+1 : s.i-1]
			if !ascii && !utf8.Valid(raw) {
				return "", s.fail("string is not valid UTF-8")
			}
			if !escaped {
				if len(raw) == 0 {
					return "", nil
				}
				// Alias the input: Decode documents that an Event's strings
				// live as long as the input, and the engine copies the few
				// it keeps. This removes most allocations from decoding.
				return unsafe.String(&raw[0], len(raw)), nil
			}
			var out string
			if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
				return "", s.fail("invalid string escape")
			}
			return out, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return "", s.fail("control character in string")
		default: // non-ASCII: validated once the string ends
			ascii = false
			s.i++
		}
	}
	return "", s.fail("unterminated string")
}

func (s *scanner) skipStr() error {
	_, err := s.str()
	return err
}

// alias returns b as a string without copying; see Decoder.Decode.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
