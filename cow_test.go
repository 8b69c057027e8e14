package iam_test

import (
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// TestState_Snapshot: a snapshot taken at any step of a history holding
// every event type stays exactly the state at that step while its original
// goes on, a later snapshot included; a fork of it, taken on the same
// history, ends where the original ends; and neither's changes reach the
// snapshot. Any apply that changed a shared entity in place, rather than
// through the own* accessors (cow.go), fails here.
func TestState_Snapshot(t *testing.T) {
	evs := everyEvent()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(i int) iam.LogEntry {
		return iam.LogEntry{Seq: uint64(i + 1), Commits: []iam.Commit{{IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", At: at, Events: []iam.Event{evs[i]}}}}
	}
	replay := func(t *testing.T, s *iam.State, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := s.ApplyEntry(entry(i), nil); err != nil {
				t.Fatalf("apply %s: %v", evs[i].EventType(), err)
			}
		}
	}
	fresh := func(t *testing.T, n int) *iam.State {
		s := iam.NewState()
		s.TrackIdempotency = true
		replay(t, s, 0, n)
		return s
	}
	// Clone copies whole with generation 0 throughout: states compared so
	// differ only in what they hold.
	same := func(a, b *iam.State) bool { return reflect.DeepEqual(a.Clone(), b.Clone()) }
	for i := range len(evs) + 1 {
		for _, j := range []int{i, min(i+5, len(evs))} {
			t.Run(fmt.Sprintf("at %d then %d", i, j), func(t *testing.T) {
				s := fresh(t, i)
				first := s.Snapshot(new(sync.Mutex))
				replay(t, s, i, j)
				second := s.Snapshot(new(sync.Mutex))
				forked := first.Fork()
				replay(t, s, j, len(evs))
				replay(t, forked, i, len(evs))
				if want := fresh(t, i); !same(first, want) {
					t.Fatalf("snapshot at %d changed after %s…", i, evs[i:][0].EventType())
				}
				if want := fresh(t, j); !same(second, want) {
					t.Fatalf("snapshot at %d changed", j)
				}
				want := fresh(t, len(evs))
				if !same(s, want) {
					t.Fatal("the original differs from a state that never shared")
				}
				if !same(forked, want) {
					t.Fatal("the fork differs from a state that never shared")
				}
			})
		}
	}
}

// TestState_SnapshotBigSets: a policy's holders and a group's members past
// the small-set size are roaring bitmaps whose chunks a fork shares until it
// changes one. Forks of one snapshot change the same sets at once while
// readers read the snapshot (run with -race); the snapshot stays as it was,
// and each fork ends where a state that never shared ends.
func TestState_SnapshotBigSets(t *testing.T) {
	in := iam.InRealm{Realm: realm}
	users := ids("u", 300)
	base := []iam.Event{
		iam.RealmCreated{InRealm: in, Name: "R"},
		iam.GroupCreated{InRealm: in, ID: "g", Name: "G"},
		iam.PolicyCreated{InRealm: in, ID: "p", Name: "P", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("x")}}}},
	}
	for i, u := range users {
		base = append(base, iam.IdentityCreated{InRealm: in, ID: u, Kind: iam.KindUser, Name: u})
		if i%2 == 0 {
			base = append(base, iam.PolicyAttached{InRealm: in, Policy: "p", Target: u}, iam.MemberAdded{InRealm: in, Group: "g", Identity: u})
		}
	}
	// Fork f detaches and removes every even user from f*50 on, and
	// attaches and adds the odd ones.
	changes := func(f int) []iam.Event {
		var evs []iam.Event
		for i := f * 50; i < len(users); i++ {
			if i%2 == 0 {
				evs = append(evs, iam.PolicyDetached{InRealm: in, Policy: "p", Target: users[i]}, iam.MemberRemoved{InRealm: in, Group: "g", Identity: users[i]})
			} else {
				evs = append(evs, iam.PolicyAttached{InRealm: in, Policy: "p", Target: users[i]}, iam.MemberAdded{InRealm: in, Group: "g", Identity: users[i]})
			}
		}
		return evs
	}
	fresh := func(evs ...[]iam.Event) *iam.State {
		s := iam.NewState()
		for _, e := range evs {
			if err := s.ApplyEvents(e, nil); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	live := fresh(base)
	snap := live.Snapshot(new(sync.Mutex))
	const forks = 4
	got := make([]*iam.State, forks)
	var wg sync.WaitGroup
	for f := range forks {
		wg.Go(func() {
			s := snap.Fork()
			if err := s.ApplyEvents(changes(f), nil); err != nil {
				t.Error(err)
			}
			got[f] = s
		})
	}
	// The live state goes on too, as a replica's does.
	if err := live.ApplyEvents(changes(forks), nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		wg.Go(func() {
			for i, u := range users {
				d := snap.Check(iam.CheckRequest{Realm: realm, Subject: u, Action: "read", Resource: data("x")})
				if d.Allowed != (i%2 == 0) {
					t.Errorf("snapshot: %s allowed %v while forks change", u, d.Allowed)
				}
			}
		})
	}
	wg.Wait()
	same := func(a, b *iam.State) bool { return reflect.DeepEqual(a.Clone(), b.Clone()) }
	if !same(snap, fresh(base)) {
		t.Error("the snapshot changed with its forks")
	}
	for f, s := range got {
		if !same(s, fresh(base, changes(f))) {
			t.Errorf("fork %d differs from a state that never shared", f)
		}
	}
	if !same(live, fresh(base, changes(forks))) {
		t.Error("the live state differs from a state that never shared")
	}
}

// TestState_SnapshotCredentials: the maps of client ids and API key ids
// are shared with snapshots bucket by bucket; credentials and keys added
// after a snapshot, however many, are the live state's alone.
func TestState_SnapshotCredentials(t *testing.T) {
	in := iam.InRealm{Realm: realm}
	evs := []iam.Event{iam.RealmCreated{InRealm: in, Name: "R"}, iam.IdentityCreated{InRealm: in, ID: "a", Kind: iam.KindApp, Name: "A"}}
	add := func(from, to int) []iam.Event {
		var out []iam.Event
		for i := from; i < to; i++ {
			n := strconv.Itoa(i)
			out = append(out, iam.CredentialAdded{InRealm: in, App: "a", CredentialID: "c" + n, ClientID: "client" + n, SecretHash: "h"},
				iam.APIKeyAdded{InRealm: in, App: "a", KeyID: "k" + n, KeyHash: "h"})
		}
		return out
	}
	fresh := func(n int) *iam.State {
		s := iam.NewState()
		if err := s.ApplyEvents(append(evs, add(0, n)...), nil); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := fresh(100)
	snap := s.Snapshot(new(sync.Mutex))
	if err := s.ApplyEvents(add(100, 200), nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(snap.Clone(), fresh(100).Clone()) {
		t.Fatal("the snapshot changed after credentials and keys were added")
	}
	if !reflect.DeepEqual(s.Clone(), fresh(200).Clone()) {
		t.Fatal("the original differs from a state that never shared")
	}
	for i := range 200 {
		n := strconv.Itoa(i)
		_, _, _, inSnap := snap.ClientCredential("client" + n)
		_, _, _, live := s.ClientCredential("client" + n)
		if want := i < 100; inSnap != want || !live {
			t.Fatalf("credential %d: in the snapshot %v, want %v; live %v", i, inSnap, want, live)
		}
	}
}
