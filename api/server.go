package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/replica"
	"github.com/iam-project/iam/replica/lag"
)

// Config configures a Server.
type Config struct {
	// Mode is how the server runs: &Hub{...} beside the writer, or
	// &Region{...} relaying to the hub. Required.
	Mode Mode
	// Replicas answer reads, one per region, in preference order.
	Replicas []Replica
	// Log is the log the change feed follows and lag is measured against.
	Log Log
	// Vault keeps the keys of personal data (keyvault.Vault, or
	// keyvault.Lazy to open it on first use).
	Vault Vault
	// Metrics, if set, is kept current and served on GET /metrics.
	Metrics *Metrics

	// Issuer is the token issuer and the base URL in discovery. Required:
	// it is never taken from a request's Host header (iamd sets its
	// listener's URL when --issuer is not given).
	Issuer string
	// Audience of issued tokens. Default "iam".
	Audience string
	// DefaultRegion answers requests that name no region. Default: the
	// first replica.
	DefaultRegion string
	// HashParams are the argon2id parameters for new secrets.
	HashParams auth.HashParams
	// MaxTokenLifetime caps expires_in. Default 24h.
	MaxTokenLifetime time.Duration
	// IdempotencySecret keys the digests of idempotent requests and the ids
	// derived from Idempotency-Keys; it must survive restarts. Default: a
	// random key (idempotency then holds only within this process's life).
	IdempotencySecret []byte
	// DataDir, if set, holds the default mail outbox (identity.go).
	DataDir string
	// Identity holds the identity provider's rules (identity.go).
	Identity IdentityConfig
	Logger   *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// HeartbeatInterval is the hub's heartbeat period (see
	// eventlog.Heartbeater), which bounds the lag a region reports while it
	// cannot reach the log. Default 1s.
	HeartbeatInterval time.Duration
	// MaxLag, when positive, marks a region whose lag in seconds exceeds
	// it unhealthy, and /readyz not ready.
	MaxLag time.Duration
	// PublishStatus, when set, is given every local region's status (JSON)
	// once a second, for the other processes (eventlog/bus Publish on
	// bus.StatusSubjectPrefix + "." + region); they hand it to
	// ReceiveStatus, and GET /v1/replicas then shows every region.
	PublishStatus func(region string, data []byte)
	// MaxStreamsPerIdentity caps the change feeds (GET /v1/changes) one
	// identity holds open at once; past it the feed answers 429
	// rate_limited with Retry-After. Default 4.
	MaxStreamsPerIdentity int
	// MaxStreams caps the change feeds open at once on this server.
	// Default 256.
	MaxStreams int
	// MaxConcurrentHashes bounds the argon2id hashes and verifications
	// run at once (each ~19 MiB and tens of ms of CPU by default); one
	// that waits longer than HashWait for a slot, or past its request,
	// answers 503 unavailable with Retry-After. Defaults 2×GOMAXPROCS
	// and 1s.
	MaxConcurrentHashes int
	HashWait            time.Duration

	// Snapshots publishes the snapshots of the default region's replica
	// that POST /v1/replicas/snapshot asks for (digest.go); nil: that
	// endpoint answers unavailable.
	Snapshots Snapshots
}

// Server serves the HTTP API over one replica per region, as a hub or a
// region (Config.Mode).
type Server struct {
	cfg      Config
	log      *slog.Logger
	mode     mode
	evlog    Log
	vault    Vault
	replicas map[string]Replica
	regions  []string
	verify   *auth.VerifyCache
	hashes   *hashGate // bounds argon2id work (hashgate.go)
	metrics  *Metrics
	// dummy is the hash unknown emails are verified against (dummyHash).
	dummyOnce sync.Once
	dummy     string
	lag       *lag.Monitor
	mux       *http.ServeMux
	idp       *identityProvider // identity.go

	idemSecret []byte
	tokens     *tokenCache

	streams      context.Context // cancelled when the server stops
	closeStreams context.CancelFunc
	feeds        feedSlots // open change feeds, per identity and in all
}

// New returns a server. It panics without Config.Mode.
func New(cfg Config) *Server {
	if cfg.Mode == nil {
		panic("api: Config.Mode is required (&api.Hub{...} or &api.Region{...})")
	}
	if cfg.Audience == "" {
		cfg.Audience = "iam"
	}
	if cfg.MaxStreamsPerIdentity <= 0 {
		cfg.MaxStreamsPerIdentity = 4
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 256
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = time.Second
	}
	if cfg.MaxTokenLifetime == 0 {
		cfg.MaxTokenLifetime = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HashParams == (auth.HashParams{}) {
		cfg.HashParams = auth.DefaultHashParams()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = lag.DefaultHeartbeatInterval
	}
	if cfg.Vault == nil {
		cfg.Vault = noVault{}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, evlog: cfg.Log, vault: cfg.Vault,
		replicas: map[string]Replica{}, verify: auth.NewVerifyCache(auth.DefaultVerifyCacheSize), metrics: cfg.Metrics}
	s.hashes = newHashGate(cfg.MaxConcurrentHashes, cfg.HashWait, s.metrics)
	// Cache misses take a slot too; hits cost no argon2id and never wait.
	s.verify.Compute = func(secret, phc string) (bool, error) {
		return s.verifySecret(context.Background(), secret, phc)
	}
	lagReplicas := make([]lag.Replica, 0, len(cfg.Replicas))
	for _, r := range cfg.Replicas {
		s.replicas[r.Region()] = r
		s.regions = append(s.regions, r.Region())
		lagReplicas = append(lagReplicas, r)
	}
	if s.cfg.DefaultRegion == "" && len(s.regions) > 0 {
		s.cfg.DefaultRegion = s.regions[0]
	}
	s.tokens = newTokenCache(100_000)
	s.streams, s.closeStreams = context.WithCancel(context.Background())
	s.idemSecret = cfg.IdempotencySecret
	if len(s.idemSecret) == 0 {
		s.idemSecret = make([]byte, 32)
		_, _ = rand.Read(s.idemSecret)
	}
	lagCfg := lag.Config{Replicas: lagReplicas, HeartbeatInterval: cfg.HeartbeatInterval, MaxLag: cfg.MaxLag,
		Token: FormatToken, Publish: cfg.PublishStatus, Measured: s.metrics.measured, Now: cfg.Now}
	if cfg.Log != nil {
		lagCfg.Log = cfg.Log // not a nil Log in a non-nil interface
	}
	s.lag = lag.New(lagCfg)
	s.metrics.setMaxLag(cfg.MaxLag)
	s.idp = newIdentityProvider(s.cfg)
	s.mode = cfg.Mode.newMode(s)
	s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	return s.metrics.instrument(s.mux, s.recoverer(s.mode.handler(s.mux)))
}

// Start starts the server's background work (the lag monitor); Stop ends it.
// A regional server also fetches the hub's keys, if it can.
func (s *Server) Start(ctx context.Context) {
	s.mode.start(ctx)
	s.lag.Start(ctx)
}

// Stop stops the background work.
func (s *Server) Stop() {
	s.closeStreams()
	s.lag.Stop()
}

// CloseStreams ends every open change feed: http.Server.Shutdown waits for
// running requests but never cancels them.
func (s *Server) CloseStreams() { s.closeStreams() }

type ctxKey int

const (
	ctxCorrelation ctxKey = iota
	ctxPrincipal
)

func correlationID(r *http.Request) string {
	if v, ok := r.Context().Value(ctxCorrelation).(string); ok {
		return v
	}
	return ""
}

// recoverer gives each request a correlation id and turns a panic into a
// logged internal error: no input may take the server down.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Correlation-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Correlation-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), ctxCorrelation, id))
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Principal is the authenticated caller.
type Principal struct {
	Realm string
	ID    string
	Kind  string
	// Scope is the token's scope: a project HRN for a project-scoped
	// client-credentials token (for a client at the token endpoint, its
	// default project's, the scope its token gets when it asks for none);
	// the granted OIDC scopes (oidcScopes) for a user's token from the
	// authorization-code flow.
	Scope string
	// Credential is the client credential the caller's token was issued
	// through, if any (the token's cid).
	Credential string
	// ExpiresAt is the token's exp (zero for an API key).
	ExpiresAt time.Time
	issuedAt  time.Time // the token's iat
	keyID     string    // the kid of the token's signing key
}

// stillValid says whether the caller's token still stands on st: its
// signing key not revoked, its identity active, the token issued after
// TokensNotBefore, and its client credential, if any, present and enabled.
// The key is judged here, on the replica, rather than only by dropping it
// from the keys: a region's copy of the hub's keys and the verified-token
// cache both outlive a revocation, the replica does not.
func (p Principal) stillValid(st *iam.State) error {
	if _, revoked := st.RevokedKey(p.keyID); p.keyID != "" && revoked {
		return iam.Errorf(iam.EUnauthenticated, "the token's signing key was revoked")
	}
	id := st.Identity(p.Realm, p.ID)
	if id == nil || id.Status != iam.StatusActive {
		return iam.Errorf(iam.EUnauthenticated, "the token's identity is not active")
	} else if revokedToken(p.issuedAt, id.SignInState().TokensNotBefore) {
		return iam.Errorf(iam.EUnauthenticated, "the token was revoked")
	} else if cred, ok := id.AppState().Credentials[p.Credential]; p.Credential != "" && (!ok || cred.Disabled) {
		return iam.Errorf(iam.EUnauthenticated, "the token's client credential is disabled or deleted")
	}
	return nil
}

func principal(r *http.Request) Principal {
	p, _ := r.Context().Value(ctxPrincipal).(Principal)
	return p
}

// authed wraps a handler that needs a caller: a bearer token (or, where
// apiKeyOK, an API key). Authentication comes before anything else.
// Inside a simulation (simulate.go) the caller is the simulation's, already
// authenticated.
func (s *Server) authed(apiKeyOK bool, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return authedHandler(func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		var err error
		if sim := simulationFrom(r.Context()); sim != nil {
			p = sim.p
		} else {
			p, err = s.authenticate(r, apiKeyOK)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxPrincipal, p))
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authedHandler is a handler that needs a caller: its type tells a
// simulation which routes act as the caller.
type authedHandler func(http.ResponseWriter, *http.Request)

func (h authedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h(w, r) }

func (s *Server) authenticate(r *http.Request, apiKeyOK bool) (Principal, error) {
	// A key in a URL lands in access logs, proxies and browser histories:
	// refused wherever it is sent, with or without other credentials.
	if r.URL.Query().Has("apiKey") {
		return Principal{}, &iam.Error{Code: iam.EUnauthenticated, Field: "apiKey",
			Message: "an API key is accepted in the X-API-Key header only, never in the URL (?apiKey=): a key in a URL lands in logs; send it as X-API-Key, and rotate a key that was sent in a URL"}
	}
	if apiKeyOK {
		if key := r.Header.Get("X-API-Key"); key != "" {
			return s.authenticateAPIKey(r, key)
		}
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, iam.Errorf(iam.EUnauthenticated, "a bearer access token is required (Authorization: Bearer <token>)")
	}
	return s.tokenPrincipal(r, strings.TrimSpace(token))
}

// tokenPrincipal verifies an access token — signature, issuer, expiry —
// and that it still stands on the region's replica (stillValid). A token
// that does not is an unauthenticated error; keys or a replica that cannot
// judge it now are other errors. A check's subjectToken is judged here too,
// exactly as a bearer token is.
func (s *Server) tokenPrincipal(r *http.Request, token string) (Principal, error) {
	c, err := s.verifyToken(token, s.issuer())
	if errors.Is(err, auth.ErrKeysUnavailable) {
		return Principal{}, iam.Errorf(iam.EUnavailable, "the token cannot be checked now: the hub's keys are unavailable")
	} else if err != nil {
		return Principal{}, iam.Errorf(iam.EUnauthenticated, "the access token is not valid: %v", err)
	}
	p := Principal{Realm: c.Realm, ID: c.Subject, Kind: c.Kind, Scope: c.Scope, Credential: c.Credential, ExpiresAt: c.ExpiresAt, issuedAt: c.IssuedAt, keyID: c.KeyID}
	// A token outlives nothing: an identity deactivated or deleted since the
	// token was issued is refused by the region's replica once the change
	// has reached it. The replica is first brought to the token's own
	// position, so a token is never judged on a state older than itself.
	rep, err := s.region(r)
	if err != nil {
		return Principal{}, err
	}
	// A Consistency-Token header (a check's token, say) raises the floor: an
	// identity reactivated by that write is not refused by a replica that
	// has not applied it yet — the replica waits instead, or says it is
	// behind.
	cons, err := s.headerConsistency(r, c.Position)
	if err != nil {
		return Principal{}, err
	}
	_, err = rep.Read(r.Context(), cons, p.stillValid)
	return p, err
}

// authenticateAPIKey finds the key on the region's replica (at least as
// fresh as a Consistency-Token header, if sent) and verifies it.
func (s *Server) authenticateAPIKey(r *http.Request, key string) (Principal, error) {
	keyID, _, ok := strings.Cut(key, ".")
	bad := iam.Errorf(iam.EUnauthenticated, "the API key is not valid")
	if !ok || iam.ValidID("apiKey", keyID) != nil {
		return Principal{}, bad
	}
	rep, err := s.region(r)
	if err != nil {
		return Principal{}, err
	}
	var p Principal
	var hash string
	lookup := func(floor uint64) error {
		c, err := s.headerConsistency(r, floor)
		if err != nil {
			return err
		}
		_, err = rep.Read(r.Context(), c, func(st *iam.State) error {
			realm, app, h, found := st.APIKey(keyID)
			if found && app.Status == iam.StatusActive {
				p, hash = Principal{Realm: realm, ID: app.ID, Kind: string(iam.KindApp)}, h
			}
			return nil
		})
		return err
	}
	// A key unknown to the replica may be younger than what it has applied:
	// look again once it has every write this server acknowledged, rather
	// than refuse a key the client was just given.
	if err := lookup(0); err != nil {
		return Principal{}, err
	}
	if hash == "" {
		if err := lookup(s.acknowledged()); err != nil {
			return Principal{}, err
		}
	}
	if hash == "" {
		return Principal{}, bad
	}
	okHash, err := s.verify.Verify(key, hash)
	if errors.Is(err, errHashBusy) {
		return Principal{}, err
	}
	if err != nil || !okHash {
		return Principal{}, bad
	}
	return p, nil
}

// latest runs fn on the latest state, the writer's: management
// authorization and the token endpoint judge there, so a role just revoked
// stops working at once. A region has no writer (and a hub of several
// processes has several, see Hub.LatestFromReplica): it reads its replica
// once that has applied the log's head as of now (fully_consistent), and
// answers replica_behind when it cannot learn the head (a region cut off
// from the hub). ctx is the request's: a cancelled request stops waiting.
//
// In a simulation, the latest state is the simulation's own.
func (s *Server) latest(ctx context.Context, fn func(*iam.State) error) error {
	if sim := simulationFrom(ctx); sim != nil {
		return fn(sim.st)
	}
	return s.mode.latest(ctx, fn)
}

// latestFromReplica is latest on the default region's replica.
func (s *Server) latestFromReplica(ctx context.Context, fn func(*iam.State) error) error {
	rep := s.replicas[s.cfg.DefaultRegion]
	if rep == nil {
		return iam.Errorf(iam.EUnavailable, "no replica serves this region")
	}
	_, err := rep.Read(ctx, replica.Consistency{Mode: iam.FullyConsistent}, fn)
	return err
}

// acknowledged is the position of every write this server has acknowledged
// (in a region: relayed from the hub).
func (s *Server) acknowledged() uint64 { return s.mode.acknowledged() }

// issuer is the configured issuer: fixed, never taken from a request
// (its Host header is the client's to choose).
func (s *Server) issuer() string { return s.cfg.Issuer }

// region picks the replica that answers: Iam-Region or ?region=, else the default.
func (s *Server) region(r *http.Request) (Replica, error) {
	name := r.Header.Get("Iam-Region")
	if name == "" {
		name = r.URL.Query().Get("region")
	}
	if name == "" {
		name = s.cfg.DefaultRegion
	}
	rep := s.replicas[name]
	if rep == nil {
		return nil, iam.FieldErrorf("region", "%q is not a region served here (%s)", name, strings.Join(s.regions, ", "))
	}
	return rep, nil
}

// Consistency tokens are opaque to clients; inside they are log sequences.
const tokenPrefix = "ct1."

// FormatToken makes the opaque consistency token of a log sequence.
func FormatToken(seq uint64) string { return tokenPrefix + strconv.FormatUint(seq, 36) }

// ParseToken reads a consistency token; errors name field.
func ParseToken(field, t string) (uint64, error) {
	rest, ok := strings.CutPrefix(t, tokenPrefix)
	if ok && len(rest) <= 13 {
		if seq, err := strconv.ParseUint(rest, 36, 64); err == nil {
			return seq, nil
		}
	}
	return 0, iam.FieldErrorf(field, "%q is not a consistency token", t)
}

// readConsistency is what management reads wait for: the Consistency-Token
// header if sent, and at least every write this server has acknowledged.
func (s *Server) readConsistency(r *http.Request) (replica.Consistency, error) {
	return s.headerConsistency(r, s.acknowledged())
}

// headerConsistency is at_least_as_fresh the later of floor and the
// request's Consistency-Token header.
func (s *Server) headerConsistency(r *http.Request, floor uint64) (replica.Consistency, error) {
	seq := floor
	if t := r.Header.Get("Consistency-Token"); t != "" {
		hs, err := ParseToken("Consistency-Token", t)
		if err != nil {
			return replica.Consistency{}, err
		}
		seq = max(seq, hs)
	}
	return replica.Consistency{Mode: iam.AtLeastAsFresh, Token: seq}, nil
}
