package iam_test

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/iam-project/iam"
)

// Benchmark state: 100k identities (users and apps), 10k policies of 4
// statements, each identity with 10 policies attached directly (1M
// attachments) and in 2 of 1,000 groups (200 members each) that carry 3
// policies each; 1,000 projects of 10 resources, each identity a member of
// one with 2 project policies (for half of them, one is the project
// readers' policy).
const (
	benchIdentities  = 100_000
	benchPolicies    = 10_000
	benchAttached    = 10
	benchGroups      = 1_000
	benchGroupsPerID = 2
	benchGroupPols   = 3
	benchProjects    = 1_000
	benchProjectRes  = 10
)

type benchWorld struct {
	s        *iam.State
	attached [][]int // identity → policies attached
	projects []int   // identity → project
	unscoped []iam.CheckRequest
	scoped   []iam.CheckRequest
}

var (
	benchOnce  sync.Once
	benchState *benchWorld
)

func benchID(i int) string      { return "id" + strconv.Itoa(i) }
func benchPolicy(i int) string  { return "pol" + strconv.Itoa(i) }
func benchGroup(i int) string   { return "grp" + strconv.Itoa(i) }
func benchProject(i int) string { return "proj" + strconv.Itoa(i) }

// benchProjectReader reads every project resource (data "p*"), given in
// projects only.
const benchProjectReader = "project-reader"

func benchStatements(i int) []iam.Statement {
	is := strconv.Itoa(i)
	return []iam.Statement{
		{Effect: iam.Allow, Actions: []string{"read", "list"}, Resources: []string{data("ds-" + is + "-*"), data("shared-" + strconv.Itoa(i%100))}},
		{Effect: iam.Allow, Actions: []string{"write"}, Resources: []string{data("ds-" + is + "-w")}},
		{Effect: iam.Allow, Actions: []string{"*"}, Resources: []string{data("team-" + strconv.Itoa(i%500) + "-*")}},
		{Effect: iam.Deny, Actions: []string{"delete"}, Resources: []string{data("ds-" + is + "-*")}},
	}
}

// buildBench applies the events of the benchmark state directly, in entries
// of up to 10k events: Decide would judge each one and is not what is measured.
func buildBench(tb testing.TB) *benchWorld {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		bw := &benchWorld{s: iam.NewState()}
		in := iam.InRealm{Realm: realm}
		var seq uint64
		var batch []iam.Event
		flush := func() {
			if len(batch) > 0 {
				seq++
				if err := bw.s.ApplyEntry(iam.LogEntry{Seq: seq, Commits: []iam.Commit{{Events: batch}}}, nil); err != nil {
					tb.Fatal(err)
				}
				batch = nil
			}
		}
		add := func(e iam.Event) {
			batch = append(batch, e)
			if len(batch) == 10_000 {
				flush()
			}
		}
		add(iam.RealmCreated{InRealm: in, Name: "Bench"})
		for i := range benchPolicies {
			add(iam.PolicyCreated{InRealm: in, ID: benchPolicy(i), Name: "P", Statements: benchStatements(i)})
		}
		for g := range benchGroups {
			add(iam.GroupCreated{InRealm: in, ID: benchGroup(g), Name: "G"})
			for range benchGroupPols {
				add(iam.PolicyAttached{InRealm: in, Policy: benchPolicy(rng.IntN(benchPolicies)), Target: benchGroup(g)})
			}
		}
		// The project readers' policy, given in every project to half its
		// members: scoped checks and lookups find someone.
		add(iam.PolicyCreated{InRealm: in, ID: benchProjectReader, Name: "P", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("p*")}}}})
		for p := range benchProjects {
			add(iam.ProjectCreated{InRealm: in, ID: benchProject(p), Name: "P"})
			for r := range benchProjectRes {
				add(iam.ProjectResourceAdded{InRealm: in, Project: benchProject(p), HRN: data("p" + strconv.Itoa(p) + "-res" + strconv.Itoa(r)), Relation: iam.RelationHome})
			}
		}
		bw.attached = make([][]int, benchIdentities)
		bw.projects = make([]int, benchIdentities)
		for i := range benchIdentities {
			kind := iam.KindUser
			if i%10 == 0 {
				kind = iam.KindApp
			}
			add(iam.IdentityCreated{InRealm: in, ID: benchID(i), Kind: kind, Name: "I"})
			for range benchAttached {
				p := rng.IntN(benchPolicies)
				bw.attached[i] = append(bw.attached[i], p)
				add(iam.PolicyAttached{InRealm: in, Policy: benchPolicy(p), Target: benchID(i)})
			}
			for k := range benchGroupsPerID { // 2 groups: k is 0 or 1
				// 200 members per group: identity i is in group i%1000 and in
				// another one, at an offset fixed for each block of 1,000 ids.
				g := i % benchGroups
				if k > 0 {
					g = (g + 1 + (i/benchGroups)%(benchGroups-1)) % benchGroups
				}
				add(iam.MemberAdded{InRealm: in, Group: benchGroup(g), Identity: benchID(i)})
			}
			p := i % benchProjects
			bw.projects[i] = p
			pols := []string{benchPolicy(rng.IntN(benchPolicies)), benchPolicy(rng.IntN(benchPolicies))}
			if (i/benchProjects)%2 == 0 { // half of each project's members
				pols[1] = benchProjectReader
			}
			add(iam.ProjectMemberSet{InRealm: in, Project: benchProject(p), Member: benchID(i), Policies: pols})
		}
		flush()

		// Requests: half aimed at something an attached policy allows (or
		// denies), half at resources nobody holds, which evaluate every
		// statement of the subject.
		actions := []string{"read", "write", "list", "delete"}
		for range 1 << 14 {
			i := rng.IntN(benchIdentities)
			res := data("nobody-" + strconv.Itoa(rng.IntN(1000)))
			if rng.IntN(2) == 0 {
				res = data("ds-" + strconv.Itoa(bw.attached[i][rng.IntN(benchAttached)]) + "-w")
			}
			bw.unscoped = append(bw.unscoped, iam.CheckRequest{Realm: realm, Subject: benchID(i), Action: actions[rng.IntN(len(actions))], Resource: res})
			p := bw.projects[i]
			bw.scoped = append(bw.scoped, iam.CheckRequest{Realm: realm, Subject: benchID(i), Action: "read",
				Resource: data("p" + strconv.Itoa(p) + "-res" + strconv.Itoa(rng.IntN(benchProjectRes))), Scope: benchProject(p)})
		}
		benchState = bw
	})
	return benchState
}

func TestBenchState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the 100k-identity state")
	}
	bw := buildBench(t)
	r := bw.s.Realm(realm)
	if r.Identities.Len() != benchIdentities || len(r.Policies) != benchPolicies+1 || len(r.Groups) != benchGroups {
		t.Fatalf("state: got %d identities %d policies %d groups, want %d %d %d",
			r.Identities.Len(), len(r.Policies), len(r.Groups), benchIdentities, benchPolicies+1, benchGroups)
	}
	for _, g := range r.Groups {
		if g.Members.Len() != benchIdentities*benchGroupsPerID/benchGroups {
			t.Fatalf("group %s: got %d members, want %d", g.ID, g.Members.Len(), benchIdentities*benchGroupsPerID/benchGroups)
		}
	}
	for name, qs := range map[string][]iam.CheckRequest{"unscoped": bw.unscoped, "scoped": bw.scoped} {
		allowed := 0
		for _, q := range qs {
			if bw.s.Check(q).Allowed {
				allowed++
			}
		}
		if allowed == 0 || allowed == len(qs) {
			t.Errorf("%s checks allowed: got %d of %d, want a mix", name, allowed, len(qs))
		}
	}
	// Who may read a project's resource: the half of its members given the
	// project readers' policy, each of whom a check allows.
	res, scope := data("p7-res0"), benchProject(7)
	got, more := bw.s.LookupSubjects(realm, "read", res, scope, "", 1000)
	if want := benchIdentities / benchProjects / 2; len(got) != want || more {
		t.Errorf("who can read %s in %s: got %d (more: %t), want %d", res, scope, len(got), more, want)
	}
	for _, sub := range got {
		if d := bw.s.Check(iam.CheckRequest{Realm: realm, Subject: sub.ID, Action: "read", Resource: res, Scope: scope}); !d.Allowed {
			t.Errorf("%s may read %s by the lookup (%s), but its check says %s", sub.ID, res, sub.Reason, d.Reason())
		}
	}
}

// BenchmarkCheck measures one check against the 100k-identity state.
func BenchmarkCheck(b *testing.B) {
	bw := buildBench(b)
	for _, bm := range []struct {
		name string
		reqs []iam.CheckRequest
	}{{"unscoped", bw.unscoped}, {"scoped", bw.scoped}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bw.s.Check(bm.reqs[i&(len(bm.reqs)-1)])
				i++
			}
		})
		b.Run(bm.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			var next sync.Mutex
			seed := 0
			b.RunParallel(func(pb *testing.PB) {
				next.Lock()
				i := seed * 7919
				seed++
				next.Unlock()
				for pb.Next() {
					bw.s.Check(bm.reqs[i&(len(bm.reqs)-1)])
					i++
				}
			})
		})
	}
}
