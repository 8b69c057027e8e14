package auth

import (
	"crypto/rand"
	"encoding/base64"
)

// NewSecret returns 32 bytes (256 bits) from crypto/rand, base64url-encoded
// without padding (43 characters): a client secret, API key or similar bearer
// credential. Store only Hash(secret, ...) of it.
//
// It never begins with "-": one secret in 64 did, and a command line then
// took it for an option (iamctl's shell completion refused
// "--client-secret -x…" as an unknown flag -x). Drawing again when it
// does costs 0.02 of its 256 bits.
func NewSecret() string {
	b := make([]byte, 32)
	for {
		rand.Read(b) // never fails (crypto/rand crashes the program instead)
		if s := base64.RawURLEncoding.EncodeToString(b); s[0] != '-' {
			return s
		}
	}
}

// idAlphabet is RFC 4648 base32, lowercased. 32 symbols divide 256, so taking
// a random byte mod 32 is unbiased.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// NewID returns prefix, a hyphen and n random lowercase base32 characters
// from crypto/rand (5 bits each): NewID("u", 10) is like "u-k3q7mxa2pd". With
// an empty prefix it returns just the n characters. Ids are not secrets, but
// being unguessable they leak nothing about creation order or count; choose n
// for uniqueness (n=16 gives 80 bits). It panics if n < 1.
func NewID(prefix string, n int) string {
	if n < 1 {
		panic("auth.NewID: n must be at least 1")
	}
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	for i := range b {
		b[i] = idAlphabet[b[i]&31]
	}
	if prefix == "" {
		return string(b)
	}
	return prefix + "-" + string(b)
}
