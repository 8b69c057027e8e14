package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// PKCEMethodS256 is the only PKCE code_challenge_method VerifyPKCE accepts.
const PKCEMethodS256 = "S256"

// S256Challenge returns the RFC 7636 S256 code challenge of verifier:
// BASE64URL(SHA256(ASCII(verifier))), without padding.
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// VerifyPKCE reports whether verifier matches challenge under method (RFC 7636
// §4.6). Only "S256" is accepted: "plain" (and an empty method, which RFC
// 7636 treats as plain) is refused, because it offers no protection when the
// challenge leaks. The verifier must be 43–128 characters of
// [A-Za-z0-9-._~] (§4.1). The comparison is constant-time.
func VerifyPKCE(verifier, challenge, method string) bool {
	if method != PKCEMethodS256 || !validVerifier(verifier) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(S256Challenge(verifier)), []byte(challenge)) == 1
}

func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}
