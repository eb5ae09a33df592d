// Parsers of single fields: amounts and currencies, ids and names, times.

package event

import (
	"errors"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/pyramid-crm/pyramid/money"
)

func (d *Decoder) amount(v, cur value, signed bool, fail func(string, string, ...any) error) (money.Cents, error) {
	switch v.kind {
	case kNone, kNull:
		return 0, fail(ReasonMissingField, "amount is required")
	case kNumber:
	default:
		return 0, fail(ReasonInvalidField, "amount must be a number, not %s", v.kind)
	}
	c, err := money.Parse(v.str)
	if err != nil {
		return 0, fail(ReasonInvalidField, "amount %s %v", v.str, err)
	}
	if !signed && c < 0 {
		return 0, fail(ReasonInvalidField, "amount %s must be >= 0", v.str)
	}
	return d.convert(c, cur, fail)
}

func (d *Decoder) convert(c money.Cents, cur value, fail func(string, string, ...any) error) (money.Cents, error) {
	switch cur.kind {
	case kNone, kNull:
		return c, nil
	case kString:
	default:
		return 0, fail(ReasonInvalidField, "currency must be a string, not %s", cur.kind)
	}
	if cur.str == d.currency {
		return c, nil
	}
	rate, ok := d.fx[cur.str]
	if !ok {
		return 0, fail(ReasonUnknownCurrency, "currency %q has no rate in fx_rates (reporting currency %s)", trunc(cur.str), d.currency)
	}
	out, ok := mulRate(c, rate)
	if !ok || out > money.MaxAbs || out < -money.MaxAbs {
		return 0, fail(ReasonInvalidField, "amount %s %s is too large once converted to %s", c, cur.str, d.currency)
	}
	return out, nil
}

// mulRate returns c × rate rounded half-to-even, and false when the result
// does not fit in an int64.
func mulRate(c money.Cents, rate *big.Rat) (money.Cents, bool) {
	n := new(big.Int).Mul(big.NewInt(int64(c)), rate.Num())
	den := rate.Denom()
	q, r := new(big.Int).QuoRem(n, den, new(big.Int))
	r.Abs(r).Lsh(r, 1)
	if cmp := r.Cmp(den); cmp > 0 || cmp == 0 && q.Bit(0) == 1 {
		q.Add(q, big.NewInt(int64(n.Sign())))
	}
	if !q.IsInt64() {
		return 0, false
	}
	return money.Cents(q.Int64()), true
}

// optID reads an optional id: absent or null gives "", a string must
// satisfy idLen.
func optID(name string, v value, fail func(string, string, ...any) error) (string, error) {
	switch v.kind {
	case kNone, kNull:
		return "", nil
	case kString:
		return v.str, idLen(name, v.str, fail)
	}
	return "", fail(ReasonInvalidField, "%s must be a string, not %s", name, v.kind)
}

// idLen enforces the 1..MaxIDLen bytes of every string id.
func idLen(name, s string, fail func(string, string, ...any) error) error {
	if n := len(s); n == 0 || n > MaxIDLen {
		return fail(ReasonInvalidField, "%s must be 1 to %d bytes, not %d", name, MaxIDLen, n)
	}
	return nil
}

// nameLen enforces the MaxNameLen bytes of names and free text.
func nameLen(name, s string, fail func(string, string, ...any) error) error {
	if n := len(s); n > MaxNameLen {
		return fail(ReasonInvalidField, "%s must be at most %d bytes, not %d", name, MaxNameLen, n)
	}
	return nil
}

func strField(name string, v value, fail func(string, string, ...any) error) (Field[string], error) {
	switch v.kind {
	case kNone:
		return Field[string]{}, nil
	case kNull:
		return Field[string]{Set: true, Null: true}, nil
	case kString:
		return Field[string]{Set: true, V: v.str}, nil
	}
	return Field[string]{}, fail(ReasonInvalidField, "%s must be a string or null, not %s", name, v.kind)
}

// ParseTime reads a time as events carry it (RFC 3339, between the years
// 2000 and 2200) as Unix nanoseconds.
func ParseTime(s string) (int64, error) { return parseTime(s) }

func parseTime(s string) (int64, error) {
	if n, ok := parseTimeFast(s); ok {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, errors.New("is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)")
	}
	n := t.UnixNano()
	if n < minTime || t.Year() < 2000 {
		return 0, errors.New("is before the year 2000")
	}
	if n > maxTime || t.Year() >= 2200 {
		return 0, errors.New("is after the year 2200")
	}
	return n, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// trunc keeps echoed values short enough for a log line or a header.
func trunc(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseTimeFast handles the common forms 2006-01-02T15:04:05Z and
// 2006-01-02T15:04:05.999999999Z (one to nine decimals) without the
// general parser; anything else (offsets, bad input) falls back.
func parseTimeFast(s string) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return 0, false
	}
	var frac int64
	switch n := len(s) - 21; {
	case n == -1: // no fraction
	case n >= 1 && n <= 9 && s[19] == '.':
		for _, c := range []byte(s[20 : len(s)-1]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			frac = frac*10 + int64(c-'0')
		}
		for range 9 - n {
			frac *= 10
		}
	default:
		return 0, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 2000 || year >= 2200 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 || hour < 0 || minute < 0 || sec < 0 {
		return 0, false
	}
	if day > daysIn(year, month) { // 2026-02-30: let time.Parse reject it
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return secs*int64(time.Second) + frac, true
}

// daysIn returns the number of days in a month of a Gregorian year.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts the days from 1970-01-01 to a date of a year >= 0
// (Howard Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12 // March = 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
