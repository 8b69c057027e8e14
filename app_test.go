package iam_test

import (
	"reflect"
	"testing"

	"github.com/iam-project/iam"
)

// TestDecide_SetDefaultProject: an app's default project must be a project
// of its realm that the app is a member of, directly or through a group;
// setting the same again is no change; "" clears it, and so does deleting
// the app. It needs manageApp on the app.
func TestDecide_SetDefaultProject(t *testing.T) {
	w := newWorld(t)
	w.app("a")
	w.user("u")
	w.group("g")
	w.project("direct")
	w.project("viagroup")
	w.project("elsewhere")
	w.do("", iam.SetProjectMember{Project: "direct", Member: "a"})
	w.do("", iam.AddMember{Group: "g", Identity: "a"})
	w.do("", iam.SetProjectMember{Project: "viagroup", Member: "g"})
	in := iam.InRealm{Realm: realm}

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name        string
			actor       string
			cmd         iam.SetDefaultProject
			code, field string
		}{
			{"not a member", "", iam.SetDefaultProject{App: "a", Project: "elsewhere"}, iam.EConflict, "defaultProject"},
			{"unknown project", "", iam.SetDefaultProject{App: "a", Project: "nosuch"}, iam.ENotFound, "defaultProject"},
			{"malformed project", "", iam.SetDefaultProject{App: "a", Project: "bad id!"}, iam.EInvalid, "defaultProject"},
			{"a user", "", iam.SetDefaultProject{App: "u", Project: "direct"}, iam.ENotFound, "id"},
			{"without manageApp", "u", iam.SetDefaultProject{App: "a", Project: "direct"}, iam.EPermissionDenied, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := w.try(tt.actor, tt.cmd)
				wantError(t, err, tt.code, tt.field)
			})
		}
	})
	for _, project := range []string{"direct", "viagroup", ""} {
		if got, want := w.do("", iam.SetDefaultProject{App: "a", Project: project}), []iam.Event{iam.DefaultProjectSet{InRealm: in, App: "a", Project: project}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("set %q: got %v, want %v", project, got, want)
		}
		if got := w.s.Identity(realm, "a").AppState().DefaultProject; got != project {
			t.Fatalf("after setting %q: got %q", project, got)
		}
		if evs := w.do("", iam.SetDefaultProject{App: "a", Project: project}); len(evs) != 0 {
			t.Fatalf("set %q again: got %v, want no events", project, evs)
		}
	}

	w.do("", iam.SetDefaultProject{App: "a", Project: "direct"})
	evs := w.do("", iam.DeleteIdentity{ID: "a"})
	if got, want := evs[len(evs)-2:], []iam.Event{iam.DefaultProjectSet{InRealm: in, App: "a"}, iam.IdentityDeleted{InRealm: in, ID: "a"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("delete: got %v last, want %v", got, want)
	}
}
