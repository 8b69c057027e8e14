package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog/keyvault"
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
	case "client_credentials", "authorization_code", "refresh_token":
	case "":
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "grant_type is required"}, basic)
		return
	default:
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + strconv.Quote(gt) + " is not supported"}, basic)
		return
	}
	lifetime := s.cfg.MaxTokenLifetime
	if gt != "client_credentials" {
		// A user's token lives shorter unless the client asks otherwise.
		lifetime = min(userTokenLifetime, s.cfg.MaxTokenLifetime)
	}
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
	switch gt {
	case "authorization_code":
		s.tokenFromCode(w, r, p, clientID, lifetime, basic)
		return
	case "refresh_token":
		s.tokenFromRefresh(w, r, p, lifetime, basic)
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
	s.answerToken(w, tokenAnswer{access: tok, lifetime: lifetime, scope: scope}, serr, basic)
}

// authenticateClient finds the credential by client id on the latest state
// and verifies the secret against its argon2id hash.
// It answers 503 when no argon2id slot frees in time (hashGate).
func (s *Server) authenticateClient(ctx context.Context, clientID, secret string) (Principal, *oauthError) {
	bad := &oauthError{http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret"}
	var p Principal
	var hash string
	// A state that cannot be read (a clustered hub between stream leaders,
	// say) is no proof that the client is unknown: retry, not invalid_client.
	err := s.latest(ctx, func(st *iam.State) error {
		realm, app, cred, ok := st.ClientCredential(clientID)
		if ok && !cred.Disabled && app.Status == iam.StatusActive {
			p, hash = Principal{Realm: realm, ID: app.ID, Kind: auth.KindApp}, cred.SecretHash
			as := app.AppState()
			if as.DefaultProject != "" {
				// The scope its token carries when asked for none.
				p.Scope = iam.ProjectHRN(realm, as.DefaultProject)
			}
			for id, c := range as.Credentials {
				if c.ClientID == clientID {
					p.Credential = id
				}
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("client lookup", "err", err)
		return Principal{}, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "the client cannot be checked now; retry"}
	}
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
		id := realm.Identities.Get(p.ID)
		if proj == nil || id == nil {
			return nil
		}
		_, member = proj.Members[p.ID]
		for g := range id.Groups.All() {
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
		"userinfo_endpoint":                     iss + "/oauth2/userinfo",
		"grant_types_supported":                 []string{"client_credentials", "authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"scopes_supported":                      oidcScopes,
		// The ID token's claims and the access token's (jti onwards).
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "email", "name",
			"jti", "realm", "scope", "kind", "cid"},
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
// authorization-code flow and its refreshes when the client asks no
// expires_in (at most MaxTokenLifetime).
const userTokenLifetime = time.Hour

// maxNonceBytes bounds the nonce of an authorization request (it travels
// with the code through the log).
const maxNonceBytes = 512

// oidcScopes are the scopes of the authorization-code flow, as discovery
// lists them: openid (an ID token, userinfo), email and profile (the email
// and name claims), offline_access (a refresh token). A client-credentials
// token is scoped to a project instead (checkScope).
var oidcScopes = []string{"openid", "email", "profile", iam.ScopeOfflineAccess}

// supportedScopes says whether every scope of a space-separated list is one
// of oidcScopes.
func supportedScopes(scope string) bool {
	for _, sc := range strings.Fields(scope) {
		if !slices.Contains(oidcScopes, sc) {
			return false
		}
	}
	return true
}

func hasScope(scope, want string) bool { return slices.Contains(strings.Fields(scope), want) }

// tokenFromCode serves grant_type=authorization_code (RFC 6749 §4.1.3 with
// RFC 7636): the code is single-use and bound to the authenticated client,
// the redirect URI and the PKCE verifier, all judged by the writer. A code
// presented again revokes the tokens of its user (§4.1.2) and is refused.
// With openid the answer has an ID token for clientID; with offline_access a
// refresh token, the first of its family: a refresh token is issued only when
// asked for (OIDC Core §11), so a client that never asked holds no
// long-lived secret.
func (s *Server) tokenFromCode(w http.ResponseWriter, r *http.Request, p Principal, clientID string, lifetime time.Duration, basic bool) {
	code := r.PostForm.Get("code")
	if code == "" || len(code) > 256 {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "code is required"}, basic)
		return
	}
	now := s.now()
	// The refresh token is made before the writer judges the code: only the
	// writer knows whether the code asked for one, and it keeps only the hash.
	refresh := auth.NewSecret()
	res, err := s.system(r.Context(), p.Realm, now, iam.RedeemAuthCode{CodeHash: iam.HashSecret(code), Client: p.ID,
		RedirectURI: r.PostForm.Get("redirect_uri"), Verifier: r.PostForm.Get("code_verifier"), At: now,
		Refresh: &iam.RefreshGrant{Family: auth.NewID("rf", 16), TokenHash: iam.HashSecret(refresh), ExpiresAt: now.Add(iam.DefaultRefreshLifetime)}})
	if err != nil {
		if iam.ErrorField(err) == iam.FieldAuthorizationCodeErr {
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", iam.ErrorMessage(err)}, basic)
			return
		}
		s.writeOAuthUnavailable(w, r, http.StatusServiceUnavailable, 0, "the code could not be redeemed; retry", basic)
		return
	}
	var redeemed iam.AuthCodeRedeemed
	started := false
	for _, ev := range res.Events {
		switch e := ev.(type) {
		case iam.TokensRevoked:
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", "the authorization code was used already; the tokens issued for it are revoked"}, basic)
			return
		case iam.AuthCodeRedeemed:
			redeemed = e
		case iam.RefreshFamilyStarted:
			started = true
		}
	}
	if redeemed.User == "" {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", "the authorization code is unknown or expired"}, basic)
		return
	}
	ans := tokenAnswer{lifetime: lifetime, scope: redeemed.Scope}
	if started {
		ans.refresh = refresh
	}
	ans.access, err = s.signUserToken(r, p.Realm, redeemed.User, redeemed.Scope, res.Seq, lifetime)
	if err == nil && hasScope(redeemed.Scope, "openid") {
		ans.id, err = s.signIDToken(r.Context(), p.Realm, redeemed, clientID, ans.access, lifetime)
	}
	s.answerToken(w, ans, err, basic)
}

// signIDToken issues the ID token of a redeemed code for clientID (OIDC
// Core §3.1.3.3): it lives as long as the access token issued with it.
func (s *Server) signIDToken(ctx context.Context, realm string, c iam.AuthCodeRedeemed, clientID, access string, lifetime time.Duration) (string, error) {
	keys, err := s.mode.signer()
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	claims := auth.IDClaims{Issuer: s.issuer(), Subject: c.User, Audience: clientID, IssuedAt: now, ExpiresAt: now.Add(lifetime),
		AuthTime: c.AuthTime, Nonce: c.Nonce, AtHash: auth.AccessTokenHash(access)}
	claims.Email, claims.Name = s.userClaims(ctx, realm, c.User, c.Scope)
	return keys.SignIDToken(claims)
}

// userClaims returns the user's email and name as far as scope grants them
// (email, profile). They are sealed personal data: a destroyed or
// unreachable data key leaves them out, never fails the answer.
func (s *Server) userClaims(ctx context.Context, realm, user, scope string) (email, name string) {
	wantEmail, wantName := hasScope(scope, "email"), hasScope(scope, "profile")
	if !wantEmail && !wantName {
		return "", ""
	}
	// Users created before personal data was sealed have it in plain.
	var p personal
	var sealed []byte
	_ = s.latest(ctx, func(st *iam.State) error {
		if u := st.Identity(realm, user); u != nil {
			p, sealed = personal{Email: u.Email, Name: u.Name}, u.Sealed
		}
		return nil
	})
	if len(sealed) > 0 {
		key, err := s.dataKey(ctx, realm, user, false)
		if err == nil {
			p, err = openPersonal(key, sealed, realm, user)
		}
		if err != nil && !errors.Is(err, keyvault.ErrKeyDestroyed) {
			s.log.Warn("personal data unavailable", "realm", realm, "user", user, "err", err)
		}
	}
	if wantEmail {
		email = p.Email
	}
	if wantName {
		name = p.Name
	}
	return email, name
}

// tokenFromRefresh serves grant_type=refresh_token (RFC 6749 §6) for the
// client that holds the token: every use rotates it, and a token used
// already (a replay) ends its whole family, the writer deciding both. The
// scope is the family's; a scope parameter cannot widen it and is ignored.
func (s *Server) tokenFromRefresh(w http.ResponseWriter, r *http.Request, p Principal, lifetime time.Duration, basic bool) {
	old := r.PostForm.Get("refresh_token")
	if old == "" || len(old) > 256 {
		writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_request", "refresh_token is required"}, basic)
		return
	}
	now := s.now()
	next := auth.NewSecret()
	res, err := s.system(r.Context(), p.Realm, now, iam.RotateRefreshToken{TokenHash: iam.HashSecret(old), NewHash: iam.HashSecret(next), Client: p.ID, At: now})
	if err != nil {
		if iam.ErrorField(err) == iam.FieldRefreshTokenErr {
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", iam.ErrorMessage(err)}, basic)
			return
		}
		writeOAuthError(w, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "the refresh token could not be used; retry"}, basic)
		return
	}
	var rotated iam.RefreshTokenRotated
	for _, ev := range res.Events {
		switch e := ev.(type) {
		case iam.RefreshFamilyRevoked:
			s.log.Warn("refresh token reused; its family is revoked", "realm", p.Realm, "user", e.User, "family", e.Family)
			writeOAuthError(w, &oauthError{http.StatusBadRequest, "invalid_grant", "the refresh token was used already; every refresh token of its sign-in is revoked"}, basic)
			return
		case iam.RefreshTokenRotated:
			rotated = e
		}
	}
	tok, err := s.signUserToken(r, p.Realm, rotated.User, rotated.Scope, res.Seq, lifetime)
	s.answerToken(w, tokenAnswer{access: tok, refresh: next, lifetime: lifetime, scope: rotated.Scope}, err, basic)
}

// tokenAnswer is a successful token response (RFC 6749 §5.1): the access
// token, and, if issued, a refresh token and an ID token.
type tokenAnswer struct {
	access, refresh, id string
	lifetime            time.Duration
	scope               string
}

// answerToken answers a token request with the tokens signed (or the error
// signing them), per RFC 6749 §5.1: never cached.
func (s *Server) answerToken(w http.ResponseWriter, a tokenAnswer, signErr error, basic bool) {
	if signErr != nil {
		s.log.Error("sign token", "err", signErr)
		writeOAuthError(w, &oauthError{http.StatusInternalServerError, "server_error", "the token could not be signed"}, basic)
		return
	}
	if s.metrics != nil {
		s.metrics.tokens.Inc()
	}
	body := map[string]any{
		"access_token": a.access, "token_type": "bearer", "expires_in": int(a.lifetime / time.Second), "scope": a.scope,
	}
	if a.refresh != "" {
		body["refresh_token"] = a.refresh
	}
	if a.id != "" {
		body["id_token"] = a.id
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// userinfo serves GET and POST /oauth2/userinfo (OIDC Core §5.3): the
// claims of the user of a bearer access token granted openid. The token is
// judged as on every other route (signature, expiry, the user still active,
// not revoked); a failure is 401 with WWW-Authenticate (RFC 6750 §3).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	p, err := s.authenticate(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.Kind != auth.KindUser || !hasScope(p.Scope, "openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="iam", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the access token was not granted the openid scope"})
		return
	}
	body := map[string]string{"sub": p.ID}
	email, name := s.userClaims(r.Context(), p.Realm, p.ID, p.Scope)
	if email != "" {
		body["email"] = email
	}
	if name != "" {
		body["name"] = name
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}
