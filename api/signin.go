package api

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// The sign-in page of the authorization-code flow (RFC 6749 §4.1, PKCE
// S256 only, RFC 7636). GET shows one form; its POST signs in and redirects
// to the app's registered redirect URI with code and state.

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:24rem;margin:3rem auto">
<h1>Sign in</h1>
<p>to <strong>{{.App}}</strong></p>
{{if .Error}}<p role="alert" style="color:#b00">{{.Error}}</p>{{end}}
<form method="post" action="/oauth2/authorize">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<p><label>Email <input type="email" name="email" value="{{.Email}}" required autocomplete="username"></label></p>
<p><label>Password <input type="password" name="password" required autocomplete="current-password"></label></p>
<p><label>Organization ID <input type="text" name="orgId" value="{{.OrgID}}"></label></p>
<p><button type="submit">Sign in</button></p>
</form></body></html>
`))

type signInView struct {
	App, Error, Email, OrgID string
	Hidden                   map[string]string
}

// authzRequest is a validated authorization request.
type authzRequest struct {
	realm, app, appName       string
	clientID, redirect, state string
	challenge, method, scope  string
	nonce                     string
	redirectErr, responseType string
	redirectDesc              string
	redirectURL               *url.URL // redirect, parsed
}

// parseAuthz validates the request. A bad client or redirect URI is an error
// page (never a redirect, §4.1.2.1); other errors are redirected.
func (s *Server) parseAuthz(ctx context.Context, v url.Values) (*authzRequest, error) {
	a := &authzRequest{clientID: v.Get("client_id"), redirect: v.Get("redirect_uri"), state: v.Get("state"),
		challenge: v.Get("code_challenge"), method: v.Get("code_challenge_method"), scope: strings.Join(strings.Fields(v.Get("scope")), " "), nonce: v.Get("nonce"), responseType: v.Get("response_type")}
	var uris []string
	found := false
	_ = s.latest(ctx, func(st *iam.State) error {
		realm, app, cred, ok := st.ClientCredential(a.clientID)
		if ok && !cred.Disabled && app.Status == iam.StatusActive {
			found, a.realm, a.app, a.appName, uris = true, realm, app.ID, app.Name, app.AppState().RedirectURIs
		}
		return nil
	})
	if !found {
		return nil, iam.FieldErrorf("client_id", "unknown or disabled client")
	}
	if a.redirect == "" && len(uris) == 1 {
		a.redirect = uris[0]
	}
	if !slices.Contains(uris, a.redirect) {
		return nil, iam.FieldErrorf("redirect_uri", "does not match a redirect URI registered for the app (exact match)")
	}
	// Registration parses redirect URIs; one registered before it did may
	// not parse: an error page, never a redirect to it (nor a 500).
	u, err := url.Parse(a.redirect)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, iam.FieldErrorf("redirect_uri", "the registered redirect URI is not a valid URI; the app's manager must register it again")
	}
	a.redirectURL = u
	switch {
	case a.responseType != "code":
		a.redirectErr, a.redirectDesc = "unsupported_response_type", "response_type must be code"
	case a.method != auth.PKCEMethodS256 || len(a.challenge) != 43:
		a.redirectErr, a.redirectDesc = "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"
	case !supportedScopes(a.scope):
		a.redirectErr, a.redirectDesc = "invalid_scope", "scope may hold only "+strings.Join(oidcScopes, ", ")
	case len(a.nonce) > maxNonceBytes:
		// The nonce travels with the code into the log: bounded.
		a.redirectErr, a.redirectDesc = "invalid_request", "nonce is too long"
	}
	return a, nil
}

// redirectTo sends the browser back to the client with params and state.
func (a *authzRequest) redirectTo(w http.ResponseWriter, r *http.Request, params url.Values) {
	u := *a.redirectURL // parsed by parseAuthz
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if a.state != "" {
		q.Set("state", a.state)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (a *authzRequest) fail(w http.ResponseWriter, r *http.Request, code, desc string) {
	a.redirectTo(w, r, url.Values{"error": {code}, "error_description": {desc}})
}

func (s *Server) renderSignIn(w http.ResponseWriter, status int, a *authzRequest, email, msg string) {
	hidden := map[string]string{"response_type": a.responseType, "client_id": a.clientID, "redirect_uri": a.redirect,
		"state": a.state, "code_challenge": a.challenge, "code_challenge_method": a.method, "scope": a.scope, "nonce": a.nonce}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	_ = signInPage.Execute(w, signInView{App: a.appName, Error: msg, Email: email, OrgID: a.realm, Hidden: hidden})
}

// authorizePage serves GET /oauth2/authorize.
func (s *Server) authorizePage(w http.ResponseWriter, r *http.Request) {
	a, err := s.parseAuthz(r.Context(), r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if a.redirectErr != "" {
		a.fail(w, r, a.redirectErr, a.redirectDesc)
		return
	}
	s.renderSignIn(w, http.StatusOK, a, "", "")
}

// dummyHash makes a sign-in for an unknown email cost what a wrong password
// costs, so timing does not tell which emails have accounts: it has the
// parameters users' hashes are made with (Config.HashParams), made once.
func (s *Server) dummyHash() string {
	s.dummyOnce.Do(func() {
		s.dummy, _ = auth.Hash("not a password of anyone", s.cfg.HashParams)
	})
	return s.dummy
}

// verifyPassword verifies a sign-in password against hash, or, for an
// unknown email (hash empty), against the dummy hash: one argon2id
// verification either way, in a hashGate slot (errHashBusy when none
// frees). Not cached: a cache would make guessing cheap.
func (s *Server) verifyPassword(ctx context.Context, password, hash string) (bool, error) {
	if hash == "" {
		s.metrics.passwordVerified("dummy")
		err := s.hashes.do(ctx, func() { _, _ = auth.Verify(password, s.dummyHash()) })
		return false, err
	}
	s.metrics.passwordVerified("user")
	ok, err := s.verifySecret(ctx, password, hash)
	if errors.Is(err, errHashBusy) {
		return false, err
	}
	return ok && err == nil, nil
}

// authorizeSubmit serves POST /oauth2/authorize: the form.
func (s *Server) authorizeSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.writeError(w, r, iam.Errorf(iam.EInvalid, "the form could not be read"))
		return
	}
	a, err := s.parseAuthz(r.Context(), r.PostForm)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if a.redirectErr != "" {
		a.fail(w, r, a.redirectErr, a.redirectDesc)
		return
	}
	email, password := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("password")
	if org := r.PostForm.Get("orgId"); org != "" && org != a.realm {
		s.renderSignIn(w, http.StatusUnauthorized, a, email, "This app belongs to another organization.")
		return
	}
	if email == "" || password == "" || len(password) > maxPasswordBytes {
		s.renderSignIn(w, http.StatusBadRequest, a, email, "Enter your email and password.")
		return
	}
	now := s.now()
	cfg := s.identityConfig()
	// Per account, however many sources try it; per client id and source,
	// so one source hammering an app does not lock out its other users.
	for _, key := range []string{"account/" + a.realm + "/" + normalEmail(email), "client/" + a.clientID + "/" + sourceOf(r)} {
		if ok, wait := s.idp.signInLimits.allow(key, now); !ok {
			retryAfter(w, wait)
			s.renderSignIn(w, http.StatusTooManyRequests, a, email, "Too many sign-in attempts; wait a moment and try again.")
			return
		}
	}
	user, hash, err := s.findUser(r.Context(), a.realm, email)
	if err != nil {
		s.log.Warn("sign-in lookup", "err", err, "correlationId", correlationID(r))
		a.fail(w, r, "temporarily_unavailable", "the sign-in service is unavailable")
		return
	}
	// The password is verified first, against the dummy hash when the email
	// names no one: only who knows the password learns that the account is
	// locked or deactivated; every other attempt gets wrongCredentials.
	ok, err := s.verifyPassword(r.Context(), password, hash)
	if err != nil {
		retryAfter(w, 0)
		s.renderSignIn(w, http.StatusServiceUnavailable, a, email, "The sign-in service is busy; try again in a moment.")
		return
	}
	if !ok {
		if user != "" && hash != "" {
			// Counted towards the lock; a locked account's refusal is
			// not shown, as it would confirm the email.
			_, err := s.system(r.Context(), a.realm, now, iam.RecordSignIn{User: user, PasswordHash: hash, At: now,
				MaxFailures: cfg.MaxFailedSignIns, LockoutPeriod: cfg.LockoutPeriod})
			if err != nil && iam.ErrorField(err) != iam.FieldAccountLocked {
				s.log.Warn("sign-in", "err", err, "correlationId", correlationID(r))
				a.fail(w, r, "temporarily_unavailable", "the sign-in could not be recorded; try again")
				return
			}
		}
		s.renderSignIn(w, http.StatusUnauthorized, a, email, wrongCredentials)
		return
	}
	if until := s.lockedUntil(r, a.realm, user); until.After(now) { // fast path; the writer judges again below
		s.renderSignIn(w, http.StatusForbidden, a, email, lockedMessage(until))
		return
	}
	code := auth.NewSecret()
	cmd := iam.RecordSignIn{User: user, PasswordHash: hash, Success: true, At: now, MaxFailures: cfg.MaxFailedSignIns, LockoutPeriod: cfg.LockoutPeriod,
		Code: &iam.CodeGrant{CodeHash: iam.HashSecret(code), Max: cfg.MaxAuthCodes,
			Code: iam.AuthCode{Client: a.app, RedirectURI: a.redirect, Challenge: a.challenge, ExpiresAt: now.Add(cfg.AuthCodeTTL),
				Scope: a.scope, Nonce: a.nonce, AuthTime: now}}}
	_, err = s.system(r.Context(), a.realm, now, cmd)
	switch {
	case iam.ErrorField(err) == iam.FieldAccountLocked:
		s.renderSignIn(w, http.StatusForbidden, a, email, lockedMessage(s.lockedUntil(r, a.realm, user)))
	case iam.ErrorField(err) == iam.FieldAccountDeactivated:
		s.renderSignIn(w, http.StatusForbidden, a, email, deactivatedMessage)
	case iam.ErrorCode(err) == iam.ELimitExceeded:
		a.fail(w, r, "invalid_request", iam.ErrMaxAuthCodesExceeded)
	case err != nil:
		s.log.Warn("sign-in", "err", err, "correlationId", correlationID(r))
		a.fail(w, r, "temporarily_unavailable", "the sign-in could not be recorded; try again")
	default:
		a.redirectTo(w, r, url.Values{"code": {code}})
	}
}

// What the sign-in page says, in words a person understands. A wrong
// password and an unknown email read the same.
const (
	wrongCredentials   = "Wrong email or password."
	deactivatedMessage = "This account was deactivated by an administrator. Ask your administrator to reactivate it."
)

// lockedUntil is the end of user's lock on the latest state (zero if none).
func (s *Server) lockedUntil(r *http.Request, realm, user string) time.Time {
	var until time.Time
	_ = s.latest(r.Context(), func(st *iam.State) error {
		if u := st.Identity(realm, user); u != nil {
			until = u.SignInState().LockedUntil
		}
		return nil
	})
	return until
}

func lockedMessage(until time.Time) string {
	return "This account is locked after too many failed sign-ins, until " + until.UTC().Format(time.RFC1123) + "."
}
