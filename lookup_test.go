package iam_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iam-project/iam"
)

// TestState_LookupSubjects checks the lookup against its model on random
// realms: for every (action, resource, scope) of the universe, the subjects
// found are exactly the identities whose check allows, with the check's
// reasons, and paging through them in pages of any size gives the same list.
func TestState_LookupSubjects(t *testing.T) {
	found := 0 // allowed subjects over all seeds: the universe must not be all denials
	actions := []string{"read", "write", iam.ActionManageApp, iam.ActionManageGroup, iam.ActionShare}
	for seed := range uint64(60) {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			w := newWorld(t)
			ident, groups, projects := randomRealm(w, rng)
			resources := universeResources(ident, groups)
			resources = append(resources, "hrn:here:data::other:d0")
			scopes := append([]string{""}, projects...)
			scopes = append(scopes, "nope")
			for _, action := range actions {
				for _, res := range resources {
					for _, scope := range scopes {
						var want []iam.Subject
						for _, id := range ident {
							d := w.check(id, action, res, scope)
							if d.Allowed {
								want = append(want, iam.Subject{ID: id, Kind: w.s.Realm(realm).Identities.Get(id).Kind, Reason: d.Reason()})
							}
						}
						slices.SortFunc(want, func(a, b iam.Subject) int { return strings.Compare(a.ID, b.ID) })
						found += len(want)
						got, more := w.s.LookupSubjects(realm, action, res, scope, "", len(ident)+1)
						if more || !slices.Equal(got, want) {
							t.Fatalf("lookup %s %s scope %q: got %v (more %v), want %v", action, res, scope, got, more, want)
						}
						size := 1 + rng.IntN(3)
						var paged []iam.Subject
						for after := ""; ; {
							page, more := w.s.LookupSubjects(realm, action, res, scope, after, size)
							paged = append(paged, page...)
							if !more {
								break
							}
							if len(page) != size {
								t.Fatalf("lookup %s %s: got a page of %d with more, want %d", action, res, len(page), size)
							}
							after = page[len(page)-1].ID
						}
						if !slices.Equal(paged, want) {
							t.Fatalf("paged lookup %s %s scope %q by %d: got %v, want %v", action, res, scope, size, paged, want)
						}
					}
				}
			}
		})
	}
	if found < 1000 {
		t.Fatalf("got %d allowed subjects over all seeds, want at least 1000", found)
	}
	w := newWorld(t)
	if got, more := w.s.LookupSubjects("nope", "read", data("x"), "", "", 10); got != nil || more {
		t.Fatalf("unknown realm: got %v %v, want nothing", got, more)
	}
}

// randomRealm fills w with a random realm: users and apps (some
// deactivated), groups and memberships, policies of allows and denies on
// exact and prefix patterns attached to identities and groups, plans,
// roles, managers and sharees, projects with members and resources (home
// and links). Commands that Decide refuses are skipped. It returns the
// identities, groups and projects.
func randomRealm(w *world, rng *rand.Rand) (ident, groups, projects []string) {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	nIdent := 4 + rng.IntN(6)
	for i := range nIdent {
		id := "i" + strconv.Itoa(i)
		ident = append(ident, id)
		if rng.IntN(3) == 0 {
			w.app(id)
		} else {
			w.user(id)
		}
	}
	for g := range 1 + rng.IntN(3) {
		id := "g" + strconv.Itoa(g)
		groups = append(groups, id)
		w.group(id)
	}
	for p := range 1 + rng.IntN(2) {
		id := "proj" + strconv.Itoa(p)
		projects = append(projects, id)
		w.project(id)
	}
	members := append(slices.Clone(ident), groups...)
	patterns := []string{data("*"), data("d1*"), data("d2"), data("d3/x"), data("d*"), iam.AppHRN(realm, "*")}
	actionSets := [][]string{{"read"}, {"write"}, {"*"}, {"read", "write"}, {iam.ActionManageApp}}
	var policies []string
	for p := range 4 + rng.IntN(5) {
		id := "pol" + strconv.Itoa(p)
		var st []iam.Statement
		for range 1 + rng.IntN(2) {
			e := iam.Allow
			if rng.IntN(3) == 0 {
				e = iam.Deny
			}
			st = append(st, iam.Statement{Effect: e, Actions: actionSets[rng.IntN(len(actionSets))], Resources: []string{pick(patterns)}})
		}
		if _, err := w.try("", iam.CreatePolicy{ID: id, Name: id, Statements: st}); err == nil {
			policies = append(policies, id)
		}
	}
	if len(policies) == 0 {
		w.policy("pol", iam.Allow, []string{"read"}, data("*"))
		policies = append(policies, "pol")
	}
	w.try("", iam.CreatePlan{ID: "plan", Name: "plan", Policies: []string{pick(policies)}})
	roles := []string{iam.RoleOrgAdmin, iam.RoleResourceManager, iam.RoleProjectAdmin, iam.RoleOrgInviter}
	for i := range 4 { // d4 and d5 stay outside projects
		res := data("d" + strconv.Itoa(i))
		if rng.IntN(2) == 0 {
			res = data("d" + strconv.Itoa(i) + "/x")
		}
		w.try("", iam.AddProjectResource{Project: pick(projects), HRN: res, Relation: iam.RelationHome})
		w.try("", iam.AddProjectResource{Project: pick(projects), HRN: res, Relation: iam.RelationLink})
	}
	for range 10 + rng.IntN(20) {
		switch rng.IntN(9) {
		case 0, 1:
			w.try("", iam.AddMember{Group: pick(groups), Identity: pick(ident)})
		case 2, 3:
			w.try("", iam.AttachPolicy{Policy: pick(policies), Target: pick(members)})
		case 4:
			w.try("", iam.GrantRole{Identity: pick(ident), Role: pick(roles)})
		case 5:
			w.try("", iam.AttachPlan{Plan: "plan", Target: pick(members)})
		case 6:
			pols := []string{pick(policies)}
			if rng.IntN(2) == 0 {
				pols = append(pols, pick(policies))
			}
			w.try("", iam.SetProjectMember{Project: pick(projects), Member: pick(members), Policies: pols})
		case 7:
			if rng.IntN(2) == 0 {
				w.try("", iam.AddManager{Entity: iam.ManagedRef{Kind: iam.ManagedApp, ID: pick(ident)}, Manager: pick(members)})
			} else {
				w.try("", iam.AddManager{Entity: iam.ManagedRef{Kind: iam.ManagedGroup, ID: pick(groups)}, Manager: pick(members)})
			}
		case 8:
			w.try("", iam.ShareApp{App: pick(ident), With: pick(members)})
		}
	}
	for _, id := range ident {
		if rng.IntN(6) == 0 {
			w.try("", iam.SetIdentityStatus{ID: id, Status: iam.StatusDeactivated})
		}
	}
	return ident, groups, projects
}

// universeResources are the resources randomRealm's checks range over:
// data HRNs in and out of projects, and its apps and groups.
func universeResources(ident, groups []string) []string {
	var resources []string
	for i := range 6 {
		resources = append(resources, data("d"+strconv.Itoa(i)), data("d"+strconv.Itoa(i)+"/x"))
	}
	for _, id := range ident {
		resources = append(resources, iam.AppHRN(realm, id))
	}
	for _, g := range groups {
		resources = append(resources, iam.GroupHRN(realm, g))
	}
	return resources
}
