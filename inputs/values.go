package inputs

import (
	"bytes"
	"encoding/base64"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/event"
)

// decimal returns an amount or ratio as JSON number text, or why it is not
// one. It reads a JSON number as written; decimal text (Debezium's
// decimal.handling.mode=string); Debezium's precise mode and the Connect
// Decimal type (base64 of the big-endian two's-complement unscaled value,
// the scale in the schema); and VariableScaleDecimal ({"scale", "value"}).
// Debezium's double mode is a JSON number.
func decimal(r gjson.Result, l logical) (string, string) {
	switch r.Type {
	case gjson.Number:
		return r.Raw, ""
	case gjson.String:
		if l.name == connectDecimal || l.typ == "bytes" {
			if !l.hasScale {
				return "", "the schema of this decimal has no parameters.scale"
			}
			return unscaled(r.Str, l.scale)
		}
		if isDecimalText(r.Str) {
			return r.Str, ""
		}
		if l.typ == "" && looksBase64(r.Str) {
			return "", quote(r.Str) + " looks like Debezium's precise decimal (base64) but the record has no schema to give its scale: " +
				"enable the converter's schemas (value.converter.schemas.enable=true) or set decimal.handling.mode=string"
		}
		return "", quote(r.Str) + " is not a decimal number"
	}
	if r.IsObject() {
		scale, val := r.Get("scale"), r.Get("value")
		if scale.Type == gjson.Number && val.Type == gjson.String {
			n, err := strconv.Atoi(scale.Raw)
			if err != nil || n < -100 || n > 100 {
				return "", "the scale " + trunc(scale.Raw) + " of a variable-scale decimal is out of range"
			}
			return unscaled(val.Str, n)
		}
	}
	return "", "must be a number or a decimal, not " + describe(r)
}

// unscaled decodes a Connect decimal: base64 bytes, a big-endian two's
// complement integer, divided by 10^scale.
func unscaled(b64 string, scale int) (string, string) {
	var room [48]byte
	raw, ok := decode64(room[:0], b64)
	if !ok || len(raw) == 0 {
		return "", quote(b64) + " is not a base64 decimal"
	}
	if len(raw) > 64 {
		return "", "the decimal is " + strconv.Itoa(len(raw)) + " bytes; at most 64 are read"
	}
	var num [160]byte
	digits, neg := magnitude(num[:0], raw)
	var out [200]byte
	text := out[:0]
	if neg {
		text = append(text, '-')
	}
	switch {
	case scale > 0:
		if pad := scale + 1 - len(digits); pad > 0 { // at least one digit before the point
			digits = append(num[:pad], digits...)
			for i := range pad {
				digits[i] = '0'
			}
		}
		text = append(text, digits[:len(digits)-scale]...)
		text = append(text, '.')
		text = append(text, digits[len(digits)-scale:]...)
	case scale < 0:
		text = append(text, digits...)
		for range -scale {
			text = append(text, '0')
		}
	default:
		text = append(text, digits...)
	}
	return string(text), ""
}

// magnitude appends the absolute value of a big-endian two's complement
// integer in decimal to dst, and tells whether it is negative. Up to 8
// bytes (any amount a CRM keeps) it works in a uint64, without allocating.
func magnitude(dst, raw []byte) ([]byte, bool) {
	if len(raw) > 8 {
		return magnitudeBig(dst, raw)
	}
	neg := raw[0]&0x80 != 0
	var u uint64
	for _, c := range raw {
		u = u<<8 | uint64(c)
	}
	if neg {
		u |= ^uint64(0) << (8 * len(raw)) // sign-extend; a no-op for 8 bytes
		u = -u                            // the magnitude, by two's complement
	}
	return strconv.AppendUint(dst, u, 10), neg
}

func magnitudeBig(dst, raw []byte) ([]byte, bool) {
	n := new(big.Int).SetBytes(raw)
	neg := raw[0]&0x80 != 0
	if neg { // subtract 2^(8·len)
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	return n.Abs(n).Append(dst, 10), neg
}

// decode64 appends the bytes of standard base64, padded or not, to dst.
func decode64(dst []byte, s string) ([]byte, bool) {
	n := base64.RawStdEncoding.DecodedLen(len(s)) + 3 // room for either
	if cap(dst)-len(dst) < n {
		dst = make([]byte, 0, len(dst)+n)
	}
	buf := dst[len(dst) : len(dst)+n]
	k, err := base64.StdEncoding.Decode(buf, []byte(s))
	if err != nil {
		k, err = base64.RawStdEncoding.Decode(buf, []byte(s))
	}
	return dst[:len(dst)+k], err == nil
}

// isDecimalText accepts the JSON number grammar: what Debezium's string
// mode writes, and nothing a float parser would also take (NaN, 0x1p3).
func isDecimalText(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == d {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s) && len(s) <= 64
}

func looksBase64(s string) bool {
	if len(s) == 0 || len(s)%4 != 0 {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// Epoch units.
type unit int64

const (
	unitDay   unit = unit(24 * time.Hour)
	unitSec   unit = unit(time.Second)
	unitMilli unit = unit(time.Millisecond)
	unitMicro unit = unit(time.Microsecond)
	unitNano  unit = 1
)

// The accepted range of times, as for native events: 2000 to 2200.
var (
	minNs = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	maxNs = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// epoch converts a count of units since 1970 to Unix ns in range.
func epoch(n int64, u unit) (int64, string) {
	if n < minNs/int64(u) || n >= maxNs/int64(u) {
		return 0, "is not a time between the years 2000 and 2200"
	}
	return n * int64(u), ""
}

// unitByMagnitude reads an epoch count whose unit nobody named: between
// 2000 and 2200 the ranges of days, seconds, milli-, micro- and
// nanoseconds do not overlap, so the size of the number tells its unit.
func unitByMagnitude(n int64) (unit, bool) {
	for _, u := range []unit{unitDay, unitSec, unitMilli, unitMicro, unitNano} {
		if n >= minNs/int64(u) && n < maxNs/int64(u) {
			return u, true
		}
	}
	return 0, false
}

// timestamp returns a time as Unix ns, or why it is not one. Text may be
// RFC 3339 (Debezium's ZonedTimestamp and isostring mode), a date-time
// without a zone (taken as UTC), or a date. A number is an epoch count in
// the unit its logical type names (Debezium's Timestamp, MicroTimestamp,
// NanoTimestamp, Date; Connect's Timestamp, Date), else in the unit its
// size implies.
func timestamp(r gjson.Result, l logical) (int64, string) {
	var count string
	switch r.Type {
	case gjson.Number:
		count = r.Raw
	case gjson.String:
		s := r.Str
		if strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' }) < 0 && s != "" {
			count = s
			break
		}
		if ns, err := event.ParseTime(s); err == nil { // the common case, quickly
			return ns, ""
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
			"2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				if t.Year() < 2000 || t.Year() >= 2200 {
					return 0, quote(s) + " is not between the years 2000 and 2200"
				}
				return t.UnixNano(), ""
			}
		}
		return 0, quote(s) + " is not a timestamp (RFC 3339, e.g. 2026-03-01T12:00:00Z, or an epoch count)"
	default:
		return 0, "must be a timestamp string or an epoch number, not " + describe(r)
	}
	n, err := strconv.ParseInt(count, 10, 64)
	if err != nil {
		return 0, trunc(count) + " is not a whole epoch count"
	}
	var u unit
	switch l.name {
	case dbzTimestamp, connectTimestamp:
		u = unitMilli
	case dbzMicroTs:
		u = unitMicro
	case dbzNanoTs:
		u = unitNano
	case dbzDate, connectDate:
		u = unitDay
	default:
		var ok bool
		if u, ok = unitByMagnitude(n); !ok {
			return 0, trunc(count) + " is not an epoch time between the years 2000 and 2200 (in days, seconds, milli-, micro- or nanoseconds)"
		}
	}
	ns, msg := epoch(n, u)
	if msg != "" {
		return 0, trunc(count) + " " + msg + " (" + l.name + ")"
	}
	return ns, ""
}

func quote(s string) string { return strconv.Quote(trunc(s)) }

// whyNotJSON says why a record the scanner refused is not JSON.
func whyNotJSON(b []byte) string {
	if msg := checkJSON(b); msg != "" {
		return msg
	}
	return "malformed JSON"
}

// intOf is a JSON number as gjson's Int reads it, for a Result whose Num
// was not filled in (node.result).
func intOf(r gjson.Result) int64 {
	if n, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
		return n
	}
	r.Num, _ = strconv.ParseFloat(r.Raw, 64)
	return r.Int()
}

// checkJSON returns why b is not one well-formed JSON value, or "". It
// bounds nesting first, as the event decoder does, so that a hostile
// record cannot make the validator recurse a million levels deep.
func checkJSON(b []byte) string {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Jump to the closing quote: one that is not escaped.
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return "malformed JSON"
				}
				i += j + 1
				k := i - 1
				for k >= 0 && b[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		case '{', '[':
			if depth++; depth > 64 {
				return "nesting deeper than 64 levels"
			}
		case '}', ']':
			depth--
		}
	}
	if !gjson.ValidBytes(b) {
		return "malformed JSON"
	}
	return ""
}
