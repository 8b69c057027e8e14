package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"golang.org/x/oauth2"
)

// owners is a running iamd with apps acting as people: each made by the
// admin, given roles and the creator policy, with a token of its own.
type owners struct {
	t       *testing.T
	m       *daemon.Main
	admin   *daemontest.Client
	realm   string
	creator string // policy: createApp and createGroup on the realm
	ids     map[string]string
	as      map[string]*daemontest.Client
}

func newOwners(t *testing.T) *owners {
	m := daemontest.Start(t, "")
	o := &owners{t: t, m: m, admin: daemontest.AdminClient(t, m), realm: m.Bootstrap.Realm,
		ids: map[string]string{}, as: map[string]*daemontest.Client{}}
	o.creator = o.admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "creators", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{iam.ActionCreateApp, iam.ActionCreateGroup}, "resources": []string{iam.RealmHRN(o.realm)}}}}).Str("id")
	o.as["admin"] = o.admin
	return o
}

// actor makes an app named name holding roles (and the creator policy
// when creates) and keeps a client with its token.
func (o *owners) actor(name string, creates bool, roles ...string) {
	o.t.Helper()
	id := o.admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": name}).Str("id")
	for _, role := range roles {
		o.admin.Must(http.StatusOK, "PUT", "/v1/identities/"+id+"/roles/"+role, nil)
	}
	if creates {
		o.admin.Must(http.StatusOK, "PUT", "/v1/policies/"+o.creator+"/attachments/"+id, nil)
	}
	cred := o.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+id+"/credentials", nil)
	tok := daemontest.ClientToken(o.t, daemontest.URL(o.m), cred.Str("clientId"), cred.Str("clientSecret"), "")
	o.ids[name] = id
	o.as[name] = o.admin.With(tok)
}

// path replaces each {label} in p by the id of that label.
func (o *owners) path(p string) string {
	for label, id := range o.ids {
		p = strings.ReplaceAll(p, "{"+label+"}", id)
	}
	return p
}

// create makes an entity as actor and labels it.
func (o *owners) create(actor, label, path string) {
	o.t.Helper()
	o.ids[label] = o.as[actor].Must(http.StatusCreated, "POST", path, map[string]any{"name": label}).Str("id")
}

// TestAPI_Ownership walks roles × operations (issue 10, "Ownership"): the
// creator of an app, a group or a project manages that one entity; others
// (a plain app, another holder of ProjectAdmin) may not; OrgAdmin and
// ResourceManager act on all; managers are added and removed, a group's
// members manage through it, the last manager stays, and an orphan (its
// only manager deleted) is taken over by a ResourceManager.
func TestAPI_Ownership(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", true, iam.RoleProjectAdmin)
	o.actor("bob", true, iam.RoleProjectAdmin)
	o.actor("plain", false)
	o.actor("rm", false, iam.RoleResourceManager)
	o.create("alice", "A", "/v1/apps")
	o.create("alice", "G", "/v1/groups")
	o.create("alice", "P", "/v1/projects")
	o.create("bob", "Q", "/v1/projects")
	o.create("bob", "B", "/v1/apps")
	// team is a group with bob in it, made by the admin (its manager).
	o.create("admin", "team", "/v1/groups")
	o.admin.Must(http.StatusOK, "PUT", o.path("/v1/groups/{team}/members/{bob}"), nil)
	o.otherRealmAdmin()
	res := url.PathEscape("hrn:here:data::" + o.realm + ":catalog-1")

	steps := []struct {
		name         string
		actor        string
		method, path string
		body         any
		status       int
		code         string
	}{
		// Apps: the creator, OrgAdmin and ResourceManager manage; nobody else.
		{"app creator adds a credential", "alice", "POST", "/v1/apps/{A}/credentials", nil, 201, ""},
		{"app creator adds an API key", "alice", "POST", "/v1/apps/{A}/apiKeys", nil, 201, ""},
		{"app creator sets its status", "alice", "PATCH", "/v1/apps/{A}", map[string]any{"status": "active"}, 200, ""},
		{"app creator reads it", "alice", "GET", "/v1/apps/{A}", nil, 200, ""},
		{"another creator: credential", "bob", "POST", "/v1/apps/{A}/credentials", nil, 403, "permission_denied"},
		{"plain app: credential", "plain", "POST", "/v1/apps/{A}/credentials", nil, 403, "permission_denied"},
		{"plain app: read", "plain", "GET", "/v1/apps/{A}", nil, 403, "permission_denied"},
		{"OrgAdmin: credential", "admin", "POST", "/v1/apps/{A}/credentials", nil, 201, ""},
		{"ResourceManager: credential", "rm", "POST", "/v1/apps/{A}/credentials", nil, 201, ""},
		// Groups: the creator is its group admin.
		{"group creator adds a member", "alice", "PUT", "/v1/groups/{G}/members/{plain}", nil, 200, ""},
		{"group creator removes a member", "alice", "DELETE", "/v1/groups/{G}/members/{plain}", nil, 200, ""},
		{"another user adds a member", "bob", "PUT", "/v1/groups/{G}/members/{bob}", nil, 403, "permission_denied"},
		{"ResourceManager adds a member", "rm", "PUT", "/v1/groups/{G}/members/{plain}", nil, 200, ""},
		// Projects: the creator administers its own, another ProjectAdmin
		// holder only its own.
		{"project creator sets a member", "alice", "PUT", "/v1/projects/{P}/members/{plain}", map[string]any{"policies": []string{}}, 200, ""},
		{"project creator adds a resource", "alice", "PUT", "/v1/projects/{P}/resources/" + res, map[string]any{"relation": "home"}, 200, ""},
		{"other ProjectAdmin: member of P", "bob", "PUT", "/v1/projects/{P}/members/{bob}", nil, 403, "permission_denied"},
		{"other ProjectAdmin: resource of P", "bob", "DELETE", "/v1/projects/{P}/resources/" + res, nil, 403, "permission_denied"},
		{"other ProjectAdmin: its own Q", "bob", "PUT", "/v1/projects/{Q}/members/{plain}", nil, 200, ""},
		{"other ProjectAdmin creates another", "bob", "POST", "/v1/projects", map[string]any{"name": "R"}, 201, ""},
		{"plain app creates no project", "plain", "POST", "/v1/projects", map[string]any{"name": "S"}, 403, "permission_denied"},
		{"ResourceManager: member of P", "rm", "PUT", "/v1/projects/{P}/members/{rm}", nil, 200, ""},
		// Managers: listed, added (a group too), removed; the last stays.
		{"creator lists managers", "alice", "GET", "/v1/apps/{A}/managers", nil, 200, ""},
		{"plain app lists no managers", "plain", "GET", "/v1/apps/{A}/managers", nil, 403, "permission_denied"},
		{"last manager of A stays", "alice", "DELETE", "/v1/apps/{A}/managers/{alice}", nil, 409, "conflict"},
		{"last manager of P stays", "alice", "DELETE", "/v1/projects/{P}/managers/{alice}", nil, 409, "conflict"},
		{"not a manager adds itself", "bob", "PUT", "/v1/apps/{A}/managers/{bob}", nil, 403, "permission_denied"},
		{"creator adds a group as manager", "alice", "PUT", "/v1/apps/{A}/managers/{team}", nil, 200, ""},
		{"member of the manager group: credential", "bob", "POST", "/v1/apps/{A}/credentials", nil, 201, ""},
		{"member of the manager group removes the creator", "bob", "DELETE", "/v1/apps/{A}/managers/{alice}", nil, 200, ""},
		{"removed creator: credential", "alice", "POST", "/v1/apps/{A}/credentials", nil, 403, "permission_denied"},
		{"last manager (a group) stays", "bob", "DELETE", "/v1/apps/{A}/managers/{team}", nil, 409, "conflict"},
		{"creator adds a user manager to P", "alice", "PUT", "/v1/projects/{P}/managers/{bob}", nil, 200, ""},
		{"added manager sets a member of P", "bob", "PUT", "/v1/projects/{P}/members/{bob}", nil, 200, ""},
		{"added manager removes the creator from P", "bob", "DELETE", "/v1/projects/{P}/managers/{alice}", nil, 200, ""},
		{"removed from P: member", "alice", "PUT", "/v1/projects/{P}/members/{alice}", nil, 403, "permission_denied"},
		{"ResourceManager adds a group manager", "rm", "PUT", "/v1/groups/{G}/managers/{rm}", nil, 200, ""},
		{"unknown manager", "admin", "PUT", "/v1/groups/{G}/managers/nobody", nil, 404, "not_found"},
		// Someone else's id, an unknown id, another realm's.
		{"unknown app, not a manager", "alice", "PUT", "/v1/apps/a-nosuchapp/managers/{alice}", nil, 403, "permission_denied"},
		{"unknown app, OrgAdmin", "admin", "PUT", "/v1/apps/a-nosuchapp/managers/{alice}", nil, 404, "not_found"},
		{"unknown project, OrgAdmin lists", "admin", "GET", "/v1/projects/nosuch/managers", nil, 404, "not_found"},
		{"other realm's OrgAdmin: manager of A", "other", "PUT", "/v1/apps/{A}/managers/{other}", nil, 404, "not_found"},
		{"other realm's OrgAdmin: lists A's", "other", "GET", "/v1/apps/{A}/managers", nil, 404, "not_found"},
		// An orphan: its only manager deleted, taken over by a ResourceManager.
		{"orphan's manager deleted", "admin", "DELETE", "/v1/apps/{bob}", nil, 200, ""},
		{"orphaned Q taken over", "rm", "PUT", "/v1/projects/{Q}/managers/{rm}", nil, 200, ""},
		{"orphaned B taken over by OrgAdmin", "admin", "PUT", "/v1/apps/{B}/managers/{alice}", nil, 200, ""},
		{"B's new manager: credential", "alice", "POST", "/v1/apps/{B}/credentials", nil, 201, ""},
	}
	for _, st := range steps {
		r := o.as[st.actor].Do(st.method, o.path(st.path), st.body)
		if r.Status != st.status {
			t.Errorf("%s: %s %s as %s: got %d %s, want %d", st.name, st.method, st.path, st.actor, r.Status, r.Raw, st.status)
			continue
		}
		if st.code != "" {
			wantProblem(t, r, st.status, st.code, "")
		}
	}
	// The lists say who manages what, after the walk.
	for _, tt := range []struct{ path, want string }{
		{"/v1/apps/{A}/managers", "{team}:group"},
		{"/v1/groups/{G}/managers", "{alice}:app,{rm}:app"},
		{"/v1/projects/{P}/managers", ""}, // bob, its last manager, was deleted
		{"/v1/projects/{Q}/managers", "{rm}:app"},
		{"/v1/apps/{B}/managers", "{alice}:app"},
	} {
		r := o.admin.Must(http.StatusOK, "GET", o.path(tt.path), nil)
		var got []string
		ms, _ := r.Body["managers"].([]any)
		for _, m := range ms {
			m := m.(map[string]any)
			got = append(got, fmt.Sprintf("%s:%s", m["id"], m["kind"]))
		}
		if want := sortedCSV(o.path(tt.want)); strings.Join(got, ",") != want {
			t.Errorf("GET %s: got %v, want %s", tt.path, got, want)
		}
	}
	// The refusal of the last manager says why.
	r := o.as["admin"].Do("DELETE", o.path("/v1/apps/{A}/managers/{team}"), nil)
	if !strings.Contains(r.Str("detail"), "last manager") {
		t.Errorf("last manager refused: got %s, want a detail naming the last manager", r.Raw)
	}
}

func sortedCSV(s string) string {
	if s == "" {
		return ""
	}
	parts := strings.Split(s, ",")
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j] < parts[j-1]; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	return strings.Join(parts, ",")
}

// otherRealmAdmin makes "other", the OrgAdmin of a second realm.
func (o *owners) otherRealmAdmin() {
	o.t.Helper()
	realm, app, clientID, secret := "owners-other", "a-ownersother", "ownersotherclient", "owners other secret"
	hash, err := auth.Hash(secret, auth.LowCostHashParams())
	if err != nil {
		o.t.Fatal(err)
	}
	for _, cmd := range []iam.Command{
		iam.CreateRealm{ID: realm, Name: realm},
		iam.CreateApp{ID: app, Name: "other admin"},
		iam.GrantRole{Identity: app, Role: iam.RoleOrgAdmin},
		iam.AddCredential{App: app, CredentialID: "cred-ownersother", ClientID: clientID, SecretHash: hash},
	} {
		if _, err := o.m.Writer().Execute(context.Background(), iam.Request{Realm: realm, Command: cmd}); err != nil {
			o.t.Fatal(err)
		}
	}
	o.ids["other"] = app
	o.as["other"] = o.admin.With(daemontest.ClientToken(o.t, daemontest.URL(o.m), clientID, secret, ""))
}

// TestAPI_AppsPerManager: a user manages at most 100 apps; the 101st it
// creates, or is made manager of, is refused naming the limit.
func TestAPI_AppsPerManager(t *testing.T) {
	f := newIDPFixture(t)
	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(context.Background(), mustCode(t, conf, f.email, f.password, pkce), oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	user := f.admin.With(tok.AccessToken)
	realm := f.m.Bootstrap.Realm
	creator := f.admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "creators", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{iam.ActionCreateApp}, "resources": []string{iam.RealmHRN(realm)}}}}).Str("id")
	f.admin.Must(http.StatusOK, "PUT", "/v1/policies/"+creator+"/attachments/"+f.user, nil)
	// The fixture's Portal app, made by the admin, is not the user's.
	for i := range 100 {
		user.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": fmt.Sprintf("app %d", i)})
	}
	r := user.Do("POST", "/v1/apps", map[string]any{"name": "one too many"})
	wantProblem(t, r, http.StatusConflict, "limit_exceeded", "")
	if !strings.Contains(r.Str("detail"), "at most 100 apps") {
		t.Errorf("limit: got %s, want a detail naming at most 100 apps", r.Raw)
	}
	wantProblem(t, f.admin.Do("PUT", "/v1/apps/"+f.app+"/managers/"+f.user, nil), http.StatusConflict, "limit_exceeded", "")
}
