package gen

import (
	"math"
	"strconv"
	"time"
)

// accountID formats account number n as acc-000123.
func accountID(n int) string { return string(appendPad([]byte("acc-"), int64(n), 6)) }

// appendPad appends n in decimal, zero-padded to width digits.
func appendPad(b []byte, n int64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], n, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

func appendOwner(b []byte, owner int) []byte {
	b = append(b, "rep-"...)
	return append(b, byte('0'+owner/10), byte('0'+owner%10))
}

// appendCents appends an amount in cents as a JSON number with at most two
// decimals: 1234.5 is written 1234.50, whole amounts without decimals.
func appendCents(b []byte, c int64) []byte {
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/100, 10)
	if f := c % 100; f != 0 {
		b = append(b, '.', byte('0'+f/10), byte('0'+f%10))
	}
	return b
}

// roundTo rounds v to a positive multiple of unit.
func roundTo(v float64, unit int64) int64 {
	r := int64(math.Round(v/float64(unit))) * unit
	return max(r, unit)
}

// roundCents rounds an amount in cents to a multiple of unit cents, at
// least one unit.
func roundCents(v float64, unit int64) int64 {
	if v > 1e14 {
		v = 1e14
	}
	return roundTo(v, unit)
}

// midnight returns the start of the UTC day of t.
func midnight(t int64) int64 { return t - ((t%day)+day)%day }

// appendTime appends Unix seconds t as RFC 3339 in UTC. Slot times only
// grow, so the date part is cached.
func (g *Generator) appendTime(b []byte, t int64) []byte {
	d := t - ((t%day)+day)%day
	if d != g.dayCache {
		g.dayCache = d
		g.dayStr = time.Unix(d, 0).UTC().AppendFormat(g.dayStr[:0], "2006-01-02T")
	}
	b = append(b, g.dayStr...)
	s := t - d
	h, m, sec := s/3600, s/60%60, s%60
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), 'Z')
}

var (
	namePrefix = [...]string{"North", "South", "East", "West", "Blue", "Red", "Green", "Silver", "Golden", "Iron",
		"Atlas", "Summit", "Harbor", "River", "Lake", "Pine", "Oak", "Cedar", "Granite", "Crystal",
		"Alpine", "Coastal", "Prairie", "Metro", "Union", "Pioneer", "Keystone", "Liberty", "Royal", "Vertex"}
	nameStem = [...]string{"wind", "stone", "field", "bridge", "gate", "point", "brook", "ridge", "view", "line",
		"works", "port", "dale", "crest", "haven", "mark", "star", "wood", "light", "way"}
	nameTrade = [...]string{"Logistics", "Foods", "Manufacturing", "Health", "Energy", "Retail", "Construction",
		"Pharma", "Textiles", "Electronics", "Automotive", "Chemicals", "Hotels", "Packaging", "Engineering",
		"Software", "Plastics", "Furniture", "Paper", "Steel"}
	nameForm = [...]string{"Inc.", "LLC", "Ltd", "GmbH", "S.A.", "B.V.", "AG", "Group", "Co.", "SAS"}
)

// appendName appends a quoted company name chosen by h.
func appendName(b []byte, h uint64) []byte {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	b = append(b, '"')
	b = append(b, namePrefix[h%uint64(len(namePrefix))]...)
	h /= uint64(len(namePrefix))
	b = append(b, nameStem[h%uint64(len(nameStem))]...)
	h /= uint64(len(nameStem))
	b = append(b, ' ')
	b = append(b, nameTrade[h%uint64(len(nameTrade))]...)
	h /= uint64(len(nameTrade))
	b = append(b, ' ')
	b = append(b, nameForm[h%uint64(len(nameForm))]...)
	return append(b, '"')
}
