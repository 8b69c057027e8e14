package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// limiter holds one token bucket per key (a client id and source address,
// an account) in a bounded LRU: a flood of fresh keys evicts the buckets
// idle longest, never the one being hammered (each attempt makes its key the
// most recent), so spraying keys cannot reset a victim's bucket, and memory
// stays bounded.
type limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets *lru.Cache[string, *rate.Limiter]
}

// defaultLimiterKeys bounds each limiter's buckets (about 200 bytes each).
const defaultLimiterKeys = 100_000

func newLimiter(perSecond float64, burst, maxKeys int) *limiter {
	c, err := lru.New[string, *rate.Limiter](maxKeys)
	if err != nil {
		panic(err) // maxKeys < 1: a programming error
	}
	return &limiter{limit: rate.Limit(perSecond), burst: burst, buckets: c}
}

// set changes the rate; the buckets start afresh at it.
func (l *limiter) set(perSecond float64, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.burst = rate.Limit(perSecond), burst
	l.buckets.Purge()
}

// bucket returns key's bucket, made full when key is new, as the most
// recently used.
func (l *limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets.Add(key, b)
	}
	return b
}

// allow takes one token for key at now, or says how long until one is due.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	return take(l.bucket(key), now)
}

// due says whether key has a token at now without taking it, or how long
// until one is: failures are then charged with allow, so that only failed
// attempts use the bucket up.
func (l *limiter) due(key string, now time.Time) (bool, time.Duration) {
	b := l.bucket(key)
	if b.TokensAt(now) >= 1 {
		return true, 0
	}
	return take(b, now)
}

func take(b *rate.Limiter, now time.Time) (bool, time.Duration) {
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// len is the number of buckets held.
func (l *limiter) len() int { return l.buckets.Len() }

// sourceOf is the address a request's limits are keyed by: the peer's IP
// (r.RemoteAddr; X-Forwarded-For is not trusted, any client can set it),
// and for IPv6 its /64, which one host commonly holds whole.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// retryAfter sets Retry-After in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds())))))
}
