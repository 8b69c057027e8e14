package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// oidcSignIn runs the code flow with scopes and nonce and exchanges the
// code with extra token parameters; it fails the test unless a token comes.
func oidcSignIn(t *testing.T, f *idpFixture, conf *oauth2.Config, nonce string, extra ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	pkce := oauth2.GenerateVerifier()
	resp := browser(t, conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)), f.email, f.password)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if resp.StatusCode != http.StatusFound || code == "" {
		t.Fatalf("sign-in: got %d %s %s, want a redirect with a code", resp.StatusCode, loc, bodyOf(resp))
	}
	tok, err := conf.Exchange(context.Background(), code, append(extra, oauth2.VerifierOption(pkce))...)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func newOIDCFixture(t *testing.T) (*idpFixture, *oidc.Provider) {
	t.Helper()
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 1000, 1000 })
	provider, err := oidc.NewProvider(context.Background(), daemontest.URL(f.m))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return f, provider
}

// TestOIDC_IDToken: scope=openid gets an ID token that go-oidc verifies from
// discovery and JWKS for the client id, with the request's nonce, an
// at_hash matching the access token, auth_time, and email and name only
// when their scopes are asked; expires_in sets the tokens' lifetime.
func TestOIDC_IDToken(t *testing.T) {
	f, provider := newOIDCFixture(t)
	ctx := context.Background()
	verifier := provider.Verifier(&oidc.Config{ClientID: f.clientID})
	conf := f.oauthConfig(f.clientID, f.secret)

	conf.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	before := time.Now().Add(-time.Second)
	tok := oidcSignIn(t, f, conf, "n-0S6_WzA2Mj", oauth2.SetAuthURLParam("expires_in", "120"))
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc verify ID token: got %v, want it valid", err)
	}
	if idt.Subject != f.user || idt.Nonce != "n-0S6_WzA2Mj" || !slices.Equal(idt.Audience, []string{f.clientID}) {
		t.Fatalf("ID token: got sub %s nonce %q aud %v, want %s, the request's nonce, [%s]", idt.Subject, idt.Nonce, idt.Audience, f.user, f.clientID)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil || idt.AccessTokenHash == "" {
		t.Fatalf("at_hash: got %q %v, want the access token's", idt.AccessTokenHash, err)
	}
	var claims struct {
		Email    string `json:"email"`
		Name     string `json:"name"`
		AuthTime int64  `json:"auth_time"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email != f.email || claims.Name != f.name || claims.AuthTime < before.Unix() {
		t.Fatalf("claims: got %+v %v, want email %s, name %s and auth_time", claims, err, f.email, f.name)
	}
	if d := time.Until(idt.Expiry); d > 2*time.Minute || d < time.Minute {
		t.Errorf("ID token with expires_in=120: expires in %v, want about 2m", d)
	}
	if d := time.Until(tok.Expiry); d > 2*time.Minute || d < time.Minute {
		t.Errorf("access token with expires_in=120: expires in %v, want about 2m", d)
	}
	if tok.RefreshToken != "" {
		t.Errorf("refresh token without offline_access: got one, want none")
	}
	// The access token's scope holds OIDC scopes, no project: the user's
	// own check is unscoped, not refused as a bad project scope.
	own := (&daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken}).Do("POST", "/v1/check",
		map[string]any{"action": "read", "resource": "hrn:here:data::" + f.m.Bootstrap.Realm + ":catalog-1"})
	if own.Status != http.StatusOK || own.Body["allowed"] != false {
		t.Errorf("own check with an OIDC-scoped token: got %d %s, want 200 and denied", own.Status, own.Raw)
	}
	// An ID token is no access token (its aud is the client, it has no kind).
	if st := (&daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: raw}).Do("GET", "/v1/users/"+f.user, nil).Status; st != 401 {
		t.Errorf("ID token as an access token: got %d, want 401", st)
	}

	t.Run("claims only for their scopes", func(t *testing.T) {
		conf := f.oauthConfig(f.clientID, f.secret)
		conf.Scopes = []string{oidc.ScopeOpenID}
		tok := oidcSignIn(t, f, conf, "n-2")
		idt, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var all map[string]any
		_ = idt.Claims(&all)
		if _, ok := all["email"]; ok {
			t.Errorf("openid alone: got email %v, want none", all["email"])
		}
		if _, ok := all["name"]; ok {
			t.Errorf("openid alone: got name %v, want none", all["name"])
		}
	})
	t.Run("nonce mismatch is detected", func(t *testing.T) {
		// An ID token replayed into another sign-in carries the nonce of
		// its own request, never the one the client now expects.
		tok := oidcSignIn(t, f, conf, "n-attacker")
		idt, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil || idt.Nonce == "n-victim" || idt.Nonce != "n-attacker" {
			t.Fatalf("got nonce %q %v, want the attacker's, not the victim's", idt.Nonce, err)
		}
		// Rewriting the nonce breaks the signature.
		parts := strings.Split(tok.Extra("id_token").(string), ".")
		_, claims := segmentsOf(t, tok.Extra("id_token").(string))
		claims["nonce"] = "n-victim"
		if _, err := verifier.Verify(ctx, parts[0]+"."+b64(claims)+"."+parts[2]); err == nil {
			t.Fatal("ID token with a rewritten nonce: got valid, want the signature refused")
		}
	})
	t.Run("another client's verifier refuses it", func(t *testing.T) {
		if _, err := provider.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(ctx, raw); err == nil {
			t.Fatal("got valid, want the audience refused")
		}
	})
	t.Run("no openid, no ID token", func(t *testing.T) {
		conf := f.oauthConfig(f.clientID, f.secret)
		if tok := oidcSignIn(t, f, conf, ""); tok.Extra("id_token") != nil {
			t.Fatalf("plain OAuth: got an ID token, want none")
		}
	})
	t.Run("unknown scope refused", func(t *testing.T) {
		conf := f.oauthConfig(f.clientID, f.secret)
		conf.Scopes = []string{"openid", "admin"}
		resp := browser(t, conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), f.email, f.password)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if got := loc.Query().Get("error"); got != "invalid_scope" {
			t.Fatalf("got %d %q, want a redirect with invalid_scope", resp.StatusCode, got)
		}
	})
}

// TestOIDC_Refresh: offline_access gets a refresh token; x/oauth2's
// TokenSource refreshes with it; each refresh rotates it; a replayed one is
// invalid_grant and ends its family (the newest then fails too); another
// client cannot use it; a password change ends the family.
func TestOIDC_Refresh(t *testing.T) {
	f, _ := newOIDCFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig(f.clientID, f.secret)
	conf.Scopes = []string{oidc.ScopeOpenID, "offline_access"}
	refresh := func(rt string) (*oauth2.Token, error) {
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}

	tok := oidcSignIn(t, f, conf, "n-1")
	if tok.RefreshToken == "" {
		t.Fatal("offline_access: got no refresh token")
	}
	first := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute) // make TokenSource refresh
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || next.AccessToken == tok.AccessToken || next.RefreshToken == "" || next.RefreshToken == first {
		t.Fatalf("TokenSource refresh: got %v %v, want a new access token and a rotated refresh token", next, err)
	}
	me := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: next.AccessToken}
	if got := me.Must(200, "GET", "/oauth2/userinfo", nil).Str("sub"); got != f.user {
		t.Fatalf("refreshed token at userinfo: got sub %q, want %s", got, f.user)
	}
	third, err := refresh(next.RefreshToken)
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}

	// A replay of the first token ends the family: the newest fails too.
	if _, err := refresh(first); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("replayed refresh token: got %v, want invalid_grant", err)
	}
	if _, err := refresh(third.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("newest refresh token after the replay: got %v, want invalid_grant (family revoked)", err)
	}
	if _, err := refresh("not-a-token"); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("unknown refresh token: got %v, want invalid_grant", err)
	}

	t.Run("another client's refresh token", func(t *testing.T) {
		tok := oidcSignIn(t, f, conf, "n-3")
		cred := f.admin.Must(201, "POST", "/v1/apps", map[string]any{"name": "Other", "redirectUris": []string{f.redirect}}).Str("id")
		c := f.admin.Must(201, "POST", "/v1/apps/"+cred+"/credentials", nil)
		other := f.oauthConfig(c.Str("clientId"), c.Str("clientSecret"))
		if _, err := other.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("at another client: got %v, want invalid_grant", err)
		}
		if _, err := refresh(tok.RefreshToken); err != nil {
			t.Fatalf("at its own client after the attempt: got %v, want a token", err)
		}
	})
	t.Run("a password change ends the family", func(t *testing.T) {
		tok := oidcSignIn(t, f, conf, "n-4")
		me := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken}
		me.Must(200, "PUT", "/v1/users/"+f.user+"/password", map[string]any{"currentPassword": f.password, "newPassword": "a whole new password"})
		f.password = "a whole new password"
		if _, err := refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("after a password change: got %v, want invalid_grant", err)
		}
	})
	t.Run("deactivation ends the family", func(t *testing.T) {
		tok := oidcSignIn(t, f, conf, "n-5")
		f.admin.Must(200, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "deactivated"})
		f.admin.Must(200, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "active"})
		if _, err := refresh(tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("after a deactivation: got %v, want invalid_grant", err)
		}
	})
}

// TestOIDC_ExpiredCode: a code past its life is invalid_grant.
func TestOIDC_ExpiredCode(t *testing.T) {
	f, _ := newOIDCFixture(t)
	// A code that expires a nanosecond after it is issued: expired by the
	// time it is exchanged, with no waiting.
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.AuthCodeTTL = time.Nanosecond })
	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	code := mustCode(t, conf, f.email, f.password, pkce)
	if _, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(pkce)); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("expired code: got %v, want invalid_grant", err)
	}
}

// TestOIDC_UserInfo: userinfo answers a token granted openid (GET and
// POST) with sub and the claims of its scopes, and refuses a missing, bad,
// revoked or openid-less token with WWW-Authenticate.
func TestOIDC_UserInfo(t *testing.T) {
	f, _ := newOIDCFixture(t)
	base := daemontest.URL(f.m)
	conf := f.oauthConfig(f.clientID, f.secret)
	conf.Scopes = []string{oidc.ScopeOpenID, "email"}
	tok := oidcSignIn(t, f, conf, "n-1")
	me := &daemontest.Client{TB: t, Base: base, Token: tok.AccessToken}
	for _, method := range []string{"GET", "POST"} {
		got := me.Must(200, method, "/oauth2/userinfo", nil)
		if got.Str("sub") != f.user || got.Str("email") != f.email || got.Body["name"] != nil {
			t.Fatalf("%s userinfo: got %s, want sub and email (no name without profile)", method, got.Raw)
		}
	}
	plain := oidcSignIn(t, f, f.oauthConfig(f.clientID, f.secret), "")
	for name, tc := range map[string]struct {
		token string
		want  int
		auth  string
	}{
		"no token":          {"", 401, "Bearer"},
		"garbage":           {"abc.def.ghi", 401, `error="invalid_token"`},
		"no openid scope":   {plain.AccessToken, 403, `error="insufficient_scope"`},
		"app token, no sub": {daemontest.ClientToken(t, base, f.clientID, f.secret, ""), 403, `error="insufficient_scope"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := (&daemontest.Client{TB: t, Base: base, Token: tc.token}).Do("GET", "/oauth2/userinfo", nil)
			if r.Status != tc.want || !strings.Contains(r.Header.Get("WWW-Authenticate"), tc.auth) {
				t.Fatalf("got %d %q, want %d with %s", r.Status, r.Header.Get("WWW-Authenticate"), tc.want, tc.auth)
			}
		})
	}
	t.Run("revoked", func(t *testing.T) {
		// Judged on a replica that has applied the revocation: its
		// consistency token in the header.
		rev := f.admin.Must(200, "POST", "/v1/users/"+f.user+"/revokeTokens", nil)
		r := me.Do("GET", "/oauth2/userinfo", nil, "Consistency-Token", rev.Str("consistencyToken"))
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("revoked token: got %d %q, want 401 invalid_token", r.Status, r.Header.Get("WWW-Authenticate"))
		}
	})
}

// TestOIDC_Discovery: discovery lists what is served, no more.
func TestOIDC_Discovery(t *testing.T) {
	m := daemontest.Start(t, "")
	base := daemontest.URL(m)
	resp, err := openapitest.Client(t).Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"userinfo_endpoint":                     base + "/oauth2/userinfo",
		"response_types_supported":              []any{"code"},
		"grant_types_supported":                 []any{"client_credentials", "authorization_code", "refresh_token"},
		"scopes_supported":                      []any{"openid", "email", "profile", "offline_access"},
		"code_challenge_methods_supported":      []any{"S256"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post"},
		"id_token_signing_alg_values_supported": []any{"ES256"},
	} {
		if got, _ := json.Marshal(d[key]); string(got) != mustJSON(want) {
			t.Errorf("%s: got %s, want %s", key, got, mustJSON(want))
		}
	}
	claims, _ := d["claims_supported"].([]any)
	for _, c := range []string{"sub", "aud", "auth_time", "nonce", "at_hash", "email", "name"} {
		if !slices.Contains(claims, any(c)) {
			t.Errorf("claims_supported: got %v, want %s among them", claims, c)
		}
	}
	// Every endpoint listed answers (not 404), the token endpoint to POST.
	for _, key := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"} {
		u, _ := d[key].(string)
		method := "GET"
		if key == "token_endpoint" {
			method = "POST"
		}
		req, _ := http.NewRequest(method, u, nil)
		resp, err := openapitest.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Errorf("%s %s: got 404, want it served", key, u)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
