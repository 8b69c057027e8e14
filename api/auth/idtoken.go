package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IDClaims are the contents of an OpenID Connect ID token (OIDC Core §2).
type IDClaims struct {
	Issuer    string    // iss
	Subject   string    // sub: user id
	Audience  string    // aud: the client's client_id
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
	AuthTime  time.Time // auth_time: when the user signed in
	Nonce     string    // nonce, echoed from the authorization request ("" omits it)
	AtHash    string    // at_hash: AccessTokenHash of the access token issued with it
	Email     string    // email, "" unless the email scope was granted
	Name      string    // name, "" unless the profile scope was granted
}

// idTokenClaims is the JWT payload of an ID token. It has no kind, no jti
// and its aud is a client id, not the API's audience: Verify refuses an ID
// token presented as an access token on all three counts.
type idTokenClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	AuthTime  *jwt.NumericDate `json:"auth_time,omitempty"`
	Nonce     string           `json:"nonce,omitempty"`
	AtHash    string           `json:"at_hash,omitempty"`
	Email     string           `json:"email,omitempty"`
	Name      string           `json:"name,omitempty"`
}

func (c *idTokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *idTokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *idTokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *idTokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *idTokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *idTokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// SignIDToken returns c as a compact JWT signed with ES256 by the current
// signing key (the keys the JWKS publishes, as discovery says). Issuer,
// Subject, Audience and IssuedAt must be set and ExpiresAt after IssuedAt.
// Errors: ErrNoSigningKey, or a plain error describing the bad claim. It is
// safe for concurrent use.
func (ks *KeySet) SignIDToken(c IDClaims) (string, error) {
	if c.Issuer == "" || c.Subject == "" || c.Audience == "" || c.IssuedAt.IsZero() || !c.ExpiresAt.After(c.IssuedAt) {
		return "", errors.New("sign ID token: issuer, subject, audience, issuedAt and a later expiresAt are required")
	}
	ks.mu.Lock()
	k := ks.signerLocked()
	if k != nil && c.ExpiresAt.After(k.maxExp) {
		k.maxExp = c.ExpiresAt // the key must stay published while the token lives
	}
	ks.mu.Unlock()
	if k == nil {
		return "", ErrNoSigningKey
	}
	payload := &idTokenClaims{Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		ExpiresAt: jwt.NewNumericDate(c.ExpiresAt), IssuedAt: jwt.NewNumericDate(c.IssuedAt),
		Nonce: c.Nonce, AtHash: c.AtHash, Email: c.Email, Name: c.Name}
	if !c.AuthTime.IsZero() {
		payload.AuthTime = jwt.NewNumericDate(c.AuthTime)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, payload)
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return s, nil
}

// AccessTokenHash is the at_hash of an ES256-signed ID token for
// accessToken (OIDC Core §3.1.3.6): the left half of its SHA-256,
// base64url without padding.
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
