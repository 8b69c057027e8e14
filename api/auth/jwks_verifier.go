package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
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

// DefaultJWKSMaxAge is how old a RemoteKeySet's copy of the issuer's keys
// may grow before it is fetched again: the bound on how long a key the
// issuer dropped is still accepted.
const DefaultJWKSMaxAge = 5 * time.Minute

// RemoteKeySet verifies tokens with the public keys of an issuer it reaches
// only through Fetch (a region verifying the hub's tokens). It caches the
// set and fetches it again
//
//   - when a token names an unknown kid (a key rotated in at the issuer),
//     at most once per MinRefresh however many such tokens arrive, so forged
//     kids cannot make it hammer the issuer;
//   - when its copy is older than MaxAge, on the next Verify, so a key the
//     issuer dropped stops verifying within MaxAge (plus the fetch).
//
// A failed fetch keeps the cached set, is logged, and is retried on a later
// Verify after RetryBackOff's next interval. While the issuer is
// unreachable, tokens of cached keys keep verifying; once the last
// successful fetch is older than HardMaxAge, a token of an unknown kid is
// refused with ErrKeysUnavailable (it cannot be judged) rather than as
// merely unknown.
//
// Configure the exported fields before first use. It is safe for
// concurrent use.
type RemoteKeySet struct {
	// Fetch returns the issuer's JWK Set (the body of
	// /.well-known/jwks.json). Required.
	Fetch func(ctx context.Context) ([]byte, error)
	// MinRefresh: see the type. Default DefaultJWKSRefresh.
	MinRefresh time.Duration
	// MaxAge: see the type. Default DefaultJWKSMaxAge.
	MaxAge time.Duration
	// HardMaxAge: see the type. Default 3×MaxAge.
	HardMaxAge time.Duration
	// RetryBackOff spaces the retries of failed fetches; it is reset by a
	// successful one. Default exponential from 1s up to MaxAge, never
	// giving up, on the Now clock.
	RetryBackOff backoff.BackOff
	// FetchTimeout bounds one fetch. Default 5s.
	FetchTimeout time.Duration
	// Now is the clock that spaces fetches. Default time.Now.
	Now func() time.Time
	// Log receives failed fetches. Default slog.Default().
	Log *slog.Logger

	set       atomic.Pointer[KeySet]
	fetched   atomic.Int64 // UnixNano of the last successful fetch; 0 before it
	mu        sync.Mutex   // serializes fetches and guards what follows
	lastFetch time.Time
	retryAt   time.Time // no fetch for age before this, after a failed one
	failures  int       // failed fetches since the last successful one
	backOff   backoff.BackOff
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
	ks, err := r.fetchSet(ctx)
	if err != nil {
		r.failedLocked(err)
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	r.set.Store(ks)
	r.fetched.Store(r.lastFetch.UnixNano())
	r.failures, r.retryAt = 0, time.Time{}
	r.retryBackOffLocked().Reset()
	return nil
}

func (r *RemoteKeySet) fetchSet(ctx context.Context) (*KeySet, error) {
	data, err := r.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	return KeySetFromJWKS(data)
}

// failedLocked logs a failed fetch and schedules the next refresh for age.
// The retries are driven by Verify calls rather than a loop of their own,
// so NextBackOff is asked directly instead of through backoff.Retry.
func (r *RemoteKeySet) failedLocked(err error) {
	r.failures++
	wait := r.retryBackOffLocked().NextBackOff()
	if wait == backoff.Stop {
		wait = r.maxAge() // a custom RetryBackOff gave up: fall back to the age bound
	}
	r.retryAt = r.lastFetch.Add(wait)
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	var age time.Duration
	if f := r.fetched.Load(); f != 0 {
		age = r.lastFetch.Sub(time.Unix(0, f))
	}
	log.Warn("issuer keys not refreshed; keeping the cached ones", "err", err, "failures", r.failures, "age", age, "retryIn", wait)
}

func (r *RemoteKeySet) retryBackOffLocked() backoff.BackOff {
	if r.backOff == nil {
		r.backOff = r.RetryBackOff
		if r.backOff == nil {
			r.backOff = backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(time.Second),
				backoff.WithMaxInterval(r.maxAge()),
				backoff.WithMaxElapsedTime(0),
				backoff.WithClockProvider(clockFunc(r.now)),
			)
		}
	}
	return r.backOff
}

// clockFunc makes the injected clock a backoff.Clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func (r *RemoteKeySet) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RemoteKeySet) maxAge() time.Duration {
	if r.MaxAge > 0 {
		return r.MaxAge
	}
	return DefaultJWKSMaxAge
}

// age is how long ago the last successful fetch was; ok is false before
// the first.
func (r *RemoteKeySet) age(now time.Time) (age time.Duration, ok bool) {
	f := r.fetched.Load()
	if f == 0 {
		return 0, false
	}
	return now.Sub(time.Unix(0, f)), true
}

func (r *RemoteKeySet) hardMaxAge() time.Duration {
	if r.HardMaxAge > 0 {
		return r.HardMaxAge
	}
	return 3 * r.maxAge()
}

// expired reports whether the cached set is past HardMaxAge.
func (r *RemoteKeySet) expired(now time.Time) bool {
	age, ok := r.age(now)
	return !ok || age > r.hardMaxAge()
}

// refreshIfStale fetches when the set is older than MaxAge and no failed
// fetch asked to wait. A fetch already under way is not waited for: the
// cached set answers meanwhile, so one slow issuer delays one request, not
// all of them.
func (r *RemoteKeySet) refreshIfStale(ctx context.Context) {
	now := r.now()
	if age, ok := r.age(now); ok && age < r.maxAge() {
		return
	}
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if age, ok := r.age(now); (ok && age < r.maxAge()) || now.Before(r.retryAt) {
		return
	}
	_ = r.fetchLocked(ctx) // logged by failedLocked; the cached set stands
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
// and cannot fetch them, or when a token names a kid it does not know and
// its keys are older than HardMaxAge.
func (r *RemoteKeySet) Verify(token, issuer, audience string, now time.Time) (Claims, error) {
	ctx := context.Background()
	ks := r.set.Load()
	if ks == nil {
		if _, err := r.refresh(ctx, nil); err != nil {
			return Claims{}, err
		}
	} else {
		r.refreshIfStale(ctx)
	}
	ks = r.set.Load()
	c, err := ks.Verify(token, issuer, audience, now)
	if !errors.Is(err, ErrTokenUnknownKey) {
		return c, err
	}
	changed, ferr := r.refresh(ctx, ks)
	if ferr == nil && changed {
		c, err = r.set.Load().Verify(token, issuer, audience, now)
	}
	if errors.Is(err, ErrTokenUnknownKey) && r.expired(r.now()) {
		// Fail closed, but say why: the kid may be the issuer's new key,
		// which this region has been unable to learn for too long.
		return Claims{}, fmt.Errorf("%w: keys last fetched more than %v ago: %w", ErrKeysUnavailable, r.hardMaxAge(), err)
	}
	return c, err
}
