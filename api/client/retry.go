package client

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Cause is why an attempt is retried or failed over.
type Cause string

// The causes under which retries and failovers are counted.
const (
	CauseReplicaBehind Cause = "replica_behind" // 503 replica_behind
	CauseUnavailable   Cause = "unavailable"    // 503 (or 502, 504) other than replica_behind
	CauseRateLimited   Cause = "rate_limited"   // 429
	CauseNetwork       Cause = "network"        // no HTTP answer: refused, reset, DNS, ...
	CauseTimeout       Cause = "timeout"        // the attempt outlived WithAttemptTimeout
)

// Causes lists every Cause, in a stable order.
var Causes = []Cause{CauseReplicaBehind, CauseUnavailable, CauseRateLimited, CauseNetwork, CauseTimeout}

func causeIndex(c Cause) int {
	for i, x := range Causes {
		if x == c {
			return i
		}
	}
	return -1
}

// RetryEvent describes one retry or failover, as WithOnRetry receives it.
type RetryEvent struct {
	// Op names the call ("POST /v1/check").
	Op string
	// Cause is why the attempt failed; Err is its error.
	Cause Cause
	Err   error
	// Attempt is the 1-based number of the attempt that failed, within the call.
	Attempt int
	// Endpoint failed; Next is where the next attempt goes. Failover is
	// Next != Endpoint.
	Endpoint string
	Next     string
	Failover bool
	// Delay is the wait before the next attempt; RetryAfter is what the
	// failed answer asked for (0 when it did not say).
	Delay      time.Duration
	RetryAfter time.Duration
}

// Stats are a Client's counters since it was made. Retries counts new
// attempts on the same endpoint, Failovers attempts moved to another
// endpoint; together they are every attempt after a call's first.
type Stats struct {
	Calls     uint64
	Attempts  uint64
	Retries   map[Cause]uint64
	Failovers map[Cause]uint64
	// GaveUp counts calls that ended on a retryable error (budget spent,
	// every endpoint failing, or the context done).
	GaveUp uint64
}

type counters struct {
	calls, attempts, gaveUp atomic.Uint64
	retries, failovers      [5]atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{Calls: c.calls.Load(), Attempts: c.attempts.Load(), GaveUp: c.gaveUp.Load(),
		Retries: map[Cause]uint64{}, Failovers: map[Cause]uint64{}}
	for i, cause := range Causes {
		s.Retries[cause] = c.retries[i].Load()
		s.Failovers[cause] = c.failovers[i].Load()
	}
	return s
}

// schedule is one call's backoff.BackOff: it decides, after each failed
// attempt, which endpoint comes next and how long to wait for it.
//
// The same endpoint is retried after an exponential, jittered interval, but
// never sooner than its last Retry-After, until it has had
// attemptsPerEndpoint attempts or the wait would overrun the call's budget;
// then the call fails over to the next endpoint in order at once (or when
// that endpoint's own Retry-After allows). Past the last endpoint it starts
// again from the first after a backoff interval. Nothing waits past the
// budget (WithMaxElapsedTime, or the context's deadline): the call ends with
// the last error instead.
type schedule struct {
	n           int
	perEndpoint int
	maxElapsed  time.Duration
	clock       backoff.Clock
	exp         *backoff.ExponentialBackOff
	ctxDeadline time.Time // the caller's context deadline, if any

	start     time.Time
	cur       int         // endpoint of the next (or current) attempt
	tries     int         // attempts on cur in this visit
	notBefore []time.Time // per endpoint, from its last Retry-After

	// Set by the operation after a failed attempt.
	retryAfter time.Duration
	// Set by NextBackOff for notify.
	from     int
	failover bool
}

func newSchedule(o *options, n int) *schedule {
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(o.initialInterval),
		backoff.WithMaxInterval(o.maxInterval),
		backoff.WithMultiplier(o.multiplier),
		backoff.WithRandomizationFactor(o.randomizationFactor),
		backoff.WithMaxElapsedTime(o.maxElapsed),
		backoff.WithClockProvider(o.clock),
	)
	return &schedule{n: n, perEndpoint: o.attemptsPerEndpoint, maxElapsed: o.maxElapsed, clock: o.clock, exp: exp,
		notBefore: make([]time.Time, n)}
}

func (s *schedule) Reset() {
	s.exp.Reset()
	s.start = s.clock.Now()
	s.cur, s.tries = 0, 1
	clear(s.notBefore)
}

func (s *schedule) NextBackOff() time.Duration {
	now := s.clock.Now()
	s.from, s.failover = s.cur, false
	if s.retryAfter > 0 {
		s.notBefore[s.cur] = now.Add(s.retryAfter)
	}
	fits := func(d time.Duration) bool {
		at := now.Add(d)
		if !s.ctxDeadline.IsZero() && at.After(s.ctxDeadline) {
			return false
		}
		return s.maxElapsed <= 0 || !at.After(s.start.Add(s.maxElapsed))
	}
	wait := func(i int) time.Duration { return max(0, s.notBefore[i].Sub(now)) }
	var interval time.Duration = -1 // drawn at most once per decision
	next := func() time.Duration {
		if interval < 0 {
			interval = s.exp.NextBackOff()
		}
		return interval
	}
	if s.n == 1 || s.tries < s.perEndpoint {
		if d := next(); d != backoff.Stop {
			d = max(d, wait(s.cur))
			if fits(d) {
				s.tries++
				return d
			}
		}
		if s.n == 1 {
			return backoff.Stop
		}
	}
	for k := 1; k < s.n; k++ {
		i := (s.cur + k) % s.n
		d := wait(i)
		if i <= s.cur { // past the last endpoint: a new round, after an interval
			iv := next()
			if iv == backoff.Stop {
				return backoff.Stop
			}
			d = max(d, iv)
		}
		if fits(d) {
			s.cur, s.tries, s.failover = i, 1, true
			return d
		}
	}
	return backoff.Stop
}

// classify says whether err, from one attempt, is worth another attempt,
// and why.
func classify(ctx context.Context, err error) (Cause, bool) {
	if ctx.Err() != nil {
		return "", false // the caller gave up
	}
	var permanent *backoff.PermanentError
	if errors.As(err, &permanent) {
		return "", false
	}
	var e *Error
	if errors.As(err, &e) {
		switch {
		case e.Status == 429:
			return CauseRateLimited, true
		case e.Code == CodeReplicaBehind:
			return CauseReplicaBehind, true
		case e.Status == 502 || e.Status == 503 || e.Status == 504:
			return CauseUnavailable, true
		}
		return "", false
	}
	var tokenErr *tokenError
	if errors.As(err, &tokenErr) {
		return "", false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CauseTimeout, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return CauseTimeout, true
	}
	return CauseNetwork, true
}

// tokenError is a failure to get the caller's own credentials: retrying the
// API call does not help.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "client: get access token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }
