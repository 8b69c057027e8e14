package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// lookup pages through POST /v1/lookup/subjects as c with body (pageToken
// and consistency added per page) and returns the subjects' ids and reasons
// in the order given and the last page's consistency token.
func lookup(t *testing.T, c *daemontest.Client, body map[string]any) (ids []string, reasons map[string]string, token string) {
	t.Helper()
	reasons = map[string]string{}
	body["consistency"] = map[string]any{"mode": "fully_consistent"}
	for page := 0; ; page++ {
		r := c.Must(http.StatusOK, "POST", "/v1/lookup/subjects", body)
		subjects, ok := r.Body["subjects"].([]any)
		if !ok {
			t.Fatalf("lookup: got %s, want a list of subjects", r.Raw)
		}
		for _, s := range subjects {
			m := s.(map[string]any)
			id, _ := m["id"].(string)
			reasons[id], _ = m["reason"].(string)
			if m["kind"] != "user" && m["kind"] != "app" {
				t.Fatalf("subject %s: got kind %v, want user or app", id, m["kind"])
			}
			ids = append(ids, id)
		}
		token = r.Str("consistencyToken")
		if r.Str("region") == "" || token == "" || r.Header.Get("Consistency-Token") != token {
			t.Fatalf("lookup: got %s (header %q), want a region and a consistency token", r.Raw, r.Header.Get("Consistency-Token"))
		}
		next := r.Str("nextPageToken")
		if next == "" {
			return ids, reasons, token
		}
		if page > 100 {
			t.Fatalf("lookup: still paging after 100 pages")
		}
		body["pageToken"] = next
		delete(body, "consistency") // later pages are read at least as fresh as the first
	}
}

func TestLookupSubjects(t *testing.T) {
	f := newFixture(t)
	var users []string
	for i := range 7 {
		u := f.create("/v1/users", map[string]any{"email": "lookup" + strconv.Itoa(i) + "@example.com", "name": "Lookup " + strconv.Itoa(i)})
		f.write("PUT", "/v1/groups/"+f.group+"/members/"+u, nil)
		users = append(users, u)
	}
	catalog := f.hrn("catalog/x")

	t.Run("paging gives each subject once, with the check's reason", func(t *testing.T) {
		ids, reasons, token := lookup(t, f.admin, map[string]any{"action": "read", "resource": catalog, "pageSize": 2})
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("got ids %v, want each once in order", ids)
		}
		for _, u := range append(users, f.user) {
			if !slices.Contains(ids, u) {
				t.Fatalf("got %v, want %s (a member of the readers' group) among them", ids, u)
			}
		}
		if slices.Contains(ids, f.app) {
			t.Fatalf("got %v, want no %s (it holds nothing)", ids, f.app)
		}
		for _, id := range ids {
			d := f.admin.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": id, "action": "read", "resource": catalog,
				"consistency": map[string]any{"mode": "at_least_as_fresh", "token": token}})
			if d.Body["allowed"] != true || d.Str("reason") != reasons[id] {
				t.Fatalf("subject %s: lookup gave %q, check gives %s", id, reasons[id], d.Raw)
			}
		}
	})

	t.Run("a deny through a group removes a user", func(t *testing.T) {
		deny := f.create("/v1/policies", map[string]any{"name": "no secrets", "statements": []any{
			map[string]any{"effect": "deny", "actions": []string{"read"}, "resources": []string{f.hrn("catalog/secret")}}}})
		denied := f.create("/v1/groups", map[string]any{"name": "denied"})
		f.write("PUT", "/v1/policies/"+deny+"/attachments/"+denied, nil)
		f.write("PUT", "/v1/groups/"+denied+"/members/"+users[1], nil)
		ids, _, _ := lookup(t, f.admin, map[string]any{"action": "read", "resource": f.hrn("catalog/secret")})
		if slices.Contains(ids, users[1]) || !slices.Contains(ids, users[0]) {
			t.Fatalf("got %v, want %s and not %s (denied through group %s)", ids, users[0], users[1], denied)
		}
	})

	t.Run("project resources need the scope", func(t *testing.T) {
		inProject := f.hrn("catalog/in-project")
		f.write("PUT", "/v1/projects/"+f.project+"/resources/"+url.PathEscape(inProject), map[string]any{"relation": "home"})
		f.write("PUT", "/v1/projects/"+f.project+"/members/"+users[2], map[string]any{"policies": []string{f.policy}})
		if ids, _, _ := lookup(t, f.admin, map[string]any{"action": "read", "resource": inProject}); len(ids) != 0 {
			t.Fatalf("unscoped: got %v, want nobody (realm-wide policies never reach a project resource)", ids)
		}
		ids, reasons, _ := lookup(t, f.admin, map[string]any{"action": "read", "resource": inProject, "scope": f.projectHRN(f.project)})
		if !slices.Equal(ids, []string{users[2]}) {
			t.Fatalf("scoped: got %v, want [%s] (the one member)", ids, users[2])
		}
		if want := "allowed by policy " + f.policy + " statement 0 in project " + f.project; reasons[users[2]] != want {
			t.Fatalf("scoped reason: got %q, want %q", reasons[users[2]], want)
		}
	})

	t.Run("another realm's resource finds nobody", func(t *testing.T) {
		if ids, _, _ := lookup(t, f.admin, map[string]any{"action": "read", "resource": "hrn:here:data::other:catalog/x"}); len(ids) != 0 {
			t.Fatalf("got %v, want nobody", ids)
		}
	})

	t.Run("a caller without checkAccess is refused", func(t *testing.T) {
		r := f.noRights.Do("POST", "/v1/lookup/subjects", map[string]any{"action": "read", "resource": catalog})
		wantProblem(t, r, http.StatusForbidden, "permission_denied", "")
		// Refused before its input is judged: a bad body tells it nothing.
		r = f.noRights.Do("POST", "/v1/lookup/subjects", map[string]any{"action": "read", "resource": catalog, "pageToken": "x"})
		wantProblem(t, r, http.StatusForbidden, "permission_denied", "")
		r = f.admin.With("").Do("POST", "/v1/lookup/subjects", map[string]any{"action": "read", "resource": catalog})
		wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
	})

	t.Run("bad input names the field", func(t *testing.T) {
		first := f.admin.Must(http.StatusOK, "POST", "/v1/lookup/subjects", map[string]any{"action": "read", "resource": catalog, "pageSize": 1})
		next := first.Str("nextPageToken")
		if next == "" {
			t.Fatalf("got %s, want a next page", first.Raw)
		}
		for _, tc := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"no action", map[string]any{"resource": catalog}, "action"},
			{"bad resource", map[string]any{"action": "read", "resource": "catalog"}, "resource"},
			{"bad scope", map[string]any{"action": "read", "resource": catalog, "scope": "proj"}, "scope"},
			{"page size 0", map[string]any{"action": "read", "resource": catalog, "pageSize": 0}, "pageSize"},
			{"page size too big", map[string]any{"action": "read", "resource": catalog, "pageSize": 100_000}, "pageSize"},
			{"garbled page token", map[string]any{"action": "read", "resource": catalog, "pageToken": "not a token"}, "pageToken"},
			{"page token of base64 junk", map[string]any{"action": "read", "resource": catalog, "pageToken": "eyJhIjoxfQ"}, "pageToken"},
			{"page token of another lookup", map[string]any{"action": "write", "resource": catalog, "pageToken": next}, "pageToken"},
			{"bad consistency mode", map[string]any{"action": "read", "resource": catalog, "consistency": map[string]any{"mode": "soon"}}, "consistency.mode"},
			{"fresh without token", map[string]any{"action": "read", "resource": catalog, "consistency": map[string]any{"mode": "at_least_as_fresh"}}, "consistency.token"},
			{"bad consistency token", map[string]any{"action": "read", "resource": catalog, "consistency": map[string]any{"mode": "at_least_as_fresh", "token": "x"}}, "consistency.token"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantProblem(t, f.admin.Do("POST", "/v1/lookup/subjects", tc.body), http.StatusBadRequest, "invalid_argument", tc.field)
			})
		}
	})
}

// TestLookupSubjects_PageTokenPosition shows that a page token carries the
// position its page was read at: a region that has not applied it answers
// the next page 503 replica_behind, never from before the first page.
func TestLookupSubjects_PageTokenPosition(t *testing.T) {
	f := newFixture(t)
	m := f.m
	m.Projectors()[daemontest.RegionIndex(t, m, "eu-west")].Stop()
	for i := range 3 {
		u := f.create("/v1/users", map[string]any{"email": "late" + strconv.Itoa(i) + "@example.com", "name": "Late"})
		f.write("PUT", "/v1/groups/"+f.group+"/members/"+u, nil)
	}
	us, eu := *f.admin, *f.admin
	us.Region, eu.Region = "us-east", "eu-west"
	body := map[string]any{"action": "read", "resource": f.hrn("catalog/x"), "pageSize": 1,
		"consistency": map[string]any{"mode": "at_least_as_fresh", "token": f.last}}
	first := us.Must(http.StatusOK, "POST", "/v1/lookup/subjects", body)
	if first.Str("nextPageToken") == "" {
		t.Fatalf("got %s, want a next page", first.Raw)
	}
	next := map[string]any{"action": "read", "resource": f.hrn("catalog/x"), "pageSize": 1, "pageToken": first.Str("nextPageToken"),
		"consistency": map[string]any{"mode": "minimize_latency", "waitMs": 0}}
	wantProblem(t, eu.Do("POST", "/v1/lookup/subjects", next), http.StatusServiceUnavailable, "replica_behind", "")
	us.Must(http.StatusOK, "POST", "/v1/lookup/subjects", next)
}
