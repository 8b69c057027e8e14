package client

import (
	"context"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"
)

// Defaults of the retry schedule.
const (
	// DefaultInitialInterval is the first backoff interval.
	DefaultInitialInterval = 100 * time.Millisecond
	// DefaultMaxInterval caps one backoff interval.
	DefaultMaxInterval = 2 * time.Second
	// DefaultMultiplier grows the interval after each retry.
	DefaultMultiplier = 2.0
	// DefaultRandomizationFactor is the jitter: each interval is drawn from
	// interval × [1 − f, 1 + f].
	DefaultRandomizationFactor = 0.5
	// DefaultMaxElapsedTime bounds one call, all retries and failovers
	// included.
	DefaultMaxElapsedTime = 15 * time.Second
	// DefaultAttemptsPerEndpoint is how many attempts one endpoint gets
	// (the first and its retries) before the call fails over.
	DefaultAttemptsPerEndpoint = 2
	// DefaultAttemptTimeout bounds one attempt (a check's own consistency
	// wait is added to it).
	DefaultAttemptTimeout = 10 * time.Second
)

// Option configures a Client.
type Option func(*options)

type options struct {
	httpClient *http.Client
	token      func(context.Context) (string, error)
	apiKey     string
	userAgent  string

	initialInterval     time.Duration
	maxInterval         time.Duration
	multiplier          float64
	randomizationFactor float64
	maxElapsed          time.Duration
	attemptsPerEndpoint int
	attemptTimeout      time.Duration

	clock    backoff.Clock
	newTimer func() backoff.Timer
	onRetry  func(RetryEvent)
	noIdem   bool
}

func defaultOptions() options {
	return options{
		httpClient:          &http.Client{},
		userAgent:           "iam-go-client",
		initialInterval:     DefaultInitialInterval,
		maxInterval:         DefaultMaxInterval,
		multiplier:          DefaultMultiplier,
		randomizationFactor: DefaultRandomizationFactor,
		maxElapsed:          DefaultMaxElapsedTime,
		attemptsPerEndpoint: DefaultAttemptsPerEndpoint,
		attemptTimeout:      DefaultAttemptTimeout,
		clock:               backoff.SystemClock,
	}
}

// WithHTTPClient sets the HTTP client. Default: a plain http.Client (each
// attempt is bounded by WithAttemptTimeout instead of a client timeout).
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) {
		if hc != nil {
			o.httpClient = hc
		}
	}
}

// WithTokenSource authenticates with bearer tokens from ts, for example
// ClientCredentials(...). Tokens are fetched per attempt; wrap ts in
// oauth2.ReuseTokenSource to cache them (ClientCredentials already does).
func WithTokenSource(ts oauth2.TokenSource) Option {
	return WithTokenFunc(func(context.Context) (string, error) {
		t, err := ts.Token()
		if err != nil {
			return "", err
		}
		return t.AccessToken, nil
	})
}

// WithTokenFunc authenticates with the bearer token that fn returns.
func WithTokenFunc(fn func(context.Context) (string, error)) Option {
	return func(o *options) { o.token, o.apiKey = fn, "" }
}

// WithToken authenticates with one fixed bearer access token.
func WithToken(token string) Option {
	return WithTokenFunc(func(context.Context) (string, error) { return token, nil })
}

// WithAPIKey authenticates with an API key (X-API-Key). The API accepts keys
// on checks and reads only.
func WithAPIKey(key string) Option {
	return func(o *options) { o.apiKey, o.token = key, nil }
}

// WithBackoff sets the exponential schedule: the first interval, the cap on
// one interval, the multiplier and the jitter factor (0 for none). Zero
// values keep the defaults, except jitter, which is taken as given.
func WithBackoff(initial, maxInterval time.Duration, multiplier, jitter float64) Option {
	return func(o *options) {
		if initial > 0 {
			o.initialInterval = initial
		}
		if maxInterval > 0 {
			o.maxInterval = maxInterval
		}
		if multiplier >= 1 {
			o.multiplier = multiplier
		}
		if jitter >= 0 && jitter < 1 {
			o.randomizationFactor = jitter
		}
	}
}

// WithMaxElapsedTime bounds one call with all its retries and failovers.
// Default DefaultMaxElapsedTime; the context's deadline bounds it too.
func WithMaxElapsedTime(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.maxElapsed = d
		}
	}
}

// WithAttemptsPerEndpoint sets how many attempts an endpoint gets before the
// call fails over to the next (at least 1). Default DefaultAttemptsPerEndpoint.
func WithAttemptsPerEndpoint(n int) Option {
	return func(o *options) {
		if n >= 1 {
			o.attemptsPerEndpoint = n
		}
	}
}

// WithAttemptTimeout bounds one attempt; an attempt that times out is
// retried like a network error. Default DefaultAttemptTimeout.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.attemptTimeout = d
		}
	}
}

// WithClock sets the clock the schedule reads (Retry-After dates, the
// elapsed-time budget). Tests pair it with WithTimer.
func WithClock(c backoff.Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithTimer sets the timer the client sleeps on between attempts: newTimer
// is called once per call. Tests inject a fake that advances a fake clock.
func WithTimer(newTimer func() backoff.Timer) Option {
	return func(o *options) { o.newTimer = newTimer }
}

// WithOnRetry calls fn before each retry and each failover, from the
// calling goroutine. fn must not block.
func WithOnRetry(fn func(RetryEvent)) Option {
	return func(o *options) { o.onRetry = fn }
}

// WithoutIdempotencyKeys stops the client from adding an Idempotency-Key to
// writes. Writes are then never retried nor failed over: a write that may
// have been applied is not sent twice.
func WithoutIdempotencyKeys() Option {
	return func(o *options) { o.noIdem = true }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}
