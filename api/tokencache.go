package api

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/iam-project/iam/api/auth"
)

// tokenCache remembers access tokens whose signature has been verified, so
// that a client presenting the same token on every request costs one hash
// instead of one ECDSA verification (tens of microseconds each). A token is
// its own key: the same string carries the same signature. Entries expire
// with their tokens; the cache is bounded, and a full cache is simply reset
// (tokens verify again).
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]auth.Claims
	max     int
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: make(map[[32]byte]auth.Claims), max: max}
}

func (c *tokenCache) get(token string, now time.Time) (auth.Claims, bool) {
	k := sha256.Sum256([]byte(token))
	c.mu.RLock()
	claims, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(claims.ExpiresAt) {
		return auth.Claims{}, false
	}
	return claims, true
}

func (c *tokenCache) put(token string, claims auth.Claims) {
	k := sha256.Sum256([]byte(token))
	c.mu.Lock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[k] = claims
	c.mu.Unlock()
}

// verifyToken checks an access token's signature and claims, from the cache
// when it has been verified before and has not expired.
func (s *Server) verifyToken(token, issuer string) (auth.Claims, error) {
	now := s.cfg.Now()
	if c, ok := s.tokens.get(token, now); ok && c.Issuer == issuer {
		return c, nil
	}
	c, err := s.mode.verifier().Verify(token, issuer, s.cfg.Audience, now)
	if err != nil {
		return auth.Claims{}, err
	}
	s.tokens.put(token, c)
	return c, nil
}
