package iam_test

import (
	"slices"
	"testing"

	"github.com/iam-project/iam"
)

func app(id string) iam.ManagedRef     { return iam.ManagedRef{Kind: iam.ManagedApp, ID: id} }
func group(id string) iam.ManagedRef   { return iam.ManagedRef{Kind: iam.ManagedGroup, ID: id} }
func project(id string) iam.ManagedRef { return iam.ManagedRef{Kind: iam.ManagedProject, ID: id} }

// ownedWorld: alice and bob may create apps and groups and hold the
// ProjectAdmin role; alice has made app a, group g and project proja, bob
// project projb.
func ownedWorld(t *testing.T) *world {
	w := newWorld(t)
	w.user("alice")
	w.user("bob")
	w.user("carol")
	w.policy("creators", iam.Allow, []string{iam.ActionCreateApp, iam.ActionCreateGroup}, iam.RealmHRN(realm))
	for _, u := range []string{"alice", "bob"} {
		w.do("", iam.AttachPolicy{Policy: "creators", Target: u})
		w.do("", iam.GrantRole{Identity: u, Role: iam.RoleProjectAdmin})
	}
	w.do("alice", iam.CreateApp{ID: "a", Name: "A"})
	w.do("alice", iam.CreateGroup{ID: "g", Name: "G"})
	w.do("alice", iam.CreateProject{ID: "proja", Name: "PA"})
	w.do("bob", iam.CreateProject{ID: "projb", Name: "PB"})
	return w
}

func wantManagers(t *testing.T, w *world, m iam.ManagedRef, want ...string) {
	t.Helper()
	got, ok := w.s.Managers(realm, m)
	if !ok || !slices.Equal(got, want) {
		t.Fatalf("managers of %v: got %v (%v), want %v", m, got, ok, want)
	}
}

// TestDecide_CreatorManages: the actor that creates an app, a group or a
// project is its manager, whatever creator the command names; a manager
// acts on what it manages only.
func TestDecide_CreatorManages(t *testing.T) {
	w := ownedWorld(t)
	wantManagers(t, w, app("a"), "alice")
	wantManagers(t, w, group("g"), "alice")
	wantManagers(t, w, project("proja"), "alice")
	wantManagers(t, w, project("projb"), "bob")
	// A caller never names another creator: Decide puts the actor.
	w.do("bob", iam.CreateGroup{ID: "g2", Name: "G2", Creator: "alice"})
	wantManagers(t, w, group("g2"), "bob")
	// The system's own creations have no manager but the realm's roles.
	w.do("", iam.CreateApp{ID: "sys", Name: "Sys"})
	wantManagers(t, w, app("sys"))

	tests := []struct {
		actor string
		cmd   iam.Command
		ok    bool
	}{
		{"alice", iam.AddCredential{App: "a", CredentialID: "c1", ClientID: "client1", SecretHash: argon}, true},
		{"alice", iam.SetIdentityStatus{ID: "a", Status: iam.StatusDeactivated}, true},
		{"bob", iam.AddCredential{App: "a", CredentialID: "c2", ClientID: "client2", SecretHash: argon}, false},
		{"alice", iam.AddMember{Group: "g", Identity: "carol"}, true},
		{"bob", iam.AddMember{Group: "g", Identity: "bob"}, false},
		{"alice", iam.SetProjectMember{Project: "proja", Member: "carol"}, true},
		{"alice", iam.AddProjectResource{Project: "proja", HRN: data("x"), Relation: iam.RelationHome}, true},
		{"bob", iam.SetProjectMember{Project: "proja", Member: "bob"}, false},     // ProjectAdmin, not of pa
		{"alice", iam.SetProjectMember{Project: "projb", Member: "alice"}, false}, // nor alice of projb
		{"bob", iam.SetProjectMember{Project: "projb", Member: "carol"}, true},
		{"bob", iam.CreateProject{ID: "projb2", Name: "PB2"}, true}, // ProjectAdmin keeps createProject
		{"carol", iam.CreateProject{ID: "projc", Name: "PC"}, false},
		{"bob", iam.AddManager{Entity: app("a"), Manager: "bob"}, false},
		{"alice", iam.AddManager{Entity: group("g"), Manager: "bob"}, true},
		{"bob", iam.AddMember{Group: "g", Identity: "bob"}, true}, // now bob manages g too
		// A manager may not reach past what it manages.
		{"alice", iam.GrantRole{Identity: "a", Role: iam.RoleOrgAdmin}, false},
		{"alice", iam.AttachPolicy{Policy: "creators", Target: "g"}, false},
	}
	for _, tt := range tests {
		_, err := w.try(tt.actor, tt.cmd)
		if denied := iam.ErrorCode(err) == iam.EPermissionDenied; denied == tt.ok || (tt.ok && err != nil) {
			t.Errorf("%s %T%+v: got %v, want allowed=%v", tt.actor, tt.cmd, tt.cmd, err, tt.ok)
		}
	}
}

// TestDecide_RealmRolesManageEverything: OrgAdmin and ResourceManager act
// on every app, group and project, and so take over an orphan.
func TestDecide_RealmRolesManageEverything(t *testing.T) {
	for _, role := range []string{iam.RoleOrgAdmin, iam.RoleResourceManager} {
		t.Run(role, func(t *testing.T) {
			w := ownedWorld(t)
			w.user("boss")
			w.do("", iam.GrantRole{Identity: "boss", Role: role})
			w.do("boss", iam.AddCredential{App: "a", CredentialID: "c1", ClientID: "client1", SecretHash: argon})
			w.do("boss", iam.AddMember{Group: "g", Identity: "carol"})
			w.do("boss", iam.SetProjectMember{Project: "projb", Member: "carol"})
			// Orphaned: alice, the only manager of a, g and pa, is deleted.
			w.do("", iam.DeleteIdentity{ID: "alice"})
			for _, m := range []iam.ManagedRef{app("a"), group("g"), project("proja")} {
				wantManagers(t, w, m)
				w.do("boss", iam.AddManager{Entity: m, Manager: "boss"})
				wantManagers(t, w, m, "boss")
			}
		})
	}
}

// TestDecide_Managers: groups manage through their members; the last
// manager is kept; removals and additions are no-ops when already so; an
// app's deletion takes its managers with it.
func TestDecide_Managers(t *testing.T) {
	w := ownedWorld(t)
	w.do("", iam.CreateGroup{ID: "team", Name: "Team"})
	w.do("", iam.AddMember{Group: "team", Identity: "bob"})
	w.do("alice", iam.AddManager{Entity: app("a"), Manager: "team"})
	w.do("bob", iam.AddCredential{App: "a", CredentialID: "c1", ClientID: "client1", SecretHash: argon})
	d := w.check("bob", iam.ActionManageApp, iam.AppHRN(realm, "a"), "")
	if !d.Allowed || d.Reason() != "allowed by manager of app/a via group team" {
		t.Fatalf("bob through team: got %+v, want allowed by manager of app/a via group team", d)
	}
	if evs := w.do("alice", iam.AddManager{Entity: app("a"), Manager: "team"}); len(evs) != 0 {
		t.Fatalf("adding a manager again: got %v, want no events", evs)
	}
	w.do("bob", iam.RemoveManager{Entity: app("a"), Manager: "alice"})
	if evs := w.do("bob", iam.RemoveManager{Entity: app("a"), Manager: "alice"}); len(evs) != 0 {
		t.Fatalf("removing a non-manager: got %v, want no events", evs)
	}
	_, err := w.try("bob", iam.RemoveManager{Entity: app("a"), Manager: "team"})
	wantError(t, err, iam.EConflict, "identityOrGroupId")
	wantMessage(t, err, "team is the last manager of app a")
	wantManagers(t, w, app("a"), "team")

	_, err = w.try("", iam.AddManager{Entity: app("nosuch"), Manager: "bob"})
	wantError(t, err, iam.ENotFound, "")
	_, err = w.try("", iam.AddManager{Entity: app("a"), Manager: "nobody"})
	wantError(t, err, iam.ENotFound, "identityOrGroupId")
	_, err = w.try("", iam.AddManager{Entity: iam.ManagedRef{Kind: "policy", ID: "creators"}, Manager: "bob"})
	wantError(t, err, iam.EInvalid, "kind")

	// An app that manages, deleted: its edges both ways go with it.
	w.do("", iam.CreateApp{ID: "bot", Name: "Bot", Owner: "alice"})
	w.do("alice", iam.AddManager{Entity: project("proja"), Manager: "bot"})
	w.do("", iam.DeleteIdentity{ID: "bot"})
	wantManagers(t, w, project("proja"), "alice")
	if _, ok := w.s.Managers(realm, app("bot")); ok {
		t.Fatalf("managers of a deleted app: got ok, want not found")
	}
}

// TestCheck_ManagerRights: a manager's right shows in checks and in
// effective permissions, and an explicit deny beats it as any allow.
func TestCheck_ManagerRights(t *testing.T) {
	w := ownedWorld(t)
	for _, tt := range []struct {
		subject, action, resource string
		want                      bool
	}{
		{"alice", iam.ActionManageApp, iam.AppHRN(realm, "a"), true},
		{"alice", iam.ActionRead, iam.AppHRN(realm, "a"), true},
		{"alice", "share", iam.AppHRN(realm, "a"), false}, // sharing is not managing
		{"alice", iam.ActionManageGroup, iam.GroupHRN(realm, "g"), true},
		{"alice", iam.ActionManageProject, iam.ProjectHRN(realm, "proja"), true},
		{"alice", iam.ActionManageProject, iam.ProjectHRN(realm, "proja") + ":policy/x", false},
		{"alice", iam.ActionManageProject, iam.ProjectHRN(realm, "projb"), false},
		{"alice", iam.ActionManageApp, "hrn:here:account::r1x:app/a", false}, // another realm's look-alike
		{"bob", iam.ActionManageApp, iam.AppHRN(realm, "a"), false},
	} {
		if got := w.check(tt.subject, tt.action, tt.resource, ""); got.Allowed != tt.want {
			t.Errorf("%s %s %s: got %v (%s), want %v", tt.subject, tt.action, tt.resource, got.Allowed, got.Reason(), tt.want)
		}
	}
	perms, err := w.s.Permissions(realm, "alice")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range perms {
		found = found || p.Source.Kind == iam.SourceManager && p.Action == iam.ActionManageApp && p.Resource == iam.AppHRN(realm, "a")
	}
	if !found {
		t.Errorf("permissions of alice: got %v, want manageApp on app a from manager", perms)
	}
	w.policy("nope", iam.Deny, []string{iam.ActionManageApp}, iam.AppHRN(realm, "a"))
	w.do("", iam.AttachPolicy{Policy: "nope", Target: "alice"})
	wantAllowed(t, w.check("alice", iam.ActionManageApp, iam.AppHRN(realm, "a"), ""), false)
}
