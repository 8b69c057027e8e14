package iam_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// TestState_Clone: a clone shares no map, slice or pointer with its
// original, at every step of a state that holds one of each event type's
// effects, so applying to one never changes the other; and it answers
// alike.
func TestState_Clone(t *testing.T) {
	s := iam.NewState()
	s.TrackIdempotency = true
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, e := range everyEvent() {
		seq := uint64(i + 1)
		entry := iam.LogEntry{Seq: seq, Commits: []iam.Commit{{IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", At: at, Events: []iam.Event{e}}}}
		if err := s.ApplyEntry(entry, nil); err != nil {
			t.Fatalf("apply %s: %v", e.EventType(), err)
		}
		c := s.Clone()
		if c.Seq() != s.Seq() || c.Limits != s.Limits || c.TrackIdempotency != s.TrackIdempotency {
			t.Fatalf("after %s: clone seq %d limits %v, want %d %v", e.EventType(), c.Seq(), c.Limits, s.Seq(), s.Limits)
		}
		if !reflect.DeepEqual(c, s) {
			t.Fatalf("after %s: the clone differs from its original", e.EventType())
		}
		noneShared(t, e.EventType(), reflect.ValueOf(s), reflect.ValueOf(c))
	}
	// Applying to the clone leaves the original as it was.
	c := s.Clone()
	want := s.Check(iam.CheckRequest{Realm: realm, Subject: "a", Action: "read", Resource: data("x")})
	for _, e := range everyEvent()[2:8] {
		if err := c.ApplyEvents([]iam.Event{e}, nil); err != nil {
			t.Fatalf("apply %s to the clone: %v", e.EventType(), err)
		}
	}
	ca := c.Realm(realm).Identities.Get("a")
	iam.AddToSet(&ca.Groups, "g")
	if got := s.Check(iam.CheckRequest{Realm: realm, Subject: "a", Action: "read", Resource: data("x")}); got != want {
		t.Errorf("original after changing the clone: got %v, want %v", got, want)
	}
	if s.Realm(realm).Identities.Get("a").Groups.Has("g") {
		t.Error("original's identity changed with the clone's")
	}
}

// noneShared fails for each non-empty map, slice or non-nil pointer that a
// and b (a's clone) hold at the same address.
func noneShared(t *testing.T, path string, a, b reflect.Value) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: pointer shared by the clone", path)
			return
		}
		noneShared(t, path, a.Elem(), b.Elem())
	case reflect.Map:
		if a.Len() == 0 {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: map shared by the clone", path)
			return
		}
		for _, k := range a.MapKeys() {
			noneShared(t, fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k))
		}
	case reflect.Slice:
		if a.Len() == 0 {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: slice shared by the clone", path)
			return
		}
		for i := range a.Len() {
			noneShared(t, fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
	case reflect.Struct:
		for i := range a.NumField() {
			noneShared(t, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Interface:
		if !a.IsNil() {
			noneShared(t, path, a.Elem(), b.Elem())
		}
	}
}

// TestPolicyStatements_Compact: a policy keeps its own copy of the
// statements it was created with, equal to them, sized to what it holds
// (decoders grow slices past that) and cut so that an append to one list
// cannot write into the next; a realm's policy and a project's alike.
func TestPolicyStatements_Compact(t *testing.T) {
	roomy := func(ss ...string) []string { return append(make([]string, 0, 10), ss...) }
	statements := func() []iam.Statement {
		st := make([]iam.Statement, 0, 8)
		return append(st,
			iam.Statement{Effect: iam.Allow, Actions: roomy("read", "write"), Resources: roomy(data("x"))},
			iam.Statement{Effect: iam.Deny, Actions: roomy("delete"), Resources: []string{}},
			iam.Statement{Effect: iam.Allow, Actions: roomy("read")},
		)
	}
	in := iam.InRealm{Realm: realm}
	given, givenProject := statements(), statements()
	s := iam.NewState()
	err := s.ApplyEvents([]iam.Event{
		iam.RealmCreated{InRealm: in, Name: "R"},
		iam.PolicyCreated{InRealm: in, ID: "p", Name: "P", Statements: given},
		iam.ProjectCreated{InRealm: in, ID: "proj", Name: "Project"},
		iam.ProjectPolicyCreated{InRealm: in, Project: "proj", ID: "pp", Name: "PP", Statements: givenProject},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Realm(realm)
	for name, kept := range map[string][]iam.Statement{"realm policy": r.Policies["p"].Statements, "project policy": r.Projects["proj"].Policies["pp"].Statements} {
		if !reflect.DeepEqual(kept, statements()) {
			t.Fatalf("%s: kept %#v, want %#v", name, kept, statements())
		}
		if cap(kept) != len(kept) {
			t.Errorf("%s: %d statements in room for %d", name, len(kept), cap(kept))
		}
		for i, st := range kept {
			if cap(st.Actions) != len(st.Actions) || cap(st.Resources) != len(st.Resources) {
				t.Errorf("%s: statement %d keeps %d+%d strings in room for %d+%d", name, i, len(st.Actions), len(st.Resources), cap(st.Actions), cap(st.Resources))
			}
		}
		_ = append(kept[0].Actions, "grown") // must not reach kept[0].Resources
		if kept[0].Resources[0] != data("x") {
			t.Errorf("%s: an append to the actions overwrote the resources: %q", name, kept[0].Resources)
		}
	}
	// The event's slices are not the policy's.
	given[0].Actions[0], givenProject[0].Actions[0] = "changed", "changed"
	if r.Policies["p"].Statements[0].Actions[0] != "read" || r.Projects["proj"].Policies["pp"].Statements[0].Actions[0] != "read" {
		t.Error("a change to the event's statements reached the stored policy")
	}
}
