package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// scopeFixture is a running iamd with a project holding one resource, an
// app that is a member of it with a policy allowing read on it, and a
// second project the app is not in.
type scopeFixture struct {
	*fixture
	base           string
	app            string // member of project, through its membership policy
	clientID       string
	secret         string
	inProject      string // resource HRN, home in project
	otherProject   string // the app is not a member
	projHRN        string
	otherHRN       string
	checkInProject map[string]any // the app's own check of inProject
}

func newScopeFixture(t *testing.T) *scopeFixture {
	t.Helper()
	f := &scopeFixture{fixture: newFixture(t)}
	f.base = daemontest.URL(f.m)
	f.inProject = f.hrn("catalog/in-project")
	f.projHRN = f.projectHRN(f.project)
	f.otherProject = f.create("/v1/projects", map[string]any{"name": "other project"})
	f.otherHRN = f.projectHRN(f.otherProject)
	f.app = f.create("/v1/apps", map[string]any{"name": "project app"})
	cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	f.ack(cred)
	f.clientID, f.secret = cred.Str("clientId"), cred.Str("clientSecret")
	f.write("PUT", "/v1/projects/"+f.project+"/resources/"+url.PathEscape(f.inProject), map[string]any{"relation": "home"})
	f.write("PUT", "/v1/projects/"+f.project+"/members/"+f.app, map[string]any{"policies": []string{f.policy}})
	// The realm-wide attachment too: it must never reach a project's resource.
	f.write("PUT", "/v1/policies/"+f.policy+"/attachments/"+f.app, nil)
	f.checkInProject = map[string]any{"action": "read", "resource": f.inProject, "consistency": map[string]any{"mode": "at_least_as_fresh", "token": f.last}}
	return f
}

// client is the app with a token scoped to scope ("" unscoped).
func (f *scopeFixture) client(t *testing.T, scope string) *daemontest.Client {
	return &daemontest.Client{TB: t, Base: f.base, Token: daemontest.ClientToken(t, f.base, f.clientID, f.secret, scope)}
}

// with returns the fixture's check of inProject with more fields.
func (f *scopeFixture) with(kv ...any) map[string]any {
	q := map[string]any{}
	for k, v := range f.checkInProject {
		q[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		q[kv[i].(string)] = kv[i+1]
	}
	return q
}

// decision is a check's answer: allowed and reason.
type decision struct {
	allowed bool
	reason  string
}

func decisionOf(t *testing.T, r daemontest.Response) decision {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("check: got %d %s, want 200", r.Status, r.Raw)
	}
	return decision{r.Body["allowed"] == true, r.Str("reason")}
}

// TestCheck_OwnScopeIsTheToken: a check of one's own access is scoped by
// one's own token. An unscoped token never reaches a project's resource,
// whatever the body's scope says (a body scope that differs is a 400 naming
// scope); a token scoped to the project does; another subject's check,
// made by right, keeps the body's scope.
func TestCheck_OwnScopeIsTheToken(t *testing.T) {
	f := newScopeFixture(t)
	unscoped, scoped := f.client(t, ""), f.client(t, f.projHRN)

	t.Run("unscoped token, body scope of the project", func(t *testing.T) {
		wantProblem(t, unscoped.Do("POST", "/v1/check", f.with("scope", f.projHRN)), http.StatusBadRequest, "invalid_argument", "scope")
		wantProblem(t, unscoped.Do("POST", "/v1/check", f.with("subject", f.app, "scope", f.projHRN)), http.StatusBadRequest, "invalid_argument", "scope")
	})
	t.Run("unscoped token, no body scope", func(t *testing.T) {
		if d := decisionOf(t, unscoped.Do("POST", "/v1/check", f.with())); d.allowed {
			t.Fatalf("got allowed (%s), want denied: realm-wide policies never reach a project's resource", d.reason)
		}
	})
	t.Run("scoped token", func(t *testing.T) {
		for _, q := range []map[string]any{f.with(), f.with("scope", f.projHRN), f.with("subject", f.app)} {
			if d := decisionOf(t, scoped.Do("POST", "/v1/check", q)); !d.allowed {
				t.Fatalf("check %v: got denied (%s), want allowed", q, d.reason)
			}
		}
	})
	t.Run("scoped token, body scope of another project", func(t *testing.T) {
		wantProblem(t, scoped.Do("POST", "/v1/check", f.with("scope", f.otherHRN)), http.StatusBadRequest, "invalid_argument", "scope")
	})
	t.Run("another subject keeps the body scope", func(t *testing.T) {
		if d := decisionOf(t, f.admin.Do("POST", "/v1/check", f.with("subject", f.app, "scope", f.projHRN))); !d.allowed {
			t.Fatalf("OrgAdmin's check of the app in its project: got denied (%s), want allowed", d.reason)
		}
		if d := decisionOf(t, f.admin.Do("POST", "/v1/check", f.with("subject", f.app))); d.allowed {
			t.Fatal("OrgAdmin's unscoped check of the app: got allowed, want denied")
		}
	})
}

// TestCheck_SubjectToken: a service holding its caller's token asks about
// that caller with subjectToken, and gets exactly the answer the caller's
// own check gets; a forged or revoked subject token is denied (200,
// allowed false, the reason naming subjectToken); subject and
// subjectToken together are a 400 naming subjectToken.
func TestCheck_SubjectToken(t *testing.T) {
	f := newScopeFixture(t)
	service := f.noRights // no role at all: holding the token is the right
	for _, scope := range []string{"", f.projHRN} {
		caller := f.client(t, scope)
		for _, q := range []map[string]any{f.with(), f.with("resource", f.hrn("catalog/outside"))} {
			own := decisionOf(t, caller.Do("POST", "/v1/check", q))
			q["subjectToken"] = caller.Token
			got := decisionOf(t, service.Do("POST", "/v1/check", q))
			if got != own {
				t.Errorf("scope %q, %v: subjectToken got %+v, the bearer's own check got %+v", scope, q["resource"], got, own)
			}
		}
	}
	if d := decisionOf(t, service.Do("POST", "/v1/check", f.with("subjectToken", f.client(t, f.projHRN).Token))); !d.allowed {
		t.Fatalf("scoped subject token: got denied (%s), want allowed", d.reason)
	}

	t.Run("both subject and subjectToken", func(t *testing.T) {
		wantProblem(t, service.Do("POST", "/v1/check", f.with("subject", f.app, "subjectToken", f.client(t, "").Token)), http.StatusBadRequest, "invalid_argument", "subjectToken")
	})
	t.Run("body scope differs from the subject token's", func(t *testing.T) {
		wantProblem(t, service.Do("POST", "/v1/check", f.with("subjectToken", f.client(t, "").Token, "scope", f.projHRN)), http.StatusBadRequest, "invalid_argument", "scope")
	})
	denied := func(t *testing.T, tok string, headers ...string) {
		t.Helper()
		r := service.Do("POST", "/v1/check", f.with("subjectToken", tok), headers...)
		if d := decisionOf(t, r); d.allowed || !strings.Contains(d.reason, "subjectToken") {
			t.Fatalf("got %+v, want denied with a reason naming subjectToken", d)
		}
	}
	t.Run("forged", func(t *testing.T) {
		tok := f.client(t, f.projHRN).Token
		parts := strings.Split(tok, ".")
		_, payload := segmentsOf(t, tok)
		payload["sub"] = f.user
		denied(t, parts[0]+"."+b64(payload)+"."+parts[2])
		denied(t, "not-a-token")
	})
	t.Run("revoked", func(t *testing.T) {
		tok := f.client(t, f.projHRN).Token
		f.admin.Must(http.StatusOK, "PATCH", "/v1/apps/"+f.app, map[string]any{"status": "deactivated"})
		ct := f.admin.Must(http.StatusOK, "PATCH", "/v1/apps/"+f.app, map[string]any{"status": "active"}).Str("consistencyToken")
		denied(t, tok, "Consistency-Token", ct)
	})
}

// TestCheck_SubjectTokenExpired: an expired subject token is denied, never
// a 500. It waits out the token's life and the verifier's leeway.
func TestCheck_SubjectTokenExpired(t *testing.T) {
	t.Parallel()
	f := newScopeFixture(t)
	resp, err := openapitest.Client(t).PostForm(f.base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {f.clientID}, "client_secret": {f.secret}, "expires_in": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: got %d %v, want 200", resp.StatusCode, err)
	}
	var last decision
	eventlogtest.Eventually(t, 45*time.Second, "the expired subject token is denied", func() bool {
		r := f.noRights.Do("POST", "/v1/check", f.with("resource", f.hrn("catalog/outside"), "subjectToken", out.AccessToken))
		last = decisionOf(t, r)
		if !last.allowed {
			return strings.Contains(last.reason, "expired")
		}
		time.Sleep(time.Second) // within its life the token is good; poll gently
		return false
	})
	if !strings.Contains(last.reason, "subjectToken") {
		t.Fatalf("got reason %q, want it to name subjectToken", last.reason)
	}
}

// TestToken_HEREScopeErrors: the token endpoint's scope errors keep HERE's
// words.
func TestToken_HEREScopeErrors(t *testing.T) {
	f := newScopeFixture(t)
	for _, tt := range []struct{ name, scope, want string }{
		{"two scopes", f.projHRN + " " + f.otherHRN, "Only one project scope allowed in token"},
		{"not a member", f.otherHRN, "Client is not a member of the project"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, desc := tokenError(t, f.base, f.clientID, f.secret, tt.scope)
			if code != "invalid_scope" || desc != tt.want {
				t.Fatalf("got %s %q, want invalid_scope %q", code, desc, tt.want)
			}
		})
	}
}

// tokenError asks for a token that must be refused with 400 and returns
// the RFC 6749 error and its description.
func tokenError(t *testing.T, base, id, secret, scope string) (code, desc string) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := openapitest.Client(t).PostForm(base+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("token: got %d %v, want 400", resp.StatusCode, err)
	}
	return out.Error, out.Description
}

// TestApp_DefaultProject: an app's default project scopes the tokens it
// asks for without scope (the response's scope and the JWT's claim), and
// such a token reaches the project's resource. The app must be a member;
// another realm's project and someone else's app are refused; null clears
// it; once the app leaves the project, a token without scope is refused
// with HERE's words rather than silently unscoped.
func TestApp_DefaultProject(t *testing.T) {
	f := newScopeFixture(t)
	path := "/v1/apps/" + f.app

	wantProblem(t, f.admin.Do("PATCH", path, map[string]any{"defaultProject": f.otherHRN}), http.StatusConflict, "conflict", "defaultProject")
	wantProblem(t, f.admin.Do("PATCH", path, map[string]any{"defaultProject": "hrn:here:authorization::otherrealm:project/" + f.project}), http.StatusBadRequest, "invalid_argument", "defaultProject")
	wantProblem(t, f.admin.Do("PATCH", path, map[string]any{"defaultProject": f.projectHRN("p-nosuch")}), http.StatusNotFound, "not_found", "defaultProject")
	wantProblem(t, f.admin.Do("PATCH", path, map[string]any{"defaultProject": 7}), http.StatusBadRequest, "invalid_argument", "defaultProject")
	wantProblem(t, f.admin.Do("PATCH", path, map[string]any{"defaultProject": f.projHRN, "status": "active"}), http.StatusBadRequest, "invalid_argument", "defaultProject")
	if r := f.noRights.Do("PATCH", path, map[string]any{"defaultProject": f.projHRN}); r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
		t.Fatalf("someone else's app: got %d %s, want 403 or 404", r.Status, r.Raw)
	}

	ct := f.admin.Must(http.StatusOK, "PATCH", path, map[string]any{"defaultProject": f.projHRN}).Str("consistencyToken")
	if got := f.admin.Must(http.StatusOK, "GET", path, nil, "Consistency-Token", ct).Str("defaultProject"); got != f.projHRN {
		t.Fatalf("GET app: got defaultProject %q, want %q", got, f.projHRN)
	}
	tok, scope := tokenAndScope(t, f.base, f.clientID, f.secret, "")
	if _, claims := segmentsOf(t, tok); scope != f.projHRN || claims["scope"] != f.projHRN {
		t.Fatalf("token without scope: got scope %q, claim %v; want %q", scope, claims["scope"], f.projHRN)
	}
	app := &daemontest.Client{TB: t, Base: f.base, Token: tok}
	if d := decisionOf(t, app.Do("POST", "/v1/check", f.with())); !d.allowed {
		t.Fatalf("default-project token: got denied (%s), want allowed", d.reason)
	}
	if _, scope := tokenAndScope(t, f.base, f.clientID, f.secret, f.projHRN); scope != f.projHRN {
		t.Fatalf("an explicit scope: got %q", scope)
	}

	f.admin.Must(http.StatusOK, "DELETE", "/v1/projects/"+f.project+"/members/"+f.app, nil)
	if code, desc := tokenError(t, f.base, f.clientID, f.secret, ""); code != "invalid_scope" || !strings.HasPrefix(desc, "Client is not a member of the project") || !strings.Contains(desc, f.projHRN) {
		t.Fatalf("after leaving the default project: got %s %q, want invalid_scope, HERE's words and the project", code, desc)
	}

	for _, clear := range []any{nil, ""} {
		f.admin.Must(http.StatusOK, "PUT", "/v1/projects/"+f.project+"/members/"+f.app, map[string]any{"policies": []string{f.policy}})
		f.admin.Must(http.StatusOK, "PATCH", path, map[string]any{"defaultProject": f.projHRN})
		ct := f.admin.Must(http.StatusOK, "PATCH", path, map[string]any{"defaultProject": clear}).Str("consistencyToken")
		if got := f.admin.Must(http.StatusOK, "GET", path, nil, "Consistency-Token", ct).Str("defaultProject"); got != "" {
			t.Fatalf("cleared with %#v: GET shows %q", clear, got)
		}
		if _, scope := tokenAndScope(t, f.base, f.clientID, f.secret, ""); scope != "" {
			t.Fatalf("cleared with %#v: token without scope got scope %q, want none", clear, scope)
		}
	}
}

// tokenAndScope asks for a client-credentials token (with scope, if not
// empty) and returns it with the response's scope.
func tokenAndScope(t *testing.T, base, id, secret, scope string) (tok, gotScope string) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := openapitest.Client(t).PostForm(base+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: got %d %v, want 200", resp.StatusCode, err)
	}
	return out.AccessToken, out.Scope
}
