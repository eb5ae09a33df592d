package alert

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignaturePrefix starts every X-Pyramid-Signature value, naming the
// algorithm as GitHub's X-Hub-Signature-256 does.
const SignaturePrefix = "sha256="

// Sign returns the X-Pyramid-Signature value for body: "sha256=" followed by
// the lowercase hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return SignaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header is a valid signature of body under secret.
// It compares in constant time, so receivers can use it as is.
func Verify(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, SignaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
