package iam

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSet_AddNums: a set built in bulk is the set that adding the same
// ids one at a time makes, whether it started empty or not, with
// duplicates, and on either side of smallSet (a slice or a map).
func TestSet_AddNums(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 7))
	universe := make([]uint32, 4*smallSet)
	for i := range universe {
		universe[i] = names.intern(fmt.Sprintf("add-nums-test-%d", i))
	}
	for round := range 2000 {
		var before []uint32
		if rng.IntN(3) == 0 {
			for range rng.IntN(2 * smallSet) {
				before = append(before, universe[rng.IntN(len(universe))])
			}
		}
		ids := make([]uint32, rng.IntN(3*smallSet))
		for i := range ids {
			ids[i] = universe[rng.IntN(len(universe))]
		}
		var bulk, oneByOne set
		for _, id := range before {
			bulk.addNum(id)
			oneByOne.addNum(id)
		}
		bulk.addNums(ids)
		for _, id := range ids {
			oneByOne.addNum(id)
		}
		if !reflect.DeepEqual(bulk, oneByOne) {
			t.Fatalf("round %d: %d ids in bulk onto %d: got %v, want %v", round, len(ids), len(before), bulk.Sorted(), oneByOne.Sorted())
		}
	}
}

// TestEdgeLoader_AttachTargets: attachments loaded in bulk equal those
// PolicyAttached makes, however the loader was told of the identities —
// in key order, in part, in reverse, or not at all — so the walk (which
// answers only when it holds the target) and the lookup by id agree.
func TestEdgeLoader_AttachTargets(t *testing.T) {
	const realm = "edge-walk"
	users := []string{"u1", "u10", "u2", "u3", "u4", "u5"} // key order
	build := func() *State {
		st := NewState()
		in := InRealm{Realm: realm}
		evs := []Event{RealmCreated{InRealm: in, Name: realm},
			GroupCreated{InRealm: in, ID: "g", Name: "g"},
			PolicyCreated{InRealm: in, ID: "p1", Name: "p1"}, PolicyCreated{InRealm: in, ID: "p2", Name: "p2"}}
		for _, u := range users {
			evs = append(evs, IdentityCreated{InRealm: in, ID: u, Kind: KindUser})
		}
		if err := st.ApplyEvents(evs, nil); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Targets in key order; u4 has none.
	edges := [][2]string{{"g", "p1"}, {"u1", "p1"}, {"u1", "p2"}, {"u10", "p2"}, {"u2", "p1"}, {"u3", "p1"}, {"u3", "p2"}, {"u5", "p2"}}
	want := build()
	for _, e := range edges {
		if err := want.ApplyEvents([]Event{PolicyAttached{InRealm: InRealm{Realm: realm}, Target: e[0], Policy: e[1]}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for name, told := range map[string][]string{
		"all":      users,
		"some":     {"u1", "u3"},
		"reversed": {"u5", "u4", "u3", "u2", "u10", "u1"},
		"unknown":  {"u0", "u1", "zz"},
		"none":     nil,
	} {
		t.Run(name, func(t *testing.T) {
			got := build()
			l := NewEdgeLoader(got)
			for _, u := range told {
				l.IdentityLoaded(realm, got.Realm(realm).Identities.Get(u))
			}
			for _, e := range edges {
				if err := l.Attach([]byte(realm), []byte(e[0]), []byte(e[1])); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Attach([]byte(realm), []byte("u6"), []byte("p1")); err == nil {
				t.Fatal("attached to a missing identity")
			}
			l.Flush()
			gr, wr := got.Realm(realm), want.Realm(realm)
			for _, u := range users {
				if g, w := gr.Identities.Get(u).Policies.Sorted(), wr.Identities.Get(u).Policies.Sorted(); !reflect.DeepEqual(g, w) {
					t.Errorf("%s's policies: got %v, want %v", u, g, w)
				}
			}
			for _, p := range []string{"p1", "p2"} {
				if g, w := gr.Policies[p].AttachedTo.Sorted(), wr.Policies[p].AttachedTo.Sorted(); !reflect.DeepEqual(g, w) {
					t.Errorf("%s attached to %v, want %v", p, g, w)
				}
			}
			if g, w := gr.Groups["g"].Policies.Sorted(), wr.Groups["g"].Policies.Sorted(); !reflect.DeepEqual(g, w) {
				t.Errorf("g's policies: got %v, want %v", g, w)
			}
		})
	}
}

// TestState_LoadIdentities: identities loaded together are the state that
// applying their IdentityCreated events one at a time makes — their maps
// of ids and of emails included, across realms given in turn, onto realms
// that hold identities already — and a realm that does not exist is an
// error.
func TestState_LoadIdentities(t *testing.T) {
	realms := []string{"load-a", "load-b"}
	build := func() *State {
		st := NewState()
		for _, r := range realms {
			in := InRealm{Realm: r}
			if err := st.ApplyEvents([]Event{RealmCreated{InRealm: in, Name: r},
				IdentityCreated{InRealm: in, ID: "first", Kind: KindUser, Email: "First@example.com"}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	var evs []IdentityCreated
	for i := range 3000 {
		e := IdentityCreated{InRealm: InRealm{Realm: realms[i/700%2]}, ID: fmt.Sprintf("u%04d", i), Kind: KindUser}
		switch i % 3 {
		case 0:
			e.Email = fmt.Sprintf("User%d@Example.com", i)
		case 1:
			e.EmailIndex = fmt.Sprintf("index-%d", i)
		}
		evs = append(evs, e)
	}
	want := build()
	for _, e := range evs {
		if err := want.ApplyEvents([]Event{e}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := build()
	ids, err := got.LoadIdentities(evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if id != got.Realm(evs[i].Realm).Identities.Get(evs[i].ID) {
			t.Fatalf("identity %d: returned %+v, not the one its realm holds", i, id)
		}
	}
	for _, r := range realms {
		if g, w := got.Clone().Realm(r), want.Clone().Realm(r); !reflect.DeepEqual(g, w) {
			t.Errorf("realm %s: loaded together differs from one at a time", r)
		}
		if got.Realm(r).emails.Get("user0@example.com") != want.Realm(r).emails.Get("user0@example.com") {
			t.Errorf("realm %s: emails differ", r)
		}
	}
	if _, err := got.LoadIdentities([]IdentityCreated{{InRealm: InRealm{Realm: "nowhere"}, ID: "x"}}); err == nil {
		t.Fatal("loaded an identity into a realm that does not exist")
	}
}
