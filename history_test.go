package iam_test

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/iam-project/iam"
)

// TestAccessTracker against a brute-force model: over random histories,
// every entry that flips any check of an identity (any action × resource ×
// scope of the test universe, evaluated by the domain before and after the
// entry) is an access change of that identity, and every change the
// tracker reports at or before From is left out.
func TestAccessTracker(t *testing.T) {
	actions := []string{"read", "write", iam.ActionManageApp, iam.ActionManageGroup, iam.ActionShare}
	reported := 0
	for seed := range uint64(30) {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			w := newWorld(t)
			ident, groups, projects := randomRealm(w, rng)
			resources := universeResources(ident, groups)
			scopes := append([]string{""}, projects...)
			from := uint64(rng.IntN(len(w.log)))
			for _, id := range ident {
				tr := iam.NewAccessTracker(realm, id, from)
				model := iam.NewState()
				for _, e := range w.log {
					var before []bool
					for _, a := range actions {
						for _, res := range resources {
							for _, sc := range scopes {
								before = append(before, model.Check(iam.CheckRequest{Realm: realm, Subject: id, Action: a, Resource: res, Scope: sc}).Allowed)
							}
						}
					}
					if err := model.ApplyEntry(e, nil); err != nil {
						t.Fatal(err)
					}
					if err := tr.Apply(e); err != nil {
						t.Fatal(err)
					}
					flipped, i := "", 0
					for _, a := range actions {
						for _, res := range resources {
							for _, sc := range scopes {
								if model.Check(iam.CheckRequest{Realm: realm, Subject: id, Action: a, Resource: res, Scope: sc}).Allowed != before[i] && flipped == "" {
									flipped = a + " " + res + " scope " + sc
								}
								i++
							}
						}
					}
					var got *iam.AccessChange
					if n := len(tr.Changes); n > 0 && tr.Changes[n-1].Seq == e.Seq {
						got = &tr.Changes[n-1]
					}
					switch {
					case got != nil && e.Seq <= from:
						t.Fatalf("%s: change recorded at %d, at or before from %d", id, e.Seq, from)
					case flipped != "" && e.Seq > from && got == nil:
						t.Fatalf("%s: entry %d (%+v) flips %s, but no access change is recorded", id, e.Seq, e.Commits[0].Events, flipped)
					case got != nil && (len(got.Events) == 0 || len(got.Gained)+len(got.Lost) == 0):
						t.Fatalf("%s: change at %d names no event or no permission: %+v", id, e.Seq, got)
					}
				}
				reported += len(tr.Changes)
			}
		})
	}
	if reported == 0 {
		t.Fatal("no access change over every seed: the test universe is vacuous")
	}
}
