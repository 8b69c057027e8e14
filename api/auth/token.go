package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token kinds: who the subject of a token is.
const (
	KindUser = "user"
	KindApp  = "app"
)

// MaxTokenSize is the longest token string Verify will parse.
const MaxTokenSize = 8 << 10

// Errors returned (wrapped) by KeySet.Verify. Every one of them wraps
// ErrTokenInvalid, so errors.Is(err, ErrTokenInvalid) picks out all
// rejections of the token itself; an HTTP server answers them with 401 and
// RFC 6750 `error="invalid_token"`. The finer errors say why, for logs and
// metrics — not for the client.
var (
	ErrTokenInvalid = errors.New("invalid token")

	// ErrTokenMalformed: not three base64url parts of JSON, or too long.
	ErrTokenMalformed = fmt.Errorf("%w: malformed", ErrTokenInvalid)
	// ErrTokenSignatureInvalid: an algorithm other than ES256 (none, HS256,
	// RS256, ...) or a signature that does not verify.
	ErrTokenSignatureInvalid = fmt.Errorf("%w: bad signature", ErrTokenInvalid)
	// ErrTokenUnknownKey: no kid header, or a kid not in the KeySet (never
	// ours, or pruned).
	ErrTokenUnknownKey = fmt.Errorf("%w: unknown signing key", ErrTokenInvalid)
	// ErrTokenExpired: exp is more than Leeway in the past.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrTokenInvalid)
	// ErrTokenNotYetValid: nbf or iat is more than Leeway in the future.
	ErrTokenNotYetValid = fmt.Errorf("%w: not yet valid", ErrTokenInvalid)
	// ErrTokenClaimsInvalid: wrong iss or aud, or a required claim (exp,
	// iat, sub, jti, kind) missing or out of range.
	ErrTokenClaimsInvalid = fmt.Errorf("%w: invalid claims", ErrTokenInvalid)
)

// Claims are the contents of an access token.
type Claims struct {
	Issuer    string    // iss: the server's base URL, as in discovery
	Subject   string    // sub: identity id
	Audience  string    // aud
	Realm     string    // realm
	Scope     string    // scope: a project HRN, or "" for a realm-wide token
	ID        string    // jti
	IssuedAt  time.Time // iat, and nbf
	ExpiresAt time.Time // exp
	Kind      string    // kind: KindUser or KindApp
	// Position is the log position the token was issued at (claim iam_pos):
	// a replica checking the token waits until it has applied at least
	// this much, so a token is never judged on a state older than itself.
	Position uint64
	// Credential is the id of the client credential a client-credentials
	// token was issued through (claim cid), "" otherwise: the token dies
	// with its credential.
	Credential string
	// KeyID is the kid of the key that signed the token (its header, set
	// by Verify; Sign ignores it): the token dies with the key's
	// revocation.
	KeyID string
}

// tokenClaims is the JWT payload. aud is written as a single string (as most
// issuers do) and read as a string or an array.
type tokenClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	Realm     string           `json:"realm,omitempty"`
	Scope     string           `json:"scope,omitempty"`
	Kind      string           `json:"kind"`
	Position  uint64           `json:"iam_pos,omitempty"`
	CID       string           `json:"cid,omitempty"`
}

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// signedClaims is tokenClaims with a plain-string aud, for signing without
// touching jwt's global MarshalSingleStringAsArray.
type signedClaims struct {
	tokenClaims
	Audience string `json:"aud"`
}

// Sign returns c as a compact JWT signed with ES256 by the current signing
// key, with header {"alg":"ES256","kid":…,"typ":"JWT"} and claims iss, sub,
// aud, exp, iat, nbf (= iat), jti, realm, scope (omitted if ""), kind. Times
// are truncated to whole seconds (Verify returns them in UTC).
//
// Issuer, Subject, Audience, ID, IssuedAt and ExpiresAt must be set,
// ExpiresAt after IssuedAt, and Kind one of KindUser and KindApp; the
// caller is responsible for ExpiresAt - IssuedAt not exceeding the
// maxTokenLifetime it passes to Rotate. Errors: ErrNoSigningKey, or a plain
// error describing the bad claim.
func (ks *KeySet) Sign(c Claims) (string, error) {
	switch {
	case c.Issuer == "" || c.Subject == "" || c.Audience == "" || c.ID == "":
		return "", errors.New("sign token: issuer, subject, audience and id are required")
	case c.IssuedAt.IsZero() || !c.ExpiresAt.After(c.IssuedAt):
		return "", errors.New("sign token: need issuedAt and a later expiresAt")
	case c.Kind != KindUser && c.Kind != KindApp:
		return "", fmt.Errorf("sign token: kind %q is not %q or %q", c.Kind, KindUser, KindApp)
	}
	ks.mu.Lock()
	k := ks.signerLocked()
	if k != nil && c.ExpiresAt.After(k.maxExp) {
		k.maxExp = c.ExpiresAt
	}
	ks.mu.Unlock()
	if k == nil {
		return "", ErrNoSigningKey
	}
	iat := jwt.NewNumericDate(c.IssuedAt)
	payload := &signedClaims{
		tokenClaims: tokenClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: iat,
			IssuedAt:  iat,
			ID:        c.ID,
			Realm:     c.Realm,
			Scope:     c.Scope,
			Kind:      c.Kind,
			Position:  c.Position,
			CID:       c.Credential,
		},
		Audience: c.Audience,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, payload)
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks token and returns its claims. It accepts only an ES256
// signature by a key in the set named by the kid header — alg "none", HMAC
// (including HS256 keyed with our public key), RSA and every other algorithm
// are refused before any key is used — and then requires iss == issuer,
// audience among aud, and exp, iat (and nbf, if present) valid at now within
// Leeway. issuer and audience must not be empty.
//
// Every rejection wraps ErrTokenInvalid and one of ErrTokenMalformed,
// ErrTokenSignatureInvalid, ErrTokenUnknownKey, ErrTokenExpired,
// ErrTokenNotYetValid and ErrTokenClaimsInvalid. It is safe for concurrent use.
func (ks *KeySet) Verify(token, issuer, audience string, now time.Time) (Claims, error) {
	if issuer == "" || audience == "" {
		// A programming error, deliberately not ErrTokenInvalid.
		return Claims{}, errors.New("verify token: issuer and audience are required")
	}
	if len(token) > MaxTokenSize {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenMalformed, MaxTokenSize)
	}
	var tc tokenClaims
	t, err := jwt.ParseWithClaims(token, &tc, ks.keyFunc,
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithStrictDecoding(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return Claims{}, tokenError(err)
	}
	if tc.IssuedAt == nil || tc.Subject == "" || tc.ID == "" || (tc.Kind != KindUser && tc.Kind != KindApp) {
		return Claims{}, fmt.Errorf("%w: iat, sub, jti or kind missing or invalid", ErrTokenClaimsInvalid)
	}
	return Claims{
		Issuer:     tc.Issuer,
		Subject:    tc.Subject,
		Audience:   audience,
		Realm:      tc.Realm,
		Scope:      tc.Scope,
		ID:         tc.ID,
		IssuedAt:   tc.IssuedAt.Time.UTC(),
		ExpiresAt:  tc.ExpiresAt.Time.UTC(),
		Kind:       tc.Kind,
		Position:   tc.Position,
		Credential: tc.CID,
		KeyID:      kidOf(t),
	}, nil
}

// errUnknownKid is returned by keyFunc and becomes ErrTokenUnknownKey.
var errUnknownKid = errors.New("unknown kid")

// kidOf returns the kid header of a parsed token.
func kidOf(t *jwt.Token) string {
	kid, _ := t.Header["kid"].(string)
	return kid
}

func (ks *KeySet) keyFunc(t *jwt.Token) (any, error) {
	// WithValidMethods has already refused other algorithms; check again so
	// that a change of parser options can never hand an EC key to HMAC.
	if t.Method != jwt.SigningMethodES256 {
		return nil, fmt.Errorf("%w: alg %v", ErrTokenSignatureInvalid, t.Header["alg"])
	}
	kid := kidOf(t)
	if pub := ks.lookup(kid); pub != nil {
		return pub, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
}

// tokenError maps a jwt error to this package's errors, keeping its text.
// The order matters: claim errors are joined, and the most specific cause
// (expiry) is reported first.
func tokenError(err error) error {
	var sentinel error
	switch {
	case errors.Is(err, errUnknownKid):
		sentinel = ErrTokenUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		sentinel = ErrTokenMalformed
	case errors.Is(err, ErrTokenSignatureInvalid),
		errors.Is(err, jwt.ErrTokenSignatureInvalid),
		errors.Is(err, jwt.ErrTokenUnverifiable):
		sentinel = ErrTokenSignatureInvalid
	case errors.Is(err, jwt.ErrTokenExpired):
		sentinel = ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		sentinel = ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		sentinel = ErrTokenClaimsInvalid
	default:
		sentinel = ErrTokenInvalid
	}
	return fmt.Errorf("%w (%v)", sentinel, err)
}
