package sim_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/sim"
)

// fakeClock is a backoff.Clock that moves only when a fakeTimer sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// fakeTimer fires at once, advancing the clock by the wait it was given,
// and records every wait.
type fakeTimer struct {
	clock *fakeClock
	ch    chan time.Time
	mu    *sync.Mutex
	waits *[]time.Duration
}

func (t *fakeTimer) Start(d time.Duration) {
	t.mu.Lock()
	*t.waits = append(*t.waits, d)
	t.mu.Unlock()
	t.ch <- t.clock.advance(d)
}
func (t *fakeTimer) Stop()               {}
func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func jitter(f float64) *float64          { return &f }
func dur(d time.Duration) sim.Duration   { return sim.Duration(d) }
func (t *fakeTimer) recorded() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Duration(nil), *t.waits...)
}

func newFakeTimer(c *fakeClock) *fakeTimer {
	return &fakeTimer{clock: c, ch: make(chan time.Time, 1), mu: &sync.Mutex{}, waits: new([]time.Duration)}
}

// TestBackoffPolicy_Schedule checks the exact schedule without jitter: the
// interval doubles from initial, stops growing at maxInterval, and no wait
// is taken that would end past maxElapsed; every retry is notified.
func TestBackoffPolicy_Schedule(t *testing.T) {
	p := sim.BackoffPolicy{Initial: dur(100 * time.Millisecond), Multiplier: 2, MaxInterval: dur(time.Second),
		Jitter: jitter(0), MaxElapsed: dur(5 * time.Second)}.WithDefaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	timer := newFakeTimer(clock)
	var notified []time.Duration
	fail := errors.New("unavailable")
	err := backoff.RetryNotifyWithTimer(func() error { return fail }, backoff.WithContext(p.NewBackOff(clock), context.Background()),
		func(_ error, d time.Duration) { notified = append(notified, d) }, timer)
	if !errors.Is(err, fail) {
		t.Fatalf("got %v, want the operation's error once the budget is spent", err)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	got := timer.recorded()
	if len(got) != len(want) {
		t.Fatalf("got waits %v, want %v (ms)", got, want)
	}
	var total time.Duration
	for i := range want {
		if got[i] != want[i]*time.Millisecond || notified[i] != got[i] {
			t.Errorf("wait %d: got %s (notified %s), want %dms", i, got[i], notified[i], want[i])
		}
		if base := p.Base(i); base != want[i]*time.Millisecond {
			t.Errorf("Base(%d): got %s, want %dms", i, base, want[i])
		}
		total += got[i]
	}
	if total > p.MaxElapsed.D() {
		t.Errorf("waited %s in all, want at most maxElapsed %s", total, p.MaxElapsed.D())
	}
}

// TestBackoffPolicy_JitterBounds draws many schedules and checks every
// wait lies within Bounds, and that jitter really spreads them.
func TestBackoffPolicy_JitterBounds(t *testing.T) {
	for _, j := range []float64{0.1, 0.5, 0.9} {
		p := sim.BackoffPolicy{Initial: dur(50 * time.Millisecond), Multiplier: 1.5, MaxInterval: dur(400 * time.Millisecond),
			Jitter: jitter(j), MaxElapsed: dur(time.Hour)}.WithDefaults()
		clock := newFakeClock()
		lowest, highest := map[int]time.Duration{}, map[int]time.Duration{}
		for range 500 {
			b := p.NewBackOff(clock)
			for n := range 10 {
				d := b.NextBackOff()
				lo, hi := p.Bounds(n)
				if d < lo || d > hi {
					t.Fatalf("jitter %g, wait %d: got %s, want within [%s, %s]", j, n, d, lo, hi)
				}
				if v, ok := lowest[n]; !ok || d < v {
					lowest[n] = d
				}
				highest[n] = max(highest[n], d)
			}
		}
		for n := range 10 {
			base := float64(p.Base(n))
			if spread := float64(highest[n]-lowest[n]) / base; spread < j {
				t.Errorf("jitter %g, wait %d: draws spread over %.2f of the base, want at least %g", j, n, spread, j)
			}
		}
	}
}

// TestBackoffPolicy_Client runs the workload's client configured by a
// policy against a server that always answers 503 replica_behind, with an
// injected clock and timer: each retry is an observable event whose wait
// is within the policy's bounds, and the call gives up within maxElapsed.
func TestBackoffPolicy_Client(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":503,"code":"replica_behind","title":"behind"}`))
	}))
	defer srv.Close()
	p := sim.BackoffPolicy{Initial: dur(20 * time.Millisecond), Multiplier: 2, MaxInterval: dur(160 * time.Millisecond),
		Jitter: jitter(0.25), MaxElapsed: dur(2 * time.Second)}.WithDefaults()
	clock := newFakeClock()
	timer := newFakeTimer(clock)
	var events []client.RetryEvent
	opts := append(p.ClientOptions(clock, func() backoff.Timer { return timer }),
		client.WithToken("t"), client.WithOnRetry(func(ev client.RetryEvent) { events = append(events, ev) }))
	c, err := client.New([]string{srv.URL}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Check(context.Background(), client.CheckRequest{Action: "read", Resource: "hrn:here:data::r:x"})
	if client.Code(err) != client.CodeReplicaBehind {
		t.Fatalf("got %v, want replica_behind once the budget is spent", err)
	}
	if real := time.Since(start); real > time.Second {
		t.Errorf("the call took %s of real time, want the injected timer to do the waiting", real)
	}
	waits := timer.recorded()
	if len(events) == 0 || len(events) != len(waits) || int(hits.Load()) != len(events)+1 {
		t.Fatalf("got %d retry events, %d waits and %d requests, want n, n and n+1", len(events), len(waits), hits.Load())
	}
	var total time.Duration
	for n, ev := range events {
		lo, hi := p.Bounds(n)
		if ev.Cause != client.CauseReplicaBehind || ev.Delay != waits[n] || ev.Delay < lo || ev.Delay > hi {
			t.Errorf("retry %d: got cause %s delay %s (timer %s), want replica_behind within [%s, %s]", n, ev.Cause, ev.Delay, waits[n], lo, hi)
		}
		total += ev.Delay
	}
	if total > p.MaxElapsed.D() {
		t.Errorf("waited %s, want at most %s", total, p.MaxElapsed.D())
	}
	st := c.Stats()
	if st.Retries[client.CauseReplicaBehind] != uint64(len(events)) || st.GaveUp != 1 {
		t.Errorf("client stats: got %d retries and %d given up, want %d and 1", st.Retries[client.CauseReplicaBehind], st.GaveUp, len(events))
	}
}

func TestBackoffPolicy_Validate(t *testing.T) {
	ok := sim.BackoffPolicy{}.WithDefaults()
	tests := []struct {
		name string
		edit func(*sim.BackoffPolicy)
	}{
		{"zero initial", func(p *sim.BackoffPolicy) { p.Initial = 0 }},
		{"shrinking", func(p *sim.BackoffPolicy) { p.Multiplier = 0.5 }},
		{"max below initial", func(p *sim.BackoffPolicy) { p.MaxInterval = p.Initial / 2 }},
		{"jitter of 1", func(p *sim.BackoffPolicy) { p.Jitter = jitter(1) }},
		{"negative jitter", func(p *sim.BackoffPolicy) { p.Jitter = jitter(-0.1) }},
		{"no budget", func(p *sim.BackoffPolicy) { p.MaxElapsed = -1 }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: got %v, want valid", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			if err := p.Validate(); err == nil {
				t.Errorf("got valid, want an error")
			}
		})
	}
}
