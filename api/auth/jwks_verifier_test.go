package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

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
	r := &auth.RemoteKeySet{MinRefresh: time.Hour, Log: slog.New(slog.DiscardHandler), Fetch: func(context.Context) ([]byte, error) {
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
	fresh := &auth.RemoteKeySet{Fetch: r.Fetch, Log: r.Log}
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
	cold := &auth.RemoteKeySet{Fetch: r.Fetch, Log: r.Log}
	if _, err := cold.Verify(tok, "http://iam.test", "iam", now); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("verify with no keys and the issuer down: got %v, want ErrKeysUnavailable", err)
	}
}

// TestRemoteKeySet_MaxAge: a cached set older than MaxAge is fetched again,
// so a key the issuer dropped stops verifying; a failed fetch keeps the
// cached set and is retried after the back-off; past HardMaxAge an unknown
// kid is refused as unavailable while cached keys keep verifying.
func TestRemoteKeySet_MaxAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	old, cur := signer(t, t0), signer(t, t0)
	var issuer atomic.Pointer[auth.KeySet]
	issuer.Store(old)
	var fetches atomic.Int32
	var down atomic.Bool
	r := &auth.RemoteKeySet{
		MaxAge: 5 * time.Minute, MinRefresh: 10 * time.Second,
		RetryBackOff: backoff.NewConstantBackOff(time.Minute),
		Now:          func() time.Time { return now },
		Log:          slog.New(slog.DiscardHandler),
		Fetch: func(context.Context) ([]byte, error) {
			fetches.Add(1)
			if down.Load() {
				return nil, errors.New("hub unreachable")
			}
			return issuer.Load().JWKS(), nil
		},
	}
	oldTok, _ := old.Sign(claimsAt(t0))
	curTok, _ := cur.Sign(claimsAt(t0))
	verify := func(tok string, at time.Duration) error {
		t.Helper()
		now = t0.Add(at)
		_, err := r.Verify(tok, "http://iam.test", "iam", now)
		return err
	}
	wantFetches := func(step string, want int32) {
		t.Helper()
		if got := fetches.Load(); got != want {
			t.Fatalf("%s: got %d fetches, want %d", step, got, want)
		}
	}

	if err := verify(oldTok, 0); err != nil {
		t.Fatalf("first verify: %v", err)
	}
	issuer.Store(cur) // the issuer drops the old key
	if err := verify(oldTok, 4*time.Minute); err != nil {
		t.Fatalf("within MaxAge: got %v, want the cached key to verify", err)
	}
	wantFetches("within MaxAge", 1)
	if err := verify(oldTok, 5*time.Minute); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Fatalf("at MaxAge: got %v, want ErrTokenUnknownKey (the dropped key is gone)", err)
	}
	wantFetches("at MaxAge", 2)

	// The issuer becomes unreachable: the last good fetch was at 5m.
	down.Store(true)
	if err := verify(curTok, 10*time.Minute); err != nil {
		t.Fatalf("stale set, issuer down: got %v, want the cached key to verify", err)
	}
	wantFetches("first failed refresh", 3)
	if err := verify(curTok, 10*time.Minute+59*time.Second); err != nil {
		t.Fatal(err)
	}
	wantFetches("within the back-off", 3)
	if err := verify(curTok, 11*time.Minute); err != nil {
		t.Fatal(err)
	}
	wantFetches("after the back-off", 4)
	// Before HardMaxAge (15m after the last good fetch) an unknown kid is
	// merely unknown; after it, it is refused as unavailable, and cached
	// keys still verify.
	if err := verify(oldTok, 20*time.Minute); !errors.Is(err, auth.ErrTokenUnknownKey) || errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("unknown kid within HardMaxAge: got %v, want ErrTokenUnknownKey only", err)
	}
	if err := verify(oldTok, 20*time.Minute+time.Second); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("unknown kid past HardMaxAge: got %v, want ErrKeysUnavailable", err)
	}
	if err := verify(curTok, 21*time.Minute); err != nil {
		t.Fatalf("cached kid past HardMaxAge: got %v, want it to verify", err)
	}

	// The issuer is back: the next retry succeeds and the age restarts.
	down.Store(false)
	n := fetches.Load()
	if err := verify(curTok, 23*time.Minute); err != nil {
		t.Fatal(err)
	}
	wantFetches("recovered", n+1)
	if err := verify(oldTok, 24*time.Minute); !errors.Is(err, auth.ErrTokenUnknownKey) || errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("unknown kid after recovery: got %v, want ErrTokenUnknownKey only", err)
	}
}
