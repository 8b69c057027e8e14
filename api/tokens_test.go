package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// TestTokens_EndWithTheirCredential: a token from the client-credentials
// grant stops working once its credential is disabled or deleted.
func TestTokens_EndWithTheirCredential(t *testing.T) {
	f := newIDPFixture(t)
	base := daemontest.URL(f.m)
	second := f.admin.Must(201, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	credPath := "/v1/apps/" + f.app + "/credentials/" + second.Str("credentialId")
	app := &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, second.Str("clientId"), second.Str("clientSecret"), "")}
	other := &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, f.clientID, f.secret, "")}
	if got := status(app, "/v1/roles"); got != 200 {
		t.Fatalf("before: got %d, want 200", got)
	}
	f.admin.Must(200, "PATCH", credPath, map[string]any{"status": "disabled"})
	eventlogtest.Eventually(t, 10*time.Second, "the disabled credential's token is refused", func() bool { return status(app, "/v1/roles") == 401 })
	if got := status(other, "/v1/roles"); got != 200 {
		t.Fatalf("the other credential's token: got %d, want 200", got)
	}

	f.admin.Must(200, "PATCH", credPath, map[string]any{"status": "enabled"})
	app.Token = daemontest.ClientToken(t, base, second.Str("clientId"), second.Str("clientSecret"), "")
	eventlogtest.Eventually(t, 10*time.Second, "a token of the re-enabled credential works", func() bool { return status(app, "/v1/roles") == 200 })
	f.admin.Must(200, "DELETE", credPath, nil)
	eventlogtest.Eventually(t, 10*time.Second, "the deleted credential's token is refused", func() bool { return status(app, "/v1/roles") == 401 })
}

// TestTokens_DeactivationOutlivesReactivation: a token from before a
// deactivation stays dead once the identity is active again; a new one
// works.
func TestTokens_DeactivationOutlivesReactivation(t *testing.T) {
	f := newIDPFixture(t)
	base := daemontest.URL(f.m)
	app := &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, f.clientID, f.secret, "")}
	if got := status(app, "/v1/roles"); got != 200 {
		t.Fatalf("before: got %d, want 200", got)
	}
	f.admin.Must(200, "PATCH", "/v1/apps/"+f.app, map[string]any{"status": "deactivated"})
	deactivated := time.Now()
	ct := f.admin.Must(200, "PATCH", "/v1/apps/"+f.app, map[string]any{"status": "active"}).Str("consistencyToken")
	if got := app.Do("GET", "/v1/roles", nil, "Consistency-Token", ct).Status; got != 401 {
		t.Fatalf("the token from before the deactivation, after the reactivation: got %d, want 401", got)
	}
	nextSecond(t, deactivated)
	if got := app.With(daemontest.ClientToken(t, base, f.clientID, f.secret, "")).Do("GET", "/v1/roles", nil, "Consistency-Token", ct).Status; got != 200 {
		t.Fatalf("a new token: got %d, want 200", got)
	}
}

// nextSecond waits for the second after t: revocation has whole-second
// precision (iat), so a token issued in the second of a revocation is
// refused too.
func nextSecond(t *testing.T, at time.Time) {
	t.Helper()
	eventlogtest.Eventually(t, 3*time.Second, "the next second", func() bool { return time.Now().Unix() > at.Unix() })
}

// TestPasswords_ChangeAndResetEndTokens: a password change or reset ends
// the user's tokens issued before it.
func TestPasswords_ChangeAndResetEndTokens(t *testing.T) {
	f := newIDPFixture(t)
	ctx := context.Background()
	base := daemontest.URL(f.m)
	conf := f.oauthConfig(f.clientID, f.secret)
	userToken := func(password string) *daemontest.Client {
		pkce := oauth2.GenerateVerifier()
		tok, err := conf.Exchange(ctx, mustCode(t, conf, f.email, password, pkce), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		return &daemontest.Client{TB: t, Base: base, Token: tok.AccessToken}
	}
	me := userToken(f.password)
	if got := status(me, "/v1/users/"+f.user); got != 200 {
		t.Fatalf("before: got %d, want 200", got)
	}
	me.Must(200, "PUT", "/v1/users/"+f.user+"/password", map[string]any{"currentPassword": f.password, "newPassword": "second password"})
	changed := time.Now()
	f.passwords = append(f.passwords, "second password")
	eventlogtest.Eventually(t, 10*time.Second, "the token from before the change is refused", func() bool { return status(me, "/v1/users/"+f.user) == 401 })

	nextSecond(t, changed)
	me = userToken("second password")
	if got := status(me, "/v1/users/"+f.user); got != 200 {
		t.Fatalf("a token after the change: got %d, want 200", got)
	}
	anon := &daemontest.Client{TB: t, Base: base}
	anon.Must(202, "POST", "/v1/passwordResets", map[string]any{"realm": f.m.Bootstrap.Realm, "email": f.email})
	token, _ := readMail(t, f.m, "passwordReset", 0)
	anon.Must(200, "POST", "/v1/passwordResets/confirm", map[string]any{"token": token, "newPassword": "third password"})
	f.passwords = append(f.passwords, "third password")
	eventlogtest.Eventually(t, 10*time.Second, "the token from before the reset is refused", func() bool { return status(me, "/v1/users/"+f.user) == 401 })
}

// feedEnds waits for the server to end s.
func feedEnds(t *testing.T, s *daemontest.ChangeStream, what string) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: the change feed is still open after 15s, want it ended", what)
	}
}

// TestChanges_EndsWithTheToken: a change feed ends when its token expires,
// when its caller loses the right to list the realm, and when it is
// deactivated.
func TestChanges_EndsWithTheToken(t *testing.T) {
	f := newIDPFixture(t)
	base := daemontest.URL(f.m)
	f.admin.Must(200, "PUT", "/v1/identities/"+f.app+"/roles/OrgAdmin", nil)

	t.Run("expiry", func(t *testing.T) {
		resp, err := openapitest.Client(t).PostForm(base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {f.clientID}, "client_secret": {f.secret}, "expires_in": {"2"}})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("token: got %d %v, want 200", resp.StatusCode, err)
		}
		feedEnds(t, daemontest.OpenFeed(t, base, out.AccessToken, ""), "after the token's exp")
	})
	t.Run("rights", func(t *testing.T) {
		s := daemontest.OpenFeed(t, base, daemontest.ClientToken(t, base, f.clientID, f.secret, ""), "")
		f.admin.Must(200, "DELETE", "/v1/identities/"+f.app+"/roles/OrgAdmin", nil)
		feedEnds(t, s, "after the caller lost its right to list")
		f.admin.Must(200, "PUT", "/v1/identities/"+f.app+"/roles/OrgAdmin", nil)
	})
	t.Run("deactivation", func(t *testing.T) {
		s := daemontest.OpenFeed(t, base, daemontest.ClientToken(t, base, f.clientID, f.secret, ""), "")
		f.admin.Must(200, "PATCH", "/v1/apps/"+f.app, map[string]any{"status": "deactivated"})
		feedEnds(t, s, "after the caller's deactivation")
	})
}

// TestChanges_StreamCaps: past MaxStreamsPerIdentity (default 4) open
// feeds, the next one of the same identity is 429 rate_limited with
// Retry-After.
func TestChanges_StreamCaps(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	for range 4 {
		daemontest.OpenFeed(t, daemontest.URL(m), admin.Token, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := daemontest.GetChanges(ctx, t, daemontest.URL(m), admin.Token)
	defer resp.Body.Close()
	var body struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || body.Code != "rate_limited" {
		t.Fatalf("5th feed: got %d, Retry-After %q, code %q; want 429, a Retry-After and rate_limited", resp.StatusCode, resp.Header.Get("Retry-After"), body.Code)
	}
}
