package auth_test

import (
	"encoding/base64"
	"regexp"
	"testing"

	"github.com/iam-project/iam/api/auth"
)

// TestNewSecret: 32 random bytes in 43 characters, never the same, and
// never beginning with "-" (a command line would take it for an option):
// in 5,000 draws, a secret that could begin with "-" would have with
// certainty but for one chance in 10^34.
func TestNewSecret(t *testing.T) {
	seen := make(map[string]bool)
	for range 5000 {
		s := auth.NewSecret()
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 32 || len(s) != 43 {
			t.Fatalf("NewSecret() = %q: got %d bytes, err %v; want 32 bytes in 43 chars", s, len(b), err)
		}
		if s[0] == '-' {
			t.Fatalf("NewSecret() = %q begins with -", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestNewID(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		n      int
		re     string
	}{
		{"u", 10, `^u-[a-z2-7]{10}$`},
		{"app", 16, `^app-[a-z2-7]{16}$`},
		{"", 20, `^[a-z2-7]{20}$`},
		{"x", 1, `^x-[a-z2-7]$`},
	} {
		re := regexp.MustCompile(tc.re)
		seen := make(map[string]bool)
		for range 50 {
			id := auth.NewID(tc.prefix, tc.n)
			if !re.MatchString(id) {
				t.Fatalf("NewID(%q, %d) = %q, want match for %s", tc.prefix, tc.n, id, tc.re)
			}
			seen[id] = true
		}
		if tc.n >= 10 && len(seen) != 50 {
			t.Errorf("NewID(%q, %d): got %d distinct of 50", tc.prefix, tc.n, len(seen))
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewID(u, 0) did not panic")
		}
	}()
	auth.NewID("u", 0)
}
