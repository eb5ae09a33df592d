package inputs

import (
	"math/rand/v2"
	"testing"
)

// The uint64 path of magnitude agrees with big.Int on every length it
// takes, at the edges of each length and in between.
func TestMagnitudeSmallMatchesBig(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var cases [][]byte
	for n := 1; n <= 8; n++ {
		for _, fill := range []byte{0x00, 0xff, 0x80, 0x7f} {
			b := make([]byte, n)
			for i := range b {
				b[i] = fill
			}
			cases = append(cases, b)
			c := append([]byte(nil), b...)
			c[0] ^= 0x80
			cases = append(cases, c)
		}
		for range 2000 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			cases = append(cases, b)
		}
	}
	for _, raw := range cases {
		got, gneg := magnitude(nil, raw)
		want, wneg := magnitudeBig(nil, raw)
		if string(got) != string(want) || gneg != wneg {
			t.Fatalf("% x: %s %v, big.Int says %s %v", raw, got, gneg, want, wneg)
		}
	}
}
