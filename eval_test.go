package iam_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iam-project/iam"
)

// step is one step of a scenario: a write (cmd, by actor, failing with code
// when code is set) or, when cmd is nil, a check.
type step struct {
	by   string
	cmd  iam.Command
	code string

	subject, action, resource, scope string
	want                             bool
}

func write(cmd iam.Command) step              { return step{cmd: cmd} }
func writeBy(by string, cmd iam.Command) step { return step{by: by, cmd: cmd} }
func fails(by string, cmd iam.Command, code string) step {
	return step{by: by, cmd: cmd, code: code}
}
func check(subject, action, resource, scope string, want bool) step {
	return step{subject: subject, action: action, resource: resource, scope: scope, want: want}
}

func runSteps(t *testing.T, w *world, steps []step) {
	t.Helper()
	for i, st := range steps {
		if st.cmd == nil {
			d := w.check(st.subject, st.action, st.resource, st.scope)
			if d.Allowed != st.want {
				t.Fatalf("step %d: check %s %s %s scope %q: got %v (%s), want %v", i, st.subject, st.action, st.resource, st.scope, d.Allowed, d.Reason(), st.want)
			}
			if d.Reason() == "" {
				t.Fatalf("step %d: check %s %s %s: got an empty reason, want one", i, st.subject, st.action, st.resource)
			}
			continue
		}
		_, err := w.try(st.by, st.cmd)
		if got := iam.ErrorCode(err); got != st.code {
			t.Fatalf("step %d: %T%+v: got code %q (%v), want %q", i, st.cmd, st.cmd, got, err, st.code)
		}
	}
}

func stmts(e iam.Effect, actions []string, resources ...string) []iam.Statement {
	return []iam.Statement{{Effect: e, Actions: actions, Resources: resources}}
}

func user(id string) iam.Command {
	return iam.CreateUser{ID: id, Email: id + "@example.com", Name: id}
}

// TestCheck_Scenarios expresses every scenario of shared/scenarios against
// the domain, in the same order of steps.
func TestCheck_Scenarios(t *testing.T) {
	read, all := []string{"read"}, []string{"*"}
	home, link := iam.RelationHome, iam.RelationLink
	tests := []struct {
		name  string
		steps []step
	}{
		{"01 default deny: a new user can do nothing", []step{
			write(user("u")),
			check("u", "read", data("cat-1"), "", false),
			check("u", "*", data("cat-1"), "", false),
		}},
		{"02 a policy attached to a user allows exactly its actions on its resources", []step{
			write(user("u")),
			write(iam.CreatePolicy{ID: "p", Name: "p", Statements: stmts(iam.Allow, []string{"read", "list"}, data("cat-1"))}),
			write(iam.AttachPolicy{Policy: "p", Target: "u"}),
			check("u", "read", data("cat-1"), "", true),
			check("u", "list", data("cat-1"), "", true),
			check("u", "write", data("cat-1"), "", false),
			check("u", "read", data("cat-2"), "", false),
			write(iam.DetachPolicy{Policy: "p", Target: "u"}),
			check("u", "read", data("cat-1"), "", false),
		}},
		{"03 members inherit a group's policies, and lose them on leaving", []step{
			write(user("u")),
			write(iam.CreateApp{ID: "a", Name: "a"}),
			write(iam.CreateGroup{ID: "g", Name: "g"}),
			write(iam.CreatePolicy{ID: "p", Name: "p", Statements: stmts(iam.Allow, read, data("cat-*"))}),
			write(iam.AttachPolicy{Policy: "p", Target: "g"}),
			write(iam.AddMember{Group: "g", Identity: "u"}),
			write(iam.AddMember{Group: "g", Identity: "a"}),
			check("u", "read", data("cat-7"), "", true),
			check("a", "read", data("cat-7"), "", true),
			write(iam.RemoveMember{Group: "g", Identity: "u"}),
			check("u", "read", data("cat-7"), "", false),
			check("a", "read", data("cat-7"), "", true),
		}},
		{"04 an explicit deny from any source beats every allow", []step{
			write(user("u")),
			write(iam.CreateGroup{ID: "g", Name: "g"}),
			write(iam.CreatePolicy{ID: "allow-all", Name: "allow-all", Statements: stmts(iam.Allow, all, data("*"))}),
			write(iam.CreatePolicy{ID: "deny-secret", Name: "deny-secret", Statements: stmts(iam.Deny, read, data("secret-*"))}),
			write(iam.AttachPolicy{Policy: "allow-all", Target: "u"}),
			check("u", "read", data("secret-1"), "", true),
			write(iam.AttachPolicy{Policy: "deny-secret", Target: "g"}),
			write(iam.AddMember{Group: "g", Identity: "u"}),
			check("u", "read", data("secret-1"), "", false),
			check("u", "write", data("secret-1"), "", true),
			check("u", "read", data("public-1"), "", true),
		}},
		{"05 prefix patterns match prefixes only; * matches every action", []step{
			write(user("u")),
			write(iam.CreatePolicy{ID: "p", Name: "p", Statements: stmts(iam.Allow, all, data("team-a-*"))}),
			write(iam.AttachPolicy{Policy: "p", Target: "u"}),
			check("u", "delete", data("team-a-logs"), "", true),
			check("u", "read", data("team-b-logs"), "", false),
			check("u", "read", data("team-a"), "", false),
			check("u", "read", "hrn:here:service::"+realm+":team-a-logs", "", false),
		}},
		{"06 a deactivated user is denied everything until reactivated; a deleted one for good", []step{
			write(user("u")),
			write(iam.CreatePolicy{ID: "p", Name: "p", Statements: stmts(iam.Allow, read, data("cat-1"))}),
			write(iam.AttachPolicy{Policy: "p", Target: "u"}),
			check("u", "read", data("cat-1"), "", true),
			write(iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated}),
			check("u", "read", data("cat-1"), "", false),
			write(iam.SetIdentityStatus{ID: "u", Status: iam.StatusActive}),
			check("u", "read", data("cat-1"), "", true),
			write(iam.DeleteIdentity{ID: "u"}),
			check("u", "read", data("cat-1"), "", false),
			fails("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusActive}, iam.ENotFound),
			check("u", "read", data("cat-1"), "", false),
		}},
		{"07 project resources are reached only with that project's scope, through project policies", []step{
			write(user("u")),
			write(iam.CreateProject{ID: "proj-p", Name: "P"}),
			write(iam.CreateProject{ID: "proj-q", Name: "Q"}),
			write(iam.CreatePolicy{ID: "read-all", Name: "read-all", Statements: stmts(iam.Allow, read, data("*"))}),
			write(iam.AttachPolicy{Policy: "read-all", Target: "u"}),
			write(iam.AddProjectResource{Project: "proj-p", HRN: data("proj-cat"), Relation: home}),
			check("u", "read", data("proj-cat"), "", false),
			check("u", "read", data("loose-cat"), "", true),
			write(iam.SetProjectMember{Project: "proj-p", Member: "u", Policies: []string{"read-all"}}),
			check("u", "read", data("proj-cat"), "proj-p", true),
			check("u", "read", data("proj-cat"), "", false),
			check("u", "read", data("loose-cat"), "proj-p", false),
			check("u", "read", data("proj-cat"), "proj-q", false),
			write(iam.RemoveProjectMember{Project: "proj-p", Member: "u"}),
			check("u", "read", data("proj-cat"), "proj-p", false),
		}},
		{"08 a group member of a project passes access to its members; a linked resource is reached in the linking project", []step{
			write(user("u")),
			write(iam.CreateGroup{ID: "g", Name: "g"}),
			write(iam.CreateProject{ID: "home", Name: "Home"}),
			write(iam.CreateProject{ID: "other", Name: "Other"}),
			write(iam.CreatePolicy{ID: "read-cat", Name: "read-cat", Statements: stmts(iam.Allow, read, data("shared-cat"))}),
			write(iam.AddProjectResource{Project: "home", HRN: data("shared-cat"), Relation: home}),
			write(iam.AddProjectResource{Project: "other", HRN: data("shared-cat"), Relation: link}),
			write(iam.AddMember{Group: "g", Identity: "u"}),
			write(iam.SetProjectMember{Project: "other", Member: "g", Policies: []string{"read-cat"}}),
			check("u", "read", data("shared-cat"), "other", true),
			check("u", "read", data("shared-cat"), "home", false),
			write(iam.RemoveMember{Group: "g", Identity: "u"}),
			check("u", "read", data("shared-cat"), "other", false),
		}},
		{"09 limits: 5 groups per project; 5 policies per project member", func() []step {
			s := []step{write(iam.CreateProject{ID: "proj-p", Name: "P"}), write(user("u"))}
			for _, g := range ids("g", 6) {
				s = append(s, write(iam.CreateGroup{ID: g, Name: g}))
			}
			for _, g := range ids("g", 5) {
				s = append(s, write(iam.SetProjectMember{Project: "proj-p", Member: g, Policies: []string{}}))
			}
			s = append(s, fails("", iam.SetProjectMember{Project: "proj-p", Member: "g5", Policies: []string{}}, iam.ELimitExceeded))
			for i, p := range ids("p", 6) {
				s = append(s, write(iam.CreatePolicy{ID: p, Name: p, Statements: stmts(iam.Allow, read, data(string(rune('a'+i))))}))
			}
			s = append(s,
				write(iam.SetProjectMember{Project: "proj-p", Member: "u", Policies: ids("p", 5)}),
				fails("", iam.SetProjectMember{Project: "proj-p", Member: "u", Policies: ids("p", 6)}, iam.ELimitExceeded))
			return s
		}()},
		{"10 management calls are authorized too: an app needs a role to manage the realm", []step{
			write(iam.CreateApp{ID: "ops", Name: "ops"}),
			write(iam.AddCredential{App: "ops", CredentialID: "c", ClientID: "ops-client", SecretHash: argon}),
			fails("ops", iam.CreateGroup{ID: "g-denied", Name: "g"}, iam.EPermissionDenied),
			write(iam.GrantRole{Identity: "ops", Role: iam.RoleOrgAdmin}),
			writeBy("ops", iam.CreateGroup{ID: "g-ok", Name: "g"}),
			write(iam.RevokeRole{Identity: "ops", Role: iam.RoleOrgAdmin}),
			fails("ops", iam.CreateGroup{ID: "g-denied-again", Name: "g"}, iam.EPermissionDenied),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newWorld(t), tt.steps)
		})
	}
}

// TestCheck_ProjectScope covers the project rules beyond the scenarios.
func TestCheck_ProjectScope(t *testing.T) {
	read := []string{"read"}
	home, link := iam.RelationHome, iam.RelationLink
	runSteps(t, newWorld(t), []step{
		write(user("u")),
		write(user("v")),
		write(iam.CreateGroup{ID: "g", Name: "g"}),
		write(iam.AddMember{Group: "g", Identity: "v"}),
		write(iam.CreateProject{ID: "proj-a", Name: "A"}),
		write(iam.CreateProject{ID: "proj-b", Name: "B"}),
		write(iam.CreatePolicy{ID: "read-all", Name: "r", Statements: stmts(iam.Allow, read, data("*"))}),
		write(iam.CreatePolicy{ID: "deny-x", Name: "d", Statements: stmts(iam.Deny, read, data("x"))}),
		write(iam.AddProjectResource{Project: "proj-a", HRN: data("x"), Relation: home}),
		write(iam.AddProjectResource{Project: "proj-a", HRN: data("y"), Relation: home}),
		write(iam.AddProjectResource{Project: "proj-b", HRN: data("x"), Relation: link}),
		// Realm-wide policies and roles never reach a project resource.
		write(iam.AttachPolicy{Policy: "read-all", Target: "u"}),
		write(iam.GrantRole{Identity: "u", Role: iam.RoleOrgAdmin}),
		check("u", "read", data("x"), "", false),
		check("u", "read", data("x"), "proj-a", false),
		// A member without policies is denied.
		write(iam.SetProjectMember{Project: "proj-a", Member: "u"}),
		check("u", "read", data("x"), "proj-a", false),
		write(iam.SetProjectMember{Project: "proj-a", Member: "u", Policies: []string{"read-all"}}),
		check("u", "read", data("x"), "proj-a", true),
		check("u", "read", data("y"), "proj-a", true),
		// The home project's membership does not reach the link in B, and
		// vice versa a scope B member reaches only B's resources.
		check("u", "read", data("x"), "proj-b", false),
		write(iam.SetProjectMember{Project: "proj-b", Member: "g", Policies: []string{"read-all"}}),
		check("v", "read", data("x"), "proj-b", true),
		check("v", "read", data("y"), "proj-b", false),
		check("v", "read", data("x"), "proj-a", false),
		// A deny given by a group's membership beats a direct allow.
		write(iam.AddMember{Group: "g", Identity: "u"}),
		write(iam.SetProjectMember{Project: "proj-b", Member: "u", Policies: []string{"read-all"}}),
		check("u", "read", data("x"), "proj-b", true),
		write(iam.SetProjectMember{Project: "proj-b", Member: "g", Policies: []string{"read-all", "deny-x"}}),
		check("u", "read", data("x"), "proj-b", false),
		check("v", "read", data("x"), "proj-b", false),
		// Replacing a membership's policies takes the old ones away.
		write(iam.SetProjectMember{Project: "proj-b", Member: "g", Policies: []string{}}),
		check("u", "read", data("x"), "proj-b", true),
		check("v", "read", data("x"), "proj-b", false),
		// Unlinking takes the resource out of B.
		write(iam.RemoveProjectResource{Project: "proj-b", HRN: data("x")}),
		check("u", "read", data("x"), "proj-b", false),
		check("u", "read", data("x"), "proj-a", true),
		// A resource taken out of every project is reached unscoped again.
		write(iam.RemoveProjectResource{Project: "proj-a", HRN: data("x")}),
		check("u", "read", data("x"), "", true),
		check("u", "read", data("x"), "proj-a", false),
		// An unknown scope denies.
		check("u", "read", data("y"), "nope", false),
		// A deactivated member is denied in its projects too.
		write(iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated}),
		check("u", "read", data("y"), "proj-a", false),
	})
}

func TestCheck_Reasons(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.user("idle")
	w.group("g")
	w.project("proj")
	w.do("", iam.AddMember{Group: "g", Identity: "u"})
	w.do("", iam.CreatePolicy{ID: "allow", Name: "a", Statements: []iam.Statement{
		{Effect: iam.Allow, Actions: []string{"write"}, Resources: []string{data("a")}},
		{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("*")}},
	}})
	w.policy("deny", iam.Deny, []string{"read"}, data("secret-*"))
	w.do("", iam.AttachPolicy{Policy: "allow", Target: "u"})
	w.do("", iam.AttachPolicy{Policy: "deny", Target: "g"})
	w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleOrgInviter})
	w.do("", iam.AddProjectResource{Project: "proj", HRN: data("in-proj"), Relation: iam.RelationHome})
	w.do("", iam.SetProjectMember{Project: "proj", Member: "g", Policies: []string{"allow", "deny"}})

	tests := []struct {
		name                        string
		subject, action, res, scope string
		allowed                     bool
		reason                      string
	}{
		{"allow names the policy and statement", "u", "read", data("b"), "", true, "allowed by policy allow statement 1"},
		{"deny names the policy and group", "u", "read", data("secret-1"), "", false, "denied by policy deny statement 0 via group g"},
		{"role", "u", iam.ActionCreateUser, iam.RealmHRN(realm), "", true, "allowed by role OrgInviter statement 0"},
		{"missing allow", "u", "delete", data("b"), "", false, "no statement allows delete on " + data("b")},
		{"missing allow, no policies", "idle", "read", data("b"), "", false, "no statement allows read on " + data("b")},
		{"unknown subject", "nobody", "read", data("b"), "", false, "subject nobody is unknown"},
		{"unscoped project resource", "u", "read", data("in-proj"), "", false, data("in-proj") + " is in project proj"},
		{"scoped allow", "u", "read", data("in-proj"), "proj", true, "allowed by policy allow statement 1 via group g in project proj"},
		{"not in project", "u", "read", data("b"), "proj", false, data("b") + " is not in project proj"},
		{"unknown project", "u", "read", data("b"), "nope", false, "project nope is unknown"},
		{"not a member", "idle", "read", data("in-proj"), "proj", false, "subject idle is not a member of project proj"},
		// u is a member of proj through g, whose policies do not allow delete:
		// the reason is the missing allow, not a missing membership.
		{"member through group, missing allow", "u", "delete", data("in-proj"), "proj", false, "no statement allows delete on " + data("in-proj")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := w.check(tt.subject, tt.action, tt.res, tt.scope)
			if d.Allowed != tt.allowed || !strings.Contains(d.Reason(), tt.reason) {
				t.Fatalf("got %v %q, want %v %q", d.Allowed, d.Reason(), tt.allowed, tt.reason)
			}
		})
	}

	w.do("", iam.SetIdentityStatus{ID: "idle", Status: iam.StatusDeactivated})
	if d := w.check("idle", "read", data("b"), ""); d.Allowed || d.Reason() != "subject idle is deactivated" {
		t.Fatalf("deactivated: got %v %q, want false %q", d.Allowed, d.Reason(), "subject idle is deactivated")
	}
	w.do("", iam.DeleteIdentity{ID: "idle"})
	if d := w.check("idle", "read", data("b"), ""); d.Allowed || d.Reason() != "subject idle is deleted" {
		t.Fatalf("deleted: got %v %q, want false %q", d.Allowed, d.Reason(), "subject idle is deleted")
	}
	d := w.s.Check(iam.CheckRequest{Realm: "nope", Subject: "u", Action: "read", Resource: data("b")})
	if d.Allowed || d.Reason() != "realm nope is unknown" {
		t.Fatalf("unknown realm: got %v %q, want false %q", d.Allowed, d.Reason(), "realm nope is unknown")
	}
}

// TestCheck_DenyWinsEverywhere: a deny from any source beats an allow from
// any other, whatever the order sources are evaluated in.
func TestCheck_DenyWinsEverywhere(t *testing.T) {
	for i := 0; i < 20; i++ { // map order varies between runs
		w := newWorld(t)
		w.user("u")
		for _, g := range ids("g", 5) {
			w.group(g)
			w.do("", iam.AddMember{Group: g, Identity: "u"})
			w.policy("allow-"+g, iam.Allow, []string{"*"}, "hrn:here:account::"+realm+":*", data("*"))
			w.do("", iam.AttachPolicy{Policy: "allow-" + g, Target: g})
		}
		w.policy("deny", iam.Deny, []string{"*"}, iam.RealmHRN(realm))
		w.do("", iam.AttachPolicy{Policy: "deny", Target: "g3"})
		w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleOrgAdmin})
		d := w.check("u", iam.ActionCreateUser, iam.RealmHRN(realm), "")
		if d.Allowed || d.Reason() != "denied by policy deny statement 0 via group g3" {
			t.Fatalf("got %v %q, want false %q", d.Allowed, d.Reason(), "denied by policy deny statement 0 via group g3")
		}
		// The deny applies to management too.
		_, err := w.try("u", iam.CreateUser{ID: "x", Email: "x@example.com", Name: "x"})
		wantError(t, err, iam.EPermissionDenied, "")
		wantAllowed(t, w.check("u", "read", data("a"), ""), true)
	}
}

func TestState_Permissions(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.group("g")
	w.project("proj")
	w.do("", iam.AddMember{Group: "g", Identity: "u"})
	w.policy("a", iam.Allow, []string{"read"}, data("a"))
	w.policy("d", iam.Deny, []string{"read"}, data("d"))
	w.do("", iam.AttachPolicy{Policy: "a", Target: "u"})
	w.do("", iam.AttachPolicy{Policy: "d", Target: "g"})
	w.do("", iam.SetProjectMember{Project: "proj", Member: "g", Policies: []string{"a"}})
	w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleOrgInviter})
	perms, err := w.s.Permissions(realm, "u")
	if err != nil {
		t.Fatalf("Permissions: %v", err)
	}
	var got []string
	for _, p := range perms {
		got = append(got, string(p.Effect)+" "+p.Action+" "+p.Resource+" "+p.Source.Kind+":"+p.Source.ID+" via="+p.Source.Via+" project="+p.Source.Project)
	}
	want := []string{
		"deny read " + data("d") + " policy:d via=g project=",
		"allow read " + data("a") + " policy:a via= project=",
		"allow createUser " + iam.RealmHRN(realm) + " role:OrgInviter via= project=",
		"allow list " + iam.RealmHRN(realm) + " role:OrgInviter via= project=",
		"allow read hrn:here:account::" + realm + ":user/* role:OrgInviter via= project=",
		"allow read " + data("a") + " policy:a via=g project=proj",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Permissions:\ngot\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := w.s.Permissions(realm, "nobody"); iam.ErrorCode(err) != iam.ENotFound {
		t.Fatalf("Permissions of unknown: got %v, want not_found", err)
	}
}

func TestRoles(t *testing.T) {
	defs := iam.Roles(realm)
	var names []string
	for _, d := range defs {
		names = append(names, d.Name)
		if !iam.IsRole(d.Name) || d.Description == "" || len(d.Statements) == 0 {
			t.Errorf("role %s: got %+v, want a described role with statements", d.Name, d)
		}
		for i, st := range d.Statements {
			for j, r := range st.Resources {
				if err := iam.ValidatePattern("r", r); err != nil {
					t.Errorf("role %s statement %d resource %d: got %v, want a valid pattern", d.Name, i, j, err)
				}
			}
		}
	}
	if got, want := strings.Join(names, ","), "OrgAdmin,OrgInviter,ProjectAdmin,ResourceManager"; got != want {
		t.Fatalf("roles: got %s, want %s", got, want)
	}
	if iam.IsRole("orgadmin") {
		t.Fatalf("IsRole(orgadmin): got true, want false")
	}
}

// TestState_GroupPermissions: a group's own attachments and project
// memberships, with the provenance an identity's would have.
func TestState_GroupPermissions(t *testing.T) {
	w := newWorld(t)
	w.group("g")
	w.project("proj")
	w.policy("a", iam.Allow, []string{"read"}, data("a"))
	w.policy("d", iam.Deny, []string{"read"}, data("d"))
	w.do("", iam.AttachPolicy{Policy: "a", Target: "g"})
	w.do("", iam.AttachPolicy{Policy: "d", Target: "g"})
	w.do("", iam.SetProjectMember{Project: "proj", Member: "g", Policies: []string{"a"}})
	perms, err := w.s.GroupPermissions(realm, "g")
	if err != nil {
		t.Fatalf("GroupPermissions: %v", err)
	}
	var got []string
	for _, p := range perms {
		got = append(got, string(p.Effect)+" "+p.Action+" "+p.Resource+" "+p.Source.Kind+":"+p.Source.ID+" via="+p.Source.Via+" project="+p.Source.Project)
	}
	want := []string{
		"deny read " + data("d") + " policy:d via= project=",
		"allow read " + data("a") + " policy:a via= project=",
		"allow read " + data("a") + " policy:a via= project=proj",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("GroupPermissions:\ngot\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tt := range []struct{ realm, group string }{{realm, "nobody"}, {"other", "g"}} {
		if _, err := w.s.GroupPermissions(tt.realm, tt.group); iam.ErrorCode(err) != iam.ENotFound {
			t.Errorf("GroupPermissions(%s, %s): got %v, want not_found", tt.realm, tt.group, err)
		}
	}
}

// TestCheck_AllocatesNothing: a check that reaches the evaluation (allowed
// by a statement, denied by one, or allowed by none) allocates nothing; its
// reason is put into words only when asked for, and says the same as it
// did when it was built at once.
func TestCheck_AllocatesNothing(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.group("g")
	w.do("", iam.AddMember{Group: "g", Identity: "u"})
	w.policy("allow", iam.Allow, []string{"read", "write"}, data("*"))
	w.policy("deny", iam.Deny, []string{"write"}, data("locked"))
	w.do("", iam.AttachPolicy{Policy: "allow", Target: "u"})
	w.do("", iam.AttachPolicy{Policy: "deny", Target: "g"})
	w.project("proj-p")
	w.do("", iam.AddProjectResource{Project: "proj-p", HRN: data("in-p"), Relation: iam.RelationHome})
	// A resource whose home let it go, linked in two projects.
	w.project("proj-r")
	w.project("proj-s")
	w.apply(iam.ProjectResourceAdded{InRealm: iam.InRealm{Realm: realm}, Project: "proj-s", HRN: data("linked"), Relation: iam.RelationLink},
		iam.ProjectResourceAdded{InRealm: iam.InRealm{Realm: realm}, Project: "proj-r", HRN: data("linked"), Relation: iam.RelationLink})
	for _, tt := range []struct {
		subject, action, resource, scope string
		allowed                          bool
		reason                           string
	}{
		{"u", "read", data("a"), "", true, "allowed by policy allow statement 0"},
		{"u", "write", data("locked"), "", false, "denied by policy deny statement 0 via group g"},
		{"u", "delete", data("a"), "", false, "no statement allows delete on " + data("a")},
		// Denials before any statement is read.
		{"nobody", "read", data("a"), "", false, "subject nobody is unknown"},
		{"u", "read", data("in-p"), "", false, data("in-p") + " is in project proj-p: only a check scoped to a project holding it can reach it"},
		{"u", "read", data("linked"), "", false, data("linked") + " is in project proj-r: only a check scoped to a project holding it can reach it"},
		{"u", "read", data("in-p"), "proj-q", false, "project proj-q is unknown"},
		{"u", "read", data("a"), "proj-p", false, data("a") + " is not in project proj-p"},
		{"u", "read", data("in-p"), "proj-p", false, "subject u is not a member of project proj-p (directly or through a group)"},
	} {
		q := iam.CheckRequest{Realm: realm, Subject: tt.subject, Action: tt.action, Resource: tt.resource, Scope: tt.scope}
		var d iam.Decision
		if allocs := testing.AllocsPerRun(100, func() { d = w.s.Check(q) }); allocs != 0 {
			t.Errorf("%s %s %s: %v allocations a check, want 0", tt.subject, tt.action, tt.resource, allocs)
		}
		if d.Allowed != tt.allowed || d.Reason() != tt.reason {
			t.Errorf("%s %s %s: got %v %q, want %v %q", tt.subject, tt.action, tt.resource, d.Allowed, d.Reason(), tt.allowed, tt.reason)
		}
		out, err := json.Marshal(d)
		if want, _ := json.Marshal(map[string]any{"allowed": tt.allowed, "reason": tt.reason}); err != nil || string(out) != string(want) {
			t.Errorf("%s %s %s: JSON %s (%v), want %s", tt.subject, tt.action, tt.resource, out, err, want)
		}
	}
	q := iam.CheckRequest{Realm: "elsewhere", Subject: "u", Action: "read", Resource: data("a")}
	if allocs := testing.AllocsPerRun(100, func() { w.s.Check(q) }); allocs != 0 {
		t.Errorf("unknown realm: %v allocations a check, want 0", allocs)
	}
	if got := w.s.Check(q).Reason(); got != "realm elsewhere is unknown" {
		t.Errorf("unknown realm: reason %q", got)
	}
}
