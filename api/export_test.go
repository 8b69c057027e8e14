package api

import (
	"context"
	"net/http"
	"time"
)

// Limiter is the rate limiter, for the black-box tests.
type Limiter struct{ l *limiter }

func NewLimiter(perSecond float64, burst, maxKeys int) Limiter {
	return Limiter{newLimiter(perSecond, burst, maxKeys)}
}

func (l Limiter) Allow(key string, now time.Time) bool { ok, _ := l.l.allow(key, now); return ok }
func (l Limiter) Len() int                             { return l.l.len() }

// SourceOf is the address a request's limits are keyed by.
func SourceOf(r *http.Request) string { return sourceOf(r) }

// HashGate bounds argon2id work, for the black-box tests.
type HashGate struct{ g *hashGate }

func NewHashGate(n int, wait time.Duration) HashGate { return HashGate{newHashGate(n, wait, nil)} }

func (g HashGate) Do(ctx context.Context, fn func()) error { return g.g.do(ctx, fn) }

// ErrHashBusy is the gate's refusal.
var ErrHashBusy = errHashBusy
