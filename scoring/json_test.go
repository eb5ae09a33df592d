package scoring

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendString must produce JSON that decodes back to the same string.
func TestAppendStringRoundTrips(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 日本", "\u2028\u2029", strings.Repeat("a", 1000) + "\"", "bad \xff utf8"}
	for _, s := range cases {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = strings.ToValidUTF8(s, "\ufffd")
		}
		if got != want {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\n")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
