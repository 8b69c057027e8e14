package iam_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/iam-project/iam"
)

// TestDecide_ShareApp: sharing gives the sharee the manager's rights and
// share (direct or through a group); unsharing and deleting take them back.
func TestDecide_ShareApp(t *testing.T) {
	w := ownedWorld(t)
	w.group("team")
	w.do("", iam.AddMember{Group: "team", Identity: "carol"})
	hrn := iam.AppHRN(realm, "a")
	if d := w.check("bob", iam.ActionShare, hrn, ""); d.Allowed {
		t.Fatalf("bob share before: got allowed (%s), want denied", d.Reason())
	}
	_, err := w.try("bob", iam.ShareApp{App: "a", With: "bob"})
	wantError(t, err, iam.EPermissionDenied, "")
	w.do("alice", iam.ShareApp{App: "a", With: "bob"})
	w.do("alice", iam.ShareApp{App: "a", With: "team"})
	if evs := w.do("alice", iam.ShareApp{App: "a", With: "bob"}); len(evs) != 0 {
		t.Errorf("share again: got %v, want no event", evs)
	}
	for _, a := range []string{iam.ActionRead, iam.ActionManageApp, iam.ActionManageUser, iam.ActionShare} {
		if d := w.check("bob", a, hrn, ""); !d.Allowed || d.Reason() != "allowed by share of app/a" {
			t.Errorf("bob %s: got %v %q, want allowed by share of app/a", a, d.Allowed, d.Reason())
		}
		if d := w.check("carol", a, hrn, ""); !d.Allowed || !strings.Contains(d.Reason(), "via group team") {
			t.Errorf("carol %s: got %v %q, want allowed via group team", a, d.Allowed, d.Reason())
		}
	}
	// A manager does not hold share, as HERE has it.
	if d := w.check("alice", iam.ActionShare, hrn, ""); d.Allowed {
		t.Errorf("manager share: got allowed (%s), want denied", d.Reason())
	}
	// A sharee manages, so it re-shares.
	w.do("bob", iam.ShareApp{App: "a", With: "carol"})
	if got, _ := w.s.Shares(realm, "a"); !slices.Equal(got, []string{"bob", "carol", "team"}) {
		t.Errorf("shares: got %v, want [bob carol team]", got)
	}
	perms, _ := w.s.Permissions(realm, "bob")
	n := 0
	for _, p := range perms {
		if p.Source.Kind == iam.SourceShare && p.Resource == hrn {
			n++
		}
	}
	if n != 4 {
		t.Errorf("bob's permissions from the share: got %d, want 4", n)
	}
	w.do("alice", iam.UnshareApp{App: "a", With: "bob"})
	if d := w.check("bob", iam.ActionManageApp, hrn, ""); d.Allowed {
		t.Errorf("after unshare: got allowed (%s), want denied", d.Reason())
	}
	_, err = w.try("alice", iam.ShareApp{App: "a", With: "nobody"})
	wantError(t, err, iam.ENotFound, "identityOrGroupId")
	_, err = w.try("", iam.ShareApp{App: "nosuch", With: "bob"})
	wantError(t, err, iam.ENotFound, "id")
	// Deleting a sharee takes its shares with it.
	evs := w.do("", iam.DeleteIdentity{ID: "carol"})
	if !slices.Contains(evs, iam.Event(iam.AppUnshared{InRealm: iam.InRealm{Realm: realm}, App: "a", With: "carol"})) {
		t.Errorf("delete carol: got %v, want AppUnshared of a", evs)
	}
}

// TestDecide_Link: a link needs share on the resource where it lives: from
// its home project (its managers, or a member policy there granting share)
// or from the realm for a resource outside projects; a resource homed
// elsewhere is not declared home; a not linkable one is not linked.
func TestDecide_Link(t *testing.T) {
	w := ownedWorld(t)
	res, loose := data("cat"), data("loose")
	w.do("alice", iam.AddProjectResource{Project: "proja", HRN: res, Relation: iam.RelationHome})
	link := iam.AddProjectResource{Project: "projb", HRN: res, Relation: iam.RelationLink}

	_, err := w.try("bob", link)
	wantError(t, err, iam.EPermissionDenied, "hrn")
	_, err = w.try("bob", iam.AddProjectResource{Project: "projb", HRN: res, Relation: iam.RelationHome})
	wantError(t, err, iam.EConflict, "relation")
	// A member policy in the home granting share is enough.
	w.policy("sharecat", iam.Allow, []string{iam.ActionShare}, res)
	w.do("alice", iam.SetProjectMember{Project: "proja", Member: "bob", Policies: []string{"sharecat"}})
	w.do("bob", link)
	if evs := w.do("bob", link); len(evs) != 0 {
		t.Errorf("link again: got %v, want no event", evs)
	}
	// The home's manager links it anywhere it manages.
	w.do("alice", iam.CreateProject{ID: "projc", Name: "PC"})
	w.do("alice", iam.AddProjectResource{Project: "projc", HRN: res, Relation: iam.RelationLink})

	// Not linkable: new links refused, old ones stay.
	_, err = w.try("bob", iam.SetResourceLinkable{Project: "projb", HRN: res, Linkable: false})
	wantError(t, err, iam.EConflict, "hrn")
	w.do("alice", iam.SetResourceLinkable{Project: "proja", HRN: res, Linkable: false})
	w.do("alice", iam.CreateProject{ID: "projd", Name: "PD"})
	_, err = w.try("alice", iam.AddProjectResource{Project: "projd", HRN: res, Relation: iam.RelationLink})
	wantError(t, err, iam.EConflict, "hrn")
	if !strings.Contains(err.Error(), "not linkable") {
		t.Errorf("not linkable: got %v, want it named", err)
	}
	pl := w.s.Realm(realm).Resources[res]
	if !pl.Links.Has("projb") || !pl.Links.Has("projc") {
		t.Errorf("links after not linkable: got %v, want projb and projc kept", pl.Links.Sorted())
	}
	w.do("alice", iam.SetResourceLinkable{Project: "proja", HRN: res, Linkable: true})
	w.do("alice", iam.AddProjectResource{Project: "projd", HRN: res, Relation: iam.RelationLink})

	// Outside projects: share from the realm's policies.
	_, err = w.try("bob", iam.AddProjectResource{Project: "projb", HRN: loose, Relation: iam.RelationLink})
	wantError(t, err, iam.EPermissionDenied, "hrn")
	w.policy("shareloose", iam.Allow, []string{iam.ActionShare}, loose)
	w.do("", iam.AttachPolicy{Policy: "shareloose", Target: "bob"})
	w.do("bob", iam.AddProjectResource{Project: "projb", HRN: loose, Relation: iam.RelationLink})
	// Linked from the realm, it is still the realm's to share, and no
	// project takes it home.
	w.do("bob", iam.CreateProject{ID: "projb2", Name: "PB2"})
	w.do("bob", iam.AddProjectResource{Project: "projb2", HRN: loose, Relation: iam.RelationLink})
	_, err = w.try("alice", iam.AddProjectResource{Project: "proja", HRN: loose, Relation: iam.RelationHome})
	wantError(t, err, iam.EConflict, "relation")
}
