// Package money holds exact amounts in integer minor units (cents).
//
// Amounts arrive as JSON decimal literals; they are parsed digit by digit,
// never through float64, and rounded half-to-even to two decimals, so
// 1.015 becomes 1.02 and 1.025 becomes 1.02 exactly as a person would expect
// from the decimal text. Sums are integer sums and never drift.
package money

import (
	"errors"
	"math/big"
	"strconv"
)

// Cents is an amount in minor units of the reporting currency.
type Cents int64

// MaxAbs is the largest accepted absolute amount: 1e13 in major units.
const MaxAbs Cents = 1e15

// FromUnits converts whole major units to Cents.
func FromUnits(u int64) Cents { return Cents(u * 100) }

var (
	errSyntax = errors.New("is not a decimal number")
	errRange  = errors.New("is too large (abs must be <= 1e13)")
)

// Parse reads a JSON number literal (optional sign, digits, optional
// fraction, optional exponent) and rounds it half-to-even to cents.
func Parse(s string) (Cents, error) {
	if c, ok := parsePlain(s); ok {
		return c, nil
	}
	return parseDecimal(s)
}

// parseDecimal is Parse for any JSON number literal.
func parseDecimal(s string) (Cents, error) {
	neg, digits, exp, err := splitDecimal(s)
	if err != nil {
		return 0, err
	}
	// value = digits * 10^exp; we want round(value * 100).
	shift := exp + 2
	// Trim leading zeros so the length check below is meaningful.
	i := 0
	for i < len(digits)-1 && digits[i] == '0' {
		i++
	}
	digits = digits[i:]
	if shift >= 0 {
		if len(digits)+shift > 18 {
			if allZero(digits) {
				return 0, nil
			}
			return 0, errRange
		}
		v, _ := strconv.ParseInt(digits, 10, 64)
		for k := 0; k < shift; k++ {
			v *= 10
		}
		return bound(neg, v)
	}
	// Drop -shift digits, rounding half to even on what was dropped.
	drop := -shift
	var keep, rest string
	if drop >= len(digits) {
		keep, rest = "0", zeros(drop-len(digits))+digits
	} else {
		keep, rest = digits[:len(digits)-drop], digits[len(digits)-drop:]
	}
	if len(keep) > 18 {
		return 0, errRange
	}
	v, _ := strconv.ParseInt(keep, 10, 64)
	switch c := compareHalf(rest); {
	case c > 0, c == 0 && v%2 == 1:
		v++
	}
	return bound(neg, v)
}

func bound(neg bool, v int64) (Cents, error) {
	if Cents(v) > MaxAbs {
		return 0, errRange
	}
	if neg {
		v = -v
	}
	return Cents(v), nil
}

// parsePlain reads the common form exactly, without allocating: optional
// '-', 1 to 13 integer digits, optionally '.' and one or two decimals.
// Anything else is left to the general path.
func parsePlain(s string) (Cents, bool) {
	i, neg := 0, false
	if s != "" && s[0] == '-' {
		i, neg = 1, true
	}
	start := i
	var v int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		v = v*10 + int64(s[i]-'0')
		i++
	}
	if n := i - start; n == 0 || n > 13 { // 13 digits stay below MaxAbs
		return 0, false
	}
	v *= 100
	if i < len(s) && s[i] == '.' {
		i++
		scale := int64(10)
		for k := 0; k < 2 && i < len(s) && s[i] >= '0' && s[i] <= '9'; k++ {
			v += int64(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if scale == 10 { // no decimals after '.'
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	if neg {
		v = -v
	}
	return Cents(v), true
}

// compareHalf compares the fraction 0.rest with one half.
func compareHalf(rest string) int {
	if rest == "" {
		return -1
	}
	if rest[0] < '5' {
		return -1
	}
	if rest[0] > '5' {
		return 1
	}
	for i := 1; i < len(rest); i++ {
		if rest[i] != '0' {
			return 1
		}
	}
	return 0
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

// splitDecimal splits a JSON number into sign, the digits of its mantissa
// without the point, and the power of ten they are scaled by.
func splitDecimal(s string) (neg bool, digits string, exp int, err error) {
	if s == "" {
		return false, "", 0, errSyntax
	}
	i := 0
	if s[0] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[start:i]
	if intPart == "" {
		return false, "", 0, errSyntax
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fs:i]
		if frac == "" {
			return false, "", 0, errSyntax
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		e, perr := strconv.Atoi(s[i:])
		if perr != nil || e > 1000 || e < -1000 {
			return false, "", 0, errSyntax
		}
		exp = e
		i = len(s)
	}
	if i != len(s) {
		return false, "", 0, errSyntax
	}
	digits = intPart + frac
	if len(digits) > 400 {
		return false, "", 0, errSyntax
	}
	return neg, digits, exp - len(frac), nil
}

// ParseRatio reads a decimal literal and rounds it half-to-even to millionths
// (parts per million). It is used for probabilities and exchange rates, which
// the spec does not give as money but which must still combine exactly.
func ParseRatio(s string) (int64, error) {
	// Reuse the cents parser with four extra decimal places.
	neg, digits, exp, err := splitDecimal(s)
	if err != nil {
		return 0, err
	}
	r, err := Parse(joinDecimal(neg, digits, exp+4))
	return int64(r), err
}

func joinDecimal(neg bool, digits string, exp int) string {
	s := digits + "e" + strconv.Itoa(exp)
	if neg {
		return "-" + s
	}
	return s
}

// MulPPM returns c × ppm / 1e6 rounded half-to-even, without overflow.
func MulPPM(c Cents, ppm int64) Cents {
	p := big.NewInt(int64(c))
	p.Mul(p, big.NewInt(ppm))
	q, r := new(big.Int), new(big.Int)
	q.QuoRem(p, big.NewInt(1e6), r)
	// r has the sign of p; compare 2|r| with the divisor.
	r2 := new(big.Int).Abs(r)
	r2.Lsh(r2, 1)
	switch c := r2.Cmp(big.NewInt(1e6)); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if p.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return Cents(q.Int64())
}

// MulPPMSmall is MulPPM for the common case of amounts that fit without
// big-integer arithmetic (|c| < 9.2e12 cents), falling back otherwise.
func MulPPMSmall(c Cents, ppm int64) Cents {
	if c < 0 || c >= 9_000_000_000_000 || ppm < 0 || ppm > 1_000_000 {
		return MulPPM(c, ppm)
	}
	p := int64(c) * ppm
	q, r := p/1_000_000, p%1_000_000
	if 2*r > 1_000_000 || (2*r == 1_000_000 && q%2 == 1) {
		q++
	}
	return Cents(q)
}

// String formats c with two decimals and no grouping: -1234.50.
func (c Cents) String() string {
	return string(c.Append(nil))
}

// Append appends the plain two-decimal form of c to b; it is the form used in
// JSON output, so it never allocates on the hot path.
func (c Cents) Append(b []byte) []byte {
	v := int64(c)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	b = append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
	return b
}

// Grouped formats c for people: 1,120,000.00.
func (c Cents) Grouped() string { return string(c.AppendGrouped(nil)) }

// AppendGrouped appends the grouped form of c to b.
func (c Cents) AppendGrouped(b []byte) []byte {
	v := int64(c)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var digits [24]byte
	whole := strconv.AppendInt(digits[:0], v/100, 10)
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, whole[i])
	}
	return append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
}

// Float returns c in major units as a float64, for ratios only.
func (c Cents) Float() float64 { return float64(c) / 100 }
