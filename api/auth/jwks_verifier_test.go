package auth_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
)

func signer(t *testing.T, now time.Time) *auth.KeySet {
	t.Helper()
	ks := auth.NewKeySet()
	if err := ks.Rotate(now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return ks
}

func claimsAt(now time.Time) auth.Claims {
	return auth.Claims{Issuer: "http://iam.test", Subject: "app-1", Audience: "iam", ID: "t1",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Kind: auth.KindApp, Realm: "r1", Position: 7}
}

func TestKeySetFromJWKS(t *testing.T) {
	now := time.Now()
	ks := signer(t, now)
	tok, err := ks.Sign(claimsAt(now))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.KeySetFromJWKS(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok, "http://iam.test", "iam", now)
	if err != nil || c.Subject != "app-1" || c.Position != 7 {
		t.Fatalf("verify: got %+v, %v, want app-1 at position 7", c, err)
	}
	if _, err := v.Sign(claimsAt(now)); !errors.Is(err, auth.ErrNoSigningKey) {
		t.Fatalf("sign with a verify-only set: got %v, want ErrNoSigningKey", err)
	}
	other := signer(t, now)
	forged, _ := other.Sign(claimsAt(now))
	if _, err := v.Verify(forged, "http://iam.test", "iam", now); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Fatalf("verify a token of another key: got %v, want ErrTokenUnknownKey", err)
	}
	for _, bad := range []string{`{`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"k"}]}`} {
		if _, err := auth.KeySetFromJWKS([]byte(bad)); err == nil {
			t.Errorf("KeySetFromJWKS(%s): got no error, want one", bad)
		}
	}
}

func TestRemoteKeySet_Verify(t *testing.T) {
	now := time.Now()
	ks := signer(t, now)
	var fetches atomic.Int32
	var down atomic.Bool
	r := &auth.RemoteKeySet{MinRefresh: time.Hour, Fetch: func(context.Context) ([]byte, error) {
		fetches.Add(1)
		if down.Load() {
			return nil, errors.New("hub unreachable")
		}
		return ks.JWKS(), nil
	}}
	tok, _ := ks.Sign(claimsAt(now))
	if _, err := r.Verify(tok, "http://iam.test", "iam", now); err != nil {
		t.Fatalf("first verify: %v", err)
	}
	// A key rotated in at the issuer is fetched on its first token (by a
	// set whose last fetch is older than MinRefresh).
	if err := ks.Rotate(now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	tok2, _ := ks.Sign(claimsAt(now))
	fresh := &auth.RemoteKeySet{Fetch: r.Fetch}
	if _, err := fresh.Verify(tok2, "http://iam.test", "iam", now); err != nil {
		t.Fatalf("verify with a new key: %v", err)
	}
	if _, err := r.Verify(tok2, "http://iam.test", "iam", now); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Fatalf("unknown kid within MinRefresh: got %v, want ErrTokenUnknownKey without a fetch", err)
	}
	// Forged kids do not make it fetch more than once per MinRefresh.
	n := fetches.Load()
	for range 5 {
		_, _ = r.Verify(tok2, "http://iam.test", "iam", now)
	}
	if got := fetches.Load(); got != n {
		t.Fatalf("fetches: got %d, want %d (rate-limited)", got, n)
	}
	// While the issuer is unreachable, cached keys keep verifying.
	down.Store(true)
	if _, err := r.Verify(tok, "http://iam.test", "iam", now); err != nil {
		t.Fatalf("verify with a cached key while the issuer is down: %v", err)
	}
	cold := &auth.RemoteKeySet{Fetch: r.Fetch}
	if _, err := cold.Verify(tok, "http://iam.test", "iam", now); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("verify with no keys and the issuer down: got %v, want ErrKeysUnavailable", err)
	}
}
