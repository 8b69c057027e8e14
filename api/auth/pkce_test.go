package auth_test

import (
	"strings"
	"testing"

	"github.com/iam-project/iam/api/auth"
)

// RFC 7636 Appendix B.
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestS256Challenge_RFC7636(t *testing.T) {
	if got := auth.S256Challenge(rfcVerifier); got != rfcChallenge {
		t.Fatalf("got %q, want %q", got, rfcChallenge)
	}
}

func TestVerifyPKCE(t *testing.T) {
	long := strings.Repeat("a", 128)
	for _, tc := range []struct {
		name, verifier, challenge, method string
		want                              bool
	}{
		{"rfc vector", rfcVerifier, rfcChallenge, "S256", true},
		{"max length", long, auth.S256Challenge(long), "S256", true},
		{"plain refused", rfcVerifier, rfcVerifier, "plain", false},
		{"empty method refused", rfcVerifier, rfcVerifier, "", false},
		{"lowercase method", rfcVerifier, rfcChallenge, "s256", false},
		{"wrong verifier", strings.Replace(rfcVerifier, "d", "e", 1), rfcChallenge, "S256", false},
		{"wrong challenge", rfcVerifier, strings.Replace(rfcChallenge, "E", "F", 1), "S256", false},
		{"padded challenge", rfcVerifier, rfcChallenge + "=", "S256", false},
		{"too short", rfcVerifier[:42], auth.S256Challenge(rfcVerifier[:42]), "S256", false},
		{"too long", long + "a", auth.S256Challenge(long + "a"), "S256", false},
		{"bad char", rfcVerifier[:42] + "+", auth.S256Challenge(rfcVerifier[:42] + "+"), "S256", false},
		{"empty", "", auth.S256Challenge(""), "S256", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := auth.VerifyPKCE(tc.verifier, tc.challenge, tc.method); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
