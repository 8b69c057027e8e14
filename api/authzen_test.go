package api_test

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// The AuthZEN tests build their requests from the spec's examples
// (api/authorization-api-1_0.md of openid/authzen), the mapping of
// docs/authzen.md applied: subject {type: user|app, id: <identity id>},
// action {name}, resource {type, id: <HRN>}; the examples' properties and
// context keys are kept, as a PEP would send them.

// azSubject is the spec's subject example with its properties.
func azSubject(kind, id string) map[string]any {
	return map[string]any{"type": kind, "id": id, "properties": map[string]any{
		"department": "Sales", "ip_address": "172.217.22.14", "device_id": "8:65:ee:17:7e:0b"}}
}

// azResource is the spec's book example, its id an HRN.
func azResource(hrn string) map[string]any {
	return map[string]any{"type": "book", "id": hrn, "properties": map[string]any{
		"library_record": map[string]any{"title": "AuthZEN in Action", "isbn": "978-0593383322"}}}
}

func azAction(name string) map[string]any {
	return map[string]any{"name": name, "properties": map[string]any{"method": "GET"}}
}

// azContext is the spec's context example plus iam's consistency.
func azContext(consistency map[string]any) map[string]any {
	return map[string]any{"time": "1985-10-26T01:22-07:00", "schema": "https://schema.example.com/access-request.schema.json", "consistency": consistency}
}

type azCase struct {
	name                      string
	kind, subject, action, rs string
}

// azDecision is one AuthZEN decision as answered.
type azDecision struct {
	decision bool
	reason   string
}

func azDecisions(t *testing.T, r daemontest.Response) []azDecision {
	t.Helper()
	items, ok := r.Body["evaluations"].([]any)
	if !ok {
		t.Fatalf("got %s, want an evaluations array", r.Raw)
	}
	var out []azDecision
	for _, it := range items {
		m, _ := it.(map[string]any)
		d, ok := m["decision"].(bool)
		ctx, _ := m["context"].(map[string]any)
		reason, _ := ctx["reason"].(string)
		if !ok || reason == "" {
			t.Fatalf("item %v: want a boolean decision and a reason", it)
		}
		out = append(out, azDecision{d, reason})
	}
	return out
}

func azContextOf(t *testing.T, r daemontest.Response) (region, token string) {
	t.Helper()
	ctx, _ := r.Body["context"].(map[string]any)
	region, _ = ctx["region"].(string)
	token, _ = ctx["consistencyToken"].(string)
	if region == "" || token == "" || r.Header.Get("Consistency-Token") != token {
		t.Fatalf("got %s (Consistency-Token %q), want a region and a consistency token in the context", r.Raw, r.Header.Get("Consistency-Token"))
	}
	return region, token
}

// TestAuthZEN_AnswersAsCheck: in every region, an evaluation answers as
// /v1/check answers the same check at the same consistency, and a boxcar
// answers every item as /v1/check answers it at exactly the boxcar's one
// token.
func TestAuthZEN_AnswersAsCheck(t *testing.T) {
	f := newFixture(t)
	writer := f.create("/v1/users", map[string]any{"email": "writer@example.com", "name": "Writer"})
	wp := f.create("/v1/policies", map[string]any{"name": "writers", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{"read", "write"}, "resources": []string{f.hrn("catalog/*")}},
		map[string]any{"effect": "deny", "actions": []string{"write"}, "resources": []string{f.hrn("catalog/frozen")}}}})
	f.write("PUT", "/v1/policies/"+wp+"/attachments/"+writer, nil)
	cases := []azCase{
		{"member reads", "user", f.user, "read", f.hrn("catalog/x")},
		{"member may not write", "user", f.user, "write", f.hrn("catalog/x")},
		{"outside the policy", "user", f.user, "read", f.hrn("orders/1")},
		{"writer writes", "user", writer, "write", f.hrn("catalog/x")},
		{"explicit deny beats allow", "user", writer, "write", f.hrn("catalog/frozen")},
		{"app with no rights", "app", f.app, "read", f.hrn("catalog/x")},
		{"a user named as an app", "app", f.user, "read", f.hrn("catalog/x")},
		{"unknown subject", "user", "u-nobody", "read", f.hrn("catalog/x")},
		{"another realm's resource", "user", f.user, "read", "hrn:here:data::other-realm:catalog/x"},
	}
	fresh := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}
	for _, region := range f.m.Config.Regions {
		c := f.admin.With(f.admin.Token)
		c.Region = region
		t.Run(region, func(t *testing.T) {
			for _, tc := range cases {
				check := c.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": tc.subject, "action": tc.action, "resource": tc.rs, "consistency": fresh})
				ev := c.Must(http.StatusOK, "POST", "/access/v1/evaluation", map[string]any{
					"subject": azSubject(tc.kind, tc.subject), "action": azAction(tc.action), "resource": azResource(tc.rs), "context": azContext(fresh)})
				got, _ := ev.Body["decision"].(bool)
				ctx, _ := ev.Body["context"].(map[string]any)
				if tc.kind == "app" && tc.subject == f.user {
					// /v1/check knows no types: the user may read, but not as an app.
					if reason, _ := ctx["reason"].(string); got || !strings.Contains(reason, "of type user, not app") {
						t.Errorf("%s: got %s, want denied for its type", tc.name, ev.Raw)
					}
					continue
				}
				if got != check.Body["allowed"] || ctx["reason"] != check.Str("reason") || ctx["region"] != region {
					t.Errorf("%s: evaluation %s, check %s: want the same decision and reason, in %s", tc.name, ev.Raw, check.Raw, region)
				}
			}

			var evals []any
			for _, tc := range cases {
				evals = append(evals, map[string]any{"subject": azSubject(tc.kind, tc.subject), "action": azAction(tc.action), "resource": azResource(tc.rs)})
			}
			batch := c.Must(http.StatusOK, "POST", "/access/v1/evaluations", map[string]any{"context": azContext(fresh), "evaluations": evals})
			got := azDecisions(t, batch)
			gotRegion, token := azContextOf(t, batch)
			if len(got) != len(cases) || gotRegion != region {
				t.Fatalf("got %d decisions in %s, want %d in %s", len(got), gotRegion, len(cases), region)
			}
			for i, tc := range cases {
				if tc.kind == "app" && tc.subject == f.user {
					continue
				}
				exact := c.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": tc.subject, "action": tc.action, "resource": tc.rs,
					"consistency": map[string]any{"mode": "at_exact_snapshot", "token": token}})
				if got[i].decision != exact.Body["allowed"] || got[i].reason != exact.Str("reason") {
					t.Errorf("%s: boxcar gave %+v, /v1/check at its token %s", tc.name, got[i], exact.Raw)
				}
			}
		})
	}
}

// TestAuthZEN_Defaults: the spec's boxcar with top-level defaults, an item
// overriding one; and a boxcar without items is one evaluation.
func TestAuthZEN_Defaults(t *testing.T) {
	f := newFixture(t)
	fresh := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}
	r := f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluations", map[string]any{
		"subject": azSubject("user", f.user), "context": azContext(fresh), "action": map[string]any{"name": "read"},
		"evaluations": []any{
			map[string]any{"resource": map[string]any{"type": "document", "id": f.hrn("catalog/boxcarring.md")}},
			map[string]any{"resource": map[string]any{"type": "document", "id": f.hrn("docs/subject-search.md")}},
			map[string]any{"action": map[string]any{"name": "can_edit"}, "resource": map[string]any{"type": "document", "id": f.hrn("catalog/resource-search.md")}},
		}})
	got := azDecisions(t, r)
	if want := []bool{true, false, false}; len(got) != 3 || got[0].decision != want[0] || got[1].decision != want[1] || got[2].decision != want[2] {
		t.Fatalf("got %+v, want decisions %v", got, want)
	}
	if !strings.Contains(got[2].reason, "can_edit") {
		t.Errorf("overridden action: got reason %q, want it to name can_edit", got[2].reason)
	}

	single := f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluations", map[string]any{
		"subject": azSubject("user", f.user), "action": azAction("read"), "resource": azResource(f.hrn("catalog/x")), "context": azContext(fresh), "evaluations": []any{}})
	if single.Body["decision"] != true || single.Body["evaluations"] != nil {
		t.Fatalf("no items: got %s, want one allowed decision", single.Raw)
	}
}

// TestAuthZEN_EvaluationsSemantic: each semantic short-circuits as the
// spec's example of three documents shows.
func TestAuthZEN_EvaluationsSemantic(t *testing.T) {
	f := newFixture(t)
	fresh := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}
	allowed, denied := f.hrn("catalog/1"), f.hrn("orders/2")
	for _, tc := range []struct {
		semantic  string
		resources []string
		want      []bool
	}{
		{"", []string{allowed, denied, allowed}, []bool{true, false, true}},
		{"execute_all", []string{allowed, denied, allowed}, []bool{true, false, true}},
		{"deny_on_first_deny", []string{allowed, denied, allowed}, []bool{true, false}},
		{"deny_on_first_deny", []string{allowed, allowed}, []bool{true, true}},
		{"deny_on_first_deny", []string{denied, allowed}, []bool{false}},
		{"permit_on_first_permit", []string{allowed, denied, allowed}, []bool{true}},
		{"permit_on_first_permit", []string{denied, denied, allowed, denied}, []bool{false, false, true}},
		{"permit_on_first_permit", []string{denied, denied}, []bool{false, false}},
	} {
		name := tc.semantic
		if name == "" {
			name = "default"
		}
		t.Run(name+"/"+strconv.Itoa(len(tc.resources)), func(t *testing.T) {
			var evals []any
			for i, res := range tc.resources {
				evals = append(evals, map[string]any{"resource": map[string]any{"type": "document", "id": res + "-" + strconv.Itoa(i)}})
			}
			body := map[string]any{"subject": map[string]any{"type": "user", "id": f.user}, "action": map[string]any{"name": "read"},
				"context": map[string]any{"consistency": fresh}, "evaluations": evals}
			if tc.semantic != "" {
				body["options"] = map[string]any{"evaluations_semantic": tc.semantic, "another_option": "value"}
			}
			got := azDecisions(t, f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluations", body))
			var decisions []bool
			for _, d := range got {
				decisions = append(decisions, d.decision)
			}
			if !slices.Equal(decisions, tc.want) {
				t.Fatalf("got %v, want %v", decisions, tc.want)
			}
		})
	}
}

// TestAuthZEN_Errors: 401 and 400 as the spec says, as problem details
// naming the field; X-Request-ID is echoed on every answer.
func TestAuthZEN_Errors(t *testing.T) {
	f := newFixture(t)
	ok := func() map[string]any {
		return map[string]any{"subject": map[string]any{"type": "user", "id": f.user}, "action": map[string]any{"name": "read"},
			"resource": map[string]any{"type": "book", "id": f.hrn("catalog/x")}}
	}
	with := func(key string, v any) map[string]any {
		b := ok()
		if v == nil {
			delete(b, key)
		} else {
			b[key] = v
		}
		return b
	}
	item := func(mut func(map[string]any)) map[string]any {
		e := ok()
		mut(e)
		return map[string]any{"evaluations": []any{ok(), e}}
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = ok()
	}
	const ev, evs = "/access/v1/evaluation", "/access/v1/evaluations"
	for _, tc := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"malformed JSON", ev, `{"subject":`, "body"},
		{"not an object", ev, `[1]`, "body"},
		{"no subject", ev, with("subject", nil), "subject"},
		{"no action", ev, with("action", nil), "action"},
		{"no resource", ev, with("resource", nil), "resource"},
		{"no subject id", ev, with("subject", map[string]any{"type": "user"}), "subject.id"},
		{"no subject type", ev, with("subject", map[string]any{"id": f.user}), "subject.type"},
		{"a subject type iam has not", ev, with("subject", map[string]any{"type": "group", "id": f.user}), "subject.type"},
		{"no resource type", ev, with("resource", map[string]any{"id": f.hrn("catalog/x")}), "resource.type"},
		{"resource id not an HRN", ev, with("resource", map[string]any{"type": "book", "id": "123"}), "resource.id"},
		{"no action name", ev, with("action", map[string]any{"properties": map[string]any{}}), "action.name"},
		{"subject id of the wrong type", ev, with("subject", map[string]any{"type": "user", "id": 7}), "subject.id"},
		{"bad consistency mode", ev, with("context", map[string]any{"consistency": map[string]any{"mode": "eventually"}}), "context.consistency.mode"},
		{"scope of another realm", ev, with("context", map[string]any{"scope": "hrn:here:authorization::otherrealm:project/" + f.project}), "context.scope"},
		{"item without a default", evs, map[string]any{"evaluations": []any{map[string]any{"action": map[string]any{"name": "read"}}}}, "evaluations[0].subject"},
		{"bad item resource", evs, item(func(e map[string]any) { e["resource"] = map[string]any{"type": "book", "id": "hrn:bad"} }), "evaluations[1].resource.id"},
		{"item consistency", evs, item(func(e map[string]any) {
			e["context"] = map[string]any{"consistency": map[string]any{"mode": "fully_consistent"}}
		}), "evaluations[1].context.consistency"},
		{"unknown semantic", evs, map[string]any{"evaluations": []any{ok()}, "options": map[string]any{"evaluations_semantic": "deny_all"}}, "options.evaluations_semantic"},
		{"too many items", evs, map[string]any{"evaluations": many}, "evaluations"},
		{"search without subject type", "/access/v1/search/subject", with("subject", map[string]any{}), "subject.type"},
		{"search page limit", "/access/v1/search/subject", with("page", map[string]any{"limit": 0}), "page.limit"},
		{"search page token", "/access/v1/search/subject", with("page", map[string]any{"token": "junk"}), "page.token"},
		{"action search resource", "/access/v1/search/action", with("resource", map[string]any{"type": "book"}), "resource.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.admin.Do("POST", tc.path, tc.body, "X-Request-ID", "req-"+tc.name)
			wantProblem(t, r, http.StatusBadRequest, "invalid_argument", tc.field)
			if got := r.Header.Get("X-Request-ID"); got != "req-"+tc.name {
				t.Errorf("got X-Request-ID %q, want it echoed", got)
			}
		})
	}

	for _, path := range []string{"/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject", "/access/v1/search/action"} {
		for name, token := range map[string]string{"no token": "", "a forged token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"} {
			t.Run(path+"/"+name, func(t *testing.T) {
				// Authentication comes first: a good body does not help.
				r := f.admin.With(token).Do("POST", path, ok(), "X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
				wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
				if r.Header.Get("WWW-Authenticate") == "" || r.Header.Get("X-Request-ID") != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
					t.Errorf("got headers %v, want WWW-Authenticate and the request id", r.Header)
				}
			})
		}
	}

	r := f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluation", ok(), "X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
	if r.Header.Get("X-Request-ID") != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got headers %v, want the request id echoed and application/json", r.Header)
	}
}

// TestAuthZEN_Attacks: what a PEP may not learn or do through AuthZEN:
// another realm's resources and subjects stay out of reach, a caller
// without the right to check others is refused, and a revoked token is
// refused on every endpoint.
func TestAuthZEN_Attacks(t *testing.T) {
	f := newFixture(t)
	other := otherRealmAdmin(t, f.m)
	at := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}
	fresh := func(body map[string]any) map[string]any {
		body["context"] = map[string]any{"consistency": at}
		return body
	}
	eval := func(kind, subject, resource string) map[string]any {
		return map[string]any{"subject": map[string]any{"type": kind, "id": subject}, "action": map[string]any{"name": "read"},
			"resource": map[string]any{"type": "book", "id": resource}}
	}

	t.Run("another realm's resource", func(t *testing.T) {
		r := f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluation", fresh(eval("user", f.user, "hrn:here:data::other-realm:catalog/x")))
		if r.Body["decision"] != false {
			t.Fatalf("got %s, want denied", r.Raw)
		}
	})
	t.Run("another realm's subject", func(t *testing.T) {
		// The other realm's admin exists, but not in this realm.
		r := f.admin.Must(http.StatusOK, "POST", "/access/v1/evaluation", fresh(eval("app", "a-otheradmin", f.hrn("catalog/x"))))
		if r.Body["decision"] != false {
			t.Fatalf("got %s, want denied", r.Raw)
		}
		// The other realm's admin asks about this realm's member, by id.
		r = other.Do("POST", "/access/v1/evaluation", fresh(eval("user", f.user, f.hrn("catalog/x"))))
		// Within its realm the id names nobody: denied, as unknown.
		ctx, _ := r.Body["context"].(map[string]any)
		if reason, _ := ctx["reason"].(string); r.Status != http.StatusOK || r.Body["decision"] != false || !strings.HasSuffix(reason, "is unknown") {
			t.Fatalf("got %d %s, want denied as unknown", r.Status, r.Raw)
		}
		r = other.Do("POST", "/access/v1/search/subject", map[string]any{"subject": map[string]any{"type": "user"}, "action": map[string]any{"name": "read"},
			"resource": map[string]any{"type": "book", "id": f.hrn("catalog/x")}, "context": map[string]any{"consistency": at}})
		if r.Status != http.StatusOK || strings.Contains(string(r.Raw), f.user) {
			t.Fatalf("search from another realm: got %d %s, want 200 without %s", r.Status, r.Raw, f.user)
		}
	})
	t.Run("someone else's id without the right", func(t *testing.T) {
		for _, path := range []string{"/access/v1/evaluation", "/access/v1/search/action"} {
			wantProblem(t, f.noRights.Do("POST", path, eval("user", f.user, f.hrn("catalog/x"))), http.StatusForbidden, "permission_denied", "")
		}
		// One item about someone else refuses the whole boxcar.
		wantProblem(t, f.noRights.Do("POST", "/access/v1/evaluations", map[string]any{"evaluations": []any{
			eval("app", f.app, f.hrn("catalog/x")), eval("user", f.user, f.hrn("catalog/x"))}}), http.StatusForbidden, "permission_denied", "")
		wantProblem(t, f.noRights.Do("POST", "/access/v1/search/subject", map[string]any{"subject": map[string]any{"type": "user"},
			"action": map[string]any{"name": "read"}, "resource": map[string]any{"type": "book", "id": f.hrn("catalog/x")}}), http.StatusForbidden, "permission_denied", "")
		// Refused before its input is judged: a bad item tells it nothing.
		bad := eval("user", f.user, "not an HRN")
		bad["context"] = map[string]any{"consistency": map[string]any{"mode": "eventually"}}
		wantProblem(t, f.noRights.Do("POST", "/access/v1/evaluations", map[string]any{"evaluations": []any{bad}}), http.StatusForbidden, "permission_denied", "")
		// Its own access it may ask about.
		r := f.noRights.Must(http.StatusOK, "POST", "/access/v1/evaluation", fresh(eval("app", f.app, f.hrn("catalog/x"))))
		if r.Body["decision"] != false {
			t.Fatalf("got %s, want denied", r.Raw)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		ks, err := auth.LoadSigningKeys(f.m.Config.DataDir, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		// Signed with the server's own key: only its exp is wrong, as the
		// same token an hour later shows.
		sign := func(exp time.Time) string {
			tok, err := ks.Sign(auth.Claims{Issuer: daemontest.URL(f.m), Subject: f.app, Audience: "iam", Realm: f.realm, ID: "t-expired",
				IssuedAt: exp.Add(-time.Hour), ExpiresAt: exp, Kind: auth.KindApp})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		f.noRights.With(sign(time.Now().Add(time.Hour))).Must(http.StatusOK, "POST", "/access/v1/evaluation", fresh(eval("app", f.app, f.hrn("catalog/x"))))
		expired := sign(time.Now().Add(-time.Hour))
		for _, path := range []string{"/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject", "/access/v1/search/action"} {
			wantProblem(t, f.noRights.With(expired).Do("POST", path, eval("app", f.app, f.hrn("catalog/x"))), http.StatusUnauthorized, "unauthenticated", "")
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		app := f.create("/v1/apps", map[string]any{"name": "revoked pep"})
		cred := f.admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/credentials", nil)
		base := daemontest.URL(f.m)
		pep := &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, cred.Str("clientId"), cred.Str("clientSecret"), "")}
		pep.Must(http.StatusOK, "POST", "/access/v1/evaluation", eval("app", app, f.hrn("catalog/x")), "Consistency-Token", cred.Str("consistencyToken"))
		gone := f.admin.Must(http.StatusOK, "DELETE", "/v1/apps/"+app+"/credentials/"+cred.Str("credentialId"), nil)
		for _, path := range []string{"/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject", "/access/v1/search/action"} {
			// At the revocation's token, every region has it.
			r := pep.Do("POST", path, eval("app", app, f.hrn("catalog/x")), "Consistency-Token", gone.Str("consistencyToken"))
			wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
		}
	})
}

// TestAuthZEN_Search: subject search is the who-can lookup, paged as the
// spec pages; action search gives what a check allows.
func TestAuthZEN_Search(t *testing.T) {
	f := newFixture(t)
	var users []string
	for i := range 5 {
		u := f.create("/v1/users", map[string]any{"email": "az" + strconv.Itoa(i) + "@example.com", "name": "AZ " + strconv.Itoa(i)})
		f.write("PUT", "/v1/groups/"+f.group+"/members/"+u, nil)
		users = append(users, u)
	}
	readerApp := f.create("/v1/apps", map[string]any{"name": "reader app"})
	f.write("PUT", "/v1/policies/"+f.policy+"/attachments/"+readerApp, nil)
	catalog := f.hrn("catalog/x")
	fresh := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}

	search := func(kind string, limit int) (ids []string, reasons map[string]string) {
		reasons = map[string]string{}
		body := map[string]any{"subject": map[string]any{"type": kind, "id": "ignored"}, "action": azAction("read"), "resource": azResource(catalog),
			"context": azContext(fresh), "page": map[string]any{"limit": limit}}
		for page := 0; ; page++ {
			r := f.admin.Must(http.StatusOK, "POST", "/access/v1/search/subject", body)
			azContextOf(t, r)
			pg, _ := r.Body["page"].(map[string]any)
			results, _ := r.Body["results"].([]any)
			if n, _ := pg["count"].(float64); int(n) != len(results) || len(results) > limit {
				t.Fatalf("page %d: got %s, want count = len(results) <= %d", page, r.Raw, limit)
			}
			for _, it := range results {
				m := it.(map[string]any)
				if m["type"] != kind {
					t.Fatalf("got %v, want only %s subjects", m, kind)
				}
				id := m["id"].(string)
				ids = append(ids, id)
				reasons[id] = m["properties"].(map[string]any)["reason"].(string)
			}
			next, ok := pg["next_token"].(string)
			if !ok {
				t.Fatalf("got %s, want a page with next_token", r.Raw)
			}
			if next == "" {
				return ids, reasons
			}
			if page > 50 {
				t.Fatal("still paging after 50 pages")
			}
			body["page"] = map[string]any{"limit": limit, "token": next}
			if page == 0 {
				changed := map[string]any{"subject": body["subject"], "action": body["action"], "resource": body["resource"], "page": map[string]any{"limit": limit + 1, "token": next}}
				wantProblem(t, f.admin.Do("POST", "/access/v1/search/subject", changed), http.StatusBadRequest, "invalid_argument", "page.token")
			}
		}
	}

	t.Run("subjects, paged, as the lookup gives them", func(t *testing.T) {
		ids, reasons := search("user", 2)
		want, wantReasons, _ := lookup(t, f.admin, map[string]any{"action": "read", "resource": catalog})
		var wantUsers []string
		for _, id := range want {
			if id != readerApp {
				wantUsers = append(wantUsers, id)
			}
		}
		if !slices.Equal(ids, wantUsers) {
			t.Fatalf("got %v, want %v", ids, wantUsers)
		}
		for _, u := range append(users, f.user) {
			if !slices.Contains(ids, u) || reasons[u] != wantReasons[u] {
				t.Fatalf("got %v (%q), want %s with reason %q", ids, reasons[u], u, wantReasons[u])
			}
		}
		apps, _ := search("app", 1)
		if !slices.Contains(apps, readerApp) || slices.ContainsFunc(apps, func(id string) bool { return slices.Contains(users, id) }) {
			t.Fatalf("apps: got %v, want %s and no users", apps, readerApp)
		}
	})

	t.Run("actions a check allows", func(t *testing.T) {
		writer := f.create("/v1/users", map[string]any{"email": "az-writer@example.com", "name": "Writer"})
		p := f.create("/v1/policies", map[string]any{"name": "catalog writers", "statements": []any{
			map[string]any{"effect": "allow", "actions": []string{"write", "read", "list", "*"}, "resources": []string{f.hrn("catalog/*")}},
			map[string]any{"effect": "allow", "actions": []string{"delete"}, "resources": []string{f.hrn("orders/*")}},
			map[string]any{"effect": "deny", "actions": []string{"list"}, "resources": []string{catalog}}}})
		f.write("PUT", "/v1/policies/"+p+"/attachments/"+writer, nil)
		fresh := map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 10000}
		var names []string
		body := map[string]any{"subject": azSubject("user", writer), "resource": azResource(catalog), "context": azContext(fresh), "page": map[string]any{"limit": 1}}
		for page := 0; page < 10; page++ {
			r := f.admin.Must(http.StatusOK, "POST", "/access/v1/search/action", body)
			azContextOf(t, r)
			for _, it := range r.Body["results"].([]any) {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			next := r.Body["page"].(map[string]any)["next_token"].(string)
			if next == "" {
				break
			}
			body["page"] = map[string]any{"limit": 1, "token": next}
		}
		// delete is named for orders only and reaches the catalog through
		// "*"; list is denied there.
		if want := []string{"delete", "read", "write"}; !slices.Equal(names, want) {
			t.Fatalf("got %v, want %v", names, want)
		}
	})
}

// TestAuthZEN_Configuration: the PDP metadata names the issuer as the PDP
// and every endpoint served, unauthenticated.
func TestAuthZEN_Configuration(t *testing.T) {
	m := daemontest.Start(t, "")
	r := (&daemontest.Client{TB: t, Base: daemontest.URL(m)}).Must(http.StatusOK, "GET", "/.well-known/authzen-configuration", nil)
	pdp := r.Str("policy_decision_point")
	if pdp == "" || strings.HasSuffix(pdp, "/") {
		t.Fatalf("got %s, want the PDP's identifier", r.Raw)
	}
	for key, path := range map[string]string{"access_evaluation_endpoint": "/access/v1/evaluation", "access_evaluations_endpoint": "/access/v1/evaluations",
		"search_subject_endpoint": "/access/v1/search/subject", "search_action_endpoint": "/access/v1/search/action"} {
		if r.Str(key) != pdp+path {
			t.Errorf("%s: got %q, want %q", key, r.Str(key), pdp+path)
		}
	}
	if _, ok := r.Body["search_resource_endpoint"]; ok {
		t.Errorf("got %s, want no resource search (not served)", r.Raw)
	}
}

// TestAuthZEN_RandomInput sends seeded random mutations of AuthZEN
// requests (the random-input test's generator): never a 5xx other than
// 503, every error a problem document, every 200 a decision or a page.
func TestAuthZEN_RandomInput(t *testing.T) {
	f := newFixture(t)
	n := 600
	if testing.Short() {
		n = 150
	}
	one := func(f *fixture) map[string]any {
		return map[string]any{"subject": azSubject("user", f.user), "action": azAction("read"), "resource": azResource(f.hrn("catalog/x")),
			"context": azContext(map[string]any{"mode": "at_least_as_fresh", "token": f.last, "waitMs": 100})}
	}
	routes := []fuzzRoute{
		{"GET", "/.well-known/authzen-configuration", func(*fixture) any { return nil }},
		{"POST", "/access/v1/evaluation", func(f *fixture) any { return one(f) }},
		{"POST", "/access/v1/evaluations", func(f *fixture) any {
			b := one(f)
			b["evaluations"] = []any{one(f), map[string]any{"resource": azResource(f.hrn("orders/1"))}, map[string]any{"action": azAction("write")}}
			b["options"] = map[string]any{"evaluations_semantic": "deny_on_first_deny"}
			return b
		}},
		{"POST", "/access/v1/search/subject", func(f *fixture) any {
			b := one(f)
			b["page"] = map[string]any{"limit": 2}
			return b
		}},
		{"POST", "/access/v1/search/action", func(f *fixture) any { return one(f) }},
	}
	rng := rand.New(rand.NewPCG(20261203, 12))
	statuses := map[int]int{}
	for i := range n {
		req := f.randomRequest(rng, routes, []string{"GET", "POST", "PUT", "DELETE"}, []string{f.user, f.app})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("request %d %s %s: %v", i, req.Method, req.URL, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
		ct := resp.Header.Get("Content-Type")
		switch {
		case resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable:
			t.Errorf("request %d %s %s: got %d %s", i, req.Method, req.URL, resp.StatusCode, raw)
		case resp.StatusCode >= 400 && !strings.HasPrefix(ct, "application/problem+json"):
			t.Errorf("request %d %s %s: got %d with Content-Type %q, want a problem document", i, req.Method, req.URL, resp.StatusCode, ct)
		case resp.StatusCode == http.StatusOK && req.Method == "POST":
			var body map[string]any
			if json.Unmarshal(raw, &body) != nil || (body["decision"] == nil && body["evaluations"] == nil && body["results"] == nil) {
				t.Errorf("request %d %s %s: got 200 %s, want a decision or a page", i, req.Method, req.URL, raw)
			}
		}
	}
	t.Logf("statuses of %d random AuthZEN requests: %v", n, statuses)
	if statuses[http.StatusOK] == 0 || statuses[http.StatusBadRequest] == 0 {
		t.Errorf("got statuses %v, want some answered and some refused (the mutations reach the decoder)", statuses)
	}
}
