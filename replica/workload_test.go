package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// workload is a realistic stream of commits, decided one by one by
// iam.Decide against a scratch state (so every command is valid where it
// lands), one commit per log entry.
type workload struct {
	entries []iam.LogEntry
	state   *iam.State // after the entries
	events  int
	realms  []*realmUniverse
	kinds   map[string]int // event type → count, to show the mix
}

// realmUniverse is what a realm's commands and checks pick from.
type realmUniverse struct {
	id                                   string
	users, apps, groups, policies, projs []string
	resources                            []string // data HRNs (some placed in projects)
}

var (
	workloadActions = []string{"read", "write", "delete", "list"}
	checkActions    = []string{"read", "write", "delete", "list", "manageGroup", "manageProject", "createUser"}
	baseTime        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func dataHRN(realm string, n int) string { return fmt.Sprintf("hrn:here:data::%s:cat-%d", realm, n) }

// newWorkload decides commands at random (seeded) until at least events
// events are produced. Commands that Decide refuses (limits, deleted
// entities, conflicts) or that change nothing are dropped, as a writer
// would answer them with an error or a no-op.
func newWorkload(tb testing.TB, seed uint64, events int) *workload {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st := iam.NewState()
	w := &workload{state: st, kinds: map[string]int{}}
	commit := func(realm string, cmd iam.Command) bool {
		evs, err := iam.Decide(st, iam.Request{Realm: realm, Command: cmd})
		if err != nil || len(evs) == 0 {
			return false
		}
		seq := uint64(len(w.entries) + 1)
		at := baseTime.Add(time.Duration(seq) * time.Millisecond)
		e := iam.LogEntry{
			Seq:     seq,
			Subject: "iam.evt." + realm + ".commit",
			MsgID:   fmt.Sprintf("wl-%d-%d", seed, seq),
			Time:    at,
			Commits: []iam.Commit{{Events: evs, At: at}},
		}
		mustApplyEntry(st, e, nil)
		w.entries = append(w.entries, e)
		w.events += len(evs)
		for _, ev := range evs {
			w.kinds[ev.EventType()]++
		}
		return true
	}
	for _, id := range []string{"acme", "globex"} {
		if !commit(id, iam.CreateRealm{ID: id, Name: strings.ToUpper(id)}) {
			tb.Fatalf("create realm %s refused", id)
		}
		w.realms = append(w.realms, &realmUniverse{id: id})
	}
	pick := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return s[rng.IntN(len(s))]
	}
	nUser, nApp, nGroup, nPol, nProj := 0, 0, 0, 0, 0
	for w.events < events {
		u := w.realms[rng.IntN(len(w.realms))]
		r := u.id
		switch x := rng.IntN(108); {
		case x < 14 || len(u.users) < 20:
			nUser++
			id := fmt.Sprintf("u%d", nUser)
			if commit(r, iam.CreateUser{ID: id, Email: id + "@example.com", Name: "User " + id}) {
				u.users = append(u.users, id)
			}
		case x < 17 || len(u.apps) < 3:
			nApp++
			id := fmt.Sprintf("a%d", nApp)
			if commit(r, iam.CreateApp{ID: id, Name: "App " + id, RedirectURIs: []string{"https://" + id + ".example.com/cb"}, Owner: pick(u.users)}) {
				u.apps = append(u.apps, id)
			}
		case x < 20 || len(u.groups) < 3:
			nGroup++
			id := fmt.Sprintf("g%d", nGroup)
			if commit(r, iam.CreateGroup{ID: id, Name: "Group " + id}) {
				u.groups = append(u.groups, id)
			}
		case x < 25 || len(u.policies) < 5:
			nPol++
			id := fmt.Sprintf("p%d", nPol)
			if commit(r, iam.CreatePolicy{ID: id, Name: "Policy " + id, Statements: randomStatements(rng, r)}) {
				u.policies = append(u.policies, id)
			}
		case x < 27 || len(u.projs) < 2:
			nProj++
			id := fmt.Sprintf("proj-%04d", nProj)
			if commit(r, iam.CreateProject{ID: id, Name: "Project " + id}) {
				u.projs = append(u.projs, id)
			}
		case x < 41:
			commit(r, iam.AddMember{Group: pick(u.groups), Identity: pickIdentity(rng, u)})
		case x < 44:
			commit(r, iam.RemoveMember{Group: pick(u.groups), Identity: pickIdentity(rng, u)})
		case x < 57:
			target := pickIdentity(rng, u)
			if rng.IntN(3) == 0 {
				target = pick(u.groups)
			}
			commit(r, iam.AttachPolicy{Policy: pick(u.policies), Target: target})
		case x < 61:
			target := pickIdentity(rng, u)
			if rng.IntN(3) == 0 {
				target = pick(u.groups)
			}
			commit(r, iam.DetachPolicy{Policy: pick(u.policies), Target: target})
		case x < 65:
			roles := []string{iam.RoleOrgAdmin, iam.RoleOrgInviter, iam.RoleResourceManager, iam.RoleProjectAdmin}
			commit(r, iam.GrantRole{Identity: pickIdentity(rng, u), Role: roles[rng.IntN(len(roles))]})
		case x < 66:
			roles := []string{iam.RoleOrgAdmin, iam.RoleOrgInviter, iam.RoleResourceManager, iam.RoleProjectAdmin}
			commit(r, iam.RevokeRole{Identity: pickIdentity(rng, u), Role: roles[rng.IntN(len(roles))]})
		case x < 74:
			member := pickIdentity(rng, u)
			if rng.IntN(4) == 0 {
				member = pick(u.groups)
			}
			var pols []string
			seen := map[string]bool{}
			for range 1 + rng.IntN(3) {
				if p := pick(u.policies); !seen[p] {
					seen[p] = true
					pols = append(pols, p)
				}
			}
			commit(r, iam.SetProjectMember{Project: pick(u.projs), Member: member, Policies: pols})
		case x < 76:
			member := pickIdentity(rng, u)
			if rng.IntN(4) == 0 {
				member = pick(u.groups)
			}
			commit(r, iam.RemoveProjectMember{Project: pick(u.projs), Member: member})
		case x < 82:
			rel, h := iam.RelationHome, dataHRN(r, 1000+rng.IntN(3000))
			if rng.IntN(3) == 0 && len(u.resources) > 0 {
				rel, h = iam.RelationLink, pick(u.resources)
			}
			if commit(r, iam.AddProjectResource{Project: pick(u.projs), HRN: h, Relation: rel}) && rel == iam.RelationHome {
				u.resources = append(u.resources, h)
			}
		case x < 85:
			commit(r, iam.RemoveProjectResource{Project: pick(u.projs), HRN: pick(u.resources)})
		case x < 89:
			status := iam.StatusDeactivated
			if rng.IntN(2) == 0 {
				status = iam.StatusActive
			}
			commit(r, iam.SetIdentityStatus{ID: pickIdentity(rng, u), Status: status})
		case x < 91:
			commit(r, iam.DeleteIdentity{ID: pickIdentity(rng, u)})
		case x < 93:
			app := pick(u.apps)
			n := rng.IntN(1 << 30)
			commit(r, iam.AddCredential{App: app, CredentialID: fmt.Sprintf("c%d", n), ClientID: fmt.Sprintf("client-%d", n), SecretHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"})
		case x < 95:
			n := rng.IntN(1 << 30)
			commit(r, iam.AddAPIKey{App: pick(u.apps), KeyID: fmt.Sprintf("k%d", n), KeyHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"})
		case x < 100:
			if app := st.Identity(r, pick(u.apps)); app != nil && len(app.AppState().Credentials) > 0 {
				creds := slices.Sorted(maps.Keys(app.AppState().Credentials)) // not map order: the workload must be reproducible
				commit(r, iam.RemoveCredential{App: app.ID, CredentialID: creds[rng.IntN(len(creds))]})
			}
		// Ownership, sharing, project policies, plans and default projects
		// (issue 10): their rows must survive a crash like the others.
		case x < 102:
			entity := iam.ManagedRef{Kind: iam.ManagedApp, ID: pick(u.apps)}
			if rng.IntN(2) == 0 {
				entity = iam.ManagedRef{Kind: iam.ManagedProject, ID: pick(u.projs)}
			}
			commit(r, iam.AddManager{Entity: entity, Manager: pickIdentity(rng, u)})
		case x < 103:
			commit(r, iam.ShareApp{App: pick(u.apps), With: pickIdentity(rng, u)})
		case x < 104:
			commit(r, iam.SetResourceLinkable{Project: pick(u.projs), HRN: pick(u.resources), Linkable: rng.IntN(2) == 0})
		case x < 105:
			commit(r, iam.CreateProjectPolicy{Project: pick(u.projs), ID: fmt.Sprintf("pp%d", rng.IntN(1<<30)), Name: "Project policy",
				Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{pick(u.resources)}}}})
		case x < 107:
			plan := fmt.Sprintf("plan%d", rng.IntN(1<<30))
			if commit(r, iam.CreatePlan{ID: plan, Name: "Plan", Policies: []string{pick(u.policies)}}) {
				commit(r, iam.AttachPlan{Plan: plan, Target: pickIdentity(rng, u)})
			}
		default:
			commit(r, iam.SetDefaultProject{App: pick(u.apps), Project: pick(u.projs)})
		}
	}
	return w
}

func pickIdentity(rng *rand.Rand, u *realmUniverse) string {
	if len(u.apps) > 0 && rng.IntN(6) == 0 {
		return u.apps[rng.IntN(len(u.apps))]
	}
	if len(u.users) == 0 {
		return "none"
	}
	return u.users[rng.IntN(len(u.users))]
}

// randomStatements makes one to three statements with exact and prefix
// resources, mostly allows, some denies.
func randomStatements(rng *rand.Rand, realm string) []iam.Statement {
	n := 1 + rng.IntN(3)
	out := make([]iam.Statement, n)
	for i := range out {
		st := iam.Statement{Effect: iam.Allow}
		if rng.IntN(7) == 0 {
			st.Effect = iam.Deny
		}
		if rng.IntN(10) == 0 {
			st.Actions = []string{"*"}
		} else {
			for range 1 + rng.IntN(2) {
				st.Actions = append(st.Actions, workloadActions[rng.IntN(len(workloadActions))])
			}
		}
		for range 1 + rng.IntN(3) {
			switch rng.IntN(4) {
			case 0:
				st.Resources = append(st.Resources, fmt.Sprintf("hrn:here:data::%s:cat-%d*", realm, 1+rng.IntN(9)))
			case 1:
				st.Resources = append(st.Resources, dataHRN(realm, 1000+rng.IntN(3000)))
			default:
				st.Resources = append(st.Resources, dataHRN(realm, rng.IntN(200)))
			}
		}
		out[i] = st
	}
	return out
}

// checkSample draws n checks over w's universe: known and unknown subjects,
// resources inside and outside projects, scoped and unscoped.
func (w *workload) checkSample(seed uint64, n int) []iam.CheckRequest {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]iam.CheckRequest, n)
	for i := range out {
		u := w.realms[rng.IntN(len(w.realms))]
		q := iam.CheckRequest{Realm: u.id, Subject: pickIdentity(rng, u), Action: checkActions[rng.IntN(len(checkActions))]}
		if rng.IntN(50) == 0 {
			q.Subject = "nobody"
		}
		switch rng.IntN(5) {
		case 0:
			if len(u.resources) > 0 {
				q.Resource = u.resources[rng.IntN(len(u.resources))]
			} else {
				q.Resource = dataHRN(u.id, 1000)
			}
		case 1:
			q.Resource = iam.GroupHRN(u.id, u.groups[rng.IntN(len(u.groups))])
		default:
			q.Resource = dataHRN(u.id, rng.IntN(200))
		}
		if rng.IntN(3) == 0 && len(u.projs) > 0 {
			q.Scope = u.projs[rng.IntN(len(u.projs))]
		}
		out[i] = q
	}
	return out
}

// stateAt replays w's first n entries into a scratch state.
func (w *workload) stateAt(n uint64) *iam.State {
	st := iam.NewState()
	for _, e := range w.entries[:n] {
		mustApplyEntry(st, e, nil)
	}
	return st
}

// mustApplyEntry applies e to st; test workloads hold only known events, so
// an error is a bug in the test.
func mustApplyEntry(st *iam.State, e iam.LogEntry, touch iam.Touch) {
	if err := st.ApplyEntry(e, touch); err != nil {
		panic(err)
	}
}

// applyAll feeds entries to rep in batches of batch, from rep.Applied()+1.
func applyAll(tb testing.TB, rep *replica.Replica, entries []iam.LogEntry, batch int) {
	tb.Helper()
	for from := rep.Applied(); from < uint64(len(entries)); {
		to := min(from+uint64(batch), uint64(len(entries)))
		if err := rep.ApplyEntries(entries[from:to]); err != nil {
			tb.Fatalf("apply %d..%d: %v", from+1, to, err)
		}
		from = to
	}
}

// requireRowsEqualState fails unless store holds exactly the rows of st.
func requireRowsEqualState(tb testing.TB, store *replica.Store, st *iam.State, what string) {
	tb.Helper()
	type row struct {
		k string
		v []byte
	}
	var want, got []row
	if err := replica.Rows(st, func(k string, v []byte) error { want = append(want, row{k, bytes.Clone(v)}); return nil }); err != nil {
		tb.Fatal(err)
	}
	if err := store.Scan(func(k string, v []byte) error { got = append(got, row{k, bytes.Clone(v)}); return nil }); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < len(want) || i < len(got); i++ {
		switch {
		case i >= len(got):
			tb.Fatalf("%s: store lacks row %q (got %d rows, want %d)", what, want[i].k, len(got), len(want))
		case i >= len(want):
			tb.Fatalf("%s: store has extra row %q (got %d rows, want %d)", what, got[i].k, len(got), len(want))
		case got[i].k != want[i].k:
			tb.Fatalf("%s: row %d: got key %q, want %q", what, i, got[i].k, want[i].k)
		case !bytes.Equal(got[i].v, want[i].v):
			tb.Fatalf("%s: row %q: got %q, want %q", what, got[i].k, got[i].v, want[i].v)
		}
	}
}

// requireSameStores fails unless a and b hold the same rows and the same
// digest (rows and position).
func requireSameStores(tb testing.TB, a, b *replica.Replica, what string) {
	tb.Helper()
	eq, key, err := a.Store().Equal(b.Store())
	if err != nil {
		tb.Fatal(err)
	}
	if !eq {
		tb.Fatalf("%s: stores differ, first at key %q", what, key)
	}
	da, sa, err := a.Store().Digest()
	if err != nil {
		tb.Fatal(err)
	}
	db, sb, err := b.Store().Digest()
	if err != nil {
		tb.Fatal(err)
	}
	if da != db || sa != sb {
		tb.Fatalf("%s: got digest %s at %d, want %s at %d", what, da, sa, db, sb)
	}
}

// comparableDecision keeps what two replicas at the same position must
// agree on. Which of several matching statements a reason names depends on
// map iteration order in iam.State.Check (see
// TestReplica_CheckReasonIsDeterministic), so for "allowed by"/"denied by"
// only the verdict is kept; every other reason is compared in full.
func comparableDecision(d iam.Decision) string {
	reason := d.Reason()
	switch {
	case strings.HasPrefix(reason, "allowed by "):
		reason = "allowed by …"
	case strings.HasPrefix(reason, "denied by "):
		reason = "denied by …"
	}
	return strconv.FormatBool(d.Allowed) + " " + reason
}

// requireSameChecks fails unless got and want answer every query alike,
// and both at position at.
func requireSameChecks(tb testing.TB, got, want *replica.Replica, qs []iam.CheckRequest, what string) {
	tb.Helper()
	ctx := context.Background()
	allowed := 0
	for _, q := range qs {
		g, gpos, err := got.Check(ctx, q, replica.Consistency{Mode: replica.MinimizeLatency})
		if err != nil {
			tb.Fatal(err)
		}
		w, wpos, err := want.Check(ctx, q, replica.Consistency{Mode: replica.MinimizeLatency})
		if err != nil {
			tb.Fatal(err)
		}
		if gpos != wpos {
			tb.Fatalf("%s: check evaluated at %d, want %d", what, gpos, wpos)
		}
		if comparableDecision(g) != comparableDecision(w) {
			tb.Fatalf("%s: check %+v: got %s, want %s", what, q, comparableDecision(g), comparableDecision(w))
		}
		if w.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(qs) {
		tb.Fatalf("%s: sample is degenerate: %d of %d checks allowed", what, allowed, len(qs))
	}
}
