package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	iam "github.com/iam-project/iam"
)

// step is one call of a walk: who makes it and what it must answer.
type step struct {
	name         string
	actor        string
	method, path string
	body         any
	status       int
	code         string
}

func (o *owners) walk(steps []step) {
	o.t.Helper()
	for _, st := range steps {
		r := o.as[st.actor].Do(st.method, o.path(st.path), st.body)
		if r.Status != st.status {
			o.t.Errorf("%s: %s %s as %s: got %d %s, want %d", st.name, st.method, st.path, st.actor, r.Status, r.Raw, st.status)
			continue
		}
		if st.code != "" {
			wantProblem(o.t, r, st.status, st.code, "")
		}
	}
}

// check asks, as the admin, whether subject may do action on resource
// (scoped to project, when named), at the latest state.
func (o *owners) check(subject, action, resource, project string) (bool, string) {
	o.t.Helper()
	req := map[string]any{"subject": o.ids[subject], "action": action, "resource": resource,
		"consistency": map[string]any{"mode": "fully_consistent"}}
	if project != "" {
		req["scope"] = iam.ProjectHRN(o.realm, o.ids[project])
	}
	r := o.admin.Must(http.StatusOK, "POST", "/v1/check", req)
	allowed, _ := r.Body["allowed"].(bool)
	return allowed, r.Str("reason")
}

// TestAPI_ShareApp (issue 10, "Sharing"): sharing an app gives the sharee
// read, manage and share on it — it adds a credential, and re-shares —
// until it is unshared; someone else's app is 403, another realm's 404.
func TestAPI_ShareApp(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", true)
	o.actor("bob", true)
	o.actor("plain", false)
	o.create("alice", "A", "/v1/apps")
	o.create("bob", "B", "/v1/apps")
	o.otherRealmAdmin()
	appA := iam.AppHRN(o.realm, o.ids["A"])
	if ok, why := o.check("bob", iam.ActionShare, appA, ""); ok {
		t.Fatalf("bob share on A before sharing: got allowed (%s), want denied", why)
	}
	o.walk([]step{
		{"not shared: credential", "bob", "POST", "/v1/apps/{A}/credentials", nil, 403, "permission_denied"},
		{"someone else's app: share with oneself", "bob", "PUT", "/v1/apps/{A}/shares/{bob}", nil, 403, "permission_denied"},
		{"someone else's app: list shares", "plain", "GET", "/v1/apps/{A}/shares", nil, 403, "permission_denied"},
		{"manager shares", "alice", "PUT", "/v1/apps/{A}/shares/{bob}", nil, 200, ""},
		{"sharee adds a credential", "bob", "POST", "/v1/apps/{A}/credentials", nil, 201, ""},
		{"sharee re-shares", "bob", "PUT", "/v1/apps/{A}/shares/{plain}", nil, 200, ""},
		{"unknown sharee", "alice", "PUT", "/v1/apps/{A}/shares/nobody", nil, 404, "not_found"},
		{"manager of A shares B", "alice", "PUT", "/v1/apps/{B}/shares/{alice}", nil, 403, "permission_denied"},
		{"other realm's OrgAdmin: share A", "other", "PUT", "/v1/apps/{A}/shares/{other}", nil, 404, "not_found"},
		{"other realm's OrgAdmin: list A's", "other", "GET", "/v1/apps/{A}/shares", nil, 404, "not_found"},
		{"OrgAdmin lists", "admin", "GET", "/v1/apps/{A}/shares", nil, 200, ""},
	})
	if ok, why := o.check("bob", iam.ActionShare, appA, ""); !ok || !strings.Contains(why, "share of app/"+o.ids["A"]) {
		t.Errorf("bob share on A: got %v (%s), want allowed by share of app/A", ok, why)
	}
	r := o.admin.Must(http.StatusOK, "GET", o.path("/v1/apps/{A}/shares"), nil)
	var got []string
	ss, _ := r.Body["shares"].([]any)
	for _, s := range ss {
		got = append(got, s.(map[string]any)["id"].(string)+":"+s.(map[string]any)["kind"].(string))
	}
	if want := sortedCSV(o.path("{bob}:app,{plain}:app")); strings.Join(got, ",") != want {
		t.Errorf("shares of A: got %v, want %s", got, want)
	}
	o.walk([]step{
		{"manager unshares", "alice", "DELETE", "/v1/apps/{A}/shares/{bob}", nil, 200, ""},
		{"unshared: credential", "bob", "POST", "/v1/apps/{A}/credentials", nil, 403, "permission_denied"},
	})
	if ok, why := o.check("bob", iam.ActionShare, appA, ""); ok {
		t.Errorf("bob share on A after unsharing: got allowed (%s), want denied", why)
	}
}

// TestAPI_Link (issue 10, "Linking"): linking needs share on the resource
// from its home project (its manager, or a member policy there granting
// share) as well as managing the target; the linked project's scoped check
// then reaches it. A resource homed elsewhere is not declared home; a not
// linkable one is not linked (its links stay); another realm's project is
// 404.
func TestAPI_Link(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", false, iam.RoleProjectAdmin)
	o.actor("bob", false, iam.RoleProjectAdmin)
	o.actor("u", false)
	o.create("alice", "H", "/v1/projects")
	o.create("alice", "H2", "/v1/projects")
	o.create("bob", "L", "/v1/projects")
	o.create("bob", "M", "/v1/projects")
	o.otherRealmAdmin()
	cat := "hrn:here:data::" + o.realm + ":cat"
	res := "/resources/" + url.PathEscape(cat)
	policy := func(name, action string) string {
		return o.admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": name, "statements": []any{
			map[string]any{"effect": "allow", "actions": []string{action}, "resources": []string{cat}}}}).Str("id")
	}
	o.ids["share"], o.ids["read"] = policy("share-cat", iam.ActionShare), policy("read-cat", "read")
	home, link := map[string]any{"relation": "home"}, map[string]any{"relation": "link"}
	o.walk([]step{
		{"home in H", "alice", "PUT", "/v1/projects/{H}" + res, home, 200, ""},
		{"foreign home", "bob", "PUT", "/v1/projects/{L}" + res, home, 409, "conflict"},
		{"link without share", "bob", "PUT", "/v1/projects/{L}" + res, link, 403, "permission_denied"},
		{"home's manager links", "alice", "PUT", "/v1/projects/{H2}" + res, link, 200, ""},
		{"share through a member policy of the home", "alice", "PUT", "/v1/projects/{H}/members/{bob}", map[string]any{"policies": []string{o.ids["share"]}}, 200, ""},
		{"link with share", "bob", "PUT", "/v1/projects/{L}" + res, link, 200, ""},
		{"reader in L", "bob", "PUT", "/v1/projects/{L}/members/{u}", map[string]any{"policies": []string{o.ids["read"]}}, 200, ""},
		{"share is no right to manage the target", "bob", "PUT", "/v1/projects/{H2}/resources/" + url.PathEscape("hrn:here:data::"+o.realm+":x"), home, 403, "permission_denied"},
	})
	r := o.as["bob"].Do("PUT", o.path("/v1/projects/{M}"+res), home)
	if wantProblem(t, r, http.StatusConflict, "conflict", ""); !strings.Contains(r.Str("detail"), "home in project "+o.ids["H"]) {
		t.Errorf("foreign home: got %s, want a detail saying where it lives", r.Raw)
	}
	if ok, why := o.check("u", "read", cat, "L"); !ok {
		t.Errorf("read in L after the link: got denied (%s), want allowed", why)
	}
	o.walk([]step{
		{"not linkable, said by a linking project", "bob", "PATCH", "/v1/projects/{L}" + res, map[string]any{"linkable": false}, 409, "conflict"},
		{"not linkable, said by someone else", "u", "PATCH", "/v1/projects/{H}" + res, map[string]any{"linkable": false}, 403, "permission_denied"},
		{"not linkable, no field", "alice", "PATCH", "/v1/projects/{H}" + res, map[string]any{}, 400, "invalid_argument"},
		{"not linkable, said by the home", "alice", "PATCH", "/v1/projects/{H}" + res, map[string]any{"linkable": false}, 200, ""},
		{"other realm's OrgAdmin: linkable", "other", "PATCH", "/v1/projects/{H}" + res, map[string]any{"linkable": true}, 404, "not_found"},
		{"other realm's OrgAdmin: link", "other", "PUT", "/v1/projects/{H}" + res, link, 404, "not_found"},
	})
	r = o.as["bob"].Do("PUT", o.path("/v1/projects/{M}"+res), link)
	if wantProblem(t, r, http.StatusConflict, "conflict", ""); !strings.Contains(r.Str("detail"), "not linkable") {
		t.Errorf("link of a not linkable resource: got %s, want a detail naming why", r.Raw)
	}
	if ok, why := o.check("u", "read", cat, "L"); !ok {
		t.Errorf("read in L once not linkable: got denied (%s), want allowed (links stay)", why)
	}
	o.walk([]step{
		{"linkable again", "alice", "PATCH", "/v1/projects/{H}" + res, map[string]any{"linkable": true}, 200, ""},
		{"link into M", "bob", "PUT", "/v1/projects/{M}" + res, link, 200, ""},
	})
}
