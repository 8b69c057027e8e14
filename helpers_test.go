package iam_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// realm is the realm every test world starts with.
const realm = "r1"

// world is a state under test with the sequence of its next log entry; every
// applied entry is also reported to touch, when set.
type world struct {
	tb    testing.TB
	s     *iam.State
	seq   uint64
	touch iam.Touch
	log   []iam.LogEntry // every entry applied, in order
}

// newWorld returns a state holding realm r1, created by the system.
func newWorld(tb testing.TB) *world {
	tb.Helper()
	w := &world{tb: tb, s: iam.NewState()}
	w.do("", iam.CreateRealm{ID: realm, Name: "Realm One"})
	return w
}

// try decides cmd as actor ("" for the system) and applies its events when
// there is no error.
func (w *world) try(actor string, cmd iam.Command) ([]iam.Event, error) {
	evs, err := iam.Decide(w.s, iam.Request{Realm: realm, Actor: actor, At: time.Unix(1_700_000_000, 0).UTC(), Command: cmd})
	if err == nil && len(evs) > 0 {
		w.apply(evs...)
	}
	return evs, err
}

// do is try that fails the test on error.
func (w *world) do(actor string, cmd iam.Command) []iam.Event {
	w.tb.Helper()
	evs, err := w.try(actor, cmd)
	if err != nil {
		w.tb.Fatalf("decide %T%+v: %v", cmd, cmd, err)
	}
	return evs
}

// apply appends evs as one log entry with one commit.
func (w *world) apply(evs ...iam.Event) {
	w.seq++
	e := iam.LogEntry{Seq: w.seq, Commits: []iam.Commit{{Events: evs}}}
	w.log = append(w.log, e)
	if err := w.s.ApplyEntry(e, w.touch); err != nil {
		w.tb.Fatalf("apply: %v", err)
	}
}

// check asks whether subject may do action on resource (scope: project id).
func (w *world) check(subject, action, resource, scope string) iam.Decision {
	return w.s.Check(iam.CheckRequest{Realm: realm, Subject: subject, Action: action, Resource: resource, Scope: scope})
}

func (w *world) user(id string) {
	w.tb.Helper()
	w.do("", iam.CreateUser{ID: id, Email: id + "@example.com", Name: "User " + id})
}

func (w *world) app(id string) {
	w.tb.Helper()
	w.do("", iam.CreateApp{ID: id, Name: "App " + id})
}

func (w *world) group(id string) {
	w.tb.Helper()
	w.do("", iam.CreateGroup{ID: id, Name: "Group " + id})
}

func (w *world) project(id string) {
	w.tb.Helper()
	w.do("", iam.CreateProject{ID: id, Name: "Project " + id})
}

// policy creates a policy of one statement.
func (w *world) policy(id string, effect iam.Effect, actions []string, resources ...string) {
	w.tb.Helper()
	w.do("", iam.CreatePolicy{ID: id, Name: "Policy " + id, Statements: []iam.Statement{{Effect: effect, Actions: actions, Resources: resources}}})
}

// data is the HRN of a data resource of the test realm.
func data(name string) string { return "hrn:here:data::" + realm + ":" + name }

// wantError fails the test unless err has the code and, when field is not
// empty, names the field.
func wantError(tb testing.TB, err error, code, field string) {
	tb.Helper()
	if got := iam.ErrorCode(err); got != code {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
	if field != "" {
		if got := iam.ErrorField(err); got != field {
			tb.Fatalf("error field: got %q (%v), want %q", got, err, field)
		}
	}
}

// wantMessage fails the test unless the error's message holds every part.
func wantMessage(tb testing.TB, err error, parts ...string) {
	tb.Helper()
	msg := iam.ErrorMessage(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			tb.Fatalf("error message: got %q, want it to contain %q", msg, p)
		}
	}
}

// wantAllowed fails the test unless the decision's outcome is want.
func wantAllowed(tb testing.TB, d iam.Decision, want bool) {
	tb.Helper()
	if d.Allowed != want {
		tb.Fatalf("allowed: got %v (%s), want %v", d.Allowed, d.Reason(), want)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
