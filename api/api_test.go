package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// fixture is a running iamd with one of each kind of entity, made by the
// bootstrap admin, and an app that holds no role at all.
type fixture struct {
	m       *daemon.Main
	admin   *daemontest.Client
	realm   string
	user    string // in group, with policy attached through the group
	group   string
	policy  string // allows read on catalog/*
	project string
	app     string // no role; its token is in noRights
	// noRights is a client holding the token of app.
	noRights *daemontest.Client
	// last is the consistency token of the last fixture write; tokens
	// holds every write's.
	last   string
	tokens []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	m := daemontest.Start(t, "")
	f := &fixture{m: m, admin: daemontest.AdminClient(t, m), realm: m.Bootstrap.Realm}
	f.user = f.create("/v1/users", map[string]any{"email": "fixture@example.com", "name": "Fixture User", "password": "fixture-password"})
	f.group = f.create("/v1/groups", map[string]any{"name": "fixture group"})
	f.policy = f.create("/v1/policies", map[string]any{"name": "catalog readers", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{"read"}, "resources": []string{f.hrn("catalog/*")}}}})
	f.project = f.create("/v1/projects", map[string]any{"name": "fixture project"})
	f.app = f.create("/v1/apps", map[string]any{"name": "no rights app"})
	f.write("PUT", "/v1/groups/"+f.group+"/members/"+f.user, nil)
	f.write("PUT", "/v1/policies/"+f.policy+"/attachments/"+f.group, nil)
	cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	f.ack(cred)
	f.noRights = &daemontest.Client{TB: t, Base: daemontest.URL(m), Token: daemontest.ClientToken(t, daemontest.URL(m), cred.Str("clientId"), cred.Str("clientSecret"), "")}
	return f
}

// hrn is a data HRN in the fixture's realm.
func (f *fixture) hrn(resource string) string { return "hrn:here:data::" + f.realm + ":" + resource }

func (f *fixture) projectHRN(id string) string {
	return "hrn:here:authorization::" + f.realm + ":project/" + id
}

// create POSTs body to path as the admin and returns the new entity's id.
func (f *fixture) create(path string, body any) string {
	f.admin.TB.Helper()
	r := f.admin.Must(http.StatusCreated, "POST", path, body)
	f.ack(r)
	if r.Str("id") == "" {
		f.admin.TB.Fatalf("POST %s: no id in %s", path, r.Raw)
	}
	return r.Str("id")
}

// write performs a 200 write as the admin.
func (f *fixture) write(method, path string, body any) daemontest.Response {
	f.admin.TB.Helper()
	r := f.admin.Must(http.StatusOK, method, path, body)
	f.ack(r)
	return r
}

// ack notes an acknowledged write's consistency token.
func (f *fixture) ack(r daemontest.Response) {
	f.last = r.Str("consistencyToken")
	f.tokens = append(f.tokens, f.last)
}

// wantProblem asserts that r is an RFC 9457 problem with status and code
// whose field is one of fields ("a|b"; empty: any) and whose detail names it.
func wantProblem(tb testing.TB, r daemontest.Response, status int, code, fields string) {
	tb.Helper()
	if r.Status != status {
		tb.Errorf("got status %d (%s), want %d", r.Status, r.Raw, status)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		tb.Errorf("got Content-Type %q, want application/problem+json", ct)
	}
	if got := r.Str("code"); got != code {
		tb.Errorf("got code %q (%s), want %q", got, r.Raw, code)
	}
	if got, _ := r.Body["status"].(float64); int(got) != status {
		tb.Errorf("got problem status %v, want %d", r.Body["status"], status)
	}
	for _, k := range []string{"type", "title", "detail", "correlationId"} {
		if r.Str(k) == "" {
			tb.Errorf("problem has no %q: %s", k, r.Raw)
		}
	}
	if fields == "" {
		return
	}
	got := r.Str("field")
	for _, want := range strings.Split(fields, "|") {
		if got == want && strings.Contains(r.Str("detail"), want) {
			return
		}
	}
	tb.Errorf("got field %q, detail %q; want the field named as %s", got, r.Str("detail"), fields)
}

// badCase is one request that must be refused with a problem.
type badCase struct {
	name    string
	method  string
	path    string
	body    any // nil: none; string: raw bytes; else JSON-encoded
	headers []string
	status  int
	code    string
	field   string // "a|b": either names the field; "" with 404: detail names idIn
	idIn    string // for 404s: the unknown id the detail must name
}

// TestAPI_BadInput sends bad JSON, unknown fields, wrong types, oversized
// bodies, bad HRNs, bad tokens and unknown ids to every write endpoint,
// /v1/check and the reads: each is a 400 or 404 problem naming the field
// (or the unknown id), never a 500, and afterwards the server still answers
// with every acknowledged write intact.
func TestAPI_BadInput(t *testing.T) {
	f := newFixture(t)
	const bad = http.StatusBadRequest
	const nf = http.StatusNotFound
	const inv = "invalid_argument"
	const notFound = "not_found"
	okUser := `{"email":"new@example.com","name":"New"}`
	huge := `{"email":"big@example.com","name":"` + strings.Repeat("a", 1<<20+10) + `"}`
	stmt := func(effect string, actions, resources any) map[string]any {
		return map[string]any{"effect": effect, "actions": actions, "resources": resources}
	}
	policy := func(stmts ...any) map[string]any { return map[string]any{"name": "p", "statements": stmts} }
	read := []string{"read"}
	catalog := []string{f.hrn("catalog/x")}
	check := func(kv ...any) map[string]any {
		m := map[string]any{"subject": f.user, "action": "read", "resource": f.hrn("catalog/x")}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	consistency := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return check("consistency", m)
	}
	manyActions := make([]string, 11)
	for i := range manyActions {
		manyActions[i] = "act" + strconv.Itoa(i)
	}
	manyResources := make([]string, 10)
	for i := range manyResources {
		manyResources[i] = f.hrn("r/" + strconv.Itoa(i))
	}
	projRes := "/v1/projects/" + f.project + "/resources/"
	projMem := "/v1/projects/" + f.project + "/members/" + f.user

	cases := []badCase{
		// POST /v1/users: syntax, shape, types, values, size.
		{name: "users/malformed", method: "POST", path: "/v1/users", body: `{"email":`, status: bad, code: inv, field: "body"},
		{name: "users/no body", method: "POST", path: "/v1/users", status: bad, code: inv, field: "body"},
		{name: "users/unknown field", method: "POST", path: "/v1/users", body: `{"email":"a@example.com","name":"A","admin":true}`, status: bad, code: inv, field: "admin"},
		{name: "users/email number", method: "POST", path: "/v1/users", body: `{"email":5,"name":"A"}`, status: bad, code: inv, field: "email"},
		{name: "users/name bool", method: "POST", path: "/v1/users", body: `{"email":"a@example.com","name":true}`, status: bad, code: inv, field: "name"},
		{name: "users/name object", method: "POST", path: "/v1/users", body: `{"email":"a@example.com","name":{}}`, status: bad, code: inv, field: "name"},
		{name: "users/password number", method: "POST", path: "/v1/users", body: `{"email":"a@example.com","name":"A","password":12345678}`, status: bad, code: inv, field: "password"},
		{name: "users/password short", method: "POST", path: "/v1/users", body: map[string]any{"email": "a@example.com", "name": "A", "password": "short"}, status: bad, code: inv, field: "password"},
		{name: "users/password long", method: "POST", path: "/v1/users", body: map[string]any{"email": "a@example.com", "name": "A", "password": strings.Repeat("p", 300)}, status: bad, code: inv, field: "password"},
		{name: "users/bad email", method: "POST", path: "/v1/users", body: map[string]any{"email": "not-an-email", "name": "A"}, status: bad, code: inv, field: "email"},
		{name: "users/email with display name", method: "POST", path: "/v1/users", body: map[string]any{"email": "Bob <bob@example.com>", "name": "A"}, status: bad, code: inv, field: "email"},
		{name: "users/email too long", method: "POST", path: "/v1/users", body: map[string]any{"email": strings.Repeat("a", 250) + "@example.com", "name": "A"}, status: bad, code: inv, field: "email"},
		{name: "users/empty name", method: "POST", path: "/v1/users", body: map[string]any{"email": "a@example.com", "name": " "}, status: bad, code: inv, field: "name"},
		{name: "users/control character", method: "POST", path: "/v1/users", body: map[string]any{"email": "a@example.com", "name": "a\u0007b"}, status: bad, code: inv, field: "name"},
		{name: "users/name too long", method: "POST", path: "/v1/users", body: map[string]any{"email": "a@example.com", "name": strings.Repeat("n", 300)}, status: bad, code: inv, field: "name"},
		// null decodes as an empty object: the first required field is named.
		{name: "users/null", method: "POST", path: "/v1/users", body: `null`, status: bad, code: inv, field: "body|name"},
		{name: "users/array", method: "POST", path: "/v1/users", body: `[]`, status: bad, code: inv, field: "body"},
		{name: "users/string", method: "POST", path: "/v1/users", body: `"user"`, status: bad, code: inv, field: "body"},
		{name: "users/trailing garbage", method: "POST", path: "/v1/users", body: okUser + ` x`, status: bad, code: inv, field: "body"},
		{name: "users/trailing brace", method: "POST", path: "/v1/users", body: okUser + `}`, status: bad, code: inv, field: "body"},
		{name: "users/trailing bracket", method: "POST", path: "/v1/users", body: okUser + `]`, status: bad, code: inv, field: "body"},
		{name: "users/two values", method: "POST", path: "/v1/users", body: okUser + okUser, status: bad, code: inv, field: "body"},
		{name: "users/oversized", method: "POST", path: "/v1/users", body: huge, status: bad, code: inv, field: "body"},
		{name: "users/deep nesting", method: "POST", path: "/v1/users", body: `{"name":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, status: bad, code: inv, field: "body|name"},
		{name: "users/long idempotency key", method: "POST", path: "/v1/users", body: okUser, headers: []string{"Idempotency-Key", strings.Repeat("k", 300)}, status: bad, code: inv, field: "Idempotency-Key"},

		// Apps.
		{name: "apps/missing name", method: "POST", path: "/v1/apps", body: `{}`, status: bad, code: inv, field: "name"},
		{name: "apps/null name", method: "POST", path: "/v1/apps", body: `{"name":null}`, status: bad, code: inv, field: "name"},
		{name: "apps/redirectUris string", method: "POST", path: "/v1/apps", body: `{"name":"A","redirectUris":"https://a.example/cb"}`, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/redirectUris numbers", method: "POST", path: "/v1/apps", body: `{"name":"A","redirectUris":[1]}`, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/redirect plain http", method: "POST", path: "/v1/apps", body: map[string]any{"name": "A", "redirectUris": []string{"http://evil.example/cb"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/redirect fragment", method: "POST", path: "/v1/apps", body: map[string]any{"name": "A", "redirectUris": []string{"https://a.example/cb#x"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/unknown app credentials", method: "POST", path: "/v1/apps/a-nosuchapp/credentials", status: nf, code: notFound, idIn: "a-nosuchapp"},
		{name: "apps/unknown credential", method: "DELETE", path: "/v1/apps/" + f.app + "/credentials/cred-nosuch", status: nf, code: notFound, field: "credentialId", idIn: "cred-nosuch"},
		{name: "apps/unknown app api key", method: "POST", path: "/v1/apps/a-nosuchapp/apiKeys", status: nf, code: notFound, idIn: "a-nosuchapp"},
		{name: "apps/unknown api key", method: "DELETE", path: "/v1/apps/" + f.app + "/apiKeys/k-nosuch", status: nf, code: notFound, field: "keyId", idIn: "k-nosuch"},
		{name: "apps/delete unknown", method: "DELETE", path: "/v1/apps/a-nosuchapp", status: nf, code: notFound, idIn: "a-nosuchapp"},
		{name: "apps/bad status", method: "PATCH", path: "/v1/apps/" + f.app, body: `{"status":"gone"}`, status: bad, code: inv, field: "status"},

		// PATCH and DELETE /v1/users/{id}.
		{name: "users/status unknown", method: "PATCH", path: "/v1/users/" + f.user, body: `{"status":"frozen"}`, status: bad, code: inv, field: "status"},
		{name: "users/status number", method: "PATCH", path: "/v1/users/" + f.user, body: `{"status":1}`, status: bad, code: inv, field: "status"},
		{name: "users/status missing", method: "PATCH", path: "/v1/users/" + f.user, body: `{}`, status: bad, code: inv, field: "status"},
		{name: "users/status extra field", method: "PATCH", path: "/v1/users/" + f.user, body: `{"status":"active","email":"x@example.com"}`, status: bad, code: inv, field: "email"},
		{name: "users/patch unknown", method: "PATCH", path: "/v1/users/u-nosuchuser", body: `{"status":"deactivated"}`, status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "users/delete unknown", method: "DELETE", path: "/v1/users/u-nosuchuser", status: nf, code: notFound, idIn: "u-nosuchuser"},

		// Groups and roles.
		{name: "groups/name number", method: "POST", path: "/v1/groups", body: `{"name":7}`, status: bad, code: inv, field: "name"},
		{name: "groups/empty name", method: "POST", path: "/v1/groups", body: `{"name":""}`, status: bad, code: inv, field: "name"},
		{name: "groups/unknown field", method: "POST", path: "/v1/groups", body: `{"name":"g","members":[]}`, status: bad, code: inv, field: "members"},
		{name: "groups/array", method: "POST", path: "/v1/groups", body: `[{"name":"g"}]`, status: bad, code: inv, field: "body"},
		{name: "groups/unknown group", method: "PUT", path: "/v1/groups/g-nosuchgroup/members/" + f.user, status: nf, code: notFound, idIn: "g-nosuchgroup"},
		{name: "groups/unknown member", method: "PUT", path: "/v1/groups/" + f.group + "/members/u-nosuchuser", status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "groups/remove from unknown", method: "DELETE", path: "/v1/groups/g-nosuchgroup/members/" + f.user, status: nf, code: notFound, idIn: "g-nosuchgroup"},
		{name: "roles/unknown role", method: "PUT", path: "/v1/identities/" + f.user + "/roles/Superuser", status: bad, code: inv, field: "role"},
		{name: "roles/unknown identity", method: "PUT", path: "/v1/identities/u-nosuchuser/roles/OrgAdmin", status: nf, code: notFound, idIn: "u-nosuchuser"},

		// Policies: the statement and pattern named exactly.
		{name: "policies/bad HRN", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"not-an-hrn"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/bad HRN second statement", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, catalog), stmt("deny", read, []string{f.hrn("ok"), "hrn:here"})), status: bad, code: inv, field: "statements[1].resources[1]"},
		{name: "policies/star everything", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"hrn:*"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/inner star", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"hrn:here:data::" + f.realm + ":*/x"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/two stars", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"hrn:here:data::*:**"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/realm prefix without colon", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"hrn:here:data::" + f.realm + "*"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/another realm's prefix", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, catalog), stmt("allow", read, []string{f.hrn("a"), "hrn:here:data::" + f.realm + "x:*"})), status: bad, code: inv, field: "statements[1].resources[1]"},
		{name: "policies/service prefix", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{"hrn:here:data:*"})), status: bad, code: inv, field: "statements[0].resources[0]"},
		// Writes without a body refuse a malformed one.
		{name: "groups/member malformed body", method: "PUT", path: "/v1/groups/" + f.group + "/members/" + f.user, body: `{`, status: bad, code: inv, field: "body"},
		{name: "groups/member body not an object", method: "PUT", path: "/v1/groups/" + f.group + "/members/" + f.user, body: `[1]`, status: bad, code: inv, field: "body"},
		{name: "attachments/malformed body", method: "PUT", path: "/v1/policies/" + f.policy + "/attachments/" + f.group, body: `{"a":`, status: bad, code: inv, field: "body"},
		// Redirect URIs are parsed at registration.
		{name: "apps/loopback look-alike", method: "POST", path: "/v1/apps", body: map[string]any{"name": "x", "redirectUris": []string{"http://localhost.evil.example/cb"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/loopback IP look-alike", method: "POST", path: "/v1/apps", body: map[string]any{"name": "x", "redirectUris": []string{"http://127.0.0.1.evil.example/cb"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/loopback user info", method: "POST", path: "/v1/apps", body: map[string]any{"name": "x", "redirectUris": []string{"http://localhost@evil.example/cb"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/unparseable https", method: "POST", path: "/v1/apps", body: map[string]any{"name": "x", "redirectUris": []string{"https://%zz"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "apps/https without host", method: "POST", path: "/v1/apps", body: map[string]any{"name": "x", "redirectUris": []string{"https:///cb"}}, status: bad, code: inv, field: "redirectUris"},
		{name: "policies/HRN with space", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{f.hrn("a b")})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/HRN too long", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{f.hrn(strings.Repeat("x", 1100))})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/empty resource", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{""})), status: bad, code: inv, field: "statements[0].resources[0]"},
		{name: "policies/no resources", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, []string{})), status: bad, code: inv, field: "statements[0].resources"},
		{name: "policies/bad effect", method: "POST", path: "/v1/policies", body: policy(stmt("maybe", read, catalog)), status: bad, code: inv, field: "statements[0].effect"},
		{name: "policies/no actions", method: "POST", path: "/v1/policies", body: policy(stmt("allow", []string{}, catalog)), status: bad, code: inv, field: "statements[0].actions"},
		{name: "policies/bad action", method: "POST", path: "/v1/policies", body: policy(stmt("allow", []string{"read", "1bad"}, catalog)), status: bad, code: inv, field: "statements[0].actions[1]"},
		{name: "policies/no statements", method: "POST", path: "/v1/policies", body: policy(), status: bad, code: inv, field: "statements"},
		{name: "policies/statements string", method: "POST", path: "/v1/policies", body: `{"name":"p","statements":"all"}`, status: bad, code: inv, field: "statements"},
		{name: "policies/resources string", method: "POST", path: "/v1/policies", body: policy(stmt("allow", read, f.hrn("x"))), status: bad, code: inv, field: "statements[0].resources|statements.resources"},
		{name: "policies/actions numbers", method: "POST", path: "/v1/policies", body: policy(stmt("allow", []int{1}, catalog)), status: bad, code: inv, field: "statements[0].actions[0]|statements.actions"},
		{name: "policies/effect null", method: "POST", path: "/v1/policies", body: policy(stmt("", read, catalog)), status: bad, code: inv, field: "statements[0].effect"},
		{name: "policies/unknown statement field", method: "POST", path: "/v1/policies", body: policy(map[string]any{"effect": "allow", "actions": read, "resources": catalog, "condition": "x"}), status: bad, code: inv, field: "statements[0].condition|condition"},
		{name: "policies/too many permissions", method: "POST", path: "/v1/policies", body: policy(stmt("allow", manyActions, manyResources)), status: http.StatusConflict, code: "limit_exceeded"},
		{name: "policies/attach unknown policy", method: "PUT", path: "/v1/policies/pol-nosuch/attachments/" + f.user, status: nf, code: notFound, idIn: "pol-nosuch"},
		{name: "policies/attach to unknown", method: "PUT", path: "/v1/policies/" + f.policy + "/attachments/u-nosuchuser", status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "policies/detach unknown policy", method: "DELETE", path: "/v1/policies/pol-nosuch/attachments/" + f.user, status: nf, code: notFound, idIn: "pol-nosuch"},

		// Projects.
		{name: "projects/name array", method: "POST", path: "/v1/projects", body: `{"name":[]}`, status: bad, code: inv, field: "name"},
		{name: "projects/missing name", method: "POST", path: "/v1/projects", body: `{}`, status: bad, code: inv, field: "name"},
		{name: "projects/policies string", method: "PUT", path: projMem, body: `{"policies":"all"}`, status: bad, code: inv, field: "policies"},
		{name: "projects/policies bad id", method: "PUT", path: projMem, body: map[string]any{"policies": []string{"bad id!"}}, status: bad, code: inv, field: "policies[0]"},
		{name: "projects/policies twice", method: "PUT", path: projMem, body: map[string]any{"policies": []string{f.policy, f.policy}}, status: bad, code: inv, field: "policies[1]"},
		{name: "projects/policies unknown", method: "PUT", path: projMem, body: map[string]any{"policies": []string{"pol-nosuch"}}, status: nf, code: notFound, idIn: "pol-nosuch"},
		{name: "projects/members trailing", method: "PUT", path: projMem, body: `{"policies":[]}}`, status: bad, code: inv, field: "body"},
		{name: "projects/unknown project", method: "PUT", path: "/v1/projects/p-nosuch/members/" + f.user, body: `{}`, status: nf, code: notFound, idIn: "p-nosuch"},
		{name: "projects/unknown member", method: "PUT", path: "/v1/projects/" + f.project + "/members/u-nosuchuser", body: `{}`, status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "projects/remove from unknown", method: "DELETE", path: "/v1/projects/p-nosuch/members/" + f.user, status: nf, code: notFound, idIn: "p-nosuch"},
		{name: "projects/bad relation", method: "PUT", path: projRes + url.PathEscape(f.hrn("catalog/a")), body: `{"relation":"owner"}`, status: bad, code: inv, field: "relation"},
		{name: "projects/no relation", method: "PUT", path: projRes + url.PathEscape(f.hrn("catalog/a")), body: `{}`, status: bad, code: inv, field: "relation"},
		// Outside projects, a link needs share from the realm, which the
		// admin's roles do not give on service resources (docs/ownership.md).
		{name: "projects/link outside projects without share", method: "PUT", path: projRes + url.PathEscape(f.hrn("catalog/a")), body: `{"relation":"link"}`, status: http.StatusForbidden, code: "permission_denied", field: "hrn"},
		{name: "projects/resource not an HRN", method: "PUT", path: projRes + "not-an-hrn", body: `{"relation":"home"}`, status: bad, code: inv, field: "hrn|resource"},
		{name: "projects/resource with star", method: "PUT", path: projRes + url.PathEscape(f.hrn("catalog/*")), body: `{"relation":"home"}`, status: bad, code: inv, field: "hrn|resource"},
		{name: "projects/resource with space", method: "PUT", path: projRes + url.PathEscape(f.hrn("a b")), body: `{"relation":"home"}`, status: bad, code: inv, field: "hrn|resource"},
		{name: "projects/remove not an HRN", method: "DELETE", path: projRes + "garbage", status: bad, code: inv, field: "hrn|resource"},
		{name: "projects/resource unknown project", method: "PUT", path: "/v1/projects/p-nosuch/resources/" + url.PathEscape(f.hrn("catalog/a")), body: `{"relation":"home"}`, status: nf, code: notFound, idIn: "p-nosuch"},

		// POST /v1/check.
		{name: "check/resource not an HRN", method: "POST", path: "/v1/check", body: check("resource", "catalog/x"), status: bad, code: inv, field: "resource"},
		{name: "check/resource empty", method: "POST", path: "/v1/check", body: check("resource", nil), status: bad, code: inv, field: "resource"},
		{name: "check/resource pattern", method: "POST", path: "/v1/check", body: check("resource", f.hrn("catalog/*")), status: bad, code: inv, field: "resource"},
		{name: "check/resource number", method: "POST", path: "/v1/check", body: check("resource", 5), status: bad, code: inv, field: "resource"},
		{name: "check/scope not an HRN", method: "POST", path: "/v1/check", body: check("scope", "p-1"), status: bad, code: inv, field: "scope"},
		{name: "check/scope of another realm", method: "POST", path: "/v1/check", body: check("scope", "hrn:here:authorization::otherrealm:project/"+f.project), status: bad, code: inv, field: "scope"},
		{name: "check/scope a group", method: "POST", path: "/v1/check", body: check("scope", "hrn:here:authorization::"+f.realm+":group/"+f.group), status: bad, code: inv, field: "scope"},
		{name: "check/action empty", method: "POST", path: "/v1/check", body: check("action", ""), status: bad, code: inv, field: "action"},
		{name: "check/action too long", method: "POST", path: "/v1/check", body: check("action", strings.Repeat("a", 200)), status: bad, code: inv, field: "action"},
		{name: "check/action array", method: "POST", path: "/v1/check", body: check("action", []string{"read"}), status: bad, code: inv, field: "action"},
		{name: "check/subject bad id", method: "POST", path: "/v1/check", body: check("subject", "bad id!"), status: bad, code: inv, field: "subject"},
		{name: "check/subject number", method: "POST", path: "/v1/check", body: check("subject", 42), status: bad, code: inv, field: "subject"},
		{name: "check/unknown field", method: "POST", path: "/v1/check", body: check("context", map[string]any{}), status: bad, code: inv, field: "context"},
		{name: "check/mode unknown", method: "POST", path: "/v1/check", body: consistency("mode", "eventual"), status: bad, code: inv, field: "consistency.mode"},
		{name: "check/mode number", method: "POST", path: "/v1/check", body: consistency("mode", 1), status: bad, code: inv, field: "consistency.mode"},
		{name: "check/fresh without token", method: "POST", path: "/v1/check", body: consistency("mode", "at_least_as_fresh"), status: bad, code: inv, field: "consistency.token"},
		{name: "check/token garbage", method: "POST", path: "/v1/check", body: consistency("mode", "at_least_as_fresh", "token", "abc"), status: bad, code: inv, field: "consistency.token"},
		{name: "check/token bad digits", method: "POST", path: "/v1/check", body: consistency("mode", "at_least_as_fresh", "token", "ct1.!!"), status: bad, code: inv, field: "consistency.token"},
		{name: "check/token too long", method: "POST", path: "/v1/check", body: consistency("mode", "at_least_as_fresh", "token", "ct1."+strings.Repeat("z", 20)), status: bad, code: inv, field: "consistency.token"},
		{name: "check/token number", method: "POST", path: "/v1/check", body: consistency("mode", "at_least_as_fresh", "token", 7), status: bad, code: inv, field: "consistency.token"},
		{name: "check/waitMs negative", method: "POST", path: "/v1/check", body: consistency("mode", "minimize_latency", "waitMs", -1), status: bad, code: inv, field: "consistency.waitMs"},
		{name: "check/waitMs huge", method: "POST", path: "/v1/check", body: consistency("mode", "minimize_latency", "waitMs", 999999), status: bad, code: inv, field: "consistency.waitMs"},
		{name: "check/waitMs overflow", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `","consistency":{"waitMs":1e99}}`, status: bad, code: inv, field: "consistency.waitMs"},
		{name: "check/waitMs fraction", method: "POST", path: "/v1/check", body: consistency("waitMs", 1.5), status: bad, code: inv, field: "consistency.waitMs"},
		{name: "check/waitMs string", method: "POST", path: "/v1/check", body: consistency("waitMs", "soon"), status: bad, code: inv, field: "consistency.waitMs"},
		{name: "check/consistency string", method: "POST", path: "/v1/check", body: check("consistency", "strong"), status: bad, code: inv, field: "consistency"},
		{name: "check/consistency unknown field", method: "POST", path: "/v1/check", body: consistency("mode", "minimize_latency", "strict", true), status: bad, code: inv, field: "consistency.strict|strict"},
		{name: "check/region query", method: "POST", path: "/v1/check?region=mars", body: check(), status: bad, code: inv, field: "region"},
		{name: "check/region header", method: "POST", path: "/v1/check", body: check(), headers: []string{"Iam-Region", "mars"}, status: bad, code: inv, field: "region"},
		{name: "check/null", method: "POST", path: "/v1/check", body: `null`, status: bad, code: inv, field: "body|action"},
		{name: "check/scope null", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `","scope":null}`, status: bad, code: inv, field: "scope"},
		{name: "check/consistency null", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `","consistency":null}`, status: bad, code: inv, field: "consistency"},
		{name: "check/token null", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `","consistency":{"mode":"minimize_latency","token":null}}`, status: bad, code: inv, field: "consistency.token"},
		{name: "policies/action null", method: "POST", path: "/v1/policies", body: `{"name":"p","statements":[{"effect":"allow","actions":["read",null],"resources":["` + f.hrn("x") + `"]}]}`, status: bad, code: inv, field: "statements[0].actions[1]"},
		{name: "users/name null", method: "PATCH", path: "/v1/users/" + f.user, body: `{"name":null}`, status: bad, code: inv, field: "name"},
		{name: "check/array", method: "POST", path: "/v1/check", body: `[]`, status: bad, code: inv, field: "body"},
		{name: "check/no body", method: "POST", path: "/v1/check", status: bad, code: inv, field: "body"},
		{name: "check/malformed", method: "POST", path: "/v1/check", body: `{"action":"read",`, status: bad, code: inv, field: "body"},
		{name: "check/trailing garbage", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `"} {}`, status: bad, code: inv, field: "body"},
		{name: "check/trailing brace", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn("x") + `"}}`, status: bad, code: inv, field: "body"},
		{name: "check/oversized", method: "POST", path: "/v1/check", body: `{"action":"read","resource":"` + f.hrn(strings.Repeat("x", 1<<20)) + `"}`, status: bad, code: inv, field: "body"},

		// Reads: unknown ids, pages, tokens, regions, paths.
		{name: "get/unknown user", method: "GET", path: "/v1/users/u-nosuchuser", status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "get/unknown app", method: "GET", path: "/v1/apps/a-nosuchapp", status: nf, code: notFound, idIn: "a-nosuchapp"},
		{name: "get/user as app", method: "GET", path: "/v1/apps/" + f.user, status: nf, code: notFound, idIn: f.user},
		{name: "get/unknown group", method: "GET", path: "/v1/groups/g-nosuchgroup", status: nf, code: notFound, idIn: "g-nosuchgroup"},
		{name: "get/unknown policy", method: "GET", path: "/v1/policies/pol-nosuch", status: nf, code: notFound, idIn: "pol-nosuch"},
		{name: "get/unknown project", method: "GET", path: "/v1/projects/p-nosuch", status: nf, code: notFound, idIn: "p-nosuch"},
		{name: "get/unknown permissions", method: "GET", path: "/v1/identities/u-nosuchuser/permissions", status: nf, code: notFound, idIn: "u-nosuchuser"},
		{name: "list/limit zero", method: "GET", path: "/v1/users?limit=0", status: bad, code: inv, field: "limit"},
		{name: "list/limit too big", method: "GET", path: "/v1/groups?limit=101", status: bad, code: inv, field: "limit"},
		{name: "list/limit negative", method: "GET", path: "/v1/apps?limit=-1", status: bad, code: inv, field: "limit"},
		{name: "list/limit word", method: "GET", path: "/v1/policies?limit=ten", status: bad, code: inv, field: "limit"},
		{name: "list/limit fraction", method: "GET", path: "/v1/projects?limit=1.5", status: bad, code: inv, field: "limit"},
		{name: "list/limit overflow", method: "GET", path: "/v1/users?limit=99999999999999999999999", status: bad, code: inv, field: "limit"},
		{name: "list/page token garbage", method: "GET", path: "/v1/users?pageToken=!!!", status: bad, code: inv, field: "pageToken"},
		{name: "list/page token not an id", method: "GET", path: "/v1/groups?pageToken=" + base64.RawURLEncoding.EncodeToString([]byte("bad id!")), status: bad, code: inv, field: "pageToken"},
		{name: "list/page token too long", method: "GET", path: "/v1/groups?pageToken=" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("a", 100))), status: bad, code: inv, field: "pageToken"},
		{name: "list/consistency token garbage", method: "GET", path: "/v1/users", headers: []string{"Consistency-Token", "yesterday"}, status: bad, code: inv, field: "Consistency-Token"},
		{name: "get/consistency token garbage", method: "GET", path: "/v1/users/" + f.user, headers: []string{"Consistency-Token", "ct1.-1"}, status: bad, code: inv, field: "Consistency-Token"},
		{name: "list/bad region", method: "GET", path: "/v1/users?region=mars", status: bad, code: inv, field: "region"},
		{name: "get/bad region header", method: "GET", path: "/v1/groups/" + f.group, headers: []string{"Iam-Region", "eu-east"}, status: bad, code: inv, field: "region"},
		{name: "changes/bad after", method: "GET", path: "/v1/changes?after=garbage", status: bad, code: inv, field: "after"},
		{name: "changes/bad Last-Event-ID", method: "GET", path: "/v1/changes", headers: []string{"Last-Event-ID", "garbage"}, status: bad, code: inv, field: "Last-Event-ID"},
		{name: "path/unknown", method: "GET", path: "/v1/nothing", status: nf, code: notFound, field: "path"},
		{name: "path/unknown version", method: "POST", path: "/v2/users", body: okUser, status: nf, code: notFound, field: "path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.admin.With(f.admin.Token)
			c.TB = t
			r := c.Do(tc.method, tc.path, tc.body, tc.headers...)
			wantProblem(t, r, tc.status, tc.code, tc.field)
			if tc.idIn != "" && !strings.Contains(r.Str("detail"), tc.idIn) {
				t.Errorf("got detail %q, want it to name %s", r.Str("detail"), tc.idIn)
			}
		})
	}

	// A write that takes no body accepts none, or {}.
	for _, body := range []any{nil, `{}`, " {} \n"} {
		f.admin.Must(http.StatusOK, "PUT", "/v1/groups/"+f.group+"/members/"+f.user, body)
	}

	// A wrong method on a known path is a problem too (404 or 405).
	for _, mp := range [][2]string{{"PATCH", "/v1/groups"}, {"DELETE", "/v1/check"}, {"PUT", "/v1/users"}, {"POST", "/v1/users/" + f.user}} {
		r := f.admin.Do(mp[0], mp[1], `{}`)
		if r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: got %d, want 404 or 405", mp[0], mp[1], r.Status)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s %s: got Content-Type %q, want application/problem+json", mp[0], mp[1], ct)
		}
	}

	// An unknown subject is not an error: it is denied.
	r := f.admin.Must(http.StatusOK, "POST", "/v1/check", check("subject", "u-nobody"))
	if allowed, _ := r.Body["allowed"].(bool); allowed {
		t.Errorf("unknown subject: got allowed, want denied")
	}

	// After all of it the server answers and the fixture is intact.
	f.assertIntact(t)
}

// assertIntact checks that the server still answers and that every fixture
// write is in place: no bad input lost or added anything.
func (f *fixture) assertIntact(t *testing.T) {
	t.Helper()
	f.admin.Must(http.StatusOK, "GET", "/healthz", nil)
	u := f.admin.Must(http.StatusOK, "GET", "/v1/users/"+f.user, nil, "Consistency-Token", f.last)
	if u.Str("email") != "fixture@example.com" || u.Str("status") != "active" {
		t.Errorf("fixture user changed: %s", u.Raw)
	}
	if groups, _ := u.Body["groups"].([]any); !slices.Contains(groups, any(f.group)) {
		t.Errorf("fixture user lost its group: %s", u.Raw)
	}
	users := f.admin.Must(http.StatusOK, "GET", "/v1/users?limit=100", nil)
	if items, _ := users.Body["items"].([]any); len(items) != 1 {
		t.Errorf("got %d users, want only the fixture's one: %s", len(items), users.Raw)
	}
	for _, path := range []string{"/v1/groups/" + f.group, "/v1/policies/" + f.policy, "/v1/projects/" + f.project, "/v1/apps/" + f.app} {
		f.admin.Must(http.StatusOK, "GET", path, nil)
	}
	r := f.admin.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": f.user, "action": "read", "resource": f.hrn("catalog/x"),
		"consistency": map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 5000}})
	if allowed, _ := r.Body["allowed"].(bool); !allowed {
		t.Errorf("fixture check: got denied (%s), want allowed through the group's policy", r.Str("reason"))
	}
}

// TestAPI_Authentication: a call without a valid token is 401 with
// WWW-Authenticate: Bearer whatever its body; a caller without the right is
// 403 naming the permission before its input is judged.
func TestAPI_Authentication(t *testing.T) {
	f := newFixture(t)
	garbage := `{"this is": not json`
	endpoints := [][3]string{
		{"POST", "/v1/users", garbage},
		{"POST", "/v1/groups", garbage},
		{"PATCH", "/v1/users/" + f.user, garbage},
		{"DELETE", "/v1/users/" + f.user, ""},
		{"PUT", "/v1/identities/" + f.app + "/roles/OrgAdmin", ""},
		{"POST", "/v1/check", garbage},
		{"GET", "/v1/users?limit=abc", ""},
		{"GET", "/v1/users/" + f.user, ""},
		{"GET", "/v1/changes?after=garbage", ""},
		{"GET", "/v1/replicas", ""},
	}
	// A token with a valid shape whose payload was changed (exp in the
	// past), and one that claims no signature at all.
	parts := strings.Split(f.admin.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("admin token is not a JWT: %q", f.admin.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	expiredPayload, _ := json.Marshal(claims)
	expired := parts[0] + "." + base64.RawURLEncoding.EncodeToString(expiredPayload) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	tokens := map[string]string{
		"none":         "",
		"garbage":      "not-a-token",
		"three dots":   "a.b.c",
		"expired":      expired,
		"alg none":     none,
		"truncated":    f.admin.Token[:len(f.admin.Token)-4],
		"other scheme": "",
	}
	for tname, tok := range tokens {
		for _, e := range endpoints {
			t.Run(tname+"/"+e[0]+" "+e[1], func(t *testing.T) {
				c := f.admin.With(tok)
				c.TB = t
				var body any
				if e[2] != "" {
					body = e[2]
				}
				var r daemontest.Response
				if tname == "other scheme" {
					r = c.Do(e[0], e[1], body, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("a:b")))
				} else {
					r = c.Do(e[0], e[1], body)
				}
				wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
				if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("got WWW-Authenticate %q, want Bearer", h)
				}
			})
		}
	}
	t.Run("bad API key", func(t *testing.T) {
		c := f.admin.With("")
		c.TB = t
		r := c.Do("POST", "/v1/check", map[string]any{"action": "read", "resource": f.hrn("x")}, "X-API-Key", "k-nosuchkey.secret")
		wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
		r = c.Do("GET", "/v1/users", nil, "X-API-Key", "garbage")
		wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
	})
	t.Run("API key on a write", func(t *testing.T) {
		made := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/apiKeys", nil)
		key := made.Str("apiKey")
		c := f.admin.With("")
		c.TB = t
		// At the key's token: see TestAPI_AuthenticationAfterWrite for without.
		c.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"action": "read", "resource": f.hrn("x")}, "X-API-Key", key, "Consistency-Token", made.Str("consistencyToken"))
		r := c.Do("POST", "/v1/groups", map[string]any{"name": "g"}, "X-API-Key", key)
		wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
	})
	t.Run("API key in the query", func(t *testing.T) {
		made := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/apiKeys", nil)
		key := made.Str("apiKey")
		c := f.admin.With("")
		c.TB = t
		c.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"action": "read", "resource": f.hrn("x")}, "X-API-Key", key, "Consistency-Token", made.Str("consistencyToken"))
		for _, path := range []string{"/v1/check?apiKey=" + url.QueryEscape(key), "/v1/check?x=1&apiKey=" + url.QueryEscape(key)} {
			r := c.Do("POST", path, map[string]any{"action": "read", "resource": f.hrn("x")}, "Consistency-Token", made.Str("consistencyToken"))
			wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "apiKey")
			if d := r.Str("detail"); !strings.Contains(d, "X-API-Key") || !strings.Contains(d, "log") {
				t.Errorf("got detail %q, want it to say why (a key in a URL lands in logs) and to name X-API-Key", d)
			}
		}
		// Even beside a good header or token.
		wantProblem(t, c.Do("GET", "/v1/users?apiKey=x", nil, "X-API-Key", key), http.StatusUnauthorized, "unauthenticated", "apiKey")
		wantProblem(t, f.admin.Do("GET", "/v1/users?apiKey=x", nil), http.StatusUnauthorized, "unauthenticated", "apiKey")
	})
	t.Run("deactivated identity", func(t *testing.T) {
		app := f.create("/v1/apps", map[string]any{"name": "short lived"})
		cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/credentials", nil)
		tok := daemontest.ClientToken(t, daemontest.URL(f.m), cred.Str("clientId"), cred.Str("clientSecret"), "")
		c := f.admin.With(tok)
		c.TB = t
		c.Must(http.StatusOK, "GET", "/v1/apps/"+app, nil)
		f.write("PATCH", "/v1/apps/"+app, map[string]any{"status": "deactivated"})
		// Once the deactivation has reached the replicas (a later write's
		// token): see TestAPI_AuthenticationAfterWrite for at once.
		later := f.create("/v1/groups", map[string]any{"name": "later"})
		f.admin.Must(http.StatusOK, "GET", "/v1/groups/"+later, nil)
		wantProblem(t, c.Do("GET", "/v1/apps/"+app, nil, "Consistency-Token", f.last), http.StatusUnauthorized, "unauthenticated", "")
	})

	// The app without a role: 403 naming the permission, before the input.
	forbidden := []struct {
		method, path string
		body         any
		perm         string
	}{
		{"POST", "/v1/groups", garbage, "createGroup"},
		{"POST", "/v1/groups", `[]`, "createGroup"},
		{"POST", "/v1/users", `{"email":"x@example.com","name":"` + strings.Repeat("a", 1<<20+10) + `"}`, "createUser"},
		{"POST", "/v1/apps", `{"name":7}`, "createApp"},
		{"POST", "/v1/policies", map[string]any{"name": "p", "statements": "all"}, "createPolicy"},
		{"POST", "/v1/projects", garbage, "createProject"},
		{"PATCH", "/v1/users/" + f.user, `{"status":"weird"}`, "manageUser"},
		{"DELETE", "/v1/users/" + f.user, nil, "manageUser"},
		{"PUT", "/v1/identities/" + f.app + "/roles/NotARole", nil, "manageRoles"},
		{"PUT", "/v1/identities/" + f.app + "/roles/OrgAdmin", nil, "manageRoles"},
		{"PUT", "/v1/groups/" + f.group + "/members/" + f.app, nil, "manageGroup"},
		{"PUT", "/v1/policies/" + f.policy + "/attachments/" + f.app, nil, "managePolicy"},
		{"PUT", "/v1/projects/" + f.project + "/resources/garbage", `{"relation":"nope"}`, "manageProject"},
		{"PUT", "/v1/projects/" + f.project + "/members/" + f.app, `{"policies":"x"}`, "manageProject"},
		{"POST", "/v1/apps/" + f.app + "/credentials", nil, "manageApp"},
		{"GET", "/v1/users?limit=abc", nil, "list"},
		{"GET", "/v1/users/" + f.user, nil, "read"},
		{"GET", "/v1/identities/" + f.user + "/permissions", nil, "read"},
		{"GET", "/v1/changes", nil, "list"},
		{"POST", "/v1/check", map[string]any{"subject": f.user, "action": "read", "resource": "not-an-hrn"}, "checkAccess"},
	}
	for _, tc := range forbidden {
		t.Run("forbidden/"+tc.method+" "+tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			c := f.noRights.With(f.noRights.Token)
			c.TB = t
			r := c.Do(tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusForbidden, "permission_denied", "")
			if !strings.Contains(r.Str("detail"), tc.perm) {
				t.Errorf("got detail %q, want it to name the permission %s", r.Str("detail"), tc.perm)
			}
		})
	}
	// What any identity may do: check its own access, read itself.
	r := f.noRights.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"action": "read", "resource": f.hrn("catalog/x")})
	if allowed, _ := r.Body["allowed"].(bool); allowed {
		t.Errorf("no-rights app: got allowed, want denied")
	}
	f.noRights.Must(http.StatusOK, "GET", "/v1/apps/"+f.app, nil)
	// Bad input from it is judged once authorization has passed.
	wantProblem(t, f.noRights.Do("POST", "/v1/check", `{"action":`), http.StatusBadRequest, "invalid_argument", "body")
	f.assertIntact(t)
}

// TestAPI_Idempotency: a retried write with the same Idempotency-Key
// appends once and answers as the first time; the same key with another
// body is a conflict; concurrent repeats create one entity.
func TestAPI_Idempotency(t *testing.T) {
	f := newFixture(t)
	body := map[string]any{"email": "once@example.com", "name": "Once", "password": "a fine password"}
	before := f.last
	first := f.admin.Must(http.StatusCreated, "POST", "/v1/users", body, "Idempotency-Key", "create-once")
	second := f.admin.Must(http.StatusCreated, "POST", "/v1/users", body, "Idempotency-Key", "create-once")
	if first.Str("id") == "" || second.Str("id") != first.Str("id") {
		t.Errorf("retry: got id %q, want %q", second.Str("id"), first.Str("id"))
	}
	if second.Str("consistencyToken") != first.Str("consistencyToken") || second.Header.Get("Consistency-Token") != first.Str("consistencyToken") {
		t.Errorf("retry: got token %q (header %q), want the first's %q", second.Str("consistencyToken"), second.Header.Get("Consistency-Token"), first.Str("consistencyToken"))
	}
	if got := daemontest.AppendedSince(t, f.admin, before); len(got) != 2 || got[0] != first.Str("consistencyToken") {
		t.Errorf("changes after two tries: got %v, want the first's %s, then the sentinel", got, first.Str("consistencyToken"))
	}

	// The same key with another body, or on another endpoint: conflict.
	other := map[string]any{"email": "twice@example.com", "name": "Twice"}
	wantProblem(t, f.admin.Do("POST", "/v1/users", other, "Idempotency-Key", "create-once"), http.StatusConflict, "conflict", "")
	wantProblem(t, f.admin.Do("POST", "/v1/groups", map[string]any{"name": "g"}, "Idempotency-Key", "create-once"), http.StatusConflict, "conflict", "")
	// A different key with the first body is a new request: the email is taken.
	wantProblem(t, f.admin.Do("POST", "/v1/users", body, "Idempotency-Key", "create-again"), http.StatusConflict, "conflict", "email")

	// A secret is shown to the first request only; the retry names the same credential.
	c1 := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/credentials", nil, "Idempotency-Key", "cred-1")
	c2 := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/credentials", nil, "Idempotency-Key", "cred-1")
	if c1.Str("clientSecret") == "" || c2.Str("clientSecret") != "" || c2.Str("credentialId") != c1.Str("credentialId") || c2.Str("clientId") != c1.Str("clientId") {
		t.Errorf("credential retry: first %s, retry %s; want the same ids and no secret on the retry", c1.Raw, c2.Raw)
	}

	// A repeated DELETE answers as the first, not 404.
	victim := f.create("/v1/users", map[string]any{"email": "victim@example.com", "name": "Victim"})
	d1 := f.admin.Must(http.StatusOK, "DELETE", "/v1/users/"+victim, nil, "Idempotency-Key", "delete-victim")
	d2 := f.admin.Must(http.StatusOK, "DELETE", "/v1/users/"+victim, nil, "Idempotency-Key", "delete-victim")
	if d1.Str("consistencyToken") != d2.Str("consistencyToken") {
		t.Errorf("delete retry: got token %q, want %q", d2.Str("consistencyToken"), d1.Str("consistencyToken"))
	}

	// Ten concurrent tries with one key: one user, one append, one answer.
	conc := map[string]any{"email": "race@example.com", "name": "Race"}
	before = f.admin.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "before race"}).Str("consistencyToken")
	var wg sync.WaitGroup
	results := make([]daemontest.Response, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f.admin.Do("POST", "/v1/users", conc, "Idempotency-Key", "race-key")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.Status != http.StatusCreated || r.Str("id") != results[0].Str("id") || r.Str("consistencyToken") != results[0].Str("consistencyToken") {
			t.Errorf("concurrent try %d: got %d %s, want 201 with the id and token of %s", i, r.Status, r.Raw, results[0].Raw)
		}
	}
	if got := daemontest.AppendedSince(t, f.admin, before); len(got) != 2 || got[0] != results[0].Str("consistencyToken") {
		t.Errorf("changes after 10 concurrent tries: got %v, want one (%s), then the sentinel", got, results[0].Str("consistencyToken"))
	}
	n := 0
	for _, id := range daemontest.ListIDs(f.admin, "/v1/users", 100) {
		u := f.admin.Must(http.StatusOK, "GET", "/v1/users/"+id, nil)
		if u.Str("email") == "race@example.com" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d users with the raced email, want 1", n)
	}
}

// TestAPI_ManagementReads: every kind is readable by id and walks page by
// page (limit=1) over every item exactly once; permissions show where each
// comes from; reads honour Consistency-Token and read the server's own writes.
func TestAPI_ManagementReads(t *testing.T) {
	f := newFixture(t)
	made := map[string][]string{
		"users":    {f.user},
		"apps":     {f.app},
		"groups":   {f.group},
		"policies": {f.policy},
		"projects": {f.project},
	}
	for i := range 4 {
		made["users"] = append(made["users"], f.create("/v1/users", map[string]any{"email": fmt.Sprintf("r%d@example.com", i), "name": fmt.Sprint("reader ", i)}))
		made["apps"] = append(made["apps"], f.create("/v1/apps", map[string]any{"name": fmt.Sprint("app ", i)}))
		made["groups"] = append(made["groups"], f.create("/v1/groups", map[string]any{"name": fmt.Sprint("group ", i)}))
		made["policies"] = append(made["policies"], f.create("/v1/policies", map[string]any{"name": fmt.Sprint("policy ", i), "statements": []any{
			map[string]any{"effect": "deny", "actions": []string{"write"}, "resources": []string{f.hrn(fmt.Sprint("d/", i))}}}}))
		made["projects"] = append(made["projects"], f.create("/v1/projects", map[string]any{"name": fmt.Sprint("project ", i)}))
	}
	for kind, ids := range made {
		t.Run("list/"+kind, func(t *testing.T) {
			c := f.admin.With(f.admin.Token)
			c.TB = t
			paged := daemontest.ListIDs(c, "/v1/"+kind, 1)
			whole := daemontest.ListIDs(c, "/v1/"+kind, 100)
			if !slices.Equal(paged, whole) {
				t.Errorf("limit=1 walk: got %v, want the whole list %v", paged, whole)
			}
			if !slices.IsSorted(whole) {
				t.Errorf("list %v is not in a stable (sorted) order", whole)
			}
			for _, id := range ids {
				if !slices.Contains(paged, id) {
					t.Errorf("%s missing from the walk %v", id, paged)
				}
				r := c.Must(http.StatusOK, "GET", "/v1/"+kind+"/"+id, nil)
				if r.Str("id") != id || !strings.HasPrefix(r.Str("hrn"), "hrn:here:") || !strings.HasSuffix(r.Str("hrn"), "/"+id) {
					t.Errorf("GET %s/%s: got %s", kind, id, r.Raw)
				}
			}
			// limit=2 too: pages of two, nothing lost at page ends.
			if two := daemontest.ListIDs(c, "/v1/"+kind, 2); !slices.Equal(two, whole) {
				t.Errorf("limit=2 walk: got %v, want %v", two, whole)
			}
		})
	}
	roles := f.admin.Must(http.StatusOK, "GET", "/v1/roles", nil)
	if !strings.Contains(string(roles.Raw), `"OrgAdmin"`) {
		t.Errorf("GET /v1/roles lacks OrgAdmin: %s", roles.Raw)
	}

	t.Run("permissions provenance", func(t *testing.T) {
		direct := made["policies"][1]
		inProject := made["policies"][2]
		f.write("PUT", "/v1/policies/"+direct+"/attachments/"+f.user, nil)
		f.write("PUT", "/v1/projects/"+f.project+"/members/"+f.group, map[string]any{"policies": []string{inProject}})
		f.write("PUT", "/v1/identities/"+f.user+"/roles/OrgInviter", nil)
		r := f.admin.Must(http.StatusOK, "GET", "/v1/identities/"+f.user+"/permissions", nil)
		perms, _ := r.Body["permissions"].([]any)
		type src struct{ kind, id, via, project string }
		found := map[src]bool{}
		for _, p := range perms {
			s, _ := p.(map[string]any)["source"].(map[string]any)
			str := func(k string) string { v, _ := s[k].(string); return v }
			found[src{str("kind"), str("id"), str("via"), str("project")}] = true
		}
		for _, want := range []src{
			{"policy", f.policy, f.group, ""},         // through the group
			{"policy", direct, "", ""},                // attached directly
			{"policy", inProject, f.group, f.project}, // the group's project membership
			{"role", "OrgInviter", "", ""},
		} {
			if !found[want] {
				t.Errorf("no permission from %+v in %s", want, r.Raw)
			}
		}
	})

	t.Run("consistency token", func(t *testing.T) {
		regions := f.m.Config.Regions
		for i := range 12 {
			// Read-your-writes by default, in whichever region answers.
			g := f.create("/v1/groups", map[string]any{"name": fmt.Sprint("fresh ", i)})
			c := f.admin.With(f.admin.Token)
			c.TB, c.Region = t, regions[i%len(regions)]
			r := c.Must(http.StatusOK, "GET", "/v1/groups/"+g, nil)
			if got := r.Header.Get("Iam-Region"); got != c.Region {
				t.Errorf("answered by %q, want %q", got, c.Region)
			}
			r = c.Must(http.StatusOK, "GET", "/v1/groups/"+g, nil, "Consistency-Token", f.last)
			want, _ := api.ParseToken("t", f.last)
			got, err := api.ParseToken("t", r.Header.Get("Consistency-Token"))
			if err != nil || got < want {
				t.Errorf("read at: got %q, want at least %q", r.Header.Get("Consistency-Token"), f.last)
			}
		}
		// A token from the future is not answered stale: 503 replica_behind.
		seq, _ := api.ParseToken("t", f.last)
		r := f.admin.Do("GET", "/v1/users/"+f.user, nil, "Consistency-Token", api.FormatToken(seq+1000))
		wantProblem(t, r, http.StatusServiceUnavailable, "replica_behind", "")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	})
}

// TestAPI_Changes reads the change feed: ids increase, no personal data or
// secrets appear, a live write arrives, and reconnecting with Last-Event-ID
// resumes right after that id with nothing repeated or lost.
func TestAPI_Changes(t *testing.T) {
	f := newFixture(t)
	const email = "secret.person@example.com"
	const name = "Zebulon Quuxworth"
	u := f.create("/v1/users", map[string]any{"email": email, "name": name, "password": "correct horse battery"})
	g := f.create("/v1/groups", map[string]any{"name": "feed group"})
	f.write("PUT", "/v1/groups/"+g+"/members/"+u, nil)
	cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	f.ack(cred)
	key := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/apiKeys", nil)
	f.ack(key)

	s := daemontest.OpenFeed(t, daemontest.URL(f.m), f.admin.Token, "")
	first := s.Until(t, f.last)
	if len(first) < 8 {
		t.Fatalf("got %d change events, want every write since the first (at least 8)", len(first))
	}
	// No gaps: after the bootstrap's entries, the feed is exactly the
	// entries of the writes acknowledged here.
	firstWrite, _ := api.ParseToken("t", f.tokens[0])
	var feedIDs []string
	for _, ev := range first {
		if seq, _ := api.ParseToken("t", ev.ID); seq >= firstWrite {
			feedIDs = append(feedIDs, ev.ID)
		}
	}
	if acked := slices.Compact(slices.Clone(f.tokens)); !slices.Equal(feedIDs, acked) {
		t.Errorf("feed after the bootstrap: got %v, want the acknowledged writes %v", feedIDs, acked)
	}
	// A write while the stream is open arrives on it.
	live := f.create("/v1/groups", map[string]any{"name": "live group"})
	liveEvents := s.Until(t, f.last)
	if !strings.Contains(liveEvents[len(liveEvents)-1].Data, live) {
		t.Errorf("live event %s does not name group %s", liveEvents[len(liveEvents)-1].Data, live)
	}
	s.Close()
	all := append(first, liveEvents...)
	raw := s.Raw()
	if !strings.Contains(raw, u) || !strings.Contains(raw, g) {
		t.Fatalf("the raw stream does not name user %s and group %s: the redaction check would be vacuous", u, g)
	}
	for _, secret := range []string{email, name, "$argon2id", cred.Str("clientSecret"), key.Str("apiKey"), "correct horse"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the change feed shows %q", secret)
		}
	}
	// Every change names who made it and when: "system" for the
	// bootstrap's, the admin for the writes made here.
	actors := map[string]bool{}
	for _, ev := range all {
		var c struct {
			Commits []struct {
				Actor string    `json:"actor"`
				At    time.Time `json:"at"`
			} `json:"commits"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			t.Errorf("event %s data is not JSON: %s", ev.ID, ev.Data)
			continue
		}
		seq, _ := api.ParseToken("t", ev.ID)
		for _, cm := range c.Commits {
			if cm.Actor == "" || cm.At.IsZero() {
				t.Errorf("event %s: a commit without actor or time: %s", ev.ID, ev.Data)
			}
			if seq >= firstWrite && cm.Actor == "system" {
				t.Errorf("event %s, an admin's write: actor system, want the admin", ev.ID)
			}
			actors[cm.Actor] = true
		}
	}
	if !actors["system"] || len(actors) < 2 {
		t.Errorf("actors in the feed: got %v, want system (the bootstrap) and the admin", actors)
	}

	// Resume after each of a few ids: exactly the rest, in order.
	for _, k := range []int{0, len(all) / 2, len(all) - 2} {
		r := daemontest.OpenFeed(t, daemontest.URL(f.m), f.admin.Token, all[k].ID)
		got := r.Until(t, all[len(all)-1].ID)
		r.Close()
		var gotIDs, wantIDs []string
		for _, ev := range got {
			gotIDs = append(gotIDs, ev.ID)
		}
		for _, ev := range all[k+1:] {
			wantIDs = append(wantIDs, ev.ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("resume after %s: got %v, want %v", all[k].ID, gotIDs, wantIDs)
		}
	}
	// ?after= is the same as Last-Event-ID.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", daemontest.URL(f.m)+"/v1/changes?after="+url.QueryEscape(all[len(all)-2].ID), nil)
	req.Header.Set("Authorization", "Bearer "+f.admin.Token)
	resp, err := openapitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := make(chan daemontest.SSEEvent, 16)
	go func() { _ = daemontest.ReadSSE(resp.Body, &bytes.Buffer{}, evs) }()
	select {
	case ev := <-evs:
		if ev.ID != all[len(all)-1].ID {
			t.Errorf("after=%s: got first event %s, want %s", all[len(all)-2].ID, ev.ID, all[len(all)-1].ID)
		}
	case <-ctx.Done():
		t.Errorf("after=: no event")
	}
}

// fuzzRoute is a request template for the random-input test: a method, a
// path with {id} holes and a valid body to mutate.
type fuzzRoute struct {
	method, path string
	body         func(f *fixture) any
}

// TestAPI_RandomInput sends about 2,000 seeded random requests (methods and
// paths from the route list, mutated JSON, random headers and queries):
// never a 5xx other than 503, never a dropped connection, every /v1 error a
// problem document; afterwards a write and a check still work.
func TestAPI_RandomInput(t *testing.T) {
	f := newFixture(t)
	n := 2000
	if testing.Short() {
		n = 300
	}
	// Sacrificial entities: random deletes and role changes hit these,
	// never the admin app whose token drives the test.
	var pool []string
	for i := range 3 {
		pool = append(pool, f.create("/v1/users", map[string]any{"email": fmt.Sprintf("pool%d@example.com", i), "name": "pool"}))
		pool = append(pool, f.create("/v1/apps", map[string]any{"name": "pool"}))
	}
	pool = append(pool, f.user, f.group, f.policy, f.project, f.app, "u-nosuchuser", "g-nosuch", "bad id!", "", strings.Repeat("x", 70), "..", "%00", "OrgAdmin")
	noBody := func(*fixture) any { return nil }
	name := func(*fixture) any { return map[string]any{"name": "fuzzed"} }
	routes := []fuzzRoute{
		{"POST", "/oauth2/token", nil},
		{"GET", "/.well-known/openid-configuration", noBody},
		{"GET", "/.well-known/jwks.json", noBody},
		{"GET", "/healthz", noBody},
		{"GET", "/readyz", noBody},
		{"GET", "/metrics", noBody},
		{"POST", "/v1/check", func(f *fixture) any {
			return map[string]any{"subject": f.user, "action": "read", "resource": f.hrn("catalog/x"), "scope": f.projectHRN(f.project),
				"consistency": map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 100}}
		}},
		{"GET", "/v1/replicas", noBody},
		{"POST", "/v1/users", func(*fixture) any {
			return map[string]any{"email": "fuzz@example.com", "name": "Fuzz", "password": "fuzzing-password"}
		}},
		{"PATCH", "/v1/users/{id}", func(*fixture) any { return map[string]any{"status": "deactivated"} }},
		{"PATCH", "/v1/users/{id}", func(*fixture) any { return map[string]any{"name": "Fuzz", "email": "fuzz2@example.com"} }},
		{"POST", "/v1/invitations/resend", func(f *fixture) any { return map[string]any{"realm": f.realm, "email": "fuzz@example.com"} }},
		{"DELETE", "/v1/users/{id}", noBody},
		{"POST", "/v1/apps", func(*fixture) any {
			return map[string]any{"name": "fuzz", "redirectUris": []string{"https://a.example/cb", "http://127.0.0.1:9/cb"}}
		}},
		{"PATCH", "/v1/apps/{id}", func(*fixture) any { return map[string]any{"status": "active"} }},
		{"DELETE", "/v1/apps/{id}", noBody},
		{"POST", "/v1/apps/{id}/credentials", noBody},
		{"DELETE", "/v1/apps/{id}/credentials/{id}", noBody},
		{"POST", "/v1/apps/{id}/apiKeys", noBody},
		{"DELETE", "/v1/apps/{id}/apiKeys/{id}", noBody},
		{"POST", "/v1/groups", name},
		{"PUT", "/v1/groups/{id}/members/{id}", noBody},
		{"DELETE", "/v1/groups/{id}/members/{id}", noBody},
		{"GET", "/v1/roles", noBody},
		{"PUT", "/v1/identities/{id}/roles/{id}", noBody},
		{"DELETE", "/v1/identities/{id}/roles/{id}", noBody},
		{"GET", "/v1/identities/{id}/permissions", noBody},
		{"GET", "/v1/groups/{id}/permissions", noBody},
		{"POST", "/v1/policies", func(f *fixture) any {
			return map[string]any{"name": "fuzz", "statements": []any{
				map[string]any{"effect": "allow", "actions": []string{"read", "*"}, "resources": []string{f.hrn("catalog/*"), f.hrn("x")}},
				map[string]any{"effect": "deny", "actions": []string{"write"}, "resources": []string{f.hrn("y")}}}}
		}},
		{"PUT", "/v1/policies/{id}/attachments/{id}", noBody},
		{"DELETE", "/v1/policies/{id}/attachments/{id}", noBody},
		{"POST", "/v1/projects", name},
		{"PUT", "/v1/projects/{id}/members/{id}", func(f *fixture) any { return map[string]any{"policies": []string{f.policy}} }},
		{"DELETE", "/v1/projects/{id}/members/{id}", noBody},
		{"PUT", "/v1/projects/{id}/resources/{hrn}", func(*fixture) any { return map[string]any{"relation": "home"} }},
		{"DELETE", "/v1/projects/{id}/resources/{hrn}", noBody},
	}
	for _, k := range []string{"users", "apps", "groups", "policies", "projects"} {
		routes = append(routes, fuzzRoute{"GET", "/v1/" + k + "/{id}", noBody}, fuzzRoute{"GET", "/v1/" + k, noBody})
	}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: openapitest.Transport(t, transport), Timeout: 40 * time.Second}
	const workers = 8
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(20240601, uint64(w)))
			for i := w; i < n; i += workers {
				req := f.randomRequest(rng, routes, methods, pool)
				method, target := req.Method, req.URL.String()
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("request %d %s %s: %v (a dropped connection)", i, method, target, err)
					continue
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Errorf("request %d %s %s: reading the answer: %v", i, method, target, err)
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("request %d %s %s: got %d %s", i, method, target, resp.StatusCode, raw)
				}
				if resp.StatusCode >= 400 && strings.HasPrefix(req.URL.Path, "/v1/") && method != "HEAD" {
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
						t.Errorf("request %d %s %s: got %d with Content-Type %q, want a problem document", i, method, target, resp.StatusCode, ct)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("statuses of %d random requests: %v", n, statuses)

	// The scenario still works: a write, then a check at its token.
	u := f.create("/v1/users", map[string]any{"email": "after-fuzz@example.com", "name": "After"})
	p := f.create("/v1/policies", map[string]any{"name": "after", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{"read"}, "resources": []string{f.hrn("after/*")}}}})
	f.write("PUT", "/v1/policies/"+p+"/attachments/"+u, nil)
	for _, region := range f.m.Config.Regions {
		c := f.admin.With(f.admin.Token)
		c.Region = region
		r := c.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": u, "action": "read", "resource": f.hrn("after/x"),
			"consistency": map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 5000}})
		if allowed, _ := r.Body["allowed"].(bool); !allowed {
			t.Errorf("check after the random input in %s: got denied (%s), want allowed", region, r.Str("reason"))
		}
	}
}

// randomRequest builds one random request against f.
func (f *fixture) randomRequest(rng *rand.Rand, routes []fuzzRoute, methods []string, pool []string) *http.Request {
	rt := routes[rng.IntN(len(routes))]
	method := rt.method
	if rng.IntN(10) == 0 {
		method = methods[rng.IntN(len(methods))]
	}
	// Path: the template's holes filled from the pool or at random.
	segs := strings.Split(rt.path, "/")
	for i, s := range segs {
		switch s {
		case "{id}":
			if rng.IntN(8) == 0 {
				segs[i] = url.PathEscape(randomString(rng, 1+rng.IntN(20)))
			} else {
				segs[i] = url.PathEscape(pool[rng.IntN(len(pool))])
			}
		case "{hrn}":
			hrns := []string{f.hrn("catalog/" + strconv.Itoa(rng.IntN(5))), "not-an-hrn", f.hrn("a:b:c"), "hrn:", f.hrn(strings.Repeat("z", 1100)), f.hrn("catalog/*")}
			segs[i] = url.PathEscape(hrns[rng.IntN(len(hrns))])
		}
	}
	path := strings.Join(segs, "/")
	if rng.IntN(25) == 0 {
		path = "/v1/" + url.PathEscape(randomString(rng, rng.IntN(30)))
	}
	if path == "/v1/changes" {
		path = "/v1/changes/x" // the stream never ends; it is tested on its own
	}
	// Query.
	q := url.Values{}
	for range rng.IntN(3) {
		keys := []string{"limit", "pageToken", "region", "apiKey", "after", "scope"}
		vals := []string{"0", "1", "100", "101", "-5", "abc", "eu-west", "mars", "ct1.1", base64.RawURLEncoding.EncodeToString([]byte(pool[rng.IntN(len(pool))])), randomString(rng, 10)}
		q.Set(keys[rng.IntN(len(keys))], vals[rng.IntN(len(vals))])
	}
	target := daemontest.URL(f.m) + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	// Body.
	var body []byte
	if rt.body == nil {
		forms := []string{"grant_type=client_credentials", "grant_type=client_credentials&client_id=x&client_secret=y",
			"grant_type=authorization_code&code=abc&code_verifier=x", "grant_type=refresh_token&refresh_token=" + randomString(rng, 20),
			"grant_type=client_credentials&scope=" + url.QueryEscape(f.projectHRN("p-x")) + "&expires_in=-1", randomString(rng, 40)}
		body = []byte(forms[rng.IntN(len(forms))])
	} else if v := rt.body(f); v != nil || rng.IntN(3) == 0 {
		if v == nil {
			v = map[string]any{"x": 1}
		}
		body, _ = json.Marshal(v)
		body = mutateJSON(rng, body)
	}
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rdr)
	if err != nil {
		panic(err)
	}
	// Headers.
	switch rng.IntN(20) {
	case 0: // none
	case 1:
		req.Header.Set("Authorization", "Bearer "+randomString(rng, 30))
	case 2:
		req.Header.Set("Authorization", "Basic "+randomString(rng, 10))
	default:
		req.Header.Set("Authorization", "Bearer "+f.admin.Token)
	}
	if rt.body == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if rng.IntN(4) > 0 {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", randomString(rng, 12))
	}
	random := map[string][]string{
		"Idempotency-Key":   {"k1", "k2", randomString(rng, 8), strings.Repeat("k", 300)},
		"Consistency-Token": {f.last, "ct1.1", "garbage", "ct1.zzzzzzzzzzzzzzzzz", api.FormatToken(1 << 40)},
		"Iam-Region":        {"eu-west", "us-east", "ap-south", "mars", ""},
		"X-Api-Key":         {"k-x.y", randomString(rng, 20)},
		"Last-Event-Id":     {"ct1.1", "x"},
		"X-Correlation-Id":  {randomString(rng, 10), strings.Repeat("c", 100)},
		"Accept":            {"*/*", "text/html", randomString(rng, 5)},
	}
	for k, vs := range random {
		if rng.IntN(8) == 0 {
			v := vs[rng.IntN(len(vs))]
			// A far-future token would make each read wait its full
			// default; keep those rare.
			if v == api.FormatToken(1<<40) && rng.IntN(4) > 0 {
				v = f.last
			}
			req.Header.Set(k, v)
		}
	}
	return req
}

// randomString is printable ASCII and some UTF-8, valid in a header.
func randomString(rng *rand.Rand, n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:*/%$#@!~ "
	var b strings.Builder
	for range n {
		b.WriteByte(chars[rng.IntN(len(chars))])
	}
	return strings.TrimSpace(b.String())
}

// mutateJSON changes a valid JSON body: structurally (a value replaced by
// one of another type, a key added or dropped) or byte by byte.
func mutateJSON(rng *rand.Rand, body []byte) []byte {
	if rng.IntN(6) == 0 {
		return body // some valid requests too
	}
	if rng.IntN(2) == 0 {
		var v any
		if json.Unmarshal(body, &v) == nil {
			for range 1 + rng.IntN(3) {
				v = mutateValue(rng, v, 0)
			}
			out, err := json.Marshal(v)
			if err == nil {
				return out
			}
		}
	}
	b := slices.Clone(body)
	for range 1 + rng.IntN(4) {
		if len(b) == 0 {
			break
		}
		i := rng.IntN(len(b))
		switch rng.IntN(6) {
		case 0: // flip a byte
			b[i] = byte(rng.IntN(256))
		case 1: // truncate
			b = b[:i]
		case 2: // delete a range
			j := min(len(b), i+1+rng.IntN(8))
			b = append(b[:i], b[j:]...)
		case 3: // duplicate a range
			j := min(len(b), i+1+rng.IntN(16))
			b = slices.Insert(b, i, b[i:j]...)
		case 4: // insert a token
			toks := []string{`null`, `[]`, `{}`, `"\u0000"`, `1e400`, `-0`, `"hrn:*"`, `true`, `"\ud800"`, `}`, `]`, `,`, `:`, `"`, `\`, strings.Repeat("[", 200)}
			b = slices.Insert(b, i, []byte(toks[rng.IntN(len(toks))])...)
		case 5: // trailing data
			b = append(b, []byte(` {}`)...)
		}
	}
	return b
}

func mutateValue(rng *rand.Rand, v any, depth int) any {
	randomValue := func() any {
		switch rng.IntN(10) {
		case 0:
			return nil
		case 1:
			return rng.Float64() * 1e12
		case 2:
			return -1
		case 3:
			return true
		case 4:
			return []any{}
		case 5:
			return map[string]any{}
		case 6:
			return strings.Repeat("x", rng.IntN(3000))
		case 7:
			return "hrn:here:data::" + randomString(rng, 8) + ":*"
		case 8:
			return []any{randomString(rng, 5), 1, nil}
		}
		return randomString(rng, rng.IntN(20))
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		switch {
		case len(keys) == 0 || rng.IntN(6) == 0:
			x[randomString(rng, 6)] = randomValue()
		case rng.IntN(6) == 0:
			delete(x, keys[rng.IntN(len(keys))])
		default:
			k := keys[rng.IntN(len(keys))]
			x[k] = mutateValue(rng, x[k], depth+1)
		}
		return x
	case []any:
		if len(x) == 0 || rng.IntN(5) == 0 {
			return append(x, randomValue())
		}
		i := rng.IntN(len(x))
		x[i] = mutateValue(rng, x[i], depth+1)
		return x
	}
	if depth > 0 && rng.IntN(3) == 0 {
		return v
	}
	return randomValue()
}

// TestAPI_AuthenticationAfterWrite: a request is authenticated on a state
// at least as fresh as the one it is served at, by default every write the
// server has acknowledged. An API key works as soon as its creation is
// acknowledged (not a 401 that a client takes for a bad key), and the token
// of an identity whose deactivation was acknowledged is refused at once,
// never served a read that shows it deactivated. Each is a race with the
// projectors, so it is tried many times.
func TestAPI_AuthenticationAfterWrite(t *testing.T) {
	f := newFixture(t)
	const tries = 25
	refused := 0
	for i := range tries {
		app := f.create("/v1/apps", map[string]any{"name": fmt.Sprint("keyed ", i)})
		key := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/apiKeys", nil).Str("apiKey")
		r := f.admin.With("").Do("POST", "/v1/check", map[string]any{"action": "read", "resource": f.hrn("x")}, "X-API-Key", key)
		switch r.Status {
		case http.StatusOK:
		case http.StatusServiceUnavailable: // replica_behind: honest, retryable
		default:
			refused++
			if refused == 1 {
				t.Errorf("a just-made API key: got %d %s, want 200 (or 503 replica_behind)", r.Status, r.Raw)
			}
		}
	}
	if refused > 0 {
		t.Errorf("just-made API keys refused: got %d of %d, want 0", refused, tries)
	}
	served := 0
	for i := range 2 * tries { // rarer: more tries
		app := f.create("/v1/apps", map[string]any{"name": fmt.Sprint("short lived ", i)})
		cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/credentials", nil)
		tok := daemontest.ClientToken(t, daemontest.URL(f.m), cred.Str("clientId"), cred.Str("clientSecret"), "")
		f.write("PATCH", "/v1/apps/"+app, map[string]any{"status": "deactivated"})
		r := f.admin.With(tok).Do("GET", "/v1/apps/"+app, nil)
		if r.Status == http.StatusOK {
			served++
			if served == 1 {
				t.Errorf("a token of an app deactivated (acknowledged) before the call: got %d %s, want 401", r.Status, r.Raw)
			}
		}
	}
	if served > 0 {
		t.Errorf("deactivated apps served: got %d of %d, want 0", served, 2*tries)
	}
}

// Only an operator of the system realm (the bootstrap realm) takes
// whole-database digests and snapshots: the OrgAdmin of another realm may
// not, though it holds ActionManageReplicas on its own realm.
func TestAPI_ReplicasSystemRealmOnly(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	other := otherRealmAdmin(t, m)
	region := m.Replicas()[0].Region()
	// The other realm's OrgAdmin is an OrgAdmin: it manages its realm.
	other.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "g"})
	wantProblem(t, other.Do("GET", "/v1/replicas/"+region+"/digest", nil), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, other.Do("POST", "/v1/replicas/snapshot", nil), http.StatusForbidden, "permission_denied", "")
	admin.Must(http.StatusOK, "GET", "/v1/replicas/"+region+"/digest", nil)
	admin.Must(http.StatusCreated, "POST", "/v1/replicas/snapshot", nil)
}

// otherRealmAdmin creates a realm besides the system realm and returns a
// client holding a token of its OrgAdmin.
func otherRealmAdmin(t *testing.T, m *daemon.Main) *daemontest.Client {
	t.Helper()
	realm, app, clientID, secret := "other-realm", "a-otheradmin", "otheradminclient", "other admin secret"
	hash, err := auth.Hash(secret, auth.LowCostHashParams())
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []iam.Command{
		iam.CreateRealm{ID: realm, Name: realm},
		iam.CreateApp{ID: app, Name: "other admin"},
		iam.GrantRole{Identity: app, Role: iam.RoleOrgAdmin},
		iam.AddCredential{App: app, CredentialID: "cred-otheradmin", ClientID: clientID, SecretHash: hash},
	} {
		if _, err := m.Writer().Execute(context.Background(), iam.Request{Realm: realm, Command: cmd}); err != nil {
			t.Fatal(err)
		}
	}
	return &daemontest.Client{TB: t, Base: daemontest.URL(m), Token: daemontest.ClientToken(t, daemontest.URL(m), clientID, secret, "")}
}
