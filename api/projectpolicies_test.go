package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	iam "github.com/iam-project/iam"
)

// readCheck asks, as the admin, whether subject may read resource (scope "" for
// an unscoped check), at the log's head.
func (o *owners) readCheck(subject, resource, scope string) decision {
	o.t.Helper()
	q := map[string]any{"subject": subject, "action": "read", "resource": resource, "consistency": map[string]any{"mode": "fully_consistent"}}
	if scope != "" {
		q["scope"] = iam.ProjectHRN(o.realm, scope)
	}
	return decisionOf(o.t, o.admin.Do("POST", "/v1/check", q))
}

func readStatement(resources ...string) map[string]any {
	return map[string]any{"name": "readers", "statements": []any{map[string]any{"effect": "allow", "actions": []string{"read"}, "resources": resources}}}
}

// TestAPI_ProjectPolicies (issue 10, item 3): a project's admins, OrgAdmin
// and ResourceManager create policies living in the project, naming only
// its resources, at most 5; they are given to its members (never another
// project's), reach project resources only through a scoped check, serve as
// defaults for a member added without policies, and go from every
// assignment when deleted. Others are refused: 403 without the right, 404
// for another realm's admin.
func TestAPI_ProjectPolicies(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", true, iam.RoleProjectAdmin)
	o.actor("bob", true, iam.RoleProjectAdmin)
	o.actor("plain", false)
	o.actor("rm", false, iam.RoleResourceManager)
	o.actor("member", false)
	o.actor("newcomer", false)
	o.create("alice", "P", "/v1/projects")
	o.create("bob", "Q", "/v1/projects")
	o.otherRealmAdmin()
	data := func(name string) string { return "hrn:here:data::" + o.realm + ":" + name }
	in, out, inQ := data("in-p"), data("outside"), data("in-q")
	o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/resources/")+url.PathEscape(in), map[string]any{"relation": "home"})
	o.as["bob"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{Q}/resources/")+url.PathEscape(inQ), map[string]any{"relation": "home"})

	pp := o.as["alice"].Must(http.StatusCreated, "POST", o.path("/v1/projects/{P}/policies"), readStatement(in))
	if want := iam.ProjectHRN(o.realm, o.ids["P"]) + ":policy/" + pp.Str("id"); pp.Str("hrn") != want {
		t.Fatalf("project policy hrn: got %q, want %q", pp.Str("hrn"), want)
	}
	qp := o.as["bob"].Must(http.StatusCreated, "POST", o.path("/v1/projects/{Q}/policies"), readStatement(inQ)).Str("hrn")

	t.Run("statements name only the project's resources", func(t *testing.T) {
		wantProblem(t, o.as["alice"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(in, out)), http.StatusBadRequest, "invalid_argument", "statements[0].resources[1]")
		wantProblem(t, o.as["alice"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(inQ)), http.StatusBadRequest, "invalid_argument", "statements[0].resources[0]")
		wantProblem(t, o.as["alice"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(data("in-*"))), http.StatusBadRequest, "invalid_argument", "statements[0].resources[0]")
	})
	t.Run("who may manage them", func(t *testing.T) {
		wantProblem(t, o.as["bob"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(in)), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, o.as["plain"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(in)), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, o.as["plain"].Do("GET", o.path("/v1/projects/{P}/policies"), nil), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, o.as["bob"].Do("DELETE", o.path("/v1/projects/{P}/policies/")+pp.Str("id"), nil), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, o.as["bob"].Do("PATCH", o.path("/v1/projects/{P}"), map[string]any{"defaultMemberPolicies": []string{}}), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, o.as["other"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(in)), http.StatusNotFound, "not_found", "")
		wantProblem(t, o.as["other"].Do("GET", o.path("/v1/projects/{P}/policies"), nil), http.StatusNotFound, "not_found", "")
		o.as["rm"].Must(http.StatusCreated, "POST", o.path("/v1/projects/{P}/policies"), readStatement(in))
		o.admin.Must(http.StatusCreated, "POST", o.path("/v1/projects/{P}/policies"), readStatement(in))
	})
	t.Run("at most 5 per project", func(t *testing.T) {
		for range 2 {
			o.as["alice"].Must(http.StatusCreated, "POST", o.path("/v1/projects/{P}/policies"), readStatement(in))
		}
		r := o.as["alice"].Do("POST", o.path("/v1/projects/{P}/policies"), readStatement(in))
		wantProblem(t, r, http.StatusConflict, "limit_exceeded", "")
		if !strings.Contains(r.Str("detail"), "at most 5 project policies") {
			t.Errorf("6th project policy: got %s, want a detail naming at most 5 project policies", r.Raw)
		}
		items, _ := o.as["alice"].Must(http.StatusOK, "GET", o.path("/v1/projects/{P}/policies"), nil).Body["items"].([]any)
		if len(items) != 5 {
			t.Errorf("GET policies: got %d, want 5", len(items))
		}
	})
	t.Run("reach the project's resources through a membership, scoped only", func(t *testing.T) {
		o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/members/{member}"), map[string]any{"policies": []string{pp.Str("hrn")}})
		if d := o.readCheck(o.ids["member"], in, o.ids["P"]); !d.allowed || !strings.Contains(d.reason, pp.Str("hrn")) {
			t.Errorf("scoped check: got %+v, want allowed by %s", d, pp.Str("hrn"))
		}
		if d := o.readCheck(o.ids["member"], in, ""); d.allowed {
			t.Errorf("unscoped check: got allowed (%s), want denied", d.reason)
		}
		wantProblem(t, o.as["alice"].Do("PUT", o.path("/v1/projects/{P}/members/{member}"), map[string]any{"policies": []string{qp}}), http.StatusBadRequest, "invalid_argument", "policies[0]")
	})
	t.Run("defaults for a member added without policies", func(t *testing.T) {
		o.as["alice"].Must(http.StatusOK, "PATCH", o.path("/v1/projects/{P}"), map[string]any{"defaultMemberPolicies": []string{pp.Str("hrn")}})
		wantProblem(t, o.as["alice"].Do("PATCH", o.path("/v1/projects/{P}"), map[string]any{"defaultMemberPolicies": []string{qp}}), http.StatusBadRequest, "invalid_argument", "defaultMemberPolicies[0]")
		o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/members/{newcomer}"), nil)
		if d := o.readCheck(o.ids["newcomer"], in, o.ids["P"]); !d.allowed {
			t.Errorf("newcomer's scoped check: got denied (%s), want allowed by the default", d.reason)
		}
	})
	t.Run("deleted, it leaves every assignment", func(t *testing.T) {
		o.as["alice"].Must(http.StatusOK, "DELETE", o.path("/v1/projects/{P}/policies/")+pp.Str("id"), nil)
		for _, m := range []string{"member", "newcomer"} {
			if d := o.readCheck(o.ids[m], in, o.ids["P"]); d.allowed {
				t.Errorf("%s after the delete: got allowed (%s), want denied", m, d.reason)
			}
		}
		got := o.as["alice"].Must(http.StatusOK, "GET", o.path("/v1/projects/{P}/policies"), nil)
		if defaults, _ := got.Body["defaultMemberPolicies"].([]any); len(defaults) != 0 {
			t.Errorf("defaults after the delete: got %v, want none", defaults)
		}
		wantProblem(t, o.as["alice"].Do("DELETE", o.path("/v1/projects/{P}/policies/")+pp.Str("id"), nil), http.StatusNotFound, "not_found", "policyId")
	})
}

// TestAPI_Plans (issue 10, item 3): a plan of realm policies attached to an
// identity grants its policies' access outside projects, and never inside
// one, scoped or not; detached, it grants nothing.
func TestAPI_Plans(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", true, iam.RoleProjectAdmin)
	o.actor("plain", false)
	o.create("alice", "P", "/v1/projects")
	o.otherRealmAdmin()
	data := func(name string) string { return "hrn:here:data::" + o.realm + ":" + name }
	in, out := data("in-p"), data("outside")
	o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/resources/")+url.PathEscape(in), map[string]any{"relation": "home"})
	o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/members/{plain}"), nil)
	pol := o.admin.Must(http.StatusCreated, "POST", "/v1/policies", readStatement(in, out)).Str("id")
	plan := o.admin.Must(http.StatusCreated, "POST", "/v1/plans", map[string]any{"name": "basic", "policies": []string{pol}}).Str("id")
	wantProblem(t, o.admin.Do("POST", "/v1/plans", map[string]any{"name": "bad", "policies": []string{"nosuch"}}), http.StatusNotFound, "not_found", "policies[0]")
	wantProblem(t, o.as["plain"].Do("POST", "/v1/plans", map[string]any{"name": "mine", "policies": []string{pol}}), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, o.as["plain"].Do("PUT", "/v1/plans/"+plan+"/attachments/"+o.ids["plain"], nil), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, o.as["other"].Do("GET", "/v1/plans/"+plan, nil), http.StatusNotFound, "not_found", "")

	if d := o.readCheck(o.ids["plain"], out, ""); d.allowed {
		t.Fatalf("before the plan: got allowed (%s), want denied", d.reason)
	}
	o.admin.Must(http.StatusOK, "PUT", "/v1/plans/"+plan+"/attachments/"+o.ids["plain"], nil)
	if d := o.readCheck(o.ids["plain"], out, ""); !d.allowed || !strings.Contains(d.reason, "of plan "+plan) {
		t.Errorf("outside projects: got %+v, want allowed by policy %s of plan %s", d, pol, plan)
	}
	for _, scope := range []string{"", o.ids["P"]} {
		if d := o.readCheck(o.ids["plain"], in, scope); d.allowed {
			t.Errorf("inside the project (scope %q): got allowed (%s), want denied", scope, d.reason)
		}
	}
	got := o.admin.Must(http.StatusOK, "GET", "/v1/plans/"+plan, nil)
	if at, _ := got.Body["attachedTo"].([]any); len(at) != 1 || at[0] != o.ids["plain"] {
		t.Errorf("GET plan: got %s, want attached to %s", got.Raw, o.ids["plain"])
	}
	o.admin.Must(http.StatusOK, "DELETE", "/v1/plans/"+plan+"/attachments/"+o.ids["plain"], nil)
	if d := o.readCheck(o.ids["plain"], out, ""); d.allowed {
		t.Errorf("detached: got allowed (%s), want denied", d.reason)
	}
}
