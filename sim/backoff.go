package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam/api/client"
)

// BackoffPolicy is the exponential backoff of the workload's clients, as
// configuration (docs/backoff.md). The n-th wait (n from 0) is drawn
// uniformly from base × [1 − Jitter, 1 + Jitter], where base = min(Initial
// × Multiplier^n, MaxInterval); no wait is taken that would end past
// MaxElapsed from the call's start. The client also honours a server's
// Retry-After (never retrying sooner) and fails over to the next region
// after AttemptsPerEndpoint attempts.
type BackoffPolicy struct {
	Initial     Duration `json:"initial,omitempty"`
	Multiplier  float64  `json:"multiplier,omitempty"`
	MaxInterval Duration `json:"maxInterval,omitempty"`
	// Jitter is the randomization factor in [0, 1); nil: the default 0.5.
	Jitter     *float64 `json:"jitter,omitempty"`
	MaxElapsed Duration `json:"maxElapsed,omitempty"`
	// AttemptsPerEndpoint before failing over (default 2); AttemptTimeout
	// bounds one attempt (default 5s).
	AttemptsPerEndpoint int      `json:"attemptsPerEndpoint,omitempty"`
	AttemptTimeout      Duration `json:"attemptTimeout,omitempty"`
}

// Defaults of BackoffPolicy: shorter than the client's own defaults, since
// simulated outages last seconds, not minutes.
const (
	DefaultBackoffInitial    = 50 * time.Millisecond
	DefaultBackoffMultiplier = 2.0
	DefaultBackoffMax        = time.Second
	DefaultBackoffJitter     = 0.5
	DefaultBackoffMaxElapsed = 30 * time.Second
)

// WithDefaults fills unset fields.
func (p BackoffPolicy) WithDefaults() BackoffPolicy {
	if p.Initial == 0 {
		p.Initial = Duration(DefaultBackoffInitial)
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultBackoffMultiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = Duration(DefaultBackoffMax)
	}
	if p.Jitter == nil {
		j := DefaultBackoffJitter
		p.Jitter = &j
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = Duration(DefaultBackoffMaxElapsed)
	}
	if p.AttemptsPerEndpoint == 0 {
		p.AttemptsPerEndpoint = 2
	}
	if p.AttemptTimeout == 0 {
		p.AttemptTimeout = Duration(5 * time.Second)
	}
	return p
}

// Validate checks a policy with its defaults applied.
func (p BackoffPolicy) Validate() error {
	switch {
	case p.Initial <= 0:
		return errors.New("initial must be positive")
	case p.Multiplier < 1:
		return errors.New("multiplier must be at least 1")
	case p.MaxInterval < p.Initial:
		return errors.New("maxInterval must be at least initial")
	case p.Jitter == nil || *p.Jitter < 0 || *p.Jitter >= 1:
		return errors.New("jitter must be in [0, 1)")
	case p.MaxElapsed <= 0:
		return errors.New("maxElapsed must be positive")
	case p.AttemptsPerEndpoint < 1 || p.AttemptTimeout <= 0:
		return errors.New("attemptsPerEndpoint and attemptTimeout must be positive")
	}
	return nil
}

func (p BackoffPolicy) jitter() float64 {
	if p.Jitter == nil {
		return DefaultBackoffJitter
	}
	return *p.Jitter
}

// NewBackOff returns the policy as a backoff/v4 schedule reading clock
// (backoff.SystemClock when nil), reset and ready.
func (p BackoffPolicy) NewBackOff(clock backoff.Clock) *backoff.ExponentialBackOff {
	if clock == nil {
		clock = backoff.SystemClock
	}
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial.D()),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithMaxInterval(p.MaxInterval.D()),
		backoff.WithRandomizationFactor(p.jitter()),
		backoff.WithMaxElapsedTime(p.MaxElapsed.D()),
		backoff.WithClockProvider(clock),
	)
}

// Base is the n-th interval (n from 0) before jitter.
func (p BackoffPolicy) Base(n int) time.Duration {
	b := float64(p.Initial.D()) * math.Pow(p.Multiplier, float64(n))
	return time.Duration(min(b, float64(p.MaxInterval.D())))
}

// Bounds are the least and greatest n-th wait the policy may draw.
// backoff/v4 draws from [base − j·base, base + j·base + 1ns].
func (p BackoffPolicy) Bounds(n int) (lo, hi time.Duration) {
	b, j := float64(p.Base(n)), p.jitter()
	return time.Duration(b - j*b), time.Duration(b+j*b) + 1
}

// ClientOptions configure an api/client.Client with the policy. clock and
// newTimer may be nil (the real ones); tests inject fakes to check the
// schedule without waiting.
func (p BackoffPolicy) ClientOptions(clock backoff.Clock, newTimer func() backoff.Timer) []client.Option {
	opts := []client.Option{
		client.WithBackoff(p.Initial.D(), p.MaxInterval.D(), p.Multiplier, p.jitter()),
		client.WithMaxElapsedTime(p.MaxElapsed.D()),
		client.WithAttemptsPerEndpoint(p.AttemptsPerEndpoint),
		client.WithAttemptTimeout(p.AttemptTimeout.D()),
	}
	if clock != nil {
		opts = append(opts, client.WithClock(clock))
	}
	if newTimer != nil {
		opts = append(opts, client.WithTimer(newTimer))
	}
	return opts
}

// poll calls op every interval until it returns nil, a permanent error, or
// ctx ends (backoff/v4 with a constant schedule: the probes' re-sends are
// polls, not failures, and are counted apart from retries). newTimer may
// be nil. It returns how many times op ran.
func poll(ctx context.Context, interval time.Duration, newTimer func() backoff.Timer, op func() error) (int, error) {
	var n int
	var t backoff.Timer
	if newTimer != nil {
		t = newTimer()
	}
	err := backoff.RetryNotifyWithTimer(func() error {
		n++
		return op()
	}, backoff.WithContext(backoff.NewConstantBackOff(interval), ctx), nil, t)
	if err != nil && ctx.Err() != nil {
		return n, fmt.Errorf("poll: %w", ctx.Err())
	}
	return n, err
}
