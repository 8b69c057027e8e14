package iam_test

import (
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

const argon = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"

func TestDecide_Limits(t *testing.T) {
	readA := []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("a")}}}
	tests := []struct {
		name  string
		setup func(w *world) // lowers a limit and fills up to it
		cmd   iam.Command    // one too many
		want  []string       // message parts naming the limit
	}{
		{"RolesPerIdentity", func(w *world) {
			w.s.Limits.RolesPerIdentity = 2
			w.user("u")
			w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleOrgInviter})
			w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleProjectAdmin})
		}, iam.GrantRole{Identity: "u", Role: iam.RoleOrgAdmin}, []string{"at most 2 roles"}},
		{"MembersPerGroup", func(w *world) {
			w.s.Limits.MembersPerGroup = 2
			w.group("g")
			for _, id := range ids("u", 3) {
				w.user(id)
			}
			w.do("", iam.AddMember{Group: "g", Identity: "u0"})
			w.do("", iam.AddMember{Group: "g", Identity: "u1"})
		}, iam.AddMember{Group: "g", Identity: "u2"}, []string{"at most 2 members"}},
		{"GroupsPerIdentity", func(w *world) {
			w.s.Limits.GroupsPerIdentity = 2
			w.user("u")
			for _, g := range ids("g", 3) {
				w.group(g)
			}
			w.do("", iam.AddMember{Group: "g0", Identity: "u"})
			w.do("", iam.AddMember{Group: "g1", Identity: "u"})
		}, iam.AddMember{Group: "g2", Identity: "u"}, []string{"at most 2 groups"}},
		{"GroupsPerIdentity app", func(w *world) {
			w.s.Limits.GroupsPerIdentity = 1
			w.app("a")
			w.group("g0")
			w.group("g1")
			w.do("", iam.AddMember{Group: "g0", Identity: "a"})
		}, iam.AddMember{Group: "g1", Identity: "a"}, []string{"at most 1 groups"}},
		{"ProjectsPerIdentity user", func(w *world) {
			w.s.Limits.ProjectsPerIdentity = 2
			w.user("u")
			for _, p := range ids("proj", 3) {
				w.project(p)
			}
			w.do("", iam.SetProjectMember{Project: "proj0", Member: "u"})
			w.do("", iam.SetProjectMember{Project: "proj1", Member: "u"})
		}, iam.SetProjectMember{Project: "proj2", Member: "u"}, []string{"at most 2 projects"}},
		{"ProjectsPerIdentity group", func(w *world) {
			w.s.Limits.ProjectsPerIdentity = 2
			w.group("g")
			for _, p := range ids("proj", 3) {
				w.project(p)
			}
			w.do("", iam.SetProjectMember{Project: "proj0", Member: "g"})
			w.do("", iam.SetProjectMember{Project: "proj1", Member: "g"})
		}, iam.SetProjectMember{Project: "proj2", Member: "g"}, []string{"at most 2 projects"}},
		{"IdentitiesPerProject", func(w *world) {
			w.s.Limits.IdentitiesPerProject = 2
			w.project("proj")
			w.user("u0")
			w.app("a1")
			w.user("u2")
			w.do("", iam.SetProjectMember{Project: "proj", Member: "u0"})
			w.do("", iam.SetProjectMember{Project: "proj", Member: "a1"})
		}, iam.SetProjectMember{Project: "proj", Member: "u2"}, []string{"at most 2 users and apps"}},
		{"IdentitiesPerProject ignores groups", func(w *world) {
			w.s.Limits.IdentitiesPerProject = 1
			w.project("proj")
			w.group("g0")
			w.group("g1")
			w.user("u0")
			w.user("u1")
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g0"})
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g1"})
			w.do("", iam.SetProjectMember{Project: "proj", Member: "u0"})
		}, iam.SetProjectMember{Project: "proj", Member: "u1"}, []string{"at most 1 users and apps"}},
		{"GroupsPerProject", func(w *world) {
			w.s.Limits.GroupsPerProject = 2
			w.project("proj")
			w.user("u")
			for _, g := range ids("g", 3) {
				w.group(g)
			}
			w.do("", iam.SetProjectMember{Project: "proj", Member: "u"}) // users do not count
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g0"})
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g1"})
		}, iam.SetProjectMember{Project: "proj", Member: "g2"}, []string{"at most 2 groups"}},
		{"GroupsPerProject after a group left", func(w *world) {
			w.s.Limits.GroupsPerProject = 1
			w.project("proj")
			w.group("g0")
			w.group("g1")
			w.group("g2")
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g0"})
			w.do("", iam.RemoveProjectMember{Project: "proj", Member: "g0"})
			w.do("", iam.SetProjectMember{Project: "proj", Member: "g1"})
		}, iam.SetProjectMember{Project: "proj", Member: "g2"}, []string{"at most 1 groups"}},
		{"ResourcesPerProject", func(w *world) {
			w.s.Limits.ResourcesPerProject = 2
			w.project("proj")
			w.do("", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationHome})
			w.do("", iam.AddProjectResource{Project: "proj", HRN: data("b"), Relation: iam.RelationHome})
		}, iam.AddProjectResource{Project: "proj", HRN: data("c"), Relation: iam.RelationHome}, []string{"at most 2 resources"}},
		{"ResourcesPerProject counts links", func(w *world) {
			w.s.Limits.ResourcesPerProject = 1
			w.project("home1")
			w.project("home2")
			w.project("proj")
			w.do("", iam.AddProjectResource{Project: "home1", HRN: data("a"), Relation: iam.RelationHome})
			w.do("", iam.AddProjectResource{Project: "home2", HRN: data("b"), Relation: iam.RelationHome})
			w.do("", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationLink})
		}, iam.AddProjectResource{Project: "proj", HRN: data("b"), Relation: iam.RelationLink}, []string{"at most 1 resources"}},
		{"AppsPerManager created", func(w *world) {
			w.s.Limits.AppsPerManager = 2
			w.user("u")
			w.do("", iam.CreateApp{ID: "a0", Name: "A", Owner: "u"})
			w.do("", iam.CreateApp{ID: "a1", Name: "A", Owner: "u"})
		}, iam.CreateApp{ID: "a2", Name: "A", Owner: "u"}, []string{"a user manages at most 2 apps"}},
		{"AppsPerManager added", func(w *world) {
			w.s.Limits.AppsPerManager = 1
			w.user("u")
			w.do("", iam.CreateApp{ID: "a0", Name: "A", Owner: "u"})
			w.app("a1")
			w.do("", iam.CreateGroup{ID: "g", Name: "G", Creator: "u"}) // groups and projects do not count
			w.do("", iam.CreateProject{ID: "proj", Name: "P", Creator: "u"})
		}, iam.AddManager{Entity: iam.ManagedRef{Kind: iam.ManagedApp, ID: "a1"}, Manager: "u"}, []string{"a user manages at most 1 apps"}},
		{"AppsPerManager after a removal", func(w *world) {
			w.s.Limits.AppsPerManager = 1
			w.user("u")
			w.user("v")
			w.do("", iam.CreateApp{ID: "a0", Name: "A", Owner: "u"})
			w.do("", iam.AddManager{Entity: iam.ManagedRef{Kind: iam.ManagedApp, ID: "a0"}, Manager: "v"})
			w.do("", iam.RemoveManager{Entity: iam.ManagedRef{Kind: iam.ManagedApp, ID: "a0"}, Manager: "u"})
			w.do("", iam.CreateApp{ID: "a1", Name: "A", Owner: "u"}) // the freed slot
		}, iam.CreateApp{ID: "a2", Name: "A", Owner: "u"}, []string{"a user manages at most 1 apps"}},
		{"LinksPerResource", func(w *world) {
			w.s.Limits.LinksPerResource = 2
			for _, p := range ids("proj", 4) {
				w.project(p)
			}
			w.do("", iam.AddProjectResource{Project: "proj0", HRN: data("a"), Relation: iam.RelationHome})
			w.do("", iam.AddProjectResource{Project: "proj1", HRN: data("a"), Relation: iam.RelationLink})
			w.do("", iam.AddProjectResource{Project: "proj2", HRN: data("a"), Relation: iam.RelationLink})
		}, iam.AddProjectResource{Project: "proj3", HRN: data("a"), Relation: iam.RelationLink}, []string{"at most 2 projects"}},
		{"PoliciesPerProjectMember", func(w *world) {
			w.s.Limits.PoliciesPerProjectMember = 2
			w.project("proj")
			w.user("u")
			for _, p := range ids("p", 3) {
				w.do("", iam.CreatePolicy{ID: p, Name: p, Statements: readA})
			}
			w.do("", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p0", "p1"}})
		}, iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p0", "p1", "p2"}}, []string{"at most 2 project policies"}},
		{"PermissionsPerPolicy", func(w *world) {
			w.s.Limits.PermissionsPerPolicy = 4
			w.do("", iam.CreatePolicy{ID: "ok", Name: "ok", Statements: []iam.Statement{
				{Effect: iam.Allow, Actions: []string{"read", "write"}, Resources: []string{data("a"), data("b")}}}})
		}, iam.CreatePolicy{ID: "p", Name: "p", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read", "write", "list"}, Resources: []string{data("a"), data("b")}}}},
			[]string{"at most 4 permissions", "6"}},
		{"PermissionsPerPolicy across statements", func(w *world) {
			w.s.Limits.PermissionsPerPolicy = 2
		}, iam.CreatePolicy{ID: "p", Name: "p", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("a"), data("b")}},
			{Effect: iam.Deny, Actions: []string{"read"}, Resources: []string{data("c")}}}},
			[]string{"at most 2 permissions"}},
		{"StatementsPerPolicy", func(w *world) {
			w.s.Limits.StatementsPerPolicy = 2
		}, iam.CreatePolicy{ID: "p", Name: "p", Statements: []iam.Statement{readA[0], readA[0], readA[0]}},
			[]string{"at most 2 statements"}},
		{"CredentialsPerApp", func(w *world) {
			w.s.Limits.CredentialsPerApp = 2
			w.app("a")
			w.do("", iam.AddCredential{App: "a", CredentialID: "c0", ClientID: "client0", SecretHash: argon})
			w.do("", iam.AddCredential{App: "a", CredentialID: "c1", ClientID: "client1", SecretHash: argon})
		}, iam.AddCredential{App: "a", CredentialID: "c2", ClientID: "client2", SecretHash: argon}, []string{"at most 2 active credentials"}},
		{"APIKeysPerApp", func(w *world) {
			w.s.Limits.APIKeysPerApp = 2
			w.app("a")
			w.do("", iam.AddAPIKey{App: "a", KeyID: "k0", KeyHash: argon})
			w.do("", iam.AddAPIKey{App: "a", KeyID: "k1", KeyHash: argon})
		}, iam.AddAPIKey{App: "a", KeyID: "k2", KeyHash: argon}, []string{"at most 2 API keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			tt.setup(w)
			seq := w.s.Seq()
			evs, err := w.try("", tt.cmd)
			if evs != nil {
				t.Fatalf("events: got %v, want none", evs)
			}
			wantError(t, err, iam.ELimitExceeded, "")
			wantMessage(t, err, append([]string{"limit exceeded"}, tt.want...)...)
			if got := w.s.Seq(); got != seq {
				t.Fatalf("seq: got %d, want %d", got, seq)
			}
		})
	}
}

// TestDecide_LimitsDefault fills a group and an identity to HERE IAM's
// published limits: 500 members per group, 50 groups per identity.
func TestDecide_LimitsDefault(t *testing.T) {
	w := newWorld(t)
	if got, want := w.s.Limits.MembersPerGroup, 500; got != want {
		t.Fatalf("default MembersPerGroup: got %d, want %d", got, want)
	}
	if got, want := w.s.Limits.GroupsPerIdentity, 50; got != want {
		t.Fatalf("default GroupsPerIdentity: got %d, want %d", got, want)
	}
	w.group("big")
	users := ids("u", 501)
	for _, u := range users {
		w.user(u)
	}
	for _, u := range users[:500] {
		w.do("", iam.AddMember{Group: "big", Identity: u})
	}
	_, err := w.try("", iam.AddMember{Group: "big", Identity: users[500]})
	wantError(t, err, iam.ELimitExceeded, "")
	wantMessage(t, err, "at most 500 members")
	// Re-adding a member of a full group is still a no-op, not a limit.
	if evs := w.do("", iam.AddMember{Group: "big", Identity: users[0]}); len(evs) != 0 {
		t.Fatalf("re-add to a full group: got %v, want no events", evs)
	}

	groups := ids("g", 51)
	for _, g := range groups {
		w.group(g)
	}
	for _, g := range groups[:50] {
		w.do("", iam.AddMember{Group: g, Identity: users[500]})
	}
	_, err = w.try("", iam.AddMember{Group: groups[50], Identity: users[500]})
	wantError(t, err, iam.ELimitExceeded, "")
	wantMessage(t, err, "at most 50 groups")

	// Leaving makes room again.
	w.do("", iam.RemoveMember{Group: "big", Identity: users[0]})
	w.do("", iam.RemoveMember{Group: groups[0], Identity: users[500]})
	w.do("", iam.AddMember{Group: "big", Identity: users[500]})
	if got := w.s.Identity(realm, users[500]).Groups.Len(); got != 50 {
		t.Fatalf("groups of %s: got %d, want 50", users[500], got)
	}
	if got := w.s.Realm(realm).Groups["big"].Members.Len(); got != 500 {
		t.Fatalf("members of big: got %d, want 500", got)
	}
}

// TestDecide_ProjectMemberUpdateWithinLimits: changing the policies of an
// existing member does not count it again.
func TestDecide_ProjectMemberUpdateWithinLimits(t *testing.T) {
	w := newWorld(t)
	w.s.Limits.IdentitiesPerProject = 1
	w.s.Limits.GroupsPerProject = 1
	w.s.Limits.ProjectsPerIdentity = 1
	w.project("proj")
	w.user("u")
	w.group("g")
	w.policy("p", iam.Allow, []string{"read"}, data("a"))
	w.do("", iam.SetProjectMember{Project: "proj", Member: "u"})
	w.do("", iam.SetProjectMember{Project: "proj", Member: "g"})
	if evs := w.do("", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p"}}); len(evs) != 1 {
		t.Fatalf("update user: got %d events, want 1", len(evs))
	}
	if evs := w.do("", iam.SetProjectMember{Project: "proj", Member: "g", Policies: []string{"p"}}); len(evs) != 1 {
		t.Fatalf("update group: got %d events, want 1", len(evs))
	}
}

func TestDecide_NotFound(t *testing.T) {
	setup := func(t *testing.T) *world {
		w := newWorld(t)
		w.user("u")
		w.user("gone")
		w.do("", iam.DeleteIdentity{ID: "gone"})
		w.app("a")
		w.group("g")
		w.project("proj")
		w.policy("p", iam.Allow, []string{"read"}, data("a"))
		return w
	}
	tests := []struct {
		name  string
		cmd   iam.Command
		field string
	}{
		{"status of unknown", iam.SetIdentityStatus{ID: "nobody", Status: iam.StatusDeactivated}, "id"},
		{"status of deleted", iam.SetIdentityStatus{ID: "gone", Status: iam.StatusActive}, "id"},
		{"delete unknown", iam.DeleteIdentity{ID: "nobody"}, "id"},
		{"delete deleted", iam.DeleteIdentity{ID: "gone"}, "id"},
		{"credential of unknown app", iam.AddCredential{App: "nobody", CredentialID: "c", ClientID: "cl", SecretHash: argon}, "app"},
		{"credential of a user", iam.AddCredential{App: "u", CredentialID: "c", ClientID: "cl", SecretHash: argon}, "app"},
		{"remove unknown credential", iam.RemoveCredential{App: "a", CredentialID: "c"}, "credentialId"},
		{"remove credential of unknown app", iam.RemoveCredential{App: "nobody", CredentialID: "c"}, "app"},
		{"API key of unknown app", iam.AddAPIKey{App: "nobody", KeyID: "k", KeyHash: argon}, "app"},
		{"API key of a user", iam.AddAPIKey{App: "u", KeyID: "k", KeyHash: argon}, "app"},
		{"remove unknown API key", iam.RemoveAPIKey{App: "a", KeyID: "k"}, "keyId"},
		{"member of unknown group", iam.AddMember{Group: "nope", Identity: "u"}, "group"},
		{"unknown member", iam.AddMember{Group: "g", Identity: "nobody"}, "identityId"},
		{"deleted member", iam.AddMember{Group: "g", Identity: "gone"}, "identityId"},
		{"unmember of unknown group", iam.RemoveMember{Group: "nope", Identity: "u"}, "group"},
		{"role of unknown", iam.GrantRole{Identity: "nobody", Role: iam.RoleOrgAdmin}, "identityId"},
		{"role of deleted", iam.GrantRole{Identity: "gone", Role: iam.RoleOrgAdmin}, "identityId"},
		{"revoke of unknown", iam.RevokeRole{Identity: "nobody", Role: iam.RoleOrgAdmin}, "identityId"},
		{"attach unknown policy", iam.AttachPolicy{Policy: "nope", Target: "u"}, "policy"},
		{"attach to unknown", iam.AttachPolicy{Policy: "p", Target: "nobody"}, "target"},
		{"attach to deleted", iam.AttachPolicy{Policy: "p", Target: "gone"}, "target"},
		{"detach unknown policy", iam.DetachPolicy{Policy: "nope", Target: "u"}, "policy"},
		{"member of unknown project", iam.SetProjectMember{Project: "nope", Member: "u"}, "project"},
		{"project member with unknown policy", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p", "nope"}}, "policies[1]"},
		{"unknown project member", iam.SetProjectMember{Project: "proj", Member: "nobody"}, "identityOrGroupId"},
		{"deleted project member", iam.SetProjectMember{Project: "proj", Member: "gone"}, "identityOrGroupId"},
		{"unmember of unknown project", iam.RemoveProjectMember{Project: "nope", Member: "u"}, "project"},
		{"resource of unknown project", iam.AddProjectResource{Project: "nope", HRN: data("a"), Relation: iam.RelationHome}, "project"},
		{"unresource of unknown project", iam.RemoveProjectResource{Project: "nope", HRN: data("a")}, "project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t)
			evs, err := w.try("", tt.cmd)
			if evs != nil {
				t.Fatalf("events: got %v, want none", evs)
			}
			wantError(t, err, iam.ENotFound, tt.field)
		})
	}
	t.Run("unknown realm", func(t *testing.T) {
		w := setup(t)
		_, err := iam.Decide(w.s, iam.Request{Realm: "nope", At: time.Now(), Command: iam.CreateGroup{ID: "g", Name: "G"}})
		wantError(t, err, iam.ENotFound, "")
	})
}

func TestDecide_Conflict(t *testing.T) {
	setup := func(t *testing.T) *world {
		w := newWorld(t)
		w.user("u")
		w.app("a")
		w.group("g")
		w.project("proj")
		w.project("other")
		w.policy("p", iam.Allow, []string{"read"}, data("a"))
		w.do("", iam.AddCredential{App: "a", CredentialID: "c", ClientID: "client", SecretHash: argon})
		w.do("", iam.AddAPIKey{App: "a", KeyID: "k", KeyHash: argon})
		w.do("", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationHome})
		w.do("", iam.AddProjectResource{Project: "other", HRN: data("a"), Relation: iam.RelationLink})
		w.user("gone")
		w.do("", iam.DeleteIdentity{ID: "gone"})
		return w
	}
	tests := []struct {
		name  string
		cmd   iam.Command
		field string
	}{
		{"realm", iam.CreateRealm{ID: realm, Name: "Again"}, ""},
		{"user id", iam.CreateUser{ID: "u", Email: "new@example.com", Name: "N"}, ""},
		{"user id of an app", iam.CreateUser{ID: "a", Email: "new@example.com", Name: "N"}, ""},
		{"user id of a deleted user", iam.CreateUser{ID: "gone", Email: "new@example.com", Name: "N"}, ""},
		{"email", iam.CreateUser{ID: "u2", Email: "u@example.com", Name: "N"}, "email"},
		{"email in another case", iam.CreateUser{ID: "u2", Email: "U@Example.COM", Name: "N"}, "email"},
		{"app id", iam.CreateApp{ID: "a", Name: "N"}, ""},
		{"app id of a user", iam.CreateApp{ID: "u", Name: "N"}, ""},
		{"group id", iam.CreateGroup{ID: "g", Name: "N"}, ""},
		{"policy id", iam.CreatePolicy{ID: "p", Name: "N", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"x"}, Resources: []string{data("b")}}}}, ""},
		{"project id", iam.CreateProject{ID: "proj", Name: "N"}, ""},
		{"client id", iam.AddCredential{App: "a", CredentialID: "c2", ClientID: "client", SecretHash: argon}, ""},
		{"second home", iam.AddProjectResource{Project: "other", HRN: data("a"), Relation: iam.RelationHome}, ""},
		{"home as link", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationLink}, ""},
		{"remove a linked home", iam.RemoveProjectResource{Project: "proj", HRN: data("a")}, ""},
		// Groups and identities are both targets of attachments and project
		// memberships by bare id, so their ids must not collide.
		{"group id of a user", iam.CreateGroup{ID: "u", Name: "N"}, ""},
		{"group id of an app", iam.CreateGroup{ID: "a", Name: "N"}, ""},
		{"user id of a group", iam.CreateUser{ID: "g", Email: "new@example.com", Name: "N"}, ""},
		{"app id of a group", iam.CreateApp{ID: "g", Name: "N"}, ""},
		// A credential or key id names one secret; reusing it must not
		// silently replace the secret (and leave the old client id behind).
		{"credential id", iam.AddCredential{App: "a", CredentialID: "c", ClientID: "client2", SecretHash: argon}, ""},
		{"API key id", iam.AddAPIKey{App: "a", KeyID: "k", KeyHash: argon}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t)
			evs, err := w.try("", tt.cmd)
			if evs != nil {
				t.Fatalf("events: got %v, want none", evs)
			}
			wantError(t, err, iam.EConflict, tt.field)
		})
	}
}

// TestDecide_EmailFreedByDelete: deleting a user frees its email, not its id.
func TestDecide_EmailFreedByDelete(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.do("", iam.DeleteIdentity{ID: "u"})
	if got := w.s.UserByEmail(realm, "u@example.com"); got != nil {
		t.Fatalf("UserByEmail after delete: got %+v, want nil", got)
	}
	w.do("", iam.CreateUser{ID: "u2", Email: "U@example.com", Name: "Again"})
	if got := w.s.UserByEmail(realm, "u@EXAMPLE.com"); got == nil || got.ID != "u2" {
		t.Fatalf("UserByEmail: got %+v, want u2", got)
	}
	if got := w.s.Identity(realm, "u").Status; got != iam.StatusDeleted {
		t.Fatalf("tombstone status: got %q, want %q", got, iam.StatusDeleted)
	}
}

func TestDecide_Invalid(t *testing.T) {
	stmt := func(e iam.Effect, actions []string, resources ...string) []iam.Statement {
		return []iam.Statement{{Effect: e, Actions: actions, Resources: resources}}
	}
	read := []string{"read"}
	tests := []struct {
		name  string
		cmd   iam.Command
		field string
	}{
		{"realm id", iam.CreateRealm{ID: "bad id", Name: "R"}, "realm"},
		{"realm name", iam.CreateRealm{ID: "r9", Name: ""}, "name"},
		{"user name empty", iam.CreateUser{ID: "x", Email: "x@example.com", Name: ""}, "name"},
		{"user name blank", iam.CreateUser{ID: "x", Email: "x@example.com", Name: " \t "}, "name"},
		{"user name control", iam.CreateUser{ID: "x", Email: "x@example.com", Name: "a\x01b"}, "name"},
		{"user name too long", iam.CreateUser{ID: "x", Email: "x@example.com", Name: strings.Repeat("é", iam.MaxNameLength+1)}, "name"},
		{"user name invalid UTF-8", iam.CreateUser{ID: "x", Email: "x@example.com", Name: "a\xffb"}, "name"},
		{"email empty", iam.CreateUser{ID: "x", Email: "", Name: "X"}, "email"},
		{"email no at", iam.CreateUser{ID: "x", Email: "example.com", Name: "X"}, "email"},
		{"email with display name", iam.CreateUser{ID: "x", Email: "X <x@example.com>", Name: "X"}, "email"},
		{"email too long", iam.CreateUser{ID: "x", Email: strings.Repeat("a", 250) + "@example.com", Name: "X"}, "email"},
		{"user id empty", iam.CreateUser{ID: "", Email: "x@example.com", Name: "X"}, "id"},
		{"user id space", iam.CreateUser{ID: "a b", Email: "x@example.com", Name: "X"}, "id"},
		{"user id slash", iam.CreateUser{ID: "a/b", Email: "x@example.com", Name: "X"}, "id"},
		{"user id NUL", iam.CreateUser{ID: "a\x00b", Email: "x@example.com", Name: "X"}, "id"},
		{"user id too long", iam.CreateUser{ID: strings.Repeat("a", 65), Email: "x@example.com", Name: "X"}, "id"},
		{"app name", iam.CreateApp{ID: "x", Name: ""}, "name"},
		{"app redirect http", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://example.com/cb"}}, "redirectUris"},
		{"app redirect fragment", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"https://example.com/cb#f"}}, "redirectUris"},
		{"app redirect bare scheme", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"https://"}}, "redirectUris"},
		{"app redirect localhost look-alike", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://localhost.evil.example/cb"}}, "redirectUris"},
		{"app redirect 127 look-alike", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://127.0.0.1.evil.example/cb"}}, "redirectUris"},
		{"app redirect ::1 look-alike", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://[::1]evil.example/cb"}}, "redirectUris"},
		{"app redirect loopback user info", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://localhost@evil.example/cb"}}, "redirectUris"},
		{"app redirect unparseable", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"https://%zz"}}, "redirectUris"},
		{"app redirect https no host", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"https:///cb"}}, "redirectUris"},
		{"app redirect bad port", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"http://127.0.0.1:99999/cb"}}, "redirectUris"},
		{"app redirect relative", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{"/cb"}}, "redirectUris"},
		{"app too many redirects", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: make([]string, 11)}, "redirectUris"},
		{"app id", iam.CreateApp{ID: "x y", Name: "X"}, "id"},
		{"status", iam.SetIdentityStatus{ID: "u", Status: "sleeping"}, "status"},
		{"status deleted", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeleted}, "status"},
		{"client id", iam.AddCredential{App: "a", CredentialID: "c", ClientID: "bad id", SecretHash: argon}, "clientId"},
		{"credential id empty", iam.AddCredential{App: "a", CredentialID: "", ClientID: "cl", SecretHash: argon}, "credentialId"},
		{"credential id NUL", iam.AddCredential{App: "a", CredentialID: "c\x00x\x00y", ClientID: "cl", SecretHash: argon}, "credentialId"},
		{"key id", iam.AddAPIKey{App: "a", KeyID: "k\x00", KeyHash: argon}, "keyId"},
		{"group name", iam.CreateGroup{ID: "x", Name: ""}, "name"},
		{"group id", iam.CreateGroup{ID: "", Name: "X"}, "id"},
		{"role", iam.GrantRole{Identity: "u", Role: "God"}, "role"},
		{"policy name", iam.CreatePolicy{ID: "x", Name: "", Statements: stmt(iam.Allow, read, data("a"))}, "name"},
		{"policy id", iam.CreatePolicy{ID: "x.y", Name: "X", Statements: stmt(iam.Allow, read, data("a"))}, "id"},
		{"no statements", iam.CreatePolicy{ID: "x", Name: "X"}, "statements"},
		{"bad effect", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt("permit", read, data("a"))}, "statements[0].effect"},
		{"empty effect", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt("", read, data("a"))}, "statements[0].effect"},
		{"upper-case effect", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt("Allow", read, data("a"))}, "statements[0].effect"},
		{"no actions", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, nil, data("a"))}, "statements[0].actions"},
		{"no resources", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read)}, "statements[0].resources"},
		{"empty action", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, []string{"read", ""}, data("a"))}, "statements[0].actions[1]"},
		{"action pattern", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, []string{"re*"}, data("a"))}, "statements[0].actions[0]"},
		{"action digit first", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, []string{"1read"}, data("a"))}, "statements[0].actions[0]"},
		{"action too long", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, []string{strings.Repeat("a", iam.MaxActionLength+1)}, data("a"))}, "statements[0].actions[0]"},
		{"bad pattern", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, data("a"), "hrn:*")}, "statements[0].resources[1]"},
		{"other realm's prefix", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, data("a"), "hrn:here:data::r2:*")}, "statements[0].resources[1]"},
		{"realm prefix without colon", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, "hrn:here:data::"+realm+"*")}, "statements[0].resources[0]"},
		{"service prefix", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, "hrn:here:*")}, "statements[0].resources[0]"},
		{"inner star", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, "hrn:here:data::r1:*a")}, "statements[0].resources[0]"},
		{"not an HRN", iam.CreatePolicy{ID: "x", Name: "X", Statements: stmt(iam.Allow, read, "cat-1")}, "statements[0].resources[0]"},
		{"second statement", iam.CreatePolicy{ID: "x", Name: "X", Statements: append(stmt(iam.Allow, read, data("a")), iam.Statement{Effect: iam.Deny, Actions: []string{"*"}, Resources: []string{"*"}})}, "statements[1].resources[0]"},
		{"project id short", iam.CreateProject{ID: "abc", Name: "X"}, "id"},
		{"project id long", iam.CreateProject{ID: strings.Repeat("a", 17), Name: "X"}, "id"},
		{"project id chars", iam.CreateProject{ID: "abc/d", Name: "X"}, "id"},
		{"project name", iam.CreateProject{ID: "abcd", Name: ""}, "name"},
		{"project policy id", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"bad id"}}, "policies[0]"},
		{"project policy twice", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p", "p"}}, "policies[1]"},
		{"relation", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: "owner"}, "relation"},
		{"resource HRN", iam.AddProjectResource{Project: "proj", HRN: "cat-1", Relation: iam.RelationHome}, "hrn"},
		{"resource pattern", iam.AddProjectResource{Project: "proj", HRN: data("*"), Relation: iam.RelationHome}, "hrn"},
		{"unresource HRN", iam.RemoveProjectResource{Project: "proj", HRN: "x"}, "hrn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.user("u")
			w.app("a")
			w.project("proj")
			w.policy("p", iam.Allow, []string{"read"}, data("a"))
			evs, err := w.try("", tt.cmd)
			if evs != nil {
				t.Fatalf("events: got %v, want none", evs)
			}
			wantError(t, err, iam.EInvalid, tt.field)
		})
	}
}

func TestDecide_PermissionDenied(t *testing.T) {
	w := newWorld(t)
	w.user("admin")
	w.user("u")
	w.app("ops")

	// Scenario 10: an app needs a role to manage the realm.
	_, err := w.try("ops", iam.CreateGroup{ID: "g-denied", Name: "G"})
	wantError(t, err, iam.EPermissionDenied, "")
	wantMessage(t, err, iam.ActionCreateGroup, iam.RealmHRN(realm))
	w.do("", iam.GrantRole{Identity: "ops", Role: iam.RoleOrgAdmin})
	w.do("ops", iam.CreateGroup{ID: "g-ok", Name: "G"})
	w.do("", iam.RevokeRole{Identity: "ops", Role: iam.RoleOrgAdmin})
	_, err = w.try("ops", iam.CreateGroup{ID: "g-denied-again", Name: "G"})
	wantError(t, err, iam.EPermissionDenied, "")

	// An OrgAdmin may do everything in the realm.
	w.do("", iam.GrantRole{Identity: "admin", Role: iam.RoleOrgAdmin})
	for _, cmd := range []iam.Command{
		iam.CreateUser{ID: "u2", Email: "u2@example.com", Name: "U2"},
		iam.CreateApp{ID: "a2", Name: "A2"},
		iam.CreateGroup{ID: "g2", Name: "G2"},
		iam.AddMember{Group: "g2", Identity: "u2"},
		iam.CreatePolicy{ID: "p2", Name: "P2", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("a")}}}},
		iam.AttachPolicy{Policy: "p2", Target: "g2"},
		iam.GrantRole{Identity: "u2", Role: iam.RoleOrgInviter},
		iam.CreateProject{ID: "proj2", Name: "P"},
		iam.SetProjectMember{Project: "proj2", Member: "u2", Policies: []string{"p2"}},
		iam.AddProjectResource{Project: "proj2", HRN: data("a"), Relation: iam.RelationHome},
		iam.AddCredential{App: "a2", CredentialID: "c", ClientID: "cl-a2", SecretHash: argon},
		iam.SetIdentityStatus{ID: "u2", Status: iam.StatusDeactivated},
		iam.DeleteIdentity{ID: "a2"},
	} {
		if _, err := w.try("admin", cmd); err != nil {
			t.Fatalf("OrgAdmin %T: got %v, want success", cmd, err)
		}
	}

	// Only the system creates realms.
	_, err = w.try("admin", iam.CreateRealm{ID: "r2", Name: "R2"})
	wantError(t, err, iam.EPermissionDenied, "")

	// A deactivated, deleted or unknown actor is refused, whatever its roles.
	w.do("admin", iam.SetIdentityStatus{ID: "ops", Status: iam.StatusDeactivated})
	w.do("", iam.GrantRole{Identity: "ops", Role: iam.RoleOrgAdmin})
	_, err = w.try("ops", iam.CreateGroup{ID: "g3", Name: "G"})
	wantError(t, err, iam.EPermissionDenied, "")
	w.do("", iam.SetIdentityStatus{ID: "ops", Status: iam.StatusActive})
	w.do("ops", iam.CreateGroup{ID: "g3", Name: "G"})
	w.do("", iam.DeleteIdentity{ID: "ops"})
	_, err = w.try("ops", iam.CreateGroup{ID: "g4", Name: "G"})
	wantError(t, err, iam.EPermissionDenied, "")
	_, err = w.try("nobody", iam.CreateGroup{ID: "g4", Name: "G"})
	wantError(t, err, iam.EPermissionDenied, "")

	// A policy on one group's HRN allows managing that group only.
	w.group("team")
	w.policy("manage-team", iam.Allow, []string{iam.ActionManageGroup}, iam.GroupHRN(realm, "team"))
	w.do("", iam.AttachPolicy{Policy: "manage-team", Target: "u"})
	w.do("u", iam.AddMember{Group: "team", Identity: "u2"})
	_, err = w.try("u", iam.AddMember{Group: "g2", Identity: "u"})
	wantError(t, err, iam.EPermissionDenied, "")
	wantMessage(t, err, iam.ActionManageGroup, iam.GroupHRN(realm, "g2"))
}

// TestDecide_PermissionBeforeInput: an actor without the right gets
// permission_denied for a bad body, not invalid_argument, nor not_found.
func TestDecide_PermissionBeforeInput(t *testing.T) {
	bad := []iam.Command{
		iam.CreateUser{ID: "bad id", Email: "nope", Name: ""},
		iam.CreateApp{ID: "", Name: "", RedirectURIs: []string{"ftp://x"}},
		iam.CreateGroup{ID: "", Name: ""},
		iam.CreatePolicy{ID: "x", Name: "X", Statements: []iam.Statement{{Effect: "maybe"}}},
		iam.CreateProject{ID: "a", Name: ""},
		iam.GrantRole{Identity: "u", Role: "God"},
		iam.SetIdentityStatus{ID: "u", Status: "sleeping"},
		iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"x", "x"}},
		iam.AddProjectResource{Project: "proj", HRN: "nonsense", Relation: "?"},
		iam.AddMember{Group: "nope", Identity: "nobody"},
		iam.AttachPolicy{Policy: "nope", Target: "nobody"},
	}
	w := newWorld(t)
	w.user("u")
	w.user("mallory")
	w.project("proj")
	for _, cmd := range bad {
		_, err := w.try("mallory", cmd)
		if got := iam.ErrorCode(err); got != iam.EPermissionDenied {
			t.Errorf("%T without rights: got %q (%v), want %q", cmd, got, err, iam.EPermissionDenied)
		}
	}
	w.do("", iam.GrantRole{Identity: "mallory", Role: iam.RoleOrgAdmin})
	for _, cmd := range bad {
		_, err := w.try("mallory", cmd)
		if got := iam.ErrorCode(err); got == iam.EPermissionDenied || err == nil {
			t.Errorf("%T with rights: got %q (%v), want the input judged", cmd, got, err)
		}
	}
}

// TestDecide_RolesDoNotEscalate: a role that manages apps must not let its
// holder give an app (its own) a stronger role than it has.
func TestDecide_RolesDoNotEscalate(t *testing.T) {
	tests := []struct {
		role   string
		target func(w *world) string
	}{
		{iam.RoleResourceManager, func(w *world) string { w.do("rm", iam.CreateApp{ID: "mine", Name: "Mine"}); return "mine" }},
		{iam.RoleResourceManager, func(w *world) string { return "rm" }},
		{iam.RoleProjectAdmin, func(w *world) string { return "rm" }},
		{iam.RoleOrgInviter, func(w *world) string { return "rm" }},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			w := newWorld(t)
			w.app("rm")
			w.do("", iam.GrantRole{Identity: "rm", Role: tt.role})
			target := tt.target(w)
			_, err := w.try("rm", iam.GrantRole{Identity: target, Role: iam.RoleOrgAdmin})
			if got := iam.ErrorCode(err); got != iam.EPermissionDenied {
				t.Fatalf("%s granting OrgAdmin to app %s: got %q (%v), want %q", tt.role, target, got, err, iam.EPermissionDenied)
			}
		})
	}
}

// TestDecide_ProjectCannotCaptureIAMEntities: a project admin must not be
// able to put the realm (or another IAM entity) into a project, which would
// take it out of reach of every unscoped check, OrgAdmins' included.
func TestDecide_ProjectCannotCaptureIAMEntities(t *testing.T) {
	for _, hrn := range []string{
		iam.RealmHRN(realm), iam.UserHRN(realm, "admin"), iam.GroupHRN(realm, "g"),
		iam.PolicyHRN(realm, "p"), iam.ProjectHRN(realm, "other"),
	} {
		t.Run(hrn, func(t *testing.T) {
			w := newWorld(t)
			w.user("admin")
			w.user("pa")
			w.group("g")
			w.project("other")
			w.policy("p", iam.Allow, []string{"read"}, data("a"))
			w.do("", iam.GrantRole{Identity: "admin", Role: iam.RoleOrgAdmin})
			w.do("", iam.GrantRole{Identity: "pa", Role: iam.RoleProjectAdmin})
			w.do("pa", iam.CreateProject{ID: "mine", Name: "Mine"})
			_, err := w.try("pa", iam.AddProjectResource{Project: "mine", HRN: hrn, Relation: iam.RelationHome})
			if got := iam.ErrorCode(err); got != iam.EInvalid {
				t.Errorf("put %s into a project: got %q (%v), want %q", hrn, got, err, iam.EInvalid)
			}
			// Whatever Decide said, the OrgAdmin still manages the realm.
			if _, err := w.try("admin", iam.CreateGroup{ID: "g2", Name: "G2"}); err != nil {
				t.Errorf("OrgAdmin createGroup after: got %v, want success", err)
			}
			if _, err := w.try("admin", iam.GrantRole{Identity: "admin", Role: iam.RoleOrgInviter}); err != nil {
				t.Errorf("OrgAdmin manageRoles after: got %v, want success", err)
			}
		})
	}
}

func TestDecide_NoOps(t *testing.T) {
	setup := func(t *testing.T) *world {
		w := newWorld(t)
		w.user("u")
		w.user("v")
		w.group("g")
		w.project("proj")
		w.policy("p", iam.Allow, []string{"read"}, data("a"))
		w.do("", iam.AddMember{Group: "g", Identity: "u"})
		w.do("", iam.GrantRole{Identity: "u", Role: iam.RoleOrgInviter})
		w.do("", iam.AttachPolicy{Policy: "p", Target: "u"})
		w.do("", iam.AttachPolicy{Policy: "p", Target: "g"})
		w.do("", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p"}})
		w.do("", iam.SetProjectMember{Project: "proj", Member: "g"})
		w.do("", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationHome})
		return w
	}
	tests := []struct {
		name string
		cmd  iam.Command
	}{
		{"add existing member", iam.AddMember{Group: "g", Identity: "u"}},
		{"remove non-member", iam.RemoveMember{Group: "g", Identity: "v"}},
		{"remove unknown member", iam.RemoveMember{Group: "g", Identity: "nobody"}},
		{"grant held role", iam.GrantRole{Identity: "u", Role: iam.RoleOrgInviter}},
		{"revoke unheld role", iam.RevokeRole{Identity: "v", Role: iam.RoleOrgAdmin}},
		{"attach attached to user", iam.AttachPolicy{Policy: "p", Target: "u"}},
		{"attach attached to group", iam.AttachPolicy{Policy: "p", Target: "g"}},
		{"detach non-attached", iam.DetachPolicy{Policy: "p", Target: "v"}},
		{"detach from unknown", iam.DetachPolicy{Policy: "p", Target: "nobody"}},
		{"status unchanged", iam.SetIdentityStatus{ID: "u", Status: iam.StatusActive}},
		{"same project policies", iam.SetProjectMember{Project: "proj", Member: "u", Policies: []string{"p"}}},
		{"same empty project policies", iam.SetProjectMember{Project: "proj", Member: "g", Policies: []string{}}},
		{"remove non project member", iam.RemoveProjectMember{Project: "proj", Member: "v"}},
		{"add present resource", iam.AddProjectResource{Project: "proj", HRN: data("a"), Relation: iam.RelationHome}},
		{"remove absent resource", iam.RemoveProjectResource{Project: "proj", HRN: data("b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t)
			evs, err := w.try("", tt.cmd)
			if err != nil || len(evs) != 0 {
				t.Fatalf("got %v, %v, want no events and no error", evs, err)
			}
		})
	}
}

// TestDecide_DeleteIdentity: deleting removes every edge first, so each event
// applies alone, and leaves a tombstone that no check passes.
func TestDecide_DeleteIdentity(t *testing.T) {
	w := newWorld(t)
	w.app("a")
	w.group("g")
	w.project("proj")
	w.policy("p", iam.Allow, []string{"*"}, data("*"))
	w.do("", iam.AddMember{Group: "g", Identity: "a"})
	w.do("", iam.GrantRole{Identity: "a", Role: iam.RoleOrgAdmin})
	w.do("", iam.AttachPolicy{Policy: "p", Target: "a"})
	w.do("", iam.SetProjectMember{Project: "proj", Member: "a", Policies: []string{"p"}})
	w.do("", iam.AddCredential{App: "a", CredentialID: "c", ClientID: "client-a", SecretHash: argon})
	w.do("", iam.AddAPIKey{App: "a", KeyID: "k", KeyHash: argon})
	if _, _, _, ok := w.s.ClientCredential("client-a"); !ok {
		t.Fatalf("ClientCredential before delete: got none, want one")
	}
	evs := w.do("", iam.DeleteIdentity{ID: "a"})
	var types []string
	for _, e := range evs {
		types = append(types, e.EventType())
	}
	want := "MemberRemoved RoleRevoked PolicyDetached ProjectMemberRemoved CredentialRemoved APIKeyRemoved IdentityDeleted"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("events: got %s, want %s", got, want)
	}
	if _, _, _, ok := w.s.ClientCredential("client-a"); ok {
		t.Fatalf("ClientCredential after delete: got one, want none")
	}
	if g := w.s.Realm(realm).Groups["g"]; g.Members.Len() != 0 {
		t.Fatalf("group members after delete: got %v, want none", g.Members)
	}
	if p := w.s.Realm(realm).Policies["p"]; p.AttachedTo.Len() != 0 || p.InProjects.Len() != 0 {
		t.Fatalf("policy edges after delete: got %v %v, want none", p.AttachedTo, p.InProjects)
	}
	if m := w.s.Realm(realm).Projects["proj"].Members; len(m) != 0 {
		t.Fatalf("project members after delete: got %v, want none", m)
	}
	if _, err := w.s.Permissions(realm, "a"); iam.ErrorCode(err) != iam.ENotFound {
		t.Fatalf("Permissions of deleted: got %v, want not_found", err)
	}
	d := w.check("a", "read", data("x"), "")
	wantAllowed(t, d, false)
}

// TestDecide_Credentials: credentials are found by client id until removed.
func TestDecide_Credentials(t *testing.T) {
	w := newWorld(t)
	w.app("a")
	w.do("", iam.AddCredential{App: "a", CredentialID: "c1", ClientID: "client-1", SecretHash: argon})
	r, app, cred, ok := w.s.ClientCredential("client-1")
	if !ok || r != realm || app.ID != "a" || cred.SecretHash != argon || cred.ClientID != "client-1" {
		t.Fatalf("ClientCredential: got %q %v %+v %v, want %s a %s", r, app, cred, ok, realm, argon)
	}
	w.do("", iam.RemoveCredential{App: "a", CredentialID: "c1"})
	if _, _, _, ok := w.s.ClientCredential("client-1"); ok {
		t.Fatalf("ClientCredential after remove: got one, want none")
	}
	// The client id is free again.
	w.do("", iam.AddCredential{App: "a", CredentialID: "c2", ClientID: "client-1", SecretHash: argon})
	// Secrets must be hashed.
	_, err := w.try("", iam.AddCredential{App: "a", CredentialID: "c3", ClientID: "client-3", SecretHash: "plain"})
	if err == nil {
		t.Fatalf("unhashed secret: got no error, want one")
	}
	_, err = w.try("", iam.AddAPIKey{App: "a", KeyID: "k", KeyHash: "plain"})
	if err == nil {
		t.Fatalf("unhashed API key: got no error, want one")
	}
}

// Loopback redirect URIs name the loopback host exactly, with an optional
// port; https ones any host.
func TestDecide_RedirectURIsAccepted(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://[::1]:53682/", "http://localhost/cb", "http://localhost:3000/a?b=c", "https://app.example.com/cb", "https://app.example.com:8443/cb?x=1"} {
		w := newWorld(t)
		if _, err := w.try("", iam.CreateApp{ID: "x", Name: "X", RedirectURIs: []string{u}}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// The system realm is the first realm created (the bootstrap realm), recorded
// in its event; an entry written before the flag was recorded makes the
// first realm applied the system realm.
func TestDecide_SystemRealm(t *testing.T) {
	w := newWorld(t)
	evs, err := iam.Decide(w.s, iam.Request{Realm: "r2", Command: iam.CreateRealm{ID: "r2", Name: "Realm Two"}})
	if err != nil {
		t.Fatal(err)
	}
	w.apply(evs...)
	if !w.s.SystemRealm(realm) || w.s.SystemRealm("r2") || w.s.SystemRealm("nosuch") {
		t.Fatalf("SystemRealm: got %v %v, want r1 only", w.s.SystemRealm(realm), w.s.SystemRealm("r2"))
	}
	if c := evs[0].(iam.RealmCreated); c.System == nil || *c.System {
		t.Fatalf("the second realm's event: got System %v, want false recorded", c.System)
	}
	legacy := iam.NewState()
	for i, r := range []string{"b", "a"} {
		if err := legacy.ApplyEntry(iam.LogEntry{Seq: uint64(i + 1), Commits: []iam.Commit{{Events: []iam.Event{iam.RealmCreated{InRealm: iam.InRealm{Realm: r}, Name: r}}}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !legacy.SystemRealm("b") || legacy.SystemRealm("a") {
		t.Fatalf("legacy entries: want the first realm applied (b) to be the system realm")
	}
}
