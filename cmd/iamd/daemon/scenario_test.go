package daemon_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// A scenario is a list of steps over the HTTP API (format in
// testdata/scenarios/README.md and ../shared/scenarios/README.md).
type scenario struct {
	Name  string `json:"name"`
	Steps []step `json:"steps"`
}

type step struct {
	Op           string            `json:"op"`
	As           string            `json:"as"`
	Statements   []json.RawMessage `json:"statements"`
	Policy       string            `json:"policy"`
	To           string            `json:"to"`
	From         string            `json:"from"`
	Group        string            `json:"group"`
	Identity     string            `json:"identity"`
	Role         string            `json:"role"`
	Project      string            `json:"project"`
	Policies     []string          `json:"policies"`
	Plan         string            `json:"plan"`
	Resource     string            `json:"resource"`
	Relation     string            `json:"relation"`
	Linkable     *bool             `json:"linkable"`
	User         string            `json:"user"`
	App          string            `json:"app"`
	By           string            `json:"by"`
	Subject      string            `json:"subject"`
	Action       string            `json:"action"`
	Scope        string            `json:"scope"`
	Expect       *bool             `json:"expect"`
	ExpectStatus int               `json:"expect_status"`
	ExpectCode   string            `json:"expect_code"`
}

func scenarioFiles(t *testing.T) []string {
	dirs := []string{"../../../testdata/scenarios", "../../../../shared/scenarios"}
	var files []string
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, "*.json"))
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no scenario files found")
	}
	return files
}

// TestIamd_Scenarios replays every scenario against a real iamd (embedded NATS
// JetStream, Pebble replicas, HTTP), each in a fresh realm, with every check
// asked in every region at the last write's consistency token.
func TestIamd_Scenarios(t *testing.T) {
	for _, file := range scenarioFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var sc scenario
		if err := json.Unmarshal(data, &sc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		if strings.Contains(file, "shared") {
			name = "shared/" + name
		}
		t.Run(name, func(t *testing.T) {
			m := daemontest.Start(t, "")
			r := &runner{t: t, m: m, admin: daemontest.AdminClient(t, m), ids: map[string]string{}, tokens: map[string]string{}, hrns: map[string]string{}}
			for i, st := range sc.Steps {
				r.step(i, st)
			}
		})
	}
}

type runner struct {
	t      *testing.T
	m      *daemon.Main
	admin  *daemontest.Client
	ids    map[string]string // label → id
	tokens map[string]string // app label → access token
	hrns   map[string]string // project policy label → its HRN, which member assignments name
	last   string            // consistency token of the last write
	n      int
}

func (r *runner) realm() string { return r.m.Bootstrap.Realm }

func (r *runner) id(label string) string {
	if id, ok := r.ids[label]; ok {
		return id
	}
	r.t.Fatalf("unknown label %q", label)
	return ""
}

func (r *runner) expand(s string) string {
	s = strings.ReplaceAll(s, "{realm}", r.realm())
	for label, id := range r.ids {
		s = strings.ReplaceAll(s, "{project:"+label+"}", "hrn:here:authorization::"+r.realm()+":project/"+id)
		s = strings.ReplaceAll(s, "{group:"+label+"}", "hrn:here:authorization::"+r.realm()+":group/"+id)
		s = strings.ReplaceAll(s, "{app:"+label+"}", "hrn:here:account::"+r.realm()+":app/"+id)
	}
	return s
}

func (r *runner) step(i int, st step) {
	t := r.t
	t.Helper()
	c := r.admin
	if st.By != "" {
		tok, ok := r.tokens[st.By]
		if !ok {
			t.Fatalf("step %d: no credentials for %q", i, st.By)
		}
		c = &daemontest.Client{TB: t, Base: daemontest.URL(r.m), Token: tok}
	}
	var method, path string
	var body any
	r.n++
	switch st.Op {
	case "user":
		method, path, body = "POST", "/v1/users", map[string]any{"email": fmt.Sprintf("%s-%d@example.com", st.As, r.n), "name": st.As}
	case "app":
		method, path, body = "POST", "/v1/apps", map[string]any{"name": st.As}
	case "group":
		method, path, body = "POST", "/v1/groups", map[string]any{"name": st.As}
	case "project":
		method, path, body = "POST", "/v1/projects", map[string]any{"name": st.As}
	case "policy":
		method, path, body = "POST", "/v1/policies", map[string]any{"name": st.As, "statements": r.statements(st)}
	case "project-policy":
		method, path, body = "POST", "/v1/projects/"+r.id(st.Project)+"/policies", map[string]any{"name": st.As, "statements": r.statements(st)}
	case "project-unpolicy":
		method, path = "DELETE", "/v1/projects/"+r.id(st.Project)+"/policies/"+r.id(st.Policy)
	case "project-defaults":
		method, path, body = "PATCH", "/v1/projects/"+r.id(st.Project), map[string]any{"defaultMemberPolicies": r.memberPolicies(st)}
	case "plan":
		pols := []string{}
		for _, p := range st.Policies {
			pols = append(pols, r.id(p))
		}
		method, path, body = "POST", "/v1/plans", map[string]any{"name": st.As, "policies": pols}
	case "attach-plan":
		method, path = "PUT", "/v1/plans/"+r.id(st.Plan)+"/attachments/"+r.id(st.To)
	case "detach-plan":
		method, path = "DELETE", "/v1/plans/"+r.id(st.Plan)+"/attachments/"+r.id(st.From)
	case "attach":
		method, path = "PUT", "/v1/policies/"+r.id(st.Policy)+"/attachments/"+r.id(st.To)
	case "detach":
		method, path = "DELETE", "/v1/policies/"+r.id(st.Policy)+"/attachments/"+r.id(st.From)
	case "member":
		method, path = "PUT", "/v1/groups/"+r.id(st.Group)+"/members/"+r.id(st.Identity)
	case "unmember":
		method, path = "DELETE", "/v1/groups/"+r.id(st.Group)+"/members/"+r.id(st.Identity)
	case "role":
		method, path = "PUT", "/v1/identities/"+r.id(st.Identity)+"/roles/"+st.Role
	case "unrole":
		method, path = "DELETE", "/v1/identities/"+r.id(st.Identity)+"/roles/"+st.Role
	case "project-member":
		method, path, body = "PUT", "/v1/projects/"+r.id(st.Project)+"/members/"+r.id(st.Identity), map[string]any{"policies": r.memberPolicies(st)}
	case "project-unmember":
		method, path = "DELETE", "/v1/projects/"+r.id(st.Project)+"/members/"+r.id(st.Identity)
	case "project-resource":
		method, path, body = "PUT", "/v1/projects/"+r.id(st.Project)+"/resources/"+url.PathEscape(r.expand(st.Resource)), map[string]any{"relation": st.Relation}
	case "project-unresource":
		method, path = "DELETE", "/v1/projects/"+r.id(st.Project)+"/resources/"+url.PathEscape(r.expand(st.Resource))
	case "deactivate", "reactivate":
		status := map[string]string{"deactivate": "deactivated", "reactivate": "active"}[st.Op]
		method, path, body = "PATCH", "/v1/users/"+r.id(st.User), map[string]any{"status": status}
	case "delete":
		method, path = "DELETE", "/v1/users/"+r.id(st.User)
	case "credentials":
		method, path = "POST", "/v1/apps/"+r.id(st.App)+"/credentials"
	case "manager", "unmanager":
		method = map[string]string{"manager": "PUT", "unmanager": "DELETE"}[st.Op]
		path = r.managedPath(st) + "/managers/" + r.id(st.Identity)
	case "share", "unshare":
		method = map[string]string{"share": "PUT", "unshare": "DELETE"}[st.Op]
		path = "/v1/apps/" + r.id(st.App) + "/shares/" + r.id(st.Identity)
	case "linkable":
		method, path, body = "PATCH", "/v1/projects/"+r.id(st.Project)+"/resources/"+url.PathEscape(r.expand(st.Resource)), map[string]any{"linkable": st.Linkable}
	case "check":
		r.check(i, st)
		return
	default:
		t.Fatalf("step %d: unknown op %q", i, st.Op)
	}
	resp := c.Do(method, path, body)
	wantStatus := st.ExpectStatus
	if wantStatus == 0 && st.ExpectCode == "" {
		wantStatus = map[string]int{"POST": 201}[method]
		if wantStatus == 0 {
			wantStatus = 200
		}
		if st.Op == "credentials" {
			wantStatus = 201
		}
	}
	if wantStatus != 0 && resp.Status != wantStatus {
		t.Fatalf("step %d (%s %s): got %d %s, want %d", i, st.Op, st.As, resp.Status, resp.Raw, wantStatus)
	}
	if st.ExpectCode != "" {
		if got := resp.Str("code"); got != st.ExpectCode {
			t.Fatalf("step %d (%s): got code %q (%d %s), want %q", i, st.Op, got, resp.Status, resp.Raw, st.ExpectCode)
		}
		return
	}
	if resp.Status >= 300 {
		return
	}
	tok := resp.Str("consistencyToken")
	if tok == "" || resp.Header.Get("Consistency-Token") != tok {
		t.Fatalf("step %d: write answered without a consistency token: %s", i, resp.Raw)
	}
	r.last = tok
	if st.As != "" {
		r.ids[st.As] = resp.Str("id")
	}
	if st.Op == "project-policy" {
		r.hrns[st.As] = resp.Str("hrn")
	}
	if st.Op == "credentials" {
		r.tokens[st.App] = daemontest.ClientToken(t, daemontest.URL(r.m), resp.Str("clientId"), resp.Str("clientSecret"), "")
	}
}

// statements are a policy step's statements, labels expanded.
func (r *runner) statements(st step) []any {
	var stmts []any
	for _, raw := range st.Statements {
		var v any
		_ = json.Unmarshal([]byte(r.expand(string(raw))), &v)
		stmts = append(stmts, v)
	}
	return stmts
}

// memberPolicies are the policies a step gives project members: a realm
// policy by id, a project policy by its HRN.
func (r *runner) memberPolicies(st step) []string {
	pols := []string{}
	for _, p := range st.Policies {
		if hrn, ok := r.hrns[p]; ok {
			pols = append(pols, hrn)
		} else {
			pols = append(pols, r.id(p))
		}
	}
	return pols
}

// managedPath is the path of the app, group or project a manager step
// names.
func (r *runner) managedPath(st step) string {
	switch {
	case st.App != "":
		return "/v1/apps/" + r.id(st.App)
	case st.Group != "":
		return "/v1/groups/" + r.id(st.Group)
	}
	return "/v1/projects/" + r.id(st.Project)
}

func (r *runner) check(i int, st step) {
	t := r.t
	t.Helper()
	req := map[string]any{"subject": r.id(st.Subject), "action": st.Action, "resource": r.expand(st.Resource),
		"consistency": map[string]any{"mode": "at_least_as_fresh", "token": r.last, "waitMs": 5000}}
	if st.Scope != "" {
		req["scope"] = "hrn:here:authorization::" + r.realm() + ":project/" + r.id(st.Scope)
	}
	lastSeq, err := api.ParseToken("t", r.last)
	if err != nil {
		t.Fatal(err)
	}
	for _, region := range r.m.Config.Regions {
		c := *r.admin
		c.Region = region
		resp := c.Must(http.StatusOK, "POST", "/v1/check", req)
		allowed, _ := resp.Body["allowed"].(bool)
		if st.Expect == nil || allowed != *st.Expect {
			t.Errorf("step %d: check %s %s %s scope=%q in %s: got allowed=%v (%s), want %v",
				i, st.Subject, st.Action, st.Resource, st.Scope, region, allowed, resp.Str("reason"), *st.Expect)
		}
		if resp.Str("region") != region {
			t.Errorf("step %d: answered by %q, want %q", i, resp.Str("region"), region)
		}
		seq, err := api.ParseToken("t", resp.Str("consistencyToken"))
		if err != nil || seq < lastSeq {
			t.Errorf("step %d: evaluated at %s, before the write's token %s", i, resp.Str("consistencyToken"), r.last)
		}
	}
}
