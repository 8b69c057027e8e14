package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// ctl runs iamctl against m as its bootstrap admin and returns what it
// printed; a failure fails the test.
func ctl(t *testing.T, m *daemon.Main, args ...string) []byte {
	t.Helper()
	out, err := ctlErr(m, args...)
	if err != nil {
		t.Fatalf("iamctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func ctlErr(m *daemon.Main, args ...string) ([]byte, error) {
	main, out := testMain(nil)
	args = append(args, "--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID,
		"--client-secret", m.Bootstrap.ClientSecret, "--token-url", m.Bootstrap.TokenURL)
	err := main.Run(context.Background(), args)
	return out.Bytes(), err
}

// ctlJSON runs iamctl with -o json and decodes its answer into a map.
func ctlJSON(t *testing.T, m *daemon.Main, args ...string) map[string]any {
	t.Helper()
	var v map[string]any
	out := ctl(t, m, append(args, "-o", "json")...)
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("iamctl %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

func str(v map[string]any, key string) string { s, _ := v[key].(string); return s }

// populate builds a realm with every kind the document holds, through
// iamctl's own commands, and returns the realm id.
func populate(t *testing.T, m *daemon.Main) string {
	realm := m.Bootstrap.Realm
	data := func(name string) string { return "hrn:here:data::" + realm + ":" + name }
	ann := str(ctlJSON(t, m, "users", "create", "--email", "ann@example.com", "--name", "Ann"), "id")
	bob := str(ctlJSON(t, m, "users", "create", "--email", "bob@example.com", "--name", "Bob"), "id")
	eve := str(ctlJSON(t, m, "users", "create", "--email", "eve@example.com", "--name", "Eve"), "id")
	billing := str(ctlJSON(t, m, "apps", "create", "--name", "billing", "--redirect-uri", "https://billing.example/cb"), "id")
	readers := str(ctlJSON(t, m, "groups", "create", "--name", "readers"), "id")
	ctl(t, m, "groups", "add-member", readers, ann)
	ctl(t, m, "groups", "add-member", readers, bob)
	readAll := str(ctlJSON(t, m, "policies", "create", "--name", "read catalogs", "--allow", "read,list="+data("catalog-*")), "id")
	ctl(t, m, "policies", "attach", readAll, readers)
	noSecret := str(ctlJSON(t, m, "policies", "create", "--name", "no secret", "--deny", "read="+data("catalog-secret")), "id")
	ctl(t, m, "policies", "attach", noSecret, bob)
	// A statement naming an entity by HRN: its id differs in every realm.
	manageBilling := str(ctlJSON(t, m, "policies", "create", "--name", "manage billing",
		"--allow", "*=hrn:here:account::"+realm+":app/"+billing), "id")
	ctl(t, m, "policies", "attach", manageBilling, eve)
	ctl(t, m, "roles", "grant", eve, "OrgInviter")
	proj := ctlJSON(t, m, "projects", "create", "--name", "atlas")
	ctl(t, m, "projects", "add-resource", str(proj, "id"), data("maps-1"), "--relation", "home")
	editors := str(ctlJSON(t, m, "projects", "create-policy", str(proj, "id"), "--name", "editors",
		"--allow", "read,write="+data("maps-1")), "hrn")
	ctl(t, m, "projects", "set-member", str(proj, "id"), eve, "--policy", editors)
	ctl(t, m, "projects", "set-member", str(proj, "id"), billing, "--policy", editors)
	ctl(t, m, "apps", "set-default-project", billing, str(proj, "hrn"))
	ctl(t, m, "shares", "add", billing, readers)
	ctl(t, m, "managers", "add", "groups", readers, ann)
	ctl(t, m, "credentials", "add", billing)
	ctl(t, m, "api-keys", "add", billing)
	ctl(t, m, "users", "set-status", bob, "deactivated")
	return realm
}

// question is a check named in a document's terms: KIND:NAME subjects,
// {realm} in HRNs.
type question struct{ subject, action, resource, scope string }

// resolver fills in a realm's ids for document references, as a test
// sees them through the lists.
func resolver(t *testing.T, m *daemon.Main) func(string) string {
	t.Helper()
	ctx := context.Background()
	cl, err := client.New([]string{daemontest.URL(m)}, client.WithTokenSource(
		client.ClientCredentials(ctx, m.Bootstrap.TokenURL, m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", nil)))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"realm": m.Bootstrap.Realm}
	for _, kind := range []string{"users", "apps"} {
		is, err := client.ListAll[client.Identity](ctx, cl, kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range is {
			ids["user:"+i.Email], ids["app:"+i.Name] = i.ID, i.ID
		}
	}
	groups, err := client.ListAll[client.GroupInfo](ctx, cl, "groups")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		ids["group:"+g.Name] = g.ID
	}
	projects, err := client.ListAll[client.ProjectInfo](ctx, cl, "projects")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range projects {
		ids["project:"+p.Name] = p.ID
	}
	return func(s string) string {
		if id, ok := ids[s]; ok {
			return id
		}
		return regexp.MustCompile(`\{[^{}]*\}`).ReplaceAllStringFunc(s, func(p string) string {
			id, ok := ids[p[1:len(p)-1]]
			if !ok {
				t.Fatalf("%s names nothing in realm %s", p, m.Bootstrap.Realm)
			}
			return id
		})
	}
}

// answers asks each question of m's realm through `iamctl check`.
func answers(t *testing.T, m *daemon.Main, qs []question) []bool {
	t.Helper()
	fill := resolver(t, m)
	var out []bool
	for _, q := range qs {
		args := []string{"check", "--subject", fill(q.subject), "--action", q.action, "--resource", fill(q.resource), "--mode", "fully_consistent"}
		if q.scope != "" {
			args = append(args, "--scope", fill(q.scope))
		}
		out = append(out, ctlJSON(t, m, args...)["allowed"] == true)
	}
	return out
}

// headToken is the log's head as `iamctl lag` reports it.
func headToken(t *testing.T, m *daemon.Main) string {
	t.Helper()
	var lag struct {
		Replicas []client.ReplicaStatus `json:"replicas"`
	}
	if err := json.Unmarshal(ctl(t, m, "lag", "-o", "json"), &lag); err != nil || len(lag.Replicas) == 0 {
		t.Fatalf("lag: %v", err)
	}
	return lag.Replicas[0].HeadToken
}

// TestExportImport exports a realm, imports it into a fresh iamd, exports
// that: the same document, the same answers to a set of checks; a second
// import writes nothing (the log's head stays where it was).
func TestExportImport(t *testing.T) {
	src, dst := daemontest.Start(t, ""), daemontest.Start(t, "")
	populate(t, src)
	doc := ctl(t, src, "export")
	var d client.RealmDocument
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("export: %v\n%s", err, doc)
	}
	if len(d.Users) != 3 || len(d.Apps) != 2 || len(d.Groups) != 1 || len(d.Policies) != 3 || len(d.Projects) != 1 {
		t.Fatalf("export: got %d users, %d apps, %d groups, %d policies, %d projects, want 3, 2, 1, 3, 1:\n%s",
			len(d.Users), len(d.Apps), len(d.Groups), len(d.Policies), len(d.Projects), doc)
	}
	if bytes.Contains(doc, []byte(src.Bootstrap.Realm)) {
		t.Fatalf("export names the realm's id %s; want {realm}:\n%s", src.Bootstrap.Realm, doc)
	}

	main, out := testMain(nil)
	main.Stdin = bytes.NewReader(doc)
	creds := []string{"--url", daemontest.URL(dst), "--client-id", dst.Bootstrap.ClientID, "--client-secret", dst.Bootstrap.ClientSecret}
	if err := main.Run(context.Background(), append([]string{"import", "-o", "json"}, creds...)); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	var first struct{ Writes int }
	if err := json.Unmarshal(out.Bytes(), &first); err != nil || first.Writes == 0 {
		t.Fatalf("import into an empty realm: got %s (%v), want some writes", out, err)
	}

	again := ctl(t, dst, "export")
	if !bytes.Equal(doc, again) {
		t.Fatalf("export after import differs from the one imported:\nfirst:\n%s\nagain:\n%s", doc, again)
	}

	qs := []question{
		{"user:ann@example.com", "read", "hrn:here:data::{realm}:catalog-1", ""},
		{"user:ann@example.com", "read", "hrn:here:data::{realm}:catalog-secret", ""},
		{"user:ann@example.com", "write", "hrn:here:data::{realm}:catalog-1", ""},
		{"user:bob@example.com", "read", "hrn:here:data::{realm}:catalog-1", ""}, // deactivated
		{"user:eve@example.com", "write", "hrn:here:data::{realm}:maps-1", "hrn:here:authorization::{realm}:project/{project:atlas}"},
		{"user:eve@example.com", "write", "hrn:here:data::{realm}:maps-1", ""},
		{"user:eve@example.com", "manageApp", "hrn:here:account::{realm}:app/{app:billing}", ""},
		{"user:ann@example.com", "manageApp", "hrn:here:account::{realm}:app/{app:billing}", ""}, // shared with readers
		{"user:ann@example.com", "manageGroup", "hrn:here:authorization::{realm}:group/{group:readers}", ""},
	}
	want := []bool{true, true, false, false, true, false, true, true, true}
	srcAnswers, dstAnswers := answers(t, src, qs), answers(t, dst, qs)
	for i, q := range qs {
		if srcAnswers[i] != want[i] || dstAnswers[i] != want[i] {
			t.Errorf("%s %s %s (scope %q): got %v in the exported realm and %v in the imported one, want %v",
				q.subject, q.action, q.resource, q.scope, srcAnswers[i], dstAnswers[i], want[i])
		}
	}

	// A user renamed in the realm is named as the document says again.
	annID := resolver(t, dst)("user:ann@example.com")
	ctl(t, dst, "users", "update", annID, "--name", "Annette")
	main, out = testMain(nil)
	main.Stdin = bytes.NewReader(doc)
	if err := main.Run(context.Background(), append([]string{"import", "-o", "json"}, creds...)); err != nil {
		t.Fatalf("import over a rename: %v\n%s", err, out)
	}
	var rename struct{ Writes int }
	if err := json.Unmarshal(out.Bytes(), &rename); err != nil || rename.Writes != 1 {
		t.Fatalf("import over a rename: got %s (%v), want 1 write", out, err)
	}

	head := headToken(t, dst)
	main, out = testMain(nil)
	main.Stdin = bytes.NewReader(doc)
	if err := main.Run(context.Background(), append([]string{"import", "-o", "json"}, creds...)); err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	var second struct{ Writes int }
	if err := json.Unmarshal(out.Bytes(), &second); err != nil || second.Writes != 0 {
		t.Fatalf("second import: got %s (%v), want 0 writes", out, err)
	}
	if got := headToken(t, dst); got != head {
		t.Fatalf("second import moved the log's head from %s to %s, want it unchanged", head, got)
	}

	// A policy the document words otherwise is left as it is, and said so.
	main, out = testMain(nil)
	var stderr bytes.Buffer
	main.Stderr = &stderr
	main.Stdin = bytes.NewReader(bytes.Replace(doc, []byte("catalog-secret"), []byte("catalog-other"), 1))
	if err := main.Run(context.Background(), append([]string{"import", "-o", "json"}, creds...)); err != nil {
		t.Fatalf("import of another wording: %v\n%s", err, out)
	}
	if !strings.Contains(stderr.String(), "policy:no secret exists with other statements") || headToken(t, dst) != head {
		t.Fatalf("import of another wording: got stderr %q and head %s, want a warning naming policy:no secret and head %s", stderr.String(), headToken(t, dst), head)
	}
}
