package api_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2"

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
