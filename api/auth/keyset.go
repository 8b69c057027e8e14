package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Leeway is the clock skew tolerated when checking a token's exp, nbf and iat,
// and added to a retired key's NotAfter so that it outlives the last moment a
// token it signed may still be accepted.
const Leeway = 30 * time.Second

// ErrNoSigningKey is returned by KeySet.Sign when the set has no current
// signing key (a new KeySet before its first Rotate).
var ErrNoSigningKey = errors.New("auth: key set has no signing key")

// KeySet holds the ES256 (ECDSA P-256) keys that sign and verify access
// tokens. The newest key is the signer; keys retired by Rotate stay published
// (in JWKS) and accepted (by Verify) until their NotAfter, when Prune drops
// them. A KeySet is safe for concurrent use.
//
// Typical use, with the same maxTokenLifetime that caps token expiry:
//
//	ks := auth.NewKeySet()
//	ks.Rotate(now, 24*time.Hour)           // first key
//	...                                     // periodically, e.g. every 30 days:
//	ks.Rotate(now, 24*time.Hour); ks.Prune(now)
//	b, _ := auth.MarshalKeySet(ks)          // persist after every change
type KeySet struct {
	mu   sync.RWMutex
	keys []*signingKey // newest first; keys[0] signs unless it is retired
}

type signingKey struct {
	kid      string
	priv     *ecdsa.PrivateKey
	created  time.Time
	notAfter time.Time // zero while this key is the signer
	maxExp   time.Time // latest exp this key has signed (in this process or as persisted)
}

// KeyInfo describes one key of a KeySet.
type KeyInfo struct {
	KID      string    // RFC 7638 JWK SHA-256 thumbprint, base64url
	Created  time.Time // the now passed to the Rotate that made it
	NotAfter time.Time // zero for the signer; else when Prune drops it
}

// NewKeySet returns an empty KeySet. Call Rotate to create its first signing
// key (keeping the clock injected).
func NewKeySet() *KeySet { return &KeySet{} }

// Rotate makes a fresh P-256 key the signer. The previous signer is retired:
// it signs no more tokens but stays in JWKS and keeps verifying until
// NotAfter = now + maxTokenLifetime + Leeway (or later, if it ever signed a
// token expiring after now + maxTokenLifetime), by when every token it signed
// has expired. maxTokenLifetime must be the longest lifetime any token is
// issued with. The error is from key generation, which in practice does not
// fail.
func (ks *KeySet) Rotate(now time.Time, maxTokenLifetime time.Duration) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	k, err := newSigningKey(priv, now)
	if err != nil {
		return err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if len(ks.keys) > 0 && ks.keys[0].notAfter.IsZero() {
		old := ks.keys[0]
		end := now.Add(maxTokenLifetime)
		if old.maxExp.After(end) {
			end = old.maxExp
		}
		old.notAfter = end.Add(Leeway)
	}
	ks.keys = append([]*signingKey{k}, ks.keys...)
	return nil
}

// Prune removes retired keys whose NotAfter is not after now, and returns
// their kids. Tokens they signed then fail Verify with ErrTokenUnknownKey.
func (ks *KeySet) Prune(now time.Time) []string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var pruned []string
	kept := ks.keys[:0]
	for _, k := range ks.keys {
		if !k.notAfter.IsZero() && !now.Before(k.notAfter) {
			pruned = append(pruned, k.kid)
			continue
		}
		kept = append(kept, k)
	}
	clear(ks.keys[len(kept):])
	ks.keys = kept
	return pruned
}

// Remove drops the key kid at once, whatever its NotAfter, and reports
// whether it was in the set: tokens it signed then fail Verify with
// ErrTokenUnknownKey. Removing the signer leaves the set without one (Sign
// fails with ErrNoSigningKey) until the next Rotate, so rotate first to keep
// signing.
func (ks *KeySet) Remove(kid string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for i, k := range ks.keys {
		if k.kid == kid {
			ks.keys = slices.Delete(ks.keys, i, i+1)
			return true
		}
	}
	return false
}

// Keys describes the keys in the set, newest (the signer) first.
func (ks *KeySet) Keys() []KeyInfo {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	out := make([]KeyInfo, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = KeyInfo{KID: k.kid, Created: k.created, NotAfter: k.notAfter}
	}
	return out
}

// SigningKID returns the kid of the current signer, or "" if there is none.
func (ks *KeySet) SigningKID() string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if s := ks.signerLocked(); s != nil {
		return s.kid
	}
	return ""
}

func (ks *KeySet) signerLocked() *signingKey {
	if len(ks.keys) > 0 && ks.keys[0].notAfter.IsZero() {
		return ks.keys[0]
	}
	return nil
}

func (ks *KeySet) lookup(kid string) *ecdsa.PublicKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for _, k := range ks.keys {
		if k.kid == kid {
			return &k.priv.PublicKey
		}
	}
	return nil
}

// jwk is an RFC 7517 public EC key.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS returns the public keys as an RFC 7517 JWK Set, signer first:
//
//	{"keys":[{"kty":"EC","crv":"P-256","x":"…","y":"…","kid":"…","use":"sig","alg":"ES256"}]}
//
// ready to serve at /.well-known/jwks.json. It lists retired keys until they
// are pruned, so verifiers that cache the set keep accepting their tokens.
func (ks *KeySet) JWKS() []byte {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(ks.keys))}
	for _, k := range ks.keys {
		x, y := pointXY(&k.priv.PublicKey)
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: k.kid, Use: "sig", Alg: "ES256"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // cannot happen: only strings
	}
	return b
}

func newSigningKey(priv *ecdsa.PrivateKey, created time.Time) (*signingKey, error) {
	if priv.Curve != elliptic.P256() {
		return nil, errors.New("signing key is not P-256")
	}
	x, y := pointXY(&priv.PublicKey)
	// RFC 7638 §3.2: required members only, lexicographic order, no spaces.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return &signingKey{kid: base64.RawURLEncoding.EncodeToString(sum[:]), priv: priv, created: created}, nil
}

// pointXY returns the base64url x and y coordinates of a P-256 public key,
// each the full 32 bytes (RFC 7518 §6.2.1.2).
func pointXY(pub *ecdsa.PublicKey) (x, y string) {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(b) != 65 {
		panic("auth: invalid P-256 public key") // keys are only ever made or parsed as valid P-256
	}
	return base64.RawURLEncoding.EncodeToString(b[1:33]), base64.RawURLEncoding.EncodeToString(b[33:])
}

// keySetFile is the persisted form of a KeySet.
type keySetFile struct {
	Version int           `json:"version"`
	Keys    []keySetEntry `json:"keys"`
}

type keySetEntry struct {
	KID      string     `json:"kid"`
	PKCS8    []byte     `json:"pkcs8"` // DER, base64 in JSON
	Created  time.Time  `json:"created"`
	NotAfter *time.Time `json:"notAfter,omitempty"`
	MaxExp   *time.Time `json:"maxExp,omitempty"`
}

// MarshalKeySet encodes the keys of ks, PRIVATE KEYS INCLUDED, as JSON
// (version 1: kid, PKCS#8 DER, created, notAfter). Store the bytes outside
// the event log in a 0600 file, ideally Sealed; never log them.
func MarshalKeySet(ks *KeySet) ([]byte, error) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	f := keySetFile{Version: 1, Keys: make([]keySetEntry, 0, len(ks.keys))}
	for _, k := range ks.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			return nil, fmt.Errorf("marshal key %s: %w", k.kid, err)
		}
		e := keySetEntry{KID: k.kid, PKCS8: der, Created: k.created}
		if !k.notAfter.IsZero() {
			e.NotAfter = &k.notAfter
		}
		if !k.maxExp.IsZero() {
			e.MaxExp = &k.maxExp
		}
		f.Keys = append(f.Keys, e)
	}
	return json.MarshalIndent(f, "", "  ")
}

// UnmarshalKeySet decodes bytes made by MarshalKeySet. It checks that every
// key is ECDSA P-256, that its kid is its thumbprint, that kids are unique
// and that at most one key, the first, is the signer.
func UnmarshalKeySet(b []byte) (*KeySet, error) {
	var f keySetFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("unmarshal key set: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("unmarshal key set: unsupported version %d", f.Version)
	}
	ks := &KeySet{}
	seen := make(map[string]bool)
	for i, e := range f.Keys {
		pk, err := x509.ParsePKCS8PrivateKey(e.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("unmarshal key set: key %d: %w", i, err)
		}
		priv, ok := pk.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("unmarshal key set: key %d is %T, want ECDSA P-256", i, pk)
		}
		k, err := newSigningKey(priv, e.Created)
		if err != nil {
			return nil, fmt.Errorf("unmarshal key set: key %d: %w", i, err)
		}
		if k.kid != e.KID {
			return nil, fmt.Errorf("unmarshal key set: key %d: kid %q does not match its thumbprint %q", i, e.KID, k.kid)
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("unmarshal key set: duplicate kid %q", k.kid)
		}
		seen[k.kid] = true
		if e.NotAfter != nil {
			k.notAfter = *e.NotAfter
		} else if i != 0 {
			return nil, fmt.Errorf("unmarshal key set: key %d has no notAfter but is not the newest", i)
		}
		if e.MaxExp != nil {
			k.maxExp = *e.MaxExp
		}
		ks.keys = append(ks.keys, k)
	}
	return ks, nil
}

// KEKSize is the size in bytes of the key-encryption key Seal and Open take
// (AES-256).
const KEKSize = 32

const sealVersion = 1

var sealAAD = []byte("iam/api/auth keyset v1")

// Seal encrypts plaintext (typically MarshalKeySet's output) with AES-256-GCM
// under the 32-byte key-encryption key kek, returning
// version(1) || nonce(12) || ciphertext+tag. Keep kek apart from the sealed
// file (an env var, a secret manager, a KMS-unwrapped key).
func Seal(kek, plaintext []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never fails (crypto/rand crashes the program instead)
	return aead.Seal(out, out[1:], plaintext, sealAAD), nil
}

// Open decrypts the output of Seal. It fails if kek is wrong or sealed was
// altered.
func Open(kek, sealed []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("open key set: not a sealed key set")
	}
	pt, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealAAD)
	if err != nil {
		return nil, fmt.Errorf("open key set: %w", err)
	}
	return pt, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
