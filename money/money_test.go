package money

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Cents
		err  bool
	}{
		{"0", 0, false},
		{"1", 100, false},
		{"-1", -100, false},
		{"12.34", 1234, false},
		{"1.005", 100, false},  // half to even: 100.5 -> 100
		{"1.015", 102, false},  // 101.5 -> 102
		{"1.025", 102, false},  // 102.5 -> 102
		{"1.0251", 103, false}, // above half
		{"-1.015", -102, false},
		{"-0.005", 0, false},
		{"0.015", 2, false},
		{"1e2", 10000, false},
		{"1.5E-1", 15, false},
		{"1e13", 1e15, false},
		{"-1e13", -1e15, false},
		{"10000000000000.01", 0, true},
		{"1e14", 0, true},
		{"0e400", 0, false},
		{"00012", 1200, false},
		{"abc", 0, true},
		{"1.", 0, true},
		{".5", 0, true},
		{"", 0, true},
		{"1e", 0, true},
		{"--1", 0, true},
		{"123456789012.345", 12345678901234, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("Parse(%q) err = %v, want err %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseRatio(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0.1", 100000}, {"1", 1000000}, {"0.0000005", 0}, {"0.0000015", 2}, {"0.75", 750000}, {"1.08", 1080000},
	}
	for _, tt := range tests {
		got, err := ParseRatio(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRatio(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestMulPPM(t *testing.T) {
	tests := []struct {
		c    Cents
		ppm  int64
		want Cents
	}{
		{100, 500000, 50},
		{1, 500000, 0},   // 0.5 -> 0 (even)
		{3, 500000, 2},   // 1.5 -> 2
		{5, 500000, 2},   // 2.5 -> 2
		{-3, 500000, -2}, // -1.5 -> -2
		{-5, 500000, -2},
		{1e15, 1000000, 1e15},
		{1e15, 1080000, 108e13},
		{12345, 100000, 1234}, // 1234.5 -> 1234
		{12355, 100000, 1236}, // 1235.5 -> 1236
	}
	for _, tt := range tests {
		if got := MulPPM(tt.c, tt.ppm); got != tt.want {
			t.Errorf("MulPPM(%d, %d) = %d, want %d", tt.c, tt.ppm, got, tt.want)
		}
		if got := MulPPMSmall(tt.c, tt.ppm); got != tt.want {
			t.Errorf("MulPPMSmall(%d, %d) = %d, want %d", tt.c, tt.ppm, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		c             Cents
		plain, people string
	}{
		{0, "0.00", "0.00"},
		{5, "0.05", "0.05"},
		{-5, "-0.05", "-0.05"},
		{112000000, "1120000.00", "1,120,000.00"},
		{-123456789, "-1234567.89", "-1,234,567.89"},
		{100000, "1000.00", "1,000.00"},
		{99999, "999.99", "999.99"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.plain {
			t.Errorf("String(%d) = %q, want %q", tt.c, got, tt.plain)
		}
		if got := tt.c.Grouped(); got != tt.people {
			t.Errorf("Grouped(%d) = %q, want %q", tt.c, got, tt.people)
		}
	}
}

// The allocation-free path agrees with the general parser wherever it
// answers, and declines what it does not handle.
func TestParsePlainMatchesGeneral(t *testing.T) {
	cases := []string{"0", "-0", "1", "12.5", "12.50", "-7.01", "9999999999999.99", "10000000000000", "1.", ".5",
		"1.234", "1e3", "-", "", "00012.30", "1.2.3", "12a", "-12.345"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		s := ""
		if r.IntN(4) == 0 {
			s = "-"
		}
		s += strconv.FormatInt(r.Int64N(int64(1)<<r.IntN(50)), 10)
		switch r.IntN(4) {
		case 1:
			s += "." + strconv.Itoa(r.IntN(10))
		case 2:
			s += fmt.Sprintf(".%02d", r.IntN(100))
		case 3:
			s += fmt.Sprintf(".%03d", r.IntN(1000))
		}
		cases = append(cases, s)
	}
	for _, s := range cases {
		want, werr := parseDecimal(s)
		got, ok := parsePlain(s)
		if ok && (werr != nil || got != want) {
			t.Fatalf("parsePlain(%q) = %d; the general parser gives %d, %v", s, got, want, werr)
		}
		if p, err := Parse(s); p != want || (err == nil) != (werr == nil) {
			t.Fatalf("Parse(%q) = %d, %v; want %d, %v", s, p, err, want, werr)
		}
	}
	for _, s := range []string{"12.5", "-7.01", "9999999999999.99"} {
		if _, ok := parsePlain(s); !ok {
			t.Errorf("parsePlain(%q) declined a plain amount", s)
		}
	}
}
