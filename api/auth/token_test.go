package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/iam-project/iam/api/auth"
)

const (
	testIssuer   = "https://iam.example.test"
	testAudience = "iam"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newKeySet(t testing.TB, now time.Time) *auth.KeySet {
	t.Helper()
	ks := auth.NewKeySet()
	if err := ks.Rotate(now, time.Hour); err != nil {
		t.Fatal(err)
	}
	return ks
}

func testClaims(iat time.Time) auth.Claims {
	return auth.Claims{
		Issuer:    testIssuer,
		Subject:   "u-abcdefghij",
		Audience:  testAudience,
		Realm:     "org1",
		Scope:     "hrn:here:authorization::org1:project/p1",
		ID:        "jti-1",
		IssuedAt:  iat,
		ExpiresAt: iat.Add(time.Hour),
		Kind:      auth.KindApp,
	}
}

func mustSign(t testing.TB, ks *auth.KeySet, c auth.Claims) string {
	t.Helper()
	tok, err := ks.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// segments decodes a compact JWT's header and payload.
func segments(t testing.TB, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// signerKey extracts the current private signing key via MarshalKeySet, so
// tests can craft tokens the package itself would never sign.
func signerKey(t testing.TB, ks *auth.KeySet) *ecdsa.PrivateKey {
	t.Helper()
	b, err := auth.MarshalKeySet(ks)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Keys []struct {
			PKCS8 []byte `json:"pkcs8"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(f.Keys[0].PKCS8)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// craft builds a compact JWT by hand: sign gets the signing input and returns
// the raw signature.
func craft(t testing.TB, header, payload map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	input := b64json(t, header) + "." + b64json(t, payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// es256 signs like RFC 7518 §3.4: r || s, 32 bytes each.
func es256(t testing.TB, priv *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		sum := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
}

func hs256(key []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(input)
		return m.Sum(nil)
	}
}

func TestKeySet_SignVerify(t *testing.T) {
	ks := newKeySet(t, t0)
	c := testClaims(t0)
	tok := mustSign(t, ks, c)

	header, payload := segments(t, tok)
	if header["alg"] != "ES256" || header["kid"] != ks.SigningKID() || header["typ"] != "JWT" {
		t.Errorf("header: got %v, want alg ES256, kid %s, typ JWT", header, ks.SigningKID())
	}
	wantPayload := map[string]any{
		"iss": testIssuer, "sub": c.Subject, "aud": testAudience, "jti": c.ID,
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(t0.Add(time.Hour).Unix()),
		"realm": c.Realm, "scope": c.Scope, "kind": "app",
	}
	for k, v := range wantPayload {
		if payload[k] != v {
			t.Errorf("payload[%q]: got %v, want %v", k, payload[k], v)
		}
	}
	if len(payload) != len(wantPayload) {
		t.Errorf("payload: got %v, want exactly %v", payload, wantPayload)
	}

	got, err := ks.Verify(tok, testIssuer, testAudience, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c.KeyID = ks.SigningKID() // Verify reports the signing key; Sign ignores it
	if got != c {
		t.Errorf("got %+v, want %+v", got, c)
	}

	t.Run("realm-wide user token omits scope", func(t *testing.T) {
		c := testClaims(t0)
		c.Scope, c.Kind = "", auth.KindUser
		tok := mustSign(t, ks, c)
		c.KeyID = ks.SigningKID()
		if _, payload := segments(t, tok); payload["scope"] != nil {
			t.Errorf("got scope %v, want none", payload["scope"])
		}
		if got, err := ks.Verify(tok, testIssuer, testAudience, t0); err != nil || got != c {
			t.Errorf("got %+v, %v; want %+v", got, err, c)
		}
	})

	t.Run("standard library verifies via JWKS", func(t *testing.T) {
		keys := jwksKeys(t, ks.JWKS())
		parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
			return keys[tk.Header["kid"].(string)], nil
		}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return t0 }),
			jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience))
		if err != nil || !parsed.Valid {
			t.Errorf("jwt.Parse: %v", err)
		}
	})
}

func TestKeySet_SignInvalidClaims(t *testing.T) {
	ks := newKeySet(t, t0)
	for name, mutate := range map[string]func(*auth.Claims){
		"no issuer":      func(c *auth.Claims) { c.Issuer = "" },
		"no subject":     func(c *auth.Claims) { c.Subject = "" },
		"no audience":    func(c *auth.Claims) { c.Audience = "" },
		"no id":          func(c *auth.Claims) { c.ID = "" },
		"no issuedAt":    func(c *auth.Claims) { c.IssuedAt = time.Time{} },
		"exp before iat": func(c *auth.Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) },
		"bad kind":       func(c *auth.Claims) { c.Kind = "admin" },
	} {
		c := testClaims(t0)
		mutate(&c)
		if tok, err := ks.Sign(c); err == nil {
			t.Errorf("%s: got %q, nil; want an error", name, tok)
		}
	}
	if _, err := auth.NewKeySet().Sign(testClaims(t0)); !errors.Is(err, auth.ErrNoSigningKey) {
		t.Errorf("empty key set: got %v, want ErrNoSigningKey", err)
	}
}

func TestKeySet_VerifyRejects(t *testing.T) {
	ks := newKeySet(t, t0)
	priv := signerKey(t, ks)
	good := mustSign(t, ks, testClaims(t0))
	goodHeader, goodPayload := segments(t, good)
	now := t0.Add(time.Minute)

	with := func(m map[string]any, kv ...any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubPoint, _ := priv.PublicKey.Bytes()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	flipSig := func(tok string) string {
		parts := strings.Split(tok, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[10] ^= 0x01
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	other := newKeySet(t, t0)

	for _, tc := range []struct {
		name  string
		token string
		now   time.Time
		iss   string
		aud   string
		want  error
	}{
		{name: "alg none, empty signature",
			token: craft(t, with(goodHeader, "alg", "none"), goodPayload, func([]byte) []byte { return nil }),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "alg None, ES256 signature kept",
			token: craft(t, with(goodHeader, "alg", "None"), goodPayload, es256(t, priv)),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "HS256 keyed with public key PEM",
			token: craft(t, with(goodHeader, "alg", "HS256"), goodPayload, hs256(pubPEM)),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "HS256 keyed with public key point",
			token: craft(t, with(goodHeader, "alg", "HS256"), goodPayload, hs256(pubPoint)),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "HS256 keyed with public key DER",
			token: craft(t, with(goodHeader, "alg", "HS256"), goodPayload, hs256(pubDER)),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "RS256",
			token: craft(t, with(goodHeader, "alg", "RS256"), goodPayload, func(in []byte) []byte {
				sum := sha256.Sum256(in)
				sig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum[:])
				return sig
			}),
			want: auth.ErrTokenSignatureInvalid},
		{name: "ES384",
			token: craft(t, with(goodHeader, "alg", "ES384"), goodPayload, func(in []byte) []byte {
				sum := crypto.SHA384.New()
				sum.Write(in)
				r, s, _ := ecdsa.Sign(rand.Reader, p384, sum.Sum(nil))
				sig := make([]byte, 96)
				r.FillBytes(sig[:48])
				s.FillBytes(sig[48:])
				return sig
			}),
			want: auth.ErrTokenSignatureInvalid},
		{name: "flipped signature byte", token: flipSig(good), want: auth.ErrTokenSignatureInvalid},
		{name: "tampered payload",
			token: strings.Split(good, ".")[0] + "." + b64json(t, with(goodPayload, "sub", "u-admin")) + "." + strings.Split(good, ".")[2],
			want:  auth.ErrTokenSignatureInvalid},
		{name: "ASN.1 DER signature instead of r||s",
			token: craft(t, goodHeader, goodPayload, func(in []byte) []byte {
				sum := sha256.Sum256(in)
				sig, _ := ecdsa.SignASN1(rand.Reader, priv, sum[:])
				return sig
			}),
			want: auth.ErrTokenSignatureInvalid},
		{name: "our kid, someone else's key",
			token: craft(t, goodHeader, goodPayload, es256(t, signerKey(t, other))),
			want:  auth.ErrTokenSignatureInvalid},
		{name: "unknown kid", token: mustSign(t, other, testClaims(t0)), want: auth.ErrTokenUnknownKey},
		{name: "no kid",
			token: craft(t, with(goodHeader, "kid", nil), goodPayload, es256(t, priv)),
			want:  auth.ErrTokenUnknownKey},
		{name: "expired beyond leeway", token: good, now: t0.Add(time.Hour + auth.Leeway + time.Second), want: auth.ErrTokenExpired},
		{name: "not yet valid beyond leeway", token: good, now: t0.Add(-auth.Leeway - time.Second), want: auth.ErrTokenNotYetValid},
		{name: "nbf in future",
			token: craft(t, goodHeader, with(goodPayload, "nbf", float64(t0.Add(10*time.Minute).Unix())), es256(t, priv)),
			want:  auth.ErrTokenNotYetValid},
		{name: "wrong issuer", token: good, iss: "https://evil.example", want: auth.ErrTokenClaimsInvalid},
		{name: "issuer trailing slash", token: good, iss: testIssuer + "/", want: auth.ErrTokenClaimsInvalid},
		{name: "wrong audience", token: good, aud: "other", want: auth.ErrTokenClaimsInvalid},
		{name: "no exp",
			token: craft(t, goodHeader, with(goodPayload, "exp", nil), es256(t, priv)),
			want:  auth.ErrTokenClaimsInvalid},
		{name: "no iat",
			token: craft(t, goodHeader, with(goodPayload, "iat", nil), es256(t, priv)),
			want:  auth.ErrTokenClaimsInvalid},
		{name: "no sub",
			token: craft(t, goodHeader, with(goodPayload, "sub", nil), es256(t, priv)),
			want:  auth.ErrTokenClaimsInvalid},
		{name: "no jti",
			token: craft(t, goodHeader, with(goodPayload, "jti", nil), es256(t, priv)),
			want:  auth.ErrTokenClaimsInvalid},
		{name: "bad kind",
			token: craft(t, goodHeader, with(goodPayload, "kind", "root"), es256(t, priv)),
			want:  auth.ErrTokenClaimsInvalid},
		{name: "empty", token: "", want: auth.ErrTokenMalformed},
		{name: "two parts", token: "a.b", want: auth.ErrTokenMalformed},
		{name: "four parts", token: good + ".x", want: auth.ErrTokenMalformed},
		{name: "not base64", token: "!!.!!.!!", want: auth.ErrTokenMalformed},
		{name: "padded signature", token: good + "=", want: auth.ErrTokenMalformed},
		{name: "exp not a number",
			token: craft(t, goodHeader, with(goodPayload, "exp", "tomorrow"), es256(t, priv)),
			want:  auth.ErrTokenMalformed},
		{name: "too long", token: good + strings.Repeat("A", auth.MaxTokenSize), want: auth.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.now.IsZero() {
				tc.now = now
			}
			if tc.iss == "" {
				tc.iss = testIssuer
			}
			if tc.aud == "" {
				tc.aud = testAudience
			}
			c, err := ks.Verify(tc.token, tc.iss, tc.aud, tc.now)
			t.Log(err)
			if !errors.Is(err, tc.want) || !errors.Is(err, auth.ErrTokenInvalid) {
				t.Fatalf("got %v, want %v (and ErrTokenInvalid)", err, tc.want)
			}
			if c != (auth.Claims{}) {
				t.Errorf("got claims %+v with an error, want zero", c)
			}
		})
	}
}

func TestKeySet_VerifyLeeway(t *testing.T) {
	ks := newKeySet(t, t0)
	tok := mustSign(t, ks, testClaims(t0))
	for _, now := range []time.Time{
		t0.Add(-auth.Leeway + time.Second),            // clock slightly behind the issuer
		t0.Add(time.Hour + auth.Leeway - time.Second), // just past exp, within leeway
	} {
		if _, err := ks.Verify(tok, testIssuer, testAudience, now); err != nil {
			t.Errorf("at %v: got %v, want nil", now.Sub(t0), err)
		}
	}
}

func TestKeySet_VerifyNeedsIssuerAndAudience(t *testing.T) {
	ks := newKeySet(t, t0)
	tok := mustSign(t, ks, testClaims(t0))
	for _, args := range [][2]string{{"", testAudience}, {testIssuer, ""}} {
		_, err := ks.Verify(tok, args[0], args[1], t0)
		if err == nil || errors.Is(err, auth.ErrTokenInvalid) {
			t.Errorf("Verify(iss=%q, aud=%q): got %v, want a non-token error", args[0], args[1], err)
		}
	}
}

// TestKeySet_VerifyAudienceArray accepts aud as an array too (RFC 7519 §4.1.3).
func TestKeySet_VerifyAudienceArray(t *testing.T) {
	ks := newKeySet(t, t0)
	header, payload := segments(t, mustSign(t, ks, testClaims(t0)))
	payload["aud"] = []string{"other", testAudience}
	tok := craft(t, header, payload, es256(t, signerKey(t, ks)))
	c, err := ks.Verify(tok, testIssuer, testAudience, t0)
	if err != nil || c.Audience != testAudience {
		t.Fatalf("got %+v, %v; want audience %q", c, err, testAudience)
	}
}
