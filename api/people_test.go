package api_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/keyvault"
)

// otherRealm creates realm "other-realm" with a user and a group, through
// the writer, and returns their ids.
func otherRealm(t *testing.T, m *daemon.Main) (user, group string) {
	t.Helper()
	const realm = "other-realm"
	user, group = "u-other", "g-other"
	for _, cmd := range []iam.Command{
		iam.CreateRealm{ID: realm, Name: realm},
		iam.CreateUser{ID: user, Email: "other@example.com", Name: "Other"},
		iam.CreateGroup{ID: group, Name: "other group"},
	} {
		if _, err := m.Writer().Execute(context.Background(), iam.Request{Realm: realm, Command: cmd}); err != nil {
			t.Fatal(err)
		}
	}
	return user, group
}

// userClient signs email in through the sign-in page and returns a client
// holding the user's access token.
func (f *idpFixture) userClient(t *testing.T, email, password string) *daemontest.Client {
	t.Helper()
	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(context.Background(), mustCode(t, conf, email, password, pkce), oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatal(err)
	}
	return &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken}
}

// TestGroupPermissions: a group's effective permissions, read with the
// right to read the group; another realm's or an unknown group is a 404.
func TestGroupPermissions(t *testing.T) {
	f := newFixture(t)
	_, foreign := otherRealm(t, f.m)
	r := f.admin.Must(http.StatusOK, "GET", "/v1/groups/"+f.group+"/permissions", nil, "Consistency-Token", f.last)
	perms, _ := r.Body["permissions"].([]any)
	if len(perms) != 1 || !strings.Contains(string(r.Raw), f.hrn("catalog/*")) || !strings.Contains(string(r.Raw), f.policy) {
		t.Fatalf("permissions of the group: got %s, want the catalog policy", r.Raw)
	}
	wantProblem(t, f.noRights.Do("GET", "/v1/groups/"+f.group+"/permissions", nil), http.StatusForbidden, "permission_denied", "")
	for _, c := range []*daemontest.Client{f.admin, f.noRights} {
		for _, id := range []string{foreign, "g-nobody"} {
			r := c.Do("GET", "/v1/groups/"+id+"/permissions", nil)
			wantProblem(t, r, http.StatusNotFound, "not_found", "id")
		}
	}
}

// TestUsers_EditOwnNameAndEmail: a user edits its own name and email; the
// email stays sealed and its blind index moves; someone else gets 403,
// another realm's user 404; a taken email 409; bad values 400 naming the
// field; an administrator may too.
func TestUsers_EditOwnNameAndEmail(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 1000, 1000 })
	foreign, _ := otherRealm(t, f.m)
	f.admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": "bob@example.com", "name": "Bob", "password": "bob's password"})
	me := f.userClient(t, f.email, f.password)
	bob := f.userClient(t, "bob@example.com", "bob's password")
	path := "/v1/users/" + f.user

	wantProblem(t, bob.Do("PATCH", path, map[string]any{"name": "Mallory"}), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, bob.Do("PATCH", "/v1/users/"+foreign, map[string]any{"name": "Mallory"}), http.StatusNotFound, "not_found", "id")
	wantProblem(t, bob.Do("DELETE", path, nil), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, me.Do("PATCH", path, map[string]any{"email": "bob@example.com"}), http.StatusConflict, "conflict", "email")
	wantProblem(t, me.Do("PATCH", path, map[string]any{"email": "not an email"}), http.StatusBadRequest, "invalid_argument", "email")
	wantProblem(t, me.Do("PATCH", path, map[string]any{"name": " "}), http.StatusBadRequest, "invalid_argument", "name")

	const newEmail, newName = "ada.king@example.com", "Ada King"
	r := me.Must(http.StatusOK, "PATCH", path, map[string]any{"name": newName, "email": newEmail})
	got := f.admin.Must(http.StatusOK, "GET", path, nil, "Consistency-Token", r.Str("consistencyToken"))
	if got.Str("email") != newEmail || got.Str("name") != newName {
		t.Fatalf("after the edit: got %s, want %s and %s", got.Raw, newEmail, newName)
	}
	// The blind index moved: the old email signs in no more, the new one does.
	conf := f.oauthConfig(f.clientID, f.secret)
	if q, resp := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier()); q != nil || !strings.Contains(bodyOf(resp), "Wrong email or password") {
		t.Fatalf("sign-in with the old email: got %d %v, want wrong email or password", resp.StatusCode, q)
	}
	me = f.userClient(t, newEmail, f.password)
	// Sealed: neither the new email nor the new name is in the log or the vault.
	for _, raw := range rawMessages(t, f.m) {
		for _, s := range []string{newEmail, newName, "King"} {
			if strings.Contains(string(raw), s) {
				t.Errorf("a raw message holds %q", s)
			}
		}
	}
	f.admin.Must(http.StatusOK, "PATCH", path, map[string]any{"name": "Set by an administrator"})
	wantProblem(t, me.Do("PATCH", path, map[string]any{"status": "deactivated", "name": "x"}), http.StatusBadRequest, "invalid_argument", "name")

	// Deleting oneself: key destroyed, tokens end, the email is free.
	del := me.Must(http.StatusOK, "DELETE", path, nil)
	for _, region := range f.m.Config.Regions {
		c := me.With(me.Token)
		c.Region = region
		eventlogtest.Eventually(t, 10*time.Second, "token refused in "+region, func() bool { return status(c, "/v1/roles") == http.StatusUnauthorized })
	}
	f.admin.Must(http.StatusNotFound, "GET", path, nil, "Consistency-Token", del.Str("consistencyToken"))
	v, err := keyvault.Open(context.Background(), f.m.Log(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DataKey(context.Background(), f.m.Bootstrap.Realm, f.user, false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Fatalf("data key after deleting oneself: got %v, want destroyed", err)
	}
	f.admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": newEmail, "name": "Someone else"})
}

// mails counts the outbox mails of kind.
func mails(t *testing.T, m *daemon.Main, kind string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(m.Config.DataDir, "outbox", "*-"+kind+"-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// TestInvitations_ResendByInvitee: public, always 202 with the same body; a
// new mail only for a pending invitation, whose new token works and old
// one not; rate limited per source address.
func TestInvitations_ResendByInvitee(t *testing.T) {
	f := newIDPFixture(t)
	realm := f.m.Bootstrap.Realm
	f.admin.Must(http.StatusCreated, "POST", "/v1/invitations", map[string]any{"email": "grace@example.com"})
	first, n := readMail(t, f.m, "invitation", 0)
	anon := &daemontest.Client{TB: t, Base: daemontest.URL(f.m)}

	pending := anon.Must(http.StatusAccepted, "POST", "/v1/invitations/resend", map[string]any{"realm": realm, "email": "Grace@example.com "})
	second, n2 := readMail(t, f.m, "invitation", n)
	for _, body := range []map[string]any{
		{"realm": realm, "email": "nobody@example.com"},
		{"realm": realm, "email": f.email}, // a user, not an invitee
		{"realm": "no-such-realm", "email": "grace@example.com"},
	} {
		r := anon.Must(http.StatusAccepted, "POST", "/v1/invitations/resend", body)
		if string(r.Raw) != string(pending.Raw) {
			t.Errorf("resend %v: got body %s, want the same as for a pending invitation: %s", body, r.Raw, pending.Raw)
		}
	}
	if got := mails(t, f.m, "invitation"); got != n2 {
		t.Errorf("invitation mails after requests without a pending invitation: got %d, want %d", got, n2)
	}
	anon.Must(http.StatusBadRequest, "POST", "/v1/invitations/accept", map[string]any{"token": first, "name": "Grace", "password": "grace password"})
	anon.Must(http.StatusOK, "POST", "/v1/invitations/accept", map[string]any{"token": second, "name": "Grace", "password": "grace password"})
	// Accepted: no longer pending, nothing is sent.
	anon.Must(http.StatusAccepted, "POST", "/v1/invitations/resend", map[string]any{"realm": realm, "email": "grace@example.com"})
	if got := mails(t, f.m, "invitation"); got != n2 {
		t.Errorf("invitation mails after acceptance: got %d, want %d", got, n2)
	}

	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 0.01, 1 })
	var last daemontest.Response
	for range 2 {
		last = anon.Do("POST", "/v1/invitations/resend", map[string]any{"realm": realm, "email": "x@example.com"})
	}
	if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("2nd resend past the limit: got %d, want 429 with Retry-After", last.Status)
	}
}

// TestInvitations_InviterGrantsOnlyWhatItMay: an OrgInviter's invitation
// asking for OrgAdmin or a group it does not manage is a 403 naming it.
func TestInvitations_InviterGrantsOnlyWhatItMay(t *testing.T) {
	f := newIDPFixture(t)
	group := f.admin.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "Team"}).Str("id")
	f.admin.Must(http.StatusOK, "PUT", "/v1/identities/"+f.user+"/roles/"+iam.RoleOrgInviter, nil)
	inviter := f.userClient(t, f.email, f.password)
	r := inviter.Do("POST", "/v1/invitations", map[string]any{"email": "eve@example.com", "roles": []string{iam.RoleOrgAdmin}})
	wantProblem(t, r, http.StatusForbidden, "permission_denied", "roles")
	if !strings.Contains(r.Str("detail"), iam.RoleOrgAdmin) {
		t.Errorf("detail: got %q, want it to name %s", r.Str("detail"), iam.RoleOrgAdmin)
	}
	r = inviter.Do("POST", "/v1/invitations", map[string]any{"email": "eve@example.com", "groups": []string{group}})
	wantProblem(t, r, http.StatusForbidden, "permission_denied", "groups")
	if !strings.Contains(r.Str("detail"), group) {
		t.Errorf("detail: got %q, want it to name group %s", r.Str("detail"), group)
	}
	inviter.Must(http.StatusCreated, "POST", "/v1/invitations", map[string]any{"email": "eve@example.com"})
}

// TestSignIn_SaysWhatHappened: deactivated by an administrator, locked
// (until a real time), or wrong email or password — the last the same for
// an unknown email, and the only answer without the right password.
func TestSignIn_SaysWhatHappened(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 1000, 1000 })
	conf := f.oauthConfig(f.clientID, f.secret)
	verifier := oauth2.GenerateVerifier() // one challenge, so that pages compare whole
	page := func(email, password string) (int, string) {
		t.Helper()
		_, resp := signIn(t, conf, email, password, verifier)
		return resp.StatusCode, strings.ReplaceAll(bodyOf(resp), email, "EMAIL")
	}
	unknownStatus, unknown := page("nobody@example.com", "wrong password")
	if unknownStatus != http.StatusUnauthorized || !strings.Contains(unknown, "Wrong email or password.") {
		t.Fatalf("unknown email: got %d %s", unknownStatus, unknown)
	}

	f.admin.Must(http.StatusOK, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "deactivated"})
	if st, body := page(f.email, f.password); st != http.StatusForbidden || !strings.Contains(body, "deactivated by an administrator") || strings.Contains(body, "locked") || strings.Contains(body, "0001") {
		t.Errorf("deactivated, right password: got %d %s, want 403 saying deactivated by an administrator", st, body)
	}
	if st, body := page(f.email, "wrong password"); st != unknownStatus || body != unknown {
		t.Errorf("deactivated, wrong password: got %d\n%s\nwant what an unknown email gets:\n%s", st, body, unknown)
	}
	f.admin.Must(http.StatusOK, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "active"})

	for i := range 5 { // the 5th locks, and says no more than the others
		if st, body := page(f.email, "wrong password"); st != unknownStatus || body != unknown {
			t.Errorf("failure %d: got %d\n%s\nwant what an unknown email gets", i+1, st, body)
		}
	}
	if st, body := page(f.email, "wrong password"); st != unknownStatus || body != unknown {
		t.Errorf("locked, wrong password: got %d\n%s\nwant what an unknown email gets", st, body)
	}
	year := time.Now().UTC().Format("2006")
	if st, body := page(f.email, f.password); st != http.StatusForbidden || !strings.Contains(body, "locked") || !strings.Contains(body, year) {
		t.Errorf("locked, right password: got %d %s, want 403 saying locked until a time in %s", st, body, year)
	}
}
