package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog/writer"
)

// IdentityConfig holds the identity provider's rules. Zero fields take the
// defaults named on them.
type IdentityConfig struct {
	// MaxFailedSignIns in a row lock an account (default 5) for
	// LockoutPeriod (default 15m).
	MaxFailedSignIns int
	LockoutPeriod    time.Duration
	// AuthCodeTTL is an authorization code's life (default 2m); a user holds
	// at most MaxAuthCodes outstanding codes (default 10).
	AuthCodeTTL  time.Duration
	MaxAuthCodes int
	// ResetTokenTTL (default 30m) and InvitationTTL (default 7 days).
	ResetTokenTTL time.Duration
	InvitationTTL time.Duration
	// KeyRotation is the age at which the signing key is replaced when a
	// token is next issued (default 30 days); POST /v1/signingKeys/rotate
	// rotates at once.
	KeyRotation time.Duration
	// Token endpoint rate per client id and source address, and sign-in
	// rate per account and per client id and source address, in requests
	// per second with a burst (defaults 20/s burst 40, 1/s burst 10). A
	// client id's failed secrets are also limited at TokenRate over all
	// sources, so a distributed guesser is bounded while one flooding
	// source never locks out the app's other callers. Password-reset
	// confirmations are limited per source address at SignInRate.
	TokenRate, SignInRate   float64
	TokenBurst, SignInBurst int
	// Mail delivers reset and invitation tokens. Default: files in
	// DATA/outbox (mode 0600), see FileMailSender.
	Mail MailSender
	// PersonalDataKeyTTL is how long a user's data key is cached (default 30s).
	PersonalDataKeyTTL time.Duration
}

func (c *IdentityConfig) defaults() {
	setDefault(&c.MaxFailedSignIns, iam.DefaultMaxFailedSignIns)
	setDefault(&c.LockoutPeriod, iam.DefaultLockoutPeriod)
	setDefault(&c.AuthCodeTTL, 2*time.Minute)
	setDefault(&c.MaxAuthCodes, iam.DefaultMaxAuthCodes)
	setDefault(&c.ResetTokenTTL, 30*time.Minute)
	setDefault(&c.InvitationTTL, 7*24*time.Hour)
	setDefault(&c.KeyRotation, 30*24*time.Hour)
	setDefault(&c.TokenRate, 20)
	setDefault(&c.TokenBurst, 40)
	setDefault(&c.SignInRate, 1)
	setDefault(&c.SignInBurst, 10)
	setDefault(&c.PersonalDataKeyTTL, 30*time.Second)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// identityProvider is the Server's identity-provider part: its rules, the
// cache of personal-data keys, mail and limits.
type identityProvider struct {
	mu   sync.RWMutex
	cfg  IdentityConfig
	keys *keyCache

	tokenLimits   *limiter // per client id and source
	tokenFailures *limiter // wrong secrets per client id
	signInLimits  *limiter // per account; per client id and source; per source for reset confirmations
}

// ConfigureIdentity changes the identity provider's rules while the server
// runs (tests shorten the lockout; operators may tune limits).
func (s *Server) ConfigureIdentity(fn func(*IdentityConfig)) {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	fn(&s.idp.cfg)
	s.idp.cfg.defaults()
	s.idp.tokenLimits.set(s.idp.cfg.TokenRate, s.idp.cfg.TokenBurst)
	s.idp.tokenFailures.set(s.idp.cfg.TokenRate, s.idp.cfg.TokenBurst)
	s.idp.signInLimits.set(s.idp.cfg.SignInRate, s.idp.cfg.SignInBurst)
}

func (s *Server) identityConfig() IdentityConfig {
	s.idp.mu.RLock()
	defer s.idp.mu.RUnlock()
	return s.idp.cfg
}

// identityRoutes registers the identity-provider endpoints: sign-in, the
// authorization-code flow, passwords, invitations (issue "Authentication").
func (s *Server) identityRoutes(m *http.ServeMux, h handle) {
	m.HandleFunc("GET /oauth2/authorize", s.authorizePage)
	m.HandleFunc("POST /oauth2/authorize", s.authorizeSubmit)
	m.HandleFunc("POST /v1/passwordResets", s.requestPasswordReset)
	m.HandleFunc("POST /v1/passwordResets/confirm", s.confirmPasswordReset)
	m.HandleFunc("POST /v1/invitations/accept", s.acceptInvitation)
	m.HandleFunc("POST /v1/invitations/resend", s.requestInvitationResend) // people.go

	h("PUT /v1/users/{id}/password", false, s.changePassword)
	h("POST /v1/users/{id}/revokeTokens", false, s.revokeTokens)
	h("PATCH /v1/apps/{id}/credentials/{credentialId}", false, s.setCredentialStatus)
	h("PATCH /v1/apps/{id}/apiKeys/{keyId}", false, s.setAPIKeyStatus)
	h("POST /v1/invitations", false, s.createInvitation)
	h("POST /v1/invitations/{id}/resend", false, s.resendInvitation)
	h("GET /v1/invitations/{id}", true, s.getInvitation)
	h("GET /v1/signingKeys", false, s.listSigningKeys)
	h("POST /v1/signingKeys/rotate", false, s.rotateSigningKeys)
	h("DELETE /v1/signingKeys/{kid}", false, s.revokeSigningKey)
}

func newIdentityProvider(c Config) *identityProvider {
	cfg := c.Identity
	cfg.defaults()
	idp := &identityProvider{cfg: cfg, keys: newKeyCache(),
		tokenLimits:   newLimiter(cfg.TokenRate, cfg.TokenBurst, defaultLimiterKeys),
		tokenFailures: newLimiter(cfg.TokenRate, cfg.TokenBurst, defaultLimiterKeys),
		signInLimits:  newLimiter(cfg.SignInRate, cfg.SignInBurst, defaultLimiterKeys)}
	if idp.cfg.Mail == nil && c.DataDir != "" {
		idp.cfg.Mail = &FileMailSender{Dir: c.DataDir + "/outbox"}
	}
	return idp
}

// noVault is the Vault of a server configured without one.
type noVault struct{}

func (noVault) DataKey(context.Context, string, string, bool) ([]byte, error) { return nil, errNoVault }
func (noVault) Pepper(context.Context, string) ([]byte, error)                { return nil, errNoVault }
func (noVault) Destroy(context.Context, string, string) error                 { return errNoVault }

var errNoVault = iam.Errorf(iam.EUnavailable, "no key vault: the server has no log")

// now is the server's clock in UTC, as commands carry it.
func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// system executes a command as the system (Actor ""): the identity
// provider's self-service commands, whose caller proved who it is otherwise
// (a password, a code, a token from a mail).
func (s *Server) system(ctx context.Context, realm string, at time.Time, cmd iam.Command) (writer.Result, error) {
	return s.execute(ctx, iam.Request{Realm: realm, At: at, Command: cmd})
}

// signUserToken issues an access token for a user at log position pos,
// granted scope (OIDC scopes, "" for none).
func (s *Server) signUserToken(r *http.Request, realm, user, scope string, pos uint64, lifetime time.Duration) (string, error) {
	keys, err := s.mode.signer()
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	s.maybeRotate(r.Context(), keys, now)
	return keys.Sign(auth.Claims{Position: pos, Issuer: s.issuer(), Subject: user, Audience: s.cfg.Audience, Realm: realm, Scope: scope,
		ID: auth.NewID("t", 16), IssuedAt: now, ExpiresAt: now.Add(lifetime), Kind: auth.KindUser})
}

// revokedToken reports whether a token issued at iat (whole seconds, as in
// the JWT) falls before a revocation at notBefore: a token of the same second
// is refused too, since it cannot be told apart.
func revokedToken(iat, notBefore time.Time) bool {
	return !notBefore.IsZero() && !iat.After(notBefore.Truncate(time.Second))
}
