package api

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/api/relay"
	"github.com/iam-project/iam/eventlog/writer"
)

// Writer is the command side the hub writes through (writer.Writer).
type Writer interface {
	// Execute decides and appends one command; it returns the entry's
	// position, or the first one's for a replayed idempotent request.
	// Errors: the domain's codes (invalid_argument, permission_denied,
	// not_found, conflict, limit_exceeded) and unavailable.
	Execute(ctx context.Context, req iam.Request) (writer.Result, error)
	// View runs fn on the writer's state, the latest this process knows.
	View(fn func(*iam.State) error) error
	// Position is the sequence of every write the writer has acknowledged.
	Position() uint64
}

var _ Writer = (*writer.Writer)(nil)

// Mode is how a Server runs: as a *Hub (it writes and signs) or as a
// *Region (it relays writes and token requests to the hub). Only those two
// types implement it.
type Mode interface {
	newMode(s *Server) mode
}

// Hub is the mode of a server beside the log's writer: it executes
// writes, signs tokens and answers the requests regions relay
// (Server.ServeForwarded).
type Hub struct {
	// Writer executes writes. Required.
	Writer Writer
	// Keys sign the access tokens. Required.
	Keys *auth.KeySet
	// KeyDir, if set, holds the sealed signing keys (auth.KeyFile): every
	// rotation is saved there.
	KeyDir string
	// LatestFromReplica makes management authorization read the default
	// region's replica at the log's head (fully_consistent) rather than
	// the writer's state: a hub of several processes has several writers,
	// each of which learns the others' entries only on a conflict, so none
	// of their states is the latest.
	LatestFromReplica bool
}

// Region is the mode of a regional server: it has no writer and no
// signing keys; it relays writes and token requests to the hub through
// Relay, verifies tokens with the hub's JWKS fetched the same way, judges
// management reads on its replica at the hub's head (fully_consistent),
// and answers reads from its replica even when the hub is unreachable.
type Region struct {
	// Relay carries a relayed request to the hub. Required.
	Relay relay.Forwarder
	// Timeout bounds one relayed request. Default DefaultForwardTimeout.
	Timeout time.Duration
	// JWKSMaxAge is how old the region's copy of the hub's keys may grow
	// before it is fetched again (auth.RemoteKeySet.MaxAge): a key the hub
	// dropped is refused here within it. Default auth.DefaultJWKSMaxAge.
	JWKSMaxAge time.Duration
}

// DefaultForwardTimeout bounds one request a region relays to the hub.
const DefaultForwardTimeout = 10 * time.Second

// mode is what differs between a hub and a region. The handlers call it
// and never ask which one they run in.
type mode interface {
	// execute runs a command through the writer; a region, whose writes
	// are relayed before they reach a handler, answers unavailable.
	execute(ctx context.Context, req iam.Request) (writer.Result, error)
	// latest runs fn on the latest state (see Server.latest).
	latest(ctx context.Context, fn func(*iam.State) error) error
	// acknowledged is the position of every write this server has
	// acknowledged (in a region: relayed from the hub).
	acknowledged() uint64
	// verifier verifies access tokens.
	verifier() tokenVerifier
	// signer is the key set that signs tokens; unavailable in a region.
	signer() (*auth.KeySet, error)
	// rotateKeys rotates and persists the signing keys (signingkeys.go);
	// unavailable in a region.
	rotateKeys(now time.Time) error
	// dropKey removes a revoked key from the signing keys and persists
	// them (signingkeys.go); unavailable in a region.
	dropKey(kid string) error
	// handler wraps the server's routes (a region relays some requests).
	handler(next http.Handler) http.Handler
	start(ctx context.Context)
}

// tokenVerifier verifies access tokens: the KeySet that signs them, or in
// a region the hub's keys (auth.RemoteKeySet).
type tokenVerifier interface {
	Verify(token, issuer, audience string, now time.Time) (auth.Claims, error)
}

// hubMode is a Hub at work.
type hubMode struct {
	Hub
	s       *Server
	keyFile *auth.KeyFile // nil without Hub.KeyDir
}

func (h *Hub) newMode(s *Server) mode {
	m := &hubMode{Hub: *h, s: s}
	if h.KeyDir != "" {
		f, err := auth.OpenKeyFile(h.KeyDir)
		if err == nil {
			err = f.Adopt(h.Keys)
		}
		if err != nil {
			s.log.Error("signing keys: cannot seal or load; keeping the keys given", "err", err)
		} else {
			m.keyFile = f
		}
	}
	return m
}

func (m *hubMode) execute(ctx context.Context, req iam.Request) (writer.Result, error) {
	return m.Writer.Execute(ctx, req)
}

func (m *hubMode) latest(ctx context.Context, fn func(*iam.State) error) error {
	if m.LatestFromReplica {
		return m.s.latestFromReplica(ctx, fn)
	}
	return m.Writer.View(fn)
}

func (m *hubMode) acknowledged() uint64                   { return m.Writer.Position() }
func (m *hubMode) verifier() tokenVerifier                { return m.Keys }
func (m *hubMode) signer() (*auth.KeySet, error)          { return m.Keys, nil }
func (m *hubMode) handler(next http.Handler) http.Handler { return next }
func (m *hubMode) start(context.Context)                  {}

// regionMode is a Region at work.
type regionMode struct {
	Region
	s      *Server
	client relay.Client
	keys   *auth.RemoteKeySet
	// acked is the highest consistency token relayed to a client: the
	// floor of this region's management reads.
	acked atomic.Uint64
	// forwarded counts relayed requests by result (ok, unavailable, error).
	forwarded *prometheus.CounterVec
}

func (r *Region) newMode(s *Server) mode {
	m := &regionMode{Region: *r, s: s, client: relay.Client{Forward: r.Relay, Region: s.cfg.DefaultRegion}}
	if m.Timeout <= 0 {
		m.Timeout = DefaultForwardTimeout
	}
	m.keys = &auth.RemoteKeySet{Fetch: func(ctx context.Context) ([]byte, error) {
		return m.client.Get(ctx, "/.well-known/jwks.json")
	}, Now: s.cfg.Now, MaxAge: r.JWKSMaxAge, Log: s.log}
	if s.metrics != nil {
		m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iam_forwarded_requests_total", Help: "Requests relayed from this region to the hub, by result.",
		}, []string{"result"})
		for _, r := range []string{"ok", "unavailable", "error"} {
			m.forwarded.WithLabelValues(r)
		}
		s.metrics.Registry.MustRegister(m.forwarded)
	}
	return m
}

func (m *regionMode) execute(context.Context, iam.Request) (writer.Result, error) {
	return writer.Result{}, iam.Errorf(iam.EUnavailable, "this server does not write; writes go to the hub")
}

func (m *regionMode) latest(ctx context.Context, fn func(*iam.State) error) error {
	return m.s.latestFromReplica(ctx, fn)
}

func (m *regionMode) acknowledged() uint64    { return m.acked.Load() }
func (m *regionMode) verifier() tokenVerifier { return m.keys }

func (m *regionMode) signer() (*auth.KeySet, error) {
	return nil, iam.Errorf(iam.EUnavailable, "this server does not sign tokens; the hub does")
}

func (m *regionMode) handler(next http.Handler) http.Handler { return m.s.forwarding(m, next) }

// start fetches the hub's keys, if it can.
func (m *regionMode) start(ctx context.Context) {
	if err := m.keys.Refresh(ctx); err != nil {
		m.s.log.Warn("hub keys not fetched yet", "err", err)
	}
}

// ack raises acked to seq.
func (m *regionMode) ack(seq uint64) {
	for {
		old := m.acked.Load()
		if seq <= old || m.acked.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (m *regionMode) count(err error) {
	if m.forwarded == nil {
		return
	}
	switch {
	case err == nil:
		m.forwarded.WithLabelValues("ok").Inc()
	case iam.ErrorCode(err) == iam.EUnavailable:
		m.forwarded.WithLabelValues("unavailable").Inc()
	default:
		m.forwarded.WithLabelValues("error").Inc()
	}
}
