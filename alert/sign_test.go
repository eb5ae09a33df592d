package alert

import "testing"

func TestSignVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"alert_id":"a1"}`)
	good := Sign(secret, body)
	// Known answer, so receivers in other languages can check theirs:
	// printf '{"alert_id":"a1"}' | openssl dgst -sha256 -hmac s3cret
	const want = "sha256=7a373620b8c545e5cc5075eaeed702d30db7db2acb197c5b882ed7b945eb031e"
	if good != want {
		t.Fatalf("Sign = %s, want %s", good, want)
	}
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		ok     bool
	}{
		{"valid", secret, body, good, true},
		{"wrong secret", []byte("other"), body, good, false},
		{"tampered body", secret, []byte(`{"alert_id":"a2"}`), good, false},
		{"no prefix", secret, body, good[len(SignaturePrefix):], false},
		{"not hex", secret, body, SignaturePrefix + "zz", false},
		{"empty", secret, body, "", false},
		{"upper-case hex", secret, body, SignaturePrefix + upper(good[len(SignaturePrefix):]), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.secret, tt.body, tt.header); got != tt.ok {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, got, tt.ok)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Verify reads a header from outside: it must never panic, and what Sign
// makes it must accept.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("k"), []byte("{}"), "sha256=00")
	f.Add([]byte(""), []byte(""), "")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		Verify(secret, body, header)
		if !Verify(secret, body, Sign(secret, body)) {
			t.Fatal("Verify rejected Sign's own signature")
		}
	})
}
