package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status      int
	code        string
	description string
}

func writeOAuthError(w http.ResponseWriter, e *oauthError, basic bool) {
	if e.status == http.StatusUnauthorized {
		scheme := "Bearer"
		if basic {
			scheme = "Basic"
		}
		w.Header().Set("WWW-Authenticate", scheme+` realm="iam"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

// writeOAuthUnavailable answers a token request with 429 or 503
// (temporarily_unavailable) and Retry-After (wait, at least 1s). The body
// is RFC 6749 §5.2's and, in the same object, RFC 9457's problem details,
// as every other 429 and 503 of the API carries.
func (s *Server) writeOAuthUnavailable(w http.ResponseWriter, r *http.Request, status int, wait time.Duration, desc string, basic bool) {
	code := iam.EUnavailable
	if status == http.StatusTooManyRequests {
		code = iam.ERateLimited
	}
	retryAfter(w, wait)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]any{"error": "temporarily_unavailable", "error_description": desc,
		"type": "https://iam.dev/problems/" + code, "title": titleOf[code], "status": status, "detail": desc,
		"code": code, "correlationId": correlationID(r)})
}

// token serves POST /oauth2/token (RFC 6749 §4.4, client credentials).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	clientID, secret, basic := r.BasicAuth()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded"}, basic)
		return
	}
	if basic {
		// RFC 6749 §2.3.1: the client id and secret are form-encoded inside Basic.
		var err1, err2 error
		clientID, err1 = url.QueryUnescape(clientID)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			writeOAuthError(w, &oauthError{http.StatusUnauthorized, "invalid_client", "malformed Basic credentials"}, basic)
			return
		}
		if r.PostForm.Get("client_secret") != "" {
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "use one client authentication method, not two"}, basic)
			return
		}
	} else {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	gt := r.PostForm.Get("grant_type")
	switch gt {
	case "client_credentials", "authorization_code":
	case "":
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "grant_type is required"}, basic)
		return
	default:
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + strconv.Quote(gt) + " is not supported"}, basic)
		return
	}
	lifetime := s.cfg.MaxTokenLifetime
	if v := r.PostForm.Get("expires_in"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > s.cfg.MaxTokenLifetime {
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "expires_in must be from 1 to " + strconv.Itoa(int(s.cfg.MaxTokenLifetime/time.Second)) + " seconds"}, basic)
			return
		}
		lifetime = time.Duration(n) * time.Second
	}
	if clientID == "" || secret == "" {
		writeOAuthError(w, &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication is required"}, basic)
		return
	}
	// Rate limited before the (costly) secret check: per client id and
	// source, so one flooding source does not lock out the app's other
	// callers, and the client id's failures over all sources, so guesses
	// spread over many sources stay bounded.
	now := s.cfg.Now()
	for _, lim := range []struct {
		ok   func(string, time.Time) (bool, time.Duration)
		key  string
		desc string
	}{
		{s.idp.tokenLimits.allow, "client/" + clientID + "/" + sourceOf(r), "too many token requests for this client from this address; retry later"},
		{s.idp.tokenFailures.due, "client/" + clientID, "too many failed authentications of this client; retry later"},
	} {
		if ok, wait := lim.ok(lim.key, now); !ok {
			s.writeOAuthUnavailable(w, r, http.StatusTooManyRequests, wait, lim.desc, basic)
			return
		}
	}
	p, err := s.authenticateClient(r.Context(), clientID, secret)
	if err != nil && err.status == http.StatusServiceUnavailable {
		s.writeOAuthUnavailable(w, r, err.status, 0, err.description, basic)
		return
	}
	if err != nil {
		s.idp.tokenFailures.allow("client/"+clientID, now)
		writeOAuthError(w, err, basic)
		return
	}
	if gt == "authorization_code" {
		s.tokenFromCode(w, r, p, basic)
		return
	}
	scope := r.PostForm.Get("scope")
	byDefault := scope == "" && p.Scope != ""
	if byDefault {
		scope = p.Scope // the app's default project (HERE: "automatically fetches a project scoped access token")
	}
	if scope != "" {
		if err := s.checkScope(r.Context(), p, scope); err != nil {
			if byDefault {
				// HERE gives an app with a default project no unscoped
				// token: say why this one fails and how to mend it.
				err.description += " (" + scope + ", the app's default project: make the app a member again, or clear its defaultProject)"
			}
			writeOAuthError(w, err, basic)
			return
		}
	}
	pos := s.acknowledged()
	var tok string
	keys, serr := s.mode.signer()
	if serr == nil {
		s.maybeRotate(r.Context(), keys, now)
		tok, serr = keys.Sign(auth.Claims{Position: pos,
			Issuer: s.issuer(), Subject: p.ID, Audience: s.cfg.Audience, Realm: p.Realm, Scope: scope,
			ID: auth.NewID("t", 16), IssuedAt: now, ExpiresAt: now.Add(lifetime), Kind: p.Kind,
			Credential: p.Credential,
		})
	}
	s.answerToken(w, tok, serr, lifetime, scope, basic)
}

// authenticateClient finds the credential by client id on the latest state
// and verifies the secret against its argon2id hash.
// It answers 503 when no argon2id slot frees in time (hashGate).
func (s *Server) authenticateClient(ctx context.Context, clientID, secret string) (Principal, *oauthError) {
	bad := &oauthError{http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret"}
	var p Principal
	var hash string
	_ = s.latest(ctx, func(st *iam.State) error {
		realm, app, cred, ok := st.ClientCredential(clientID)
		if ok && !cred.Disabled && app.Status == iam.StatusActive {
			p, hash = Principal{Realm: realm, ID: app.ID, Kind: auth.KindApp}, cred.SecretHash
			if app.DefaultProject != "" {
				// The scope its token carries when asked for none.
				p.Scope = iam.ProjectHRN(realm, app.DefaultProject)
			}
			for id, c := range app.Credentials {
				if c.ClientID == clientID {
					p.Credential = id
				}
			}
		}
		return nil
	})
	if hash == "" {
		return Principal{}, bad
	}
	ok, err := s.verify.Verify(secret, hash)
	if errors.Is(err, errHashBusy) {
		return Principal{}, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", iam.ErrorMessage(err)}
	}
	if err != nil || !ok {
		return Principal{}, bad
	}
	return p, nil
}

// checkScope allows a project-scoped token only to a member of the project,
// directly or through a group.
func (s *Server) checkScope(ctx context.Context, p Principal, scope string) *oauthError {
	if strings.ContainsAny(scope, " \t") {
		return &oauthError{http.StatusBadRequest, "invalid_scope", "Only one project scope allowed in token"}
	}
	project, err := iam.ProjectIDFromHRN("scope", p.Realm, scope)
	if err != nil {
		return &oauthError{http.StatusBadRequest, "invalid_scope", iam.ErrorMessage(err)}
	}
	var member bool
	_ = s.latest(ctx, func(st *iam.State) error {
		realm := st.Realm(p.Realm)
		proj := realm.Projects[project]
		id := realm.Identities[p.ID]
		if proj == nil || id == nil {
			return nil
		}
		_, member = proj.Members[p.ID]
		for g := range id.Groups {
			_, viaGroup := proj.Members[g]
			member = member || viaGroup
		}
		return nil
	})
	if !member {
		return &oauthError{http.StatusBadRequest, "invalid_scope", "Client is not a member of the project"}
	}
	return nil
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	iss := s.issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/oauth2/authorize",
		"token_endpoint":                        iss + "/oauth2/token",
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"grant_types_supported":                 []string{"client_credentials", "authorization_code"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "jti", "realm", "scope", "kind", "cid"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	keys, err := s.mode.signer()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(keys.JWKS())
}

// userTokenLifetime is the life of a token issued to a user by the
// authorization-code flow (at most MaxTokenLifetime).
const userTokenLifetime = time.Hour

// tokenFromCode serves grant_type=authorization_code (RFC 6749 §4.1.3 with
// RFC 7636): the code is single-use and bound to the authenticated client,
// the redirect URI and the PKCE verifier, all judged by the writer. A code
// presented again revokes the tokens of its user (§4.1.2) and is refused.
func (s *Server) tokenFromCode(w http.ResponseWriter, r *http.Request, p Principal, basic bool) {
	code := r.PostForm.Get("code")
	if code == "" || len(code) > 256 {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "code is required"}, basic)
		return
	}
	now := s.now()
	res, err := s.system(r.Context(), p.Realm, now, iam.RedeemAuthCode{CodeHash: iam.HashSecret(code), Client: p.ID,
		RedirectURI: r.PostForm.Get("redirect_uri"), Verifier: r.PostForm.Get("code_verifier"), At: now})
	if err != nil {
		if iam.ErrorField(err) == iam.FieldAuthorizationCodeErr {
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", iam.ErrorMessage(err)}, basic)
			return
		}
		s.writeOAuthUnavailable(w, r, http.StatusServiceUnavailable, 0, "the code could not be redeemed; retry", basic)
		return
	}
	var user string
	for _, ev := range res.Events {
		switch e := ev.(type) {
		case iam.TokensRevoked:
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", "the authorization code was used already; the tokens issued for it are revoked"}, basic)
			return
		case iam.AuthCodeRedeemed:
			user = e.User
		}
	}
	if user == "" {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", "the authorization code is unknown or expired"}, basic)
		return
	}
	lifetime := min(userTokenLifetime, s.cfg.MaxTokenLifetime)
	tok, err := s.signUserToken(r, p.Realm, user, res.Seq, lifetime)
	s.answerToken(w, tok, err, lifetime, "", basic)
}

// answerToken answers a token request with the token signed (or the error
// signing it), per RFC 6749 §5.1: never cached.
func (s *Server) answerToken(w http.ResponseWriter, tok string, signErr error, lifetime time.Duration, scope string, basic bool) {
	if signErr != nil {
		s.log.Error("sign token", "err", signErr)
		writeOAuthError(w, &oauthError{http.StatusInternalServerError, "server_error", "the token could not be signed"}, basic)
		return
	}
	if s.metrics != nil {
		s.metrics.tokens.Inc()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": int(lifetime / time.Second), "scope": scope,
	})
}
