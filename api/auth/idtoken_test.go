package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
)

// TestAccessTokenHash: the example of OIDC Core Appendix A.3.
func TestAccessTokenHash(t *testing.T) {
	if got, want := auth.AccessTokenHash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestKeySet_SignIDToken: the claims are written as OIDC names them
// (optional ones omitted when empty), and an ID token never verifies as an
// access token.
func TestKeySet_SignIDToken(t *testing.T) {
	ks := auth.NewKeySet()
	now := time.Now()
	if err := ks.Rotate(now, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := auth.IDClaims{Issuer: "https://iam.example", Subject: "u-1", Audience: "client-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		AuthTime: now.Add(-time.Minute), Nonce: "n", AtHash: "h"}
	tok, err := ks.SignIDToken(c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"iss": c.Issuer, "sub": "u-1", "aud": "client-1", "nonce": "n", "at_hash": "h", "auth_time": float64(c.AuthTime.Unix())} {
		if got[k] != want {
			t.Errorf("%s: got %v, want %v", k, got[k], want)
		}
	}
	for _, k := range []string{"email", "name", "kind", "jti"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s: got %v, want it absent", k, got[k])
		}
	}
	if _, err := ks.Verify(tok, c.Issuer, "client-1", now); !errors.Is(err, auth.ErrTokenClaimsInvalid) {
		t.Errorf("ID token as an access token: got %v, want ErrTokenClaimsInvalid", err)
	}
	if _, err := ks.SignIDToken(auth.IDClaims{Issuer: "x", Subject: "u"}); err == nil {
		t.Error("without audience and times: got a token, want an error")
	}
}
