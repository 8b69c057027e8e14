package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// verifyOnly is the NotAfter of keys read from a JWK Set: far enough that
// they are never pruned by time, and non-zero so that none of them is ever
// the signer.
var verifyOnly = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// KeySetFromJWKS returns a verify-only KeySet holding the public keys of an
// RFC 7517 JWK Set such as KeySet.JWKS serves. Only EC P-256 keys meant for
// ES256 signatures are taken ("use" absent or "sig", "alg" absent or
// "ES256"); others are skipped. A key's kid must be its RFC 7638 thumbprint,
// as this package makes them. Verify on the result behaves as on the
// issuer's own KeySet; Sign fails with ErrNoSigningKey; MarshalKeySet must
// not be used on it (it holds no private key).
func KeySetFromJWKS(data []byte) (*KeySet, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	ks := &KeySet{}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "ES256") {
			continue
		}
		pub, err := parseP256(k.X, k.Y)
		if err != nil {
			return nil, fmt.Errorf("read jwks: key %d: %w", i, err)
		}
		sk, err := newSigningKey(&ecdsa.PrivateKey{PublicKey: *pub}, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("read jwks: key %d: %w", i, err)
		}
		if sk.kid != k.Kid {
			return nil, fmt.Errorf("read jwks: key %d: kid %q is not its thumbprint %q", i, k.Kid, sk.kid)
		}
		if seen[sk.kid] {
			continue
		}
		seen[sk.kid] = true
		sk.notAfter = verifyOnly
		ks.keys = append(ks.keys, sk)
	}
	return ks, nil
}

// parseP256 reads base64url coordinates into a public key on P-256;
// ParseUncompressedPublicKey refuses points off the curve.
func parseP256(x, y string) (*ecdsa.PublicKey, error) {
	xb, err1 := base64.RawURLEncoding.DecodeString(x)
	yb, err2 := base64.RawURLEncoding.DecodeString(y)
	if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
		return nil, errors.New("x and y must be 32-byte base64url values")
	}
	point := append(append([]byte{4}, xb...), yb...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("not a P-256 point: %w", err)
	}
	return pub, nil
}

// DefaultJWKSRefresh is the least time between two fetches of a
// RemoteKeySet caused by unknown kids.
const DefaultJWKSRefresh = 10 * time.Second

// RemoteKeySet verifies tokens with the public keys of an issuer it reaches
// only through Fetch (a region verifying the hub's tokens). It caches the
// set, and fetches it again when a token names an unknown kid (a key
// rotated in at the issuer), at most once per MinRefresh however many such
// tokens arrive, so forged kids cannot make it hammer the issuer. While the
// issuer is unreachable, tokens of cached keys keep verifying.
//
// Configure the exported fields before first use. It is safe for
// concurrent use.
type RemoteKeySet struct {
	// Fetch returns the issuer's JWK Set (the body of
	// /.well-known/jwks.json). Required.
	Fetch func(ctx context.Context) ([]byte, error)
	// MinRefresh: see the type. Default DefaultJWKSRefresh.
	MinRefresh time.Duration
	// FetchTimeout bounds one fetch. Default 5s.
	FetchTimeout time.Duration
	// Now is the clock that spaces fetches. Default time.Now.
	Now func() time.Time

	set       atomic.Pointer[KeySet]
	mu        sync.Mutex // serializes fetches
	lastFetch time.Time
}

// ErrKeysUnavailable is returned (wrapped) by RemoteKeySet.Verify when it
// has no keys because the issuer could not be reached: the token was not
// judged, and the caller should answer "unavailable", not "unauthenticated".
var ErrKeysUnavailable = errors.New("auth: the issuer's keys are unavailable")

// Refresh fetches the key set now, whatever MinRefresh says.
func (r *RemoteKeySet) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetchLocked(ctx)
}

func (r *RemoteKeySet) fetchLocked(ctx context.Context) error {
	timeout := r.FetchTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.lastFetch = r.now()
	data, err := r.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	ks, err := KeySetFromJWKS(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	r.set.Store(ks)
	return nil
}

func (r *RemoteKeySet) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// refresh fetches unless a fetch happened within MinRefresh (but always
// when there is no set yet). It reports whether the set may have changed.
func (r *RemoteKeySet) refresh(ctx context.Context, had *KeySet) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.set.Load(); cur != had {
		return true, nil // another caller fetched meanwhile
	}
	minRefresh := r.MinRefresh
	if minRefresh <= 0 {
		minRefresh = DefaultJWKSRefresh
	}
	if had != nil && r.now().Sub(r.lastFetch) < minRefresh {
		return false, nil
	}
	if err := r.fetchLocked(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// Verify is KeySet.Verify with the issuer's current keys. Besides its
// errors, it returns one wrapping ErrKeysUnavailable when it holds no keys
// and cannot fetch them.
func (r *RemoteKeySet) Verify(token, issuer, audience string, now time.Time) (Claims, error) {
	ks := r.set.Load()
	if ks == nil {
		if _, err := r.refresh(context.Background(), nil); err != nil {
			return Claims{}, err
		}
		ks = r.set.Load()
	}
	c, err := ks.Verify(token, issuer, audience, now)
	if !errors.Is(err, ErrTokenUnknownKey) {
		return c, err
	}
	changed, ferr := r.refresh(context.Background(), ks)
	if ferr != nil || !changed {
		return c, err // the unknown-key error stands
	}
	return r.set.Load().Verify(token, issuer, audience, now)
}
