package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// change is one proposed write of a simulation.
func change(method, path string, body any) map[string]any {
	c := map[string]any{"method": method, "path": path}
	if body != nil {
		c["body"] = body
	}
	return c
}

// simulated is a simulation's answer, decoded.
type simulated struct {
	affected map[string][2][]string // identity → gained, lost (effect action resource)
	checks   []map[string]any
	errors   []map[string]any
}

func simulate(tb testing.TB, c *daemontest.Client, changes []map[string]any, checks ...map[string]any) simulated {
	tb.Helper()
	body := map[string]any{"changes": changes}
	if len(checks) > 0 {
		body["checks"] = checks
	}
	r := c.Must(http.StatusOK, "POST", "/v1/simulate", body)
	out := simulated{affected: map[string][2][]string{}}
	for _, a := range r.Body["affected"].([]any) {
		a := a.(map[string]any)
		out.affected[a["identityId"].(string)] = [2][]string{permKeys(a["gained"]), permKeys(a["lost"])}
	}
	for _, c := range r.Body["checks"].([]any) {
		out.checks = append(out.checks, c.(map[string]any))
	}
	for _, e := range r.Body["errors"].([]any) {
		out.errors = append(out.errors, e.(map[string]any))
	}
	if r.Str("consistencyToken") == "" {
		tb.Errorf("simulate: no consistencyToken in %s", r.Raw)
	}
	return out
}

// permKeys reads a list of permissions as sorted "effect action resource".
func permKeys(v any) []string {
	keys := []string{}
	list, _ := v.([]any)
	for _, p := range list {
		p := p.(map[string]any)
		keys = append(keys, fmt.Sprint(p["effect"], " ", p["action"], " ", p["resource"]))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// permissionSet is GET /v1/identities/{id}/permissions as a set.
func permissionSet(tb testing.TB, c *daemontest.Client, id string) map[string]bool {
	tb.Helper()
	r := c.Must(http.StatusOK, "GET", "/v1/identities/"+id+"/permissions", nil)
	set := map[string]bool{}
	for _, k := range permKeys(r.Body["permissions"]) {
		set[k] = true
	}
	return set
}

func minus(a, b map[string]bool) []string {
	out := []string{}
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestAPI_Simulate (issue 11 item 4): proposed writes are decided by the
// real handlers and iam.Decide on a copy of the latest state, in order,
// and never written; what they predict is what applying them does; a
// refused change is reported with the real endpoint's status and code,
// and the rest goes on; a caller learns nothing it could not see.
func TestAPI_Simulate(t *testing.T) {
	o := newOwners(t)
	o.actor("alice", true, iam.RoleProjectAdmin)
	o.actor("plain", false)
	o.actor("member", false)
	o.actor("other-member", false)
	o.otherRealmAdmin()
	o.create("admin", "G", "/v1/groups")
	catalog := "hrn:here:data::" + o.realm + ":catalog/*"
	o.ids["P1"] = o.admin.Must(http.StatusCreated, "POST", "/v1/policies", readStatement(catalog)).Str("id")
	o.ids["Deny"] = o.admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "no secrets", "statements": []any{
		map[string]any{"effect": "deny", "actions": []string{"read"}, "resources": []string{"hrn:here:data::" + o.realm + ":catalog/secret"}}}}).Str("id")
	o.admin.Must(http.StatusOK, "PUT", o.path("/v1/policies/{P1}/attachments/{G}"), nil)
	o.admin.Must(http.StatusOK, "PUT", o.path("/v1/groups/{G}/members/{other-member}"), nil)
	readX := map[string]any{"subject": o.ids["member"], "action": "read", "resource": "hrn:here:data::" + o.realm + ":catalog/x"}

	t.Run("predictions are what the writes do", func(t *testing.T) {
		changes := []map[string]any{
			change("PUT", o.path("/v1/groups/{G}/members/{member}"), nil),
			change("PUT", o.path("/v1/policies/{Deny}/attachments/{G}"), nil),
			change("DELETE", o.path("/v1/groups/{G}/members/{other-member}"), nil),
		}
		pos := o.m.Writer().Position()
		sim := simulate(t, o.admin, changes, readX)
		if len(sim.errors) != 0 {
			t.Fatalf("errors: got %v, want none", sim.errors)
		}
		if got := o.m.Writer().Position(); got != pos {
			t.Fatalf("log position after simulate: got %d, want %d (nothing written)", got, pos)
		}
		if c := sim.checks[0]; c["before"] != false || c["after"] != true || c["reason"] == "" {
			t.Errorf("check member read catalog/x: got %v, want before false, after true, a reason", c)
		}
		ids := []string{o.ids["member"], o.ids["other-member"], o.ids["alice"], o.ids["plain"]}
		before := map[string]map[string]bool{}
		for _, id := range ids {
			before[id] = permissionSet(t, o.admin, id)
		}
		for _, c := range changes {
			o.admin.Must(http.StatusOK, c["method"].(string), c["path"].(string), c["body"])
		}
		for _, id := range ids {
			after := permissionSet(t, o.admin, id)
			want := [2][]string{minus(after, before[id]), minus(before[id], after)}
			got, ok := sim.affected[id]
			if !ok {
				got = [2][]string{{}, {}}
			}
			if !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
				t.Errorf("%s: predicted gained %v lost %v, got gained %v lost %v for real", id, got[0], got[1], want[0], want[1])
			}
		}
		if len(sim.affected[o.ids["member"]][0]) == 0 || len(sim.affected[o.ids["other-member"]][1]) == 0 {
			t.Errorf("affected: got %v, want member gaining and other-member losing", sim.affected)
		}
		if got := o.readCheck(o.ids["member"], "hrn:here:data::"+o.realm+":catalog/x", ""); !got.allowed {
			t.Errorf("real check after the writes: got %v, want allowed as simulated", got)
		}
	})

	t.Run("a simulated entity is never created", func(t *testing.T) {
		pos := o.m.Writer().Position()
		sim := simulate(t, o.as["alice"], []map[string]any{
			change("POST", "/v1/apps", map[string]any{"name": "simulated app"}),
			change("POST", "/v1/users", map[string]any{"email": "sim@example.com", "name": "Sim"}),
			change("POST", "/v1/invitations", map[string]any{"email": "invitee@example.com"}),
		})
		if got := o.m.Writer().Position(); got != pos {
			t.Fatalf("log position after simulate: got %d, want %d", got, pos)
		}
		// alice manages the app it would create: its id is in what alice gains.
		var app string
		for _, p := range sim.affected[o.ids["alice"]][0] {
			if _, after, ok := strings.Cut(p, ":app/"); ok {
				app = after
			}
		}
		if app == "" {
			t.Fatalf("affected: got %v, want alice gaining on the simulated app", sim.affected)
		}
		wantProblem(t, o.admin.Do("GET", "/v1/apps/"+app, nil), http.StatusNotFound, "not_found", "")
		// alice may not create users nor invite: refused as for real.
		for i, e := range sim.errors {
			if e["code"] != "permission_denied" || e["status"] != float64(http.StatusForbidden) {
				t.Errorf("errors[%d]: got %v, want 403 permission_denied", i, e)
			}
		}
		if len(sim.errors) != 2 {
			t.Errorf("errors: got %v, want users and invitations refused", sim.errors)
		}
		// As the admin they succeed, and still nothing is written or mailed.
		sim = simulate(t, o.admin, []map[string]any{
			change("POST", "/v1/users", map[string]any{"email": "sim@example.com", "name": "Sim", "password": "a simulated password"}),
			change("POST", "/v1/invitations", map[string]any{"email": "invitee@example.com"}),
			change("POST", "/v1/users", map[string]any{"email": "sim@example.com", "name": "Sim twice"}),
		})
		if len(sim.errors) != 1 || sim.errors[0]["index"] != float64(2) || sim.errors[0]["code"] != "conflict" {
			t.Errorf("errors: got %v, want only the second user with the same email refused (conflict)", sim.errors)
		}
		if got := o.m.Writer().Position(); got != pos {
			t.Fatalf("log position after simulate: got %d, want %d", got, pos)
		}
		if n := mails(t, o.m, "invitation"); n != 0 {
			t.Errorf("invitation mails after simulate: got %d, want 0", n)
		}
	})

	t.Run("a refusal is the real endpoint's, and the rest goes on", func(t *testing.T) {
		in := "hrn:here:data::" + o.realm + ":in-p"
		o.create("alice", "P", "/v1/projects")
		o.as["alice"].Must(http.StatusOK, "PUT", o.path("/v1/projects/{P}/resources/")+url.PathEscape(in), map[string]any{"relation": "home"})
		var changes []map[string]any
		for range 6 {
			changes = append(changes, change("POST", o.path("/v1/projects/{P}/policies"), readStatement(in)))
		}
		changes = append(changes, change("DELETE", o.path("/v1/policies/{P1}/attachments/{G}"), nil))
		sim := simulate(t, o.as["alice"], changes)
		if len(sim.errors) != 2 {
			t.Fatalf("errors: got %v, want the 6th project policy and the detachment", sim.errors)
		}
		if e := sim.errors[0]; e["index"] != float64(5) || e["code"] != "limit_exceeded" || e["status"] != float64(http.StatusConflict) || !strings.Contains(e["detail"].(string), "at most 5 project policies") {
			t.Errorf("errors[0]: got %v, want index 5, 409 limit_exceeded naming at most 5 project policies", e)
		}
		real := o.as["alice"].Do("DELETE", o.path("/v1/policies/{P1}/attachments/{G}"), nil)
		if e := sim.errors[1]; e["index"] != float64(6) || e["code"] != real.Str("code") || e["status"] != float64(real.Status) || e["detail"] != real.Str("detail") {
			t.Errorf("errors[1]: got %v, want index 6 and the real call's %d %s", e, real.Status, real.Raw)
		}
		if o.as["alice"].Must(http.StatusOK, "GET", o.path("/v1/projects/{P}/policies"), nil).Raw == nil {
			t.Fatal("no project policies list")
		}
	})

	t.Run("a caller learns nothing it could not see", func(t *testing.T) {
		attach := change("PUT", o.path("/v1/policies/{P1}/attachments/{plain}"), nil)
		for _, tc := range []struct {
			as     string
			status int
			code   string
		}{
			{"plain", http.StatusForbidden, "permission_denied"},
			{"other", http.StatusNotFound, "not_found"},
		} {
			sim := simulate(t, o.as[tc.as], []map[string]any{attach})
			real := o.as[tc.as].Do("PUT", attach["path"].(string), nil)
			if real.Status != tc.status || real.Str("code") != tc.code {
				t.Fatalf("%s for real: got %d %s, want %d %s", tc.as, real.Status, real.Raw, tc.status, tc.code)
			}
			if len(sim.errors) != 1 || sim.errors[0]["status"] != float64(real.Status) || sim.errors[0]["code"] != real.Str("code") || sim.errors[0]["detail"] != real.Str("detail") {
				t.Errorf("%s: got errors %v, want the real call's %s", tc.as, sim.errors, real.Raw)
			}
			if len(sim.affected) != 0 {
				t.Errorf("%s: got affected %v, want none", tc.as, sim.affected)
			}
		}
		// A change plain may make (deactivating itself) affects plain only:
		// the others' permissions are not plain's to read.
		sim := simulate(t, o.as["plain"], []map[string]any{change("PATCH", o.path("/v1/apps/{plain}"), map[string]any{"status": "inactive"})})
		for id := range sim.affected {
			if id != o.ids["plain"] {
				t.Errorf("plain's simulation lists %s; want only identities plain may read", id)
			}
		}
		// Another identity's check needs checkAccess, as at /v1/check.
		wantProblem(t, o.as["plain"].Do("POST", "/v1/simulate", map[string]any{"changes": []any{attach}, "checks": []any{readX}}), http.StatusForbidden, "permission_denied", "")
		// Another realm's admin asks of an id its realm does not have.
		if c := simulate(t, o.as["other"], []map[string]any{attach}, readX).checks[0]; c["before"] != false || c["after"] != false {
			t.Errorf("other realm's check: got %v, want denied before and after", c)
		}
	})

	t.Run("only writes under /v1/, at most 100", func(t *testing.T) {
		many := make([]any, 101)
		for i := range many {
			many[i] = change("POST", "/v1/groups", map[string]any{"name": "g"})
		}
		wantProblem(t, o.admin.Do("POST", "/v1/simulate", map[string]any{"changes": many}), http.StatusBadRequest, "invalid_argument", "changes")
		wantProblem(t, o.admin.Do("POST", "/v1/simulate", map[string]any{"changes": []any{}}), http.StatusBadRequest, "invalid_argument", "changes")
		for _, c := range []map[string]any{
			change("GET", "/v1/groups", nil),
			change("POST", "/oauth2/token", nil),
			change("POST", "/v1/check", readX),
			change("POST", "/v1/simulate", nil),
			change("POST", "/v1/../oauth2/token", nil),
			change("POST", "http://example.com/v1/groups", nil),
		} {
			wantProblem(t, o.admin.Do("POST", "/v1/simulate", map[string]any{"changes": []any{c}}), http.StatusBadRequest, "invalid_argument", "changes[0].method|changes[0].path")
		}
		wantProblem(t, o.admin.Do("POST", "/v1/simulate", map[string]any{"changes": []any{change("POST", "/v1/groups", nil)}, "extra": 1}), http.StatusBadRequest, "invalid_argument", "")
		// Public writes, and writes that are no state change, are errors
		// of the simulation; an unknown path is the real 404.
		pos := o.m.Writer().Position()
		sim := simulate(t, o.admin, []map[string]any{
			change("POST", "/v1/passwordResets", map[string]any{"realm": o.realm, "email": "x@example.com"}),
			change("POST", "/v1/signingKeys/rotate", nil),
			change("POST", "/v1/replicas/snapshot", nil),
			change("POST", "/v1/nothing", nil),
			change("POST", "/v1/roles", nil),
		})
		want := []string{"invalid_argument", "invalid_argument", "invalid_argument", "not_found", "not_found"}
		var got []string
		for _, e := range sim.errors {
			got = append(got, e["code"].(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("error codes: got %v, want %v", got, want)
		}
		if e, real := sim.errors[len(sim.errors)-1], o.admin.Do("POST", "/v1/roles", nil); e["status"] != float64(real.Status) || e["detail"] != real.Str("detail") {
			t.Errorf("POST /v1/roles: got %v, want the real %s", e, real.Raw)
		}
		if p := o.m.Writer().Position(); p != pos {
			t.Errorf("log position: got %d, want %d", p, pos)
		}
	})
}
