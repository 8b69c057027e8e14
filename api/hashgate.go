package api

import (
	"context"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// hashGate bounds the argon2id computations (hashes and verifications) run
// at once: each takes tens of milliseconds of CPU and ~19 MiB, so a burst of
// sign-ins or token requests from many sources would otherwise exhaust CPU
// and memory for everyone. A computation waits for a slot at most
// Config.HashWait (or until its request ends), then is refused with
// errHashBusy (503 with Retry-After) rather than piling up.
type hashGate struct {
	slots   chan struct{}
	wait    time.Duration
	metrics *Metrics
}

var errHashBusy = iam.Errorf(iam.EUnavailable, "too many password checks at once; retry shortly")

func newHashGate(n int, wait time.Duration, m *Metrics) *hashGate {
	return &hashGate{slots: make(chan struct{}, n), wait: wait, metrics: m}
}

// do runs fn in a slot, or returns errHashBusy when none frees in time.
func (g *hashGate) do(ctx context.Context, fn func()) error {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		g.metrics.hashRefused()
		return errHashBusy
	case <-t.C:
		g.metrics.hashRefused()
		return errHashBusy
	}
	g.metrics.hashStarted()
	defer func() {
		g.metrics.hashDone()
		<-g.slots
	}()
	fn()
	return nil
}

// hash is auth.Hash with the server's parameters, in a slot.
func (s *Server) hash(ctx context.Context, secret string) (string, error) {
	var phc string
	var err error
	if gerr := s.hashes.do(ctx, func() { phc, err = auth.Hash(secret, s.cfg.HashParams) }); gerr != nil {
		return "", gerr
	}
	return phc, err
}

// verifySecret is auth.Verify in a slot; errHashBusy when none frees.
func (s *Server) verifySecret(ctx context.Context, secret, phc string) (bool, error) {
	var ok bool
	var err error
	if gerr := s.hashes.do(ctx, func() { ok, err = auth.Verify(secret, phc) }); gerr != nil {
		return false, gerr
	}
	return ok, err
}
