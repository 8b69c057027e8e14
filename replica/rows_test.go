package replica_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// These tests check the row layout against the domain: random histories
// (made with the domain's public API only) are dumped to rows, loaded back
// and replayed incrementally, and must agree row for row and check for check.

// realm is the realm every history and test world starts with.
const realm = "r1"

const (
	argon    = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"
	verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// data is the HRN of a data resource of the test realm.
func data(name string) string { return "hrn:here:data::" + realm + ":" + name }

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// world is a state under test with the sequence of its next log entry; every
// applied entry is also reported to touch, when set.
type world struct {
	tb    testing.TB
	s     *iam.State
	seq   uint64
	touch iam.Touch
}

// newWorld returns a state holding realm r1, created by the system.
func newWorld(tb testing.TB) *world {
	tb.Helper()
	w := &world{tb: tb, s: iam.NewState()}
	w.do(iam.CreateRealm{ID: realm, Name: "Realm One"})
	return w
}

// try decides cmd as the system and applies its events when there is no error.
func (w *world) try(cmd iam.Command) ([]iam.Event, error) {
	w.tb.Helper()
	evs, err := iam.Decide(w.s, iam.Request{Realm: realm, At: time.Unix(1_700_000_000, 0).UTC(), Command: cmd})
	if err == nil && len(evs) > 0 {
		w.seq++
		if err := w.s.ApplyEntry(iam.LogEntry{Seq: w.seq, Commits: []iam.Commit{{Events: evs}}}, w.touch); err != nil {
			w.tb.Fatalf("apply %T: %v", cmd, err)
		}
	}
	return evs, err
}

// do is try that fails the test on error.
func (w *world) do(cmd iam.Command) {
	w.tb.Helper()
	if _, err := w.try(cmd); err != nil {
		w.tb.Fatalf("decide %T%+v: %v", cmd, cmd, err)
	}
}

// randomCommands makes commands over small pools of ids so that they hit
// each other often: most succeed, some fail, some are no-ops. Group ids and
// identity ids are kept apart (see TestDecide_Conflict).
type randomCommands struct {
	rng *rand.Rand
}

func (g randomCommands) pick(prefix string, n int) string {
	return prefix + strconv.Itoa(g.rng.IntN(n))
}

func (g randomCommands) identity() string {
	if g.rng.IntN(3) == 0 {
		return g.pick("a", 6)
	}
	return g.pick("u", 12)
}

func (g randomCommands) member() string {
	if g.rng.IntN(3) == 0 {
		return g.pick("g", 6)
	}
	return g.identity()
}

func (g randomCommands) resource() string { return data(g.pick("res", 10)) }

func (g randomCommands) policyIDs() []string {
	var out []string
	seen := map[string]bool{}
	for range g.rng.IntN(4) {
		p := g.pick("p", 8)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func (g randomCommands) statements() []iam.Statement {
	actions := [][]string{{"read"}, {"read", "write"}, {"*"}, {iam.ActionCreateGroup}, {"list"}}
	resources := [][]string{{data("res1")}, {data("res*")}, {data("*")}, {"hrn:here:account::" + realm + ":*"}, {iam.RealmHRN(realm)}, {data("res2"), data("res3")}}
	var out []iam.Statement
	for range 1 + g.rng.IntN(3) {
		e := iam.Allow
		if g.rng.IntN(4) == 0 {
			e = iam.Deny
		}
		out = append(out, iam.Statement{Effect: e, Actions: actions[g.rng.IntN(len(actions))], Resources: resources[g.rng.IntN(len(resources))]})
	}
	return out
}

// next makes the i-th of n commands: mostly creations early on, mostly
// edges and removals later.
func (g randomCommands) next(i, n int) iam.Command {
	roles := []string{iam.RoleOrgAdmin, iam.RoleOrgInviter, iam.RoleProjectAdmin, iam.RoleResourceManager}
	if g.rng.IntN(5) == 0 {
		return g.authCommand() // sign-in, codes, passwords, invitations: auth_test.go
	}
	op := g.rng.IntN(39)
	if g.rng.IntN(n) >= 4*i {
		op = g.rng.IntN(6)
	}
	switch op {
	case 0, 1:
		id := g.pick("u", 12)
		email := g.pick("mail", 14) + "@example.com"
		return iam.CreateUser{ID: id, Email: email, Name: "User " + id, PasswordHash: argon}
	case 2:
		id := g.pick("a", 6)
		return iam.CreateApp{ID: id, Name: "App " + id, RedirectURIs: []string{"https://example.com/" + id}, Owner: g.pick("u", 12)}
	case 3:
		id := g.pick("g", 6)
		return iam.CreateGroup{ID: id, Name: "Group " + id, Creator: g.identity()}
	case 4:
		id := g.pick("p", 8)
		return iam.CreatePolicy{ID: id, Name: "Policy " + id, Statements: g.statements()}
	case 5:
		return iam.CreateProject{ID: g.pick("proj", 4), Name: "Project", Creator: g.identity()}
	case 6:
		st := iam.StatusActive
		if g.rng.IntN(2) == 0 {
			st = iam.StatusDeactivated
		}
		return iam.SetIdentityStatus{ID: g.identity(), Status: st}
	case 7:
		if g.rng.IntN(3) == 0 {
			return iam.DeleteIdentity{ID: g.identity()}
		}
		return iam.GrantRole{Identity: g.identity(), Role: roles[g.rng.IntN(len(roles))]}
	case 8:
		return iam.AddCredential{App: g.pick("a", 6), CredentialID: g.pick("c", 3), ClientID: g.pick("client", 40), SecretHash: argon}
	case 9:
		return iam.RemoveCredential{App: g.pick("a", 6), CredentialID: g.pick("c", 3)}
	case 10:
		return iam.AddAPIKey{App: g.pick("a", 6), KeyID: g.pick("k", 3), KeyHash: argon}
	case 11:
		return iam.RemoveAPIKey{App: g.pick("a", 6), KeyID: g.pick("k", 3)}
	case 12, 13:
		return iam.AddMember{Group: g.pick("g", 6), Identity: g.identity()}
	case 14:
		return iam.RemoveMember{Group: g.pick("g", 6), Identity: g.identity()}
	case 15:
		return iam.RevokeRole{Identity: g.identity(), Role: roles[g.rng.IntN(len(roles))]}
	case 16, 17:
		return iam.AttachPolicy{Policy: g.pick("p", 8), Target: g.member()}
	case 18:
		return iam.DetachPolicy{Policy: g.pick("p", 8), Target: g.member()}
	case 19, 20:
		return iam.SetProjectMember{Project: g.pick("proj", 4), Member: g.member(), Policies: g.memberPolicies()}
	case 21:
		return iam.RemoveProjectMember{Project: g.pick("proj", 4), Member: g.member()}
	case 22:
		rel := iam.RelationHome
		if g.rng.IntN(2) == 0 {
			rel = iam.RelationLink
		}
		hrn := g.resource()
		if g.rng.IntN(2) == 0 {
			hrn = data(g.pick("res", 3)) // the ones project policies name
		}
		return iam.AddProjectResource{Project: g.pick("proj", 4), HRN: hrn, Relation: rel}
	case 23:
		return iam.RemoveProjectResource{Project: g.pick("proj", 4), HRN: g.resource()}
	case 24:
		project := ""
		if g.rng.IntN(3) != 0 {
			project = g.pick("proj", 4)
		}
		return iam.SetDefaultProject{App: g.pick("a", 6), Project: project}
	case 25, 26:
		return iam.AddManager{Entity: g.managed(), Manager: g.member()}
	case 31, 32, 33:
		// Few resources, so that the one named is often in the project.
		return iam.CreateProjectPolicy{Project: g.pick("proj", 4), ID: g.pick("pp", 3), Name: "Project policy",
			Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data(g.pick("res", 3))}}}}
	case 34:
		return iam.DeleteProjectPolicy{Project: g.pick("proj", 4), ID: g.pick("pp", 3)}
	case 35:
		return iam.SetProjectDefaults{Project: g.pick("proj", 4), DefaultMemberPolicies: g.memberPolicies()}
	case 36:
		return iam.CreatePlan{ID: g.pick("plan", 3), Name: "Plan", Policies: []string{g.pick("p", 8)}}
	case 37:
		return iam.AttachPlan{Plan: g.pick("plan", 3), Target: g.member()}
	case 38:
		return iam.DetachPlan{Plan: g.pick("plan", 3), Target: g.member()}
	case 27:
		return iam.RemoveManager{Entity: g.managed(), Manager: g.member()}
	case 28:
		return iam.ShareApp{App: g.pick("a", 6), With: g.member()}
	case 29:
		return iam.UnshareApp{App: g.pick("a", 6), With: g.member()}
	default:
		return iam.SetResourceLinkable{Project: g.pick("proj", 4), HRN: g.resource(), Linkable: g.rng.IntN(3) == 0}
	}
}

// memberPolicies mixes realm policy ids with project policy HRNs, of any of
// the projects (so that some name another project's and are refused).
func (g randomCommands) memberPolicies() []string {
	out := g.policyIDs()
	if g.rng.IntN(2) == 0 {
		out = append(out, iam.ProjectPolicyHRN(realm, g.pick("proj", 4), g.pick("pp", 3)))
	}
	return out
}

// managedEntities lists every app, group and project the random commands
// may make.
func managedEntities() []iam.ManagedRef {
	var out []iam.ManagedRef
	for _, id := range ids("a", 6) {
		out = append(out, iam.ManagedRef{Kind: iam.ManagedApp, ID: id})
	}
	for _, id := range ids("g", 6) {
		out = append(out, iam.ManagedRef{Kind: iam.ManagedGroup, ID: id})
	}
	for _, id := range ids("proj", 4) {
		out = append(out, iam.ManagedRef{Kind: iam.ManagedProject, ID: id})
	}
	return out
}

// managed picks an app, a group or a project, for its managers.
func (g randomCommands) managed() iam.ManagedRef {
	switch g.rng.IntN(3) {
	case 0:
		return iam.ManagedRef{Kind: iam.ManagedApp, ID: g.pick("a", 6)}
	case 1:
		return iam.ManagedRef{Kind: iam.ManagedGroup, ID: g.pick("g", 6)}
	}
	return iam.ManagedRef{Kind: iam.ManagedProject, ID: g.pick("proj", 4)}
}

type row struct {
	key   string
	value []byte
}

func dumpRows(tb testing.TB, s *iam.State) []row {
	tb.Helper()
	var out []row
	if err := replica.Rows(s, func(k string, v []byte) error {
		out = append(out, row{k, append([]byte(nil), v...)})
		return nil
	}); err != nil {
		tb.Fatalf("Rows: %v", err)
	}
	return out
}

func loadRows(tb testing.TB, rows []row) *iam.State {
	tb.Helper()
	s := iam.NewState()
	l := replica.NewRowLoader(s)
	for _, r := range rows {
		if err := l.Load([]byte(r.key), r.value); err != nil {
			tb.Fatalf("Load(%q): %v", r.key, err)
		}
	}
	if err := l.Finish(); err != nil {
		tb.Fatalf("Finish: %v", err)
	}
	return s
}

func diffRows(got, want []row) string {
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("row %d: got none, want %q=%q", i, want[i].key, want[i].value)
		case i >= len(want):
			return fmt.Sprintf("row %d: got %q=%q, want none", i, got[i].key, got[i].value)
		case got[i].key != want[i].key || !bytes.Equal(got[i].value, want[i].value):
			return fmt.Sprintf("row %d: got %q=%q, want %q=%q", i, got[i].key, got[i].value, want[i].key, want[i].value)
		}
	}
	return ""
}

// randomHistory applies n random commands to a fresh state holding realms
// r1 and r2, reporting the row key of every change after each entry to
// touched. It
// returns the state and the log entries applied.
func randomHistory(tb testing.TB, seed uint64, n int, touched func(s *iam.State, keys []string)) (*iam.State, []iam.LogEntry) {
	tb.Helper()
	s := iam.NewState()
	// Low limits so that limit paths are taken too.
	s.Limits.MembersPerGroup = 5
	s.Limits.GroupsPerIdentity = 4
	s.Limits.ProjectsPerIdentity = 3
	s.Limits.GroupsPerProject = 3
	s.Limits.CredentialsPerApp = 2
	s.Limits.LinksPerResource = 2
	s.Limits.ResourcesPerProject = 6
	s.Limits.PoliciesPerProject = 2
	s.Limits.PermissionsPerIdentity = 12
	gen := randomCommands{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	var log []iam.LogEntry
	var keys []string
	touch := func(c iam.Change) { keys = append(keys, replica.RowKey(c)) }
	apply := func(evs []iam.Event) {
		e := iam.LogEntry{Seq: uint64(len(log) + 1), Commits: []iam.Commit{{Events: evs, At: time.Unix(int64(len(log)), 0).UTC()}}}
		keys = keys[:0]
		if err := s.ApplyEntry(e, touch); err != nil {
			tb.Fatalf("apply entry %d: %v", e.Seq, err)
		}
		log = append(log, e)
		if touched != nil {
			touched(s, keys)
		}
	}
	for _, r := range []string{realm, "r2"} {
		evs, err := iam.Decide(s, iam.Request{Command: iam.CreateRealm{ID: r, Name: "Realm " + r}})
		if err != nil {
			tb.Fatalf("create realm: %v", err)
		}
		apply(evs)
	}
	for i := range n {
		r := realm
		if gen.rng.IntN(5) == 0 {
			r = "r2"
		}
		evs, err := iam.Decide(s, iam.Request{Realm: r, At: time.Now(), Command: gen.next(i, n)})
		if err != nil {
			if c := iam.ErrorCode(err); c == iam.EInternal || c == iam.EPermissionDenied {
				tb.Fatalf("decide: got %v, want a judged error", err)
			}
			continue
		}
		if len(evs) > 0 {
			apply(evs)
		}
	}
	return s, log
}

// TestRows_RoundTrip: loading a state's rows into a fresh state gives
// back the same rows, and the same answers to checks.
func TestRows_RoundTrip(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			s, log := randomHistory(t, seed, 600, nil)
			want := dumpRows(t, s)
			if len(want) < 50 {
				t.Fatalf("rows: got %d, want a richer state", len(want))
			}
			loaded := loadRows(t, want)
			if d := diffRows(dumpRows(t, loaded), want); d != "" {
				t.Fatalf("rows after LoadRow: %s", d)
			}
			sameChecks(t, loaded, s)
			sameRealms(t, loaded, s)

			// A replica restored from a snapshot resumes the log where the
			// snapshot was taken and ends where the writer ends.
			mid := len(log) / 2
			s2 := iam.NewState()
			for _, e := range log[:mid] {
				if err := s2.ApplyEntry(e, nil); err != nil {
					t.Fatal(err)
				}
			}
			resumed := loadRows(t, dumpRows(t, s2))
			resumed.SetSeq(log[mid-1].Seq)
			for _, e := range log[mid:] {
				if err := resumed.ApplyEntry(e, nil); err != nil {
					t.Fatal(err)
				}
			}
			if d := diffRows(dumpRows(t, resumed), want); d != "" {
				t.Fatalf("rows after resuming from a snapshot: %s", d)
			}
			sameRealms(t, resumed, s)
			if got, want := resumed.Seq(), s.Seq(); got != want {
				t.Fatalf("seq: got %d, want %d", got, want)
			}
		})
	}
}

// TestRows_Incremental: writing only the rows touched by each entry
// keeps a read model equal to a full dump after every entry — the replica's
// exactly-once projection.
func TestRows_Incremental(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			model := map[string][]byte{}
			entries := 0
			s, _ := randomHistory(t, seed, 600, func(s *iam.State, keys []string) {
				entries++
				for _, k := range keys {
					if v, ok := replica.Row(s, k); ok {
						model[k] = append([]byte(nil), v...)
					} else {
						delete(model, k)
					}
				}
				if entries%25 == 0 { // a full comparison now and then keeps the test fast
					compareModel(t, model, dumpRows(t, s))
				}
			})
			compareModel(t, model, dumpRows(t, s))
		})
	}
}

// TestApply_EdgesChangedWithinABatch: an edge's row is written from what
// the event that changed it said (iam.Change.Edge), not read again from the
// state; the last change of a batch must then win. Random histories are
// replayed into a replica in batches of several sizes, and an edge added
// and removed in turn within one batch, each ending one way and the other.
// Each time the read model must hold exactly the rows of the state.
func TestApply_EdgesChangedWithinABatch(t *testing.T) {
	for seed := range uint64(10) {
		for _, batch := range []int{1, 13, 600} {
			t.Run(fmt.Sprintf("seed=%d/batch=%d", seed, batch), func(t *testing.T) {
				s, log := randomHistory(t, seed, 600, nil)
				r := openReplica(t, replica.Config{})
				for from := 0; from < len(log); from += batch {
					if err := r.ApplyEntries(log[from:min(from+batch, len(log))]); err != nil {
						t.Fatal(err)
					}
				}
				requireRowsEqualState(t, r.Store(), s, "after the replay")
			})
		}
	}
	in := iam.InRealm{Realm: "r1"}
	member := iam.MemberAdded{InRealm: in, Group: "g", Identity: "u"}
	unmember := iam.MemberRemoved{InRealm: in, Group: "g", Identity: "u"}
	attach := iam.PolicyAttached{InRealm: in, Policy: "p", Target: "u"}
	detach := iam.PolicyDetached{InRealm: in, Policy: "p", Target: "u"}
	grant := iam.RoleGranted{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin}
	revoke := iam.RoleRevoked{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin}
	for name, turns := range map[string][]iam.Event{
		"ends added":   {member, unmember, member, attach, detach, attach, grant, revoke, grant},
		"ends removed": {member, unmember, attach, detach, grant, revoke},
		// In separate entries of one batch, and the rows already written.
		"removed after a batch": {unmember, detach, revoke},
	} {
		t.Run(name, func(t *testing.T) {
			r := openReplica(t, replica.Config{})
			log := []iam.LogEntry{
				entry(1, iam.RealmCreated{InRealm: in, Name: "R1"}),
				entry(2, iam.IdentityCreated{InRealm: in, ID: "u", Kind: iam.KindUser, Name: "U"},
					iam.GroupCreated{InRealm: in, ID: "g", Name: "G"},
					iam.PolicyCreated{InRealm: in, ID: "p", Name: "P", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{"hrn:here:data:::doc"}}}}),
			}
			if name == "removed after a batch" {
				log = append(log, entry(3, member, attach, grant))
			}
			if err := r.ApplyEntries(log); err != nil {
				t.Fatal(err)
			}
			var batch []iam.LogEntry
			for i, ev := range turns {
				batch = append(batch, entry(uint64(len(log)+1+i), ev))
			}
			if err := r.ApplyEntries(batch); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Read(context.Background(), replica.Consistency{Mode: replica.MinimizeLatency}, func(s *iam.State) error {
				requireRowsEqualState(t, r.Store(), s, "after the batch")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func compareModel(t *testing.T, model map[string][]byte, want []row) {
	t.Helper()
	for _, r := range want {
		got, ok := model[r.key]
		if !ok {
			t.Fatalf("incremental model: got no %q, want %q", r.key, r.value)
		}
		if !bytes.Equal(got, r.value) {
			t.Fatalf("incremental model %q: got %q, want %q", r.key, got, r.value)
		}
	}
	if len(model) != len(want) {
		have := map[string]bool{}
		for _, r := range want {
			have[r.key] = true
		}
		for k, v := range model {
			if !have[k] {
				t.Fatalf("incremental model: got %q=%q, want no such row", k, v)
			}
		}
	}
}

// sameChecks compares the outcomes of many checks on two states.
func sameChecks(t *testing.T, got, want *iam.State) {
	t.Helper()
	subjects := append(ids("u", 12), ids("a", 6)...)
	resources := append(ids("res", 10), "other")
	for _, r := range []string{realm, "r2"} {
		for _, sub := range subjects {
			for _, res := range resources {
				for _, scope := range []string{"", "proj0", "proj1", "proj2", "proj3"} {
					for _, act := range []string{"read", "write"} {
						q := iam.CheckRequest{Realm: r, Subject: sub, Action: act, Resource: data(res), Scope: scope}
						if g, w := got.Check(q), want.Check(q); g.Allowed != w.Allowed {
							t.Fatalf("Check(%+v): got %v (%s), want %v (%s)", q, g.Allowed, g.Reason(), w.Allowed, w.Reason())
						}
					}
				}
			}
			q := iam.CheckRequest{Realm: r, Subject: sub, Action: iam.ActionCreateGroup, Resource: iam.RealmHRN(realm)}
			if g, w := got.Check(q), want.Check(q); g.Allowed != w.Allowed {
				t.Fatalf("Check(%+v): got %v (%s), want %v (%s)", q, g.Allowed, g.Reason(), w.Allowed, w.Reason())
			}
			// What managers may do: the same, with the same reason.
			for _, m := range managedEntities() {
				q := iam.CheckRequest{Realm: r, Subject: sub, Action: iam.ActionRead, Resource: m.HRN(r)}
				if g, w := got.Check(q), want.Check(q); g != w {
					t.Fatalf("Check(%+v): got %v (%s), want %v (%s)", q, g.Allowed, g.Reason(), w.Allowed, w.Reason())
				}
			}
		}
	}
}

// TestRowKey: each entity and edge is its own row.
func TestRowKey(t *testing.T) {
	w := newWorld(t)
	w.do(iam.CreateUser{ID: "u", Email: "u@example.com", Name: "User u"})
	w.do(iam.CreateGroup{ID: "g", Name: "Group g"})
	w.do(iam.AddMember{Group: "g", Identity: "u"})
	var touched []string
	w.touch = func(c iam.Change) { touched = append(touched, replica.RowKey(c)) }
	w.do(iam.RemoveMember{Group: "g", Identity: "u"})
	if len(touched) != 1 {
		t.Fatalf("touched by RemoveMember: got %q, want one key", touched)
	}
	if _, ok := replica.Row(w.s, touched[0]); ok {
		t.Fatalf("Row(%q) after removal: got a row, want none", touched[0])
	}
	for _, k := range []string{"", "9x", "1nope", "2nope\x00u", "2" + realm, "6" + realm + "\x00m\x00g", "6" + realm + "\x00zz\x00g\x00u"} {
		if v, ok := replica.Row(w.s, k); ok {
			t.Errorf("Row(%q): got %q, want none", k, v)
		}
	}
	s := iam.NewState()
	for _, k := range []string{"", "9x", "2nope\x00u", "6nope\x00m\x00g\x00u"} {
		if err := replica.LoadRow(s, k, []byte("{}")); err == nil {
			t.Errorf("LoadRow(%q): got no error, want one", k)
		}
	}
}

// TestRows_DetachFromUserSharingAGroupID: detaching a policy from a user
// must revoke it even when a group of the same id exists.
func TestRows_DetachFromUserSharingAGroupID(t *testing.T) {
	w := newWorld(t)
	w.do(iam.CreateUser{ID: "x", Email: "x@example.com", Name: "User x"})
	w.do(iam.CreatePolicy{ID: "p", Name: "Policy p", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("a")}}}})
	w.do(iam.AttachPolicy{Policy: "p", Target: "x"})
	if _, err := w.try(iam.CreateGroup{ID: "x", Name: "X"}); err != nil {
		return // ids do not collide: nothing more to show
	}
	w.do(iam.DetachPolicy{Policy: "p", Target: "x"})
	if d := w.s.Check(iam.CheckRequest{Realm: realm, Subject: "x", Action: "read", Resource: data("a")}); d.Allowed {
		t.Fatalf("allowed: got true (%s), want false", d.Reason())
	}
	dumpRows(t, w.s) // and Rows must still list each row once
}

// sameRealms compares the realms of two states, derived indexes included
// (policies' projects, projects' group counts, resource placements, emails),
// but not their last sequences, which rows do not carry.
func sameRealms(t *testing.T, got, want *iam.State) {
	t.Helper()
	if g, w := got.RealmIDs(), want.RealmIDs(); !reflect.DeepEqual(g, w) {
		t.Fatalf("realms: got %v, want %v", g, w)
	}
	for _, client := range ids("client", 40) {
		gr, ga, gc, gok := got.ClientCredential(client)
		wr, wa, wc, wok := want.ClientCredential(client)
		if gr != wr || gc != wc || gok != wok || (ga == nil) != (wa == nil) || ga != nil && ga.ID != wa.ID {
			t.Fatalf("ClientCredential(%s): got %q %v %+v %v, want %q %v %+v %v", client, gr, ga, gc, gok, wr, wa, wc, wok)
		}
	}
	for _, id := range want.RealmIDs() {
		// Clones, laid out alike whatever order their maps were filled in.
		g, w := *got.Clone().Realm(id), *want.Clone().Realm(id)
		g.LastSeq, w.LastSeq = 0, 0
		for pid, p := range w.Policies {
			if !reflect.DeepEqual(g.Policies[pid], p) {
				t.Fatalf("realm %s policy %s: got %+v, want %+v", id, pid, g.Policies[pid], p)
			}
		}
		for pid, p := range w.Projects {
			if !reflect.DeepEqual(g.Projects[pid], p) {
				t.Fatalf("realm %s project %s: got %+v, want %+v", id, pid, g.Projects[pid], p)
			}
		}
		for hrn, pl := range w.Resources {
			if !reflect.DeepEqual(g.Resources[hrn], pl) {
				t.Fatalf("realm %s resource %s: got %+v, want %+v", id, hrn, g.Resources[hrn], pl)
			}
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("realm %s: got %+v, want %+v", id, g, w)
		}
	}
}

// authCommand makes a random identity-provider command over the same small
// pools as next, so that rows_test's property tests cover its state.
func (g randomCommands) authCommand() iam.Command {
	at := time.Unix(1_700_000_000+int64(g.rng.IntN(600)), 0).UTC()
	switch g.rng.IntN(15) {
	case 0, 1, 2:
		c := iam.RecordSignIn{User: g.pick("u", 12), PasswordHash: argon, Success: g.rng.IntN(2) == 0, At: at, MaxFailures: 3, LockoutPeriod: 100 * time.Second}
		if c.Success && g.rng.IntN(2) == 0 {
			c.Code = &iam.CodeGrant{CodeHash: g.pick("code", 20), Max: 3,
				Code: iam.AuthCode{Client: g.pick("a", 6), RedirectURI: "https://example.com/cb", Challenge: challenge(verifier), ExpiresAt: at.Add(60 * time.Second),
					Scope: "openid offline_access", Nonce: g.pick("n", 3), AuthTime: at}}
		}
		return c
	case 3:
		return iam.RedeemAuthCode{CodeHash: g.pick("code", 20), Client: g.pick("a", 6), RedirectURI: "https://example.com/cb", Verifier: verifier, At: at,
			Refresh: &iam.RefreshGrant{Family: g.pick("rf", 8), TokenHash: g.pick("rh", 30), ExpiresAt: at.Add(300 * time.Second)}}
	case 13:
		return iam.RotateRefreshToken{TokenHash: g.pick("rh", 30), NewHash: g.pick("rh", 30), Client: g.pick("a", 6), At: at}
	case 4:
		return iam.RevokeTokens{Identity: g.identity(), At: at}
	case 5:
		return iam.ChangePassword{User: g.pick("u", 12), OldHash: argon, NewHash: argon, At: at}
	case 6:
		return iam.RequestPasswordReset{User: g.pick("u", 12), TokenHash: g.pick("rt", 5), ExpiresAt: at.Add(time.Minute)}
	case 7:
		return iam.ResetPassword{TokenHash: g.pick("rt", 5), NewHash: argon, At: at}
	case 8:
		if g.rng.IntN(2) == 0 {
			return iam.SetCredentialStatus{App: g.pick("a", 6), CredentialID: g.pick("c", 3), Disabled: g.rng.IntN(2) == 0}
		}
		return iam.SetAPIKeyStatus{App: g.pick("a", 6), KeyID: g.pick("k", 3), Disabled: g.rng.IntN(2) == 0}
	case 9:
		return iam.CreateSealedUser{ID: g.pick("u", 12), EmailIndex: g.pick("bi", 14), Sealed: []byte("sealed"), PasswordHash: argon}
	case 10:
		return iam.CreateInvitation{ID: g.pick("inv", 4), Invitation: iam.Invitation{UserID: g.pick("u", 12), EmailIndex: g.pick("bi", 14),
			Sealed: []byte("sealed"), Roles: []string{iam.RoleOrgInviter}, Groups: []string{g.pick("g", 6)}, TokenHash: g.pick("it", 6), ExpiresAt: at.Add(time.Minute)}}
	case 12:
		// Over the pool of CreateSealedUser's indexes: moves, and conflicts.
		// Was: what CreateSealedUser seals, or nothing as for CreateUser's
		// plain users, so that some are not conflicts.
		was := []byte("sealed")
		if g.rng.IntN(2) == 0 {
			was = nil
		}
		return iam.ChangePersonalData{User: g.pick("u", 12), EmailIndex: g.pick("bi", 14), Sealed: []byte("sealed"), Was: was}
	case 11:
		return iam.RenewInvitation{ID: g.pick("inv", 4), TokenHash: g.pick("it", 6), ExpiresAt: at.Add(time.Minute)}
	default:
		return iam.AcceptInvitation{TokenHash: g.pick("it", 6), Sealed: []byte("sealed2"), PasswordHash: argon, At: at}
	}
}

// TestUnmarshalCommits_ReplaysHistory: a log that went through the codec
// builds the same state as the events it was made from.
func TestUnmarshalCommits_ReplaysHistory(t *testing.T) {
	s, log := randomHistory(t, 7, 600, nil)
	replayed := iam.NewState()
	for _, e := range log {
		b, err := iam.MarshalCommits(e.Commits)
		if err != nil {
			t.Fatalf("MarshalCommits: %v", err)
		}
		commits, err := iam.UnmarshalCommits(b)
		if err != nil {
			t.Fatalf("UnmarshalCommits: %v", err)
		}
		if !reflect.DeepEqual(commits, e.Commits) {
			t.Fatalf("entry %d:\ngot  %#v\nwant %#v", e.Seq, commits, e.Commits)
		}
		if err := replayed.ApplyEntry(iam.LogEntry{Seq: e.Seq, Commits: commits}, nil); err != nil {
			t.Fatalf("apply entry %d: %v", e.Seq, err)
		}
	}
	if d := diffRows(dumpRows(t, replayed), dumpRows(t, s)); d != "" {
		t.Fatalf("replayed rows: %s", d)
	}
}

// TestRows_ManagerEdges: each manager of an app, a group or a project is
// its own edge row, gone when the manager is; a manager row whose ends are
// missing is refused on load, not applied.
func TestRows_ManagerEdges(t *testing.T) {
	w := newWorld(t)
	w.do(iam.CreateUser{ID: "u", Email: "u@example.com", Name: "User u"})
	var touched []string
	w.touch = func(c iam.Change) { touched = append(touched, replica.RowKey(c)) }
	w.do(iam.CreateApp{ID: "a", Name: "A", Owner: "u"})
	w.do(iam.CreateGroup{ID: "g", Name: "G", Creator: "u"})
	w.do(iam.CreateProject{ID: "proj", Name: "P", Creator: "u"})
	want := []string{"2r1\x00a", "6r1\x00ma\x00a\x00u", "3r1\x00g", "6r1\x00mg\x00g\x00u", "5r1\x00proj", "6r1\x00mp\x00proj\x00u"}
	if !reflect.DeepEqual(touched, want) {
		t.Fatalf("touched: got %q, want %q", touched, want)
	}
	for _, k := range want {
		if _, ok := replica.Row(w.s, k); !ok {
			t.Errorf("Row(%q): got none, want one", k)
		}
	}
	touched = nil
	w.do(iam.DeleteIdentity{ID: "u"})
	for _, k := range []string{want[1], want[3], want[5]} {
		if !slices.Contains(touched, k) {
			t.Errorf("touched by the manager's deletion: got %q, want %q among them", touched, k)
		}
		if v, ok := replica.Row(w.s, k); ok {
			t.Errorf("Row(%q) after the manager's deletion: got %q, want none", k, v)
		}
	}
	loaded := loadRows(t, dumpRows(t, w.s))
	for _, k := range []string{"6r1\x00ma\x00nosuch\x00u", "6r1\x00mg\x00g\x00nobody", "6r1\x00mp\x00a\x00u"} {
		if err := replica.LoadRow(loaded, k, []byte{}); err == nil {
			t.Errorf("LoadRow(%q): got no error, want one", k)
		}
	}
}

// TestRows_RevokedKey: a signing key's revocation is a row of its own, so a
// replica rebuilt from rows (a snapshot) still refuses the key's tokens.
func TestRows_RevokedKey(t *testing.T) {
	w := newWorld(t)
	var touched []string
	w.touch = func(c iam.Change) { touched = append(touched, replica.RowKey(c)) }
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.do(iam.RevokeSigningKey{KID: "kid-1", At: at})
	if want := "6" + realm + "\x00sk\x00kid-1\x00"; len(touched) != 1 || touched[0] != want {
		t.Fatalf("touched by RevokeSigningKey: got %q, want [%q]", touched, want)
	}
	touched = nil
	w.do(iam.RevokeSigningKey{KID: "kid-1", At: at.Add(time.Hour)})
	if len(touched) != 0 {
		t.Fatalf("touched by a repeated revocation: got %q, want nothing", touched)
	}
	rows := dumpRows(t, w.s)
	loaded := loadRows(t, rows)
	if d := diffRows(dumpRows(t, loaded), rows); d != "" {
		t.Fatalf("rows after LoadRow: %s", d)
	}
	got, ok := loaded.RevokedKey("kid-1")
	if want := (iam.RevokedKey{Realm: realm, At: at}); !ok || got != want {
		t.Fatalf("RevokedKey after LoadRow: got %+v, %v, want %+v", got, ok, want)
	}
	if err := replica.LoadRow(iam.NewState(), "6"+realm+"\x00sk\x00kid-2\x00", []byte(`{"at":"2026-01-02T03:04:05Z"}`)); err == nil {
		t.Fatal("LoadRow of a revoked key in an unknown realm: got no error, want one")
	}
}

// TestRows_RefreshFamilies: a refresh-token family, rotated and with spent
// hashes, round-trips through rows (a replay of a spent hash is still
// recognised after a load), and its end removes its row.
func TestRows_RefreshFamilies(t *testing.T) {
	w := newWorld(t)
	at := time.Unix(1_700_000_000, 0).UTC()
	w.do(iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	w.do(iam.CreateApp{ID: "a", Name: "A", RedirectURIs: []string{"https://example.com/cb"}})
	w.do(iam.RecordSignIn{User: "u", PasswordHash: argon, Success: true, At: at, MaxFailures: 3, LockoutPeriod: time.Minute,
		Code: &iam.CodeGrant{CodeHash: "code", Max: 3, Code: iam.AuthCode{Client: "a", RedirectURI: "https://example.com/cb", Challenge: challenge(verifier),
			ExpiresAt: at.Add(time.Minute), Scope: "openid offline_access", Nonce: "n", AuthTime: at}}})
	w.do(iam.RedeemAuthCode{CodeHash: "code", Client: "a", RedirectURI: "https://example.com/cb", Verifier: verifier, At: at,
		Refresh: &iam.RefreshGrant{Family: "f", TokenHash: "r0", ExpiresAt: at.Add(time.Hour)}})
	w.do(iam.RotateRefreshToken{TokenHash: "r0", NewHash: "r1", Client: "a", At: at})
	w.do(iam.RotateRefreshToken{TokenHash: "r1", NewHash: "r2", Client: "a", At: at})

	rows := dumpRows(t, w.s)
	loaded := loadRows(t, rows)
	if d := diffRows(dumpRows(t, loaded), rows); d != "" {
		t.Fatalf("rows after LoadRow: %s", d)
	}
	sameRealms(t, loaded, w.s)
	if got := len(loaded.Identity(realm, "u").SignInState().RefreshFamilies); got != 1 {
		t.Fatalf("families loaded: got %d, want 1", got)
	}
	evs, err := iam.Decide(loaded, iam.Request{Realm: realm, At: at, Command: iam.RotateRefreshToken{TokenHash: "r0", NewHash: "r9", Client: "a", At: at}})
	if err != nil || len(evs) != 1 || evs[0].EventType() != "RefreshFamilyRevoked" {
		t.Fatalf("replay after a load: got %v %v, want RefreshFamilyRevoked", evs, err)
	}
	gone := replica.RowKey(iam.Change{Kind: iam.ChangeRefreshFamily, Realm: realm, From: "u", To: "f"})
	if !slices.ContainsFunc(rows, func(r row) bool { return r.key == gone }) {
		t.Fatalf("rows: got none %q, want the family's", gone)
	}
	w.do(iam.RevokeTokens{Identity: "u", At: at})
	for _, r := range dumpRows(t, w.s) {
		if r.key == gone {
			t.Fatalf("after RevokeTokens: got row %q, want the family gone", r.key)
		}
	}
}

// TestRows_ShareEdges: each share of an app and each not linkable mark is
// its own edge row, loaded back as it was; the mark goes with the home,
// a share with the sharee; a row whose ends are missing is refused on load.
func TestRows_ShareEdges(t *testing.T) {
	w := newWorld(t)
	w.do(iam.CreateUser{ID: "u", Email: "u@example.com", Name: "User u"})
	w.do(iam.CreateApp{ID: "a", Name: "A"})
	w.do(iam.CreateProject{ID: "proj", Name: "P"})
	w.do(iam.AddProjectResource{Project: "proj", HRN: data("x"), Relation: iam.RelationHome})
	var touched []string
	w.touch = func(c iam.Change) { touched = append(touched, replica.RowKey(c)) }
	w.do(iam.ShareApp{App: "a", With: "u"})
	w.do(iam.SetResourceLinkable{Project: "proj", HRN: data("x"), Linkable: false})
	share, mark := "6r1\x00sa\x00a\x00u", "6r1\x00rn\x00proj\x00"+data("x")
	if want := []string{share, mark}; !reflect.DeepEqual(touched, want) {
		t.Fatalf("touched: got %q, want %q", touched, want)
	}
	rows := dumpRows(t, w.s)
	if d := diffRows(dumpRows(t, loadRows(t, rows)), rows); d != "" {
		t.Fatalf("rows loaded back: %s", d)
	}
	for _, k := range []string{share, mark} {
		if _, ok := replica.Row(w.s, k); !ok {
			t.Errorf("Row(%q): got none, want one", k)
		}
	}
	touched = nil
	w.do(iam.RemoveProjectResource{Project: "proj", HRN: data("x")})
	w.do(iam.DeleteIdentity{ID: "u"})
	for _, k := range []string{share, mark} {
		if !slices.Contains(touched, k) {
			t.Errorf("touched: got %q, want %q among them", touched, k)
		}
		if v, ok := replica.Row(w.s, k); ok {
			t.Errorf("Row(%q) after the home and the sharee went: got %q, want none", k, v)
		}
	}
	loaded := loadRows(t, dumpRows(t, w.s))
	for _, k := range []string{"6r1\x00sa\x00nosuch\x00u", "6r1\x00sa\x00a\x00nobody", mark} {
		if err := replica.LoadRow(loaded, k, []byte{}); err == nil {
			t.Errorf("LoadRow(%q): got no error, want one", k)
		}
	}
}

// TestRows_LargeSets: memberships and attachments, which a RowLoader builds
// in bulk, load into the state that applying them one at a time makes,
// for sets past a slice's size, in two realms, with plans (rows after the
// edges) attached to the same targets.
func TestRows_LargeSets(t *testing.T) {
	s := iam.NewState()
	var evs []iam.Event
	for _, realm := range []string{"big-a", "big-b"} {
		in := iam.InRealm{Realm: realm}
		evs = append(evs, iam.RealmCreated{InRealm: in, Name: realm})
		for p := range 3 {
			evs = append(evs, iam.PolicyCreated{InRealm: in, ID: "p" + strconv.Itoa(p), Name: "P",
				Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{"cat/" + strconv.Itoa(p)}}}})
		}
		evs = append(evs, iam.PlanCreated{InRealm: in, ID: "plan", Name: "Plan", Policies: []string{"p1"}})
		for g := range 3 {
			evs = append(evs, iam.GroupCreated{InRealm: in, ID: "g" + strconv.Itoa(g), Name: "G"})
			evs = append(evs, iam.PolicyAttached{InRealm: in, Target: "g" + strconv.Itoa(g), Policy: "p0"})
		}
		for u := range 40 {
			id := "u" + strconv.Itoa(u)
			evs = append(evs, iam.IdentityCreated{InRealm: in, ID: id, Kind: iam.KindUser, Name: id})
			evs = append(evs, iam.MemberAdded{InRealm: in, Group: "g" + strconv.Itoa(u%2), Identity: id},
				iam.PolicyAttached{InRealm: in, Target: id, Policy: "p0"})
			if u%3 == 0 {
				evs = append(evs, iam.PolicyAttached{InRealm: in, Target: id, Policy: "p" + strconv.Itoa(1+u%2)},
					iam.PlanAttached{InRealm: in, Target: id, Plan: "plan"})
			}
		}
	}
	if err := s.ApplyEvents(evs, nil); err != nil {
		t.Fatal(err)
	}
	rows := dumpRows(t, s)
	loaded := loadRows(t, rows)
	if d := diffRows(dumpRows(t, loaded), rows); d != "" {
		t.Fatalf("rows after loading: %s", d)
	}
	sameRealms(t, loaded, s)

	// An edge naming an entity the rows never created is refused.
	for _, k := range []string{"6big-a\x00a\x00nobody\x00p0", "6big-a\x00a\x00u1\x00nopolicy", "6big-a\x00m\x00g0\x00nobody", "6nowhere\x00m\x00g0\x00u1"} {
		if err := replica.NewRowLoader(loaded).Load([]byte(k), nil); err == nil {
			t.Errorf("Load(%q): got no error, want one", k)
		}
	}
}

// FuzzLoadRow: a row that does not fit the state loaded so far (a corrupt
// read model or snapshot: a snapshot is signed, a read model is not) is an
// error, never a panic, and a row loaded leaves a state whose rows can
// still be listed. Seeded with every row of a random history, each loaded
// onto the rows before it.
func FuzzLoadRow(f *testing.F) {
	st, _ := randomHistory(f, 7, 300, nil)
	rows := dumpRows(f, st)
	for _, r := range rows {
		f.Add(r.key, r.value)
	}
	f.Add("6r1\x00m\x00g1\x00", []byte{})
	f.Add("4r1\x00p1", []byte(`{"name":"P","statements":[{"effect":"allow","actions":["*"],"resources":["*"]}]}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		i, _ := slices.BinarySearchFunc(rows, key, func(r row, k string) int { return strings.Compare(r.key, k) })
		s := loadRows(t, rows[:i])
		if err := replica.LoadRow(s, key, value); err != nil {
			return
		}
		if err := replica.Rows(s, func(string, []byte) error { return nil }); err != nil {
			t.Fatalf("Rows after LoadRow(%q, %q): %v", key, value, err)
		}
	})
}

// TestRows_PoliciesDecodedInTurn: a loader decodes policy rows into one
// reused row (RowLoader.decodePolicy); a policy loaded after a larger one
// keeps none of it, and an empty list stays empty, a null one nil.
func TestRows_PoliciesDecodedInTurn(t *testing.T) {
	in := iam.InRealm{Realm: "r"}
	deny := func(n int) iam.Statement {
		st := iam.Statement{Effect: iam.Deny}
		for i := range n {
			st.Actions = append(st.Actions, "read"+strconv.Itoa(i))
			st.Resources = append(st.Resources, "hrn:here:data:::r"+strconv.Itoa(i))
		}
		return st
	}
	s := iam.NewState()
	if err := s.ApplyEvents([]iam.Event{
		iam.RealmCreated{InRealm: in, Name: "r"},
		iam.PolicyCreated{InRealm: in, ID: "p1", Name: "large", Statements: []iam.Statement{deny(12), deny(3), deny(1)}},
		iam.PolicyCreated{InRealm: in, ID: "p2", Name: "small", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"write"}, Resources: []string{}}}},
		iam.PolicyCreated{InRealm: in, ID: "p3", Name: "none"},
		iam.ProjectCreated{InRealm: in, ID: "j", Name: "project"},
		iam.ProjectPolicyCreated{InRealm: in, Project: "j", ID: "p4", Name: "in project", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"list"}}}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	want := dumpRows(t, s)
	loaded := loadRows(t, want)
	if d := diffRows(dumpRows(t, loaded), want); d != "" {
		t.Fatalf("rows after loading: %s", d)
	}
	got := loaded.Realm("r")
	for _, id := range []string{"p1", "p2", "p3"} {
		if !reflect.DeepEqual(got.Policies[id].Statements, s.Realm("r").Policies[id].Statements) {
			t.Errorf("policy %s: statements %#v, want %#v", id, got.Policies[id].Statements, s.Realm("r").Policies[id].Statements)
		}
	}
	if g, w := got.Projects["j"].Policies["p4"].Statements, s.Realm("r").Projects["j"].Policies["p4"].Statements; !reflect.DeepEqual(g, w) {
		t.Errorf("project policy: statements %#v, want %#v", g, w)
	}

	// A row that leaves its lists out (none this package writes) gets
	// none of the row decoded before it.
	var rows []row
	for _, r := range want {
		rows = append(rows, r)
		if strings.HasSuffix(r.key, "p1") {
			rows = append(rows, row{strings.TrimSuffix(r.key, "p1") + "p10", []byte(`{"name":"bare","statements":[{"effect":"deny"}]}`)})
		}
	}
	bare := loadRows(t, rows).Realm("r").Policies["p10"]
	if bare == nil || len(bare.Statements) != 1 || len(bare.Statements[0].Actions)+len(bare.Statements[0].Resources) != 0 {
		t.Fatalf("policy without lists, loaded after a larger one: %#v", bare)
	}
}
