package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
)

// jwksKeys parses a JWK Set, checks each key's fields and its kid (the RFC
// 7638 thumbprint, computed here independently), and returns the keys by kid.
func jwksKeys(t testing.TB, b []byte) map[string]*ecdsa.PublicKey {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	out := make(map[string]*ecdsa.PublicKey)
	for _, k := range set.Keys {
		for field, want := range map[string]string{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256"} {
			if k[field] != want {
				t.Errorf("JWK %s: got %q, want %q", field, k[field], want)
			}
		}
		x, errX := base64.RawURLEncoding.DecodeString(k["x"])
		y, errY := base64.RawURLEncoding.DecodeString(k["y"])
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			t.Fatalf("JWK x/y: got %q %q, want 32-byte base64url", k["x"], k["y"])
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		thumb, _ := json.Marshal(map[string]string{"crv": "P-256", "kty": "EC", "x": k["x"], "y": k["y"]}) // sorted keys
		sum := sha256.Sum256(thumb)
		if want := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != want {
			t.Errorf("kid: got %q, want thumbprint %q", k["kid"], want)
		}
		out[k["kid"]] = pub
	}
	return out
}

func kids(infos []auth.KeyInfo) []string {
	var out []string
	for _, k := range infos {
		out = append(out, k.KID)
	}
	return out
}

func TestKeySet_Rotation(t *testing.T) {
	const maxLife = time.Hour
	ks := auth.NewKeySet()
	if ks.SigningKID() != "" || string(ks.JWKS()) != `{"keys":[]}` {
		t.Fatalf("new key set: got kid %q, JWKS %s; want none", ks.SigningKID(), ks.JWKS())
	}
	if err := ks.Rotate(t0, maxLife); err != nil {
		t.Fatal(err)
	}
	kid1 := ks.SigningKID()
	old := mustSign(t, ks, testClaims(t0)) // expires t0+1h

	t1 := t0.Add(10 * time.Minute)
	if err := ks.Rotate(t1, maxLife); err != nil {
		t.Fatal(err)
	}
	kid2 := ks.SigningKID()
	if kid2 == kid1 || kid2 == "" {
		t.Fatalf("after Rotate: got signer %q, want a new kid (old %q)", kid2, kid1)
	}
	wantNotAfter := t1.Add(maxLife + auth.Leeway)
	if got := ks.Keys(); len(got) != 2 || got[0].KID != kid2 || !got[0].NotAfter.IsZero() ||
		got[1].KID != kid1 || !got[1].NotAfter.Equal(wantNotAfter) || !got[1].Created.Equal(t0) {
		t.Fatalf("Keys: got %+v, want [%s signer, %s until %v]", got, kid2, kid1, wantNotAfter)
	}
	if got := jwksKeys(t, ks.JWKS()); len(got) != 2 || got[kid1] == nil || got[kid2] == nil {
		t.Fatalf("JWKS: got kids %v, want %s and %s", got, kid1, kid2)
	}

	fresh := mustSign(t, ks, testClaims(t1))
	if h, _ := segments(t, fresh); h["kid"] != kid2 {
		t.Errorf("new token kid: got %v, want %s", h["kid"], kid2)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := ks.Verify(tok, testIssuer, testAudience, t0.Add(50*time.Minute)); err != nil {
			t.Errorf("%s token before prune: got %v, want nil", name, err)
		}
	}

	if got := ks.Prune(wantNotAfter.Add(-time.Second)); len(got) != 0 {
		t.Errorf("Prune before NotAfter: got %v, want none", got)
	}
	if got := ks.Prune(wantNotAfter); !slices.Equal(got, []string{kid1}) {
		t.Errorf("Prune at NotAfter: got %v, want [%s]", got, kid1)
	}
	if got := kids(ks.Keys()); !slices.Equal(got, []string{kid2}) {
		t.Errorf("Keys after prune: got %v, want [%s]", got, kid2)
	}
	if _, err := ks.Verify(old, testIssuer, testAudience, t0.Add(50*time.Minute)); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Errorf("old token after prune: got %v, want ErrTokenUnknownKey", err)
	}
	if _, err := ks.Verify(fresh, testIssuer, testAudience, t0.Add(50*time.Minute)); err != nil {
		t.Errorf("new token after prune: got %v, want nil", err)
	}
	if got := jwksKeys(t, ks.JWKS()); len(got) != 1 || got[kid2] == nil {
		t.Errorf("JWKS after prune: got %v, want only %s", got, kid2)
	}
}

// TestKeySet_RotateKeepsLongerTokens checks that a key which signed a token
// outliving maxTokenLifetime stays until that token has expired.
func TestKeySet_RotateKeepsLongerTokens(t *testing.T) {
	ks := newKeySet(t, t0)
	c := testClaims(t0)
	c.ExpiresAt = t0.Add(48 * time.Hour)
	mustSign(t, ks, c)
	if err := ks.Rotate(t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, want := ks.Keys()[1].NotAfter, c.ExpiresAt.Add(auth.Leeway); !got.Equal(want) {
		t.Errorf("NotAfter: got %v, want %v", got, want)
	}
}

func TestMarshalKeySet_RoundTrip(t *testing.T) {
	ks := newKeySet(t, t0)
	old := mustSign(t, ks, testClaims(t0))
	if err := ks.Rotate(t0.Add(time.Minute), time.Hour); err != nil {
		t.Fatal(err)
	}
	b, err := auth.MarshalKeySet(ks)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auth.UnmarshalKeySet(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.Keys(), ks.Keys(), func(a, b auth.KeyInfo) bool {
		return a.KID == b.KID && a.Created.Equal(b.Created) && a.NotAfter.Equal(b.NotAfter)
	}) {
		t.Errorf("Keys: got %+v, want %+v", got.Keys(), ks.Keys())
	}
	if !bytes.Equal(got.JWKS(), ks.JWKS()) {
		t.Errorf("JWKS: got %s, want %s", got.JWKS(), ks.JWKS())
	}
	if _, err := got.Verify(old, testIssuer, testAudience, t0); err != nil {
		t.Errorf("old token with loaded set: %v", err)
	}
	fresh := mustSign(t, got, testClaims(t0))
	if _, err := ks.Verify(fresh, testIssuer, testAudience, t0); err != nil {
		t.Errorf("token signed by loaded set, verified by original: %v", err)
	}

	empty, err := auth.MarshalKeySet(auth.NewKeySet())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := auth.UnmarshalKeySet(empty); err != nil || len(got.Keys()) != 0 {
		t.Errorf("empty set: got %v, %v", got, err)
	}
}

func TestUnmarshalKeySet_Invalid(t *testing.T) {
	ks := newKeySet(t, t0)
	if err := ks.Rotate(t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	b, _ := auth.MarshalKeySet(ks)
	kid := ks.SigningKID()
	var f map[string]any
	json.Unmarshal(b, &f)
	keys := f["keys"].([]any)
	edit := func(fn func(f map[string]any)) []byte {
		var g map[string]any
		json.Unmarshal(b, &g)
		fn(g)
		out, _ := json.Marshal(g)
		return out
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"not json", []byte("-----BEGIN PRIVATE KEY-----")},
		{"version 2", edit(func(g map[string]any) { g["version"] = 2 })},
		{"wrong kid", []byte(strings.Replace(string(b), kid, "AAAA", 1))},
		{"duplicate key", edit(func(g map[string]any) { g["keys"] = []any{keys[0], keys[1], keys[1]} })},
		{"two signers", edit(func(g map[string]any) {
			k := g["keys"].([]any)[1].(map[string]any)
			delete(k, "notAfter")
		})},
		{"garbage key", edit(func(g map[string]any) { g["keys"].([]any)[0].(map[string]any)["pkcs8"] = "AAAA" })},
		{"P-384 key", edit(func(g map[string]any) {
			p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			g["keys"].([]any)[0].(map[string]any)["pkcs8"] = mustPKCS8(t, p384)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := auth.UnmarshalKeySet(tc.b); err == nil {
				t.Errorf("got %+v, nil; want an error", got.Keys())
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	kek := make([]byte, auth.KEKSize)
	rand.Read(kek)
	plain := []byte(`{"version":1,"keys":[]}`)
	sealed, err := auth.Seal(kek, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed bytes contain the plaintext")
	}
	got, err := auth.Open(kek, sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open: got %q, %v; want %q", got, err, plain)
	}
	if again, _ := auth.Seal(kek, plain); bytes.Equal(again, sealed) {
		t.Error("two seals are equal; want fresh nonces")
	}

	wrong := bytes.Clone(kek)
	wrong[0] ^= 1
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name        string
		kek, sealed []byte
	}{
		{"wrong kek", wrong, sealed},
		{"tampered", kek, tampered},
		{"truncated", kek, sealed[:10]},
		{"short kek", kek[:16], sealed},
		{"plaintext", kek, plain},
	} {
		if got, err := auth.Open(tc.kek, tc.sealed); err == nil {
			t.Errorf("%s: got %q, nil; want an error", tc.name, got)
		}
	}
	if _, err := auth.Seal(kek[:16], plain); err == nil {
		t.Error("Seal with a 16-byte kek: got nil error")
	}
}

func mustPKCS8(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestKeySet_Remove: a removed key stops verifying at once, whatever its
// NotAfter, and Verify reports the kid of the key that signed.
func TestKeySet_Remove(t *testing.T) {
	now := time.Now()
	ks := signer(t, now)
	old := ks.SigningKID()
	tok, _ := ks.Sign(claimsAt(now))
	c, err := ks.Verify(tok, "http://iam.test", "iam", now)
	if err != nil || c.KeyID != old {
		t.Fatalf("verify: got kid %q, %v, want %q", c.KeyID, err, old)
	}
	if err := ks.Rotate(now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !ks.Remove(old) || ks.Remove(old) {
		t.Fatal("Remove: want true once, then false")
	}
	if _, err := ks.Verify(tok, "http://iam.test", "iam", now); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Fatalf("verify after Remove: got %v, want ErrTokenUnknownKey", err)
	}
	if strings.Contains(string(ks.JWKS()), old) || len(ks.Keys()) != 1 {
		t.Fatalf("after Remove: got keys %+v, want only the new signer", ks.Keys())
	}
}
